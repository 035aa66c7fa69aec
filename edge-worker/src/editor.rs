//! The visual editor's proxy: `GET /v1/editor?url=…&token=…` and the editor script
//! `GET /v1/editor.js`.
//!
//! The admin application frames `/v1/editor?url=<page>&token=<editor token>`. The edge
//! verifies the token itself ([`samplit_engine::editor_token`], key derived from
//! `SAMPLIT_SNAPSHOT_SECRET`), checks the URL against the token's allowed domains with
//! [`crate::proxy_policy`], fetches it with `redirect: manual` (every hop re-checked,
//! at most [`MAX_REDIRECTS`]), within [`FETCH_TIMEOUT_MS`] and [`MAX_PAGE_BYTES`], and
//! streams HTML through [`crate::render`] in editor mode (links and forms kept in the
//! proxy, `<base>` set, the editor script appended, the token's preview changes
//! applied).
//!
//! What never crosses the proxy: the visitor's cookies and credentials (only
//! `User-Agent`, `Accept` and `Accept-Language` are sent), the origin's `Set-Cookie`,
//! and any origin header not on a short allow-list. The answer carries our own
//! headers: `Content-Security-Policy: sandbox allow-scripts allow-forms allow-popups
//! allow-modals` (the page runs in an opaque origin, so its scripts cannot read the
//! edge's storage or call the edge's API as the edge), `X-Content-Type-Options:
//! nosniff`, `Referrer-Policy: no-referrer`, `Cache-Control: no-store`. The site's
//! frame-blocking headers (`X-Frame-Options`, CSP `frame-ancestors`) are therefore
//! dropped here — in the editor only; edge-rendered pages ([`crate::site`]) keep them.
//!
//! Development switches (Worker variables, never set in production's `wrangler.toml`):
//! `SAMPLIT_EDITOR_ALLOW_HTTP=true`, `SAMPLIT_EDITOR_ALLOW_LOOPBACK=true` (loopback IP
//! literals listed in the token's domains), `SAMPLIT_EDITOR_ALLOW_PORTS=8123,8124`, and
//! `SAMPLIT_ORIGIN_OVERRIDE=http://127.0.0.1:PORT` (as for edge rendering, see
//! [`crate::site`]): the URL is checked as named (`https://shop.localhost/…`, a verified
//! development host), then fetched from the override's scheme, host and port, so the
//! console's editor works against a local origin.
//!
//! Refusals are 4xx JSON (`{"error": {"code", "message"}}`) with fixed messages: nothing
//! of the request is echoed.

use futures_util::future::{Either, select};
use futures_util::{StreamExt, stream};
use samplit_engine::editor_token::{self, EditorClaims, TokenError};
use worker::{
    AbortController, ByteStream, Delay, Env, Fetch, Headers, Request, RequestInit, RequestRedirect,
    Response,
};

use crate::clock::now_ms;
use crate::error::ApiError;
use crate::proxy_policy::{self, Policy, Refusal};
use crate::render::{self, EditorMode, Plan};
use crate::{internal, snapshots};

/// Most redirects followed.
pub const MAX_REDIRECTS: usize = proxy_policy::MAX_REDIRECTS;
/// Largest page proxied (bytes).
pub const MAX_PAGE_BYTES: usize = 5 * 1024 * 1024;
/// Time budget for the whole fetch, redirects and body included.
pub const FETCH_TIMEOUT_MS: i64 = 10_000;
/// The editor script, served at `/v1/editor.js`.
pub const EDITOR_JS: &str = include_str!("../editor/editor.js");

/// The CSP of every proxied answer (see the module docs).
pub const EDITOR_CSP: &str = "sandbox allow-scripts allow-forms allow-popups allow-modals";

/// Origin response headers passed on (everything else is dropped).
const PASS_HEADERS: &[&str] = &["content-type", "content-language", "last-modified"];

/// Development switches read from the environment.
#[derive(Debug, Default, Clone)]
pub struct DevSwitches {
    pub allow_http: bool,
    pub allow_loopback: bool,
    pub allowed_ports: Vec<u16>,
}

impl DevSwitches {
    /// Reads the three variables; absent or anything but `true` means off.
    pub fn from_env(env: &Env) -> Self {
        let var = |name: &str| env.var(name).map(|v| v.to_string()).ok();
        let on = |name: &str| var(name).is_some_and(|v| v.trim() == "true");
        Self {
            allow_http: on("SAMPLIT_EDITOR_ALLOW_HTTP"),
            allow_loopback: on("SAMPLIT_EDITOR_ALLOW_LOOPBACK"),
            allowed_ports: var("SAMPLIT_EDITOR_ALLOW_PORTS")
                .map(|v| parse_ports(&v))
                .unwrap_or_default(),
        }
    }
}

/// `"8123, 8124"` → `[8123, 8124]`, ignoring what is not a port.
pub fn parse_ports(v: &str) -> Vec<u16> {
    v.split(',').filter_map(|p| p.trim().parse().ok()).collect()
}

/// The target and token of a request: `url` + `token`, or the hidden fields of a GET
/// form the rewriter produced (`__samplit_url` + `__samplit_token`, the form's own
/// fields appended to the target's query).
pub fn target_of(request_url: &url::Url) -> Result<(String, String), ApiError> {
    let mut url = None;
    let mut token = None;
    let mut form_url = None;
    let mut form_token = None;
    let mut fields = Vec::new();
    for (k, v) in request_url.query_pairs() {
        match k.as_ref() {
            "url" if url.is_none() => url = Some(v.into_owned()),
            "token" if token.is_none() => token = Some(v.into_owned()),
            "__samplit_url" => form_url = Some(v.into_owned()),
            "__samplit_token" => form_token = Some(v.into_owned()),
            _ => fields.push((k.into_owned(), v.into_owned())),
        }
    }
    if let (Some(target), Some(form_token)) = (form_url, form_token) {
        let mut parsed = url::Url::parse(&target).map_err(|_| refusal(Refusal::Unparsable))?;
        {
            let mut q = parsed.query_pairs_mut();
            q.clear();
            // `url`/`token` typed into the site's own form are fields too.
            if let Some(u) = url {
                q.append_pair("url", &u);
            }
            if let Some(t) = token {
                q.append_pair("token", &t);
            }
            for (k, v) in &fields {
                q.append_pair(k, v);
            }
        }
        let target = if parsed.query() == Some("") {
            let mut p = parsed;
            p.set_query(None);
            p.to_string()
        } else {
            parsed.to_string()
        };
        return Ok((target, form_token));
    }
    match (url, token) {
        (Some(u), Some(t)) => Ok((u, t)),
        (None, _) => Err(ApiError::bad_request("missing_url", "url is required")),
        (_, None) => Err(ApiError::new(
            401,
            "missing_token",
            "an editor token is required",
        )),
    }
}

/// The refusal of a URL as an API error: 400 for malformed, 403 for forbidden.
pub fn refusal(r: Refusal) -> ApiError {
    let status = match r {
        Refusal::TooLong | Refusal::Unparsable => 400,
        _ => 403,
    };
    ApiError::new(status, r.code(), r.message())
}

/// A token refusal as an API error.
pub fn token_refusal(e: &TokenError) -> ApiError {
    match e {
        TokenError::EmptyKey => ApiError::not_configured(snapshots::SECRET_NAME),
        TokenError::Expired => ApiError::new(
            401,
            "token_expired",
            "the editor token has expired; reopen the editor",
        ),
        _ => ApiError::new(401, "invalid_token", "the editor token is not valid"),
    }
}

fn secret(env: &Env) -> Result<String, ApiError> {
    match env.secret(snapshots::SECRET_NAME) {
        Ok(s) if !s.to_string().is_empty() => Ok(s.to_string()),
        _ => Err(ApiError::not_configured(snapshots::SECRET_NAME)),
    }
}

/// Verifies the token of a request against the edge's clock.
pub fn claims(env: &Env, token: &str) -> Result<EditorClaims, ApiError> {
    let key = secret(env)?;
    editor_token::verify(token, key.as_bytes(), now_ms()).map_err(|e| token_refusal(&e))
}

/// `GET /v1/editor.js`.
pub fn script() -> Result<Response, ApiError> {
    let response = Response::ok(EDITOR_JS).map_err(internal)?;
    let h = response.headers();
    h.set("Content-Type", "application/javascript; charset=utf-8")
        .map_err(internal)?;
    h.set("Cache-Control", "public, max-age=300")
        .map_err(internal)?;
    h.set("X-Content-Type-Options", "nosniff")
        .map_err(internal)?;
    // A sandboxed (opaque-origin) page loads it cross-origin.
    h.set("Access-Control-Allow-Origin", "*")
        .map_err(internal)?;
    Ok(response)
}

/// Fetches `url` with the deadline, following redirects manually, each hop checked.
async fn fetch_checked(
    mut url: url::Url,
    policy: &Policy<'_>,
    origin_override: Option<&str>,
    incoming: &Request,
    deadline_ms: i64,
) -> Result<(url::Url, Response), ApiError> {
    for hop in 0..=MAX_REDIRECTS {
        let headers = Headers::new();
        for name in ["user-agent", "accept", "accept-language"] {
            if let Ok(Some(v)) = incoming.headers().get(name) {
                headers.set(name, &v).map_err(internal)?;
            }
        }
        let mut init = RequestInit::new();
        init.with_headers(headers)
            .with_redirect(RequestRedirect::Manual);
        let fetched = crate::site::origin_url(&url, origin_override)?;
        let request = Request::new_with_init(fetched.as_str(), &init).map_err(internal)?;
        let controller = AbortController::default();
        let signal = controller.signal();
        let remaining = (deadline_ms - now_ms()).max(0);
        let fetch = Fetch::Request(request);
        let sent = Box::pin(fetch.send_with_signal(&signal));
        let timer = Delay::from(std::time::Duration::from_millis(remaining as u64));
        let response = match select(sent, timer).await {
            Either::Left((Ok(r), _)) => r,
            Either::Left((Err(e), _)) => {
                worker::console_warn!("editor fetch failed: {e}");
                return Err(ApiError::new(
                    502,
                    "fetch_failed",
                    "the page could not be fetched",
                ));
            }
            Either::Right(_) => {
                controller.abort();
                return Err(ApiError::new(
                    504,
                    "fetch_timeout",
                    "the page took too long to answer",
                ));
            }
        };
        let status = response.status_code();
        if (300..400).contains(&status) && status != 304 {
            let Some(location) = response.headers().get("location").ok().flatten() else {
                return Ok((url, response));
            };
            if hop == MAX_REDIRECTS {
                return Err(ApiError::new(
                    400,
                    "too_many_redirects",
                    "the page redirected more than 5 times",
                ));
            }
            url = proxy_policy::check_redirect(&url, &location, policy).map_err(|r| {
                ApiError::new(
                    403,
                    "redirect_not_allowed",
                    format!("a redirect was refused: {}", r.message()),
                )
            })?;
            continue;
        }
        return Ok((url, response));
    }
    Err(ApiError::new(
        400,
        "too_many_redirects",
        "the page redirected more than 5 times",
    ))
}

/// The body of `response` as a stream capped at [`MAX_PAGE_BYTES`] and the deadline.
/// Exceeding either ends the stream with an error (the browser sees a truncated page;
/// the status is already sent).
fn capped_stream(
    body: ByteStream,
    deadline_ms: i64,
) -> impl futures_util::Stream<Item = worker::Result<Vec<u8>>> + 'static {
    struct State {
        body: ByteStream,
        seen: usize,
        done: bool,
    }
    let state = State {
        body,
        seen: 0,
        done: false,
    };
    stream::unfold(state, move |mut s| async move {
        if s.done {
            return None;
        }
        let remaining = (deadline_ms - now_ms()).max(0) as u64;
        let next = {
            let timer = Delay::from(std::time::Duration::from_millis(remaining));
            match select(s.body.next(), timer).await {
                Either::Left((chunk, _)) => chunk,
                Either::Right(_) => {
                    s.done = true;
                    return Some((
                        Err(worker::Error::RustError("the page took too long".into())),
                        s,
                    ));
                }
            }
        };
        match next {
            Some(Ok(chunk)) => {
                s.seen += chunk.len();
                if s.seen > MAX_PAGE_BYTES {
                    s.done = true;
                    return Some((
                        Err(worker::Error::RustError("the page is too large".into())),
                        s,
                    ));
                }
                Some((Ok(chunk), s))
            }
            Some(Err(e)) => {
                s.done = true;
                Some((Err(e), s))
            }
            None => None,
        }
    })
}

/// Whether a `Content-Type` is HTML.
pub fn is_html(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|ct| {
        let mime = ct.split(';').next().unwrap_or("").trim();
        mime.eq_ignore_ascii_case("text/html") || mime.eq_ignore_ascii_case("application/xhtml+xml")
    })
}

/// `GET /v1/editor`.
pub async fn handle(req: &Request, env: &Env) -> Result<Response, ApiError> {
    let request_url = req
        .url()
        .map_err(|_| ApiError::bad_request("invalid_url", "the request URL is invalid"))?;
    let (target, token) = target_of(&request_url)?;
    let claims = claims(env, &token)?;
    let dev = DevSwitches::from_env(env);
    let policy = Policy {
        allowed_domains: &claims.allowed_domains,
        allow_http: dev.allow_http,
        allow_loopback: dev.allow_loopback,
        allowed_ports: &dev.allowed_ports,
    };
    let url = proxy_policy::check(&target, &policy).map_err(refusal)?;
    let deadline = now_ms() + FETCH_TIMEOUT_MS;
    let origin_override = env
        .var("SAMPLIT_ORIGIN_OVERRIDE")
        .map(|v| v.to_string())
        .ok();
    let (final_url, mut origin) =
        fetch_checked(url, &policy, origin_override.as_deref(), req, deadline).await?;

    if let Ok(Some(len)) = origin.headers().get("content-length")
        && len
            .trim()
            .parse::<usize>()
            .is_ok_and(|n| n > MAX_PAGE_BYTES)
    {
        return Err(ApiError::new(
            413,
            "page_too_large",
            "the page is larger than 5 MB",
        ));
    }
    let content_type = origin.headers().get("content-type").ok().flatten();
    let html = is_html(content_type.as_deref());

    let headers = Headers::new();
    for name in PASS_HEADERS {
        if let Ok(Some(v)) = origin.headers().get(name) {
            headers.set(name, &v).map_err(internal)?;
        }
    }
    headers
        .set("Content-Security-Policy", EDITOR_CSP)
        .map_err(internal)?;
    headers
        .set("X-Content-Type-Options", "nosniff")
        .map_err(internal)?;
    headers
        .set("Referrer-Policy", "no-referrer")
        .map_err(internal)?;
    headers.set("Cache-Control", "no-store").map_err(internal)?;

    let status = origin.status_code();
    // No body (204, 304, or an empty answer): nothing to stream or rewrite.
    let mut response = match origin.stream() {
        Ok(body) if !matches!(status, 204 | 205 | 304) => {
            Response::from_stream(capped_stream(body, deadline)).map_err(internal)?
        }
        _ => Response::empty().map_err(internal)?,
    }
    .with_status(status)
    .with_headers(headers);
    if html && !matches!(status, 204 | 205 | 304) {
        let edge_origin = request_url.origin().ascii_serialization();
        let plan = Plan {
            changes: claims
                .preview
                .as_ref()
                .map(|p| p.changes.clone())
                .unwrap_or_default(),
            editor: Some(EditorMode {
                page_url: final_url.clone(),
                edge_origin,
                token: token.clone(),
                admin_origin: claims.admin_origin.clone(),
            }),
            site_hosts: claims.allowed_domains.clone(),
        };
        response = render::transform(&plan, response, "editor preview")
            .map_err(|e| ApiError::upstream("the HTML rewriter", e))?;
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_come_from_url_and_token_or_from_a_get_forms_hidden_fields() {
        let u = url::Url::parse(
            "https://edge.test/v1/editor?url=https%3A%2F%2Fshop.test%2Fa%3Fb%3D1&token=t1",
        )
        .unwrap();
        assert_eq!(
            target_of(&u).unwrap(),
            ("https://shop.test/a?b=1".into(), "t1".into())
        );
        let form = url::Url::parse(
            "https://edge.test/v1/editor?__samplit_url=https%3A%2F%2Fshop.test%2Fsearch%3Fold%3D1&__samplit_token=t2&q=red+shoes&url=typed",
        )
        .unwrap();
        assert_eq!(
            target_of(&form).unwrap(),
            (
                "https://shop.test/search?url=typed&q=red+shoes".into(),
                "t2".into()
            )
        );
        let missing = url::Url::parse("https://edge.test/v1/editor?token=t").unwrap();
        assert_eq!(target_of(&missing).unwrap_err().code, "missing_url");
        let no_token = url::Url::parse("https://edge.test/v1/editor?url=x").unwrap();
        assert_eq!(target_of(&no_token).unwrap_err().status, 401);
    }

    #[test]
    fn refusals_are_client_errors_with_fixed_messages() {
        assert_eq!(refusal(Refusal::Unparsable).status, 400);
        assert_eq!(refusal(Refusal::HostNotAllowed).status, 403);
        assert_eq!(refusal(Refusal::IpLiteral).code, "ip_literal_not_allowed");
        assert_eq!(token_refusal(&TokenError::Expired).code, "token_expired");
        assert_eq!(token_refusal(&TokenError::BadSignature).status, 401);
    }

    #[test]
    fn html_is_recognised_by_its_media_type() {
        assert!(is_html(Some("text/html; charset=utf-8")));
        assert!(is_html(Some("TEXT/HTML")));
        assert!(!is_html(Some("text/plain")));
        assert!(!is_html(Some("application/json")));
        assert!(!is_html(None));
        assert_eq!(parse_ports(" 8123, x,70000,8124"), vec![8123, 8124]);
    }
}
