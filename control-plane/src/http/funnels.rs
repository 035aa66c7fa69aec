//! Funnels: an experiment's ordered steps (each one of its goals) completed within a
//! window after the visitor's exposure, per arm, and the arms compared at each step.
//!
//! - `POST /experiments/{id}/funnels` (editor+; not on an archived experiment): a name,
//!   2–8 distinct goals of the experiment in order, `window_seconds` (default 7 days,
//!   60 s .. 90 days). Audited.
//! - `GET /experiments/{id}/funnels` (viewer+): the experiment's funnels, oldest first.
//! - `DELETE /experiments/{id}/funnels/{funnel_id}` (editor+). Audited.
//! - `GET /experiments/{id}/funnels/{funnel_id}/results` (viewer+): per arm the visitors
//!   entered, per step the visitors reached, conversion from entry and from the previous
//!   step, drop-off, and against the control the difference of reach with its Newcombe
//!   interval and z-test p-value, Holm-adjusted over the funnel
//!   ([`samplit_engine::stats::funnel`]). Computed from raw events on each request: one
//!   read of the assigned visitors' conversions on the steps' goals, ordered by visitor
//!   and time, folded as it streams ([`fold_visitors`]).
//!
//! Funnels add no tracking: a step is a goal, recorded as every goal is. See
//! `docs/funnels.md`.

use std::collections::{HashMap, HashSet};

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;
use samplit_engine::stats::funnel::{
    FunnelCounts, MAX_STEPS, MIN_STEPS, StepEvent, analyze_funnel, steps_reached,
};
use samplit_engine::stats::proportions::Interval;
use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::analysis_gate::{self, ANALYSIS_TIMEOUT, AnalysisPermit};
use crate::audit::{self, Change};
use crate::auth::RequireRole;
use crate::auth::roles::{Editor, Viewer};
use crate::db::funnels as db;
use crate::db::raw_events;
use crate::db::results as results_db;
use crate::domain::Status;
use crate::error::{ApiError, ApiResult, FieldError, Problem};
use crate::extract::{Json, PathId};
use crate::state::AppState;
use samplit_engine::multi::Mode;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_funnel, list_funnels))
        .routes(routes!(delete_funnel))
        .routes(routes!(funnel_results))
}

/// The window when none is given: 7 days.
pub const DEFAULT_WINDOW_SECONDS: i32 = 7 * 24 * 3600;
/// Shortest window: one minute.
pub const MIN_WINDOW_SECONDS: i32 = 60;
/// Longest window: 90 days.
pub const MAX_WINDOW_SECONDS: i32 = 90 * 24 * 3600;
/// Most funnels per experiment.
pub const MAX_FUNNELS: usize = 20;
/// Fewer visitors than this entered an arm: the `small_arms` warning.
pub const MIN_ARM_VISITORS: u64 = 100;
/// The confidence level of intervals (as the results').
const LEVEL: f64 = 0.95;

// ---------------------------------------------------------------------------------------
// Views.

/// A step: one of the experiment's goals.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FunnelStepView {
    pub goal_id: Uuid,
    pub goal_name: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FunnelView {
    pub id: Uuid,
    pub experiment_id: Uuid,
    pub name: String,
    /// Steps must be completed in order within this many seconds of the exposure.
    pub window_seconds: i32,
    /// In order.
    pub steps: Vec<FunnelStepView>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// A new funnel.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FunnelInput {
    /// 1–100 characters, unique within the experiment.
    pub name: String,
    /// 2–8 distinct goal ids of the experiment, in the order they must be completed.
    pub steps: Vec<Uuid>,
    /// 60 .. 7 776 000 (90 days); default 604 800 (7 days).
    pub window_seconds: Option<i64>,
}

/// What a valid [`FunnelInput`] is.
#[derive(Debug, Clone, PartialEq)]
pub struct NewFunnel {
    pub name: String,
    pub steps: Vec<Uuid>,
    pub window_seconds: i32,
}

impl TryFrom<&FunnelInput> for NewFunnel {
    type Error = Vec<FieldError>;

    /// Checks the shape (not whether the goals are the experiment's: that needs the
    /// database).
    fn try_from(input: &FunnelInput) -> Result<Self, Self::Error> {
        let mut errors = Vec::new();
        let name = input.name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            errors.push(field_error("name", "1 to 100 characters"));
        }
        if !(MIN_STEPS..=MAX_STEPS).contains(&input.steps.len()) {
            errors.push(field_error(
                "steps",
                format!("a funnel has {MIN_STEPS} to {MAX_STEPS} steps"),
            ));
        }
        let distinct: HashSet<&Uuid> = input.steps.iter().collect();
        if distinct.len() != input.steps.len() {
            errors.push(field_error("steps", "a goal may be one step only"));
        }
        let window = input
            .window_seconds
            .unwrap_or(i64::from(DEFAULT_WINDOW_SECONDS));
        let window_ok =
            (i64::from(MIN_WINDOW_SECONDS)..=i64::from(MAX_WINDOW_SECONDS)).contains(&window);
        if !window_ok {
            errors.push(field_error(
                "window_seconds",
                format!("{MIN_WINDOW_SECONDS} (one minute) to {MAX_WINDOW_SECONDS} (90 days)"),
            ));
        }
        match (errors.is_empty(), i32::try_from(window)) {
            (true, Ok(window_seconds)) => Ok(Self {
                name: name.to_owned(),
                steps: input.steps.clone(),
                window_seconds,
            }),
            _ => Err(errors),
        }
    }
}

fn field_error(field: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.to_owned(),
        message: message.into(),
    }
}

fn view(row: db::FunnelRow, steps: &[db::StepRow]) -> FunnelView {
    FunnelView {
        id: row.id,
        experiment_id: row.experiment_id,
        name: row.name,
        window_seconds: row.window_seconds,
        steps: steps
            .iter()
            .filter(|s| s.funnel_id == row.id)
            .map(|s| FunnelStepView {
                goal_id: s.goal_id,
                goal_name: s.goal_name.clone(),
            })
            .collect(),
        created_at: row.created_at,
    }
}

/// Both path ids, or 404 (see `crate::extract::PathId`).
fn ids(id: &str, funnel_id: &str) -> ApiResult<(Uuid, Uuid)> {
    match (id.parse::<Uuid>(), funnel_id.parse::<Uuid>()) {
        (Ok(id), Ok(funnel_id)) => Ok((id, funnel_id)),
        _ => Err(ApiError::NotFound("funnel")),
    }
}

// ---------------------------------------------------------------------------------------
// CRUD

/// Creates a funnel of the experiment (editor and up; any status but archived: a funnel
/// changes nothing visitors see, and is computed from the events already recorded).
#[utoipa::path(post, path = "/experiments/{id}/funnels", tag = "results",
    request_body = FunnelInput,
    params(("id" = Uuid, Path, description = "Experiment id")),
    responses(
        (status = 201, description = "The funnel", body = FunnelView),
        (status = 404, description = "No such experiment in your organisation", body = Problem),
        (status = 409, description = "Name taken, too many funnels, or the experiment is archived", body = Problem),
        (status = 422, description = "Invalid name, steps or window; a step not a goal of the experiment", body = Problem),
    ),
    security(("bearer" = []), ("console_session" = [])))]
async fn create_funnel(
    State(state): State<AppState>,
    RequireRole { actor, .. }: RequireRole<Editor>,
    PathId(id): PathId,
    Json(input): Json<FunnelInput>,
) -> ApiResult<(StatusCode, axum::Json<FunnelView>)> {
    let experiment = results_db::experiment_in_org(&state.pool, actor.org_id, id)
        .await?
        .ok_or(ApiError::NotFound("experiment"))?;
    let new = NewFunnel::try_from(&input).map_err(ApiError::Validation)?;
    if experiment.status == Status::Archived {
        return Err(ApiError::conflict(
            "not_editable",
            "an archived experiment gets no new funnel",
        ));
    }
    let mut tx = state.pool.begin().await?;
    let goals = db::goals_of(&mut tx, id, &new.steps).await?;
    if goals.len() != new.steps.len() {
        return Err(ApiError::validation(
            "steps",
            "every step must be one of this experiment's goals",
        ));
    }
    if db::of_experiment(&state.pool, id).await?.len() >= MAX_FUNNELS {
        return Err(ApiError::conflict(
            "too_many_funnels",
            format!("an experiment has at most {MAX_FUNNELS} funnels"),
        ));
    }
    let row = db::insert(&mut tx, id, &new.name, new.window_seconds, &new.steps)
        .await
        .map_err(ApiError::conflict_on_unique(
            "funnel_name_taken",
            "the experiment already has a funnel with this name",
        ))?;
    let by_id: HashMap<Uuid, &str> = goals.iter().map(|g| (g.id, g.name.as_str())).collect();
    let steps: Vec<db::StepRow> = new
        .steps
        .iter()
        .enumerate()
        .map(|(i, g)| db::StepRow {
            funnel_id: row.id,
            position: i16::try_from(i).unwrap_or(i16::MAX),
            goal_id: *g,
            goal_name: by_id.get(g).copied().unwrap_or_default().to_owned(),
            key: String::new(),
        })
        .collect();
    let out = view(row, &steps);
    let change = Change::new("funnel.created", "experiment", id).after(serde_json::json!({
        "funnel_id": out.id,
        "name": out.name,
        "steps": new.steps,
        "window_seconds": out.window_seconds,
    }));
    audit::record_by(&mut tx, &actor, change).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, axum::Json(out)))
}

/// The experiment's funnels, oldest first (viewer and up).
#[utoipa::path(get, path = "/experiments/{id}/funnels", tag = "results",
    params(("id" = Uuid, Path, description = "Experiment id")),
    responses(
        (status = 200, body = Vec<FunnelView>),
        (status = 404, description = "No such experiment in your organisation", body = Problem),
    ),
    security(("bearer" = []), ("console_session" = [])))]
async fn list_funnels(
    State(state): State<AppState>,
    RequireRole { actor, .. }: RequireRole<Viewer>,
    PathId(id): PathId,
) -> ApiResult<axum::Json<Vec<FunnelView>>> {
    results_db::experiment_in_org(&state.pool, actor.org_id, id)
        .await?
        .ok_or(ApiError::NotFound("experiment"))?;
    let rows = db::of_experiment(&state.pool, id).await?;
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let steps = db::steps_of(&state.pool, &ids).await?;
    Ok(axum::Json(
        rows.into_iter().map(|r| view(r, &steps)).collect(),
    ))
}

/// Deletes a funnel (editor and up).
#[utoipa::path(delete, path = "/experiments/{id}/funnels/{funnel_id}", tag = "results",
    params(("id" = Uuid, Path, description = "Experiment id"), ("funnel_id" = Uuid, Path, description = "Funnel id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such experiment or funnel in your organisation", body = Problem),
    ),
    security(("bearer" = []), ("console_session" = [])))]
async fn delete_funnel(
    State(state): State<AppState>,
    RequireRole { actor, .. }: RequireRole<Editor>,
    Path((id, funnel_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let (id, funnel_id) = ids(&id, &funnel_id)?;
    results_db::experiment_in_org(&state.pool, actor.org_id, id)
        .await?
        .ok_or(ApiError::NotFound("funnel"))?;
    let mut tx = state.pool.begin().await?;
    let name = db::delete(&mut tx, id, funnel_id)
        .await?
        .ok_or(ApiError::NotFound("funnel"))?;
    let change = Change::new("funnel.deleted", "experiment", id)
        .before(serde_json::json!({ "funnel_id": funnel_id, "name": name }));
    audit::record_by(&mut tx, &actor, change).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------------------
// Results

/// One step of one arm.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FunnelStepResult {
    pub goal_id: Uuid,
    /// Visitors who completed this step and every one before it, in order, in the window.
    pub reached: u64,
    /// `reached / entered`; null without visitors.
    pub rate_from_entry: Option<f64>,
    /// Wilson 95 % interval of `rate_from_entry` (`{"lower", "upper"}`).
    #[schema(value_type = Option<Object>)]
    pub rate_interval: Option<Interval>,
    /// `reached / reached at the previous step` (entered for the first step).
    pub rate_from_previous: Option<f64>,
    /// Visitors lost since the previous step.
    pub drop_off: u64,
    /// `drop_off / previous`.
    pub drop_off_rate: Option<f64>,
    /// Against the control (null for the control, or when an arm has no visitor).
    pub comparison: Option<FunnelStepComparison>,
}

/// An arm's reach of a step against the control's.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FunnelStepComparison {
    /// `rate_from_entry − control's rate_from_entry`.
    pub difference: f64,
    /// Newcombe hybrid score 95 % interval of the difference (`{"lower", "upper"}`).
    #[schema(value_type = Object)]
    pub interval: Interval,
    /// Pooled two-proportion z-test: one look, for exploring.
    pub z: f64,
    pub p_value: f64,
    /// `p_value` Holm-adjusted over every (step, arm) comparison of the funnel.
    pub p_value_holm: f64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FunnelArmResult {
    pub id: Uuid,
    pub name: String,
    pub is_control: bool,
    /// Visitors assigned to the arm (per allocation unit).
    pub entered: u64,
    pub steps: Vec<FunnelStepResult>,
}

/// One compared subject of a [`FunnelSet`]: an arm, or a variant of a factorial
/// experiment's element, pooling the arms (combinations) that show it.
struct FunnelSubject {
    id: Uuid,
    name: String,
    is_control: bool,
    /// Indexes into the experiment's arms whose counts add up to the subject's.
    pooled: Vec<usize>,
}

/// A comparison set of the funnel, before the statistics.
struct FunnelSet {
    scope: &'static str,
    element_id: Option<Uuid>,
    element_name: Option<String>,
    subjects: Vec<FunnelSubject>,
}

/// The funnel over one comparison set: all arms, one element's arms (independent
/// multi-element experiments), or one element's main effect (factorial experiments:
/// each variant pools the combinations that show it; `arms` then lists the variants).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FunnelAnalysis {
    /// `arms`, `element` or `main_effect`.
    pub scope: &'static str,
    pub element_id: Option<Uuid>,
    pub element_name: Option<String>,
    pub arms: Vec<FunnelArmResult>,
}

/// A caveat to show with the funnel.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FunnelWarning {
    /// `exploratory`, `small_arms`, `raw_events_expired`, `raw_events_capped` or
    /// `computed_in_background` (added when the answer is the background's).
    pub code: &'static str,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FunnelResults {
    pub funnel: FunnelView,
    pub analyses: Vec<FunnelAnalysis>,
    /// Raw events of days before this one were dropped (retention): the funnel is
    /// complete for visitors who entered from this day on. Null when nothing is missing.
    #[schema(format = Date)]
    pub complete_from: Option<String>,
    pub warnings: Vec<FunnelWarning>,
    /// When this was computed.
    #[serde(with = "time::serde::rfc3339")]
    pub computed_at: OffsetDateTime,
}

/// Reached-step counts per arm, from the rows of [`db::stream_step_events`]: the rows
/// of one (visitor, unit) are consecutive and in time order. `masks` maps a goal name to
/// the steps (bits) it is.
pub async fn fold_visitors<S>(
    rows: S,
    masks: &HashMap<String, u32>,
    steps: usize,
    window_ms: i64,
) -> sqlx::Result<HashMap<Uuid, Vec<u64>>>
where
    S: futures_util::Stream<Item = sqlx::Result<db::StepEventRow>>,
{
    let mut reached: HashMap<Uuid, Vec<u64>> = HashMap::new();
    let mut current: Option<(String, Uuid, Uuid, i64)> = None;
    let mut events: Vec<StepEvent> = Vec::new();
    let mut close = |key: &Option<(String, Uuid, Uuid, i64)>, events: &mut Vec<StepEvent>| {
        if let Some((_, _, arm, entry)) = key {
            let r = steps_reached(*entry, window_ms, events, steps);
            let counts = reached.entry(*arm).or_insert_with(|| vec![0; steps]);
            for c in counts.iter_mut().take(r) {
                *c += 1;
            }
        }
        events.clear();
    };
    futures_util::pin_mut!(rows);
    while let Some(row) = rows.try_next().await? {
        let same = current
            .as_ref()
            .is_some_and(|(v, u, _, _)| *v == row.visitor_id && *u == row.unit);
        if !same {
            close(&current, &mut events);
            current = Some((row.visitor_id, row.unit, row.arm_id, ms(row.first_seen_at)));
        }
        events.push(StepEvent {
            ts_ms: ms(row.ts),
            steps: masks.get(&row.goal).copied().unwrap_or(0),
        });
    }
    close(&current, &mut events);
    Ok(reached)
}

fn ms(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// A funnel's results (viewer and up), computed from raw events now. Fixed-horizon
/// statistics for exploring: the primary goal's always-valid test is the decision.
///
/// A funnel whose computation runs past `SAMPLIT_ANALYSIS_TIMEOUT_MS` is computed in the
/// background instead ([`crate::funnel_runs`]): `202` with `Retry-After` until it is done,
/// then its answer with its age (`computed_at`, the warning `computed_in_background`),
/// computed again in the background when asked for more than [`REFRESH_AFTER`] later.
/// Another funnel of an experiment one of whose funnels needed the background within
/// [`SIBLINGS_REMEMBERED`] goes there at once.
#[utoipa::path(get, path = "/experiments/{id}/funnels/{funnel_id}/results", tag = "results",
    params(("id" = Uuid, Path, description = "Experiment id"), ("funnel_id" = Uuid, Path, description = "Funnel id")),
    responses(
        (status = 200, body = FunnelResults),
        (status = 202, description = "The funnel takes longer than `SAMPLIT_ANALYSIS_TIMEOUT_MS` to compute and is being computed in the background: ask again after `Retry-After`", body = FunnelComputing),
        (status = 404, description = "No such experiment or funnel in your organisation", body = Problem),
        (status = 429, description = "Your organisation's earlier funnel computations kept its turn past `SAMPLIT_ANALYSIS_WAIT_MS`, or it already has `SAMPLIT_ANALYSIS_BACKGROUND_PER_ORG` funnels being computed in the background; retry after `Retry-After`", body = Problem),
        (status = 503, description = "`busy`: every analysis slot of the server stayed busy; retry after `Retry-After`. `analysis_timeout`: even in the background the computation ran past `SAMPLIT_ANALYSIS_BACKGROUND_TIMEOUT_MS` and was stopped in the database (asked again an hour later, it is tried again)", body = Problem),
    ),
    security(("bearer" = []), ("console_session" = [])))]
async fn funnel_results(
    State(state): State<AppState>,
    RequireRole { actor, .. }: RequireRole<Viewer>,
    Path((id, funnel_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let (id, funnel_id) = ids(&id, &funnel_id)?;
    let experiment = results_db::experiment_in_org(&state.pool, actor.org_id, id)
        .await?
        .ok_or(ApiError::NotFound("funnel"))?;
    let row = db::one(&state.pool, id, funnel_id)
        .await?
        .ok_or(ApiError::NotFound("funnel"))?;
    // After the authorisation checks: what the background has for it, if it needed it.
    if let Some(run) = db::run_of(&state.pool, funnel_id).await?
        && let Some(answer) = from_background(&state, actor.org_id, funnel_id, run).await?
    {
        return Ok(answer);
    }
    // What a funnel costs is its experiment's visitors and its site's conversions, not its
    // steps: when another funnel of the experiment needed the background lately, this one
    // will too, so it is queued without first spending a request's budget on it.
    if db::sibling_needed_background(&state.pool, id, funnel_id, SIBLINGS_REMEMBERED).await?
        && let Some(requested_at) = queue(&state, actor.org_id, funnel_id).await?
    {
        tracing::info!(%funnel_id, "another funnel of the experiment needed the background: queued at once");
        return Ok(computing(&state, requested_at));
    }
    // Another organisation's ids never take a slot.
    let slot = state.analyses.enter(actor.org_id).await?;
    match compute(&state, &experiment, row, &slot).await {
        Ok(results) => Ok(axum::Json(results).into_response()),
        Err(e) if analysis_gate::is_spent(&e) => {
            drop(slot);
            match queue(&state, actor.org_id, funnel_id).await? {
                Some(requested_at) => {
                    tracing::info!(%funnel_id, "funnel too slow for a request: computed in the background");
                    Ok(computing(&state, requested_at))
                }
                None => Ok(background_full(
                    state.config.limits.analysis_background_per_org,
                )),
            }
        }
        Err(e) => Err(e),
    }
}

/// A background result is served for this long; asked for later, it is served once
/// more and computed again in the background.
pub const REFRESH_AFTER: time::Duration = time::Duration::minutes(10);
/// After a background computation failed, the funnel is tried again (live first) when
/// asked for this long after.
pub const RETRY_FAILED_AFTER: time::Duration = time::Duration::hours(1);
/// A funnel is queued for the background at once, without a live attempt, when another
/// funnel of its experiment needed the background within this long.
pub const SIBLINGS_REMEMBERED: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
/// `Retry-After` of a `202`.
const RETRY_AFTER_SECS: u64 = 5;

/// The answer the background has for a funnel, if any: its last result (asking for a
/// newer one when it is older than [`REFRESH_AFTER`]), `202` while the first is being
/// computed, or its failure within [`RETRY_FAILED_AFTER`]. `None`: compute it now.
async fn from_background(
    state: &AppState,
    org_id: Uuid,
    funnel_id: Uuid,
    run: db::RunRow,
) -> ApiResult<Option<Response>> {
    let now = OffsetDateTime::now_utc();
    // The last background computation failed recently: not tried again before the hour.
    let failed = run
        .failed_at
        .is_some_and(|at| now - at < RETRY_FAILED_AFTER);
    if let (Some(mut result), Some(result_at)) = (run.result, run.result_at) {
        let mut refreshing = run.requested_at.is_some();
        let mut waits = false;
        if !refreshing && !failed && now - result_at > REFRESH_AFTER {
            refreshing = queue(state, org_id, funnel_id).await?.is_some();
            waits = !refreshing;
        }
        let message = format!(
            "this funnel takes longer than {} s to compute, so it was computed in the \
             background at {}{}",
            state.config.limits.analysis_timeout.as_secs_f64(),
            result_at
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            if refreshing {
                "; a newer computation is under way"
            } else if waits {
                "; a newer one waits for your organisation's other funnels in the background"
            } else if failed {
                "; the last newer computation ran past the background limit and is tried \
                 again an hour later"
            } else {
                "; viewed after ten minutes, it is computed again"
            }
        );
        if let Some(warnings) = result
            .get_mut("warnings")
            .and_then(serde_json::Value::as_array_mut)
        {
            warnings.push(serde_json::json!({
                "code": "computed_in_background",
                "message": message,
            }));
        }
        return Ok(Some(axum::Json(result).into_response()));
    }
    if let Some(requested_at) = run.requested_at {
        return Ok(Some(computing(state, requested_at)));
    }
    if let Some(failure) = run.failure
        && failed
    {
        return Err(ApiError::coded(
            StatusCode::SERVICE_UNAVAILABLE,
            ANALYSIS_TIMEOUT,
            failure,
        ));
    }
    Ok(None)
}

/// Queues the funnel for the background worker within its organisation's share
/// (`SAMPLIT_ANALYSIS_BACKGROUND_PER_ORG`): when it was asked for, or `None` when the
/// share is taken.
async fn queue(
    state: &AppState,
    org_id: Uuid,
    funnel_id: Uuid,
) -> ApiResult<Option<OffsetDateTime>> {
    let limit = state.config.limits.analysis_background_per_org;
    Ok(db::request_run(&state.pool, funnel_id, org_id, limit).await?)
}

/// `429`: the organisation already has `limit` funnels waiting for or in a background
/// computation; this one is not queued.
fn background_full(limit: i64) -> Response {
    let mut response = ApiError::coded(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!(
            "this funnel takes too long to compute while you wait, and your organisation \
             already has {limit} funnels being computed in the background \
             (SAMPLIT_ANALYSIS_BACKGROUND_PER_ORG): ask again once they are done"
        ),
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from(60u32));
    response
}

/// A funnel being computed in the background.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FunnelComputing {
    /// `computing`.
    pub status: &'static str,
    /// When the background computation was asked for.
    #[serde(with = "time::serde::rfc3339")]
    pub requested_at: OffsetDateTime,
    pub message: String,
}

/// `202`: the funnel is being computed in the background since `requested_at`.
fn computing(state: &AppState, requested_at: OffsetDateTime) -> Response {
    let body = FunnelComputing {
        status: "computing",
        requested_at,
        message: format!(
            "this funnel takes longer than {} s to compute (SAMPLIT_ANALYSIS_TIMEOUT_MS), \
             so it is being computed in the background; ask again in a few seconds",
            state.config.limits.analysis_timeout.as_secs_f64()
        ),
    };
    (
        StatusCode::ACCEPTED,
        [(header::RETRY_AFTER, RETRY_AFTER_SECS.to_string())],
        axum::Json(body),
    )
        .into_response()
}

/// A funnel's results computed now, inside `slot`'s time budget (a request's or the
/// background's): `503 analysis_timeout` when PostgreSQL stopped it there.
pub(crate) async fn compute(
    state: &AppState,
    experiment: &results_db::ExperimentRow,
    row: db::FunnelRow,
    slot: &AnalysisPermit<'_>,
) -> ApiResult<FunnelResults> {
    let (id, funnel_id) = (experiment.id, row.id);
    let step_rows = db::steps_of(&state.pool, &[funnel_id]).await?;
    let n_steps = step_rows.len();
    let mut masks: HashMap<String, u32> = HashMap::new();
    for (i, s) in step_rows.iter().enumerate() {
        *masks.entry(s.key.clone()).or_default() |= 1u32 << i;
    }
    let keys: Vec<String> = masks.keys().cloned().collect();
    let window_ms = i64::from(row.window_seconds) * 1000;

    // One snapshot for the entries and the events: a visitor assigned between the two
    // reads would otherwise reach a step without having entered.
    let mut tx = state.pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    // The statements below stop in the database when the slot's time budget is spent
    // (`analysis_gate`), before the request's own timeout.
    let stopped = |e: sqlx::Error| slot.stopped(e);
    slot.arm(&mut tx).await?;
    let entries = db::entries(&mut tx, id).await.map_err(stopped)?;
    let first = entries.iter().map(|e| e.first).min();
    let last = entries.iter().map(|e| e.last).max();
    let mut reached: HashMap<Uuid, Vec<u64>> = HashMap::new();
    let mut capped: Vec<(Date, i64)> = Vec::new();
    if let (Some(first), Some(last)) = (first, last) {
        let q = db::StepEventQuery {
            experiment_id: id,
            site_id: experiment.site_id,
            keys: &keys,
            window_seconds: row.window_seconds,
            from_day: first.date(),
            to_day: (last + time::Duration::seconds(i64::from(row.window_seconds))).date(),
        };
        let started = std::time::Instant::now();
        slot.arm(&mut tx).await?;
        let rows = db::stream_step_events(&mut tx, &q);
        reached = fold_visitors(rows, &masks, n_steps, window_ms)
            .await
            .map_err(stopped)?;
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "funnel folded"
        );
        // The days of those partitions on which the raw-event quota left rows out.
        slot.arm(&mut tx).await?;
        capped = raw_events::capped_days(&mut tx, q.site_id, q.from_day, q.to_day)
            .await
            .map_err(stopped)?;
    }
    tx.commit().await?;
    let entered: HashMap<Uuid, u64> = entries
        .iter()
        .map(|e| (e.arm_id, u64::try_from(e.entered).unwrap_or(0)))
        .collect();

    // The arms, and the comparison sets (as the results and segments make them).
    let arms = match step_rows.first() {
        Some(s) => results_db::arm_aggregates(&state.pool, id, s.goal_id).await?,
        None => Vec::new(),
    };
    let variants = results_db::variants_of(&state.pool, id).await?;
    // The comparison sets: every arm, or each independent element's arms; a factorial
    // experiment also gets each element's main effect (each variant pools the
    // combinations that show it: a visitor is in one combination, so counts add up).
    let arm_subject = |i: usize| FunnelSubject {
        id: arms[i].arm_id,
        name: arms[i].name.clone(),
        is_control: arms[i].is_control,
        pooled: vec![i],
    };
    let mut sets: Vec<FunnelSet> = super::results::arm_groups(experiment.kind.0, &arms, &variants)
        .into_iter()
        .map(|g| {
            let (element_id, element_name) = g.element.unzip();
            FunnelSet {
                scope: g.scope,
                element_id,
                element_name,
                subjects: g.members.into_iter().map(arm_subject).collect(),
            }
        })
        .collect();
    if experiment.kind.0 == Mode::Factorial {
        sets.extend(
            super::results::main_effect_groups(&arms, &variants)
                .into_iter()
                .map(|effect| FunnelSet {
                    scope: "main_effect",
                    element_id: Some(effect.element_id),
                    element_name: Some(effect.element_name),
                    subjects: effect
                        .variants
                        .into_iter()
                        .map(|(v, shown)| FunnelSubject {
                            id: v.id,
                            name: v.name.clone(),
                            is_control: v.is_control,
                            pooled: shown,
                        })
                        .collect(),
                }),
        );
    }

    let mut analyses = Vec::with_capacity(sets.len());
    let mut small = false;
    for set in sets {
        if set.subjects.is_empty() || n_steps < MIN_STEPS {
            continue;
        }
        let counts: Vec<FunnelCounts> = set
            .subjects
            .iter()
            .map(|subject| {
                let mut c = FunnelCounts::new(n_steps);
                for arm in subject.pooled.iter().map(|&i| arms[i].arm_id) {
                    c.entered += entered.get(&arm).copied().unwrap_or(0);
                    if let Some(r) = reached.get(&arm) {
                        for (total, n) in c.reached.iter_mut().zip(r) {
                            *total += n;
                        }
                    }
                }
                c
            })
            .collect();
        small |= counts.iter().any(|c| c.entered < MIN_ARM_VISITORS);
        let control = set
            .subjects
            .iter()
            .position(|subject| subject.is_control)
            .unwrap_or(0);
        let out = analyze_funnel(&counts, control, LEVEL)
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("funnel {funnel_id}: {e}")))?;
        let arm_results = set
            .subjects
            .into_iter()
            .zip(out)
            .map(|(subject, a)| FunnelArmResult {
                id: subject.id,
                name: subject.name,
                is_control: subject.is_control,
                entered: a.entered,
                steps: a
                    .steps
                    .into_iter()
                    .enumerate()
                    .map(|(k, s)| FunnelStepResult {
                        goal_id: step_rows[k].goal_id,
                        reached: s.reached,
                        rate_from_entry: s.rate_from_entry,
                        rate_interval: s.interval,
                        rate_from_previous: s.rate_from_previous,
                        drop_off: s.drop_off,
                        drop_off_rate: s.drop_off_rate,
                        comparison: a.comparisons.get(k).cloned().flatten().map(|c| {
                            FunnelStepComparison {
                                difference: c.difference,
                                interval: c.interval,
                                z: c.z,
                                p_value: c.p_value,
                                p_value_holm: c.p_value_holm,
                            }
                        }),
                    })
                    .collect(),
            })
            .collect();
        analyses.push(FunnelAnalysis {
            scope: set.scope,
            element_id: set.element_id,
            element_name: set.element_name,
            arms: arm_results,
        });
    }

    let now = OffsetDateTime::now_utc();
    let complete_from =
        incomplete_before(first, now.date(), state.config.raw_events_retention_days);
    let mut warnings = vec![FunnelWarning {
        code: "exploratory",
        message: "p-values are for one look at the data and Holm-adjusted over the funnel's \
                  steps and arms: a funnel shows where the arms differ; the primary goal's \
                  always-valid test is the decision"
            .to_owned(),
    }];
    if small {
        warnings.push(FunnelWarning {
            code: "small_arms",
            message: format!(
                "an arm has fewer than {MIN_ARM_VISITORS} visitors: its rates are imprecise"
            ),
        });
    }
    if let Some(day) = complete_from {
        warnings.push(FunnelWarning {
            code: "raw_events_expired",
            message: format!(
                "raw events older than the retention ({} days) are gone: the funnel is \
                 complete only for visitors who entered on or after {day}",
                state.config.raw_events_retention_days
            ),
        });
    }
    if let Some(message) = capped_message(&capped) {
        warnings.push(FunnelWarning {
            code: "raw_events_capped",
            message,
        });
    }
    let funnel = view(row, &step_rows);
    Ok(FunnelResults {
        funnel,
        analyses,
        complete_from: complete_from.map(|d| d.to_string()),
        warnings,
        computed_at: now,
    })
}

/// The `raw_events_capped` warning's message for the days (in order, with the rows left
/// out) on which the site's raw-event quota was reached, if any.
pub fn capped_message(days: &[(Date, i64)]) -> Option<String> {
    let (first, _) = days.first()?;
    let (last, _) = days.last()?;
    let dropped: i64 = days.iter().map(|(_, n)| n).sum();
    let when = if days.len() == 1 {
        format!("on {first}")
    } else {
        format!("on {} days from {first} to {last}", days.len())
    };
    Some(format!(
        "the site reached its daily raw-event quota {when}: {dropped} raw events were not \
         kept, so the funnel undercounts visitors and steps there; the results page, from \
         aggregates that count every event, does not"
    ))
}

/// The first day whose raw events are all still kept, if the earliest entry is before
/// it (the housekeeping drops the partitions of days before `today − retention`).
pub fn incomplete_before(
    first_entry: Option<OffsetDateTime>,
    today: Date,
    retention_days: u32,
) -> Option<Date> {
    let oldest_kept = today - time::Duration::days(i64::from(retention_days));
    first_entry
        .map(OffsetDateTime::date)
        .filter(|d| *d < oldest_kept)
        .map(|_| oldest_kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(steps: usize, window: Option<i64>) -> FunnelInput {
        FunnelInput {
            name: "Checkout".to_owned(),
            steps: (0..steps).map(|_| Uuid::new_v4()).collect(),
            window_seconds: window,
        }
    }

    #[test]
    fn validates_the_shape() {
        let ok = NewFunnel::try_from(&input(3, None)).unwrap();
        assert_eq!(ok.window_seconds, DEFAULT_WINDOW_SECONDS);
        assert!(NewFunnel::try_from(&input(1, None)).is_err());
        assert!(NewFunnel::try_from(&input(9, None)).is_err());
        assert!(NewFunnel::try_from(&input(8, Some(60))).is_ok());
        assert!(NewFunnel::try_from(&input(2, Some(59))).is_err());
        assert!(NewFunnel::try_from(&input(2, Some(7_776_001))).is_err());
        assert!(NewFunnel::try_from(&input(2, Some(i64::MAX))).is_err());
        let mut dup = input(2, None);
        dup.steps[1] = dup.steps[0];
        let errs = NewFunnel::try_from(&dup).unwrap_err();
        assert_eq!(errs.len(), 1);
        let mut blank = input(2, None);
        blank.name = "  ".to_owned();
        assert!(NewFunnel::try_from(&blank).is_err());
    }

    #[tokio::test]
    async fn folds_each_visitor_and_unit_in_turn() {
        let (arm_a, arm_b, unit) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let t0 = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let at = |s: i64| t0 + time::Duration::seconds(s);
        let row = |v: &str, arm: Uuid, goal: &str, s: i64| {
            Ok(db::StepEventRow {
                visitor_id: v.to_owned(),
                unit,
                arm_id: arm,
                first_seen_at: t0,
                ts: at(s),
                goal: goal.to_owned(),
            })
        };
        // Steps: cart (0), pay (1); `other` is no step's goal.
        let masks = HashMap::from([("cart".to_owned(), 1), ("pay".to_owned(), 2)]);
        let rows = futures_util::stream::iter(vec![
            row("a", arm_a, "cart", 1),
            row("a", arm_a, "pay", 2),
            row("b", arm_a, "pay", 1),
            row("b", arm_a, "cart", 2),
            row("c", arm_b, "cart", 1),
            row("c", arm_b, "other", 2),
            row("c", arm_b, "pay", 4000),
        ]);
        let out = fold_visitors(rows, &masks, 2, 3_600_000).await.unwrap();
        assert_eq!(out[&arm_a], [2, 1]);
        assert_eq!(out[&arm_b], [1, 0], "pay after the window");
    }

    #[test]
    fn the_capped_warning_names_the_days_and_the_rows_left_out() {
        use time::macros::date;
        assert_eq!(capped_message(&[]), None);
        let one = capped_message(&[(date!(2026 - 12 - 01), 7)]).unwrap();
        assert!(
            one.contains("on 2026-12-01:") && one.contains(" 7 raw events"),
            "{one}"
        );
        let three = capped_message(&[
            (date!(2026 - 12 - 01), 7),
            (date!(2026 - 12 - 03), 5),
            (date!(2026 - 12 - 04), 1),
        ])
        .unwrap();
        assert!(
            three.contains("on 3 days from 2026-12-01 to 2026-12-04")
                && three.contains(" 13 raw events")
                && three.contains("undercounts")
                && three.contains("results page"),
            "{three}"
        );
    }

    #[test]
    fn retention_warning_day() {
        let today = time::macros::date!(2026 - 12 - 05);
        let at = |d: Date| d.midnight().assume_utc();
        // Retention 90: 2026-09-06 is the oldest kept day.
        let kept = time::macros::date!(2026 - 09 - 06);
        assert_eq!(incomplete_before(Some(at(kept)), today, 90), None);
        assert_eq!(
            incomplete_before(Some(at(kept.previous_day().unwrap())), today, 90),
            Some(kept)
        );
        assert_eq!(incomplete_before(None, today, 90), None);
    }
}
