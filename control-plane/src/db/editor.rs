//! The visual editor's queries: finding a variant of a site's experiment (for preview
//! sessions) and replacing a variant's changes (bumping the experiment's version in the
//! same statement's transaction, like every other experiment edit).

use sqlx::PgConnection;
use uuid::Uuid;

/// A variant and the experiment it belongs to.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SiteVariant {
    pub experiment_id: Uuid,
    pub changes: serde_json::Value,
}

/// The variant `variant_id` if it belongs to an experiment of `site_id` in `org_id`.
#[tracing::instrument(skip(conn))]
pub async fn variant_of_site(
    conn: &mut PgConnection,
    org_id: Uuid,
    site_id: Uuid,
    variant_id: Uuid,
) -> Result<Option<SiteVariant>, sqlx::Error> {
    sqlx::query_as::<_, SiteVariant>(
        "SELECT v.experiment_id, v.changes
           FROM variants v JOIN experiments e ON e.id = v.experiment_id
          WHERE v.id = $1 AND e.site_id = $2 AND e.org_id = $3",
    )
    .bind(variant_id)
    .bind(site_id)
    .bind(org_id)
    .fetch_optional(conn)
    .await
}

/// Replaces a variant's changes and bumps the experiment's version, if the experiment
/// is still at `version`. `false` when it is not (someone else changed it).
#[tracing::instrument(skip(conn, changes))]
pub async fn set_variant_changes(
    conn: &mut PgConnection,
    experiment_id: Uuid,
    variant_id: Uuid,
    version: i32,
    changes: &serde_json::Value,
) -> Result<bool, sqlx::Error> {
    let bumped = sqlx::query(
        "UPDATE experiments SET version = version + 1, updated_at = now()
          WHERE id = $1 AND version = $2",
    )
    .bind(experiment_id)
    .bind(version)
    .execute(&mut *conn)
    .await?;
    if bumped.rows_affected() != 1 {
        return Ok(false);
    }
    let updated =
        sqlx::query("UPDATE variants SET changes = $3 WHERE id = $2 AND experiment_id = $1")
            .bind(experiment_id)
            .bind(variant_id)
            .bind(changes)
            .execute(&mut *conn)
            .await?;
    Ok(updated.rows_affected() == 1)
}
