//! The hourly pass forgets finished mails and webhook deliveries past their keeping time
//! and the alert states of deleted experiments and sites — and nothing else
//! (`db::retention`).

use samplit_control_plane::db::retention::{
    DELIVERIES_KEPT, MAIL_KEPT, NotificationsPruned, prune_notifications,
};
use sqlx::PgPool;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::fixtures::running;
use crate::helpers::TestApp;

async fn keys(pool: &PgPool, sql: &str) -> Vec<String> {
    sqlx::query_scalar(sql).fetch_all(pool).await.unwrap()
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn finished_mail_and_deliveries_go_after_their_time_pending_ones_and_live_states_stay(
    pool: PgPool,
) {
    let app = TestApp::new(pool);
    let (owner, site, x) = running(&app, "single", &[2]).await;
    let now = OffsetDateTime::now_utc();
    let old = now - MAIL_KEPT - Duration::hours(1);
    let recent = now - MAIL_KEPT + Duration::hours(1);

    // Mail: (key, created, sent, failed).
    for (key, sent, failed) in [
        ("old-sent", Some(old), None),
        ("old-failed", None, Some(old)),
        ("recent-sent", Some(recent), None),
        ("old-pending", None, None),
    ] {
        sqlx::query(
            "INSERT INTO mail_outbox (dedupe_key, to_address, subject, text_body, html_body,
                                      created_at, sent_at, failed_at)
             VALUES ($1, 'ana@example.com', 's', 't', 'h', $2, $3, $4)",
        )
        .bind(key)
        .bind(old - Duration::days(1))
        .bind(sent)
        .bind(failed)
        .execute(&app.pool)
        .await
        .unwrap();
    }

    // Webhook deliveries: (type as a label, status, created, delivered).
    let hook = Uuid::new_v4();
    sqlx::query("INSERT INTO webhooks (id, org_id, url, kinds) VALUES ($1, $2, 'https://hooks.example/x', '{winner}')")
        .bind(hook)
        .bind(owner.org_id)
        .execute(&app.pool)
        .await
        .unwrap();
    let delivery_old = now - DELIVERIES_KEPT - Duration::hours(1);
    for (label, status, created, delivered) in [
        (
            "old-delivered",
            "delivered",
            delivery_old,
            Some(delivery_old),
        ),
        ("old-failed", "failed", delivery_old, None),
        ("old-pending", "pending", delivery_old, None),
        (
            "recent-delivered",
            "delivered",
            delivery_old,
            Some(now - Duration::days(1)),
        ),
    ] {
        sqlx::query(
            "INSERT INTO webhook_deliveries (id, webhook_id, event_id, type, payload, status,
                                             created_at, delivered_at)
             VALUES ($1, $2, $3, $4, '{}', $5, $6, $7)",
        )
        .bind(Uuid::new_v4())
        .bind(hook)
        .bind(Uuid::new_v4())
        .bind(label)
        .bind(status)
        .bind(created)
        .bind(delivered)
        .execute(&app.pool)
        .await
        .unwrap();
    }

    // Alert states: the live experiment's and site's stay; a deleted one's goes.
    for (subject, kind) in [
        (x.id, "winner"),
        (site.id, "publish_failing"),
        (Uuid::new_v4(), "srm"),
    ] {
        sqlx::query(
            "INSERT INTO alert_states (subject_id, kind, org_id, active, n) VALUES ($1, $2, $3, false, 1)",
        )
        .bind(subject)
        .bind(kind)
        .bind(owner.org_id)
        .execute(&app.pool)
        .await
        .unwrap();
    }

    let pruned = prune_notifications(&app.pool, now).await.unwrap();
    assert_eq!(
        pruned,
        NotificationsPruned {
            mails: 2,
            deliveries: 2,
            alert_states: 1
        }
    );
    assert_eq!(
        keys(&app.pool, "SELECT dedupe_key FROM mail_outbox ORDER BY 1").await,
        ["old-pending", "recent-sent"]
    );
    assert_eq!(
        keys(&app.pool, "SELECT type FROM webhook_deliveries ORDER BY 1").await,
        ["old-pending", "recent-delivered"]
    );
    assert_eq!(
        keys(&app.pool, "SELECT kind FROM alert_states ORDER BY 1").await,
        ["publish_failing", "winner"]
    );
    // A second pass finds nothing more.
    assert_eq!(
        prune_notifications(&app.pool, now).await.unwrap(),
        NotificationsPruned::default()
    );
}
