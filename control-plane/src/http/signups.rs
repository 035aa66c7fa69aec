//! `POST /public/signups`: the public simulator page's "keep me posted" form. No
//! account; the only public write besides registration.
//!
//! - The address is validated like an account's ([`Email`]); name and company are
//!   optional, at most 200 characters each, trimmed; `source` names the form (only
//!   `simulator` today).
//! - Deduplicated: one row per address, case-insensitive (`signups`, migration 0017);
//!   asking again updates the name and company and counts the request.
//! - The answer is the same `202 {"status": "received"}` whether the address was new or
//!   not, so the form cannot be used to learn who has signed up.
//! - Rate-limited per client address ([`ratelimit::check_and_record_signup`]: 5 per hour,
//!   IPv6 per /64), answered 429 with `Retry-After`.
//! - When storing fails the caller gets the error (503/500 problem), never a success: the
//!   original reported success on failure.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::accounts::email::Email;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::extract::Json;
use crate::ratelimit::{self, ClientIp};
use crate::state::AppState;

/// Longest name or company accepted.
pub const TEXT_MAX: usize = 200;
/// The forms that may send sign-ups.
pub const SOURCES: &[&str] = &["simulator"];

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_signup))
}

/// A sign-up.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignupInput {
    pub email: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub company: String,
    /// The form it comes from: `simulator`.
    pub source: String,
}

/// The answer: the same whether the address was new or already on the list.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SignupReceived {
    /// Always `received`.
    pub status: &'static str,
}

/// Checks the fields; the normalised address, name and company.
fn validate(input: &SignupInput) -> Result<(Email, String, String), Vec<FieldError>> {
    let mut errors = Vec::new();
    let email = Email::parse(&input.email).map_err(|m| FieldError {
        field: "email".into(),
        message: m.into(),
    });
    if let Err(e) = &email {
        errors.push(e.clone());
    }
    let mut text = |field: &str, value: &str| {
        let v = value.trim();
        if v.chars().count() > TEXT_MAX || v.chars().any(char::is_control) {
            errors.push(FieldError {
                field: field.into(),
                message: format!("at most {TEXT_MAX} characters, no control characters"),
            });
        }
        v.to_owned()
    };
    let name = text("name", &input.name);
    let company = text("company", &input.company);
    if !SOURCES.contains(&input.source.as_str()) {
        errors.push(FieldError {
            field: "source".into(),
            message: format!("one of: {}", SOURCES.join(", ")),
        });
    }
    match email {
        Ok(email) if errors.is_empty() => Ok((email, name, company)),
        _ => Err(errors),
    }
}

/// Ask to hear about Samplit (public; rate-limited per client address).
#[utoipa::path(post, path = "/public/signups", tag = "public",
    request_body = SignupInput,
    responses(
        (status = 202, body = SignupReceived),
        (status = 422, body = crate::error::Problem),
        (status = 429, description = "Too many sign-ups from this address; see Retry-After", body = crate::error::Problem),
    ))]
async fn create_signup(
    State(state): State<AppState>,
    client: ClientIp,
    Json(input): Json<SignupInput>,
) -> ApiResult<impl IntoResponse> {
    let (email, name, company) = validate(&input).map_err(ApiError::Validation)?;
    ratelimit::check_and_record_signup(&state.pool, email.as_str(), client.0).await?;
    sqlx::query(
        "INSERT INTO signups (id, email, name, company, source) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (lower(email)) DO UPDATE
            SET name = CASE WHEN EXCLUDED.name = '' THEN signups.name ELSE EXCLUDED.name END,
                company = CASE WHEN EXCLUDED.company = '' THEN signups.company ELSE EXCLUDED.company END,
                requests = signups.requests + 1,
                updated_at = now()",
    )
    .bind(Uuid::new_v4())
    .bind(email.as_str())
    .bind(&name)
    .bind(&company)
    .bind(&input.source)
    .execute(&state.pool)
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(SignupReceived { status: "received" }),
    ))
}
