//! What the notification machinery no longer needs, forgotten by the hourly housekeeping
//! pass ([`crate::ingest::housekeeping::run`]):
//!
//! - mails sent or given up more than [`MAIL_KEPT`] ago: the outbox holds addresses and
//!   bodies (personal data) that served their purpose. Their dedupe keys go with them,
//!   which is safe: every key names a one-time cause (a token, an alert's n-th
//!   activation), never re-enqueued after this long.
//! - webhook deliveries delivered or failed more than [`DELIVERIES_KEPT`] ago (the
//!   console's delivery log shows the recent ones); pending ones stay whatever their age.
//! - alert states whose subject (an experiment, or a site for `publish_failing`) no
//!   longer exists: nothing can re-activate them. The alert log (`alert_events`) stays:
//!   it is the organisation's history and goes with the organisation.

use sqlx::PgPool;
use time::{Duration, OffsetDateTime};

/// How long a sent or given-up mail stays in the outbox.
pub const MAIL_KEPT: Duration = Duration::days(30);
/// How long a finished webhook delivery stays in the log.
pub const DELIVERIES_KEPT: Duration = Duration::days(30);

/// What one pass deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct NotificationsPruned {
    pub mails: u64,
    pub deliveries: u64,
    pub alert_states: u64,
}

/// Deletes, at `now`, finished mails and webhook deliveries past their keeping time and
/// the alert states of deleted subjects.
#[tracing::instrument(skip(pool))]
pub async fn prune_notifications(
    pool: &PgPool,
    now: OffsetDateTime,
) -> sqlx::Result<NotificationsPruned> {
    let mails = sqlx::query("DELETE FROM mail_outbox WHERE sent_at < $1 OR failed_at < $1")
        .bind(now - MAIL_KEPT)
        .execute(pool)
        .await?
        .rows_affected();
    let deliveries = sqlx::query(
        "DELETE FROM webhook_deliveries
          WHERE status <> 'pending' AND coalesce(delivered_at, created_at) < $1",
    )
    .bind(now - DELIVERIES_KEPT)
    .execute(pool)
    .await?
    .rows_affected();
    let alert_states = sqlx::query(
        "DELETE FROM alert_states s
          WHERE NOT EXISTS (SELECT 1 FROM experiments e WHERE e.id = s.subject_id)
            AND NOT EXISTS (SELECT 1 FROM sites t WHERE t.id = s.subject_id)",
    )
    .execute(pool)
    .await?
    .rows_affected();
    Ok(NotificationsPruned {
        mails,
        deliveries,
        alert_states,
    })
}
