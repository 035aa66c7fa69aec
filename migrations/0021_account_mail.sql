-- Mailed account flows (issue 15): sign-ups confirmed by mail, verification, password
-- resets and email changes. Every token is a mail link token (`mail::link_token`,
-- derived from the row's purpose and id); only its SHA-256 is stored here.

-- A sign-up waiting for its address to be confirmed (when mail is delivered): the
-- account is created only when the mailed link is followed.
CREATE TABLE pending_registrations (
    id                uuid PRIMARY KEY,
    email             text NOT NULL CHECK (email = lower(email) AND length(email) BETWEEN 3 AND 254),
    password_hash     text NOT NULL,
    name              text NOT NULL DEFAULT '',
    organization_name text NOT NULL,
    language          text NOT NULL DEFAULT 'en' CHECK (language IN ('en', 'es')),
    token_hash        bytea NOT NULL UNIQUE,
    created_at        timestamptz NOT NULL DEFAULT now(),
    expires_at        timestamptz NOT NULL,
    used_at           timestamptz
);
CREATE INDEX pending_registrations_email_idx ON pending_registrations (email);

-- Single-use tokens of an existing user, or of an address without an account (a reset
-- asked for an unknown address: the row exists so both cases do the same work, and can
-- never be redeemed since it has no user).
CREATE TABLE account_tokens (
    id          uuid PRIMARY KEY,
    purpose     text NOT NULL CHECK (purpose IN ('verify_email', 'reset_password', 'change_email')),
    user_id     uuid REFERENCES users (id) ON DELETE CASCADE,
    -- The address the token was mailed to (for `change_email`: the new address).
    email       text NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
    token_hash  bytea NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);
CREATE INDEX account_tokens_user_idx ON account_tokens (user_id, purpose);
CREATE INDEX account_tokens_email_idx ON account_tokens (purpose, email, created_at);

-- Throttles of the mailed flows, counted with the other attempts.
ALTER TABLE login_attempts DROP CONSTRAINT login_attempts_kind_check;
ALTER TABLE login_attempts ADD CONSTRAINT login_attempts_kind_check
    CHECK (kind IN ('login_failure', 'registration', 'signup', 'password_reset',
                    'verification_resend'));
