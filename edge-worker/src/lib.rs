//! # samplit-edge
//!
//! Samplit's Cloudflare Worker. A thin layer over `samplit-engine`: it reads requests,
//! holds the sites' signed snapshots, asks the engine for assignments, and ships
//! exposures and events to the control plane through a Cloudflare Queue.
//!
//! Routes (all JSON errors are `{"error": {"code", "message"}}`):
//! - `GET /v1/samplit.js`: the site snippet ([`snippet`]).
//! - `GET /v1/healthz`: the snapshots this isolate holds.
//!
//! Layout: [`error`] (the error type), [`body`] (capped bodies), [`cookies`], [`cors`],
//! [`ids`], [`items`] (queue items), [`ingest`] (the queue consumer), [`clock`].

pub mod body;
pub mod clock;
pub mod cookies;
pub mod cors;
pub mod error;
pub mod ids;
pub mod ingest;
pub mod items;
pub mod snippet;

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
    Ok(response)
}

/// Maps a binding error to a 503 (the detail is logged, not returned).
fn internal(e: worker::Error) -> ApiError {
    ApiError::upstream("the Worker runtime", e)
}

async fn route(req: &mut Request, _env: &Env, _ctx: &Context) -> Result<Response, ApiError> {
    let path = req.path();
    let method = req.method();
    match path.as_str() {
        "/v1/samplit.js" => match method {
            Method::Get | Method::Head => {
                let inm = req.headers().get("If-None-Match").ok().flatten();
                snippet::respond(inm.as_deref(), method == Method::Head).map_err(internal)
            }
            _ => Err(ApiError::method_not_allowed("GET")),
        },
        _ => Err(ApiError::not_found(format!("no route for {path}"))),
    }
}
