//! Experiments: `/sites/{id}/experiments` (create), `/experiments` (list, by site),
//! `/experiments/{id}` (read, edit, delete) and the lifecycle actions
//! `/experiments/{id}/{start,pause,resume,complete,archive}`.
//!
//! A definition is created whole, in one nested JSON body ([`dto::ExperimentInput`]),
//! validated into a [`ExperimentSpec`] (engine-typed changes, URL rules and allocator;
//! sanitised HTML; generated arms) and written in one transaction with its audit entry.
//! Drafts can be edited with PATCH (the merged definition is validated again and the
//! parts rewritten); running, paused and completed experiments accept only the fields
//! listed in `docs/experiments.md` (409 `not_editable` otherwise).
//!
//! Every response carries `ETag: "<version>"`; PATCH, DELETE and the lifecycle actions
//! need `If-Match` (428 without, 412 when stale). Editors and above manage experiments;
//! viewers read.
//!
//! Changes are checked twice on save: on their own while the body is parsed
//! ([`ExperimentSpec`]), then against the site's domains (form actions and redirects stay
//! on the site: [`ExperimentSpec::check_for_site`]); both give 422 naming
//! `elements[i].variants[j].changes[k]`. A definition that carries custom code
//! (`custom_css`/`custom_js`) may be saved only by owners and admins
//! (`require_custom_code_role`, 403 otherwise), and each save that adds, changes or
//! removes custom code gets its own audit entry, `experiment.custom_code`
//! (`audit_custom_code`).

mod convert;
pub mod dto;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use samplit_engine::multi::Mode;
use serde::Deserialize;
use sqlx::PgConnection;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use self::dto::{ExperimentInput, ExperimentPatch, ExperimentSummary, ExperimentView};
use super::etag::{IfMatch, etag};
use super::sites::site_of;
use crate::audit::{self, Change};
use crate::auth::roles::Editor;
use crate::auth::{Actor, RequireRole, Role};
use crate::db;
use crate::db::experiments::{ExperimentRow, Loaded};
use crate::domain::experiment::ExperimentSpec;
use crate::domain::lifecycle::{Action, Editable};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::extract::{Json, PathId, Query};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_experiment))
        .routes(routes!(list_experiments))
        .routes(routes!(
            get_experiment,
            update_experiment,
            delete_experiment
        ))
        .routes(routes!(start))
        .routes(routes!(pause))
        .routes(routes!(resume))
        .routes(routes!(complete))
        .routes(routes!(archive))
}

fn validated(input: &ExperimentInput) -> ApiResult<ExperimentSpec> {
    ExperimentSpec::try_from(input)
        .map_err(|errs| ApiError::Validation(errs.into_iter().map(FieldError::from).collect()))
}

/// The save-time checks that need the site and the caller: 422 for a change that would
/// leave the site's domains, then 403 for custom code saved below admin.
fn allowed_on_site(spec: &ExperimentSpec, domains: &[String], actor: &Actor) -> ApiResult<()> {
    spec.check_for_site(domains)
        .map_err(|errs| ApiError::Validation(errs.into_iter().map(FieldError::from).collect()))?;
    require_custom_code_role(actor, spec.has_custom_code())
}

/// 403 unless the caller may save custom code: owners and admins only (an editor's
/// structural changes cannot produce script; custom code is script by design).
pub(crate) fn require_custom_code_role(actor: &Actor, has_custom_code: bool) -> ApiResult<()> {
    if has_custom_code && actor.role < Role::Admin {
        return Err(ApiError::Forbidden(
            "only owners and admins may save an experiment with custom_js or custom_css changes",
        ));
    }
    Ok(())
}

/// The custom code an experiment holds, as the audit trail shows it: per variant and
/// change, its type, the code, its size and SHA-256.
pub(crate) fn custom_code_of(loaded: &Loaded) -> Vec<serde_json::Value> {
    use sha2::{Digest, Sha256};
    let mut out = Vec::new();
    for v in &loaded.variants {
        let Some(changes) = v.changes.as_array() else {
            continue;
        };
        for (k, c) in changes.iter().enumerate() {
            let kind = c.pointer("/action/type").and_then(|t| t.as_str());
            if let (Some(kind @ ("custom_css" | "custom_js")), Some(code)) =
                (kind, c.pointer("/action/code").and_then(|t| t.as_str()))
            {
                out.push(serde_json::json!({
                    "variant_id": v.id,
                    "variant": v.name,
                    "change": k,
                    "type": kind,
                    "bytes": code.len(),
                    "sha256": hex::encode(Sha256::digest(code.as_bytes())),
                    "code": code,
                }));
            }
        }
    }
    out
}

/// Records `experiment.custom_code` (in the caller's transaction) when the custom code
/// differs between `before` and `after` (added, changed or removed).
pub(crate) async fn audit_custom_code(
    conn: &mut PgConnection,
    actor: &Actor,
    experiment_id: Uuid,
    before: Option<&Loaded>,
    after: Option<&Loaded>,
) -> ApiResult<()> {
    let before = before.map(custom_code_of).unwrap_or_default();
    let after = after.map(custom_code_of).unwrap_or_default();
    if before == after {
        return Ok(());
    }
    let change = Change::new("experiment.custom_code", "experiment", experiment_id)
        .before(serde_json::json!({ "custom_code": before }))
        .after(serde_json::json!({ "custom_code": after }));
    audit::record_by(conn, actor, change).await?;
    Ok(())
}

fn respond(status: StatusCode, loaded: &Loaded) -> Response {
    (
        status,
        etag(loaded.experiment.version),
        axum::Json(ExperimentView::from(loaded)),
    )
        .into_response()
}

fn audit_json(loaded: &Loaded) -> serde_json::Value {
    serde_json::to_value(ExperimentView::from(loaded)).unwrap_or(serde_json::Value::Null)
}

async fn experiment_of(
    conn: &mut PgConnection,
    actor: &Actor,
    id: Uuid,
    for_update: bool,
) -> ApiResult<ExperimentRow> {
    db::experiments::get_row(conn, actor.org_id, id, for_update)
        .await?
        .ok_or(ApiError::NotFound("experiment"))
}

/// Create an experiment on a site (editor), in one request with its elements,
/// variants, goals and allocator. Arms are generated.
#[utoipa::path(post, path = "/sites/{id}/experiments", tag = "experiments",
    request_body = ExperimentInput,
    params(("id" = Uuid, Path, description = "Site id")),
    responses((status = 201, body = ExperimentView), (status = 404, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem)),
    security(("bearer" = [])))]
async fn create_experiment(
    State(state): State<AppState>,
    RequireRole { actor, .. }: RequireRole<Editor>,
    PathId(site_id): PathId,
    Json(input): Json<ExperimentInput>,
) -> ApiResult<Response> {
    let spec = validated(&input)?;
    let mut tx = state.pool.begin().await?;
    // Locked so a concurrent site deletion cannot slip between this check and the
    // insert (which would otherwise fail on the foreign key with a 500).
    let site = site_of(&mut tx, &actor, site_id, true).await?;
    allowed_on_site(&spec, &site.domains, &actor)?;
    let id = Uuid::new_v4();
    db::experiments::insert(&mut tx, id, actor.org_id, site_id, &spec).await?;
    crate::quota::check_snapshot_bytes(&mut tx, &state.config.limits, actor.org_id, site_id, id)
        .await?;
    let row = experiment_of(&mut tx, &actor, id, false).await?;
    let loaded = db::experiments::load_parts(&mut tx, row).await?;
    let change = Change::new("experiment.create", "experiment", id).after(audit_json(&loaded));
    audit::record_by(&mut tx, &actor, change).await?;
    audit_custom_code(&mut tx, &actor, id, None, Some(&loaded)).await?;
    tx.commit().await?;
    Ok(respond(StatusCode::CREATED, &loaded))
}

/// The query of `GET /experiments`, as sent: every value is text here, so that a bad one
/// is a 422 naming its parameter ([`ListQuery::parse`]) rather than a bare 400.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this site's experiments (404 for a site not in your organisation).
    pub site_id: Option<Uuid>,
    /// Only experiments in this status: `draft`, `running`, `paused`, `completed` or
    /// `archived` (empty: any).
    #[param(value_type = Option<crate::domain::Status>)]
    pub status: Option<String>,
    /// Only experiments whose name contains this text, ignoring case; `%`, `_` and `\`
    /// are matched literally. At most 200 characters (empty: any).
    pub q: Option<String>,
    /// Page size, 1 to 100 (default 100).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// Experiments to skip, 0 to 1000000 (default 0).
    #[param(value_type = Option<i64>, minimum = 0, maximum = 1000000)]
    pub offset: Option<String>,
}

/// Largest page of `GET /experiments`, and its default: a client that sends no
/// `limit` (every client before paging existed) still gets up to this many.
pub const MAX_LIST_LIMIT: i64 = 100;
/// Largest `offset` of `GET /experiments`.
pub const MAX_LIST_OFFSET: i64 = 1_000_000;
/// Longest `q` of `GET /experiments`, in characters.
pub const MAX_LIST_QUERY_CHARS: usize = 200;

/// A validated [`ListQuery`]: the filter, the page size and the offset.
#[derive(Debug)]
pub struct ListRequest {
    pub filter: db::experiments::ListFilter,
    pub limit: i64,
    pub offset: i64,
}

impl ListQuery {
    /// Checks every parameter and reports all the bad ones at once (422).
    pub fn parse(self) -> ApiResult<ListRequest> {
        let mut errors = Vec::new();
        let mut bad = |field: &str, message: String| {
            errors.push(FieldError {
                field: field.to_owned(),
                message,
            });
        };
        let status = match self.status.as_deref() {
            None | Some("") => None,
            Some(s) => {
                let parsed = crate::domain::Status::parse(s);
                if parsed.is_none() {
                    bad(
                        "status",
                        "status is one of draft, running, paused, completed, archived".to_owned(),
                    );
                }
                parsed
            }
        };
        let name_contains = match self.q {
            Some(q) if q.chars().count() > MAX_LIST_QUERY_CHARS => {
                bad(
                    "q",
                    format!("q has at most {MAX_LIST_QUERY_CHARS} characters"),
                );
                None
            }
            // PostgreSQL text cannot hold NUL, and no name holds a control character.
            Some(q) if q.chars().any(char::is_control) => {
                bad("q", "q cannot contain control characters".to_owned());
                None
            }
            Some(q) if q.is_empty() => None,
            other => other,
        };
        let mut number = |field: &str, value: Option<&str>, default: i64, min: i64, max: i64| {
            let Some(text) = value else {
                return default;
            };
            match text.parse::<i64>() {
                Ok(n) if (min..=max).contains(&n) => n,
                _ => {
                    bad(field, format!("{field} is an integer from {min} to {max}"));
                    default
                }
            }
        };
        let limit = number(
            "limit",
            self.limit.as_deref(),
            MAX_LIST_LIMIT,
            1,
            MAX_LIST_LIMIT,
        );
        let offset = number("offset", self.offset.as_deref(), 0, 0, MAX_LIST_OFFSET);
        if !errors.is_empty() {
            return Err(ApiError::Validation(errors));
        }
        Ok(ListRequest {
            filter: db::experiments::ListFilter {
                site_id: self.site_id,
                status,
                name_contains,
            },
            limit,
            offset,
        })
    }
}

/// The `X-Total-Count` response header of `GET /experiments`.
pub const TOTAL_COUNT_HEADER: axum::http::HeaderName =
    axum::http::HeaderName::from_static("x-total-count");

/// The organisation's experiments (optionally filtered by site, status and name), newest
/// first, one page of them; `X-Total-Count` says how many match in all.
#[utoipa::path(get, path = "/experiments", tag = "experiments", params(ListQuery),
    responses(
        (status = 200, body = Vec<ExperimentSummary>, headers(
            ("X-Total-Count" = i64, description = "How many experiments match the filters, before limit and offset"))),
        (status = 404, description = "site_id is not a site of your organisation", body = crate::error::Problem),
        (status = 422, description = "A bad status, q, limit or offset: `errors` names each", body = crate::error::Problem)),
    security(("bearer" = [])))]
async fn list_experiments(
    State(state): State<AppState>,
    actor: Actor,
    Query(query): Query<ListQuery>,
) -> ApiResult<Response> {
    let request = query.parse()?;
    let mut conn = state.pool.acquire().await?;
    if let Some(site_id) = request.filter.site_id {
        site_of(&mut conn, &actor, site_id, false).await?;
    }
    let page = db::experiments::list(
        &mut conn,
        actor.org_id,
        &request.filter,
        request.limit,
        request.offset,
    )
    .await?;
    let out: Vec<ExperimentSummary> = page
        .rows
        .into_iter()
        .map(|r| ExperimentSummary {
            id: r.id,
            site_id: r.site_id,
            status: r.status,
            name: r.name,
            kind: r.kind.as_str().to_owned(),
            coverage: r.coverage,
            version: r.version,
            updated_at: r.updated_at,
        })
        .collect();
    Ok((
        [(TOTAL_COUNT_HEADER, page.total.to_string())],
        axum::Json(out),
    )
        .into_response())
}

#[utoipa::path(get, path = "/experiments/{id}", tag = "experiments",
    params(("id" = Uuid, Path, description = "Experiment id")),
    responses((status = 200, body = ExperimentView), (status = 404, body = crate::error::Problem)),
    security(("bearer" = [])))]
async fn get_experiment(
    State(state): State<AppState>,
    actor: Actor,
    PathId(id): PathId,
) -> ApiResult<Response> {
    let mut conn = state.pool.acquire().await?;
    let row = experiment_of(&mut conn, &actor, id, false).await?;
    let loaded = db::experiments::load_parts(&mut conn, row).await?;
    Ok(respond(StatusCode::OK, &loaded))
}

fn allowed_fields(editable: Editable) -> &'static [&'static str] {
    match editable {
        Editable::All => &[
            "name",
            "description",
            "kind",
            "coverage",
            "allocator",
            "url_rules",
            "elements",
            "goals",
        ],
        Editable::NameDescriptionCoverage => &["name", "description", "coverage"],
        Editable::NameDescription => &["name", "description"],
        Editable::Nothing => &[],
    }
}

/// Edit an experiment (editor; `If-Match` required). Drafts accept every field; see
/// `docs/experiments.md` for what other statuses accept (409 `not_editable`).
#[utoipa::path(patch, path = "/experiments/{id}", tag = "experiments",
    request_body = ExperimentPatch,
    params(("id" = Uuid, Path, description = "Experiment id"), ("If-Match" = String, Header, description = "The experiment's ETag")),
    responses((status = 200, body = ExperimentView), (status = 409, body = crate::error::Problem),
        (status = 412, body = crate::error::Problem), (status = 422, body = crate::error::Problem),
        (status = 428, body = crate::error::Problem)),
    security(("bearer" = [])))]
async fn update_experiment(
    State(state): State<AppState>,
    RequireRole { actor, .. }: RequireRole<Editor>,
    PathId(id): PathId,
    if_match: IfMatch,
    Json(patch): Json<ExperimentPatch>,
) -> ApiResult<Response> {
    let fields = patch.fields();
    if fields.is_empty() {
        return Err(ApiError::validation("body", "nothing to change"));
    }
    let mut tx = state.pool.begin().await?;
    let row = experiment_of(&mut tx, &actor, id, true).await?;
    if_match.check(row.version)?;
    let status = row.status;
    let allowed = allowed_fields(status.editable());
    let refused: Vec<&str> = fields
        .iter()
        .copied()
        .filter(|f| !allowed.contains(f))
        .collect();
    if !refused.is_empty() {
        return Err(ApiError::conflict(
            "not_editable",
            format!(
                "a {} experiment cannot change {}; editable now: {}",
                status.as_str(),
                refused.join(", "),
                if allowed.is_empty() {
                    "nothing".to_owned()
                } else {
                    allowed.join(", ")
                }
            ),
        ));
    }
    let before = db::experiments::load_parts(&mut tx, row).await?;
    let base = ExperimentInput::from_spec(&before.spec()?).map_err(|e| {
        ApiError::Internal(anyhow::anyhow!("stored experiment {id} unreadable: {e}"))
    })?;
    let rewrite_structure = fields.contains(&"kind") || fields.contains(&"elements");
    let rewrite_goals = fields.contains(&"goals");
    let spec = validated(&patch.apply(base))?;
    let site = site_of(&mut tx, &actor, before.experiment.site_id, false).await?;
    allowed_on_site(&spec, &site.domains, &actor)?;
    let row = db::experiments::update(&mut tx, id, before.experiment.version, &spec)
        .await?
        .ok_or(ApiError::PreconditionFailed)?;
    if rewrite_structure {
        db::experiments::delete_structure(&mut tx, id).await?;
        db::experiments::insert_structure(&mut tx, id, &spec).await?;
    }
    if rewrite_goals {
        db::experiments::delete_goals(&mut tx, id).await?;
        db::experiments::insert_goals(&mut tx, id, &spec).await?;
    }
    let after = db::experiments::load_parts(&mut tx, row).await?;
    crate::quota::check_snapshot_bytes(
        &mut tx,
        &state.config.limits,
        actor.org_id,
        after.experiment.site_id,
        id,
    )
    .await?;
    let change = Change::new("experiment.update", "experiment", id)
        .before(audit_json(&before))
        .after(audit_json(&after));
    audit::record_by(&mut tx, &actor, change).await?;
    audit_custom_code(&mut tx, &actor, id, Some(&before), Some(&after)).await?;
    tx.commit().await?;
    Ok(respond(StatusCode::OK, &after))
}

/// Delete an experiment (editor; `If-Match` required). Not while running or paused:
/// complete it first (409 `experiment_live`).
#[utoipa::path(delete, path = "/experiments/{id}", tag = "experiments",
    params(("id" = Uuid, Path, description = "Experiment id"), ("If-Match" = String, Header, description = "The experiment's ETag")),
    responses((status = 204), (status = 409, body = crate::error::Problem),
        (status = 412, body = crate::error::Problem), (status = 428, body = crate::error::Problem)),
    security(("bearer" = [])))]
async fn delete_experiment(
    State(state): State<AppState>,
    RequireRole { actor, .. }: RequireRole<Editor>,
    PathId(id): PathId,
    if_match: IfMatch,
) -> ApiResult<StatusCode> {
    let mut tx = state.pool.begin().await?;
    let row = experiment_of(&mut tx, &actor, id, true).await?;
    if_match.check(row.version)?;
    if !row.status.deletable() {
        return Err(ApiError::conflict(
            "experiment_live",
            "a running or paused experiment cannot be deleted; complete it first",
        ));
    }
    let before = db::experiments::load_parts(&mut tx, row).await?;
    if !db::experiments::delete(&mut tx, id, before.experiment.version).await? {
        return Err(ApiError::PreconditionFailed);
    }
    let change = Change::new("experiment.delete", "experiment", id).before(audit_json(&before));
    audit::record_by(&mut tx, &actor, change).await?;
    audit_custom_code(&mut tx, &actor, id, Some(&before), None).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Why an experiment cannot start yet (each reason a sentence), empty when it can.
fn start_blockers(loaded: &Loaded, site_domains: usize) -> Vec<String> {
    let mut out = Vec::new();
    match loaded.experiment.kind.0 {
        Mode::Independent => {
            for el in &loaded.elements {
                let arms = loaded
                    .arms
                    .iter()
                    .filter(|a| a.element_id == Some(el.id))
                    .count();
                if arms < 2 {
                    out.push(format!(
                        "element {:?} needs at least 2 variants (has {arms})",
                        el.name
                    ));
                }
            }
        }
        _ => {
            if loaded.arms.len() < 2 {
                out.push(format!("needs at least 2 arms (has {})", loaded.arms.len()));
            }
        }
    }
    if !loaded.goals.iter().any(|g| g.is_primary) {
        out.push("needs a primary goal".to_owned());
    }
    if site_domains == 0 {
        out.push("its site needs at least one domain".to_owned());
    }
    out
}

async fn transition(
    state: AppState,
    actor: Actor,
    id: Uuid,
    if_match: IfMatch,
    action: Action,
) -> ApiResult<Response> {
    let mut tx = state.pool.begin().await?;
    let row = experiment_of(&mut tx, &actor, id, true).await?;
    if_match.check(row.version)?;
    let from = row.status;
    let to = from.apply(action).ok_or_else(|| {
        ApiError::conflict(
            "invalid_transition",
            format!("cannot {} a {} experiment", action.as_str(), from.as_str()),
        )
    })?;
    let version = row.version;
    let site_id = row.site_id;
    let loaded = db::experiments::load_parts(&mut tx, row).await?;
    if action == Action::Start {
        let site = site_of(&mut tx, &actor, site_id, false).await?;
        let blockers = start_blockers(&loaded, site.domains.len());
        if !blockers.is_empty() {
            return Err(ApiError::conflict(
                "not_ready",
                format!("the experiment cannot start: {}", blockers.join("; ")),
            ));
        }
    }
    if to.as_str() == "running" && from.as_str() != "running" {
        let limits = &state.config.limits;
        crate::quota::check_running_experiments(&mut tx, limits, actor.org_id).await?;
        crate::quota::check_snapshot_bytes(&mut tx, limits, actor.org_id, site_id, id).await?;
    }
    let row = db::experiments::set_status(&mut tx, id, version, to)
        .await?
        .ok_or(ApiError::PreconditionFailed)?;
    let after = Loaded {
        experiment: row,
        ..loaded
    };
    let name = format!("experiment.{}", action.as_str());
    let change = Change::new(&name, "experiment", id)
        .before(serde_json::json!({ "status": from.as_str(), "version": version }))
        .after(serde_json::json!({ "status": to.as_str(), "version": after.experiment.version }));
    audit::record_by(&mut tx, &actor, change).await?;
    tx.commit().await?;
    Ok(respond(StatusCode::OK, &after))
}

macro_rules! lifecycle_handler {
    ($name:ident, $action:expr, $path:literal, $doc:literal $(, $extra:tt)*) => {
        #[doc = $doc]
        #[utoipa::path(post, path = $path, tag = "experiments",
                    params(("id" = Uuid, Path, description = "Experiment id"),
                        ("If-Match" = String, Header, description = "The experiment's ETag")),
                    responses((status = 200, body = ExperimentView),
                        (status = 409, body = crate::error::Problem),
                        (status = 412, body = crate::error::Problem),
                        (status = 428, body = crate::error::Problem)
                        $(, $extra)*),
                    security(("bearer" = [])))]
        async fn $name(
            State(state): State<AppState>,
            RequireRole { actor, .. }: RequireRole<Editor>,
            PathId(id): PathId,
            if_match: IfMatch,
        ) -> ApiResult<Response> {
            transition(state, actor, id, if_match, $action).await
        }
    };
}

lifecycle_handler!(
    start,
    Action::Start,
    "/experiments/{id}/start",
    "Start a draft (editor): needs ≥ 2 arms per unit, a primary goal and a site with a domain.",
    (
        status = 422,
        description = "Over a plan quota (running experiments, snapshot size)",
        body = crate::error::Problem
    )
);
lifecycle_handler!(
    pause,
    Action::Pause,
    "/experiments/{id}/pause",
    "Pause a running experiment (editor): the edge stops assigning it."
);
lifecycle_handler!(
    resume,
    Action::Resume,
    "/experiments/{id}/resume",
    "Resume a paused experiment (editor).",
    (
        status = 422,
        description = "Over a plan quota (running experiments, snapshot size)",
        body = crate::error::Problem
    )
);
lifecycle_handler!(
    complete,
    Action::Complete,
    "/experiments/{id}/complete",
    "Complete a running or paused experiment (editor)."
);
lifecycle_handler!(
    archive,
    Action::Archive,
    "/experiments/{id}/archive",
    "Archive a completed experiment (editor)."
);
