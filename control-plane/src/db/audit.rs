//! Reading the audit trail: pages for the API, all rows for exports and verification.
//! (Entries are written by `crate::audit::record`, inside the changing transaction.)

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

/// A stored entry, as the columns say it (`entry` is the hashed canonical text).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditRow {
    pub org_id: Uuid,
    pub seq: i64,
    pub at: OffsetDateTime,
    pub actor_user_id: Option<Uuid>,
    pub actor_api_key_id: Option<Uuid>,
    pub action: String,
    pub target_type: String,
    pub target_id: Option<Uuid>,
    pub entry: String,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
}

/// Which entries to read: optional filters, and a keyset page (`before_seq`, newest first).
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub target_id: Option<Uuid>,
    pub action: Option<String>,
    pub before_seq: Option<i64>,
}

const COLUMNS: &str = "org_id, seq, at, actor_user_id, actor_api_key_id, action, target_type, target_id, entry, prev_hash, hash";

/// Up to `limit` entries matching `filter`, newest first.
#[tracing::instrument(skip(conn))]
pub async fn page(
    conn: &mut PgConnection,
    org_id: Uuid,
    filter: &Filter,
    limit: i64,
) -> Result<Vec<AuditRow>, sqlx::Error> {
    sqlx::query_as::<_, AuditRow>(&format!(
        "SELECT {COLUMNS} FROM audit_log
          WHERE org_id = $1
            AND ($2::uuid IS NULL OR target_id = $2)
            AND ($3::text IS NULL OR action = $3)
            AND ($4::bigint IS NULL OR seq < $4)
          ORDER BY seq DESC
          LIMIT $5"
    ))
    .bind(org_id)
    .bind(filter.target_id)
    .bind(filter.action.as_deref())
    .bind(filter.before_seq)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Up to `limit` entries with `seq > after_seq`, oldest first (for walking the chain).
#[tracing::instrument(skip(conn))]
pub async fn chain_after(
    conn: &mut PgConnection,
    org_id: Uuid,
    after_seq: i64,
    limit: i64,
) -> Result<Vec<AuditRow>, sqlx::Error> {
    sqlx::query_as::<_, AuditRow>(&format!(
        "SELECT {COLUMNS} FROM audit_log WHERE org_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
    ))
    .bind(org_id)
    .bind(after_seq)
    .bind(limit)
    .fetch_all(conn)
    .await
}
