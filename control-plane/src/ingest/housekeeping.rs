//! Ingestion's housekeeping: forgetting what can no longer matter. Item ids are kept for
//! the replay window ([`super::SEEN_RETENTION`]); older items are rejected anyway, so
//! their ids can go, and so can conversions parked that long without meeting their
//! exposure.
//!
//! [`run`] is a background task started by `serve` next to the publisher: it prunes once
//! at start, then every [`PRUNE_EVERY`], and returns when the shutdown signal resolves (a
//! prune in progress is abandoned; its `DELETE` rolls back and the next start redoes it).
//! Replicas prune independently, which is harmless: they delete the same old rows.

use std::time::Duration;

use sqlx::PgPool;
use time::OffsetDateTime;

use crate::db::events;

/// How often the task prunes.
pub const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// What one pass deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    /// Item ids older than the replay window.
    pub seen: u64,
    /// Parked conversions older than the replay window.
    pub pending: u64,
}

/// Deletes the seen ids and parked conversions older than the replay window at `now`.
pub async fn prune(pool: &PgPool, now: OffsetDateTime) -> sqlx::Result<Pruned> {
    let before = now - super::SEEN_RETENTION;
    let seen = events::prune_seen(pool, before).await?;
    let pending = events::prune_pending(pool, before).await?;
    Ok(Pruned { seen, pending })
}

/// Prunes at start and every `every` until `shutdown` resolves.
pub async fn run(
    pool: PgPool,
    every: Duration,
    shutdown: impl std::future::Future<Output = ()> + Send,
) {
    let pool = &pool;
    crate::background::every(every, shutdown, move || async move {
        match prune(pool, OffsetDateTime::now_utc()).await {
            Ok(p) => tracing::info!(
                seen = p.seen,
                pending = p.pending,
                "pruned ingest ids and parked conversions past the replay window"
            ),
            Err(e) => tracing::warn!(error = %e, "pruning ingest housekeeping failed"),
        }
    })
    .await;
    tracing::info!("ingest housekeeping stopped");
}
