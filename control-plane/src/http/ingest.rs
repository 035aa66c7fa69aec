//! `POST /api/v1/ingest`: signed event batches from the edge's queue consumer.
//!
//! The body is taken as raw bytes, the signature verified over exactly those bytes
//! (constant time, 300 s replay window), and only then parsed — so nothing unsigned is
//! ever interpreted. The work is done by [`crate::ingest::Ingestor::process`].

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;

use crate::error::{ApiError, ApiResult};
use crate::ingest::items::WireBatch;
use crate::ingest::{MAX_ITEMS, Outcome};
use crate::state::AppState;
use samplit_engine::ingest::{self as signature, SIGNATURE_HEADER, TIMESTAMP_HEADER};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(utoipa_axum::routes!(ingest_batch))
}

/// Ingest a signed batch of exposures, conversions, custom events and pageviews.
///
/// Items already seen (by id) are counted as duplicates; invalid items are rejected one by
/// one with a reason while the valid ones are kept.
#[utoipa::path(
    post,
    path = "/ingest",
    tag = "ingest",
    request_body(content = String, content_type = "application/json",
        description = r#"`{"batch_id": "<uuid>", "items": [...]}` (≤ 1000 items), signed: headers `X-Samplit-Timestamp` (unix seconds) and `X-Samplit-Signature: sha256=<hex HMAC-SHA256(secret, "<ts>." + body)>`"#),
    params(
        ("x-samplit-timestamp" = String, Header, description = "Unix seconds when the batch was signed"),
        ("x-samplit-signature" = String, Header, description = "sha256=<hex>"),
    ),
    responses(
        (status = 200, description = "Processed", body = Outcome),
        (status = 400, description = "Malformed body", body = crate::error::Problem),
        (status = 401, description = "Missing, stale or wrong signature", body = crate::error::Problem),
        (status = 422, description = "More than 1000 items", body = crate::error::Problem),
        (status = 500, description = "A database error: retry the batch (items it already kept then count as duplicates, the others as new)", body = crate::error::Problem),
        (status = 503, description = "The database is unreachable: retry the batch later", body = crate::error::Problem),
    )
)]
async fn ingest_batch(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<axum::Json<Outcome>> {
    let now = OffsetDateTime::now_utc();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Err(e) = signature::verify(
        state.config.ingest_secret.expose(),
        header(TIMESTAMP_HEADER),
        header(SIGNATURE_HEADER),
        &body,
        now.unix_timestamp(),
    ) {
        tracing::warn!(reason = %e, "ingest batch refused");
        state
            .metrics
            .ingest_items
            .with_label_values(&["unauthenticated_batch"])
            .inc();
        return Err(ApiError::Unauthorized("invalid batch signature"));
    }
    let batch: WireBatch<'_> = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("malformed batch: {e}")))?;
    if batch.items.len() > MAX_ITEMS {
        return Err(ApiError::validation(
            "items",
            format!("a batch holds at most {MAX_ITEMS} items"),
        ));
    }
    let outcome = state.ingestor.process(&batch.items, now).await?;
    let m = &state.metrics.ingest_items;
    let attributed = outcome.accepted - outcome.unattributed;
    m.with_label_values(&["accepted"]).inc_by(attributed);
    m.with_label_values(&["unattributed"])
        .inc_by(outcome.unattributed);
    m.with_label_values(&["duplicate"])
        .inc_by(outcome.duplicates - outcome.conflicts);
    m.with_label_values(&["conflict"]).inc_by(outcome.conflicts);
    m.with_label_values(&["rejected"])
        .inc_by(outcome.rejected.len() as u64);
    tracing::info!(
        batch_id = %batch.batch_id,
        accepted = outcome.accepted,
        duplicates = outcome.duplicates,
        rejected = outcome.rejected.len(),
        "ingest batch"
    );
    Ok(axum::Json(outcome))
}
