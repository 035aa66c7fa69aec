//! Who is calling: access tokens (JWT, HS256) for people, API keys for automation.
//!
//! [`Actor`] is the extractor every protected handler takes. It resolves the caller's
//! organisation and *current* role from the database on each request, so a role change,
//! a removed member, a revoked key or a logged-out session takes effect at once — the
//! token only says who, never what they may do.
//!
//! Roles form a ladder (viewer < editor < admin < owner); see `docs/permissions.md`. A
//! handler that needs a minimum role whatever the request says takes
//! [`RequireRole<R>`](RequireRole) (`R` one of the [`roles`] markers) instead of `Actor`:
//! the check then happens during extraction, before the path, query and body are read.
//! Checks that depend on the request (the body, the target) stay [`Actor::require`]
//! calls in the handler.

use std::marker::PhantomData;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::config::JWT_AUDIENCE;
use crate::error::ApiError;
use crate::state::AppState;

/// Prefix of every API key, so keys are recognisable in logs and secret scanners.
pub const API_KEY_PREFIX: &str = "sk_";

pub use crate::domain::Role;

/// Access-token claims. `sid` is the session (refresh-token family) the token belongs to.
/// `iss` (the configured issuer) and `aud` ([`JWT_AUDIENCE`]) are required on the way in,
/// so a token minted for another service or deployment with the same secret is refused.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub sub: Uuid,
    pub org: Uuid,
    pub sid: Uuid,
    pub iat: i64,
    pub exp: i64,
}

/// Signing and verifying keys for access tokens, built once from the configured secret.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    issuer: String,
}

impl JwtKeys {
    pub fn new(secret: &[u8], issuer: &str) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            issuer: issuer.to_owned(),
        }
    }

    pub fn issue(
        &self,
        user: Uuid,
        org: Uuid,
        session: Uuid,
        ttl: std::time::Duration,
    ) -> Result<String, ApiError> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2);
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: JWT_AUDIENCE.to_owned(),
            sub: user,
            org,
            sid: session,
            iat: now,
            exp: now.saturating_add(ttl),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| ApiError::Internal(e.into()))
    }

    pub fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[JWT_AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|_| ApiError::Unauthorized("invalid or expired access token"))
    }
}

/// The argon2 gate: at most `permits` password hashes run at once (argon2id with default
/// parameters takes 19 MiB and tens of milliseconds of CPU each); a request that cannot
/// get a slot within `wait` is answered 503 with `Retry-After` instead of queueing
/// without bound on the blocking pool. Counters let tests (and operators) see how many
/// hashes ran and the most that ever ran at once.
pub struct PasswordGate {
    slots: tokio::sync::Semaphore,
    wait: std::time::Duration,
    runs: std::sync::atomic::AtomicU64,
    in_flight: std::sync::atomic::AtomicUsize,
    max_in_flight: std::sync::atomic::AtomicUsize,
}

impl PasswordGate {
    pub fn new(permits: usize, wait: std::time::Duration) -> Self {
        Self {
            slots: tokio::sync::Semaphore::new(permits.max(1)),
            wait,
            runs: 0.into(),
            in_flight: 0.into(),
            max_in_flight: 0.into(),
        }
    }

    /// Runs `work` (an argon2 hash or verification) on the blocking pool once a slot is
    /// free; 503 `busy` if none frees up within the configured wait.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        use std::sync::atomic::Ordering::SeqCst;
        let _permit = tokio::time::timeout(self.wait, self.slots.acquire())
            .await
            .map_err(|_| ApiError::Busy {
                retry_after_secs: self.wait.as_secs().max(1),
            })?
            .map_err(|e| ApiError::Internal(e.into()))?;
        let now = self.in_flight.fetch_add(1, SeqCst) + 1;
        self.max_in_flight.fetch_max(now, SeqCst);
        self.runs.fetch_add(1, SeqCst);
        let result = tokio::task::spawn_blocking(work).await;
        self.in_flight.fetch_sub(1, SeqCst);
        result.map_err(|e| ApiError::Internal(e.into()))
    }

    /// Hashes run so far.
    pub fn runs(&self) -> u64 {
        self.runs.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The most hashes that ever ran at once.
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// SHA-256 of a high-entropy token (API key, refresh token). Such tokens carry 256 bits
/// of randomness, so a fast hash is enough (no password-style stretching needed).
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// A new random token: `prefix` + 64 hex characters (256 bits from the OS RNG).
pub fn new_token(prefix: &str) -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{prefix}{}", hex::encode(bytes))
}

/// How the caller authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Principal {
    /// A person, with an access token (`browser: false`) or the console's session cookie
    /// (`browser: true`).
    User {
        user_id: Uuid,
        session_id: Uuid,
        browser: bool,
    },
    ApiKey {
        key_id: Uuid,
    },
}

/// The authenticated caller, with their organisation and current role there.
#[derive(Debug, Clone)]
pub struct Actor {
    pub principal: Principal,
    pub org_id: Uuid,
    pub role: Role,
    /// The person this actor answers for: the user, or the member at the root of an API
    /// key's creator chain. Nobody may change this person's role or membership through
    /// one of their own keys (see `http/members.rs`).
    pub person: Uuid,
    /// For the audit trail: the user's email or the key's name.
    pub label: String,
}

impl Actor {
    /// Fails with 403 unless the caller's role is at least `min`.
    pub fn require(&self, min: Role) -> Result<(), ApiError> {
        if self.role >= min {
            Ok(())
        } else {
            Err(ApiError::Forbidden("your role does not allow this action"))
        }
    }

    pub fn user_id(&self) -> Option<Uuid> {
        match self.principal {
            Principal::User { user_id, .. } => Some(user_id),
            Principal::ApiKey { .. } => None,
        }
    }

    pub fn api_key_id(&self) -> Option<Uuid> {
        match self.principal {
            Principal::ApiKey { key_id } => Some(key_id),
            Principal::User { .. } => None,
        }
    }
}

/// Role markers, the `R` of [`RequireRole<R>`](RequireRole): `RequireRole<Admin>` lets
/// admins and owners through.
pub mod roles {
    use super::Role;

    /// A minimum role known at compile time.
    pub trait MinRole {
        /// The lowest role let through.
        const MIN: Role;
    }

    macro_rules! markers {
        ($($(#[$doc:meta])* $name:ident;)*) => {$(
            $(#[$doc])*
            #[derive(Debug, Clone, Copy)]
            pub struct $name;

            impl MinRole for $name {
                const MIN: Role = Role::$name;
            }
        )*};
    }

    markers! {
        /// Any member (every role is at least viewer).
        Viewer;
        /// Editors, admins and owners.
        Editor;
        /// Admins and owners.
        Admin;
        /// Owners only.
        Owner;
    }
}

/// The [`Actor`], extracted exactly as on its own, whose role is at least `R::MIN`;
/// otherwise the same 403 as [`Actor::require`]. Handlers take it as
/// `RequireRole { actor, .. }: RequireRole<Admin>`.
///
/// Axum runs extractors in argument order, so a caller below `R::MIN` gets 403 before a
/// malformed path id, query or body is looked at.
#[derive(Debug, Clone)]
pub struct RequireRole<R> {
    pub actor: Actor,
    /// Private: only the extractor makes one, after the check.
    role: PhantomData<R>,
}

impl<R: roles::MinRole + Send + Sync> FromRequestParts<AppState> for RequireRole<R> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let actor = Actor::from_request_parts(parts, state).await?;
        actor.require(R::MIN)?;
        Ok(Self {
            actor,
            role: PhantomData,
        })
    }
}

/// The token of an `Authorization: Bearer <token>` header, trimmed; `None` when the
/// header is missing, not text, another scheme, or empty. The integrations' own tokens
/// (Shopify session tokens, WordPress connection tokens) are read with it too.
pub fn bearer_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let value = parts
        .headers
        .get(AUTHORIZATION)
        .ok_or(ApiError::Unauthorized(
            "missing Authorization: Bearer credentials",
        ))?
        .to_str()
        .map_err(|_| ApiError::Unauthorized("malformed Authorization header"))?;
    value
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(ApiError::Unauthorized(
            "expected Authorization: Bearer <token>",
        ))
}

impl FromRequestParts<AppState> for Actor {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if !parts.headers.contains_key(AUTHORIZATION)
            && let Some(cookie) = session_cookie(parts, state)
        {
            return actor_from_cookie(parts, state, &cookie).await;
        }
        let token = bearer(parts)?;
        if token.starts_with(API_KEY_PREFIX) {
            return actor_from_api_key(state, token).await;
        }
        let claims = state.jwt.verify(token)?;
        let row: Option<(Role, String)> = sqlx::query_as(
            "SELECT m.role, u.email
               FROM memberships m
               JOIN users u ON u.id = m.user_id
               JOIN auth_sessions s ON s.id = $3 AND s.user_id = m.user_id
              WHERE m.user_id = $1 AND m.org_id = $2
                AND s.revoked_at IS NULL AND s.expires_at > now()",
        )
        .bind(claims.sub)
        .bind(claims.org)
        .bind(claims.sid)
        .fetch_optional(&state.pool)
        .await?;
        let (role, email) = row.ok_or(ApiError::Unauthorized(
            "session ended or membership removed",
        ))?;
        Ok(Actor {
            principal: Principal::User {
                user_id: claims.sub,
                session_id: claims.sid,
                browser: false,
            },
            org_id: claims.org,
            person: claims.sub,
            role,
            label: email,
        })
    }
}

/// The console's session cookie: `__Host-samplit_session` (HttpOnly, Secure, `Path=/`,
/// `SameSite=Strict`); with `SAMPLIT_DEV_INSECURE_COOKIES` (plain-http development only)
/// `samplit_session` without `Secure`, since browsers refuse `__Host-` cookies that are not.
pub fn session_cookie_name(state: &AppState) -> &'static str {
    if state.config.dev_insecure_cookies {
        "samplit_session"
    } else {
        "__Host-samplit_session"
    }
}

/// The header the console sends its CSRF token in on every state change.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The `Set-Cookie` value that stores `value` (`None`: deletes the cookie) for `max_age`.
pub fn set_session_cookie(
    state: &AppState,
    value: Option<&str>,
    max_age: time::Duration,
) -> String {
    let mut cookie = cookie::Cookie::build((session_cookie_name(state), value.unwrap_or("")))
        .path("/")
        .http_only(true)
        .same_site(cookie::SameSite::Strict)
        .secure(!state.config.dev_insecure_cookies);
    cookie = if value.is_some() {
        cookie.max_age(max_age)
    } else {
        cookie.max_age(time::Duration::ZERO)
    };
    cookie.build().to_string()
}

/// Whether the request carries the console's session cookie (live or not).
pub fn has_session_cookie(parts: &Parts, state: &AppState) -> bool {
    session_cookie(parts, state).is_some()
}

/// The session cookie's value, if the request carries one.
fn session_cookie(parts: &Parts, state: &AppState) -> Option<String> {
    let name = session_cookie_name(state);
    parts
        .headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

/// The actor of a console request: a live browser session found by its cookie. A state
/// change (any method but GET, HEAD, OPTIONS) must also carry the session's CSRF token
/// in [`CSRF_HEADER`], or it is refused with 403 before the handler runs.
async fn actor_from_cookie(
    parts: &Parts,
    state: &AppState,
    cookie: &str,
) -> Result<Actor, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let row = crate::db::sessions::browser_session(&mut conn, &token_hash(cookie))
        .await?
        .ok_or(ApiError::Unauthorized(
            "session ended or membership removed; sign in again",
        ))?;
    if !parts.method.is_safe() {
        let presented = parts
            .headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !crate::accounts::session::csrf_matches(state, row.session_id, presented) {
            return Err(ApiError::Forbidden(
                "missing or invalid X-CSRF-Token header (the console sends it on every change)",
            ));
        }
    }
    Ok(Actor {
        principal: Principal::User {
            user_id: row.user_id,
            session_id: row.session_id,
            browser: true,
        },
        org_id: row.org_id,
        person: row.user_id,
        role: row.role,
        label: row.email,
    })
}

/// How far the actor extractor follows a key's creator chain. Keys minted by keys are an
/// automation convenience, not a tree to grow without end: a longer chain is refused.
pub const MAX_KEY_CHAIN: i32 = 8;

/// One link of a key's creator chain, the key itself first.
#[derive(sqlx::FromRow)]
struct ChainLink {
    id: Uuid,
    org_id: Uuid,
    role: Role,
    name: String,
    created_by: Option<Uuid>,
    created_by_key: Option<Uuid>,
    revoked: bool,
    /// The current role in `org_id` of `created_by` (null when they are not a member).
    member_role: Option<Role>,
}

/// A key's effective role: the minimum of every role along its creator chain (the key,
/// the key that minted it, ...) and the CURRENT role of the person at the root. `None`
/// when the chain is dead: a revoked link, a link in another organisation, a root whose
/// person is gone or no longer a member, or a chain too long to follow.
fn effective_key_role(chain: &[ChainLink]) -> Result<Option<(Role, Uuid)>, ApiError> {
    let (Some(first), Some(root)) = (chain.first(), chain.last()) else {
        return Ok(None);
    };
    if root.created_by_key.is_some() {
        // The walk stopped before reaching a person (too long, or a parent key deleted).
        return Ok(None);
    }
    let (Some(person), Some(mut role)) = (root.created_by, root.member_role) else {
        return Ok(None);
    };
    for link in chain {
        if link.revoked || link.org_id != first.org_id {
            return Ok(None);
        }
        role = role.min(link.role);
    }
    Ok(Some((role, person)))
}

async fn actor_from_api_key(state: &AppState, token: &str) -> Result<Actor, ApiError> {
    // The whole creator chain in one round trip, each link with the current membership
    // role of its `created_by` (used for the root only).
    let chain: Vec<ChainLink> = sqlx::query_as(
        "WITH RECURSIVE chain AS (
             SELECT k.id, k.org_id, k.role, k.name, k.created_by, k.created_by_key,
                    k.revoked_at IS NOT NULL AS revoked, 1 AS depth
               FROM api_keys k WHERE k.key_hash = $1
             UNION ALL
             SELECT p.id, p.org_id, p.role, p.name, p.created_by, p.created_by_key,
                    p.revoked_at IS NOT NULL, c.depth + 1
               FROM api_keys p JOIN chain c ON p.id = c.created_by_key
              WHERE c.depth < $2
         )
         SELECT c.id, c.org_id, c.role, c.name, c.created_by, c.created_by_key, c.revoked,
                m.role AS member_role
           FROM chain c
           LEFT JOIN memberships m ON m.org_id = c.org_id AND m.user_id = c.created_by
          ORDER BY c.depth",
    )
    .bind(token_hash(token))
    .bind(MAX_KEY_CHAIN)
    .fetch_all(&state.pool)
    .await?;
    let (role, person) =
        effective_key_role(&chain)?.ok_or(ApiError::Unauthorized("invalid or revoked API key"))?;
    let key = chain
        .into_iter()
        .next()
        .ok_or(ApiError::Unauthorized("invalid or revoked API key"))?;
    sqlx::query("UPDATE api_keys SET last_used_at = now() WHERE id = $1")
        .bind(key.id)
        .execute(&state.pool)
        .await?;
    Ok(Actor {
        principal: Principal::ApiKey { key_id: key.id },
        org_id: key.org_id,
        role,
        person,
        label: format!("api-key:{}", key.name),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_form_a_ladder() {
        assert!(
            Role::Viewer < Role::Editor && Role::Editor < Role::Admin && Role::Admin < Role::Owner
        );
        for role in [Role::Viewer, Role::Editor, Role::Admin, Role::Owner] {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn a_token_verifies_only_with_its_own_key_and_before_expiry() {
        let keys = JwtKeys::new(&[7u8; 32], "samplit");
        let (user, org, sid) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let token = keys
            .issue(user, org, sid, std::time::Duration::from_secs(60))
            .unwrap();
        let claims = keys.verify(&token).unwrap();
        assert_eq!((claims.sub, claims.org, claims.sid), (user, org, sid));
        assert!(JwtKeys::new(&[8u8; 32], "samplit").verify(&token).is_err());
        assert!(
            JwtKeys::new(&[7u8; 32], "other-deployment")
                .verify(&token)
                .is_err(),
            "another issuer's token is refused"
        );
        let expired = Claims {
            iss: "samplit".to_owned(),
            aud: JWT_AUDIENCE.to_owned(),
            sub: user,
            org,
            sid,
            iat: 0,
            exp: 1,
        };
        let expired = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &expired,
            &EncodingKey::from_secret(&[7u8; 32]),
        )
        .unwrap();
        assert!(keys.verify(&expired).is_err());
    }

    #[test]
    fn new_tokens_are_distinct_and_hash_to_32_bytes() {
        let (a, b) = (new_token(API_KEY_PREFIX), new_token(API_KEY_PREFIX));
        assert_ne!(a, b);
        assert_eq!(a.len(), API_KEY_PREFIX.len() + 64);
        assert_eq!(token_hash(&a).len(), 32);
    }
}
