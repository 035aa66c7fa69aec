//! API keys for automation: `POST /api-keys`, `GET /api-keys`, `DELETE /api-keys/{id}`
//! (admin and owner only).
//!
//! A key (`sk_` + 64 hex characters, 256 random bits) is shown once, in the creation
//! answer. The database keeps its SHA-256 (`auth::token_hash`: a fast hash is enough for
//! a random 256-bit secret) and a display prefix, so lists can show which key is which
//! without being able to rebuild it. A key's role is at most admin and at most its
//! creator's role; revoking it makes the `Actor` extractor reject it on the next request.
//!
//! Keys follow their people: `created_by` is the person a key answers for (for a key
//! minted by a key, the person at the root of the chain; `created_by_key` names the
//! minting key). The `Actor` extractor caps a key's role on every request at the minimum
//! of its chain and that person's CURRENT role, and a chain that reaches a revoked key or
//! a removed member is dead (401). Removing a member revokes their keys here too, so the
//! list shows it (`revoked_reason`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::auth::Errors;
use super::no_store::NoStore;
use super::rfc3339;
use crate::audit::{self, Change};
use crate::auth::roles::Admin;
use crate::auth::{API_KEY_PREFIX, RequireRole, Role, new_token, token_hash};
use crate::db;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{Json, PathId};
use crate::state::AppState;

/// Characters of the key kept for display (`sk_` and 8 hex digits: 32 bits, enough to
/// tell keys apart, far too few to guess the rest).
pub const DISPLAY_PREFIX_CHARS: usize = API_KEY_PREFIX.len() + 8;
pub const KEY_NAME_MAX_CHARS: usize = 100;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_key, list_keys))
        .routes(routes!(revoke_key))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct CreateKeyRequest {
    #[schema(example = "CI deploys")]
    pub name: Option<String>,
    /// viewer, editor or admin — and not above your own role.
    pub role: Option<Role>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ApiKeyOut {
    pub id: Uuid,
    pub name: String,
    pub role: Role,
    /// The key's first characters, e.g. `sk_1a2b3c4d`.
    pub prefix: String,
    /// The person the key answers for (for a key minted by a key: the person at the root
    /// of the chain); null once that user account is deleted.
    pub created_by: Option<Uuid>,
    /// The key that minted this one, if a key did.
    pub created_by_key: Option<Uuid>,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
    /// Why: `revoked` (by an admin), `member_removed`, `no_creator`.
    pub revoked_reason: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedApiKey {
    #[serde(flatten)]
    pub api_key: ApiKeyOut,
    /// The key itself: shown only in this answer. Use it as `Authorization: Bearer <key>`.
    pub key: String,
}

fn key_out(row: db::api_keys::ApiKeyRow) -> ApiResult<ApiKeyOut> {
    Ok(ApiKeyOut {
        role: row.role,
        id: row.id,
        name: row.name,
        prefix: row.key_prefix,
        created_by: row.created_by,
        created_by_key: row.created_by_key,
        created_at: rfc3339(row.created_at),
        last_used_at: row.last_used_at.map(rfc3339),
        revoked_at: row.revoked_at.map(rfc3339),
        revoked_reason: row.revoked_reason,
    })
}

/// Creates a key; the answer is the only time the key is shown.
#[utoipa::path(
    post, path = "/api-keys", tag = "api-keys",
    request_body = CreateKeyRequest,
    responses(
        (status = 201, body = CreatedApiKey),
        (status = 401, description = "Not authenticated", body = Problem),
        (status = 403, description = "Admins and owners only; role above yours", body = Problem),
        (status = 422, description = "Invalid fields (role owner is never allowed), or the `api_keys` quota (`quota_exceeded`)", body = Problem),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(skip_all, fields(org_id = %actor.org_id))]
async fn create_key(
    State(state): State<AppState>,
    RequireRole { actor, .. }: RequireRole<Admin>,
    Json(body): Json<CreateKeyRequest>,
) -> ApiResult<impl IntoResponse> {
    let mut errors = Errors::default();
    let name = errors.required(
        "name",
        body.name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty()),
        |n| {
            if n.chars().count() > KEY_NAME_MAX_CHARS || n.chars().any(char::is_control) {
                Err("a key name has 1 to 100 characters, no control characters")
            } else {
                Ok(n.to_owned())
            }
        },
    );
    let role = errors.required("role", body.role, |role| match role {
        Role::Owner => Err("an API key is at most admin"),
        role => Ok(role),
    });
    errors.into_result()?;
    let (Some(name), Some(role)) = (name, role) else {
        return Err(ApiError::Internal(anyhow::anyhow!(
            "validated fields missing"
        )));
    };
    if role > actor.role {
        return Err(ApiError::Forbidden(
            "a key cannot have a higher role than its creator",
        ));
    }
    let key = new_token(API_KEY_PREFIX);
    let prefix: String = key.chars().take(DISPLAY_PREFIX_CHARS).collect();
    let mut tx = state.pool.begin().await?;
    crate::quota::check_api_keys(&mut tx, &state.config.limits, actor.org_id).await?;
    let row = db::api_keys::insert(
        &mut tx,
        db::api_keys::NewApiKey {
            id: Uuid::new_v4(),
            org_id: actor.org_id,
            name: &name,
            role,
            key_hash: &token_hash(&key),
            key_prefix: &prefix,
            created_by: actor.person,
            created_by_key: actor.api_key_id(),
        },
    )
    .await?;
    let change = Change::new("api_key.created", "api_key", row.id)
        .after(serde_json::json!({ "name": name, "role": role, "prefix": prefix }));
    audit::record_by(&mut tx, &actor, change).await?;
    tx.commit().await?;
    Ok(NoStore((
        StatusCode::CREATED,
        axum::Json(CreatedApiKey {
            api_key: key_out(row)?,
            key,
        }),
    )))
}

/// The organisation's keys (never the keys themselves), newest first.
#[utoipa::path(
    get, path = "/api-keys", tag = "api-keys",
    responses(
        (status = 200, body = Vec<ApiKeyOut>),
        (status = 401, description = "Not authenticated", body = Problem),
        (status = 403, description = "Admins and owners only", body = Problem),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(skip_all, fields(org_id = %actor.org_id))]
async fn list_keys(
    State(state): State<AppState>,
    RequireRole { actor, .. }: RequireRole<Admin>,
) -> ApiResult<axum::Json<Vec<ApiKeyOut>>> {
    let mut conn = state.pool.acquire().await?;
    let rows = db::api_keys::list(&mut conn, actor.org_id).await?;
    Ok(axum::Json(
        rows.into_iter().map(key_out).collect::<ApiResult<_>>()?,
    ))
}

/// Revokes a key: it is rejected from the next request on. Revoking a revoked key is a
/// no-op (204).
#[utoipa::path(
    delete, path = "/api-keys/{id}", tag = "api-keys",
    params(("id" = Uuid, Path, description = "Key id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "Not authenticated", body = Problem),
        (status = 403, description = "Admins and owners only", body = Problem),
        (status = 404, description = "No such key in this organisation", body = Problem),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(skip_all, fields(org_id = %actor.org_id, key = %id))]
async fn revoke_key(
    State(state): State<AppState>,
    RequireRole { actor, .. }: RequireRole<Admin>,
    PathId(id): PathId,
) -> ApiResult<StatusCode> {
    let mut tx = state.pool.begin().await?;
    let row = db::api_keys::find(&mut tx, actor.org_id, id)
        .await?
        .ok_or(ApiError::NotFound("api key"))?;
    if row.revoked_at.is_none() {
        db::api_keys::revoke(&mut tx, actor.org_id, id).await?;
        let change = Change::new("api_key.revoked", "api_key", id)
            .before(serde_json::json!({ "name": row.name, "role": row.role }));
        audit::record_by(&mut tx, &actor, change).await?;
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
