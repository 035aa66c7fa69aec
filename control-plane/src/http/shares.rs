//! Read-only share links of one experiment's results — public and opt-in.
//!
//! Nothing is public until an editor creates a link: `POST /experiments/{id}/shares`
//! answers the link's token once (`rs_` + 64 hex, 256 random bits; only its SHA-256 is
//! stored). Anyone holding it reads that experiment's results, and nothing else, with
//! `GET /public/results/{token}` — no account, no organisation or site named in the
//! answer. `DELETE /experiments/{id}/shares/{share_id}` revokes it at once; every link is
//! listed with `GET /experiments/{id}/shares` (never the tokens). Creating and revoking
//! are audited.
//!
//! A public link can be hammered by whoever holds it, and each answer runs the analysis:
//! the answer is computed at most once per [`SHARED_RESULTS_TTL`] per link
//! ([`SharedResultsCache`]). The link's liveness is checked on every request, so a
//! revocation still takes effect at once.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Serialize;
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::no_store::NoStore;
use super::results::{ResultsView, compute, load};
use crate::audit::{self, Change};
use crate::auth::roles::{Editor, Viewer};
use crate::auth::{RequireRole, new_token, token_hash};
use crate::db;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::PathId;
use crate::state::AppState;

/// Prefix of share-link tokens.
pub const SHARE_TOKEN_PREFIX: &str = "rs_";

/// How long a public link's computed results are served before being recomputed.
pub const SHARED_RESULTS_TTL: std::time::Duration = std::time::Duration::from_secs(10);

/// Most links whose results are kept at once (the oldest entries go first).
const SHARED_RESULTS_KEEP: usize = 1024;

/// One cached answer: when it was computed, and the view.
type CachedView = (std::time::Instant, std::sync::Arc<ResultsView>);

/// Public results recently computed, by the link's token hash.
#[derive(Default)]
pub struct SharedResultsCache(std::sync::Mutex<std::collections::HashMap<Vec<u8>, CachedView>>);

impl SharedResultsCache {
    fn get(&self, key: &[u8]) -> Option<std::sync::Arc<ResultsView>> {
        let map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(key)
            .filter(|(at, _)| at.elapsed() < SHARED_RESULTS_TTL)
            .map(|(_, view)| view.clone())
    }

    fn put(&self, key: Vec<u8>, view: std::sync::Arc<ResultsView>) {
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.retain(|_, (at, _)| at.elapsed() < SHARED_RESULTS_TTL);
        if map.len() >= SHARED_RESULTS_KEEP
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, (at, _))| *at)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(key, (std::time::Instant::now(), view));
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_share, list_shares))
        .routes(routes!(revoke_share))
        .routes(routes!(public_results))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ShareView {
    pub id: Uuid,
    pub experiment_id: Uuid,
    pub created_by: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<OffsetDateTime>,
}

impl From<db::shares::ShareRow> for ShareView {
    fn from(r: db::shares::ShareRow) -> Self {
        Self {
            id: r.id,
            experiment_id: r.experiment_id,
            created_by: r.created_by,
            created_at: r.created_at,
            revoked_at: r.revoked_at,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedShare {
    #[serde(flatten)]
    pub share: ShareView,
    /// Shown only in this answer. The results are at `/app/share/{token}` (the console's
    /// read-only page) and `/api/v1/public/results/{token}` (JSON).
    pub token: String,
}

/// Creates a read-only share link of the experiment's results (editor and up).
#[utoipa::path(post, path = "/experiments/{id}/shares", tag = "results",
    params(("id" = Uuid, Path, description = "Experiment id")),
    responses((status = 201, description = "The link; its token shown this once", body = CreatedShare)),
    security(("bearer" = []), ("console_session" = [])))]
async fn create_share(
    State(state): State<AppState>,
    RequireRole { actor, .. }: RequireRole<Editor>,
    PathId(id): PathId,
) -> ApiResult<impl IntoResponse> {
    let mut tx = state.pool.begin().await?;
    db::results::experiment_in_org(&state.pool, actor.org_id, id)
        .await?
        .ok_or(ApiError::NotFound("experiment"))?;
    let token = new_token(SHARE_TOKEN_PREFIX);
    let row = db::shares::insert(
        &mut tx,
        actor.org_id,
        id,
        &token_hash(&token),
        actor.user_id(),
    )
    .await?;
    let change = Change::new("results.share.created", "experiment", id)
        .after(serde_json::json!({ "share_id": row.id }));
    audit::record_by(&mut tx, &actor, change).await?;
    tx.commit().await?;
    Ok(NoStore((
        StatusCode::CREATED,
        axum::Json(CreatedShare {
            share: row.into(),
            token,
        }),
    )))
}

/// The experiment's share links, newest first (never their tokens).
#[utoipa::path(get, path = "/experiments/{id}/shares", tag = "results",
    params(("id" = Uuid, Path, description = "Experiment id")),
    responses((status = 200, body = Vec<ShareView>)),
    security(("bearer" = []), ("console_session" = [])))]
async fn list_shares(
    State(state): State<AppState>,
    RequireRole { actor, .. }: RequireRole<Viewer>,
    PathId(id): PathId,
) -> ApiResult<axum::Json<Vec<ShareView>>> {
    db::results::experiment_in_org(&state.pool, actor.org_id, id)
        .await?
        .ok_or(ApiError::NotFound("experiment"))?;
    let mut conn = state.pool.acquire().await?;
    let rows = db::shares::of_experiment(&mut conn, actor.org_id, id).await?;
    Ok(axum::Json(rows.into_iter().map(ShareView::from).collect()))
}

/// Revokes a share link at once (editor and up).
#[utoipa::path(delete, path = "/experiments/{id}/shares/{share_id}", tag = "results",
    params(("id" = Uuid, Path, description = "Experiment id"), ("share_id" = Uuid, Path, description = "Share link id")),
    responses((status = 204, description = "Revoked")),
    security(("bearer" = []), ("console_session" = [])))]
async fn revoke_share(
    State(state): State<AppState>,
    RequireRole { actor, .. }: RequireRole<Editor>,
    Path((id, share_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    // Not UUIDs: 404 like any unknown id (see `crate::extract::PathId`).
    let (Ok(id), Ok(share_id)) = (id.parse::<Uuid>(), share_id.parse::<Uuid>()) else {
        return Err(ApiError::NotFound("share link"));
    };
    let mut tx = state.pool.begin().await?;
    db::shares::revoke(&mut tx, actor.org_id, id, share_id)
        .await?
        .ok_or(ApiError::NotFound("share link"))?;
    let change = Change::new("results.share.revoked", "experiment", id)
        .after(serde_json::json!({ "share_id": share_id }));
    audit::record_by(&mut tx, &actor, change).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The results an unrevoked share link shows (no account needed), on the experiment's
/// primary goal; recomputed at most every 10 s per link.
#[utoipa::path(get, path = "/public/results/{token}", tag = "results",
    params(("token" = String, Path, description = "The share link's token (rs_…)")),
    responses(
        (status = 200, body = ResultsView),
        (status = 404, description = "No such link, or revoked", body = Problem),
        (status = 422, description = "The experiment has no primary goal", body = Problem),
    ))]
async fn public_results(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> ApiResult<axum::Json<ResultsView>> {
    const GONE: ApiError = ApiError::NotFound("share link");
    if !token.starts_with(SHARE_TOKEN_PREFIX) || token.len() > 80 {
        return Err(GONE);
    }
    let hash = token_hash(&token);
    let mut conn = state.pool.acquire().await?;
    let (org_id, experiment_id) = db::shares::live_by_token(&mut conn, &hash)
        .await?
        .ok_or(GONE)?;
    drop(conn);
    if let Some(view) = state.shared_results.get(&hash) {
        return Ok(axum::Json(view.as_ref().clone()));
    }
    let (experiment, goal) = load(&state, org_id, experiment_id, None).await?;
    let view = std::sync::Arc::new(compute(&state, experiment, goal).await?);
    state.shared_results.put(hash, view.clone());
    Ok(axum::Json(view.as_ref().clone()))
}
