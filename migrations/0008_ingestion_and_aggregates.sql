-- Ingestion of the edge's event batches: idempotency, assignments, conversions, and the
-- per-arm aggregates (totals and daily buckets) that results read instead of raw events.
-- See docs/ingestion.md for the rules these tables implement.

-- Item ids already processed: a batch delivered twice, or an item repeated across
-- batches, is counted once (`INSERT ... ON CONFLICT DO NOTHING`). Retention: rows older
-- than the replay window (14 days, `ingest::SEEN_RETENTION`) are pruned, and items whose
-- `ts_ms` is older than that window are rejected, so a pruned id can never count twice.
-- BRIN on `seen_at`: rows arrive in time order, so the prune scan is cheap and the index
-- costs next to nothing on insert.
CREATE TABLE ingest_seen_items (
    item_id text PRIMARY KEY,
    seen_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ingest_seen_items_seen_at_brin ON ingest_seen_items USING brin (seen_at);

-- The arm a visitor got in an allocation unit, fixed by its first exposure.
-- unit = the experiment id (single, factorial) or the element id (independent
-- multi-element, where each element is its own unit).
-- Key order (experiment, visitor, unit): conversions look up all of a visitor's units in
-- an experiment by the key prefix.
-- No foreign key on arm_id: a per-row FK trigger would cost on the hot path, and arms
-- only disappear with their experiment (which cascades here).
CREATE TABLE assignments (
    experiment_id    uuid NOT NULL REFERENCES experiments (id) ON DELETE CASCADE,
    visitor_id       text NOT NULL,
    unit             uuid NOT NULL,
    arm_id           uuid NOT NULL,
    propensity       double precision NOT NULL,
    snapshot_version bigint NOT NULL,
    first_seen_at    timestamptz NOT NULL,
    PRIMARY KEY (experiment_id, visitor_id, unit)
);

-- A visitor's conversion on a goal, once per (goal, unit, visitor); `revenue` is the
-- visitor's running total (sum of the values of all their conversions on that goal).
CREATE TABLE goal_conversions (
    goal_id       uuid NOT NULL REFERENCES goals (id) ON DELETE CASCADE,
    visitor_id    text NOT NULL,
    unit          uuid NOT NULL,
    experiment_id uuid NOT NULL,
    arm_id        uuid NOT NULL,
    revenue       double precision NOT NULL DEFAULT 0,
    -- The total before the last update (lets ingestion update the sum of squares exactly).
    prev_revenue  double precision NOT NULL DEFAULT 0,
    first_at      timestamptz NOT NULL,
    PRIMARY KEY (goal_id, visitor_id, unit)
);

-- Per-arm totals. `propensity_sum`: sum of the propensities logged with the first
-- exposures of the arm's visitors; `expected_visitors`: the visitors the arm should have
-- received given the propensities of every exposure in its unit (SRM for bandits).
CREATE TABLE arm_stats (
    arm_id                uuid PRIMARY KEY REFERENCES arms (id) ON DELETE CASCADE,
    experiment_id         uuid NOT NULL,
    visitors              bigint NOT NULL DEFAULT 0,
    propensity_sum        double precision NOT NULL DEFAULT 0,
    expected_visitors     double precision NOT NULL DEFAULT 0,
    conflicting_exposures bigint NOT NULL DEFAULT 0
);
CREATE INDEX arm_stats_experiment_idx ON arm_stats (experiment_id);

-- Per (arm, goal) totals. Revenue moments are over per-visitor totals: revenue_n counts
-- visitors with a positive total, revenue_sum / revenue_sumsq sum their totals and squares
-- (visitors without revenue add zeros, so the per-visitor mean is revenue_sum / visitors).
CREATE TABLE arm_goal_stats (
    arm_id        uuid NOT NULL REFERENCES arms (id) ON DELETE CASCADE,
    goal_id       uuid NOT NULL REFERENCES goals (id) ON DELETE CASCADE,
    experiment_id uuid NOT NULL,
    converters    bigint NOT NULL DEFAULT 0,
    revenue_n     bigint NOT NULL DEFAULT 0,
    revenue_sum   double precision NOT NULL DEFAULT 0,
    revenue_sumsq double precision NOT NULL DEFAULT 0,
    PRIMARY KEY (arm_id, goal_id)
);
CREATE INDEX arm_goal_stats_experiment_idx ON arm_goal_stats (experiment_id, goal_id);

-- Daily buckets (UTC day of the event's ts_ms): new visitors per arm and day, new
-- converters and revenue per arm, goal and day.
CREATE TABLE arm_daily (
    arm_id        uuid NOT NULL REFERENCES arms (id) ON DELETE CASCADE,
    day           date NOT NULL,
    experiment_id uuid NOT NULL,
    visitors      bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (arm_id, day)
);
CREATE INDEX arm_daily_experiment_idx ON arm_daily (experiment_id, day);

CREATE TABLE arm_goal_daily (
    arm_id        uuid NOT NULL REFERENCES arms (id) ON DELETE CASCADE,
    goal_id       uuid NOT NULL REFERENCES goals (id) ON DELETE CASCADE,
    day           date NOT NULL,
    experiment_id uuid NOT NULL,
    converters    bigint NOT NULL DEFAULT 0,
    revenue_sum   double precision NOT NULL DEFAULT 0,
    PRIMARY KEY (arm_id, goal_id, day)
);
CREATE INDEX arm_goal_daily_experiment_idx ON arm_goal_daily (experiment_id, goal_id, day);

-- Conversions accepted without an attribution (no matching goal, or the visitor has no
-- assignment in the matching experiments), per site and day.
CREATE TABLE unattributed_daily (
    site_id     uuid NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    day         date NOT NULL,
    conversions bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (site_id, day)
);

-- The always-valid (mSPRT) p-value of each compared subject (an arm, or a variant in a
-- main-effect analysis) on a goal, as last computed: the next analysis passes it back so
-- the reported p-value is the running minimum over looks (what makes it always valid).
CREATE TABLE sequential_p_values (
    goal_id    uuid NOT NULL REFERENCES goals (id) ON DELETE CASCADE,
    scope      text NOT NULL,
    subject_id uuid NOT NULL,
    p_value    double precision NOT NULL CHECK (p_value >= 0 AND p_value <= 1),
    PRIMARY KEY (goal_id, scope, subject_id)
);
