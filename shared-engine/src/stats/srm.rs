//! # Sample-ratio mismatch (SRM)
//!
//! If the arms did not receive the traffic the allocation intended, something between
//! assignment and logging is broken (bots, redirects, a crashing variant, lost events),
//! and the comparison is biased however significant it looks. Fabijan et al. 2019,
//! "Diagnosing Sample Ratio Mismatch in Online Controlled Experiments", KDD '19,
//! doi:10.1145/3292500.3330722.
//!
//! Pearson's chi-square goodness-of-fit test: with `N = Σ O_i` exposures and expected
//! shares `w_i / Σw`, `E_i = N·w_i/Σw`, `χ² = Σ (O_i − E_i)²/E_i` on `k − 1` degrees of
//! freedom. Flagged at `p < 0.001` (the conventional SRM threshold: the check runs on
//! every results view, so a strict threshold keeps false alarms rare).
//!
//! **Expected shares for bandits.** Traffic shares move over time, so the weight of arm
//! `i` is the sum, over every exposure of the experiment, of the propensity arm `i` had
//! at that moment (for a fixed split this is `N × share`). The control plane keeps that
//! sum per arm (`propensity_sum`).

use std::fmt;

use serde::{Deserialize, Serialize};
use statrs::distribution::{ChiSquared, ContinuousCDF};

/// The conventional SRM threshold.
pub const DEFAULT_SRM_THRESHOLD: f64 = 0.001;

/// Why an SRM check was refused.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SrmError {
    /// Observed and expected have different lengths.
    LengthMismatch,
    /// Fewer than 2 arms.
    TooFewArms,
    /// An expected weight that is negative, NaN or infinite, or all weights zero.
    InvalidWeight(usize),
    /// A threshold outside (0, 1).
    InvalidThreshold(f64),
}

impl fmt::Display for SrmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LengthMismatch => write!(f, "observed and expected lengths differ"),
            Self::TooFewArms => write!(f, "an SRM check needs at least 2 arms"),
            Self::InvalidWeight(i) => write!(f, "expected weight {i} is invalid"),
            Self::InvalidThreshold(t) => write!(f, "threshold {t} is not in (0, 1)"),
        }
    }
}

impl std::error::Error for SrmError {}

/// Result of the SRM check.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SrmResult {
    /// Pearson's χ² (infinite-free: an arm expected to get nothing but observed is
    /// reported with `p_value = 0`).
    pub chi_square: f64,
    /// Degrees of freedom (arms with a positive expected share, minus 1).
    pub df: u32,
    /// p-value of the goodness-of-fit test.
    pub p_value: f64,
    /// `p_value < threshold`.
    pub mismatch: bool,
}

/// Chi-square goodness of fit of `observed` counts against `expected_weights`
/// (any positive scale: shares, or sums of propensities), flagged below `threshold`.
pub fn sample_ratio_mismatch(
    observed: &[u64],
    expected_weights: &[f64],
    threshold: f64,
) -> Result<SrmResult, SrmError> {
    if observed.len() != expected_weights.len() {
        return Err(SrmError::LengthMismatch);
    }
    if observed.len() < 2 {
        return Err(SrmError::TooFewArms);
    }
    if !(threshold > 0.0 && threshold < 1.0) {
        return Err(SrmError::InvalidThreshold(threshold));
    }
    for (i, &w) in expected_weights.iter().enumerate() {
        if !(w.is_finite() && w >= 0.0) {
            return Err(SrmError::InvalidWeight(i));
        }
    }
    let total_weight: f64 = expected_weights.iter().sum();
    if total_weight <= 0.0 {
        return Err(SrmError::InvalidWeight(0));
    }
    // In f64: a sum of u64 counts must not overflow.
    let n: f64 = observed.iter().map(|&o| o as f64).sum();
    let no_evidence = SrmResult {
        chi_square: 0.0,
        df: 0,
        p_value: 1.0,
        mismatch: false,
    };
    if n == 0.0 {
        return Ok(no_evidence);
    }
    let mut chi_square = 0.0;
    let mut cells = 0u32;
    for (&o, &w) in observed.iter().zip(expected_weights) {
        if w == 0.0 {
            if o > 0 {
                // Traffic where none was allocated: a mismatch by construction.
                return Ok(SrmResult {
                    chi_square: f64::MAX,
                    df: 0,
                    p_value: 0.0,
                    mismatch: true,
                });
            }
            continue;
        }
        let e = n * w / total_weight;
        chi_square += (o as f64 - e).powi(2) / e;
        cells += 1;
    }
    if cells < 2 {
        return Ok(no_evidence);
    }
    let df = cells - 1;
    let p_value = ChiSquared::new(f64::from(df))
        .map_err(|_| SrmError::TooFewArms)?
        .sf(chi_square);
    Ok(SrmResult {
        chi_square,
        df,
        p_value,
        mismatch: p_value < threshold,
    })
}
