-- Mail (issue 15): verified addresses, each person's language, and the outbox every
-- message goes through (control-plane/src/mail).

-- When the address was proven (a followed verification link, or an accepted mailed
-- invitation); null until then. Accounts from before mail existed start unverified.
ALTER TABLE users ADD COLUMN email_verified_at timestamptz;
-- The language of the mails a person receives (and the console's default).
ALTER TABLE users ADD COLUMN language text NOT NULL DEFAULT 'en'
    CHECK (language IN ('en', 'es'));

-- One row per message, written in the transaction of the change that causes it and sent
-- by the outbox worker (`mail::outbox`): an SMTP outage delays mail, never loses it.
-- Bodies are rendered when the message is enqueued; a message with a link carries the
-- placeholder `mail::LINK_TOKEN_PLACEHOLDER` and `link_purpose`/`link_id` instead of the
-- token, which the worker derives again when sending (`mail::link_token`): no usable
-- token is ever stored here.
CREATE TABLE mail_outbox (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- What the message is about (e.g. `verify:<token id>`, `alert:<experiment>:<kind>:<n>:<user>`):
    -- enqueueing the same key twice keeps one message.
    dedupe_key      text NOT NULL UNIQUE,
    to_address      text NOT NULL CHECK (length(to_address) BETWEEN 3 AND 254),
    subject         text NOT NULL,
    text_body       text NOT NULL,
    html_body       text NOT NULL,
    link_purpose    text,
    link_id         uuid,
    created_at      timestamptz NOT NULL DEFAULT now(),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    -- Given up (after `SAMPLIT_MAIL_GIVE_UP`), logged at error level.
    failed_at       timestamptz,
    last_error      text,
    CHECK ((link_purpose IS NULL) = (link_id IS NULL))
);
CREATE INDEX mail_outbox_due_idx ON mail_outbox (next_attempt_at)
    WHERE sent_at IS NULL AND failed_at IS NULL;
