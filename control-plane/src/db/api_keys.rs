//! API keys: only the SHA-256 of a key and a short display prefix are stored, with the
//! person each key answers for (`created_by`) and the key that minted it, if any.

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::Role;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiKeyRow {
    pub id: Uuid,
    pub name: String,
    pub role: Role,
    pub key_prefix: String,
    pub created_by: Option<Uuid>,
    pub created_by_key: Option<Uuid>,
    pub created_at: OffsetDateTime,
    pub last_used_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
    pub revoked_reason: Option<String>,
}

const COLUMNS: &str = "id, name, role, key_prefix, created_by, created_by_key, created_at, last_used_at, revoked_at, revoked_reason";

/// Fields of a new key (the hash, never the key).
pub struct NewApiKey<'a> {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: &'a str,
    pub role: Role,
    pub key_hash: &'a [u8],
    pub key_prefix: &'a str,
    /// The person the key answers for: its creator, or the root of its creator chain.
    pub created_by: Uuid,
    /// The key that minted this one, if a key did.
    pub created_by_key: Option<Uuid>,
}

#[tracing::instrument(skip_all, fields(org_id = %key.org_id, name = key.name))]
pub async fn insert(conn: &mut PgConnection, key: NewApiKey<'_>) -> Result<ApiKeyRow, sqlx::Error> {
    sqlx::query_as::<_, ApiKeyRow>(&format!(
        "INSERT INTO api_keys (id, org_id, name, role, key_hash, key_prefix, created_by, created_by_key)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {COLUMNS}"
    ))
    .bind(key.id)
    .bind(key.org_id)
    .bind(key.name)
    .bind(key.role)
    .bind(key.key_hash)
    .bind(key.key_prefix)
    .bind(key.created_by)
    .bind(key.created_by_key)
    .fetch_one(conn)
    .await
}

/// The organisation's keys, newest first (revoked ones included, marked).
#[tracing::instrument(skip(conn))]
pub async fn list(conn: &mut PgConnection, org_id: Uuid) -> Result<Vec<ApiKeyRow>, sqlx::Error> {
    sqlx::query_as::<_, ApiKeyRow>(&format!(
        "SELECT {COLUMNS} FROM api_keys WHERE org_id = $1 ORDER BY created_at DESC, id"
    ))
    .bind(org_id)
    .fetch_all(conn)
    .await
}

#[tracing::instrument(skip(conn))]
pub async fn find(
    conn: &mut PgConnection,
    org_id: Uuid,
    id: Uuid,
) -> Result<Option<ApiKeyRow>, sqlx::Error> {
    sqlx::query_as::<_, ApiKeyRow>(&format!(
        "SELECT {COLUMNS} FROM api_keys WHERE org_id = $1 AND id = $2 FOR UPDATE"
    ))
    .bind(org_id)
    .bind(id)
    .fetch_optional(conn)
    .await
}

#[tracing::instrument(skip(conn))]
pub async fn revoke(conn: &mut PgConnection, org_id: Uuid, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE api_keys SET revoked_at = now(), revoked_reason = 'revoked' WHERE org_id = $1 AND id = $2 AND revoked_at IS NULL")
        .bind(org_id)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Revokes every live key that answers for `person` in the organisation: the keys they
/// minted and, since `created_by` is the root of the chain, the keys minted from those.
/// Returns the revoked keys' ids.
#[tracing::instrument(skip(conn))]
pub async fn revoke_of_person(
    conn: &mut PgConnection,
    org_id: Uuid,
    person: Uuid,
    reason: &str,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE api_keys SET revoked_at = now(), revoked_reason = $3
          WHERE org_id = $1 AND created_by = $2 AND revoked_at IS NULL
          RETURNING id",
    )
    .bind(org_id)
    .bind(person)
    .bind(reason)
    .fetch_all(conn)
    .await
}
