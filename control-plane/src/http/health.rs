//! `/healthz` (the process answers), `/readyz` (the database answers), `/metrics`
//! (Prometheus text).
//!
//! `/metrics` carries no tenant identifier: requests are labelled by route *template*
//! (`/api/v1/sites/{id}`, `unmatched` for anything else), never by path, site key or
//! organisation. With `SAMPLIT_METRICS_TOKEN` set it answers only
//! `Authorization: Bearer <token>` (401 otherwise); unset, it is meant for an internal
//! network only (see `docs/security.md`).

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

async fn healthz() -> impl IntoResponse {
    axum::Json(serde_json::json!({ "status": "ok" }))
}

async fn readyz(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    sqlx::query("SELECT 1")
        .execute(&state.pool)
        .await
        .map_err(|_| ApiError::Unavailable)?;
    Ok(axum::Json(serde_json::json!({ "status": "ready" })))
}

async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    if let Some(expected) = &state.config.limits.metrics_token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        // Compare digests, so the time taken says nothing about a matching prefix.
        if Sha256::digest(given.as_bytes()) != Sha256::digest(expected.expose()) {
            return Err(ApiError::Unauthorized(
                "metrics need the metrics bearer token",
            ));
        }
    }
    let m = &state.metrics;
    m.pool_size.set(i64::from(state.pool.size()));
    m.pool_idle
        .set(i64::try_from(state.pool.num_idle()).unwrap_or(i64::MAX));
    let body = m.render().map_err(|e| ApiError::Internal(e.into()))?;
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        body,
    )
        .into_response())
}
