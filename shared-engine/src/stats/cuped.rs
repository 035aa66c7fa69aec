//! # Variance reduction: CUPED regression adjustment within post-strata
//!
//! A visitor's outcome `y` (converted 0/1, or revenue) is partly predictable from what was
//! known **before** the visitor was exposed: how often they had visited and converted
//! before (`x = (x₁, x₂)` = capped `prior_conversions`, `prior_visits`), whether they are
//! new or returning, their device. Randomisation makes those covariates independent of
//! the arm, so removing the part of `y` they explain leaves every arm's mean unbiased for
//! the same effect, with a smaller variance: the same evidence from fewer visitors.
//!
//! ## Estimator
//! Visitors are split into strata `s` (here: visitor type × device class, merged as said
//! below). Within a stratum, the slope `θ_s` of `y` on `x` is the OLS slope **pooled over
//! arms** (within-arm centred sums, i.e. the regression of `y` on `x` with one intercept
//! per arm):
//!
//! ```text
//! θ_s = (Σ_a S_xx,s,a)⁻¹ (Σ_a S_xy,s,a)       S_xx,s,a = Σ (x − x̄_s,a)(x − x̄_s,a)ᵀ
//! ```
//!
//! Deng, Xu, Kohavi & Walker (2013), "Improving the Sensitivity of Online Controlled
//! Experiments by Utilizing Pre-Experiment Data", WSDM '13, doi:10.1145/2433396.2433413,
//! §3.2 (CUPED with `θ = cov(Y, X)/var(X)`, one θ shared by the arms) and §3.3
//! (stratification); Lin (2013), "Agnostic notes on regression adjustments to experimental
//! data", *Ann. Appl. Stat.* 7(1):295–318, doi:10.1214/12-AOAS583 (OLS adjustment is
//! consistent and never asymptotically worse when the slopes are estimated).
//!
//! The adjusted mean of arm `a` in stratum `s` and the post-stratified arm mean:
//!
//! ```text
//! adj_s,a = ȳ_s,a − θ_sᵀ (x̄_s,a − x̄_s)          x̄_s: the stratum's mean over all arms
//! m_a     = Σ_s w_s · adj_s,a                     w_s = n_s / N (pooled share)
//! V(m_a)  = Σ_s w_s² · σ²_res,s,a / n_s,a          σ²_res = RSS_s,a / (n_s,a − 1)
//! ```
//!
//! with `RSS_s,a = S_yy − 2 θᵀ S_xy + θᵀ S_xx θ` (within-arm centred sums): the residual
//! variance of `y − θᵀx` in that cell. This is the post-stratification estimator of
//! Miratrix, Sekhon & Yu (2013), "Adjusting treatment effect estimates by
//! post-stratification in randomized experiments", *J. R. Stat. Soc. B* 75(2):369–396,
//! doi:10.1111/j.1467-9868.2012.01048.x, with the cell outcome replaced by its CUPED
//! residual; its variance is their conditional variance given the stratum counts, to first
//! order (their extra `O(1/n²)` term is dropped: it is negligible at the minimum stratum
//! size kept here). The difference of two arms has variance `V(m_b) + V(m_c)` (independent
//! arms, the same weights on both sides).
//!
//! ## Strata
//! A stratum is kept when **every** arm has at least [`MIN_STRATUM_VISITORS`] visitors in
//! it. Otherwise, deterministically: fine strata that are too small are pooled by their
//! `group` (the visitor type: `returning/*`); a pooled group that is still too small goes
//! into one `other` stratum; an `other` that is still too small is merged into the kept
//! stratum with the most visitors (the first in name order on a tie), or, when nothing was
//! kept, everything is one stratum `all` (plain CUPED). A stratum whose covariates do not
//! vary (new visitors: `x = 0`) gets `θ = 0`; with one covariate constant or both
//! collinear, the regression uses the other / the one that varies more. Nothing here
//! divides by zero: no panic, no NaN.
//!
//! ## Always-valid p-value
//! The adjusted difference `θ̂ = m_b − m_c` is asymptotically normal around the true
//! effect with variance `V = V(m_b) + V(m_c)` (Lin 2013, Thm 1; Miratrix et al. 2013):
//! the estimated slopes and weights converge, and the error from estimating them is of
//! smaller order. So it is fed to the same normal-mixture mSPRT as the unadjusted test
//! ([`super::sequential::log_mixture_ratio`], Johari et al. 2022), with the same running
//! minimum. Validity is asymptotic, as for the unadjusted test; `tests/stats_cuped.rs`
//! measures the false-positive rate under repeated looks.
//!
//! The mixing variance `τ²` is in the metric's units: the caller passes one
//! ([`MixingVariance::Absolute`], e.g. the conversion test's 10⁻⁴), or asks for a relative
//! one ([`MixingVariance::Relative`] `ρ`: `τ = ρ · ȳ`, `ȳ` the two arms' pooled unadjusted
//! mean, for revenue whose scale depends on the shop).

use std::borrow::ToOwned;
use std::collections::BTreeMap;
use std::fmt;
use std::string::String;
use std::vec;
use std::vec::Vec;

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, Normal};

use super::proportions::Interval;
use super::sequential::log_mixture_ratio;

/// Covariates are capped at this value (`min(x, 50)`): a handful of visitors with
/// thousands of prior visits (bots, staff) would otherwise dominate the slope.
pub const COVARIATE_CAP: f64 = 50.0;

/// A stratum is kept only when every arm has at least this many visitors in it.
pub const MIN_STRATUM_VISITORS: u64 = 30;

/// A stored covariate as the regression uses it: unknown (`None`) → 0, clamped to
/// `[0, COVARIATE_CAP]`.
#[must_use]
pub fn capped(x: Option<i32>) -> f64 {
    f64::from(x.unwrap_or(0)).clamp(0.0, COVARIATE_CAP)
}

/// The sufficient statistics of one (stratum, arm) cell: visitors, and sums of the
/// covariates `x = (x₁, x₂)`, the outcome `y`, their squares and cross products.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct CellMoments {
    /// Visitors.
    pub n: u64,
    /// `Σx₁`, `Σx₂`.
    pub sum_x: [f64; 2],
    /// `Σx₁²`, `Σx₁x₂`, `Σx₂²`.
    pub sum_xx: [f64; 3],
    /// `Σy`.
    pub sum_y: f64,
    /// `Σy²`.
    pub sum_yy: f64,
    /// `Σx₁y`, `Σx₂y`.
    pub sum_xy: [f64; 2],
}

impl CellMoments {
    /// Adds one visitor with covariates `x` and outcome `y`.
    pub fn push(&mut self, x: [f64; 2], y: f64) {
        self.n += 1;
        self.sum_x[0] += x[0];
        self.sum_x[1] += x[1];
        self.sum_xx[0] += x[0] * x[0];
        self.sum_xx[1] += x[0] * x[1];
        self.sum_xx[2] += x[1] * x[1];
        self.sum_y += y;
        self.sum_yy += y * y;
        self.sum_xy[0] += x[0] * y;
        self.sum_xy[1] += x[1] * y;
    }

    /// Adds another cell's moments.
    pub fn add(&mut self, o: &Self) {
        self.n += o.n;
        for k in 0..2 {
            self.sum_x[k] += o.sum_x[k];
            self.sum_xy[k] += o.sum_xy[k];
        }
        for k in 0..3 {
            self.sum_xx[k] += o.sum_xx[k];
        }
        self.sum_y += o.sum_y;
        self.sum_yy += o.sum_yy;
    }

    fn is_finite(&self) -> bool {
        self.sum_x.iter().all(|v| v.is_finite())
            && self.sum_xx.iter().all(|v| v.is_finite())
            && self.sum_xy.iter().all(|v| v.is_finite())
            && self.sum_y.is_finite()
            && self.sum_yy.is_finite()
    }

    /// Within-cell centred sums: (S_xx [3], S_xy [2], S_yy); zeros without visitors.
    fn centred(&self) -> ([f64; 3], [f64; 2], f64) {
        if self.n == 0 {
            return ([0.0; 3], [0.0; 2], 0.0);
        }
        let n = self.n as f64;
        let (m1, m2, my) = (self.sum_x[0] / n, self.sum_x[1] / n, self.sum_y / n);
        (
            [
                self.sum_xx[0] - n * m1 * m1,
                self.sum_xx[1] - n * m1 * m2,
                self.sum_xx[2] - n * m2 * m2,
            ],
            [self.sum_xy[0] - n * m1 * my, self.sum_xy[1] - n * m2 * my],
            self.sum_yy - n * my * my,
        )
    }
}

/// One fine stratum's cells, one per arm (in the analysis' arm order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StratumInput {
    /// E.g. `returning/mobile`.
    pub name: String,
    /// The coarser stratum it is pooled into when too small, e.g. `returning`.
    pub group: String,
    pub arms: Vec<CellMoments>,
}

/// How the mSPRT's mixing variance `τ²` is set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MixingVariance {
    /// `τ²` in the metric's squared units.
    Absolute(f64),
    /// `τ = ρ · ȳ` with `ȳ` the compared arms' pooled unadjusted mean.
    Relative(f64),
}

/// What [`adjust`] needs besides the strata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CupedInput {
    pub strata: Vec<StratumInput>,
    /// Index of the control arm.
    pub control: usize,
    /// Per arm, the previously reported always-valid p-value of its comparison.
    pub previous_p_values: Vec<Option<f64>>,
    /// Significance level (intervals are `1 − α`).
    pub alpha: f64,
    pub mixing: MixingVariance,
    /// Minimum visitors per arm for a stratum to be kept ([`MIN_STRATUM_VISITORS`]).
    pub min_stratum_visitors: u64,
}

/// Why an adjustment was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum CupedError {
    NoArms,
    ControlOutOfRange(usize),
    ArmCountMismatch { stratum: String, arms: usize },
    NotFinite { stratum: String },
    InvalidAlpha(f64),
    InvalidMixing(f64),
    InvalidPreviousPValue(f64),
}

impl fmt::Display for CupedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoArms => write!(f, "no arms"),
            Self::ControlOutOfRange(c) => write!(f, "control index {c} out of range"),
            Self::ArmCountMismatch { stratum, arms } => {
                write!(f, "stratum {stratum} has {arms} cells, not one per arm")
            }
            Self::NotFinite { stratum } => write!(f, "stratum {stratum} has non-finite sums"),
            Self::InvalidAlpha(a) => write!(f, "alpha {a} is not in (0, 1)"),
            Self::InvalidMixing(t) => write!(f, "mixing variance parameter {t} must be > 0"),
            Self::InvalidPreviousPValue(p) => write!(f, "previous p-value {p} not in [0, 1]"),
        }
    }
}

impl std::error::Error for CupedError {}

/// A stratum as used: its fine members, its weight and its slope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StratumUsed {
    /// A fine stratum's name, a group's, `other` or `all`.
    pub name: String,
    /// The fine strata it holds, in name order.
    pub members: Vec<String>,
    /// Visitors per arm.
    pub visitors: Vec<u64>,
    /// `w_s = n_s / N`.
    pub weight: f64,
    /// `θ_s` on (prior conversions, prior visits).
    pub theta: [f64; 2],
}

/// One arm, unadjusted and adjusted.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ArmAdjusted {
    pub visitors: u64,
    /// `ȳ` and `s²/n`.
    pub unadjusted_mean: f64,
    pub unadjusted_variance: f64,
    /// `m_a` and `V(m_a)`.
    pub adjusted_mean: f64,
    pub adjusted_variance: f64,
}

/// An arm against the control.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CupedComparison {
    /// `m_b − m_c`, its variance and `1 − α` interval.
    pub difference: f64,
    pub variance: f64,
    pub interval: Interval,
    /// The same without adjustment (`ȳ_b − ȳ_c`, `s²_b/n_b + s²_c/n_c`).
    pub unadjusted_difference: f64,
    pub unadjusted_variance: f64,
    pub unadjusted_interval: Interval,
    /// `m_b / m_c − 1` with a delta-method interval; `None` while `m_c ≤ 0`.
    pub relative_lift: Option<f64>,
    pub relative_interval: Option<Interval>,
    /// `1 − variance / unadjusted_variance` (0 when the latter is 0): the interval is
    /// `√(1 − r)` times as wide as unadjusted.
    pub variance_reduction: f64,
    /// Always-valid p-value (running minimum with the previous one).
    pub p_value: f64,
    /// `p_value ≤ α`.
    pub reject: bool,
}

/// What [`adjust`] returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CupedOutput {
    pub strata: Vec<StratumUsed>,
    /// Per arm; `None` for an arm with fewer than 2 visitors in a stratum used.
    pub arms: Vec<Option<ArmAdjusted>>,
    /// Per arm against the control; `None` for the control and where either arm is `None`.
    pub comparisons: Vec<Option<CupedComparison>>,
}

/// A stratum being built: its members and merged cells.
struct Pool {
    name: String,
    members: Vec<String>,
    cells: Vec<CellMoments>,
}

impl Pool {
    fn new(name: &str, arms: usize) -> Self {
        Self {
            name: name.to_owned(),
            members: Vec::new(),
            cells: vec![CellMoments::default(); arms],
        }
    }

    fn absorb(&mut self, members: &[String], cells: &[CellMoments]) {
        self.members.extend_from_slice(members);
        for (mine, other) in self.cells.iter_mut().zip(cells) {
            mine.add(other);
        }
    }

    fn total(&self) -> u64 {
        self.cells.iter().map(|c| c.n).sum()
    }

    fn large(&self, min: u64) -> bool {
        self.cells.iter().all(|c| c.n >= min)
    }
}

/// The strata rule (module docs): fine strata, then groups, then `other`, then merged
/// into the largest kept stratum or everything as `all`.
fn stratify(input: &[StratumInput], arms: usize, min: u64) -> Vec<Pool> {
    let mut fine: Vec<&StratumInput> = input
        .iter()
        .filter(|s| s.arms.iter().any(|c| c.n > 0))
        .collect();
    fine.sort_by(|a, b| (&a.group, &a.name).cmp(&(&b.group, &b.name)));
    let mut kept: Vec<Pool> = Vec::new();
    let mut groups: BTreeMap<&str, Pool> = BTreeMap::new();
    for s in fine {
        let mut p = Pool::new(&s.name, arms);
        p.absorb(std::slice::from_ref(&s.name), &s.arms);
        if p.large(min) {
            kept.push(p);
        } else {
            groups
                .entry(&s.group)
                .or_insert_with(|| Pool::new(&s.group, arms))
                .absorb(&p.members, &p.cells);
        }
    }
    let mut other = Pool::new("other", arms);
    for (_, g) in groups {
        if g.large(min) {
            kept.push(g);
        } else {
            other.absorb(&g.members, &g.cells);
        }
    }
    if other.total() > 0 {
        if other.large(min) {
            kept.push(other);
        } else if kept.is_empty() {
            other.name = "all".to_owned();
            kept.push(other);
        } else {
            let mut largest = 0;
            for (i, k) in kept.iter().enumerate() {
                if k.total() > kept[largest].total() {
                    largest = i;
                }
            }
            kept[largest].absorb(&other.members, &other.cells);
        }
    }
    for k in &mut kept {
        k.members.sort();
    }
    kept
}

/// `θ` from the pooled centred sums; 0 for a covariate that does not vary, one covariate
/// when the two are collinear.
fn slope(sxx: [f64; 3], sxy: [f64; 2], sum_xx: [f64; 3]) -> [f64; 2] {
    let eps = |k: usize| 1e-9 + 1e-12 * sum_xx[k].abs();
    let (s11, s12, s22) = (sxx[0], sxx[1], sxx[2]);
    let varies1 = s11 > eps(0);
    let varies2 = s22 > eps(2);
    let single = |k: usize, s: f64| {
        let mut t = [0.0; 2];
        t[k] = sxy[k] / s;
        t
    };
    let theta = match (varies1, varies2) {
        (false, false) => [0.0, 0.0],
        (true, false) => single(0, s11),
        (false, true) => single(1, s22),
        (true, true) => {
            let r2 = s12 * s12 / (s11 * s22);
            if r2 < 1.0 - 1e-9 {
                let det = s11 * s22 - s12 * s12;
                [
                    (s22 * sxy[0] - s12 * sxy[1]) / det,
                    (s11 * sxy[1] - s12 * sxy[0]) / det,
                ]
            } else if s11 >= s22 {
                single(0, s11)
            } else {
                single(1, s22)
            }
        }
    };
    if theta.iter().all(|t| t.is_finite()) {
        theta
    } else {
        [0.0, 0.0]
    }
}

fn quad(theta: [f64; 2], sxx: [f64; 3]) -> f64 {
    theta[0] * theta[0] * sxx[0] + 2.0 * theta[0] * theta[1] * sxx[1] + theta[1] * theta[1] * sxx[2]
}

fn dot(theta: [f64; 2], v: [f64; 2]) -> f64 {
    theta[0] * v[0] + theta[1] * v[1]
}

fn interval(center: f64, variance: f64, z: f64) -> Interval {
    let half = z * variance.max(0.0).sqrt();
    Interval {
        lower: center - half,
        upper: center + half,
    }
}

/// Finite or 0 (guards the outputs against overflow on absurd inputs).
fn finite(v: f64) -> f64 {
    if v.is_finite() { v } else { 0.0 }
}

/// CUPED within post-strata for every arm, and every arm against the control (module
/// docs).
pub fn adjust(input: &CupedInput) -> Result<CupedOutput, CupedError> {
    let arms = input.previous_p_values.len();
    if arms == 0 {
        return Err(CupedError::NoArms);
    }
    if input.control >= arms {
        return Err(CupedError::ControlOutOfRange(input.control));
    }
    if !(input.alpha > 0.0 && input.alpha < 1.0) {
        return Err(CupedError::InvalidAlpha(input.alpha));
    }
    match input.mixing {
        MixingVariance::Absolute(t) | MixingVariance::Relative(t)
            if !(t.is_finite() && t > 0.0) =>
        {
            return Err(CupedError::InvalidMixing(t));
        }
        _ => {}
    }
    for p in input.previous_p_values.iter().flatten() {
        if !(0.0..=1.0).contains(p) {
            return Err(CupedError::InvalidPreviousPValue(*p));
        }
    }
    for s in &input.strata {
        if s.arms.len() != arms {
            return Err(CupedError::ArmCountMismatch {
                stratum: s.name.clone(),
                arms: s.arms.len(),
            });
        }
        if !s.arms.iter().all(CellMoments::is_finite) {
            return Err(CupedError::NotFinite {
                stratum: s.name.clone(),
            });
        }
    }

    let pools = stratify(&input.strata, arms, input.min_stratum_visitors.max(2));
    let total: u64 = pools.iter().map(Pool::total).sum();
    let mut strata = Vec::with_capacity(pools.len());
    // Per arm: Σ w·adj, Σ w²·σ²/n, and whether every stratum had 2 visitors of it.
    let mut mean = vec![0.0; arms];
    let mut var = vec![0.0; arms];
    let mut defined = vec![total > 0; arms];
    for p in &pools {
        let n_s = p.total() as f64;
        let weight = n_s / total as f64;
        let mut all = CellMoments::default();
        let (mut sxx, mut sxy) = ([0.0; 3], [0.0; 2]);
        let centred: Vec<_> = p.cells.iter().map(CellMoments::centred).collect();
        for (c, (cxx, cxy, _)) in p.cells.iter().zip(&centred) {
            all.add(c);
            for k in 0..3 {
                sxx[k] += cxx[k];
            }
            for k in 0..2 {
                sxy[k] += cxy[k];
            }
        }
        let theta = slope(sxx, sxy, all.sum_xx);
        let xbar = [all.sum_x[0] / n_s, all.sum_x[1] / n_s];
        for (a, (c, (cxx, cxy, cyy))) in p.cells.iter().zip(&centred).enumerate() {
            if c.n < 2 {
                defined[a] = false;
                continue;
            }
            let n = c.n as f64;
            let shift = [c.sum_x[0] / n - xbar[0], c.sum_x[1] / n - xbar[1]];
            let adj = c.sum_y / n - dot(theta, shift);
            let rss = (cyy - 2.0 * dot(theta, *cxy) + quad(theta, *cxx)).max(0.0);
            mean[a] += weight * adj;
            var[a] += weight * weight * rss / (n - 1.0) / n;
        }
        strata.push(StratumUsed {
            name: p.name.clone(),
            members: p.members.clone(),
            visitors: p.cells.iter().map(|c| c.n).collect(),
            weight,
            theta,
        });
    }

    let mut out_arms = Vec::with_capacity(arms);
    for a in 0..arms {
        let mut cell = CellMoments::default();
        for p in &pools {
            cell.add(&p.cells[a]);
        }
        out_arms.push(if defined[a] && cell.n >= 2 {
            let n = cell.n as f64;
            let ybar = cell.sum_y / n;
            let s2 = ((cell.sum_yy - n * ybar * ybar) / (n - 1.0)).max(0.0);
            Some((
                ArmAdjusted {
                    visitors: cell.n,
                    unadjusted_mean: finite(ybar),
                    unadjusted_variance: finite(s2 / n),
                    adjusted_mean: finite(mean[a]),
                    adjusted_variance: finite(var[a].max(0.0)),
                },
                cell,
            ))
        } else {
            None
        });
    }

    let z = Normal::standard().inverse_cdf(1.0 - input.alpha / 2.0);
    let control = out_arms[input.control];
    let comparisons = (0..arms)
        .map(|b| {
            if b == input.control {
                return None;
            }
            let ((c, c_cell), (t, t_cell)) = (control?, out_arms[b]?);
            let difference = t.adjusted_mean - c.adjusted_mean;
            let variance = t.adjusted_variance + c.adjusted_variance;
            let unadjusted_difference = t.unadjusted_mean - c.unadjusted_mean;
            let unadjusted_variance = t.unadjusted_variance + c.unadjusted_variance;
            let (relative_lift, relative_interval) = if c.adjusted_mean > 0.0 {
                let (mc, mb) = (c.adjusted_mean, t.adjusted_mean);
                let r = finite(mb / mc - 1.0);
                let v = finite(
                    t.adjusted_variance / (mc * mc) + mb * mb * c.adjusted_variance / mc.powi(4),
                );
                (Some(r), Some(interval(r, v, z)))
            } else {
                (None, None)
            };
            let tau_squared = match input.mixing {
                MixingVariance::Absolute(t) => t,
                MixingVariance::Relative(rho) => {
                    let pooled = (c_cell.sum_y + t_cell.sum_y) / (c_cell.n + t_cell.n) as f64;
                    finite((rho * pooled).powi(2))
                }
            };
            let llr = if tau_squared > 0.0 {
                finite(log_mixture_ratio(difference, variance, tau_squared))
            } else {
                0.0
            };
            let previous = input.previous_p_values[b].unwrap_or(1.0);
            let p_value = previous.min((-llr).exp()).min(1.0);
            Some(CupedComparison {
                difference: finite(difference),
                variance: finite(variance),
                interval: interval(finite(difference), finite(variance), z),
                unadjusted_difference: finite(unadjusted_difference),
                unadjusted_variance: finite(unadjusted_variance),
                unadjusted_interval: interval(
                    finite(unadjusted_difference),
                    finite(unadjusted_variance),
                    z,
                ),
                relative_lift,
                relative_interval,
                variance_reduction: if unadjusted_variance > 0.0 {
                    finite(1.0 - variance / unadjusted_variance)
                } else {
                    0.0
                },
                p_value,
                reject: p_value <= input.alpha,
            })
        })
        .collect();
    Ok(CupedOutput {
        strata,
        arms: out_arms.into_iter().map(|a| a.map(|(a, _)| a)).collect(),
        comparisons,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::borrow::ToOwned;
    use std::format;
    use std::string::String;
    use std::vec;
    use std::vec::Vec;

    fn input(strata: Vec<StratumInput>) -> CupedInput {
        let arms = strata.first().map_or(2, |s| s.arms.len());
        CupedInput {
            strata,
            control: 0,
            previous_p_values: vec![None; arms],
            alpha: 0.05,
            mixing: MixingVariance::Absolute(1e-4),
            min_stratum_visitors: MIN_STRATUM_VISITORS,
        }
    }

    fn stratum(name: &str, group: &str, arms: Vec<CellMoments>) -> StratumInput {
        StratumInput {
            name: name.to_owned(),
            group: group.to_owned(),
            arms,
        }
    }

    /// `n` visitors per arm with x = (i % k, 2·(i % k)) and y = x₁ + arm effect + noise.
    fn cell(n: u64, k: u64, effect: f64, noise: u64) -> CellMoments {
        let mut c = CellMoments::default();
        for i in 0..n {
            let x = (i % k) as f64;
            let e = ((i * 7919) % noise) as f64 / noise as f64 - 0.5;
            c.push([x, 2.0 * x], x + effect + e);
        }
        c
    }

    #[test]
    fn constant_covariates_give_theta_zero_and_the_plain_difference() {
        // New visitors only: x = 0 everywhere.
        let mut a = CellMoments::default();
        let mut b = CellMoments::default();
        for i in 0..100 {
            a.push([0.0, 0.0], f64::from(i % 10 == 0));
            b.push([0.0, 0.0], f64::from(i % 5 == 0));
        }
        let out = adjust(&input(vec![stratum("new/desktop", "new", vec![a, b])])).unwrap();
        assert_eq!(out.strata[0].theta, [0.0, 0.0]);
        let c = out.comparisons[1].unwrap();
        assert!((c.difference - 0.1).abs() < 1e-12);
        assert!((c.variance - c.unadjusted_variance).abs() < 1e-15);
        assert_eq!(c.variance_reduction, 0.0);
    }

    #[test]
    fn collinear_covariates_use_one_and_remove_the_explained_variance() {
        let out = adjust(&input(vec![stratum(
            "returning/mobile",
            "returning",
            vec![cell(500, 10, 0.0, 13), cell(500, 10, 0.3, 13)],
        )]))
        .unwrap();
        // x₂ = 2x₁: one covariate is used (x₂, the larger variance), slope 1/2.
        let theta = out.strata[0].theta;
        assert!(
            theta[0] == 0.0 && (theta[1] - 0.5).abs() < 0.02,
            "{theta:?}"
        );
        let c = out.comparisons[1].unwrap();
        assert!((c.difference - 0.3).abs() < 0.01);
        assert!(c.variance_reduction > 0.9, "{}", c.variance_reduction);
        assert!(c.p_value < 1e-6 && c.reject);
    }

    #[test]
    fn small_strata_merge_by_group_then_into_other_then_into_the_largest() {
        let big = cell(100, 5, 0.0, 7);
        let small = cell(10, 5, 0.0, 7);
        let out = adjust(&input(vec![
            stratum("returning/mobile", "returning", vec![big, big]),
            stratum("returning/tablet", "returning", vec![small, small]),
            stratum("returning/other", "returning", vec![small, small]),
            stratum("new/desktop", "new", vec![big, cell(150, 1, 0.0, 7)]),
            stratum("new/tablet", "new", vec![small, small]),
            stratum("unknown/unknown", "unknown", vec![big, small]),
        ]))
        .unwrap();
        let names: Vec<(&str, Vec<&str>)> = out
            .strata
            .iter()
            .map(|s| {
                (
                    s.name.as_str(),
                    s.members.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        // Kept: the two large fine strata. The `returning` group (20 a side) and `new`
        // (10) are too small; `unknown/unknown` has 10 in arm 1. Together, as `other`,
        // they have at least 30 in each arm: kept.
        assert_eq!(
            names,
            vec![
                ("new/desktop", vec!["new/desktop"]),
                ("returning/mobile", vec!["returning/mobile"]),
                (
                    "other",
                    vec![
                        "new/tablet",
                        "returning/other",
                        "returning/tablet",
                        "unknown/unknown"
                    ]
                ),
            ]
        );
        let w: f64 = out.strata.iter().map(|s| s.weight).sum();
        assert!((w - 1.0).abs() < 1e-12);
        // Too small everywhere: one stratum `all`.
        let out = adjust(&input(vec![
            stratum("new/desktop", "new", vec![small, small]),
            stratum("returning/mobile", "returning", vec![small, small]),
        ]))
        .unwrap();
        assert_eq!(out.strata.len(), 1);
        assert_eq!(out.strata[0].name, "all");
        // A remainder too small goes into the largest kept stratum.
        let out = adjust(&input(vec![
            stratum("new/desktop", "new", vec![big, big]),
            stratum(
                "returning/mobile",
                "returning",
                vec![cell(200, 3, 0.0, 5); 2],
            ),
            stratum("unknown/unknown", "unknown", vec![small, small]),
        ]))
        .unwrap();
        assert_eq!(out.strata.len(), 2);
        assert_eq!(
            out.strata[1].members,
            vec!["returning/mobile".to_owned(), "unknown/unknown".to_owned()]
        );
    }

    #[test]
    fn an_arm_without_two_visitors_has_no_adjusted_mean_and_no_comparison() {
        let mut lone = CellMoments::default();
        lone.push([1.0, 1.0], 1.0);
        let out = adjust(&input(vec![stratum(
            "all",
            "all",
            vec![cell(50, 3, 0.0, 5), lone],
        )]))
        .unwrap();
        assert!(out.arms[0].is_some());
        assert_eq!(out.arms[1], None);
        assert_eq!(out.comparisons, vec![None, None]);
    }

    #[test]
    fn bad_settings_are_refused() {
        let s = vec![stratum("a", "a", vec![cell(50, 3, 0.0, 5); 2])];
        let mut i = input(s.clone());
        i.alpha = 1.0;
        assert_eq!(adjust(&i), Err(CupedError::InvalidAlpha(1.0)));
        let mut i = input(s.clone());
        i.mixing = MixingVariance::Relative(0.0);
        assert_eq!(adjust(&i), Err(CupedError::InvalidMixing(0.0)));
        let mut i = input(s.clone());
        i.control = 2;
        assert_eq!(adjust(&i), Err(CupedError::ControlOutOfRange(2)));
        let mut i = input(s.clone());
        i.previous_p_values[1] = Some(1.5);
        assert_eq!(adjust(&i), Err(CupedError::InvalidPreviousPValue(1.5)));
        let mut i = input(s);
        i.strata[0].arms.pop();
        assert!(matches!(
            adjust(&i),
            Err(CupedError::ArmCountMismatch { .. })
        ));
        let mut bad = cell(50, 3, 0.0, 5);
        bad.sum_y = f64::NAN;
        let i = input(vec![stratum("a", "a", vec![bad, bad])]);
        assert!(matches!(adjust(&i), Err(CupedError::NotFinite { .. })));
    }

    #[test]
    fn the_running_minimum_keeps_the_previous_p_value() {
        let mut i = input(vec![stratum("a", "a", vec![cell(60, 3, 0.0, 5); 2])]);
        i.previous_p_values[1] = Some(0.2);
        let c = adjust(&i).unwrap().comparisons[1].unwrap();
        assert_eq!(c.p_value, 0.2);
        assert!(!c.reject);
    }

    fn any_cell() -> impl Strategy<Value = CellMoments> {
        (
            0u64..10_000,
            prop::array::uniform2(0.0..1e6f64),
            prop::array::uniform3(0.0..1e8f64),
            0.0..1e6f64,
            0.0..1e9f64,
            prop::array::uniform2(0.0..1e8f64),
        )
            .prop_map(|(n, sum_x, sum_xx, sum_y, sum_yy, sum_xy)| CellMoments {
                n,
                sum_x,
                sum_xx,
                sum_y,
                sum_yy,
                sum_xy,
            })
    }

    proptest! {
        /// Any non-negative moments, consistent or not: no panic, every output finite.
        #[test]
        fn outputs_are_finite_for_any_non_negative_moments(
            cells in prop::collection::vec(prop::collection::vec(any_cell(), 2), 1..6),
            relative in any::<bool>(),
        ) {
            let strata = cells
                .into_iter()
                .enumerate()
                .map(|(i, arms)| stratum(&format!("g{}/s{i}", i % 2), &format!("g{}", i % 2), arms))
                .collect();
            let mut i = input(strata);
            if relative {
                i.mixing = MixingVariance::Relative(0.05);
            }
            let out = adjust(&i).unwrap();
            for s in &out.strata {
                prop_assert!(s.weight.is_finite() && s.theta.iter().all(|t| t.is_finite()));
            }
            for a in out.arms.iter().flatten() {
                prop_assert!(a.adjusted_mean.is_finite() && a.adjusted_variance.is_finite());
                prop_assert!(a.adjusted_variance >= 0.0 && a.unadjusted_variance >= 0.0);
            }
            for c in out.comparisons.iter().flatten() {
                prop_assert!(c.difference.is_finite() && c.variance.is_finite());
                prop_assert!(c.interval.lower.is_finite() && c.interval.upper.is_finite());
                prop_assert!(c.variance_reduction.is_finite());
                prop_assert!((0.0..=1.0).contains(&c.p_value));
                if let Some(r) = c.relative_interval {
                    prop_assert!(r.lower.is_finite() && r.upper.is_finite());
                }
            }
        }
    }
}
