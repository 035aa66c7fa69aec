//! Allocators: how an allocation unit's traffic is split between its arms.
//!
//! One enum, chosen per experiment (per allocation unit):
//!
//! - [`Allocator::FixedSplit`]: classic A/B/n with weights, bucketed with the
//!   GrowthBook hash ([`crate::bucket`]) so a fixed-split experiment puts each visitor in
//!   the same variation GrowthBook would.
//! - [`Allocator::Thompson`]: Thompson sampling (Thompson 1933, "On the likelihood that
//!   one unknown probability exceeds another in view of the evidence of two samples",
//!   Biometrika 25(3/4), doi:10.2307/2332286) with `Beta(prior + conversions,
//!   prior + non-conversions)` posteriors. Until every arm has `min_exposures` exposures
//!   (burn-in) it behaves as an equal fixed split. After burn-in, each visitor draws:
//!   with probability `k·floor` a uniformly random arm (the exploration floor), otherwise
//!   the argmax of one Beta draw per arm. Hence the exact probability of arm `i` is
//!   `floor + (1 − k·floor)·P(arm i is best)`, which [`Allocator::propensities`] computes
//!   by numerical integration ([`crate::stats::bayes::chance_to_be_best`]) — the control
//!   plane does that when it builds a snapshot, so the edge never integrates.
//!
//! Randomness is always a parameter (`R: rand_core::Rng`); the edge derives it from
//! [`visitor_rng`], a ChaCha8 stream seeded from a hash of (visitor, unit, snapshot
//! version), so an assignment is reproducible and replayable. Inclusion (traffic
//! coverage) is decided by the GrowthBook hash in both phases, so the set of included
//! visitors does not move when burn-in ends.
//!
//! Parameters are validated at construction *and* on deserialisation (`serde(try_from)`),
//! so an `Allocator` value is always valid on its own; checks that depend on the number
//! of arms (weights length, `floor < 1/k`) happen in [`Allocator::check_arms`].

use alloc::vec::Vec;
use core::fmt;

use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};
use rand_distr::{Beta, Distribution};
use serde::{Deserialize, Serialize};

use crate::bucket;
use crate::stats::bayes::{self, BayesError};

/// Default burn-in: exposures every arm needs before Thompson sampling takes over.
pub const DEFAULT_MIN_EXPOSURES: u64 = 100;
/// Default exploration floor: the share of new traffic every arm keeps.
pub const DEFAULT_FLOOR: f64 = 0.01;
/// Tolerance on weights summing to 1 (GrowthBook's [0.99, 1.01]).
const WEIGHT_SUM_TOLERANCE: f64 = 0.01;

/// Why allocator parameters or inputs were refused.
#[derive(Debug, Clone, PartialEq)]
pub enum AllocatorError {
    /// No arms.
    NoArms,
    /// A weight that is NaN, infinite or negative.
    InvalidWeight {
        /// Index of the weight.
        index: usize,
        /// The value given.
        value: f64,
    },
    /// Weights not summing to 1 within ±0.01 (GrowthBook would silently use equal
    /// weights; we refuse instead).
    WeightsDoNotSumToOne(f64),
    /// The number of weights differs from the number of arms.
    WeightCountMismatch {
        /// Weights given.
        weights: usize,
        /// Arms in the unit.
        arms: usize,
    },
    /// A prior parameter that is not finite and positive.
    InvalidPrior(f64),
    /// A floor that is NaN or outside `[0, 1/k)` (with `k` arms, `k·floor` must be < 1).
    InvalidFloor {
        /// The floor given.
        floor: f64,
        /// Arms in the unit (1 when checked without arms: the floor must be < 1).
        arms: usize,
    },
    /// An arm reports more conversions than exposures.
    ConversionsExceedExposures {
        /// Index of the arm.
        arm: usize,
    },
    /// More arms than Thompson sampling supports (the chance-to-be-best integration's
    /// limit, [`bayes::MAX_ARMS`]).
    TooManyArms {
        /// Arms given.
        arms: usize,
        /// The limit.
        max: usize,
    },
    /// The chance-to-be-best integration refused the posteriors.
    Bayes(BayesError),
}

impl fmt::Display for AllocatorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoArms => write!(f, "an allocator needs at least one arm"),
            Self::InvalidWeight { index, value } => {
                write!(
                    f,
                    "weight {index} is {value}; weights must be finite and >= 0"
                )
            }
            Self::WeightsDoNotSumToOne(sum) => write!(f, "weights sum to {sum}, not 1 (±0.01)"),
            Self::WeightCountMismatch { weights, arms } => {
                write!(f, "{weights} weights for {arms} arms")
            }
            Self::InvalidPrior(p) => write!(f, "prior {p} must be finite and > 0"),
            Self::InvalidFloor { floor, arms } => {
                write!(f, "floor {floor} must be in [0, 1/{arms})")
            }
            Self::ConversionsExceedExposures { arm } => {
                write!(f, "arm {arm} has more conversions than exposures")
            }
            Self::TooManyArms { arms, max } => {
                write!(f, "{arms} arms; Thompson sampling supports at most {max}")
            }
            Self::Bayes(e) => write!(f, "chance to be best: {e}"),
        }
    }
}

impl core::error::Error for AllocatorError {}

impl From<BayesError> for AllocatorError {
    fn from(e: BayesError) -> Self {
        Self::Bayes(e)
    }
}

/// What the allocator knows about one arm: its exposures and conversions so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ArmStats {
    /// Visitors exposed to the arm.
    pub exposures: u64,
    /// Of those, visitors who converted (≤ exposures).
    pub conversions: u64,
}

/// Fixed split: arm `i` gets share `weights[i]` of included traffic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "FixedSplitRaw")]
pub struct FixedSplit {
    weights: Vec<f64>,
}

#[derive(Deserialize)]
struct FixedSplitRaw {
    weights: Vec<f64>,
}

impl TryFrom<FixedSplitRaw> for FixedSplit {
    type Error = AllocatorError;
    fn try_from(raw: FixedSplitRaw) -> Result<Self, Self::Error> {
        Self::new(raw.weights)
    }
}

impl FixedSplit {
    /// Weights must be finite, ≥ 0, at least one, summing to 1 ± 0.01.
    pub fn new(weights: Vec<f64>) -> Result<Self, AllocatorError> {
        if weights.is_empty() {
            return Err(AllocatorError::NoArms);
        }
        for (index, &value) in weights.iter().enumerate() {
            if !value.is_finite() || value < 0.0 {
                return Err(AllocatorError::InvalidWeight { index, value });
            }
        }
        let sum: f64 = weights.iter().sum();
        if (sum - 1.0).abs() > WEIGHT_SUM_TOLERANCE {
            return Err(AllocatorError::WeightsDoNotSumToOne(sum));
        }
        Ok(Self { weights })
    }

    /// Equal weights over `k` arms.
    pub fn equal(k: usize) -> Result<Self, AllocatorError> {
        if k == 0 {
            return Err(AllocatorError::NoArms);
        }
        Self::new(alloc::vec![1.0 / k as f64; k])
    }

    /// The weights.
    #[must_use]
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }
}

/// Thompson sampling parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "ThompsonRaw")]
pub struct Thompson {
    prior_alpha: f64,
    prior_beta: f64,
    min_exposures: u64,
    floor: f64,
}

#[derive(Deserialize)]
struct ThompsonRaw {
    prior_alpha: f64,
    prior_beta: f64,
    min_exposures: u64,
    floor: f64,
}

impl TryFrom<ThompsonRaw> for Thompson {
    type Error = AllocatorError;
    fn try_from(raw: ThompsonRaw) -> Result<Self, Self::Error> {
        Self::new(
            raw.prior_alpha,
            raw.prior_beta,
            raw.min_exposures,
            raw.floor,
        )
    }
}

impl Default for Thompson {
    /// Uniform `Beta(1, 1)` prior, burn-in 100, floor 0.01.
    fn default() -> Self {
        Self {
            prior_alpha: 1.0,
            prior_beta: 1.0,
            min_exposures: DEFAULT_MIN_EXPOSURES,
            floor: DEFAULT_FLOOR,
        }
    }
}

impl Thompson {
    /// Priors finite and > 0; floor in `[0, 1)` (the `floor < 1/k` check needs the arm
    /// count and happens in [`Allocator::check_arms`]).
    pub fn new(
        prior_alpha: f64,
        prior_beta: f64,
        min_exposures: u64,
        floor: f64,
    ) -> Result<Self, AllocatorError> {
        for p in [prior_alpha, prior_beta] {
            if !p.is_finite() || p <= 0.0 {
                return Err(AllocatorError::InvalidPrior(p));
            }
        }
        if !(0.0..1.0).contains(&floor) {
            return Err(AllocatorError::InvalidFloor { floor, arms: 1 });
        }
        Ok(Self {
            prior_alpha,
            prior_beta,
            min_exposures,
            floor,
        })
    }

    /// Prior alpha (pseudo-conversions).
    #[must_use]
    pub fn prior_alpha(&self) -> f64 {
        self.prior_alpha
    }
    /// Prior beta (pseudo-non-conversions).
    #[must_use]
    pub fn prior_beta(&self) -> f64 {
        self.prior_beta
    }
    /// Burn-in exposures per arm.
    #[must_use]
    pub fn min_exposures(&self) -> u64 {
        self.min_exposures
    }
    /// Exploration floor.
    #[must_use]
    pub fn floor(&self) -> f64 {
        self.floor
    }

    /// `(alpha, beta)` of arm `i`'s posterior:
    /// `Beta(prior_alpha + conversions, prior_beta + exposures − conversions)`.
    pub fn posterior(&self, arm: usize, stats: ArmStats) -> Result<(f64, f64), AllocatorError> {
        let failures = stats
            .exposures
            .checked_sub(stats.conversions)
            .ok_or(AllocatorError::ConversionsExceedExposures { arm })?;
        // u64 → f64 rounds above 2^53, far beyond any realistic count.
        Ok((
            self.prior_alpha + stats.conversions as f64,
            self.prior_beta + failures as f64,
        ))
    }

    /// One draw from arm `i`'s posterior (`rand_distr::Beta`, Cheng 1978's BB/BC
    /// algorithms: R. C. H. Cheng, "Generating beta variates with nonintegral shape
    /// parameters", CACM 21(4), 1978, doi:10.1145/359460.359482). The sampler is
    /// checked against the Beta CDF by a Kolmogorov–Smirnov test.
    pub fn sample_posterior<R: Rng + ?Sized>(
        &self,
        arm: usize,
        stats: ArmStats,
        rng: &mut R,
    ) -> Result<f64, AllocatorError> {
        let (alpha, beta) = self.posterior(arm, stats)?;
        // Both parameters are finite and > 0 (validated priors plus counts), which is
        // all `Beta::new` requires; the error arm is unreachable but kept typed.
        let dist =
            Beta::new(alpha, beta).map_err(|_| AllocatorError::InvalidPrior(alpha.min(beta)))?;
        Ok(dist.sample(rng))
    }

    /// Whether the unit is still in burn-in (some arm below `min_exposures`).
    #[must_use]
    pub fn in_burn_in(&self, arms: &[ArmStats]) -> bool {
        arms.iter().any(|a| a.exposures < self.min_exposures)
    }
}

/// The allocator of one allocation unit. Serialised as
/// `{"kind": "fixed_split", "weights": [...]}` or
/// `{"kind": "thompson", "prior_alpha": 1.0, "prior_beta": 1.0, "min_exposures": 100, "floor": 0.01}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Allocator {
    /// Classic A/B/n with weights.
    FixedSplit(FixedSplit),
    /// Thompson sampling with burn-in and an exploration floor.
    Thompson(Thompson),
}

impl Allocator {
    /// Checks the parameters against the unit's arm count: at least one arm; fixed-split
    /// weights one per arm; Thompson `k·floor < 1`.
    pub fn check_arms(&self, k: usize) -> Result<(), AllocatorError> {
        if k == 0 {
            return Err(AllocatorError::NoArms);
        }
        match self {
            Self::FixedSplit(fs) => {
                if fs.weights.len() != k {
                    return Err(AllocatorError::WeightCountMismatch {
                        weights: fs.weights.len(),
                        arms: k,
                    });
                }
            }
            Self::Thompson(t) => {
                // k·floor < 1 ⇔ floor < 1/k; written as a product to avoid rounding 1/k.
                if t.floor * k as f64 >= 1.0 {
                    return Err(AllocatorError::InvalidFloor {
                        floor: t.floor,
                        arms: k,
                    });
                }
                // Propensities come from the chance-to-be-best integration, which
                // supports at most `bayes::MAX_ARMS` arms (factorial allows up to 500).
                if k > bayes::MAX_ARMS {
                    return Err(AllocatorError::TooManyArms {
                        arms: k,
                        max: bayes::MAX_ARMS,
                    });
                }
            }
        }
        Ok(())
    }

    /// The exact probability that a new visitor (inside the traffic coverage) gets each
    /// arm under these statistics. Sums to 1; for Thompson after burn-in each is
    /// `≥ floor`. Called by the control plane when building a snapshot.
    pub fn propensities(&self, arms: &[ArmStats]) -> Result<Vec<f64>, AllocatorError> {
        let k = arms.len();
        self.check_arms(k)?;
        match self {
            Self::FixedSplit(fs) => {
                // Inside coverage, arm i's range has width coverage·w_i out of
                // coverage·Σw, so the probability is w_i/Σw.
                let sum: f64 = fs.weights.iter().sum();
                Ok(fs.weights.iter().map(|w| w / sum).collect())
            }
            Self::Thompson(t) => {
                let posteriors = arms
                    .iter()
                    .enumerate()
                    .map(|(i, &a)| t.posterior(i, a))
                    .collect::<Result<Vec<_>, _>>()?;
                if t.in_burn_in(arms) {
                    return Ok(alloc::vec![1.0 / k as f64; k]);
                }
                let best = bayes::chance_to_be_best(&posteriors)?;
                let explore = k as f64 * t.floor;
                Ok(best.iter().map(|p| t.floor + (1.0 - explore) * p).collect())
            }
        }
    }

    /// Chooses an arm for one visitor, without allocating.
    ///
    /// `bucket` is the visitor's GrowthBook hash for this unit (in [0, 1)); `coverage`
    /// the unit's traffic coverage. Returns `Ok(None)` when the visitor falls outside
    /// the coverage. The RNG is consulted only by Thompson after burn-in.
    pub fn choose<R: Rng + ?Sized>(
        &self,
        arms: &[ArmStats],
        bucket: f64,
        coverage: f64,
        rng: &mut R,
    ) -> Result<Option<usize>, AllocatorError> {
        self.choose_by(arms.len(), |i| arms[i], bucket, coverage, rng)
    }

    /// [`Allocator::choose`] with the arms' statistics given by `stats(i)` for
    /// `i < k`, so callers holding arms in another shape need not collect them.
    pub fn choose_by<R: Rng + ?Sized>(
        &self,
        k: usize,
        stats: impl Fn(usize) -> ArmStats,
        bucket: f64,
        coverage: f64,
        rng: &mut R,
    ) -> Result<Option<usize>, AllocatorError> {
        self.choose_lazy(k, stats, bucket, coverage, || rng)
    }

    /// [`Allocator::choose_by`] with the RNG built by `make_rng` only when it is needed
    /// (Thompson after burn-in): the hot path of a fixed split, or of a bandit still in
    /// burn-in, never pays for seeding one.
    pub fn choose_lazy<R: Rng>(
        &self,
        k: usize,
        stats: impl Fn(usize) -> ArmStats,
        bucket: f64,
        coverage: f64,
        make_rng: impl FnOnce() -> R,
    ) -> Result<Option<usize>, AllocatorError> {
        self.check_arms(k)?;
        match self {
            Self::FixedSplit(fs) => Ok(bucket::choose_from_weights(
                bucket,
                k,
                coverage,
                Some(&fs.weights),
            )),
            Self::Thompson(t) => {
                // Inclusion by the equal-weight GrowthBook ranges in both phases.
                let Some(equal_split) = bucket::choose_from_weights(bucket, k, coverage, None)
                else {
                    return Ok(None);
                };
                if (0..k).any(|i| stats(i).exposures < t.min_exposures) {
                    return Ok(Some(equal_split));
                }
                thompson_draw(t, k, &stats, &mut make_rng()).map(Some)
            }
        }
    }
}

/// One Thompson draw after burn-in: with probability `k·floor` a uniform arm, else the
/// argmax of one `Beta` draw per arm (ties, of probability 0, go to the lowest index).
fn thompson_draw<R: Rng + ?Sized>(
    t: &Thompson,
    k: usize,
    stats: &impl Fn(usize) -> ArmStats,
    rng: &mut R,
) -> Result<usize, AllocatorError> {
    let u = unit_f64(rng);
    let explore = k as f64 * t.floor;
    if u < explore {
        // Given u < k·floor, u/floor is uniform on [0, k): its integer part is a uniform
        // arm. `min` guards the rounding edge u/floor == k.
        return Ok(((u / t.floor) as usize).min(k - 1));
    }
    let mut best = 0;
    let mut best_draw = f64::NEG_INFINITY;
    for i in 0..k {
        let x = t.sample_posterior(i, stats(i), rng)?;
        if x > best_draw {
            best = i;
            best_draw = x;
        }
    }
    Ok(best)
}

/// A uniform double in [0, 1) from the top 53 bits of one `u64`.
fn unit_f64<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// The 64-bit seed of a visitor's assignment RNG.
///
/// The message `le64(len(visitor)) ‖ visitor ‖ le64(len(unit)) ‖ unit ‖ le64(version)`
/// (strings as UTF-8; `unit` is the concatenation of `unit_parts`: the experiment id,
/// or `experiment_id:element_id` for an independent element) is read as little-endian
/// 64-bit words, the last one zero-padded. Starting from `0x243f6a8885a308d3`, each word
/// `w` updates the state `s ← (s ⊕ w)·0x9e3779b97f4a7c15 mod 2⁶⁴; s ← s ⊕ (s ≫ 29)`;
/// finally `s ⊕ len(message)` goes through the SplitMix64 finaliser (Steele, Lea and
/// Flood 2014, "Fast splittable pseudorandom number generators", OOPSLA,
/// doi:10.1145/2660193.2660195).
///
/// The length prefixes make the encoding injective; every step is a bijection of the
/// state, so messages of equal length that differ in one word never collide. This is
/// not a cryptographic hash and need not be: the seed only has to differ between
/// inputs, and ChaCha8 keyed by distinct seeds yields independent-looking streams. It
/// works a word at a time (about 8 multiplications for a UUID visitor and unit), which
/// keeps it off the Thompson hot path's critical cost. Pinned by golden values from
/// `tests/reference/visitor_seed.py`: changing it changes every replayed assignment.
#[must_use]
pub fn visitor_seed(visitor: &str, unit_parts: &[&str], snapshot_version: u64) -> u64 {
    let mut h = WordHasher::new();
    h.write(&(visitor.len() as u64).to_le_bytes());
    h.write(visitor.as_bytes());
    let unit_len: usize = unit_parts.iter().map(|p| p.len()).sum();
    h.write(&(unit_len as u64).to_le_bytes());
    for part in unit_parts {
        h.write(part.as_bytes());
    }
    h.write(&snapshot_version.to_le_bytes());
    h.finish()
}

/// The streaming word hash behind [`visitor_seed`].
struct WordHasher {
    state: u64,
    /// Pending bytes (little-endian), `pending` of them.
    buf: u64,
    pending: u32,
    len: u64,
}

impl WordHasher {
    const INIT: u64 = 0x243f_6a88_85a3_08d3;
    const MUL: u64 = 0x9e37_79b9_7f4a_7c15;

    fn new() -> Self {
        Self {
            state: Self::INIT,
            buf: 0,
            pending: 0,
            len: 0,
        }
    }

    #[inline]
    fn word(&mut self, w: u64) {
        self.state = (self.state ^ w).wrapping_mul(Self::MUL);
        self.state ^= self.state >> 29;
    }

    #[inline]
    fn write(&mut self, mut bytes: &[u8]) {
        self.len += bytes.len() as u64;
        // Top up a partial word first.
        while self.pending != 0 {
            let Some((&b, rest)) = bytes.split_first() else {
                return;
            };
            self.buf |= u64::from(b) << (8 * self.pending);
            self.pending = (self.pending + 1) % 8;
            bytes = rest;
            if self.pending == 0 {
                let w = self.buf;
                self.buf = 0;
                self.word(w);
            }
        }
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            self.word(u64::from_le_bytes(w));
        }
        for (i, &b) in chunks.remainder().iter().enumerate() {
            self.buf |= u64::from(b) << (8 * i);
        }
        // `remainder().len() < 8`, so the cast cannot truncate.
        self.pending = chunks.remainder().len() as u32;
    }

    fn finish(mut self) -> u64 {
        if self.pending != 0 {
            let w = self.buf;
            self.word(w);
        }
        // SplitMix64 finaliser.
        let mut z = self.state ^ self.len;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// The visitor's assignment RNG for a unit under a snapshot version:
/// `ChaCha8Rng::seed_from_u64(visitor_seed(..))`.
#[must_use]
pub fn visitor_rng(visitor: &str, unit_parts: &[&str], snapshot_version: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(visitor_seed(visitor, unit_parts, snapshot_version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors_reject_bad_parameters() {
        let cases: &[(&str, Result<Thompson, AllocatorError>)] = &[
            ("NaN prior", Thompson::new(f64::NAN, 1.0, 100, 0.01)),
            ("zero prior", Thompson::new(1.0, 0.0, 100, 0.01)),
            (
                "infinite prior",
                Thompson::new(f64::INFINITY, 1.0, 100, 0.01),
            ),
            ("negative floor", Thompson::new(1.0, 1.0, 100, -0.1)),
            ("floor of 1", Thompson::new(1.0, 1.0, 100, 1.0)),
            ("NaN floor", Thompson::new(1.0, 1.0, 100, f64::NAN)),
        ];
        for (why, r) in cases {
            assert!(r.is_err(), "{why} should be rejected");
        }
        let fixed: &[(&str, Vec<f64>)] = &[
            ("empty", alloc::vec![]),
            ("NaN", alloc::vec![f64::NAN, 1.0]),
            ("negative", alloc::vec![-0.5, 1.5]),
            ("sum 0.5", alloc::vec![0.25, 0.25]),
            ("infinite", alloc::vec![f64::INFINITY]),
        ];
        for (why, w) in fixed {
            assert!(
                FixedSplit::new(w.clone()).is_err(),
                "{why} should be rejected"
            );
        }
    }

    #[test]
    fn floor_must_leave_room_for_thompson() {
        let t = Allocator::Thompson(Thompson::new(1.0, 1.0, 0, 0.25).unwrap());
        assert!(t.check_arms(3).is_ok());
        assert_eq!(
            t.check_arms(4),
            Err(AllocatorError::InvalidFloor {
                floor: 0.25,
                arms: 4
            })
        );
    }

    #[test]
    fn conversions_above_exposures_are_an_error() {
        let t = Allocator::Thompson(Thompson::default());
        let arms = [
            ArmStats {
                exposures: 10,
                conversions: 11,
            },
            ArmStats::default(),
        ];
        assert_eq!(
            t.propensities(&arms),
            Err(AllocatorError::ConversionsExceedExposures { arm: 0 })
        );
    }
}
