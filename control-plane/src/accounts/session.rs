//! Sessions: one login, on one device, in one organisation.
//!
//! A session (`auth_sessions`) reaches its holder through a [`Channel`]:
//! - [`Api`]: a short-lived access token (a JWT carrying the session id) and a rotating
//!   refresh token (stored hashed). Each refresh uses its token up and issues the next
//!   one of the same session; presenting a used one again revokes the whole session (see
//!   `db::sessions`).
//! - [`Browser`] (the console): a random cookie token (`cs_…`, stored hashed) sent as an
//!   HttpOnly, `SameSite=Strict` cookie, and a CSRF token derived from the session id
//!   ([`csrf_token`]) that the console sends back in `X-CSRF-Token` on every state change.
//!
//! Ending a session makes the `Actor` extractor reject its credentials at once.

use std::future::Future;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::auth::{new_token, token_hash};
use crate::db;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Prefix of refresh tokens (recognisable in secret scanners, distinct from API keys).
pub const REFRESH_TOKEN_PREFIX: &str = "rt_";
/// Prefix of browser-session cookie tokens.
pub const COOKIE_TOKEN_PREFIX: &str = "cs_";

/// How a new session is handed to whoever logged in.
pub trait Channel {
    /// What the holder receives.
    type Started;

    /// Starts a session of `user_id` in `org_id`, in the caller's transaction.
    fn start<'a>(
        conn: &'a mut sqlx::PgConnection,
        state: &'a AppState,
        user_id: Uuid,
        org_id: Uuid,
    ) -> impl Future<Output = ApiResult<Self::Started>> + Send + 'a;
}

/// API clients: an access token and a refresh token ([`Tokens`]).
pub struct Api;

impl Channel for Api {
    type Started = Tokens;

    fn start<'a>(
        conn: &'a mut sqlx::PgConnection,
        state: &'a AppState,
        user_id: Uuid,
        org_id: Uuid,
    ) -> impl Future<Output = ApiResult<Tokens>> + Send + 'a {
        start(conn, state, user_id, org_id)
    }
}

/// The console: a cookie and a CSRF token ([`BrowserSession`]).
pub struct Browser;

impl Channel for Browser {
    type Started = BrowserSession;

    fn start<'a>(
        conn: &'a mut sqlx::PgConnection,
        state: &'a AppState,
        user_id: Uuid,
        org_id: Uuid,
    ) -> impl Future<Output = ApiResult<BrowserSession>> + Send + 'a {
        start_browser(conn, state, user_id, org_id)
    }
}

/// A browser session, as just started. No `Debug`: the cookie is a credential.
pub struct BrowserSession {
    pub session_id: Uuid,
    pub user_id: Uuid,
    pub organization_id: Uuid,
    /// The cookie's value (`cs_…`); only its hash is stored.
    pub cookie: String,
    /// What the console sends back in `X-CSRF-Token` ([`csrf_token`]).
    pub csrf_token: String,
    pub expires_at: OffsetDateTime,
}

/// Starts a browser session lasting the refresh-token lifetime (not extended by use).
pub async fn start_browser(
    conn: &mut sqlx::PgConnection,
    state: &AppState,
    user_id: Uuid,
    org_id: Uuid,
) -> ApiResult<BrowserSession> {
    let session_id = Uuid::new_v4();
    let expires_at = OffsetDateTime::now_utc() + ttl_to_time(state.config.refresh_token_ttl);
    let cookie = new_token(COOKIE_TOKEN_PREFIX);
    db::sessions::create_browser(
        conn,
        session_id,
        user_id,
        org_id,
        expires_at,
        &token_hash(&cookie),
    )
    .await?;
    Ok(BrowserSession {
        session_id,
        user_id,
        organization_id: org_id,
        cookie,
        csrf_token: csrf_token(state, session_id),
        expires_at,
    })
}

fn csrf_mac(state: &AppState, session_id: Uuid) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(state.config.jwt_secret.expose())
        .expect("HMAC takes keys of any length");
    mac.update(b"samplit console csrf v1\0");
    mac.update(session_id.as_bytes());
    mac
}

/// The CSRF token of a browser session: HMAC-SHA256 over the session id, keyed with the
/// server's token secret (so it needs no storage and cannot be computed by a page that
/// does not already hold it), hex.
pub fn csrf_token(state: &AppState, session_id: Uuid) -> String {
    hex::encode(csrf_mac(state, session_id).finalize().into_bytes())
}

/// Whether `presented` is the session's CSRF token (compared in constant time).
pub fn csrf_matches(state: &AppState, session_id: Uuid, presented: &str) -> bool {
    hex::decode(presented.trim())
        .is_ok_and(|bytes| csrf_mac(state, session_id).verify_slice(&bytes).is_ok())
}

/// The tokens of a session, as just issued. No `Debug`: both are credentials.
pub struct Tokens {
    /// JWT, valid `expires_in` seconds.
    pub access_token: String,
    /// Single-use: exchanged by [`refresh`] for the next tokens.
    pub refresh_token: String,
    pub expires_in: u64,
    pub organization_id: Uuid,
}

fn ttl_to_time(ttl: std::time::Duration) -> time::Duration {
    time::Duration::try_from(ttl).unwrap_or(time::Duration::days(365))
}

/// Stores a new refresh token of `session_id` and issues an access token for it.
async fn issue_tokens(
    conn: &mut sqlx::PgConnection,
    state: &AppState,
    user_id: Uuid,
    org_id: Uuid,
    session_id: Uuid,
    expires_at: OffsetDateTime,
) -> ApiResult<Tokens> {
    let refresh_token = new_token(REFRESH_TOKEN_PREFIX);
    db::sessions::add_refresh_token(conn, session_id, &token_hash(&refresh_token), expires_at)
        .await?;
    let access_token =
        state
            .jwt
            .issue(user_id, org_id, session_id, state.config.access_token_ttl)?;
    Ok(Tokens {
        access_token,
        refresh_token,
        expires_in: state.config.access_token_ttl.as_secs(),
        organization_id: org_id,
    })
}

/// Starts a session of `user_id` in `org_id` and returns its first tokens. Runs in the
/// caller's transaction, so the session exists only if the change that earned it (a
/// registration, an accepted invitation) commits.
pub async fn start(
    conn: &mut sqlx::PgConnection,
    state: &AppState,
    user_id: Uuid,
    org_id: Uuid,
) -> ApiResult<Tokens> {
    let session_id = Uuid::new_v4();
    let expires_at = OffsetDateTime::now_utc() + ttl_to_time(state.config.refresh_token_ttl);
    db::sessions::create(&mut *conn, session_id, user_id, org_id, expires_at).await?;
    issue_tokens(conn, state, user_id, org_id, session_id, expires_at).await
}

/// Exchanges a refresh token for the next tokens of its session (the old one is used up),
/// extending the session.
///
/// A token that was already used revokes its whole session (committed before the 401),
/// and so does a session whose member has left the organisation.
pub async fn refresh(state: &AppState, refresh_token: &str) -> ApiResult<Tokens> {
    const INVALID: ApiError = ApiError::Unauthorized("invalid or expired refresh token");
    let hash = token_hash(refresh_token.trim());
    let mut tx = state.pool.begin().await?;
    let row = db::sessions::refresh_token_for_update(&mut tx, &hash)
        .await?
        .ok_or(INVALID)?;
    if row.used_at.is_some() {
        // Reuse: someone holds a copy of this token. End the session for everyone, and
        // commit that before answering.
        db::sessions::revoke(&mut tx, row.session_id, "refresh_token_reuse").await?;
        tx.commit().await?;
        tracing::warn!(session_id = %row.session_id, "refresh token reused: session revoked");
        return Err(INVALID);
    }
    let now = OffsetDateTime::now_utc();
    if row.session_revoked_at.is_some()
        || row.session_expires_at <= now
        || row.token_expires_at <= now
    {
        return Err(INVALID);
    }
    let member = db::orgs::member_role_for_update(&mut tx, row.org_id, row.user_id).await?;
    if member.is_none() {
        db::sessions::revoke(&mut tx, row.session_id, "membership_removed").await?;
        tx.commit().await?;
        return Err(ApiError::Unauthorized(
            "session ended or membership removed",
        ));
    }
    db::sessions::mark_used(&mut tx, &hash).await?;
    let expires_at = now + ttl_to_time(state.config.refresh_token_ttl);
    db::sessions::extend(&mut tx, row.session_id, expires_at).await?;
    let tokens = issue_tokens(
        &mut tx,
        state,
        row.user_id,
        row.org_id,
        row.session_id,
        expires_at,
    )
    .await?;
    tx.commit().await?;
    Ok(tokens)
}

/// Ends a session (logout): its access and refresh tokens stop working at once.
pub async fn end(state: &AppState, session_id: Uuid) -> ApiResult<()> {
    let mut conn = state.pool.acquire().await?;
    db::sessions::revoke(&mut conn, session_id, "logout").await?;
    Ok(())
}

/// Starts a session of `user_id` in another organisation they belong to (404 otherwise);
/// their other sessions stay valid.
pub async fn switch_org<C: Channel>(
    state: &AppState,
    user_id: Uuid,
    org_id: Uuid,
) -> ApiResult<C::Started> {
    let mut tx = state.pool.begin().await?;
    db::orgs::member_role_for_update(&mut tx, org_id, user_id)
        .await?
        .ok_or(ApiError::NotFound("organization"))?;
    let tokens = C::start(&mut tx, state, user_id, org_id).await?;
    tx.commit().await?;
    Ok(tokens)
}
