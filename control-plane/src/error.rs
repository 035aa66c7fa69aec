//! The one error type of the API, answered as `application/problem+json` (RFC 9457).
//!
//! 4xx variants carry a safe message and a stable `code`; database and internal errors
//! are logged with the request id and answered with a generic body — never the inner
//! error text. Constraint violations map to 409 where the query runs (see
//! [`ApiError::conflict_on_unique`]).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

tokio::task_local! {
    /// The current request's id, set by the request-id middleware for the whole request.
    pub static REQUEST_ID: String;
}

/// The current request id, if called inside a request.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// A field-level problem in a request body or query.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed (bad JSON, wrong types).
    #[error("{0}")]
    BadRequest(String),
    /// 422: well-formed but invalid values.
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    /// 401: missing or invalid credentials.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// 403: authenticated, but the role does not allow this.
    #[error("{0}")]
    Forbidden(&'static str),
    /// 404: no such resource in the caller's organisation (also for other orgs' ids).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// 409: conflicts with the current state (duplicate, invalid transition).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// 412: the If-Match version is stale.
    #[error("the resource was changed by someone else; reload it and retry")]
    PreconditionFailed,
    /// 428: an If-Match header is required for this change.
    #[error("this change needs an If-Match header with the resource's current ETag")]
    PreconditionRequired,
    /// 413: body too large.
    #[error("the request body is too large")]
    PayloadTooLarge,
    /// 429: rate limited.
    #[error("too many attempts; retry after {retry_after_secs} s")]
    TooManyRequests { retry_after_secs: u64 },
    /// 503: a dependency (database) is unavailable.
    #[error("the service is temporarily unavailable")]
    Unavailable,
    /// 503 with `Retry-After`: a bounded resource (the argon2 slots) stayed busy for
    /// longer than a request may wait.
    #[error("the server is busy; retry after {retry_after_secs} s")]
    Busy { retry_after_secs: u64 },
    /// 422 `quota_exceeded`: an organisation's quota (`config::Limits`) would be passed.
    #[error("quota {quota} exceeded: the limit is {limit}, the organization has {current}")]
    QuotaExceeded {
        quota: &'static str,
        limit: i64,
        current: i64,
    },
    /// Any other 4xx/5xx with its own stable code (the Shopify endpoints: `bad_hmac`,
    /// `invalid_shop`, `bad_state`, `invalid_session_token`, `shopify_unavailable`, …).
    #[error("{message}")]
    Coded {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
    /// 500: logged, never shown.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

/// The RFC 9457 body, with our stable `code` and the request id.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub type_: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    pub code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// For `quota_exceeded`: which quota, its limit and the organisation's current count.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota: Option<QuotaProblem>,
}

/// The quota a `quota_exceeded` problem is about.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct QuotaProblem {
    /// `sites`, `running_experiments`, `api_keys` or `snapshot_bytes`.
    pub name: String,
    pub limit: i64,
    pub current: i64,
}

impl ApiError {
    pub fn validation(field: &str, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError {
            field: field.to_owned(),
            message: message.into(),
        }])
    }

    pub fn coded(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self::Coded {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            message: message.into(),
        }
    }

    /// Maps a unique-constraint violation to a 409 with `message`; anything else stays
    /// an internal error.
    pub fn conflict_on_unique(
        code: &'static str,
        message: &str,
    ) -> impl FnOnce(sqlx::Error) -> Self {
        move |e| match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => Self::conflict(code, message),
            _ => Self::from(e),
        }
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::Validation(_) => (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::Conflict { code, .. } => (StatusCode::CONFLICT, code),
            Self::PreconditionFailed => (StatusCode::PRECONDITION_FAILED, "stale_version"),
            Self::PreconditionRequired => (StatusCode::PRECONDITION_REQUIRED, "if_match_required"),
            Self::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::TooManyRequests { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Self::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Self::Busy { .. } => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
            Self::QuotaExceeded { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "quota_exceeded"),
            Self::Coded { status, code, .. } => (*status, code),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) => {
                tracing::error!(error = %e, "database unavailable");
                Self::Unavailable
            }
            other => Self::Internal(other.into()),
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        Self::Internal(e)
    }
}

/// Builds a problem response for a status and code outside [`ApiError`] (used by
/// middleware such as the body-size limit and timeouts).
pub fn problem_response(status: StatusCode, code: &str, detail: &str) -> Response {
    problem_with_errors(status, code, detail, Vec::new())
}

fn problem_with_errors(
    status: StatusCode,
    code: &str,
    detail: &str,
    errors: Vec<FieldError>,
) -> Response {
    problem_with(status, code, detail, errors, None)
}

fn problem_with(
    status: StatusCode,
    code: &str,
    detail: &str,
    errors: Vec<FieldError>,
    quota: Option<QuotaProblem>,
) -> Response {
    let problem = Problem {
        type_: format!("https://samplit.dev/problems/{code}"),
        title: status.canonical_reason().unwrap_or("Error").to_owned(),
        status: status.as_u16(),
        detail: detail.to_owned(),
        code: code.to_owned(),
        request_id: current_request_id(),
        errors,
        quota,
    };
    let mut response = (status, axum::Json(problem)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let detail = match &self {
            Self::Internal(inner) => {
                tracing::error!(error = ?inner, request_id = ?current_request_id(), "internal error");
                "an internal error occurred; quote the request id when reporting it".to_owned()
            }
            other => other.to_string(),
        };
        let retry_after = match &self {
            Self::TooManyRequests { retry_after_secs } | Self::Busy { retry_after_secs } => {
                Some(*retry_after_secs)
            }
            _ => None,
        };
        let quota = match &self {
            Self::QuotaExceeded {
                quota,
                limit,
                current,
            } => Some(QuotaProblem {
                name: (*quota).to_owned(),
                limit: *limit,
                current: *current,
            }),
            _ => None,
        };
        let errors = match self {
            Self::Validation(errors) => errors,
            _ => Vec::new(),
        };
        let mut response = problem_with(status, code, &detail, errors, quota);
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
