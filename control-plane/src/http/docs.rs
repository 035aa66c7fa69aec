//! `GET /docs`: the API reference, Swagger UI (npm `swagger-ui-dist`, pinned in
//! `package-lock.json`) on the OpenAPI document generated from the routes
//! (`/api/v1/openapi.json`). It shows every operation with its schemas, and "Try it out"
//! sends real requests to this same origin: the document's `servers` entry is `/api/v1`
//! and it declares the bearer scheme, so "Authorize" with an access token (or an `sk_`
//! API key) authenticates the calls.
//!
//! Everything is embedded and served by [`super::assets`] (built by `console/build.mjs`,
//! nothing from a CDN): the page `docs.html`, Swagger UI's `swagger-ui-bundle.js` and
//! `swagger-ui.css`, and `docs.js`, the few lines that start Swagger UI — an external
//! file, since the policy allows no inline script. Every response here carries
//! [`super::assets::CONTENT_SECURITY_POLICY`]: scripts, styles and requests to this
//! origin only. Swagger UI runs under it with no relaxation: it styles elements through
//! the DOM, which the policy allows, and in what `console/test/docs.test.mjs` drives in
//! Chromium (loading, Authorize, Try it out, on a desktop and a phone viewport) nothing
//! is refused — no `<style>` element, inline handler or foreign request.

use axum::Router;

use super::assets::{csp_layer, route};
use crate::state::AppState;

/// `/docs` and the files its page loads.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/docs", route("docs.html"))
        .route("/docs/docs.js", route("docs.js"))
        .route("/docs/docs.css", route("docs.css"))
        .route("/docs/swagger-ui-bundle.js", route("swagger-ui-bundle.js"))
        .route("/docs/swagger-ui.css", route("swagger-ui.css"))
        // The bundle's first line points readers of the minified code to its licences.
        .route(
            "/docs/swagger-ui-bundle.js.LICENSE.txt",
            route("swagger-ui-bundle.js.LICENSE.txt"),
        )
        .route("/docs/favicon-32x32.png", route("favicon-32x32.png"))
        .layer(csp_layer())
}
