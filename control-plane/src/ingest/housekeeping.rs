//! Ingestion's housekeeping: forgetting what can no longer matter. Item ids are kept for
//! the replay window ([`super::SEEN_RETENTION`]); older items are rejected anyway, so
//! their ids can go, and so can conversions parked that long without meeting their
//! exposure. Raw events are kept `SAMPLIT_RAW_EVENTS_RETENTION_DAYS` days: older day
//! partitions are dropped whole ([`raw_events`]); and the partitions of today and the
//! next two days are made ahead, so the first batch of a day rarely waits on DDL. A
//! deleted site's raw events (no foreign key can cascade to them) are deleted by the
//! next pass ([`raw_events::purge_deleted_sites`]). The same pass forgets finished mails,
//! webhook deliveries and orphaned alert states ([`retention`]).
//!
//! [`run`] is a background task started by `serve` next to the publisher: it prunes once
//! at start, then every [`PRUNE_EVERY`], and returns when the shutdown signal resolves (a
//! prune in progress is abandoned; its `DELETE` rolls back and the next start redoes it).
//! Replicas prune independently, which is harmless: they delete the same old rows.

use std::time::Duration;

use sqlx::PgPool;
use time::OffsetDateTime;

use crate::db::{events, raw_events, retention};

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

/// Raw events' partitions at `now`: makes today's and the next two days', and drops
/// those of days more than `retention_days` before today (`DROP TABLE` of the
/// partition), with the quota's counts of those days. Returns the dropped partitions'
/// names.
pub async fn rotate_raw_partitions(
    pool: &PgPool,
    now: OffsetDateTime,
    retention_days: u32,
) -> sqlx::Result<Vec<String>> {
    let today = now.date();
    let ahead: Vec<_> = (0..3)
        .filter_map(|n| today.checked_add(time::Duration::days(n)))
        .collect();
    raw_events::ensure_partitions(pool, &ahead).await?;
    let oldest_kept = today - time::Duration::days(i64::from(retention_days));
    let dropped = raw_events::drop_partitions_before(pool, oldest_kept).await?;
    raw_events::prune_raw_days(pool, oldest_kept).await?;
    Ok(dropped)
}

/// Prunes and rotates raw partitions at start and every `every` until `shutdown`
/// resolves.
pub async fn run(
    pool: PgPool,
    every: Duration,
    raw_events_retention_days: u32,
    shutdown: impl std::future::Future<Output = ()> + Send,
) {
    let pool = &pool;
    crate::background::every(every, shutdown, move || async move {
        let now = OffsetDateTime::now_utc();
        match prune(pool, now).await {
            Ok(p) => tracing::info!(
                seen = p.seen,
                pending = p.pending,
                "pruned ingest ids and parked conversions past the replay window"
            ),
            Err(e) => tracing::warn!(error = %e, "pruning ingest housekeeping failed"),
        }
        match rotate_raw_partitions(pool, now, raw_events_retention_days).await {
            Ok(dropped) => tracing::info!(
                dropped = dropped.len(),
                "raw event partitions made ahead; those past the retention dropped"
            ),
            Err(e) => tracing::warn!(error = %e, "rotating raw event partitions failed"),
        }
        match raw_events::purge_deleted_sites(pool, now).await {
            Ok(p) => tracing::info!(
                sites = p.sites,
                rows = p.rows,
                done = p.done,
                "raw events of deleted sites purged"
            ),
            Err(e) => tracing::warn!(error = %e, "purging deleted sites' raw events failed"),
        }
        match retention::prune_notifications(pool, now).await {
            Ok(p) => tracing::info!(
                mails = p.mails,
                deliveries = p.deliveries,
                alert_states = p.alert_states,
                "finished mails, webhook deliveries and orphaned alert states pruned"
            ),
            Err(e) => tracing::warn!(error = %e, "pruning notifications failed"),
        }
    })
    .await;
    tracing::info!("ingest housekeeping stopped");
}
