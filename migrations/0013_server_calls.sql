-- Signed server calls (issue 10, docs/security.md "Signed server calls"). A site's server
-- secret is derived from the snapshot secret and a public, random salt
-- (samplit_engine::server_call::server_secret), so nothing secret is stored here or in
-- KV: the salt is published in the snapshot and the edge re-derives the secret.
-- Sites created before this migration have no salt until their secret is rotated; the
-- edge answers their signed calls 401 `server_secret_not_set`.
-- `revenue_cap`: the largest event value an unsigned (browser) call may report.
ALTER TABLE sites
    ADD COLUMN server_secret_salt text NULL,
    ADD COLUMN revenue_cap double precision NOT NULL DEFAULT 10000
        CHECK (revenue_cap > 0 AND revenue_cap <= 1e9);
