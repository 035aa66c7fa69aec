-- Accounts, organisations, roles, sessions, API keys and the audit trail.

CREATE TABLE users (
    id            uuid PRIMARY KEY,
    email         text NOT NULL CHECK (email = lower(email) AND length(email) BETWEEN 3 AND 254),
    password_hash text NOT NULL,
    name          text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now()
);
-- Emails are stored lower-cased: unique regardless of case.
CREATE UNIQUE INDEX users_email_key ON users (email);

CREATE TABLE organizations (
    id         uuid PRIMARY KEY,
    name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE memberships (
    org_id     uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       text NOT NULL CHECK (role IN ('viewer', 'editor', 'admin', 'owner')),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, user_id)
);
CREATE INDEX memberships_user_idx ON memberships (user_id);

-- A login session: the family of rotating refresh tokens behind access tokens (`sid`).
CREATE TABLE auth_sessions (
    id         uuid PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    org_id     uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz,
    revoked_reason text
);
CREATE INDEX auth_sessions_user_idx ON auth_sessions (user_id);

-- Refresh tokens, stored as SHA-256 hashes; a token is used once (rotation).
CREATE TABLE refresh_tokens (
    token_hash bytea PRIMARY KEY,
    session_id uuid NOT NULL REFERENCES auth_sessions (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);
CREATE INDEX refresh_tokens_session_idx ON refresh_tokens (session_id);

CREATE TABLE api_keys (
    id           uuid PRIMARY KEY,
    org_id       uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    role         text NOT NULL CHECK (role IN ('viewer', 'editor', 'admin')),
    key_hash     bytea NOT NULL UNIQUE,
    -- The first characters of the key, to recognise it in lists (never the whole key).
    key_prefix   text NOT NULL,
    created_by   uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX api_keys_org_idx ON api_keys (org_id);

-- Hash-chained per organisation; see control-plane/src/audit.rs.
CREATE TABLE audit_log (
    org_id           uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    seq              bigint NOT NULL CHECK (seq >= 1),
    at               timestamptz NOT NULL,
    actor_user_id    uuid,
    actor_api_key_id uuid,
    action           text NOT NULL,
    target_type      text NOT NULL,
    target_id        uuid,
    entry            text NOT NULL,
    prev_hash        bytea NOT NULL,
    hash             bytea NOT NULL,
    PRIMARY KEY (org_id, seq)
);
CREATE INDEX audit_log_target_idx ON audit_log (org_id, target_id);
