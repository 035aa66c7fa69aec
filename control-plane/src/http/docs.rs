//! `GET /docs`: a readable API reference that works offline (no CDN, nothing fetched
//! from anywhere but this server).
//!
//! A static page (`docs/index.html`, `docs/docs.css`) and a small script (`docs/docs.js`,
//! no dependencies) embedded in the binary with `include_str!`. The script fetches
//! `/api/v1/openapi.json` — the document generated from the routes themselves — and
//! renders the endpoints grouped by tag: method, path, summary, parameters, request body
//! and responses with their schemas (references resolved, nesting bounded). It builds the
//! page with `textContent` only, never `innerHTML`, so no text in the document can become
//! markup.
//!
//! The page is served with a strict Content-Security-Policy: scripts and styles only from
//! this origin (`'self'`, no inline code), `connect-src 'self'` for the one fetch, and
//! nothing else.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::state::AppState;

const INDEX_HTML: &str = include_str!("docs/index.html");
const DOCS_JS: &str = include_str!("docs/docs.js");
const DOCS_CSS: &str = include_str!("docs/docs.css");

/// The policy of every `/docs` response.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// Routes outside `/api/v1`: `/docs`, `/docs/docs.js`, `/docs/docs.css`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/docs",
            get(|| async { asset(INDEX_HTML, "text/html; charset=utf-8") }),
        )
        .route(
            "/docs/docs.js",
            get(|| async { asset(DOCS_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/docs/docs.css",
            get(|| async { asset(DOCS_CSS, "text/css; charset=utf-8") }),
        )
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CONTENT_SECURITY_POLICY),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}
