//! The thin half of ingestion: runs the statements of a batch's transaction, in the
//! order [`super::plan`] describes, handing each answer back to the planner, and writes
//! the deltas set-wise (one `UNNEST` statement per kind of row, keys sorted). Nothing here
//! decides what a batch counts for.

use std::collections::{HashMap, HashSet};
use std::future::Future;

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::ATTEMPTS;
use super::plan::{
    self, ArmDailyDelta, ArmDelta, AssignmentLookup, Batch, Catalog, ConversionDelta, Fresh,
    GoalDeltas, PendingConversion, RawDay, RawRow, ResolvedConversion, ResolvedExposure,
    SegmentDailyDelta, StratumDailyDelta, Tally, UnattributedDelta,
};
use crate::db::aggregates::{
    self, ArmDailyDeltas, ArmDeltas, GoalDailyDeltas, GoalDeltas as GoalColumns,
};
use crate::db::events::{self, AssignmentRow, NewAssignments, NewConversions, NewPending};
use crate::db::raw_events::{self, RawConversions, RawDayCounts, RawExposures};
use crate::db::segments::{self, SegmentDailyDeltas, SegmentGoalDeltas};

/// Runs `attempt` again when PostgreSQL reports a deadlock or a serialization failure,
/// at most [`ATTEMPTS`] times in all (keys are locked in sorted order, so this is a
/// safety net).
pub(super) async fn retried<T, F, Fut>(what: &'static str, mut attempt: F) -> Result<T, sqlx::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, sqlx::Error>>,
{
    let mut n = 0;
    loop {
        n += 1;
        match attempt().await {
            Err(sqlx::Error::Database(e))
                if n < ATTEMPTS && matches!(e.code().as_deref(), Some("40P01") | Some("40001")) =>
            {
                tracing::warn!(attempt = n, error = %e, "{what} retried");
            }
            result => return result,
        }
    }
}

/// The batch's transaction: marks ids seen, claims first exposures, reads the
/// assignments the plan needs, and writes the plan, keeping at most `raw_quota` raw rows
/// per site and UTC day (the aggregates count every event).
pub(super) async fn write_batch(
    pool: &PgPool,
    batch: &Batch,
    catalog: &Catalog,
    raw_quota: i64,
) -> Result<Tally, sqlx::Error> {
    let mut tx = pool.begin().await?;

    // 1. Which items are new (the insert decides, so racing deliveries count once).
    let ids = plan::seen_ids(batch);
    let new_ids: HashSet<String> = if ids.is_empty() {
        HashSet::new()
    } else {
        events::mark_seen(&mut tx, &ids)
            .await?
            .into_iter()
            .collect()
    };
    let fresh = Fresh::select(batch, &new_ids);

    // 2. First exposures: the database keeps an existing assignment if there is one.
    // Their experiments are locked first (`all_found`).
    let won = if fresh.claims().is_empty() {
        Vec::new()
    } else {
        let experiments = sorted_ids(fresh.claims().iter().map(|e| e.experiment_id));
        let found = events::lock_experiments(&mut tx, &experiments).await?;
        all_found("an experiment", &experiments, &found)?;
        events::insert_assignments(&mut tx, &assignment_columns(fresh.claims())).await?
    };

    // 3. The one plain read, after the claims (not before planning): a key lost to a
    // concurrent batch only shows its arm once that batch committed, which the claims'
    // `ON CONFLICT` waited for; and a conversion must see the assignment an exposure of
    // this same batch just made.
    let held = read_assignments(&mut tx, &fresh.assignments_to_read(catalog, &won)).await?;

    // 4. The deltas.
    let plan = fresh.plan(catalog, &won, &held);

    // 5. Conversions (the revenue cap applies inside the upsert), then what they changed.
    let goals = upsert_conversions(&mut tx, &plan.conversions).await?;
    if !plan.pending.is_empty() {
        events::insert_pending(&mut tx, &pending_columns(&plan.pending)).await?;
    }

    // 6. The raw events: the newly processed items, in the same transaction (an
    // acknowledged batch has them; a rolled-back one has none), before the aggregates:
    // their rows are the batch's own, while the aggregates' (and the quota's) are shared
    // by every batch of an experiment (of a site) and stay locked from their upsert to the
    // commit — so those come last, and the lock is held as briefly as possible. A (site,
    // day) already at its quota gets no rows; the others' rows go in now and the quota is
    // settled in step 7.
    let exposures: Vec<&ResolvedExposure> = plan
        .kept_exposures
        .iter()
        .map(|&i| fresh.exposures()[i])
        .collect();
    let rows: Vec<RawRow<'_>> = exposures
        .iter()
        .map(|e| RawRow {
            site_id: e.site_id,
            at: e.at,
            id: &e.id,
        })
        .chain(fresh.conversions().iter().map(|c| RawRow {
            site_id: c.site_id,
            at: c.at,
            id: &c.id,
        }))
        .collect();
    let counts = plan::raw_day_counts(&rows);
    let full: HashSet<RawDay> = if counts.is_empty() {
        HashSet::new()
    } else {
        raw_events::full_raw_days(&mut tx, &raw_day_columns(&counts), raw_quota)
            .await?
            .into_iter()
            .map(|(site_id, day)| RawDay { site_id, day })
            .collect()
    };
    let inserted: Vec<bool> = rows.iter().map(|r| !full.contains(&r.key())).collect();
    let (in_exposures, in_conversions) = inserted.split_at(exposures.len());
    raw_events::insert_exposures(&mut tx, &raw_exposure_columns(&exposures, in_exposures)).await?;
    raw_events::insert_conversions(
        &mut tx,
        &raw_conversion_columns(fresh.conversions(), in_conversions),
    )
    .await?;

    // 7. The shared rows, each one statement with sorted keys, in the same order in every
    // batch: aggregates, then the raw-event quota (a row inserted in step 6 that its
    // (site, day) turns out to have no room for — a concurrent batch took it meanwhile —
    // is deleted again).
    if !plan.arms.is_empty() {
        aggregates::add_arm_totals(&mut tx, &arm_columns(&plan.arms)).await?;
    }
    if !plan.arm_days.is_empty() {
        aggregates::add_arm_daily(&mut tx, &arm_daily_columns(&plan.arm_days)).await?;
    }
    if !plan.segment_days.is_empty() {
        segments::add_segment_daily(
            &mut tx,
            &segment_daily_columns(&plan.segment_days, &plan.strata_days),
        )
        .await?;
    }
    write_goal_aggregates(&mut tx, &goals).await?;
    if !plan.unattributed.is_empty() {
        write_unattributed(&mut tx, &plan.unattributed).await?;
    }
    let keep = apply_raw_quota(&mut tx, &rows, &counts, raw_quota).await?;
    let mut tally = plan.counts;
    let origins = exposures
        .iter()
        .map(|e| e.origin)
        .chain(fresh.conversions().iter().map(|c| c.origin));
    for (origin, kept) in origins.zip(&keep) {
        if !kept {
            tally.raw_dropped(origin);
        }
    }
    let undo: Vec<bool> = inserted.iter().zip(&keep).map(|(i, k)| *i && !*k).collect();
    if undo.contains(&true) {
        let (undo_exposures, undo_conversions) = undo.split_at(exposures.len());
        raw_events::delete_exposures(&mut tx, &raw_exposure_columns(&exposures, undo_exposures))
            .await?;
        raw_events::delete_conversions(
            &mut tx,
            &raw_conversion_columns(fresh.conversions(), undo_conversions),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(tally)
}

/// Counts `rows` against the per-(site, day) quota (one upsert returning the new totals;
/// a second statement moving the overflow to `dropped` only when there is one) and
/// says which to insert, in the order of `rows`.
async fn apply_raw_quota(
    conn: &mut PgConnection,
    rows: &[RawRow<'_>],
    counts: &[(RawDay, i64)],
    quota: i64,
) -> Result<Vec<bool>, sqlx::Error> {
    if counts.is_empty() {
        return Ok(Vec::new());
    }
    let kept_after: HashMap<RawDay, i64> =
        raw_events::add_raw_days(&mut *conn, &raw_day_columns(counts))
            .await?
            .into_iter()
            .map(|(site_id, day, kept)| (RawDay { site_id, day }, kept))
            .collect();
    let overflow = plan::raw_overflow(counts, &kept_after, quota);
    if !overflow.is_empty() {
        raw_events::move_to_dropped(&mut *conn, &raw_day_columns(&overflow)).await?;
        for (key, dropped) in &overflow {
            tracing::warn!(site_id = %key.site_id, day = %key.day, dropped, quota,
                "raw-event quota reached: raw rows not kept (aggregates still count them)");
        }
    }
    Ok(plan::raw_rows_kept(rows, &overflow))
}

/// Attributes parked conversions (see `migrations/0009_pending_conversions.sql`) of
/// these visitors whose assignment now exists, in a transaction of its own that runs
/// after the batch's commit. Whichever of two racing batches (the conversion's, the
/// exposure's) commits second finds both rows committed, so nothing stays parked.
pub(super) async fn attribute_pending(
    pool: &PgPool,
    visitor_ids: &[String],
) -> Result<u64, sqlx::Error> {
    // A conversion parked by a batch that commits after this check is attributed by
    // that batch's own sweep (it finds this batch's assignments committed).
    if visitor_ids.is_empty() || !events::any_pending(pool, visitor_ids).await? {
        return Ok(0);
    }
    let mut tx = pool.begin().await?;
    let parked = events::take_attributable_pending(&mut tx, visitor_ids).await?;
    if parked.is_empty() {
        return Ok(0);
    }
    let held = read_assignments(&mut tx, &plan::parked_pairs(&parked)).await?;
    let conversions = plan::attribute_parked(&parked, &held);
    let goals = upsert_conversions(&mut tx, &conversions).await?;
    write_goal_aggregates(&mut tx, &goals).await?;
    tx.commit().await?;
    Ok(parked.len() as u64)
}

/// Sets `snippet_seen_at` for sites whose verified hosts sent exposures (a no-op once
/// set: the update is filtered on `snippet_seen_at IS NULL`).
pub(super) async fn mark_snippets_seen(
    pool: &PgPool,
    pairs: &[(String, String)],
) -> Result<(), sqlx::Error> {
    if pairs.is_empty() {
        return Ok(());
    }
    let mut conn = pool.acquire().await?;
    for (site_key, host) in pairs {
        crate::db::domains::mark_snippet_seen(&mut conn, site_key, host).await?;
    }
    Ok(())
}

async fn read_assignments(
    conn: &mut PgConnection,
    lookup: &AssignmentLookup,
) -> Result<Vec<AssignmentRow>, sqlx::Error> {
    if lookup.is_empty() {
        return Ok(Vec::new());
    }
    events::assignments_of(conn, &lookup.experiment_ids, &lookup.visitor_ids).await
}

/// Records the conversions and returns what they add to the goal aggregates.
async fn upsert_conversions(
    conn: &mut PgConnection,
    conversions: &[ConversionDelta],
) -> Result<GoalDeltas, sqlx::Error> {
    if conversions.is_empty() {
        return Ok(GoalDeltas::default());
    }
    let goals = sorted_ids(conversions.iter().map(|c| c.goal_id));
    let found = events::lock_goals(&mut *conn, &goals).await?;
    all_found("a goal", &goals, &found)?;
    let rows = events::upsert_conversions(conn, &conversion_columns(conversions)).await?;
    Ok(plan::goal_deltas(conversions, &rows))
}

fn sorted_ids(ids: impl Iterator<Item = Uuid>) -> Vec<Uuid> {
    let mut ids: Vec<Uuid> = ids.collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// The rows `assignments` and `goal_conversions` refer to are locked (`FOR KEY SHARE`)
/// once per transaction instead of by a foreign-key check per row
/// (`migrations/0030_ingest_without_row_foreign_keys.sql`). One deleted since the batch
/// read its catalog fails the transaction, as the foreign key did: the batch is
/// answered with an error and retried, and its next catalog read rejects the items.
fn all_found(what: &str, wanted: &[Uuid], found: &[Uuid]) -> Result<(), sqlx::Error> {
    if found.len() == wanted.len() {
        return Ok(());
    }
    Err(sqlx::Error::InvalidArgument(format!(
        "{what} of the batch was deleted while the batch was written"
    )))
}

/// Writes the per-(arm, goal) totals, daily buckets and segment buckets, one statement
/// each.
async fn write_goal_aggregates(
    conn: &mut PgConnection,
    goals: &GoalDeltas,
) -> Result<(), sqlx::Error> {
    if goals.totals.is_empty() {
        return Ok(());
    }
    let mut d = GoalColumns::default();
    for g in &goals.totals {
        d.arm_ids.push(g.arm_id);
        d.goal_ids.push(g.goal_id);
        d.experiment_ids.push(g.experiment_id);
        d.converters.push(g.converters);
        d.revenue_n.push(g.revenue_n);
        d.revenue_sum.push(g.revenue_sum);
        d.revenue_sumsq.push(g.revenue_sumsq);
    }
    aggregates::add_goal_totals(&mut *conn, &d).await?;
    let mut d = GoalDailyDeltas::default();
    for g in &goals.days {
        d.arm_ids.push(g.arm_id);
        d.goal_ids.push(g.goal_id);
        d.days.push(g.day);
        d.experiment_ids.push(g.experiment_id);
        d.converters.push(g.converters);
        d.revenue_sum.push(g.revenue_sum);
    }
    aggregates::add_goal_daily(&mut *conn, &d).await?;
    let mut d = SegmentGoalDeltas::default();
    for g in &goals.segments {
        d.arm_ids.push(g.arm_id);
        d.goal_ids.push(g.goal_id);
        d.dimensions.push(g.dimension.as_str());
        d.values.push(g.value.clone());
        d.days.push(g.day);
        d.experiment_ids.push(g.experiment_id);
        d.converters.push(g.converters);
        d.revenue_n.push(g.revenue_n);
        d.revenue_sum.push(g.revenue_sum);
        d.revenue_sumsq.push(g.revenue_sumsq);
        for v in [
            &mut d.converters_x1,
            &mut d.converters_x2,
            &mut d.revenue_x1,
            &mut d.revenue_x2,
        ] {
            v.push(0.0);
        }
    }
    // The CUPED strata after the context dimensions' rows, in the same statement (their
    // keys differ from all of those, so the lock order stays the same in every batch).
    for g in &goals.strata {
        d.arm_ids.push(g.arm_id);
        d.goal_ids.push(g.goal_id);
        d.dimensions.push(plan::CUPED_STRATUM);
        d.values.push(g.stratum.clone());
        d.days.push(g.day);
        d.experiment_ids.push(g.experiment_id);
        d.converters.push(g.converters);
        d.revenue_n.push(g.revenue_n);
        d.revenue_sum.push(g.revenue_sum);
        d.revenue_sumsq.push(g.revenue_sumsq);
        d.converters_x1.push(g.converters_x[0]);
        d.converters_x2.push(g.converters_x[1]);
        d.revenue_x1.push(g.revenue_x[0]);
        d.revenue_x2.push(g.revenue_x[1]);
    }
    segments::add_segment_goal_daily(&mut *conn, &d).await
}

async fn write_unattributed(
    conn: &mut PgConnection,
    deltas: &[UnattributedDelta],
) -> Result<(), sqlx::Error> {
    let (mut sites, mut days, mut counts) = (Vec::new(), Vec::new(), Vec::new());
    for u in deltas {
        sites.push(u.site_id);
        days.push(u.day);
        counts.push(u.conversions);
    }
    aggregates::add_unattributed(conn, &sites, &days, &counts).await
}

// Rows to the column arrays the statements bind.

fn assignment_columns(claims: &[&ResolvedExposure]) -> NewAssignments {
    let mut c = NewAssignments::default();
    for e in claims {
        c.experiment_ids.push(e.experiment_id);
        c.visitor_ids.push(e.visitor_id.clone());
        c.units.push(e.unit);
        c.arm_ids.push(e.arm_id);
        c.propensities.push(e.propensity);
        c.snapshot_versions.push(e.snapshot_version);
        c.seen_at.push(e.at);
        c.context.push(&e.context);
    }
    c
}

fn raw_day_columns(counts: &[(RawDay, i64)]) -> RawDayCounts {
    let mut c = RawDayCounts::default();
    for (key, n) in counts {
        c.site_ids.push(key.site_id);
        c.days.push(key.day);
        c.rows.push(*n);
    }
    c
}

/// The exposures whose `keep` is set (`keep` runs beside `exposures`).
fn raw_exposure_columns(exposures: &[&ResolvedExposure], keep: &[bool]) -> RawExposures {
    let mut c = RawExposures::default();
    for (e, _) in exposures.iter().zip(keep).filter(|(_, k)| **k) {
        c.days.push(e.at.date());
        c.ts.push(e.at);
        c.site_ids.push(e.site_id);
        c.item_ids.push(e.id.clone());
        c.visitor_ids.push(e.visitor_id.clone());
        c.experiment_ids.push(e.experiment_id);
        c.arm_ids.push(e.arm_id);
        c.element_ids.push(e.element_id);
        c.propensities.push(e.propensity);
        c.snapshot_versions.push(e.snapshot_version);
        c.context.push(&e.context);
    }
    c
}

/// The conversions whose `keep` is set (`keep` runs beside `conversions`).
fn raw_conversion_columns(conversions: &[&ResolvedConversion], keep: &[bool]) -> RawConversions {
    let mut c = RawConversions::default();
    for (k, _) in conversions.iter().zip(keep).filter(|(_, k)| **k) {
        c.days.push(k.at.date());
        c.ts.push(k.at);
        c.site_ids.push(k.site_id);
        c.item_ids.push(k.id.clone());
        c.visitor_ids.push(k.visitor_id.clone());
        c.kinds.push(if k.custom { "custom" } else { "conversion" });
        c.goals.push(k.goal.clone());
        c.values.push(k.value);
        c.currencies.push(k.currency.clone());
        c.signed.push(k.signed);
    }
    c
}

/// The context dimensions' rows, then the CUPED strata's (see `write_goal_aggregates`).
fn segment_daily_columns(
    days: &[SegmentDailyDelta],
    strata: &[StratumDailyDelta],
) -> SegmentDailyDeltas {
    let mut c = SegmentDailyDeltas::default();
    for d in days {
        c.arm_ids.push(d.arm_id);
        c.dimensions.push(d.dimension.as_str());
        c.values.push(d.value.clone());
        c.days.push(d.day);
        c.experiment_ids.push(d.experiment_id);
        c.visitors.push(d.visitors);
        for v in [
            &mut c.x1_sum,
            &mut c.x2_sum,
            &mut c.x1_sumsq,
            &mut c.x2_sumsq,
            &mut c.x1x2_sum,
        ] {
            v.push(0.0);
        }
    }
    for d in strata {
        c.arm_ids.push(d.arm_id);
        c.dimensions.push(plan::CUPED_STRATUM);
        c.values.push(d.stratum.clone());
        c.days.push(d.day);
        c.experiment_ids.push(d.experiment_id);
        c.visitors.push(d.visitors);
        c.x1_sum.push(d.x_sum[0]);
        c.x2_sum.push(d.x_sum[1]);
        c.x1_sumsq.push(d.x_sq[0]);
        c.x1x2_sum.push(d.x_sq[1]);
        c.x2_sumsq.push(d.x_sq[2]);
    }
    c
}

fn conversion_columns(conversions: &[ConversionDelta]) -> NewConversions {
    let mut c = NewConversions::default();
    for k in conversions {
        c.goal_ids.push(k.goal_id);
        c.visitor_ids.push(k.visitor_id.clone());
        c.units.push(k.unit);
        c.experiment_ids.push(k.experiment_id);
        c.arm_ids.push(k.arm_id);
        c.unsigned_values.push(k.unsigned_value);
        c.signed_values.push(k.signed_value);
        c.at.push(k.at);
    }
    c
}

fn pending_columns(pending: &[PendingConversion]) -> NewPending {
    let mut c = NewPending::default();
    for p in pending {
        c.item_ids.push(p.item_id.clone());
        c.goal_ids.push(p.goal_id);
        c.experiment_ids.push(p.experiment_id);
        c.visitor_ids.push(p.visitor_id.clone());
        c.values.push(p.value);
        c.signed.push(p.signed);
        c.at.push(p.at);
    }
    c
}

fn arm_columns(arms: &[ArmDelta]) -> ArmDeltas {
    let mut c = ArmDeltas::default();
    for a in arms {
        c.arm_ids.push(a.arm_id);
        c.experiment_ids.push(a.experiment_id);
        c.visitors.push(a.visitors);
        c.propensity_sums.push(a.propensity_sum);
        c.expected_visitors.push(a.expected_visitors);
        c.conflicts.push(a.conflicts);
    }
    c
}

fn arm_daily_columns(days: &[ArmDailyDelta]) -> ArmDailyDeltas {
    let mut c = ArmDailyDeltas::default();
    for d in days {
        c.arm_ids.push(d.arm_id);
        c.days.push(d.day);
        c.experiment_ids.push(d.experiment_id);
        c.visitors.push(d.visitors);
    }
    c
}
