//! Optimistic concurrency with ETags: every response about a versioned resource carries
//! `ETag: "<version>"`; changes need `If-Match` with that value.
//!
//! A change without `If-Match` is answered 428 (so a client cannot overwrite blindly),
//! one whose `If-Match` names another version 412. `*` is refused like a missing header:
//! it would mean "whatever is there", which is what the header exists to prevent. The
//! version check is done again by the `UPDATE … WHERE version = $n` that writes.

use axum::extract::FromRequestParts;
use axum::http::header::{ETAG, IF_MATCH};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue};

use crate::error::ApiError;

/// The `ETag` header pair for a resource version.
pub fn etag(version: i32) -> [(HeaderName, HeaderValue); 1] {
    let value = HeaderValue::from_str(&format!("\"{version}\""))
        .unwrap_or_else(|_| HeaderValue::from_static("\"0\""));
    [(ETAG, value)]
}

/// The request's `If-Match` versions (empty when the header is absent).
#[derive(Debug, Clone, Default)]
pub struct IfMatch(Vec<String>);

impl IfMatch {
    /// Checks the header against the current version: 428 without it, 412 if stale.
    /// Call after the role check, so a forbidden caller gets 403 first.
    pub fn check(&self, current: i32) -> Result<(), ApiError> {
        if self.0.is_empty() {
            return Err(ApiError::PreconditionRequired);
        }
        let current = current.to_string();
        if self.0.contains(&current) {
            Ok(())
        } else {
            Err(ApiError::PreconditionFailed)
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let mut tags = Vec::new();
        for value in parts.headers.get_all(IF_MATCH) {
            // A header that is not visible ASCII cannot name a version: stale, not missing.
            let Ok(text) = value.to_str() else {
                tags.push(String::new());
                continue;
            };
            for tag in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                if tag == "*" {
                    continue;
                }
                // Strong comparison (RFC 9110 §13.1.1): a weak tag never matches.
                let strong = tag
                    .strip_prefix('"')
                    .and_then(|t| t.strip_suffix('"'))
                    .unwrap_or("");
                tags.push(strong.to_owned());
            }
        }
        Ok(Self(tags))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(values: &[&str]) -> IfMatch {
        let mut req = axum::http::Request::builder();
        for v in values {
            req = req.header(IF_MATCH, *v);
        }
        let (mut parts, ()) = req.body(()).unwrap().into_parts();
        futures_lite(IfMatch::from_request_parts(&mut parts, &())).unwrap()
    }

    /// The extractor never awaits anything, so polling it once completes it.
    fn futures_lite<F: std::future::Future>(f: F) -> F::Output {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut f = std::pin::pin!(f);
        match f.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(v) => v,
            std::task::Poll::Pending => unreachable!("the extractor is synchronous"),
        }
    }

    #[test]
    fn versions_match_only_as_strong_quoted_tags() {
        assert!(parse(&["\"3\""]).check(3).is_ok());
        assert!(parse(&["\"2\", \"3\""]).check(3).is_ok());
        assert!(matches!(
            parse(&["\"2\""]).check(3),
            Err(ApiError::PreconditionFailed)
        ));
        assert!(matches!(
            parse(&["W/\"3\""]).check(3),
            Err(ApiError::PreconditionFailed)
        ));
        assert!(matches!(
            parse(&["3"]).check(3),
            Err(ApiError::PreconditionFailed)
        ));
        assert!(matches!(
            parse(&[]).check(3),
            Err(ApiError::PreconditionRequired)
        ));
        assert!(matches!(
            parse(&["*"]).check(3),
            Err(ApiError::PreconditionRequired)
        ));
    }
}
