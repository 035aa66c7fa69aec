//! The signed-in person's own account, and the mailed account flows (issue 15) over
//! HTTP; the logic is in [`crate::accounts::mailed`].
//!
//! Public (the mailed token, or nothing, is the credential):
//! - `POST /auth/register/confirm` {token}: follows a sign-up confirmation link (mail
//!   delivered): creates the verified account and its organisation, answers tokens (the
//!   console uses `POST /auth/console/register/confirm`).
//! - `POST /auth/verify-email` {token}: follows a verification link, or an email-change
//!   link (the account's address becomes the new one, verified).
//! - `POST /auth/password/forgot` {email}: always 202 `reset_sent`.
//! - `POST /auth/password/reset` {token, password}: sets the password, ends every
//!   session.
//!
//! Signed in as a person (API keys get 403: they cannot act as a person's credentials):
//! - `POST /auth/verify-email/resend`, `POST /auth/password` {current_password,
//!   new_password} (other sessions end), `POST /auth/email` {new_email, password}
//!   (always 202 once the password is right). `PATCH /auth/me` is in `http::auth`.
//!
//! Every link token that cannot be used (unknown, used, expired) is 404 `invalid_token`.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::auth::{Errors, MailSent, TokenResponse, mail_sent, request_language};
use super::no_store::NoStore;
use crate::accounts::{self, Api, Email, Password};
use crate::auth::{Actor, Principal};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::Json;
use crate::ratelimit::ClientIp;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(account_register_confirm))
        .routes(routes!(account_verify_email))
        .routes(routes!(account_resend_verification))
        .routes(routes!(account_forgot_password))
        .routes(routes!(account_reset_password))
        .routes(routes!(account_change_password))
        .routes(routes!(account_change_email))
}

/// A mailed link's token (the part after `#token=`).
#[derive(Deserialize, utoipa::ToSchema)]
pub struct TokenRequest {
    pub token: String,
}

/// The signed-in person and their session; 403 for an API key.
fn person(actor: &Actor) -> ApiResult<(Uuid, Uuid)> {
    match actor.principal {
        Principal::User {
            user_id,
            session_id,
            ..
        } => Ok((user_id, session_id)),
        Principal::ApiKey { .. } => Err(ApiError::Forbidden(
            "an API key cannot change a person's account",
        )),
    }
}

/// Follows a mailed sign-up confirmation link: creates the account (address verified)
/// and its organisation, and logs in.
#[utoipa::path(
    post, path = "/auth/register/confirm", tag = "auth",
    request_body = TokenRequest,
    responses(
        (status = 201, description = "Account and organisation created; logged in", body = TokenResponse),
        (status = 400, description = "Malformed JSON", body = Problem),
        (status = 404, description = "Unknown, used or expired link (`invalid_token`)", body = Problem),
        (status = 409, description = "The address got an account meanwhile (`email_taken`)", body = Problem),
    )
)]
#[tracing::instrument(skip_all)]
async fn account_register_confirm(
    State(state): State<AppState>,
    Json(body): Json<TokenRequest>,
) -> ApiResult<Response> {
    let tokens = accounts::mailed::confirm_registration::<Api>(&state, body.token.trim()).await?;
    Ok(NoStore((StatusCode::CREATED, axum::Json(TokenResponse::from(tokens)))).into_response())
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct VerifiedEmail {
    /// The account's address, now verified (for an email change: the new address).
    pub email: String,
}

/// Follows a verification or email-change link.
#[utoipa::path(
    post, path = "/auth/verify-email", tag = "auth",
    request_body = TokenRequest,
    responses(
        (status = 200, description = "The address is verified (and, for a change, is the account's address now)", body = VerifiedEmail),
        (status = 400, description = "Malformed JSON", body = Problem),
        (status = 404, description = "Unknown, used or expired link (`invalid_token`)", body = Problem),
        (status = 409, description = "Email change: another account uses the new address now (`email_taken`)", body = Problem),
    )
)]
#[tracing::instrument(skip_all)]
async fn account_verify_email(
    State(state): State<AppState>,
    Json(body): Json<TokenRequest>,
) -> ApiResult<NoStore<axum::Json<VerifiedEmail>>> {
    let email = accounts::mailed::verify_email(&state, body.token.trim()).await?;
    Ok(NoStore(axum::Json(VerifiedEmail { email })))
}

/// Mails a new verification link to the signed-in person's address.
#[utoipa::path(
    post, path = "/auth/verify-email/resend", tag = "auth",
    responses(
        (status = 202, description = "A link is on its way (`verification_sent`); it works 24 hours", body = MailSent),
        (status = 401, description = "Not authenticated", body = Problem),
        (status = 403, description = "An API key", body = Problem),
        (status = 409, description = "The address is verified already (`already_verified`)", body = Problem),
        (status = 429, description = "Too many requests; see Retry-After", body = Problem),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(skip_all)]
async fn account_resend_verification(
    State(state): State<AppState>,
    actor: Actor,
) -> ApiResult<Response> {
    let (user_id, _) = person(&actor)?;
    accounts::mailed::resend_verification(&state, user_id).await?;
    Ok(mail_sent("verification_sent"))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct ForgotPasswordRequest {
    #[schema(example = "ada@example.com")]
    pub email: Option<String>,
}

/// Mails a password-reset link (valid one hour, single use) if the address has an
/// account — the answer is the same either way.
#[utoipa::path(
    post, path = "/auth/password/forgot", tag = "auth",
    request_body = ForgotPasswordRequest,
    responses(
        (status = 202, description = "`reset_sent`, whether or not the address has an account", body = MailSent),
        (status = 400, description = "Malformed JSON", body = Problem),
        (status = 422, description = "Not an email address", body = Problem),
        (status = 429, description = "Too many requests from this client address; see Retry-After", body = Problem),
    )
)]
#[tracing::instrument(skip_all, fields(client = ?client.0))]
async fn account_forgot_password(
    State(state): State<AppState>,
    client: ClientIp,
    headers: HeaderMap,
    Json(body): Json<ForgotPasswordRequest>,
) -> ApiResult<Response> {
    let mut errors = Errors::default();
    let email = errors.required("email", body.email.as_deref(), Email::parse);
    errors.into_result()?;
    let Some(email) = email else {
        return Err(ApiError::Internal(anyhow::anyhow!(
            "validated fields missing"
        )));
    };
    let language = request_language(&headers, None);
    accounts::mailed::forgot_password(&state, client.0, &email, language).await?;
    Ok(mail_sent("reset_sent"))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct ResetPasswordRequest {
    pub token: String,
    /// The new password: 10 to 128 characters.
    pub password: Option<String>,
}

/// Sets a new password with a mailed reset link; every session of the account ends.
#[utoipa::path(
    post, path = "/auth/password/reset", tag = "auth",
    request_body = ResetPasswordRequest,
    responses(
        (status = 204, description = "Password set; every session revoked; the address counts as verified"),
        (status = 400, description = "Malformed JSON", body = Problem),
        (status = 404, description = "Unknown, used or expired (after one hour) link (`invalid_token`)", body = Problem),
        (status = 422, description = "Invalid password", body = Problem),
        (status = 503, description = "Password hashing busy (`busy`); see Retry-After", body = Problem),
    )
)]
#[tracing::instrument(skip_all)]
async fn account_reset_password(
    State(state): State<AppState>,
    Json(body): Json<ResetPasswordRequest>,
) -> ApiResult<StatusCode> {
    let mut errors = Errors::default();
    let password = errors.required("password", body.password, Password::parse);
    errors.into_result()?;
    let Some(password) = password else {
        return Err(ApiError::Internal(anyhow::anyhow!(
            "validated fields missing"
        )));
    };
    accounts::mailed::reset_password(&state, body.token.trim(), password).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct ChangePasswordRequest {
    pub current_password: String,
    /// 10 to 128 characters.
    pub new_password: Option<String>,
}

/// Changes the signed-in person's password; their other sessions end (this one stays).
#[utoipa::path(
    post, path = "/auth/password", tag = "auth",
    request_body = ChangePasswordRequest,
    responses(
        (status = 204, description = "Changed; other sessions revoked; a notice is mailed"),
        (status = 400, description = "Malformed JSON", body = Problem),
        (status = 401, description = "Not authenticated", body = Problem),
        (status = 403, description = "Wrong current password (`wrong_password`), or an API key", body = Problem),
        (status = 422, description = "Invalid new password", body = Problem),
        (status = 429, description = "Too many wrong passwords; see Retry-After", body = Problem),
        (status = 503, description = "Password hashing busy (`busy`); see Retry-After", body = Problem),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(skip_all, fields(client = ?client.0))]
async fn account_change_password(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientIp,
    Json(body): Json<ChangePasswordRequest>,
) -> ApiResult<StatusCode> {
    let (user_id, session_id) = person(&actor)?;
    let mut errors = Errors::default();
    let new = errors.required("new_password", body.new_password, Password::parse);
    errors.into_result()?;
    let Some(new) = new else {
        return Err(ApiError::Internal(anyhow::anyhow!(
            "validated fields missing"
        )));
    };
    accounts::mailed::change_password(
        &state,
        client.0,
        user_id,
        session_id,
        body.current_password,
        new,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct ChangeEmailRequest {
    #[schema(example = "ada@new.example")]
    pub new_email: Option<String>,
    /// The current password.
    pub password: String,
}

/// Asks to change the signed-in person's address: a link goes to the new address (the
/// change happens when it is followed, through `POST /auth/verify-email`) and a notice
/// to the current one. The answer does not say whether the new address is taken.
#[utoipa::path(
    post, path = "/auth/email", tag = "auth",
    request_body = ChangeEmailRequest,
    responses(
        (status = 202, description = "`email_change_sent`: a link went to the new address", body = MailSent),
        (status = 400, description = "Malformed JSON", body = Problem),
        (status = 401, description = "Not authenticated", body = Problem),
        (status = 403, description = "Wrong password (`wrong_password`), or an API key", body = Problem),
        (status = 422, description = "Not an email address, or the current one", body = Problem),
        (status = 429, description = "Too many wrong passwords; see Retry-After", body = Problem),
        (status = 503, description = "Password hashing busy (`busy`); see Retry-After", body = Problem),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(skip_all, fields(client = ?client.0))]
async fn account_change_email(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientIp,
    Json(body): Json<ChangeEmailRequest>,
) -> ApiResult<Response> {
    let (user_id, _) = person(&actor)?;
    let mut errors = Errors::default();
    let email = errors.required("new_email", body.new_email.as_deref(), Email::parse);
    errors.into_result()?;
    let Some(email) = email else {
        return Err(ApiError::Internal(anyhow::anyhow!(
            "validated fields missing"
        )));
    };
    accounts::mailed::change_email(&state, client.0, user_id, &email, body.password).await?;
    Ok(mail_sent("email_change_sent"))
}
