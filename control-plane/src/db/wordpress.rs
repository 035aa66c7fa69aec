//! The WordPress plugin's connect codes and connections
//! (`migrations/0019_wordpress_connections.sql`).

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

#[allow(clippy::too_many_arguments)]
pub async fn insert_code(
    conn: &mut PgConnection,
    code_hash: &[u8],
    org_id: Uuid,
    site_id: Uuid,
    site_url: &str,
    host: &str,
    created_by: Option<Uuid>,
    expires_at: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM wordpress_connect_codes WHERE expires_at < now()")
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO wordpress_connect_codes (code_hash, org_id, site_id, site_url, host, created_by, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(code_hash)
    .bind(org_id)
    .bind(site_id)
    .bind(site_url)
    .bind(host)
    .bind(created_by)
    .bind(expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CodeRow {
    pub org_id: Uuid,
    pub site_id: Uuid,
    pub site_url: String,
    pub host: String,
    pub expires_at: OffsetDateTime,
}

/// Consumes a code (gone afterwards, whatever the caller does with it).
pub async fn take_code(conn: &mut PgConnection, code_hash: &[u8]) -> sqlx::Result<Option<CodeRow>> {
    sqlx::query_as::<_, CodeRow>(
        "DELETE FROM wordpress_connect_codes WHERE code_hash = $1
         RETURNING org_id, site_id, site_url, host, expires_at",
    )
    .bind(code_hash)
    .fetch_optional(conn)
    .await
}

pub async fn insert_connection(
    conn: &mut PgConnection,
    id: Uuid,
    code: &CodeRow,
    token_hash: &[u8],
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO wordpress_connections (id, org_id, site_id, host, site_url, token_hash)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(code.org_id)
    .bind(code.site_id)
    .bind(&code.host)
    .bind(&code.site_url)
    .bind(token_hash)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ConnectionRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub site_id: Uuid,
    pub host: String,
}

/// The live connection holding this token.
pub async fn connection_by_token(
    conn: &mut PgConnection,
    token_hash: &[u8],
) -> sqlx::Result<Option<ConnectionRow>> {
    sqlx::query_as::<_, ConnectionRow>(
        "SELECT id, org_id, site_id, host FROM wordpress_connections
          WHERE token_hash = $1 AND revoked_at IS NULL",
    )
    .bind(token_hash)
    .fetch_optional(conn)
    .await
}

pub async fn revoke(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE wordpress_connections SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL",
    )
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Live experiments of a site (id, name, status), newest first.
pub async fn experiments_of_site(
    conn: &mut PgConnection,
    site_id: Uuid,
) -> sqlx::Result<Vec<(Uuid, String, String)>> {
    sqlx::query_as(
        "SELECT id, name, status FROM experiments
          WHERE site_id = $1 AND status IN ('running', 'paused')
          ORDER BY created_at DESC LIMIT 100",
    )
    .bind(site_id)
    .fetch_all(conn)
    .await
}
