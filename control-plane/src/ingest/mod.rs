//! Ingestion of the edge's event batches: exposures fix a visitor's arm, conversions are
//! attributed to the arms the visitor holds, and per-arm aggregates move in the same
//! transaction, so results never scan raw events.
//!
//! Layout: the contract — wire items, limits, the batch signature — is the engine's
//! ([`samplit_engine::ingest`]); [`items`] holds the field checks that turn a bad item into
//! a reason; [`plan`] is the pure planner (items and the rows the transaction returns in,
//! named deltas out, unit-tested without a database); `write.rs` runs the transaction and
//! writes the deltas. Here [`Ingestor::process`], which takes a verified batch's items and:
//! 1. reads each item on its own (a bad item is rejected with a reason, the rest kept;
//!    an exposure's `context` is read leniently, [`context`], and never rejects it), on
//!    a typed path without a JSON tree when it can (`read.rs`);
//! 2. resolves site keys, experiments and arms with three set-wise reads;
//! 3. makes the raw events' day partitions the batch needs (outside the transaction,
//!    once per day per process: `db::raw_events::ensure_partitions`);
//! 4. in one transaction: marks item ids seen (`ON CONFLICT DO NOTHING`: replays and
//!    races count once), inserts first exposures into `assignments` with their context
//!    (the first one fixes the arm), upserts conversions once per (goal, unit, visitor),
//!    keeps the newly processed items as raw events (at most
//!    [`IngestLimits::raw_events_per_site_day`] per site and UTC day: the raw-event
//!    quota), and adds the grouped deltas to the aggregates and segment statistics — a
//!    handful of statements per batch whatever its size (the phases are in [`plan`]'s
//!    docs). Batches that arrive while others are being written share one
//!    transaction (group commit, `group.rs`); each is still answered with its own
//!    counts, after the commit;
//! 5. attributes the parked conversions of the batch's visitors that its commit made
//!    attributable.
//!
//! Rules (attribution, units, retention) are in `docs/ingestion.md`.

pub mod context;
mod group;
pub mod housekeeping;
pub mod items;
pub mod plan;
mod read;
mod write;

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde::Serialize;
use serde_json::value::RawValue;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::events;
use crate::db::raw_events;
use crate::domain::Status;
use items::Rejection;
use plan::{ArmInfo, Batch, Catalog, GoalIndex, Pageview, ResolvedConversion, ResolvedExposure};
use read::{Exposure, Parsed};
pub use read::{check_item, paths_agree};
use samplit_engine::multi::Mode;

/// Most items in one batch (the ingest contract's limit).
pub use samplit_engine::ingest::MAX_ITEMS;
/// How long item ids are remembered, and how old an item may be (the Cloudflare Queue
/// keeps undelivered messages at most 14 days, so no legitimate retry is older).
pub const SEEN_RETENTION: time::Duration = time::Duration::days(14);
/// How far in the future an item's `ts_ms` may be (edge clocks are NTP-synced; this only
/// catches garbage).
pub const FUTURE_SKEW: time::Duration = time::Duration::minutes(10);
/// Attempts of the batch transaction when PostgreSQL reports a deadlock or a
/// serialization failure (keys are locked in sorted order, so this is a safety net).
const ATTEMPTS: usize = 3;

/// The limits ingestion applies (from `config::Limits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestLimits {
    /// Raw rows (exposures and conversions) kept per site and UTC day of the event
    /// (`SAMPLIT_RAW_EVENTS_PER_SITE_DAY`); past it, events still count in the aggregates
    /// but are not kept as raw events (docs/ingestion.md, "Raw-event quota").
    pub raw_events_per_site_day: i64,
}

/// The response to a batch.
#[derive(Debug, Default, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Outcome {
    /// Items recorded now (exposures, conversions — attributed or not — and pageviews).
    pub accepted: u64,
    /// Items not counted again: ids already processed (earlier batch, repeated in this
    /// batch, or a concurrent delivery), plus exposures to another arm than the visitor's
    /// (`conflicts`).
    pub duplicates: u64,
    /// Of `duplicates`, exposures claiming an arm other than the one the visitor holds.
    pub conflicts: u64,
    /// Of `accepted`, conversions that matched no assignment of the visitor.
    pub unattributed: u64,
    /// Of `accepted`, exposures and conversions counted in the results but not kept as
    /// raw events: their site had reached its raw-event quota for the event's UTC day
    /// (`SAMPLIT_RAW_EVENTS_PER_SITE_DAY`; docs/ingestion.md, "Raw-event quota").
    /// Segments, CUPED and the bandit still count them; funnels over that day undercount
    /// and say so.
    pub raw_dropped: u64,
    pub rejected: Vec<RejectedItem>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RejectedItem {
    /// The item's id (empty when it had none).
    pub id: String,
    /// Stable code: missing_id, invalid_id, invalid_item, too_old, in_the_future,
    /// unknown_site_key, unknown_experiment, experiment_not_live, unknown_arm,
    /// element_mismatch, currency_mismatch.
    pub reason: &'static str,
    pub message: String,
}

impl From<Rejection> for RejectedItem {
    fn from(r: Rejection) -> Self {
        Self {
            id: r.id,
            reason: r.reason,
            message: r.message,
        }
    }
}

/// What exposure checks need to know about an experiment.
struct ExperimentInfo {
    site_id: Uuid,
    status: Status,
}

/// Ingestion in one process: the pool, the limits, and the writers that group the
/// batches in flight (group commit: `group.rs`, and docs/ingestion.md).
#[derive(Clone)]
pub struct Ingestor {
    pool: PgPool,
    groups: Arc<group::Groups>,
}

impl Ingestor {
    /// `metrics`: where the writers report the batches waiting and the batches per
    /// transaction.
    pub fn new(pool: PgPool, limits: IngestLimits, metrics: &crate::telemetry::Metrics) -> Self {
        Self {
            groups: Arc::new(group::Groups::new(
                pool.clone(),
                limits.raw_events_per_site_day,
                metrics.ingest_waiting.clone(),
                metrics.ingest_group_batches.clone(),
            )),
            pool,
        }
    }

    /// Processes a verified batch's items; see the module docs for the steps.
    pub async fn process(
        &self,
        raw_items: &[&RawValue],
        now: OffsetDateTime,
    ) -> Result<Outcome, sqlx::Error> {
        let (pool, groups) = (&self.pool, &self.groups);
        let mut outcome = Outcome::default();

        // 1. Read; ids repeated inside the batch are duplicates of their first occurrence.
        let mut in_batch: HashSet<Cow<'_, str>> = HashSet::with_capacity(raw_items.len());
        let mut parsed = Vec::with_capacity(raw_items.len());
        for raw in raw_items {
            let read = read::read_item(raw, now);
            if let Some(id) = read.id
                && !in_batch.insert(id)
            {
                outcome.duplicates += 1;
                continue;
            }
            match read.parsed {
                Ok(item) => parsed.push(item),
                Err(rejection) => outcome.rejected.push(rejection.into()),
            }
        }

        // 2. Resolve sites, experiments, arms, goals (reads outside the transaction: they are
        // admin-managed and a batch racing an admin edit may use either state).
        let mut keys: Vec<String> = parsed.iter().map(|p| p.site_key().to_owned()).collect();
        keys.sort_unstable();
        keys.dedup();
        let mut currencies: HashMap<Uuid, Option<String>> = HashMap::new();
        let sites: HashMap<String, Uuid> = if keys.is_empty() {
            HashMap::new()
        } else {
            events::sites_by_key(pool, &keys)
                .await?
                .into_iter()
                .map(|s| {
                    currencies.insert(s.id, s.currency);
                    (s.site_key, s.id)
                })
                .collect()
        };
        let mut experiment_ids: Vec<Uuid> = parsed
            .iter()
            .filter_map(|p| match p {
                Parsed::Exposure(e) => Some(e.experiment_id),
                _ => None,
            })
            .collect();
        experiment_ids.sort_unstable();
        experiment_ids.dedup();
        let arm_rows = if experiment_ids.is_empty() {
            Vec::new()
        } else {
            events::experiment_arms(pool, &experiment_ids).await?
        };
        let mut catalog = Catalog::default();
        let mut experiments: HashMap<Uuid, ExperimentInfo> = HashMap::new();
        for row in &arm_rows {
            experiments.insert(
                row.experiment_id,
                ExperimentInfo {
                    site_id: row.site_id,
                    status: row.status,
                },
            );
            let unit = if row.kind.0 == Mode::Independent {
                row.element_id.unwrap_or(row.experiment_id)
            } else {
                row.experiment_id
            };
            catalog.arms.insert(
                row.arm_id,
                ArmInfo {
                    experiment_id: row.experiment_id,
                    unit,
                },
            );
            catalog.unit_arms.entry(unit).or_default().push(row.arm_id);
        }

        // "Verify installation": the (site, page host) pairs seen on exposures.
        let mut seen_hosts: Vec<(String, String)> = parsed
            .iter()
            .filter_map(|p| match p {
                Parsed::Exposure(e) => e.host.clone().map(|h| (e.site_key.clone(), h)),
                _ => None,
            })
            .filter(|(key, _)| sites.contains_key(key))
            .collect();
        seen_hosts.sort_unstable();
        seen_hosts.dedup();

        let mut batch = Batch::default();
        for item in parsed {
            let Some(&site_id) = sites.get(item.site_key()) else {
                let id = match &item {
                    Parsed::Exposure(e) => &e.id,
                    Parsed::Conversion(c) => &c.id,
                    Parsed::Pageview { id, .. } => id,
                };
                outcome.rejected.push(
                    Rejection::new(id, "unknown_site_key", "no site has this site_key").into(),
                );
                continue;
            };
            let mismatch = match &item {
                Parsed::Conversion(c) if c.value > 0.0 => match &c.currency {
                    Some(code)
                        if !accept_currency(pool, site_id, code, &mut currencies).await? =>
                    {
                        Some((c.id.clone(), code.clone()))
                    }
                    _ => None,
                },
                _ => None,
            };
            if let Some((id, code)) = mismatch {
                let site = currencies
                    .get(&site_id)
                    .cloned()
                    .flatten()
                    .unwrap_or_default();
                tracing::info!(item = %id, %site_id, currency = %code, site_currency = %site,
                    "revenue in another currency than the site's: not counted");
                outcome.rejected.push(
                    Rejection::new(
                        &id,
                        "currency_mismatch",
                        format!("the value is in {code}; this site counts revenue in {site}"),
                    )
                    .into(),
                );
                continue;
            }
            match item {
                Parsed::Exposure(e) => {
                    match resolve_exposure(e, site_id, &experiments, &catalog.arms) {
                        Ok(r) => batch.exposures.push(r),
                        Err(rejection) => outcome.rejected.push(rejection.into()),
                    }
                }
                Parsed::Conversion(c) => batch.conversions.push(ResolvedConversion {
                    id: c.id,
                    site_id,
                    visitor_id: c.visitor_id,
                    goal: c.goal,
                    value: c.value,
                    currency: c.currency,
                    signed: c.signed,
                    custom: c.custom,
                    at: c.at,
                    origin: 0,
                }),
                Parsed::Pageview { id, .. } => batch.pageviews.push(Pageview { id, origin: 0 }),
            }
        }
        let mut site_ids: Vec<Uuid> = batch.conversions.iter().map(|c| c.site_id).collect();
        site_ids.sort_unstable();
        site_ids.dedup();
        if !site_ids.is_empty() {
            catalog.goals = GoalIndex::new(&events::live_goals(pool, &site_ids).await?);
        }

        // 3. The raw events' day partitions (DDL, outside the batch's transaction; a no-op
        // for days this process already made), then the transaction — with the other batches
        // waiting, if any (`group.rs`) — and the parked conversions of the batch's visitors
        // that can now be attributed.
        let days = plan::event_days(&batch);
        if !days.is_empty() {
            raw_events::ensure_partitions(pool, &days).await?;
        }
        // Nothing left to write (every item rejected): no transaction.
        let written = if batch.is_empty() {
            plan::Counts::default()
        } else {
            groups.write(batch, catalog).await?
        };
        write::mark_snippets_seen(pool, &seen_hosts).await?;
        outcome.accepted += written.accepted;
        outcome.duplicates += written.duplicates;
        outcome.conflicts += written.conflicts;
        outcome.unattributed += written.unattributed;
        outcome.raw_dropped += written.raw_dropped;
        Ok(outcome)
    }
}

/// Whether revenue in `code` counts on `site_id`: only in the site's currency. A site
/// without one takes the first currency an event names (atomically: of two racing
/// batches naming different currencies, one wins and the other's revenue is refused).
async fn accept_currency(
    pool: &PgPool,
    site_id: Uuid,
    code: &str,
    known: &mut HashMap<Uuid, Option<String>>,
) -> Result<bool, sqlx::Error> {
    if let Some(Some(current)) = known.get(&site_id) {
        return Ok(current == code);
    }
    let fixed = events::fix_site_currency(pool, site_id, code).await?;
    let accepted = fixed.as_deref() == Some(code);
    known.insert(site_id, fixed);
    Ok(accepted)
}

fn resolve_exposure(
    e: Exposure,
    site_id: Uuid,
    experiments: &HashMap<Uuid, ExperimentInfo>,
    arms: &HashMap<Uuid, ArmInfo>,
) -> Result<ResolvedExposure, Rejection> {
    let Some(&ExperimentInfo {
        site_id: experiment_site,
        status,
    }) = experiments.get(&e.experiment_id)
    else {
        return Err(Rejection::new(
            &e.id,
            "unknown_experiment",
            "no such experiment",
        ));
    };
    if experiment_site != site_id {
        // Same answer as a missing experiment: a site key must not probe other sites.
        return Err(Rejection::new(
            &e.id,
            "unknown_experiment",
            "no such experiment on this site",
        ));
    }
    if !matches!(status, Status::Running | Status::Paused) {
        return Err(Rejection::new(
            &e.id,
            "experiment_not_live",
            format!("the experiment is {}", status.as_str()),
        ));
    }
    let Some(arm) = arms
        .get(&e.arm_id)
        .filter(|a| a.experiment_id == e.experiment_id)
    else {
        return Err(Rejection::new(
            &e.id,
            "unknown_arm",
            "no such arm in this experiment",
        ));
    };
    if let Some(element) = e.element_id
        && arm.unit != e.experiment_id
        && arm.unit != element
    {
        return Err(Rejection::new(
            &e.id,
            "element_mismatch",
            "the arm does not belong to this element",
        ));
    }
    Ok(ResolvedExposure {
        id: e.id,
        site_id,
        experiment_id: e.experiment_id,
        element_id: e.element_id,
        unit: arm.unit,
        arm_id: e.arm_id,
        visitor_id: e.visitor_id,
        propensity: e.propensity,
        snapshot_version: e.snapshot_version,
        at: e.at,
        context: e.context,
        origin: 0,
    })
}
