-- Alerts (issue 15, control-plane/src/alerts): the state of each alert per subject, each
-- person's preferences and per-experiment overrides, and the log of alerts fired.

-- One row per (subject, kind) that was ever active: subject = an experiment id (winner,
-- srm, guardrail_harmed) or a site id (publish_failing). An alert fires when `active`
-- goes from false (or no row) to true; `n` counts those activations and is part of the
-- mails' dedupe keys, so a re-activation mails again and a retried pass never does.
CREATE TABLE alert_states (
    subject_id uuid NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('winner', 'srm', 'guardrail_harmed', 'publish_failing')),
    org_id     uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    active     boolean NOT NULL,
    n          integer NOT NULL DEFAULT 0,
    changed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (subject_id, kind)
);

-- A person's choice for one kind in one organisation; no row = the role's default
-- (owners and admins: on; editors and viewers: off).
CREATE TABLE alert_preferences (
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    org_id  uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    kind    text NOT NULL CHECK (kind IN ('winner', 'srm', 'guardrail_harmed', 'publish_failing')),
    enabled boolean NOT NULL,
    PRIMARY KEY (user_id, org_id, kind)
);

-- A person's override for one experiment: `follow` = every experiment alert of it,
-- `mute` = none of them, whatever the preferences say. No row = the preferences.
CREATE TABLE experiment_alert_overrides (
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    experiment_id uuid NOT NULL REFERENCES experiments (id) ON DELETE CASCADE,
    mode          text NOT NULL CHECK (mode IN ('follow', 'mute')),
    PRIMARY KEY (user_id, experiment_id)
);
CREATE INDEX experiment_alert_overrides_experiment_idx ON experiment_alert_overrides (experiment_id);

-- Every alert fired (what the console lists and what mails and webhooks were made of).
CREATE TABLE alert_events (
    id         uuid PRIMARY KEY,
    org_id     uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    kind       text NOT NULL CHECK (kind IN ('winner', 'srm', 'guardrail_harmed', 'publish_failing')),
    subject_id uuid NOT NULL,
    text       text NOT NULL,
    detail     jsonb NOT NULL,
    at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alert_events_org_at_idx ON alert_events (org_id, at DESC);
