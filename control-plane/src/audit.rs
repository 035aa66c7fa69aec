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

/// The action being recorded: `Change::new("site.update", "site", id).before(old).after(new)`.
pub struct Change<'a> {
    pub action: &'a str,
    pub target_type: &'a str,
    pub target_id: Option<Uuid>,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

impl<'a> Change<'a> {
    /// `action` on the `target_type` with id `target_id`, with no state recorded yet.
    pub fn new(action: &'a str, target_type: &'a str, target_id: Uuid) -> Self {
        Self {
            action,
            target_type,
            target_id: Some(target_id),
            before: None,
            after: None,
        }
    }

    /// The target's state before the change.
    #[must_use]
    pub fn before(self, state: serde_json::Value) -> Self {
        Self {
            before: Some(state),
            ..self
        }
    }

    /// The target's state after the change.
    #[must_use]
    pub fn after(self, state: serde_json::Value) -> Self {
        Self {
            after: Some(state),
            ..self
        }
    }
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

/// [`record`] for a change made by an API caller, in the caller's organisation.
pub async fn record_by(
    conn: &mut PgConnection,
    actor: &Actor,
    change: Change<'_>,
) -> Result<(), ApiError> {
    record(conn, actor.org_id, By::Actor(actor), change).await
}

/// What [`verify_chain`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ChainReport {
    /// True when every entry links to the previous one and matches its columns.
    pub ok: bool,
    /// Entries checked (all of them when `ok`; up to the first broken one otherwise).
    pub checked: i64,
    /// The `seq` of the first broken link: a missing entry, a wrong `prev_hash`, a hash
    /// that does not match the entry text, or columns that disagree with the text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_broken_seq: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The last entry's `seq` and hash (hex) when `ok`: keep them elsewhere to detect
    /// later truncation of the tail, which no chain can detect by itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head_seq: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head_hash: Option<String>,
}

/// Rows read per query while walking the chain.
const VERIFY_PAGE: i64 = 1000;

/// Recomputes the organisation's chain from the first entry and reports the first broken
/// link, if any.
///
/// Each entry must have `seq` one more than the previous (1 for the first), `prev_hash`
/// equal to the previous entry's hash (32 zero bytes for the first), `hash =
/// SHA-256(prev_hash || entry)`, and columns (`org_id`, `seq`, `at`, actor ids, `action`,
/// `target_type`, `target_id`) equal to what the hashed text says — so editing the text,
/// deleting or reordering rows, or changing a queryable column are all detected.
#[tracing::instrument(skip(conn))]
pub async fn verify_chain(conn: &mut PgConnection, org_id: Uuid) -> Result<ChainReport, ApiError> {
    let mut prev = vec![0u8; 32];
    let mut expected_seq = 1i64;
    let mut checked = 0i64;
    let broken = |seq: i64, checked: i64, reason: String| ChainReport {
        ok: false,
        checked,
        first_broken_seq: Some(seq),
        reason: Some(reason),
        head_seq: None,
        head_hash: None,
    };
    loop {
        let rows = crate::db::audit::chain_after(&mut *conn, org_id, expected_seq - 1, VERIFY_PAGE)
            .await?;
        if rows.is_empty() {
            break;
        }
        for row in &rows {
            if row.seq != expected_seq {
                return Ok(broken(
                    expected_seq,
                    checked,
                    format!(
                        "entry {expected_seq} is missing (the next stored entry is {})",
                        row.seq
                    ),
                ));
            }
            checked += 1;
            if row.prev_hash != prev {
                return Ok(broken(
                    row.seq,
                    checked,
                    "prev_hash is not the previous entry's hash".to_owned(),
                ));
            }
            if chain_hash(&prev, &row.entry) != row.hash {
                return Ok(broken(
                    row.seq,
                    checked,
                    "hash does not match the entry text".to_owned(),
                ));
            }
            if let Some(column) = column_mismatch(row) {
                return Ok(broken(
                    row.seq,
                    checked,
                    format!("column {column} differs from the hashed entry"),
                ));
            }
            prev.clone_from(&row.hash);
            expected_seq += 1;
        }
    }
    Ok(ChainReport {
        ok: true,
        checked,
        first_broken_seq: None,
        reason: None,
        head_seq: (checked > 0).then_some(expected_seq - 1),
        head_hash: (checked > 0).then(|| hex::encode(&prev)),
    })
}

/// The first column of `row` that disagrees with its hashed entry text, if any.
fn column_mismatch(row: &crate::db::audit::AuditRow) -> Option<&'static str> {
    let Ok(entry) = serde_json::from_str::<Entry>(&row.entry) else {
        return Some("entry (not a valid entry document)");
    };
    let at = time::OffsetDateTime::parse(&entry.at, &time::format_description::well_known::Rfc3339);
    if entry.org_id != row.org_id {
        Some("org_id")
    } else if entry.seq != row.seq {
        Some("seq")
    } else if at.ok() != Some(row.at) {
        Some("at")
    } else if entry.actor_user_id != row.actor_user_id {
        Some("actor_user_id")
    } else if entry.actor_api_key_id != row.actor_api_key_id {
        Some("actor_api_key_id")
    } else if entry.action != row.action {
        Some("action")
    } else if entry.target_type != row.target_type {
        Some("target_type")
    } else if entry.target_id != row.target_id {
        Some("target_id")
    } else {
        None
    }
}
