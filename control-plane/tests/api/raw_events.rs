//! Raw events (issue 16): kept with their context, once, in day partitions made on
//! demand and dropped past the retention; erased per visitor through
//! `POST /api/v1/sites/{id}/erasure`; a deleted site's raw events purged by housekeeping.

use axum::http::StatusCode;
use samplit_control_plane::db::raw_events::{
    PURGE_GRACE, Purged, ensure_partitions, partition_name, purge_deleted_sites,
};
use samplit_control_plane::ingest::housekeeping::rotate_raw_partitions;
use serde_json::json;
use sqlx::PgPool;
use time::{Duration, OffsetDateTime};

use crate::fixtures::{
    arm_totals, batch, conversion, exposure, exposure_at, goal_totals, ingest_ok, now_ms,
    org_with_site, running, team_running, with_context,
};
use crate::helpers::{TestApp, new_org};

async fn count(app: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&app.pool).await.unwrap()
}

async fn table_exists(app: &TestApp, name: &str) -> bool {
    sqlx::query_scalar::<_, bool>("SELECT to_regclass($1) IS NOT NULL")
        .bind(name)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn ingested_items_are_kept_as_raw_events_with_their_context_and_no_ip_or_user_agent(
    pool: PgPool,
) {
    let app = TestApp::new(pool);
    let (_org, s, x) = running(&app, "single", &[2]).await;
    let context = json!({"country": "ES", "device": "mobile", "browser": "safari",
        "source": "search", "landing": "/pricing", "prior_visits": 3, "prior_conversions": 1});
    // A newer edge's values this control plane does not know: the exposure is kept.
    let newer = json!({"country": "Spain", "device": "hologram", "browser": "chrome",
        "source": "telepathy", "prior_visits": 0, "prior_conversions": 0});
    let mut purchase = conversion("c1", &s, "v1", "purchase", Some(12.5));
    purchase["currency"] = json!("EUR");
    let answer = ingest_ok(
        &app,
        &batch(vec![
            with_context(exposure("x1", &s, x.id, x.arms[0], "v1"), context),
            with_context(exposure("x2", &s, x.id, x.arms[1], "v2"), newer),
            exposure("x3", &s, x.id, x.arms[1], "v3"),
            purchase,
        ]),
    )
    .await;
    assert_eq!(answer["accepted"], 4, "{answer}");
    assert_eq!(answer["rejected"], json!([]), "{answer}");

    type Row = (
        String,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<i32>,
        Option<i32>,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT item_id, visitor_id, country, device, browser, source, landing, prior_visits,
                prior_conversions
         FROM raw_exposures ORDER BY item_id",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let expected: Vec<Row> = vec![
        (
            "x1".into(),
            "v1".into(),
            Some("ES".into()),
            Some("mobile".into()),
            Some("safari".into()),
            Some("search".into()),
            Some("/pricing".into()),
            Some(3),
            Some(1),
        ),
        (
            "x2".into(),
            "v2".into(),
            None,
            Some("other".into()),
            Some("chrome".into()),
            None,
            None,
            Some(0),
            Some(0),
        ),
        (
            "x3".into(),
            "v3".into(),
            None,
            None,
            None,
            None,
            None,
            None,
            None,
        ),
    ];
    assert_eq!(rows, expected);
    let (site_id, experiment_id, arm_id, day): (uuid::Uuid, uuid::Uuid, uuid::Uuid, time::Date) =
        sqlx::query_as(
            "SELECT site_id, experiment_id, arm_id, day FROM raw_exposures WHERE item_id = 'x1'",
        )
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!((site_id, experiment_id, arm_id), (s.id, x.id, x.arms[0]));
    assert_eq!(day, OffsetDateTime::now_utc().date());

    let conversion: (String, String, String, f64, Option<String>, bool) = sqlx::query_as(
        "SELECT visitor_id, kind, goal, value, currency, signed FROM raw_conversions",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        conversion,
        (
            "v1".into(),
            "conversion".into(),
            "purchase".into(),
            12.5,
            Some("EUR".into()),
            false
        )
    );

    // The assignment keeps the first exposure's context.
    let device: Option<String> =
        sqlx::query_scalar("SELECT device FROM assignments WHERE visitor_id = 'v1'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(device.as_deref(), Some("mobile"));

    // No column that could hold an address or a user agent.
    let columns: Vec<String> = sqlx::query_scalar(
        "SELECT column_name::text FROM information_schema.columns
         WHERE table_name IN ('raw_exposures', 'raw_conversions')",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert!(!columns.is_empty());
    for c in &columns {
        assert!(
            !c.contains("ip") && !c.contains("agent") && !c.contains("address"),
            "{c}"
        );
    }
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn a_batch_delivered_twice_keeps_its_raw_events_once(pool: PgPool) {
    let app = TestApp::new(pool);
    let (_org, s, x) = running(&app, "single", &[2]).await;
    let body = batch(vec![
        exposure("x1", &s, x.id, x.arms[0], "v1"),
        // A conflicting exposure (another arm for v1) is a duplicate: not kept.
        exposure_at("x2", &s, x.id, x.arms[1], "v1", now_ms() + 1),
        conversion("c1", &s, "v1", "purchase", Some(3.0)),
    ]);
    ingest_ok(&app, &body).await;
    let again = ingest_ok(&app, &body).await;
    assert_eq!(again["duplicates"], 3, "{again}");
    assert_eq!(count(&app, "SELECT count(*) FROM raw_exposures").await, 1);
    assert_eq!(count(&app, "SELECT count(*) FROM raw_conversions").await, 1);
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn the_partition_of_a_new_day_is_made_on_demand(pool: PgPool) {
    let app = TestApp::new(pool);
    let (_org, s, x) = running(&app, "single", &[2]).await;
    let then = OffsetDateTime::now_utc() - Duration::days(5);
    let name = partition_name("raw_exposures", then.date());
    assert!(!table_exists(&app, &name).await, "no partition before");
    let ts = (then.unix_timestamp_nanos() / 1_000_000) as i64;
    ingest_ok(
        &app,
        &batch(vec![exposure_at("x1", &s, x.id, x.arms[0], "v1", ts)]),
    )
    .await;
    assert!(table_exists(&app, &name).await);
    assert!(table_exists(&app, &partition_name("raw_conversions", then.date())).await);
    let in_partition = count(&app, &format!("SELECT count(*) FROM {name}")).await;
    assert_eq!(in_partition, 1);

    // Concurrent creators of the same new day (other batches, other replicas) do not
    // fail: they wait on the advisory lock and find the partition made.
    let day = [then.date() - Duration::days(1)];
    let (a, b, c, d) = tokio::join!(
        ensure_partitions(&app.pool, &day),
        ensure_partitions(&app.pool, &day),
        ensure_partitions(&app.pool, &day),
        ensure_partitions(&app.pool, &day),
    );
    for r in [a, b, c, d] {
        r.unwrap();
    }
    assert!(table_exists(&app, &partition_name("raw_exposures", day[0])).await);
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn housekeeping_drops_partitions_past_the_retention_and_makes_the_next_days(pool: PgPool) {
    let app = TestApp::new(pool);
    let now = OffsetDateTime::now_utc();
    let long_ago = time::Date::from_calendar_date(2020, time::Month::January, 1).unwrap();
    let recent = now.date() - Duration::days(10);
    for day in [long_ago, recent] {
        for table in ["raw_exposures", "raw_conversions"] {
            sqlx::query(&format!(
                "CREATE TABLE {} PARTITION OF {table} FOR VALUES FROM ('{day}') TO ('{}')",
                partition_name(table, day),
                day.next_day().unwrap()
            ))
            .execute(&app.pool)
            .await
            .unwrap();
        }
    }
    // The quota's counts of both days (the long-gone day's go with its partitions).
    let (_, site) = org_with_site(&app).await;
    for day in [long_ago, recent] {
        sqlx::query(
            "INSERT INTO raw_event_days (site_id, day, kept, dropped) VALUES ($1, $2, 5, 1)",
        )
        .bind(site.id)
        .bind(day)
        .execute(&app.pool)
        .await
        .unwrap();
    }
    let dropped = rotate_raw_partitions(&app.pool, now, 15).await.unwrap();
    let days: Vec<time::Date> =
        sqlx::query_scalar("SELECT day FROM raw_event_days WHERE site_id = $1")
            .bind(site.id)
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(days, vec![recent]);
    let mut dropped_sorted = dropped.clone();
    dropped_sorted.sort();
    assert_eq!(
        dropped_sorted,
        vec![
            partition_name("raw_conversions", long_ago),
            partition_name("raw_exposures", long_ago)
        ]
    );
    assert!(!table_exists(&app, &partition_name("raw_exposures", long_ago)).await);
    assert!(table_exists(&app, &partition_name("raw_exposures", recent)).await);
    for ahead in 0..3 {
        let day = now.date() + Duration::days(ahead);
        assert!(
            table_exists(&app, &partition_name("raw_exposures", day)).await,
            "{day}"
        );
    }
    // At the default retention (90 days) the same pass drops nothing more.
    assert!(
        rotate_raw_partitions(&app.pool, now, 90)
            .await
            .unwrap()
            .is_empty()
    );
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn the_retention_cannot_be_shorter_than_the_replay_window(pool: PgPool) {
    drop(pool);
    let lookup = |days: &'static str| {
        move |name: &str| match name {
            "SAMPLIT_RAW_EVENTS_RETENTION_DAYS" => Some(days.to_owned()),
            "DATABASE_URL" => Some("postgres://unused".to_owned()),
            "SAMPLIT_JWT_SECRET" | "SAMPLIT_INGEST_SECRET" => {
                Some("a-secret-of-at-least-32-bytes-0123456789".to_owned())
            }
            _ => None,
        }
    };
    let err = samplit_control_plane::config::from_lookup(lookup("14")).unwrap_err();
    assert!(
        err.to_string()
            .contains("SAMPLIT_RAW_EVENTS_RETENTION_DAYS"),
        "{err}"
    );
    let ok = samplit_control_plane::config::from_lookup(lookup("15")).unwrap();
    assert_eq!(ok.raw_events_retention_days, 15);
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn erasure_removes_one_visitors_rows_and_not_anothers(pool: PgPool) {
    let app = TestApp::new(pool);
    let (team, s, x) = team_running(&app, "single", &[2]).await;
    ingest_ok(
        &app,
        &batch(vec![
            exposure("x1", &s, x.id, x.arms[0], "v1"),
            exposure("x2", &s, x.id, x.arms[1], "v2"),
            conversion("c1", &s, "v1", "purchase", Some(10.0)),
            conversion("c2", &s, "v2", "purchase", Some(20.0)),
            // Parked: v9 has no assignment yet.
            conversion("c3", &s, "v9", "purchase", Some(5.0)),
        ]),
    )
    .await;
    let before = (
        arm_totals(&app, x.arms[0]).await,
        goal_totals(&app, x.arms[0], x.purchase).await,
    );
    let response = app
        .post(
            &format!("/api/v1/sites/{}/erasure", s.id),
            Some(&team.admin.token),
            json!({"visitor_ids": ["v1", "v9", "v1", "never-seen"]}),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    assert_eq!(
        response.json(),
        json!({"visitors": 3, "raw_exposures": 1, "raw_conversions": 2, "assignments": 1,
               "goal_conversions": 1, "pending_conversions": 1})
    );
    for table in [
        "raw_exposures",
        "raw_conversions",
        "assignments",
        "goal_conversions",
        "pending_conversions",
    ] {
        let left: Vec<String> = sqlx::query_scalar(&format!(
            "SELECT DISTINCT visitor_id FROM {table} ORDER BY 1"
        ))
        .fetch_all(&app.pool)
        .await
        .unwrap();
        let expected: &[&str] = if table == "pending_conversions" {
            &[]
        } else {
            &["v2"]
        };
        assert_eq!(left, expected, "{table}");
    }
    // Aggregates are anonymous counts: they stay.
    assert_eq!(
        (
            arm_totals(&app, x.arms[0]).await,
            goal_totals(&app, x.arms[0], x.purchase).await
        ),
        before
    );
    // Audited with the count, never the ids.
    let entry: String = sqlx::query_scalar(
        "SELECT entry FROM audit_log WHERE action = 'site.erasure' AND org_id = $1",
    )
    .bind(team.owner.org_id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(entry.contains("\"visitors\":3"), "{entry}");
    assert!(
        !entry.contains("v1") && !entry.contains("never-seen"),
        "{entry}"
    );
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn erasure_needs_an_admin_of_the_sites_organisation(pool: PgPool) {
    let app = TestApp::new(pool);
    let (team, s, x) = team_running(&app, "single", &[2]).await;
    ingest_ok(
        &app,
        &batch(vec![exposure("x1", &s, x.id, x.arms[0], "v1")]),
    )
    .await;
    let uri = format!("/api/v1/sites/{}/erasure", s.id);
    let body = json!({"visitor_ids": ["v1"]});
    for (who, token) in [
        ("viewer", &team.viewer.token),
        ("editor", &team.editor.token),
    ] {
        let r = app.post(&uri, Some(token), body.clone()).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{who}: {}", r.text());
    }
    let stranger = new_org(&app).await;
    app.post(&uri, Some(&stranger.token), body.clone())
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    let r = app.post(&uri, None, body.clone()).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(count(&app, "SELECT count(*) FROM raw_exposures").await, 1);
    // The owner may.
    let r = app.post(&uri, Some(&team.owner.token), body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(count(&app, "SELECT count(*) FROM raw_exposures").await, 0);
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn erasure_refuses_no_ids_too_many_or_bad_ones(pool: PgPool) {
    let app = TestApp::new(pool);
    let (team, s, _x) = team_running(&app, "single", &[2]).await;
    let uri = format!("/api/v1/sites/{}/erasure", s.id);
    let too_many: Vec<String> = (0..1001).map(|i| format!("v{i}")).collect();
    for (what, body) in [
        ("no ids", json!({"visitor_ids": []})),
        ("1001 ids", json!({"visitor_ids": too_many})),
        ("an empty id", json!({"visitor_ids": ["v1", ""]})),
        ("an over-long id", json!({"visitor_ids": ["x".repeat(129)]})),
    ] {
        let r = app.post(&uri, Some(&team.admin.token), body).await;
        let problem = r.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(
            problem["errors"][0]["field"], "visitor_ids",
            "{what}: {problem}"
        );
    }
    let r = app
        .post(&uri, Some(&team.admin.token), json!({"visitors": ["v1"]}))
        .await;
    assert!(r.status.is_client_error(), "{what}", what = r.text());
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn deleting_a_site_purges_its_raw_events_and_no_other_sites(pool: PgPool) {
    let app = TestApp::new(pool);
    let (gone_owner, gone, x) = running(&app, "single", &[2]).await;
    let (_kept_owner, kept, y) = running(&app, "single", &[2]).await;
    let yesterday = now_ms() - 86_400_000;
    ingest_ok(
        &app,
        &batch(vec![
            exposure("g1", &gone, x.id, x.arms[0], "v1"),
            exposure_at("g2", &gone, x.id, x.arms[1], "v2", yesterday),
            conversion("g3", &gone, "v1", "purchase", Some(10.0)),
            exposure("k1", &kept, y.id, y.arms[0], "v1"),
            conversion("k2", &kept, "v1", "purchase", Some(3.0)),
        ]),
    )
    .await;
    let raw_of = |site: uuid::Uuid| {
        let app = &app;
        async move {
            let e: i64 =
                sqlx::query_scalar("SELECT count(*) FROM raw_exposures WHERE site_id = $1")
                    .bind(site)
                    .fetch_one(&app.pool)
                    .await
                    .unwrap();
            let c: i64 =
                sqlx::query_scalar("SELECT count(*) FROM raw_conversions WHERE site_id = $1")
                    .bind(site)
                    .fetch_one(&app.pool)
                    .await
                    .unwrap();
            (e, c)
        }
    };
    assert_eq!(raw_of(gone.id).await, (2, 1));

    let deleted = app
        .call_with(
            axum::http::Method::DELETE,
            &format!("/api/v1/sites/{}", gone.id),
            Some(&gone_owner.token),
            None,
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text());
    // Queued by the deletion itself (a trigger), whatever path deleted the site.
    assert_eq!(
        count(&app, "SELECT count(*) FROM raw_event_purges").await,
        1
    );

    let now = OffsetDateTime::now_utc();
    let first = purge_deleted_sites(&app.pool, now).await.unwrap();
    assert_eq!(
        first,
        Purged {
            sites: 1,
            rows: 3,
            done: 0
        }
    );
    assert_eq!(raw_of(gone.id).await, (0, 0));
    assert_eq!(raw_of(kept.id).await, (1, 1), "another site's rows stay");
    // Kept queued for the grace period (a batch resolved before the deletion may still
    // commit), forgotten by the first empty pass after it.
    let within = purge_deleted_sites(&app.pool, now).await.unwrap();
    assert_eq!(
        within,
        Purged {
            sites: 1,
            rows: 0,
            done: 0
        }
    );
    let after = purge_deleted_sites(&app.pool, now + PURGE_GRACE + Duration::minutes(1))
        .await
        .unwrap();
    assert_eq!(
        after,
        Purged {
            sites: 1,
            rows: 0,
            done: 1
        }
    );
    assert_eq!(
        count(&app, "SELECT count(*) FROM raw_event_purges").await,
        0
    );
    assert_eq!(
        purge_deleted_sites(&app.pool, now).await.unwrap(),
        Purged::default()
    );
}
