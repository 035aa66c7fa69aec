//! # What to do next: keep collecting, deploy a winner, or stop with no difference
//!
//! The rule combines the always-valid test (type-I error control under continuous
//! monitoring), the Bayesian summaries (which arm, and how much is at stake), a minimum
//! sample, and the SRM guard. In order:
//!
//! 1. **Minimum sample** — every arm has at least `min_visitors` (default 100) visitors
//!    and `min_conversions` (default 10) conversions. Below that the normal
//!    approximations behind the tests are poor and one conversion swings the posterior.
//!    Otherwise: `KeepCollecting { MinimumSample }`.
//! 2. **SRM** — a sample-ratio mismatch means the data are suspect: no verdict at all,
//!    `KeepCollecting { SampleRatioMismatch }` (it blocks a winner and "no difference").
//! 3. **Winner** — let `b` be the arm with the highest chance to be best.
//!    - `b` is a variant: its Holm-adjusted always-valid p-value against the control is
//!      ≤ α with a positive difference, `P(b best) ≥ min_chance_to_be_best` (0.95), and
//!      its expected loss ≤ `max_expected_loss_relative` (1%) × the control's posterior
//!      mean rate;
//!    - `b` is the control: every variant is significantly worse, and the same two
//!      Bayesian conditions hold.
//!
//!    Then `DeployWinner { arm: b }`. The frequentist condition controls false winners;
//!    the Bayesian ones stop a "significant" but uncertain ranking among several variants.
//! 4. **No difference** — no variant is significantly better than the control and the
//!    expected loss of keeping the control is ≤ the same 1%-of-control threshold: what
//!    could still be gained is negligible (the "expected loss" stopping rule of the
//!    Bayesian A/B literature, e.g. Stucchio 2015, "Bayesian A/B Testing at VWO",
//!    <https://vwo.com/downloads/VWO_SmartStats_technical_whitepaper.pdf>).
//! 5. Otherwise `KeepCollecting { NotConclusive }`.
//!
//! **Guardrails** ([`with_guardrails`], applied after the rule by whoever has the
//! guardrails' verdicts, see [`guardrail`](super::guardrail)): a `DeployWinner` for a
//! variant that harms a guardrail becomes `GuardrailHarmed { arm, guardrail }` — do not
//! deploy it as it is; the primary goal's gain costs more than the guardrail's owner
//! tolerates. Every other recommendation stands (keeping the control harms nothing).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why the experiment should keep running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WaitReason {
    /// Some arm is below the minimum sample.
    MinimumSample,
    /// The traffic split does not match the allocation.
    SampleRatioMismatch,
    /// Not enough evidence either way yet.
    NotConclusive,
}

/// The recommendation shown on the results page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Recommendation {
    /// Keep the experiment running.
    KeepCollecting {
        /// Why.
        reason: WaitReason,
    },
    /// Stop and deploy this arm (index into the analysed arms).
    DeployWinner {
        /// Index of the winning arm.
        arm: usize,
    },
    /// Stop: the arms do not differ by anything worth having.
    NoDifference,
    /// The arm that would win harms a guardrail: do not deploy it.
    GuardrailHarmed {
        /// Index of the arm the rule would deploy.
        arm: usize,
        /// Index of the (first) harmed guardrail, in the order they were given.
        guardrail: usize,
    },
}

/// Thresholds of the rule (defaults in the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DecisionRule {
    /// Minimum visitors per arm.
    pub min_visitors: u64,
    /// Minimum conversions per arm.
    pub min_conversions: u64,
    /// Minimum chance to be best of a winner.
    pub min_chance_to_be_best: f64,
    /// Largest acceptable expected loss, relative to the control's posterior mean rate.
    pub max_expected_loss_relative: f64,
}

impl Default for DecisionRule {
    fn default() -> Self {
        Self {
            min_visitors: 100,
            min_conversions: 10,
            min_chance_to_be_best: 0.95,
            max_expected_loss_relative: 0.01,
        }
    }
}

/// Why a recommendation could not be made.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RecommendError {
    /// Fewer than 2 arms.
    TooFewArms,
    /// The control index is out of range.
    InvalidControl(usize),
    /// A threshold is NaN or out of range (probabilities in [0, 1], loss ≥ 0).
    InvalidRule,
    /// A chance, loss or mean that is NaN or out of range, at this arm.
    InvalidEvidence(usize),
}

impl fmt::Display for RecommendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooFewArms => write!(f, "a recommendation needs at least 2 arms"),
            Self::InvalidControl(c) => write!(f, "control index {c} is out of range"),
            Self::InvalidRule => write!(f, "decision rule thresholds out of range"),
            Self::InvalidEvidence(i) => write!(f, "arm {i}: evidence out of range"),
        }
    }
}

impl std::error::Error for RecommendError {}

/// What the rule needs to know about one arm.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ArmEvidence {
    /// Visitors.
    pub visitors: u64,
    /// Conversions.
    pub conversions: u64,
    /// Chance to be best.
    pub chance_to_be_best: f64,
    /// Expected loss (rate units).
    pub expected_loss: f64,
    /// Posterior mean rate.
    pub posterior_mean: f64,
    /// Versus the control (ignored for the control): the Holm-adjusted always-valid test
    /// rejects at α.
    pub significant: bool,
    /// Versus the control: `p̂_arm − p̂_control`.
    pub difference: f64,
}

/// Applies the rule described in the module docs.
pub fn recommend(
    arms: &[ArmEvidence],
    control: usize,
    srm_mismatch: bool,
    rule: &DecisionRule,
) -> Result<Recommendation, RecommendError> {
    if arms.len() < 2 {
        return Err(RecommendError::TooFewArms);
    }
    if control >= arms.len() {
        return Err(RecommendError::InvalidControl(control));
    }
    let prob = |p: f64| (0.0..=1.0).contains(&p);
    if !(prob(rule.min_chance_to_be_best)
        && rule.max_expected_loss_relative.is_finite()
        && rule.max_expected_loss_relative >= 0.0)
    {
        return Err(RecommendError::InvalidRule);
    }
    for (i, a) in arms.iter().enumerate() {
        let ok = prob(a.chance_to_be_best)
            && a.expected_loss.is_finite()
            && a.expected_loss >= 0.0
            && prob(a.posterior_mean)
            && a.difference.is_finite();
        if !ok {
            return Err(RecommendError::InvalidEvidence(i));
        }
    }

    if arms
        .iter()
        .any(|a| a.visitors < rule.min_visitors || a.conversions < rule.min_conversions)
    {
        return Ok(Recommendation::KeepCollecting {
            reason: WaitReason::MinimumSample,
        });
    }
    if srm_mismatch {
        return Ok(Recommendation::KeepCollecting {
            reason: WaitReason::SampleRatioMismatch,
        });
    }

    let loss_threshold = rule.max_expected_loss_relative * arms[control].posterior_mean;
    let mut best = 0;
    for (i, a) in arms.iter().enumerate() {
        if a.chance_to_be_best > arms[best].chance_to_be_best {
            best = i;
        }
    }
    let bayes_ok = arms[best].chance_to_be_best >= rule.min_chance_to_be_best
        && arms[best].expected_loss <= loss_threshold;
    let variants = || arms.iter().enumerate().filter(move |(i, _)| *i != control);
    let frequentist_ok = if best == control {
        variants().all(|(_, a)| a.significant && a.difference < 0.0)
    } else {
        arms[best].significant && arms[best].difference > 0.0
    };
    if bayes_ok && frequentist_ok {
        return Ok(Recommendation::DeployWinner { arm: best });
    }

    let any_better = variants().any(|(_, a)| a.significant && a.difference > 0.0);
    if !any_better && arms[control].expected_loss <= loss_threshold {
        return Ok(Recommendation::NoDifference);
    }
    Ok(Recommendation::KeepCollecting {
        reason: WaitReason::NotConclusive,
    })
}

/// The recommendation once the guardrails have had their say: `harmed[i]` is the first
/// guardrail arm `i` harms (None for the control and for arms that harm none; a shorter
/// slice means no guardrail for the arms past its end). Only a `DeployWinner` changes.
pub fn with_guardrails(recommendation: Recommendation, harmed: &[Option<usize>]) -> Recommendation {
    match recommendation {
        Recommendation::DeployWinner { arm } => match harmed.get(arm).copied().flatten() {
            Some(guardrail) => Recommendation::GuardrailHarmed { arm, guardrail },
            None => recommendation,
        },
        other => other,
    }
}
