//! `results_shares`: read-only share links of an experiment's results (hashed tokens).

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ShareRow {
    pub id: Uuid,
    pub experiment_id: Uuid,
    pub created_by: Option<Uuid>,
    pub created_at: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
}

const COLUMNS: &str = "id, experiment_id, created_by, created_at, revoked_at";

#[tracing::instrument(skip(conn, token_hash))]
pub async fn insert(
    conn: &mut PgConnection,
    org_id: Uuid,
    experiment_id: Uuid,
    token_hash: &[u8],
    created_by: Option<Uuid>,
) -> Result<ShareRow, sqlx::Error> {
    sqlx::query_as::<_, ShareRow>(&format!(
        "INSERT INTO results_shares (id, org_id, experiment_id, token_hash, created_by)
         VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
    ))
    .bind(Uuid::new_v4())
    .bind(org_id)
    .bind(experiment_id)
    .bind(token_hash)
    .bind(created_by)
    .fetch_one(conn)
    .await
}

/// The experiment's links, newest first (revoked ones too, marked).
#[tracing::instrument(skip(conn))]
pub async fn of_experiment(
    conn: &mut PgConnection,
    org_id: Uuid,
    experiment_id: Uuid,
) -> Result<Vec<ShareRow>, sqlx::Error> {
    sqlx::query_as::<_, ShareRow>(&format!(
        "SELECT {COLUMNS} FROM results_shares
          WHERE org_id = $1 AND experiment_id = $2 ORDER BY created_at DESC, id"
    ))
    .bind(org_id)
    .bind(experiment_id)
    .fetch_all(conn)
    .await
}

/// Revokes a live link of the experiment; the row if there was one.
#[tracing::instrument(skip(conn))]
pub async fn revoke(
    conn: &mut PgConnection,
    org_id: Uuid,
    experiment_id: Uuid,
    id: Uuid,
) -> Result<Option<ShareRow>, sqlx::Error> {
    sqlx::query_as::<_, ShareRow>(&format!(
        "UPDATE results_shares SET revoked_at = now()
          WHERE id = $1 AND org_id = $2 AND experiment_id = $3 AND revoked_at IS NULL
          RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(org_id)
    .bind(experiment_id)
    .fetch_optional(conn)
    .await
}

/// (organisation, experiment) of a live link, by its token's hash.
#[tracing::instrument(skip_all)]
pub async fn live_by_token(
    conn: &mut PgConnection,
    token_hash: &[u8],
) -> Result<Option<(Uuid, Uuid)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT org_id, experiment_id FROM results_shares
          WHERE token_hash = $1 AND revoked_at IS NULL",
    )
    .bind(token_hash)
    .fetch_optional(conn)
    .await
}
