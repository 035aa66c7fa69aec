//! The Shopify app's control-plane side (`integrations/shopify/README.md`): what an
//! install does, what each webhook does, and the overview the embedded admin page shows.
//! [`protocol`] checks Shopify's signatures, [`tokens`] seals access tokens at rest,
//! [`admin`] calls the shop; `http::shopify` is the HTTP surface over this module.
//!
//! - **Install** ([`install`]): an organisation and a site for the shop (the same ones on
//!   a reinstall), the shop's primary domain and `*.myshopify.com` host verified by the
//!   install itself (method `shopify_install`; taken over from any site that held them,
//!   audited), routed to the site, the site's currency set to the shop's, the token sealed,
//!   then the app-data metafields the theme embed reads and the web pixel's settings.
//! - **Orders** ([`record_order`]): the orders/create webhook is the authoritative record.
//!   Its order, with the visitor id from the cart attribute, is forwarded to the edge as a
//!   signed `/v1/events` call (`goal` `purchase`, the order total in the shop's currency,
//!   event id `shopify-order:<id>`, the id the web pixel uses too, so ingestion counts the
//!   order once). A delivery is recorded in the same transaction as the order, and that
//!   transaction commits only after the edge took the event: a failure answers 503 and
//!   Shopify's retry sends it again; a retried delivery or a second delivery of the same
//!   order changes nothing.
//! - **Uninstall** ([`uninstall`]): running experiments paused (audited), the site
//!   unpublished (its hosts unrouted, a tombstone for its key), the token deleted.
//! - **Compliance** ([`data_request`], [`redact_customer`], [`redact_shop`]).

pub mod admin;
pub mod protocol;
pub mod tokens;

use axum::http::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::audit::{self, By, Change};
use crate::config::ShopifyConfig;
use crate::db;
use crate::domain::lifecycle::Status;
use crate::domain::site::SiteDomain;
use crate::domain::verification::{self, DomainStatus, Method};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The cart attribute (and first-party cookie) carrying the Samplit visitor id.
pub const VISITOR_ATTRIBUTE: &str = "_samplit_vid";
/// The goal a purchase converts.
pub const PURCHASE_GOAL: &str = "purchase";
/// Who the audit trail names for changes the app makes.
const INSTALL_ACTOR: &str = "shopify-install";
const UNINSTALL_ACTOR: &str = "shopify-uninstall";

/// The app's clients, built once.
#[derive(Clone)]
pub struct Shopify {
    pub config: ShopifyConfig,
    pub admin: admin::Admin,
    /// Forwards orders to the edge.
    pub edge: reqwest::Client,
}

impl Shopify {
    pub fn new(config: ShopifyConfig) -> reqwest::Result<Self> {
        Ok(Self {
            admin: admin::Admin::new(config.clone())?,
            edge: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
            config,
        })
    }
}

/// The app's clients, or 404 when the app is not configured on this deployment.
pub fn app(state: &AppState) -> ApiResult<&Shopify> {
    state.shopify.as_deref().ok_or_else(|| {
        ApiError::coded(
            StatusCode::NOT_FOUND,
            "shopify_disabled",
            "the Shopify app is not configured here",
        )
    })
}

pub(crate) fn unavailable(e: &admin::AdminError) -> ApiError {
    tracing::warn!(error = %e, "shopify call failed");
    ApiError::coded(
        StatusCode::BAD_GATEWAY,
        "shopify_unavailable",
        "Shopify refused or did not answer; retry in a moment",
    )
}

/// What an install produced.
#[derive(Debug, Clone)]
pub struct Installed {
    pub org_id: Uuid,
    pub site_id: Uuid,
    pub site_key: String,
}

/// Installs (or reinstalls) the app for `shop` with a token just granted.
pub async fn install(state: &AppState, shop: &str, grant: &admin::Grant) -> ApiResult<Installed> {
    let app = app(state)?;
    let info = app
        .admin
        .shop_info(shop, &grant.access_token)
        .await
        .map_err(|e| unavailable(&e))?;
    if info.myshopify_domain != shop {
        tracing::warn!(%shop, answered = %info.myshopify_domain, "shop answered another domain");
        return Err(ApiError::coded(
            StatusCode::BAD_GATEWAY,
            "shopify_unavailable",
            "the shop answered for another domain",
        ));
    }
    let dev = state.config.dev_allow_local_domains;
    let mut hosts: Vec<String> = Vec::new();
    for raw in [info.primary_host.as_str(), shop] {
        match SiteDomain::parse(raw, "host") {
            Ok(d) if dev || !verification::is_development_name(d.as_str()) => {
                if !hosts.iter().any(|h| h == d.as_str()) {
                    hosts.push(d.as_str().to_owned());
                }
            }
            _ => tracing::warn!(%shop, host = %raw, "shop host not usable as a site domain"),
        }
    }

    let sealed = app.config.token_keys.seal(shop, &grant.access_token);
    let mut tx = state.pool.begin().await?;
    db::shopify::lock_shop(&mut tx, shop).await?;
    let existing = db::shopify::get_for_update(&mut tx, shop).await?;
    let (org_id, created_org) = match &existing {
        Some(row) => (row.org_id, row.created_org),
        None => {
            let id = Uuid::new_v4();
            db::orgs::insert(&mut tx, id, &info.name).await?;
            (id, true)
        }
    };
    let current_site = match existing.as_ref().and_then(|r| r.site_id) {
        Some(id) => db::sites::get_for_update(&mut tx, org_id, id).await?,
        None => None,
    };
    let site = match current_site {
        Some(site) => {
            // Back from an uninstall: the edge was told to forget the old key.
            if existing
                .as_ref()
                .is_some_and(|r| r.uninstalled_at.is_some())
            {
                let key = crate::auth::new_token(crate::http::sites::SITE_KEY_PREFIX);
                let (salt, _, hash) = crate::http::sites::new_server_secret(state, &key);
                db::shopify::rekey_site(&mut tx, site.id, &key, &hash, &salt).await?;
            }
            db::sites::get_for_update(&mut tx, org_id, site.id)
                .await?
                .ok_or(ApiError::NotFound("site"))?
        }
        None => {
            if !created_org || existing.is_some() {
                crate::quota::check_sites(&mut tx, &state.config.limits, org_id).await?;
            }
            let key = crate::auth::new_token(crate::http::sites::SITE_KEY_PREFIX);
            let (salt, _, hash) = crate::http::sites::new_server_secret(state, &key);
            let name: String = info.name.chars().take(100).collect();
            db::sites::insert(
                &mut tx,
                db::sites::NewSite {
                    id: Uuid::new_v4(),
                    org_id,
                    name: &name,
                    domains: &[],
                    site_key: &key,
                    server_secret_hash: &hash,
                    server_secret_salt: &salt,
                },
            )
            .await?
        }
    };
    let mut domains = site.domains.clone();
    for h in &hosts {
        if !domains.contains(h) {
            domains.push(h.clone());
        }
    }
    let site = db::sites::update(&mut tx, site.id, site.version, &site.name, &domains)
        .await?
        .ok_or(ApiError::PreconditionFailed)?;
    crate::http::domains::sync_site_domains(&mut tx, site.id, &domains).await?;
    let rows = db::domains::for_site(&mut tx, site.id).await?;
    for host in &hosts {
        if let Some((old_site, old_org)) =
            db::domains::verified_owner(&mut tx, host, site.id).await?
        {
            db::domains::revoke(&mut tx, old_site, host).await?;
            let change = Change::new("site.domain.revoked", "site", old_site)
                .before(json!({ "host": host, "status": DomainStatus::Verified }))
                .after(json!({ "host": host, "status": DomainStatus::Pending,
                    "reason": "the Shopify store that owns it installed Samplit" }));
            audit::record(&mut tx, old_org, By::System(INSTALL_ACTOR), change).await?;
        }
        let verified = rows
            .iter()
            .any(|r| &r.host == host && r.status == DomainStatus::Verified);
        if !verified {
            db::domains::mark_verified(&mut tx, site.id, host, Method::ShopifyInstall).await?;
        }
        db::domains::set_route(&mut tx, host, Some(&site.site_key)).await?;
    }
    let currency = db::shopify::fix_currency(&mut tx, site.id, &info.currency).await?;
    if currency.as_deref() != Some(info.currency.as_str()) {
        tracing::warn!(%shop, site_currency = ?currency, shop_currency = %info.currency,
            "the shop's currency differs from the site's: its orders will be refused until they agree");
    }
    db::shopify::upsert_installed(
        &mut tx,
        shop,
        org_id,
        site.id,
        created_org,
        &sealed,
        &grant.scope,
    )
    .await?;
    let change = Change::new("shopify.install", "site", site.id).after(json!({
        "shop": shop, "hosts": hosts, "currency": info.currency, "scope": grant.scope,
        "reinstall": existing.is_some(),
    }));
    audit::record(&mut tx, org_id, By::System(INSTALL_ACTOR), change).await?;
    tx.commit().await?;
    tracing::info!(%shop, %org_id, site_id = %site.id, "shopify app installed");

    configure_storefront(
        state,
        shop,
        &grant.access_token,
        &info.installation_id,
        &site.site_key,
    )
    .await?;
    Ok(Installed {
        org_id,
        site_id: site.id,
        site_key: site.site_key,
    })
}

/// The app-data metafields the theme embed reads and the web pixel's settings.
async fn configure_storefront(
    state: &AppState,
    shop: &str,
    token: &str,
    installation_id: &str,
    site_key: &str,
) -> ApiResult<()> {
    let app = app(state)?;
    let edge_url = state.config.edge_url.as_deref().ok_or_else(|| {
        ApiError::Internal(anyhow::anyhow!(
            "SAMPLIT_EDGE_URL is needed by the Shopify app"
        ))
    })?;
    let edge_url = edge_url.trim_end_matches('/');
    app.admin
        .set_app_metafields(shop, token, installation_id, site_key, edge_url)
        .await
        .map_err(|e| unavailable(&e))?;
    app.admin
        .upsert_web_pixel(shop, token, site_key, edge_url)
        .await
        .map_err(|e| unavailable(&e))
}

/// app/uninstalled.
pub async fn uninstall(tx: &mut sqlx::PgConnection, shop: &str) -> ApiResult<()> {
    db::shopify::lock_shop(tx, shop).await?;
    let Some(row) = db::shopify::get_for_update(tx, shop).await? else {
        tracing::info!(%shop, "app/uninstalled for a shop never installed");
        return Ok(());
    };
    if let Some(site_id) = row.site_id
        && let Some(site) = db::sites::get_for_update(tx, row.org_id, site_id).await?
    {
        for (id, version) in db::shopify::running_experiments(tx, site.id).await? {
            db::experiments::set_status(tx, id, version, Status::Paused).await?;
            let change = Change::new("experiment.pause", "experiment", id)
                .before(json!({ "status": Status::Running }))
                .after(json!({ "status": Status::Paused, "reason": "the Shopify app was uninstalled" }));
            audit::record(tx, row.org_id, By::System(UNINSTALL_ACTOR), change).await?;
        }
        crate::http::domains::unpublish_site(tx, &site).await?;
        let change =
            Change::new("shopify.uninstall", "site", site.id).after(json!({ "shop": shop }));
        audit::record(tx, row.org_id, By::System(UNINSTALL_ACTOR), change).await?;
    }
    db::shopify::mark_uninstalled(tx, shop).await?;
    tracing::info!(%shop, "shopify app uninstalled");
    Ok(())
}

/// What happened to an order webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderOutcome {
    Forwarded,
    AlreadyRecorded,
    NoVisitor,
    NotInstalled,
}

/// The fields of the REST Order the app reads.
#[derive(Debug, serde::Deserialize)]
pub struct OrderPayload {
    pub id: u64,
    #[serde(default)]
    pub total_price: Option<String>,
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default)]
    pub note_attributes: Vec<NoteAttribute>,
}

#[derive(Debug, serde::Deserialize)]
pub struct NoteAttribute {
    pub name: String,
    #[serde(default)]
    pub value: Value,
}

impl OrderPayload {
    fn visitor(&self) -> Option<&str> {
        self.note_attributes
            .iter()
            .find(|a| a.name == VISITOR_ATTRIBUTE)
            .and_then(|a| a.value.as_str())
            .map(str::trim)
            .filter(|v| !v.is_empty() && v.len() <= samplit_engine::ingest::MAX_ID_LEN)
    }
}

/// orders/create, inside the delivery's transaction (`tx` commits only if this succeeds).
pub async fn record_order(
    state: &AppState,
    tx: &mut sqlx::PgConnection,
    shop: &str,
    order: &OrderPayload,
) -> ApiResult<OrderOutcome> {
    let Some(row) = db::shopify::get(tx, shop).await? else {
        tracing::warn!(%shop, order = order.id, "order of a shop that is not installed");
        return Ok(OrderOutcome::NotInstalled);
    };
    let total: f64 = order
        .total_price
        .as_deref()
        .and_then(|t| t.trim().parse().ok())
        .filter(|v: &f64| v.is_finite() && *v >= 0.0 && *v <= samplit_engine::ingest::MAX_VALUE)
        .ok_or_else(|| ApiError::BadRequest("total_price is not a decimal amount".to_owned()))?;
    let currency = order
        .currency
        .as_deref()
        .filter(|c| samplit_engine::ingest::currency_valid(c))
        .ok_or_else(|| ApiError::BadRequest("currency is not an ISO 4217 code".to_owned()))?;
    let order_id = i64::try_from(order.id)
        .map_err(|_| ApiError::BadRequest("order id out of range".to_owned()))?;
    let visitor = order.visitor();
    if !db::shopify::insert_order(tx, shop, order_id, visitor, total, currency).await? {
        return Ok(OrderOutcome::AlreadyRecorded);
    }
    let Some(visitor) = visitor else {
        tracing::warn!(%shop, order = order.id, "order without a Samplit visitor id: counted nowhere");
        return Ok(OrderOutcome::NoVisitor);
    };
    let Some(site_id) = row.site_id.filter(|_| row.uninstalled_at.is_none()) else {
        return Ok(OrderOutcome::NotInstalled);
    };
    let Some((site_key, Some(salt))) = db::shopify::site_key_and_salt(tx, site_id).await? else {
        return Err(ApiError::Internal(anyhow::anyhow!(
            "the shop's site has no server secret salt"
        )));
    };
    forward_order(state, &site_key, &salt, visitor, order.id, total, currency).await?;
    Ok(OrderOutcome::Forwarded)
}

/// The signed `POST /v1/events` carrying one purchase.
async fn forward_order(
    state: &AppState,
    site_key: &str,
    salt: &str,
    visitor: &str,
    order: u64,
    total: f64,
    currency: &str,
) -> ApiResult<()> {
    let app = app(state)?;
    let (Some(edge_url), Some(snapshot_secret)) =
        (&state.config.edge_url, &state.config.snapshot_secret)
    else {
        tracing::error!(
            "orders cannot be forwarded: SAMPLIT_EDGE_URL and SAMPLIT_SNAPSHOT_SECRET are needed"
        );
        return Err(ApiError::Unavailable);
    };
    let body = json!({
        "site_key": site_key,
        "visitor_id": visitor,
        "events": [{
            "type": "conversion", "goal": PURCHASE_GOAL, "value": total, "currency": currency,
            "id": protocol::purchase_event_id(order),
        }],
    })
    .to_string();
    let secret =
        samplit_engine::server_call::server_secret(snapshot_secret.expose(), site_key, salt);
    let ts = time::OffsetDateTime::now_utc().unix_timestamp();
    let signature =
        samplit_engine::server_call::sign(&secret, ts, "POST", "/v1/events", body.as_bytes());
    let response = app
        .edge
        .post(format!("{}/v1/events", edge_url.trim_end_matches('/')))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(
            samplit_engine::server_call::TIMESTAMP_HEADER,
            ts.to_string(),
        )
        .header(samplit_engine::server_call::SIGNATURE_HEADER, signature)
        .body(body)
        .send()
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "order forward: edge unreachable");
            ApiError::Unavailable
        })?;
    if !response.status().is_success() {
        let status = response.status();
        let text = admin::body_excerpt(response).await;
        tracing::warn!(%status, body = %text, "order forward: edge refused");
        return Err(ApiError::Unavailable);
    }
    Ok(())
}

/// customers/data_request: what Samplit holds about the customer's orders, stored for the
/// shop's owners (`GET /api/v1/shopify/data-requests`).
pub async fn data_request(
    tx: &mut sqlx::PgConnection,
    shop: &str,
    payload: &Value,
) -> ApiResult<()> {
    let Some(row) = db::shopify::get(tx, shop).await? else {
        return Ok(());
    };
    let ids = order_ids(payload, "orders_requested");
    let orders = db::shopify::orders(tx, shop, &ids).await?;
    let data = json!({
        "orders": orders,
        "note": "Samplit holds, per order: the visitor id the storefront gave it, the order total and currency. \
                 The visitor id also keys that visitor's experiment assignments and conversions.",
    });
    db::shopify::insert_data_request(
        tx,
        shop,
        row.org_id,
        payload["data_request"]["id"].as_i64(),
        payload["customer"]["id"].as_i64(),
        &data,
    )
    .await?;
    Ok(())
}

fn order_ids(payload: &Value, field: &str) -> Vec<i64> {
    payload[field]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_i64).collect())
        .unwrap_or_default()
}

/// customers/redact: the orders lose their visitor id, and that visitor id is replaced by
/// a random pseudonym in the site's assignments and conversions.
pub async fn redact_customer(
    tx: &mut sqlx::PgConnection,
    shop: &str,
    payload: &Value,
) -> ApiResult<()> {
    let Some(row) = db::shopify::get(tx, shop).await? else {
        return Ok(());
    };
    let ids = order_ids(payload, "orders_to_redact");
    let visitors = db::shopify::unlink_orders(tx, shop, &ids).await?;
    if let Some(site_id) = row.site_id {
        for visitor in &visitors {
            let pseudonym = format!("redacted-{}", Uuid::new_v4().simple());
            db::shopify::pseudonymise_visitor(tx, site_id, visitor, &pseudonym).await?;
        }
    }
    tracing::info!(%shop, orders = ids.len(), visitors = visitors.len(), "customer redacted");
    Ok(())
}

/// shop/redact: the shop's site (unpublished first), its Shopify records, and the
/// organisation too when the install created it and nobody joined it.
pub async fn redact_shop(tx: &mut sqlx::PgConnection, shop: &str) -> ApiResult<()> {
    let Some(row) = db::shopify::get_for_update(tx, shop).await? else {
        return Ok(());
    };
    if let Some(site_id) = row.site_id
        && let Some(site) = db::sites::get_for_update(tx, row.org_id, site_id).await?
    {
        crate::http::domains::unpublish_site(tx, &site).await?;
        db::sites::delete(tx, site.id, site.version).await?;
        let change = Change::new("site.delete", "site", site.id)
            .after(json!({ "reason": "shop/redact", "shop": shop }));
        audit::record(tx, row.org_id, By::System(UNINSTALL_ACTOR), change).await?;
    }
    db::shopify::erase_shop_data(tx, shop).await?;
    if row.created_org && db::shopify::member_count(tx, row.org_id).await? == 0 {
        db::shopify::delete_org(tx, row.org_id).await?;
    }
    tracing::info!(%shop, "shop redacted");
    Ok(())
}
