//! Ingestion of the edge's event batches: exposures fix a visitor's arm, conversions are
//! attributed to the arms the visitor holds, and per-arm aggregates move in the same
//! transaction, so results never scan raw events.
//!
//! Layout: the contract — wire items, limits, the batch signature — is the engine's
//! ([`samplit_engine::ingest`]); [`items`] holds the field checks that turn a bad item into
//! a reason, and here [`process`], which takes a verified batch's items and:
//! 1. parses each item on its own (a bad item is rejected with a reason, the rest kept);
//! 2. resolves site keys, experiments and arms with three set-wise reads;
//! 3. in one transaction: marks item ids seen (`ON CONFLICT DO NOTHING`: replays and
//!    races count once), inserts first exposures into `assignments` (the first one fixes
//!    the arm), upserts conversions once per (goal, unit, visitor), and adds the grouped
//!    deltas to the aggregates — a handful of statements per batch whatever its size.
//!
//! Rules (attribution, units, retention) are in `docs/ingestion.md`.

pub mod housekeeping;
pub mod items;

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use crate::db::aggregates::{self, ArmDailyDeltas, ArmDeltas, GoalDailyDeltas, GoalDeltas};
use crate::db::events::{self, AssignmentRow, NewAssignments, NewConversions, NewPending};
use items::Rejection;
use samplit_engine::ingest::Item;

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
    pub rejected: Vec<RejectedItem>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RejectedItem {
    /// The item's id (empty when it had none).
    pub id: String,
    /// Stable code: missing_id, invalid_id, invalid_item, too_old, in_the_future,
    /// unknown_site_key, unknown_experiment, experiment_not_live, unknown_arm,
    /// element_mismatch.
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

#[derive(Debug)]
struct Exposure {
    id: String,
    site_key: String,
    experiment_id: Uuid,
    element_id: Option<Uuid>,
    arm_id: Uuid,
    visitor_id: String,
    propensity: f64,
    snapshot_version: i64,
    at: OffsetDateTime,
    /// The page host the edge reported (lower case), for "verify installation".
    host: Option<String>,
}

#[derive(Debug)]
struct Conversion {
    id: String,
    site_key: String,
    visitor_id: String,
    goal: String,
    value: f64,
    /// Came in a signed server call (not held to the per-visitor revenue cap).
    signed: bool,
    at: OffsetDateTime,
}

#[derive(Debug)]
enum Parsed {
    Exposure(Exposure),
    Conversion(Conversion),
    Pageview { id: String, site_key: String },
}

impl Parsed {
    fn site_key(&self) -> &str {
        match self {
            Self::Exposure(e) => &e.site_key,
            Self::Conversion(c) => &c.site_key,
            Self::Pageview { site_key, .. } => site_key,
        }
    }
}

/// An exposure checked against the database.
#[derive(Debug)]
struct ResolvedExposure {
    id: String,
    experiment_id: Uuid,
    unit: Uuid,
    arm_id: Uuid,
    visitor_id: String,
    propensity: f64,
    snapshot_version: i64,
    at: OffsetDateTime,
}

#[derive(Debug)]
struct ResolvedConversion {
    id: String,
    site_id: Uuid,
    visitor_id: String,
    goal: String,
    value: f64,
    /// Came in a signed server call (not held to the per-visitor revenue cap).
    signed: bool,
    at: OffsetDateTime,
}

fn to_time(id: &str, ts_ms: i64) -> Result<OffsetDateTime, Rejection> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ts_ms) * 1_000_000)
        .map_err(|_| Rejection::new(id, "invalid_item", "ts_ms is not a valid time"))
}

fn parse_uuid(id: &str, raw: &str, reason: &'static str, what: &str) -> Result<Uuid, Rejection> {
    Uuid::parse_str(raw).map_err(|_| Rejection::new(id, reason, format!("no such {what}")))
}

/// The per-item checks [`process`] runs before touching the database (shape, ids,
/// lengths, time window, propensity, value), without keeping the result: for the fuzz
/// targets (`fuzz/`), which run exactly this code on arbitrary batches.
pub fn check_item(value: &Value, now: OffsetDateTime) -> Result<(), RejectedItem> {
    parse_item(value, now)
        .map(|_| ())
        .map_err(RejectedItem::from)
}

fn parse_item(value: &Value, now: OffsetDateTime) -> Result<Parsed, Rejection> {
    let id = items::item_id(value)?;
    let now_ms = i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX);
    let retention_ms = i64::try_from(SEEN_RETENTION.whole_milliseconds()).unwrap_or(i64::MAX);
    let skew_ms = i64::try_from(FUTURE_SKEW.whole_milliseconds()).unwrap_or(i64::MAX);
    let check_common = |site_key: &str, visitor_id: &str, ts_ms: i64| {
        items::check_text(id, "site_key", site_key, items::MAX_ID_LEN)?;
        items::check_text(id, "visitor_id", visitor_id, items::MAX_ID_LEN)?;
        items::check_ts(id, ts_ms, now_ms, retention_ms, skew_ms)?;
        to_time(id, ts_ms)
    };
    match items::parse(id, value)? {
        Item::Exposure(e) => {
            let at = check_common(&e.site_key, &e.visitor_id, e.ts_ms)?;
            items::check_propensity(id, e.propensity)?;
            let snapshot_version = i64::try_from(e.snapshot_version).map_err(|_| {
                Rejection::new(id, "invalid_item", "snapshot_version is out of range")
            })?;
            let element_id = e
                .element_id
                .as_deref()
                .map(|raw| parse_uuid(id, raw, "element_mismatch", "element"))
                .transpose()?;
            Ok(Parsed::Exposure(Exposure {
                id: id.to_owned(),
                experiment_id: parse_uuid(
                    id,
                    &e.experiment_id,
                    "unknown_experiment",
                    "experiment",
                )?,
                element_id,
                arm_id: parse_uuid(id, &e.arm_id, "unknown_arm", "arm")?,
                site_key: e.site_key,
                visitor_id: e.visitor_id,
                propensity: e.propensity,
                snapshot_version,
                at,
                // A malformed host only loses the installation check, not the exposure.
                host: e
                    .host
                    .map(|h| h.to_ascii_lowercase())
                    .filter(|h| samplit_engine::routing::valid_host(h)),
            }))
        }
        Item::Conversion(c) | Item::Custom(c) => {
            let at = check_common(&c.site_key, &c.visitor_id, c.ts_ms)?;
            items::check_text(id, "goal", &c.goal, items::MAX_GOAL_LEN)?;
            let value = items::check_value(id, c.value)?;
            Ok(Parsed::Conversion(Conversion {
                id: id.to_owned(),
                site_key: c.site_key,
                visitor_id: c.visitor_id,
                goal: c.goal,
                value,
                signed: c.signed,
                at,
            }))
        }
        Item::Pageview(p) => {
            check_common(&p.site_key, &p.visitor_id, p.ts_ms)?;
            items::check_text(id, "url", &p.url, items::MAX_URL_LEN)?;
            Ok(Parsed::Pageview {
                id: id.to_owned(),
                site_key: p.site_key,
            })
        }
    }
}

/// What the transaction needs to know about the experiments of the batch's exposures.
struct ArmInfo {
    experiment_id: Uuid,
    unit: Uuid,
}

/// Processes a verified batch's items; see the module docs for the steps.
pub async fn process(
    pool: &PgPool,
    raw_items: &[Value],
    now: OffsetDateTime,
) -> Result<Outcome, sqlx::Error> {
    let mut outcome = Outcome::default();

    // 1. Parse; ids repeated inside the batch are duplicates of their first occurrence.
    let mut in_batch: HashSet<&str> = HashSet::with_capacity(raw_items.len());
    let mut parsed = Vec::with_capacity(raw_items.len());
    for value in raw_items {
        if let Ok(id) = items::item_id(value)
            && !in_batch.insert(id)
        {
            outcome.duplicates += 1;
            continue;
        }
        match parse_item(value, now) {
            Ok(item) => parsed.push(item),
            Err(rejection) => outcome.rejected.push(rejection.into()),
        }
    }

    // 2. Resolve sites, experiments, arms, goals (reads outside the transaction: they are
    // admin-managed and a batch racing an admin edit may use either state).
    let mut keys: Vec<String> = parsed.iter().map(|p| p.site_key().to_owned()).collect();
    keys.sort_unstable();
    keys.dedup();
    let sites: HashMap<String, Uuid> = if keys.is_empty() {
        HashMap::new()
    } else {
        events::sites_by_key(pool, &keys)
            .await?
            .into_iter()
            .map(|s| (s.site_key, s.id))
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
    let mut arms: HashMap<Uuid, ArmInfo> = HashMap::with_capacity(arm_rows.len());
    let mut unit_arms: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    let mut experiments: HashMap<Uuid, (Uuid, &str, &str)> = HashMap::new();
    for row in &arm_rows {
        experiments.insert(
            row.experiment_id,
            (row.site_id, row.kind.as_str(), row.status.as_str()),
        );
        let unit = if row.kind == "independent" {
            row.element_id.unwrap_or(row.experiment_id)
        } else {
            row.experiment_id
        };
        arms.insert(
            row.arm_id,
            ArmInfo {
                experiment_id: row.experiment_id,
                unit,
            },
        );
        unit_arms.entry(unit).or_default().push(row.arm_id);
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

    let mut exposures = Vec::new();
    let mut conversions = Vec::new();
    let mut pageview_ids = Vec::new();
    for item in parsed {
        let Some(&site_id) = sites.get(item.site_key()) else {
            let id = match &item {
                Parsed::Exposure(e) => &e.id,
                Parsed::Conversion(c) => &c.id,
                Parsed::Pageview { id, .. } => id,
            };
            outcome
                .rejected
                .push(Rejection::new(id, "unknown_site_key", "no site has this site_key").into());
            continue;
        };
        match item {
            Parsed::Exposure(e) => match resolve_exposure(e, site_id, &experiments, &arms) {
                Ok(r) => exposures.push(r),
                Err(rejection) => outcome.rejected.push(rejection.into()),
            },
            Parsed::Conversion(c) => conversions.push(ResolvedConversion {
                id: c.id,
                site_id,
                visitor_id: c.visitor_id,
                goal: c.goal,
                value: c.value,
                signed: c.signed,
                at: c.at,
            }),
            Parsed::Pageview { id, .. } => pageview_ids.push(id),
        }
    }
    let mut site_ids: Vec<Uuid> = conversions.iter().map(|c| c.site_id).collect();
    site_ids.sort_unstable();
    site_ids.dedup();
    let goals = if site_ids.is_empty() {
        Vec::new()
    } else {
        events::live_goals(pool, &site_ids).await?
    };

    // 3. The transaction (retried on deadlock / serialization failure).
    let mut attempt = 0;
    loop {
        attempt += 1;
        match write_batch(
            pool,
            &exposures,
            &conversions,
            &pageview_ids,
            &goals,
            &arms,
            &unit_arms,
        )
        .await
        {
            Ok(written) => {
                let mut visitors: Vec<String> = exposures
                    .iter()
                    .map(|e| e.visitor_id.clone())
                    .chain(conversions.iter().map(|c| c.visitor_id.clone()))
                    .collect();
                visitors.sort_unstable();
                visitors.dedup();
                attribute_pending_retried(pool, &visitors).await?;
                mark_snippets_seen(pool, &seen_hosts).await?;
                outcome.accepted += written.accepted;
                outcome.duplicates += written.duplicates;
                outcome.conflicts += written.conflicts;
                outcome.unattributed += written.unattributed;
                return Ok(outcome);
            }
            Err(sqlx::Error::Database(e))
                if attempt < ATTEMPTS
                    && matches!(e.code().as_deref(), Some("40P01") | Some("40001")) =>
            {
                tracing::warn!(attempt, error = %e, "ingest batch retried");
            }
            Err(e) => return Err(e),
        }
    }
}

/// Sets `snippet_seen_at` for sites whose verified hosts sent exposures (a no-op once
/// set: the update is filtered on `snippet_seen_at IS NULL`).
async fn mark_snippets_seen(pool: &PgPool, pairs: &[(String, String)]) -> Result<(), sqlx::Error> {
    if pairs.is_empty() {
        return Ok(());
    }
    let mut conn = pool.acquire().await?;
    for (site_key, host) in pairs {
        crate::db::domains::mark_snippet_seen(&mut conn, site_key, host).await?;
    }
    Ok(())
}

/// [`attribute_pending`], retried like the batch on deadlock / serialization failure.
async fn attribute_pending_retried(pool: &PgPool, visitors: &[String]) -> Result<(), sqlx::Error> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match attribute_pending(pool, visitors).await {
            Ok(n) => {
                if n > 0 {
                    tracing::debug!(attributed = n, "parked conversions attributed");
                }
                return Ok(());
            }
            Err(sqlx::Error::Database(e))
                if attempt < ATTEMPTS
                    && matches!(e.code().as_deref(), Some("40P01") | Some("40001")) =>
            {
                tracing::warn!(attempt, error = %e, "attributing parked conversions retried");
            }
            Err(e) => return Err(e),
        }
    }
}

fn resolve_exposure(
    e: Exposure,
    site_id: Uuid,
    experiments: &HashMap<Uuid, (Uuid, &str, &str)>,
    arms: &HashMap<Uuid, ArmInfo>,
) -> Result<ResolvedExposure, Rejection> {
    let Some(&(experiment_site, _kind, status)) = experiments.get(&e.experiment_id) else {
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
    if status != "running" && status != "paused" {
        return Err(Rejection::new(
            &e.id,
            "experiment_not_live",
            format!("the experiment is {status}"),
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
        experiment_id: e.experiment_id,
        unit: arm.unit,
        arm_id: e.arm_id,
        visitor_id: e.visitor_id,
        propensity: e.propensity,
        snapshot_version: e.snapshot_version,
        at: e.at,
    })
}

#[derive(Default)]
struct Written {
    accepted: u64,
    duplicates: u64,
    conflicts: u64,
    unattributed: u64,
}

/// Per-arm deltas being grouped: (visitors, propensity sum, expected visitors, conflicts).
type ArmAcc = BTreeMap<Uuid, (i64, f64, f64, i64)>;
/// (unit, snapshot version) → (new visitors, arm → (sum of logged propensities, count)).
type VersionAcc = BTreeMap<(Uuid, i64), (i64, BTreeMap<Uuid, (f64, i64)>)>;
/// (arm, goal) → (experiment, converters, revenue_n, revenue sum, revenue sum of squares).
type GoalAcc = BTreeMap<(Uuid, Uuid), (Uuid, i64, i64, f64, f64)>;
/// What one visitor's conversions on a goal add in a batch.
struct KeyedValue {
    experiment: Uuid,
    arm: Uuid,
    /// Summed values from unsigned calls (the per-visitor cap applies to these).
    unsigned: f64,
    /// Summed values from signed server calls.
    signed: f64,
    /// The earliest conversion time.
    at: OffsetDateTime,
}

impl KeyedValue {
    fn new(experiment: Uuid, arm: Uuid, at: OffsetDateTime) -> Self {
        Self {
            experiment,
            arm,
            unsigned: 0.0,
            signed: 0.0,
            at,
        }
    }

    fn add(&mut self, value: f64, signed: bool, at: OffsetDateTime) {
        if signed {
            self.signed += value;
        } else {
            self.unsigned += value;
        }
        self.at = self.at.min(at);
    }
}

/// (goal, visitor, unit) → what the batch adds.
type Keyed<'a> = BTreeMap<(Uuid, &'a str, Uuid), KeyedValue>;
/// (arm, goal, day) → (experiment, converters, revenue).
type GoalDayAcc = BTreeMap<(Uuid, Uuid, Date), (Uuid, i64, f64)>;

async fn write_batch(
    pool: &PgPool,
    exposures: &[ResolvedExposure],
    conversions: &[ResolvedConversion],
    pageview_ids: &[String],
    goals: &[events::LiveGoalRow],
    arms: &HashMap<Uuid, ArmInfo>,
    unit_arms: &HashMap<Uuid, Vec<Uuid>>,
) -> Result<Written, sqlx::Error> {
    let mut written = Written::default();
    let mut tx = pool.begin().await?;

    // Seen ids, sorted (lock order).
    let mut ids: Vec<String> = exposures
        .iter()
        .map(|e| e.id.clone())
        .chain(conversions.iter().map(|c| c.id.clone()))
        .chain(pageview_ids.iter().cloned())
        .collect();
    ids.sort_unstable();
    let fresh: HashSet<String> = if ids.is_empty() {
        HashSet::new()
    } else {
        events::mark_seen(&mut tx, &ids)
            .await?
            .into_iter()
            .collect()
    };
    written.duplicates += (ids.len() - fresh.len()) as u64;
    written.accepted += pageview_ids.iter().filter(|id| fresh.contains(*id)).count() as u64;

    // Exposures: the earliest exposure per (experiment, visitor, unit) is the candidate
    // first exposure; the database keeps an existing assignment if there is one.
    let mut new_exposures: Vec<&ResolvedExposure> =
        exposures.iter().filter(|e| fresh.contains(&e.id)).collect();
    new_exposures.sort_by(|a, b| {
        (a.experiment_id, &a.visitor_id, a.unit, a.at, &a.id).cmp(&(
            b.experiment_id,
            &b.visitor_id,
            b.unit,
            b.at,
            &b.id,
        ))
    });
    let mut arm_acc: ArmAcc = BTreeMap::new();
    let mut arm_day: BTreeMap<(Uuid, Date), (Uuid, i64)> = BTreeMap::new();
    if !new_exposures.is_empty() {
        let mut candidates = NewAssignments::default();
        let mut last: Option<(Uuid, &str, Uuid)> = None;
        for e in &new_exposures {
            let key = (e.experiment_id, e.visitor_id.as_str(), e.unit);
            if last == Some(key) {
                continue;
            }
            last = Some(key);
            candidates.experiment_ids.push(e.experiment_id);
            candidates.visitor_ids.push(e.visitor_id.clone());
            candidates.units.push(e.unit);
            candidates.arm_ids.push(e.arm_id);
            candidates.propensities.push(e.propensity);
            candidates.snapshot_versions.push(e.snapshot_version);
            candidates.seen_at.push(e.at);
        }
        let inserted = events::insert_assignments(&mut tx, &candidates).await?;
        let mut holder: HashMap<(Uuid, String, Uuid), Uuid> = inserted
            .iter()
            .map(|r| ((r.experiment_id, r.visitor_id.clone(), r.unit), r.arm_id))
            .collect();
        if holder.len() < candidates.arm_ids.len() {
            // Keys already taken (earlier batch or a concurrent one that committed first).
            let (exp, vis): (Vec<Uuid>, Vec<String>) = candidates
                .experiment_ids
                .iter()
                .zip(&candidates.visitor_ids)
                .zip(&candidates.units)
                .filter(|((x, v), u)| !holder.contains_key(&(**x, (*v).clone(), **u)))
                .map(|((x, v), _)| (*x, v.clone()))
                .unzip();
            for AssignmentRow {
                experiment_id,
                visitor_id,
                unit,
                arm_id,
            } in events::assignments_of(&mut tx, &exp, &vis).await?
            {
                holder
                    .entry((experiment_id, visitor_id, unit))
                    .or_insert(arm_id);
            }
        }
        for e in &new_exposures {
            match holder.get(&(e.experiment_id, e.visitor_id.clone(), e.unit)) {
                Some(arm) if *arm == e.arm_id => written.accepted += 1,
                _ => {
                    written.duplicates += 1;
                    written.conflicts += 1;
                    arm_acc.entry(e.arm_id).or_default().3 += 1;
                }
            }
        }
        // New visitors: per arm, per (arm, day), and the expected visitors per arm.
        let by_key: HashMap<(Uuid, &str, Uuid), &&ResolvedExposure> = new_exposures
            .iter()
            .map(|e| ((e.experiment_id, e.visitor_id.as_str(), e.unit), e))
            .rev() // the earliest exposure of a key wins (it was the candidate)
            .collect();
        let mut versions: VersionAcc = BTreeMap::new();
        for row in &inserted {
            let Some(e) = by_key.get(&(row.experiment_id, row.visitor_id.as_str(), row.unit))
            else {
                continue;
            };
            let acc = arm_acc.entry(row.arm_id).or_default();
            acc.0 += 1;
            acc.1 += e.propensity;
            let day = arm_day
                .entry((row.arm_id, e.at.date()))
                .or_insert((row.experiment_id, 0));
            day.1 += 1;
            let version = versions.entry((row.unit, e.snapshot_version)).or_default();
            version.0 += 1;
            let p = version.1.entry(row.arm_id).or_default();
            p.0 += e.propensity;
            p.1 += 1;
        }
        for ((unit, _), (visitors, logged)) in &versions {
            let Some(all) = unit_arms.get(unit) else {
                continue;
            };
            for (arm, share) in expected_shares(all, logged) {
                arm_acc.entry(arm).or_default().2 += *visitors as f64 * share;
            }
        }
    }

    // Conversions: every live goal of the site matching the item's goal (custom goals by
    // target, url/click goals by name), attributed to each arm the visitor holds in that
    // goal's experiment.
    let new_conversions: Vec<&ResolvedConversion> = conversions
        .iter()
        .filter(|c| fresh.contains(&c.id))
        .collect();
    let mut goal_acc: GoalAcc = BTreeMap::new();
    let mut goal_day: BTreeMap<(Uuid, Uuid, Date), (Uuid, i64, f64)> = BTreeMap::new();
    let mut unattributed: BTreeMap<(Uuid, Date), i64> = BTreeMap::new();
    let mut pending = NewPending::default();
    if !new_conversions.is_empty() {
        let mut by_site_goal: HashMap<(Uuid, &str), Vec<(Uuid, Uuid)>> = HashMap::new();
        for g in goals {
            let key = if g.trigger == "custom" {
                g.target.as_str()
            } else {
                g.name.as_str()
            };
            by_site_goal
                .entry((g.site_id, key))
                .or_default()
                .push((g.goal_id, g.experiment_id));
        }
        let mut pairs: Vec<(Uuid, String)> = Vec::new();
        for c in &new_conversions {
            for (_, experiment_id) in by_site_goal
                .get(&(c.site_id, c.goal.as_str()))
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                pairs.push((*experiment_id, c.visitor_id.clone()));
            }
        }
        pairs.sort_unstable();
        pairs.dedup();
        let mut held: HashMap<(Uuid, &str), Vec<(Uuid, Uuid)>> = HashMap::new();
        let rows = if pairs.is_empty() {
            Vec::new()
        } else {
            let (exp, vis): (Vec<Uuid>, Vec<String>) = pairs.iter().cloned().unzip();
            events::assignments_of(&mut tx, &exp, &vis).await?
        };
        for r in &rows {
            held.entry((r.experiment_id, r.visitor_id.as_str()))
                .or_default()
                .push((r.unit, r.arm_id));
        }
        let mut keyed: Keyed<'_> = BTreeMap::new();
        for c in &new_conversions {
            written.accepted += 1;
            let mut attributed = false;
            for (goal_id, experiment_id) in by_site_goal
                .get(&(c.site_id, c.goal.as_str()))
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                let arms_held = held
                    .get(&(*experiment_id, c.visitor_id.as_str()))
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                if arms_held.is_empty() {
                    // The exposure may still be on its way (the queue keeps no order):
                    // park it until the visitor's assignment exists.
                    pending.item_ids.push(c.id.clone());
                    pending.goal_ids.push(*goal_id);
                    pending.experiment_ids.push(*experiment_id);
                    pending.visitor_ids.push(c.visitor_id.clone());
                    pending.values.push(c.value);
                    pending.signed.push(c.signed);
                    pending.at.push(c.at);
                }
                for (unit, arm) in arms_held {
                    attributed = true;
                    keyed
                        .entry((*goal_id, c.visitor_id.as_str(), *unit))
                        .or_insert_with(|| KeyedValue::new(*experiment_id, *arm, c.at))
                        .add(c.value, c.signed, c.at);
                }
            }
            if !attributed {
                written.unattributed += 1;
                *unattributed.entry((c.site_id, c.at.date())).or_default() += 1;
            }
        }
        upsert_keyed(&mut tx, &keyed, &mut goal_acc, &mut goal_day).await?;
    }
    if !pending.item_ids.is_empty() {
        events::insert_pending(&mut tx, &pending).await?;
    }

    // Aggregates, each one statement with sorted keys.
    if !arm_acc.is_empty() {
        let mut d = ArmDeltas::default();
        for (arm, (visitors, psum, expected, conflicts)) in &arm_acc {
            let Some(info) = arms.get(arm) else {
                continue; // every arm here came from the batch's experiments
            };
            d.arm_ids.push(*arm);
            d.experiment_ids.push(info.experiment_id);
            d.visitors.push(*visitors);
            d.propensity_sums.push(*psum);
            d.expected_visitors.push(*expected);
            d.conflicts.push(*conflicts);
        }
        aggregates::add_arm_totals(&mut tx, &d).await?;
    }
    if !arm_day.is_empty() {
        let mut d = ArmDailyDeltas::default();
        for ((arm, day), (experiment, visitors)) in &arm_day {
            d.arm_ids.push(*arm);
            d.days.push(*day);
            d.experiment_ids.push(*experiment);
            d.visitors.push(*visitors);
        }
        aggregates::add_arm_daily(&mut tx, &d).await?;
    }
    write_goal_aggregates(&mut tx, &goal_acc, &goal_day).await?;
    if !unattributed.is_empty() {
        let (mut s, mut days, mut counts) = (Vec::new(), Vec::new(), Vec::new());
        for ((site, day), n) in &unattributed {
            s.push(*site);
            days.push(*day);
            counts.push(*n);
        }
        aggregates::add_unattributed(&mut tx, &s, &days, &counts).await?;
    }
    tx.commit().await?;
    Ok(written)
}

/// Records per-(goal, visitor, unit) conversions and adds what they change to the
/// per-(arm, goal) and daily accumulators.
async fn upsert_keyed(
    tx: &mut sqlx::PgConnection,
    keyed: &Keyed<'_>,
    goal_acc: &mut GoalAcc,
    goal_day: &mut GoalDayAcc,
) -> Result<(), sqlx::Error> {
    if keyed.is_empty() {
        return Ok(());
    }
    let mut input = NewConversions::default();
    let mut days: HashMap<(Uuid, String, Uuid), (Uuid, Date)> = HashMap::new();
    for ((goal, visitor, unit), k) in keyed {
        input.goal_ids.push(*goal);
        input.visitor_ids.push((*visitor).to_owned());
        input.units.push(*unit);
        input.experiment_ids.push(k.experiment);
        input.arm_ids.push(k.arm);
        input.unsigned_values.push(k.unsigned);
        input.signed_values.push(k.signed);
        input.at.push(k.at);
        days.insert(
            (*goal, (*visitor).to_owned(), *unit),
            (k.experiment, k.at.date()),
        );
    }
    for row in events::upsert_conversions(tx, &input).await? {
        let Some(&(experiment, day)) = days.get(&(row.goal_id, row.visitor_id.clone(), row.unit))
        else {
            continue;
        };
        let delta = row.revenue - row.prev_revenue;
        let acc = goal_acc
            .entry((row.arm_id, row.goal_id))
            .or_insert((experiment, 0, 0, 0.0, 0.0));
        acc.1 += i64::from(row.inserted);
        acc.2 += i64::from(row.revenue > 0.0 && row.prev_revenue <= 0.0);
        acc.3 += delta;
        acc.4 += row.revenue * row.revenue - row.prev_revenue * row.prev_revenue;
        let d = goal_day
            .entry((row.arm_id, row.goal_id, day))
            .or_insert((experiment, 0, 0.0));
        d.1 += i64::from(row.inserted);
        d.2 += delta;
    }
    Ok(())
}

/// Writes the per-(arm, goal) totals and daily buckets, one statement each.
async fn write_goal_aggregates(
    tx: &mut sqlx::PgConnection,
    goal_acc: &GoalAcc,
    goal_day: &GoalDayAcc,
) -> Result<(), sqlx::Error> {
    if !goal_acc.is_empty() {
        let mut d = GoalDeltas::default();
        for ((arm, goal), (experiment, converters, revenue_n, sum, sumsq)) in goal_acc {
            d.arm_ids.push(*arm);
            d.goal_ids.push(*goal);
            d.experiment_ids.push(*experiment);
            d.converters.push(*converters);
            d.revenue_n.push(*revenue_n);
            d.revenue_sum.push(*sum);
            d.revenue_sumsq.push(*sumsq);
        }
        aggregates::add_goal_totals(&mut *tx, &d).await?;
        let mut d = GoalDailyDeltas::default();
        for ((arm, goal, day), (experiment, converters, sum)) in goal_day {
            d.arm_ids.push(*arm);
            d.goal_ids.push(*goal);
            d.days.push(*day);
            d.experiment_ids.push(*experiment);
            d.converters.push(*converters);
            d.revenue_sum.push(*sum);
        }
        aggregates::add_goal_daily(&mut *tx, &d).await?;
    }
    Ok(())
}

/// Attributes parked conversions (see `migrations/0009_pending_conversions.sql`) of
/// these visitors whose assignment now exists, in a transaction of its own that runs
/// after the batch's commit. Whichever of two racing batches (the conversion's, the
/// exposure's) commits second finds both rows committed, so nothing stays parked.
async fn attribute_pending(pool: &PgPool, visitor_ids: &[String]) -> Result<u64, sqlx::Error> {
    if visitor_ids.is_empty() {
        return Ok(0);
    }
    let mut tx = pool.begin().await?;
    let rows = events::take_attributable_pending(&mut tx, visitor_ids).await?;
    if rows.is_empty() {
        return Ok(0);
    }
    // Each (experiment, visitor) once: a visitor with several parked conversions would
    // otherwise get its assignment back once per conversion, and each value counted that
    // many times.
    let mut pairs: Vec<(Uuid, String)> = rows
        .iter()
        .map(|r| (r.experiment_id, r.visitor_id.clone()))
        .collect();
    pairs.sort_unstable();
    pairs.dedup();
    let (exp, vis): (Vec<Uuid>, Vec<String>) = pairs.into_iter().unzip();
    let held = events::assignments_of(&mut tx, &exp, &vis).await?;
    let mut keyed: Keyed<'_> = BTreeMap::new();
    for r in &rows {
        for a in held
            .iter()
            .filter(|a| a.experiment_id == r.experiment_id && a.visitor_id == r.visitor_id)
        {
            keyed
                .entry((r.goal_id, r.visitor_id.as_str(), a.unit))
                .or_insert_with(|| KeyedValue::new(r.experiment_id, a.arm_id, r.at))
                .add(r.value, r.signed, r.at);
        }
    }
    let mut goal_acc: GoalAcc = BTreeMap::new();
    let mut goal_day: GoalDayAcc = BTreeMap::new();
    upsert_keyed(&mut tx, &keyed, &mut goal_acc, &mut goal_day).await?;
    write_goal_aggregates(&mut tx, &goal_acc, &goal_day).await?;
    tx.commit().await?;
    Ok(rows.len() as u64)
}

/// The share of a unit's new visitors each arm should have received under one snapshot
/// version. Arms seen in the batch report their propensity (the mean of the logged
/// values — they are identical within a version); the probability mass left over is
/// split evenly between the arms not seen (exact with two arms; an estimate beyond).
pub fn expected_shares(all: &[Uuid], logged: &BTreeMap<Uuid, (f64, i64)>) -> Vec<(Uuid, f64)> {
    let known: f64 = logged.values().map(|(sum, n)| sum / *n as f64).sum();
    let unseen = all.iter().filter(|a| !logged.contains_key(a)).count();
    let rest = if unseen == 0 {
        0.0
    } else {
        ((1.0 - known) / unseen as f64).max(0.0)
    };
    all.iter()
        .map(|arm| {
            let share = logged
                .get(arm)
                .map(|(sum, n)| sum / *n as f64)
                .unwrap_or(rest);
            (*arm, share)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_shares_use_logged_propensities_and_split_the_rest() {
        let (a, b, c) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        let logged = BTreeMap::from([(a, (1.4, 2))]);
        let shares = expected_shares(&[a, b, c], &logged);
        assert_eq!(shares[0], (a, 0.7));
        assert!((shares[1].1 - 0.15).abs() < 1e-12);
        assert!((shares[2].1 - 0.15).abs() < 1e-12);
    }
}
