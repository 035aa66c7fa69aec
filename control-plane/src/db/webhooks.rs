//! Outgoing webhooks and their deliveries (`crate::alerts::webhooks`). The webhook's
//! signing secret is never stored: only `secret_version`, from which it is derived.

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

/// The most webhooks one organisation may have (422 `quota_exceeded`, quota `webhooks`).
pub const MAX_PER_ORG: i64 = 10;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WebhookRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub url: String,
    pub description: String,
    /// Alert kinds as stored (`AlertKind::as_str`); decoded by the caller, which refuses
    /// an unknown one.
    pub kinds: Vec<String>,
    pub enabled: bool,
    pub secret_version: i32,
    pub created_by: Option<Uuid>,
    pub created_at: OffsetDateTime,
    pub disabled_at: Option<OffsetDateTime>,
}

const COLUMNS: &str = "id, org_id, url, description, kinds, enabled, secret_version, created_by, created_at, disabled_at";

pub struct NewWebhook<'a> {
    pub id: Uuid,
    pub org_id: Uuid,
    pub url: &'a str,
    pub description: &'a str,
    pub kinds: &'a [String],
    pub created_by: Uuid,
}

/// Counts the organisation's webhooks after a transaction-scoped lock on its webhook
/// quota, so two concurrent creations cannot both see "one below the limit".
#[tracing::instrument(skip(conn))]
pub async fn lock_and_count(conn: &mut PgConnection, org_id: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('quota:webhooks:' || $1, 0))")
        .bind(org_id.to_string())
        .execute(&mut *conn)
        .await?;
    sqlx::query_scalar("SELECT count(*) FROM webhooks WHERE org_id = $1")
        .bind(org_id)
        .fetch_one(conn)
        .await
}

#[tracing::instrument(skip_all, fields(org_id = %new.org_id))]
pub async fn insert(
    conn: &mut PgConnection,
    new: NewWebhook<'_>,
) -> Result<WebhookRow, sqlx::Error> {
    sqlx::query_as(&format!(
        "INSERT INTO webhooks (id, org_id, url, description, kinds, created_by)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
    ))
    .bind(new.id)
    .bind(new.org_id)
    .bind(new.url)
    .bind(new.description)
    .bind(new.kinds)
    .bind(new.created_by)
    .fetch_one(conn)
    .await
}

#[tracing::instrument(skip(conn))]
pub async fn list(conn: &mut PgConnection, org_id: Uuid) -> Result<Vec<WebhookRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM webhooks WHERE org_id = $1 ORDER BY created_at, id"
    ))
    .bind(org_id)
    .fetch_all(conn)
    .await
}

/// The organisation's webhook `id`, locked for the rest of the transaction when
/// `for_update`; None for another organisation's id.
#[tracing::instrument(skip(conn))]
pub async fn find(
    conn: &mut PgConnection,
    org_id: Uuid,
    id: Uuid,
    for_update: bool,
) -> Result<Option<WebhookRow>, sqlx::Error> {
    let lock = if for_update { "FOR UPDATE" } else { "" };
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM webhooks WHERE org_id = $1 AND id = $2 {lock}"
    ))
    .bind(org_id)
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Writes the changeable fields of `row` back.
#[tracing::instrument(skip_all, fields(id = %row.id))]
pub async fn update(conn: &mut PgConnection, row: &WebhookRow) -> Result<WebhookRow, sqlx::Error> {
    sqlx::query_as(&format!(
        "UPDATE webhooks SET url = $3, description = $4, kinds = $5, enabled = $6,
                disabled_at = CASE WHEN $6 THEN NULL ELSE coalesce(disabled_at, now()) END
          WHERE org_id = $1 AND id = $2 RETURNING {COLUMNS}"
    ))
    .bind(row.org_id)
    .bind(row.id)
    .bind(&row.url)
    .bind(&row.description)
    .bind(&row.kinds)
    .bind(row.enabled)
    .fetch_one(conn)
    .await
}

/// Increments the secret version (the old secret stops verifying).
#[tracing::instrument(skip(conn))]
pub async fn rotate(
    conn: &mut PgConnection,
    org_id: Uuid,
    id: Uuid,
) -> Result<WebhookRow, sqlx::Error> {
    sqlx::query_as(&format!(
        "UPDATE webhooks SET secret_version = secret_version + 1
          WHERE org_id = $1 AND id = $2 RETURNING {COLUMNS}"
    ))
    .bind(org_id)
    .bind(id)
    .fetch_one(conn)
    .await
}

/// Deletes the webhook and (cascade) its deliveries.
#[tracing::instrument(skip(conn))]
pub async fn delete(conn: &mut PgConnection, org_id: Uuid, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM webhooks WHERE org_id = $1 AND id = $2")
        .bind(org_id)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// The enabled webhooks of `org_id` that subscribe to `kind`.
#[tracing::instrument(skip(conn))]
pub async fn subscribed(
    conn: &mut PgConnection,
    org_id: Uuid,
    kind: &str,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM webhooks WHERE org_id = $1 AND enabled AND $2 = ANY (kinds) ORDER BY id",
    )
    .bind(org_id)
    .bind(kind)
    .fetch_all(conn)
    .await
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeliveryRow {
    pub id: Uuid,
    pub webhook_id: Uuid,
    pub event_id: Uuid,
    #[sqlx(rename = "type")]
    pub event_type: String,
    pub status: String,
    pub attempts: i32,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: OffsetDateTime,
    pub delivered_at: Option<OffsetDateTime>,
    pub next_attempt_at: OffsetDateTime,
}

const DELIVERY_COLUMNS: &str = "id, webhook_id, event_id, type, status, attempts, last_status_code, last_error, created_at, delivered_at, next_attempt_at";

/// Queues a delivery; false when this event was already queued for this webhook.
#[tracing::instrument(skip(conn, payload))]
pub async fn queue(
    conn: &mut PgConnection,
    webhook_id: Uuid,
    event_id: Uuid,
    event_type: &str,
    payload: &serde_json::Value,
) -> Result<Option<DeliveryRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "INSERT INTO webhook_deliveries (id, webhook_id, event_id, type, payload)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (webhook_id, event_id) DO NOTHING
         RETURNING {DELIVERY_COLUMNS}"
    ))
    .bind(Uuid::new_v4())
    .bind(webhook_id)
    .bind(event_id)
    .bind(event_type)
    .bind(payload)
    .fetch_optional(conn)
    .await
}

/// The delivery log of one webhook, newest first.
#[tracing::instrument(skip(conn))]
pub async fn deliveries(
    conn: &mut PgConnection,
    webhook_id: Uuid,
    limit: i64,
) -> Result<Vec<DeliveryRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE webhook_id = $1
          ORDER BY created_at DESC, id DESC LIMIT $2"
    ))
    .bind(webhook_id)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// A due delivery with what sending it needs.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DueRow {
    pub id: Uuid,
    pub webhook_id: Uuid,
    pub event_id: Uuid,
    pub payload: serde_json::Value,
    pub attempts: i32,
    pub created_at: OffsetDateTime,
    pub url: String,
    pub secret_version: i32,
}

/// The next delivery of an enabled webhook due by `due_by` (a pass's start, so a pass
/// tries each delivery at most once), locked (`SKIP LOCKED`: several control planes share
/// the work without sending a delivery twice). A disabled webhook's deliveries wait (they
/// are not due while it is off); a deleted one's are gone.
#[tracing::instrument(skip(conn))]
pub async fn lock_due(
    conn: &mut PgConnection,
    due_by: OffsetDateTime,
) -> Result<Option<DueRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT d.id, d.webhook_id, d.event_id, d.payload, d.attempts, d.created_at,
                w.url, w.secret_version
           FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
          WHERE d.status = 'pending' AND d.next_attempt_at <= $1 AND w.enabled
          ORDER BY d.next_attempt_at, d.id
          LIMIT 1
            FOR UPDATE OF d SKIP LOCKED",
    )
    .bind(due_by)
    .fetch_optional(conn)
    .await
}

#[tracing::instrument(skip(conn))]
pub async fn mark_delivered(
    conn: &mut PgConnection,
    id: Uuid,
    status_code: i32,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE webhook_deliveries SET status = 'delivered', attempts = attempts + 1,
                last_status_code = $2, last_error = NULL, delivered_at = clock_timestamp()
          WHERE id = $1",
    )
    .bind(id)
    .bind(status_code)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records a failed attempt: retried `retry_in` after now (the clock, not the
/// transaction's start: the attempt took time), or given up (`None`).
#[tracing::instrument(skip(conn, error))]
pub async fn mark_failed_attempt(
    conn: &mut PgConnection,
    id: Uuid,
    status_code: Option<i32>,
    error: &str,
    retry_in: Option<time::Duration>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE webhook_deliveries SET attempts = attempts + 1, last_status_code = $2,
                last_error = $3,
                status = CASE WHEN $4::interval IS NULL THEN 'failed' ELSE 'pending' END,
                next_attempt_at = CASE WHEN $4::interval IS NULL THEN next_attempt_at
                                       ELSE clock_timestamp() + $4::interval END
          WHERE id = $1",
    )
    .bind(id)
    .bind(status_code)
    .bind(error)
    .bind(retry_in)
    .execute(conn)
    .await?;
    Ok(())
}
