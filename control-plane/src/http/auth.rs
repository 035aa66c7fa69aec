//! Accounts and sessions over HTTP: `POST /auth/register`, `/auth/login`,
//! `/auth/refresh`, `/auth/logout`, `/auth/switch`, `GET /auth/me` and `PATCH /auth/me`
//! (language, name).
//!
//! When the server delivers mail, `POST /auth/register` answers 202 `confirmation_sent`
//! for every address and the account is created by the mailed link (`http::account`,
//! `docs/mail.md`); without mail it answers 201 and signs in, as before.
//!
//! The handlers are thin: they turn the request into the types of [`crate::accounts`]
//! (which holds the account logic: emails, passwords and argon2, registration, login
//! with its throttling and dummy-hash timing, sessions and refresh-token rotation), call
//! it, and answer its [`Tokens`] as a [`TokenResponse`].
//!
//! Also here: [`Errors`], which collects field errors so one 422 lists every problem of
//! a request (the `members` and `api_keys` handlers use it too).
//!
//! Passwords and tokens are never logged: handlers `skip` them in spans and the request
//! types do not derive `Debug`.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::no_store::NoStore;
use super::rfc3339;
use crate::accounts::{
    self, Api, Credentials, Email, NAME_MAX_CHARS, NewAccount, Password, Registered, Tokens,
};
use crate::auth::{Actor, Principal, Role};
use crate::db;
use crate::error::{ApiError, ApiResult, FieldError, Problem};
use crate::extract::Json;
use crate::mail::Language;
use crate::ratelimit::ClientIp;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(me, update_me))
        .routes(routes!(switch_org))
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

    /// A required field: "this field is required" when `raw` is `None`, else `parse`'s
    /// verdict (as [`Errors::check`]).
    pub(crate) fn required<R, T>(
        &mut self,
        field: &str,
        raw: Option<R>,
        parse: impl FnOnce(R) -> Result<T, &'static str>,
    ) -> Option<T> {
        match raw {
            Some(raw) => self.check(field, parse(raw)),
            None => {
                self.0.push(FieldError {
                    field: field.to_owned(),
                    message: "this field is required".to_owned(),
                });
                None
            }
        }
    }

    pub(crate) fn into_result(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.0))
        }
    }
}

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

impl From<Tokens> for TokenResponse {
    fn from(tokens: Tokens) -> Self {
        Self {
            access_token: tokens.access_token,
            token_type: "Bearer",
            refresh_token: tokens.refresh_token,
            expires_in: tokens.expires_in,
            organization_id: tokens.organization_id,
        }
    }
}

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
    /// The language of this person's mails (and the console); from `Accept-Language` by
    /// default.
    pub language: Option<Language>,
}

/// The answer of a sign-up when mail is delivered: the same whether or not the address
/// has an account (a message went to it either way).
#[derive(Serialize, utoipa::ToSchema)]
pub struct MailSent {
    /// `confirmation_sent`, `reset_sent`, `verification_sent` or `email_change_sent`.
    pub status: &'static str,
}

/// `202 {"status": …}`, not cached.
pub(crate) fn mail_sent(status: &'static str) -> Response {
    NoStore((StatusCode::ACCEPTED, axum::Json(MailSent { status }))).into_response()
}

/// The language a request asks for: `chosen`, else the `Accept-Language` header's.
pub(crate) fn request_language(headers: &HeaderMap, chosen: Option<Language>) -> Language {
    chosen.unwrap_or_else(|| {
        Language::from_accept_language(
            headers
                .get(header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok()),
        )
    })
}

impl TryFrom<RegisterRequest> for NewAccount {
    type Error = ApiError;

    /// Every field's problem at once (422), in the order of the fields.
    fn try_from(body: RegisterRequest) -> Result<Self, ApiError> {
        let mut errors = Errors::default();
        let email = errors.required("email", body.email.as_deref(), Email::parse);
        let password = errors.required("password", body.password, Password::parse);
        let name = errors.check("name", accounts::parse_name(body.name.as_deref()));
        let organization_name = errors.required(
            "organization_name",
            body.organization_name
                .as_deref()
                .map(str::trim)
                .filter(|n| !n.is_empty()),
            |n| {
                if n.chars().count() > NAME_MAX_CHARS || n.chars().any(char::is_control) {
                    Err("an organization name has 1 to 200 characters, no control characters")
                } else {
                    Ok(n.to_owned())
                }
            },
        );
        errors.into_result()?;
        let (Some(email), Some(password), Some(name), Some(organization_name)) =
            (email, password, name, organization_name)
        else {
            return Err(ApiError::Internal(anyhow::anyhow!(
                "validated fields missing"
            )));
        };
        Ok(Self {
            email,
            password,
            name,
            organization_name,
        })
    }
}

/// Creates an account and a new organisation owned by it, and logs in — or, when the
/// server delivers mail, mails a confirmation link (`POST /auth/register/confirm`
/// creates the account) and answers 202, the same for every address.
#[utoipa::path(
    post, path = "/auth/register", tag = "auth",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Account and organisation created; logged in (mail not delivered)", body = TokenResponse),
        (status = 202, description = "Mail delivered: a message went to the address (`confirmation_sent`), whether or not it has an account", body = MailSent),
        (status = 400, description = "Malformed JSON", body = Problem),
        (status = 409, description = "The email is already registered (`email_taken`; only when mail is not delivered)", body = Problem),
        (status = 422, description = "Invalid fields", body = Problem),
        (status = 429, description = "Too many registrations from this address; see Retry-After", body = Problem),
        (status = 503, description = "Password hashing busy (`busy`); see Retry-After", body = Problem),
    )
)]
#[tracing::instrument(skip_all)]
async fn register(
    State(state): State<AppState>,
    client: ClientIp,
    headers: HeaderMap,
    Json(body): Json<RegisterRequest>,
) -> ApiResult<Response> {
    let language = request_language(&headers, body.language);
    let account = NewAccount::try_from(body)?;
    match accounts::register::<Api>(&state, client.0, account, language).await? {
        Registered::Started(tokens) => Ok(NoStore((
            StatusCode::CREATED,
            axum::Json(TokenResponse::from(tokens)),
        ))
        .into_response()),
        Registered::ConfirmationSent => Ok(mail_sent("confirmation_sent")),
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
    /// The organisation to log into; the user's oldest membership by default.
    pub organization_id: Option<Uuid>,
}

impl From<LoginRequest> for Credentials {
    fn from(body: LoginRequest) -> Self {
        Self {
            email: body.email,
            password: body.password,
            organization_id: body.organization_id,
        }
    }
}

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
) -> ApiResult<NoStore<axum::Json<TokenResponse>>> {
    let tokens = accounts::login::<Api>(&state, client.0, body.into()).await?;
    Ok(NoStore(axum::Json(tokens.into())))
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
) -> ApiResult<NoStore<axum::Json<TokenResponse>>> {
    let tokens = accounts::session::refresh(&state, &body.refresh_token).await?;
    Ok(NoStore(axum::Json(tokens.into())))
}

/// Ends the current session: its access and refresh tokens (or the console's cookie)
/// stop working at once.
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
async fn logout(State(state): State<AppState>, actor: Actor) -> ApiResult<Response> {
    let Principal::User {
        session_id,
        browser,
        ..
    } = actor.principal
    else {
        return Err(ApiError::BadRequest(
            "API keys have no session; revoke a key with DELETE /api/v1/api-keys/{id}".to_owned(),
        ));
    };
    accounts::session::end(&state, session_id).await?;
    if browser {
        let clear = crate::auth::set_session_cookie(&state, None, time::Duration::ZERO);
        return Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, clear)]).into_response());
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct MeUser {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub created_at: String,
    /// Whether the address was proven (a followed link).
    pub email_verified: bool,
    /// The language of this person's mails and console.
    pub language: Language,
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
    /// Whether this server delivers mail (SMTP configured). Without it, addresses cannot
    /// be verified and invitations answer their token.
    pub mail_delivery: bool,
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
                email_verified: user.email_verified_at.is_some(),
                language: Language::from_code(&user.language),
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
        mail_delivery: crate::mail::delivers(&state.config),
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct UpdateMeRequest {
    /// The language of this person's mails and console.
    pub language: Option<Language>,
    /// Display name (at most 200 characters).
    pub name: Option<String>,
}

/// Changes the signed-in person's language and/or name.
#[utoipa::path(
    patch, path = "/auth/me", tag = "auth",
    request_body = UpdateMeRequest,
    responses(
        (status = 200, body = MeResponse),
        (status = 400, description = "Malformed JSON", body = Problem),
        (status = 401, description = "Not authenticated", body = Problem),
        (status = 403, description = "An API key (it has no person's profile to change)", body = Problem),
        (status = 422, description = "Invalid name", body = Problem),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(skip_all)]
async fn update_me(
    State(state): State<AppState>,
    actor: Actor,
    Json(body): Json<UpdateMeRequest>,
) -> ApiResult<axum::Json<MeResponse>> {
    let Some(user_id) = actor.user_id() else {
        return Err(ApiError::Forbidden(
            "an API key cannot change a person's profile",
        ));
    };
    let mut errors = Errors::default();
    let name = match body.name.as_deref() {
        Some(raw) => errors.check("name", accounts::parse_name(Some(raw))),
        None => None,
    };
    errors.into_result()?;
    let mut tx = state.pool.begin().await?;
    if let Some(language) = body.language {
        db::users::set_language(&mut tx, user_id, language.as_str()).await?;
    }
    if let Some(name) = name {
        db::users::set_name(&mut tx, user_id, &name).await?;
    }
    tx.commit().await?;
    me(State(state), actor).await
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
) -> ApiResult<NoStore<axum::Json<TokenResponse>>> {
    let Some(user_id) = actor.user_id() else {
        return Err(ApiError::Forbidden(
            "an API key belongs to one organization",
        ));
    };
    let tokens =
        accounts::session::switch_org::<Api>(&state, user_id, body.organization_id).await?;
    Ok(NoStore(axum::Json(tokens.into())))
}
