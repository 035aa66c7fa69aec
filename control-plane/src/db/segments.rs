//! SQL of segment statistics: per (arm, dimension, value, day) new visitors
//! (`segment_daily`) and per (arm, goal, dimension, value, day) converters and revenue
//! moments (`segment_goal_daily`), written by ingestion with the same deltas as
//! `arm_daily` / `arm_goal_daily` (one `UNNEST` upsert per table per batch, keys sorted),
//! and read, summed over days, by the segments endpoint through the primary key's
//! prefix. O(arms × values × days): never raw events.

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
        "INSERT INTO segment_daily AS s (arm_id, dimension, value, day, experiment_id, visitors)
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::date[], $5::uuid[], $6::int8[])
         ON CONFLICT (arm_id, dimension, value, day) DO UPDATE
             SET visitors = s.visitors + EXCLUDED.visitors",
    )
    .bind(&d.arm_ids)
    .bind(&d.dimensions)
    .bind(&d.values)
    .bind(&d.days)
    .bind(&d.experiment_ids)
    .bind(&d.visitors)
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
              revenue_sum, revenue_sumsq)
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::date[],
                              $6::uuid[], $7::int8[], $8::int8[], $9::float8[], $10::float8[])
         ON CONFLICT (arm_id, goal_id, dimension, value, day) DO UPDATE SET
             converters = s.converters + EXCLUDED.converters,
             revenue_n = s.revenue_n + EXCLUDED.revenue_n,
             revenue_sum = s.revenue_sum + EXCLUDED.revenue_sum,
             revenue_sumsq = s.revenue_sumsq + EXCLUDED.revenue_sumsq",
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
