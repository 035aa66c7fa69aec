//! SQL of segment statistics: per (arm, dimension, value, day) new visitors
//! (`segment_daily`) and per (arm, goal, dimension, value, day) converters and revenue
//! moments (`segment_goal_daily`), written by ingestion with the same deltas as
//! `arm_daily` / `arm_goal_daily` (one `UNNEST` upsert per table per batch, keys sorted),
//! and read, summed over days, by the segments endpoint through the primary key's
//! prefix. O(arms × values × days): never raw events.
//!
//! The internal dimension `cuped_stratum` (`ingest::plan::CUPED_STRATUM`) also carries
//! the covariate moments of variance reduction (migration 0026): zero on every other
//! dimension's rows. [`cuped_cells`] reads them for the results.

use sqlx::{PgConnection, PgPool};
use time::Date;
use uuid::Uuid;

/// New visitors per (arm, dimension, value, day), one entry per key, sorted by it.
#[derive(Debug, Default)]
pub struct SegmentDailyDeltas {
    pub arm_ids: Vec<Uuid>,
    pub dimensions: Vec<&'static str>,
    pub values: Vec<String>,
    pub days: Vec<Date>,
    pub experiment_ids: Vec<Uuid>,
    pub visitors: Vec<i64>,
    /// `Σx₁`, `Σx₂`, `Σx₁²`, `Σx₂²`, `Σx₁x₂` (0 outside `cuped_stratum`).
    pub x1_sum: Vec<f64>,
    pub x2_sum: Vec<f64>,
    pub x1_sumsq: Vec<f64>,
    pub x2_sumsq: Vec<f64>,
    pub x1x2_sum: Vec<f64>,
}

#[tracing::instrument(skip_all, fields(rows = d.arm_ids.len()))]
pub async fn add_segment_daily(
    conn: &mut PgConnection,
    d: &SegmentDailyDeltas,
) -> sqlx::Result<()> {
    if d.arm_ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO segment_daily AS s (arm_id, dimension, value, day, experiment_id, visitors,
                                         x1_sum, x2_sum, x1_sumsq, x2_sumsq, x1x2_sum)
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::date[], $5::uuid[], $6::int8[],
                              $7::float8[], $8::float8[], $9::float8[], $10::float8[], $11::float8[])
         ON CONFLICT (arm_id, dimension, value, day) DO UPDATE SET
             visitors = s.visitors + EXCLUDED.visitors,
             x1_sum = s.x1_sum + EXCLUDED.x1_sum,
             x2_sum = s.x2_sum + EXCLUDED.x2_sum,
             x1_sumsq = s.x1_sumsq + EXCLUDED.x1_sumsq,
             x2_sumsq = s.x2_sumsq + EXCLUDED.x2_sumsq,
             x1x2_sum = s.x1x2_sum + EXCLUDED.x1x2_sum",
    )
    .bind(&d.arm_ids)
    .bind(&d.dimensions)
    .bind(&d.values)
    .bind(&d.days)
    .bind(&d.experiment_ids)
    .bind(&d.visitors)
    .bind(&d.x1_sum)
    .bind(&d.x2_sum)
    .bind(&d.x1_sumsq)
    .bind(&d.x2_sumsq)
    .bind(&d.x1x2_sum)
    .execute(conn)
    .await?;
    Ok(())
}

/// Converters and revenue moments per (arm, goal, dimension, value, day), sorted by key.
#[derive(Debug, Default)]
pub struct SegmentGoalDeltas {
    pub arm_ids: Vec<Uuid>,
    pub goal_ids: Vec<Uuid>,
    pub dimensions: Vec<&'static str>,
    pub values: Vec<String>,
    pub days: Vec<Date>,
    pub experiment_ids: Vec<Uuid>,
    pub converters: Vec<i64>,
    pub revenue_n: Vec<i64>,
    pub revenue_sum: Vec<f64>,
    pub revenue_sumsq: Vec<f64>,
    /// `Σx₁·converted`, `Σx₂·converted`, `Σx₁·revenue`, `Σx₂·revenue` (0 outside
    /// `cuped_stratum`).
    pub converters_x1: Vec<f64>,
    pub converters_x2: Vec<f64>,
    pub revenue_x1: Vec<f64>,
    pub revenue_x2: Vec<f64>,
}

#[tracing::instrument(skip_all, fields(rows = d.arm_ids.len()))]
pub async fn add_segment_goal_daily(
    conn: &mut PgConnection,
    d: &SegmentGoalDeltas,
) -> sqlx::Result<()> {
    if d.arm_ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO segment_goal_daily AS s
             (arm_id, goal_id, dimension, value, day, experiment_id, converters, revenue_n,
              revenue_sum, revenue_sumsq, converters_x1, converters_x2, revenue_x1, revenue_x2)
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::date[],
                              $6::uuid[], $7::int8[], $8::int8[], $9::float8[], $10::float8[],
                              $11::float8[], $12::float8[], $13::float8[], $14::float8[])
         ON CONFLICT (arm_id, goal_id, dimension, value, day) DO UPDATE SET
             converters = s.converters + EXCLUDED.converters,
             revenue_n = s.revenue_n + EXCLUDED.revenue_n,
             revenue_sum = s.revenue_sum + EXCLUDED.revenue_sum,
             revenue_sumsq = s.revenue_sumsq + EXCLUDED.revenue_sumsq,
             converters_x1 = s.converters_x1 + EXCLUDED.converters_x1,
             converters_x2 = s.converters_x2 + EXCLUDED.converters_x2,
             revenue_x1 = s.revenue_x1 + EXCLUDED.revenue_x1,
             revenue_x2 = s.revenue_x2 + EXCLUDED.revenue_x2",
    )
    .bind(&d.arm_ids)
    .bind(&d.goal_ids)
    .bind(&d.dimensions)
    .bind(&d.values)
    .bind(&d.days)
    .bind(&d.experiment_ids)
    .bind(&d.converters)
    .bind(&d.revenue_n)
    .bind(&d.revenue_sum)
    .bind(&d.revenue_sumsq)
    .bind(&d.converters_x1)
    .bind(&d.converters_x2)
    .bind(&d.revenue_x1)
    .bind(&d.revenue_x2)
    .execute(conn)
    .await?;
    Ok(())
}

/// One arm's totals in one segment (summed over days).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct SegmentCell {
    pub arm_id: Uuid,
    pub value: String,
    pub visitors: i64,
    pub converters: i64,
    pub revenue_sum: f64,
    pub revenue_sumsq: f64,
}

/// Per (arm, value) of `dimension`: visitors, and converters and revenue moments on
/// `goal_id`, for the arms `arm_ids`, ordered by value then arm. A value with converters
/// but no visitor row cannot happen (a conversion counts in its assignment's segment,
/// whose first exposure counted the visitor there), but is kept if it did.
#[tracing::instrument(skip(pool, arm_ids))]
pub async fn segment_cells(
    pool: &PgPool,
    arm_ids: &[Uuid],
    goal_id: Uuid,
    dimension: &str,
) -> sqlx::Result<Vec<SegmentCell>> {
    sqlx::query_as::<_, SegmentCell>(
        "SELECT COALESCE(v.arm_id, g.arm_id) AS arm_id, COALESCE(v.value, g.value) AS value,
                COALESCE(v.visitors, 0)::int8 AS visitors,
                COALESCE(g.converters, 0)::int8 AS converters,
                COALESCE(g.revenue_sum, 0) AS revenue_sum,
                COALESCE(g.revenue_sumsq, 0) AS revenue_sumsq
           FROM (SELECT arm_id, value, SUM(visitors) AS visitors
                   FROM segment_daily
                  WHERE arm_id = ANY($1) AND dimension = $3
                  GROUP BY arm_id, value) v
           FULL JOIN
                (SELECT arm_id, value, SUM(converters) AS converters,
                        SUM(revenue_sum) AS revenue_sum, SUM(revenue_sumsq) AS revenue_sumsq
                   FROM segment_goal_daily
                  WHERE arm_id = ANY($1) AND goal_id = $2 AND dimension = $3
                  GROUP BY arm_id, value) g
             ON g.arm_id = v.arm_id AND g.value = v.value
          ORDER BY 2, 1",
    )
    .bind(arm_ids)
    .bind(goal_id)
    .bind(dimension)
    .fetch_all(pool)
    .await
}

/// One arm's moments in one CUPED stratum (summed over days): visitors and covariate
/// sums, and on the goal converters, revenue moments and their products with the
/// covariates.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct CupedCell {
    pub arm_id: Uuid,
    pub stratum: String,
    pub visitors: i64,
    pub x1_sum: f64,
    pub x2_sum: f64,
    pub x1_sumsq: f64,
    pub x2_sumsq: f64,
    pub x1x2_sum: f64,
    pub converters: i64,
    pub revenue_sum: f64,
    pub revenue_sumsq: f64,
    pub converters_x1: f64,
    pub converters_x2: f64,
    pub revenue_x1: f64,
    pub revenue_x2: f64,
}

/// Per (arm, stratum) of the internal `cuped_stratum` dimension, the moments variance
/// reduction needs on `goal_id`, for the arms `arm_ids`, ordered by stratum then arm.
/// Same access path as [`segment_cells`]: O(arms × strata × days).
#[tracing::instrument(skip(pool, arm_ids))]
pub async fn cuped_cells(
    pool: &PgPool,
    arm_ids: &[Uuid],
    goal_id: Uuid,
) -> sqlx::Result<Vec<CupedCell>> {
    sqlx::query_as::<_, CupedCell>(
        "SELECT COALESCE(v.arm_id, g.arm_id) AS arm_id, COALESCE(v.value, g.value) AS stratum,
                COALESCE(v.visitors, 0)::int8 AS visitors,
                COALESCE(v.x1_sum, 0) AS x1_sum, COALESCE(v.x2_sum, 0) AS x2_sum,
                COALESCE(v.x1_sumsq, 0) AS x1_sumsq, COALESCE(v.x2_sumsq, 0) AS x2_sumsq,
                COALESCE(v.x1x2_sum, 0) AS x1x2_sum,
                COALESCE(g.converters, 0)::int8 AS converters,
                COALESCE(g.revenue_sum, 0) AS revenue_sum,
                COALESCE(g.revenue_sumsq, 0) AS revenue_sumsq,
                COALESCE(g.converters_x1, 0) AS converters_x1,
                COALESCE(g.converters_x2, 0) AS converters_x2,
                COALESCE(g.revenue_x1, 0) AS revenue_x1,
                COALESCE(g.revenue_x2, 0) AS revenue_x2
           FROM (SELECT arm_id, value, SUM(visitors) AS visitors, SUM(x1_sum) AS x1_sum,
                        SUM(x2_sum) AS x2_sum, SUM(x1_sumsq) AS x1_sumsq,
                        SUM(x2_sumsq) AS x2_sumsq, SUM(x1x2_sum) AS x1x2_sum
                   FROM segment_daily
                  WHERE arm_id = ANY($1) AND dimension = 'cuped_stratum'
                  GROUP BY arm_id, value) v
           FULL JOIN
                (SELECT arm_id, value, SUM(converters) AS converters,
                        SUM(revenue_sum) AS revenue_sum, SUM(revenue_sumsq) AS revenue_sumsq,
                        SUM(converters_x1) AS converters_x1, SUM(converters_x2) AS converters_x2,
                        SUM(revenue_x1) AS revenue_x1, SUM(revenue_x2) AS revenue_x2
                   FROM segment_goal_daily
                  WHERE arm_id = ANY($1) AND goal_id = $2 AND dimension = 'cuped_stratum'
                  GROUP BY arm_id, value) g
             ON g.arm_id = v.arm_id AND g.value = v.value
          ORDER BY 2, 1",
    )
    .bind(arm_ids)
    .bind(goal_id)
    .fetch_all(pool)
    .await
}
