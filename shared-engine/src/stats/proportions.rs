//! # Conversion rates: interval, lift, z-test
//!
//! Fixed-horizon statistics for a binary metric (converted or not), per arm and against
//! the control. They are what a results page shows beside the always-valid
//! [`sequential`](super::sequential) p-value, which is the one decisions use.
//!
//! - Rate `p̂ = x / n`.
//! - **Wilson score interval** (Wilson 1927, "Probable inference, the law of succession,
//!   and statistical inference", *JASA* 22(158):209–212, doi:10.1080/01621459.1927.10502953):
//!   `(p̂ + z²/2n ± z·√(p̂(1−p̂)/n + z²/4n²)) / (1 + z²/n)`. Unlike the Wald interval it
//!   stays inside [0, 1] and keeps its coverage for small counts and rates near 0.
//! - **Relative lift** `p̂_B/p̂_A − 1` with the **log-ratio (Katz) interval**: by the delta
//!   method `Var(ln p̂_B/p̂_A) ≈ (1−p_A)/x_A + (1−p_B)/x_B`, so the interval is
//!   `exp(ln r ± z·se) − 1` (Katz, Baptista, Azen & Pike 1978, "Obtaining confidence
//!   intervals for the risk ratio in cohort studies", *Biometrics* 34(3):469–474,
//!   doi:10.2307/2530610). Undefined (None) while either arm has no conversion.
//! - **Pooled two-proportion z-test**: `z = (p̂_B − p̂_A) / √(p̄(1−p̄)(1/n_A + 1/n_B))`
//!   with `p̄ = (x_A + x_B)/(n_A + n_B)`, two-sided `p = 2·(1 − Φ(|z|))` (e.g. Agresti,
//!   *Categorical Data Analysis*, 3rd ed., 2013, §3.1). Valid for ONE look at a
//!   pre-planned sample size only.

use core::fmt;

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, Normal};

/// Why a proportion statistic was refused.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ProportionError {
    /// More conversions than visitors.
    ConversionsExceedVisitors {
        /// Conversions given.
        conversions: u64,
        /// Visitors given.
        visitors: u64,
    },
    /// No visitors: a rate is undefined.
    NoVisitors,
    /// A confidence level outside (0, 1) or NaN.
    InvalidLevel(f64),
}

impl fmt::Display for ProportionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ConversionsExceedVisitors {
                conversions,
                visitors,
            } => {
                write!(f, "{conversions} conversions exceed {visitors} visitors")
            }
            Self::NoVisitors => write!(f, "no visitors"),
            Self::InvalidLevel(l) => write!(f, "confidence level {l} is not in (0, 1)"),
        }
    }
}

impl std::error::Error for ProportionError {}

/// A two-sided interval `[lower, upper]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Lower bound.
    pub lower: f64,
    /// Upper bound.
    pub upper: f64,
}

/// Relative lift of a treatment over the control.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Lift {
    /// `p̂_B / p̂_A − 1`.
    pub relative: f64,
    /// `p̂_B − p̂_A`.
    pub absolute: f64,
    /// Katz log-ratio interval for the relative lift; None while an arm has 0 conversions.
    pub interval: Option<Interval>,
}

/// Result of the pooled two-proportion z-test.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ZTest {
    /// The z statistic (0 when the pooled variance is 0).
    pub z: f64,
    /// Two-sided p-value.
    pub p_value: f64,
}

/// Visitors and conversions of one arm, validated (`conversions ≤ visitors`, `visitors > 0`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Counts {
    visitors: u64,
    conversions: u64,
}

impl Counts {
    /// Validates the pair.
    pub fn new(visitors: u64, conversions: u64) -> Result<Self, ProportionError> {
        if conversions > visitors {
            return Err(ProportionError::ConversionsExceedVisitors {
                conversions,
                visitors,
            });
        }
        if visitors == 0 {
            return Err(ProportionError::NoVisitors);
        }
        Ok(Self {
            visitors,
            conversions,
        })
    }

    /// Visitors.
    pub fn visitors(&self) -> u64 {
        self.visitors
    }

    /// Conversions.
    pub fn conversions(&self) -> u64 {
        self.conversions
    }

    /// `x / n`.
    pub fn rate(&self) -> f64 {
        self.conversions as f64 / self.visitors as f64
    }
}

/// Two-sided standard-normal critical value `z_{1−(1−level)/2}`.
pub(crate) fn z_critical(level: f64) -> Result<f64, ProportionError> {
    if !(level > 0.0 && level < 1.0) {
        return Err(ProportionError::InvalidLevel(level));
    }
    Ok(standard_normal().inverse_cdf(0.5 + level / 2.0))
}

pub(crate) fn standard_normal() -> Normal {
    Normal::standard()
}

/// Wilson score interval for the rate at confidence `level` (e.g. 0.95).
pub fn wilson_interval(counts: Counts, level: f64) -> Result<Interval, ProportionError> {
    let z = z_critical(level)?;
    let n = counts.visitors as f64;
    let p = counts.rate();
    let z2 = z * z;
    let denom = 1.0 + z2 / n;
    let center = (p + z2 / (2.0 * n)) / denom;
    let half = z / denom * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    Ok(Interval {
        lower: (center - half).max(0.0),
        upper: (center + half).min(1.0),
    })
}

/// Lift of `treatment` over `control` with the Katz log-ratio interval at `level`.
///
/// Returns None when the control has no conversion (the relative lift is undefined).
pub fn lift(
    control: Counts,
    treatment: Counts,
    level: f64,
) -> Result<Option<Lift>, ProportionError> {
    let z = z_critical(level)?;
    if control.conversions == 0 {
        return Ok(None);
    }
    let (pa, pb) = (control.rate(), treatment.rate());
    let relative = pb / pa - 1.0;
    let interval = if treatment.conversions == 0 {
        None
    } else {
        let se = ((1.0 - pa) / control.conversions as f64
            + (1.0 - pb) / treatment.conversions as f64)
            .sqrt();
        let ln_r = (pb / pa).ln();
        Some(Interval {
            lower: (ln_r - z * se).exp() - 1.0,
            upper: (ln_r + z * se).exp() - 1.0,
        })
    };
    Ok(Some(Lift {
        relative,
        absolute: pb - pa,
        interval,
    }))
}

/// Pooled two-proportion z-test, two-sided. p = 1 when the pooled variance is 0
/// (no conversion, or only conversions, in both arms: no evidence either way).
pub fn two_proportion_z_test(control: Counts, treatment: Counts) -> ZTest {
    let (na, nb) = (control.visitors as f64, treatment.visitors as f64);
    // In f64: u64 counts near the maximum must not overflow the sum.
    let pooled = (control.conversions as f64 + treatment.conversions as f64) / (na + nb);
    let se = (pooled * (1.0 - pooled) * (1.0 / na + 1.0 / nb)).sqrt();
    if se <= 0.0 || !se.is_finite() {
        return ZTest {
            z: 0.0,
            p_value: 1.0,
        };
    }
    let z = (treatment.rate() - control.rate()) / se;
    ZTest {
        z,
        p_value: (2.0 * standard_normal().sf(z.abs())).min(1.0),
    }
}
