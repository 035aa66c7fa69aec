-- Keys follow their people (issue 10): an API key minted by another key remembers it, so
-- the key's effective role is the minimum over its whole creator chain and the current
-- role of the person at its root (see control-plane/src/auth.rs). `created_by` is, from
-- now on, that person (the root of the chain) for every key, minted by a key or not.
ALTER TABLE api_keys
    ADD COLUMN created_by_key uuid REFERENCES api_keys (id) ON DELETE SET NULL,
    ADD COLUMN revoked_reason text;
CREATE INDEX api_keys_created_by_idx ON api_keys (org_id, created_by);

-- Keys minted by keys before this migration have no chain to follow back to a person:
-- they are revoked rather than left with a role nobody answers for.
UPDATE api_keys SET revoked_at = now(), revoked_reason = 'no_creator'
 WHERE created_by IS NULL AND revoked_at IS NULL;

-- Publication back-off (control-plane/src/publisher.rs): a failed publication is
-- `permanent` when the edge refused the snapshot itself (413, 422) or it exceeded the
-- snapshot quota; such a site is not pushed again until its content changes. A snapshot
-- over the quota is recorded without being pushed at all (0 attempts).
ALTER TABLE snapshot_publications
    ADD COLUMN permanent boolean NOT NULL DEFAULT false,
    DROP CONSTRAINT snapshot_publications_attempts_check,
    ADD CONSTRAINT snapshot_publications_attempts_check CHECK (attempts >= 0);
