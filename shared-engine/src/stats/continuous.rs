//! # Continuous metrics (revenue per visitor) from sufficient statistics
//!
//! The control plane aggregates each arm's metric as `(n, Σx, Σx²)` — cheap to keep in
//! SQL and enough for a mean, a variance and Welch's test.
//!
//! - Mean `x̄ = Σx/n`; sample variance `s² = (Σx² − (Σx)²/n)/(n − 1)` (clamped at 0
//!   against rounding; with revenue in currency units the cancellation loses at most a
//!   few digits).
//! - Interval: Student-t, `x̄ ± t_{n−1, 1−α/2}·s/√n` (by the CLT for revenue, which is
//!   far from normal; fine at the sample sizes a results page is read at).
//! - **Welch's t-test** for a difference of means with unequal variances (Welch 1947,
//!   "The generalization of 'Student's' problem when several different population
//!   variances are involved", *Biometrika* 34(1–2):28–35, doi:10.1093/biomet/34.1-2.28):
//!   `t = (x̄_B − x̄_A)/√(s²_A/n_A + s²_B/n_B)` with the Welch–Satterthwaite degrees of
//!   freedom `ν = (s²_A/n_A + s²_B/n_B)² / ((s²_A/n_A)²/(n_A−1) + (s²_B/n_B)²/(n_B−1))`
//!   (Satterthwaite 1946, doi:10.2307/3002019); two-sided `p = 2·(1 − T_ν(|t|))`.

use std::fmt;

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};

use super::proportions::Interval;

/// Why a continuous-metric statistic was refused.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ContinuousError {
    /// `sum` or `sum_sq` is NaN or infinite.
    NotFinite,
    /// `sum_sq < 0` or `(Σx)² > n·Σx²` beyond rounding: no real data has these moments.
    InconsistentMoments,
    /// Fewer than 2 observations: no variance.
    TooFewObservations(u64),
    /// A confidence level outside (0, 1) or NaN.
    InvalidLevel(f64),
}

impl fmt::Display for ContinuousError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotFinite => write!(f, "sum or sum of squares is not finite"),
            Self::InconsistentMoments => write!(f, "sum of squares is inconsistent with sum"),
            Self::TooFewObservations(n) => write!(f, "{n} observations, at least 2 needed"),
            Self::InvalidLevel(l) => write!(f, "confidence level {l} is not in (0, 1)"),
        }
    }
}

impl std::error::Error for ContinuousError {}

/// `(n, Σx, Σx²)` of one arm, as stored by the control plane.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Moments {
    /// Number of observations (visitors, zeros included, for revenue per visitor).
    pub n: u64,
    /// `Σx`.
    pub sum: f64,
    /// `Σx²`.
    pub sum_sq: f64,
}

/// Mean, variance and interval of one arm.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// `x̄`.
    pub mean: f64,
    /// Sample variance `s²`.
    pub variance: f64,
    /// `s/√n`.
    pub std_error: f64,
    /// Student-t interval for the mean.
    pub interval: Interval,
}

/// Welch's test of `mean_B − mean_A`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WelchTest {
    /// `x̄_B − x̄_A`.
    pub difference: f64,
    /// The t statistic (0 when both variances are 0 and the means agree).
    pub t: f64,
    /// Welch–Satterthwaite degrees of freedom.
    pub df: f64,
    /// Two-sided p-value.
    pub p_value: f64,
}

impl Moments {
    /// Checks the moments could come from real data and that `n ≥ 2`.
    fn validate(&self) -> Result<(), ContinuousError> {
        if !(self.sum.is_finite() && self.sum_sq.is_finite()) {
            return Err(ContinuousError::NotFinite);
        }
        if self.n < 2 {
            return Err(ContinuousError::TooFewObservations(self.n));
        }
        let n = self.n as f64;
        // Cauchy–Schwarz: (Σx)² ≤ n·Σx², with slack for rounding in the aggregation.
        if self.sum_sq < 0.0 || self.sum * self.sum > n * self.sum_sq * (1.0 + 1e-9) + 1e-9 {
            return Err(ContinuousError::InconsistentMoments);
        }
        Ok(())
    }

    fn mean(&self) -> f64 {
        self.sum / self.n as f64
    }

    fn variance(&self) -> f64 {
        let n = self.n as f64;
        ((self.sum_sq - self.sum * self.sum / n) / (n - 1.0)).max(0.0)
    }
}

/// Mean, variance and Student-t interval at `level` (e.g. 0.95).
pub fn summarize(m: Moments, level: f64) -> Result<Summary, ContinuousError> {
    if !(level > 0.0 && level < 1.0) {
        return Err(ContinuousError::InvalidLevel(level));
    }
    m.validate()?;
    let mean = m.mean();
    let variance = m.variance();
    let std_error = (variance / m.n as f64).sqrt();
    let t = StudentsT::new(0.0, 1.0, (m.n - 1) as f64)
        .map_err(|_| ContinuousError::TooFewObservations(m.n))?
        .inverse_cdf(0.5 + level / 2.0);
    Ok(Summary {
        mean,
        variance,
        std_error,
        interval: Interval {
            lower: mean - t * std_error,
            upper: mean + t * std_error,
        },
    })
}

/// Welch's two-sided t-test of `b` against `a`.
pub fn welch_t_test(a: Moments, b: Moments) -> Result<WelchTest, ContinuousError> {
    a.validate()?;
    b.validate()?;
    let (na, nb) = (a.n as f64, b.n as f64);
    let (va, vb) = (a.variance() / na, b.variance() / nb);
    let difference = b.mean() - a.mean();
    let se2 = va + vb;
    if se2 <= 0.0 {
        // Both arms constant: the data either agree exactly or differ with certainty.
        let p_value = if difference == 0.0 { 1.0 } else { 0.0 };
        return Ok(WelchTest {
            difference,
            t: 0.0,
            df: na + nb - 2.0,
            p_value,
        });
    }
    let t = difference / se2.sqrt();
    let df = se2 * se2 / (va * va / (na - 1.0) + vb * vb / (nb - 1.0));
    let dist = StudentsT::new(0.0, 1.0, df).map_err(|_| ContinuousError::InconsistentMoments)?;
    Ok(WelchTest {
        difference,
        t,
        df,
        p_value: (2.0 * dist.sf(t.abs())).min(1.0),
    })
}
