//! The console's sign-in: browser sessions held in a cookie (issue 12).
//!
//! - `POST /auth/console/register` and `POST /auth/console/login` take the same bodies as
//!   `/auth/register` and `/auth/login` (same validation, throttling and argon2 gate: the
//!   same [`crate::accounts`] functions) but start a [`Browser`] session: the answer sets
//!   the session cookie (HttpOnly, `SameSite=Strict`, `Secure` with the `__Host-` prefix;
//!   see [`crate::auth::session_cookie_name`]) and carries no token the page's script
//!   could leak — only the CSRF token the console sends back in `X-CSRF-Token` on every
//!   state change.
//! - `POST /auth/console/register/confirm` follows a mailed sign-up confirmation link
//!   (when mail is delivered, registering only mails it) and signs the browser in.
//! - `GET /auth/console/session` gives a reloaded page its CSRF token again.
//! - `POST /auth/console/switch` moves the browser to another of the user's
//!   organisations: a new session (new cookie) there, the old one ended.
//! - `POST /auth/logout` (in `http/auth.rs`) ends a browser session too and clears the
//!   cookie.
//!
//! Every other endpoint accepts the cookie in place of `Authorization` (the `Actor`
//! extractor), refusing a state change without the CSRF token (403).
//!
//! Login CSRF (a foreign page signing the browser into the attacker's account) is not
//! possible: these endpoints only accept `application/json` bodies, which a cross-site
//! form cannot send, and CORS does not let a foreign script send them.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::account::TokenRequest;
use super::auth::{LoginRequest, MailSent, RegisterRequest, mail_sent, request_language};
use super::no_store::NoStore;
use crate::accounts::{self, Browser, BrowserSession, NewAccount, Registered};
use crate::auth::{Actor, Principal, set_session_cookie};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::Json;
use crate::ratelimit::ClientIp;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(confirm_register))
        .routes(routes!(login))
        .routes(routes!(session))
        .routes(routes!(switch))
}

/// A browser session, as the console sees it (the cookie itself is HttpOnly).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConsoleSession {
    pub user_id: Uuid,
    pub organization_id: Uuid,
    /// Send it back in `X-CSRF-Token` on every request that changes something.
    pub csrf_token: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
}

/// The answer that starts `session` in this browser: its cookie and its view.
fn started(state: &AppState, status: StatusCode, session: BrowserSession) -> Response {
    let max_age = session.expires_at - OffsetDateTime::now_utc();
    let cookie = set_session_cookie(state, Some(&session.cookie), max_age);
    NoStore((
        status,
        [(header::SET_COOKIE, cookie)],
        axum::Json(ConsoleSession {
            user_id: session.user_id,
            organization_id: session.organization_id,
            csrf_token: session.csrf_token,
            expires_at: session.expires_at,
        }),
    ))
    .into_response()
}

/// Creates an account and its organisation, and signs this browser in — or, when the
/// server delivers mail, mails a confirmation link (answered 202, the same for every
/// address; `POST /auth/console/register/confirm` creates the account).
#[utoipa::path(
    post, path = "/auth/console/register", tag = "auth", operation_id = "console_register",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Account created; the session cookie is set (mail not delivered)", body = ConsoleSession),
        (status = 202, description = "Mail delivered: a message went to the address (`confirmation_sent`)", body = MailSent),
        (status = 409, description = "Email already registered (`email_taken`; only when mail is not delivered)", body = Problem),
        (status = 422, description = "Invalid fields", body = Problem),
        (status = 429, description = "Too many registrations from this address", body = Problem),
        (status = 503, description = "Password hashing busy (`busy`); see Retry-After", body = Problem),
    )
)]
#[tracing::instrument(skip_all, fields(client = ?client.0))]
async fn register(
    State(state): State<AppState>,
    client: ClientIp,
    headers: HeaderMap,
    Json(body): Json<RegisterRequest>,
) -> ApiResult<Response> {
    let language = request_language(&headers, body.language);
    let account = NewAccount::try_from(body)?;
    match accounts::register::<Browser>(&state, client.0, account, language).await? {
        Registered::Started(session) => Ok(started(&state, StatusCode::CREATED, session)),
        Registered::ConfirmationSent => Ok(mail_sent("confirmation_sent")),
    }
}

/// Follows a mailed sign-up confirmation link: creates the account (its address
/// verified) and its organisation, and signs this browser in.
#[utoipa::path(
    post, path = "/auth/console/register/confirm", tag = "auth", operation_id = "console_register_confirm",
    request_body = TokenRequest,
    responses(
        (status = 201, description = "Account created; the session cookie is set", body = ConsoleSession),
        (status = 400, description = "Malformed JSON", body = Problem),
        (status = 404, description = "Unknown, used or expired link (`invalid_token`)", body = Problem),
        (status = 409, description = "The address got an account meanwhile (`email_taken`)", body = Problem),
    )
)]
#[tracing::instrument(skip_all)]
async fn confirm_register(
    State(state): State<AppState>,
    Json(body): Json<TokenRequest>,
) -> ApiResult<Response> {
    let session =
        accounts::mailed::confirm_registration::<Browser>(&state, body.token.trim()).await?;
    Ok(started(&state, StatusCode::CREATED, session))
}

/// Signs this browser in with email and password.
#[utoipa::path(
    post, path = "/auth/console/login", tag = "auth", operation_id = "console_login",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in; the session cookie is set", body = ConsoleSession),
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
) -> ApiResult<Response> {
    let session = accounts::login::<Browser>(&state, client.0, body.into()).await?;
    Ok(started(&state, StatusCode::OK, session))
}

/// The browser session's view (its CSRF token), for a page that was reloaded.
#[utoipa::path(
    get, path = "/auth/console/session", tag = "auth", operation_id = "console_session",
    responses(
        (status = 200, body = ConsoleSession),
        (status = 400, description = "Not a browser session (an access token or an API key)", body = Problem),
        (status = 401, description = "No live session cookie", body = Problem),
    ),
    security(("console_session" = []))
)]
#[tracing::instrument(skip_all)]
async fn session(State(state): State<AppState>, actor: Actor) -> ApiResult<Response> {
    let (user_id, session_id) = browser_session(&actor)?;
    let mut conn = state.pool.acquire().await?;
    let expires_at = crate::db::sessions::expiry(&mut conn, session_id)
        .await?
        .ok_or(ApiError::Unauthorized("session ended"))?;
    Ok(NoStore(axum::Json(ConsoleSession {
        user_id,
        organization_id: actor.org_id,
        csrf_token: accounts::session::csrf_token(&state, session_id),
        expires_at,
    }))
    .into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct ConsoleSwitchRequest {
    pub organization_id: Uuid,
}

/// Moves this browser to another organisation of the user: a new session there (a new
/// cookie and CSRF token); the current one ends.
#[utoipa::path(
    post, path = "/auth/console/switch", tag = "auth", operation_id = "console_switch",
    request_body = ConsoleSwitchRequest,
    responses(
        (status = 200, description = "Signed into the other organisation", body = ConsoleSession),
        (status = 400, description = "Not a browser session", body = Problem),
        (status = 404, description = "Not one of the user's organisations", body = Problem),
    ),
    security(("console_session" = []))
)]
#[tracing::instrument(skip_all)]
async fn switch(
    State(state): State<AppState>,
    actor: Actor,
    Json(body): Json<ConsoleSwitchRequest>,
) -> ApiResult<Response> {
    let (user_id, old) = browser_session(&actor)?;
    let session =
        accounts::session::switch_org::<Browser>(&state, user_id, body.organization_id).await?;
    accounts::session::end(&state, old).await?;
    Ok(started(&state, StatusCode::OK, session))
}

fn browser_session(actor: &Actor) -> ApiResult<(Uuid, Uuid)> {
    match actor.principal {
        Principal::User {
            user_id,
            session_id,
            browser: true,
        } => Ok((user_id, session_id)),
        _ => Err(ApiError::BadRequest(
            "this endpoint is for the console's session cookie; API clients use /auth/switch"
                .to_owned(),
        )),
    }
}
