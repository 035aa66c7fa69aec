//! The HTTP surface: [`router`] assembles every resource's routes under `/api/v1`, the
//! health and metrics endpoints, and the middleware stack (request id, metrics, trace,
//! CORS, body limit, timeout, security headers).
//!
//! Each resource module exposes `fn router() -> OpenApiRouter<AppState>` whose handlers
//! carry `#[utoipa::path]`, registered with `routes!(...)`: the OpenAPI document
//! (`GET /api/v1/openapi.json`) is collected from the routes themselves, so it cannot
//! drift from them.

mod account;
mod api_keys;
pub mod assets;
mod audit;
mod auth;
mod common_responses;
mod console_session;
mod docs;
pub mod domains;
mod editor;
mod etag;
pub mod experiments;
pub mod funnels;
mod health;
mod ingest;
mod members;
mod no_store;
mod notifications;
mod planning;
pub(crate) mod results;
mod segments;
mod shares;
mod shopify;
mod signups;
pub mod sites;
pub mod webhooks;
pub mod wordpress;

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use uuid::Uuid;

use crate::error::{REQUEST_ID, problem_response};
use crate::state::AppState;
pub use shares::SharedResultsCache;

/// Largest accepted request body, in bytes. Ingest batches (≤ 1000 items) fit well within.
pub const BODY_LIMIT: usize = 2 * 1024 * 1024;
/// Longest a request may take before it is answered 408.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The routes under `/api/v1`, each with its OpenAPI operation.
fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(auth::router())
        .merge(console_session::router())
        .merge(members::router())
        .merge(api_keys::router())
        .merge(audit::router())
        .merge(sites::router())
        .merge(experiments::router())
        .merge(editor::router())
        .merge(ingest::router())
        .merge(results::router())
        .merge(segments::router())
        .merge(shares::router())
        .merge(planning::router())
        .merge(signups::router())
        .merge(shopify::api_router())
        .merge(wordpress::router())
        .merge(account::router())
        .merge(notifications::router())
        .merge(webhooks::router())
        .merge(funnels::router())
}

/// The OpenAPI document of the API: paths relative to its `servers` entry, `/api/v1`
/// (what `GET /api/v1/openapi.json` serves and `samplit openapi` prints).
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_routes_and_doc().1
}

/// The API's router and its document, with the common error responses added
/// ([`common_responses`]).
fn api_routes_and_doc() -> (axum::Router<AppState>, utoipa::openapi::OpenApi) {
    let (api, mut doc) = api_routes().split_for_parts();
    common_responses::add_to(&mut doc);
    (api, doc)
}

/// The whole application, ready to serve or to drive in tests with `oneshot`.
pub fn router(state: AppState) -> Router {
    let (api, openapi) = api_routes_and_doc();
    let openapi = std::sync::Arc::new(openapi);
    let api = api.route(
        "/openapi.json",
        axum::routing::get(move || {
            let doc = openapi.clone();
            async move { axum::Json(doc.as_ref().clone()) }
        }),
    );
    Router::new()
        .nest("/api/v1", api)
        .merge(health::router())
        .merge(docs::router())
        .merge(assets::router(state.config.edge_url.as_deref()))
        .merge(assets::simulator_router())
        .merge(shopify::router())
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .layer(cors(&state.config.cors_origins))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, REQUEST_TIMEOUT))
        .layer(security_headers())
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let id = req
                .extensions()
                .get::<RequestId>()
                .map(|r| r.0.clone())
                .unwrap_or_default();
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
        }))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// The document's header; paths come from the routers.
#[derive(OpenApi)]
#[openapi(
    info(title = "Samplit control plane", description = "Admin REST API: accounts, sites, experiments, ingestion, results, audit."),
    servers((url = "/api/v1", description = "This control plane: every path below is under /api/v1")),
    components(schemas(crate::error::Problem, crate::error::FieldError, crate::export::ExportFormat)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme,
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An access token from /auth/login, or an API key (sk_...)",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "wordpress_connection",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A WordPress plugin's connection token (wpc_...), from /wordpress/exchange",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "console_session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "__Host-samplit_session",
                "The console's session cookie (POST /auth/console/login); every endpoint \
                 accepts it in place of a bearer token, and a state change made with it \
                 needs the session's X-CSRF-Token header",
            ))),
        );
    }
}

async fn not_found() -> Response {
    problem_response(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

/// The request id of this request (also in the `x-request-id` response header).
#[derive(Clone)]
pub struct RequestId(pub String);

/// Gives the request an id (never trusting a client-sent one), makes it visible to error
/// bodies for the whole request, and records count and latency per matched route.
async fn observe(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let id = Uuid::new_v4().to_string();
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let started = Instant::now();
    let mut response = REQUEST_ID.scope(id.clone(), next.run(req)).await;
    let m = &state.metrics;
    m.requests
        .with_label_values(&[method.as_str(), &route, response.status().as_str()])
        .inc();
    m.latency
        .with_label_values(&[method.as_str(), &route])
        .observe(started.elapsed().as_secs_f64());
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    response
}

fn cors(origins: &[String]) -> CorsLayer {
    let allowed: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(allowed))
        .allow_credentials(true)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_MATCH,
        ])
        .expose_headers([
            header::ETAG,
            REQUEST_ID_HEADER,
            experiments::TOTAL_COUNT_HEADER,
        ])
        .max_age(Duration::from_secs(600))
}

fn security_headers() -> tower::layer::util::Stack<
    SetResponseHeaderLayer<HeaderValue>,
    tower::layer::util::Stack<
        SetResponseHeaderLayer<HeaderValue>,
        SetResponseHeaderLayer<HeaderValue>,
    >,
> {
    tower::layer::util::Stack::new(
        SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        tower::layer::util::Stack::new(
            SetResponseHeaderLayer::if_not_present(
                header::X_FRAME_OPTIONS,
                HeaderValue::from_static("DENY"),
            ),
            SetResponseHeaderLayer::if_not_present(
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
        ),
    )
}

/// A time as the API shows it (RFC 3339, UTC offset), for views that hold it as text.
pub(crate) fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
