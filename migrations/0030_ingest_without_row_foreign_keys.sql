-- Ingestion's two per-row foreign keys become one lock per batch (docs/ingestion.md,
-- "Experiments and goals deleted while a batch is written"; docs/benchmarks.md, "where
-- the time goes").
--
-- Each row inserted into `assignments` (one per new visitor) and `goal_conversions` (one
-- per converting visitor) ran a foreign-key check that takes FOR KEY SHARE on the
-- experiment's or the goal's one row. Every concurrent ingest transaction shares that
-- lock, so PostgreSQL keeps it as a MultiXact and every check reads the MultiXact's
-- members: measured, a third of the statements' time. Instead, the batch's transaction
-- takes FOR KEY SHARE once on the experiments and goals it writes for, before writing
-- (`db::events::lock_experiments`, `db::events::lock_goals`): a DELETE of one of them
-- waits for the batch to commit, and a batch that finds one gone fails and is retried,
-- as the foreign key's violation did. The ON DELETE CASCADE becomes a statement trigger.
ALTER TABLE assignments DROP CONSTRAINT assignments_experiment_id_fkey;
ALTER TABLE goal_conversions DROP CONSTRAINT goal_conversions_goal_id_fkey;

CREATE FUNCTION delete_assignments_of_deleted_experiments() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM assignments a USING gone WHERE a.experiment_id = gone.id;
    RETURN NULL;
END
$$;

CREATE TRIGGER experiments_delete_assignments
    AFTER DELETE ON experiments
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION delete_assignments_of_deleted_experiments();

CREATE FUNCTION delete_conversions_of_deleted_goals() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM goal_conversions c USING gone WHERE c.goal_id = gone.id;
    RETURN NULL;
END
$$;

CREATE TRIGGER goals_delete_conversions
    AFTER DELETE ON goals
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION delete_conversions_of_deleted_goals();
