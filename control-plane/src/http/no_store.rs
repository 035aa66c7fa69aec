//! [`NoStore`]: the wrapper of every response that carries a credential — session
//! tokens, an API key, an invitation token, a site's server secret. Such a secret is shown
//! once; `Cache-Control: no-store` (RFC 9111 §5.2.2.5; RFC 6749 §5.1 asks it of token
//! responses) tells browsers, proxies and caches between the caller and us to keep no
//! copy of it.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

/// `inner`'s response, with `Cache-Control: no-store`.
pub struct NoStore<T>(pub T);

impl<T: IntoResponse> IntoResponse for NoStore<T> {
    fn into_response(self) -> Response {
        let mut response = self.0.into_response();
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}
