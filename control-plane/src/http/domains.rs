//! Domain ownership: `POST /sites/{id}/domains/{host}/verify`, and the pieces the site
//! handlers use to keep `site_domains`, routes and tombstones in step with a site.
//!
//! A host a site lists is *pending* until the site proves it controls it
//! ([`crate::verify`]): only verified hosts reach the edge (snapshot `allowed_origins`,
//! edge rendering through signed routes, editor tokens). A host is verified by at most
//! one site across all organisations: proving a host another site holds answers 409
//! unless the request asks for a `transfer`, in which case the new proof moves it (the
//! old site's row goes back to pending, its next snapshot drops the host, and a newer
//! signed route names the new owner). Admins verify (the role that manages sites).

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::sites::site_of;
use crate::audit::{self, By, Change};
use crate::auth::roles::Admin;
use crate::auth::{self, RequireRole};
use crate::db;
use crate::db::domains::DomainRow;
use crate::domain::verification::{self, DomainStatus, Method};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::extract::Json;
use crate::state::AppState;
use crate::verify::Verifier;

/// One of a site's hosts with its verification state and what to publish to prove it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DomainView {
    pub host: String,
    pub status: DomainStatus,
    /// How it was verified (`dns_txt`, `http_file`), when verified.
    pub method: Option<Method>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub verified_at: Option<OffsetDateTime>,
    /// The TXT record to create for the DNS method: name and value.
    pub txt_name: String,
    pub txt_value: String,
    /// Where the file method looks (the file's content is `txt_value`).
    pub file_url: String,
}

impl From<DomainRow> for DomainView {
    fn from(r: DomainRow) -> Self {
        Self {
            txt_name: verification::txt_name(&r.host),
            txt_value: verification::proof_value(&r.token),
            file_url: format!("https://{}{}", r.host, verification::WELL_KNOWN_PATH),
            host: r.host,
            status: r.status,
            method: r.method,
            verified_at: r.verified_at,
        }
    }
}

/// A new verification token (256 bits, hex).
pub fn new_token() -> String {
    auth::new_token("")
}

/// After a site's domain list changed: rows in line with `hosts`, and a tombstone route
/// for each verified host it dropped.
pub async fn sync_site_domains(
    conn: &mut sqlx::PgConnection,
    site_id: Uuid,
    hosts: &[String],
) -> ApiResult<()> {
    let removed = db::domains::sync(conn, site_id, hosts, new_token).await?;
    for host in removed {
        db::domains::set_route(conn, &host, None).await?;
    }
    Ok(())
}

/// Before a site is deleted: tombstone routes for its verified hosts and a tombstone for
/// the site itself (pushed by the publisher until the edge takes them).
pub async fn unpublish_site(
    conn: &mut sqlx::PgConnection,
    site: &db::sites::SiteRow,
) -> ApiResult<()> {
    for host in db::domains::verified_hosts(conn, site.id).await? {
        db::domains::set_route(conn, &host, None).await?;
    }
    db::domains::insert_tombstone(conn, site.id, site.org_id, &site.site_key).await?;
    Ok(())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyInput {
    /// `dns_txt` (default) or `http_file`.
    #[serde(default)]
    pub method: Option<Method>,
    /// Take the host over from the site that holds it verified (the proof must succeed).
    #[serde(default)]
    pub transfer: bool,
}

/// Prove ownership of one of the site's hosts (admin).
///
/// 422 with what was looked for and what was found when the proof fails; 409
/// `domain_taken` when another site holds the host verified (unless `transfer`).
#[utoipa::path(post, path = "/sites/{id}/domains/{host}/verify", tag = "sites",
    request_body = VerifyInput,
    params(("id" = Uuid, Path, description = "Site id"), ("host" = String, Path, description = "One of the site's domains")),
    responses((status = 200, body = DomainView), (status = 404, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn verify_domain(
    State(state): State<AppState>,
    RequireRole { actor, .. }: RequireRole<Admin>,
    Path((id, host)): Path<(String, String)>,
    Json(input): Json<VerifyInput>,
) -> ApiResult<Response> {
    let id: Uuid = id.parse().map_err(|_| ApiError::NotFound("site"))?;
    let host = host.to_ascii_lowercase();
    let method = input.method.unwrap_or(Method::DnsTxt);
    let site = {
        let mut conn = state.pool.acquire().await?;
        site_of(&mut conn, &actor, id, false).await?
    };
    let verified = prove_host(
        &state,
        &site,
        &host,
        method,
        input.transfer,
        By::Actor(&actor),
    )
    .await?;
    Ok(axum::Json(DomainView::from(verified)).into_response())
}

/// Proves `host` of `site` with `method` and records it verified and routed (audited as
/// `by`); a host another site holds verified is 409 `domain_taken` unless `transfer`.
/// The proof's network I/O runs outside any transaction.
pub async fn prove_host(
    state: &AppState,
    site: &db::sites::SiteRow,
    host: &str,
    method: Method,
    transfer: bool,
    by: By<'_>,
) -> ApiResult<DomainRow> {
    let id = site.id;
    let row = {
        let mut conn = state.pool.acquire().await?;
        let row = db::domains::for_site(&mut conn, id)
            .await?
            .into_iter()
            .find(|d| d.host == host)
            .ok_or(ApiError::NotFound("domain"))?;
        if !transfer
            && let Some((owner, _)) = db::domains::verified_owner(&mut conn, host, id).await?
        {
            tracing::info!(%host, site_id = %id, owner_site = %owner, "domain held by another site");
            return Err(taken(host));
        }
        row
    };
    let verifier = Verifier::from_config(&state.config).map_err(ApiError::Internal)?;
    verifier
        .prove(host, &row.token, method)
        .await
        .map_err(|f| {
            ApiError::Validation(vec![FieldError {
                field: f.field.to_owned(),
                message: f.message,
            }])
        })?;

    let mut tx = state.pool.begin().await?;
    // The row may have gone (domain removed) or its token changed meanwhile.
    let current = db::domains::get_for_update(&mut tx, id, host)
        .await?
        .filter(|r| r.token == row.token)
        .ok_or(ApiError::NotFound("domain"))?;
    let previous = db::domains::verified_owner(&mut tx, host, id).await?;
    if let Some((old_site, old_org)) = previous {
        if !transfer {
            return Err(taken(host));
        }
        db::domains::revoke(&mut tx, old_site, host).await?;
        let change = Change::new("site.domain.revoked", "site", old_site)
            .before(serde_json::json!({ "host": host, "status": DomainStatus::Verified }))
            .after(
                serde_json::json!({ "host": host, "status": DomainStatus::Pending,
                "reason": "another organisation proved ownership" }),
            );
        audit::record(&mut tx, old_org, By::System("domain-transfer"), change).await?;
    }
    let verified = if current.status == DomainStatus::Verified {
        current
    } else {
        let done = db::domains::mark_verified(&mut tx, id, host, method)
            .await
            .map_err(ApiError::conflict_on_unique(
                "domain_taken",
                "another site verified this domain meanwhile",
            ))?;
        db::domains::set_route(&mut tx, host, Some(&site.site_key)).await?;
        let change = Change::new("site.domain.verify", "site", id).after(serde_json::json!({
            "host": host, "method": method.as_str(), "transfer": previous.is_some(),
        }));
        audit::record(&mut tx, site.org_id, by, change).await?;
        done
    };
    tx.commit().await?;
    Ok(verified)
}

fn taken(host: &str) -> ApiError {
    ApiError::conflict(
        "domain_taken",
        format!(
            "{host} is verified by another site; prove it again with \"transfer\": true to move it"
        ),
    )
}
