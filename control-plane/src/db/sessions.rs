//! Login sessions and their rotating refresh tokens.
//!
//! A session is one login on one device, in one organisation: access tokens carry its id
//! (`sid`) and the `Actor` extractor rejects them as soon as the session is revoked. Each
//! refresh token is used once: refreshing marks it used and issues the next one of the
//! same session (the "family"). Presenting a used token again means it leaked (or a
//! client raced itself): the whole session is revoked, which also kills the token the
//! legitimate holder got by rotation.

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

/// A refresh token looked up for rotation, with its session.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RefreshRow {
    pub session_id: Uuid,
    pub used_at: Option<OffsetDateTime>,
    pub token_expires_at: OffsetDateTime,
    pub user_id: Uuid,
    pub org_id: Uuid,
    pub session_revoked_at: Option<OffsetDateTime>,
    pub session_expires_at: OffsetDateTime,
}

/// Starts a session that lasts until `expires_at` (extended by each refresh).
#[tracing::instrument(skip(conn))]
pub async fn create(
    conn: &mut PgConnection,
    id: Uuid,
    user_id: Uuid,
    org_id: Uuid,
    expires_at: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO auth_sessions (id, user_id, org_id, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(id)
    .bind(user_id)
    .bind(org_id)
    .bind(expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Starts a browser session: its credential is a cookie whose SHA-256 is `cookie_hash`.
#[tracing::instrument(skip(conn, cookie_hash))]
pub async fn create_browser(
    conn: &mut PgConnection,
    id: Uuid,
    user_id: Uuid,
    org_id: Uuid,
    expires_at: OffsetDateTime,
    cookie_hash: &[u8],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO auth_sessions (id, user_id, org_id, expires_at, cookie_hash)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(user_id)
    .bind(org_id)
    .bind(expires_at)
    .bind(cookie_hash)
    .execute(conn)
    .await?;
    Ok(())
}

/// A live browser session found by its cookie, with the member's current role.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BrowserRow {
    pub session_id: Uuid,
    pub user_id: Uuid,
    pub org_id: Uuid,
    pub role: crate::domain::Role,
    pub email: String,
    pub expires_at: OffsetDateTime,
}

/// The live (not revoked, not expired) browser session whose cookie hashes to
/// `cookie_hash`, if its user is still a member of its organisation.
#[tracing::instrument(skip_all)]
pub async fn browser_session(
    conn: &mut PgConnection,
    cookie_hash: &[u8],
) -> Result<Option<BrowserRow>, sqlx::Error> {
    sqlx::query_as::<_, BrowserRow>(
        "SELECT s.id AS session_id, s.user_id, s.org_id, m.role, u.email, s.expires_at
           FROM auth_sessions s
           JOIN memberships m ON m.user_id = s.user_id AND m.org_id = s.org_id
           JOIN users u ON u.id = s.user_id
          WHERE s.cookie_hash = $1 AND s.revoked_at IS NULL AND s.expires_at > now()",
    )
    .bind(cookie_hash)
    .fetch_optional(conn)
    .await
}

/// When a live session ends, if it is live.
#[tracing::instrument(skip(conn))]
pub async fn expiry(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<OffsetDateTime>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT expires_at FROM auth_sessions
          WHERE id = $1 AND revoked_at IS NULL AND expires_at > now()",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Stores a refresh token of the session (its hash only).
#[tracing::instrument(skip(conn, token_hash))]
pub async fn add_refresh_token(
    conn: &mut PgConnection,
    session_id: Uuid,
    token_hash: &[u8],
    expires_at: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, session_id, expires_at) VALUES ($1, $2, $3)",
    )
    .bind(token_hash)
    .bind(session_id)
    .bind(expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Finds a refresh token by hash and locks it, so two concurrent refreshes with the same
/// token are serialised (the second one sees it used).
#[tracing::instrument(skip_all)]
pub async fn refresh_token_for_update(
    conn: &mut PgConnection,
    token_hash: &[u8],
) -> Result<Option<RefreshRow>, sqlx::Error> {
    sqlx::query_as::<_, RefreshRow>(
        "SELECT r.session_id, r.used_at, r.expires_at AS token_expires_at,
                s.user_id, s.org_id, s.revoked_at AS session_revoked_at,
                s.expires_at AS session_expires_at
           FROM refresh_tokens r JOIN auth_sessions s ON s.id = r.session_id
          WHERE r.token_hash = $1
          FOR UPDATE OF r",
    )
    .bind(token_hash)
    .fetch_optional(conn)
    .await
}

#[tracing::instrument(skip_all)]
pub async fn mark_used(conn: &mut PgConnection, token_hash: &[u8]) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE refresh_tokens SET used_at = now() WHERE token_hash = $1")
        .bind(token_hash)
        .execute(conn)
        .await?;
    Ok(())
}

/// Extends the session's life (sliding expiry on refresh).
#[tracing::instrument(skip(conn))]
pub async fn extend(
    conn: &mut PgConnection,
    id: Uuid,
    expires_at: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE auth_sessions SET expires_at = $2 WHERE id = $1")
        .bind(id)
        .bind(expires_at)
        .execute(conn)
        .await?;
    Ok(())
}

/// Revokes the session (idempotent: the first reason is kept).
#[tracing::instrument(skip(conn))]
pub async fn revoke(conn: &mut PgConnection, id: Uuid, reason: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE auth_sessions SET revoked_at = now(), revoked_reason = $2
          WHERE id = $1 AND revoked_at IS NULL",
    )
    .bind(id)
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(())
}
