//! The Worker's one error type and its JSON form.
//!
//! Every failure a client can cause ends here as a 4xx with
//! `{"error": {"code": "...", "message": "..."}}`; configuration problems (a missing
//! secret or binding) are 503 so an operator sees them at once. Messages are safe to show:
//! they never carry a binding's inner error text, which goes to the Worker log instead.

use serde::Serialize;

/// A failed request: the HTTP status, a stable machine-readable code and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    /// Seconds for a `Retry-After` header (429 `rate_limited`).
    pub retry_after_secs: Option<u32>,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after_secs: None,
        }
    }

    /// Over a rate limit ([`crate::ratelimit`]): 429 with `Retry-After: {seconds}`.
    pub fn rate_limited(seconds: u32) -> Self {
        Self {
            retry_after_secs: Some(seconds),
            ..Self::new(
                429,
                "rate_limited",
                format!("too many requests from this address for this site; retry in {seconds} s"),
            )
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(400, code, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "not_found", message)
    }

    pub fn unknown_site() -> Self {
        Self::new(
            404,
            "unknown_site",
            "no snapshot is published for this site key",
        )
    }

    pub fn method_not_allowed(allowed: &str) -> Self {
        Self::new(
            405,
            "method_not_allowed",
            format!("this route accepts {allowed}"),
        )
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            413,
            "payload_too_large",
            format!("the body is larger than {limit} bytes"),
        )
    }

    /// A secret or variable the route needs is not configured.
    pub fn not_configured(name: &str) -> Self {
        Self::new(
            503,
            "not_configured",
            format!("the Worker has no {name} configured"),
        )
    }

    /// A binding (KV, Queue, fetch) failed. The detail goes to the log, not the client.
    pub fn upstream(what: &str, detail: impl core::fmt::Display) -> Self {
        worker::console_error!("{what}: {detail}");
        Self::new(
            503,
            "unavailable",
            format!("{what} is unavailable, retry later"),
        )
    }

    /// The JSON body: `{"error": {"code": ..., "message": ...}}`.
    pub fn body(&self) -> String {
        #[derive(Serialize)]
        struct Inner<'a> {
            code: &'a str,
            message: &'a str,
        }
        #[derive(Serialize)]
        struct Outer<'a> {
            error: Inner<'a>,
        }
        serde_json::to_string(&Outer {
            error: Inner {
                code: self.code,
                message: &self.message,
            },
        })
        // Serializing two &str fields cannot fail; keep a literal fallback anyway.
        .unwrap_or_else(|_| String::from(r#"{"error":{"code":"internal","message":"internal"}}"#))
    }
}

impl core::fmt::Display for ApiError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_serializes_to_the_documented_shape() {
        let e = ApiError::bad_request("malformed_json", "expected \"value\"");
        let v: serde_json::Value = serde_json::from_str(&e.body()).unwrap();
        assert_eq!(v["error"]["code"], "malformed_json");
        assert_eq!(v["error"]["message"], "expected \"value\"");
        assert_eq!(e.status, 400);
        assert_eq!(e.retry_after_secs, None);
    }

    #[test]
    fn a_rate_limit_is_a_429_that_says_when_to_retry() {
        let e = ApiError::rate_limited(10);
        assert_eq!(
            (e.status, e.code, e.retry_after_secs),
            (429, "rate_limited", Some(10))
        );
        let v: serde_json::Value = serde_json::from_str(&e.body()).unwrap();
        assert_eq!(v["error"]["code"], "rate_limited");
    }
}
