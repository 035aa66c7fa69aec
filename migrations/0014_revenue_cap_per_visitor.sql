-- The per-visitor revenue cap (issue 10, docs/security.md "Limits"): what unsigned
-- (browser) calls report for one visitor on one goal adds up to at most the site's
-- `revenue_cap`; revenue from signed server calls is not capped. The edge marks items
-- from signed calls (`"signed": true`); ingestion keeps the two parts apart.
--   unsigned_revenue  the visitor's revenue from unsigned calls, capped
--   signed_revenue    the visitor's revenue from signed calls
--   revenue_cap       the cap in force at the row's last write
-- `revenue` stays the total both parts add up to (results read it). Rows written before
-- this migration count as unsigned, so they use up the cap first.
ALTER TABLE goal_conversions
    ADD COLUMN unsigned_revenue double precision NOT NULL DEFAULT 0,
    ADD COLUMN signed_revenue double precision NOT NULL DEFAULT 0,
    ADD COLUMN revenue_cap double precision NULL;
UPDATE goal_conversions SET unsigned_revenue = revenue WHERE revenue <> 0;

-- A parked conversion remembers whether its call was signed.
ALTER TABLE pending_conversions
    ADD COLUMN signed boolean NOT NULL DEFAULT false;
