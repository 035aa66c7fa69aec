-- Read-only share links for one experiment's results (issue 12, "public, opt-in"): off
-- until an editor creates one, revocable, unguessable. The link carries a 256-bit
-- random token (`rs_` + 64 hex); only its SHA-256 is stored.
CREATE TABLE results_shares (
    id            uuid PRIMARY KEY,
    org_id        uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    experiment_id uuid NOT NULL REFERENCES experiments (id) ON DELETE CASCADE,
    token_hash    bytea NOT NULL UNIQUE,
    created_by    uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz
);
CREATE INDEX results_shares_experiment_idx ON results_shares (experiment_id);
