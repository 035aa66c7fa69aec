//! Tokens of the mailed account flows (issue 15): pending sign-ups
//! (`pending_registrations`) and single-use tokens of verification, password reset and
//! email change (`account_tokens`). Only SHA-256 hashes of tokens are stored; lookups
//! go by that hash and only find rows that are unused and unexpired.

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

/// A sign-up waiting for its address to be confirmed. No `Debug`: it holds a hash.
#[derive(Clone, sqlx::FromRow)]
pub struct PendingRow {
    pub id: Uuid,
    pub email: String,
    pub password_hash: String,
    pub name: String,
    pub organization_name: String,
    pub language: String,
}

/// What a pending sign-up stores.
pub struct NewPending<'a> {
    pub id: Uuid,
    pub email: &'a str,
    pub password_hash: &'a str,
    pub name: &'a str,
    pub organization_name: &'a str,
    pub language: &'a str,
    pub token_hash: &'a [u8],
    pub expires_at: OffsetDateTime,
}

#[tracing::instrument(skip_all, fields(id = %p.id))]
pub async fn insert_pending(
    conn: &mut PgConnection,
    p: &NewPending<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO pending_registrations
             (id, email, password_hash, name, organization_name, language, token_hash, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(p.id)
    .bind(p.email)
    .bind(p.password_hash)
    .bind(p.name)
    .bind(p.organization_name)
    .bind(p.language)
    .bind(p.token_hash)
    .bind(p.expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// The unused, unexpired pending sign-up with this token hash, locked.
#[tracing::instrument(skip_all)]
pub async fn pending_for_update(
    conn: &mut PgConnection,
    token_hash: &[u8],
) -> Result<Option<PendingRow>, sqlx::Error> {
    sqlx::query_as::<_, PendingRow>(
        "SELECT id, email, password_hash, name, organization_name, language
           FROM pending_registrations
          WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now()
          FOR UPDATE",
    )
    .bind(token_hash)
    .fetch_optional(conn)
    .await
}

/// Marks every open pending sign-up of `email` used (one was confirmed: the others must
/// stop working).
#[tracing::instrument(skip(conn))]
pub async fn close_pending_of(conn: &mut PgConnection, email: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE pending_registrations SET used_at = now() WHERE email = $1 AND used_at IS NULL",
    )
    .bind(email)
    .execute(conn)
    .await?;
    Ok(())
}

/// What a token is for (`account_tokens.purpose`, also its mail link purpose).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    VerifyEmail,
    ResetPassword,
    ChangeEmail,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::ResetPassword => "reset_password",
            Self::ChangeEmail => "change_email",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "verify_email" => Some(Self::VerifyEmail),
            "reset_password" => Some(Self::ResetPassword),
            "change_email" => Some(Self::ChangeEmail),
            _ => None,
        }
    }
}

/// An open token of a user.
#[derive(Debug, Clone)]
pub struct TokenRow {
    pub id: Uuid,
    pub purpose: Purpose,
    pub user_id: Uuid,
    pub email: String,
}

#[tracing::instrument(skip(conn, token_hash))]
pub async fn insert(
    conn: &mut PgConnection,
    id: Uuid,
    purpose: Purpose,
    user_id: Option<Uuid>,
    email: &str,
    token_hash: &[u8],
    expires_at: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO account_tokens (id, purpose, user_id, email, token_hash, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(purpose.as_str())
    .bind(user_id)
    .bind(email)
    .bind(token_hash)
    .bind(expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// The unused, unexpired token of a user with this hash and one of `purposes`, locked.
/// Rows without a user (a reset asked for an unknown address) are never found.
#[tracing::instrument(skip(conn, token_hash))]
pub async fn open_for_update(
    conn: &mut PgConnection,
    token_hash: &[u8],
    purposes: &[Purpose],
) -> Result<Option<TokenRow>, sqlx::Error> {
    let purposes: Vec<&str> = purposes.iter().map(|p| p.as_str()).collect();
    let row: Option<(Uuid, String, Uuid, String)> = sqlx::query_as(
        "SELECT id, purpose, user_id, email FROM account_tokens
          WHERE token_hash = $1 AND purpose = ANY($2) AND user_id IS NOT NULL
            AND used_at IS NULL AND expires_at > now()
          FOR UPDATE",
    )
    .bind(token_hash)
    .bind(&purposes)
    .fetch_optional(conn)
    .await?;
    Ok(row.and_then(|(id, purpose, user_id, email)| {
        Purpose::parse(&purpose).map(|purpose| TokenRow {
            id,
            purpose,
            user_id,
            email,
        })
    }))
}

/// Uses up every open token of `user_id` with `purpose` (the one just followed, and any
/// older link of the same kind).
#[tracing::instrument(skip(conn))]
pub async fn close_all(
    conn: &mut PgConnection,
    user_id: Uuid,
    purpose: Purpose,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE account_tokens SET used_at = now()
          WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL",
    )
    .bind(user_id)
    .bind(purpose.as_str())
    .execute(conn)
    .await?;
    Ok(())
}

/// How many tokens of `purpose` were mailed to `email` since `since` ago.
#[tracing::instrument(skip(conn))]
pub async fn count_recent(
    conn: &mut PgConnection,
    purpose: Purpose,
    email: &str,
    since: std::time::Duration,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM account_tokens
          WHERE purpose = $1 AND email = $2 AND created_at > now() - make_interval(secs => $3)",
    )
    .bind(purpose.as_str())
    .bind(email)
    .bind(since.as_secs_f64())
    .fetch_one(conn)
    .await
}
