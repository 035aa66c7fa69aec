-- Conversions that arrived before the visitor's exposure to a goal's experiment. The
-- queue between the edge and the control plane does not keep order (a retried batch
-- comes later; the edge queues exposures after its response), so a conversion may be
-- ingested before the exposure that fixes the visitor's arm. It waits here, one row per
-- (item, goal), and is attributed when the assignment appears (see
-- control-plane/src/ingest/mod.rs, `attribute_pending`). Pruned with the seen ids.
CREATE TABLE pending_conversions (
    item_id       text NOT NULL,
    goal_id       uuid NOT NULL REFERENCES goals (id) ON DELETE CASCADE,
    experiment_id uuid NOT NULL REFERENCES experiments (id) ON DELETE CASCADE,
    visitor_id    text NOT NULL,
    value         double precision NOT NULL,
    at            timestamptz NOT NULL,
    PRIMARY KEY (item_id, goal_id)
);
CREATE INDEX pending_conversions_visitor_idx ON pending_conversions (visitor_id, experiment_id);
