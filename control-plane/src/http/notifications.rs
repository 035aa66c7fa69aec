//! Alerts (issue 15): each person's alert preferences, their per-experiment overrides,
//! and the organisation's recent alerts. A person's settings, so only people: an API key
//! gets 403.
//!
//! - `GET /notifications/preferences`, `PUT /notifications/preferences` {winner?, srm?,
//!   guardrail_harmed?, publish_failing?} (any member, for themselves, in the current
//!   organisation): each kind on or off; a kind never set follows the role (owners and
//!   admins on, editors and viewers off).
//! - `GET /experiments/{id}/alerts`, `PUT /experiments/{id}/alerts` {mode: follow | mute
//!   | default} (any member): the caller's override of one experiment (follow = every
//!   experiment alert of it, mute = none) and the experiment's alert states. Another
//!   organisation's experiment is a 404.
//! - `GET /alerts?limit=` (any member): the organisation's latest fired alerts.
//!
//! When alerts fire and who receives them: `crate::alerts`, `docs/alerts.md`.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::rfc3339;
use crate::alerts::AlertKind;
use crate::auth::roles::Viewer;
use crate::auth::{Actor, RequireRole, Role};
use crate::db;
use crate::db::alerts as alerts_db;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{Json, PathId, Query};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(
            notification_preferences,
            notification_set_preferences
        ))
        .routes(routes!(
            alert_experiment_settings,
            alert_set_experiment_mode
        ))
        .routes(routes!(alert_list))
}

/// The caller's user id: alert settings are a person's, never an API key's.
fn person(actor: &Actor) -> ApiResult<Uuid> {
    actor.user_id().ok_or(ApiError::Forbidden(
        "alert settings belong to a person: use a user's session, not an API key",
    ))
}

/// What a role gets of a kind it never set: owners and admins every kind.
pub fn role_default(role: Role) -> bool {
    role >= Role::Admin
}

/// One kind of alert and whether the caller receives it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PreferenceView {
    pub kind: AlertKind,
    pub enabled: bool,
    /// Whether `enabled` is the role's default (the kind was never set).
    pub is_default: bool,
    /// What the caller's role gets by default.
    pub role_default: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PreferencesView {
    /// Every kind, in a fixed order.
    pub preferences: Vec<PreferenceView>,
    /// Alerts are mailed to verified addresses only.
    pub email_verified: bool,
}

async fn preferences_view(
    state: &AppState,
    actor: &Actor,
    user: Uuid,
) -> ApiResult<PreferencesView> {
    let set = alerts_db::preferences(&state.pool, user, actor.org_id).await?;
    let default = role_default(actor.role);
    Ok(PreferencesView {
        preferences: AlertKind::ALL
            .into_iter()
            .map(|kind| {
                let explicit = set.iter().find(|(k, _)| *k == kind).map(|(_, e)| *e);
                PreferenceView {
                    kind,
                    enabled: explicit.unwrap_or(default),
                    is_default: explicit.is_none(),
                    role_default: default,
                }
            })
            .collect(),
        email_verified: alerts_db::email_verified(&state.pool, user).await?,
    })
}

/// Your alert preferences in the current organisation.
#[utoipa::path(
    get, path = "/notifications/preferences", tag = "alerts",
    responses(
        (status = 200, body = PreferencesView),
        (status = 401, description = "Not authenticated", body = Problem),
        (status = 403, description = "An API key (settings are a person's)", body = Problem),
    ),
    security(("bearer" = []))
)]
async fn notification_preferences(
    State(state): State<AppState>,
    RequireRole { actor, .. }: RequireRole<Viewer>,
) -> ApiResult<axum::Json<PreferencesView>> {
    let user = person(&actor)?;
    Ok(axum::Json(preferences_view(&state, &actor, user).await?))
}

/// Kinds to turn on (`true`) or off (`false`); a kind left out keeps its setting.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreferencesInput {
    pub winner: Option<bool>,
    pub srm: Option<bool>,
    pub guardrail_harmed: Option<bool>,
    pub publish_failing: Option<bool>,
}

/// Turns kinds of alerts on or off for you in the current organisation.
#[utoipa::path(
    put, path = "/notifications/preferences", tag = "alerts",
    request_body = PreferencesInput,
    responses(
        (status = 200, body = PreferencesView),
        (status = 400, description = "Malformed body or unknown kind", body = Problem),
        (status = 401, description = "Not authenticated", body = Problem),
        (status = 403, description = "An API key (settings are a person's)", body = Problem),
    ),
    security(("bearer" = []))
)]
async fn notification_set_preferences(
    State(state): State<AppState>,
    RequireRole { actor, .. }: RequireRole<Viewer>,
    Json(body): Json<PreferencesInput>,
) -> ApiResult<axum::Json<PreferencesView>> {
    let user = person(&actor)?;
    let changes = [
        (AlertKind::Winner, body.winner),
        (AlertKind::Srm, body.srm),
        (AlertKind::GuardrailHarmed, body.guardrail_harmed),
        (AlertKind::PublishFailing, body.publish_failing),
    ];
    let mut tx = state.pool.begin().await?;
    for (kind, enabled) in changes {
        if let Some(enabled) = enabled {
            alerts_db::set_preference(&mut tx, user, actor.org_id, kind, enabled).await?;
        }
    }
    tx.commit().await?;
    Ok(axum::Json(preferences_view(&state, &actor, user).await?))
}

/// A person's override of one experiment's alerts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertMode {
    /// Every alert of the experiment, whatever the preferences.
    Follow,
    /// None of them.
    Mute,
    /// As the preferences say.
    Default,
}

/// One experiment alert: its state and whether the caller receives it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExperimentAlertState {
    pub kind: AlertKind,
    /// The condition holds now (as of the last alert pass).
    pub active: bool,
    /// How many times it fired.
    pub activations: i32,
    /// When it last changed (RFC 3339); null if it never fired.
    pub changed_at: Option<String>,
    /// Whether the caller is mailed when it fires (override, else preference, else role).
    pub receives: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExperimentAlertsView {
    pub experiment_id: Uuid,
    pub mode: AlertMode,
    pub alerts: Vec<ExperimentAlertState>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExperimentAlertsInput {
    pub mode: AlertMode,
}

async fn experiment_view(
    state: &AppState,
    actor: &Actor,
    user: Uuid,
    experiment_id: Uuid,
) -> ApiResult<ExperimentAlertsView> {
    let mode = match alerts_db::override_of(&state.pool, user, experiment_id)
        .await?
        .as_deref()
    {
        Some("follow") => AlertMode::Follow,
        Some("mute") => AlertMode::Mute,
        _ => AlertMode::Default,
    };
    let prefs = preferences_view(state, actor, user).await?;
    let states = alerts_db::states_of(&state.pool, experiment_id).await?;
    Ok(ExperimentAlertsView {
        experiment_id,
        mode,
        alerts: AlertKind::EXPERIMENT
            .into_iter()
            .map(|kind| {
                let s = states.iter().find(|s| s.kind == kind);
                ExperimentAlertState {
                    kind,
                    active: s.is_some_and(|s| s.active),
                    activations: s.map_or(0, |s| s.n),
                    changed_at: s.map(|s| rfc3339(s.changed_at)),
                    receives: match mode {
                        AlertMode::Follow => true,
                        AlertMode::Mute => false,
                        AlertMode::Default => prefs
                            .preferences
                            .iter()
                            .any(|p| p.kind == kind && p.enabled),
                    },
                }
            })
            .collect(),
    })
}

/// The experiment of the caller's organisation, or 404.
async fn own_experiment(state: &AppState, actor: &Actor, id: Uuid) -> ApiResult<()> {
    db::results::experiment_in_org(&state.pool, actor.org_id, id)
        .await?
        .map(|_| ())
        .ok_or(ApiError::NotFound("experiment"))
}

/// Your alert setting for one experiment, and its alerts' states.
#[utoipa::path(
    get, path = "/experiments/{id}/alerts", tag = "alerts",
    params(("id" = Uuid, Path, description = "Experiment id")),
    responses(
        (status = 200, body = ExperimentAlertsView),
        (status = 401, description = "Not authenticated", body = Problem),
        (status = 403, description = "An API key (settings are a person's)", body = Problem),
        (status = 404, description = "No such experiment in your organisation", body = Problem),
    ),
    security(("bearer" = []))
)]
async fn alert_experiment_settings(
    State(state): State<AppState>,
    RequireRole { actor, .. }: RequireRole<Viewer>,
    PathId(id): PathId,
) -> ApiResult<axum::Json<ExperimentAlertsView>> {
    let user = person(&actor)?;
    own_experiment(&state, &actor, id).await?;
    Ok(axum::Json(experiment_view(&state, &actor, user, id).await?))
}

/// Follows (every alert), mutes (none) or resets (`default`: your preferences) one
/// experiment's alerts for you.
#[utoipa::path(
    put, path = "/experiments/{id}/alerts", tag = "alerts",
    params(("id" = Uuid, Path, description = "Experiment id")),
    request_body = ExperimentAlertsInput,
    responses(
        (status = 200, body = ExperimentAlertsView),
        (status = 400, description = "Malformed body or unknown mode", body = Problem),
        (status = 401, description = "Not authenticated", body = Problem),
        (status = 403, description = "An API key (settings are a person's)", body = Problem),
        (status = 404, description = "No such experiment in your organisation", body = Problem),
    ),
    security(("bearer" = []))
)]
async fn alert_set_experiment_mode(
    State(state): State<AppState>,
    RequireRole { actor, .. }: RequireRole<Viewer>,
    PathId(id): PathId,
    Json(body): Json<ExperimentAlertsInput>,
) -> ApiResult<axum::Json<ExperimentAlertsView>> {
    let user = person(&actor)?;
    own_experiment(&state, &actor, id).await?;
    let mode = match body.mode {
        AlertMode::Follow => Some("follow"),
        AlertMode::Mute => Some("mute"),
        AlertMode::Default => None,
    };
    alerts_db::set_override(&state.pool, user, id, mode).await?;
    Ok(axum::Json(experiment_view(&state, &actor, user, id).await?))
}

/// Most alerts `GET /alerts` answers.
pub const MAX_ALERTS: i64 = 200;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertsQuery {
    /// How many (default 50, at most 200).
    pub limit: Option<i64>,
}

/// A fired alert.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AlertView {
    pub id: Uuid,
    pub kind: AlertKind,
    /// The experiment (winner, srm, guardrail_harmed) or site (publish_failing) id.
    pub subject_id: Uuid,
    /// One line in English.
    pub text: String,
    /// The figures (arms, lift, p-values, failures…), with `experiment` and `site`
    /// `{id, name}`.
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
    /// RFC 3339.
    pub at: String,
}

/// Your organisation's latest alerts, newest first.
#[utoipa::path(
    get, path = "/alerts", tag = "alerts",
    params(AlertsQuery),
    responses(
        (status = 200, body = Vec<AlertView>),
        (status = 400, description = "limit is not a number", body = Problem),
        (status = 401, description = "Not authenticated", body = Problem),
        (status = 403, description = "An API key (alerts are read in the console)", body = Problem),
        (status = 422, description = "limit out of 1..=200", body = Problem),
    ),
    security(("bearer" = []))
)]
async fn alert_list(
    State(state): State<AppState>,
    RequireRole { actor, .. }: RequireRole<Viewer>,
    Query(q): Query<AlertsQuery>,
) -> ApiResult<axum::Json<Vec<AlertView>>> {
    person(&actor)?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=MAX_ALERTS).contains(&limit) {
        return Err(ApiError::validation(
            "limit",
            format!("limit must be between 1 and {MAX_ALERTS}"),
        ));
    }
    let rows = alerts_db::recent_events(&state.pool, actor.org_id, limit).await?;
    Ok(axum::Json(
        rows.into_iter()
            .map(|r| AlertView {
                id: r.id,
                kind: r.kind,
                subject_id: r.subject_id,
                text: r.text,
                detail: r.detail,
                at: rfc3339(r.at),
            })
            .collect(),
    ))
}
