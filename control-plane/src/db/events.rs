//! SQL of ingestion: what a batch is checked against (sites by key, experiments with
//! their arms, live goals) and the set-wise writes of its items (seen ids, assignments,
//! conversions). Every write takes whole arrays (`UNNEST`) — one statement per kind of
//! row per batch, never one per item — and its input arrives sorted by key, so two
//! batches racing for the same rows lock them in the same order.

use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::Status;
use crate::domain::experiment::ExperimentKind;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SiteKeyRow {
    pub site_key: String,
    pub id: Uuid,
    /// The currency the site counts revenue in (`sites.currency`), if fixed yet.
    pub currency: Option<String>,
}

#[tracing::instrument(skip(pool, keys), fields(keys = keys.len()))]
pub async fn sites_by_key(pool: &PgPool, keys: &[String]) -> sqlx::Result<Vec<SiteKeyRow>> {
    sqlx::query_as::<_, SiteKeyRow>(
        "SELECT site_key, id, currency FROM sites WHERE site_key = ANY($1)",
    )
    .bind(keys)
    .fetch_all(pool)
    .await
}

/// The site's currency after fixing it to `code` if it had none. Two statements: the
/// update waits for a racing batch's and then leaves its value; the read after it (a
/// new snapshot) sees whichever won.
pub async fn fix_site_currency(
    pool: &PgPool,
    site_id: Uuid,
    code: &str,
) -> sqlx::Result<Option<String>> {
    sqlx::query("UPDATE sites SET currency = $2 WHERE id = $1 AND currency IS NULL")
        .bind(site_id)
        .bind(code)
        .execute(pool)
        .await?;
    sqlx::query_scalar("SELECT currency FROM sites WHERE id = $1")
        .bind(site_id)
        .fetch_optional(pool)
        .await
        .map(Option::flatten)
}

/// One arm of an experiment, with what exposure checks need about the experiment.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ExperimentArmRow {
    pub experiment_id: Uuid,
    pub site_id: Uuid,
    pub kind: ExperimentKind,
    pub status: Status,
    pub arm_id: Uuid,
    pub element_id: Option<Uuid>,
}

#[tracing::instrument(skip(pool, ids), fields(experiments = ids.len()))]
pub async fn experiment_arms(pool: &PgPool, ids: &[Uuid]) -> sqlx::Result<Vec<ExperimentArmRow>> {
    sqlx::query_as::<_, ExperimentArmRow>(
        "SELECT e.id AS experiment_id, e.site_id, e.kind, e.status, a.id AS arm_id, a.element_id
         FROM experiments e JOIN arms a ON a.experiment_id = e.id
         WHERE e.id = ANY($1)
         ORDER BY e.id, a.position",
    )
    .bind(ids)
    .fetch_all(pool)
    .await
}

/// A goal of a live (running or paused) experiment of one of the given sites.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LiveGoalRow {
    pub goal_id: Uuid,
    pub experiment_id: Uuid,
    pub site_id: Uuid,
    pub trigger: String,
    pub name: String,
    pub target: String,
}

#[tracing::instrument(skip(pool, site_ids), fields(sites = site_ids.len()))]
pub async fn live_goals(pool: &PgPool, site_ids: &[Uuid]) -> sqlx::Result<Vec<LiveGoalRow>> {
    sqlx::query_as::<_, LiveGoalRow>(
        "SELECT g.id AS goal_id, g.experiment_id, e.site_id, g.trigger, g.name, g.target
         FROM goals g JOIN experiments e ON e.id = g.experiment_id
         WHERE e.site_id = ANY($1) AND e.status IN ('running', 'paused')",
    )
    .bind(site_ids)
    .fetch_all(pool)
    .await
}

/// Records item ids as seen; returns those that were new (the others were already
/// processed, by an earlier batch or by a concurrent one that committed first).
#[tracing::instrument(skip(conn, ids), fields(items = ids.len()))]
pub async fn mark_seen(conn: &mut PgConnection, ids: &[String]) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar::<_, String>(
        "INSERT INTO ingest_seen_items (item_id)
         SELECT * FROM UNNEST($1::text[])
         ON CONFLICT DO NOTHING
         RETURNING item_id",
    )
    .bind(ids)
    .fetch_all(conn)
    .await
}

/// Deletes seen ids older than `before`; returns how many.
#[tracing::instrument(skip(pool))]
pub async fn prune_seen(pool: &PgPool, before: OffsetDateTime) -> sqlx::Result<u64> {
    Ok(
        sqlx::query("DELETE FROM ingest_seen_items WHERE seen_at < $1")
            .bind(before)
            .execute(pool)
            .await?
            .rows_affected(),
    )
}

/// Column arrays of first exposures to record (one entry per (experiment, visitor, unit),
/// sorted by that key).
#[derive(Debug, Default)]
pub struct NewAssignments {
    pub experiment_ids: Vec<Uuid>,
    pub visitor_ids: Vec<String>,
    pub units: Vec<Uuid>,
    pub arm_ids: Vec<Uuid>,
    pub propensities: Vec<f64>,
    pub snapshot_versions: Vec<i64>,
    pub seen_at: Vec<OffsetDateTime>,
    /// The first exposure's context, kept with the assignment (segments).
    pub context: crate::db::raw_events::ContextColumns,
}

/// The key of an assignment and its arm.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AssignmentRow {
    pub experiment_id: Uuid,
    pub visitor_id: String,
    pub unit: Uuid,
    pub arm_id: Uuid,
    /// The first exposure's context: a conversion counts in these segments.
    #[sqlx(flatten)]
    pub context: crate::db::raw_events::StoredContext,
}

/// The context columns of an assignment, as [`AssignmentRow`] reads them.
const CONTEXT_COLUMNS: &str =
    "country, device, browser, source, landing, prior_visits, prior_conversions";

/// Takes `FOR KEY SHARE` on the experiments `ids` (sorted, distinct) for the rest of the
/// transaction and returns those that exist: a concurrent DELETE of one waits for the
/// commit, so no assignment is written for an experiment already deleted
/// (`migrations/0030_ingest_without_row_foreign_keys.sql`: one lock per batch instead of
/// a foreign-key check per row).
pub async fn lock_experiments(conn: &mut PgConnection, ids: &[Uuid]) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar("SELECT id FROM experiments WHERE id = ANY($1) ORDER BY id FOR KEY SHARE")
        .bind(ids)
        .fetch_all(conn)
        .await
}

/// As [`lock_experiments`], for the goals conversions are written for.
pub async fn lock_goals(conn: &mut PgConnection, ids: &[Uuid]) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar("SELECT id FROM goals WHERE id = ANY($1) ORDER BY id FOR KEY SHARE")
        .bind(ids)
        .fetch_all(conn)
        .await
}

/// Inserts the assignments whose key is free; returns the inserted ones. A key already
/// taken keeps its arm (the first exposure fixes it).
#[tracing::instrument(skip(conn, rows), fields(rows = rows.arm_ids.len()))]
pub async fn insert_assignments(
    conn: &mut PgConnection,
    rows: &NewAssignments,
) -> sqlx::Result<Vec<AssignmentRow>> {
    let c = &rows.context;
    sqlx::query_as::<_, AssignmentRow>(&format!(
        "INSERT INTO assignments
             (experiment_id, visitor_id, unit, arm_id, propensity, snapshot_version, first_seen_at,
              {CONTEXT_COLUMNS})
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::uuid[], $4::uuid[], $5::float8[],
                              $6::int8[], $7::timestamptz[], $8::text[], $9::text[], $10::text[],
                              $11::text[], $12::text[], $13::int4[], $14::int4[])
         ON CONFLICT DO NOTHING
         RETURNING experiment_id, visitor_id, unit, arm_id, {CONTEXT_COLUMNS}"
    ))
    .bind(&rows.experiment_ids)
    .bind(&rows.visitor_ids)
    .bind(&rows.units)
    .bind(&rows.arm_ids)
    .bind(&rows.propensities)
    .bind(&rows.snapshot_versions)
    .bind(&rows.seen_at)
    .bind(&c.countries)
    .bind(&c.devices)
    .bind(&c.browsers)
    .bind(&c.sources)
    .bind(&c.landings)
    .bind(&c.prior_visits)
    .bind(&c.prior_conversions)
    .fetch_all(conn)
    .await
}

/// Every assignment of the given (experiment, visitor) pairs, in all their units.
#[tracing::instrument(skip(conn, experiment_ids, visitor_ids), fields(pairs = experiment_ids.len()))]
pub async fn assignments_of(
    conn: &mut PgConnection,
    experiment_ids: &[Uuid],
    visitor_ids: &[String],
) -> sqlx::Result<Vec<AssignmentRow>> {
    sqlx::query_as::<_, AssignmentRow>(
        "SELECT a.experiment_id, a.visitor_id, a.unit, a.arm_id, a.country, a.device, a.browser,
                a.source, a.landing, a.prior_visits, a.prior_conversions
         FROM UNNEST($1::uuid[], $2::text[]) AS k (experiment_id, visitor_id)
         JOIN assignments a ON a.experiment_id = k.experiment_id AND a.visitor_id = k.visitor_id",
    )
    .bind(experiment_ids)
    .bind(visitor_ids)
    .fetch_all(conn)
    .await
}

/// Column arrays of conversions to record, one entry per (goal, visitor, unit) (values of
/// the batch already summed), sorted by that key.
#[derive(Debug, Default)]
pub struct NewConversions {
    pub goal_ids: Vec<Uuid>,
    pub visitor_ids: Vec<String>,
    pub units: Vec<Uuid>,
    pub experiment_ids: Vec<Uuid>,
    pub arm_ids: Vec<Uuid>,
    /// What unsigned (browser) calls reported: held to the site's per-visitor cap.
    pub unsigned_values: Vec<f64>,
    /// What signed server calls reported: not capped.
    pub signed_values: Vec<f64>,
    pub at: Vec<OffsetDateTime>,
}

/// The state of a visitor's conversion after the upsert.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ConversionRow {
    pub goal_id: Uuid,
    pub visitor_id: String,
    pub unit: Uuid,
    pub arm_id: Uuid,
    /// The visitor's revenue total on the goal, this batch included.
    pub revenue: f64,
    /// The total before this batch (0 for a first conversion).
    pub prev_revenue: f64,
    /// True when this batch is the visitor's first conversion on the goal.
    pub inserted: bool,
}

/// Records first conversions and adds values to existing ones. `xmax = 0` tells an
/// inserted row from an updated one (PostgreSQL sets xmax on the updated tuple version);
/// `prev_revenue` is written from the old row in the same `SET` (right-hand sides see
/// the row before the update), so the revenue moments can be updated exactly even when
/// two batches race for the same visitor (the second waits for the first's row lock and
/// then updates the committed row).
///
/// The per-visitor revenue cap: the unsigned part a visitor reports on a goal adds up to
/// at most its site's `revenue_cap` (read here, in the same statement, and kept on the row
/// as the cap in force); what goes over is dropped. The signed part is added whole. On a
/// conflict `EXCLUDED.unsigned_revenue` is this batch's unsigned part already clamped to
/// the cap, and only the room left under the cap is added.
#[tracing::instrument(skip(conn, rows), fields(rows = rows.goal_ids.len()))]
pub async fn upsert_conversions(
    conn: &mut PgConnection,
    rows: &NewConversions,
) -> sqlx::Result<Vec<ConversionRow>> {
    sqlx::query_as::<_, ConversionRow>(
        "INSERT INTO goal_conversions AS c
             (goal_id, visitor_id, unit, experiment_id, arm_id, revenue, unsigned_revenue,
              signed_revenue, revenue_cap, first_at)
         SELECT u.goal_id, u.visitor_id, u.unit, u.experiment_id, u.arm_id,
                u.signed + LEAST(u.unsigned, s.revenue_cap), LEAST(u.unsigned, s.revenue_cap),
                u.signed, s.revenue_cap, u.at
           FROM UNNEST($1::uuid[], $2::text[], $3::uuid[], $4::uuid[], $5::uuid[],
                       $6::float8[], $7::float8[], $8::timestamptz[])
                AS u (goal_id, visitor_id, unit, experiment_id, arm_id, unsigned, signed, at)
           JOIN experiments e ON e.id = u.experiment_id
           JOIN sites s ON s.id = e.site_id
         ON CONFLICT (goal_id, visitor_id, unit) DO UPDATE
             SET prev_revenue = c.revenue,
                 revenue = c.revenue + EXCLUDED.signed_revenue
                     + LEAST(EXCLUDED.unsigned_revenue,
                             GREATEST(EXCLUDED.revenue_cap - c.unsigned_revenue, 0)),
                 unsigned_revenue = c.unsigned_revenue
                     + LEAST(EXCLUDED.unsigned_revenue,
                             GREATEST(EXCLUDED.revenue_cap - c.unsigned_revenue, 0)),
                 signed_revenue = c.signed_revenue + EXCLUDED.signed_revenue,
                 revenue_cap = EXCLUDED.revenue_cap
         RETURNING c.goal_id, c.visitor_id, c.unit, c.arm_id, c.revenue, c.prev_revenue,
                   (c.xmax = 0) AS inserted",
    )
    .bind(&rows.goal_ids)
    .bind(&rows.visitor_ids)
    .bind(&rows.units)
    .bind(&rows.experiment_ids)
    .bind(&rows.arm_ids)
    .bind(&rows.unsigned_values)
    .bind(&rows.signed_values)
    .bind(&rows.at)
    .fetch_all(conn)
    .await
}

/// Column arrays of conversions waiting for their visitor's assignment.
#[derive(Debug, Default)]
pub struct NewPending {
    pub item_ids: Vec<String>,
    pub goal_ids: Vec<Uuid>,
    pub experiment_ids: Vec<Uuid>,
    pub visitor_ids: Vec<String>,
    pub values: Vec<f64>,
    /// Whether each came in a signed server call (kept for the revenue cap).
    pub signed: Vec<bool>,
    pub at: Vec<OffsetDateTime>,
}

/// Parks conversions whose visitor holds no arm yet in the goal's experiment.
#[tracing::instrument(skip(conn, rows), fields(rows = rows.item_ids.len()))]
pub async fn insert_pending(conn: &mut PgConnection, rows: &NewPending) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO pending_conversions
             (item_id, goal_id, experiment_id, visitor_id, value, signed, at)
         SELECT * FROM UNNEST($1::text[], $2::uuid[], $3::uuid[], $4::text[], $5::float8[],
                              $6::bool[], $7::timestamptz[])
         ON CONFLICT DO NOTHING",
    )
    .bind(&rows.item_ids)
    .bind(&rows.goal_ids)
    .bind(&rows.experiment_ids)
    .bind(&rows.visitor_ids)
    .bind(&rows.values)
    .bind(&rows.signed)
    .bind(&rows.at)
    .execute(conn)
    .await?;
    Ok(())
}

/// A parked conversion whose visitor now holds an arm in its experiment.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PendingRow {
    pub goal_id: Uuid,
    pub experiment_id: Uuid,
    pub visitor_id: String,
    pub value: f64,
    pub signed: bool,
    pub at: OffsetDateTime,
}

/// A parked conversion's key and content.
#[derive(Debug, Clone, sqlx::FromRow)]
struct ParkedRow {
    item_id: String,
    goal_id: Uuid,
    experiment_id: Uuid,
    visitor_id: String,
    value: f64,
    signed: bool,
    at: OffsetDateTime,
}

/// Whether any of `visitor_ids` has a parked conversion (one index probe per visitor, no
/// lock, outside a transaction): the usual answer is no, and then
/// [`take_attributable_pending`] need not open one.
pub async fn any_pending(pool: &PgPool, visitor_ids: &[String]) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM UNNEST($1::text[]) AS v (visitor_id)
                          JOIN pending_conversions p ON p.visitor_id = v.visitor_id)",
    )
    .bind(visitor_ids)
    .fetch_one(pool)
    .await
}

/// Removes and returns the parked conversions of `visitor_ids` whose visitor now has an
/// assignment in the goal's experiment.
///
/// Three small statements rather than one `DELETE … WHERE EXISTS`: the usual case is no
/// parked row at all, answered by the first index lookup, and the assignment check goes
/// through `assignments`' primary key instead of a plan that may scan the whole table.
/// `FOR UPDATE` (not `SKIP LOCKED`) makes a concurrent sweep wait and then re-check, so a
/// row is taken exactly once and never skipped.
#[tracing::instrument(skip(conn, visitor_ids), fields(visitors = visitor_ids.len()))]
pub async fn take_attributable_pending(
    conn: &mut PgConnection,
    visitor_ids: &[String],
) -> sqlx::Result<Vec<PendingRow>> {
    let parked = sqlx::query_as::<_, ParkedRow>(
        "SELECT p.item_id, p.goal_id, p.experiment_id, p.visitor_id, p.value, p.signed, p.at
           FROM UNNEST($1::text[]) AS v (visitor_id)
           JOIN pending_conversions p ON p.visitor_id = v.visitor_id
            FOR UPDATE OF p",
    )
    .bind(visitor_ids)
    .fetch_all(&mut *conn)
    .await?;
    if parked.is_empty() {
        return Ok(Vec::new());
    }
    let (exp, vis): (Vec<Uuid>, Vec<String>) = parked
        .iter()
        .map(|r| (r.experiment_id, r.visitor_id.clone()))
        .unzip();
    let held: std::collections::HashSet<(Uuid, String)> = assignments_of(conn, &exp, &vis)
        .await?
        .into_iter()
        .map(|a| (a.experiment_id, a.visitor_id))
        .collect();
    let ready: Vec<ParkedRow> = parked
        .into_iter()
        .filter(|r| held.contains(&(r.experiment_id, r.visitor_id.clone())))
        .collect();
    if ready.is_empty() {
        return Ok(Vec::new());
    }
    let (items, goals): (Vec<String>, Vec<Uuid>) =
        ready.iter().map(|r| (r.item_id.clone(), r.goal_id)).unzip();
    sqlx::query(
        "DELETE FROM pending_conversions p
          USING UNNEST($1::text[], $2::uuid[]) AS k (item_id, goal_id)
          WHERE p.item_id = k.item_id AND p.goal_id = k.goal_id",
    )
    .bind(&items)
    .bind(&goals)
    .execute(&mut *conn)
    .await?;
    Ok(ready
        .into_iter()
        .map(|r| PendingRow {
            goal_id: r.goal_id,
            experiment_id: r.experiment_id,
            visitor_id: r.visitor_id,
            value: r.value,
            signed: r.signed,
            at: r.at,
        })
        .collect())
}

/// Deletes parked conversions older than `before` (they never found an assignment).
#[tracing::instrument(skip(pool))]
pub async fn prune_pending(pool: &PgPool, before: OffsetDateTime) -> sqlx::Result<u64> {
    Ok(sqlx::query("DELETE FROM pending_conversions WHERE at < $1")
        .bind(before)
        .execute(pool)
        .await?
        .rows_affected())
}
