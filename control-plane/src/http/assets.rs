//! The web assets the control plane serves itself: the console under `/app` and Swagger UI
//! under `/docs` (`http/docs.rs`). `console/build.mjs` builds them from the npm packages
//! pinned in `package-lock.json` (run by `build.rs` into Cargo's `OUT_DIR`); this module
//! embeds the result with `include_bytes!`, so a release binary needs no files on disk
//! and nothing is fetched from anywhere else.
//!
//! [`serve`] answers one asset by name:
//! - `Content-Type` from the file's extension;
//! - a strong `ETag` (a SHA-256 prefix of the content, computed once on first use) and
//!   `Cache-Control: no-cache`: browsers keep the file but revalidate it on every load,
//!   and an unchanged file costs a `304 Not Modified` without a body. The URLs stay plain
//!   (`/app/app.js`), so the HTML needs no build-time rewriting to hashed names, and a
//!   deploy is seen on the next page load, never a stale script against a newer API —
//!   the revalidation round trip is cheap for a console used by a few people at a time;
//! - the gzip body `build.mjs` compressed ahead of time (level 9) when the request's
//!   `Accept-Encoding` allows it, with `Vary: Accept-Encoding`; each encoding has its own
//!   ETag, as a strong validator names one representation.
//!
//! Every page these assets make up is served with [`CONTENT_SECURITY_POLICY`]: scripts and
//! styles from this origin only, no inline code. [`router`] serves the console's shell
//! (`/app`, `/app/app.js`, `/app/app.css`); a route that serves another asset is
//! `get(|headers: HeaderMap| async move { assets::serve("name", &headers) })`.
//!
//! Built without the `console` feature (only the fuzz crate does, so it never needs
//! node), nothing is embedded and every asset is a 404.

use std::sync::LazyLock;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::{MethodRouter, get};
use sha2::{Digest, Sha256};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::error::problem_response;
use crate::state::AppState;

/// The policy of the pages built from these assets (`/app`, `/docs`): every resource from
/// this origin, no inline script or style, no plugins, frames, forms or `<base>`.
/// `img-src data:` is for the icons Swagger UI's stylesheet inlines as data URIs.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The most the console's first load may weigh: `app.js` + `app.css`, gzipped, in bytes.
pub const CONSOLE_GZIP_BUDGET: usize = 150 * 1024;

/// One file as `build.mjs` wrote it, and its gzip.
struct Embedded {
    name: &'static str,
    identity: &'static [u8],
    gzip: &'static [u8],
}

#[cfg(feature = "console")]
macro_rules! embedded {
    ($($name:literal),* $(,)?) => {
        &[$(Embedded {
            name: $name,
            identity: include_bytes!(concat!(env!("OUT_DIR"), "/console/", $name)),
            gzip: include_bytes!(concat!(env!("OUT_DIR"), "/console/", $name, ".gz")),
        }),*]
    };
}

#[cfg(feature = "console")]
const EMBEDDED: &[Embedded] = embedded![
    "app.html",
    "app.js",
    "app.css",
    "docs.html",
    "docs.js",
    "docs.css",
    "swagger-ui-bundle.js",
    "swagger-ui-bundle.js.LICENSE.txt",
    "swagger-ui.css",
    "favicon-32x32.png",
    "sim.html",
    "sim.js",
    "sim.css",
    "sim.wasm",
];

#[cfg(not(feature = "console"))]
const EMBEDDED: &[Embedded] = &[];

/// An embedded file with what is derived from it once.
struct Asset {
    file: &'static Embedded,
    content_type: HeaderValue,
    etag: HeaderValue,
    /// `None` when gzip would not make the body smaller (tiny files).
    gzip: Option<(&'static [u8], HeaderValue)>,
}

static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| EMBEDDED.iter().map(Asset::new).collect());

impl Asset {
    fn new(file: &'static Embedded) -> Self {
        // 128 bits of SHA-256: a collision between two builds of one file is not a risk.
        let digest = Sha256::digest(file.identity);
        let hash = hex::encode(&digest[..16]);
        let tag = |suffix: &str| {
            HeaderValue::from_str(&format!("\"{hash}{suffix}\""))
                .expect("a quoted hex string is a valid header value")
        };
        let gzip = (file.gzip.len() < file.identity.len()).then(|| (file.gzip, tag("-gzip")));
        Self {
            file,
            content_type: HeaderValue::from_static(content_type(file.name)),
            etag: tag(""),
            gzip,
        }
    }
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("txt") => "text/plain; charset=utf-8",
        Some("png") => "image/png",
        // `WebAssembly.instantiateStreaming` requires exactly this type.
        Some("wasm") => "application/wasm",
        _ => "application/octet-stream",
    }
}

fn find(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.file.name == name)
}

/// Answers the embedded file `name` (as `build.mjs` names it: `app.js`, `docs.html`, …)
/// for a request with these headers: 200 with the body (gzip when accepted), or 304 when
/// `If-None-Match` names its ETag; 404 for a name that is not embedded.
pub fn serve(name: &str, request: &HeaderMap) -> Response {
    let Some(asset) = find(name) else {
        return problem_response(StatusCode::NOT_FOUND, "not_found", "no such file");
    };
    let (body, etag, gzipped) = match &asset.gzip {
        Some((gzip, etag)) if accepts_gzip(request) => (*gzip, etag, true),
        _ => (asset.file.identity, &asset.etag, false),
    };
    let not_modified = if_none_match(request, etag);
    let mut response = Response::builder()
        .status(if not_modified {
            StatusCode::NOT_MODIFIED
        } else {
            StatusCode::OK
        })
        .header(header::ETAG, etag.clone())
        .header(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"))
        .header(header::VARY, HeaderValue::from_static("accept-encoding"));
    if !not_modified {
        response = response
            .header(header::CONTENT_TYPE, asset.content_type.clone())
            .header(header::CONTENT_LENGTH, body.len());
        if gzipped {
            response = response.header(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
    }
    let body = if not_modified {
        Body::empty()
    } else {
        Body::from(body)
    };
    response
        .body(body)
        .expect("static header names and valid values make a valid response")
}

/// A `GET` (and `HEAD`) route serving the embedded file `name` ([`serve`]).
pub fn route<S: Clone + Send + Sync + 'static>(name: &'static str) -> MethodRouter<S> {
    get(move |headers: HeaderMap| async move { serve(name, &headers) })
}

/// The size of the gzip body [`serve`] sends for `name` (the plain size where gzip is not
/// used for it), or `None` if nothing of that name is embedded.
pub fn gzipped_size(name: &str) -> Option<usize> {
    find(name).map(|a| {
        a.gzip
            .as_ref()
            .map_or(a.file.identity.len(), |(gzip, _)| gzip.len())
    })
}

/// The console's shell: `/app` (the HTML page), `/app/app.js`, `/app/app.css`, each with
/// [`CONTENT_SECURITY_POLICY`]. Every other path under `/app/` is one of the console's
/// own pages (it navigates with the History API): it gets the same HTML, so a reload or a
/// bookmarked link works; the script shows "not found" for a path it does not know.
///
/// The console's policy is [`CONTENT_SECURITY_POLICY`] plus one exception: the visual
/// editor frames the edge's editor proxy, so `frame-src` allows the origin of
/// `SAMPLIT_EDGE_URL` ([`console_csp`]); nothing else may be framed.
pub fn router(edge_url: Option<&str>) -> Router<AppState> {
    let csp = HeaderValue::from_str(&console_csp(edge_url))
        .unwrap_or_else(|_| HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    Router::new()
        .route("/app", route("app.html"))
        .route("/app/{*page}", route("app.html"))
        .route("/app/app.js", route("app.js"))
        .route("/app/app.css", route("app.css"))
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            csp,
        ))
}

/// The public simulator (`/simulator`, no account): its page, script, style and the
/// engine's wasm. Its policy is [`CONTENT_SECURITY_POLICY`] plus `'wasm-unsafe-eval'`
/// in `script-src` — what compiling WebAssembly needs, and nothing of `eval` for
/// JavaScript — granted to this page only ([`SIMULATOR_CSP`]), not to the console.
pub fn simulator_router() -> Router<AppState> {
    Router::new()
        .route("/simulator", route("sim.html"))
        .route("/simulator/sim.js", route("sim.js"))
        .route("/simulator/sim.css", route("sim.css"))
        .route("/simulator/sim.wasm", route("sim.wasm"))
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(SIMULATOR_CSP),
        ))
}

/// The simulator page's policy (see [`simulator_router`]).
pub const SIMULATOR_CSP: &str = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// [`CONTENT_SECURITY_POLICY`] with `frame-src` set to the edge's origin (scheme, host and
/// port of `edge_url`), when it is an http(s) URL; otherwise frames stay refused.
#[must_use]
pub fn console_csp(edge_url: Option<&str>) -> String {
    let origin = edge_url
        .and_then(|u| url::Url::parse(u).ok())
        .filter(|u| matches!(u.scheme(), "https" | "http") && u.host().is_some())
        .map(|u| u.origin().ascii_serialization());
    match origin {
        Some(o) => format!("{CONTENT_SECURITY_POLICY}; frame-src {o}"),
        None => CONTENT_SECURITY_POLICY.to_owned(),
    }
}

/// Sets [`CONTENT_SECURITY_POLICY`] on every response of the router it wraps.
pub fn csp_layer() -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::overriding(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    )
}

/// Whether `Accept-Encoding` allows gzip (RFC 9110 §12.5.3): `gzip` (or `x-gzip`) with a
/// non-zero weight, or `*` with a non-zero weight when gzip is not listed itself.
fn accepts_gzip(request: &HeaderMap) -> bool {
    let mut gzip = None;
    let mut any = None;
    for value in request.get_all(header::ACCEPT_ENCODING) {
        let Ok(text) = value.to_str() else { continue };
        for item in text.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let weight = parts
                .filter_map(|p| p.trim().strip_prefix("q=").or(p.trim().strip_prefix("Q=")))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            match coding.as_str() {
                "gzip" | "x-gzip" => gzip = Some(weight > 0.0),
                "*" => any = Some(weight > 0.0),
                _ => {}
            }
        }
    }
    gzip.or(any).unwrap_or(false)
}

/// Whether `If-None-Match` names `etag` or is `*` (weak comparison, RFC 9110 §13.1.2).
fn if_none_match(request: &HeaderMap, etag: &HeaderValue) -> bool {
    let current = etag.to_str().unwrap_or("");
    request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == current)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn gzip_is_chosen_only_when_the_client_accepts_it() {
        let cases = [
            ("", false, "no header: identity"),
            ("gzip", true, "plain gzip"),
            ("br, gzip, deflate", true, "in a list"),
            ("GZIP", true, "codings are case-insensitive"),
            ("gzip;q=0", false, "q=0 refuses it"),
            ("gzip; q=0.000", false, "q=0 with decimals and spaces"),
            ("gzip;q=0.5", true, "any non-zero weight"),
            ("x-gzip", true, "the old alias"),
            ("br", false, "only another coding"),
            ("*", true, "anything"),
            ("*;q=0", false, "anything, refused"),
            (
                "gzip;q=0, *",
                false,
                "gzip refused by name, whatever * says",
            ),
            ("identity", false, "identity only"),
        ];
        for (value, expected, why) in cases {
            let map = if value.is_empty() {
                HeaderMap::new()
            } else {
                headers(&[(header::ACCEPT_ENCODING, value)])
            };
            assert_eq!(accepts_gzip(&map), expected, "{value:?}: {why}");
        }
    }

    #[test]
    fn if_none_match_matches_the_current_tag_weakly_or_star() {
        let etag = HeaderValue::from_static("\"abc\"");
        let cases = [
            ("\"abc\"", true, "the tag itself"),
            ("W/\"abc\"", true, "weak comparison ignores W/"),
            ("\"old\", \"abc\"", true, "one of a list"),
            ("*", true, "any current representation"),
            ("\"abc-gzip\"", false, "another representation's tag"),
            ("abc", false, "unquoted is not the tag"),
        ];
        for (value, expected, why) in cases {
            let map = headers(&[(header::IF_NONE_MATCH, value)]);
            assert_eq!(if_none_match(&map, &etag), expected, "{value:?}: {why}");
        }
        assert!(!if_none_match(&HeaderMap::new(), &etag), "no header");
    }

    #[test]
    fn content_types_follow_the_extension() {
        assert_eq!(content_type("app.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("swagger-ui.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("docs.html"), "text/html; charset=utf-8");
        assert_eq!(
            content_type("swagger-ui-bundle.js.LICENSE.txt"),
            "text/plain; charset=utf-8"
        );
        assert_eq!(content_type("favicon-32x32.png"), "image/png");
        assert_eq!(content_type("blob"), "application/octet-stream");
    }
}
