//! The snapshot: the versioned, signed document the control plane publishes per site and
//! the edge reads on every request.
//!
//! It carries everything an assignment needs — running experiments, their elements,
//! variants and [`Change`]s, URL rules, namespaces, site-wide exclusion rules, and per
//! allocation unit the [`Allocator`] parameters, the arms' posterior counts and their
//! propensities (computed by the control plane with [`Allocator::propensities`], so the
//! edge never integrates).
//!
//! ## Canonical form
//! [`sign`] serialises with `serde_json::to_string`, which is deterministic for this
//! schema: structs serialise their fields in declaration order; the schema has no maps
//! (only `Vec`s, whose order is part of the value); integers print exactly and floats
//! with the shortest representation that round-trips (ryu), so parse → serialise gives
//! the same bytes back; strings are escaped the same way every time. The same
//! [`Snapshot`] value therefore always gives the same payload bytes, and the signature
//! covers exactly those bytes (the edge verifies the bytes as received, before parsing).
//!
//! ## Verification ([`verify`])
//! 1. the key must be non-empty; the signature must be 64 hex digits;
//! 2. HMAC-SHA256 over the payload bytes, compared in constant time (`hmac`'s
//!    `verify_slice`);
//! 3. the `schema` must equal [`SCHEMA_VERSION`] (checked before the full parse, so a
//!    future schema yields `UnsupportedSchema`, not a confusing parse error);
//! 4. the document must parse (every rule, change and allocator validates itself on
//!    deserialisation) and pass [`Snapshot::validate`];
//! 5. versions: older than the held one → [`SnapshotError::Stale`]. **An equal version
//!    is accepted** so a retried push is idempotent; snapshots are immutable per version
//!    on the control plane, so an equal version carries the same payload. A receiver
//!    that wants to detect a misbehaving publisher can compare payload bytes with the
//!    one it holds ([`SignedSnapshot::same_payload`]).

use alloc::collections::BTreeSet;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::allocator::{Allocator, AllocatorError, ArmStats};
use crate::bucket::Seed;
use crate::changes::{self, Change};
use crate::multi::{self, Mode};
use crate::targeting::{ExclusionRule, UrlRule};

/// The schema version this engine reads and writes.
pub const SCHEMA_VERSION: u32 = 1;

/// Largest allowed difference between 1 and the sum of a unit's propensities.
pub const PROPENSITY_SUM_TOLERANCE: f64 = 1e-6;

type HmacSha256 = Hmac<Sha256>;

/// A site's snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Always [`SCHEMA_VERSION`] for documents this engine writes.
    pub schema: u32,
    /// The site's public key (e.g. `sk_live_…`).
    pub site_key: String,
    /// Monotonic version; a receiver refuses older versions than it holds.
    pub version: u64,
    /// When the control plane generated it (Unix ms). Informational: never used to
    /// decide an assignment.
    pub generated_at_ms: i64,
    /// Origins allowed to call the edge for this site (CORS).
    pub allowed_origins: Vec<String>,
    /// Site-wide exclusion rules; the first match excludes the visitor from everything.
    pub exclusions: Vec<ExclusionRule>,
    /// Running experiments, in evaluation order.
    pub experiments: Vec<ExperimentSnapshot>,
    /// What the edge needs to tell signed server calls from anonymous ones, and the
    /// revenue cap for the latter. Absent in older documents (and omitted when empty, so
    /// their canonical bytes are unchanged).
    #[serde(default, skip_serializing_if = "Trust::is_empty")]
    pub trust: Trust,
}

/// Largest event value the edge accepts from anyone, signed or not: the ingest
/// contract's [`crate::ingest::MAX_VALUE`].
pub const MAX_EVENT_VALUE: f64 = crate::ingest::MAX_VALUE;
/// The revenue cap for unsigned events when a snapshot names none.
pub const DEFAULT_REVENUE_CAP: f64 = 10_000.0;

/// A site's trust settings (see [`crate::server_call`]).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Trust {
    /// The public salt the site's server secret is derived from
    /// ([`crate::server_call::server_secret`]); `None`: the site has no server secret
    /// yet (created before signed calls, never rotated), so signed calls are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_secret_salt: Option<String>,
    /// Largest value an *unsigned* event may carry (signed calls may exceed it);
    /// `None`: [`DEFAULT_REVENUE_CAP`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revenue_cap: Option<f64>,
}

impl Trust {
    /// Nothing set: serialised as an absent field.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.server_secret_salt.is_none() && self.revenue_cap.is_none()
    }

    /// The cap unsigned events are held to.
    #[must_use]
    pub fn revenue_cap(&self) -> f64 {
        self.revenue_cap.unwrap_or(DEFAULT_REVENUE_CAP)
    }

    fn validate(&self) -> Result<(), SnapshotError> {
        if let Some(salt) = &self.server_secret_salt
            && !crate::server_call::valid_salt(salt)
        {
            return Err(SnapshotError::Invalid(
                "trust.server_secret_salt is not 32-128 lower-case hex digits".into(),
            ));
        }
        if let Some(cap) = self.revenue_cap
            && !(cap.is_finite() && cap > 0.0 && cap <= MAX_EVENT_VALUE)
        {
            return Err(SnapshotError::Invalid(format!(
                "trust.revenue_cap {cap} is outside (0, {MAX_EVENT_VALUE}]"
            )));
        }
        Ok(())
    }
}

/// One running experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentSnapshot {
    /// The experiment id (a UUID from the control plane).
    pub id: String,
    /// Bucketing seed (GrowthBook's `seed`; for a migrated experiment, its old seed).
    /// Serialised as a plain string; holds its precomputed hash state ([`Seed`]).
    pub seed: Seed,
    /// GrowthBook hash version, 1 or 2.
    pub hash_version: u8,
    /// Share of eligible traffic that enters the experiment, in [0, 1].
    pub coverage: f64,
    /// Where the experiment runs (no rules: everywhere).
    pub url_rules: Vec<UrlRule>,
    /// Experiment-level exclusions (in addition to the site's).
    #[serde(default)]
    pub exclusions: Vec<ExclusionRule>,
    /// GrowthBook-style namespace, for mutually exclusive experiments.
    pub namespace: Option<Namespace>,
    /// How arms relate to elements.
    pub mode: Mode,
    /// The elements the experiment changes.
    pub elements: Vec<Element>,
    /// Allocation units: one for `single`/`factorial`, one per element for
    /// `independent`.
    pub units: Vec<AllocationUnit>,
    /// Goals the snippet fires by itself (URL visited, click on a selector). Custom-event
    /// goals are not listed: the site fires them with `samplit.track(event)`. Absent in
    /// older schema-1 documents, hence the default.
    #[serde(default)]
    pub goals: Vec<GoalSnapshot>,
}

/// A goal the browser snippet detects; it reports a conversion with `goal = name`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GoalSnapshot {
    /// The goal's name (what the control plane matches URL and click conversions on).
    pub name: String,
    /// What fires it.
    pub trigger: GoalTrigger,
}

/// What fires a [`GoalSnapshot`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum GoalTrigger {
    /// A page view whose URL matches the rule.
    Url {
        /// The engine URL rule (exact, prefix or wildcard).
        rule: UrlRule,
    },
    /// A click on (or inside) an element matching the selector.
    Click {
        /// CSS selector.
        selector: String,
    },
}

/// A namespace range: the experiment takes visitors whose
/// `hash("__" + id, visitor, 1)` is in `[start, end)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Namespace {
    /// Namespace id.
    pub id: String,
    /// Start of the range, in [0, 1].
    pub start: f64,
    /// End of the range, in [start, 1].
    pub end: f64,
}

/// A page element an experiment changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Element {
    /// Element id, unique within the experiment.
    pub id: String,
    /// CSS selector of the element (validated like a change's selector).
    pub selector: String,
    /// Its variants; index 0 is conventionally the control.
    pub variants: Vec<Variant>,
}

/// One variant of an element.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Variant {
    /// Variant id, unique within the element.
    pub id: String,
    /// The changes applied for this variant (empty for a control).
    pub changes: Vec<Change>,
}

/// A set of arms sharing one allocator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AllocationUnit {
    /// Unit id, unique within the experiment (also the sticky-assignment key for
    /// independent elements).
    pub id: String,
    /// `Some(element id)` for an independent element's unit, else `None`.
    pub element_id: Option<String>,
    /// How traffic is split.
    pub allocator: Allocator,
    /// The arms.
    pub arms: Vec<Arm>,
}

/// One arm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Arm {
    /// Arm id, unique within the unit.
    pub id: String,
    /// Variant index per element: one entry per element for `single`/`factorial`, one
    /// entry (into the unit's element) for `independent`.
    pub variants: Vec<usize>,
    /// Exposures so far (posterior counts).
    pub exposures: u64,
    /// Conversions so far (≤ exposures).
    pub conversions: u64,
    /// Probability a new visitor gets this arm under this snapshot.
    pub propensity: f64,
}

impl AllocationUnit {
    /// Builds a unit the way the control plane should: each arm's propensity computed
    /// by `allocator` from the arms' counts ([`Allocator::propensities`]), so the
    /// snapshot carries exactly the probabilities the edge will realise.
    ///
    /// `arms` holds, per arm, its id, its variant index per element (see [`Arm`]) and
    /// its counts.
    pub fn with_propensities(
        id: impl Into<String>,
        element_id: Option<String>,
        allocator: Allocator,
        arms: Vec<(String, Vec<usize>, ArmStats)>,
    ) -> Result<Self, AllocatorError> {
        let stats: Vec<ArmStats> = arms.iter().map(|(_, _, s)| *s).collect();
        let propensities = allocator.propensities(&stats)?;
        let arms = arms
            .into_iter()
            .zip(propensities)
            .map(|((id, variants, s), propensity)| Arm {
                id,
                variants,
                exposures: s.exposures,
                conversions: s.conversions,
                propensity,
            })
            .collect();
        Ok(Self {
            id: id.into(),
            element_id,
            allocator,
            arms,
        })
    }
}

impl Arm {
    /// The arm's counts as allocator input.
    #[must_use]
    pub fn stats(&self) -> ArmStats {
        ArmStats {
            exposures: self.exposures,
            conversions: self.conversions,
        }
    }
}

/// The wire form of a push: `{"payload": "<canonical JSON>", "signature": "<hex>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedSnapshot {
    /// Canonical JSON of a [`Snapshot`].
    pub payload: String,
    /// Lower-case hex HMAC-SHA256(key, payload).
    pub signature: String,
}

impl SignedSnapshot {
    /// Whether both carry byte-identical payloads.
    #[must_use]
    pub fn same_payload(&self, other: &SignedSnapshot) -> bool {
        self.payload == other.payload
    }
}

/// Why a snapshot was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotError {
    /// An empty signing key.
    EmptyKey,
    /// The signature is malformed or does not match.
    BadSignature,
    /// A schema version this engine does not read.
    UnsupportedSchema(u32),
    /// Older than the version held.
    Stale {
        /// The version held.
        held: u64,
        /// The version received.
        received: u64,
    },
    /// The payload is not a valid snapshot document (JSON or field-level validation).
    Malformed(String),
    /// The document parsed but is inconsistent (see [`Snapshot::validate`]).
    Invalid(String),
}

impl fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EmptyKey => write!(f, "the signing key is empty"),
            Self::BadSignature => write!(f, "bad signature"),
            Self::UnsupportedSchema(s) => {
                write!(
                    f,
                    "schema {s} is not supported (this engine reads {SCHEMA_VERSION})"
                )
            }
            Self::Stale { held, received } => {
                write!(
                    f,
                    "version {received} is older than the held version {held}"
                )
            }
            Self::Malformed(m) => write!(f, "malformed snapshot: {m}"),
            Self::Invalid(m) => write!(f, "invalid snapshot: {m}"),
        }
    }
}

impl core::error::Error for SnapshotError {}

fn mac(key: &[u8]) -> HmacSha256 {
    // HMAC is defined for keys of any length (long keys are hashed, short ones padded),
    // so this constructor cannot fail.
    <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC-SHA256 accepts keys of any length")
}

/// Serialises `snapshot` canonically and signs it. Does not validate: the control plane
/// should prefer [`try_sign`], which refuses a snapshot the edge would reject.
#[must_use]
pub fn sign(snapshot: &Snapshot, key: &[u8]) -> SignedSnapshot {
    let payload = serde_json::to_string(snapshot)
        .expect("the snapshot schema has no maps and no fallible Serialize impls");
    let mut m = mac(key);
    m.update(payload.as_bytes());
    let signature = hex::encode(m.finalize().into_bytes());
    SignedSnapshot { payload, signature }
}

/// [`Snapshot::validate`], then [`sign`]; refuses an empty key.
pub fn try_sign(snapshot: &Snapshot, key: &[u8]) -> Result<SignedSnapshot, SnapshotError> {
    if key.is_empty() {
        return Err(SnapshotError::EmptyKey);
    }
    snapshot.validate()?;
    Ok(sign(snapshot, key))
}

#[derive(Deserialize)]
struct SchemaProbe {
    schema: u32,
}

/// Verifies and parses a pushed snapshot (see the module docs for every check).
pub fn verify(
    signed: &SignedSnapshot,
    key: &[u8],
    held_version: Option<u64>,
) -> Result<Snapshot, SnapshotError> {
    if key.is_empty() {
        return Err(SnapshotError::EmptyKey);
    }
    let mut sig = [0u8; 32];
    hex::decode_to_slice(&signed.signature, &mut sig).map_err(|_| SnapshotError::BadSignature)?;
    let mut m = mac(key);
    m.update(signed.payload.as_bytes());
    m.verify_slice(&sig)
        .map_err(|_| SnapshotError::BadSignature)?;

    let probe: SchemaProbe = serde_json::from_str(&signed.payload)
        .map_err(|e| SnapshotError::Malformed(e.to_string()))?;
    if probe.schema != SCHEMA_VERSION {
        return Err(SnapshotError::UnsupportedSchema(probe.schema));
    }
    let snapshot: Snapshot = serde_json::from_str(&signed.payload)
        .map_err(|e| SnapshotError::Malformed(e.to_string()))?;
    snapshot.validate()?;
    if let Some(held) = held_version
        && snapshot.version < held
    {
        return Err(SnapshotError::Stale {
            held,
            received: snapshot.version,
        });
    }
    Ok(snapshot)
}

fn unique<'a>(what: &str, ids: impl Iterator<Item = &'a str>) -> Result<(), SnapshotError> {
    let mut seen = BTreeSet::new();
    for id in ids {
        if id.is_empty() {
            return Err(SnapshotError::Invalid(format!("an empty {what} id")));
        }
        if !seen.insert(id) {
            return Err(SnapshotError::Invalid(format!(
                "duplicate {what} id {id:?}"
            )));
        }
    }
    Ok(())
}

impl Snapshot {
    /// Checks what the types alone cannot: schema, unique ids, ranges, arm/variant
    /// consistency with the mode, allocator parameters against the arm count,
    /// propensities (finite, ≥ 0, summing to 1 ± [`PROPENSITY_SUM_TOLERANCE`]),
    /// conversions ≤ exposures.
    pub fn validate(&self) -> Result<(), SnapshotError> {
        if self.schema != SCHEMA_VERSION {
            return Err(SnapshotError::UnsupportedSchema(self.schema));
        }
        if self.site_key.is_empty() {
            return Err(SnapshotError::Invalid("empty site_key".into()));
        }
        self.trust.validate()?;
        unique("experiment", self.experiments.iter().map(|e| e.id.as_str()))?;
        for e in &self.experiments {
            e.validate()
                .map_err(|m| SnapshotError::Invalid(format!("experiment {:?}: {m}", e.id)))?;
        }
        Ok(())
    }
}

impl ExperimentSnapshot {
    fn validate(&self) -> Result<(), String> {
        let inner = |e: SnapshotError| match e {
            SnapshotError::Invalid(m) => m,
            other => other.to_string(),
        };
        if self.seed.is_empty() {
            return Err("empty seed".into());
        }
        if !matches!(self.hash_version, 1 | 2) {
            return Err(format!("unknown hash version {}", self.hash_version));
        }
        if !(0.0..=1.0).contains(&self.coverage) {
            return Err(format!("coverage {} outside [0, 1]", self.coverage));
        }
        if let Some(ns) = &self.namespace {
            let ok = !ns.id.is_empty()
                && (0.0..=1.0).contains(&ns.start)
                && (0.0..=1.0).contains(&ns.end)
                && ns.start <= ns.end;
            if !ok {
                return Err(format!(
                    "namespace {:?} [{}, {}) is invalid",
                    ns.id, ns.start, ns.end
                ));
            }
        }
        if self.elements.is_empty() {
            return Err("no elements".into());
        }
        unique("element", self.elements.iter().map(|e| e.id.as_str())).map_err(inner)?;
        for el in &self.elements {
            changes::validate_selector(&el.selector)
                .map_err(|e| format!("element {:?}: {e}", el.id))?;
            if el.variants.is_empty() {
                return Err(format!("element {:?} has no variants", el.id));
            }
            unique("variant", el.variants.iter().map(|v| v.id.as_str())).map_err(inner)?;
        }
        unique("unit", self.units.iter().map(|u| u.id.as_str())).map_err(inner)?;
        match self.mode {
            Mode::Single | Mode::Factorial => {
                let [unit] = self.units.as_slice() else {
                    return Err(format!("{:?} mode needs exactly one unit", self.mode));
                };
                if unit.element_id.is_some() {
                    return Err("a single/factorial unit has no element_id".into());
                }
                self.validate_unit(unit, None)?;
                if self.mode == Mode::Factorial {
                    let counts: Vec<usize> =
                        self.elements.iter().map(|e| e.variants.len()).collect();
                    let all = multi::factorial_combinations(&counts).map_err(|e| e.to_string())?;
                    let have: BTreeSet<&[usize]> =
                        unit.arms.iter().map(|a| a.variants.as_slice()).collect();
                    if have.len() != unit.arms.len() || all.len() != unit.arms.len() {
                        return Err(format!(
                            "a factorial unit needs each of the {} combinations exactly once",
                            all.len()
                        ));
                    }
                }
            }
            Mode::Independent => {
                if self.units.len() != self.elements.len() {
                    return Err("independent mode needs one unit per element".into());
                }
                for (i, el) in self.elements.iter().enumerate() {
                    let unit = self
                        .units
                        .iter()
                        .find(|u| u.element_id.as_deref() == Some(el.id.as_str()))
                        .ok_or_else(|| format!("element {:?} has no unit", el.id))?;
                    self.validate_unit(unit, Some(i))?;
                }
            }
        }
        Ok(())
    }

    /// `element`: `Some(i)` for an independent unit (arms index element i's variants).
    fn validate_unit(&self, unit: &AllocationUnit, element: Option<usize>) -> Result<(), String> {
        let ctx = |m: String| format!("unit {:?}: {m}", unit.id);
        unique("arm", unit.arms.iter().map(|a| a.id.as_str())).map_err(|e| ctx(e.to_string()))?;
        unit.allocator
            .check_arms(unit.arms.len())
            .map_err(|e| ctx(e.to_string()))?;
        let mut sum = 0.0;
        for arm in &unit.arms {
            let expected_len = if element.is_some() {
                1
            } else {
                self.elements.len()
            };
            if arm.variants.len() != expected_len {
                return Err(ctx(format!(
                    "arm {:?} names {} variants, expected {expected_len}",
                    arm.id,
                    arm.variants.len()
                )));
            }
            for (pos, &v) in arm.variants.iter().enumerate() {
                let el = &self.elements[element.unwrap_or(pos)];
                if v >= el.variants.len() {
                    return Err(ctx(format!(
                        "arm {:?}: element {:?} has no variant {v}",
                        arm.id, el.id
                    )));
                }
            }
            if arm.conversions > arm.exposures {
                return Err(ctx(format!(
                    "arm {:?} has more conversions than exposures",
                    arm.id
                )));
            }
            if !arm.propensity.is_finite() || arm.propensity < 0.0 {
                return Err(ctx(format!(
                    "arm {:?} propensity {}",
                    arm.id, arm.propensity
                )));
            }
            sum += arm.propensity;
        }
        if (sum - 1.0).abs() > PROPENSITY_SUM_TOLERANCE {
            return Err(ctx(format!("propensities sum to {sum}, not 1")));
        }
        Ok(())
    }
}
