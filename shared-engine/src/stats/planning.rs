//! # Planning: sample size, duration and power before an experiment starts
//!
//! `no_std` + `libm` only (like [`bayes`]), so the same numbers can be computed wherever
//! the engine runs; the control plane serves them at `GET /api/v1/planning/sample-size`.
//!
//! [`plan`] answers "how many visitors, and how many days, to detect a relative lift of
//! `minimum_detectable_effect` over `baseline_rate` with probability `power`?" for the two
//! tests a results page shows, both comparing each variant with the control:
//!
//! 1. the **fixed-horizon pooled two-proportion z-test** (valid at one pre-planned look),
//! 2. the **always-valid mSPRT** of [`sequential`](super::sequential), the one the
//!    results page decides with (valid however often one looks).
//!
//! ## Notation and assumptions
//!
//! `p₁` = baseline (control) rate, `p₂ = p₁(1 + mde)`, `θ = p₂ − p₁`, `p̄ = (p₁ + p₂)/2`,
//! `q = 1 − p`. Traffic is split equally over the `k` arms (control included), `n`
//! visitors per arm. Every variant is compared with the control; the results page adjusts
//! the always-valid p-values of the `m = k − 1` comparisons with Holm's step-down
//! procedure ([`multiple::holm`](super::multiple::holm)) and decides at family-wise α.
//! Holm rejects every hypothesis Bonferroni rejects (its adjusted p-value is at most
//! `m·p`), so a plan at the **Bonferroni level `α' = α/m`** per comparison is
//! conservative for Holm: the chance of detecting a variant that has the planned effect
//! is at least the planned power, whatever the other variants do.
//!
//! ## Fixed horizon
//!
//! The pooled z-test of [`proportions`](super::proportions) has `Var₀(p̂₂ − p̂₁) =
//! 2p̄q̄/n` under H0 and `Var₁ = (p₁q₁ + p₂q₂)/n` under the alternative, so (Fleiss, Levin
//! & Paik 2003, *Statistical Methods for Rates and Proportions*, 3rd ed., Wiley, ch. 4,
//! the formula without continuity correction, doi:10.1002/0471445428; the same as R's
//! `power.prop.test` and statsmodels' `samplesize_proportions_2indep_onetail`):
//!
//! ```text
//! n = ⌈ ( z_{1−α'/2} · √(2p̄q̄) + z_{1−β} · √(p₁q₁ + p₂q₂) )² / θ² ⌉
//! ```
//!
//! and the two-sided power reached at `n` (both rejection tails counted, as statsmodels'
//! `power_proportions_2indep` does) is
//!
//! ```text
//! power(n) = Φ((|θ|√n − z_{1−α'/2}√(2p̄q̄)) / √(p₁q₁+p₂q₂))
//!          + Φ((−|θ|√n − z_{1−α'/2}√(2p̄q̄)) / √(p₁q₁+p₂q₂)).
//! ```
//!
//! `Φ` is `½·erfc(−x/√2)` (`libm`); `z_p = Φ⁻¹(p)` by Wichura's algorithm AS 241
//! (Wichura 1988, "The percentage points of the normal distribution", *Applied
//! Statistics* 37(3):477–484, doi:10.2307/2347330), accurate to about 10⁻¹⁶.
//! Days = `⌈k·n / visitors_per_day⌉`.
//!
//! ## Always valid (mSPRT)
//!
//! The engine's statistic (see [`sequential`](super::sequential)) is, at a look with `n`
//! visitors per arm, `Λ_n = √(V/(V+τ²)) · exp(τ²θ̂²/(2V(V+τ²)))` with `θ̂ = p̂₂ − p̂₁` and
//! `V = p̄(1−p̄)·2/n` (pooled rate); the running-minimum p-value falls to `α'` exactly
//! when some look has `Λ_n ≥ 1/α'`. Write the information `t = 1/V = n/(2p̄q̄)` and the
//! score `S = θ̂·t`. Then
//!
//! ```text
//! ln Λ ≥ ln(1/α')  ⇔  |S_t| ≥ g(t) = √( (1/τ² + t) · (2 ln(1/α') + ln(1 + τ²t)) ),
//! ```
//!
//! and `S` is a sum of independent per-pair differences: approximately a Gaussian
//! random walk with drift `θ` and variance `ρ²` per unit of information, `ρ² =
//! (p₁q₁ + p₂q₂)/(2p̄q̄)` (the normal approximation the mSPRT itself rests on, with `p̄`
//! at its limit `(p₁+p₂)/2`). The power by look `K` is the probability that this walk
//! leaves `(−g(t_j), g(t_j))` at one of the looks `t_1 < … < t_K` — a boundary-crossing
//! probability computed with the group-sequential recursive numerical integration of
//! Armitage, McPherson & Rowe (1969, "Repeated significance tests on accumulating
//! data", *JRSS A* 132(2):235–244, doi:10.2307/2343787; Jennison & Turnbull 2000,
//! *Group Sequential Methods with Applications to Clinical Trials*, Chapman & Hall/CRC,
//! ch. 19):
//!
//! 1. The sub-density `f_j` of `S_{t_j}` on paths that have not crossed yet lives on
//!    `(−g(t_j), g(t_j))`; it is below the free density `N(θt_j, ρ²t_j)`, so it is kept
//!    only within 8 free standard deviations of `θt_j` (the rest is below 10⁻¹⁴).
//! 2. `f_{j+1}(y) = ∫ f_j(x) φ_s(y − x − θΔ) dx` with the increment's `s = ρ√Δ`, and the
//!    mass crossing at look `j+1` is `∫ f_j(x) [Q((g − x − θΔ)/s) + Φ((−g − x − θΔ)/s)] dx`
//!    (`Q = 1 − Φ`, `g = g(t_{j+1})`).
//! 3. The integrals use the trapezoidal rule on a lattice of spacing `h = s/4` shared by
//!    all looks (so the Gaussian kernel is one table per plan), plus the two region ends.
//!    Its error is `c·h² + O(h³)` (from the sub-density's slope where it is cut at `±g`),
//!    so the recursion runs on lattices `s/4` and `s/8` and reports `(4·P_{s/8} − P_{s/4})/3`
//!    (Richardson extrapolation: Richardson 1911, "The approximate arithmetical solution
//!    by finite differences of physical problems…", *Phil. Trans. R. Soc. A*
//!    210:307–357, doi:10.1098/rsta.1911.0009). On the test grid this agrees with the
//!    `s/8`–`s/16` extrapolation to 2·10⁻⁵, where plain `s/8` is 4·10⁻⁴ low.
//!
//! **τ².** The mixture favours effects of about `τ` in absolute rate (1 percentage point
//! by default): for much larger effects the boundary `g(t) ≈ √(2 ln(1/α')/τ²)` of the
//! first looks is far above the drift, and the always-valid test needs many times the
//! fixed-horizon size. At power 0.8, looking after every visitor: 50% → 75% needs 58
//! visitors per arm fixed and 540 always valid, where 10% → 12% needs 3 841 and 6 764.
//!
//! **Looks.** A running-minimum p-value is only updated when somebody looks (the results
//! page or the export computes it). The plan assumes `looks_per_day` looks spread evenly
//! over each day (default 1: a daily check). More looks can only raise the power (each
//! adds a chance to cross), so the figure is the power of that schedule and a lower bound
//! for any denser one. When a plan would need more than [`MAX_MODELLED_LOOKS`] looks, the
//! recursion models every `r`-th look only (`r` as small as keeps the count within the
//! bound): fewer looks, so the power reported is a lower bound and the size an upper
//! bound (conservative). [`AlwaysValidPlan::visitors_per_arm_per_look`] says which.
//!
//! The search stops at the first look whose cumulative power reaches the target; it
//! exists because the power of a single last look (closed form) already reaches it at a
//! finite size, found first by doubling and bisection, and the multi-look power is at
//! least that.
//!
//! **Agreement.** Unit tests pin the numbers against `tests/reference/stats_planning.py`:
//! statsmodels and SciPy for the z-test (sizes exact, powers to 10⁻¹⁰), the closed form
//! for one look, and 2·10⁶ simulated Gaussian paths of the mixture statistic for many
//! looks (at most 3.1·10⁻⁴ apart, within one standard error of the simulation). They
//! also simulate the engine's own tests on binomial visitor streams (the counts at each
//! look), 4 000 experiments each (standard error 0.006): 10% → 12% with 200 visitors per
//! arm a day reaches 0.794 and 0.796 (two and three arms) where the z-test plan says
//! 0.800; [`sequential::msprt`](super::sequential::msprt) with its running minimum reaches
//! 0.810 by the planned look (plan 0.803) and 0.380 at the fixed-horizon size (plan
//! 0.373); with three arms and Holm, 0.804 (plan 0.804). What remains is the normal
//! approximation, which the simulation shows slightly conservative there.

use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use serde::{Deserialize, Serialize};

use super::bayes;

/// Conventional power.
pub const DEFAULT_POWER: f64 = 0.8;
/// Largest accepted α.
pub const MAX_ALPHA: f64 = 0.5;
/// Smallest and largest accepted power. Below 0.5 the sample-size formula's second term
/// changes sign and stops meaning "power"; above 0.999 the sizes say little.
pub const MIN_POWER: f64 = 0.5;
/// See [`MIN_POWER`].
pub const MAX_POWER: f64 = 0.999;
/// Most arms (control included): the analysis' own bound, [`bayes::MAX_ARMS`].
pub const MAX_ARMS: u32 = bayes::MAX_ARMS as u32;
/// One look a day.
pub const DEFAULT_LOOKS_PER_DAY: u32 = 1;
/// Most looks per day (hourly).
pub const MAX_LOOKS_PER_DAY: u32 = 24;
/// Largest planned visitors per arm: beyond, the effect is too small to plan for.
pub const MAX_VISITORS_PER_ARM: f64 = 1e12;
/// Most looks the boundary-crossing recursion models (see the module docs, "Looks").
pub const MAX_MODELLED_LOOKS: u64 = 400;
/// Lattice points per standard deviation of one look's increment, on the coarser of the
/// two lattices combined by Richardson extrapolation (the finer has twice as many).
pub const GRID_POINTS_PER_SD: f64 = 4.0;
/// Standard deviations kept on each side of a mean (free density, kernel).
const SDS_KEPT: f64 = 8.0;

/// What to plan for. Every field is checked by [`validate`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PlanInput {
    /// The control's conversion rate, in (0, 1).
    pub baseline_rate: f64,
    /// The smallest relative lift worth detecting: 0.1 = +10%, −0.1 = −10% (nonzero,
    /// above −1, and `baseline_rate·(1 + effect)` must stay in (0, 1)).
    pub minimum_detectable_effect: f64,
    /// Arms including the control, 2..=[`MAX_ARMS`]; traffic is split equally.
    pub arms: u32,
    /// Family-wise significance level, in (0, [`MAX_ALPHA`]].
    pub alpha: f64,
    /// Wanted probability of detecting the effect, in [[`MIN_POWER`], [`MAX_POWER`]].
    pub power: f64,
    /// Visitors per day entering the experiment, all arms together (≥ 1).
    pub visitors_per_day: u64,
    /// Looks at the always-valid p-value per day, 1..=[`MAX_LOOKS_PER_DAY`].
    pub looks_per_day: u32,
    /// The mSPRT mixing variance τ² the analysis uses (`AnalysisConfig::tau_squared`).
    pub tau_squared: f64,
}

/// The fixed-horizon z-test's plan.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FixedHorizonPlan {
    /// Visitors each arm needs.
    pub visitors_per_arm: u64,
    /// `arms × visitors_per_arm`.
    pub visitors_total: u64,
    /// Days to collect `visitors_total`.
    pub days: u64,
    /// Power at `visitors_per_arm` (≥ the requested power: the size is rounded up).
    pub power: f64,
}

/// The always-valid (mSPRT) test's plan.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AlwaysValidPlan {
    /// Visitors per arm at the first look by which the test has detected the effect with
    /// at least the requested power (it often stops earlier).
    pub visitors_per_arm: u64,
    /// All arms together at that look (`arms × visitors_per_arm` but for rounding).
    pub visitors_total: u64,
    /// Days until that look.
    pub days: u64,
    /// Power reached by that look.
    pub power: f64,
    /// Power reached if the experiment is stopped at the fixed-horizon size
    /// ([`FixedHorizonPlan::visitors_per_arm`], looking there a last time).
    pub power_at_fixed_horizon: f64,
    /// Looks modelled up to `visitors_per_arm`.
    pub looks: u64,
    /// Visitors per arm between two modelled looks (one day's share divided by
    /// `looks_per_day`, times the stride when looks had to be thinned).
    pub visitors_per_arm_per_look: f64,
}

/// The answer of [`plan`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// `p₁`, the baseline.
    pub control_rate: f64,
    /// `p₂ = p₁(1 + mde)`.
    pub treatment_rate: f64,
    /// `θ = p₂ − p₁`.
    pub absolute_effect: f64,
    /// Variant-versus-control comparisons, `arms − 1`.
    pub comparisons: u32,
    /// `α / comparisons`: the Bonferroni level each comparison is planned at.
    pub alpha_per_comparison: f64,
    /// The fixed-horizon pooled z-test.
    pub fixed_horizon: FixedHorizonPlan,
    /// The always-valid mSPRT the results page decides with.
    pub always_valid: AlwaysValidPlan,
}

/// Why a plan was refused. [`PlanningError::field`] names the [`PlanInput`] field.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PlanningError {
    /// Baseline rate not in (0, 1).
    BaselineRate(f64),
    /// Effect not finite, zero, or ≤ −1.
    MinimumDetectableEffect(f64),
    /// `baseline·(1 + effect)` not in (0, 1).
    TreatmentRate {
        /// The baseline given.
        baseline_rate: f64,
        /// The effect given.
        minimum_detectable_effect: f64,
    },
    /// Arms not in 2..=[`MAX_ARMS`].
    Arms(u32),
    /// α not in (0, [`MAX_ALPHA`]].
    Alpha(f64),
    /// Power not in [[`MIN_POWER`], [`MAX_POWER`]].
    Power(f64),
    /// No visitors per day.
    VisitorsPerDay,
    /// Looks per day not in 1..=[`MAX_LOOKS_PER_DAY`].
    LooksPerDay(u32),
    /// τ² not finite and positive.
    TauSquared(f64),
    /// A visitors-per-arm argument not finite and positive.
    VisitorsPerArm(f64),
    /// The effect needs more than [`MAX_VISITORS_PER_ARM`] visitors per arm (or is below
    /// the baseline's floating-point precision).
    EffectTooSmall,
}

impl PlanningError {
    /// The [`PlanInput`] field the error is about (for field errors in an API answer).
    pub fn field(&self) -> &'static str {
        match self {
            Self::BaselineRate(_) => "baseline_rate",
            Self::MinimumDetectableEffect(_)
            | Self::TreatmentRate { .. }
            | Self::EffectTooSmall => "minimum_detectable_effect",
            Self::Arms(_) => "arms",
            Self::Alpha(_) => "alpha",
            Self::Power(_) => "power",
            Self::VisitorsPerDay => "visitors_per_day",
            Self::LooksPerDay(_) => "looks_per_day",
            Self::TauSquared(_) => "tau_squared",
            Self::VisitorsPerArm(_) => "visitors_per_arm",
        }
    }
}

impl fmt::Display for PlanningError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BaselineRate(p) => write!(f, "baseline rate {p} is not in (0, 1)"),
            Self::MinimumDetectableEffect(e) => write!(
                f,
                "minimum detectable effect {e} must be a nonzero relative lift above -1"
            ),
            Self::TreatmentRate {
                baseline_rate,
                minimum_detectable_effect,
            } => write!(
                f,
                "a lift of {minimum_detectable_effect} on a baseline of {baseline_rate} gives \
                 a rate of {}, not in (0, 1)",
                baseline_rate * (1.0 + minimum_detectable_effect)
            ),
            Self::Arms(k) => write!(f, "{k} arms: between 2 and {MAX_ARMS}, control included"),
            Self::Alpha(a) => write!(f, "alpha {a} is not in (0, {MAX_ALPHA}]"),
            Self::Power(p) => write!(f, "power {p} is not in [{MIN_POWER}, {MAX_POWER}]"),
            Self::VisitorsPerDay => write!(f, "visitors per day must be at least 1"),
            Self::LooksPerDay(l) => {
                write!(f, "{l} looks per day: between 1 and {MAX_LOOKS_PER_DAY}")
            }
            Self::TauSquared(t) => write!(f, "tau squared {t} must be finite and > 0"),
            Self::VisitorsPerArm(n) => write!(f, "visitors per arm {n} must be finite and > 0"),
            Self::EffectTooSmall => write!(
                f,
                "the effect is too small: detecting it needs more than {MAX_VISITORS_PER_ARM:e} \
                 visitors per arm"
            ),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for PlanningError {}

/// Every problem of `input`, in field order (empty when it is valid), so a caller can
/// report them all at once. [`plan`] returns the first.
pub fn validate(input: &PlanInput) -> Vec<PlanningError> {
    let mut errors = Vec::new();
    let p = input.baseline_rate;
    let e = input.minimum_detectable_effect;
    let rate_ok = p > 0.0 && p < 1.0;
    if !rate_ok {
        errors.push(PlanningError::BaselineRate(p));
    }
    let effect_ok = e.is_finite() && e != 0.0 && e > -1.0;
    if !effect_ok {
        errors.push(PlanningError::MinimumDetectableEffect(e));
    }
    if rate_ok && effect_ok {
        let p2 = p * (1.0 + e);
        if !(p2 > 0.0 && p2 < 1.0) {
            errors.push(PlanningError::TreatmentRate {
                baseline_rate: p,
                minimum_detectable_effect: e,
            });
        } else if p2 == p {
            // An effect below the rate's precision: θ would be 0.
            errors.push(PlanningError::EffectTooSmall);
        }
    }
    if !(2..=MAX_ARMS).contains(&input.arms) {
        errors.push(PlanningError::Arms(input.arms));
    }
    if !(input.alpha > 0.0 && input.alpha <= MAX_ALPHA) {
        errors.push(PlanningError::Alpha(input.alpha));
    }
    if !(MIN_POWER..=MAX_POWER).contains(&input.power) {
        errors.push(PlanningError::Power(input.power));
    }
    if input.visitors_per_day == 0 {
        errors.push(PlanningError::VisitorsPerDay);
    }
    if !(1..=MAX_LOOKS_PER_DAY).contains(&input.looks_per_day) {
        errors.push(PlanningError::LooksPerDay(input.looks_per_day));
    }
    if !(input.tau_squared.is_finite() && input.tau_squared > 0.0) {
        errors.push(PlanningError::TauSquared(input.tau_squared));
    }
    errors
}

/// The sample sizes, durations and powers of both tests; see the module docs.
pub fn plan(input: &PlanInput) -> Result<Plan, PlanningError> {
    let setting = Setting::new(input)?;
    let fixed = setting.fixed_horizon()?;
    let fixed_n = fixed.visitors_per_arm as f64;
    let walk = setting.walk();
    let per_look = setting.visitors_per_arm_per_look();

    // A size by which one last look alone reaches the power: the search's end.
    let single_looks = walk.looks_for_single_look_power(
        setting.information(per_look),
        input.power,
        MAX_VISITORS_PER_ARM / per_look,
    )?;
    let fixed_looks = libm::ceil(fixed_n / per_look) as u64;
    let stride = single_looks
        .max(fixed_looks)
        .div_ceil(MAX_MODELLED_LOOKS)
        .max(1);
    let step = per_look * stride as f64;
    let cap = single_looks.div_ceil(stride);

    let mut recursion = Crossing::new(walk, setting.information(step));
    let t_fixed = setting.information(fixed_n);
    let mut at_fixed = None;
    let (looks, power) = loop {
        if at_fixed.is_none() && recursion.next_time() >= t_fixed * (1.0 - 1e-12) {
            // The fixed-horizon size falls before the next look: a last look there.
            at_fixed = Some(recursion.cumulative() + recursion.exit_at(t_fixed));
        }
        recursion.advance();
        if recursion.cumulative() >= input.power {
            break (recursion.looks(), recursion.cumulative());
        }
        if recursion.looks() >= cap {
            // Here one last look alone has the power (when that power grows with the
            // size, as it does past the first looks) and the multi-look power is at
            // least as high; both are lower bounds, so report the larger.
            let single = walk.single_look_power(recursion.time());
            break (recursion.looks(), recursion.cumulative().max(single));
        }
    };
    // With sparse looks the fixed-horizon size can lie beyond the always-valid plan.
    let at_fixed = match at_fixed {
        Some(p) => p,
        None => recursion.power_at(t_fixed),
    };
    // Visitors at the look, rounded up (a share of a day's traffic can be fractional per
    // arm; the total is counted once, not as a rounded share times the arms).
    let at_look = looks as f64 * step;
    let visitors_per_arm = libm::ceil(at_look - 1e-9) as u64;
    let visitors_total = libm::ceil(at_look * f64::from(input.arms) - 1e-9) as u64;
    Ok(Plan {
        control_rate: setting.p1,
        treatment_rate: setting.p2,
        absolute_effect: setting.p2 - setting.p1,
        comparisons: input.arms - 1,
        alpha_per_comparison: setting.alpha,
        fixed_horizon: fixed,
        always_valid: AlwaysValidPlan {
            visitors_per_arm,
            visitors_total,
            days: (looks * stride).div_ceil(u64::from(input.looks_per_day)),
            power: power.min(1.0),
            power_at_fixed_horizon: at_fixed.min(1.0),
            looks,
            visitors_per_arm_per_look: step,
        },
    })
}

/// Two-sided power of the fixed-horizon pooled z-test with `visitors_per_arm` in each
/// arm, at the Bonferroni level of `input` (its `power` field is not used).
pub fn fixed_horizon_power(input: &PlanInput, visitors_per_arm: f64) -> Result<f64, PlanningError> {
    let setting = Setting::new(input)?;
    check_visitors(visitors_per_arm)?;
    Ok(setting.z_test_power(visitors_per_arm))
}

/// Power of the always-valid test run until `visitors_per_arm`, looking as `input`'s
/// schedule says and once more at `visitors_per_arm` (its `power` field is not used).
pub fn always_valid_power(input: &PlanInput, visitors_per_arm: f64) -> Result<f64, PlanningError> {
    let setting = Setting::new(input)?;
    check_visitors(visitors_per_arm)?;
    let per_look = setting.visitors_per_arm_per_look();
    let looks = libm::floor(visitors_per_arm / per_look) as u64;
    let stride = looks.div_ceil(MAX_MODELLED_LOOKS).max(1);
    let mut recursion = Crossing::new(
        setting.walk(),
        setting.information(per_look * stride as f64),
    );
    Ok(recursion
        .power_at(setting.information(visitors_per_arm))
        .min(1.0))
}

fn check_visitors(n: f64) -> Result<(), PlanningError> {
    if n.is_finite() && n > 0.0 && n <= MAX_VISITORS_PER_ARM {
        Ok(())
    } else {
        Err(PlanningError::VisitorsPerArm(n))
    }
}

/// A validated input with the derived rates and levels.
struct Setting {
    input: PlanInput,
    p1: f64,
    p2: f64,
    /// Per-comparison (Bonferroni) α'.
    alpha: f64,
    /// `2 p̄ q̄`: n per arm → information `t = n / two_pq`.
    two_pq: f64,
    /// `p₁q₁ + p₂q₂`.
    var_alt: f64,
}

impl Setting {
    fn new(input: &PlanInput) -> Result<Self, PlanningError> {
        if let Some(&e) = validate(input).first() {
            return Err(e);
        }
        let p1 = input.baseline_rate;
        let p2 = p1 * (1.0 + input.minimum_detectable_effect);
        let pbar = 0.5 * (p1 + p2);
        Ok(Self {
            input: *input,
            p1,
            p2,
            alpha: input.alpha / f64::from(input.arms - 1),
            two_pq: 2.0 * pbar * (1.0 - pbar),
            var_alt: p1 * (1.0 - p1) + p2 * (1.0 - p2),
        })
    }

    fn theta(&self) -> f64 {
        libm::fabs(self.p2 - self.p1)
    }

    fn information(&self, visitors_per_arm: f64) -> f64 {
        visitors_per_arm / self.two_pq
    }

    fn visitors_per_arm_per_look(&self) -> f64 {
        self.input.visitors_per_day as f64
            / (f64::from(self.input.arms) * f64::from(self.input.looks_per_day))
    }

    fn z_alpha(&self) -> f64 {
        -normal_quantile(self.alpha / 2.0)
    }

    fn fixed_horizon(&self) -> Result<FixedHorizonPlan, PlanningError> {
        // Step by step as in Fleiss et al., ch. 4: the H0 and H1 standard deviations of one
        // pair's difference, weighted by their critical values.
        let z_beta = normal_quantile(self.input.power);
        let root = self.z_alpha() * libm::sqrt(self.two_pq) + z_beta * libm::sqrt(self.var_alt);
        let theta = self.theta();
        let n = root * root / (theta * theta);
        if !(n.is_finite() && n <= MAX_VISITORS_PER_ARM) {
            return Err(PlanningError::EffectTooSmall);
        }
        // Guard the ceiling against a product that lands a rounding error above an integer.
        let n = libm::ceil(n * (1.0 - 1e-12)).max(1.0);
        let visitors_per_arm = n as u64;
        let visitors_total = visitors_per_arm * u64::from(self.input.arms);
        Ok(FixedHorizonPlan {
            visitors_per_arm,
            visitors_total,
            days: visitors_total.div_ceil(self.input.visitors_per_day),
            power: self.z_test_power(n),
        })
    }

    fn z_test_power(&self, n: f64) -> f64 {
        let shift = self.theta() * libm::sqrt(n);
        let null = self.z_alpha() * libm::sqrt(self.two_pq);
        let sd = libm::sqrt(self.var_alt);
        normal_cdf((shift - null) / sd) + normal_cdf((-shift - null) / sd)
    }

    fn walk(&self) -> Walk {
        Walk {
            theta: self.theta(),
            rho: libm::sqrt(self.var_alt / self.two_pq),
            inv_tau_squared: 1.0 / self.input.tau_squared,
            tau_squared: self.input.tau_squared,
            two_log_inv_alpha: -2.0 * libm::log(self.alpha),
        }
    }
}

/// The score `S_t` as a Gaussian random walk and the mSPRT's boundary `g(t)`.
#[derive(Debug, Clone, Copy)]
struct Walk {
    /// Drift per unit information, `|θ|`.
    theta: f64,
    /// Standard deviation per √information.
    rho: f64,
    tau_squared: f64,
    inv_tau_squared: f64,
    /// `2 ln(1/α')`.
    two_log_inv_alpha: f64,
}

impl Walk {
    /// `g(t) = √((1/τ² + t)(2 ln(1/α') + ln(1 + τ²t)))`.
    fn boundary(&self, t: f64) -> f64 {
        libm::sqrt(
            (self.inv_tau_squared + t)
                * (self.two_log_inv_alpha + libm::log1p(self.tau_squared * t)),
        )
    }

    /// `P(|S_t| ≥ g(t))`: the power of one look at `t`.
    fn single_look_power(&self, t: f64) -> f64 {
        let g = self.boundary(t);
        let sd = self.rho * libm::sqrt(t);
        let mean = self.theta * t;
        normal_sf((g - mean) / sd) + normal_cdf((-g - mean) / sd)
    }

    /// The fewest looks `K` (of `step` information each) such that one look at `K·step`
    /// has at least `power`, by doubling then bisection; more than `max_looks` is
    /// [`PlanningError::EffectTooSmall`].
    fn looks_for_single_look_power(
        &self,
        step: f64,
        power: f64,
        max_looks: f64,
    ) -> Result<u64, PlanningError> {
        let enough = |k: u64| self.single_look_power(k as f64 * step) >= power;
        let mut hi = 1u64;
        while !enough(hi) {
            if hi as f64 > max_looks {
                return Err(PlanningError::EffectTooSmall);
            }
            hi *= 2;
        }
        let mut lo = hi / 2; // 0, or a look count that is not enough
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if enough(mid) {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        Ok(hi)
    }
}

/// The crossing probabilities of two [`Recursion`]s, on lattices of spacing `h` and
/// `h/2`, combined by Richardson extrapolation: the trapezoidal rule's error here is
/// `c·h² + O(h³)` (the sub-density's slope at the region's ends, where it is cut), so
/// `(4·P_{h/2} − P_h)/3` cancels its leading term. Alone, the `s/4` lattice loses 0.4% of
/// the probability over 60 looks of a typical plan; extrapolated, 10⁻⁵ (tested).
struct Crossing {
    coarse: Recursion,
    fine: Recursion,
}

impl Crossing {
    fn new(walk: Walk, step: f64) -> Self {
        Self {
            coarse: Recursion::new(walk, step, GRID_POINTS_PER_SD),
            fine: Recursion::new(walk, step, 2.0 * GRID_POINTS_PER_SD),
        }
    }

    fn extrapolate(coarse: f64, fine: f64) -> f64 {
        (4.0 * fine - coarse) / 3.0
    }

    fn looks(&self) -> u64 {
        self.fine.looks
    }

    fn time(&self) -> f64 {
        self.fine.time
    }

    fn next_time(&self) -> f64 {
        self.fine.next_time()
    }

    fn cumulative(&self) -> f64 {
        Self::extrapolate(self.coarse.cumulative, self.fine.cumulative)
    }

    fn exit_at(&self, t: f64) -> f64 {
        Self::extrapolate(self.coarse.exit_at(t), self.fine.exit_at(t))
    }

    fn advance(&mut self) {
        self.coarse.advance();
        self.fine.advance();
    }

    fn power_at(&mut self, t: f64) -> f64 {
        Self::extrapolate(self.coarse.power_at(t), self.fine.power_at(t))
    }
}

/// The boundary-crossing recursion over equally spaced looks (see the module docs).
///
/// The sub-density of the score on paths still running is held as `mass = f·w` (density
/// times trapezoidal weight) at points: the region's two ends (`ends`) and the lattice
/// points `j·h` strictly between them (`lattice`, starting at index `first`). Before the
/// first look the walk is a unit point mass at 0, held as one "end".
struct Recursion {
    walk: Walk,
    /// Information between looks.
    step: f64,
    /// Information at the last look made.
    time: f64,
    /// Looks made.
    looks: u64,
    /// Probability of having crossed by the last look.
    cumulative: f64,
    /// Lattice spacing.
    h: f64,
    ends: Vec<(f64, f64)>,
    first: i64,
    lattice: Vec<f64>,
    /// `φ_s(d·h − θ·step)` for `d` in `kernel_first..`.
    kernel: Vec<f64>,
    kernel_first: i64,
}

impl Recursion {
    /// Before the first look, on a lattice of `points_per_sd` points per standard
    /// deviation of one look's increment.
    fn new(walk: Walk, step: f64, points_per_sd: f64) -> Self {
        let s = walk.rho * libm::sqrt(step);
        let h = s / points_per_sd;
        let mu = walk.theta * step;
        let kernel_first = libm::ceil((mu - SDS_KEPT * s) / h) as i64;
        let kernel_last = libm::floor((mu + SDS_KEPT * s) / h) as i64;
        let kernel = (kernel_first..=kernel_last)
            .map(|d| normal_pdf((d as f64 * h - mu) / s) / s)
            .collect();
        Self {
            walk,
            step,
            time: 0.0,
            looks: 0,
            cumulative: 0.0,
            h,
            ends: vec![(0.0, 1.0)],
            first: 0,
            lattice: Vec::new(),
            kernel,
            kernel_first,
        }
    }

    /// Iterates over `(x, mass)` of every point held.
    fn points(&self) -> impl Iterator<Item = (f64, f64)> + '_ {
        let lattice = self
            .lattice
            .iter()
            .enumerate()
            .map(|(i, &m)| ((self.first + i as i64) as f64 * self.h, m));
        self.ends.iter().copied().chain(lattice)
    }

    /// Probability of crossing at a look at `t` (after the last look, `t − time` at most
    /// one step) among paths still running.
    fn exit_at(&self, t: f64) -> f64 {
        let dt = t - self.time;
        if dt <= 0.0 {
            return 0.0;
        }
        let g = self.walk.boundary(t);
        let mu = self.walk.theta * dt;
        let s = self.walk.rho * libm::sqrt(dt);
        let mut exit = 0.0;
        for (x, mass) in self.points() {
            let upper = (g - x - mu) / s;
            let lower = (-g - x - mu) / s;
            // Deep inside the region neither tail is representable: skip the erfc calls.
            if upper < 40.0 || lower > -40.0 {
                exit += mass * (normal_sf(upper) + normal_cdf(lower));
            }
        }
        exit
    }

    /// Information at the next look.
    fn next_time(&self) -> f64 {
        self.time + self.step
    }

    /// Power by a last look at `t` (not before the last look made): the looks before
    /// `t` are made, then `t` is looked at once without moving the state there.
    fn power_at(&mut self, t: f64) -> f64 {
        while self.next_time() < t * (1.0 - 1e-12) {
            self.advance();
        }
        self.cumulative + self.exit_at(t)
    }

    /// Makes the next look: adds its crossing probability, moves the sub-density.
    fn advance(&mut self) {
        let t = self.time + self.step;
        let exit = self.exit_at(t);
        let walk = self.walk;
        let g = walk.boundary(t);
        let (mean, sd) = (walk.theta * t, walk.rho * libm::sqrt(t));
        let lo = (-g).max(mean - SDS_KEPT * sd);
        let hi = g.min(mean + SDS_KEPT * sd);
        let s = walk.rho * libm::sqrt(self.step);
        let mu = walk.theta * self.step;
        let h = self.h;

        let (mut ends, mut first, mut lattice) = (Vec::new(), 0, Vec::new());
        if lo < hi {
            // Density at an arbitrary point, from every held point within reach.
            let density_at = |y: f64| -> f64 {
                self.points()
                    .filter(|&(x, _)| libm::fabs(y - x - mu) <= SDS_KEPT * s)
                    .map(|(x, m)| m * normal_pdf((y - x - mu) / s) / s)
                    .sum()
            };
            first = libm::floor(lo / h) as i64 + 1;
            let last = libm::ceil(hi / h) as i64 - 1;
            let old_first = self.first;
            let old_last = self.first + self.lattice.len() as i64 - 1;
            let kernel_last = self.kernel_first + self.kernel.len() as i64 - 1;
            for j in first..=last {
                let y = j as f64 * h;
                // Lattice to lattice through the kernel table: d = j − i.
                let from = old_first.max(j - kernel_last);
                let to = old_last.min(j - self.kernel_first);
                let mut f = 0.0;
                if from <= to {
                    // i runs up while d = j − i runs down: zip with the reversed kernel.
                    let held =
                        &self.lattice[(from - old_first) as usize..=(to - old_first) as usize];
                    let kernel = &self.kernel[(j - to - self.kernel_first) as usize
                        ..=(j - from - self.kernel_first) as usize];
                    f = held
                        .iter()
                        .zip(kernel.iter().rev())
                        .map(|(m, k)| m * k)
                        .sum();
                }
                for &(x, m) in &self.ends {
                    let z = (y - x - mu) / s;
                    if libm::fabs(z) <= SDS_KEPT {
                        f += m * normal_pdf(z) / s;
                    }
                }
                lattice.push(f);
            }
            let (f_lo, f_hi) = (density_at(lo), density_at(hi));
            // Trapezoidal weights on lo, lattice…, hi.
            let xs: Vec<f64> = core::iter::once(lo)
                .chain((first..=last).map(|j| j as f64 * h))
                .chain(core::iter::once(hi))
                .collect();
            let weight = |i: usize| {
                let left = if i == 0 { xs[0] } else { xs[i - 1] };
                let right = if i + 1 == xs.len() { xs[i] } else { xs[i + 1] };
                0.5 * (right - left)
            };
            for (i, f) in lattice.iter_mut().enumerate() {
                *f *= weight(i + 1);
            }
            ends = vec![(lo, f_lo * weight(0)), (hi, f_hi * weight(xs.len() - 1))];
        }
        self.ends = ends;
        self.first = first;
        self.lattice = lattice;
        self.time = t;
        self.looks += 1;
        self.cumulative += exit;
    }

    /// Probability mass still running (for tests: `cumulative + running ≈ 1`).
    #[cfg(test)]
    fn running(&self) -> f64 {
        self.points().map(|(_, m)| m).sum()
    }
}

/// `φ(x)`.
fn normal_pdf(x: f64) -> f64 {
    // 1/√(2π)
    0.398_942_280_401_432_7 * libm::exp(-0.5 * x * x)
}

/// `Φ(x) = ½ erfc(−x/√2)`, accurate in both tails.
fn normal_cdf(x: f64) -> f64 {
    0.5 * libm::erfc(-x * core::f64::consts::FRAC_1_SQRT_2)
}

/// `1 − Φ(x)`.
fn normal_sf(x: f64) -> f64 {
    0.5 * libm::erfc(x * core::f64::consts::FRAC_1_SQRT_2)
}

/// `Φ⁻¹(p)` for `p` in (0, 1): Wichura (1988), algorithm AS 241 (`PPND16`), relative
/// accuracy about 10⁻¹⁶. Callers pass validated probabilities.
// The paper's coefficients, verbatim: more digits than an f64 holds, on purpose.
#[allow(clippy::excessive_precision)]
fn normal_quantile(p: f64) -> f64 {
    // Rational approximations in r = 0.180625 − q² (central region, |q| ≤ 0.425), and in
    // r = √(−ln min(p, 1−p)) − 1.6 (r ≤ 5) or − 5 (the far tail); coefficients from the
    // paper, lowest degree first.
    const A: [f64; 8] = [
        3.387_132_872_796_366_608,
        1.331_416_678_917_843_774_5e2,
        1.971_590_950_306_551_442_7e3,
        1.373_169_376_550_946_112_5e4,
        4.592_195_393_154_987_145_7e4,
        6.726_577_092_700_870_085_3e4,
        3.343_057_558_358_812_810_5e4,
        2.509_080_928_730_122_672_7e3,
    ];
    const B: [f64; 8] = [
        1.0,
        4.231_333_070_160_091_125_2e1,
        6.871_870_074_920_579_083e2,
        5.394_196_021_424_751_107_7e3,
        2.121_379_430_158_659_586_7e4,
        3.930_789_580_009_271_061e4,
        2.872_908_573_572_194_267_4e4,
        5.226_495_278_852_854_561e3,
    ];
    const C: [f64; 8] = [
        1.423_437_110_749_683_577_34,
        4.630_337_846_156_545_295_9,
        5.769_497_221_460_691_405_5,
        3.647_848_324_763_204_605_04,
        1.270_458_252_452_368_382_58,
        2.417_807_251_774_506_117_7e-1,
        2.272_384_498_926_918_458_33e-2,
        7.745_450_142_783_414_076_4e-4,
    ];
    const D: [f64; 8] = [
        1.0,
        2.053_191_626_637_758_821_87,
        1.676_384_830_183_803_849_4,
        6.897_673_349_851_000_045_5e-1,
        1.481_039_764_274_800_745_9e-1,
        1.519_866_656_361_645_719_66e-2,
        5.475_938_084_995_344_946e-4,
        1.050_750_071_644_416_843_24e-9,
    ];
    const E: [f64; 8] = [
        6.657_904_643_501_103_777_2,
        5.463_784_911_164_114_369_9,
        1.784_826_539_917_291_335_8,
        2.965_605_718_285_048_912_3e-1,
        2.653_218_952_657_612_309_3e-2,
        1.242_660_947_388_078_438_6e-3,
        2.711_555_568_743_487_578_15e-5,
        2.010_334_399_292_288_132_65e-7,
    ];
    const F: [f64; 8] = [
        1.0,
        5.998_322_065_558_879_376_9e-1,
        1.369_298_809_227_358_053_1e-1,
        1.487_536_129_085_061_485_25e-2,
        7.868_691_311_456_132_591e-4,
        1.846_318_317_510_054_681_8e-5,
        1.421_511_758_316_445_888_7e-7,
        2.044_263_103_389_939_785_64e-15,
    ];
    fn poly(c: &[f64; 8], x: f64) -> f64 {
        c.iter().rev().fold(0.0, |acc, &k| acc * x + k)
    }
    let q = p - 0.5;
    if libm::fabs(q) <= 0.425 {
        let r = 0.180_625 - q * q;
        return q * poly(&A, r) / poly(&B, r);
    }
    let tail = if q < 0.0 { p } else { 1.0 - p };
    let r = libm::sqrt(-libm::log(tail));
    let z = if r <= 5.0 {
        let r = r - 1.6;
        poly(&C, r) / poly(&D, r)
    } else {
        let r = r - 5.0;
        poly(&E, r) / poly(&F, r)
    };
    if q < 0.0 { -z } else { z }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(got: f64, want: f64, tol: f64, what: &str) {
        assert!(
            libm::fabs(got - want) <= tol,
            "{what}: got {got}, reference {want} (tolerance {tol})"
        );
    }

    fn input(baseline: f64, effect: f64, arms: u32, alpha: f64, power: f64) -> PlanInput {
        PlanInput {
            baseline_rate: baseline,
            minimum_detectable_effect: effect,
            arms,
            alpha,
            power,
            visitors_per_day: 1000,
            looks_per_day: 1,
            tau_squared: 1e-4,
        }
    }

    // ---- values from tests/reference/stats_planning.py ----

    /// (p, scipy.stats.norm.ppf(p))
    const QUANTILES: [(f64, f64); 14] = [
        (1e-300, -37.0470962993612),
        (1e-20, -9.262340089798409),
        (1e-12, -7.034483825301131),
        (1e-05, -4.264890793922825),
        (0.0125, -2.241402727604945),
        (0.025, -1.9599639845400545),
        (0.05, -1.6448536269514729),
        (0.1, -1.2815515655446004),
        (0.3, -0.5244005127080409),
        (0.5, 0.0),
        (0.8, 0.8416212335729143),
        (0.9, 1.2815515655446004),
        (0.975, 1.959963984540054),
        (0.99999, 4.264890793923841),
    ];

    /// (baseline, mde, arms, alpha, power, n per arm, power at n): statsmodels
    /// `samplesize_proportions_2indep_onetail` (rounded up) and `power_proportions_2indep`.
    const FIXED: [(f64, f64, u32, f64, f64, u64, f64); 5] = [
        (0.05, 0.1, 2, 0.05, 0.8, 31234, 0.8000080167256329),
        (0.1, 0.2, 2, 0.05, 0.8, 3841, 0.8000165286163737),
        (0.1, 0.2, 3, 0.05, 0.8, 4652, 0.800054074115156),
        (0.02, -0.15, 4, 0.1, 0.9, 46907, 0.900001612297165),
        (0.5, 0.02, 2, 0.01, 0.95, 89059, 0.9500013596759023),
    ];

    /// (baseline, mde, arms, alpha, n, power of one look at n): closed form.
    const ONE_LOOK: [(f64, f64, u32, f64, f64, f64); 3] = [
        (0.1, 0.2, 2, 0.05, 4000.0, 0.3465798899606178),
        (0.1, 0.2, 3, 0.05, 9000.0, 0.8314179136949016),
        (0.05, 0.1, 2, 0.05, 60000.0, 0.7509641381801923),
    ];

    type LooksRow = (f64, f64, u32, f64, u64, u32, f64, f64);

    /// (baseline, mde, arms, alpha, visitors/day, looks/day, n, power): 2·10⁶ simulated
    /// Gaussian paths (standard error ≤ 0.00035).
    const LOOKS: [LooksRow; 6] = [
        (0.1, 0.2, 2, 0.05, 400, 1, 4000.0, 0.398187),
        (0.1, 0.2, 2, 0.05, 400, 1, 8000.0, 0.872764),
        (0.1, 0.2, 2, 0.05, 400, 1, 3841.0, 0.3729435),
        (0.1, 0.2, 3, 0.05, 600, 1, 8000.0, 0.8040785),
        (0.05, 0.1, 2, 0.05, 10000, 4, 31250.0, 0.480401),
        (0.05, 0.1, 2, 0.05, 10000, 4, 62500.0, 0.842996),
    ];

    #[test]
    fn normal_quantile_matches_scipy_in_all_three_regions() {
        for (p, z) in QUANTILES {
            close(
                normal_quantile(p),
                z,
                1e-14 * libm::fabs(z).max(1.0),
                "quantile",
            );
        }
    }

    #[test]
    fn fixed_horizon_sizes_and_powers_match_statsmodels() {
        for (base, mde, arms, alpha, power, n, power_at_n) in FIXED {
            let plan = plan(&input(base, mde, arms, alpha, power)).unwrap();
            let f = plan.fixed_horizon;
            assert_eq!(f.visitors_per_arm, n, "n for {base} {mde} {arms}");
            assert_eq!(f.visitors_total, n * u64::from(arms));
            assert_eq!(f.days, (n * u64::from(arms)).div_ceil(1000));
            close(f.power, power_at_n, 1e-10, "power at n");
            // One visitor fewer is not enough: n is the smallest size.
            let before =
                fixed_horizon_power(&input(base, mde, arms, alpha, power), (n - 1) as f64).unwrap();
            assert!(before < power, "n − 1 already has power {before}");
            close(
                plan.alpha_per_comparison,
                alpha / f64::from(arms - 1),
                1e-15,
                "α'",
            );
        }
    }

    #[test]
    fn one_look_always_valid_power_matches_the_closed_form() {
        for (base, mde, arms, alpha, n, want) in ONE_LOOK {
            // One look per day and a day's traffic beyond n: the only look is at n.
            let mut i = input(base, mde, arms, alpha, 0.8);
            i.visitors_per_day = (n as u64 + 1) * u64::from(arms);
            close(always_valid_power(&i, n).unwrap(), want, 1e-12, "one look");
        }
    }

    #[test]
    fn many_look_always_valid_power_matches_simulated_gaussian_paths() {
        for (base, mde, arms, alpha, vpd, lpd, n, want) in LOOKS {
            let mut i = input(base, mde, arms, alpha, 0.8);
            i.visitors_per_day = vpd;
            i.looks_per_day = lpd;
            // 3.5 standard errors of the reference (measured: at most 3.1·10⁻⁴ apart).
            close(always_valid_power(&i, n).unwrap(), want, 0.0012, "looks");
        }
    }

    /// The extrapolated `s/4`–`s/8` power against the `s/8`–`s/16` one: the quadrature
    /// has converged well below the simulation references' standard error.
    #[test]
    fn the_extrapolated_quadrature_has_converged() {
        for (base, mde, arms, alpha, vpd, lpd, n, _) in LOOKS {
            let mut i = input(base, mde, arms, alpha, 0.8);
            i.visitors_per_day = vpd;
            i.looks_per_day = lpd;
            let setting = Setting::new(&i).unwrap();
            let step = setting.information(setting.visitors_per_arm_per_look());
            let t = setting.information(n);
            let at = |r: f64| Recursion::new(setting.walk(), step, r).power_at(t);
            let (p4, p8, p16) = (at(4.0), at(8.0), at(16.0));
            let used = Crossing::extrapolate(p4, p8);
            let finer = Crossing::extrapolate(p8, p16);
            close(used, finer, 2e-5, "extrapolations");
            // Plain trapezoids err low (conservative) and converge as h².
            assert!(p4 < p8 && p8 < p16 && p16 < finer + 1e-6, "{p4} {p8} {p16}");
        }
    }

    #[test]
    fn the_recursion_conserves_probability() {
        let setting = Setting::new(&input(0.1, 0.2, 2, 0.05, 0.8)).unwrap();
        let step = setting.information(200.0);
        let mut coarse = Recursion::new(setting.walk(), step, GRID_POINTS_PER_SD);
        let mut fine = Recursion::new(setting.walk(), step, 2.0 * GRID_POINTS_PER_SD);
        let mut worst = [0.0_f64; 3];
        for _ in 0..60 {
            coarse.advance();
            fine.advance();
            let total = |r: &Recursion| r.cumulative + r.running();
            let (c, f) = (total(&coarse), total(&fine));
            for (w, t) in worst.iter_mut().zip([c, f, Crossing::extrapolate(c, f)]) {
                *w = w.max(libm::fabs(t - 1.0));
            }
        }
        // Each lattice loses O(h²) of the mass that crosses (the trapezoidal rule's end
        // term where the density is cut at ±g): measured 4.1·10⁻³ (s/4) and 1.0·10⁻³ (s/8)
        // after 60 looks; the extrapolation leaves 9·10⁻⁶.
        assert!(
            worst[0] < 5e-3 && worst[1] < 1.5e-3 && worst[2] < 2e-5,
            "{worst:?}"
        );
    }

    /// With no effect the walk is the null: the chance of ever crossing is at most α'
    /// (Ville's inequality), and approaches it only slowly.
    #[test]
    fn without_an_effect_the_crossing_probability_stays_below_alpha() {
        let setting = Setting::new(&input(0.1, 0.2, 2, 0.05, 0.8)).unwrap();
        let mut walk = setting.walk();
        walk.theta = 0.0;
        walk.rho = 1.0;
        let mut r = Crossing::new(walk, setting.information(100.0));
        for _ in 0..200 {
            r.advance();
        }
        let p = r.cumulative();
        assert!(p > 0.01 && p < 0.05, "{p}");
    }

    /// Dropping every other look can only lower the power: the thinning of long plans is
    /// conservative.
    #[test]
    fn fewer_looks_never_give_more_power() {
        let setting = Setting::new(&input(0.1, 0.2, 2, 0.05, 0.8)).unwrap();
        let walk = setting.walk();
        let mut every = Crossing::new(walk, setting.information(100.0));
        let mut half = Crossing::new(walk, setting.information(200.0));
        let mut largest_gap = 0.0_f64;
        for _ in 0..30 {
            every.advance();
            every.advance();
            half.advance();
            let gap = every.cumulative() - half.cumulative();
            assert!(gap >= -1e-9, "{gap}");
            largest_gap = largest_gap.max(gap);
        }
        assert!(largest_gap > 0.01, "{largest_gap}");
    }

    #[test]
    fn the_always_valid_plan_is_the_first_look_with_the_power() {
        for (base, mde, arms, alpha, power, n, _) in FIXED {
            let mut i = input(base, mde, arms, alpha, power);
            // Two looks a day, about 15 days to the fixed horizon.
            i.visitors_per_day = n * u64::from(arms) / 15;
            i.looks_per_day = 2;
            let plan = plan(&i).unwrap();
            let a = plan.always_valid;
            assert!(a.power >= power, "{a:?}");
            let step = a.visitors_per_arm_per_look;
            close(
                a.visitors_per_arm as f64,
                libm::ceil(a.looks as f64 * step),
                1.0,
                "size",
            );
            let total = a.looks as f64 * step * f64::from(arms);
            close(a.visitors_total as f64, libm::ceil(total), 1.0, "total");
            let recomputed = always_valid_power(&i, a.looks as f64 * step).unwrap();
            close(recomputed, a.power, 1e-12, "recomputed power");
            assert_eq!(
                step,
                i.visitors_per_day as f64 / f64::from(2 * arms),
                "not thinned"
            );
            if a.looks > 1 {
                let earlier = always_valid_power(&i, (a.looks - 1) as f64 * step).unwrap();
                assert!(
                    earlier < power,
                    "look {} already had {earlier}",
                    a.looks - 1
                );
            }
            assert_eq!(a.days, a.looks.div_ceil(2));
            let at_fixed =
                always_valid_power(&i, plan.fixed_horizon.visitors_per_arm as f64).unwrap();
            close(
                a.power_at_fixed_horizon,
                at_fixed,
                1e-12,
                "power at fixed horizon",
            );
            // The price of peeking safely: more visitors than the fixed horizon needs.
            assert!(a.visitors_per_arm > plan.fixed_horizon.visitors_per_arm);
            assert!(a.power_at_fixed_horizon < power);
        }
    }

    #[test]
    fn long_plans_thin_their_looks_and_stay_bounded() {
        // 0.5% → 0.55% with 200 visitors a day: years of daily looks.
        let mut i = input(0.005, 0.1, 2, 0.05, 0.8);
        i.visitors_per_day = 200;
        let plan = plan(&i).unwrap();
        let a = plan.always_valid;
        assert!(a.looks <= MAX_MODELLED_LOOKS, "{a:?}");
        assert!(
            a.visitors_per_arm_per_look > 100.0,
            "looks were thinned: {a:?}"
        );
        assert!(a.power >= 0.8);
        assert!(plan.fixed_horizon.days > 1000, "{:?}", plan.fixed_horizon);
    }

    #[test]
    fn a_negative_effect_is_planned_like_a_positive_one() {
        let up = plan(&input(0.1, 0.1, 2, 0.05, 0.8)).unwrap();
        let down = plan(&input(0.11, -0.1 / 1.1, 2, 0.05, 0.8)).unwrap();
        // Same two rates, roles swapped: the pooled test is symmetric.
        assert_eq!(
            up.fixed_horizon.visitors_per_arm,
            down.fixed_horizon.visitors_per_arm
        );
        close(
            up.always_valid.power,
            down.always_valid.power,
            1e-9,
            "symmetric",
        );
    }

    #[test]
    fn invalid_inputs_are_refused_with_the_field_named() {
        let ok = input(0.1, 0.2, 2, 0.05, 0.8);
        let cases: [(PlanInput, PlanningError, &str); 14] = [
            (
                PlanInput {
                    baseline_rate: 0.0,
                    ..ok
                },
                PlanningError::BaselineRate(0.0),
                "rate 0",
            ),
            (
                PlanInput {
                    baseline_rate: 1.0,
                    ..ok
                },
                PlanningError::BaselineRate(1.0),
                "rate 1",
            ),
            (
                PlanInput {
                    minimum_detectable_effect: 0.0,
                    ..ok
                },
                PlanningError::MinimumDetectableEffect(0.0),
                "no effect",
            ),
            (
                PlanInput {
                    minimum_detectable_effect: -1.0,
                    ..ok
                },
                PlanningError::MinimumDetectableEffect(-1.0),
                "−100%",
            ),
            (
                PlanInput {
                    minimum_detectable_effect: 9.0,
                    ..ok
                },
                PlanningError::TreatmentRate {
                    baseline_rate: 0.1,
                    minimum_detectable_effect: 9.0,
                },
                "rate reaches 1",
            ),
            (
                PlanInput { arms: 1, ..ok },
                PlanningError::Arms(1),
                "one arm",
            ),
            (
                PlanInput {
                    arms: MAX_ARMS + 1,
                    ..ok
                },
                PlanningError::Arms(MAX_ARMS + 1),
                "arms",
            ),
            (
                PlanInput { alpha: 0.0, ..ok },
                PlanningError::Alpha(0.0),
                "alpha 0",
            ),
            (
                PlanInput { alpha: 0.6, ..ok },
                PlanningError::Alpha(0.6),
                "alpha 0.6",
            ),
            (
                PlanInput { power: 0.4, ..ok },
                PlanningError::Power(0.4),
                "power 0.4",
            ),
            (
                PlanInput { power: 1.0, ..ok },
                PlanningError::Power(1.0),
                "power 1",
            ),
            (
                PlanInput {
                    visitors_per_day: 0,
                    ..ok
                },
                PlanningError::VisitorsPerDay,
                "traffic",
            ),
            (
                PlanInput {
                    looks_per_day: 0,
                    ..ok
                },
                PlanningError::LooksPerDay(0),
                "looks",
            ),
            (
                PlanInput {
                    tau_squared: -1.0,
                    ..ok
                },
                PlanningError::TauSquared(-1.0),
                "tau",
            ),
        ];
        for (bad, want, what) in cases {
            assert_eq!(plan(&bad), Err(want), "{what}");
            assert_eq!(validate(&bad), [want], "{what}");
        }
        let tiny = PlanInput {
            minimum_detectable_effect: 1e-17,
            ..ok
        };
        assert_eq!(validate(&tiny), [PlanningError::EffectTooSmall]);
        let nan = PlanInput {
            baseline_rate: f64::NAN,
            ..ok
        };
        assert!(matches!(plan(&nan), Err(PlanningError::BaselineRate(p)) if p.is_nan()));
        let all = PlanInput {
            baseline_rate: 2.0,
            minimum_detectable_effect: f64::INFINITY,
            arms: 0,
            alpha: 1.0,
            power: 0.0,
            visitors_per_day: 0,
            looks_per_day: 25,
            tau_squared: 0.0,
        };
        let fields: Vec<&str> = validate(&all).iter().map(PlanningError::field).collect();
        assert_eq!(
            fields,
            [
                "baseline_rate",
                "minimum_detectable_effect",
                "arms",
                "alpha",
                "power",
                "visitors_per_day",
                "looks_per_day",
                "tau_squared"
            ]
        );
        assert_eq!(
            always_valid_power(&ok, 0.0),
            Err(PlanningError::VisitorsPerArm(0.0))
        );
    }

    #[test]
    fn an_effect_too_small_to_detect_is_refused() {
        assert_eq!(
            plan(&input(1e-6, 1e-4, 2, 0.05, 0.8)),
            Err(PlanningError::EffectTooSmall)
        );
    }

    /// The plans checked by simulating the engine's own tests on binomial visitor streams
    /// (the counts at each look are all either test sees). Agreement is required within
    /// 3.5 binomial standard errors of the simulated rate; seeds are fixed, so the
    /// outcome is deterministic. Measured (seed as committed): see docs/statistics.md.
    #[cfg(feature = "analysis")]
    mod simulation {
        use rand_chacha::ChaCha8Rng;
        use rand_core::SeedableRng;
        use rand_distr::{Binomial, Distribution};

        use super::*;
        use crate::stats::multiple::holm;
        use crate::stats::proportions::{Counts, two_proportion_z_test};
        use crate::stats::sequential::{DEFAULT_TAU_SQUARED, MsprtConfig, msprt};

        const REPLICATES: u32 = 4000;

        fn within(simulated: f64, planned: f64, replicates: u32, what: &str) {
            let se = libm::sqrt(planned * (1.0 - planned) / f64::from(replicates));
            std::eprintln!("{what}: simulated {simulated:.4}, planned {planned:.4}, se {se:.4}");
            assert!(
                libm::fabs(simulated - planned) <= 3.5 * se,
                "{what}: simulated {simulated}, planned {planned} (se {se})"
            );
        }

        fn draw(rng: &mut ChaCha8Rng, n: u64, p: f64) -> u64 {
            if n == 0 {
                return 0;
            }
            Binomial::new(n, p).unwrap().sample(rng)
        }

        fn counts(n: u64, x: u64) -> Counts {
            Counts::new(n, x).unwrap()
        }

        /// 10% → 12%, two arms, 200 visitors per arm a day, one look a day.
        fn two_arms() -> PlanInput {
            PlanInput {
                baseline_rate: 0.1,
                minimum_detectable_effect: 0.2,
                arms: 2,
                alpha: 0.05,
                power: 0.8,
                visitors_per_day: 400,
                looks_per_day: 1,
                tau_squared: DEFAULT_TAU_SQUARED,
            }
        }

        #[test]
        fn the_fixed_horizon_size_reaches_its_power_with_the_engines_z_test() {
            for (arms, seed) in [(2, 11), (3, 12)] {
                let input = PlanInput { arms, ..two_arms() };
                let plan = plan(&input).unwrap();
                let n = plan.fixed_horizon.visitors_per_arm;
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                let mut hits = 0u32;
                for _ in 0..REPLICATES {
                    let control = counts(n, draw(&mut rng, n, plan.control_rate));
                    let variant = counts(n, draw(&mut rng, n, plan.treatment_rate));
                    let p = two_proportion_z_test(control, variant).p_value;
                    hits += u32::from(p <= plan.alpha_per_comparison);
                }
                let rate = f64::from(hits) / f64::from(REPLICATES);
                within(rate, plan.fixed_horizon.power, REPLICATES, "fixed horizon");
            }
        }

        /// The engine's mSPRT with its running minimum, one look a day: how often it has
        /// rejected by the planned look and (a side look, not fed into the running
        /// minimum) at the fixed-horizon size.
        #[test]
        fn the_always_valid_size_reaches_its_power_with_the_engines_msprt() {
            let input = two_arms();
            let plan = plan(&input).unwrap();
            let a = plan.always_valid;
            let per_look = input.visitors_per_day / 2;
            let fixed_n = plan.fixed_horizon.visitors_per_arm;
            let config = MsprtConfig {
                tau_squared: input.tau_squared,
                alpha: plan.alpha_per_comparison,
            };
            let mut rng = ChaCha8Rng::seed_from_u64(13);
            let (mut by_plan, mut by_fixed) = (0u32, 0u32);
            for _ in 0..REPLICATES {
                let (mut n, mut xa, mut xb) = (0u64, 0u64, 0u64);
                let mut previous = None;
                let (mut rejected, mut rejected_at_fixed) = (false, false);
                for _ in 0..a.looks {
                    let next = n + per_look;
                    if n < fixed_n && fixed_n <= next {
                        // Grow the streams to the fixed size and look there on the side.
                        xa += draw(&mut rng, fixed_n - n, plan.control_rate);
                        xb += draw(&mut rng, fixed_n - n, plan.treatment_rate);
                        n = fixed_n;
                        let side = msprt(counts(n, xa), counts(n, xb), previous, config).unwrap();
                        rejected_at_fixed = side.reject;
                    }
                    xa += draw(&mut rng, next - n, plan.control_rate);
                    xb += draw(&mut rng, next - n, plan.treatment_rate);
                    n = next;
                    let r = msprt(counts(n, xa), counts(n, xb), previous, config).unwrap();
                    previous = Some(r.p_value);
                    rejected |= r.reject;
                    if n < fixed_n {
                        rejected_at_fixed |= r.reject;
                    }
                }
                by_plan += u32::from(rejected);
                by_fixed += u32::from(rejected_at_fixed);
            }
            let reps = f64::from(REPLICATES);
            within(
                f64::from(by_plan) / reps,
                a.power,
                REPLICATES,
                "always valid, planned size",
            );
            within(
                f64::from(by_fixed) / reps,
                a.power_at_fixed_horizon,
                REPLICATES,
                "always valid, fixed-horizon size",
            );
        }

        /// Three arms, one variant with the effect and one without, decided as `analyze`
        /// does: Holm over the running-minimum p-values at family-wise α. The plan's
        /// Bonferroni level is what the simulated Bonferroni decision reaches, and Holm
        /// detects the variant at least as often.
        #[test]
        fn with_three_arms_holm_detects_at_least_the_planned_power() {
            let input = PlanInput {
                arms: 3,
                visitors_per_day: 600,
                ..two_arms()
            };
            let plan = plan(&input).unwrap();
            let a = plan.always_valid;
            let per_look = 200;
            let config = MsprtConfig {
                tau_squared: input.tau_squared,
                alpha: input.alpha,
            };
            let replicates = REPLICATES / 2;
            let mut rng = ChaCha8Rng::seed_from_u64(14);
            let (mut bonferroni, mut by_holm) = (0u32, 0u32);
            for _ in 0..replicates {
                let (mut n, mut x) = (0u64, [0u64; 3]);
                let mut previous = [None, None];
                let (mut b, mut h) = (false, false);
                for _ in 0..a.looks {
                    n += per_look;
                    let rates = [plan.control_rate, plan.treatment_rate, plan.control_rate];
                    for (x, p) in x.iter_mut().zip(rates) {
                        *x += draw(&mut rng, per_look, p);
                    }
                    for v in 0..2 {
                        let r = msprt(counts(n, x[0]), counts(n, x[v + 1]), previous[v], config)
                            .unwrap();
                        previous[v] = Some(r.p_value);
                    }
                    let p = [previous[0].unwrap(), previous[1].unwrap()];
                    b |= p[0] <= plan.alpha_per_comparison;
                    h |= holm(&p).unwrap()[0] <= input.alpha;
                }
                bonferroni += u32::from(b);
                by_holm += u32::from(h);
            }
            let reps = f64::from(replicates);
            within(
                f64::from(bonferroni) / reps,
                a.power,
                replicates,
                "three arms, Bonferroni",
            );
            assert!(by_holm >= bonferroni);
            std::eprintln!("three arms, Holm: {:.4}", f64::from(by_holm) / reps);
        }
    }
}
