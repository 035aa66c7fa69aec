//! Users: one row per person, identified by a lower-cased email, with an argon2id hash.

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    pub id: Uuid,
    pub email: String,
    pub password_hash: String,
    pub name: String,
    pub created_at: OffsetDateTime,
    pub email_verified_at: Option<OffsetDateTime>,
    /// `en` or `es` (a CHECK constraint): the language of this person's mails.
    pub language: String,
}

const COLUMNS: &str = "id, email, password_hash, name, created_at, email_verified_at, language";

/// Inserts a user; a duplicate email surfaces as a unique violation for the caller to map.
#[tracing::instrument(skip(conn, password_hash))]
pub async fn insert(
    conn: &mut PgConnection,
    id: Uuid,
    email: &str,
    password_hash: &str,
    name: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO users (id, email, password_hash, name) VALUES ($1, $2, $3, $4)")
        .bind(id)
        .bind(email)
        .bind(password_hash)
        .bind(name)
        .execute(conn)
        .await?;
    Ok(())
}

/// The user with this (already normalised) email.
#[tracing::instrument(skip(conn))]
pub async fn find_by_email(
    conn: &mut PgConnection,
    email: &str,
) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as::<_, UserRow>(&format!("SELECT {COLUMNS} FROM users WHERE email = $1"))
        .bind(email)
        .fetch_optional(conn)
        .await
}

#[tracing::instrument(skip(conn))]
pub async fn find(conn: &mut PgConnection, id: Uuid) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as::<_, UserRow>(&format!("SELECT {COLUMNS} FROM users WHERE id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// The user, locked for a change of password or email.
#[tracing::instrument(skip(conn))]
pub async fn find_for_update(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as::<_, UserRow>(&format!(
        "SELECT {COLUMNS} FROM users WHERE id = $1 FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Marks the address proven now (unless it already was) and sets the language.
#[tracing::instrument(skip(conn))]
pub async fn set_verified(conn: &mut PgConnection, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE users SET email_verified_at = coalesce(email_verified_at, now()) WHERE id = $1",
    )
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Sets the language of this person's mails (`en` or `es`).
#[tracing::instrument(skip(conn))]
pub async fn set_language(
    conn: &mut PgConnection,
    id: Uuid,
    language: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET language = $2 WHERE id = $1")
        .bind(id)
        .bind(language)
        .execute(conn)
        .await?;
    Ok(())
}

#[tracing::instrument(skip(conn))]
pub async fn set_name(conn: &mut PgConnection, id: Uuid, name: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET name = $2 WHERE id = $1")
        .bind(id)
        .bind(name)
        .execute(conn)
        .await?;
    Ok(())
}

#[tracing::instrument(skip(conn, password_hash))]
pub async fn set_password_hash(
    conn: &mut PgConnection,
    id: Uuid,
    password_hash: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
        .bind(id)
        .bind(password_hash)
        .execute(conn)
        .await?;
    Ok(())
}

/// Changes the address, proven by the link just followed; a taken address surfaces as a
/// unique violation for the caller to map.
#[tracing::instrument(skip(conn))]
pub async fn set_email(conn: &mut PgConnection, id: Uuid, email: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET email = $2, email_verified_at = now() WHERE id = $1")
        .bind(id)
        .bind(email)
        .execute(conn)
        .await?;
    Ok(())
}

/// Revokes the user's live sessions in every organisation, except `keep` (the session
/// that changed the password); their access and refresh tokens stop working at once.
#[tracing::instrument(skip(conn))]
pub async fn revoke_sessions(
    conn: &mut PgConnection,
    id: Uuid,
    keep: Option<Uuid>,
    reason: &str,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE auth_sessions SET revoked_at = now(), revoked_reason = $3
          WHERE user_id = $1 AND revoked_at IS NULL AND id IS DISTINCT FROM $2",
    )
    .bind(id)
    .bind(keep)
    .bind(reason)
    .execute(conn)
    .await?
    .rows_affected())
}
