//! `snapshot_publications`: one row per push attempt of a site's snapshot (see
//! `migrations/0006_snapshot_publications.sql`).

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::publication::PublicationStatus;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PublicationRow {
    pub site_id: Uuid,
    pub version: i64,
    pub hash: String,
    pub content_hash: String,
    pub weights: serde_json::Value,
    pub status: PublicationStatus,
    pub attempts: i32,
    pub error: Option<String>,
    pub published_at: OffsetDateTime,
    /// A failure the edge will answer the same way until the content changes (413/422,
    /// or over the snapshot quota): not retried until then.
    pub permanent: bool,
}

const COLUMNS: &str = "site_id, version, hash, content_hash, weights, status, attempts, error, published_at, permanent";

/// A site's failures since its last successful publication (the back-off state).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FailureStreak {
    /// Consecutive failed publications (≥ 1).
    pub failures: i64,
    /// When the latest one was recorded.
    pub last_at: OffsetDateTime,
    /// Whether the latest one was permanent, and what content it carried.
    pub permanent: bool,
    pub content_hash: String,
}

/// The site's failure streak since its last successful publication, if it has one.
#[tracing::instrument(skip(conn))]
pub async fn failure_streak(
    conn: &mut PgConnection,
    site_id: Uuid,
) -> Result<Option<FailureStreak>, sqlx::Error> {
    sqlx::query_as::<_, FailureStreak>(
        "SELECT count(*) AS failures,
                max(published_at) AS last_at,
                (array_agg(permanent ORDER BY version DESC))[1] AS permanent,
                (array_agg(content_hash ORDER BY version DESC))[1] AS content_hash
           FROM snapshot_publications
          WHERE site_id = $1 AND status = 'failed'
            AND version > COALESCE((SELECT max(version) FROM snapshot_publications
                                     WHERE site_id = $1 AND status = 'published'), 0)
         HAVING count(*) > 0",
    )
    .bind(site_id)
    .fetch_optional(conn)
    .await
}

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
        "INSERT INTO snapshot_publications (site_id, version, hash, content_hash, weights, status, attempts, error, published_at, permanent)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(row.site_id)
    .bind(row.version)
    .bind(&row.hash)
    .bind(&row.content_hash)
    .bind(&row.weights)
    .bind(row.status)
    .bind(row.attempts)
    .bind(&row.error)
    .bind(row.published_at)
    .bind(row.permanent)
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
