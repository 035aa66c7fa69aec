-- Login and registration throttling, and invitations to organisations.

-- Throttled attempts: failed logins, per account (normalised email, known or not) and per
-- client address, and registrations per address. Kept in PostgreSQL so the limits hold
-- across replicas; rows older than a day are pruned by the API (see
-- control-plane/src/ratelimit.rs).
CREATE TABLE login_attempts (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind    text NOT NULL CHECK (kind IN ('login_failure', 'registration')),
    email   text NOT NULL,
    -- The client address as the server sees it (`X-Forwarded-For` only from trusted
    -- proxies); null when unknown.
    address text,
    at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX login_attempts_email_idx ON login_attempts (kind, email, at);
CREATE INDEX login_attempts_address_idx ON login_attempts (kind, address, at);
CREATE INDEX login_attempts_at_idx ON login_attempts (at);

-- An invitation to join an organisation with a role; the token is shown once to the
-- inviter and only its SHA-256 is kept.
CREATE TABLE invitations (
    id          uuid PRIMARY KEY,
    org_id      uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    email       text NOT NULL CHECK (email = lower(email) AND length(email) BETWEEN 3 AND 254),
    role        text NOT NULL CHECK (role IN ('viewer', 'editor', 'admin', 'owner')),
    token_hash  bytea NOT NULL UNIQUE,
    invited_by  uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    accepted_at timestamptz,
    revoked_at  timestamptz
);
-- At most one open invitation per (organisation, email): a new one replaces the old.
CREATE UNIQUE INDEX invitations_open_key ON invitations (org_id, email)
    WHERE accepted_at IS NULL AND revoked_at IS NULL;
