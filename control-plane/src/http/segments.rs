//! Segments — results sliced by what the edge knew before assigning — and the erasure of
//! a site's visitors from the raw events those segments come from.
//!
//! - `GET /experiments/{id}/segments?dimension=&goal=` (viewer+; `goal` defaults to the
//!   primary goal): for each value of the dimension (`country`, `device`, `browser`,
//!   `source`, `visitor_type`), per arm visitors, converters, rate and Wilson interval,
//!   revenue per visitor on a revenue goal, and against the control the lift with its
//!   Katz interval and the pooled z-test p-value, Holm-adjusted across the segments; SRM
//!   per segment (fixed splits); `warnings`. Read from the segment statistics
//!   (`db::segments`), never from raw events: O(arms × values × days).
//! - `POST /sites/{id}/erasure` (admin+): deletes the site's raw events, assignments and
//!   recorded or parked conversions of up to 1000 visitor ids; audited with the count,
//!   never the ids. Aggregates and segment statistics stay (anonymous counts).
//!
//! The arithmetic is [`analyze_segments`], a pure function checked against reference
//! values computed with SciPy (`control-plane/tests/reference/segments.py`).

use std::collections::BTreeMap;

use axum::extract::State;
use samplit_engine::context::Dimension;
use samplit_engine::stats::multiple::holm;
use samplit_engine::stats::proportions::{
    Counts, Interval, Lift, lift, two_proportion_z_test, wilson_interval,
};
use samplit_engine::stats::srm::{DEFAULT_SRM_THRESHOLD, SrmResult, sample_ratio_mismatch};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use uuid::Uuid;

use crate::audit::{self, Change};
use crate::auth::RequireRole;
use crate::auth::roles::{Admin, Viewer};
use crate::db::raw_events;
use crate::db::results as results_db;
use crate::db::segments as db;
use crate::domain::experiment::{AllocatorSpec, Metric};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, PathId, Query};
use crate::state::AppState;
use samplit_engine::multi::Mode;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(utoipa_axum::routes!(get_segments))
        .routes(utoipa_axum::routes!(erase_visitors))
}

/// Fewer visitors than this in an arm of a segment: no p-value for its comparisons.
pub const MIN_SEGMENT_VISITORS: u64 = 100;
/// Most visitor ids one erasure takes.
pub const MAX_ERASURE_IDS: usize = 1000;
/// The confidence level of intervals (as the results').
const LEVEL: f64 = 0.95;

// ---------------------------------------------------------------------------------------
// The arithmetic (pure).

/// One arm's totals in one segment.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CellInput {
    pub visitors: u64,
    pub converters: u64,
    pub revenue_sum: f64,
    pub revenue_sumsq: f64,
}

/// What [`analyze_segments`] needs besides the cells.
#[derive(Debug, Clone)]
pub struct SegmentConfig {
    /// The control's index among the arms.
    pub control: usize,
    /// The arms' expected traffic shares (fixed split), for SRM; None: no SRM check.
    pub expected_shares: Option<Vec<f64>>,
    /// The goal counts revenue: revenue per visitor is reported.
    pub with_revenue: bool,
}

/// One arm in one segment.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SegmentArm {
    pub visitors: u64,
    pub converters: u64,
    /// converters / visitors; null without visitors.
    pub rate: Option<f64>,
    /// Wilson 95 % interval of the rate, `{"lower", "upper"}`; null without visitors.
    #[schema(value_type = Option<Object>)]
    pub rate_interval: Option<Interval>,
    /// Revenue per visitor (revenue goals only; null otherwise or without visitors).
    pub revenue_per_visitor: Option<f64>,
    /// Σ per-visitor revenue and Σ of its squares (revenue goals; 0 otherwise).
    pub revenue_sum: f64,
    pub revenue_sumsq: f64,
    /// Against the control (null for the control itself).
    pub comparison: Option<SegmentComparison>,
}

/// An arm against the control within one segment.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SegmentComparison {
    /// Relative lift `p_B / p_A − 1`, absolute difference, and the Katz 95 % interval of
    /// the relative lift (`{"relative", "absolute", "interval"}`); null while the control
    /// has no conversion or an arm no visitor.
    #[schema(value_type = Option<Object>)]
    pub lift: Option<Lift>,
    /// Pooled two-proportion z-test, two-sided (one look: for exploring, not deciding);
    /// null when the control or this arm has fewer than 100 visitors in the segment.
    pub p_value: Option<f64>,
    /// `p_value` Holm-adjusted over every reported p-value of the analysis (all segments,
    /// all arms); null with `p_value`.
    pub p_value_holm: Option<f64>,
    /// Fewer than 100 visitors in the control or this arm: no p-value.
    pub small: bool,
}

/// One value of the dimension.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SegmentView {
    /// The dimension's value (`unknown` for visitors whose edge did not say).
    pub value: String,
    pub visitors: u64,
    /// In the order of the analysis' `subjects`.
    pub arms: Vec<SegmentArm>,
    /// Sample-ratio mismatch within the segment against the fixed split
    /// (`{"chi_square", "df", "p_value", "mismatch"}`, flagged at p < 0.001); null for a
    /// bandit (its shares move over time) or a segment without visitors.
    #[schema(value_type = Option<Object>)]
    pub srm: Option<SrmResult>,
    /// An arm has fewer than 100 visitors here.
    pub small: bool,
}

/// A caveat to show with the segments.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SegmentWarning {
    /// `multiple_comparisons`, `small_segments`, `sample_ratio_mismatch` or
    /// `no_srm_for_bandits`.
    pub code: &'static str,
    pub message: String,
    /// The segments concerned (empty when it is about all of them).
    pub values: Vec<String>,
}

/// The segments of one comparison set, with their warnings.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentsOutput {
    pub segments: Vec<SegmentView>,
    pub warnings: Vec<SegmentWarning>,
}

/// Per-segment statistics of one comparison set: `segments` are (value, one cell per arm
/// in subject order). See the module docs and `docs/segments.md`.
pub fn analyze_segments(
    segments: &[(String, Vec<CellInput>)],
    cfg: &SegmentConfig,
) -> SegmentsOutput {
    let mut views = Vec::with_capacity(segments.len());
    // (segment index, arm index) of each reported p-value, for Holm.
    let mut family: Vec<(usize, usize, f64)> = Vec::new();
    let mut small_values = Vec::new();
    let mut srm_values = Vec::new();
    for (si, (value, cells)) in segments.iter().enumerate() {
        let control = cells.get(cfg.control).copied().unwrap_or_default();
        let control_counts = counts(control);
        let small = cells.iter().any(|c| c.visitors < MIN_SEGMENT_VISITORS);
        let arms = cells
            .iter()
            .enumerate()
            .map(|(ai, c)| {
                let own = counts(*c);
                let comparison = (ai != cfg.control).then(|| {
                    let small = c.visitors < MIN_SEGMENT_VISITORS
                        || control.visitors < MIN_SEGMENT_VISITORS;
                    let (lift, p_value) = match (control_counts, own) {
                        (Some(a), Some(b)) => (
                            lift(a, b, LEVEL).ok().flatten().filter(lift_is_finite),
                            (!small).then(|| two_proportion_z_test(a, b).p_value),
                        ),
                        _ => (None, None),
                    };
                    if let Some(p) = p_value {
                        family.push((si, ai, p));
                    }
                    SegmentComparison {
                        lift,
                        p_value,
                        p_value_holm: None,
                        small,
                    }
                });
                SegmentArm {
                    visitors: c.visitors,
                    converters: c.converters,
                    rate: own.map(|k| k.rate()),
                    rate_interval: own.and_then(|k| wilson_interval(k, LEVEL).ok()),
                    revenue_per_visitor: (cfg.with_revenue && c.visitors > 0)
                        .then(|| c.revenue_sum / c.visitors as f64),
                    revenue_sum: if cfg.with_revenue { c.revenue_sum } else { 0.0 },
                    revenue_sumsq: if cfg.with_revenue {
                        c.revenue_sumsq
                    } else {
                        0.0
                    },
                    comparison,
                }
            })
            .collect();
        let visitors: u64 = cells.iter().map(|c| c.visitors).sum();
        let srm = match &cfg.expected_shares {
            Some(shares) if visitors > 0 => {
                let observed: Vec<u64> = cells.iter().map(|c| c.visitors).collect();
                sample_ratio_mismatch(&observed, shares, DEFAULT_SRM_THRESHOLD).ok()
            }
            _ => None,
        };
        if small {
            small_values.push(value.clone());
        }
        if srm.is_some_and(|s| s.mismatch) {
            srm_values.push(value.clone());
        }
        views.push(SegmentView {
            value: value.clone(),
            visitors,
            arms,
            srm,
            small,
        });
    }
    let raw: Vec<f64> = family.iter().map(|(_, _, p)| *p).collect();
    if let Ok(adjusted) = holm(&raw) {
        for ((si, ai, _), p) in family.iter().zip(adjusted) {
            if let Some(c) = views[*si].arms[*ai].comparison.as_mut() {
                c.p_value_holm = Some(p);
            }
        }
    }

    let mut warnings = Vec::new();
    if segments.len() > 1 {
        warnings.push(SegmentWarning {
            code: "multiple_comparisons",
            message: format!(
                "{} segments compared: some will differ by chance. Segments are for exploring; \
                 the experiment's overall result is the decision. p_value_holm corrects for \
                 the {} comparisons with a p-value.",
                segments.len(),
                family.len()
            ),
            values: Vec::new(),
        });
    }
    if !small_values.is_empty() {
        warnings.push(SegmentWarning {
            code: "small_segments",
            message: format!(
                "fewer than {MIN_SEGMENT_VISITORS} visitors in an arm: no p-value is reported \
                 for these segments' comparisons with that arm"
            ),
            values: small_values,
        });
    }
    if !srm_values.is_empty() {
        warnings.push(SegmentWarning {
            code: "sample_ratio_mismatch",
            message: "the arms' traffic in these segments does not match the split: \
                      their comparisons may be biased"
                .to_owned(),
            values: srm_values,
        });
    }
    if cfg.expected_shares.is_none() {
        warnings.push(SegmentWarning {
            code: "no_srm_for_bandits",
            message: "a bandit's traffic shares move over time, so no per-segment SRM check \
                      is made"
                .to_owned(),
            values: Vec::new(),
        });
    }
    SegmentsOutput {
        segments: views,
        warnings,
    }
}

fn counts(c: CellInput) -> Option<Counts> {
    Counts::new(c.visitors, c.converters.min(c.visitors)).ok()
}

/// A lift whose numbers are all finite (a JSON number cannot be infinite).
fn lift_is_finite(l: &Lift) -> bool {
    l.relative.is_finite()
        && l.absolute.is_finite()
        && l.interval
            .is_none_or(|i| i.lower.is_finite() && i.upper.is_finite())
}

// ---------------------------------------------------------------------------------------
// GET /experiments/{id}/segments

/// One comparison set: its scope, element, subjects, and for each subject the indexes of
/// the experiment's arms it pools (one arm, or every combination showing a variant for a
/// factorial main effect) with its expected share of the set's visitors (fixed splits).
struct ComparisonSet {
    scope: &'static str,
    element_id: Option<Uuid>,
    element_name: Option<String>,
    subjects: Vec<SegmentSubject>,
    pooled: Vec<Vec<usize>>,
    control: usize,
    expected_shares: Vec<f64>,
}

impl ComparisonSet {
    /// `members` (indexes into `arms`), one subject each.
    fn of_arms(
        scope: &'static str,
        element: Option<(Uuid, String)>,
        arms: &[results_db::ArmAggregateRow],
        members: Vec<usize>,
        variants: &[results_db::VariantRow],
    ) -> Self {
        let rows: Vec<&results_db::ArmAggregateRow> = members.iter().map(|&i| &arms[i]).collect();
        let (element_id, element_name) = element.unzip();
        Self {
            scope,
            element_id,
            element_name,
            subjects: rows
                .iter()
                .map(|a| SegmentSubject {
                    id: a.arm_id,
                    name: a.name.clone(),
                    is_control: a.is_control,
                })
                .collect(),
            control: rows.iter().position(|a| a.is_control).unwrap_or(0),
            expected_shares: super::results::fixed_shares(&rows, variants),
            pooled: members.into_iter().map(|i| vec![i]).collect(),
        }
    }

    /// The main effects of a factorial experiment, one set per element: each of its
    /// variants pools the combinations that show it (as the results' main effects do);
    /// under factorial randomisation the other elements are spread alike over them.
    fn main_effects(
        arms: &[results_db::ArmAggregateRow],
        variants: &[results_db::VariantRow],
    ) -> Vec<Self> {
        let all: Vec<&results_db::ArmAggregateRow> = arms.iter().collect();
        let arm_shares = super::results::fixed_shares(&all, variants);
        super::results::main_effect_groups(arms, variants)
            .into_iter()
            .map(|effect| {
                let (vs, pooled): (Vec<&results_db::VariantRow>, Vec<Vec<usize>>) =
                    effect.variants.into_iter().unzip();
                Self {
                    scope: "main_effect",
                    element_id: Some(effect.element_id),
                    element_name: Some(effect.element_name),
                    subjects: vs
                        .iter()
                        .map(|v| SegmentSubject {
                            id: v.id,
                            name: v.name.clone(),
                            is_control: v.is_control,
                        })
                        .collect(),
                    control: vs.iter().position(|v| v.is_control).unwrap_or(0),
                    expected_shares: pooled
                        .iter()
                        .map(|members| members.iter().map(|&i| arm_shares[i]).sum())
                        .collect(),
                    pooled,
                }
            })
            .collect()
    }
}

/// The sum of `cells` (sufficient statistics add up).
fn pooled_cell(cells: impl IntoIterator<Item = CellInput>) -> CellInput {
    cells
        .into_iter()
        .fold(CellInput::default(), |acc, c| CellInput {
            visitors: acc.visitors + c.visitors,
            converters: acc.converters + c.converters,
            revenue_sum: acc.revenue_sum + c.revenue_sum,
            revenue_sumsq: acc.revenue_sumsq + c.revenue_sumsq,
        })
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SegmentsQuery {
    /// `country`, `device`, `browser`, `source` or `visitor_type`.
    #[param(required = true)]
    pub dimension: Option<String>,
    /// The goal's id; default: the experiment's primary goal.
    pub goal: Option<String>,
}

/// The goal the segments are about.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = SegmentsGoal)]
pub struct GoalView {
    pub id: Uuid,
    pub name: String,
    pub metric: Metric,
}

/// An arm compared in the segments.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SegmentSubject {
    pub id: Uuid,
    pub name: String,
    pub is_control: bool,
}

/// The segments of one comparison set: all arms, one element's arms (independent
/// multi-element experiments), or one element's variants pooled over the other elements
/// (a factorial experiment's main effect).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SegmentAnalysis {
    /// `arms`, `element` or `main_effect` (subjects are then the element's variants).
    pub scope: &'static str,
    pub element_id: Option<Uuid>,
    pub element_name: Option<String>,
    pub subjects: Vec<SegmentSubject>,
    /// One per value with visitors, by value.
    pub segments: Vec<SegmentView>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SegmentsView {
    pub experiment_id: Uuid,
    pub goal: GoalView,
    pub dimension: &'static str,
    pub analyses: Vec<SegmentAnalysis>,
    /// Caveats: multiple comparisons (always with more than one segment), small
    /// segments, SRM within segments; each once.
    pub warnings: Vec<SegmentWarning>,
}

/// An experiment's results per value of a dimension (country, device, browser, traffic
/// source, new or returning visitor) on a goal: for exploring, with the caveats listed in
/// `warnings`.
#[utoipa::path(
    get,
    path = "/experiments/{id}/segments",
    tag = "results",
    params(("id" = Uuid, Path, description = "Experiment id"), SegmentsQuery),
    responses(
        (status = 200, description = "Segments", body = SegmentsView),
        (status = 401, description = "Not authenticated", body = crate::error::Problem),
        (status = 404, description = "No such experiment or goal in your organisation", body = crate::error::Problem),
        (status = 422, description = "dimension missing or unknown, goal not a UUID, or no goal given and no primary goal", body = crate::error::Problem),
    ),
    security(("bearer" = []))
)]
async fn get_segments(
    State(state): State<AppState>,
    RequireRole { actor, .. }: RequireRole<Viewer>,
    PathId(id): PathId,
    Query(q): Query<SegmentsQuery>,
) -> ApiResult<axum::Json<SegmentsView>> {
    let dimension = match q.dimension.as_deref() {
        None | Some("") => {
            return Err(ApiError::validation(
                "dimension",
                "dimension is required: country, device, browser, source or visitor_type",
            ));
        }
        Some(text) => Dimension::parse(text).ok_or_else(|| {
            ApiError::validation(
                "dimension",
                "unknown dimension: use country, device, browser, source or visitor_type",
            )
        })?,
    };
    let goal_id = q
        .goal
        .as_deref()
        .filter(|g| !g.is_empty())
        .map(|g| {
            Uuid::try_parse(g).map_err(|_| ApiError::validation("goal", "goal must be a goal id"))
        })
        .transpose()?;
    let experiment = results_db::experiment_in_org(&state.pool, actor.org_id, id)
        .await?
        .ok_or(ApiError::NotFound("experiment"))?;
    let goal = match (
        results_db::goal_of(&state.pool, id, goal_id).await?,
        goal_id,
    ) {
        (Some(goal), _) => goal,
        (None, Some(_)) => return Err(ApiError::NotFound("goal")),
        (None, None) => {
            return Err(ApiError::validation(
                "goal",
                "the experiment has no primary goal; pass goal",
            ));
        }
    };
    let arms = results_db::arm_aggregates(&state.pool, id, goal.id).await?;
    let variants = results_db::variants_of(&state.pool, id).await?;
    let arm_ids: Vec<Uuid> = arms.iter().map(|a| a.arm_id).collect();
    let cells = db::segment_cells(&state.pool, &arm_ids, goal.id, dimension.as_str()).await?;
    let thompson = matches!(experiment.allocator.0, AllocatorSpec::Thompson(_));
    let with_revenue = goal.metric == Metric::Revenue;

    // Comparison sets: every arm, or each element's arms (independent experiments); a
    // factorial experiment also gets each element's main effect.
    let mut sets: Vec<ComparisonSet> =
        super::results::arm_groups(experiment.kind.0, &arms, &variants)
            .into_iter()
            .map(|g| ComparisonSet::of_arms(g.scope, g.element, &arms, g.members, &variants))
            .collect();
    if experiment.kind.0 == Mode::Factorial {
        sets.extend(ComparisonSet::main_effects(&arms, &variants));
    }

    // (value → arm → cell).
    let mut by_value: BTreeMap<&str, BTreeMap<Uuid, CellInput>> = BTreeMap::new();
    for c in &cells {
        by_value.entry(&c.value).or_default().insert(
            c.arm_id,
            CellInput {
                visitors: u64::try_from(c.visitors).unwrap_or(0),
                converters: u64::try_from(c.converters).unwrap_or(0),
                revenue_sum: c.revenue_sum,
                revenue_sumsq: c.revenue_sumsq,
            },
        );
    }

    let mut analyses = Vec::with_capacity(sets.len());
    let mut warnings: Vec<SegmentWarning> = Vec::new();
    for set in sets {
        let segments: Vec<(String, Vec<CellInput>)> = by_value
            .iter()
            .map(|(value, per_arm)| {
                let cells =
                    set.pooled
                        .iter()
                        .map(|members| {
                            pooled_cell(members.iter().map(|&i| {
                                per_arm.get(&arms[i].arm_id).copied().unwrap_or_default()
                            }))
                        })
                        .collect::<Vec<_>>();
                ((*value).to_owned(), cells)
            })
            .filter(|(_, cells)| cells.iter().any(|c| c.visitors > 0))
            .collect();
        let cfg = SegmentConfig {
            control: set.control,
            expected_shares: (!thompson).then_some(set.expected_shares),
            with_revenue,
        };
        let out = analyze_segments(&segments, &cfg);
        for w in out.warnings {
            match warnings.iter_mut().find(|x| x.code == w.code) {
                Some(existing) => {
                    for v in w.values {
                        if !existing.values.contains(&v) {
                            existing.values.push(v);
                        }
                    }
                }
                None => warnings.push(w),
            }
        }
        analyses.push(SegmentAnalysis {
            scope: set.scope,
            element_id: set.element_id,
            element_name: set.element_name,
            subjects: set.subjects,
            segments: out.segments,
        });
    }
    Ok(axum::Json(SegmentsView {
        experiment_id: experiment.id,
        goal: GoalView {
            id: goal.id,
            name: goal.name,
            metric: goal.metric,
        },
        dimension: dimension.as_str(),
        analyses,
        warnings,
    }))
}

// ---------------------------------------------------------------------------------------
// POST /sites/{id}/erasure

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErasureRequest {
    /// The visitor ids to forget (1 to 1000; the site's first-party visitor ids).
    pub visitor_ids: Vec<String>,
}

/// What was deleted.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErasureView {
    /// Distinct visitor ids asked for.
    pub visitors: u64,
    pub raw_exposures: u64,
    pub raw_conversions: u64,
    pub assignments: u64,
    pub goal_conversions: u64,
    pub pending_conversions: u64,
}

/// Erase visitors of a site (admin): deletes their raw exposures and conversions, their
/// assignments and their recorded or parked conversions. Aggregates and segment
/// statistics keep counting them (anonymous sums). Audited with the number of ids, never
/// the ids.
#[utoipa::path(
    post,
    path = "/sites/{id}/erasure",
    tag = "sites",
    params(("id" = Uuid, Path, description = "Site id")),
    request_body = ErasureRequest,
    responses(
        (status = 200, description = "Rows deleted", body = ErasureView),
        (status = 401, description = "Not authenticated", body = crate::error::Problem),
        (status = 403, description = "Not an admin", body = crate::error::Problem),
        (status = 404, description = "No such site in your organisation", body = crate::error::Problem),
        (status = 422, description = "No ids, more than 1000, or an empty or over-long id", body = crate::error::Problem),
    ),
    security(("bearer" = []))
)]
async fn erase_visitors(
    State(state): State<AppState>,
    RequireRole { actor, .. }: RequireRole<Admin>,
    PathId(id): PathId,
    Json(body): Json<ErasureRequest>,
) -> ApiResult<axum::Json<ErasureView>> {
    let mut ids = body.visitor_ids;
    if ids.is_empty() || ids.len() > MAX_ERASURE_IDS {
        return Err(ApiError::validation(
            "visitor_ids",
            format!(
                "give 1 to {MAX_ERASURE_IDS} visitor ids (got {})",
                ids.len()
            ),
        ));
    }
    let max = crate::ingest::items::MAX_ID_LEN;
    if let Some(i) = ids
        .iter()
        .position(|v| v.is_empty() || v.chars().count() > max)
    {
        return Err(ApiError::validation(
            "visitor_ids",
            format!(
                "visitor id {} is empty or longer than {max} characters",
                i + 1
            ),
        ));
    }
    ids.sort_unstable();
    ids.dedup();
    let mut tx = state.pool.begin().await?;
    if !raw_events::site_in_org(&mut tx, actor.org_id, id).await? {
        return Err(ApiError::NotFound("site"));
    }
    let erased = raw_events::erase_visitors(&mut tx, id, &ids).await?;
    // The count, never the ids: the audit trail must not keep what was erased.
    let change =
        Change::new("site.erasure", "site", id).after(serde_json::json!({ "visitors": ids.len() }));
    audit::record_by(&mut tx, &actor, change).await?;
    tx.commit().await?;
    Ok(axum::Json(ErasureView {
        visitors: ids.len() as u64,
        raw_exposures: erased.raw_exposures,
        raw_conversions: erased.raw_conversions,
        assignments: erased.assignments,
        goal_conversions: erased.goal_conversions,
        pending_conversions: erased.pending_conversions,
    }))
}

#[cfg(test)]
mod tests {
    //! Reference values: `control-plane/tests/reference/segments.py` (SciPy).

    use super::*;

    fn cell(visitors: u64, converters: u64) -> CellInput {
        CellInput {
            visitors,
            converters,
            ..CellInput::default()
        }
    }

    /// The reference scenario: device segments of a 50/50 two-arm test.
    pub(crate) fn scenario() -> Vec<(String, Vec<CellInput>)> {
        vec![
            ("desktop".to_owned(), vec![cell(120, 12), cell(130, 26)]),
            ("mobile".to_owned(), vec![cell(150, 15), cell(140, 21)]),
            ("tablet".to_owned(), vec![cell(40, 4), cell(30, 6)]),
        ]
    }

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-9, "{a} vs {b}");
    }

    #[test]
    fn segment_statistics_match_the_scipy_reference() {
        let out = analyze_segments(
            &scenario(),
            &SegmentConfig {
                control: 0,
                expected_shares: Some(vec![0.5, 0.5]),
                with_revenue: false,
            },
        );
        let [desktop, mobile, tablet] = out.segments.as_slice() else {
            panic!("three segments: {out:?}")
        };
        // Wilson intervals.
        let w = desktop.arms[0].rate_interval.unwrap();
        close(w.lower, 0.05813359202601076);
        close(w.upper, 0.166681741108952);
        let w = mobile.arms[1].rate_interval.unwrap();
        close(w.lower, 0.10025055316583266);
        close(w.upper, 0.21844378709275647);
        // Lift and its Katz interval.
        let c = desktop.arms[1].comparison.as_ref().unwrap();
        let l = c.lift.unwrap();
        close(l.relative, 1.0);
        close(l.interval.unwrap().lower, 0.05730596524075393);
        close(l.interval.unwrap().upper, 2.7832000683824574);
        // z-test p and Holm over the two reported ones.
        close(c.p_value.unwrap(), 0.027788966789612336);
        close(c.p_value_holm.unwrap(), 0.05557793357922467);
        let m = mobile.arms[1].comparison.as_ref().unwrap();
        close(m.p_value.unwrap(), 0.19692605428514054);
        close(m.p_value_holm.unwrap(), 0.19692605428514054);
        // SRM per segment.
        close(desktop.srm.unwrap().p_value, 0.5270892568655381);
        close(tablet.srm.unwrap().p_value, 0.23199772362873072);
        // The small segment: a lift, but no p-value.
        let t = tablet.arms[1].comparison.as_ref().unwrap();
        assert!(t.small && tablet.small);
        assert_eq!((t.p_value, t.p_value_holm), (None, None));
        close(t.lift.unwrap().interval.unwrap().upper, 5.464982084751908);
        assert!(
            desktop.arms[0].comparison.is_none(),
            "no comparison for the control"
        );
        let codes: Vec<&str> = out.warnings.iter().map(|w| w.code).collect();
        assert_eq!(codes, ["multiple_comparisons", "small_segments"]);
        assert_eq!(out.warnings[1].values, ["tablet"]);
    }

    #[test]
    fn one_segment_warns_of_nothing_and_a_bandit_gets_no_srm() {
        let out = analyze_segments(
            &scenario()[..1],
            &SegmentConfig {
                control: 0,
                expected_shares: None,
                with_revenue: true,
            },
        );
        let codes: Vec<&str> = out.warnings.iter().map(|w| w.code).collect();
        assert_eq!(codes, ["no_srm_for_bandits"]);
        assert_eq!(out.segments[0].srm, None);
        // No revenue recorded: 0 per visitor, not null.
        assert_eq!(out.segments[0].arms[0].revenue_per_visitor, Some(0.0));
        // A lone segment's p-value is its own Holm value.
        let c = out.segments[0].arms[1].comparison.as_ref().unwrap();
        assert_eq!(c.p_value, c.p_value_holm);
    }

    #[test]
    fn a_segment_skewed_against_the_split_is_flagged() {
        let out = analyze_segments(
            &[("ES".to_owned(), vec![cell(1000, 10), cell(800, 8)])],
            &SegmentConfig {
                control: 0,
                expected_shares: Some(vec![0.5, 0.5]),
                with_revenue: false,
            },
        );
        assert!(out.segments[0].srm.unwrap().mismatch);
        assert_eq!(out.warnings[0].code, "sample_ratio_mismatch");
        assert_eq!(out.warnings[0].values, ["ES"]);
    }
}
