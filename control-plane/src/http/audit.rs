//! The audit trail over HTTP (admin and owner only): `GET /audit` (newest first, keyset
//! pages, filters), `GET /audit/verify` (recomputes the hash chain, see
//! `crate::audit::verify_chain`) and `GET /audit/export?format=csv|xlsx`.

use axum::extract::State;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::rfc3339;
use crate::audit::{ChainReport, Entry, verify_chain};
use crate::auth::RequireRole;
use crate::auth::roles::Admin;
use crate::db;
use crate::db::audit::{AuditRow, Filter};
use crate::error::{ApiError, ApiResult, Problem};
use crate::export::{Cell, ExportFormat, Table, XLSX_MAX_ROWS};
use crate::extract::Query;
use crate::state::AppState;

pub const DEFAULT_PAGE: i64 = 50;
pub const MAX_PAGE: i64 = 200;
/// Rows read per query while building an export.
const EXPORT_BATCH: i64 = 5_000;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_entries))
        .routes(routes!(verify))
        .routes(routes!(export))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only entries about this object.
    pub target_id: Option<Uuid>,
    /// Only this action, e.g. `member.role_changed`.
    pub action: Option<String>,
    /// Page cursor: entries with a smaller `seq` (use the previous page's `next_before_seq`).
    pub before_seq: Option<i64>,
    /// 1 to 200 (default 50).
    pub limit: Option<i64>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// `csv` or `xlsx`.
    pub format: ExportFormat,
    pub target_id: Option<Uuid>,
    pub action: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AuditEntryOut {
    pub seq: i64,
    pub at: String,
    pub actor_user_id: Option<Uuid>,
    pub actor_api_key_id: Option<Uuid>,
    /// The user's email or `api-key:<name>` at the time.
    pub actor_label: Option<String>,
    pub action: String,
    pub target_type: String,
    pub target_id: Option<Uuid>,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
    /// This entry's chain hash (hex).
    pub hash: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditEntryOut>,
    /// Pass as `before_seq` for the next (older) page; absent on the last page.
    pub next_before_seq: Option<i64>,
}

fn entry_out(row: AuditRow) -> AuditEntryOut {
    // Columns are what queries filter on; label and before/after live only in the hashed
    // text. A row whose text does not parse is shown without them (verify reports it).
    let entry = serde_json::from_str::<Entry>(&row.entry).ok();
    let (actor_label, before, after) = match entry {
        Some(e) => (Some(e.actor_label), e.before, e.after),
        None => (None, None, None),
    };
    AuditEntryOut {
        seq: row.seq,
        at: rfc3339(row.at),
        actor_user_id: row.actor_user_id,
        actor_api_key_id: row.actor_api_key_id,
        actor_label,
        action: row.action,
        target_type: row.target_type,
        target_id: row.target_id,
        before,
        after,
        hash: hex::encode(&row.hash),
    }
}

fn filter_action(action: Option<String>) -> ApiResult<Option<String>> {
    match action {
        Some(a) if a.len() > 100 => Err(ApiError::validation(
            "action",
            "an action has at most 100 characters",
        )),
        Some(a) if a.is_empty() => Ok(None),
        other => Ok(other),
    }
}

/// Audit entries, newest first.
#[utoipa::path(
    get, path = "/audit", tag = "audit",
    params(AuditQuery),
    responses(
        (status = 200, body = AuditPage),
        (status = 400, description = "Malformed query", body = Problem),
        (status = 401, description = "Not authenticated", body = Problem),
        (status = 403, description = "Admins and owners only", body = Problem),
        (status = 422, description = "limit out of range", body = Problem),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(skip_all, fields(org_id = %actor.org_id))]
async fn list_entries(
    State(state): State<AppState>,
    RequireRole { actor, .. }: RequireRole<Admin>,
    Query(query): Query<AuditQuery>,
) -> ApiResult<axum::Json<AuditPage>> {
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::validation("limit", "limit is between 1 and 200"));
    }
    let filter = Filter {
        target_id: query.target_id,
        action: filter_action(query.action)?,
        before_seq: query.before_seq,
    };
    let mut conn = state.pool.acquire().await?;
    // One more than asked tells whether there is a next page.
    let mut rows = db::audit::page(&mut conn, actor.org_id, &filter, limit + 1).await?;
    let more = rows.len() > usize::try_from(limit).unwrap_or(usize::MAX);
    rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let next_before_seq = if more {
        rows.last().map(|r| r.seq)
    } else {
        None
    };
    Ok(axum::Json(AuditPage {
        items: rows.into_iter().map(entry_out).collect(),
        next_before_seq,
    }))
}

/// Recomputes the organisation's hash chain and reports the first broken link.
#[utoipa::path(
    get, path = "/audit/verify", tag = "audit",
    responses(
        (status = 200, description = "The report (`ok: false` names the first broken seq)", body = ChainReport),
        (status = 401, description = "Not authenticated", body = Problem),
        (status = 403, description = "Admins and owners only", body = Problem),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(skip_all, fields(org_id = %actor.org_id))]
async fn verify(
    State(state): State<AppState>,
    RequireRole { actor, .. }: RequireRole<Admin>,
) -> ApiResult<axum::Json<ChainReport>> {
    let mut conn = state.pool.acquire().await?;
    let report = verify_chain(&mut conn, actor.org_id).await?;
    if !report.ok {
        tracing::warn!(org_id = %actor.org_id, first_broken_seq = ?report.first_broken_seq, reason = ?report.reason, "audit chain broken");
    }
    Ok(axum::Json(report))
}

/// The audit trail (filtered like `GET /audit`) as a CSV or Excel download, oldest
/// entries last (same order as the list). Text cells that a spreadsheet would evaluate
/// as formulas get a leading `'`.
#[utoipa::path(
    get, path = "/audit/export", tag = "audit",
    params(ExportQuery),
    responses(
        (status = 200, description = "The file (Content-Disposition: attachment): text/csv, or application/vnd.openxmlformats-officedocument.spreadsheetml.sheet for xlsx", body = String, content_type = "text/csv"),
        (status = 400, description = "Missing or unknown format", body = Problem),
        (status = 401, description = "Not authenticated", body = Problem),
        (status = 403, description = "Admins and owners only", body = Problem),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(skip_all, fields(org_id = %actor.org_id))]
async fn export(
    State(state): State<AppState>,
    RequireRole { actor, .. }: RequireRole<Admin>,
    Query(query): Query<ExportQuery>,
) -> ApiResult<Response> {
    let mut filter = Filter {
        target_id: query.target_id,
        action: filter_action(query.action)?,
        before_seq: None,
    };
    let mut table = Table::new(
        "Audit trail",
        [
            "seq",
            "at",
            "actor",
            "actor_user_id",
            "actor_api_key_id",
            "action",
            "target_type",
            "target_id",
            "before",
            "after",
            "hash",
        ],
    );
    let mut conn = state.pool.acquire().await?;
    loop {
        let rows = db::audit::page(&mut conn, actor.org_id, &filter, EXPORT_BATCH).await?;
        let Some(last) = rows.last().map(|r| r.seq) else {
            break;
        };
        for row in rows {
            let e = entry_out(row);
            let json = |v: Option<serde_json::Value>| v.map(|v| v.to_string());
            table.push_row(vec![
                Cell::Int(e.seq),
                e.at.into(),
                e.actor_label.into(),
                e.actor_user_id.into(),
                e.actor_api_key_id.into(),
                e.action.into(),
                e.target_type.into(),
                e.target_id.into(),
                json(e.before).into(),
                json(e.after).into(),
                e.hash.into(),
            ])?;
        }
        if table.rows().len() >= XLSX_MAX_ROWS {
            return Err(ApiError::BadRequest(
                "too many entries for one export; filter by target_id or action".to_owned(),
            ));
        }
        filter.before_seq = Some(last);
    }
    let today = OffsetDateTime::now_utc().date();
    table.into_response(query.format, &format!("audit-{today}"))
}
