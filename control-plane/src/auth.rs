//! Who is calling: access tokens (JWT, HS256) for people, API keys for automation.
//!
//! [`Actor`] is the extractor every protected handler takes. It resolves the caller's
//! organisation and *current* role from the database on each request, so a role change,
//! a removed member, a revoked key or a logged-out session takes effect at once — the
//! token only says who, never what they may do.
//!
//! Roles form a ladder (viewer < editor < admin < owner); see `docs/permissions.md`.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;

/// Prefix of every API key, so keys are recognisable in logs and secret scanners.
pub const API_KEY_PREFIX: &str = "sk_";

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Editor,
    Admin,
    Owner,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Editor => "editor",
            Self::Admin => "admin",
            Self::Owner => "owner",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "viewer" => Some(Self::Viewer),
            "editor" => Some(Self::Editor),
            "admin" => Some(Self::Admin),
            "owner" => Some(Self::Owner),
            _ => None,
        }
    }
}

/// Access-token claims. `sid` is the session (refresh-token family) the token belongs to.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
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
}

impl JwtKeys {
    pub fn new(secret: &[u8]) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
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
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|_| ApiError::Unauthorized("invalid or expired access token"))
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
    User { user_id: Uuid, session_id: Uuid },
    ApiKey { key_id: Uuid },
}

/// The authenticated caller, with their organisation and current role there.
#[derive(Debug, Clone)]
pub struct Actor {
    pub principal: Principal,
    pub org_id: Uuid,
    pub role: Role,
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
        let token = bearer(parts)?;
        if token.starts_with(API_KEY_PREFIX) {
            return actor_from_api_key(state, token).await;
        }
        let claims = state.jwt.verify(token)?;
        let row: Option<(String, String)> = sqlx::query_as(
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
            },
            org_id: claims.org,
            role: Role::parse(&role).ok_or_else(|| {
                ApiError::Internal(anyhow::anyhow!("unknown role {role:?} in memberships"))
            })?,
            label: email,
        })
    }
}

async fn actor_from_api_key(state: &AppState, token: &str) -> Result<Actor, ApiError> {
    let row: Option<(Uuid, Uuid, String, String)> = sqlx::query_as(
        "UPDATE api_keys SET last_used_at = now()
          WHERE key_hash = $1 AND revoked_at IS NULL
          RETURNING id, org_id, role, name",
    )
    .bind(token_hash(token))
    .fetch_optional(&state.pool)
    .await?;
    let (key_id, org_id, role, name) =
        row.ok_or(ApiError::Unauthorized("invalid or revoked API key"))?;
    Ok(Actor {
        principal: Principal::ApiKey { key_id },
        org_id,
        role: Role::parse(&role).ok_or_else(|| {
            ApiError::Internal(anyhow::anyhow!("unknown role {role:?} in api_keys"))
        })?,
        label: format!("api-key:{name}"),
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
        let keys = JwtKeys::new(&[7u8; 32]);
        let (user, org, sid) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let token = keys
            .issue(user, org, sid, std::time::Duration::from_secs(60))
            .unwrap();
        let claims = keys.verify(&token).unwrap();
        assert_eq!((claims.sub, claims.org, claims.sid), (user, org, sid));
        assert!(JwtKeys::new(&[8u8; 32]).verify(&token).is_err());
        let expired = Claims {
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
