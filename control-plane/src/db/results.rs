//! SQL of results: an experiment in the caller's organisation, its goals, variants, and
//! per-arm aggregates (totals and daily buckets). Every read is O(arms) or O(arms × days):
//! nothing here touches raw events.

use sqlx::PgPool;
use sqlx::types::Json;
use time::Date;
use uuid::Uuid;

use crate::domain::Status;
use crate::domain::experiment::{AllocatorSpec, ExperimentKind, Metric};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ExperimentRow {
    pub id: Uuid,
    pub site_id: Uuid,
    pub name: String,
    pub kind: ExperimentKind,
    pub status: Status,
    pub allocator: Json<AllocatorSpec>,
}

/// The experiment if it belongs to `org_id` (None for another organisation's id too).
#[tracing::instrument(skip(pool))]
pub async fn experiment_in_org(
    pool: &PgPool,
    org_id: Uuid,
    experiment_id: Uuid,
) -> sqlx::Result<Option<ExperimentRow>> {
    sqlx::query_as::<_, ExperimentRow>(
        "SELECT id, site_id, name, kind, status, allocator FROM experiments WHERE id = $1 AND org_id = $2",
    )
    .bind(experiment_id)
    .bind(org_id)
    .fetch_optional(pool)
    .await
}

/// The live (not draft) experiments of a site, newest first (at most `limit`).
#[tracing::instrument(skip(pool))]
pub async fn live_experiments_of_site(
    pool: &PgPool,
    site_id: Uuid,
    limit: i64,
) -> sqlx::Result<Vec<ExperimentRow>> {
    sqlx::query_as::<_, ExperimentRow>(
        "SELECT id, site_id, name, kind, status, allocator FROM experiments
         WHERE site_id = $1 AND status <> 'draft' ORDER BY created_at DESC LIMIT $2",
    )
    .bind(site_id)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Those of `ids` that are live (not drafts) experiments of `org_id`, in the order of
/// `ids`; other organisations' and unknown ids are simply not there.
#[tracing::instrument(skip(pool, ids), fields(ids = ids.len()))]
pub async fn live_experiments_in_org(
    pool: &PgPool,
    org_id: Uuid,
    ids: &[Uuid],
) -> sqlx::Result<Vec<ExperimentRow>> {
    sqlx::query_as::<_, ExperimentRow>(
        "SELECT id, site_id, name, kind, status, allocator FROM experiments
         WHERE org_id = $1 AND id = ANY($2) AND status <> 'draft'
         ORDER BY array_position($2, id)",
    )
    .bind(org_id)
    .bind(ids)
    .fetch_all(pool)
    .await
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct GoalRow {
    pub id: Uuid,
    pub name: String,
    pub metric: Metric,
    pub is_primary: bool,
    pub guardrail: bool,
    pub guardrail_margin: Option<f64>,
    pub guardrail_direction: Option<String>,
}

const GOAL_COLUMNS: &str =
    "id, name, metric, is_primary, guardrail, guardrail_margin, guardrail_direction";

/// The goal `goal_id` of the experiment, or its primary goal when `goal_id` is None.
#[tracing::instrument(skip(pool))]
pub async fn goal_of(
    pool: &PgPool,
    experiment_id: Uuid,
    goal_id: Option<Uuid>,
) -> sqlx::Result<Option<GoalRow>> {
    sqlx::query_as::<_, GoalRow>(&format!(
        "SELECT {GOAL_COLUMNS} FROM goals
         WHERE experiment_id = $1 AND (id = $2 OR ($2 IS NULL AND is_primary))"
    ))
    .bind(experiment_id)
    .bind(goal_id)
    .fetch_optional(pool)
    .await
}

/// The experiment's guardrail goals, by name (the order of every guardrail list in the
/// results, and of `guardrail` indexes in a `guardrail_harmed` recommendation).
#[tracing::instrument(skip(pool))]
pub async fn guardrails_of(pool: &PgPool, experiment_id: Uuid) -> sqlx::Result<Vec<GoalRow>> {
    sqlx::query_as::<_, GoalRow>(&format!(
        "SELECT {GOAL_COLUMNS} FROM goals WHERE experiment_id = $1 AND guardrail
         ORDER BY name, id"
    ))
    .bind(experiment_id)
    .fetch_all(pool)
    .await
}

/// An arm with its aggregates on one goal (zeros before any data).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ArmAggregateRow {
    pub arm_id: Uuid,
    pub element_id: Option<Uuid>,
    pub name: String,
    pub variant_ids: Vec<Uuid>,
    pub is_control: bool,
    pub visitors: i64,
    pub propensity_sum: f64,
    pub expected_visitors: f64,
    pub conflicting_exposures: i64,
    pub converters: i64,
    pub revenue_n: i64,
    pub revenue_sum: f64,
    pub revenue_sumsq: f64,
}

/// The currency the site counts revenue in (`sites.currency`), if fixed yet.
#[tracing::instrument(skip(pool))]
pub async fn site_currency(pool: &PgPool, site_id: Uuid) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT currency FROM sites WHERE id = $1")
        .bind(site_id)
        .fetch_optional(pool)
        .await
        .map(Option::flatten)
}

#[tracing::instrument(skip(pool))]
pub async fn arm_aggregates(
    pool: &PgPool,
    experiment_id: Uuid,
    goal_id: Uuid,
) -> sqlx::Result<Vec<ArmAggregateRow>> {
    sqlx::query_as::<_, ArmAggregateRow>(
        "SELECT a.id AS arm_id, a.element_id, a.name, a.variant_ids, a.is_control,
                COALESCE(s.visitors, 0) AS visitors,
                COALESCE(s.propensity_sum, 0) AS propensity_sum,
                COALESCE(s.expected_visitors, 0) AS expected_visitors,
                COALESCE(s.conflicting_exposures, 0) AS conflicting_exposures,
                COALESCE(g.converters, 0) AS converters,
                COALESCE(g.revenue_n, 0) AS revenue_n,
                COALESCE(g.revenue_sum, 0) AS revenue_sum,
                COALESCE(g.revenue_sumsq, 0) AS revenue_sumsq
         FROM arms a
         LEFT JOIN arm_stats s ON s.arm_id = a.id
         LEFT JOIN arm_goal_stats g ON g.arm_id = a.id AND g.goal_id = $2
         WHERE a.experiment_id = $1
         ORDER BY a.position",
    )
    .bind(experiment_id)
    .bind(goal_id)
    .fetch_all(pool)
    .await
}

/// A variant with its element's position and name (main effects, fixed-split shares).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct VariantRow {
    pub id: Uuid,
    pub element_id: Uuid,
    pub element_position: i32,
    pub element_name: String,
    pub name: String,
    pub is_control: bool,
    pub weight: f64,
    /// Whether its changes include custom code (`custom_css` / `custom_js`).
    pub custom_code: bool,
}

#[tracing::instrument(skip(pool))]
pub async fn variants_of(pool: &PgPool, experiment_id: Uuid) -> sqlx::Result<Vec<VariantRow>> {
    sqlx::query_as::<_, VariantRow>(
        "SELECT v.id, v.element_id, e.position AS element_position, e.name AS element_name,
                v.name, v.is_control, v.weight,
                EXISTS (SELECT 1 FROM jsonb_array_elements(v.changes) c
                        WHERE c->'action'->>'type' IN ('custom_css', 'custom_js')) AS custom_code
         FROM variants v JOIN elements e ON e.id = v.element_id
         WHERE v.experiment_id = $1
         ORDER BY e.position, v.position",
    )
    .bind(experiment_id)
    .fetch_all(pool)
    .await
}

/// Previously reported always-valid p-values of a goal's subjects in a scope.
#[tracing::instrument(skip(pool))]
pub async fn previous_p_values(
    pool: &PgPool,
    goal_id: Uuid,
    scope: &str,
) -> sqlx::Result<Vec<(Uuid, f64)>> {
    sqlx::query_as::<_, (Uuid, f64)>(
        "SELECT subject_id, p_value FROM sequential_p_values WHERE goal_id = $1 AND scope = $2",
    )
    .bind(goal_id)
    .bind(scope)
    .fetch_all(pool)
    .await
}

/// Keeps the running minimum of each subject's always-valid p-value.
#[tracing::instrument(skip(pool, subjects, p_values))]
pub async fn store_p_values(
    pool: &PgPool,
    goal_id: Uuid,
    scope: &str,
    subjects: &[Uuid],
    p_values: &[f64],
) -> sqlx::Result<()> {
    if subjects.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO sequential_p_values AS s (goal_id, scope, subject_id, p_value)
         SELECT $1, $2, t.subject_id, t.p FROM UNNEST($3::uuid[], $4::float8[]) AS t (subject_id, p)
         ON CONFLICT (goal_id, scope, subject_id) DO UPDATE
             SET p_value = LEAST(s.p_value, EXCLUDED.p_value)",
    )
    .bind(goal_id)
    .bind(scope)
    .bind(subjects)
    .bind(p_values)
    .execute(pool)
    .await?;
    Ok(())
}

/// One arm's figures on one day.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DailyRow {
    pub arm_id: Uuid,
    pub day: Date,
    pub visitors: i64,
    pub converters: i64,
    pub revenue: f64,
}

/// Daily new visitors and new converters on a goal, per arm, ordered by arm and day.
#[tracing::instrument(skip(pool))]
pub async fn daily(
    pool: &PgPool,
    experiment_id: Uuid,
    goal_id: Uuid,
) -> sqlx::Result<Vec<DailyRow>> {
    sqlx::query_as::<_, DailyRow>(
        "SELECT COALESCE(v.arm_id, c.arm_id) AS arm_id, COALESCE(v.day, c.day) AS day,
                COALESCE(v.visitors, 0) AS visitors, COALESCE(c.converters, 0) AS converters,
                COALESCE(c.revenue_sum, 0) AS revenue
         FROM (SELECT arm_id, day, visitors FROM arm_daily WHERE experiment_id = $1) v
         FULL JOIN (SELECT arm_id, day, converters, revenue_sum FROM arm_goal_daily
                    WHERE experiment_id = $1 AND goal_id = $2) c
           ON c.arm_id = v.arm_id AND c.day = v.day
         ORDER BY 1, 2",
    )
    .bind(experiment_id)
    .bind(goal_id)
    .fetch_all(pool)
    .await
}
