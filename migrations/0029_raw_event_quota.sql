-- A per-site daily quota of raw events (issue 16; docs/ingestion.md, "Raw-event quota").
-- Anyone holding a site's public key can send events: aggregates stay small whatever the
-- volume, but raw_exposures / raw_conversions grow with every row. Ingestion counts, per
-- (site, UTC day of the event), the raw rows it kept and those it did not insert because
-- the day had reached SAMPLIT_RAW_EVENTS_PER_SITE_DAY (the aggregates still count every
-- event). The row is upserted in the batch's transaction, after its raw inserts (rows
-- past the quota are deleted again; a day already full gets none), and its row lock
-- serialises concurrent batches of the same site and day, so `kept` never passes the
-- quota. Funnels read `dropped` to warn that they undercount on those days.
-- One row per site and day with events: small, and removed with the site (unlike the raw
-- tables, a foreign key costs one check per (site, day) per batch, not one per row).
CREATE TABLE raw_event_days (
    site_id uuid NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    day     date NOT NULL,
    kept    bigint NOT NULL DEFAULT 0,
    dropped bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (site_id, day)
);
