//! The tamper-evident audit trail: every change by an admin or key, and every published
//! allocation, hash-chained per organisation.
//!
//! Each entry is stored as its canonical JSON text (`entry`) plus
//! `hash = SHA-256(prev_hash || entry)`, where `prev_hash` is the previous entry's hash in
//! the same organisation (32 zero bytes for the first). Entries of one organisation are
//! serialised by a transaction-scoped advisory lock, so `seq` has no gaps and the chain
//! no forks. Verification (`verify_chain`) recomputes every hash and also checks that the
//! queryable columns still say what the hashed text says.

use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::auth::Actor;
use crate::error::ApiError;

/// What the chain hashes, in this field order (serde keeps declaration order, and
/// `serde_json::Value` objects serialise with sorted keys: the text is canonical).
#[derive(Debug, Serialize, serde::Deserialize, PartialEq)]
pub struct Entry {
    pub org_id: Uuid,
    pub seq: i64,
    /// RFC 3339, microsecond precision (what PostgreSQL stores).
    pub at: String,
    pub actor_user_id: Option<Uuid>,
    pub actor_api_key_id: Option<Uuid>,
    pub actor_label: String,
    pub action: String,
    pub target_type: String,
    pub target_id: Option<Uuid>,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

/// Who did it, for entries not made by an API caller (the publisher).
pub enum By<'a> {
    Actor(&'a Actor),
    System(&'a str),
}

/// The action being recorded.
pub struct Change<'a> {
    pub action: &'a str,
    pub target_type: &'a str,
    pub target_id: Option<Uuid>,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

pub fn chain_hash(prev: &[u8], entry_text: &str) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(entry_text.as_bytes());
    h.finalize().to_vec()
}

/// Appends an entry in the caller's transaction (so the change and its audit entry
/// commit or roll back together).
#[tracing::instrument(skip_all, fields(action = change.action))]
pub async fn record(
    conn: &mut PgConnection,
    org_id: Uuid,
    by: By<'_>,
    change: Change<'_>,
) -> Result<(), ApiError> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('audit:' || $1::text, 0))")
        .bind(org_id)
        .execute(&mut *conn)
        .await?;
    let last: Option<(i64, Vec<u8>)> = sqlx::query_as(
        "SELECT seq, hash FROM audit_log WHERE org_id = $1 ORDER BY seq DESC LIMIT 1",
    )
    .bind(org_id)
    .fetch_optional(&mut *conn)
    .await?;
    let (seq, prev) = match last {
        Some((seq, hash)) => (seq + 1, hash),
        None => (1, vec![0u8; 32]),
    };
    let now = time::OffsetDateTime::now_utc();
    let at = now
        .replace_nanosecond(now.microsecond() * 1000)
        .unwrap_or(now);
    let (actor_user_id, actor_api_key_id, actor_label) = match by {
        By::Actor(actor) => (actor.user_id(), actor.api_key_id(), actor.label.clone()),
        By::System(label) => (None, None, label.to_owned()),
    };
    let entry = Entry {
        org_id,
        seq,
        at: at
            .format(&time::format_description::well_known::Rfc3339)
            .map_err(|e| ApiError::Internal(e.into()))?,
        actor_user_id,
        actor_api_key_id,
        actor_label,
        action: change.action.to_owned(),
        target_type: change.target_type.to_owned(),
        target_id: change.target_id,
        before: change.before,
        after: change.after,
    };
    let text = serde_json::to_string(&entry).map_err(|e| ApiError::Internal(e.into()))?;
    let hash = chain_hash(&prev, &text);
    sqlx::query(
        "INSERT INTO audit_log (org_id, seq, at, actor_user_id, actor_api_key_id, action, target_type, target_id, entry, prev_hash, hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(org_id)
    .bind(seq)
    .bind(at)
    .bind(entry.actor_user_id)
    .bind(entry.actor_api_key_id)
    .bind(&entry.action)
    .bind(&entry.target_type)
    .bind(entry.target_id)
    .bind(&text)
    .bind(&prev)
    .bind(&hash)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
