//! Per-organisation quotas (issue 10, hole 6): how much one organisation may hold, so a
//! single tenant cannot grow the shared control plane and edge without bound.
//!
//! Each check runs inside the transaction that would pass the quota, after a
//! transaction-scoped advisory lock on (organisation, quota): two concurrent creations
//! cannot both see "one below the limit". A refusal is a 422 `quota_exceeded` problem
//! whose `quota` member names the quota, its limit and the current count. The limits,
//! their defaults and variables are in [`crate::config::Limits`] and
//! `docs/security.md` ("Accounts, keys, quotas and back-pressure"):
//!
//! | quota                 | counted                                   | checked when           |
//! |-----------------------|-------------------------------------------|------------------------|
//! | `sites`               | the organisation's sites                  | a site is created      |
//! | `running_experiments` | its running experiments                   | one starts or resumes  |
//! | `api_keys`            | its live (unrevoked) API keys             | a key is created       |
//! | `snapshot_bytes`      | the site's signed snapshot body, in bytes | an experiment is saved or started |

use sqlx::PgConnection;
use uuid::Uuid;

use crate::config::Limits;
use crate::db;
use crate::error::{ApiError, ApiResult};
use crate::publisher;

/// Serialises the checks of one quota in one organisation until the transaction ends.
async fn lock(conn: &mut PgConnection, org_id: Uuid, quota: &str) -> ApiResult<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('quota:' || $1 || ':' || $2, 0))")
        .bind(quota)
        .bind(org_id.to_string())
        .execute(conn)
        .await?;
    Ok(())
}

fn refuse_at(quota: &'static str, limit: i64, current: i64) -> ApiResult<()> {
    if current >= limit {
        Err(ApiError::QuotaExceeded {
            quota,
            limit,
            current,
        })
    } else {
        Ok(())
    }
}

/// Before creating a site.
#[tracing::instrument(skip(conn, limits))]
pub async fn check_sites(conn: &mut PgConnection, limits: &Limits, org_id: Uuid) -> ApiResult<()> {
    lock(conn, org_id, "sites").await?;
    let current: i64 = sqlx::query_scalar("SELECT count(*) FROM sites WHERE org_id = $1")
        .bind(org_id)
        .fetch_one(conn)
        .await?;
    refuse_at("sites", limits.max_sites, current)
}

/// Before an experiment of the organisation starts running (start or resume).
#[tracing::instrument(skip(conn, limits))]
pub async fn check_running_experiments(
    conn: &mut PgConnection,
    limits: &Limits,
    org_id: Uuid,
) -> ApiResult<()> {
    lock(conn, org_id, "running_experiments").await?;
    let current: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM experiments WHERE org_id = $1 AND status = 'running'",
    )
    .bind(org_id)
    .fetch_one(conn)
    .await?;
    refuse_at(
        "running_experiments",
        limits.max_running_experiments,
        current,
    )
}

/// Before creating an API key.
#[tracing::instrument(skip(conn, limits))]
pub async fn check_api_keys(
    conn: &mut PgConnection,
    limits: &Limits,
    org_id: Uuid,
) -> ApiResult<()> {
    lock(conn, org_id, "api_keys").await?;
    let current: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM api_keys WHERE org_id = $1 AND revoked_at IS NULL",
    )
    .bind(org_id)
    .fetch_one(conn)
    .await?;
    refuse_at("api_keys", limits.max_api_keys, current)
}

/// After saving (or before starting) `experiment_id`, in the same transaction: the
/// site's snapshot as the publisher would sign it, with that experiment included as if
/// it were running, must stay within the `snapshot_bytes` quota (which itself stays well
/// below the edge's body cap). A snapshot that cannot be built is left to the other
/// checks (the start blockers): this one is only about size.
#[tracing::instrument(skip(conn, limits))]
pub async fn check_snapshot_bytes(
    conn: &mut PgConnection,
    limits: &Limits,
    org_id: Uuid,
    site_id: Uuid,
    experiment_id: Uuid,
) -> ApiResult<()> {
    let Some(site) = db::sites::get(conn, org_id, site_id).await? else {
        return Ok(());
    };
    let Ok((snapshot, _)) =
        publisher::build_snapshot_including(conn, &site, Some(experiment_id)).await
    else {
        return Ok(());
    };
    let bytes = tokio::task::spawn_blocking(move || signed_body_bytes(snapshot))
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let limit = i64::try_from(limits.max_snapshot_bytes).unwrap_or(i64::MAX);
    let current = i64::try_from(bytes).unwrap_or(i64::MAX);
    if current > limit {
        return Err(ApiError::QuotaExceeded {
            quota: "snapshot_bytes",
            limit,
            current,
        });
    }
    Ok(())
}

/// The size of the body the publisher would push for `snapshot`: the signed envelope
/// with the largest version and timestamp (an upper bound; the signature has a fixed
/// length).
pub fn signed_body_bytes(mut snapshot: samplit_engine::snapshot::Snapshot) -> usize {
    snapshot.version = u64::MAX;
    snapshot.generated_at_ms = i64::MAX;
    let signed = samplit_engine::snapshot::SignedSnapshot {
        payload: serde_json::to_string(&snapshot).unwrap_or_default(),
        signature: "0".repeat(64),
    };
    serde_json::to_vec(&signed).map_or(usize::MAX, |b| b.len())
}
