//! The organisation's outgoing webhooks and their delivery log (issue 15). Admins and
//! owners only (API keys with the admin role too); another organisation's webhook id is
//! a 404. Without `SAMPLIT_WEBHOOK_SECRET` every endpoint answers 503
//! `webhooks_not_configured`.
//!
//! - `POST /webhooks` {url, description?, kinds?} → 201 with the signing `secret`, shown
//!   only in this answer (and after a rotation); at most [`db::MAX_PER_ORG`] per
//!   organisation (422 `quota_exceeded`, quota `webhooks`).
//! - `GET /webhooks`, `GET /webhooks/{id}`, `PATCH /webhooks/{id}` {url?, description?,
//!   kinds?, enabled?}, `DELETE /webhooks/{id}` (its deliveries go with it).
//! - `POST /webhooks/{id}/rotate-secret` → the new secret; the old one stops verifying.
//! - `POST /webhooks/{id}/test` → 202, a `test` delivery queued.
//! - `GET /webhooks/{id}/deliveries?limit=` → the delivery log, newest first.
//!
//! What is sent, how it is signed and retried: `crate::alerts::webhooks`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::no_store::NoStore;
use super::rfc3339;
use crate::alerts::AlertKind;
use crate::alerts::webhooks as hooks;
use crate::audit::{self, Change};
use crate::auth::roles::Admin;
use crate::auth::{Actor, RequireRole};
use crate::config::Secret;
use crate::db::webhooks as db;
use crate::error::{ApiError, ApiResult, FieldError, Problem};
use crate::extract::{Json, PathId, Query};
use crate::state::AppState;

pub const DESCRIPTION_MAX_CHARS: usize = 200;
const DEFAULT_LOG: i64 = 50;
const MAX_LOG: i64 = 200;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(webhook_create, webhook_list))
        .routes(routes!(webhook_get, webhook_update, webhook_delete))
        .routes(routes!(webhook_rotate_secret))
        .routes(routes!(webhook_test))
        .routes(routes!(webhook_deliveries))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct WebhookOut {
    pub id: Uuid,
    pub url: String,
    pub description: String,
    /// The alert kinds it receives (test deliveries always go).
    pub kinds: Vec<AlertKind>,
    /// A disabled webhook receives nothing; its pending deliveries wait.
    pub enabled: bool,
    /// Incremented by each rotation of the signing secret.
    pub secret_version: i32,
    pub created_by: Option<Uuid>,
    pub created_at: String,
    pub disabled_at: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedWebhook {
    #[serde(flatten)]
    pub webhook: WebhookOut,
    /// The signing secret (`whsec_…`): shown only here and after a rotation. Verify
    /// `Samplit-Signature` with it (docs/alerts.md, "Webhooks").
    pub secret: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct RotatedSecret {
    pub id: Uuid,
    pub secret_version: i32,
    /// The new signing secret; the previous one no longer verifies.
    pub secret: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct CreateWebhookRequest {
    #[schema(example = "https://hooks.slack.com/services/T000/B000/XXXX")]
    pub url: Option<String>,
    pub description: Option<String>,
    /// Default: every kind.
    pub kinds: Option<Vec<AlertKind>>,
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct UpdateWebhookRequest {
    pub url: Option<String>,
    pub description: Option<String>,
    pub kinds: Option<Vec<AlertKind>>,
    pub enabled: Option<bool>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct DeliveryOut {
    pub id: Uuid,
    /// The event's id (the payload's `id` and the `Samplit-Event-Id` header).
    pub event_id: Uuid,
    /// `experiment.winner`, `experiment.srm`, `experiment.guardrail_harmed`,
    /// `site.publish_failing` or `test`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// `pending`, `delivered` or `failed` (given up).
    pub status: String,
    pub attempts: i32,
    /// The receiver's last HTTP status, if it answered.
    pub last_status_code: Option<i32>,
    /// Why the last attempt failed (bounded excerpt).
    pub last_error: Option<String>,
    pub created_at: String,
    pub delivered_at: Option<String>,
    /// When the next attempt is due, while pending.
    pub next_attempt_at: Option<String>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesQuery {
    /// 1 to 200 (default 50).
    pub limit: Option<i64>,
}

/// The derivation key, or 503 `webhooks_not_configured`.
fn key(state: &AppState) -> ApiResult<&Secret> {
    state.config.webhook_secret.as_ref().ok_or_else(|| {
        ApiError::coded(
            StatusCode::SERVICE_UNAVAILABLE,
            "webhooks_not_configured",
            "webhooks are off on this server (SAMPLIT_WEBHOOK_SECRET is not set)",
        )
    })
}

fn webhook_out(row: db::WebhookRow) -> ApiResult<WebhookOut> {
    let kinds = row
        .kinds
        .iter()
        .map(|k| {
            AlertKind::parse(k).ok_or_else(|| {
                ApiError::Internal(anyhow::anyhow!("unknown alert kind {k:?} stored"))
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(WebhookOut {
        id: row.id,
        url: row.url,
        description: row.description,
        kinds,
        enabled: row.enabled,
        secret_version: row.secret_version,
        created_by: row.created_by,
        created_at: rfc3339(row.created_at),
        disabled_at: row.disabled_at.map(rfc3339),
    })
}

fn delivery_out(row: db::DeliveryRow) -> DeliveryOut {
    let pending = row.status == "pending";
    DeliveryOut {
        id: row.id,
        event_id: row.event_id,
        event_type: row.event_type,
        status: row.status,
        attempts: row.attempts,
        last_status_code: row.last_status_code,
        last_error: row.last_error,
        created_at: rfc3339(row.created_at),
        delivered_at: row.delivered_at.map(rfc3339),
        next_attempt_at: pending.then(|| rfc3339(row.next_attempt_at)),
    }
}

/// Field checks shared by create and update.
#[derive(Default)]
struct Checks(Vec<FieldError>);

impl Checks {
    fn fail(&mut self, field: &str, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.to_owned(),
            message: message.into(),
        });
    }

    fn url(&mut self, raw: &str, dev: bool) -> Option<String> {
        match hooks::check_url(raw, dev) {
            Ok(url) => Some(url.to_string()),
            Err(message) => {
                self.fail("url", message);
                None
            }
        }
    }

    fn description(&mut self, raw: &str) -> Option<String> {
        let d = raw.trim();
        if d.chars().count() > DESCRIPTION_MAX_CHARS || d.chars().any(char::is_control) {
            self.fail(
                "description",
                "a description has at most 200 characters, no control characters",
            );
            return None;
        }
        Some(d.to_owned())
    }

    fn kinds(&mut self, raw: &[AlertKind]) -> Option<Vec<String>> {
        if raw.is_empty() {
            self.fail("kinds", "at least one alert kind");
            return None;
        }
        // In AlertKind::ALL's order, each once.
        Some(
            AlertKind::ALL
                .into_iter()
                .filter(|k| raw.contains(k))
                .map(|k| k.as_str().to_owned())
                .collect(),
        )
    }

    fn done(self) -> ApiResult<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.0))
        }
    }
}

/// What the audit trail keeps of a webhook: its host, not its URL (a receiver URL such
/// as Slack's carries a token in its path).
fn audit_view(row: &db::WebhookRow) -> serde_json::Value {
    let host = url::Url::parse(&row.url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned));
    serde_json::json!({
        "host": host,
        "description": row.description,
        "kinds": row.kinds,
        "enabled": row.enabled,
    })
}

async fn find_locked(
    conn: &mut sqlx::PgConnection,
    actor: &Actor,
    id: Uuid,
) -> ApiResult<db::WebhookRow> {
    db::find(conn, actor.org_id, id, true)
        .await?
        .ok_or(ApiError::NotFound("webhook"))
}

/// Creates a webhook; the answer is the only time its secret is shown (until a rotation).
#[utoipa::path(
    post, path = "/webhooks", tag = "webhooks",
    request_body = CreateWebhookRequest,
    responses(
        (status = 201, body = CreatedWebhook),
        (status = 400, description = "Malformed body", body = Problem),
        (status = 401, description = "Not authenticated", body = Problem),
        (status = 403, description = "Admins and owners only", body = Problem),
        (status = 422, description = "Invalid fields (`url`: https, no credentials, public host; `description`; `kinds`), or the `webhooks` quota (`quota_exceeded`)", body = Problem),
        (status = 503, description = "Webhooks are off (`webhooks_not_configured`)", body = Problem),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(skip_all, fields(org_id = %actor.org_id))]
async fn webhook_create(
    State(state): State<AppState>,
    RequireRole { actor, .. }: RequireRole<Admin>,
    Json(body): Json<CreateWebhookRequest>,
) -> ApiResult<impl IntoResponse> {
    let key = key(&state)?;
    let mut checks = Checks::default();
    let url = match body.url.as_deref() {
        Some(raw) => checks.url(raw, state.config.dev_allow_local_domains),
        None => {
            checks.fail("url", "this field is required");
            None
        }
    };
    let description = checks.description(body.description.as_deref().unwrap_or(""));
    let kinds = checks.kinds(body.kinds.as_deref().unwrap_or(&AlertKind::ALL));
    checks.done()?;
    let (Some(url), Some(description), Some(kinds)) = (url, description, kinds) else {
        return Err(ApiError::Internal(anyhow::anyhow!(
            "validated fields missing"
        )));
    };
    let mut tx = state.pool.begin().await?;
    let current = db::lock_and_count(&mut tx, actor.org_id).await?;
    if current >= db::MAX_PER_ORG {
        return Err(ApiError::QuotaExceeded {
            quota: "webhooks",
            limit: db::MAX_PER_ORG,
            current,
        });
    }
    let row = db::insert(
        &mut tx,
        db::NewWebhook {
            id: Uuid::new_v4(),
            org_id: actor.org_id,
            url: &url,
            description: &description,
            kinds: &kinds,
            created_by: actor.person,
        },
    )
    .await?;
    let change = Change::new("webhook.created", "webhook", row.id).after(audit_view(&row));
    audit::record_by(&mut tx, &actor, change).await?;
    tx.commit().await?;
    let secret = hooks::signing_secret(key, row.id, row.secret_version);
    Ok(NoStore((
        StatusCode::CREATED,
        axum::Json(CreatedWebhook {
            webhook: webhook_out(row)?,
            secret,
        }),
    )))
}

/// The organisation's webhooks (never their secrets), oldest first.
#[utoipa::path(
    get, path = "/webhooks", tag = "webhooks",
    responses(
        (status = 200, body = Vec<WebhookOut>),
        (status = 401, description = "Not authenticated", body = Problem),
        (status = 403, description = "Admins and owners only", body = Problem),
        (status = 503, description = "Webhooks are off (`webhooks_not_configured`)", body = Problem),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(skip_all, fields(org_id = %actor.org_id))]
async fn webhook_list(
    State(state): State<AppState>,
    RequireRole { actor, .. }: RequireRole<Admin>,
) -> ApiResult<axum::Json<Vec<WebhookOut>>> {
    key(&state)?;
    let mut conn = state.pool.acquire().await?;
    let rows = db::list(&mut conn, actor.org_id).await?;
    Ok(axum::Json(
        rows.into_iter()
            .map(webhook_out)
            .collect::<ApiResult<_>>()?,
    ))
}

/// One webhook.
#[utoipa::path(
    get, path = "/webhooks/{id}", tag = "webhooks",
    params(("id" = Uuid, Path, description = "Webhook id")),
    responses(
        (status = 200, body = WebhookOut),
        (status = 401, description = "Not authenticated", body = Problem),
        (status = 403, description = "Admins and owners only", body = Problem),
        (status = 404, description = "No such webhook in this organisation", body = Problem),
        (status = 503, description = "Webhooks are off (`webhooks_not_configured`)", body = Problem),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(skip_all, fields(org_id = %actor.org_id, webhook = %id))]
async fn webhook_get(
    State(state): State<AppState>,
    RequireRole { actor, .. }: RequireRole<Admin>,
    PathId(id): PathId,
) -> ApiResult<axum::Json<WebhookOut>> {
    key(&state)?;
    let mut conn = state.pool.acquire().await?;
    let row = db::find(&mut conn, actor.org_id, id, false)
        .await?
        .ok_or(ApiError::NotFound("webhook"))?;
    Ok(axum::Json(webhook_out(row)?))
}

/// Changes a webhook's URL, description, kinds or whether it is enabled. Disabling it
/// stops its deliveries: pending ones wait until it is enabled again.
#[utoipa::path(
    patch, path = "/webhooks/{id}", tag = "webhooks",
    params(("id" = Uuid, Path, description = "Webhook id")),
    request_body = UpdateWebhookRequest,
    responses(
        (status = 200, body = WebhookOut),
        (status = 400, description = "Malformed body", body = Problem),
        (status = 401, description = "Not authenticated", body = Problem),
        (status = 403, description = "Admins and owners only", body = Problem),
        (status = 404, description = "No such webhook in this organisation", body = Problem),
        (status = 422, description = "Invalid fields", body = Problem),
        (status = 503, description = "Webhooks are off (`webhooks_not_configured`)", body = Problem),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(skip_all, fields(org_id = %actor.org_id, webhook = %id))]
async fn webhook_update(
    State(state): State<AppState>,
    RequireRole { actor, .. }: RequireRole<Admin>,
    PathId(id): PathId,
    Json(body): Json<UpdateWebhookRequest>,
) -> ApiResult<axum::Json<WebhookOut>> {
    key(&state)?;
    let mut tx = state.pool.begin().await?;
    let before = find_locked(&mut tx, &actor, id).await?;
    let mut checks = Checks::default();
    let mut row = before.clone();
    if let Some(raw) = body.url.as_deref()
        && let Some(url) = checks.url(raw, state.config.dev_allow_local_domains)
    {
        row.url = url;
    }
    if let Some(raw) = body.description.as_deref()
        && let Some(d) = checks.description(raw)
    {
        row.description = d;
    }
    if let Some(raw) = body.kinds.as_deref()
        && let Some(k) = checks.kinds(raw)
    {
        row.kinds = k;
    }
    if let Some(enabled) = body.enabled {
        row.enabled = enabled;
    }
    checks.done()?;
    let after = db::update(&mut tx, &row).await?;
    let change = Change::new("webhook.updated", "webhook", id)
        .before(audit_view(&before))
        .after(audit_view(&after));
    audit::record_by(&mut tx, &actor, change).await?;
    tx.commit().await?;
    Ok(axum::Json(webhook_out(after)?))
}

/// Deletes a webhook and its delivery log; its pending deliveries are never sent.
#[utoipa::path(
    delete, path = "/webhooks/{id}", tag = "webhooks",
    params(("id" = Uuid, Path, description = "Webhook id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Not authenticated", body = Problem),
        (status = 403, description = "Admins and owners only", body = Problem),
        (status = 404, description = "No such webhook in this organisation", body = Problem),
        (status = 503, description = "Webhooks are off (`webhooks_not_configured`)", body = Problem),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(skip_all, fields(org_id = %actor.org_id, webhook = %id))]
async fn webhook_delete(
    State(state): State<AppState>,
    RequireRole { actor, .. }: RequireRole<Admin>,
    PathId(id): PathId,
) -> ApiResult<StatusCode> {
    key(&state)?;
    let mut tx = state.pool.begin().await?;
    let row = find_locked(&mut tx, &actor, id).await?;
    db::delete(&mut tx, actor.org_id, id).await?;
    let change = Change::new("webhook.deleted", "webhook", id).before(audit_view(&row));
    audit::record_by(&mut tx, &actor, change).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Replaces the signing secret: the answer shows the new one; the old one stops
/// verifying from the next delivery on (pending deliveries are signed with the new one).
#[utoipa::path(
    post, path = "/webhooks/{id}/rotate-secret", tag = "webhooks",
    params(("id" = Uuid, Path, description = "Webhook id")),
    responses(
        (status = 200, body = RotatedSecret),
        (status = 401, description = "Not authenticated", body = Problem),
        (status = 403, description = "Admins and owners only", body = Problem),
        (status = 404, description = "No such webhook in this organisation", body = Problem),
        (status = 503, description = "Webhooks are off (`webhooks_not_configured`)", body = Problem),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(skip_all, fields(org_id = %actor.org_id, webhook = %id))]
async fn webhook_rotate_secret(
    State(state): State<AppState>,
    RequireRole { actor, .. }: RequireRole<Admin>,
    PathId(id): PathId,
) -> ApiResult<impl IntoResponse> {
    let key = key(&state)?;
    let mut tx = state.pool.begin().await?;
    find_locked(&mut tx, &actor, id).await?;
    let row = db::rotate(&mut tx, actor.org_id, id).await?;
    let change = Change::new("webhook.secret_rotated", "webhook", id)
        .after(serde_json::json!({ "secret_version": row.secret_version }));
    audit::record_by(&mut tx, &actor, change).await?;
    tx.commit().await?;
    Ok(NoStore(axum::Json(RotatedSecret {
        id,
        secret_version: row.secret_version,
        secret: hooks::signing_secret(key, id, row.secret_version),
    })))
}

/// Queues a `test` delivery to the webhook (sent by the next worker pass).
#[utoipa::path(
    post, path = "/webhooks/{id}/test", tag = "webhooks",
    params(("id" = Uuid, Path, description = "Webhook id")),
    responses(
        (status = 202, body = DeliveryOut),
        (status = 401, description = "Not authenticated", body = Problem),
        (status = 403, description = "Admins and owners only", body = Problem),
        (status = 404, description = "No such webhook in this organisation", body = Problem),
        (status = 409, description = "The webhook is disabled (`webhook_disabled`)", body = Problem),
        (status = 503, description = "Webhooks are off (`webhooks_not_configured`)", body = Problem),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(skip_all, fields(org_id = %actor.org_id, webhook = %id))]
async fn webhook_test(
    State(state): State<AppState>,
    RequireRole { actor, .. }: RequireRole<Admin>,
    PathId(id): PathId,
) -> ApiResult<impl IntoResponse> {
    key(&state)?;
    let mut tx = state.pool.begin().await?;
    let row = find_locked(&mut tx, &actor, id).await?;
    if !row.enabled {
        return Err(ApiError::conflict(
            "webhook_disabled",
            "the webhook is disabled; enable it to send a test",
        ));
    }
    let event_id = Uuid::new_v4();
    let payload = hooks::test_payload(actor.org_id, id, event_id);
    let delivery = db::queue(&mut tx, id, event_id, hooks::TEST_TYPE, &payload)
        .await?
        .ok_or_else(|| {
            ApiError::Internal(anyhow::anyhow!("a fresh event id was already queued"))
        })?;
    tx.commit().await?;
    Ok((StatusCode::ACCEPTED, axum::Json(delivery_out(delivery))))
}

/// The webhook's delivery log, newest first.
#[utoipa::path(
    get, path = "/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = Uuid, Path, description = "Webhook id"), DeliveriesQuery),
    responses(
        (status = 200, body = Vec<DeliveryOut>),
        (status = 400, description = "Malformed query", body = Problem),
        (status = 401, description = "Not authenticated", body = Problem),
        (status = 403, description = "Admins and owners only", body = Problem),
        (status = 404, description = "No such webhook in this organisation", body = Problem),
        (status = 422, description = "limit out of range", body = Problem),
        (status = 503, description = "Webhooks are off (`webhooks_not_configured`)", body = Problem),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(skip_all, fields(org_id = %actor.org_id, webhook = %id))]
async fn webhook_deliveries(
    State(state): State<AppState>,
    RequireRole { actor, .. }: RequireRole<Admin>,
    PathId(id): PathId,
    Query(query): Query<DeliveriesQuery>,
) -> ApiResult<axum::Json<Vec<DeliveryOut>>> {
    key(&state)?;
    let limit = query.limit.unwrap_or(DEFAULT_LOG);
    if !(1..=MAX_LOG).contains(&limit) {
        return Err(ApiError::validation("limit", "limit is between 1 and 200"));
    }
    let mut conn = state.pool.acquire().await?;
    db::find(&mut conn, actor.org_id, id, false)
        .await?
        .ok_or(ApiError::NotFound("webhook"))?;
    let rows = db::deliveries(&mut conn, id, limit).await?;
    Ok(axum::Json(rows.into_iter().map(delivery_out).collect()))
}
