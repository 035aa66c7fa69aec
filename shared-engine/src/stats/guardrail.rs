//! # Guardrails: is a variant worse than the control by more than a tolerated margin?
//!
//! A **guardrail** is a secondary metric the winner must not harm (revenue per visitor,
//! purchases, or a "bad" event such as a bounce or an error counted as a conversion).
//! Its owner states a relative **non-inferiority margin** `m` (0.05: the variant may be at
//! most 5 % worse than the control) and which way is better. Per (variant, guardrail)
//! this module answers one of three statuses.
//!
//! ## Estimate
//! Both metric kinds are means of per-visitor values, taken from the sufficient
//! statistics the control plane keeps ([`Moments`] `(n, Σx, Σx²)`): revenue per visitor
//! as stored, a conversion rate as the mean of 0/1 values ([`rate_moments`]:
//! `Σx = Σx² = conversions`). With `x̄`, `s²` (sample variance, `n − 1`) of each arm, the
//! **relative difference** of the variant `B` against the control `A`
//!
//! ```text
//! r̂ = x̄_B / x̄_A − 1
//! V = s²_B / (n_B x̄_A²) + x̄_B² s²_A / (n_A x̄_A⁴)      (delta method)
//! ```
//!
//! `V` is the first-order (delta-method) variance of the ratio of two independent means
//! (e.g. Kohavi, Tang & Xu 2020, *Trustworthy Online Controlled Experiments*, Cambridge
//! University Press, §18 "Variance estimation", the variance of the percent delta; the
//! same approximation GrowthBook's frequentist engine uses for relative effects). It is
//! taken on the ratio itself, **not on the log-ratio**: the log-ratio is undefined when the
//! variant's mean is 0 (a variant that sells nothing is the clearest harm there is), while
//! the ratio only needs a control mean above 0. Without one, the relative difference is
//! undefined and the status is `inconclusive`. An arm whose values are all equal (sample
//! variance 0: no conversion yet, or no sale) takes the other arm's variance: its data say
//! nothing about its spread, and a variance of 0 would make the interval a point — ten
//! visitors without a sale against one sale in ten would be "harmed" with certainty.
//!
//! ## Always-valid interval
//! Results are looked at continuously (the page, the alert pass every few minutes), so a
//! fixed-horizon interval would be wrong by peeking exactly as a fixed-horizon test is
//! (see [`sequential`](super::sequential)). The interval is the **confidence sequence**
//! obtained by inverting the same normal-mixture mSPRT the primary metric decides with
//! (Johari, Koomen, Pekelis & Walsh 2022, *Operations Research* 70(3):1806–1821,
//! doi:10.1287/opre.2021.2135, §3; Howard, Ramdas, McAuliffe & Sekhon 2021, *Ann.
//! Statist.* 49(2):1055–1080, doi:10.1214/20-AOS1991, normal mixture): with mixing
//! variance `τ²`, `{θ : Λ_n(θ) < 1/α}` is
//!
//! ```text
//! r̂ ± w,   w = √( V (V + τ²) / τ² · (2 ln(1/α) + ln((V + τ²) / V)) )
//! ```
//!
//! and by Ville's inequality it covers the true relative difference **at every look at
//! once** with probability ≥ 1 − α (asymptotically: normal approximation of `r̂`, plug-in
//! `V`; the simulation in `tests/stats_guardrail.rs` measures it). `τ` defaults to the
//! margin (`τ² = m²`): the mixture is most powerful for differences of about the margin's
//! size, which is what the test has to tell apart. No running intersection across looks
//! is kept: each look's interval is valid on its own (as the mSPRT's `1/Λ_n` is without
//! its running minimum), only slightly wider.
//!
//! ## Status
//! Write the interval as `[L, U]` and let "worse" be lower for `higher_is_better` and
//! higher for `lower_is_better`:
//!
//! - **`harmed`**: the whole interval is worse than the margin: `U < −m`
//!   (`higher_is_better`) or `L > m` (`lower_is_better`). The variant is significantly
//!   worse than the control **by more than the owner tolerates**: the recommendation
//!   refuses to deploy it. A drop that is significant but may be within the margin is not
//!   harm: the margin is the loss the owner said they accept.
//! - **`not_inferior`**: the whole interval is better than the margin: `L > −m` or
//!   `U < m` (classical non-inferiority).
//! - **`inconclusive`**: otherwise (the interval straddles the margin), or no estimate.
//!
//! The harmed rule is the threshold rule of LaunchDarkly's guarded rollouts (a regression
//! when the whole interval is beyond the chosen threshold, under sequential testing);
//! GrowthBook flags guardrail metrics that are significantly worse than control, a
//! threshold of zero, which is `m → 0` here (vendor pages: `docs/statistics.md` §7b).
//! Error rates: `P(harmed ever declared | true worsening ≤ m) ≤ α` under continuous
//! monitoring, one comparison at a time (no adjustment across guardrails or arms: more
//! guardrails can only refuse more deploys, the conservative side).

use std::fmt;

use serde::{Deserialize, Serialize};

use super::continuous::Moments;
use super::proportions::Interval;
use super::sequential::log_mixture_ratio;

/// Which way a guardrail metric is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// More is better (purchases, revenue per visitor).
    HigherIsBetter,
    /// Less is better (a bounce or error event counted as a conversion).
    LowerIsBetter,
}

impl Direction {
    /// `higher_is_better` / `lower_is_better`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HigherIsBetter => "higher_is_better",
            Self::LowerIsBetter => "lower_is_better",
        }
    }

    /// The inverse of [`Direction::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "higher_is_better" => Some(Self::HigherIsBetter),
            "lower_is_better" => Some(Self::LowerIsBetter),
            _ => None,
        }
    }
}

/// The verdict on one variant and one guardrail (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuardrailStatus {
    /// Worse than the control by more than the margin, whenever one looks.
    Harmed,
    /// Worse by less than the margin at most.
    NotInferior,
    /// Neither yet.
    Inconclusive,
}

/// Why a guardrail test was refused.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GuardrailError {
    /// A margin outside (0, 1] or NaN.
    InvalidMargin(f64),
    /// α outside (0, 1) or NaN.
    InvalidAlpha(f64),
    /// τ² not finite and positive.
    InvalidTauSquared(f64),
    /// Moments that no real data has (NaN, negative Σx², Cauchy–Schwarz violated).
    InvalidMoments,
}

impl fmt::Display for GuardrailError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidMargin(m) => write!(f, "guardrail margin {m} is not in (0, 1]"),
            Self::InvalidAlpha(a) => write!(f, "alpha {a} is not in (0, 1)"),
            Self::InvalidTauSquared(t) => write!(f, "tau squared {t} must be finite and > 0"),
            Self::InvalidMoments => write!(f, "guardrail moments are inconsistent"),
        }
    }
}

impl std::error::Error for GuardrailError {}

/// A guardrail's definition: the tolerated relative loss and which way is better.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Guardrail {
    margin: f64,
    direction: Direction,
}

impl Guardrail {
    /// Validates the margin (relative, in (0, 1]).
    pub fn new(margin: f64, direction: Direction) -> Result<Self, GuardrailError> {
        if !(margin > 0.0 && margin <= 1.0) {
            return Err(GuardrailError::InvalidMargin(margin));
        }
        Ok(Self { margin, direction })
    }

    /// The relative margin.
    pub fn margin(&self) -> f64 {
        self.margin
    }

    /// Which way is better.
    pub fn direction(&self) -> Direction {
        self.direction
    }
}

/// One variant's guardrail verdict against the control.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GuardrailResult {
    /// The verdict.
    pub status: GuardrailStatus,
    /// `x̄_B / x̄_A − 1`; None while the control's mean is 0 or an arm has < 2 visitors.
    pub relative_difference: Option<f64>,
    /// Always-valid interval of the relative difference at level `1 − α`.
    pub interval: Option<Interval>,
    /// Delta-method standard error `√V` of the relative difference.
    pub std_error: Option<f64>,
    /// Always-valid p-value of "no worse than the margin": `min(1, 1/Λ(θ_m))`, the
    /// mixture likelihood ratio at the margin's boundary `θ_m` (`−m`, or `m` for
    /// `lower_is_better`), when the estimate is worse than the boundary; else 1.
    /// `harmed` exactly when it is ≤ α.
    pub p_value: f64,
    /// The relative margin.
    pub margin: f64,
    /// Which way is better.
    pub direction: Direction,
}

/// The moments of a conversion rate: `conversions` ones among `visitors` values.
pub fn rate_moments(visitors: u64, conversions: u64) -> Moments {
    let x = conversions.min(visitors) as f64;
    Moments {
        n: visitors,
        sum: x,
        sum_sq: x,
    }
}

/// Mean and sample variance, or None below 2 observations; an error for impossible
/// moments (the same checks as [`continuous`](super::continuous)).
fn mean_var(m: Moments) -> Result<Option<(f64, f64)>, GuardrailError> {
    if !(m.sum.is_finite() && m.sum_sq.is_finite()) {
        return Err(GuardrailError::InvalidMoments);
    }
    let n = m.n as f64;
    if m.sum_sq < 0.0 || m.sum * m.sum > n * m.sum_sq * (1.0 + 1e-9) + 1e-9 {
        return Err(GuardrailError::InvalidMoments);
    }
    if m.n < 2 {
        return Ok(None);
    }
    let mean = m.sum / n;
    let var = ((m.sum_sq - m.sum * m.sum / n) / (n - 1.0)).max(0.0);
    Ok(Some((mean, var)))
}

/// Half-width of the normal-mixture confidence sequence for an estimate of variance `v`
/// (module docs). 0 when `v` is 0: both arms constant, the estimate is exact.
pub fn confidence_sequence_half_width(v: f64, tau_squared: f64, alpha: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 0.0;
    }
    let scale = v * (v + tau_squared) / tau_squared;
    (scale * (2.0 * (1.0 / alpha).ln() + ((v + tau_squared) / v).ln())).sqrt()
}

/// The non-inferiority verdict on `treatment` against `control` (module docs), at
/// significance `alpha`, with mixing variance `tau_squared` (None: the margin squared).
pub fn non_inferiority(
    control: Moments,
    treatment: Moments,
    guardrail: Guardrail,
    alpha: f64,
    tau_squared: Option<f64>,
) -> Result<GuardrailResult, GuardrailError> {
    if !(alpha > 0.0 && alpha < 1.0) {
        return Err(GuardrailError::InvalidAlpha(alpha));
    }
    let m = guardrail.margin;
    let tau_squared = tau_squared.unwrap_or(m * m);
    if !(tau_squared.is_finite() && tau_squared > 0.0) {
        return Err(GuardrailError::InvalidTauSquared(tau_squared));
    }
    let undecided = GuardrailResult {
        status: GuardrailStatus::Inconclusive,
        relative_difference: None,
        interval: None,
        std_error: None,
        p_value: 1.0,
        margin: m,
        direction: guardrail.direction,
    };
    let (Some((mean_a, var_a)), Some((mean_b, var_b))) = (mean_var(control)?, mean_var(treatment)?)
    else {
        return Ok(undecided);
    };
    if mean_a <= 0.0 {
        return Ok(undecided);
    }
    // A constant arm borrows the other's variance (module docs).
    let (var_a, var_b) = (
        if var_a > 0.0 { var_a } else { var_b },
        if var_b > 0.0 { var_b } else { var_a },
    );
    let (na, nb) = (control.n as f64, treatment.n as f64);
    let relative = mean_b / mean_a - 1.0;
    let v = var_b / (nb * mean_a * mean_a) + mean_b * mean_b * var_a / (na * mean_a.powi(4));
    let w = confidence_sequence_half_width(v, tau_squared, alpha);
    let interval = Interval {
        lower: relative - w,
        upper: relative + w,
    };
    // The margin's boundary on the relative scale, and whether the estimate is beyond it.
    let (boundary, beyond) = match guardrail.direction {
        Direction::HigherIsBetter => (-m, relative < -m),
        Direction::LowerIsBetter => (m, relative > m),
    };
    let p_value = match (beyond, v > 0.0) {
        (false, _) => 1.0,
        (true, false) => 0.0,
        (true, true) => (-log_mixture_ratio(relative - boundary, v, tau_squared))
            .exp()
            .min(1.0),
    };
    let status = match guardrail.direction {
        Direction::HigherIsBetter if interval.upper < -m => GuardrailStatus::Harmed,
        Direction::HigherIsBetter if interval.lower > -m => GuardrailStatus::NotInferior,
        Direction::LowerIsBetter if interval.lower > m => GuardrailStatus::Harmed,
        Direction::LowerIsBetter if interval.upper < m => GuardrailStatus::NotInferior,
        _ => GuardrailStatus::Inconclusive,
    };
    Ok(GuardrailResult {
        status,
        relative_difference: Some(relative),
        interval: Some(interval),
        std_error: Some(v.sqrt()),
        p_value,
        margin: m,
        direction: guardrail.direction,
    })
}
