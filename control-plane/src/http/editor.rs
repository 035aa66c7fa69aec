//! The visual editor's control-plane side: editor sessions and saving a variant's
//! changes.
//!
//! - `POST /sites/{id}/editor-sessions` (editor+): mints a short-lived editor token
//!   ([`samplit_engine::editor_token`]) for the caller and the site — the site's verified domains
//!   are the only hosts the edge proxy will fetch, the admin origin (the request's
//!   `Origin` when it is one of `SAMPLIT_CORS_ORIGINS`, else the first of them) is the
//!   only origin the editor script talks to. With `preview_variant_id` the token carries
//!   that variant's changes and the edge applies them to every proxied page (preview
//!   through the same rewriter as edge rendering). The key is derived from
//!   `SAMPLIT_SNAPSHOT_SECRET`, which the edge already holds, so the edge verifies the
//!   token without calling back (503 when the secret or `SAMPLIT_EDGE_URL` is not
//!   configured). Minting is audited (`editor.session`).
//! - `PUT /experiments/{id}/variants/{variant_id}/changes` (editor+, `If-Match` with the
//!   experiment's ETag): replaces a variant's changes, only while the experiment is a
//!   draft (409 `not_editable` otherwise). Each change is validated by the engine
//!   (`Change` deserialises through its validation) and its HTML sanitised with ammonia
//!   ([`sanitise_change`]), then checked against the site's domains (form actions and
//!   redirects stay on the site); errors name `changes[i]`. Custom code
//!   (`custom_css`/`custom_js`) needs an owner or admin (403 otherwise). Bumps the
//!   experiment's version and is audited (`variant.changes.update`, plus
//!   `experiment.custom_code` when custom code was added, changed or removed) in the same
//!   transaction.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use samplit_engine::changes::Change;
use samplit_engine::editor_token::{self, EditorClaims, Preview, TOKEN_VERSION, TokenError};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::etag::{IfMatch, etag};
use super::experiments::dto::ExperimentView;
use super::experiments::{audit_custom_code, require_custom_code_role};
use super::sites::site_of;
use crate::audit::{self, Change as AuditChange};
use crate::auth::RequireRole;
use crate::auth::roles::Editor;
use crate::db;
use crate::domain::experiment::{MAX_CHANGES, check_changes_for_site, sanitise_change};
use crate::domain::lifecycle::Status;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::extract::{Json, PathId};
use crate::state::AppState;

/// How long an editor token lives.
pub const SESSION_TTL: time::Duration = time::Duration::minutes(30);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_session))
        .routes(routes!(put_changes))
}

/// `POST /sites/{id}/editor-sessions` body.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionInput {
    /// The page to open first (must be on one of the site's domains; default: the first
    /// domain's home page).
    #[serde(default)]
    pub url: Option<String>,
    /// Preview this variant (of an experiment of this site) on every proxied page.
    #[serde(default)]
    pub preview_variant_id: Option<Uuid>,
}

/// An editor session.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Session {
    /// The signed editor token (opaque to clients).
    pub token: String,
    /// The edge URL to frame: `{edge}/v1/editor?url=…&token=…`.
    pub editor_url: String,
    /// When the token expires.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
    /// The origin the editor script will talk to.
    pub admin_origin: String,
}

/// The admin origin: the request's `Origin` if configured, else the first configured.
fn admin_origin(headers: &HeaderMap, configured: &[String]) -> Option<String> {
    let requested = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .filter(|o| configured.iter().any(|c| c == o));
    requested
        .map(str::to_owned)
        .or_else(|| configured.first().cloned())
        .filter(|o| editor_token::valid_origin(o))
}

/// The page's host must be one of the site's verified domains (the edge checks again).
fn start_url(input: Option<&str>, domains: &[String]) -> ApiResult<String> {
    let Some(raw) = input else {
        return Ok(format!("https://{}/", domains[0]));
    };
    let url = url::Url::parse(raw)
        .map_err(|_| ApiError::validation("url", "must be an absolute https URL"))?;
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    if url.scheme() != "https" || !domains.contains(&host) {
        return Err(ApiError::validation(
            "url",
            "must be an https URL on one of the site's domains",
        ));
    }
    Ok(url.to_string())
}

/// Open the visual editor on a site (editor): a short-lived token for the edge proxy.
#[utoipa::path(post, path = "/sites/{id}/editor-sessions", tag = "editor",
    request_body = SessionInput,
    params(("id" = Uuid, Path, description = "Site id")),
    responses((status = 201, body = Session), (status = 404, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem), (status = 503, body = crate::error::Problem)),
    security(("bearer" = [])))]
async fn create_session(
    State(state): State<AppState>,
    RequireRole { actor, .. }: RequireRole<Editor>,
    headers: HeaderMap,
    PathId(site_id): PathId,
    Json(input): Json<SessionInput>,
) -> ApiResult<Response> {
    let mut tx = state.pool.begin().await?;
    let site = site_of(&mut tx, &actor, site_id, false).await?;
    // Only hosts the site proved it owns: a pending domain may be anyone's.
    let verified = db::domains::verified_hosts(&mut tx, site.id).await?;
    if verified.is_empty() {
        return Err(ApiError::validation(
            "domains",
            "the site has no verified domains to open in the editor (verify one first: \
             POST /api/v1/sites/{id}/domains/{host}/verify)",
        ));
    }
    let url = start_url(input.url.as_deref(), &verified)?;

    let preview = match input.preview_variant_id {
        None => None,
        Some(variant_id) => {
            let found = db::editor::variant_of_site(&mut tx, actor.org_id, site.id, variant_id)
                .await?
                .ok_or(ApiError::NotFound("variant"))?;
            let changes: Vec<Change> = serde_json::from_value(found.changes).map_err(|e| {
                ApiError::Internal(anyhow::anyhow!("stored changes of {variant_id}: {e}"))
            })?;
            Some(Preview {
                experiment_id: found.experiment_id.to_string(),
                variant_id: variant_id.to_string(),
                changes,
            })
        }
    };

    let (Some(secret), Some(edge_url)) = (&state.config.snapshot_secret, &state.config.edge_url)
    else {
        tracing::warn!("editor sessions need SAMPLIT_SNAPSHOT_SECRET and SAMPLIT_EDGE_URL");
        return Err(ApiError::Unavailable);
    };
    let Some(admin_origin) = admin_origin(&headers, &state.config.cors_origins) else {
        tracing::warn!("editor sessions need an admin origin in SAMPLIT_CORS_ORIGINS");
        return Err(ApiError::Unavailable);
    };
    let user_id = match actor.user_id() {
        Some(id) => id.to_string(),
        None => format!("api-key:{}", actor.label),
    };
    let expires_at = OffsetDateTime::now_utc() + SESSION_TTL;
    let claims = EditorClaims {
        v: TOKEN_VERSION,
        site_key: site.site_key.clone(),
        user_id,
        allowed_domains: verified,
        admin_origin: admin_origin.clone(),
        exp_ms: i64::try_from(expires_at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX),
        preview,
    };
    let token = editor_token::sign(&claims, secret.expose()).map_err(|e| match e {
        TokenError::TooLong(_) => ApiError::validation("preview_variant_id", e.to_string()),
        other => ApiError::Internal(anyhow::anyhow!("minting an editor token: {other}")),
    })?;
    let editor_url = format!(
        "{}/v1/editor?{}",
        edge_url.trim_end_matches('/'),
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("url", &url)
            .append_pair("token", &token)
            .finish()
    );
    let change = AuditChange::new("editor.session", "site", site.id).after(serde_json::json!({
        "url": url,
        "preview_variant_id": input.preview_variant_id,
        "admin_origin": admin_origin,
        "expires_at": expires_at.unix_timestamp(),
    }));
    audit::record_by(&mut tx, &actor, change).await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(Session {
            token,
            editor_url,
            expires_at,
            admin_origin,
        }),
    )
        .into_response())
}

/// `PUT …/changes` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangesInput {
    /// The variant's changes, in the engine's format
    /// (`{"selector": "#hero h1", "action": {"type": "set_text", "text": "Hi"}}`).
    #[schema(value_type = Vec<Object>)]
    pub changes: Vec<serde_json::Value>,
}

/// Validates and sanitises each change; errors name `changes[i]`.
pub fn parse_changes(raw: &[serde_json::Value]) -> Result<Vec<Change>, Vec<FieldError>> {
    if raw.len() > MAX_CHANGES {
        return Err(vec![FieldError {
            field: "changes".into(),
            message: format!("at most {MAX_CHANGES} changes"),
        }]);
    }
    let mut errors = Vec::new();
    let mut out = Vec::with_capacity(raw.len());
    for (i, value) in raw.iter().enumerate() {
        let field = format!("changes[{i}]");
        match serde_json::from_value::<Change>(value.clone()) {
            Ok(c) => match sanitise_change(c) {
                Ok(c) => out.push(c),
                Err(e) => errors.push(FieldError {
                    field,
                    message: e.to_string(),
                }),
            },
            Err(e) => errors.push(FieldError {
                field,
                message: format!("invalid change: {e}"),
            }),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Replace a variant's changes (editor; `If-Match` with the experiment's ETag; drafts only).
#[utoipa::path(put, path = "/experiments/{id}/variants/{variant_id}/changes", tag = "editor",
    request_body = ChangesInput,
    params(("id" = Uuid, Path, description = "Experiment id"),
        ("variant_id" = Uuid, Path, description = "Variant id"),
        ("If-Match" = String, Header, description = "The experiment's ETag")),
    responses((status = 200, body = ExperimentView), (status = 404, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem), (status = 412, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem), (status = 428, body = crate::error::Problem)),
    security(("bearer" = [])))]
async fn put_changes(
    State(state): State<AppState>,
    RequireRole { actor, .. }: RequireRole<Editor>,
    Path((id, variant_id)): Path<(String, String)>,
    if_match: IfMatch,
    Json(input): Json<ChangesInput>,
) -> ApiResult<Response> {
    // Malformed ids are another resource's ids: 404, as for `PathId`.
    let id: Uuid = id.parse().map_err(|_| ApiError::NotFound("experiment"))?;
    let variant_id: Uuid = variant_id
        .parse()
        .map_err(|_| ApiError::NotFound("variant"))?;
    let mut tx = state.pool.begin().await?;
    let row = db::experiments::get_row(&mut tx, actor.org_id, id, true)
        .await?
        .ok_or(ApiError::NotFound("experiment"))?;
    let before = db::experiments::load_parts(&mut tx, row).await?;
    let Some(variant) = before.variants.iter().find(|v| v.id == variant_id) else {
        return Err(ApiError::NotFound("variant"));
    };
    if_match.check(before.experiment.version)?;
    if before.experiment.status != Status::Draft {
        return Err(ApiError::conflict(
            "not_editable",
            format!(
                "a {} experiment's changes cannot be edited; only drafts",
                before.experiment.status.as_str()
            ),
        ));
    }
    let changes = parse_changes(&input.changes).map_err(ApiError::Validation)?;
    // The same save-time rules as the experiments API: on the site's domains, and custom
    // code from owners and admins only. Custom code elsewhere in the experiment is not
    // this request's doing, so only this variant's changes count.
    let site = site_of(&mut tx, &actor, before.experiment.site_id, false).await?;
    let off_site = check_changes_for_site(&changes, &site.domains, "changes");
    if !off_site.is_empty() {
        return Err(ApiError::Validation(
            off_site.into_iter().map(FieldError::from).collect(),
        ));
    }
    require_custom_code_role(&actor, changes.iter().any(Change::is_custom_code))?;
    let stored = serde_json::to_value(&changes)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("serialising changes: {e}")))?;
    let before_changes = variant.changes.clone();
    if !db::editor::set_variant_changes(&mut tx, id, variant_id, before.experiment.version, &stored)
        .await?
    {
        return Err(ApiError::PreconditionFailed);
    }
    let row = db::experiments::get_row(&mut tx, actor.org_id, id, false)
        .await?
        .ok_or(ApiError::NotFound("experiment"))?;
    let after = db::experiments::load_parts(&mut tx, row).await?;
    let change = AuditChange::new("variant.changes.update", "variant", variant_id)
        .before(serde_json::json!({ "experiment_id": id, "changes": before_changes }))
        .after(serde_json::json!({ "experiment_id": id, "changes": stored }));
    audit::record_by(&mut tx, &actor, change).await?;
    audit_custom_code(&mut tx, &actor, id, Some(&before), Some(&after)).await?;
    tx.commit().await?;
    Ok((
        StatusCode::OK,
        etag(after.experiment.version),
        axum::Json(ExperimentView::from(&after)),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_admin_origin_is_the_requests_only_when_configured() {
        let configured = vec![
            "https://admin.example".to_owned(),
            "https://app.example".to_owned(),
        ];
        let mut h = HeaderMap::new();
        assert_eq!(
            admin_origin(&h, &configured).as_deref(),
            Some("https://admin.example")
        );
        h.insert(header::ORIGIN, "https://app.example".parse().unwrap());
        assert_eq!(
            admin_origin(&h, &configured).as_deref(),
            Some("https://app.example")
        );
        h.insert(header::ORIGIN, "https://evil.example".parse().unwrap());
        assert_eq!(
            admin_origin(&h, &configured).as_deref(),
            Some("https://admin.example")
        );
        assert_eq!(admin_origin(&h, &[]), None);
    }

    #[test]
    fn start_urls_must_be_https_on_a_site_domain() {
        let d = vec!["shop.example".to_owned()];
        assert_eq!(start_url(None, &d).unwrap(), "https://shop.example/");
        assert_eq!(
            start_url(Some("https://shop.example/p?x=1"), &d).unwrap(),
            "https://shop.example/p?x=1"
        );
        for bad in [
            "http://shop.example/",
            "https://evil.example/",
            "not a url",
            "file:///etc/passwd",
        ] {
            assert!(start_url(Some(bad), &d).is_err(), "{bad}");
        }
    }
}
