//! The pure half of ingestion: what a batch's validated items change, as named deltas,
//! computed without a database so that unit tests check it (the writer, `write.rs`,
//! only runs statements and passes their answers back here).
//!
//! A batch is one transaction, and three of its statements answer questions the plan
//! depends on. Each is a write whose `RETURNING` is the answer, because that is what
//! makes it race-safe (a `SELECT` beforehand would let two concurrent batches both
//! believe they came first). So the plan comes in phases, each a pure function of the
//! batch and of the rows the previous statement returned:
//!
//! 1. [`seen_ids`]: the ids to mark seen. `mark_seen` answers which are new.
//! 2. [`Fresh::select`]: the items that count (a new id, at its first occurrence), and
//!    [`Fresh::claims`], the candidate first exposure per (experiment, visitor, unit).
//!    `insert_assignments` answers which keys this batch won; the first exposure fixes
//!    the arm.
//! 3. [`Fresh::assignments_to_read`]: the (experiment, visitor) pairs whose assignments
//!    the rest needs: keys this batch lost, visitors of its conversions. This is the one
//!    plain read, and it stays after the claims: a key lost to a concurrent batch is
//!    only visible once that batch committed, which the `ON CONFLICT` of the claims
//!    waited for, and a conversion must see an assignment made by an exposure of the
//!    same batch.
//! 4. [`Fresh::plan`]: the deltas ([`ArmDelta`], [`ArmDailyDelta`], [`SegmentDailyDelta`],
//!    [`ConversionDelta`], [`PendingConversion`], [`UnattributedDelta`]), the items kept
//!    as raw events, and the [`Counts`] of the answer.
//! 5. [`goal_deltas`]: from what `upsert_conversions` returns (each visitor's revenue
//!    before and after, the per-visitor cap applied inside the statement), the
//!    [`GoalDelta`]s, [`GoalDailyDelta`]s and [`SegmentGoalDelta`]s.
//!
//! Segments: a new visitor counts, in each dimension
//! (`samplit_engine::context::Dimension`), under its first exposure's value; a
//! conversion's delta counts under the values of the assignment it is attributed to
//! (kept with the assignment). Each segment delta is the arm-level delta repeated once
//! per dimension, so per dimension the values add up to the arm's totals exactly.
//!
//! Variance reduction (docs/statistics.md, "Variance reduction"): besides the context
//! dimensions, each visitor counts once more under its CUPED stratum
//! ([`cuped_stratum`]: visitor type × device) with its capped covariates
//! ([`covariates`]), and each goal delta once more under the stratum of its assignment
//! with the covariates times the outcome's change ([`StratumDailyDelta`],
//! [`StratumGoalDelta`]). The writer stores them in the segment tables under the internal
//! dimension [`CUPED_STRATUM`], in the same statements.
//!
//! Conversions parked because their exposure had not arrived are attributed after the
//! batch's commit, in a transaction of their own: [`parked_pairs`] says which
//! assignments to read, [`attribute_parked`] turns them into [`ConversionDelta`]s, and
//! [`goal_deltas`] finishes as above.
//!
//! Every list of deltas comes out sorted by its key: the writer passes them on in that
//! order, so concurrent batches lock rows in the same order.

use std::collections::{BTreeMap, HashMap, HashSet};

use time::{Date, OffsetDateTime};
use uuid::Uuid;

use samplit_engine::context::Dimension;
use samplit_engine::stats::cuped::capped;

use crate::db::events::{AssignmentRow, ConversionRow, LiveGoalRow, PendingRow};
use crate::db::raw_events::StoredContext;

// ---------------------------------------------------------------------------------------
// Input: the batch's validated items and what was read about its experiments and goals.

/// An exposure checked against the database (its experiment is live on its site, its
/// arm belongs to it).
#[derive(Debug, Clone)]
pub struct ResolvedExposure {
    pub id: String,
    pub site_id: Uuid,
    pub experiment_id: Uuid,
    /// The element the item named, if any (kept in raw events).
    pub element_id: Option<Uuid>,
    /// The experiment, or the element for an independent experiment's arm.
    pub unit: Uuid,
    pub arm_id: Uuid,
    pub visitor_id: String,
    pub propensity: f64,
    pub snapshot_version: i64,
    pub at: OffsetDateTime,
    /// What the edge knew before assigning (unknown fields `None`).
    pub context: StoredContext,
    /// Which of the batches written together the item came from ([`Batch::merge`]; 0
    /// for a batch written alone): its counts go to that batch's answer.
    pub origin: usize,
}

impl ResolvedExposure {
    fn key(&self) -> AssignmentKey<'_> {
        AssignmentKey {
            experiment_id: self.experiment_id,
            visitor_id: &self.visitor_id,
            unit: self.unit,
        }
    }
}

/// A conversion whose site is known.
#[derive(Debug, Clone)]
pub struct ResolvedConversion {
    pub id: String,
    pub site_id: Uuid,
    pub visitor_id: String,
    pub goal: String,
    pub value: f64,
    /// The currency the item named (kept in raw events).
    pub currency: Option<String>,
    /// Came in a signed server call (not held to the per-visitor revenue cap).
    pub signed: bool,
    /// A `custom` event rather than a `conversion`.
    pub custom: bool,
    pub at: OffsetDateTime,
    /// As [`ResolvedExposure::origin`].
    pub origin: usize,
}

/// A pageview (only its id is kept: it marks the item seen and counts as accepted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pageview {
    pub id: String,
    /// As [`ResolvedExposure::origin`].
    pub origin: usize,
}

/// A batch's items that passed every check, by kind.
#[derive(Debug, Default, Clone)]
pub struct Batch {
    pub exposures: Vec<ResolvedExposure>,
    pub conversions: Vec<ResolvedConversion>,
    pub pageviews: Vec<Pageview>,
}

impl Batch {
    /// The batches as one, each item tagged with the index of its batch as its origin:
    /// written in one transaction, the answer of batch `i` is `Tally::of(i)`. The plan
    /// of the merged batch is the plan of the batches written one after the other in
    /// this order (an id in two of them counts for the first, as it would have), except
    /// that the first exposure of a visitor in several of them is the earliest by time
    /// (as between concurrent batches).
    pub fn merge<'a>(batches: impl IntoIterator<Item = &'a Batch>) -> Batch {
        let mut all = Batch::default();
        for (origin, b) in batches.into_iter().enumerate() {
            all.exposures
                .extend(b.exposures.iter().map(|e| ResolvedExposure {
                    origin,
                    ..e.clone()
                }));
            all.conversions
                .extend(b.conversions.iter().map(|c| ResolvedConversion {
                    origin,
                    ..c.clone()
                }));
            all.pageviews.extend(b.pageviews.iter().map(|p| Pageview {
                origin,
                ..p.clone()
            }));
        }
        all
    }

    /// The visitors of its exposures and conversions, sorted, each once (whose parked
    /// conversions may be attributable once it is committed).
    pub fn visitor_ids(&self) -> Vec<String> {
        self.distinct(|e| e.visitor_id.clone(), |c| c.visitor_id.clone())
    }

    /// What `of_exposure` and `of_conversion` give for its exposures and conversions,
    /// sorted, each once.
    fn distinct<T: Ord>(
        &self,
        of_exposure: impl Fn(&ResolvedExposure) -> T,
        of_conversion: impl Fn(&ResolvedConversion) -> T,
    ) -> Vec<T> {
        let mut values: Vec<T> = self
            .exposures
            .iter()
            .map(of_exposure)
            .chain(self.conversions.iter().map(of_conversion))
            .collect();
        values.sort_unstable();
        values.dedup();
        values
    }

    /// How many items it holds.
    pub fn len(&self) -> usize {
        self.exposures.len() + self.conversions.len() + self.pageviews.len()
    }

    /// Whether it holds no item.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What the plan needs to know about an arm.
#[derive(Debug, Clone, Copy)]
pub struct ArmInfo {
    pub experiment_id: Uuid,
    /// The unit visitors are assigned in: the experiment, or the arm's element in an
    /// independent experiment.
    pub unit: Uuid,
}

/// A live goal a conversion can count for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoalRef {
    pub goal_id: Uuid,
    pub experiment_id: Uuid,
}

/// Live goals by site and by the name a conversion reports: custom goals by their
/// target, url and click goals by their name.
#[derive(Debug, Default)]
pub struct GoalIndex(HashMap<Uuid, HashMap<String, Vec<GoalRef>>>);

impl GoalIndex {
    pub fn new(rows: &[LiveGoalRow]) -> Self {
        let mut index: HashMap<Uuid, HashMap<String, Vec<GoalRef>>> = HashMap::new();
        for g in rows {
            let key = if g.trigger == "custom" {
                &g.target
            } else {
                &g.name
            };
            index
                .entry(g.site_id)
                .or_default()
                .entry(key.clone())
                .or_default()
                .push(GoalRef {
                    goal_id: g.goal_id,
                    experiment_id: g.experiment_id,
                });
        }
        Self(index)
    }

    /// The live goals a conversion named `goal` on `site_id` counts for.
    pub fn matching(&self, site_id: Uuid, goal: &str) -> &[GoalRef] {
        self.0
            .get(&site_id)
            .and_then(|by_name| by_name.get(goal))
            .map(Vec::as_slice)
            .unwrap_or_default()
    }
}

/// What was read about the batch's experiments and goals before its transaction
/// (admin-managed rows: a batch racing an admin edit may use either state).
#[derive(Debug, Default)]
pub struct Catalog {
    /// Every arm of the experiments the batch's exposures name.
    pub arms: HashMap<Uuid, ArmInfo>,
    /// The arms of each unit, in position order.
    pub unit_arms: HashMap<Uuid, Vec<Uuid>>,
    /// The live goals of the sites the batch's conversions come from.
    pub goals: GoalIndex,
}

impl Catalog {
    /// Adds what `other` read. Arms are read per experiment and goals per site, whole,
    /// so where both read the same experiment or site, either answer is complete; the
    /// one already here is kept (reads racing an admin edit may see either state).
    pub fn merge(&mut self, other: &Catalog) {
        for (arm, info) in &other.arms {
            self.arms.entry(*arm).or_insert(*info);
        }
        for (unit, arms) in &other.unit_arms {
            self.unit_arms.entry(*unit).or_insert_with(|| arms.clone());
        }
        for (site, goals) in &other.goals.0 {
            self.goals.0.entry(*site).or_insert_with(|| goals.clone());
        }
    }
}

// ---------------------------------------------------------------------------------------
// Output: named deltas.

/// What the answer to the batch reports.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub accepted: u64,
    pub duplicates: u64,
    pub conflicts: u64,
    pub unattributed: u64,
    /// Of `accepted`, exposures and conversions not kept as raw events (their site and
    /// day had reached the raw-event quota); set by the writer, not by the plan.
    pub raw_dropped: u64,
}

/// The [`Counts`] of each origin ([`Batch::merge`]).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally(Vec<Counts>);

impl Tally {
    /// The counts of the items of `origin` (all zero when it had none).
    pub fn of(&self, origin: usize) -> Counts {
        self.0.get(origin).copied().unwrap_or_default()
    }

    /// Counts one raw row of `origin` that the quota did not keep.
    pub fn raw_dropped(&mut self, origin: usize) {
        self.at(origin).raw_dropped += 1;
    }

    fn at(&mut self, origin: usize) -> &mut Counts {
        if self.0.len() <= origin {
            self.0.resize(origin + 1, Counts::default());
        }
        &mut self.0[origin]
    }
}

/// What the batch adds to one arm's totals (`arm_stats`).
#[derive(Debug, Clone, PartialEq)]
pub struct ArmDelta {
    pub arm_id: Uuid,
    pub experiment_id: Uuid,
    /// New visitors: first exposures this batch recorded.
    pub visitors: i64,
    /// The sum of their logged propensities.
    pub propensity_sum: f64,
    /// How many of the unit's new visitors the arm should have received (see
    /// [`expected_shares`]).
    pub expected_visitors: f64,
    /// Exposures claiming this arm for a visitor who holds another one.
    pub conflicts: i64,
}

/// New visitors of one arm on one day with one value of a dimension (`segment_daily`).
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentDailyDelta {
    pub arm_id: Uuid,
    pub dimension: Dimension,
    pub value: String,
    pub day: Date,
    pub experiment_id: Uuid,
    pub visitors: i64,
}

/// What the batch adds to one (arm, goal, dimension value, day) (`segment_goal_daily`):
/// the [`GoalDelta`] of the visitors whose assignment has that value.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentGoalDelta {
    pub arm_id: Uuid,
    pub goal_id: Uuid,
    pub dimension: Dimension,
    pub value: String,
    pub day: Date,
    pub experiment_id: Uuid,
    pub converters: i64,
    pub revenue_n: i64,
    pub revenue_sum: f64,
    pub revenue_sumsq: f64,
}

/// The segment tables' internal dimension holding the CUPED strata (not a
/// `samplit_engine::context::Dimension`: the segments API never shows it).
pub const CUPED_STRATUM: &str = "cuped_stratum";

/// A visitor's variance-reduction stratum: `<visitor type>/<device>`, e.g.
/// `returning/mobile`, `unknown/unknown`.
#[must_use]
pub fn cuped_stratum(c: &StoredContext) -> String {
    format!(
        "{}/{}",
        c.value(Dimension::VisitorType),
        c.value(Dimension::Device)
    )
}

/// A visitor's covariates `(x₁, x₂)` = (prior conversions, prior visits), unknown → 0,
/// capped at `samplit_engine::stats::cuped::COVARIATE_CAP`.
#[must_use]
pub fn covariates(c: &StoredContext) -> [f64; 2] {
    [capped(c.prior_conversions), capped(c.prior_visits)]
}

/// New visitors of one arm on one day in one CUPED stratum, with the sums of their
/// covariates, squares and cross product (`segment_daily`, dimension [`CUPED_STRATUM`]).
#[derive(Debug, Clone, PartialEq)]
pub struct StratumDailyDelta {
    pub arm_id: Uuid,
    pub stratum: String,
    pub day: Date,
    pub experiment_id: Uuid,
    pub visitors: i64,
    /// `Σx₁`, `Σx₂`.
    pub x_sum: [f64; 2],
    /// `Σx₁²`, `Σx₁x₂`, `Σx₂²`.
    pub x_sq: [f64; 3],
}

/// The [`GoalDelta`] of the visitors of one CUPED stratum (`segment_goal_daily`, dimension
/// [`CUPED_STRATUM`]), with `Σx·converted` and `Σx·revenue` moved by the same rows.
#[derive(Debug, Clone, PartialEq)]
pub struct StratumGoalDelta {
    pub arm_id: Uuid,
    pub goal_id: Uuid,
    pub stratum: String,
    pub day: Date,
    pub experiment_id: Uuid,
    pub converters: i64,
    pub revenue_n: i64,
    pub revenue_sum: f64,
    pub revenue_sumsq: f64,
    /// `Σx₁·y`, `Σx₂·y` with `y` converted (0/1).
    pub converters_x: [f64; 2],
    /// `Σx₁·y`, `Σx₂·y` with `y` the visitor's revenue total.
    pub revenue_x: [f64; 2],
}

/// New visitors of one arm on one day (`arm_daily`).
#[derive(Debug, Clone, PartialEq)]
pub struct ArmDailyDelta {
    pub arm_id: Uuid,
    pub day: Date,
    pub experiment_id: Uuid,
    pub visitors: i64,
}

/// What one visitor's conversions on a goal, in one unit, add in a batch: one row of
/// `goal_conversions` to insert or add to. The revenue cap is not applied here but in
/// the upsert, against the visitor's stored total.
#[derive(Debug, Clone, PartialEq)]
pub struct ConversionDelta {
    pub goal_id: Uuid,
    pub visitor_id: String,
    pub unit: Uuid,
    pub experiment_id: Uuid,
    pub arm_id: Uuid,
    /// Summed values from unsigned calls (the per-visitor cap applies to these).
    pub unsigned_value: f64,
    /// Summed values from signed server calls (not capped).
    pub signed_value: f64,
    /// The earliest conversion time.
    pub at: OffsetDateTime,
    /// The context of the assignment it is attributed to (its segments).
    pub context: StoredContext,
}

impl ConversionDelta {
    fn add(&mut self, value: f64, signed: bool, at: OffsetDateTime) {
        if signed {
            self.signed_value += value;
        } else {
            self.unsigned_value += value;
        }
        self.at = self.at.min(at);
    }
}

/// A conversion parked until its visitor's assignment in the goal's experiment exists
/// (the queue keeps no order, so the exposure may still be on its way).
#[derive(Debug, Clone, PartialEq)]
pub struct PendingConversion {
    pub item_id: String,
    pub goal_id: Uuid,
    pub experiment_id: Uuid,
    pub visitor_id: String,
    pub value: f64,
    pub signed: bool,
    pub at: OffsetDateTime,
}

/// Conversions of one site and day that matched no assignment.
#[derive(Debug, Clone, PartialEq)]
pub struct UnattributedDelta {
    pub site_id: Uuid,
    pub day: Date,
    pub conversions: i64,
}

/// What the batch adds to one (arm, goal)'s totals (`goal_stats`).
#[derive(Debug, Clone, PartialEq)]
pub struct GoalDelta {
    pub arm_id: Uuid,
    pub goal_id: Uuid,
    pub experiment_id: Uuid,
    /// Visitors converting on the goal for the first time.
    pub converters: i64,
    /// Visitors whose revenue on the goal became positive.
    pub revenue_n: i64,
    /// The change of Σ revenue over visitors.
    pub revenue_sum: f64,
    /// The change of Σ revenue² over visitors.
    pub revenue_sumsq: f64,
}

/// What the batch adds to one (arm, goal, day) bucket (`goal_daily`).
#[derive(Debug, Clone, PartialEq)]
pub struct GoalDailyDelta {
    pub arm_id: Uuid,
    pub goal_id: Uuid,
    pub day: Date,
    pub experiment_id: Uuid,
    pub converters: i64,
    pub revenue_sum: f64,
}

/// The goal aggregates' deltas, from the conversion upsert's rows.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct GoalDeltas {
    pub totals: Vec<GoalDelta>,
    pub days: Vec<GoalDailyDelta>,
    /// Sorted by (arm, goal, dimension, value, day).
    pub segments: Vec<SegmentGoalDelta>,
    /// Sorted by (arm, goal, stratum, day).
    pub strata: Vec<StratumGoalDelta>,
}

/// (experiment, visitor) pairs whose assignments to read, as the column arrays the
/// query binds; sorted, each once.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct AssignmentLookup {
    pub experiment_ids: Vec<Uuid>,
    pub visitor_ids: Vec<String>,
}

impl AssignmentLookup {
    fn new(mut pairs: Vec<VisitorKey<'_>>) -> Self {
        pairs.sort_unstable();
        pairs.dedup();
        let mut lookup = Self {
            experiment_ids: Vec::with_capacity(pairs.len()),
            visitor_ids: Vec::with_capacity(pairs.len()),
        };
        for p in pairs {
            lookup.experiment_ids.push(p.experiment_id);
            lookup.visitor_ids.push(p.visitor_id.to_owned());
        }
        lookup
    }

    pub fn is_empty(&self) -> bool {
        self.experiment_ids.is_empty()
    }
}

/// Everything the batch writes once the claims are settled (phase 4).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Plan {
    pub counts: Tally,
    /// Sorted by arm.
    pub arms: Vec<ArmDelta>,
    /// Sorted by (arm, day).
    pub arm_days: Vec<ArmDailyDelta>,
    /// Sorted by (arm, dimension, value, day).
    pub segment_days: Vec<SegmentDailyDelta>,
    /// Sorted by (arm, stratum, day).
    pub strata_days: Vec<StratumDailyDelta>,
    /// The exposures kept as raw events: indexes into [`Fresh::exposures`], the newly
    /// processed ones that count (not duplicates, not conflicts).
    pub kept_exposures: Vec<usize>,
    /// Sorted by (goal, visitor, unit).
    pub conversions: Vec<ConversionDelta>,
    /// In the order of the batch.
    pub pending: Vec<PendingConversion>,
    /// Sorted by (site, day).
    pub unattributed: Vec<UnattributedDelta>,
}

// ---------------------------------------------------------------------------------------
// Keys (field order is sort order: the lock order of the rows they name).

/// The key of an assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct AssignmentKey<'a> {
    experiment_id: Uuid,
    visitor_id: &'a str,
    unit: Uuid,
}

fn assignment_key(row: &AssignmentRow) -> AssignmentKey<'_> {
    AssignmentKey {
        experiment_id: row.experiment_id,
        visitor_id: &row.visitor_id,
        unit: row.unit,
    }
}

/// A visitor in an experiment (all units).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct VisitorKey<'a> {
    experiment_id: Uuid,
    visitor_id: &'a str,
}

/// The key of a row of `goal_conversions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct ConversionKey<'a> {
    goal_id: Uuid,
    visitor_id: &'a str,
    unit: Uuid,
}

/// A unit's new visitors under one snapshot version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct VersionKey {
    unit: Uuid,
    snapshot_version: i64,
}

/// The propensities logged for one arm (identical within a snapshot version).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Logged {
    pub sum: f64,
    pub count: i64,
}

impl Logged {
    fn mean(self) -> f64 {
        self.sum / self.count as f64
    }
}

#[derive(Debug, Default)]
struct VersionTally {
    visitors: i64,
    logged: BTreeMap<Uuid, Logged>,
}

// ---------------------------------------------------------------------------------------
// Phases.

/// Phase 1: every item id of the batch, sorted (the lock order of `ingest_seen_items`)
/// and each once.
pub fn seen_ids(batch: &Batch) -> Vec<String> {
    let mut ids: Vec<String> = batch
        .exposures
        .iter()
        .map(|e| e.id.clone())
        .chain(batch.conversions.iter().map(|c| c.id.clone()))
        .chain(batch.pageviews.iter().map(|p| p.id.clone()))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// The UTC days of the batch's exposures and conversions, sorted, each once: the raw
/// events' partitions its transaction may write to.
pub fn event_days(batch: &Batch) -> Vec<Date> {
    batch.distinct(|e| e.at.date(), |c| c.at.date())
}

/// The items of a batch that count: their id was new to `ingest_seen_items`, and it is
/// its first occurrence in the batch. Everything else is a duplicate.
#[derive(Debug)]
pub struct Fresh<'a> {
    /// Sorted by (experiment, visitor, unit, time, id).
    exposures: Vec<&'a ResolvedExposure>,
    /// The earliest of `exposures` per (experiment, visitor, unit), in the same order.
    claims: Vec<&'a ResolvedExposure>,
    conversions: Vec<&'a ResolvedConversion>,
    /// Per origin: the pageviews counted (as accepted) and the duplicates.
    tally: Tally,
}

impl<'a> Fresh<'a> {
    /// Phase 2: selects the items whose id is in `new_ids` (what `mark_seen` returned),
    /// each id once.
    pub fn select(batch: &'a Batch, new_ids: &HashSet<String>) -> Self {
        let mut counted: HashSet<&str> = HashSet::with_capacity(new_ids.len());
        let mut tally = Tally::default();
        // Whether the item counts; a duplicate of its origin otherwise.
        let mut counts = |id: &'a str, origin: usize| {
            let new = new_ids.contains(id) && counted.insert(id);
            if !new {
                tally.at(origin).duplicates += 1;
            }
            new
        };
        let mut exposures = Vec::with_capacity(batch.exposures.len());
        for e in &batch.exposures {
            if counts(&e.id, e.origin) {
                exposures.push(e);
            }
        }
        let mut conversions = Vec::with_capacity(batch.conversions.len());
        for c in &batch.conversions {
            if counts(&c.id, c.origin) {
                conversions.push(c);
            }
        }
        let mut pageviews = Vec::new();
        for p in &batch.pageviews {
            if counts(&p.id, p.origin) {
                pageviews.push(p.origin);
            }
        }
        for origin in pageviews {
            tally.at(origin).accepted += 1;
        }

        // The earliest exposure per key is the candidate first exposure (ties broken by
        // id, so a replay of the same items claims the same arm).
        exposures.sort_by(|a, b| (a.key(), a.at, &a.id).cmp(&(b.key(), b.at, &b.id)));
        let mut claims = exposures.clone();
        claims.dedup_by(|later, first| later.key() == first.key());
        Self {
            exposures,
            claims,
            conversions,
            tally,
        }
    }

    /// The candidate first exposures, one per (experiment, visitor, unit), sorted by that
    /// key: inserted into `assignments` where the key is free.
    pub fn claims(&self) -> &[&'a ResolvedExposure] {
        &self.claims
    }

    /// The exposures with a new id, sorted by (experiment, visitor, unit, time, id).
    pub fn exposures(&self) -> &[&'a ResolvedExposure] {
        &self.exposures
    }

    /// The conversions with a new id, in batch order: all of them are kept as raw events
    /// (attributed, parked or unattributed alike).
    pub fn conversions(&self) -> &[&'a ResolvedConversion] {
        &self.conversions
    }

    /// Phase 3: the (experiment, visitor) pairs whose assignments [`Fresh::plan`] needs,
    /// given the claims this batch `won`: those it lost (to learn which arm the visitor
    /// holds), and the visitors of its conversions in the experiments of the goals they
    /// match.
    pub fn assignments_to_read(
        &self,
        catalog: &Catalog,
        won: &[AssignmentRow],
    ) -> AssignmentLookup {
        let won: HashSet<AssignmentKey<'_>> = won.iter().map(assignment_key).collect();
        let mut pairs: Vec<VisitorKey<'_>> = self
            .claims
            .iter()
            .filter(|e| !won.contains(&e.key()))
            .map(|e| VisitorKey {
                experiment_id: e.experiment_id,
                visitor_id: &e.visitor_id,
            })
            .collect();
        for c in &self.conversions {
            for goal in catalog.goals.matching(c.site_id, &c.goal) {
                pairs.push(VisitorKey {
                    experiment_id: goal.experiment_id,
                    visitor_id: &c.visitor_id,
                });
            }
        }
        AssignmentLookup::new(pairs)
    }

    /// Phase 4: the deltas, given the claims this batch `won` and the assignments `held`
    /// of the pairs [`Fresh::assignments_to_read`] named (read after the claims; where
    /// both have a key, `won` is taken).
    pub fn plan(&self, catalog: &Catalog, won: &[AssignmentRow], held: &[AssignmentRow]) -> Plan {
        let mut counts = self.tally.clone();
        let mut holder: HashMap<AssignmentKey<'_>, &AssignmentRow> =
            HashMap::with_capacity(won.len() + held.len());
        for row in won.iter().chain(held) {
            holder.entry(assignment_key(row)).or_insert(row);
        }

        // Exposures: counted (and kept as raw events) when they agree with the arm the
        // visitor holds, a conflict otherwise (the first exposure fixed the arm).
        let mut arms: BTreeMap<Uuid, ArmDelta> = BTreeMap::new();
        let mut kept_exposures = Vec::with_capacity(self.exposures.len());
        for (i, e) in self.exposures.iter().enumerate() {
            if holder.get(&e.key()).map(|a| a.arm_id) == Some(e.arm_id) {
                counts.at(e.origin).accepted += 1;
                kept_exposures.push(i);
            } else {
                let counts = counts.at(e.origin);
                counts.duplicates += 1;
                counts.conflicts += 1;
                if let Some(arm) = arm_entry(&mut arms, catalog, e.arm_id) {
                    arm.conflicts += 1;
                }
            }
        }

        // New visitors (the claims won): per arm, per (arm, day), and per (unit, snapshot
        // version) for the expected visitors.
        let mut arm_days: BTreeMap<(Uuid, Date), ArmDailyDelta> = BTreeMap::new();
        let mut segment_days: BTreeMap<(Uuid, Dimension, &str, Date), i64> = BTreeMap::new();
        let mut strata_days: BTreeMap<(Uuid, String, Date), StratumDailyDelta> = BTreeMap::new();
        let mut versions: BTreeMap<VersionKey, VersionTally> = BTreeMap::new();
        for row in won {
            let key = assignment_key(row);
            let Ok(i) = self.claims.binary_search_by(|c| c.key().cmp(&key)) else {
                continue; // the database returns only keys it was given
            };
            let e = self.claims[i];
            if let Some(arm) = arm_entry(&mut arms, catalog, row.arm_id) {
                arm.visitors += 1;
                arm.propensity_sum += e.propensity;
            }
            let day = e.at.date();
            arm_days
                .entry((row.arm_id, day))
                .or_insert(ArmDailyDelta {
                    arm_id: row.arm_id,
                    day,
                    experiment_id: row.experiment_id,
                    visitors: 0,
                })
                .visitors += 1;
            // The context this batch inserted with the assignment (the claim's).
            for &dimension in Dimension::ALL {
                *segment_days
                    .entry((row.arm_id, dimension, e.context.value(dimension), day))
                    .or_default() += 1;
            }
            let stratum = cuped_stratum(&e.context);
            let x = covariates(&e.context);
            let s = strata_days
                .entry((row.arm_id, stratum.clone(), day))
                .or_insert_with(|| StratumDailyDelta {
                    arm_id: row.arm_id,
                    stratum,
                    day,
                    experiment_id: row.experiment_id,
                    visitors: 0,
                    x_sum: [0.0; 2],
                    x_sq: [0.0; 3],
                });
            s.visitors += 1;
            s.x_sum[0] += x[0];
            s.x_sum[1] += x[1];
            s.x_sq[0] += x[0] * x[0];
            s.x_sq[1] += x[0] * x[1];
            s.x_sq[2] += x[1] * x[1];
            let version = versions
                .entry(VersionKey {
                    unit: row.unit,
                    snapshot_version: e.snapshot_version,
                })
                .or_default();
            version.visitors += 1;
            let logged = version.logged.entry(row.arm_id).or_default();
            logged.sum += e.propensity;
            logged.count += 1;
        }
        for (key, tally) in &versions {
            let Some(all) = catalog.unit_arms.get(&key.unit) else {
                continue;
            };
            for (arm_id, share) in expected_shares(all, &tally.logged) {
                if let Some(arm) = arm_entry(&mut arms, catalog, arm_id) {
                    arm.expected_visitors += tally.visitors as f64 * share;
                }
            }
        }

        // Conversions: every live goal of the site matching the item's goal, attributed
        // to each arm the visitor holds in that goal's experiment; parked where the
        // visitor holds none yet.
        let mut units_held: HashMap<VisitorKey<'_>, Vec<&AssignmentRow>> = HashMap::new();
        if !self.conversions.is_empty() {
            for (key, row) in &holder {
                units_held
                    .entry(VisitorKey {
                        experiment_id: key.experiment_id,
                        visitor_id: key.visitor_id,
                    })
                    .or_default()
                    .push(row);
            }
        }
        let mut conversions: BTreeMap<ConversionKey<'_>, ConversionDelta> = BTreeMap::new();
        let mut pending = Vec::new();
        let mut unattributed: BTreeMap<(Uuid, Date), UnattributedDelta> = BTreeMap::new();
        for c in &self.conversions {
            counts.at(c.origin).accepted += 1;
            let mut attributed = false;
            for goal in catalog.goals.matching(c.site_id, &c.goal) {
                let held = units_held
                    .get(&VisitorKey {
                        experiment_id: goal.experiment_id,
                        visitor_id: &c.visitor_id,
                    })
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                if held.is_empty() {
                    pending.push(PendingConversion {
                        item_id: c.id.clone(),
                        goal_id: goal.goal_id,
                        experiment_id: goal.experiment_id,
                        visitor_id: c.visitor_id.clone(),
                        value: c.value,
                        signed: c.signed,
                        at: c.at,
                    });
                }
                for a in held {
                    attributed = true;
                    conversions
                        .entry(ConversionKey {
                            goal_id: goal.goal_id,
                            visitor_id: &c.visitor_id,
                            unit: a.unit,
                        })
                        .or_insert_with(|| empty_conversion(goal, &c.visitor_id, a, c.at))
                        .add(c.value, c.signed, c.at);
                }
            }
            if !attributed {
                counts.at(c.origin).unattributed += 1;
                let day = c.at.date();
                unattributed
                    .entry((c.site_id, day))
                    .or_insert(UnattributedDelta {
                        site_id: c.site_id,
                        day,
                        conversions: 0,
                    })
                    .conversions += 1;
            }
        }

        let segment_days = segment_days
            .into_iter()
            .map(
                |((arm_id, dimension, value, day), visitors)| SegmentDailyDelta {
                    arm_id,
                    dimension,
                    value: value.to_owned(),
                    day,
                    experiment_id: catalog
                        .arms
                        .get(&arm_id)
                        .map_or(Uuid::nil(), |a| a.experiment_id),
                    visitors,
                },
            )
            .collect();
        Plan {
            counts,
            arms: arms.into_values().collect(),
            arm_days: arm_days.into_values().collect(),
            segment_days,
            strata_days: strata_days.into_values().collect(),
            kept_exposures,
            conversions: conversions.into_values().collect(),
            pending,
            unattributed: unattributed.into_values().collect(),
        }
    }
}

/// The arm's delta, created on first use; `None` for an arm the catalog does not know
/// (cannot happen: every arm here came from the batch's experiments).
fn arm_entry<'m>(
    arms: &'m mut BTreeMap<Uuid, ArmDelta>,
    catalog: &Catalog,
    arm_id: Uuid,
) -> Option<&'m mut ArmDelta> {
    let info = catalog.arms.get(&arm_id)?;
    Some(arms.entry(arm_id).or_insert(ArmDelta {
        arm_id,
        experiment_id: info.experiment_id,
        visitors: 0,
        propensity_sum: 0.0,
        expected_visitors: 0.0,
        conflicts: 0,
    }))
}

fn empty_conversion(
    goal: &GoalRef,
    visitor_id: &str,
    assignment: &AssignmentRow,
    at: OffsetDateTime,
) -> ConversionDelta {
    ConversionDelta {
        goal_id: goal.goal_id,
        visitor_id: visitor_id.to_owned(),
        unit: assignment.unit,
        experiment_id: goal.experiment_id,
        arm_id: assignment.arm_id,
        unsigned_value: 0.0,
        signed_value: 0.0,
        at,
        context: assignment.context.clone(),
    }
}

/// Phase 5: the goal aggregates' deltas from the rows `upsert_conversions` returned for
/// `conversions` (sorted by key, as [`Fresh::plan`] and [`attribute_parked`] give them).
/// A row reports the visitor's revenue on the goal before and after the batch, the cap
/// already applied, so the moments move by exactly what the row changed.
pub fn goal_deltas(conversions: &[ConversionDelta], rows: &[ConversionRow]) -> GoalDeltas {
    let mut totals: BTreeMap<(Uuid, Uuid), GoalDelta> = BTreeMap::new();
    let mut days: BTreeMap<(Uuid, Uuid, Date), GoalDailyDelta> = BTreeMap::new();
    let mut segments: BTreeMap<(Uuid, Uuid, Dimension, &str, Date), SegmentGoalDelta> =
        BTreeMap::new();
    let mut strata: BTreeMap<(Uuid, Uuid, String, Date), StratumGoalDelta> = BTreeMap::new();
    for row in rows {
        let key = ConversionKey {
            goal_id: row.goal_id,
            visitor_id: &row.visitor_id,
            unit: row.unit,
        };
        let Ok(i) = conversions.binary_search_by(|c| {
            ConversionKey {
                goal_id: c.goal_id,
                visitor_id: &c.visitor_id,
                unit: c.unit,
            }
            .cmp(&key)
        }) else {
            continue; // the database returns only keys it was given
        };
        let (experiment_id, day) = (conversions[i].experiment_id, conversions[i].at.date());
        let converters = i64::from(row.inserted);
        let revenue_n = i64::from(row.revenue > 0.0 && row.prev_revenue <= 0.0);
        let delta = row.revenue - row.prev_revenue;
        let delta_sq = row.revenue * row.revenue - row.prev_revenue * row.prev_revenue;
        for &dimension in Dimension::ALL {
            let value = conversions[i].context.value(dimension);
            let s = segments
                .entry((row.arm_id, row.goal_id, dimension, value, day))
                .or_insert_with(|| SegmentGoalDelta {
                    arm_id: row.arm_id,
                    goal_id: row.goal_id,
                    dimension,
                    value: value.to_owned(),
                    day,
                    experiment_id,
                    converters: 0,
                    revenue_n: 0,
                    revenue_sum: 0.0,
                    revenue_sumsq: 0.0,
                });
            s.converters += converters;
            s.revenue_n += revenue_n;
            s.revenue_sum += delta;
            s.revenue_sumsq += delta_sq;
        }
        // The CUPED stratum: y is converted (0/1) or the revenue total, so a first
        // conversion adds x to Σx·converted and a revenue change t₀ → t₁ adds x·(t₁ − t₀).
        let context = &conversions[i].context;
        let stratum = cuped_stratum(context);
        let x = covariates(context);
        let s = strata
            .entry((row.arm_id, row.goal_id, stratum.clone(), day))
            .or_insert_with(|| StratumGoalDelta {
                arm_id: row.arm_id,
                goal_id: row.goal_id,
                stratum,
                day,
                experiment_id,
                converters: 0,
                revenue_n: 0,
                revenue_sum: 0.0,
                revenue_sumsq: 0.0,
                converters_x: [0.0; 2],
                revenue_x: [0.0; 2],
            });
        s.converters += converters;
        s.revenue_n += revenue_n;
        s.revenue_sum += delta;
        s.revenue_sumsq += delta_sq;
        for (k, xk) in x.iter().enumerate() {
            s.converters_x[k] += xk * converters as f64;
            s.revenue_x[k] += xk * delta;
        }
        let total = totals
            .entry((row.arm_id, row.goal_id))
            .or_insert(GoalDelta {
                arm_id: row.arm_id,
                goal_id: row.goal_id,
                experiment_id,
                converters: 0,
                revenue_n: 0,
                revenue_sum: 0.0,
                revenue_sumsq: 0.0,
            });
        total.converters += converters;
        total.revenue_n += revenue_n;
        total.revenue_sum += delta;
        total.revenue_sumsq += delta_sq;
        let daily = days
            .entry((row.arm_id, row.goal_id, day))
            .or_insert(GoalDailyDelta {
                arm_id: row.arm_id,
                goal_id: row.goal_id,
                day,
                experiment_id,
                converters: 0,
                revenue_sum: 0.0,
            });
        daily.converters += converters;
        daily.revenue_sum += delta;
    }
    GoalDeltas {
        totals: totals.into_values().collect(),
        days: days.into_values().collect(),
        segments: segments.into_values().collect(),
        strata: strata.into_values().collect(),
    }
}

/// The (experiment, visitor) pairs of parked conversions, each once: a visitor with
/// several parked conversions must get its assignments back once, or each value would
/// count that many times.
pub fn parked_pairs(parked: &[PendingRow]) -> AssignmentLookup {
    AssignmentLookup::new(
        parked
            .iter()
            .map(|p| VisitorKey {
                experiment_id: p.experiment_id,
                visitor_id: &p.visitor_id,
            })
            .collect(),
    )
}

/// Parked conversions attributed to the assignments `held` of their visitors (read for
/// [`parked_pairs`]): one [`ConversionDelta`] per (goal, visitor, unit), sorted.
pub fn attribute_parked(parked: &[PendingRow], held: &[AssignmentRow]) -> Vec<ConversionDelta> {
    let mut units_held: HashMap<VisitorKey<'_>, Vec<&AssignmentRow>> = HashMap::new();
    for a in held {
        units_held
            .entry(VisitorKey {
                experiment_id: a.experiment_id,
                visitor_id: &a.visitor_id,
            })
            .or_default()
            .push(a);
    }
    let mut conversions: BTreeMap<ConversionKey<'_>, ConversionDelta> = BTreeMap::new();
    for p in parked {
        let Some(held) = units_held.get(&VisitorKey {
            experiment_id: p.experiment_id,
            visitor_id: &p.visitor_id,
        }) else {
            continue;
        };
        let goal = GoalRef {
            goal_id: p.goal_id,
            experiment_id: p.experiment_id,
        };
        for a in held {
            conversions
                .entry(ConversionKey {
                    goal_id: p.goal_id,
                    visitor_id: &p.visitor_id,
                    unit: a.unit,
                })
                .or_insert_with(|| empty_conversion(&goal, &p.visitor_id, a, p.at))
                .add(p.value, p.signed, p.at);
        }
    }
    conversions.into_values().collect()
}

/// The share of a unit's new visitors each arm should have received under one snapshot
/// version. Arms seen in the batch report their propensity (the mean of the logged
/// values — they are identical within a version); the probability mass left over is
/// split evenly between the arms not seen (exact with two arms; an estimate beyond).
pub fn expected_shares(all: &[Uuid], logged: &BTreeMap<Uuid, Logged>) -> Vec<(Uuid, f64)> {
    let known: f64 = logged.values().map(|l| l.mean()).sum();
    let unseen = all.iter().filter(|a| !logged.contains_key(a)).count();
    let rest = if unseen == 0 {
        0.0
    } else {
        ((1.0 - known) / unseen as f64).max(0.0)
    };
    all.iter()
        .map(|arm| {
            let share = logged.get(arm).map(|l| l.mean()).unwrap_or(rest);
            (*arm, share)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// The raw-event quota (docs/ingestion.md, "Raw-event quota"): per (site, UTC day), at most
// `raw_events_per_site_day` raw rows are kept. The writer counts the batch's rows per key
// ([`raw_day_counts`]), adds them to `raw_event_days.kept` in one upsert that returns the
// new totals, and from those [`raw_overflow`] says how many rows of each key are over the
// quota and [`raw_rows_kept`] which ones are left out. The aggregates are not affected.

/// A (site, UTC day) of raw events: the key of `raw_event_days` (field order is sort
/// order, the lock order of its rows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RawDay {
    pub site_id: Uuid,
    pub day: Date,
}

/// A raw row the batch would insert, as the quota sees it: its (site, day) and its place
/// in the order of dropping (time, then item id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawRow<'a> {
    pub site_id: Uuid,
    pub at: OffsetDateTime,
    pub id: &'a str,
}

impl RawRow<'_> {
    /// Its (site, UTC day).
    pub fn key(&self) -> RawDay {
        RawDay {
            site_id: self.site_id,
            day: self.at.date(),
        }
    }
}

/// The number of `rows` per (site, day), sorted by key.
pub fn raw_day_counts(rows: &[RawRow<'_>]) -> Vec<(RawDay, i64)> {
    let mut counts: BTreeMap<RawDay, i64> = BTreeMap::new();
    for r in rows {
        *counts.entry(r.key()).or_default() += 1;
    }
    counts.into_iter().collect()
}

/// The rows over `quota` per key, given the batch's `counts` and each key's `kept`
/// total after the upsert (`kept_after`, the batch's rows included): `min(count,
/// kept − quota)` where that is positive (the batches committed before this one were
/// kept first). Only keys with an overflow, sorted. A key the upsert did not return
/// (it returns every key it was given) keeps its rows.
pub fn raw_overflow(
    counts: &[(RawDay, i64)],
    kept_after: &HashMap<RawDay, i64>,
    quota: i64,
) -> Vec<(RawDay, i64)> {
    counts
        .iter()
        .filter_map(|&(key, count)| {
            let kept = *kept_after.get(&key)?;
            let over = count.min(kept.saturating_sub(quota));
            (over > 0).then_some((key, over))
        })
        .collect()
}

/// Which of `rows` to insert (`true`) given the `overflow` per key ([`raw_overflow`]):
/// of each key's rows, the `overflow` last by (time, item id) are left out, so the quota
/// keeps a day's earliest events of the batch, whether exposures or conversions.
pub fn raw_rows_kept(rows: &[RawRow<'_>], overflow: &[(RawDay, i64)]) -> Vec<bool> {
    let mut keep = vec![true; rows.len()];
    for &(key, over) in overflow {
        let mut of_key: Vec<usize> = (0..rows.len()).filter(|&i| rows[i].key() == key).collect();
        // Latest first; ids are unique within a batch, so the order is total.
        of_key.sort_by(|&a, &b| (rows[b].at, rows[b].id).cmp(&(rows[a].at, rows[a].id)));
        for &i in of_key
            .iter()
            .take(usize::try_from(over).unwrap_or(usize::MAX))
        {
            keep[i] = false;
        }
    }
    keep
}

#[cfg(test)]
mod tests {
    //! The phases run as the writer runs them, against a stand-in for the three
    //! statements whose answers they use (see [`Run`]).

    use super::*;

    const SITE: Uuid = Uuid::from_u128(0x5173);
    const EXPERIMENT: Uuid = Uuid::from_u128(0xe1);
    const ARM_A: Uuid = Uuid::from_u128(0xa);
    const ARM_B: Uuid = Uuid::from_u128(0xb);
    const GOAL: Uuid = Uuid::from_u128(0x90a1);

    fn at(seconds: i64) -> OffsetDateTime {
        // 2026-12-01 10:00:00 UTC.
        OffsetDateTime::from_unix_timestamp(1_796_119_200 + seconds).unwrap()
    }

    fn exposure(id: &str, visitor: &str, arm_id: Uuid, seconds: i64) -> ResolvedExposure {
        ResolvedExposure {
            id: id.to_owned(),
            site_id: SITE,
            experiment_id: EXPERIMENT,
            element_id: None,
            unit: EXPERIMENT,
            arm_id,
            visitor_id: visitor.to_owned(),
            propensity: if arm_id == ARM_A { 0.7 } else { 0.3 },
            snapshot_version: 4,
            at: at(seconds),
            context: StoredContext::default(),
            origin: 0,
        }
    }

    fn conversion(
        id: &str,
        visitor: &str,
        value: f64,
        signed: bool,
        seconds: i64,
    ) -> ResolvedConversion {
        ResolvedConversion {
            id: id.to_owned(),
            site_id: SITE,
            visitor_id: visitor.to_owned(),
            goal: "purchase".to_owned(),
            value,
            currency: None,
            signed,
            custom: false,
            at: at(seconds),
            origin: 0,
        }
    }

    fn pageviews(ids: &[&str]) -> Vec<Pageview> {
        ids.iter()
            .map(|id| Pageview {
                id: (*id).to_owned(),
                origin: 0,
            })
            .collect()
    }

    fn assignment(visitor: &str, arm_id: Uuid) -> AssignmentRow {
        AssignmentRow {
            experiment_id: EXPERIMENT,
            visitor_id: visitor.to_owned(),
            unit: EXPERIMENT,
            arm_id,
            context: StoredContext::default(),
        }
    }

    /// One two-arm experiment (arms A, B, one unit) with a custom goal "purchase".
    fn catalog() -> Catalog {
        let info = ArmInfo {
            experiment_id: EXPERIMENT,
            unit: EXPERIMENT,
        };
        Catalog {
            arms: HashMap::from([(ARM_A, info), (ARM_B, info)]),
            unit_arms: HashMap::from([(EXPERIMENT, vec![ARM_A, ARM_B])]),
            goals: GoalIndex::new(&[LiveGoalRow {
                goal_id: GOAL,
                experiment_id: EXPERIMENT,
                site_id: SITE,
                trigger: "custom".to_owned(),
                name: "Purchase".to_owned(),
                target: "purchase".to_owned(),
            }]),
        }
    }

    /// What the writer's statements would answer, given the ids already seen and the
    /// assignments already stored.
    struct Run {
        seen_ids: Vec<String>,
        claims: Vec<ResolvedExposure>,
        lookup: AssignmentLookup,
        plan: Plan,
    }

    fn run(batch: &Batch, seen_before: &[&str], stored: &[AssignmentRow]) -> Run {
        let catalog = catalog();
        let seen_ids = seen_ids(batch);
        // mark_seen: ON CONFLICT DO NOTHING RETURNING.
        let new_ids: HashSet<String> = seen_ids
            .iter()
            .filter(|id| !seen_before.contains(&id.as_str()))
            .cloned()
            .collect();
        let fresh = Fresh::select(batch, &new_ids);
        // insert_assignments: ON CONFLICT DO NOTHING RETURNING.
        let taken: HashSet<AssignmentKey<'_>> = stored.iter().map(assignment_key).collect();
        let won: Vec<AssignmentRow> = fresh
            .claims()
            .iter()
            .filter(|e| !taken.contains(&e.key()))
            .map(|e| AssignmentRow {
                experiment_id: e.experiment_id,
                visitor_id: e.visitor_id.clone(),
                unit: e.unit,
                arm_id: e.arm_id,
                context: e.context.clone(),
            })
            .collect();
        // assignments_of, after the claims: sees the stored rows and the batch's own.
        let lookup = fresh.assignments_to_read(&catalog, &won);
        let held: Vec<AssignmentRow> = stored
            .iter()
            .chain(&won)
            .filter(|a| {
                lookup
                    .experiment_ids
                    .iter()
                    .zip(&lookup.visitor_ids)
                    .any(|(x, v)| *x == a.experiment_id && *v == a.visitor_id)
            })
            .cloned()
            .collect();
        let plan = fresh.plan(&catalog, &won, &held);
        Run {
            seen_ids,
            claims: fresh.claims().iter().map(|e| (*e).clone()).collect(),
            lookup,
            plan,
        }
    }

    fn arm(
        arm_id: Uuid,
        visitors: i64,
        propensity_sum: f64,
        expected: f64,
        conflicts: i64,
    ) -> ArmDelta {
        ArmDelta {
            arm_id,
            experiment_id: EXPERIMENT,
            visitors,
            propensity_sum,
            expected_visitors: expected,
            conflicts,
        }
    }

    /// Arm deltas compared field by field, the sums within rounding (1 − 0.7 is not 0.3).
    fn assert_arms(actual: &[ArmDelta], expected: &[ArmDelta]) {
        assert_eq!(actual.len(), expected.len(), "{actual:?}");
        for (a, e) in actual.iter().zip(expected) {
            assert_eq!(
                (a.arm_id, a.experiment_id, a.visitors, a.conflicts),
                (e.arm_id, e.experiment_id, e.visitors, e.conflicts),
                "{a:?}"
            );
            assert!((a.propensity_sum - e.propensity_sum).abs() < 1e-12, "{a:?}");
            assert!(
                (a.expected_visitors - e.expected_visitors).abs() < 1e-12,
                "{a:?}"
            );
        }
    }

    fn conversion_row(visitor: &str, arm_id: Uuid, prev: f64, revenue: f64) -> ConversionRow {
        ConversionRow {
            goal_id: GOAL,
            visitor_id: visitor.to_owned(),
            unit: EXPERIMENT,
            arm_id,
            revenue,
            prev_revenue: prev,
            inserted: prev == 0.0,
        }
    }

    #[test]
    fn the_first_exposure_fixes_the_arm_and_a_later_one_for_another_arm_is_a_conflict() {
        // The later exposure comes first in the batch: time decides, not batch order.
        let batch = Batch {
            exposures: vec![
                exposure("x2", "v1", ARM_B, 5),
                exposure("x1", "v1", ARM_A, 0),
            ],
            ..Batch::default()
        };
        let r = run(&batch, &[], &[]);
        assert_eq!(r.claims.len(), 1);
        assert_eq!((r.claims[0].id.as_str(), r.claims[0].arm_id), ("x1", ARM_A));
        assert_eq!(
            r.plan.counts.of(0),
            Counts {
                accepted: 1,
                duplicates: 1,
                conflicts: 1,
                unattributed: 0,
                raw_dropped: 0,
            }
        );
        // One new visitor on A (propensity 0.7 logged, so B was expected 0.3 of it); the
        // exposure to B is only a conflict.
        assert_arms(
            &r.plan.arms,
            &[arm(ARM_A, 1, 0.7, 0.7, 0), arm(ARM_B, 0, 0.0, 0.3, 1)],
        );
        assert_eq!(
            r.plan.arm_days,
            vec![ArmDailyDelta {
                arm_id: ARM_A,
                day: at(0).date(),
                experiment_id: EXPERIMENT,
                visitors: 1
            }]
        );
    }

    #[test]
    fn a_stored_assignment_keeps_its_arm_across_batches() {
        let batch = Batch {
            exposures: vec![
                exposure("x3", "v1", ARM_B, 60),
                exposure("x4", "v1", ARM_A, 61),
            ],
            ..Batch::default()
        };
        let r = run(&batch, &[], &[assignment("v1", ARM_A)]);
        // The claim (B, the earlier) lost: the visitor's arm is read back, not changed.
        assert_eq!(r.claims[0].arm_id, ARM_B);
        assert_eq!(r.lookup.experiment_ids, vec![EXPERIMENT]);
        assert_eq!(r.lookup.visitor_ids, vec!["v1".to_owned()]);
        // No new visitor; the repeat exposure to A is accepted, the one to B a conflict.
        assert_eq!(
            r.plan.counts.of(0),
            Counts {
                accepted: 1,
                duplicates: 1,
                conflicts: 1,
                unattributed: 0,
                raw_dropped: 0,
            }
        );
        assert_arms(&r.plan.arms, &[arm(ARM_B, 0, 0.0, 0.0, 1)]);
        assert!(r.plan.arm_days.is_empty());
    }

    #[test]
    fn new_visitors_sum_propensities_and_expected_visitors_per_arm() {
        let batch = Batch {
            exposures: vec![
                exposure("x1", "v1", ARM_A, 0),
                exposure("x2", "v2", ARM_A, 1),
                exposure("x3", "v3", ARM_B, 2),
            ],
            ..Batch::default()
        };
        let r = run(&batch, &[], &[]);
        // Three new visitors: A's logged share 0.7 and B's 0.3 give 2.1 and 0.9 expected.
        let [a, b] = r.plan.arms.as_slice() else {
            panic!("two arm deltas expected, got {:?}", r.plan.arms)
        };
        assert_eq!(
            (a.arm_id, a.visitors, b.arm_id, b.visitors),
            (ARM_A, 2, ARM_B, 1)
        );
        assert!((a.propensity_sum - 1.4).abs() < 1e-12);
        assert!((b.propensity_sum - 0.3).abs() < 1e-12);
        assert!((a.expected_visitors - 2.1).abs() < 1e-12);
        assert!((b.expected_visitors - 0.9).abs() < 1e-12);
        assert_eq!(r.plan.counts.of(0).accepted, 3);
    }

    #[test]
    fn a_conversion_counts_once_per_visitor_and_goal_and_revenue_adds_up() {
        // v1 converts twice (one browser call, one signed server call), v2 once.
        let batch = Batch {
            conversions: vec![
                conversion("c1", "v1", 10.0, false, 30),
                conversion("c2", "v1", 5.0, true, 20),
                conversion("c3", "v2", 30.0, false, 40),
            ],
            ..Batch::default()
        };
        let stored = [assignment("v1", ARM_A), assignment("v2", ARM_A)];
        let r = run(&batch, &[], &stored);
        assert_eq!(r.plan.counts.of(0).accepted, 3);
        assert_eq!(r.plan.counts.of(0).unattributed, 0);
        assert!(r.plan.pending.is_empty());
        // One row per (goal, visitor, unit): v1's values summed apart (the cap applies to
        // the unsigned part only), at the earliest time.
        assert_eq!(
            r.plan.conversions,
            vec![
                ConversionDelta {
                    goal_id: GOAL,
                    visitor_id: "v1".to_owned(),
                    unit: EXPERIMENT,
                    experiment_id: EXPERIMENT,
                    arm_id: ARM_A,
                    unsigned_value: 10.0,
                    signed_value: 5.0,
                    at: at(20),
                    context: StoredContext::default(),
                },
                ConversionDelta {
                    goal_id: GOAL,
                    visitor_id: "v2".to_owned(),
                    unit: EXPERIMENT,
                    experiment_id: EXPERIMENT,
                    arm_id: ARM_A,
                    unsigned_value: 30.0,
                    signed_value: 0.0,
                    at: at(40),
                    context: StoredContext::default(),
                },
            ]
        );

        // The upsert inserts both rows; say the cap held v1's unsigned 10 to 8.
        let rows = [
            conversion_row("v1", ARM_A, 0.0, 13.0),
            conversion_row("v2", ARM_A, 0.0, 30.0),
        ];
        let goals = goal_deltas(&r.plan.conversions, &rows);
        assert_eq!(
            goals.totals,
            vec![GoalDelta {
                arm_id: ARM_A,
                goal_id: GOAL,
                experiment_id: EXPERIMENT,
                converters: 2,
                revenue_n: 2,
                revenue_sum: 43.0,
                revenue_sumsq: 13.0 * 13.0 + 30.0 * 30.0,
            }]
        );
        // Days come from each visitor's earliest conversion: both on the same day.
        assert_eq!(
            goals.days,
            vec![GoalDailyDelta {
                arm_id: ARM_A,
                goal_id: GOAL,
                day: at(20).date(),
                experiment_id: EXPERIMENT,
                converters: 2,
                revenue_sum: 43.0,
            }]
        );

        // A later batch: v1 already converted (13), now 20. Not a new converter; the sum
        // moves by 7 and the sum of squares by 20² − 13².
        let later = goal_deltas(
            &r.plan.conversions[..1],
            &[conversion_row("v1", ARM_A, 13.0, 20.0)],
        );
        assert_eq!(later.totals[0].converters, 0);
        assert_eq!(later.totals[0].revenue_n, 0);
        assert_eq!(later.totals[0].revenue_sum, 7.0);
        assert_eq!(later.totals[0].revenue_sumsq, 400.0 - 169.0);
    }

    #[test]
    fn an_early_conversion_is_parked_not_counted_then_attributed_later() {
        let batch = Batch {
            conversions: vec![conversion("c1", "v9", 12.5, false, 0)],
            ..Batch::default()
        };
        let r = run(&batch, &[], &[]);
        assert!(r.plan.conversions.is_empty());
        assert_eq!(
            r.plan.pending,
            vec![PendingConversion {
                item_id: "c1".to_owned(),
                goal_id: GOAL,
                experiment_id: EXPERIMENT,
                visitor_id: "v9".to_owned(),
                value: 12.5,
                signed: false,
                at: at(0),
            }]
        );
        assert_eq!(
            (
                r.plan.counts.of(0).accepted,
                r.plan.counts.of(0).unattributed
            ),
            (1, 1)
        );
        assert_eq!(
            r.plan.unattributed,
            vec![UnattributedDelta {
                site_id: SITE,
                day: at(0).date(),
                conversions: 1
            }]
        );

        // The exposure arrives; the parked row (twice, as two items) finds the arm.
        let parked: Vec<PendingRow> = [("c1", 12.5), ("c2", 2.5)]
            .iter()
            .map(|(_, value)| PendingRow {
                goal_id: GOAL,
                experiment_id: EXPERIMENT,
                visitor_id: "v9".to_owned(),
                value: *value,
                signed: false,
                at: at(0),
            })
            .collect();
        let lookup = parked_pairs(&parked);
        assert_eq!(lookup.visitor_ids, vec!["v9".to_owned()]);
        let attributed = attribute_parked(&parked, &[assignment("v9", ARM_B)]);
        assert_eq!(attributed.len(), 1);
        assert_eq!(attributed[0].arm_id, ARM_B);
        assert_eq!(attributed[0].unsigned_value, 15.0);
        assert_eq!(attributed[0].signed_value, 0.0);
        // Still no assignment: nothing to attribute.
        assert!(attribute_parked(&parked, &[]).is_empty());
    }

    #[test]
    fn a_conversion_in_the_batch_of_its_first_exposure_is_attributed_not_parked() {
        let batch = Batch {
            exposures: vec![exposure("x1", "v1", ARM_B, 0)],
            conversions: vec![conversion("c1", "v1", 4.0, false, 1)],
            ..Batch::default()
        };
        let r = run(&batch, &[], &[]);
        assert!(r.plan.pending.is_empty());
        assert_eq!(r.plan.conversions.len(), 1);
        assert_eq!(r.plan.conversions[0].arm_id, ARM_B);
        assert_eq!(r.plan.conversions[0].unsigned_value, 4.0);
        assert_eq!(
            r.plan.counts.of(0),
            Counts {
                accepted: 2,
                duplicates: 0,
                conflicts: 0,
                unattributed: 0,
                raw_dropped: 0,
            }
        );
    }

    #[test]
    fn a_conversion_matching_no_live_goal_is_unattributed_and_not_parked() {
        let mut other = conversion("c1", "v1", 1.0, false, 0);
        other.goal = "signup".to_owned();
        let batch = Batch {
            conversions: vec![other],
            ..Batch::default()
        };
        let r = run(&batch, &[], &[assignment("v1", ARM_A)]);
        assert!(r.lookup.is_empty());
        assert!(r.plan.pending.is_empty());
        assert!(r.plan.conversions.is_empty());
        assert_eq!(
            (
                r.plan.counts.of(0).accepted,
                r.plan.counts.of(0).unattributed
            ),
            (1, 1)
        );
    }

    #[test]
    fn merged_batches_count_per_origin_as_if_written_one_after_the_other() {
        let first = Batch {
            exposures: vec![exposure("x1", "v1", ARM_A, 0)],
            conversions: vec![
                conversion("c1", "v1", 5.0, false, 1),
                conversion("c2", "v9", 1.0, false, 1),
            ],
            pageviews: pageviews(&["p1"]),
        };
        // A redelivery of x1 and p1, an exposure of v1 to the other arm, a new visitor.
        let second = Batch {
            exposures: vec![
                exposure("x1", "v1", ARM_A, 0),
                exposure("x2", "v1", ARM_B, 2),
                exposure("x3", "v2", ARM_B, 2),
            ],
            conversions: vec![conversion("c3", "v2", 2.0, false, 3)],
            pageviews: pageviews(&["p1", "p2"]),
        };
        let merged = run(&Batch::merge([&first, &second]), &[], &[]);

        let alone = run(&first, &[], &[]);
        let seen: Vec<&str> = alone.seen_ids.iter().map(String::as_str).collect();
        let then = run(&second, &seen, &[assignment("v1", ARM_A)]);
        assert_eq!(merged.plan.counts.of(0), alone.plan.counts.of(0));
        assert_eq!(merged.plan.counts.of(1), then.plan.counts.of(0));
        assert_eq!(
            merged.plan.counts.of(0),
            Counts {
                accepted: 4,
                duplicates: 0,
                conflicts: 0,
                unattributed: 1,
                raw_dropped: 0,
            }
        );
        assert_eq!(
            merged.plan.counts.of(1),
            Counts {
                accepted: 3,
                duplicates: 3,
                conflicts: 1,
                unattributed: 0,
                raw_dropped: 0,
            }
        );
        assert_eq!(merged.plan.counts.of(2), Counts::default());
        // The deltas are the two batches' together.
        let visitors_conflicts = |arms: &[ArmDelta]| -> Vec<(Uuid, i64, i64)> {
            arms.iter()
                .map(|a| (a.arm_id, a.visitors, a.conflicts))
                .collect()
        };
        assert_eq!(
            visitors_conflicts(&merged.plan.arms),
            vec![(ARM_A, 1, 0), (ARM_B, 1, 1)]
        );
        let mut conversions: Vec<(String, f64)> = alone
            .plan
            .conversions
            .iter()
            .chain(&then.plan.conversions)
            .map(|c| (c.visitor_id.clone(), c.unsigned_value))
            .collect();
        conversions.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            merged
                .plan
                .conversions
                .iter()
                .map(|c| (c.visitor_id.clone(), c.unsigned_value))
                .collect::<Vec<_>>(),
            conversions
        );
        assert_eq!(merged.plan.pending.len(), 1);
        assert_eq!(merged.plan.pending[0].item_id, "c2");
    }

    #[test]
    fn an_item_id_repeated_in_one_batch_counts_once() {
        let batch = Batch {
            exposures: vec![
                exposure("x1", "v1", ARM_A, 0),
                exposure("x1", "v2", ARM_B, 0),
            ],
            conversions: vec![
                conversion("c1", "v1", 3.0, false, 1),
                conversion("c1", "v1", 3.0, false, 1),
            ],
            pageviews: pageviews(&["p1", "p1", "x1"]),
        };
        let r = run(&batch, &[], &[]);
        assert_eq!(
            r.seen_ids,
            vec!["c1".to_owned(), "p1".to_owned(), "x1".to_owned()]
        );
        assert_eq!(
            r.plan.counts.of(0),
            Counts {
                accepted: 3,
                duplicates: 4,
                conflicts: 0,
                unattributed: 0,
                raw_dropped: 0,
            }
        );
        assert_eq!(r.claims.len(), 1);
        assert_arms(
            &r.plan.arms,
            &[arm(ARM_A, 1, 0.7, 0.7, 0), arm(ARM_B, 0, 0.0, 0.3, 0)],
        );
        assert_eq!(r.plan.conversions.len(), 1);
        assert_eq!(r.plan.conversions[0].unsigned_value, 3.0);
    }

    #[test]
    fn items_already_seen_are_skipped() {
        let batch = Batch {
            exposures: vec![
                exposure("x1", "v1", ARM_A, 0),
                exposure("x2", "v2", ARM_B, 0),
            ],
            conversions: vec![conversion("c1", "v3", 3.0, false, 1)],
            pageviews: pageviews(&["p1"]),
        };
        let r = run(&batch, &["x1", "c1", "p1"], &[]);
        // Only x2 counts: one claim, one new visitor on B; c1 neither counted nor parked.
        assert_eq!(r.claims.len(), 1);
        assert_eq!(r.claims[0].id, "x2");
        assert_eq!(
            r.plan.counts.of(0),
            Counts {
                accepted: 1,
                duplicates: 3,
                conflicts: 0,
                unattributed: 0,
                raw_dropped: 0,
            }
        );
        assert_arms(
            &r.plan.arms,
            &[arm(ARM_A, 0, 0.0, 0.7, 0), arm(ARM_B, 1, 0.3, 0.3, 0)],
        );
        assert!(r.plan.pending.is_empty());
        assert!(r.plan.conversions.is_empty());
        assert!(r.plan.unattributed.is_empty());

        // The whole batch replayed: nothing at all.
        let replay = run(&batch, &["x1", "x2", "c1", "p1"], &[]);
        assert_eq!(
            replay.plan,
            Plan {
                counts: Tally(vec![Counts {
                    duplicates: 4,
                    ..Counts::default()
                }]),
                ..Plan::default()
            }
        );
    }

    #[test]
    fn segment_deltas_repeat_the_arm_deltas_once_per_dimension_under_the_visitors_values() {
        let mobile = StoredContext {
            country: Some("ES".to_owned()),
            device: Some("mobile".to_owned()),
            prior_visits: Some(0),
            ..StoredContext::default()
        };
        let mut x1 = exposure("x1", "v1", ARM_A, 0);
        x1.context = mobile.clone();
        // v2 has no context; its later exposure's context does not count.
        let x2 = exposure("x2", "v2", ARM_A, 1);
        let mut x3 = exposure("x3", "v2", ARM_A, 2);
        x3.context = mobile.clone();
        let batch = Batch {
            exposures: vec![x1, x2, x3],
            conversions: vec![conversion("c1", "v1", 10.0, false, 5)],
            ..Batch::default()
        };
        let r = run(&batch, &[], &[]);
        assert_eq!(
            r.plan.kept_exposures.len(),
            3,
            "all three agree with the arm"
        );
        let by_dimension = |d: Dimension| -> Vec<(String, i64)> {
            r.plan
                .segment_days
                .iter()
                .filter(|s| s.dimension == d)
                .map(|s| (s.value.clone(), s.visitors))
                .collect()
        };
        assert_eq!(
            by_dimension(Dimension::Device),
            [("mobile".to_owned(), 1), ("unknown".to_owned(), 1)]
        );
        assert_eq!(
            by_dimension(Dimension::VisitorType),
            [("new".to_owned(), 1), ("unknown".to_owned(), 1)]
        );
        // Neither visitor has a browser: one row of two.
        assert_eq!(
            by_dimension(Dimension::Browser),
            [("unknown".to_owned(), 2)]
        );
        assert_eq!(r.plan.segment_days.len(), 2 + 2 + 1 + 1 + 2);
        // The conversion carries v1's assignment context into the goal's segments.
        assert_eq!(r.plan.conversions[0].context, mobile);
        let rows = [conversion_row("v1", ARM_A, 0.0, 10.0)];
        let goals = goal_deltas(&r.plan.conversions, &rows);
        assert_eq!(goals.segments.len(), 5);
        for s in &goals.segments {
            assert_eq!(
                (s.converters, s.revenue_n, s.revenue_sum, s.revenue_sumsq),
                (1, 1, 10.0, 100.0)
            );
        }
        // One more row per delta: the CUPED stratum, with the capped covariates.
        assert_eq!(
            r.plan.strata_days,
            vec![
                StratumDailyDelta {
                    arm_id: ARM_A,
                    stratum: "new/mobile".to_owned(),
                    day: at(0).date(),
                    experiment_id: EXPERIMENT,
                    visitors: 1,
                    x_sum: [0.0; 2],
                    x_sq: [0.0; 3],
                },
                StratumDailyDelta {
                    arm_id: ARM_A,
                    stratum: "unknown/unknown".to_owned(),
                    day: at(1).date(),
                    experiment_id: EXPERIMENT,
                    visitors: 1,
                    x_sum: [0.0; 2],
                    x_sq: [0.0; 3],
                },
            ]
        );
        assert_eq!(goals.strata.len(), 1);
        assert_eq!(goals.strata[0].stratum, "new/mobile");
        assert_eq!(
            (goals.strata[0].converters, goals.strata[0].revenue_sum),
            (1, 10.0)
        );
        let countries: Vec<&str> = goals
            .segments
            .iter()
            .filter(|s| s.dimension == Dimension::Country)
            .map(|s| s.value.as_str())
            .collect();
        assert_eq!(countries, ["ES"]);
    }

    #[test]
    fn cuped_strata_carry_capped_covariates_and_x_times_the_outcome_change() {
        let returning = StoredContext {
            device: Some("desktop".to_owned()),
            prior_visits: Some(400),
            prior_conversions: Some(3),
            ..StoredContext::default()
        };
        assert_eq!(cuped_stratum(&returning), "returning/desktop");
        assert_eq!(covariates(&returning), [3.0, 50.0]);
        let mut x1 = exposure("x1", "v1", ARM_A, 0);
        x1.context = returning.clone();
        let mut x2 = exposure("x2", "v2", ARM_A, 1);
        x2.context = StoredContext {
            prior_visits: Some(2),
            prior_conversions: None,
            device: Some("desktop".to_owned()),
            ..StoredContext::default()
        };
        let batch = Batch {
            exposures: vec![x1, x2],
            conversions: vec![conversion("c1", "v1", 10.0, false, 5)],
            ..Batch::default()
        };
        let r = run(&batch, &[], &[]);
        let [s] = r.plan.strata_days.as_slice() else {
            panic!("one stratum expected: {:?}", r.plan.strata_days)
        };
        assert_eq!((s.stratum.as_str(), s.visitors), ("returning/desktop", 2));
        assert_eq!(s.x_sum, [3.0, 52.0]);
        assert_eq!(s.x_sq, [9.0, 150.0, 2504.0]);
        // First conversion (10), then a later batch taking the total from 10 to 25.
        let first = goal_deltas(
            &r.plan.conversions,
            &[conversion_row("v1", ARM_A, 0.0, 10.0)],
        );
        assert_eq!(first.strata[0].converters_x, [3.0, 50.0]);
        assert_eq!(first.strata[0].revenue_x, [30.0, 500.0]);
        let later = goal_deltas(
            &r.plan.conversions,
            &[conversion_row("v1", ARM_A, 10.0, 25.0)],
        );
        assert_eq!(later.strata[0].converters_x, [0.0, 0.0]);
        assert_eq!(later.strata[0].revenue_x, [45.0, 750.0]);
        assert_eq!(later.strata[0].revenue_sumsq, 625.0 - 100.0);
    }

    #[test]
    fn expected_shares_use_logged_propensities_and_split_the_rest() {
        let (a, b, c) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        let logged = BTreeMap::from([(a, Logged { sum: 1.4, count: 2 })]);
        let shares = expected_shares(&[a, b, c], &logged);
        assert_eq!(shares[0], (a, 0.7));
        assert!((shares[1].1 - 0.15).abs() < 1e-12);
        assert!((shares[2].1 - 0.15).abs() < 1e-12);
    }
}

#[cfg(test)]
mod raw_quota_tests {
    //! The quota's decision, as the writer runs it: counts, the totals the upsert would
    //! return, the overflow and the rows left out.

    use super::*;

    const SITE: Uuid = Uuid::from_u128(0x5173);
    const OTHER: Uuid = Uuid::from_u128(0x5174);

    fn at(seconds: i64) -> OffsetDateTime {
        // 2026-12-01 10:00:00 UTC.
        OffsetDateTime::from_unix_timestamp(1_796_119_200 + seconds).unwrap()
    }

    fn row(site_id: Uuid, seconds: i64, id: &str) -> RawRow<'_> {
        RawRow {
            site_id,
            at: at(seconds),
            id,
        }
    }

    /// What the writer does, with `before` the `kept` already stored per key.
    fn decide(rows: &[RawRow<'_>], before: &[(RawDay, i64)], quota: i64) -> Vec<bool> {
        let counts = raw_day_counts(rows);
        let stored: HashMap<RawDay, i64> = before.iter().copied().collect();
        let after = counts
            .iter()
            .map(|&(k, n)| (k, stored.get(&k).copied().unwrap_or(0) + n))
            .collect();
        raw_rows_kept(rows, &raw_overflow(&counts, &after, quota))
    }

    fn day(site_id: Uuid, seconds: i64) -> RawDay {
        RawDay {
            site_id,
            day: at(seconds).date(),
        }
    }

    #[test]
    fn counts_are_per_site_and_utc_day_and_sorted_by_key() {
        // 14 h after 10:00 is the next UTC day.
        let rows = [
            row(OTHER, 0, "o1"),
            row(SITE, 50_400, "n1"),
            row(SITE, 0, "a"),
            row(SITE, 10, "b"),
        ];
        assert_eq!(
            raw_day_counts(&rows),
            vec![
                (day(SITE, 0), 2),
                (day(SITE, 50_400), 1),
                (day(OTHER, 0), 1)
            ]
        );
        assert!(raw_day_counts(&[]).is_empty());
    }

    #[test]
    fn under_or_at_the_quota_every_row_is_kept() {
        let rows = [row(SITE, 0, "a"), row(SITE, 1, "b"), row(SITE, 2, "c")];
        assert_eq!(decide(&rows, &[], 3), vec![true; 3], "exactly the quota");
        assert_eq!(decide(&rows, &[(day(SITE, 0), 5)], 8), vec![true; 3]);
    }

    #[test]
    fn past_the_quota_the_latest_rows_of_the_key_are_left_out() {
        // Out of time order in the batch: the two latest (by time, then id) go.
        let rows = [
            row(SITE, 30, "d"),
            row(SITE, 0, "a"),
            row(SITE, 20, "z"),
            row(SITE, 20, "c"),
            row(SITE, 10, "b"),
        ];
        assert_eq!(
            decide(&rows, &[], 3),
            vec![false, true, false, true, true],
            "d (t=30) and z (t=20, after c) are dropped"
        );
        // Seven already kept today, quota 8: one more fits, the earliest.
        assert_eq!(
            decide(&rows, &[(day(SITE, 0), 7)], 8),
            vec![false, true, false, false, false]
        );
    }

    #[test]
    fn a_full_day_drops_the_whole_batch_but_other_keys_keep_theirs() {
        let rows = [
            row(SITE, 0, "a"),
            row(OTHER, 0, "o"),
            row(SITE, 50_400, "next-day"),
            row(SITE, 5, "b"),
        ];
        // SITE's first day is at its quota of 2 already.
        assert_eq!(
            decide(&rows, &[(day(SITE, 0), 2)], 2),
            vec![false, true, true, false]
        );
    }

    #[test]
    fn the_overflow_never_exceeds_the_batch_and_skips_unreturned_keys() {
        let counts = [(day(SITE, 0), 3), (day(OTHER, 0), 4)];
        // SITE: 100 kept after (97 before), quota 10: all 3 of the batch, not 90.
        let after = HashMap::from([(day(SITE, 0), 100)]);
        assert_eq!(
            raw_overflow(&counts, &after, 10),
            vec![(day(SITE, 0), 3)],
            "OTHER was not returned: nothing to drop"
        );
        let after = HashMap::from([(day(SITE, 0), 12), (day(OTHER, 0), 4)]);
        assert_eq!(raw_overflow(&counts, &after, 10), vec![(day(SITE, 0), 2)]);
    }
}
