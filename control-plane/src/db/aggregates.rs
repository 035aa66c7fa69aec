//! Per-arm aggregates kept by ingestion, in the same transaction as the items: totals
//! per arm and per (arm, goal), daily buckets, unattributed conversions per site and day.
//! Each write is one `INSERT ... SELECT FROM UNNEST(...) ON CONFLICT DO UPDATE` adding
//! deltas the caller grouped (one entry per key, sorted by key so concurrent batches lock
//! rows in the same order). Also [`arm_counts`], the posterior inputs the publisher reads.

use sqlx::PgConnection;
use time::Date;
use uuid::Uuid;

/// Deltas per arm (one entry per arm).
#[derive(Debug, Default)]
pub struct ArmDeltas {
    pub arm_ids: Vec<Uuid>,
    pub experiment_ids: Vec<Uuid>,
    pub visitors: Vec<i64>,
    pub propensity_sums: Vec<f64>,
    pub expected_visitors: Vec<f64>,
    pub conflicts: Vec<i64>,
}

#[tracing::instrument(skip_all, fields(arms = d.arm_ids.len()))]
pub async fn add_arm_totals(conn: &mut PgConnection, d: &ArmDeltas) -> sqlx::Result<()> {
    if d.arm_ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO arm_stats AS s
             (arm_id, experiment_id, visitors, propensity_sum, expected_visitors, conflicting_exposures)
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::int8[], $4::float8[], $5::float8[], $6::int8[])
         ON CONFLICT (arm_id) DO UPDATE SET
             visitors = s.visitors + EXCLUDED.visitors,
             propensity_sum = s.propensity_sum + EXCLUDED.propensity_sum,
             expected_visitors = s.expected_visitors + EXCLUDED.expected_visitors,
             conflicting_exposures = s.conflicting_exposures + EXCLUDED.conflicting_exposures",
    )
    .bind(&d.arm_ids)
    .bind(&d.experiment_ids)
    .bind(&d.visitors)
    .bind(&d.propensity_sums)
    .bind(&d.expected_visitors)
    .bind(&d.conflicts)
    .execute(conn)
    .await?;
    Ok(())
}

/// New visitors per (arm, day).
#[derive(Debug, Default)]
pub struct ArmDailyDeltas {
    pub arm_ids: Vec<Uuid>,
    pub days: Vec<Date>,
    pub experiment_ids: Vec<Uuid>,
    pub visitors: Vec<i64>,
}

#[tracing::instrument(skip_all, fields(rows = d.arm_ids.len()))]
pub async fn add_arm_daily(conn: &mut PgConnection, d: &ArmDailyDeltas) -> sqlx::Result<()> {
    if d.arm_ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO arm_daily AS s (arm_id, day, experiment_id, visitors)
         SELECT * FROM UNNEST($1::uuid[], $2::date[], $3::uuid[], $4::int8[])
         ON CONFLICT (arm_id, day) DO UPDATE SET visitors = s.visitors + EXCLUDED.visitors",
    )
    .bind(&d.arm_ids)
    .bind(&d.days)
    .bind(&d.experiment_ids)
    .bind(&d.visitors)
    .execute(conn)
    .await?;
    Ok(())
}

/// Deltas per (arm, goal).
#[derive(Debug, Default)]
pub struct GoalDeltas {
    pub arm_ids: Vec<Uuid>,
    pub goal_ids: Vec<Uuid>,
    pub experiment_ids: Vec<Uuid>,
    pub converters: Vec<i64>,
    pub revenue_n: Vec<i64>,
    pub revenue_sum: Vec<f64>,
    pub revenue_sumsq: Vec<f64>,
}

#[tracing::instrument(skip_all, fields(rows = d.arm_ids.len()))]
pub async fn add_goal_totals(conn: &mut PgConnection, d: &GoalDeltas) -> sqlx::Result<()> {
    if d.arm_ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO arm_goal_stats AS s
             (arm_id, goal_id, experiment_id, converters, revenue_n, revenue_sum, revenue_sumsq)
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::int8[], $5::int8[],
                              $6::float8[], $7::float8[])
         ON CONFLICT (arm_id, goal_id) DO UPDATE SET
             converters = s.converters + EXCLUDED.converters,
             revenue_n = s.revenue_n + EXCLUDED.revenue_n,
             revenue_sum = s.revenue_sum + EXCLUDED.revenue_sum,
             revenue_sumsq = s.revenue_sumsq + EXCLUDED.revenue_sumsq",
    )
    .bind(&d.arm_ids)
    .bind(&d.goal_ids)
    .bind(&d.experiment_ids)
    .bind(&d.converters)
    .bind(&d.revenue_n)
    .bind(&d.revenue_sum)
    .bind(&d.revenue_sumsq)
    .execute(conn)
    .await?;
    Ok(())
}

/// New converters and revenue per (arm, goal, day).
#[derive(Debug, Default)]
pub struct GoalDailyDeltas {
    pub arm_ids: Vec<Uuid>,
    pub goal_ids: Vec<Uuid>,
    pub days: Vec<Date>,
    pub experiment_ids: Vec<Uuid>,
    pub converters: Vec<i64>,
    pub revenue_sum: Vec<f64>,
}

#[tracing::instrument(skip_all, fields(rows = d.arm_ids.len()))]
pub async fn add_goal_daily(conn: &mut PgConnection, d: &GoalDailyDeltas) -> sqlx::Result<()> {
    if d.arm_ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO arm_goal_daily AS s (arm_id, goal_id, day, experiment_id, converters, revenue_sum)
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::date[], $4::uuid[], $5::int8[], $6::float8[])
         ON CONFLICT (arm_id, goal_id, day) DO UPDATE SET
             converters = s.converters + EXCLUDED.converters,
             revenue_sum = s.revenue_sum + EXCLUDED.revenue_sum",
    )
    .bind(&d.arm_ids)
    .bind(&d.goal_ids)
    .bind(&d.days)
    .bind(&d.experiment_ids)
    .bind(&d.converters)
    .bind(&d.revenue_sum)
    .execute(conn)
    .await?;
    Ok(())
}

/// Unattributed conversions per (site, day).
#[tracing::instrument(skip_all, fields(rows = site_ids.len()))]
pub async fn add_unattributed(
    conn: &mut PgConnection,
    site_ids: &[Uuid],
    days: &[Date],
    counts: &[i64],
) -> sqlx::Result<()> {
    if site_ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO unattributed_daily AS s (site_id, day, conversions)
         SELECT * FROM UNNEST($1::uuid[], $2::date[], $3::int8[])
         ON CONFLICT (site_id, day) DO UPDATE SET conversions = s.conversions + EXCLUDED.conversions",
    )
    .bind(site_ids)
    .bind(days)
    .bind(counts)
    .execute(conn)
    .await?;
    Ok(())
}

/// What the publisher needs per arm to build Beta posteriors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct ArmCount {
    pub arm_id: Uuid,
    /// Visitors whose first exposure was to this arm.
    pub exposures: i64,
    /// Of those, visitors who converted on the experiment's primary goal (0 without one).
    pub conversions: i64,
}

/// Exposed visitors and primary-goal converters of every arm of an experiment, in arm
/// order (arms without data yet report zeros). Reads aggregates only: O(arms).
/// Takes a pool or a connection (`&mut *conn`), so the publisher can read inside its
/// own transaction.
#[tracing::instrument(skip(executor))]
pub async fn arm_counts<'e, E: sqlx::PgExecutor<'e>>(
    executor: E,
    experiment_id: Uuid,
) -> sqlx::Result<Vec<ArmCount>> {
    sqlx::query_as::<_, ArmCount>(
        "SELECT a.id AS arm_id,
                COALESCE(s.visitors, 0) AS exposures,
                COALESCE(gs.converters, 0) AS conversions
         FROM arms a
         LEFT JOIN arm_stats s ON s.arm_id = a.id
         LEFT JOIN goals g ON g.experiment_id = a.experiment_id AND g.is_primary
         LEFT JOIN arm_goal_stats gs ON gs.arm_id = a.id AND gs.goal_id = g.id
         WHERE a.experiment_id = $1
         ORDER BY a.element_id NULLS FIRST, a.position",
    )
    .bind(experiment_id)
    .fetch_all(executor)
    .await
}
