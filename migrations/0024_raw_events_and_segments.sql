-- Raw events and segment statistics (issue 16; docs/segments.md, docs/ingestion.md).
--
-- 1. Raw exposures and conversions, kept as they were ingested (no IP address, no user
--    agent: the edge never sends them), in PostgreSQL native partitions, one per UTC day
--    of the event's ts_ms. Retention drops whole partitions (DROP TABLE, no DELETE and
--    no vacuum debt); erasure deletes one site's rows of some visitors through the
--    (site_id, visitor_id) index. Partitions are made on demand by ingestion (and ahead
--    of time by the housekeeping task) as `<table>_pYYYYMMDD`; there is no default
--    partition, so a row for a day without a partition is an error, never a silent
--    catch-all that later partitions would have to scan.
--    No foreign keys (a per-row check would cost on the hot path) and no primary key
--    (item ids are unique already: ingest_seen_items decides what is written).
CREATE TABLE raw_exposures (
    day               date NOT NULL,
    ts                timestamptz NOT NULL,
    site_id           uuid NOT NULL,
    item_id           text NOT NULL,
    visitor_id        text NOT NULL,
    experiment_id     uuid NOT NULL,
    arm_id            uuid NOT NULL,
    element_id        uuid,
    propensity        double precision NOT NULL,
    snapshot_version  bigint NOT NULL,
    -- The exposure's context (samplit_engine::context); NULL = unknown / not sent.
    country           text,
    device            text,
    browser           text,
    source            text,
    landing           text,
    prior_visits      integer,
    prior_conversions integer
) PARTITION BY RANGE (day);
CREATE INDEX raw_exposures_site_visitor_idx ON raw_exposures (site_id, visitor_id);

-- Conversions and custom events (`kind`), attributed or not.
CREATE TABLE raw_conversions (
    day        date NOT NULL,
    ts         timestamptz NOT NULL,
    site_id    uuid NOT NULL,
    item_id    text NOT NULL,
    visitor_id text NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('conversion', 'custom')),
    goal       text NOT NULL,
    value      double precision NOT NULL,
    currency   text,
    signed     boolean NOT NULL
) PARTITION BY RANGE (day);
CREATE INDEX raw_conversions_site_visitor_idx ON raw_conversions (site_id, visitor_id);

-- 2. The first exposure's context, kept with the assignment (NULL = unknown): a
--    conversion counts in the segments of the visitor's assignment.
ALTER TABLE assignments
    ADD COLUMN country           text,
    ADD COLUMN device            text,
    ADD COLUMN browser           text,
    ADD COLUMN source            text,
    ADD COLUMN landing           text,
    ADD COLUMN prior_visits      integer,
    ADD COLUMN prior_conversions integer;

-- 3. Segment statistics: the sufficient statistics of arm_daily / arm_goal_daily split by
--    the value of each dimension (country, device, browser, source, visitor_type), moved
--    in the same transaction and from the same deltas. For every arm (and goal) and every
--    dimension, the rows' sum over values equals the arm's totals. Segment results read
--    these through the primary key's prefix (arm, [goal,] dimension): never raw events.
CREATE TABLE segment_daily (
    arm_id        uuid NOT NULL REFERENCES arms (id) ON DELETE CASCADE,
    dimension     text NOT NULL,
    value         text NOT NULL,
    day           date NOT NULL,
    experiment_id uuid NOT NULL,
    visitors      bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (arm_id, dimension, value, day)
);

CREATE TABLE segment_goal_daily (
    arm_id        uuid NOT NULL REFERENCES arms (id) ON DELETE CASCADE,
    goal_id       uuid NOT NULL REFERENCES goals (id) ON DELETE CASCADE,
    dimension     text NOT NULL,
    value         text NOT NULL,
    day           date NOT NULL,
    experiment_id uuid NOT NULL,
    converters    bigint NOT NULL DEFAULT 0,
    revenue_n     bigint NOT NULL DEFAULT 0,
    revenue_sum   double precision NOT NULL DEFAULT 0,
    revenue_sumsq double precision NOT NULL DEFAULT 0,
    PRIMARY KEY (arm_id, goal_id, dimension, value, day)
);
