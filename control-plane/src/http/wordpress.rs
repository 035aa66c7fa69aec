//! The WordPress plugin's connect flow (`integrations/wordpress/README.md`):
//!
//! 1. The plugin sends its admin to the console's `/app/connect/wordpress?site_url&
//!    return_url&state`; the signed-in Samplit admin picks or creates the site and the
//!    console calls `POST /wordpress/connect`, which adds the WordPress host to the site
//!    (pending) and mints a one-time code (five minutes, stored hashed) bound to the
//!    site and the WordPress origin, answered as the `return_url` carrying `code` and
//!    `state` (the return URL must be on the WordPress origin: the code goes nowhere
//!    else).
//! 2. The plugin exchanges the code server to server (`POST /wordpress/exchange`) for the
//!    site key, a fresh server secret (the site's secret is rotated: only this plugin
//!    holds the new one), the edge URL, the host's verification token and a connection
//!    token (`wpc_…`, stored hashed) for the calls below.
//! 3. With the connection token: `POST /wordpress/verify` (the control plane fetches the
//!    verification file the plugin serves, the domain proof's `http_file` method),
//!    `GET /wordpress/connection` (the site and its live experiments) and
//!    `POST /wordpress/disconnect` (revokes the token and rotates the server secret, so
//!    the plugin's copy stops working at the next snapshot).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::domains::{prove_host, sync_site_domains};
use super::no_store::NoStore;
use super::sites::{SITE_KEY_PREFIX, new_server_secret};
use crate::audit::{self, By, Change};
use crate::auth::roles::Admin;
use crate::auth::{RequireRole, new_token, token_hash};
use crate::db;
use crate::domain::site::{SiteDomain, SiteName};
use crate::domain::verification::{DomainStatus, Method};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::extract::Json;
use crate::state::AppState;

/// How long a connect code is valid.
const CODE_TTL_MINUTES: i64 = 5;
/// Prefix of connection tokens.
const CONNECTION_TOKEN_PREFIX: &str = "wpc_";
/// Where the plugin serves the host's verification token (the `http_file` proof's path).
pub const VERIFICATION_PATH: &str = "/.well-known/samplit-verification.txt";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(wordpress_connect))
        .routes(routes!(wordpress_exchange))
        .routes(routes!(wordpress_verify))
        .routes(routes!(wordpress_connection))
        .routes(routes!(wordpress_disconnect))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectInput {
    /// The WordPress site's origin (`home_url()`), `https://host[:port]`.
    pub site_url: String,
    /// Where to send the browser back: a URL on `site_url`'s origin (the plugin's
    /// settings page).
    pub return_url: String,
    /// The plugin's state, returned as given (8 to 128 of `[A-Za-z0-9_-]`).
    pub state: String,
    /// Connect this site of the organisation; absent: create a site for the host.
    #[serde(default)]
    pub site_id: Option<Uuid>,
    /// The new site's name (default: the host).
    #[serde(default)]
    pub site_name: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConnectOutput {
    /// `return_url` with `code` and `state` added: send the browser there.
    pub redirect_url: String,
    pub site_id: Uuid,
}

/// The origin and host of a WordPress site URL: https (http only with the development
/// switch), no credentials, path or query beyond `/`.
fn parse_site_url(raw: &str, dev: bool) -> Result<(String, String), FieldError> {
    let bad = |m: &str| FieldError {
        field: "site_url".to_owned(),
        message: m.to_owned(),
    };
    let url = url::Url::parse(raw.trim()).map_err(|_| bad("must be an absolute URL"))?;
    match url.scheme() {
        "https" => {}
        "http" if dev => {}
        _ => return Err(bad("must be an https:// URL")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not carry credentials"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("must be the site's home URL, without a query"));
    }
    let host = url.host_str().ok_or_else(|| bad("has no host"))?;
    let host = SiteDomain::parse(host, "site_url").map_err(FieldError::from)?;
    let origin = url.origin().ascii_serialization();
    let path = url.path().trim_end_matches('/');
    Ok((format!("{origin}{path}"), host.as_str().to_owned()))
}

fn valid_state(state: &str) -> bool {
    (8..=128).contains(&state.len())
        && state
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Connect a WordPress site (admin): answers the URL to send the browser back to, with a
/// one-time code for the plugin.
#[utoipa::path(post, path = "/wordpress/connect", tag = "wordpress", request_body = ConnectInput,
    responses((status = 201, body = ConnectOutput), (status = 404, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem)),
    security(("bearer" = [])))]
async fn wordpress_connect(
    State(state): State<AppState>,
    RequireRole { actor, .. }: RequireRole<Admin>,
    Json(input): Json<ConnectInput>,
) -> ApiResult<Response> {
    let dev = state.config.dev_allow_local_domains;
    let mut errors = Vec::new();
    let site_url = parse_site_url(&input.site_url, dev)
        .map_err(|e| errors.push(e))
        .ok();
    let return_url = url::Url::parse(input.return_url.trim()).ok();
    let same_origin = match (&site_url, &return_url) {
        (Some((origin, _)), Some(ret)) => {
            let site_origin = url::Url::parse(origin).map(|u| u.origin());
            site_origin.is_ok_and(|o| o == ret.origin())
        }
        _ => false,
    };
    if !same_origin {
        errors.push(FieldError {
            field: "return_url".to_owned(),
            message: "must be a URL on the WordPress site's own origin".to_owned(),
        });
    }
    if !valid_state(&input.state) {
        errors.push(FieldError {
            field: "state".to_owned(),
            message: "must be 8 to 128 characters of A-Z, a-z, 0-9, - and _".to_owned(),
        });
    }
    let name = input
        .site_name
        .as_deref()
        .map(|n| SiteName::parse(n).map_err(|e| errors.push(e.into())).ok());
    let (Some((site_url, host)), Some(mut return_url), true) =
        (site_url, return_url, errors.is_empty())
    else {
        return Err(ApiError::Validation(errors));
    };

    let mut tx = state.pool.begin().await?;
    let site = match input.site_id {
        Some(id) => super::sites::site_of(&mut tx, &actor, id, true).await?,
        None => {
            crate::quota::check_sites(&mut tx, &state.config.limits, actor.org_id).await?;
            let key = new_token(SITE_KEY_PREFIX);
            let (salt, _, hash) = new_server_secret(&state, &key);
            let name = name
                .flatten()
                .map_or_else(|| host.clone(), |n| n.as_str().to_owned());
            let row = db::sites::insert(
                &mut tx,
                db::sites::NewSite {
                    id: Uuid::new_v4(),
                    org_id: actor.org_id,
                    name: &name,
                    domains: &[],
                    site_key: &key,
                    server_secret_hash: &hash,
                    server_secret_salt: &salt,
                },
            )
            .await?;
            let change = Change::new("site.create", "site", row.id)
                .after(serde_json::json!({ "name": row.name, "via": "wordpress" }));
            audit::record_by(&mut tx, &actor, change).await?;
            row
        }
    };
    if !site.domains.contains(&host) {
        let mut domains = site.domains.clone();
        domains.push(host.clone());
        SiteDomain::parse_list(&domains).map_err(|errs| {
            ApiError::Validation(errs.into_iter().map(FieldError::from).collect())
        })?;
        db::sites::update(&mut tx, site.id, site.version, &site.name, &domains)
            .await?
            .ok_or(ApiError::PreconditionFailed)?;
        sync_site_domains(&mut tx, site.id, &domains).await?;
    }
    let code = new_token("");
    let expires = OffsetDateTime::now_utc() + time::Duration::minutes(CODE_TTL_MINUTES);
    db::wordpress::insert_code(
        &mut tx,
        &token_hash(&code),
        actor.org_id,
        site.id,
        &site_url,
        &host,
        actor.user_id(),
        expires,
    )
    .await?;
    let change = Change::new("wordpress.connect", "site", site.id)
        .after(serde_json::json!({ "site_url": site_url, "host": host }));
    audit::record_by(&mut tx, &actor, change).await?;
    tx.commit().await?;
    return_url
        .query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &input.state);
    Ok(NoStore((
        StatusCode::CREATED,
        axum::Json(ConnectOutput {
            redirect_url: return_url.into(),
            site_id: site.id,
        }),
    ))
    .into_response())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExchangeInput {
    pub code: String,
    /// The WordPress origin the code was issued for.
    pub site_url: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Verification {
    /// The exact text to serve at `path` on the host (`samplit-verification=<token>`).
    pub token: String,
    pub path: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExchangeOutput {
    pub site_id: Uuid,
    pub site_key: String,
    /// The site's new server secret (the previous one stops working once the next
    /// snapshot reaches the edge). Shown in this answer only.
    pub server_secret: Option<String>,
    pub edge_url: Option<String>,
    /// Bearer token for `/wordpress/verify`, `/wordpress/connection` and
    /// `/wordpress/disconnect`. Shown in this answer only.
    pub connection_token: String,
    pub host: String,
    pub verification: Verification,
}

fn invalid_code() -> ApiError {
    ApiError::coded(
        StatusCode::BAD_REQUEST,
        "invalid_code",
        "the code is unknown, used, expired or for another site; connect again",
    )
}

/// Exchange a connect code (the plugin, server to server; the code is the credential).
#[utoipa::path(post, path = "/wordpress/exchange", tag = "wordpress", request_body = ExchangeInput,
    responses((status = 200, body = ExchangeOutput), (status = 400, body = crate::error::Problem)),
    security(()))]
async fn wordpress_exchange(
    State(state): State<AppState>,
    Json(input): Json<ExchangeInput>,
) -> ApiResult<Response> {
    let dev = state.config.dev_allow_local_domains;
    let mut tx = state.pool.begin().await?;
    let code = db::wordpress::take_code(&mut tx, &token_hash(input.code.trim())).await?;
    // Consumed whatever happens next: a code is tried once.
    tx.commit().await?;
    let site_url = parse_site_url(&input.site_url, dev).ok().map(|(u, _)| u);
    let Some(code) = code.filter(|c| {
        c.expires_at > OffsetDateTime::now_utc() && Some(&c.site_url) == site_url.as_ref()
    }) else {
        return Err(invalid_code());
    };
    let mut tx = state.pool.begin().await?;
    let site = db::sites::get_for_update(&mut tx, code.org_id, code.site_id)
        .await?
        .ok_or_else(invalid_code)?;
    let (salt, secret, secret_hash) = new_server_secret(&state, &site.site_key);
    db::sites::set_secret(&mut tx, site.id, &secret_hash, &salt).await?;
    let token = new_token(CONNECTION_TOKEN_PREFIX);
    db::wordpress::insert_connection(&mut tx, Uuid::new_v4(), &code, &token_hash(&token)).await?;
    let domain = db::domains::for_site(&mut tx, site.id)
        .await?
        .into_iter()
        .find(|d| d.host == code.host)
        .ok_or_else(invalid_code)?;
    let change = Change::new("wordpress.connected", "site", site.id)
        .after(serde_json::json!({ "host": code.host, "server_secret_rotated": true }));
    audit::record(&mut tx, code.org_id, By::System("wordpress-plugin"), change).await?;
    tx.commit().await?;
    Ok(NoStore(axum::Json(ExchangeOutput {
        site_id: site.id,
        site_key: site.site_key,
        server_secret: secret,
        edge_url: state.config.edge_url.clone(),
        connection_token: token,
        host: code.host,
        verification: Verification {
            token: crate::domain::verification::proof_value(&domain.token),
            path: VERIFICATION_PATH.to_owned(),
        },
    }))
    .into_response())
}

/// The connection a `wpc_` bearer token names (401 otherwise).
async fn connection_of(
    state: &AppState,
    headers: &HeaderMap,
) -> ApiResult<db::wordpress::ConnectionRow> {
    let refused = || {
        ApiError::coded(
            StatusCode::UNAUTHORIZED,
            "invalid_connection_token",
            "a live WordPress connection token is required (Authorization: Bearer wpc_…)",
        )
    };
    let token = crate::auth::bearer_token(headers)
        .filter(|t| t.starts_with(CONNECTION_TOKEN_PREFIX))
        .ok_or_else(refused)?;
    let mut conn = state.pool.acquire().await?;
    db::wordpress::connection_by_token(&mut conn, &token_hash(token))
        .await?
        .ok_or_else(refused)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VerifyOutput {
    pub host: String,
    pub status: DomainStatus,
}

/// Prove the connected host: the control plane fetches the verification file the plugin
/// serves (422 says what it looked for and found).
#[utoipa::path(post, path = "/wordpress/verify", tag = "wordpress",
    responses((status = 200, body = VerifyOutput), (status = 401, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)),
    security(("wordpress_connection" = [])))]
async fn wordpress_verify(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let c = connection_of(&state, &headers).await?;
    let site = {
        let mut conn = state.pool.acquire().await?;
        db::sites::get(&mut conn, c.org_id, c.site_id)
            .await?
            .ok_or(ApiError::NotFound("site"))?
    };
    let row = prove_host(
        &state,
        &site,
        &c.host,
        Method::HttpFile,
        false,
        By::System("wordpress-plugin"),
    )
    .await?;
    Ok(axum::Json(VerifyOutput {
        host: row.host,
        status: row.status,
    })
    .into_response())
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConnectedSite {
    pub id: Uuid,
    pub name: String,
    pub site_key: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConnectedExperiment {
    pub id: Uuid,
    pub name: String,
    pub status: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConnectionOutput {
    pub site: ConnectedSite,
    pub host: String,
    pub domain_status: Option<DomainStatus>,
    /// Running and paused experiments.
    pub experiments: Vec<ConnectedExperiment>,
}

/// The connected site, its host's status and its live experiments ("Test connection").
#[utoipa::path(get, path = "/wordpress/connection", tag = "wordpress",
    responses((status = 200, body = ConnectionOutput), (status = 401, body = crate::error::Problem)),
    security(("wordpress_connection" = [])))]
async fn wordpress_connection(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let c = connection_of(&state, &headers).await?;
    let mut conn = state.pool.acquire().await?;
    let site = db::sites::get(&mut conn, c.org_id, c.site_id)
        .await?
        .ok_or(ApiError::NotFound("site"))?;
    let domain_status = db::domains::for_site(&mut conn, site.id)
        .await?
        .into_iter()
        .find(|d| d.host == c.host)
        .map(|d| d.status);
    let experiments = db::wordpress::experiments_of_site(&mut conn, site.id)
        .await?
        .into_iter()
        .map(|(id, name, status)| ConnectedExperiment { id, name, status })
        .collect();
    Ok(NoStore(axum::Json(ConnectionOutput {
        site: ConnectedSite {
            id: site.id,
            name: site.name,
            site_key: site.site_key,
        },
        host: c.host,
        domain_status,
        experiments,
    }))
    .into_response())
}

/// Disconnect: the token stops working and the site's server secret is rotated (the
/// plugin's copy stops verifying once the next snapshot reaches the edge).
#[utoipa::path(post, path = "/wordpress/disconnect", tag = "wordpress",
    responses((status = 204), (status = 401, body = crate::error::Problem)),
    security(("wordpress_connection" = [])))]
async fn wordpress_disconnect(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    let c = connection_of(&state, &headers).await?;
    let mut tx = state.pool.begin().await?;
    db::wordpress::revoke(&mut tx, c.id).await?;
    if let Some(site) = db::sites::get_for_update(&mut tx, c.org_id, c.site_id).await? {
        let (salt, _, hash) = new_server_secret(&state, &site.site_key);
        db::sites::set_secret(&mut tx, site.id, &hash, &salt).await?;
    }
    let change = Change::new("wordpress.disconnect", "site", c.site_id)
        .after(serde_json::json!({ "host": c.host, "server_secret_rotated": true }));
    audit::record(&mut tx, c.org_id, By::System("wordpress-plugin"), change).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
