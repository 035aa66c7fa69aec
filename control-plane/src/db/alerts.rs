//! SQL of alerts (`migrations/0022_alerts.sql`): the state per (subject, kind), each
//! person's preferences and per-experiment overrides, who receives an alert, and the
//! log of fired alerts.

use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::alerts::{AlertEvent, AlertKind};
use crate::db::results::ExperimentRow;

/// A running experiment with its organisation.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RunningExperiment {
    pub org_id: Uuid,
    pub site_name: String,
    #[sqlx(flatten)]
    pub experiment: ExperimentRow,
}

/// Every running experiment, of every organisation (the alert pass).
#[tracing::instrument(skip(pool))]
pub async fn running_experiments(pool: &PgPool) -> sqlx::Result<Vec<RunningExperiment>> {
    sqlx::query_as::<_, RunningExperiment>(
        "SELECT e.org_id, s.name AS site_name,
                e.id, e.site_id, e.name, e.kind, e.status, e.allocator
           FROM experiments e JOIN sites s ON s.id = e.site_id
          WHERE e.status = 'running'
          ORDER BY e.created_at, e.id",
    )
    .fetch_all(pool)
    .await
}

/// The ids of an experiment's goals other than the primary one, in creation order.
#[tracing::instrument(skip(pool))]
pub async fn secondary_goals(pool: &PgPool, experiment_id: Uuid) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar(
        "SELECT id FROM goals WHERE experiment_id = $1 AND NOT is_primary ORDER BY id",
    )
    .bind(experiment_id)
    .fetch_all(pool)
    .await
}

/// A site the publisher has tried to publish, or whose publication alert is active.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PublishedSite {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: String,
}

/// Sites with publication attempts (the candidates of the publication alert).
#[tracing::instrument(skip(pool))]
pub async fn sites_with_publications(pool: &PgPool) -> sqlx::Result<Vec<PublishedSite>> {
    sqlx::query_as::<_, PublishedSite>(
        "SELECT s.id, s.org_id, s.name FROM sites s
          WHERE EXISTS (SELECT 1 FROM snapshot_publications p WHERE p.site_id = s.id)
          ORDER BY s.id",
    )
    .fetch_all(pool)
    .await
}

/// The state of one alert.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StateRow {
    pub subject_id: Uuid,
    pub kind: AlertKind,
    pub active: bool,
    pub n: i32,
    pub changed_at: OffsetDateTime,
}

/// Every alert state (one read per pass).
#[tracing::instrument(skip(pool))]
pub async fn states(pool: &PgPool) -> sqlx::Result<Vec<StateRow>> {
    sqlx::query_as::<_, StateRow>(
        "SELECT subject_id, kind, active, n, changed_at FROM alert_states",
    )
    .fetch_all(pool)
    .await
}

/// The alert states of one subject.
#[tracing::instrument(skip(pool))]
pub async fn states_of(pool: &PgPool, subject_id: Uuid) -> sqlx::Result<Vec<StateRow>> {
    sqlx::query_as::<_, StateRow>(
        "SELECT subject_id, kind, active, n, changed_at FROM alert_states WHERE subject_id = $1",
    )
    .bind(subject_id)
    .fetch_all(pool)
    .await
}

/// Marks the alert active and answers its new activation count — or None when it was
/// active already (another pass got there first: only the one that flips it fires).
#[tracing::instrument(skip(conn))]
pub async fn activate(
    conn: &mut PgConnection,
    org_id: Uuid,
    subject_id: Uuid,
    kind: AlertKind,
) -> sqlx::Result<Option<i32>> {
    sqlx::query_scalar(
        "INSERT INTO alert_states (subject_id, kind, org_id, active, n, changed_at)
         VALUES ($1, $2, $3, true, 1, now())
         ON CONFLICT (subject_id, kind) DO UPDATE
            SET active = true, n = alert_states.n + 1, changed_at = now()
          WHERE NOT alert_states.active
         RETURNING n",
    )
    .bind(subject_id)
    .bind(kind)
    .bind(org_id)
    .fetch_optional(conn)
    .await
}

/// Marks the alert inactive; whether it was active.
#[tracing::instrument(skip(pool))]
pub async fn deactivate(pool: &PgPool, subject_id: Uuid, kind: AlertKind) -> sqlx::Result<bool> {
    let changed = sqlx::query(
        "UPDATE alert_states SET active = false, changed_at = now()
          WHERE subject_id = $1 AND kind = $2 AND active",
    )
    .bind(subject_id)
    .bind(kind)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(changed == 1)
}

/// Logs a fired alert.
#[tracing::instrument(skip(conn, event), fields(id = %event.id))]
pub async fn insert_event(
    conn: &mut PgConnection,
    subject_id: Uuid,
    event: &AlertEvent,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO alert_events (id, org_id, kind, subject_id, text, detail, at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(event.id)
    .bind(event.org_id)
    .bind(event.kind)
    .bind(subject_id)
    .bind(&event.text)
    .bind(&event.detail)
    .bind(event.at)
    .execute(conn)
    .await?;
    Ok(())
}

/// A fired alert, as logged.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventRow {
    pub id: Uuid,
    pub kind: AlertKind,
    pub subject_id: Uuid,
    pub text: String,
    pub detail: serde_json::Value,
    pub at: OffsetDateTime,
}

/// The organisation's latest fired alerts, newest first.
#[tracing::instrument(skip(pool))]
pub async fn recent_events(pool: &PgPool, org_id: Uuid, limit: i64) -> sqlx::Result<Vec<EventRow>> {
    sqlx::query_as::<_, EventRow>(
        "SELECT id, kind, subject_id, text, detail, at FROM alert_events
          WHERE org_id = $1 ORDER BY at DESC, id LIMIT $2",
    )
    .bind(org_id)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Who receives a mail of an alert.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Recipient {
    pub user_id: Uuid,
    pub email: String,
    pub language: String,
}

/// The members of `org_id` who receive alerts of `kind` (about `experiment_id`, for
/// experiment alerts) with a verified address: a `follow` override of the experiment
/// says yes and a `mute` says no; otherwise their preference for the kind, else the role
/// default (owners and admins yes, editors and viewers no).
#[tracing::instrument(skip(conn))]
pub async fn recipients(
    conn: &mut PgConnection,
    org_id: Uuid,
    kind: AlertKind,
    experiment_id: Option<Uuid>,
) -> sqlx::Result<Vec<Recipient>> {
    sqlx::query_as::<_, Recipient>(
        "SELECT u.id AS user_id, u.email, u.language
           FROM memberships m
           JOIN users u ON u.id = m.user_id
           LEFT JOIN alert_preferences p
                  ON p.user_id = m.user_id AND p.org_id = m.org_id AND p.kind = $2
           LEFT JOIN experiment_alert_overrides o
                  ON o.user_id = m.user_id AND o.experiment_id = $3
          WHERE m.org_id = $1
            AND u.email_verified_at IS NOT NULL
            AND CASE o.mode
                  WHEN 'follow' THEN true
                  WHEN 'mute' THEN false
                  ELSE COALESCE(p.enabled, m.role IN ('owner', 'admin'))
                END
          ORDER BY u.id",
    )
    .bind(org_id)
    .bind(kind)
    .bind(experiment_id)
    .fetch_all(conn)
    .await
}

/// A person's explicit preferences in an organisation (kinds without a row use the
/// role default).
#[tracing::instrument(skip(pool))]
pub async fn preferences(
    pool: &PgPool,
    user_id: Uuid,
    org_id: Uuid,
) -> sqlx::Result<Vec<(AlertKind, bool)>> {
    sqlx::query_as::<_, (AlertKind, bool)>(
        "SELECT kind, enabled FROM alert_preferences WHERE user_id = $1 AND org_id = $2",
    )
    .bind(user_id)
    .bind(org_id)
    .fetch_all(pool)
    .await
}

/// Sets a person's preference for one kind.
#[tracing::instrument(skip(conn))]
pub async fn set_preference(
    conn: &mut PgConnection,
    user_id: Uuid,
    org_id: Uuid,
    kind: AlertKind,
    enabled: bool,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO alert_preferences (user_id, org_id, kind, enabled) VALUES ($1, $2, $3, $4)
         ON CONFLICT (user_id, org_id, kind) DO UPDATE SET enabled = EXCLUDED.enabled",
    )
    .bind(user_id)
    .bind(org_id)
    .bind(kind)
    .bind(enabled)
    .execute(conn)
    .await?;
    Ok(())
}

/// A person's override of one experiment (`follow` or `mute`), if any.
#[tracing::instrument(skip(pool))]
pub async fn override_of(
    pool: &PgPool,
    user_id: Uuid,
    experiment_id: Uuid,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "SELECT mode FROM experiment_alert_overrides WHERE user_id = $1 AND experiment_id = $2",
    )
    .bind(user_id)
    .bind(experiment_id)
    .fetch_optional(pool)
    .await
}

/// Sets (`Some("follow" | "mute")`) or removes (`None`) a person's override.
#[tracing::instrument(skip(pool))]
pub async fn set_override(
    pool: &PgPool,
    user_id: Uuid,
    experiment_id: Uuid,
    mode: Option<&str>,
) -> sqlx::Result<()> {
    match mode {
        Some(mode) => {
            sqlx::query(
                "INSERT INTO experiment_alert_overrides (user_id, experiment_id, mode)
                 VALUES ($1, $2, $3)
                 ON CONFLICT (user_id, experiment_id) DO UPDATE SET mode = EXCLUDED.mode",
            )
            .bind(user_id)
            .bind(experiment_id)
            .bind(mode)
            .execute(pool)
            .await?;
        }
        None => {
            sqlx::query(
                "DELETE FROM experiment_alert_overrides WHERE user_id = $1 AND experiment_id = $2",
            )
            .bind(user_id)
            .bind(experiment_id)
            .execute(pool)
            .await?;
        }
    }
    Ok(())
}

/// Whether the person's address is verified (only verified addresses receive alerts).
#[tracing::instrument(skip(pool))]
pub async fn email_verified(pool: &PgPool, user_id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT email_verified_at IS NOT NULL FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_optional(pool)
        .await
        .map(|v| v.unwrap_or(false))
}
