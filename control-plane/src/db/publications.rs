//! `snapshot_publications`: one row per push attempt of a site's snapshot (see
//! `migrations/0006_snapshot_publications.sql`).

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PublicationRow {
    pub site_id: Uuid,
    pub version: i64,
    pub hash: String,
    pub content_hash: String,
    pub weights: serde_json::Value,
    pub status: String,
    pub attempts: i32,
    pub error: Option<String>,
    pub published_at: OffsetDateTime,
}

const COLUMNS: &str =
    "site_id, version, hash, content_hash, weights, status, attempts, error, published_at";

/// The content hash of the site's last successful publication.
#[tracing::instrument(skip(conn))]
pub async fn last_published_content(
    conn: &mut PgConnection,
    site_id: Uuid,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT content_hash FROM snapshot_publications
          WHERE site_id = $1 AND status = 'published' ORDER BY version DESC LIMIT 1",
    )
    .bind(site_id)
    .fetch_optional(conn)
    .await
}

/// The next version for a site: one more than any attempted so far.
#[tracing::instrument(skip(conn))]
pub async fn next_version(conn: &mut PgConnection, site_id: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT COALESCE(MAX(version), 0) + 1 FROM snapshot_publications WHERE site_id = $1",
    )
    .bind(site_id)
    .fetch_one(conn)
    .await
}

#[tracing::instrument(skip(conn, row), fields(site_id = %row.site_id, version = row.version))]
pub async fn insert(conn: &mut PgConnection, row: &PublicationRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO snapshot_publications (site_id, version, hash, content_hash, weights, status, attempts, error, published_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(row.site_id)
    .bind(row.version)
    .bind(&row.hash)
    .bind(&row.content_hash)
    .bind(&row.weights)
    .bind(&row.status)
    .bind(row.attempts)
    .bind(&row.error)
    .bind(row.published_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// A site's publications, latest first.
#[tracing::instrument(skip(conn))]
pub async fn list(
    conn: &mut PgConnection,
    site_id: Uuid,
    limit: i64,
) -> Result<Vec<PublicationRow>, sqlx::Error> {
    sqlx::query_as::<_, PublicationRow>(&format!(
        "SELECT {COLUMNS} FROM snapshot_publications WHERE site_id = $1
          ORDER BY version DESC LIMIT $2"
    ))
    .bind(site_id)
    .bind(limit)
    .fetch_all(conn)
    .await
}
