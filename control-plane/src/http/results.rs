//! Results of an experiment, computed from the per-arm aggregates with the shared engine
//! (`samplit_engine::stats::analyze`), and its real daily time series.
//!
//! - `GET /experiments/{id}/results?goal_id=` (viewer+; default: the primary goal):
//!   one engine analysis per comparison set — all arms for a single-element or factorial
//!   experiment, each element's arms for an independent multi-element one, and for a
//!   factorial one also each element's main effect (its variants, each pooled over the
//!   combinations of the other elements: visitors, conversions, revenue moments and
//!   expected exposures add up). The engine's output is returned as it is, beside the
//!   labels of its subjects, so the page shows exactly what the engine computed.
//! - `GET /experiments/{id}/timeseries?goal_id=`: per arm and UTC day, new visitors,
//!   new converters, revenue, and the cumulative rate, over a gap-free day range.
//! - `GET /experiments/{id}/results/export?format=csv|xlsx` (see [`crate::export`]).
//! - `GET /experiments/headlines?ids=` (viewer+): for each live experiment of the caller's
//!   organisation among `ids`, a line of the list page ([`Headline`]), read off the same
//!   [`compute`] the results answer with, on the primary goal.
//!
//! SRM expected shares: the fixed-split weights (allocator weights, else variant
//! weights), or for Thompson sampling the expected exposures accumulated at ingestion from
//! the logged propensities. Always-valid p-values are kept as a running minimum per
//! (goal, scope, subject) in `sequential_p_values`, passed back to the engine each look.
//!
//! Each engine analysis runs on the blocking pool (`spawn_blocking`), never on an async
//! worker thread: its integrals (and Monte Carlo fallback) are CPU work.

use std::collections::{BTreeMap, HashMap};

use axum::extract::State;
use samplit_engine::stats::analyze::{
    AnalysisConfig, AnalysisInput, AnalysisOutput, ArmInput, analyze,
};
use samplit_engine::stats::continuous::Moments;
use samplit_engine::stats::cuped::{
    self, COVARIATE_CAP, CellMoments, CupedInput, CupedOutput, MIN_STRATUM_VISITORS,
    MixingVariance, StratumInput,
};
use samplit_engine::stats::guardrail::{
    Direction, Guardrail, GuardrailStatus, non_inferiority, rate_moments,
};
use samplit_engine::stats::proportions::Interval;
use samplit_engine::stats::recommend::{Recommendation, with_guardrails};
use samplit_engine::stats::sequential::DEFAULT_TAU_SQUARED;
use serde::{Deserialize, Serialize};
use time::Date;
use utoipa_axum::router::OpenApiRouter;
use uuid::Uuid;

use crate::auth::RequireRole;
use crate::auth::roles::Viewer;
use crate::db::results::{self as db, ArmAggregateRow, ExperimentRow, GoalRow, VariantRow};
use crate::db::segments::{self as segments_db, CupedCell};
use crate::domain::Status;
use crate::domain::experiment::{AllocatorSpec, Metric};
use crate::error::{ApiError, ApiResult};
use crate::export::{Cell, ExportFormat, Table};
use crate::extract::{PathId, Query};
use crate::state::AppState;
use samplit_engine::multi::Mode;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(utoipa_axum::routes!(get_results))
        .routes(utoipa_axum::routes!(get_timeseries))
        .routes(utoipa_axum::routes!(export_results))
        .routes(utoipa_axum::routes!(experiment_headlines))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct GoalQuery {
    /// The goal to analyse; default: the experiment's primary goal.
    pub goal_id: Option<Uuid>,
}

/// The goal a result is about (`ResultsGoal` in the OpenAPI document: the experiments
/// API has its own, fuller `GoalView`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = ResultsGoal)]
pub struct GoalView {
    pub id: Uuid,
    pub name: String,
    pub metric: Metric,
}

/// What one engine analysis compared.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SubjectView {
    /// Arm id, or variant id in a main-effect analysis.
    pub id: Uuid,
    pub name: String,
    pub is_control: bool,
    /// The share of visitors it should get (SRM's expectation), normalised.
    pub expected_share: f64,
    /// Revenue summed over its visitors (0 for a conversion goal).
    pub revenue_sum: f64,
    /// Whether it runs custom code (a `custom_css` or `custom_js` change in its variant,
    /// or in one of its combination's variants): its effect is not only the visual
    /// changes shown in the editor.
    pub custom_code: bool,
    /// Its verdict on each guardrail goal of the experiment (by goal name; the goal
    /// analysed itself left out) against the control; empty for the control.
    pub guardrails: Vec<ArmGuardrailView>,
}

/// One arm's verdict on one guardrail goal (`samplit_engine::stats::guardrail`): is it
/// worse than the control by more than the goal's margin?
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ArmGuardrailView {
    pub goal_id: Uuid,
    pub name: String,
    /// `conversion` (judged on the rate) or `revenue` (on revenue per visitor).
    pub metric: Metric,
    /// `harmed` (worse than the control by more than the margin, with always-valid
    /// confidence 1 − α), `not_inferior` (worse by less than the margin at most) or
    /// `inconclusive`.
    #[schema(value_type = String)]
    pub status: GuardrailStatus,
    /// The relative margin (0.05 = 5 %).
    pub margin: f64,
    /// `higher_is_better` or `lower_is_better`.
    #[schema(value_type = String)]
    pub direction: Direction,
    /// `arm / control − 1` of the metric; null while the control's is 0.
    pub relative_difference: Option<f64>,
    /// Always-valid 95 % interval of `relative_difference`, `{"lower", "upper"}`.
    #[schema(value_type = Option<Object>)]
    pub interval: Option<Interval>,
    /// Always-valid p-value of "no worse than the margin" (`harmed` when ≤ 0.05).
    pub p_value: f64,
    /// The arm's and the control's value of the metric (rate, or revenue per visitor).
    pub arm_value: f64,
    pub control_value: f64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AnalysisView {
    /// `arms` (every arm), `element` (one element's arms, independent experiments) or
    /// `main_effect` (one element's variants pooled over the others, factorial).
    pub scope: &'static str,
    pub element_id: Option<Uuid>,
    pub element_name: Option<String>,
    /// In the order of `result.arms`.
    pub subjects: Vec<SubjectView>,
    /// The engine's `AnalysisOutput`: per arm rate and Wilson interval, posterior mean and
    /// credible interval, chance to be best, expected loss, revenue per visitor; per
    /// variant lift with interval, always-valid p-value raw / Holm / BH, z-test p-value,
    /// Welch test on revenue; SRM; recommendation. None when it could not be computed.
    #[schema(value_type = Option<Object>)]
    pub result: Option<AnalysisOutput>,
    /// Why `result` is missing (e.g. fewer than 2 arms).
    pub error: Option<String>,
    /// For a `guardrail_harmed` recommendation (`result.recommendation`, after the
    /// guardrails: `{"action": "guardrail_harmed", "arm": <index>, "guardrail": <index
    /// into that subject's guardrails>}`), the reason in a sentence with the figures.
    pub recommendation_reason: Option<String>,
    /// The same subjects compared after variance reduction (CUPED within post-strata; a
    /// `main_effect` variant pools the strata moments of the combinations that show it);
    /// null without a control. Beside the unadjusted numbers above, which (and the
    /// recommendation) it does not change.
    pub variance_reduction: Option<VarianceReductionView>,
}

/// Variance reduction of one analysis (`samplit_engine::stats::cuped`,
/// docs/statistics.md "Variance reduction (CUPED and post-stratification)").
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct VarianceReductionView {
    /// `cuped_post_stratified`.
    pub method: &'static str,
    /// The pre-exposure covariates regressed on: `prior_conversions`, `prior_visits`.
    pub covariates: [&'static str; 2],
    /// Each covariate is capped at this value (unknown counts as 0).
    pub covariate_cap: f64,
    /// A stratum is kept when every arm has at least this many visitors in it.
    pub min_stratum_visitors: u64,
    /// The engine's `CupedOutput`, in the order of `subjects`: `strata` (the
    /// stratification used: name, fine members, visitors per arm, weight, slope `theta`),
    /// `arms` (unadjusted and adjusted mean and variance, null with fewer than 2 visitors
    /// in a stratum), `comparisons` (against the control, null for it: adjusted
    /// `difference` with `interval`, `relative_lift` with `relative_interval`, the
    /// unadjusted difference and interval, `variance_reduction` = 1 − adjusted variance /
    /// unadjusted variance, always-valid `p_value` and `reject`). Null on error.
    #[schema(value_type = Option<Object>)]
    pub result: Option<CupedOutput>,
    /// Why `result` is missing.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ResultsView {
    pub experiment_id: Uuid,
    pub name: String,
    pub kind: String,
    pub status: Status,
    pub goal: GoalView,
    /// The currency revenue is counted in (the site's, ISO 4217; null until an install or
    /// the first event names one). Revenue in any other currency is refused at ingest, so
    /// no figure here adds two currencies.
    pub currency: Option<String>,
    /// `fixed_weights` or `logged_propensities`: where SRM's expected shares come from.
    pub srm_expected_from: &'static str,
    /// Exposures that claimed another arm than the visitor's (not counted).
    pub conflicting_exposures: i64,
    pub analyses: Vec<AnalysisView>,
}

/// Per-arm and per-element results of an experiment on a goal.
#[utoipa::path(
    get,
    path = "/experiments/{id}/results",
    tag = "results",
    params(("id" = Uuid, Path, description = "Experiment id"), GoalQuery),
    responses(
        (status = 200, description = "Results", body = ResultsView),
        (status = 401, description = "Not authenticated", body = crate::error::Problem),
        (status = 404, description = "No such experiment or goal in your organisation", body = crate::error::Problem),
        (status = 422, description = "No goal given and no primary goal", body = crate::error::Problem),
    ),
    security(("bearer" = []))
)]
async fn get_results(
    State(state): State<AppState>,
    RequireRole { actor, .. }: RequireRole<Viewer>,
    PathId(id): PathId,
    Query(q): Query<GoalQuery>,
) -> ApiResult<axum::Json<ResultsView>> {
    let (experiment, goal) = load(&state, actor.org_id, id, q.goal_id).await?;
    Ok(axum::Json(compute(&state, experiment, goal).await?))
}

/// The experiment `id` of organisation `org_id` and the goal to analyse (`goal_id`, or
/// the primary goal).
pub async fn load(
    state: &AppState,
    org_id: Uuid,
    id: Uuid,
    goal_id: Option<Uuid>,
) -> ApiResult<(ExperimentRow, GoalRow)> {
    let experiment = db::experiment_in_org(&state.pool, org_id, id)
        .await?
        .ok_or(ApiError::NotFound("experiment"))?;
    let goal = db::goal_of(&state.pool, id, goal_id).await?;
    match (goal, goal_id) {
        (Some(goal), _) => Ok((experiment, goal)),
        (None, Some(_)) => Err(ApiError::NotFound("goal")),
        (None, None) => Err(ApiError::validation(
            "goal_id",
            "the experiment has no primary goal; pass goal_id",
        )),
    }
}

/// Most experiment ids one `GET /experiments/headlines` takes.
pub const MAX_HEADLINES: usize = 50;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HeadlinesQuery {
    /// Experiment ids, comma-separated, at most 50 (a repeated id is answered once).
    #[param(required = true)]
    pub ids: Option<String>,
}

/// An arm named by a headline.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HeadlineArm {
    pub arm_id: Uuid,
    pub name: String,
}

/// The arm most likely to be best, and that chance.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HeadlineLeader {
    pub arm_id: Uuid,
    pub name: String,
    pub chance_to_be_best: f64,
}

/// One experiment's line in the list: the first analysis of its results on the primary
/// goal (`analyses[0]` of `GET /experiments/{id}/results`: every arm, or the first
/// element's arms in an independent experiment), reduced to what the list shows.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Headline {
    pub experiment_id: Uuid,
    /// The primary goal analysed.
    pub goal_id: Uuid,
    /// Visitors of the analysed arms (0 when there is no analysis).
    pub visitors: u64,
    /// The first arm with the highest chance to be best; null without an analysis.
    pub leader: Option<HeadlineLeader>,
    /// The analysis' sample-ratio-mismatch flag (`result.srm.mismatch`).
    pub srm_mismatch: bool,
    /// The analysis' recommendation, as the results give it (`{"action":
    /// "deploy_winner", "arm": <index>}`, `{"action": "keep_collecting", "reason": …}` or
    /// `{"action": "no_difference"}`); null without an analysis.
    #[schema(value_type = Option<Object>)]
    pub recommendation: Option<samplit_engine::stats::recommend::Recommendation>,
    /// The arm a `deploy_winner` recommendation names (its `arm` is an index).
    pub recommended_arm: Option<HeadlineArm>,
    /// Why there is no analysis (the results' `analyses[0].error`).
    pub error: Option<String>,
}

impl Headline {
    /// The headline of a computed result (see [`Headline`]).
    pub fn of(view: &ResultsView) -> Self {
        let analysis = view.analyses.first();
        let arm = |i: usize| {
            analysis
                .and_then(|a| a.subjects.get(i))
                .map(|s| HeadlineArm {
                    arm_id: s.id,
                    name: s.name.clone(),
                })
        };
        let mut headline = Self {
            experiment_id: view.experiment_id,
            goal_id: view.goal.id,
            visitors: 0,
            leader: None,
            srm_mismatch: false,
            recommendation: None,
            recommended_arm: None,
            error: None,
        };
        let Some(result) = analysis.and_then(|a| a.result.as_ref()) else {
            headline.error = Some(
                analysis
                    .and_then(|a| a.error.clone())
                    .unwrap_or_else(|| "the experiment has nothing to analyse".to_owned()),
            );
            return headline;
        };
        headline.visitors = result.arms.iter().map(|a| a.visitors).sum();
        // The first arm of the highest chance, as the results page reads it.
        let leader =
            result
                .arms
                .iter()
                .enumerate()
                .fold(None::<usize>, |best, (i, a)| match best {
                    Some(b) if result.arms[b].chance_to_be_best >= a.chance_to_be_best => Some(b),
                    _ => Some(i),
                });
        headline.leader = leader.and_then(|i| {
            arm(i).map(|a| HeadlineLeader {
                arm_id: a.arm_id,
                name: a.name,
                chance_to_be_best: result.arms[i].chance_to_be_best,
            })
        });
        headline.srm_mismatch = result.srm.mismatch;
        headline.recommendation = Some(result.recommendation);
        headline.recommended_arm = match result.recommendation {
            samplit_engine::stats::recommend::Recommendation::DeployWinner { arm: i } => arm(i),
            _ => None,
        };
        headline
    }
}

/// The experiment ids of `ids` (comma-separated), each once, in order: 422 naming `ids`
/// when it is missing, holds more than [`MAX_HEADLINES`] or something that is not a UUID.
fn headline_ids(ids: Option<&str>) -> ApiResult<Vec<Uuid>> {
    let text = ids.ok_or_else(|| {
        ApiError::validation("ids", "ids is required: experiment ids, comma-separated")
    })?;
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let parts: Vec<&str> = text.split(',').collect();
    if parts.len() > MAX_HEADLINES {
        return Err(ApiError::validation(
            "ids",
            format!("at most {MAX_HEADLINES} ids at once (got {})", parts.len()),
        ));
    }
    let mut out = Vec::with_capacity(parts.len());
    for (i, part) in parts.iter().enumerate() {
        let id = Uuid::try_parse(part.trim()).map_err(|_| {
            ApiError::validation("ids", format!("id {} of the list is not a UUID", i + 1))
        })?;
        if !out.contains(&id) {
            out.push(id);
        }
    }
    Ok(out)
}

/// The list's headlines of some experiments: visitors, leader and its chance to be best,
/// SRM flag and recommendation, each from the experiment's results on its primary goal.
/// Only live experiments (not drafts) of your organisation with a primary goal answer;
/// any other id is left out, never an error.
#[utoipa::path(
    get,
    path = "/experiments/headlines",
    tag = "results",
    params(HeadlinesQuery),
    responses(
        (status = 200, description = "One headline per live experiment found, in the order asked", body = Vec<Headline>),
        (status = 401, description = "Not authenticated", body = crate::error::Problem),
        (status = 422, description = "ids missing, over 50, or not UUIDs", body = crate::error::Problem),
    ),
    security(("bearer" = []))
)]
async fn experiment_headlines(
    State(state): State<AppState>,
    RequireRole { actor, .. }: RequireRole<Viewer>,
    Query(q): Query<HeadlinesQuery>,
) -> ApiResult<axum::Json<Vec<Headline>>> {
    let ids = headline_ids(q.ids.as_deref())?;
    if ids.is_empty() {
        return Ok(axum::Json(Vec::new()));
    }
    let experiments = db::live_experiments_in_org(&state.pool, actor.org_id, &ids).await?;
    let mut out = Vec::with_capacity(experiments.len());
    // One after the other: each is a few small reads and an analysis on the blocking
    // pool; a page of 20 rows must not take 20 connections and threads at once.
    for experiment in experiments {
        let Some(goal) = db::goal_of(&state.pool, experiment.id, None).await? else {
            continue; // no primary goal: its results need a goal_id, so no headline
        };
        let view = compute(&state, experiment, goal).await?;
        out.push(Headline::of(&view));
    }
    Ok(axum::Json(out))
}

/// (scope, element id, element name, subjects) of one analysis.
type ComparisonSet = (&'static str, Option<Uuid>, Option<String>, Vec<Subject>);

/// One subject of an analysis with its aggregates.
#[derive(Debug, Clone)]
struct Subject {
    id: Uuid,
    name: String,
    is_control: bool,
    visitors: u64,
    conversions: u64,
    revenue: Moments,
    /// Expected exposures (any positive scale).
    expected: f64,
    /// Runs custom code (see [`SubjectView::custom_code`]).
    custom_code: bool,
}

/// Computes every analysis of the experiment (also used by the export).
pub async fn compute(
    state: &AppState,
    experiment: ExperimentRow,
    goal: GoalRow,
) -> ApiResult<ResultsView> {
    let arms = db::arm_aggregates(&state.pool, experiment.id, goal.id).await?;
    let currency = db::site_currency(&state.pool, experiment.site_id).await?;
    let variants = db::variants_of(&state.pool, experiment.id).await?;
    let thompson = matches!(experiment.allocator.0, AllocatorSpec::Thompson(_));
    let sets = comparison_sets(
        &experiment,
        &arms,
        &variants,
        goal.metric == Metric::Revenue,
    );
    // Each guardrail goal's aggregates, in the same comparison sets (same subjects, same
    // order), so the verdicts line up with the analysis of `goal`.
    let mut guardrails = Vec::new();
    for g in db::guardrails_of(&state.pool, experiment.id).await? {
        if g.id == goal.id {
            continue;
        }
        let definition = guardrail_of(&g)?;
        let rows = db::arm_aggregates(&state.pool, experiment.id, g.id).await?;
        let g_sets = comparison_sets(&experiment, &rows, &variants, g.metric == Metric::Revenue);
        guardrails.push((g, definition, g_sets));
    }

    let alpha = AnalysisConfig::default().alpha;
    let arm_ids: Vec<Uuid> = arms.iter().map(|a| a.arm_id).collect();
    let cuped_cells = segments_db::cuped_cells(&state.pool, &arm_ids, goal.id).await?;
    let mut analyses = Vec::with_capacity(sets.len());
    for (set_index, (scope, element_id, element_name, subjects)) in sets.into_iter().enumerate() {
        let scope_key = match element_id {
            Some(e) => format!("{scope}:{e}"),
            None => scope.to_owned(),
        };
        let previous: HashMap<Uuid, f64> = db::previous_p_values(&state.pool, goal.id, &scope_key)
            .await?
            .into_iter()
            .collect();
        // Which subject each arm's stratum cells count for: the arm itself, or, for a
        // main effect, the element's variant the arm (a combination) shows.
        let owners: HashMap<Uuid, usize> = if scope == "main_effect" {
            arms.iter()
                .filter_map(|a| {
                    subjects
                        .iter()
                        .position(|s| a.variant_ids.contains(&s.id))
                        .map(|i| (a.arm_id, i))
                })
                .collect()
        } else {
            subjects
                .iter()
                .enumerate()
                .map(|(i, s)| (s.id, i))
                .collect()
        };
        let variance_reduction = variance_reduction(
            state,
            &goal,
            &scope_key,
            &subjects,
            &owners,
            &cuped_cells,
            alpha,
        )
        .await?;
        let input = analysis_input(&subjects, &previous);
        let total_expected: f64 = subjects.iter().map(|s| s.expected).sum();
        let verdicts = guardrail_verdicts(&subjects, set_index, &guardrails, alpha)?;
        let views: Vec<SubjectView> = subjects
            .iter()
            .zip(verdicts)
            .map(|(s, guardrails)| SubjectView {
                id: s.id,
                name: s.name.clone(),
                is_control: s.is_control,
                expected_share: if total_expected > 0.0 {
                    s.expected / total_expected
                } else {
                    1.0 / subjects.len() as f64
                },
                revenue_sum: s.revenue.sum,
                custom_code: s.custom_code,
                guardrails,
            })
            .collect();
        // Exact integrals and, as a fallback, Monte Carlo: CPU work that must not hold an
        // async worker thread (other requests would wait behind it).
        let analysed = tokio::task::spawn_blocking(move || analyze(&input))
            .await
            .map_err(|e| ApiError::Internal(e.into()))?;
        let (result, error) = match analysed {
            Ok(mut out) => {
                // Only lower minima are written: a look that changes nothing (the usual
                // case between two ingested batches' worth of data) costs no write.
                let (ids, ps): (Vec<Uuid>, Vec<f64>) = subjects
                    .iter()
                    .zip(&out.arms)
                    .filter_map(|(s, a)| a.comparison.map(|c| (s.id, c.sequential_p_value)))
                    .filter(|(id, p)| previous.get(id).is_none_or(|old| p < old))
                    .unzip();
                db::store_p_values(&state.pool, goal.id, &scope_key, &ids, &ps).await?;
                // The guardrails' veto: a winner that harms one is not deployed.
                let harmed: Vec<Option<usize>> = views
                    .iter()
                    .map(|v| {
                        v.guardrails
                            .iter()
                            .position(|g| g.status == GuardrailStatus::Harmed)
                    })
                    .collect();
                out.recommendation = with_guardrails(out.recommendation, &harmed);
                (Some(out), None)
            }
            Err(e) => (None, Some(e.to_string())),
        };
        let recommendation_reason = result
            .as_ref()
            .and_then(|r| harm_reason(&goal.name, r.recommendation, &views));
        analyses.push(AnalysisView {
            scope,
            element_id,
            element_name,
            subjects: views,
            result,
            error,
            recommendation_reason,
            variance_reduction,
        });
    }
    Ok(ResultsView {
        experiment_id: experiment.id,
        name: experiment.name,
        kind: experiment.kind.as_str().to_owned(),
        status: experiment.status,
        goal: GoalView {
            id: goal.id,
            name: goal.name,
            metric: goal.metric,
        },
        currency,
        srm_expected_from: if thompson {
            "logged_propensities"
        } else {
            "fixed_weights"
        },
        conflicting_exposures: arms.iter().map(|a| a.conflicting_exposures).sum(),
        analyses,
    })
}

/// The always-valid p-values of the adjusted comparisons are kept apart from the
/// unadjusted ones: scope `cuped:<analysis scope>` in `sequential_p_values`.
fn cuped_scope(scope_key: &str) -> String {
    format!("cuped:{scope_key}")
}

/// The CUPED input of one analysis' subjects from the stratum cells of the experiment's
/// arms: one fine stratum per stored value, its group the visitor type; `y` is converted
/// (0/1) for a conversion goal, the revenue total for a revenue goal. `owners` maps an
/// arm to the subject its cells count for (the moments are sums, so a main effect's
/// variant adds up the cells of the combinations that show it, as its unadjusted counts
/// do). `None` without a control.
fn cuped_input(
    subjects: &[Subject],
    owners: &HashMap<Uuid, usize>,
    cells: &[CupedCell],
    metric: Metric,
    previous: &HashMap<Uuid, f64>,
    alpha: f64,
) -> Option<CupedInput> {
    let control = subjects.iter().position(|s| s.is_control)?;
    let mut strata: BTreeMap<&str, Vec<CellMoments>> = BTreeMap::new();
    for c in cells {
        let Some(&i) = owners.get(&c.arm_id) else {
            continue;
        };
        let (sum_y, sum_yy, sum_xy) = match metric {
            Metric::Conversion => (
                c.converters as f64,
                c.converters as f64,
                [c.converters_x1, c.converters_x2],
            ),
            Metric::Revenue => (c.revenue_sum, c.revenue_sumsq, [c.revenue_x1, c.revenue_x2]),
        };
        strata
            .entry(&c.stratum)
            .or_insert_with(|| vec![CellMoments::default(); subjects.len()])[i]
            .add(&CellMoments {
                n: u64::try_from(c.visitors).unwrap_or(0),
                sum_x: [c.x1_sum, c.x2_sum],
                sum_xx: [c.x1_sumsq, c.x1x2_sum, c.x2_sumsq],
                sum_y,
                sum_yy,
                sum_xy,
            });
    }
    Some(CupedInput {
        strata: strata
            .into_iter()
            .map(|(name, arms)| StratumInput {
                name: name.to_owned(),
                group: name.split('/').next().unwrap_or(name).to_owned(),
                arms,
            })
            .collect(),
        control,
        previous_p_values: subjects
            .iter()
            .map(|s| previous.get(&s.id).copied())
            .collect(),
        alpha,
        // The conversion test's τ (one percentage point); for revenue, whose scale is the
        // shop's, τ = 5 % of the pooled mean.
        mixing: match metric {
            Metric::Conversion => MixingVariance::Absolute(DEFAULT_TAU_SQUARED),
            Metric::Revenue => MixingVariance::Relative(0.05),
        },
        min_stratum_visitors: MIN_STRATUM_VISITORS,
    })
}

/// The variance-reduced comparison of one analysis' arms, its running-minimum p-values
/// read and (lower ones) stored under [`cuped_scope`].
async fn variance_reduction(
    state: &AppState,
    goal: &GoalRow,
    scope_key: &str,
    subjects: &[Subject],
    owners: &HashMap<Uuid, usize>,
    cells: &[CupedCell],
    alpha: f64,
) -> ApiResult<Option<VarianceReductionView>> {
    let scope = cuped_scope(scope_key);
    let previous: HashMap<Uuid, f64> = db::previous_p_values(&state.pool, goal.id, &scope)
        .await?
        .into_iter()
        .collect();
    let Some(input) = cuped_input(subjects, owners, cells, goal.metric, &previous, alpha) else {
        return Ok(None);
    };
    // The strata must hold exactly the visitors the unadjusted analysis counts: visitors
    // ingested before migration 0026 have no stratum row, and comparing two different
    // populations would misreport the reduction.
    let covered: u64 = input
        .strata
        .iter()
        .flat_map(|s| s.arms.iter().map(|c| c.n))
        .sum();
    let total: u64 = subjects.iter().map(|s| s.visitors).sum();
    let adjusted = if covered == total {
        cuped::adjust(&input).map_err(|e| e.to_string())
    } else {
        Err(format!(
            "the variance-reduction strata hold {covered} of the {total} visitors \
             (visitors ingested before it existed): not computed"
        ))
    };
    let (result, error) = match adjusted {
        Ok(out) => {
            let (ids, ps): (Vec<Uuid>, Vec<f64>) = subjects
                .iter()
                .zip(&out.comparisons)
                .filter_map(|(s, c)| c.map(|c| (s.id, c.p_value)))
                .filter(|(id, p)| previous.get(id).is_none_or(|old| p < old))
                .unzip();
            db::store_p_values(&state.pool, goal.id, &scope, &ids, &ps).await?;
            (Some(out), None)
        }
        Err(e) => (None, Some(e)),
    };
    Ok(Some(VarianceReductionView {
        method: "cuped_post_stratified",
        covariates: ["prior_conversions", "prior_visits"],
        covariate_cap: COVARIATE_CAP,
        min_stratum_visitors: MIN_STRATUM_VISITORS,
        result,
        error,
    }))
}

/// A guardrail goal with its definition and its aggregates in the comparison sets.
type GuardrailSets = (GoalRow, Guardrail, Vec<ComparisonSet>);

/// A stored guardrail goal's definition (the table's CHECKs make it valid; a row they let
/// through that the engine refuses is an error, never skipped).
fn guardrail_of(g: &GoalRow) -> ApiResult<Guardrail> {
    let direction = g
        .guardrail_direction
        .as_deref()
        .and_then(Direction::parse)
        .ok_or_else(|| {
            ApiError::Internal(anyhow::anyhow!("goal {}: stored guardrail direction", g.id))
        })?;
    Guardrail::new(g.guardrail_margin.unwrap_or(f64::NAN), direction)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("goal {}: {e}", g.id)))
}

/// A guardrail metric of a subject: revenue per visitor for a revenue goal, the
/// conversion rate (mean of 0/1 values) otherwise; and its value.
fn guardrail_moments(s: &Subject, metric: Metric) -> (Moments, f64) {
    let m = match metric {
        Metric::Revenue => Moments {
            n: s.visitors,
            ..s.revenue
        },
        Metric::Conversion => rate_moments(s.visitors, s.conversions),
    };
    let value = if m.n > 0 { m.sum / m.n as f64 } else { 0.0 };
    (m, value)
}

/// Every subject's verdict on each guardrail goal in comparison set `set_index` (empty
/// for the control).
fn guardrail_verdicts(
    subjects: &[Subject],
    set_index: usize,
    guardrails: &[GuardrailSets],
    alpha: f64,
) -> ApiResult<Vec<Vec<ArmGuardrailView>>> {
    let mut out: Vec<Vec<ArmGuardrailView>> = vec![Vec::new(); subjects.len()];
    for (goal, definition, sets) in guardrails {
        let Some((_, _, _, g_subjects)) = sets.get(set_index) else {
            continue;
        };
        let Some(control) = g_subjects
            .iter()
            .position(|s| s.is_control)
            .or((!g_subjects.is_empty()).then_some(0))
        else {
            continue;
        };
        let (control_moments, control_value) = guardrail_moments(&g_subjects[control], goal.metric);
        for (i, s) in g_subjects.iter().enumerate() {
            if i == control || subjects.get(i).is_none_or(|x| x.id != s.id) {
                continue;
            }
            let (moments, value) = guardrail_moments(s, goal.metric);
            let verdict = non_inferiority(control_moments, moments, *definition, alpha, None)
                .map_err(|e| ApiError::Internal(anyhow::anyhow!("guardrail {}: {e}", goal.id)))?;
            out[i].push(ArmGuardrailView {
                goal_id: goal.id,
                name: goal.name.clone(),
                metric: goal.metric,
                status: verdict.status,
                margin: verdict.margin,
                direction: verdict.direction,
                relative_difference: verdict.relative_difference,
                interval: verdict.interval,
                p_value: verdict.p_value,
                arm_value: value,
                control_value,
            });
        }
    }
    Ok(out)
}

/// `+12.3 %`.
fn percent(x: f64) -> String {
    format!("{:+.1} %", x * 100.0)
}

/// The sentence behind a `guardrail_harmed` recommendation.
fn harm_reason(
    goal: &str,
    recommendation: Recommendation,
    views: &[SubjectView],
) -> Option<String> {
    let Recommendation::GuardrailHarmed { arm, guardrail } = recommendation else {
        return None;
    };
    let subject = views.get(arm)?;
    let g = subject.guardrails.get(guardrail)?;
    let worse = match g.direction {
        Direction::HigherIsBetter => "lower",
        Direction::LowerIsBetter => "higher",
    };
    Some(format!(
        "\"{}\" leads on \"{goal}\" but harms the guardrail \"{}\": {} against control{}, \
         {worse} by more than its {:.1} % margin (always-valid p {}). Do not deploy it as it is.",
        subject.name,
        g.name,
        g.relative_difference
            .map_or_else(|| "n/a".to_owned(), percent),
        g.interval
            .map(|x| format!(
                " (95 % interval {} to {})",
                percent(x.lower),
                percent(x.upper)
            ))
            .unwrap_or_default(),
        g.margin * 100.0,
        if g.p_value < 0.001 {
            "< 0.001".to_owned()
        } else {
            format!("= {:.3}", g.p_value)
        },
    ))
}

/// The comparison sets of an experiment's arms (see the module docs): every arm, or each
/// element's arms (independent), plus each element's main effect (factorial).
fn comparison_sets(
    experiment: &ExperimentRow,
    arms: &[ArmAggregateRow],
    variants: &[VariantRow],
    with_revenue: bool,
) -> Vec<ComparisonSet> {
    let thompson = matches!(experiment.allocator.0, AllocatorSpec::Thompson(_));
    let mut sets: Vec<ComparisonSet> = Vec::new();
    let subjects_of = |rows: &[&ArmAggregateRow]| -> Vec<Subject> {
        let fixed = fixed_shares(rows, variants);
        rows.iter()
            .zip(fixed)
            .map(|(a, share)| {
                let mut s =
                    subject_of_arm(a, with_revenue, if thompson { None } else { Some(share) });
                s.custom_code = a
                    .variant_ids
                    .iter()
                    .any(|id| variants.iter().any(|v| v.id == *id && v.custom_code));
                s
            })
            .collect()
    };
    for group in arm_groups(experiment.kind.0, arms, variants) {
        let rows: Vec<&ArmAggregateRow> = group.members.iter().map(|&i| &arms[i]).collect();
        let (element_id, element_name) = group.element.unzip();
        sets.push((group.scope, element_id, element_name, subjects_of(&rows)));
    }
    if experiment.kind.0 == Mode::Factorial {
        let rows: Vec<&ArmAggregateRow> = arms.iter().collect();
        let all = subjects_of(&rows);
        for (element_id, element_name, subjects) in main_effects(arms, &all, variants) {
            sets.push((
                "main_effect",
                Some(element_id),
                Some(element_name),
                subjects,
            ));
        }
    }

    sets
}

/// A group of arms compared together, before any statistics: every arm of the
/// experiment (`scope` "arms"), or one element's arms when the elements are independent
/// (`scope` "element"). The results, segments and funnels each build their comparison
/// sets on these (a factorial experiment's main effects are added by each).
pub(crate) struct ArmGroup {
    pub scope: &'static str,
    /// The element (id, name) for an "element" group.
    pub element: Option<(Uuid, String)>,
    /// Indexes into the experiment's arms, in their order.
    pub members: Vec<usize>,
}

/// The experiment's [`ArmGroup`]s: one per element in the elements' order (independent
/// elements), else one of every arm.
pub(crate) fn arm_groups(
    mode: Mode,
    arms: &[ArmAggregateRow],
    variants: &[VariantRow],
) -> Vec<ArmGroup> {
    if mode != Mode::Independent {
        return vec![ArmGroup {
            scope: "arms",
            element: None,
            members: (0..arms.len()).collect(),
        }];
    }
    let mut elements: Vec<(i32, Uuid, String)> = variants
        .iter()
        .map(|v| (v.element_position, v.element_id, v.element_name.clone()))
        .collect();
    elements.dedup();
    elements
        .into_iter()
        .map(|(_, element_id, name)| ArmGroup {
            scope: "element",
            members: (0..arms.len())
                .filter(|&i| arms[i].element_id == Some(element_id))
                .collect(),
            element: Some((element_id, name)),
        })
        .collect()
}

/// One element's main effect in a factorial experiment: each of its variants with the
/// arms (combinations) that show it, which the variant pools.
pub(crate) struct MainEffect<'a> {
    pub element_id: Uuid,
    pub element_name: String,
    /// The element's variants in order, each with indexes into the experiment's arms.
    pub variants: Vec<(&'a VariantRow, Vec<usize>)>,
}

/// The main effects of a factorial experiment's `arms`, one per element in the
/// elements' order (an arm's `variant_ids` are in that order).
pub(crate) fn main_effect_groups<'a>(
    arms: &[ArmAggregateRow],
    variants: &'a [VariantRow],
) -> Vec<MainEffect<'a>> {
    let mut elements: BTreeMap<i32, Vec<&VariantRow>> = BTreeMap::new();
    for v in variants {
        elements.entry(v.element_position).or_default().push(v);
    }
    elements
        .into_values()
        .enumerate()
        .map(|(index, vs)| MainEffect {
            element_id: vs[0].element_id,
            element_name: vs[0].element_name.clone(),
            variants: vs
                .into_iter()
                .map(|v| {
                    let shown = (0..arms.len())
                        .filter(|&i| arms[i].variant_ids.get(index) == Some(&v.id))
                        .collect();
                    (v, shown)
                })
                .collect(),
        })
        .collect()
}

fn subject_of_arm(a: &ArmAggregateRow, with_revenue: bool, fixed_share: Option<f64>) -> Subject {
    let visitors = u64::try_from(a.visitors).unwrap_or(0);
    Subject {
        id: a.arm_id,
        name: a.name.clone(),
        is_control: a.is_control,
        visitors,
        conversions: u64::try_from(a.converters).unwrap_or(0),
        revenue: if with_revenue {
            Moments {
                n: visitors,
                sum: a.revenue_sum,
                sum_sq: a.revenue_sumsq,
            }
        } else {
            Moments {
                n: 0,
                sum: 0.0,
                sum_sq: 0.0,
            }
        },
        expected: fixed_share.unwrap_or(a.expected_visitors),
        custom_code: false,
    }
}

/// The engine input for a set of subjects: control = the first marked control (else the
/// first); expected exposures equal when none were recorded yet.
fn analysis_input(subjects: &[Subject], previous: &HashMap<Uuid, f64>) -> AnalysisInput {
    let control = subjects.iter().position(|s| s.is_control).unwrap_or(0);
    let no_expectation = subjects.iter().all(|s| s.expected <= 0.0);
    AnalysisInput {
        arms: subjects
            .iter()
            .map(|s| ArmInput {
                arm_id: s.id.to_string(),
                visitors: s.visitors,
                conversions: s.conversions.min(s.visitors),
                revenue: s.revenue,
                propensity_sum: if no_expectation { 1.0 } else { s.expected },
                previous_sequential_p_value: previous.get(&s.id).copied(),
            })
            .collect(),
        control,
        config: AnalysisConfig::default(),
    }
}

/// Fixed-split shares of `rows` (one allocation unit): the allocator's weights when it
/// has one per arm, else each arm's variant weights normalised per element and
/// multiplied across elements (factorial combinations).
pub(crate) fn fixed_shares(rows: &[&ArmAggregateRow], variants: &[VariantRow]) -> Vec<f64> {
    let mut element_total: HashMap<Uuid, f64> = HashMap::new();
    for v in variants {
        *element_total.entry(v.element_id).or_default() += v.weight;
    }
    let by_id: HashMap<Uuid, &VariantRow> = variants.iter().map(|v| (v.id, v)).collect();
    rows.iter()
        .map(|a| {
            a.variant_ids
                .iter()
                .map(|id| match by_id.get(id) {
                    Some(v) => {
                        let total = element_total.get(&v.element_id).copied().unwrap_or(0.0);
                        if total > 0.0 { v.weight / total } else { 0.0 }
                    }
                    None => 0.0,
                })
                .product()
        })
        .collect()
}

/// Main effects of a factorial experiment: for each element, its variants, each pooling
/// the arms (combinations) that show it — sums of visitors, conversions, revenue moments
/// and expected exposures. Under factorial randomisation the other elements' variants are
/// spread alike over this element's variants, so the pooled comparison estimates the
/// element's average effect over the other elements (the marginal, or main, effect).
fn main_effects(
    arms: &[ArmAggregateRow],
    subjects: &[Subject],
    variants: &[VariantRow],
) -> Vec<(Uuid, String, Vec<Subject>)> {
    main_effect_groups(arms, variants)
        .into_iter()
        .map(|effect| {
            let pooled = effect
                .variants
                .iter()
                .map(|(v, shown)| {
                    let mut s = Subject {
                        id: v.id,
                        name: v.name.clone(),
                        is_control: v.is_control,
                        visitors: 0,
                        conversions: 0,
                        revenue: Moments {
                            n: 0,
                            sum: 0.0,
                            sum_sq: 0.0,
                        },
                        expected: 0.0,
                        custom_code: v.custom_code,
                    };
                    for subject in shown.iter().map(|&i| &subjects[i]) {
                        s.visitors += subject.visitors;
                        s.conversions += subject.conversions;
                        s.revenue.n += subject.revenue.n;
                        s.revenue.sum += subject.revenue.sum;
                        s.revenue.sum_sq += subject.revenue.sum_sq;
                        s.expected += subject.expected;
                    }
                    s
                })
                .collect();
            (effect.element_id, effect.element_name, pooled)
        })
        .collect()
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DayPoint {
    /// UTC day, `YYYY-MM-DD`.
    pub day: String,
    /// Visitors first exposed that day.
    pub visitors: i64,
    /// Visitors who first converted on the goal that day.
    pub conversions: i64,
    pub revenue: f64,
    pub cumulative_visitors: i64,
    pub cumulative_conversions: i64,
    /// cumulative_conversions / cumulative_visitors (0 before any visitor).
    pub cumulative_rate: f64,
    /// The Wilson interval of `cumulative_rate` at the results' confidence level (95 %),
    /// `{"lower", "upper"}`; on the last day it equals the results' `rate_interval`. Null
    /// before any visitor.
    #[schema(value_type = Option<Object>)]
    pub cumulative_rate_interval: Option<samplit_engine::stats::proportions::Interval>,
    /// The arm's chance to be best among its unit's arms (its element's, in an
    /// independent experiment) on the cumulative counts up to this day, with the results'
    /// `Beta(1, 1)` prior; on the last day it equals the results'. Null for a unit of
    /// one arm or of more than [`MAX_ARMS_OVER_TIME`] arms.
    pub cumulative_chance_to_be_best: Option<f64>,
}

/// The results' Wilson interval of `conversions / visitors` (the same engine function and
/// level as `rate_interval`), or `None` without visitors.
fn rate_interval(
    visitors: i64,
    conversions: i64,
) -> Option<samplit_engine::stats::proportions::Interval> {
    use samplit_engine::stats::proportions::{Counts, wilson_interval};
    let counts = Counts::new(
        u64::try_from(visitors).ok()?,
        u64::try_from(conversions).ok()?,
    )
    .ok()?;
    wilson_interval(counts, AnalysisConfig::default().confidence_level).ok()
}

/// The most arms in a unit whose chance to be best is computed day by day.
pub const MAX_ARMS_OVER_TIME: usize = 20;

/// Fills `cumulative_chance_to_be_best` of every point (see [`DayPoint`]).
fn add_chance_to_be_best(series: &mut [ArmSeries], days: usize) {
    let mut units: BTreeMap<Option<Uuid>, Vec<usize>> = BTreeMap::new();
    for (i, s) in series.iter().enumerate() {
        units.entry(s.element_id).or_default().push(i);
    }
    for members in units.values() {
        if members.len() < 2 || members.len() > MAX_ARMS_OVER_TIME {
            continue;
        }
        for day in 0..days {
            let posteriors: Vec<(f64, f64)> = members
                .iter()
                .map(|&i| {
                    let p = &series[i].points[day];
                    let failures = (p.cumulative_visitors - p.cumulative_conversions).max(0);
                    (1.0 + p.cumulative_conversions as f64, 1.0 + failures as f64)
                })
                .collect();
            if let Ok(chances) = samplit_engine::stats::bayes::chance_to_be_best(&posteriors) {
                for (&i, chance) in members.iter().zip(chances) {
                    series[i].points[day].cumulative_chance_to_be_best = Some(chance);
                }
            }
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ArmSeries {
    pub arm_id: Uuid,
    pub name: String,
    pub element_id: Option<Uuid>,
    pub points: Vec<DayPoint>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TimeseriesView {
    pub experiment_id: Uuid,
    pub goal: GoalView,
    /// Every UTC day (`YYYY-MM-DD`) from the first to the last with data (no gaps).
    pub days: Vec<String>,
    pub arms: Vec<ArmSeries>,
}

/// Daily visitors, conversions and cumulative rate per arm.
#[utoipa::path(
    get,
    path = "/experiments/{id}/timeseries",
    tag = "results",
    params(("id" = Uuid, Path, description = "Experiment id"), GoalQuery),
    responses(
        (status = 200, description = "Daily series", body = TimeseriesView),
        (status = 401, description = "Not authenticated", body = crate::error::Problem),
        (status = 404, description = "No such experiment or goal in your organisation", body = crate::error::Problem),
    ),
    security(("bearer" = []))
)]
async fn get_timeseries(
    State(state): State<AppState>,
    RequireRole { actor, .. }: RequireRole<Viewer>,
    PathId(id): PathId,
    Query(q): Query<GoalQuery>,
) -> ApiResult<axum::Json<TimeseriesView>> {
    let (experiment, goal) = load(&state, actor.org_id, id, q.goal_id).await?;
    let arms = db::arm_aggregates(&state.pool, experiment.id, goal.id).await?;
    let rows = db::daily(&state.pool, experiment.id, goal.id).await?;
    let days = match (
        rows.iter().map(|r| r.day).min(),
        rows.iter().map(|r| r.day).max(),
    ) {
        (Some(first), Some(last)) => {
            let mut days = vec![first];
            while let Some(next) = days
                .last()
                .and_then(|d| d.next_day())
                .filter(|d| *d <= last)
            {
                days.push(next);
            }
            days
        }
        _ => Vec::new(),
    };
    let mut by_arm: HashMap<Uuid, HashMap<Date, (i64, i64, f64)>> = HashMap::new();
    for r in &rows {
        by_arm
            .entry(r.arm_id)
            .or_default()
            .insert(r.day, (r.visitors, r.converters, r.revenue));
    }
    let mut series: Vec<ArmSeries> = arms
        .iter()
        .map(|a| {
            let mut cum_v = 0;
            let mut cum_c = 0;
            let empty = HashMap::new();
            let data = by_arm.get(&a.arm_id).unwrap_or(&empty);
            let points = days
                .iter()
                .map(|day| {
                    let (v, c, revenue) = data.get(day).copied().unwrap_or((0, 0, 0.0));
                    cum_v += v;
                    cum_c += c;
                    DayPoint {
                        day: day.to_string(),
                        visitors: v,
                        conversions: c,
                        revenue,
                        cumulative_visitors: cum_v,
                        cumulative_conversions: cum_c,
                        cumulative_rate: if cum_v > 0 {
                            cum_c as f64 / cum_v as f64
                        } else {
                            0.0
                        },
                        cumulative_rate_interval: rate_interval(cum_v, cum_c),
                        cumulative_chance_to_be_best: None,
                    }
                })
                .collect();
            ArmSeries {
                arm_id: a.arm_id,
                name: a.name.clone(),
                element_id: a.element_id,
                points,
            }
        })
        .collect();
    add_chance_to_be_best(&mut series, days.len());
    Ok(axum::Json(TimeseriesView {
        experiment_id: experiment.id,
        goal: GoalView {
            id: goal.id,
            name: goal.name,
            metric: goal.metric,
        },
        days: days.iter().map(Date::to_string).collect(),
        arms: series,
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ExportQuery {
    /// `csv` or `xlsx`.
    pub format: ExportFormat,
    /// The goal to analyse; default: the experiment's primary goal.
    pub goal_id: Option<Uuid>,
}

/// Columns of the results export: one row per subject of each analysis.
const EXPORT_COLUMNS: [&str; 25] = [
    "scope",
    "element",
    "subject_id",
    "subject",
    "is_control",
    "visitors",
    "conversions",
    "rate",
    "rate_lower",
    "rate_upper",
    "lift_relative",
    "lift_lower",
    "lift_upper",
    "chance_to_be_best",
    "expected_loss",
    "p_value_sequential",
    "p_value_holm",
    "p_value_bh",
    "p_value_z_test",
    "significant",
    "revenue_sum",
    "revenue_per_visitor",
    "revenue_welch_p_value",
    "srm_p_value",
    "recommendation",
];

/// The results as a spreadsheet (CSV or Excel), one row per arm (or variant, for main
/// effects) of each analysis; text cells are neutralised against formula injection by
/// [`crate::export`].
#[utoipa::path(
    get,
    path = "/experiments/{id}/results/export",
    tag = "results",
    params(("id" = Uuid, Path, description = "Experiment id"), ExportQuery),
    responses(
        (status = 200, description = "The file (Content-Disposition: attachment): text/csv, or application/vnd.openxmlformats-officedocument.spreadsheetml.sheet for xlsx", body = String, content_type = "text/csv"),
        (status = 400, description = "Missing or unknown format", body = crate::error::Problem),
        (status = 401, description = "Not authenticated", body = crate::error::Problem),
        (status = 404, description = "No such experiment or goal in your organisation", body = crate::error::Problem),
    ),
    security(("bearer" = []))
)]
async fn export_results(
    State(state): State<AppState>,
    RequireRole { actor, .. }: RequireRole<Viewer>,
    PathId(id): PathId,
    Query(q): Query<ExportQuery>,
) -> ApiResult<axum::response::Response> {
    let (experiment, goal) = load(&state, actor.org_id, id, q.goal_id).await?;
    let view = compute(&state, experiment, goal).await?;
    let table = results_table(&view)?;
    let today = time::OffsetDateTime::now_utc().date();
    table.into_response(q.format, &format!("results-{}-{today}", view.experiment_id))
}

/// The rows of the export (also what a test reads back).
pub fn results_table(view: &ResultsView) -> ApiResult<Table> {
    let mut table = Table::new("Results", EXPORT_COLUMNS);
    for analysis in &view.analyses {
        let element = analysis.element_name.clone();
        for (i, subject) in analysis.subjects.iter().enumerate() {
            let arm = analysis.result.as_ref().and_then(|r| r.arms.get(i));
            let comparison = arm.and_then(|a| a.comparison);
            let lift = comparison.and_then(|c| c.lift);
            let recommendation = analysis
                .result
                .as_ref()
                .and_then(|r| serde_json::to_value(r.recommendation).ok())
                .map(|v| v.to_string());
            table.push_row(vec![
                analysis.scope.into(),
                element.clone().into(),
                subject.id.into(),
                subject.name.clone().into(),
                subject.is_control.into(),
                Cell::from(arm.map(|a| i64::try_from(a.visitors).unwrap_or(i64::MAX))),
                Cell::from(arm.map(|a| i64::try_from(a.conversions).unwrap_or(i64::MAX))),
                Cell::from(arm.map(|a| a.rate)),
                Cell::from(arm.map(|a| a.rate_interval.lower)),
                Cell::from(arm.map(|a| a.rate_interval.upper)),
                Cell::from(lift.map(|l| l.relative)),
                Cell::from(lift.and_then(|l| l.interval).map(|x| x.lower)),
                Cell::from(lift.and_then(|l| l.interval).map(|x| x.upper)),
                Cell::from(arm.map(|a| a.chance_to_be_best)),
                Cell::from(arm.map(|a| a.expected_loss)),
                Cell::from(comparison.map(|c| c.sequential_p_value)),
                Cell::from(comparison.map(|c| c.p_value_holm)),
                Cell::from(comparison.map(|c| c.p_value_bh)),
                Cell::from(comparison.map(|c| c.z_test_p_value)),
                Cell::from(comparison.map(|c| c.significant)),
                subject.revenue_sum.into(),
                Cell::from(arm.and_then(|a| a.revenue).map(|r| r.mean)),
                Cell::from(comparison.and_then(|c| c.revenue_welch).map(|w| w.p_value)),
                Cell::from(analysis.result.as_ref().map(|r| r.srm.p_value)),
                Cell::from(recommendation.or_else(|| analysis.error.clone())),
            ])?;
        }
    }
    Ok(table)
}
