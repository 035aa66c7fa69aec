//! # samplit-edge
//!
//! Samplit's Cloudflare Worker. A thin layer over `samplit-engine`: it reads requests,
//! holds the sites' signed snapshots, asks the engine for assignments, and ships
//! exposures and events to the control plane through a Cloudflare Queue.
//!
//! Routes (every error is JSON `{"error": {"code", "message"}}`, never a panic):
//! - `POST|GET /v1/assign` ([`assignment`]), `OPTIONS` for preflights;
//! - `POST /v1/events` ([`events`]);
//! - `GET /v1/samplit.js` ([`snippet`]);
//! - `PUT /v1/internal/snapshots/{site_key}` ([`snapshots::push`]);
//! - `PUT /v1/internal/routes/{host}` ([`site::push_route`]): signed host → site routes;
//! - `PUT /v1/internal/tombstones/{site_key}` ([`snapshots::push_tombstone`]): unpublish;
//! - `GET /v1/healthz`: counts and ages of the snapshots this isolate holds (no site keys);
//!   `?site_key=` for one site's version and age;
//! - `GET /v1/editor`, `GET /v1/editor.js`: the visual editor's proxy ([`editor`]);
//! - any other path on a host routed (signed) to a site whose snapshot lists it: the site's page with its variants
//!   rendered at the edge ([`site`]).
//!
//! Queue consumer ([`ingest`]): batches from `EVENTS` go to the control plane, signed.
//!
//! Bindings: KV `SNAPSHOTS`, Queue `EVENTS` (producer and consumer); secrets
//! `SAMPLIT_SNAPSHOT_SECRET`, `SAMPLIT_INGEST_SECRET`; variable
//! `SAMPLIT_CONTROL_PLANE_URL`. Missing ones make the routes needing them answer 503.
//!
//! Layout: [`error`], [`body`] (capped bodies), [`cookies`], [`context`] (what an
//! exposure records of its visitor), [`cors`], [`ids`],
//! [`clock`] (`Date.now()`).

pub mod assignment;
pub mod body;
pub mod clock;
pub mod context;
pub mod cookies;
pub mod cors;
pub mod editor;
pub mod error;
pub mod events;
pub mod ids;
pub mod ingest;
pub mod proxy_policy;
pub mod ratelimit;
pub mod render;
pub mod site;
pub mod snapshots;
pub mod snippet;
pub mod trust;
pub mod visitor;

use worker::{Context, Env, MessageBatch, Method, Request, Response, event};

use crate::error::ApiError;

#[event(fetch)]
async fn fetch(mut req: Request, env: Env, ctx: Context) -> worker::Result<Response> {
    match route(&mut req, &env, &ctx).await {
        Ok(response) => Ok(response),
        Err(e) => error_response(&e),
    }
}

#[event(queue)]
async fn queue(
    batch: MessageBatch<serde_json::Value>,
    env: Env,
    _ctx: Context,
) -> worker::Result<()> {
    ingest::consume(batch, &env).await;
    Ok(())
}

/// An [`ApiError`] as a response.
pub fn error_response(e: &ApiError) -> worker::Result<Response> {
    let response = Response::ok(e.body())?.with_status(e.status);
    response.headers().set("Content-Type", "application/json")?;
    response.headers().set("Cache-Control", "no-store")?;
    if let Some(seconds) = e.retry_after_secs {
        response
            .headers()
            .set("Retry-After", &seconds.to_string())?;
    }
    Ok(response)
}

/// Maps a runtime error (building a response, setting a header) to a 503; the detail
/// is logged, not returned.
pub(crate) fn internal(e: worker::Error) -> ApiError {
    ApiError::upstream("the Worker runtime", e)
}

fn json(value: &impl serde::Serialize, status: u16) -> Result<Response, ApiError> {
    let response = Response::from_json(value)
        .map_err(internal)?
        .with_status(status);
    response
        .headers()
        .set("Cache-Control", "no-store")
        .map_err(internal)?;
    Ok(response)
}

async fn route(req: &mut Request, env: &Env, ctx: &Context) -> Result<Response, ApiError> {
    let path = req.path();
    let method = req.method();
    match path.as_str() {
        "/v1/assign" => match method {
            Method::Get | Method::Post => assignment::handle(req, env, ctx).await,
            Method::Options => preflight(req, env).await,
            _ => Err(ApiError::method_not_allowed("GET, POST")),
        },
        "/v1/events" => match method {
            Method::Post => events::handle(req, env).await,
            Method::Options => preflight(req, env).await,
            _ => Err(ApiError::method_not_allowed("POST")),
        },
        "/v1/samplit.js" => match method {
            Method::Get | Method::Head => script(req, env, method == Method::Head).await,
            _ => Err(ApiError::method_not_allowed("GET")),
        },
        "/v1/editor" => match method {
            Method::Get => editor::handle(req, env).await,
            _ => Err(ApiError::method_not_allowed("GET")),
        },
        "/v1/editor.js" => match method {
            Method::Get => editor::script(),
            _ => Err(ApiError::method_not_allowed("GET")),
        },
        "/v1/healthz" => match method {
            Method::Get => healthz(req, env).await,
            _ => Err(ApiError::method_not_allowed("GET")),
        },
        _ => match path.strip_prefix("/v1/internal/snapshots/") {
            Some(site_key) if !site_key.contains('/') => match method {
                Method::Put => {
                    let site_key = site_key.to_owned();
                    let stored = snapshots::push(env, &site_key, req).await?;
                    json(&stored, 200)
                }
                _ => Err(ApiError::method_not_allowed("PUT")),
            },
            _ if path.starts_with("/v1/internal/routes/") => internal_put(req, env, &path).await,
            _ if path.starts_with("/v1/internal/tombstones/") => {
                internal_put(req, env, &path).await
            }
            _ if path.starts_with("/v1/") => {
                Err(ApiError::not_found(format!("no route for {path}")))
            }
            _ => match site::handle(req, env, ctx).await? {
                Some(response) => Ok(response),
                None => Err(ApiError::not_found(format!("no route for {path}"))),
            },
        },
    }
}

/// `GET /v1/healthz`: counts and ages of the sites this isolate holds, never their keys;
/// `GET /v1/healthz?site_key=KEY`: that one site's served version and ages (a site key is
/// public: it is in the site's pages).
async fn healthz(req: &Request, env: &Env) -> Result<Response, ApiError> {
    let now_ms = clock::now_ms();
    match query_param(req, "site_key")? {
        Some(site_key) => json(
            &serde_json::json!({
                "status": "ok",
                "now_ms": now_ms,
                "site": snapshots::site_health(env, &site_key).await?,
            }),
            200,
        ),
        None => json(
            &serde_json::json!({
                "status": "ok",
                "now_ms": now_ms,
                "sites": snapshots::health(),
            }),
            200,
        ),
    }
}

/// `PUT /v1/internal/routes/{host}` ([`site::push_route`]) and
/// `PUT /v1/internal/tombstones/{site_key}` ([`snapshots::push_tombstone`]).
async fn internal_put(req: &mut Request, env: &Env, path: &str) -> Result<Response, ApiError> {
    if req.method() != Method::Put {
        return Err(ApiError::method_not_allowed("PUT"));
    }
    if let Some(host) = path.strip_prefix("/v1/internal/routes/")
        && !host.contains('/')
    {
        let host = host.to_owned();
        return json(&site::push_route(env, &host, req).await?, 200);
    }
    if let Some(site_key) = path.strip_prefix("/v1/internal/tombstones/")
        && !site_key.contains('/')
    {
        let site_key = site_key.to_owned();
        return json(&snapshots::push_tombstone(env, &site_key, req).await?, 200);
    }
    Err(ApiError::not_found(format!("no route for {path}")))
}

/// The first value of a query parameter.
fn query_param(req: &Request, name: &str) -> Result<Option<String>, ApiError> {
    let url = req
        .url()
        .map_err(|e| ApiError::bad_request("invalid_url", e.to_string()))?;
    Ok(url
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned()))
}

/// `GET /v1/samplit.js[?site=KEY]`: the snippet, or a site's (see [`snippet`]).
async fn script(req: &Request, env: &Env, head_only: bool) -> Result<Response, ApiError> {
    let inm = req.headers().get("If-None-Match").ok().flatten();
    let Some(site_key) = query_param(req, "site")? else {
        let tag = snippet::etag();
        return snippet::respond(
            inm.as_deref(),
            head_only,
            &tag,
            snippet::CACHE_CONTROL,
            || snippet::SOURCE.to_owned(),
        )
        .map_err(internal);
    };
    snapshots::check_site_key(&site_key)?;
    // A site with no snapshot yet gets the script with nothing to hide (its pages work
    // as usual); the ETag changes once a snapshot arrives.
    let snapshot = snapshots::current(env, &site_key).await?;
    let tag = snippet::site_etag(snapshot.as_ref().map(|s| s.version));
    snippet::respond(
        inm.as_deref(),
        head_only,
        &tag,
        snippet::SITE_CACHE_CONTROL,
        || snippet::site_source(&site_key, snapshot.as_deref()),
    )
    .map_err(internal)
}

/// `OPTIONS` preflight. A preflight has no body, so the site comes from `?site_key=`;
/// the snippet avoids preflights altogether by posting `text/plain`.
async fn preflight(req: &Request, env: &Env) -> Result<Response, ApiError> {
    let allowed = match query_param(req, "site_key")? {
        Some(key) if snapshots::valid_site_key(&key) => snapshots::current(env, &key)
            .await?
            .map(|s| s.allowed_origins.clone())
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    let response = Response::empty().map_err(internal)?.with_status(204);
    let origin = req.headers().get("origin").ok().flatten();
    cors::apply(response.headers(), origin.as_deref(), &allowed).map_err(internal)?;
    if origin.is_some_and(|o| cors::origin_allowed(&o, &allowed)) {
        cors::apply_preflight(response.headers()).map_err(internal)?;
    }
    Ok(response)
}
