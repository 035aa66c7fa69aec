-- People who asked, on the public simulator page, to hear about Samplit (issue 12,
-- "public, opt-in"). One row per address (case-insensitive): asking again updates the
-- name and company and counts the request, never adds a second row. The form is
-- rate-limited per client address through login_attempts (kind 'signup').
CREATE TABLE signups (
    id            uuid PRIMARY KEY,
    email         text NOT NULL,
    name          text NOT NULL DEFAULT '',
    company       text NOT NULL DEFAULT '',
    -- Where the form was (e.g. 'simulator').
    source        text NOT NULL,
    requests      integer NOT NULL DEFAULT 1,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX signups_email_idx ON signups (lower(email));

ALTER TABLE login_attempts DROP CONSTRAINT login_attempts_kind_check;
ALTER TABLE login_attempts ADD CONSTRAINT login_attempts_kind_check
    CHECK (kind IN ('login_failure', 'registration', 'signup'));
