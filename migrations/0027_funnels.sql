-- Funnels (issue 16; docs/funnels.md): an experiment's ordered steps, each one of its
-- goals, completed in order within a window after the visitor's exposure. Computed from
-- raw events when asked (samplit_engine::stats::funnel); nothing is aggregated at ingest.
CREATE TABLE funnels (
    id             uuid PRIMARY KEY,
    experiment_id  uuid NOT NULL REFERENCES experiments (id) ON DELETE CASCADE,
    name           text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    -- 60 s .. 90 days.
    window_seconds integer NOT NULL CHECK (window_seconds BETWEEN 60 AND 7776000),
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (experiment_id, name)
);

-- The steps, 2 to 8 per funnel (checked by the API), by position from 0. A goal appears
-- once per funnel. Deleting the goal deletes its steps; the funnel, now with a gap, is
-- deleted with it (a draft's goals are replaced whole when edited: see docs/funnels.md).
CREATE TABLE funnel_steps (
    funnel_id uuid NOT NULL REFERENCES funnels (id) ON DELETE CASCADE,
    position  smallint NOT NULL CHECK (position BETWEEN 0 AND 7),
    goal_id   uuid NOT NULL REFERENCES goals (id) ON DELETE CASCADE,
    PRIMARY KEY (funnel_id, position),
    UNIQUE (funnel_id, goal_id)
);
CREATE INDEX funnel_steps_goal_idx ON funnel_steps (goal_id);

-- A funnel that lost a step with its goal goes too.
CREATE FUNCTION funnels_drop_broken() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM funnels WHERE id = OLD.funnel_id;
    RETURN NULL;
END $$;
CREATE TRIGGER funnel_steps_goal_gone
    AFTER DELETE ON funnel_steps
    FOR EACH ROW EXECUTE FUNCTION funnels_drop_broken();
