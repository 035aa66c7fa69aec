//! The Shopify app's HTTP surface (outside `/api/v1`, which is Samplit's own API):
//!
//! - `GET /shopify/auth`: the App URL for non-embedded installs (authorization-code grant):
//!   checks `shop` and `hmac`, issues a one-time `state` bound to the shop and to this
//!   browser (a cookie), redirects to the shop's authorize page.
//! - `GET /shopify/auth/callback`: checks `shop`, `hmac` and the `state` (once, this
//!   shop, this browser), exchanges the code, installs.
//! - `GET /shopify/app` (+ `/shopify/app.js`): the embedded admin page, framed by the
//!   shop's admin only (CSP `frame-ancestors`); it calls the two endpoints below with the
//!   App Bridge session token.
//! - `GET /shopify/api/overview`: the shop's site and experiments with their totals;
//!   installs through token exchange when the shop has no token yet (Shopify-managed
//!   installation).
//! - `POST /shopify/api/invitation`: links a Samplit account: an owner invitation into the
//!   shop's organisation while nobody has joined it.
//! - `POST /shopify/webhooks`: every topic; HMAC over the raw body, deduplicated by
//!   `X-Shopify-Webhook-Id` in the transaction that does the work.
//! - `GET /api/v1/shopify/data-requests`: the compliance data requests (admin).

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::members::{INVITATION_TOKEN_PREFIX, INVITATION_TTL_DAYS};
use super::no_store::NoStore;
use super::rfc3339;
use crate::accounts::Email;
use crate::audit::{self, By, Change};
use crate::auth::roles::Admin;
use crate::auth::{RequireRole, Role, new_token, token_hash};
use crate::db;
use crate::error::{ApiError, ApiResult};
use crate::extract::Json;
use crate::shopify::{self, OrderOutcome, protocol};
use crate::state::AppState;

/// The cookie binding an OAuth `state` to the browser that started the install.
const STATE_COOKIE: &str = "samplit_shopify_state";
/// How long an OAuth `state` is valid.
const STATE_TTL_MINUTES: i64 = 10;

/// The routes under `/shopify`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/shopify/auth", get(auth_start))
        .route("/shopify/auth/callback", get(auth_callback))
        .route("/shopify/app", get(app_page))
        .route("/shopify/app.js", get(app_js))
        .route("/shopify/api/overview", get(overview))
        .route("/shopify/api/invitation", post(invitation))
        .route("/shopify/webhooks", post(webhook))
}

/// The routes under `/api/v1`.
pub fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(data_requests))
}

fn pairs(query: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn invalid_shop() -> ApiError {
    ApiError::coded(
        StatusCode::BAD_REQUEST,
        "invalid_shop",
        "shop must be a <name>.myshopify.com host",
    )
}

fn bad_hmac() -> ApiError {
    ApiError::coded(
        StatusCode::UNAUTHORIZED,
        "bad_hmac",
        "the request's hmac does not verify",
    )
}

fn bad_state() -> ApiError {
    ApiError::coded(
        StatusCode::FORBIDDEN,
        "bad_state",
        "the install's state is missing, used, expired or not this browser's; start the install again",
    )
}

/// The shop of a signed Shopify query: `shop` validated first (400), then `hmac` (401).
fn signed_shop(state: &AppState, pairs: &[(String, String)]) -> ApiResult<String> {
    let app = shopify::app(state)?;
    let shop = param(pairs, "shop")
        .filter(|s| protocol::valid_shop(s))
        .ok_or_else(invalid_shop)?;
    if !protocol::verify_query_hmac(app.config.api_secret.expose(), pairs) {
        tracing::warn!(%shop, "shopify query with a bad hmac");
        return Err(bad_hmac());
    }
    Ok(shop.to_owned())
}

fn state_cookie(state: &AppState, value: &str, max_age: time::Duration) -> HeaderValue {
    let secure = !state.config.dev_insecure_cookies;
    let cookie = cookie::Cookie::build((STATE_COOKIE, value.to_owned()))
        .path("/shopify")
        .http_only(true)
        .secure(secure)
        .same_site(cookie::SameSite::Lax)
        .max_age(max_age)
        .build();
    HeaderValue::from_str(&cookie.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Starts a non-embedded install (authorization-code grant).
async fn auth_start(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let pairs = pairs(query.as_deref());
    let shop = signed_shop(&state, &pairs)?;
    let app = shopify::app(&state)?;
    let value = new_token("");
    let expires = OffsetDateTime::now_utc() + time::Duration::minutes(STATE_TTL_MINUTES);
    let mut conn = state.pool.acquire().await?;
    db::shopify::insert_state(&mut conn, &token_hash(&value), &shop, expires).await?;
    let mut url = url::Url::parse(&format!("https://{shop}/admin/oauth/authorize"))
        .map_err(|e| ApiError::Internal(e.into()))?;
    url.query_pairs_mut()
        .append_pair("client_id", &app.config.api_key)
        .append_pair("scope", &app.config.scopes)
        .append_pair(
            "redirect_uri",
            &format!("{}/shopify/auth/callback", app.config.public_url),
        )
        .append_pair("state", &value);
    let mut response = StatusCode::FOUND.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::LOCATION,
        HeaderValue::from_str(url.as_str()).map_err(|e| ApiError::Internal(e.into()))?,
    );
    headers.insert(
        header::SET_COOKIE,
        state_cookie(&state, &value, time::Duration::minutes(STATE_TTL_MINUTES)),
    );
    Ok(NoStore(response).into_response())
}

/// Completes a non-embedded install.
async fn auth_callback(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let pairs = pairs(query.as_deref());
    let shop = signed_shop(&state, &pairs)?;
    let app = shopify::app(&state)?;
    let given = param(&pairs, "state").ok_or_else(bad_state)?;
    let cookie = cookie_value(&headers, STATE_COOKIE).ok_or_else(bad_state)?;
    // Compared as hashes: equal-length digests, no early exit on a prefix.
    if token_hash(cookie) != token_hash(given) {
        return Err(bad_state());
    }
    let mut conn = state.pool.acquire().await?;
    if !db::shopify::take_state(&mut conn, &token_hash(given), &shop).await? {
        tracing::warn!(%shop, "shopify callback with an unknown, used or foreign state");
        return Err(bad_state());
    }
    drop(conn);
    let code = param(&pairs, "code")
        .filter(|c| !c.is_empty() && c.len() <= 256)
        .ok_or_else(|| ApiError::BadRequest("code is missing".to_owned()))?;
    let grant = app
        .admin
        .exchange_code(&shop, code)
        .await
        .map_err(|e| match e {
            shopify::admin::AdminError::Refused { status: 400, .. } => ApiError::coded(
                StatusCode::BAD_REQUEST,
                "bad_code",
                "Shopify refused the authorization code; start the install again",
            ),
            other => shopify::unavailable(&other),
        })?;
    shopify::install(&state, &shop, &grant).await?;
    let mut response = StatusCode::FOUND.into_response();
    let target = format!("https://{shop}/admin/apps/{}", app.config.api_key);
    let headers = response.headers_mut();
    headers.insert(
        header::LOCATION,
        HeaderValue::from_str(&target).map_err(|e| ApiError::Internal(e.into()))?,
    );
    headers.insert(
        header::SET_COOKIE,
        state_cookie(&state, "", time::Duration::ZERO),
    );
    Ok(NoStore(response).into_response())
}

/// The shop of a request carrying an App Bridge session token.
fn session_shop(state: &AppState, headers: &HeaderMap) -> ApiResult<(String, String)> {
    let app = shopify::app(state)?;
    let refused = || {
        ApiError::coded(
            StatusCode::UNAUTHORIZED,
            "invalid_session_token",
            "a valid Shopify session token is required (Authorization: Bearer <id token>)",
        )
    };
    let token = crate::auth::bearer_token(headers).ok_or_else(refused)?;
    match protocol::verify_session_token(app.config.api_secret.expose(), &app.config.api_key, token)
    {
        Ok((shop, _)) => Ok((shop, token.to_owned())),
        Err(e) => {
            tracing::info!(error = %e, "session token refused");
            Err(refused())
        }
    }
}

/// The installed shop's row, installing through token exchange when there is no usable
/// token (first opening after a Shopify-managed install, or after a key rotation).
async fn installed_shop(
    state: &AppState,
    shop: &str,
    session_token: &str,
) -> ApiResult<db::shopify::ShopRow> {
    let app = shopify::app(state)?;
    let mut conn = state.pool.acquire().await?;
    let row = db::shopify::get(&mut conn, shop).await?;
    let usable = row.as_ref().is_some_and(|r| {
        r.uninstalled_at.is_none()
            && r.site_id.is_some()
            && r.sealed()
                .is_some_and(|s| app.config.token_keys.open(shop, &s).is_some())
    });
    if let (true, Some(row)) = (usable, row) {
        return Ok(row);
    }
    drop(conn);
    let grant = app
        .admin
        .token_exchange(shop, session_token)
        .await
        .map_err(|e| shopify::unavailable(&e))?;
    shopify::install(state, shop, &grant).await?;
    let mut conn = state.pool.acquire().await?;
    db::shopify::get(&mut conn, shop)
        .await?
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("install left no shop row")))
}

#[derive(Debug, Serialize)]
struct OverviewSite {
    id: Uuid,
    name: String,
    site_key: String,
    currency: Option<String>,
    domains: Vec<String>,
}

#[derive(Debug, Serialize)]
struct OverviewArm {
    name: String,
    is_control: bool,
    visitors: i64,
    conversions: i64,
    revenue: f64,
}

#[derive(Debug, Serialize)]
struct OverviewExperiment {
    id: Uuid,
    name: String,
    status: String,
    goal: Option<String>,
    visitors: i64,
    conversions: i64,
    revenue: f64,
    currency: Option<String>,
    arms: Vec<OverviewArm>,
}

#[derive(Debug, Serialize)]
struct Overview {
    shop: String,
    site: OverviewSite,
    /// Whether someone has linked a Samplit account (joined the shop's organisation).
    linked: bool,
    experiments: Vec<OverviewExperiment>,
}

/// The embedded page's data.
async fn overview(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    let (shop, token) = session_shop(&state, &headers)?;
    let row = installed_shop(&state, &shop, &token).await?;
    let site_id = row.site_id.ok_or(ApiError::NotFound("site"))?;
    let mut conn = state.pool.acquire().await?;
    let site = db::sites::get(&mut conn, row.org_id, site_id)
        .await?
        .ok_or(ApiError::NotFound("site"))?;
    let domains = db::domains::for_site(&mut conn, site.id).await?;
    let linked = db::shopify::member_count(&mut conn, row.org_id).await? > 0;
    drop(conn);
    let currency = db::results::site_currency(&state.pool, site.id).await?;
    let mut experiments = Vec::new();
    for e in db::results::live_experiments_of_site(&state.pool, site.id, 50).await? {
        let goal = db::results::goal_of(&state.pool, e.id, None).await?;
        let arms = match &goal {
            Some(g) => db::results::arm_aggregates(&state.pool, e.id, g.id).await?,
            None => Vec::new(),
        };
        let arms: Vec<OverviewArm> = arms
            .into_iter()
            .map(|a| OverviewArm {
                name: a.name,
                is_control: a.is_control,
                visitors: a.visitors,
                conversions: a.converters,
                revenue: a.revenue_sum,
            })
            .collect();
        experiments.push(OverviewExperiment {
            id: e.id,
            name: e.name,
            status: e.status.as_str().to_owned(),
            goal: goal.map(|g| g.name),
            visitors: arms.iter().map(|a| a.visitors).sum(),
            conversions: arms.iter().map(|a| a.conversions).sum(),
            revenue: arms.iter().map(|a| a.revenue).sum(),
            currency: currency.clone(),
            arms,
        });
    }
    Ok(NoStore(axum::Json(Overview {
        shop,
        site: OverviewSite {
            id: site.id,
            name: site.name,
            site_key: site.site_key,
            currency,
            domains: domains
                .into_iter()
                .filter(|d| d.status == crate::domain::verification::DomainStatus::Verified)
                .map(|d| d.host)
                .collect(),
        },
        linked,
        experiments,
    }))
    .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InvitationInput {
    email: String,
}

#[derive(Debug, Serialize)]
struct InvitationOutput {
    /// For `POST /api/v1/invitations/accept` (shown once).
    token: String,
    email: String,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
}

/// Links a Samplit account to the shop: an owner invitation into the shop's organisation,
/// only while nobody has joined it (afterwards its owners invite people as usual).
async fn invitation(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(input): Json<InvitationInput>,
) -> ApiResult<Response> {
    let (shop, token) = session_shop(&state, &headers)?;
    let email = Email::parse(&input.email).map_err(|m| ApiError::validation("email", m))?;
    let row = installed_shop(&state, &shop, &token).await?;
    let mut tx = state.pool.begin().await?;
    db::shopify::lock_shop(&mut tx, &shop).await?;
    if db::shopify::member_count(&mut tx, row.org_id).await? > 0 {
        return Err(ApiError::conflict(
            "already_linked",
            "a Samplit account already manages this shop; ask one of its owners to invite you",
        ));
    }
    let value = new_token(INVITATION_TOKEN_PREFIX);
    let expires_at = OffsetDateTime::now_utc() + time::Duration::days(INVITATION_TTL_DAYS);
    let inv = db::orgs::insert_invitation(
        &mut tx,
        Uuid::new_v4(),
        row.org_id,
        email.as_str(),
        Role::Owner,
        &token_hash(&value),
        None,
        expires_at,
    )
    .await?;
    let change = Change::new("invitation.created", "invitation", inv.id).after(serde_json::json!({
        "email": email.as_str(), "role": Role::Owner, "via": "shopify", "shop": shop,
    }));
    audit::record(&mut tx, row.org_id, By::System("shopify-admin"), change).await?;
    tx.commit().await?;
    Ok(NoStore((
        StatusCode::CREATED,
        axum::Json(InvitationOutput {
            token: value,
            email: email.as_str().to_owned(),
            expires_at,
        }),
    ))
    .into_response())
}

/// Every webhook topic the app subscribes to, compliance topics included.
async fn webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let app = shopify::app(&state)?;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if !protocol::verify_webhook_hmac(
        app.config.api_secret.expose(),
        &body,
        header("x-shopify-hmac-sha256"),
    ) {
        tracing::warn!(topic = ?header("x-shopify-topic"), "webhook with a bad hmac");
        return Err(bad_hmac());
    }
    let shop = header("x-shopify-shop-domain")
        .filter(|s| protocol::valid_shop(s))
        .ok_or_else(invalid_shop)?
        .to_owned();
    let topic = header("x-shopify-topic")
        .ok_or_else(|| ApiError::BadRequest("X-Shopify-Topic is missing".to_owned()))?
        .to_owned();
    let webhook_id = header("x-shopify-webhook-id")
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .ok_or_else(|| ApiError::BadRequest("X-Shopify-Webhook-Id is missing".to_owned()))?
        .to_owned();
    let payload: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|_| ApiError::BadRequest("the body is not JSON".to_owned()))?;

    let mut tx = state.pool.begin().await?;
    if !db::shopify::record_delivery(&mut tx, &webhook_id, &shop, &topic).await? {
        tracing::info!(%shop, %topic, %webhook_id, "webhook delivery already processed");
        if topic == "orders/create" {
            state
                .metrics
                .shopify_orders
                .with_label_values(&["duplicate_delivery"])
                .inc();
        }
        return Ok(StatusCode::OK.into_response());
    }
    match topic.as_str() {
        "orders/create" => {
            let order: shopify::OrderPayload = serde_json::from_value(payload)
                .map_err(|e| ApiError::BadRequest(format!("not an order: {e}")))?;
            let outcome = shopify::record_order(&state, &mut tx, &shop, &order).await?;
            let label = match outcome {
                OrderOutcome::Forwarded => "forwarded",
                OrderOutcome::AlreadyRecorded => "already_recorded",
                OrderOutcome::NoVisitor => "no_visitor",
                OrderOutcome::NotInstalled => "not_installed",
            };
            state
                .metrics
                .shopify_orders
                .with_label_values(&[label])
                .inc();
        }
        "app/uninstalled" => shopify::uninstall(&mut tx, &shop).await?,
        "customers/data_request" => shopify::data_request(&mut tx, &shop, &payload).await?,
        "customers/redact" => shopify::redact_customer(&mut tx, &shop, &payload).await?,
        "shop/redact" => shopify::redact_shop(&mut tx, &shop).await?,
        other => tracing::info!(%shop, topic = %other, "webhook topic not handled"),
    }
    tx.commit().await?;
    Ok(StatusCode::OK.into_response())
}

/// The embedded admin page.
async fn app_page(State(state): State<AppState>, RawQuery(query): RawQuery) -> ApiResult<Response> {
    let app = shopify::app(&state)?;
    let pairs = pairs(query.as_deref());
    let shop = match param(&pairs, "shop") {
        Some(s) if protocol::valid_shop(s) => Some(s.to_owned()),
        Some(_) => return Err(invalid_shop()),
        None => None,
    };
    let ancestors = match &shop {
        Some(s) => format!("https://{s} https://admin.shopify.com"),
        None => "https://admin.shopify.com".to_owned(),
    };
    let csp = format!(
        "default-src 'none'; script-src 'self' https://cdn.shopify.com; connect-src 'self'; \
         style-src 'self' 'unsafe-inline'; img-src 'self' data:; form-action 'self'; \
         frame-ancestors {ancestors}"
    );
    let html = APP_HTML.replace("{{API_KEY}}", &html_escape(&app.config.api_key));
    let mut response = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_str(&csp).map_err(|e| ApiError::Internal(e.into()))?,
    );
    // The API-wide `X-Frame-Options: DENY` stays: browsers ignore it when a CSP carries
    // `frame-ancestors` (CSP Level 2, "frame-ancestors"), so only the shop's admin frames
    // this page, and an old browser that reads only the former frames it nowhere.
    Ok(NoStore(response).into_response())
}

async fn app_js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        APP_JS,
    )
        .into_response()
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const APP_HTML: &str = include_str!("shopify_app.html");
const APP_JS: &str = include_str!("shopify_app.js");

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DataRequestView {
    pub id: Uuid,
    pub shop: String,
    /// Shopify's `data_request.id`.
    pub data_request_id: Option<i64>,
    /// Shopify's `customer.id`.
    pub customer_id: Option<i64>,
    /// What Samplit holds: the customer's orders with their visitor ids.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    pub created_at: String,
}

/// The `customers/data_request` webhooks received for the organisation's shops, newest
/// first (admin): what to send the customer.
#[utoipa::path(get, path = "/shopify/data-requests", tag = "shopify",
    responses((status = 200, body = Vec<DataRequestView>)), security(("bearer" = [])))]
async fn data_requests(
    State(state): State<AppState>,
    RequireRole { actor, .. }: RequireRole<Admin>,
) -> ApiResult<Response> {
    let mut conn = state.pool.acquire().await?;
    let rows = db::shopify::data_requests(&mut conn, actor.org_id).await?;
    let views: Vec<DataRequestView> = rows
        .into_iter()
        .map(|r| DataRequestView {
            id: r.id,
            shop: r.shop,
            data_request_id: r.data_request_id,
            customer_id: r.customer_id,
            data: r.data,
            created_at: rfc3339(r.created_at),
        })
        .collect();
    Ok(NoStore(axum::Json(views)).into_response())
}
