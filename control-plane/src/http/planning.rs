//! Experiment planning: `GET /planning/sample-size` (any signed-in member, viewer and up).
//!
//! Given a baseline conversion rate, the smallest relative lift worth detecting, the
//! number of arms and the daily traffic, answers how many visitors and days each of the
//! results page's two tests needs — the fixed-horizon z-test and the always-valid mSPRT
//! the page decides with — and what power the always-valid test has at the fixed-horizon
//! size. The numbers are the engine's (`samplit_engine::stats::planning`, formulas in
//! its docs and in `docs/statistics.md`), computed with the settings the results page
//! uses (`AnalysisConfig::default()`: α and the mSPRT's τ²).
//!
//! A GET with query parameters, not a POST: the computation is safe and idempotent
//! (RFC 9110 §9.2.1–2), so the console can link to or bookmark a plan and nothing is
//! written. A malformed query (a non-number, an unknown parameter) is a 400; values out
//! of range are a 422 with one field error per parameter at fault. The plan runs on the
//! blocking pool: the boundary-crossing recursion takes up to tens of milliseconds.

use samplit_engine::stats::analyze::AnalysisConfig;
use samplit_engine::stats::planning::{
    self, AlwaysValidPlan, DEFAULT_LOOKS_PER_DAY, DEFAULT_POWER, FixedHorizonPlan, Plan, PlanInput,
    PlanningError,
};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::RequireRole;
use crate::auth::roles::Viewer;
use crate::error::{ApiError, ApiResult, FieldError, Problem};
use crate::extract::Query;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(sample_size))
}

/// What to plan for.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SampleSizeQuery {
    /// The control's conversion rate, in (0, 1), e.g. `0.05`.
    pub baseline_rate: f64,
    /// The smallest relative lift worth detecting: `0.1` = +10%, `-0.1` = −10%. Nonzero,
    /// above −1, and the variant's rate `baseline_rate × (1 + effect)` must be in (0, 1).
    pub minimum_detectable_effect: f64,
    /// Visitors entering the experiment per day, all arms together (≥ 1).
    pub visitors_per_day: u64,
    /// Arms including the control, 2 to 256 (default 2); traffic is split equally.
    pub arms: Option<u32>,
    /// Family-wise significance level, in (0, 0.5] (default: the results page's, 0.05).
    pub alpha: Option<f64>,
    /// Wanted probability of detecting the effect, 0.5 to 0.999 (default 0.8).
    pub power: Option<f64>,
    /// How often per day someone looks at the results (1 to 24, default 1). Each look
    /// updates the always-valid p-value; more looks can only raise its power.
    pub looks_per_day: Option<u32>,
}

impl TryFrom<SampleSizeQuery> for PlanInput {
    type Error = ApiError;

    /// Fills the defaults and checks every value, reporting all faults at once.
    fn try_from(q: SampleSizeQuery) -> Result<Self, Self::Error> {
        let analysis = AnalysisConfig::default();
        let input = PlanInput {
            baseline_rate: q.baseline_rate,
            minimum_detectable_effect: q.minimum_detectable_effect,
            arms: q.arms.unwrap_or(2),
            alpha: q.alpha.unwrap_or(analysis.alpha),
            power: q.power.unwrap_or(DEFAULT_POWER),
            visitors_per_day: q.visitors_per_day,
            looks_per_day: q.looks_per_day.unwrap_or(DEFAULT_LOOKS_PER_DAY),
            tau_squared: analysis.tau_squared,
        };
        let errors = planning::validate(&input);
        if errors.is_empty() {
            Ok(input)
        } else {
            Err(ApiError::Validation(
                errors.iter().map(field_error).collect(),
            ))
        }
    }
}

fn field_error(e: &PlanningError) -> FieldError {
    FieldError {
        field: e.field().to_owned(),
        message: e.to_string(),
    }
}

/// The values the plan was computed with (defaults filled in).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PlanAssumptions {
    pub baseline_rate: f64,
    pub minimum_detectable_effect: f64,
    pub arms: u32,
    pub alpha: f64,
    pub power: f64,
    pub visitors_per_day: u64,
    pub looks_per_day: u32,
    /// The mSPRT mixing variance τ² of the results page.
    pub tau_squared: f64,
}

/// The fixed-horizon pooled z-test: valid at one look, at the planned size.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FixedHorizonView {
    /// Visitors each arm needs.
    pub visitors_per_arm: u64,
    /// All arms together.
    pub visitors_total: u64,
    /// Days to collect `visitors_total` at `visitors_per_day`.
    pub days: u64,
    /// Power at `visitors_per_arm` (at least the requested power; the size is rounded up).
    pub power: f64,
}

/// The always-valid mSPRT the results page decides with: valid however often one looks.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AlwaysValidView {
    /// Visitors per arm at the first look by which the test has detected the effect with
    /// at least the requested power (it often stops earlier).
    pub visitors_per_arm: u64,
    /// All arms together at that look (`arms × visitors_per_arm` but for rounding: a
    /// day's share per arm can be fractional).
    pub visitors_total: u64,
    /// Days until that look.
    pub days: u64,
    /// Power reached by that look.
    pub power: f64,
    /// Power reached if the experiment stops at the fixed-horizon size.
    pub power_at_fixed_horizon: f64,
    /// Looks modelled up to `visitors_per_arm`.
    pub looks: u64,
    /// Visitors per arm between two modelled looks; larger than a day's share divided by
    /// `looks_per_day` when a long plan's looks were thinned (then power is a lower bound).
    pub visitors_per_arm_per_look: f64,
}

/// A sample-size and duration plan for both tests.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SampleSizePlan {
    pub assumptions: PlanAssumptions,
    /// The variant's rate with the effect, `baseline_rate × (1 + minimum_detectable_effect)`.
    pub treatment_rate: f64,
    /// The variant's rate minus the baseline.
    pub absolute_effect: f64,
    /// Variant-versus-control comparisons, `arms − 1`.
    pub comparisons: u32,
    /// `alpha / comparisons`: each comparison is planned at this Bonferroni level, a
    /// conservative bound for the Holm adjustment the results page applies.
    pub alpha_per_comparison: f64,
    pub fixed_horizon: FixedHorizonView,
    pub always_valid: AlwaysValidView,
}

impl SampleSizePlan {
    fn new(input: &PlanInput, plan: Plan) -> Self {
        let FixedHorizonPlan {
            visitors_per_arm,
            visitors_total,
            days,
            power,
        } = plan.fixed_horizon;
        let a: AlwaysValidPlan = plan.always_valid;
        Self {
            assumptions: PlanAssumptions {
                baseline_rate: input.baseline_rate,
                minimum_detectable_effect: input.minimum_detectable_effect,
                arms: input.arms,
                alpha: input.alpha,
                power: input.power,
                visitors_per_day: input.visitors_per_day,
                looks_per_day: input.looks_per_day,
                tau_squared: input.tau_squared,
            },
            treatment_rate: plan.treatment_rate,
            absolute_effect: plan.absolute_effect,
            comparisons: plan.comparisons,
            alpha_per_comparison: plan.alpha_per_comparison,
            fixed_horizon: FixedHorizonView {
                visitors_per_arm,
                visitors_total,
                days,
                power,
            },
            always_valid: AlwaysValidView {
                visitors_per_arm: a.visitors_per_arm,
                visitors_total: a.visitors_total,
                days: a.days,
                power: a.power,
                power_at_fixed_horizon: a.power_at_fixed_horizon,
                looks: a.looks,
                visitors_per_arm_per_look: a.visitors_per_arm_per_look,
            },
        }
    }
}

/// Visitors, days and power for the fixed-horizon and the always-valid test.
#[utoipa::path(
    get, path = "/planning/sample-size", tag = "planning",
    params(SampleSizeQuery),
    responses(
        (status = 200, description = "The plan", body = SampleSizePlan),
        (status = 400, description = "Malformed query: a missing or non-numeric value, an unknown parameter", body = Problem),
        (status = 401, description = "Not authenticated", body = Problem),
        (status = 422, description = "A value out of range (one field error per parameter), or an effect too small to plan for", body = Problem),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(skip_all, fields(org_id = %actor.org_id))]
async fn sample_size(
    RequireRole { actor, .. }: RequireRole<Viewer>,
    Query(query): Query<SampleSizeQuery>,
) -> ApiResult<axum::Json<SampleSizePlan>> {
    let input = PlanInput::try_from(query)?;
    let plan = tokio::task::spawn_blocking(move || planning::plan(&input))
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        // Validated above, so only `EffectTooSmall` remains: a 422 on the effect.
        .map_err(|e| ApiError::Validation(vec![field_error(&e)]))?;
    Ok(axum::Json(SampleSizePlan::new(&input, plan)))
}
