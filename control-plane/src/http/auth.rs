//! Accounts and sessions: `POST /auth/register`, `/auth/login`, `/auth/refresh`,
//! `/auth/logout`, `/auth/switch` and `GET /auth/me`.
//!
//! - Registration creates a user **and a new organisation** they own. Nobody can register
//!   into an existing organisation (that takes an invitation, see `members.rs`).
//! - Passwords are argon2id (the crate's default parameters) hashed and verified in
//!   `spawn_blocking`. Emails are trimmed and lower-cased ([`Email`]).
//! - Login answers the same 401 for an unknown email and a wrong password, and verifies
//!   against a dummy hash for unknown emails so timing does not tell them apart either.
//!   Failures are throttled per account and per client address, registrations per
//!   client address (`crate::ratelimit`).
//! - A login is a session (`auth_sessions`) in one organisation: a short-lived access
//!   token (JWT with the session id) and a rotating refresh token (stored hashed; reuse
//!   of a used one revokes the session, see `db::sessions`). Logout revokes the session,
//!   and the `Actor` extractor rejects its access tokens at once.
//!
//! Passwords and tokens are never logged: handlers `skip` them in spans and the request
//! types do not derive `Debug`.

use std::sync::LazyLock;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::audit::{self, By, Change};
use crate::auth::{Actor, PasswordGate, Principal, Role, new_token, token_hash};
use crate::db;
use crate::error::{ApiError, ApiResult, FieldError, Problem};
use crate::extract::Json;
use crate::ratelimit::{self, ClientIp};
use crate::state::AppState;

/// Prefix of refresh tokens (recognisable in secret scanners, distinct from API keys).
pub const REFRESH_TOKEN_PREFIX: &str = "rt_";
pub const PASSWORD_MIN_CHARS: usize = 10;
pub const PASSWORD_MAX_CHARS: usize = 128;
pub const NAME_MAX_CHARS: usize = 200;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(me))
        .routes(routes!(switch_org))
}

// ---------------------------------------------------------------------------------------
// Domain types

/// A syntactically valid email address, trimmed and lower-cased (how the database stores
/// it, so uniqueness is case-insensitive).
///
/// Deliberately simple: `local@domain`, ASCII only, no spaces or quotes, a domain of at
/// least two dot-separated labels of letters, digits and hyphens. Whether the mailbox
/// exists is proven by the invitation email, not by syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let email = raw.trim().to_lowercase();
        if email.len() < 3 || email.len() > 254 {
            return Err("an email has between 3 and 254 characters");
        }
        let Some((local, domain)) = email.split_once('@') else {
            return Err("an email looks like name@example.com");
        };
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c));
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if local_ok && domain_ok {
            Ok(Self(email))
        } else {
            Err("an email looks like name@example.com")
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password acceptable for a new account: 10 to 128 characters (not trimmed).
pub struct Password(String);

impl Password {
    pub fn parse(raw: String) -> Result<Self, &'static str> {
        let n = raw.chars().count();
        if n < PASSWORD_MIN_CHARS {
            Err("a password has at least 10 characters")
        } else if n > PASSWORD_MAX_CHARS {
            Err("a password has at most 128 characters")
        } else {
            Ok(Self(raw))
        }
    }

    pub(crate) fn into_inner(self) -> String {
        self.0
    }
}

/// A display name: trimmed, at most 200 characters, may be empty.
pub(crate) fn parse_name(raw: Option<&str>) -> Result<String, &'static str> {
    let name = raw.unwrap_or("").trim();
    if name.chars().count() > NAME_MAX_CHARS {
        Err("a name has at most 200 characters")
    } else if name.chars().any(char::is_control) {
        Err("a name has no control characters")
    } else {
        Ok(name.to_owned())
    }
}

/// Collects field errors so one answer lists every problem of a request.
#[derive(Default)]
pub(crate) struct Errors(Vec<FieldError>);

impl Errors {
    pub(crate) fn check<T>(&mut self, field: &str, result: Result<T, &'static str>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(message) => {
                self.0.push(FieldError {
                    field: field.to_owned(),
                    message: message.to_owned(),
                });
                None
            }
        }
    }

    pub(crate) fn missing(&mut self, field: &str) {
        self.0.push(FieldError {
            field: field.to_owned(),
            message: "this field is required".to_owned(),
        });
    }

    pub(crate) fn into_result(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.0))
        }
    }
}

// ---------------------------------------------------------------------------------------
// Passwords

/// Hashes a password with argon2id (default parameters, random 16-byte salt) off the
/// async threads, behind the argon2 gate (503 `busy` when it stays full).
pub(crate) async fn hash_password(gate: &PasswordGate, password: String) -> ApiResult<String> {
    gate.run(move || {
        use argon2::PasswordHasher;
        use rand::RngCore;
        let mut salt = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        let salt = argon2::password_hash::SaltString::encode_b64(&salt)
            .map_err(|e| anyhow::anyhow!("salt: {e}"))?;
        argon2::Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("argon2: {e}"))
    })
    .await?
    .map_err(ApiError::Internal)
}

/// A hash of a random password, verified against when the email is unknown so that the
/// answer takes as long as for a known one.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    use argon2::PasswordHasher;
    let salt = argon2::password_hash::SaltString::encode_b64(&[42u8; 16])
        .expect("16 bytes are a valid salt");
    argon2::Argon2::default()
        .hash_password(new_token("dummy_").as_bytes(), &salt)
        .map(|h| h.to_string())
        .expect("argon2 with default parameters hashes any input")
});

/// Verifies `password` against `hash` (or against the dummy hash when `None`, always
/// answering false then). Unparseable stored hashes count as a mismatch.
pub(crate) async fn verify_password(
    gate: &PasswordGate,
    password: String,
    hash: Option<String>,
) -> ApiResult<bool> {
    gate.run(move || {
        use argon2::PasswordVerifier;
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| DUMMY_HASH.clone());
        let Ok(parsed) = argon2::PasswordHash::new(&hash) else {
            return false;
        };
        let ok = argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        ok && known
    })
    .await
}

// ---------------------------------------------------------------------------------------
// Sessions and tokens

/// Tokens of a session.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TokenResponse {
    /// JWT for `Authorization: Bearer`, valid `expires_in` seconds.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Single-use: exchange it at `/auth/refresh` for new tokens.
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
) -> ApiResult<TokenResponse> {
    let refresh_token = new_token(REFRESH_TOKEN_PREFIX);
    db::sessions::add_refresh_token(conn, session_id, &token_hash(&refresh_token), expires_at)
        .await?;
    let access_token =
        state
            .jwt
            .issue(user_id, org_id, session_id, state.config.access_token_ttl)?;
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        refresh_token,
        expires_in: state.config.access_token_ttl.as_secs(),
        organization_id: org_id,
    })
}

/// Starts a session of `user_id` in `org_id` and returns its first tokens.
pub(crate) async fn start_session(
    conn: &mut sqlx::PgConnection,
    state: &AppState,
    user_id: Uuid,
    org_id: Uuid,
) -> ApiResult<TokenResponse> {
    let session_id = Uuid::new_v4();
    let expires_at = OffsetDateTime::now_utc() + ttl_to_time(state.config.refresh_token_ttl);
    db::sessions::create(&mut *conn, session_id, user_id, org_id, expires_at).await?;
    issue_tokens(conn, state, user_id, org_id, session_id, expires_at).await
}

/// An `Actor` for a user who just proved who they are (registration, accepted
/// invitation), for the audit entry of that very change.
pub(crate) fn user_actor(user_id: Uuid, org_id: Uuid, role: Role, email: &str) -> Actor {
    Actor {
        principal: Principal::User {
            user_id,
            // No session is involved in the audited change itself.
            session_id: Uuid::nil(),
        },
        org_id,
        role,
        person: user_id,
        label: email.to_owned(),
    }
}

// ---------------------------------------------------------------------------------------
// Handlers

#[derive(Deserialize, utoipa::ToSchema)]
pub struct RegisterRequest {
    #[schema(example = "ada@example.com")]
    pub email: Option<String>,
    /// 10 to 128 characters.
    pub password: Option<String>,
    pub name: Option<String>,
    /// The new organisation, owned by the new user.
    #[schema(example = "Acme")]
    pub organization_name: Option<String>,
}

/// Creates an account and a new organisation owned by it, and logs in.
#[utoipa::path(
    post, path = "/auth/register", tag = "auth",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Account and organisation created; logged in", body = TokenResponse),
        (status = 400, description = "Malformed JSON", body = Problem),
        (status = 409, description = "The email is already registered (`email_taken`)", body = Problem),
        (status = 422, description = "Invalid fields", body = Problem),
        (status = 429, description = "Too many registrations from this address; see Retry-After", body = Problem),
        (status = 503, description = "Password hashing busy (`busy`); see Retry-After", body = Problem),
    )
)]
#[tracing::instrument(skip_all)]
async fn register(
    State(state): State<AppState>,
    client: ClientIp,
    Json(body): Json<RegisterRequest>,
) -> ApiResult<impl IntoResponse> {
    let mut errors = Errors::default();
    let email = match body.email.as_deref() {
        Some(raw) => errors.check("email", Email::parse(raw)),
        None => {
            errors.missing("email");
            None
        }
    };
    let password = match body.password {
        Some(raw) => errors.check("password", Password::parse(raw)),
        None => {
            errors.missing("password");
            None
        }
    };
    let name = errors.check("name", parse_name(body.name.as_deref()));
    let org_name = match body.organization_name.as_deref().map(str::trim) {
        Some(n) if !n.is_empty() => errors.check(
            "organization_name",
            if n.chars().count() > NAME_MAX_CHARS || n.chars().any(char::is_control) {
                Err("an organization name has 1 to 200 characters, no control characters")
            } else {
                Ok(n.to_owned())
            },
        ),
        _ => {
            errors.missing("organization_name");
            None
        }
    };
    errors.into_result()?;
    let (Some(email), Some(password), Some(name), Some(org_name)) =
        (email, password, name, org_name)
    else {
        return Err(ApiError::Internal(anyhow::anyhow!(
            "validated fields missing"
        )));
    };

    ratelimit::check_and_record_registration(&state.pool, email.as_str(), client.0).await?;
    let password_hash = hash_password(&state.passwords, password.0).await?;
    let user_id = Uuid::new_v4();
    let org_id = Uuid::new_v4();
    let mut tx = state.pool.begin().await?;
    db::users::insert(&mut tx, user_id, email.as_str(), &password_hash, &name)
        .await
        .map_err(ApiError::conflict_on_unique(
            "email_taken",
            "an account with this email already exists; log in instead",
        ))?;
    db::orgs::insert(&mut tx, org_id, &org_name).await?;
    db::orgs::add_member(&mut tx, org_id, user_id, Role::Owner).await?;
    let actor = user_actor(user_id, org_id, Role::Owner, email.as_str());
    audit::record(
        &mut tx,
        org_id,
        By::Actor(&actor),
        Change {
            action: "organization.created",
            target_type: "organization",
            target_id: Some(org_id),
            before: None,
            after: Some(serde_json::json!({
                "name": org_name,
                "owner_user_id": user_id,
                "owner_email": email.as_str(),
            })),
        },
    )
    .await?;
    let tokens = start_session(&mut tx, &state, user_id, org_id).await?;
    tx.commit().await?;
    tracing::info!(%user_id, %org_id, "account registered");
    Ok((StatusCode::CREATED, axum::Json(tokens)))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
    /// The organisation to log into; the user's oldest membership by default.
    pub organization_id: Option<Uuid>,
}

const BAD_CREDENTIALS: &str = "invalid email or password";

/// Logs in with email and password.
#[utoipa::path(
    post, path = "/auth/login", tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in", body = TokenResponse),
        (status = 400, description = "Malformed JSON", body = Problem),
        (status = 401, description = "Unknown email or wrong password (the same answer for both)", body = Problem),
        (status = 403, description = "The user belongs to no organisation", body = Problem),
        (status = 404, description = "`organization_id` is not one of the user's organisations", body = Problem),
        (status = 429, description = "Too many failures for this account or address; see Retry-After", body = Problem),
        (status = 503, description = "Password hashing busy (`busy`); see Retry-After", body = Problem),
    )
)]
#[tracing::instrument(skip_all, fields(client = ?client.0))]
async fn login(
    State(state): State<AppState>,
    client: ClientIp,
    Json(body): Json<LoginRequest>,
) -> ApiResult<axum::Json<TokenResponse>> {
    // Invalid emails are not a 422 here: they are simply unknown accounts.
    let email: String = body.email.trim().to_lowercase().chars().take(254).collect();
    // Counted as a failure before argon2 runs, atomically with the check (see
    // `ratelimit`): parallel guesses cannot all slip under the limit.
    let reservation = ratelimit::reserve_login(&state.pool, &email, client.0).await?;

    let mut conn = state.pool.acquire().await?;
    let user = db::users::find_by_email(&mut conn, &email).await?;
    // No connection is held while argon2 runs (tens of milliseconds of CPU).
    drop(conn);
    // Passwords longer than any we accept cannot match; verify a bounded string instead
    // so a megabyte "password" costs no more than a normal one.
    let candidate = if body.password.chars().count() > PASSWORD_MAX_CHARS {
        None
    } else {
        Some(body.password)
    };
    let gate = &state.passwords;
    let verified = match (candidate, &user) {
        (Some(password), Some(user)) => {
            verify_password(gate, password, Some(user.password_hash.clone())).await
        }
        (Some(password), None) => verify_password(gate, password, None).await,
        (None, _) => verify_password(gate, String::new(), None).await,
    };
    let verified = match verified {
        Ok(verified) => verified,
        Err(e) => {
            // The password was never checked (busy): this attempt does not count.
            ratelimit::release(&state.pool, reservation).await?;
            return Err(e);
        }
    };
    let user = match (verified, user) {
        (true, Some(user)) => user,
        _ => return Err(ApiError::Unauthorized(BAD_CREDENTIALS)),
    };
    ratelimit::login_succeeded(&state.pool, &email).await?;

    let mut tx = state.pool.begin().await?;
    let orgs = db::orgs::orgs_of_user(&mut tx, user.id).await?;
    let org_id = match body.organization_id {
        Some(wanted) => orgs
            .iter()
            .find(|o| o.id == wanted)
            .map(|o| o.id)
            .ok_or(ApiError::NotFound("organization"))?,
        None => orgs.first().map(|o| o.id).ok_or(ApiError::Forbidden(
            "this account belongs to no organization; ask for an invitation",
        ))?,
    };
    let tokens = start_session(&mut tx, &state, user.id, org_id).await?;
    tx.commit().await?;
    tracing::info!(user_id = %user.id, %org_id, "logged in");
    Ok(axum::Json(tokens))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// Exchanges a refresh token for new tokens (the old one is used up).
///
/// Presenting a refresh token that was already used revokes its whole session: the
/// tokens issued from it stop working too.
#[utoipa::path(
    post, path = "/auth/refresh", tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "New tokens", body = TokenResponse),
        (status = 401, description = "Unknown, expired, used or revoked refresh token", body = Problem),
    )
)]
#[tracing::instrument(skip_all)]
async fn refresh(
    State(state): State<AppState>,
    Json(body): Json<RefreshRequest>,
) -> ApiResult<axum::Json<TokenResponse>> {
    const INVALID: ApiError = ApiError::Unauthorized("invalid or expired refresh token");
    let hash = token_hash(body.refresh_token.trim());
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
        &state,
        row.user_id,
        row.org_id,
        row.session_id,
        expires_at,
    )
    .await?;
    tx.commit().await?;
    Ok(axum::Json(tokens))
}

/// Ends the current session: its access and refresh tokens stop working at once.
#[utoipa::path(
    post, path = "/auth/logout", tag = "auth",
    responses(
        (status = 204, description = "Session revoked"),
        (status = 400, description = "Called with an API key (revoke keys with DELETE /api-keys/{id})", body = Problem),
        (status = 401, description = "Not authenticated", body = Problem),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(skip_all)]
async fn logout(State(state): State<AppState>, actor: Actor) -> ApiResult<StatusCode> {
    let Principal::User { session_id, .. } = actor.principal else {
        return Err(ApiError::BadRequest(
            "API keys have no session; revoke a key with DELETE /api/v1/api-keys/{id}".to_owned(),
        ));
    };
    let mut conn = state.pool.acquire().await?;
    db::sessions::revoke(&mut conn, session_id, "logout").await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct MeUser {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub created_at: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct MeApiKey {
    pub id: Uuid,
    pub name: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct OrgSummary {
    pub id: Uuid,
    pub name: String,
    pub role: Role,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct MeResponse {
    /// The user, when called with an access token.
    pub user: Option<MeUser>,
    /// The key, when called with an API key.
    pub api_key: Option<MeApiKey>,
    /// The organisation of this token, with the caller's current role there.
    pub organization: OrgSummary,
    pub role: Role,
    /// Every organisation the user belongs to (just this one for an API key).
    pub organizations: Vec<OrgSummary>,
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Who is calling: the user (or key), the organisation, the role, the user's orgs.
#[utoipa::path(
    get, path = "/auth/me", tag = "auth",
    responses(
        (status = 200, body = MeResponse),
        (status = 401, description = "Not authenticated", body = Problem),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(skip_all)]
async fn me(State(state): State<AppState>, actor: Actor) -> ApiResult<axum::Json<MeResponse>> {
    let mut conn = state.pool.acquire().await?;
    let org = db::orgs::find(&mut conn, actor.org_id)
        .await?
        .ok_or(ApiError::NotFound("organization"))?;
    let this_org = || OrgSummary {
        id: org.id,
        name: org.name.clone(),
        role: actor.role,
    };
    let (user, api_key, organizations) = match actor.principal {
        Principal::User { user_id, .. } => {
            let user = db::users::find(&mut conn, user_id)
                .await?
                .ok_or(ApiError::Unauthorized(
                    "session ended or membership removed",
                ))?;
            let orgs = db::orgs::orgs_of_user(&mut conn, user_id)
                .await?
                .into_iter()
                .map(|o| OrgSummary {
                    id: o.id,
                    name: o.name,
                    role: o.role,
                })
                .collect();
            let user = MeUser {
                id: user.id,
                email: user.email,
                name: user.name,
                created_at: rfc3339(user.created_at),
            };
            (Some(user), None, orgs)
        }
        Principal::ApiKey { key_id } => {
            let key = db::api_keys::find(&mut conn, actor.org_id, key_id)
                .await?
                .ok_or(ApiError::Unauthorized("invalid or revoked API key"))?;
            (
                None,
                Some(MeApiKey {
                    id: key.id,
                    name: key.name,
                }),
                vec![this_org()],
            )
        }
    };
    Ok(axum::Json(MeResponse {
        user,
        api_key,
        organization: this_org(),
        role: actor.role,
        organizations,
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct SwitchRequest {
    pub organization_id: Uuid,
}

/// Starts a session in another organisation the user belongs to (the current session
/// stays valid).
#[utoipa::path(
    post, path = "/auth/switch", tag = "auth",
    request_body = SwitchRequest,
    responses(
        (status = 200, description = "Tokens for the other organisation", body = TokenResponse),
        (status = 401, description = "Not authenticated", body = Problem),
        (status = 403, description = "API keys belong to one organisation", body = Problem),
        (status = 404, description = "Not one of the user's organisations", body = Problem),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(skip_all)]
async fn switch_org(
    State(state): State<AppState>,
    actor: Actor,
    Json(body): Json<SwitchRequest>,
) -> ApiResult<axum::Json<TokenResponse>> {
    let Some(user_id) = actor.user_id() else {
        return Err(ApiError::Forbidden(
            "an API key belongs to one organization",
        ));
    };
    let mut tx = state.pool.begin().await?;
    db::orgs::member_role_for_update(&mut tx, body.organization_id, user_id)
        .await?
        .ok_or(ApiError::NotFound("organization"))?;
    let tokens = start_session(&mut tx, &state, user_id, body.organization_id).await?;
    tx.commit().await?;
    Ok(axum::Json(tokens))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_lower_cased() {
        assert_eq!(
            Email::parse("  Ada@Example.COM ").unwrap().as_str(),
            "ada@example.com"
        );
        assert_eq!(
            Email::parse("a.b+tag@sub.example.io").unwrap().as_str(),
            "a.b+tag@sub.example.io"
        );
    }

    #[test]
    fn malformed_emails_are_refused() {
        for (raw, why) in [
            ("", "empty"),
            ("ada", "no @"),
            ("ada@", "no domain"),
            ("@example.com", "no local part"),
            ("ada@example", "single-label domain"),
            ("a da@example.com", "space"),
            ("ada@exa_mple.com", "underscore in domain"),
            ("ada@@example.com", "two @"),
            ("ada@-example.com", "label starts with a hyphen"),
            (".ada@example.com", "local starts with a dot"),
            ("a..da@example.com", "two dots"),
            ("ádá@example.com", "non-ASCII"),
            ("\"ada\"@example.com", "quotes"),
        ] {
            assert!(Email::parse(raw).is_err(), "{why}: {raw:?} was accepted");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(Email::parse(&long).is_err(), "over 254 characters");
    }

    #[test]
    fn passwords_have_10_to_128_characters_counted_as_characters() {
        assert!(Password::parse("123456789".into()).is_err());
        assert!(Password::parse("1234567890".into()).is_ok());
        assert!(
            Password::parse("é".repeat(10)).is_ok(),
            "10 characters, 20 bytes"
        );
        assert!(Password::parse("x".repeat(128)).is_ok());
        assert!(Password::parse("x".repeat(129)).is_err());
    }

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let g = PasswordGate::new(2, std::time::Duration::from_secs(5));
        let hash = hash_password(&g, "correct horse battery".into())
            .await
            .unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(
            verify_password(&g, "correct horse battery".into(), Some(hash.clone()))
                .await
                .unwrap()
        );
        assert!(
            !verify_password(&g, "wrong horse battery".into(), Some(hash))
                .await
                .unwrap()
        );
        assert!(!verify_password(&g, "anything".into(), None).await.unwrap());
        assert!(
            !verify_password(&g, "x".into(), Some("not a hash".into()))
                .await
                .unwrap()
        );
        assert_eq!(g.runs(), 5);
        assert!(g.max_in_flight() <= 2);
    }
}
