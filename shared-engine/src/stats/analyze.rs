//! # One call per results page
//!
//! [`analyze`] takes each arm's aggregates — visitors, conversions, revenue moments,
//! propensity sum, the previous always-valid p-value — and returns everything the
//! results page shows, plus the SRM check and the [`Recommendation`]. Input and output
//! are serde types, so the control plane can pass them through its API as they are.
//!
//! Per variant (compared with the control): the mSPRT always-valid p-value (raw),
//! adjusted by Holm (used for the decision) and by Benjamini–Hochberg (shown), the
//! fixed-horizon z-test p-value (for reference only: not valid under repeated looks),
//! the lift with its interval, and Welch's test on revenue per visitor. Per arm: the
//! rate with its Wilson interval, the Beta posterior (prior `Beta(prior_alpha,
//! prior_beta)`, default `Beta(1, 1)`) with its credible interval, chance to be best and
//! expected loss, and the revenue mean with its t-interval.

use std::fmt;
use std::string::String;
use std::vec::Vec;

use serde::{Deserialize, Serialize};

use super::bayes::{self, BayesError};
use super::continuous::{self, ContinuousError, Moments, Summary};
use super::multiple::{self, MultipleError};
use super::proportions::{self, Counts, Interval, Lift, ProportionError};
use super::recommend::{self, ArmEvidence, DecisionRule, RecommendError, Recommendation};
use super::sequential::{self, DEFAULT_TAU_SQUARED, MsprtConfig, SequentialError};
use super::srm::{self, DEFAULT_SRM_THRESHOLD, SrmError, SrmResult};

/// Aggregates of one arm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArmInput {
    /// The arm's id (echoed back).
    pub arm_id: String,
    /// Visitors exposed.
    pub visitors: u64,
    /// Visitors who converted (≤ visitors).
    pub conversions: u64,
    /// Revenue per visitor moments; `n` is normally `visitors` (zeros included).
    pub revenue: Moments,
    /// Sum, over all exposures of the experiment, of the propensity this arm had then
    /// (expected exposure count; for a fixed split `visitors_total × share`).
    pub propensity_sum: f64,
    /// The always-valid p-value returned by the previous analysis (for the running
    /// minimum); None on the first look or for the control.
    #[serde(default)]
    pub previous_sequential_p_value: Option<f64>,
}

/// Analysis settings; every field has a default.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AnalysisConfig {
    /// Confidence / credible level of intervals.
    pub confidence_level: f64,
    /// Significance level α of the sequential test (family-wise, via Holm).
    pub alpha: f64,
    /// mSPRT mixing variance τ².
    pub tau_squared: f64,
    /// Beta prior α (pseudo-conversions).
    pub prior_alpha: f64,
    /// Beta prior β (pseudo-non-conversions).
    pub prior_beta: f64,
    /// SRM p-value threshold.
    pub srm_threshold: f64,
    /// Recommendation thresholds.
    pub rule: DecisionRule,
}

impl Default for AnalysisConfig {
    fn default() -> Self {
        Self {
            confidence_level: 0.95,
            alpha: 0.05,
            tau_squared: DEFAULT_TAU_SQUARED,
            prior_alpha: 1.0,
            prior_beta: 1.0,
            srm_threshold: DEFAULT_SRM_THRESHOLD,
            rule: DecisionRule::default(),
        }
    }
}

/// The input of [`analyze`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalysisInput {
    /// All arms, control included.
    pub arms: Vec<ArmInput>,
    /// Index of the control in `arms`.
    pub control: usize,
    /// Settings.
    #[serde(default)]
    pub config: AnalysisConfig,
}

/// Variant-versus-control statistics.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Relative and absolute lift with interval; None while the control has no conversion.
    pub lift: Option<Lift>,
    /// Always-valid mSPRT p-value (store it and pass it back next time).
    pub sequential_p_value: f64,
    /// Holm-adjusted always-valid p-value (the decision uses this).
    pub p_value_holm: f64,
    /// Benjamini–Hochberg adjusted always-valid p-value.
    pub p_value_bh: f64,
    /// `p_value_holm ≤ alpha`.
    pub significant: bool,
    /// Fixed-horizon pooled z-test p-value (reference only; invalid under peeking).
    pub z_test_p_value: f64,
    /// Welch's test on revenue per visitor; None with fewer than 2 observations.
    pub revenue_welch: Option<continuous::WelchTest>,
}

/// Everything the results page shows for one arm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArmResult {
    /// The arm's id.
    pub arm_id: String,
    /// Visitors.
    pub visitors: u64,
    /// Conversions.
    pub conversions: u64,
    /// Observed conversion rate.
    pub rate: f64,
    /// Wilson interval of the rate.
    pub rate_interval: Interval,
    /// Posterior mean rate.
    pub posterior_mean: f64,
    /// Equal-tailed credible interval of the rate.
    pub credible_interval: Interval,
    /// Chance to be best.
    pub chance_to_be_best: f64,
    /// Expected loss of choosing this arm (rate units).
    pub expected_loss: f64,
    /// Revenue per visitor: mean, variance, interval; None with fewer than 2 observations.
    pub revenue: Option<Summary>,
    /// Against the control; None for the control itself.
    pub comparison: Option<Comparison>,
}

/// The output of [`analyze`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalysisOutput {
    /// Per arm, in input order.
    pub arms: Vec<ArmResult>,
    /// Index of the control.
    pub control: usize,
    /// Sample-ratio-mismatch check.
    pub srm: SrmResult,
    /// What to do next.
    pub recommendation: Recommendation,
}

/// Why an analysis could not be made.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AnalyzeError {
    /// Fewer than 2 arms.
    TooFewArms,
    /// More arms than [`bayes::MAX_ARMS`].
    TooManyArms,
    /// The control index is out of range.
    InvalidControl(usize),
    /// A setting out of range.
    InvalidConfig(&'static str),
    /// Counts of this arm are invalid.
    Counts(usize, ProportionError),
    /// Revenue moments of this arm are invalid.
    Revenue(usize, ContinuousError),
    /// The Bayesian computation failed.
    Bayes(BayesError),
    /// The sequential test failed at this arm.
    Sequential(usize, SequentialError),
    /// The SRM check failed.
    Srm(SrmError),
    /// Adjustment failed.
    Multiple(MultipleError),
    /// The recommendation failed.
    Recommend(RecommendError),
}

impl fmt::Display for AnalyzeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooFewArms => write!(f, "an analysis needs at least 2 arms"),
            Self::TooManyArms => write!(f, "at most {} arms", bayes::MAX_ARMS),
            Self::InvalidControl(c) => write!(f, "control index {c} is out of range"),
            Self::InvalidConfig(what) => write!(f, "invalid setting: {what}"),
            Self::Counts(i, e) => write!(f, "arm {i}: {e}"),
            Self::Revenue(i, e) => write!(f, "arm {i} revenue: {e}"),
            Self::Bayes(e) => write!(f, "{e}"),
            Self::Sequential(i, e) => write!(f, "arm {i}: {e}"),
            Self::Srm(e) => write!(f, "{e}"),
            Self::Multiple(e) => write!(f, "{e}"),
            Self::Recommend(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for AnalyzeError {}

fn check_config(c: &AnalysisConfig) -> Result<(), AnalyzeError> {
    let open_unit = |v: f64| v > 0.0 && v < 1.0;
    if !open_unit(c.confidence_level) {
        return Err(AnalyzeError::InvalidConfig(
            "confidence_level must be in (0, 1)",
        ));
    }
    if !open_unit(c.alpha) {
        return Err(AnalyzeError::InvalidConfig("alpha must be in (0, 1)"));
    }
    if !(c.tau_squared.is_finite() && c.tau_squared > 0.0) {
        return Err(AnalyzeError::InvalidConfig(
            "tau_squared must be finite and > 0",
        ));
    }
    let positive = |v: f64| v.is_finite() && v > 0.0;
    if !(positive(c.prior_alpha) && positive(c.prior_beta)) {
        return Err(AnalyzeError::InvalidConfig(
            "prior parameters must be finite and > 0",
        ));
    }
    if !open_unit(c.srm_threshold) {
        return Err(AnalyzeError::InvalidConfig(
            "srm_threshold must be in (0, 1)",
        ));
    }
    Ok(())
}

/// Analyses an experiment's arms. See the module docs for what is computed.
pub fn analyze(input: &AnalysisInput) -> Result<AnalysisOutput, AnalyzeError> {
    let cfg = &input.config;
    check_config(cfg)?;
    let k = input.arms.len();
    if k < 2 {
        return Err(AnalyzeError::TooFewArms);
    }
    if k > bayes::MAX_ARMS {
        return Err(AnalyzeError::TooManyArms);
    }
    let control = input.control;
    if control >= k {
        return Err(AnalyzeError::InvalidControl(control));
    }
    let counts = input
        .arms
        .iter()
        .enumerate()
        .map(|(i, a)| {
            Counts::new(a.visitors, a.conversions).map_err(|e| AnalyzeError::Counts(i, e))
        })
        .collect::<Result<Vec<_>, _>>()?;

    // Bayesian side.
    let posteriors: Vec<(f64, f64)> = counts
        .iter()
        .map(|c| {
            (
                cfg.prior_alpha + c.conversions() as f64,
                cfg.prior_beta + (c.visitors() - c.conversions()) as f64,
            )
        })
        .collect();
    let best = bayes::best_arm(&posteriors).map_err(AnalyzeError::Bayes)?;

    // Sequential tests of each variant against the control, then adjustments.
    let variants: Vec<usize> = (0..k).filter(|&i| i != control).collect();
    let msprt_cfg = MsprtConfig {
        tau_squared: cfg.tau_squared,
        alpha: cfg.alpha,
    };
    let mut raw = Vec::with_capacity(variants.len());
    for &i in &variants {
        let r = sequential::msprt(
            counts[control],
            counts[i],
            input.arms[i].previous_sequential_p_value,
            msprt_cfg,
        )
        .map_err(|e| AnalyzeError::Sequential(i, e))?;
        raw.push(r.p_value);
    }
    let holm = multiple::holm(&raw).map_err(AnalyzeError::Multiple)?;
    let bh = multiple::benjamini_hochberg(&raw).map_err(AnalyzeError::Multiple)?;

    // SRM on exposures against propensity sums.
    let observed: Vec<u64> = counts.iter().map(Counts::visitors).collect();
    let weights: Vec<f64> = input.arms.iter().map(|a| a.propensity_sum).collect();
    let srm = srm::sample_ratio_mismatch(&observed, &weights, cfg.srm_threshold)
        .map_err(AnalyzeError::Srm)?;

    let revenue_summary = |i: usize| -> Result<Option<Summary>, AnalyzeError> {
        let m = input.arms[i].revenue;
        match continuous::summarize(m, cfg.confidence_level) {
            Ok(s) => Ok(Some(s)),
            Err(ContinuousError::TooFewObservations(_)) => Ok(None),
            Err(e) => Err(AnalyzeError::Revenue(i, e)),
        }
    };

    let mut arms = Vec::with_capacity(k);
    let mut evidence = Vec::with_capacity(k);
    for i in 0..k {
        let c = counts[i];
        let (a, b) = posteriors[i];
        let (lo, hi) =
            bayes::credible_interval(a, b, cfg.confidence_level).map_err(AnalyzeError::Bayes)?;
        let comparison = match variants.iter().position(|&v| v == i) {
            None => None,
            Some(slot) => {
                let welch = match continuous::welch_t_test(
                    input.arms[control].revenue,
                    input.arms[i].revenue,
                ) {
                    Ok(w) => Some(w),
                    Err(ContinuousError::TooFewObservations(_)) => None,
                    Err(e) => return Err(AnalyzeError::Revenue(i, e)),
                };
                Some(Comparison {
                    lift: proportions::lift(counts[control], c, cfg.confidence_level)
                        .map_err(|e| AnalyzeError::Counts(i, e))?,
                    sequential_p_value: raw[slot],
                    p_value_holm: holm[slot],
                    p_value_bh: bh[slot],
                    significant: holm[slot] <= cfg.alpha,
                    z_test_p_value: proportions::two_proportion_z_test(counts[control], c).p_value,
                    revenue_welch: welch,
                })
            }
        };
        let posterior_mean = a / (a + b);
        evidence.push(ArmEvidence {
            visitors: c.visitors(),
            conversions: c.conversions(),
            chance_to_be_best: best.chance_to_be_best[i],
            expected_loss: best.expected_loss[i],
            posterior_mean,
            significant: comparison.is_some_and(|x| x.significant),
            difference: c.rate() - counts[control].rate(),
        });
        arms.push(ArmResult {
            arm_id: input.arms[i].arm_id.clone(),
            visitors: c.visitors(),
            conversions: c.conversions(),
            rate: c.rate(),
            rate_interval: proportions::wilson_interval(c, cfg.confidence_level)
                .map_err(|e| AnalyzeError::Counts(i, e))?,
            posterior_mean,
            credible_interval: Interval {
                lower: lo,
                upper: hi,
            },
            chance_to_be_best: best.chance_to_be_best[i],
            expected_loss: best.expected_loss[i],
            revenue: revenue_summary(i)?,
            comparison,
        });
    }
    let recommendation = recommend::recommend(&evidence, control, srm.mismatch, &cfg.rule)
        .map_err(AnalyzeError::Recommend)?;
    Ok(AnalysisOutput {
        arms,
        control,
        srm,
        recommendation,
    })
}
