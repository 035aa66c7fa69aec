//! Sites (the original's "installations"): `/sites` and `/sites/{id}/…`.
//!
//! A site has a name, the host names its pages are served from ([`SiteDomain`]), a
//! public site key (`pk_…`, used by the snippet and the edge), a server secret for
//! plugins (`ss_…`, shown once — at creation and on rotation; *derived* from the snapshot
//! secret and a public random salt, see `samplit_engine::server_call`, so only the salt
//! and a SHA-256 of the secret are stored), the revenue cap for unsigned events
//! (`/sites/{id}/revenue-cap`), and site-wide exclusion rules (the engine's
//! `targeting::ExclusionRule`).
//!
//! A site's domains are pending until proven (`POST /sites/{id}/domains/{host}/verify`,
//! [`super::domains`]); the view lists each with its state and what to publish.
//! Deleting a site records a tombstone the publisher pushes to the edge (unpublish).
//!
//! Admins and owners create, change and delete sites; every member reads them. Changes
//! need `If-Match` (see `http::etag`) and write an audit entry in their transaction.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use samplit_engine::targeting::ExclusionRule;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::domains::{DomainView, sync_site_domains, unpublish_site};
use super::etag::{IfMatch, etag};
use super::no_store::NoStore;
use crate::audit::{self, Change};
use crate::auth::roles::Admin;
use crate::auth::{self, Actor, RequireRole};
use crate::db;
use crate::db::domains::DomainRow;
use crate::db::sites::SiteRow;
use crate::domain::publication::PublicationStatus;
use crate::domain::{RevenueCap, SiteDomain, SiteName};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::extract::{Json, PathId};
use crate::state::AppState;

/// Prefix of public site keys.
pub const SITE_KEY_PREFIX: &str = "pk_";
/// Prefix of plugin server secrets.
pub const SERVER_SECRET_PREFIX: &str = "ss_";
/// Most exclusion rules per site.
pub const MAX_EXCLUSIONS: usize = 100;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_site, list_sites))
        .routes(routes!(get_site, update_site, delete_site))
        .routes(routes!(rotate_secret))
        .routes(routes!(get_revenue_cap, put_revenue_cap))
        .routes(routes!(get_snippet))
        .routes(routes!(put_exclusions))
        .routes(routes!(list_publications))
        .routes(routes!(super::domains::verify_domain))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSite {
    pub name: String,
    #[serde(default)]
    pub domains: Vec<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSite {
    pub name: Option<String>,
    pub domains: Option<Vec<String>>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SiteView {
    pub id: Uuid,
    pub name: String,
    pub domains: Vec<String>,
    pub site_key: String,
    /// Engine exclusion rules, e.g. `{"type": "ip", "range": "10.0.0.0/8"}`.
    #[schema(value_type = Vec<Object>)]
    pub exclusions: serde_json::Value,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub snippet_seen_at: Option<OffsetDateTime>,
    /// Each domain's ownership state and what to publish to prove it; only verified
    /// domains reach the edge.
    pub domain_verification: Vec<DomainView>,
    pub version: i32,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

impl SiteView {
    /// The view of `r` with its domain rows (`domains`: any rows; those of `r` are kept).
    pub fn new(r: SiteRow, domains: &[DomainRow]) -> Self {
        let domain_verification = domains
            .iter()
            .filter(|d| d.site_id == r.id)
            .cloned()
            .map(DomainView::from)
            .collect();
        Self {
            domain_verification,
            id: r.id,
            name: r.name,
            domains: r.domains,
            site_key: r.site_key,
            exclusions: r.exclusions,
            snippet_seen_at: r.snippet_seen_at,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// A site with its server secret: only in the answer to creation and rotation.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SiteWithSecret {
    #[serde(flatten)]
    pub site: SiteView,
    /// `ss_…`: shown this once; store it in the plugin's settings and sign server calls
    /// with it (docs/api.md, "Signed server calls"). `null` when this control plane has
    /// no `SAMPLIT_SNAPSHOT_SECRET` (no edge to verify it): rotate once it has one.
    pub server_secret: Option<String>,
}

/// The largest event value an unsigned (browser) call may report.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevenueCapBody {
    /// Above 0, at most 1e9 (default 10 000). Signed server calls may exceed it.
    pub revenue_cap: f64,
}

/// A fresh salt and the server secret derived from it: `(salt, secret, hash to store)`.
/// The secret is the engine's `server_call::server_secret(snapshot secret, site key,
/// salt)`, so the edge can re-derive it from the salt the snapshot publishes; only its
/// hash is stored (and a hash of an unusable random token when there is no snapshot
/// secret to derive from).
pub(crate) fn new_server_secret(
    state: &AppState,
    site_key: &str,
) -> (String, Option<String>, Vec<u8>) {
    // 32 random bytes from the OS RNG, as 64 hex digits: public, but unguessable in advance.
    let salt = auth::new_token("");
    let secret = state
        .config
        .snapshot_secret
        .as_ref()
        .map(|k| samplit_engine::server_call::server_secret(k.expose(), site_key, &salt));
    let hash = auth::token_hash(
        secret
            .as_deref()
            .unwrap_or(&auth::new_token(SERVER_SECRET_PREFIX)),
    );
    (salt, secret, hash)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Snippet {
    pub site_key: String,
    /// The HTML to paste into every page's `<head>`.
    pub html: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PublicationView {
    pub version: i64,
    /// SHA-256 (hex) of the signed payload.
    pub hash: String,
    pub status: PublicationStatus,
    /// Pushes tried (0: over the snapshot quota, never pushed).
    pub attempts: i32,
    pub error: Option<String>,
    /// A failure not retried until the site's content changes (the edge answered 413 or
    /// 422, or the snapshot is over the `snapshot_bytes` quota).
    pub permanent: bool,
    /// Per experiment and unit: arms with counts and propensities.
    #[schema(value_type = Vec<Object>)]
    pub weights: serde_json::Value,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub published_at: OffsetDateTime,
}

fn audit_view(row: &SiteRow) -> serde_json::Value {
    serde_json::json!({
        "name": row.name,
        "domains": row.domains,
        "site_key": row.site_key,
        "exclusions": row.exclusions,
        "version": row.version,
    })
}

fn parse_domains(raw: &[String]) -> ApiResult<Vec<String>> {
    SiteDomain::parse_list(raw)
        .map(|ds| ds.into_iter().map(|d| d.as_str().to_owned()).collect())
        .map_err(|errs| ApiError::Validation(errs.into_iter().map(FieldError::from).collect()))
}

/// Loads a site of the caller's organisation (404 for other organisations' ids).
pub async fn site_of(
    conn: &mut sqlx::PgConnection,
    actor: &Actor,
    id: Uuid,
    for_update: bool,
) -> ApiResult<SiteRow> {
    let row = if for_update {
        db::sites::get_for_update(conn, actor.org_id, id).await?
    } else {
        db::sites::get(conn, actor.org_id, id).await?
    };
    row.ok_or(ApiError::NotFound("site"))
}

/// A site's view with its domain rows, read on `conn`.
async fn view(conn: &mut sqlx::PgConnection, row: SiteRow) -> ApiResult<SiteView> {
    let domains = db::domains::for_site(conn, row.id).await?;
    Ok(SiteView::new(row, &domains))
}

fn with_etag<T: Serialize>(status: StatusCode, version: i32, body: T) -> Response {
    (status, etag(version), axum::Json(body)).into_response()
}

/// Create a site (admin). The answer carries the server secret, shown only this once.
#[utoipa::path(post, path = "/sites", tag = "sites", request_body = CreateSite,
    responses((status = 201, body = SiteWithSecret), (status = 422, body = crate::error::Problem)),
    security(("bearer" = [])))]
async fn create_site(
    State(state): State<AppState>,
    RequireRole { actor, .. }: RequireRole<Admin>,
    Json(body): Json<CreateSite>,
) -> ApiResult<Response> {
    let name = SiteName::parse(&body.name);
    let domains = parse_domains(&body.domains);
    let (name, domains) = match (name, domains) {
        (Ok(n), Ok(d)) => (n, d),
        (n, d) => {
            let mut errors: Vec<FieldError> = Vec::new();
            if let Err(e) = n {
                errors.push(e.into());
            }
            if let Err(ApiError::Validation(es)) = d {
                errors.extend(es);
            }
            return Err(ApiError::Validation(errors));
        }
    };
    let site_key = auth::new_token(SITE_KEY_PREFIX);
    let (salt, secret, secret_hash) = new_server_secret(&state, &site_key);
    let mut tx = state.pool.begin().await?;
    crate::quota::check_sites(&mut tx, &state.config.limits, actor.org_id).await?;
    let row = db::sites::insert(
        &mut tx,
        db::sites::NewSite {
            id: Uuid::new_v4(),
            org_id: actor.org_id,
            name: name.as_str(),
            domains: &domains,
            site_key: &site_key,
            server_secret_hash: &secret_hash,
            server_secret_salt: &salt,
        },
    )
    .await?;
    sync_site_domains(&mut tx, row.id, &domains).await?;
    let change = Change::new("site.create", "site", row.id).after(audit_view(&row));
    audit::record_by(&mut tx, &actor, change).await?;
    let site = view(&mut tx, row).await?;
    tx.commit().await?;
    let version = site.version;
    Ok(NoStore(with_etag(
        StatusCode::CREATED,
        version,
        SiteWithSecret {
            site,
            server_secret: secret,
        },
    ))
    .into_response())
}

/// The organisation's sites.
#[utoipa::path(get, path = "/sites", tag = "sites",
    responses((status = 200, body = Vec<SiteView>)), security(("bearer" = [])))]
async fn list_sites(State(state): State<AppState>, actor: Actor) -> ApiResult<Response> {
    let mut conn = state.pool.acquire().await?;
    let rows = db::sites::list(&mut conn, actor.org_id).await?;
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let domains = db::domains::for_sites(&mut conn, &ids).await?;
    let views: Vec<SiteView> = rows
        .into_iter()
        .map(|r| SiteView::new(r, &domains))
        .collect();
    Ok(axum::Json(views).into_response())
}

#[utoipa::path(get, path = "/sites/{id}", tag = "sites",
    params(("id" = Uuid, Path, description = "Site id")),
    responses((status = 200, body = SiteView), (status = 404, body = crate::error::Problem)),
    security(("bearer" = [])))]
async fn get_site(
    State(state): State<AppState>,
    actor: Actor,
    PathId(id): PathId,
) -> ApiResult<Response> {
    let mut conn = state.pool.acquire().await?;
    let row = site_of(&mut conn, &actor, id, false).await?;
    Ok(with_etag(
        StatusCode::OK,
        row.version,
        view(&mut conn, row).await?,
    ))
}

/// Change the name and/or the domains (admin; `If-Match` required).
#[utoipa::path(patch, path = "/sites/{id}", tag = "sites", request_body = UpdateSite,
    params(("id" = Uuid, Path, description = "Site id"), ("If-Match" = String, Header, description = "The site's ETag")),
    responses((status = 200, body = SiteView), (status = 412, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem), (status = 428, body = crate::error::Problem)),
    security(("bearer" = [])))]
async fn update_site(
    State(state): State<AppState>,
    RequireRole { actor, .. }: RequireRole<Admin>,
    PathId(id): PathId,
    if_match: IfMatch,
    Json(body): Json<UpdateSite>,
) -> ApiResult<Response> {
    let name = body.name.as_deref().map(SiteName::parse).transpose()?;
    let domains = body.domains.as_deref().map(parse_domains).transpose()?;
    let mut tx = state.pool.begin().await?;
    let before = site_of(&mut tx, &actor, id, true).await?;
    if_match.check(before.version)?;
    let row = db::sites::update(
        &mut tx,
        id,
        before.version,
        name.as_ref().map_or(&before.name, |n| n.as_str()),
        domains.as_deref().unwrap_or(&before.domains),
    )
    .await?
    .ok_or(ApiError::PreconditionFailed)?;
    if domains.is_some() {
        sync_site_domains(&mut tx, id, &row.domains).await?;
    }
    let change = Change::new("site.update", "site", id)
        .before(audit_view(&before))
        .after(audit_view(&row));
    audit::record_by(&mut tx, &actor, change).await?;
    let site = view(&mut tx, row).await?;
    tx.commit().await?;
    Ok(with_etag(StatusCode::OK, site.version, site))
}

/// Delete a site with its experiments (admin; `If-Match` required).
#[utoipa::path(delete, path = "/sites/{id}", tag = "sites",
    params(("id" = Uuid, Path, description = "Site id"), ("If-Match" = String, Header, description = "The site's ETag")),
    responses((status = 204), (status = 412, body = crate::error::Problem), (status = 428, body = crate::error::Problem)),
    security(("bearer" = [])))]
async fn delete_site(
    State(state): State<AppState>,
    RequireRole { actor, .. }: RequireRole<Admin>,
    PathId(id): PathId,
    if_match: IfMatch,
) -> ApiResult<StatusCode> {
    let mut tx = state.pool.begin().await?;
    let before = site_of(&mut tx, &actor, id, true).await?;
    if_match.check(before.version)?;
    // Before the delete cascades the site's publications: the tombstone's version must
    // be above them.
    unpublish_site(&mut tx, &before).await?;
    if !db::sites::delete(&mut tx, id, before.version).await? {
        return Err(ApiError::PreconditionFailed);
    }
    let change = Change::new("site.delete", "site", id).before(audit_view(&before));
    audit::record_by(&mut tx, &actor, change).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Replace the server secret (admin): a new salt, hence a new derived secret. The new
/// secret is shown in this answer only; the edge accepts it, and stops accepting the old
/// one, once the next snapshot (which carries the salt) is published — within one
/// publish interval.
#[utoipa::path(post, path = "/sites/{id}/rotate-secret", tag = "sites",
    params(("id" = Uuid, Path, description = "Site id")),
    responses((status = 200, body = SiteWithSecret)), security(("bearer" = [])))]
async fn rotate_secret(
    State(state): State<AppState>,
    RequireRole { actor, .. }: RequireRole<Admin>,
    PathId(id): PathId,
) -> ApiResult<Response> {
    let mut tx = state.pool.begin().await?;
    let before = site_of(&mut tx, &actor, id, true).await?;
    let (salt, secret, secret_hash) = new_server_secret(&state, &before.site_key);
    let row = db::sites::set_secret(&mut tx, id, &secret_hash, &salt)
        .await?
        .ok_or(ApiError::NotFound("site"))?;
    // Never the secret itself; the version shows when it happened.
    let change = Change::new("site.rotate_secret", "site", id)
        .after(serde_json::json!({ "version": row.version }));
    audit::record_by(&mut tx, &actor, change).await?;
    let site = view(&mut tx, row).await?;
    tx.commit().await?;
    let version = site.version;
    Ok(NoStore(with_etag(
        StatusCode::OK,
        version,
        SiteWithSecret {
            site,
            server_secret: secret,
        },
    ))
    .into_response())
}

/// The site's revenue cap: the largest event value an unsigned (browser) call may report.
#[utoipa::path(get, path = "/sites/{id}/revenue-cap", tag = "sites",
    params(("id" = Uuid, Path, description = "Site id")),
    responses((status = 200, body = RevenueCapBody), (status = 404, body = crate::error::Problem)),
    security(("bearer" = [])))]
async fn get_revenue_cap(
    State(state): State<AppState>,
    actor: Actor,
    PathId(id): PathId,
) -> ApiResult<Response> {
    let mut conn = state.pool.acquire().await?;
    let row = site_of(&mut conn, &actor, id, false).await?;
    Ok(with_etag(
        StatusCode::OK,
        row.version,
        RevenueCapBody {
            revenue_cap: row.revenue_cap,
        },
    ))
}

/// Set the revenue cap (admin; `If-Match` required). Published with the next snapshot;
/// signed server calls may exceed it.
#[utoipa::path(put, path = "/sites/{id}/revenue-cap", tag = "sites", request_body = RevenueCapBody,
    params(("id" = Uuid, Path, description = "Site id"), ("If-Match" = String, Header, description = "The site's ETag")),
    responses((status = 200, body = RevenueCapBody), (status = 404, body = crate::error::Problem),
        (status = 412, body = crate::error::Problem), (status = 422, body = crate::error::Problem),
        (status = 428, body = crate::error::Problem)),
    security(("bearer" = [])))]
async fn put_revenue_cap(
    State(state): State<AppState>,
    RequireRole { actor, .. }: RequireRole<Admin>,
    PathId(id): PathId,
    if_match: IfMatch,
    Json(body): Json<RevenueCapBody>,
) -> ApiResult<Response> {
    let cap = RevenueCap::parse(body.revenue_cap)?;
    let mut tx = state.pool.begin().await?;
    let before = site_of(&mut tx, &actor, id, true).await?;
    if_match.check(before.version)?;
    let row = db::sites::set_revenue_cap(&mut tx, id, before.version, cap.get())
        .await?
        .ok_or(ApiError::PreconditionFailed)?;
    let change = Change::new("site.revenue_cap.update", "site", id)
        .before(serde_json::json!({ "revenue_cap": before.revenue_cap }))
        .after(serde_json::json!({ "revenue_cap": row.revenue_cap }));
    audit::record_by(&mut tx, &actor, change).await?;
    tx.commit().await?;
    Ok(with_etag(
        StatusCode::OK,
        row.version,
        RevenueCapBody {
            revenue_cap: row.revenue_cap,
        },
    ))
}

/// The snippet to paste into the site's pages. Needs `SAMPLIT_EDGE_URL` (409
/// `edge_not_configured` otherwise: a snippet pointing nowhere would fail silently).
#[utoipa::path(get, path = "/sites/{id}/snippet", tag = "sites",
    params(("id" = Uuid, Path, description = "Site id")),
    responses((status = 200, body = Snippet), (status = 409, body = crate::error::Problem)),
    security(("bearer" = [])))]
async fn get_snippet(
    State(state): State<AppState>,
    actor: Actor,
    PathId(id): PathId,
) -> ApiResult<Response> {
    let mut conn = state.pool.acquire().await?;
    let row = site_of(&mut conn, &actor, id, false).await?;
    let edge = state.config.edge_url.as_deref().ok_or_else(|| {
        ApiError::conflict(
            "edge_not_configured",
            "SAMPLIT_EDGE_URL is not set on the control plane, so there is no snippet URL yet",
        )
    })?;
    Ok(axum::Json(Snippet {
        html: snippet_html(edge, &row.site_key),
        site_key: row.site_key,
    })
    .into_response())
}

/// The snippet HTML. The site key is `pk_` + hex and the edge URL comes from our own
/// configuration, but both are attribute-escaped anyway.
pub fn snippet_html(edge_url: &str, site_key: &str) -> String {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('"', "&quot;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    format!(
        "<!-- Samplit: paste as early as possible in <head>, without async or defer. Anti-flicker: \
         the script hides only the elements your running experiments change, for at most 1 s, \
         never the whole page; it is small and cached, and loading it before the first paint is \
         what keeps even a first visit from showing the original. -->\n\
         <script src=\"{}/v1/samplit.js?site={}\" data-site-key=\"{}\"></script>",
        esc(edge_url.trim_end_matches('/')),
        esc(site_key),
        esc(site_key)
    )
}

/// Replace the site's exclusion rules (admin; `If-Match` required). The body is a JSON
/// array of engine exclusion rules.
#[utoipa::path(put, path = "/sites/{id}/exclusions", tag = "sites",
    request_body(content = Vec<Object>, description = "Engine ExclusionRule objects"),
    params(("id" = Uuid, Path, description = "Site id"), ("If-Match" = String, Header, description = "The site's ETag")),
    responses((status = 200, body = SiteView), (status = 422, body = crate::error::Problem)),
    security(("bearer" = [])))]
async fn put_exclusions(
    State(state): State<AppState>,
    RequireRole { actor, .. }: RequireRole<Admin>,
    PathId(id): PathId,
    if_match: IfMatch,
    Json(body): Json<Vec<serde_json::Value>>,
) -> ApiResult<Response> {
    if body.len() > MAX_EXCLUSIONS {
        return Err(ApiError::validation(
            "exclusions",
            format!("at most {MAX_EXCLUSIONS} rules"),
        ));
    }
    let mut errors = Vec::new();
    let mut rules = Vec::with_capacity(body.len());
    for (i, raw) in body.into_iter().enumerate() {
        match serde_json::from_value::<ExclusionRule>(raw) {
            Ok(rule) => rules.push(rule),
            Err(e) => errors.push(FieldError {
                field: format!("exclusions[{i}]"),
                message: format!("invalid exclusion rule: {e}"),
            }),
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    // Stored in the engine's own serialisation (normalised by the round trip).
    let stored = serde_json::to_value(&rules).map_err(|e| ApiError::Internal(e.into()))?;
    let mut tx = state.pool.begin().await?;
    let before = site_of(&mut tx, &actor, id, true).await?;
    if_match.check(before.version)?;
    let row = db::sites::set_exclusions(&mut tx, id, before.version, &stored)
        .await?
        .ok_or(ApiError::PreconditionFailed)?;
    let change = Change::new("site.exclusions.update", "site", id)
        .before(before.exclusions.clone())
        .after(row.exclusions.clone());
    audit::record_by(&mut tx, &actor, change).await?;
    let site = view(&mut tx, row).await?;
    tx.commit().await?;
    Ok(with_etag(StatusCode::OK, site.version, site))
}

/// The site's snapshot publications, latest first (at most 100).
#[utoipa::path(get, path = "/sites/{id}/publications", tag = "sites",
    params(("id" = Uuid, Path, description = "Site id")),
    responses((status = 200, body = Vec<PublicationView>)), security(("bearer" = [])))]
async fn list_publications(
    State(state): State<AppState>,
    actor: Actor,
    PathId(id): PathId,
) -> ApiResult<Response> {
    let mut conn = state.pool.acquire().await?;
    site_of(&mut conn, &actor, id, false).await?;
    let rows = db::publications::list(&mut conn, id, 100).await?;
    let views: Vec<PublicationView> = rows
        .into_iter()
        .map(|r| PublicationView {
            version: r.version,
            hash: r.hash,
            status: r.status,
            attempts: r.attempts,
            error: r.error,
            permanent: r.permanent,
            weights: r.weights,
            published_at: r.published_at,
        })
        .collect();
    Ok(axum::Json(views).into_response())
}
