//! `funnels`, `funnel_steps`: an experiment's funnels, and the raw-event read their
//! results fold ([`stream_step_events`]). See `docs/funnels.md`.

use futures_util::Stream;
use sqlx::{PgConnection, PgPool};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FunnelRow {
    pub id: Uuid,
    pub experiment_id: Uuid,
    pub name: String,
    pub window_seconds: i32,
    pub created_at: OffsetDateTime,
}

/// A step with its goal: the name ingestion matches conversions by (`key`: the target of
/// a custom goal, the name of a url or click goal; `ingest::plan::GoalIndex`).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StepRow {
    pub funnel_id: Uuid,
    pub position: i16,
    pub goal_id: Uuid,
    pub goal_name: String,
    pub key: String,
}

/// A goal of an experiment, to check a funnel's steps against.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct GoalRef {
    pub id: Uuid,
    pub name: String,
}

const COLUMNS: &str = "id, experiment_id, name, window_seconds, created_at";

/// The experiment's goals among `ids`.
#[tracing::instrument(skip(conn))]
pub async fn goals_of(
    conn: &mut PgConnection,
    experiment_id: Uuid,
    ids: &[Uuid],
) -> sqlx::Result<Vec<GoalRef>> {
    sqlx::query_as::<_, GoalRef>(
        "SELECT id, name FROM goals WHERE experiment_id = $1 AND id = ANY($2)",
    )
    .bind(experiment_id)
    .bind(ids)
    .fetch_all(conn)
    .await
}

/// Inserts a funnel and its steps (`goals` in order).
#[tracing::instrument(skip(conn))]
pub async fn insert(
    conn: &mut PgConnection,
    experiment_id: Uuid,
    name: &str,
    window_seconds: i32,
    goals: &[Uuid],
) -> sqlx::Result<FunnelRow> {
    let row = sqlx::query_as::<_, FunnelRow>(&format!(
        "INSERT INTO funnels (id, experiment_id, name, window_seconds)
         VALUES ($1, $2, $3, $4) RETURNING {COLUMNS}"
    ))
    .bind(Uuid::new_v4())
    .bind(experiment_id)
    .bind(name)
    .bind(window_seconds)
    .fetch_one(&mut *conn)
    .await?;
    let positions: Vec<i16> = (0..goals.len())
        .map(|i| i16::try_from(i).unwrap_or(i16::MAX))
        .collect();
    sqlx::query(
        "INSERT INTO funnel_steps (funnel_id, position, goal_id)
         SELECT $1, p, g FROM UNNEST($2::smallint[], $3::uuid[]) AS s(p, g)",
    )
    .bind(row.id)
    .bind(&positions)
    .bind(goals)
    .execute(&mut *conn)
    .await?;
    Ok(row)
}

/// The experiment's funnels, oldest first.
#[tracing::instrument(skip(pool))]
pub async fn of_experiment(pool: &PgPool, experiment_id: Uuid) -> sqlx::Result<Vec<FunnelRow>> {
    sqlx::query_as::<_, FunnelRow>(&format!(
        "SELECT {COLUMNS} FROM funnels WHERE experiment_id = $1 ORDER BY created_at, id"
    ))
    .bind(experiment_id)
    .fetch_all(pool)
    .await
}

/// One funnel of the experiment.
#[tracing::instrument(skip(pool))]
pub async fn one(
    pool: &PgPool,
    experiment_id: Uuid,
    funnel_id: Uuid,
) -> sqlx::Result<Option<FunnelRow>> {
    sqlx::query_as::<_, FunnelRow>(&format!(
        "SELECT {COLUMNS} FROM funnels WHERE experiment_id = $1 AND id = $2"
    ))
    .bind(experiment_id)
    .bind(funnel_id)
    .fetch_optional(pool)
    .await
}

/// The steps of `funnels`, by funnel then position.
#[tracing::instrument(skip(pool))]
pub async fn steps_of(pool: &PgPool, funnels: &[Uuid]) -> sqlx::Result<Vec<StepRow>> {
    sqlx::query_as::<_, StepRow>(
        "SELECT s.funnel_id, s.position, s.goal_id, g.name AS goal_name,
                CASE WHEN g.trigger = 'custom' THEN g.target ELSE g.name END AS key
           FROM funnel_steps s JOIN goals g ON g.id = s.goal_id
          WHERE s.funnel_id = ANY($1)
          ORDER BY s.funnel_id, s.position",
    )
    .bind(funnels)
    .fetch_all(pool)
    .await
}

/// Deletes a funnel of the experiment; its name if there was one.
#[tracing::instrument(skip(conn))]
pub async fn delete(
    conn: &mut PgConnection,
    experiment_id: Uuid,
    funnel_id: Uuid,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("DELETE FROM funnels WHERE experiment_id = $1 AND id = $2 RETURNING name")
        .bind(experiment_id)
        .bind(funnel_id)
        .fetch_optional(conn)
        .await
}

/// Per arm: visitors assigned (one per (visitor, unit)), and the earliest assignment.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EntryRow {
    pub arm_id: Uuid,
    pub entered: i64,
    pub first: OffsetDateTime,
    pub last: OffsetDateTime,
}

#[tracing::instrument(skip(conn))]
pub async fn entries(conn: &mut PgConnection, experiment_id: Uuid) -> sqlx::Result<Vec<EntryRow>> {
    sqlx::query_as::<_, EntryRow>(
        "SELECT arm_id, count(*) AS entered, min(first_seen_at) AS first,
                max(first_seen_at) AS last
           FROM assignments WHERE experiment_id = $1 GROUP BY arm_id",
    )
    .bind(experiment_id)
    .fetch_all(conn)
    .await
}

/// One raw conversion of an assigned visitor on one of the funnel's goal names, inside
/// the window after the assignment.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StepEventRow {
    pub visitor_id: String,
    pub unit: Uuid,
    pub arm_id: Uuid,
    pub first_seen_at: OffsetDateTime,
    pub ts: OffsetDateTime,
    pub goal: String,
}

/// The query of [`stream_step_events`] (`$1` experiment, `$2` site, `$3` goal names,
/// `$4` window in seconds, `$5`..`$6` the partitions' days). The order groups each
/// (visitor, unit); `COLLATE "C"` sorts the visitor ids bytewise, far cheaper than the
/// database's locale and all the fold needs.
pub const STEP_EVENTS_SQL: &str =
    "SELECT a.visitor_id, a.unit, a.arm_id, a.first_seen_at, c.ts, c.goal
       FROM assignments a
       JOIN raw_conversions c
         ON c.site_id = $2 AND c.visitor_id = a.visitor_id
        AND c.goal = ANY($3)
        AND c.ts >= a.first_seen_at
        AND c.ts <= a.first_seen_at + make_interval(secs => $4)
        AND c.day BETWEEN $5 AND $6
      WHERE a.experiment_id = $1
      ORDER BY a.visitor_id COLLATE \"C\", a.unit, c.ts, c.item_id";

/// What [`stream_step_events`] reads.
#[derive(Debug, Clone)]
pub struct StepEventQuery<'a> {
    pub experiment_id: Uuid,
    pub site_id: Uuid,
    /// The steps' goal names (`StepRow::key`).
    pub keys: &'a [String],
    pub window_seconds: i32,
    /// The raw partitions' days to read: from the earliest assignment's day to the
    /// latest assignment plus the window (partition pruning).
    pub from_day: Date,
    pub to_day: Date,
}

/// The assigned visitors' raw conversions on the steps' goal names, inside their window,
/// ordered by (visitor, unit, ts, item id): one pass folds each (visitor, unit) in turn.
/// Visitors without such an event are not returned (they are counted by [`entries`]).
pub fn stream_step_events<'a>(
    conn: &'a mut PgConnection,
    q: &StepEventQuery<'a>,
) -> impl Stream<Item = sqlx::Result<StepEventRow>> + 'a {
    sqlx::query_as::<_, StepEventRow>(STEP_EVENTS_SQL)
        .bind(q.experiment_id)
        .bind(q.site_id)
        .bind(q.keys)
        .bind(f64::from(q.window_seconds))
        .bind(q.from_day)
        .bind(q.to_day)
        .fetch(conn)
}

/// A funnel's background computation (`funnel_runs`): what the results endpoint decides
/// on before computing.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RunRow {
    pub requested_at: Option<OffsetDateTime>,
    pub result: Option<serde_json::Value>,
    pub result_at: Option<OffsetDateTime>,
    pub failed_at: Option<OffsetDateTime>,
    pub failure: Option<String>,
}

/// The funnel's background computation, if it ever needed one.
#[tracing::instrument(skip(pool))]
pub async fn run_of(pool: &PgPool, funnel_id: Uuid) -> sqlx::Result<Option<RunRow>> {
    sqlx::query_as::<_, RunRow>(
        "SELECT requested_at, result, result_at, failed_at, failure
           FROM funnel_runs WHERE funnel_id = $1",
    )
    .bind(funnel_id)
    .fetch_optional(pool)
    .await
}

/// Whether another funnel of the experiment needed the background within `within`: it
/// is waiting for or in a computation there, or was computed or failed there since.
#[tracing::instrument(skip(pool))]
pub async fn sibling_needed_background(
    pool: &PgPool,
    experiment_id: Uuid,
    funnel_id: Uuid,
    within: std::time::Duration,
) -> sqlx::Result<bool> {
    let within_ms = i64::try_from(within.as_millis()).unwrap_or(i64::MAX);
    sqlx::query_scalar(
        "SELECT EXISTS (
            SELECT 1 FROM funnel_runs r
              JOIN funnels f ON f.id = r.funnel_id
             WHERE f.experiment_id = $1 AND r.funnel_id <> $2
               AND (r.requested_at IS NOT NULL
                    OR greatest(r.result_at, r.failed_at)
                       > now() - make_interval(secs => $3::float8 / 1000)))",
    )
    .bind(experiment_id)
    .bind(funnel_id)
    .bind(within_ms)
    .fetch_one(pool)
    .await
}

/// Asks for a background computation of the funnel, unless its organisation already has
/// `per_org` other funnels waiting for or in one (`None`: asked for nothing). One already
/// asked for keeps its time; returns when it was asked for. A transaction-scoped advisory
/// lock on the organisation makes the count and the insert one step, so two requests at
/// the same instant cannot both take the last place.
#[tracing::instrument(skip(pool))]
pub async fn request_run(
    pool: &PgPool,
    funnel_id: Uuid,
    org_id: Uuid,
    per_org: i64,
) -> sqlx::Result<Option<OffsetDateTime>> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('funnel_runs:' || $1::text, 0))")
        .bind(org_id)
        .execute(&mut *tx)
        .await?;
    let requested_at = sqlx::query_scalar(
        "WITH waiting AS (
            SELECT count(*) AS n
              FROM funnel_runs r
              JOIN funnels f ON f.id = r.funnel_id
              JOIN experiments e ON e.id = f.experiment_id
             WHERE e.org_id = $2 AND r.requested_at IS NOT NULL AND r.funnel_id <> $1
         )
         INSERT INTO funnel_runs (funnel_id, requested_at)
         SELECT $1, now() FROM waiting WHERE n < $3
         ON CONFLICT (funnel_id) DO UPDATE
            SET requested_at = coalesce(funnel_runs.requested_at, now())
         RETURNING requested_at",
    )
    .bind(funnel_id)
    .bind(org_id)
    .bind(per_org)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(requested_at)
}

/// A funnel to compute in the background, with its experiment and organisation: the
/// longest waiting one that no worker holds (or whose worker started it more than
/// `stale_after` ago and so has stopped). Marks it taken.
#[tracing::instrument(skip(pool))]
pub async fn claim_run(
    pool: &PgPool,
    stale_after: std::time::Duration,
) -> sqlx::Result<Option<(Uuid, Uuid, Uuid)>> {
    let stale_ms = i64::try_from(stale_after.as_millis()).unwrap_or(i64::MAX);
    sqlx::query_as(
        "WITH next AS (
            SELECT funnel_id FROM funnel_runs
             WHERE requested_at IS NOT NULL
               AND (started_at IS NULL
                    OR started_at < now() - make_interval(secs => $1::float8 / 1000))
             ORDER BY requested_at
             LIMIT 1
             FOR UPDATE SKIP LOCKED
         ), taken AS (
            UPDATE funnel_runs r SET started_at = now()
              FROM next WHERE r.funnel_id = next.funnel_id
            RETURNING r.funnel_id
         )
         SELECT taken.funnel_id, f.experiment_id, e.org_id
           FROM taken
           JOIN funnels f ON f.id = taken.funnel_id
           JOIN experiments e ON e.id = f.experiment_id",
    )
    .bind(stale_ms)
    .fetch_optional(pool)
    .await
}

/// Keeps a background computation's answer (`Ok`, as the API returns it) or why it
/// failed (`Err`), and marks the funnel as wanting nothing more.
#[tracing::instrument(skip(pool, outcome))]
pub async fn finish_run(
    pool: &PgPool,
    funnel_id: Uuid,
    outcome: Result<&serde_json::Value, &str>,
) -> sqlx::Result<()> {
    let (result, failure) = match outcome {
        Ok(result) => (Some(result), None),
        Err(failure) => (None, Some(failure)),
    };
    sqlx::query(
        "UPDATE funnel_runs
            SET requested_at = NULL, started_at = NULL,
                result    = coalesce($2, result),
                result_at = CASE WHEN $2 IS NULL THEN result_at ELSE now() END,
                failure   = $3,
                failed_at = CASE WHEN $3 IS NULL THEN NULL ELSE now() END
          WHERE funnel_id = $1",
    )
    .bind(funnel_id)
    .bind(result)
    .bind(failure)
    .execute(pool)
    .await?;
    Ok(())
}
