-- Outgoing webhooks (issue 15, control-plane/src/alerts/webhooks.rs): each organisation's
-- endpoints and the log of deliveries to them. Signing secrets are never stored: each is
-- derived from SAMPLIT_WEBHOOK_SECRET, the webhook id and `secret_version` (a rotation
-- increments it, so the old secret stops working).
CREATE TABLE webhooks (
    id             uuid PRIMARY KEY,
    org_id         uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    url            text NOT NULL CHECK (length(url) <= 2048),
    description    text NOT NULL DEFAULT '',
    -- The alert kinds it receives (a subset of AlertKind; test deliveries always go).
    kinds          text[] NOT NULL,
    enabled        boolean NOT NULL DEFAULT true,
    secret_version integer NOT NULL DEFAULT 1,
    created_by     uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    disabled_at    timestamptz
);
CREATE INDEX webhooks_org_idx ON webhooks (org_id, created_at);

-- One row per (webhook, event): an event is queued once per webhook. `payload` is the
-- JSON body without its links (added when sending, from SAMPLIT_PUBLIC_URL).
CREATE TABLE webhook_deliveries (
    id               uuid PRIMARY KEY,
    webhook_id       uuid NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id         uuid NOT NULL,
    type             text NOT NULL,
    payload          jsonb NOT NULL,
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    last_status_code integer,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz,
    UNIQUE (webhook_id, event_id)
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_log_idx ON webhook_deliveries (webhook_id, created_at DESC);
