//! # Statistics
//!
//! What the results page and the Thompson allocator compute from per-arm aggregates.
//!
//! Layout:
//! - [`bayes`] (always compiled, `no_std` + `libm`): Beta posteriors — regularized
//!   incomplete beta, quantiles and credible intervals, the probability that each arm is
//!   best (exact numerical integration) and the expected loss of choosing each arm. The
//!   allocator uses it for propensities, so it must build for `wasm32-unknown-unknown`.
//! - [`planning`] (always compiled, `no_std` + `libm`): sample size, duration and power
//!   before an experiment starts, for the fixed-horizon z-test and for the always-valid
//!   mSPRT the results decide with.
//! - Behind feature `analysis` (std + `statrs`), the frequentist side used by the control
//!   plane:
//!   - [`proportions`]: conversion rate, Wilson interval, relative lift with a log-ratio
//!     interval, pooled two-proportion z-test;
//!   - [`continuous`]: mean / variance / t-interval from `(n, Σx, Σx²)`, Welch's t-test;
//!   - [`sequential`]: mSPRT always-valid p-values (safe under continuous monitoring);
//!   - [`srm`]: sample-ratio-mismatch chi-square test;
//!   - [`multiple`]: Holm and Benjamini–Hochberg adjustments;
//!   - [`cuped`]: variance reduction (CUPED within post-strata) with its always-valid
//!     p-value;
//!   - [`guardrail`]: always-valid non-inferiority verdicts on guardrail metrics;
//!   - [`funnel`]: ordered funnel steps per arm (greedy in-order reach within a window),
//!     Newcombe interval and z-test of each step against the control, Holm-adjusted;
//!   - [`recommend`]: the KeepCollecting / DeployWinner / NoDifference rule, and the
//!     guardrails' veto on a winner;
//!   - [`analyze`](mod@analyze): the one call the control plane makes per results page.
//!
//! Formulas and references are in each module's docs and in `docs/statistics.md`.

#[cfg(feature = "analysis")]
pub mod analyze;
pub mod bayes;
#[cfg(feature = "analysis")]
pub mod continuous;
#[cfg(feature = "analysis")]
pub mod cuped;
#[cfg(feature = "analysis")]
pub mod funnel;
#[cfg(feature = "analysis")]
pub mod guardrail;
#[cfg(feature = "analysis")]
pub mod multiple;
pub mod planning;
#[cfg(feature = "analysis")]
pub mod proportions;
#[cfg(feature = "analysis")]
pub mod recommend;
#[cfg(feature = "analysis")]
pub mod sequential;
#[cfg(feature = "analysis")]
pub mod srm;
