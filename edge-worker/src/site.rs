//! Variants rendered at the edge: a site routed through the Worker (a route on its
//! zone) gets its pages from the origin with the visitor's variants already applied by
//! the streaming rewriter — no flicker and no anti-flicker hiding.
//!
//! ## Which site
//! The host → site mapping comes signed from the control plane, which alone knows who
//! proved ownership of a host: `PUT /v1/internal/routes/{host}` with a signed
//! `routing::Route` ([`push_route`]; HMAC under a key derived from the snapshot secret
//! with its own label, so no snapshot signature verifies as a route). The signed form is
//! stored in KV under `route:<host>`; an older version than the one held is refused
//! (409), and a route with no site key is a tombstone (the host is nobody's). A request's
//! host is looked up in this isolate's cache, refreshed from KV after
//! [`snapshots::TTL_MS`] and verified again only when its signature changed; the route's
//! site is then used only while that site's current snapshot still lists the host. So a
//! snapshot naming someone else's host gets nothing: only the route decides, and only
//! the owner's snapshot renders. Hosts with no route are not ours: they get the Worker's
//! 404 as before. The `/v1/*` routes are matched first, so a site's own paths under
//! `/v1/` are not rendered.
//!
//! ## Origin
//! The same URL — on a Cloudflare route, a Worker's `fetch` of its own request's URL
//! goes to the zone's origin. In development `SAMPLIT_ORIGIN_OVERRIDE=http://127.0.0.1:PORT`
//! replaces scheme, host and port (the tests' origin). The visitor's request is
//! forwarded as is (method, headers, cookies, body: this is the site's own origin), with
//! `redirect: manual` so the origin's redirects reach the browser.
//!
//! ## What is rewritten
//! Only `GET` requests whose answer is `200 text/html`; everything else passes through
//! untouched (other methods without even assigning). The assignment is the engine's
//! `assign_site` with the same inputs as `/v1/assign` (the `samplit_vid` and
//! `samplit_arms` cookies, bots excluded), and the same exposure queue items are sent
//! when the page is served (`wait_until`, after the response starts). Their context
//! ([`crate::context`]) comes from Cloudflare's `request.cf.country`, the `User-Agent`,
//! the request URL, its `Referer` and the `samplit_hist` cookie, which is re-set with
//! the other cookies on pages served with arms.
//!
//! ## Redirect (split-URL) tests
//! When an assigned arm carries a `redirect` change and the request is a navigation
//! (`Accept` includes `text/html`), the exposure is enqueued and **awaited** before the
//! `302` is answered — the exposure is on the queue before the browser leaves, so a
//! redirect arm cannot lose exposures the control arm keeps (no sample-ratio mismatch
//! from redirects). A redirect to the page itself is not followed (no loop).
//!
//! ## Caching
//! The origin's page is fetched through Cloudflare's cache as usual (un-rewritten, one
//! copy per URL); variants are applied per request after the cache, which is cheap
//! (see the benchmark in `edge-worker/bench/`). The rewritten answer carries
//! `X-Samplit-Variant: <variant key>` (the sorted `experiment=arm` pairs,
//! [`render::variant_key`]), an ETag suffixed with a hash of that key (so a browser's
//! revalidation never matches another variant's copy), `Vary: Cookie` (the arms come
//! from cookies) and `Cache-Control: private` when it sets a cookie. A CDN in front of
//! the Worker that should cache rewritten pages keys them on URL + the variant key.

use std::cell::RefCell;
use std::collections::BTreeMap;

use samplit_engine::assign::Assignment;
use samplit_engine::changes::{ChangeAction, SiteHosts};
use samplit_engine::context::ExposureContext;
use samplit_engine::ingest::{Exposure, Item};
use samplit_engine::routing::{self, SignedDoc};
use samplit_engine::snapshot::Snapshot;
use sha2::{Digest, Sha256};
use worker::{Context, Env, Fetch, Headers, Request, Response};

use crate::clock::now_ms;
use crate::context::{self, Facts, History};
use crate::editor::is_html;
use crate::error::ApiError;
use crate::render::{self, Plan};
use crate::visitor::{RequestVisitor, Subject};
use crate::{body, events, ids, internal, snapshots, trust};

/// KV key of a host's signed route.
pub fn route_key(host: &str) -> String {
    format!("route:{}", host.to_ascii_lowercase())
}

/// The hosts of a snapshot's allowed origins (`https://shop.test:8443` → `shop.test`).
pub fn hosts_of(snapshot: &Snapshot) -> Vec<String> {
    let mut hosts: Vec<String> = snapshot
        .allowed_origins
        .iter()
        .filter_map(|o| url::Url::parse(o).ok())
        .filter_map(|u| u.host_str().map(str::to_ascii_lowercase))
        .collect();
    hosts.sort();
    hosts.dedup();
    hosts
}

/// A verified route as this isolate holds it.
#[derive(Clone)]
struct HeldRoute {
    site_key: Option<String>,
    version: u64,
    signature: String,
}

thread_local! {
    /// host → (verified route, when KV was last read). Hosts without a route are cached
    /// as `None` too (negative caching spares KV).
    static ROUTES: RefCell<BTreeMap<String, (Option<HeldRoute>, i64)>> = const { RefCell::new(BTreeMap::new()) };
}

fn kv(env: &Env) -> Result<worker::kv::KvStore, ApiError> {
    env.kv(snapshots::KV_BINDING)
        .map_err(|e| ApiError::upstream("the SNAPSHOTS KV binding", e))
}

/// Reads and verifies `route:<host>`; `held` is skipped when its signature is unchanged.
async fn load_route(
    env: &Env,
    host: &str,
    secret: &str,
    held: Option<&HeldRoute>,
) -> Result<Option<HeldRoute>, ApiError> {
    let Some(text) = kv(env)?
        .get(&route_key(host))
        .text()
        .await
        .map_err(|e| ApiError::upstream("the SNAPSHOTS KV store", e))?
    else {
        return Ok(None);
    };
    let Ok(doc) = serde_json::from_str::<SignedDoc>(&text) else {
        worker::console_warn!("route {host}: the KV value is not a signed document");
        return Ok(held.cloned());
    };
    if let Some(h) = held
        && h.signature == doc.signature
    {
        return Ok(Some(h.clone()));
    }
    match routing::verify_route(&doc, secret.as_bytes(), held.map(|h| h.version)) {
        Ok(route) if route.host == host => Ok(Some(HeldRoute {
            site_key: route.site_key,
            version: route.version,
            signature: doc.signature,
        })),
        Ok(route) => {
            worker::console_warn!("route {host}: the KV value is for {}", route.host);
            Ok(held.cloned())
        }
        Err(e) => {
            worker::console_warn!("route {host}: KV value refused: {e}");
            Ok(held.cloned())
        }
    }
}

fn secret(env: &Env) -> Result<String, ApiError> {
    match env.secret(snapshots::SECRET_NAME) {
        Ok(s) if !s.to_string().is_empty() => Ok(s.to_string()),
        _ => Err(ApiError::not_configured(snapshots::SECRET_NAME)),
    }
}

/// The answer to a route push.
#[derive(serde::Serialize)]
pub struct RouteStored {
    pub host: String,
    pub site_key: Option<String>,
    pub version: u64,
    /// `false` when this exact version was already held (an idempotent retry).
    pub replaced: bool,
}

/// `PUT /v1/internal/routes/{host}`: a signed route from the control plane.
pub async fn push_route(env: &Env, host: &str, req: &mut Request) -> Result<RouteStored, ApiError> {
    if !routing::valid_host(host) {
        return Err(ApiError::bad_request(
            "invalid_host",
            "the host must be 1-253 characters of a-z 0-9 . -",
        ));
    }
    let secret = secret(env)?;
    let raw = body::read_capped(req, ROUTE_BODY_LIMIT).await?;
    let doc: SignedDoc = body::parse_json(&raw)?;
    let isolate = ROUTES.with_borrow(|r| r.get(host).and_then(|(h, _)| h.clone()));
    let stored = load_route(env, host, &secret, isolate.as_ref()).await?;
    let held_version = isolate
        .as_ref()
        .map(|h| h.version)
        .max(stored.as_ref().map(|h| h.version));
    let route = routing::verify_route(&doc, secret.as_bytes(), held_version)
        .map_err(snapshots::routing_error)?;
    if route.host != host {
        return Err(ApiError::bad_request(
            "host_mismatch",
            format!("the path names {host} but the route is for {}", route.host),
        ));
    }
    let replaced = held_version != Some(route.version);
    if replaced {
        let text = serde_json::to_string(&doc)
            .map_err(|e| ApiError::upstream("serializing the route", e))?;
        kv(env)?
            .put(&route_key(host), text)
            .map_err(|e| ApiError::upstream("the SNAPSHOTS KV store", e))?
            .execute()
            .await
            .map_err(|e| ApiError::upstream("the SNAPSHOTS KV store", e))?;
        let held = HeldRoute {
            site_key: route.site_key.clone(),
            version: route.version,
            signature: doc.signature,
        };
        ROUTES.with_borrow_mut(|r| r.insert(host.to_owned(), (Some(held), now_ms())));
    }
    Ok(RouteStored {
        host: host.to_owned(),
        site_key: route.site_key,
        version: route.version,
        replaced,
    })
}

/// Largest route push accepted.
pub const ROUTE_BODY_LIMIT: usize = 4 * 1024;

/// The site a host belongs to (by its signed route), with its snapshot, if any; `None`
/// unless that site's snapshot also lists the host.
pub async fn site_for_host(
    env: &Env,
    host: &str,
) -> Result<Option<std::rc::Rc<Snapshot>>, ApiError> {
    let host = host.to_ascii_lowercase();
    let now = now_ms();
    let cached = ROUTES.with_borrow(|r| r.get(&host).cloned());
    let route = match cached {
        Some((route, at)) if now - at < snapshots::TTL_MS => route,
        cached => {
            let held = cached.and_then(|(h, _)| h);
            let secret = secret(env)?;
            let route = load_route(env, &host, &secret, held.as_ref()).await?;
            ROUTES.with_borrow_mut(|r| {
                if r.len() >= snapshots::MAX_SITES {
                    r.retain(|_, (h, _)| h.is_some());
                }
                r.insert(host.clone(), (route.clone(), now));
            });
            route
        }
    };
    let Some(site_key) = route
        .and_then(|r| r.site_key)
        .filter(|k| snapshots::valid_site_key(k))
    else {
        return Ok(None);
    };
    let snapshot = snapshots::current(env, &site_key).await?;
    Ok(snapshot.filter(|s| hosts_of(s).contains(&host)))
}

/// The origin URL for a request URL: the same, or with `SAMPLIT_ORIGIN_OVERRIDE`'s
/// scheme, host and port.
pub fn origin_url(
    request_url: &url::Url,
    override_base: Option<&str>,
) -> Result<url::Url, ApiError> {
    let Some(base) = override_base.filter(|b| !b.trim().is_empty()) else {
        return Ok(request_url.clone());
    };
    let base = url::Url::parse(base.trim())
        .map_err(|_| ApiError::not_configured("a valid SAMPLIT_ORIGIN_OVERRIDE"))?;
    let mut u = request_url.clone();
    let ok = u.set_scheme(base.scheme()).is_ok()
        && u.set_host(base.host_str()).is_ok()
        && u.set_port(base.port()).is_ok();
    if ok {
        Ok(u)
    } else {
        Err(ApiError::not_configured("a valid SAMPLIT_ORIGIN_OVERRIDE"))
    }
}

/// The redirect target of an assignment's changes, if any, resolved against the page.
/// A redirect that would leave the site's `hosts` is not followed (the engine's
/// `changes::check`, as when it was saved).
pub fn redirect_target(
    page: &url::Url,
    assignments: &[Assignment<'_>],
    hosts: &[String],
) -> Option<(usize, url::Url)> {
    assignments.iter().enumerate().find_map(|(i, a)| {
        a.changes().find_map(|c| match c.action() {
            ChangeAction::Redirect { url } if c.check_for_site(SiteHosts::Only(hosts)).is_ok() => {
                let target = page.join(url).ok()?;
                let same = target.path() == page.path()
                    && target.query() == page.query()
                    && target.host() == page.host();
                (!same).then_some((i, target))
            }
            _ => None,
        })
    })
}

/// One exposure queue item per assignment (fresh ids, one timestamp), for `/v1/assign`
/// and for pages rendered at the edge alike.
///
/// `page_url` is the page the visitor is on; its host goes into each item so ingestion
/// can tell that the snippet runs on a verified host ("verify installation").
/// `context` (what the request said about the visitor before assignment,
/// [`crate::context`]) is the same on every exposure of one request.
pub(crate) fn exposures(
    site_key: &str,
    visitor_id: &str,
    assignments: &[&Assignment<'_>],
    page_url: &str,
    context: Option<&ExposureContext>,
) -> Result<Vec<Item>, ApiError> {
    let ts_ms = now_ms();
    let host = url::Url::parse(page_url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase));
    assignments
        .iter()
        .map(|a| {
            Ok(Item::Exposure(Exposure {
                id: ids::time_ordered_uuid(ts_ms)
                    .map_err(|e| ApiError::upstream("the random number generator", e))?,
                site_key: site_key.to_owned(),
                experiment_id: a.experiment_id.to_owned(),
                element_id: a.element_id.map(str::to_owned),
                arm_id: a.arm_id.to_owned(),
                visitor_id: visitor_id.to_owned(),
                propensity: a.propensity,
                snapshot_version: a.snapshot_version,
                ts_ms,
                host: host.clone(),
                context: context.cloned(),
            }))
        })
        .collect()
}

/// A short hash for ETags.
fn short_hash(s: &str) -> String {
    hex::encode(&Sha256::digest(s.as_bytes())[..8])
}

/// Forwards the visitor's request to `origin` unchanged (method, headers, body), with
/// `redirect: manual`.
async fn forward(req: &Request, origin: &url::Url) -> Result<Response, ApiError> {
    let original = req.inner();
    let init = worker::web_sys::RequestInit::new();
    init.set_method(&original.method());
    init.set_headers(original.headers().as_ref());
    if let Some(body) = original.body() {
        init.set_body(body.as_ref());
    }
    init.set_redirect(worker::web_sys::RequestRedirect::Manual);
    let inner = worker::web_sys::Request::new_with_str_and_init(origin.as_str(), &init)
        .map_err(|e| internal(e.into()))?;
    Fetch::Request(Request::from(inner))
        .send()
        .await
        .map_err(|e| ApiError::upstream("the site's origin", e))
}

/// Renders a request for a site's page, or `Ok(None)` when the host is not a site's.
pub async fn handle(req: &Request, env: &Env, ctx: &Context) -> Result<Option<Response>, ApiError> {
    let url = req
        .url()
        .map_err(|_| ApiError::bad_request("invalid_url", "the request URL is invalid"))?;
    let Some(host) = url.host_str() else {
        return Ok(None);
    };
    let Some(snapshot) = site_for_host(env, host).await? else {
        return Ok(None);
    };
    let override_base = env
        .var("SAMPLIT_ORIGIN_OVERRIDE")
        .ok()
        .map(|v| v.to_string());
    let origin = origin_url(&url, override_base.as_deref())?;
    if req.method() != worker::Method::Get {
        return forward(req, &origin).await.map(Some);
    }

    // Who the visitor is, as /v1/assign sees it.
    let request = RequestVisitor::read(req);
    let visitor_id = match request.cookie_visitor_id() {
        Some(id) => id.to_owned(),
        None => ids::time_ordered_uuid(now_ms())
            .map_err(|e| ApiError::upstream("the random number generator", e))?,
    };
    // The sticky cookie's tokens, kept only when minted for this site and visitor.
    let sticky_key = trust::sticky_key(env)?;
    let previous: Vec<(String, String)> = request
        .sticky_cookie()
        .into_iter()
        .take(crate::assignment::STICKY_MAX)
        .filter(|(k, t)| {
            sticky_key
                .verify(&snapshot.site_key, &visitor_id, k, t)
                .is_some()
        })
        .collect();
    let sticky = trust::verified_sticky(&sticky_key, &snapshot.site_key, &visitor_id, &previous);
    let result = request.assign(
        &snapshot,
        &Subject {
            visitor_id: &visitor_id,
            url: url.as_str(),
            user_agent: request.header("user-agent"),
            ip: request
                .header("cf-connecting-ip")
                .and_then(|s| s.trim().parse().ok()),
            sticky: &sticky,
            // A page request carries no caller-supplied attributes (those come from
            // plugins through /v1/assign): attribute rules never match here.
            attributes: &[],
        },
    );
    let assignments: &[Assignment<'_>] = if result.excluded.is_some() {
        &[]
    } else {
        &result.assignments
    };

    // Cookies, as /v1/assign sets them (only when the page is served with arms), the
    // history cookie with them.
    let secure = url.scheme() == "https";
    let history: History = request.history(context::now_min(), secure);
    let set_cookies = if assignments.is_empty() {
        Vec::new()
    } else {
        let arms: Vec<(String, String)> = assignments
            .iter()
            .map(|a| (a.sticky_key.to_owned(), a.arm_id.to_owned()))
            .collect();
        let fresh = trust::tokens(&sticky_key, &snapshot.site_key, &visitor_id, &arms);
        let mut out = request.set_cookies(&visitor_id, &fresh, &previous, secure);
        out.extend(history.set_cookie.clone());
        out
    };
    // The exposure context, built only when an exposure is queued (below). The
    // referrer is the navigation's `Referer`, read by name only here.
    let exposure_context = || {
        let referrer = req.headers().get("referer").ok().flatten();
        Facts {
            country: request.country.as_deref(),
            user_agent: request.header("user-agent"),
            page_url: url.as_str(),
            referrer: referrer.as_deref(),
            prior_visits: history.prior_visits,
            prior_conversions: history.prior_conversions,
        }
        .context()
    };

    // Split-URL: log the exposure, then redirect.
    let navigation = request
        .header("accept")
        .is_some_and(|a| a.contains("text/html"));
    let site_hosts = hosts_of(&snapshot);
    if navigation && let Some((i, target)) = redirect_target(&url, assignments, &site_hosts) {
        let items = exposures(
            &snapshot.site_key,
            &visitor_id,
            &[&assignments[i]],
            url.as_str(),
            Some(&exposure_context()),
        )?;
        events::send(&events::queue(env)?, items)
            .await
            .map_err(|e| ApiError::upstream("the EVENTS queue", e))?;
        let response = Response::empty().map_err(internal)?.with_status(302);
        let h = response.headers();
        h.set("Location", target.as_str()).map_err(internal)?;
        h.set("Cache-Control", "no-store").map_err(internal)?;
        for c in &set_cookies {
            h.append("Set-Cookie", c).map_err(internal)?;
        }
        return Ok(Some(response));
    }

    let upstream = forward(req, &origin).await?;
    let content_type = upstream.headers().get("content-type").ok().flatten();
    if upstream.status_code() != 200 || !is_html(content_type.as_deref()) || assignments.is_empty()
    {
        return Ok(Some(upstream));
    }

    let plan = Plan {
        changes: assignments
            .iter()
            .flat_map(|a| a.changes().cloned())
            .collect(),
        editor: None,
        site_hosts,
    };
    // The page is about to be served with these arms: log them.
    let served: Vec<&Assignment<'_>> = assignments.iter().collect();
    let items = exposures(
        &snapshot.site_key,
        &visitor_id,
        &served,
        url.as_str(),
        Some(&exposure_context()),
    )?;
    events::send_after_response(ctx, events::queue(env)?, items, "edge-rendered exposures");

    let arms: Vec<(String, String)> = assignments
        .iter()
        .map(|a| (a.sticky_key.to_owned(), a.arm_id.to_owned()))
        .collect();
    let key = render::variant_key(&arms);
    let out = Headers::new();
    for (name, value) in upstream.headers().entries() {
        if !matches!(
            name.as_str(),
            "content-length" | "etag" | "content-encoding"
        ) {
            out.append(&name, &value).map_err(internal)?;
        }
    }
    if let Ok(Some(etag)) = upstream.headers().get("etag") {
        let tag = etag.trim_start_matches("W/").trim_matches('"');
        out.set("ETag", &format!("W/\"{tag}-{}\"", short_hash(&key)))
            .map_err(internal)?;
    }
    out.set("X-Samplit-Variant", &key).map_err(internal)?;
    out.append("Vary", "Cookie").map_err(internal)?;
    if !set_cookies.is_empty() {
        out.set("Cache-Control", "private, no-cache")
            .map_err(internal)?;
    }
    for c in &set_cookies {
        out.append("Set-Cookie", c).map_err(internal)?;
    }
    // The origin's body goes to the runtime's rewriter as is: no copy through wasm, no
    // cap beyond the Worker's own limits (a site's own pages, unlike the editor's).
    let response = upstream.with_headers(out);
    let label = format!("site {}", snapshot.site_key);
    let response = render::transform(&plan, response, &label)
        .map_err(|e| ApiError::upstream("the HTML rewriter", e))?;
    Ok(Some(response))
}

#[cfg(test)]
mod tests {
    use super::*;
    use samplit_engine::assign::ArmVariants;
    use samplit_engine::changes::Change;
    use samplit_engine::snapshot::{Element, Variant};

    #[test]
    fn the_origin_override_replaces_scheme_host_and_port_only() {
        let u = url::Url::parse("https://shop.example.com/a/b?x=1").unwrap();
        assert_eq!(origin_url(&u, None).unwrap(), u);
        assert_eq!(
            origin_url(&u, Some("http://127.0.0.1:8123"))
                .unwrap()
                .as_str(),
            "http://127.0.0.1:8123/a/b?x=1"
        );
        assert_eq!(origin_url(&u, Some("not a url")).unwrap_err().status, 503);
    }

    /// An element whose one variant makes `changes`.
    fn element(changes: Vec<Change>) -> Element {
        Element {
            id: "el".into(),
            selector: "body".into(),
            variants: vec![Variant {
                id: "b".into(),
                changes,
            }],
        }
    }

    /// An assignment to that variant.
    fn assignment(element: &Element) -> Assignment<'_> {
        Assignment {
            experiment_id: "e",
            element_id: None,
            arm_id: "b",
            variants: ArmVariants::new(std::slice::from_ref(element), &[0], None).unwrap(),
            propensity: 0.5,
            snapshot_version: 1,
            sticky: false,
            sticky_key: "e",
        }
    }

    #[test]
    fn a_redirect_to_another_page_is_followed_but_never_to_the_same_page() {
        let page = url::Url::parse("https://shop.test/landing?x=1").unwrap();
        let redirect =
            |u: &str| Change::new("body", ChangeAction::Redirect { url: u.into() }).unwrap();
        let hosts = vec!["shop.test".to_owned()];
        let el = element(vec![redirect("/landing-b")]);
        let a = [assignment(&el)];
        assert_eq!(
            redirect_target(&page, &a, &hosts).unwrap().1.as_str(),
            "https://shop.test/landing-b"
        );
        let el = element(vec![redirect("/landing?x=1")]);
        let same = [assignment(&el)];
        assert!(redirect_target(&page, &same, &hosts).is_none());
        let el = element(vec![Change::new("h1", ChangeAction::Hide).unwrap()]);
        let none = [assignment(&el)];
        assert!(redirect_target(&page, &none, &hosts).is_none());
    }

    #[test]
    fn a_redirect_that_leaves_the_sites_hosts_is_not_followed() {
        let page = url::Url::parse("https://shop.test/landing").unwrap();
        let hosts = vec!["shop.test".to_owned()];
        let el = element(vec![
            Change::new(
                "body",
                ChangeAction::Redirect {
                    url: "https://evil.test/phish".into(),
                },
            )
            .unwrap(),
        ]);
        assert!(redirect_target(&page, &[assignment(&el)], &hosts).is_none());
    }

    #[test]
    fn route_keys_are_lower_case() {
        assert_eq!(route_key("Shop.Example.COM"), "route:shop.example.com");
    }
}
