//! The per-site daily raw-event quota (`SAMPLIT_RAW_EVENTS_PER_SITE_DAY`; docs/ingestion.md,
//! "Raw-event quota"), through the ingest endpoint with a quota of 10: past it a batch's
//! aggregates still count every event while its latest raw rows of the day are not kept
//! and are counted in `raw_event_days.dropped`; replays change nothing, other sites and
//! days keep their own count, concurrent batches never keep more than the quota, and a
//! funnel reading those days says it undercounts.

use axum::http::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use time::{Date, Duration, OffsetDateTime};
use uuid::Uuid;

use crate::fixtures::{
    Experiment, Site, arm_totals, batch, conversion_at, exposure_at, goal_totals, ingest_ok,
    running,
};
use crate::helpers::{TestApp, test_config_with};

const QUOTA: i64 = 10;

fn app(pool: PgPool) -> TestApp {
    TestApp::with_config(
        pool,
        test_config_with(&[("SAMPLIT_RAW_EVENTS_PER_SITE_DAY", "10")]),
    )
}

/// Noon (UTC) `days_ago` days before today, in ms: every event of a test lies within
/// minutes of it, so on one UTC day, in the past and inside the 14-day replay window.
fn noon(days_ago: i64) -> (Date, i64) {
    let day = OffsetDateTime::now_utc().date() - Duration::days(days_ago);
    let at = day.with_time(time::macros::time!(12:00)).assume_utc();
    (day, (at.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// `n` exposures of new visitors `{prefix}0..`, alternating between the two arms, one
/// second apart from `base`.
fn exposures(site: &Site, x: &Experiment, prefix: &str, n: usize, base: i64) -> Vec<Value> {
    (0..n)
        .map(|i| {
            exposure_at(
                &format!("x-{prefix}{i}"),
                site,
                x.id,
                x.arms[i % 2],
                &format!("{prefix}{i}"),
                base + i as i64 * 1000,
            )
        })
        .collect()
}

/// A purchase of 10.0 by visitor `visitor` at `ts`.
fn purchase(id: &str, site: &Site, visitor: &str, ts: i64) -> Value {
    conversion_at(id, site, visitor, "purchase", Some(10.0), ts)
}

/// (raw exposures, raw conversions) of a site on a day.
async fn raw_rows(app: &TestApp, site: Uuid, day: Date) -> (i64, i64) {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM raw_exposures WHERE site_id = $1 AND day = $2),
                (SELECT count(*) FROM raw_conversions WHERE site_id = $1 AND day = $2)",
    )
    .bind(site)
    .bind(day)
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

/// The item ids of a site's raw conversions, sorted.
async fn raw_conversion_ids(app: &TestApp, site: Uuid) -> Vec<String> {
    sqlx::query_scalar("SELECT item_id FROM raw_conversions WHERE site_id = $1 ORDER BY item_id")
        .bind(site)
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

/// `raw_event_days` of a site: (day, kept, dropped) in day order.
async fn raw_days(app: &TestApp, site: Uuid) -> Vec<(Date, i64, i64)> {
    sqlx::query_as("SELECT day, kept, dropped FROM raw_event_days WHERE site_id = $1 ORDER BY day")
        .bind(site)
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

/// Creates a funnel (signup, then purchase) on `x` as `token` and returns its results.
async fn funnel_results(app: &TestApp, token: &str, x: &Experiment) -> Value {
    let uri = format!("/api/v1/experiments/{}/funnels", x.id);
    let r = app
        .post(
            &uri,
            Some(token),
            json!({"name": "Checkout", "steps": [x.signup, x.purchase]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_owned();
    let r = app.get(&format!("{uri}/{id}/results"), Some(token)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    r.json()
}

fn warning<'a>(body: &'a Value, code: &str) -> Option<&'a Value> {
    body["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["code"] == code)
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn past_the_daily_quota_raw_rows_are_dropped_while_aggregates_count_every_event(
    pool: PgPool,
) {
    let app = app(pool);
    let (owner, site, x) = running(&app, "single", &[2]).await;
    let (other_owner, other, y) = running(&app, "single", &[2]).await;
    let (day, base) = noon(1);
    let [arm0, arm1] = [x.arms[0], x.arms[1]];

    // 1. Twelve raw rows against a quota of 10: 8 exposures (v0..v7, from noon), then 4
    // purchases (v0..v3, 100 s later). The two latest, p2 and p3, are not kept.
    let mut items = exposures(&site, &x, "v", 8, base);
    for i in 0..4 {
        items.push(purchase(
            &format!("p{i}"),
            &site,
            &format!("v{i}"),
            base + (100 + i) * 1000,
        ));
    }
    let first = batch(items);
    let answer = ingest_ok(&app, &first).await;
    assert_eq!(answer["accepted"], 12, "{answer}");
    assert_eq!(
        answer["raw_dropped"], 2,
        "the answer says what was not kept: {answer}"
    );
    assert_eq!(raw_rows(&app, site.id, day).await, (8, 2));
    assert_eq!(raw_conversion_ids(&app, site.id).await, ["p0", "p1"]);
    assert_eq!(raw_days(&app, site.id).await, [(day, QUOTA, 2)]);

    // 2. The day is full: a second batch (2 exposures, 1 purchase) keeps no raw row.
    let mut items = exposures(&site, &x, "w", 2, base + 200_000);
    items.push(purchase("q0", &site, "w0", base + 300_000));
    let second = batch(items);
    let answer = ingest_ok(&app, &second).await;
    assert_eq!(answer["accepted"], 3, "{answer}");
    assert_eq!(answer["raw_dropped"], 3, "{answer}");
    assert_eq!(raw_rows(&app, site.id, day).await, (8, 2));
    assert_eq!(raw_days(&app, site.id).await, [(day, QUOTA, 5)]);

    // Aggregates count every event: 5 visitors per arm (v0 v2 v4 v6 w0; v1 v3 v5 v7 w1),
    // purchasers v0 v2 w0 on arm 0 and v1 v3 on arm 1, 10.0 each.
    assert_eq!(arm_totals(&app, arm0).await, (5, 0));
    assert_eq!(arm_totals(&app, arm1).await, (5, 0));
    assert_eq!(
        goal_totals(&app, arm0, x.purchase).await,
        (3, 3, 30.0, 300.0)
    );
    assert_eq!(
        goal_totals(&app, arm1, x.purchase).await,
        (2, 2, 20.0, 200.0)
    );

    // 3. Replays are duplicates: nothing counted, kept or dropped again.
    for body in [&first, &second] {
        let answer = ingest_ok(&app, body).await;
        assert_eq!(answer["accepted"], 0, "{answer}");
        assert_eq!(answer["raw_dropped"], 0, "{answer}");
    }
    assert_eq!(raw_rows(&app, site.id, day).await, (8, 2));
    assert_eq!(raw_days(&app, site.id).await, [(day, QUOTA, 5)]);
    assert_eq!(arm_totals(&app, arm0).await, (5, 0));
    assert_eq!(
        goal_totals(&app, arm0, x.purchase).await,
        (3, 3, 30.0, 300.0)
    );

    // 4. Another day of the same site has its own quota.
    let (before, base_before) = noon(2);
    let answer = ingest_ok(&app, &batch(exposures(&site, &x, "older", 3, base_before))).await;
    assert_eq!(answer["raw_dropped"], 0, "{answer}");
    assert_eq!(raw_rows(&app, site.id, before).await, (3, 0));
    assert_eq!(
        raw_days(&app, site.id).await,
        [(before, 3, 0), (day, QUOTA, 5)]
    );

    // 5. Another site, the same day, is unaffected.
    let mut items = exposures(&other, &y, "o", 6, base);
    items.push(purchase("op", &other, "o0", base + 100_000));
    ingest_ok(&app, &batch(items)).await;
    assert_eq!(raw_rows(&app, other.id, day).await, (6, 1));
    assert_eq!(raw_days(&app, other.id).await, [(day, 7, 0)]);

    // 6. A funnel over the capped day says so; the other site's does not.
    let body = funnel_results(&app, &owner.token, &x).await;
    let capped = warning(&body, "raw_events_capped").unwrap_or_else(|| panic!("{body}"));
    let message = capped["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("on {day}:")) && message.contains(" 5 raw events"),
        "{message}"
    );
    let body = funnel_results(&app, &other_owner.token, &y).await;
    assert!(warning(&body, "raw_events_capped").is_none(), "{body}");
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn concurrent_batches_of_one_site_and_day_never_keep_more_than_the_quota(pool: PgPool) {
    let app = app(pool);
    let (_, site, x) = running(&app, "single", &[2]).await;
    let (day, base) = noon(1);
    // Four batches of 6 exposures at once: 24 rows, 10 kept, 14 dropped, whatever the
    // interleaving.
    let bodies: Vec<Value> = ["a", "b", "c", "d"]
        .iter()
        .map(|p| batch(exposures(&site, &x, p, 6, base)))
        .collect();
    let answers = futures_util::future::join_all(bodies.iter().map(|b| ingest_ok(&app, b))).await;
    for answer in &answers {
        assert_eq!(answer["accepted"], 6, "{answer}");
    }
    let dropped: u64 = answers
        .iter()
        .map(|a| a["raw_dropped"].as_u64().unwrap())
        .sum();
    assert_eq!(
        dropped, 14,
        "each answer says what of its batch was not kept"
    );
    assert_eq!(raw_rows(&app, site.id, day).await, (QUOTA, 0));
    assert_eq!(raw_days(&app, site.id).await, [(day, QUOTA, 14)]);
    let visitors = arm_totals(&app, x.arms[0]).await.0 + arm_totals(&app, x.arms[1]).await.0;
    assert_eq!(visitors, 24, "the aggregates count every exposure");
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn deleting_a_site_deletes_its_raw_event_counts(pool: PgPool) {
    let app = app(pool);
    let (_, site, x) = running(&app, "single", &[2]).await;
    let (_, base) = noon(1);
    ingest_ok(&app, &batch(exposures(&site, &x, "v", 12, base))).await;
    assert_eq!(raw_days(&app, site.id).await.len(), 1);
    sqlx::query("DELETE FROM sites WHERE id = $1")
        .bind(site.id)
        .execute(&app.pool)
        .await
        .unwrap();
    assert!(raw_days(&app, site.id).await.is_empty());
}
