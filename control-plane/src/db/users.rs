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
}

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
    sqlx::query_as::<_, UserRow>(
        "SELECT id, email, password_hash, name, created_at FROM users WHERE email = $1",
    )
    .bind(email)
    .fetch_optional(conn)
    .await
}

#[tracing::instrument(skip(conn))]
pub async fn find(conn: &mut PgConnection, id: Uuid) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as::<_, UserRow>(
        "SELECT id, email, password_hash, name, created_at FROM users WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
}
