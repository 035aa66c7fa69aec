//! The `sites` table: allowed domains, the public site key, the hashed server secret with
//! its public salt, the revenue cap and the exclusion rules. Every change bumps `version` (optimistic concurrency, the ETag)
//! and `updated_at` (the publisher's change marker) in the same `UPDATE … WHERE version = $n`.

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SiteRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    pub domains: Vec<String>,
    pub site_key: String,
    pub exclusions: serde_json::Value,
    pub snippet_seen_at: Option<OffsetDateTime>,
    /// The public salt the server secret is derived from; `None` for a site created
    /// before signed calls and never rotated since.
    pub server_secret_salt: Option<String>,
    /// Largest event value an unsigned call may report.
    pub revenue_cap: f64,
    pub version: i32,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

const COLUMNS: &str = "id, org_id, name, domains, site_key, exclusions, snippet_seen_at, server_secret_salt, revenue_cap, version, created_at, updated_at";

pub struct NewSite<'a> {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: &'a str,
    pub domains: &'a [String],
    pub site_key: &'a str,
    pub server_secret_hash: &'a [u8],
    pub server_secret_salt: &'a str,
}

#[tracing::instrument(skip(conn, site), fields(site_id = %site.id))]
pub async fn insert(conn: &mut PgConnection, site: NewSite<'_>) -> Result<SiteRow, sqlx::Error> {
    sqlx::query_as::<_, SiteRow>(&format!(
        "INSERT INTO sites (id, org_id, name, domains, site_key, server_secret_hash, server_secret_salt)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}"
    ))
    .bind(site.id)
    .bind(site.org_id)
    .bind(site.name)
    .bind(site.domains)
    .bind(site.site_key)
    .bind(site.server_secret_hash)
    .bind(site.server_secret_salt)
    .fetch_one(conn)
    .await
}

#[tracing::instrument(skip(conn))]
pub async fn list(conn: &mut PgConnection, org_id: Uuid) -> Result<Vec<SiteRow>, sqlx::Error> {
    sqlx::query_as::<_, SiteRow>(&format!(
        "SELECT {COLUMNS} FROM sites WHERE org_id = $1 ORDER BY created_at, id"
    ))
    .bind(org_id)
    .fetch_all(conn)
    .await
}

#[tracing::instrument(skip(conn))]
pub async fn get(
    conn: &mut PgConnection,
    org_id: Uuid,
    id: Uuid,
) -> Result<Option<SiteRow>, sqlx::Error> {
    sqlx::query_as::<_, SiteRow>(&format!(
        "SELECT {COLUMNS} FROM sites WHERE org_id = $1 AND id = $2"
    ))
    .bind(org_id)
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Locks the row for the rest of the transaction (changes read-check-write under it).
#[tracing::instrument(skip(conn))]
pub async fn get_for_update(
    conn: &mut PgConnection,
    org_id: Uuid,
    id: Uuid,
) -> Result<Option<SiteRow>, sqlx::Error> {
    sqlx::query_as::<_, SiteRow>(&format!(
        "SELECT {COLUMNS} FROM sites WHERE org_id = $1 AND id = $2 FOR UPDATE"
    ))
    .bind(org_id)
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Sets name and domains if the version still matches; `None` when it does not.
#[tracing::instrument(skip(conn, name, domains))]
pub async fn update(
    conn: &mut PgConnection,
    id: Uuid,
    version: i32,
    name: &str,
    domains: &[String],
) -> Result<Option<SiteRow>, sqlx::Error> {
    sqlx::query_as::<_, SiteRow>(&format!(
        "UPDATE sites SET name = $3, domains = $4, version = version + 1, updated_at = now()
          WHERE id = $1 AND version = $2 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(version)
    .bind(name)
    .bind(domains)
    .fetch_optional(conn)
    .await
}

#[tracing::instrument(skip(conn, exclusions))]
pub async fn set_exclusions(
    conn: &mut PgConnection,
    id: Uuid,
    version: i32,
    exclusions: &serde_json::Value,
) -> Result<Option<SiteRow>, sqlx::Error> {
    sqlx::query_as::<_, SiteRow>(&format!(
        "UPDATE sites SET exclusions = $3, version = version + 1, updated_at = now()
          WHERE id = $1 AND version = $2 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(version)
    .bind(exclusions)
    .fetch_optional(conn)
    .await
}

/// A rotation: the new salt (public) and the new secret's hash.
#[tracing::instrument(skip(conn, secret_hash))]
pub async fn set_secret(
    conn: &mut PgConnection,
    id: Uuid,
    secret_hash: &[u8],
    salt: &str,
) -> Result<Option<SiteRow>, sqlx::Error> {
    sqlx::query_as::<_, SiteRow>(&format!(
        "UPDATE sites SET server_secret_hash = $2, server_secret_salt = $3,
                version = version + 1, updated_at = now()
          WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(secret_hash)
    .bind(salt)
    .fetch_optional(conn)
    .await
}

/// Sets the revenue cap if the version still matches; `None` when it does not.
#[tracing::instrument(skip(conn))]
pub async fn set_revenue_cap(
    conn: &mut PgConnection,
    id: Uuid,
    version: i32,
    revenue_cap: f64,
) -> Result<Option<SiteRow>, sqlx::Error> {
    sqlx::query_as::<_, SiteRow>(&format!(
        "UPDATE sites SET revenue_cap = $3, version = version + 1, updated_at = now()
          WHERE id = $1 AND version = $2 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(version)
    .bind(revenue_cap)
    .fetch_optional(conn)
    .await
}

#[tracing::instrument(skip(conn))]
pub async fn delete(conn: &mut PgConnection, id: Uuid, version: i32) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM sites WHERE id = $1 AND version = $2")
        .bind(id)
        .bind(version)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Every site with its org, for the publisher (the site rows it snapshots).
#[tracing::instrument(skip(conn))]
pub async fn all(conn: &mut PgConnection) -> Result<Vec<SiteRow>, sqlx::Error> {
    sqlx::query_as::<_, SiteRow>(&format!("SELECT {COLUMNS} FROM sites ORDER BY id"))
        .fetch_all(conn)
        .await
}
