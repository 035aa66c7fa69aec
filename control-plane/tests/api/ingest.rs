//! `POST /api/v1/ingest`: signature, idempotency, races, attribution, per-item rejections.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use samplit_control_plane::db::aggregates::{ArmCount, arm_counts};
use samplit_engine::ingest as signature;
use serde_json::json;
use sqlx::PgPool;

use crate::fixtures::{
    arm_totals, batch, conversion, conversion_at, experiment, exposure, exposure_at, goal_totals,
    ingest, ingest_ok, now_ms, org_with_site, running, signed_request, site,
};
use crate::helpers::{TEST_INGEST_SECRET, TestApp, new_org};

/// The (id, reason) pairs of an answer's `rejected`, in its order.
fn rejection_reasons(r: &serde_json::Value) -> Vec<(String, String)> {
    r["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["id"].as_str().unwrap().to_owned(),
                x["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn request(body: &[u8], ts: Option<String>, sig: Option<String>) -> Request<Body> {
    let mut builder = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/ingest")
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(ts) = ts {
        builder = builder.header(signature::TIMESTAMP_HEADER, ts);
    }
    if let Some(sig) = sig {
        builder = builder.header(signature::SIGNATURE_HEADER, sig);
    }
    builder.body(Body::from(body.to_vec())).unwrap()
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn unsigned_stale_wrong_or_tampered_batches_are_refused_with_401(pool: PgPool) {
    let app = TestApp::new(pool);
    let (_org, s) = org_with_site(&app).await;
    let body = batch(vec![conversion("c1", &s, "v1", "purchase", None)]).to_string();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let sign = |ts: i64, body: &str| {
        signature::sign(
            TEST_INGEST_SECRET.as_bytes(),
            &ts.to_string(),
            body.as_bytes(),
        )
    };
    let tampered = body.replace("v1", "v2");
    let cases: Vec<(&str, Request<Body>)> = vec![
        ("no headers", request(body.as_bytes(), None, None)),
        (
            "no signature",
            request(body.as_bytes(), Some(now.to_string()), None),
        ),
        (
            "no timestamp",
            request(body.as_bytes(), None, Some(sign(now, &body))),
        ),
        (
            "signed with another secret",
            request(
                body.as_bytes(),
                Some(now.to_string()),
                Some(signature::sign(
                    b"another-secret-0123456789abcdef0123",
                    &now.to_string(),
                    body.as_bytes(),
                )),
            ),
        ),
        (
            "timestamp 301 s old",
            request(
                body.as_bytes(),
                Some((now - 301).to_string()),
                Some(sign(now - 301, &body)),
            ),
        ),
        (
            "timestamp 10 min ahead",
            request(
                body.as_bytes(),
                Some((now + 600).to_string()),
                Some(sign(now + 600, &body)),
            ),
        ),
        (
            "body changed after signing",
            request(
                tampered.as_bytes(),
                Some(now.to_string()),
                Some(sign(now, &body)),
            ),
        ),
        (
            "signature without the sha256= prefix",
            request(
                body.as_bytes(),
                Some(now.to_string()),
                Some(sign(now, &body)[7..].to_owned()),
            ),
        ),
    ];
    for (what, req) in cases {
        let response = app.send(req).await;
        assert_eq!(
            response.status,
            StatusCode::UNAUTHORIZED,
            "{what}: {}",
            response.text()
        );
        response.assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM ingest_seen_items")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(seen, 0, "nothing unsigned was recorded");
    // The same body, properly signed, goes through.
    let ok = app.send(signed_request(body.as_bytes())).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn malformed_and_oversized_batches_are_client_errors(pool: PgPool) {
    let app = TestApp::new(pool);
    let (_org, s) = org_with_site(&app).await;
    for (what, body) in [
        ("not JSON", "{nope".to_owned()),
        ("items missing", json!({"batch_id": "b"}).to_string()),
        (
            "items not a list",
            json!({"batch_id": "b", "items": 3}).to_string(),
        ),
    ] {
        let response = app.send(signed_request(body.as_bytes())).await;
        response.assert_problem(StatusCode::BAD_REQUEST, "bad_request");
        assert!(!what.is_empty());
    }
    let items = (0..1001)
        .map(|i| conversion(&format!("c{i}"), &s, "v", "purchase", None))
        .collect();
    let response = ingest(&app, &batch(items)).await;
    let problem = response.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(problem["errors"][0]["field"], "items");
}

/// Valid JSON that a `serde_json::Value` cannot hold — nested past its depth limit, a
/// number out of range — loses only its own item: the batch's JSON shape is checked
/// whole, its items one by one.
#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn an_item_too_deep_or_out_of_range_is_rejected_and_the_rest_kept(pool: PgPool) {
    let app = TestApp::new(pool);
    let (_org, s) = org_with_site(&app).await;
    let good = conversion("c1", &s, "v1", "purchase", None);
    let deep = format!(
        r#"{{"id":"d1","type":"custom","x":{}1{}}}"#,
        "[".repeat(200),
        "]".repeat(200)
    );
    let huge = r#"{"id":"h1","type":"conversion","value":1e999}"#;
    let body = format!(r#"{{"batch_id":"b","items":[{good},{deep},{huge}]}}"#);
    let response = app.send(signed_request(body.as_bytes())).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let out = response.json();
    assert_eq!(out["accepted"], 1, "{out}");
    let rejected = out["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 2, "{out}");
    for r in rejected {
        assert_eq!(
            (r["id"].as_str(), r["reason"].as_str()),
            (Some(""), Some("invalid_item")),
            "{out}"
        );
    }
    assert!(
        rejected[0]["message"]
            .as_str()
            .unwrap()
            .contains("recursion limit"),
        "{out}"
    );
    assert!(
        rejected[1]["message"]
            .as_str()
            .unwrap()
            .contains("out of range"),
        "{out}"
    );
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn a_batch_sent_twice_counts_once(pool: PgPool) {
    let app = TestApp::new(pool);
    let (_org, s, x) = running(&app, "single", &[2]).await;
    let body = batch(vec![
        exposure("e1", &s, x.id, x.arms[0], "v1"),
        exposure("e2", &s, x.id, x.arms[1], "v2"),
        conversion("c1", &s, "v1", "purchase", Some(20.0)),
    ]);
    let first = ingest_ok(&app, &body).await;
    assert_eq!(first["accepted"], 3, "{first}");
    assert_eq!(first["duplicates"], 0, "{first}");
    let second = ingest_ok(&app, &body).await;
    assert_eq!(second["accepted"], 0, "{second}");
    assert_eq!(second["duplicates"], 3, "{second}");
    assert_eq!(arm_totals(&app, x.arms[0]).await, (1, 0));
    assert_eq!(arm_totals(&app, x.arms[1]).await, (1, 0));
    assert_eq!(
        goal_totals(&app, x.arms[0], x.purchase).await,
        (1, 1, 20.0, 400.0)
    );
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn items_repeated_across_and_within_batches_count_once(pool: PgPool) {
    let app = TestApp::new(pool);
    let (_org, s, x) = running(&app, "single", &[2]).await;
    let a = ingest_ok(
        &app,
        &batch(vec![
            exposure("e1", &s, x.id, x.arms[0], "v1"),
            conversion("c1", &s, "v1", "purchase", Some(5.0)),
            conversion("c1", &s, "v1", "purchase", Some(5.0)),
        ]),
    )
    .await;
    assert_eq!(
        (a["accepted"].as_u64(), a["duplicates"].as_u64()),
        (Some(2), Some(1)),
        "{a}"
    );
    let b = ingest_ok(
        &app,
        &batch(vec![
            conversion("c1", &s, "v1", "purchase", Some(5.0)),
            conversion("c2", &s, "v1", "purchase", Some(7.0)),
        ]),
    )
    .await;
    assert_eq!(
        (b["accepted"].as_u64(), b["duplicates"].as_u64()),
        (Some(1), Some(1)),
        "{b}"
    );
    // One converter; the revenue of c1 once plus c2: 12, squared per visitor: 144.
    assert_eq!(
        goal_totals(&app, x.arms[0], x.purchase).await,
        (1, 1, 12.0, 144.0)
    );
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn two_deliveries_of_the_same_batch_racing_count_once(pool: PgPool) {
    let app = TestApp::new(pool);
    let (_org, s, x) = running(&app, "single", &[2]).await;
    let mut items = Vec::new();
    for v in 0..200 {
        let arm = x.arms[v % 2];
        items.push(exposure(&format!("e{v}"), &s, x.id, arm, &format!("v{v}")));
        if v % 4 == 0 {
            items.push(conversion(
                &format!("c{v}"),
                &s,
                &format!("v{v}"),
                "purchase",
                Some(2.0),
            ));
        }
    }
    let body = batch(items);
    let (r1, r2) = tokio::join!(ingest_ok(&app, &body), ingest_ok(&app, &body));
    let accepted = r1["accepted"].as_u64().unwrap() + r2["accepted"].as_u64().unwrap();
    let duplicates = r1["duplicates"].as_u64().unwrap() + r2["duplicates"].as_u64().unwrap();
    assert_eq!((accepted, duplicates), (250, 250), "{r1} {r2}");
    assert_eq!(arm_totals(&app, x.arms[0]).await, (100, 0));
    assert_eq!(arm_totals(&app, x.arms[1]).await, (100, 0));
    // Visitors 0, 4, 8, ... are all on arm 0 (even): 50 converters with 2.0 each.
    assert_eq!(
        goal_totals(&app, x.arms[0], x.purchase).await,
        (50, 50, 100.0, 200.0)
    );
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn overlapping_batches_racing_for_the_same_visitors_do_not_double_count(pool: PgPool) {
    let app = TestApp::new(pool);
    let (_org, s, x) = running(&app, "single", &[2]).await;
    // Batch A: items a0..a99; batch B: the same visitors with other item ids (a repeat
    // exposure and a second purchase each), plus a50..a99 again.
    let mut a = Vec::new();
    let mut b = Vec::new();
    for v in 0..100 {
        let visitor = format!("v{v}");
        a.push(exposure(&format!("a{v}"), &s, x.id, x.arms[0], &visitor));
        a.push(conversion(
            &format!("ac{v}"),
            &s,
            &visitor,
            "purchase",
            Some(1.0),
        ));
        b.push(exposure(&format!("b{v}"), &s, x.id, x.arms[0], &visitor));
        b.push(conversion(
            &format!("bc{v}"),
            &s,
            &visitor,
            "purchase",
            Some(3.0),
        ));
        if v >= 50 {
            b.push(exposure(&format!("a{v}"), &s, x.id, x.arms[0], &visitor));
        }
    }
    let (a, b) = (batch(a), batch(b));
    let (ra, rb) = tokio::join!(ingest_ok(&app, &a), ingest_ok(&app, &b));
    let accepted = ra["accepted"].as_u64().unwrap() + rb["accepted"].as_u64().unwrap();
    let duplicates = ra["duplicates"].as_u64().unwrap() + rb["duplicates"].as_u64().unwrap();
    assert_eq!((accepted, duplicates), (400, 50), "{ra} {rb}");
    assert_eq!(arm_totals(&app, x.arms[0]).await, (100, 0));
    // 100 converters, each with 1 + 3 = 4: sum 400, sum of squares 100 · 16.
    assert_eq!(
        goal_totals(&app, x.arms[0], x.purchase).await,
        (100, 100, 400.0, 1600.0)
    );
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn the_first_exposure_fixes_the_arm_and_later_ones_to_another_arm_are_conflicts(
    pool: PgPool,
) {
    let app = TestApp::new(pool);
    let (_org, s, x) = running(&app, "single", &[2]).await;
    let t = now_ms();
    // In one batch, the earlier exposure wins whatever the order of the items.
    let first = ingest_ok(
        &app,
        &batch(vec![
            exposure_at("e2", &s, x.id, x.arms[1], "v1", t),
            exposure_at("e1", &s, x.id, x.arms[0], "v1", t - 1000),
        ]),
    )
    .await;
    assert_eq!(
        (first["accepted"].as_u64(), first["conflicts"].as_u64()),
        (Some(1), Some(1)),
        "{first}"
    );
    let later = ingest_ok(
        &app,
        &batch(vec![
            exposure("e3", &s, x.id, x.arms[1], "v1"),
            exposure("e4", &s, x.id, x.arms[0], "v1"),
        ]),
    )
    .await;
    assert_eq!(
        later["accepted"], 1,
        "the repeat exposure to arm 0 is accepted: {later}"
    );
    assert_eq!(later["duplicates"], 1, "{later}");
    assert_eq!(later["conflicts"], 1, "{later}");
    assert_eq!(arm_totals(&app, x.arms[0]).await, (1, 0));
    assert_eq!(
        arm_totals(&app, x.arms[1]).await,
        (0, 2),
        "conflicts are reported on the claimed arm"
    );
    // The conversion goes to the arm the visitor holds.
    ingest_ok(
        &app,
        &batch(vec![conversion("c", &s, "v1", "purchase", None)]),
    )
    .await;
    assert_eq!(goal_totals(&app, x.arms[0], x.purchase).await.0, 1);
    assert_eq!(goal_totals(&app, x.arms[1], x.purchase).await.0, 0);
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn a_goal_counts_once_per_visitor_and_revenue_sums(pool: PgPool) {
    let app = TestApp::new(pool);
    let (_org, s, x) = running(&app, "single", &[2]).await;
    ingest_ok(
        &app,
        &batch(vec![
            exposure("e1", &s, x.id, x.arms[0], "v1"),
            exposure("e2", &s, x.id, x.arms[0], "v2"),
            exposure("e3", &s, x.id, x.arms[0], "v3"),
        ]),
    )
    .await;
    let r = ingest_ok(
        &app,
        &batch(vec![
            conversion("c1", &s, "v1", "purchase", Some(10.0)),
            conversion("c2", &s, "v1", "purchase", Some(5.0)),
            conversion("c3", &s, "v2", "purchase", Some(4.0)),
            // A url goal is matched by its name.
            conversion("c4", &s, "v3", "signup", None),
            conversion("c5", &s, "v3", "signup", None),
        ]),
    )
    .await;
    assert_eq!(r["accepted"], 5, "{r}");
    assert_eq!(r["unattributed"], 0, "{r}");
    ingest_ok(
        &app,
        &batch(vec![conversion("c6", &s, "v2", "purchase", Some(1.0))]),
    )
    .await;
    // v1: 15, v2: 4 + 1 = 5 → sum 20, sum of squares 225 + 25.
    assert_eq!(
        goal_totals(&app, x.arms[0], x.purchase).await,
        (2, 2, 20.0, 250.0)
    );
    assert_eq!(
        goal_totals(&app, x.arms[0], x.signup).await,
        (1, 0, 0.0, 0.0)
    );
    let counts = arm_counts(&app.pool, x.id).await.unwrap();
    // The publisher reads inside its own transaction: a connection works as well.
    let mut tx = app.pool.begin().await.unwrap();
    assert_eq!(arm_counts(&mut *tx, x.id).await.unwrap(), counts);
    tx.rollback().await.unwrap();
    assert_eq!(
        counts,
        vec![
            ArmCount {
                arm_id: x.arms[0],
                exposures: 3,
                conversions: 2
            },
            ArmCount {
                arm_id: x.arms[1],
                exposures: 0,
                conversions: 0
            },
        ]
    );
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn conversions_of_visitors_without_an_assignment_are_accepted_but_unattributed(pool: PgPool) {
    let app = TestApp::new(pool);
    let (_org, s, x) = running(&app, "single", &[2]).await;
    let r = ingest_ok(
        &app,
        &batch(vec![
            conversion("c1", &s, "nobody", "purchase", Some(3.0)),
            conversion("c2", &s, "nobody", "no-such-goal", None),
            json!({"id": "p1", "type": "pageview", "site_key": s.key, "visitor_id": "nobody",
                   "url": "https://shop.example/", "ts_ms": now_ms()}),
        ]),
    )
    .await;
    assert_eq!(
        (r["accepted"].as_u64(), r["unattributed"].as_u64()),
        (Some(3), Some(2)),
        "{r}"
    );
    let unattributed: i64 =
        sqlx::query_scalar("SELECT conversions FROM unattributed_daily WHERE site_id = $1")
            .bind(s.id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(unattributed, 2);
    assert_eq!(goal_totals(&app, x.arms[0], x.purchase).await.0, 0);
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn a_conversion_that_arrives_before_its_exposure_is_attributed_when_the_exposure_comes(
    pool: PgPool,
) {
    // The queue keeps no order: after an outage, or because the edge queues exposures
    // after answering, a visitor's conversion can be ingested first.
    let app = TestApp::new(pool);
    let (_org, s, x) = running(&app, "single", &[2]).await;
    let early = ingest_ok(
        &app,
        &batch(vec![
            conversion("c-early", &s, "late-visitor", "purchase", Some(7.5)),
            conversion("c-never", &s, "never-exposed", "purchase", Some(1.0)),
        ]),
    )
    .await;
    assert_eq!(early["unattributed"], 2, "{early}");
    assert_eq!(
        goal_totals(&app, x.arms[1], x.purchase).await,
        (0, 0, 0.0, 0.0)
    );

    ingest_ok(
        &app,
        &batch(vec![exposure(
            "x-late",
            &s,
            x.id,
            x.arms[1],
            "late-visitor",
        )]),
    )
    .await;
    assert_eq!(
        goal_totals(&app, x.arms[1], x.purchase).await,
        (1, 1, 7.5, 56.25),
        "the parked conversion is attributed to the arm the exposure fixed"
    );
    // Replaying either item changes nothing.
    ingest_ok(
        &app,
        &batch(vec![
            conversion("c-early", &s, "late-visitor", "purchase", Some(7.5)),
            exposure("x-late", &s, x.id, x.arms[1], "late-visitor"),
        ]),
    )
    .await;
    assert_eq!(
        goal_totals(&app, x.arms[1], x.purchase).await,
        (1, 1, 7.5, 56.25)
    );
    let parked: Vec<String> = sqlx::query_scalar("SELECT visitor_id FROM pending_conversions")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(
        parked,
        vec!["never-exposed".to_owned()],
        "only the never-exposed visitor waits"
    );
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn racing_batches_with_a_conversion_and_its_exposure_attribute_it_once(pool: PgPool) {
    let app = TestApp::new(pool);
    let (_org, s, x) = running(&app, "single", &[2]).await;
    for round in 0..5 {
        let visitor = format!("racer-{round}");
        let conv = batch(vec![conversion(
            &format!("c-{round}"),
            &s,
            &visitor,
            "purchase",
            Some(2.0),
        )]);
        let expo = batch(vec![exposure(
            &format!("x-{round}"),
            &s,
            x.id,
            x.arms[0],
            &visitor,
        )]);
        let (a, b) = tokio::join!(ingest_ok(&app, &conv), ingest_ok(&app, &expo));
        assert_eq!(
            (a["accepted"].as_u64(), b["accepted"].as_u64()),
            (Some(1), Some(1))
        );
    }
    let (converters, revenue_n, sum, _) = goal_totals(&app, x.arms[0], x.purchase).await;
    assert_eq!(
        (converters, revenue_n, sum),
        (5, 5, 10.0),
        "every race ends attributed, once"
    );
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn bad_items_are_rejected_one_by_one_and_the_valid_ones_kept(pool: PgPool) {
    let app = TestApp::new(pool);
    let org = new_org(&app).await;
    let other = new_org(&app).await;
    let s = site(&app, org.org_id).await;
    let foreign_site = site(&app, other.org_id).await;
    let x = experiment(&app, org.org_id, s.id, "single", &[2], "running").await;
    let foreign = experiment(
        &app,
        other.org_id,
        foreign_site.id,
        "single",
        &[2],
        "running",
    )
    .await;
    let draft = experiment(&app, org.org_id, s.id, "single", &[2], "draft").await;
    let mut bad_type = exposure("bad-type", &s, x.id, x.arms[0], "v9");
    bad_type["propensity"] = json!("half");
    let mut bad_prop = exposure("bad-propensity", &s, x.id, x.arms[0], "v9");
    bad_prop["propensity"] = json!(1.5);
    let mut unknown_site = exposure("unknown-site", &s, x.id, x.arms[0], "v9");
    unknown_site["site_key"] = json!("site_nope");
    let items = vec![
        exposure("ok-1", &s, x.id, x.arms[0], "v1"),
        unknown_site,
        exposure("foreign-experiment", &s, foreign.id, foreign.arms[0], "v9"),
        exposure(
            "unknown-experiment",
            &s,
            uuid::Uuid::new_v4(),
            x.arms[0],
            "v9",
        ),
        exposure("unknown-arm", &s, x.id, foreign.arms[0], "v9"),
        exposure("not-running", &s, draft.id, draft.arms[0], "v9"),
        bad_type,
        bad_prop,
        conversion("negative-value", &s, "v1", "purchase", Some(-1.0)),
        conversion_at(
            "too-old",
            &s,
            "v1",
            "purchase",
            None,
            now_ms() - 15 * 86_400_000,
        ),
        json!({"type": "conversion"}),
        json!({"id": "typo", "type": "exposre"}),
        conversion("ok-2", &s, "v1", "purchase", Some(9.0)),
    ];
    let r = ingest_ok(&app, &batch(items)).await;
    assert_eq!(r["accepted"], 2, "{r}");
    let reasons = rejection_reasons(&r);
    let expected = [
        ("unknown-site", "unknown_site_key"),
        ("foreign-experiment", "unknown_experiment"),
        ("unknown-experiment", "unknown_experiment"),
        ("unknown-arm", "unknown_arm"),
        ("not-running", "experiment_not_live"),
        ("bad-type", "invalid_item"),
        ("bad-propensity", "invalid_item"),
        ("negative-value", "invalid_item"),
        ("too-old", "too_old"),
        ("", "missing_id"),
        ("typo", "invalid_item"),
    ];
    for (id, reason) in expected {
        assert!(
            reasons.contains(&(id.to_owned(), reason.to_owned())),
            "{id} should be rejected with {reason}: {reasons:?}"
        );
    }
    assert_eq!(reasons.len(), expected.len(), "{reasons:?}");
    assert_eq!(arm_totals(&app, x.arms[0]).await, (1, 0));
    assert_eq!(arm_totals(&app, foreign.arms[0]).await, (0, 0));
    assert_eq!(
        goal_totals(&app, x.arms[0], x.purchase).await,
        (1, 1, 9.0, 81.0)
    );
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn independent_elements_are_separate_units_and_a_conversion_counts_for_each(pool: PgPool) {
    let app = TestApp::new(pool);
    let (_org, s, x) = running(&app, "independent", &[2, 2]).await;
    // arms: [e0v0, e0v1, e1v0, e1v1]
    let mut second = exposure("e2", &s, x.id, x.arms[3], "v1");
    second["element_id"] = json!(x.elements[1]);
    let mut wrong_element = exposure("e3", &s, x.id, x.arms[3], "v2");
    wrong_element["element_id"] = json!(x.elements[0]);
    let r = ingest_ok(
        &app,
        &batch(vec![
            exposure("e1", &s, x.id, x.arms[0], "v1"),
            second,
            wrong_element,
            conversion("c1", &s, "v1", "purchase", Some(4.0)),
        ]),
    )
    .await;
    assert_eq!(r["accepted"], 3, "{r}");
    assert_eq!(r["rejected"][0]["reason"], "element_mismatch", "{r}");
    assert_eq!(arm_totals(&app, x.arms[0]).await, (1, 0));
    assert_eq!(
        arm_totals(&app, x.arms[3]).await,
        (1, 0),
        "not a conflict: another unit"
    );
    assert_eq!(
        goal_totals(&app, x.arms[0], x.purchase).await,
        (1, 1, 4.0, 16.0)
    );
    assert_eq!(
        goal_totals(&app, x.arms[3], x.purchase).await,
        (1, 1, 4.0, 16.0)
    );
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn daily_buckets_follow_the_event_day(pool: PgPool) {
    let app = TestApp::new(pool);
    let (_org, s, x) = running(&app, "single", &[2]).await;
    let day = 86_400_000;
    let t = now_ms();
    ingest_ok(
        &app,
        &batch(vec![
            exposure_at("e1", &s, x.id, x.arms[0], "v1", t - 2 * day),
            exposure_at("e2", &s, x.id, x.arms[0], "v2", t - 2 * day),
            exposure_at("e3", &s, x.id, x.arms[0], "v3", t),
            conversion_at("c1", &s, "v1", "purchase", Some(1.0), t - day),
        ]),
    )
    .await;
    let rows: Vec<(time::Date, i64)> =
        sqlx::query_as("SELECT day, visitors FROM arm_daily WHERE arm_id = $1 ORDER BY day")
            .bind(x.arms[0])
            .fetch_all(&app.pool)
            .await
            .unwrap();
    let today = time::OffsetDateTime::now_utc().date();
    assert_eq!(rows, vec![(today - time::Duration::days(2), 2), (today, 1)]);
    let conv: Vec<(time::Date, i64)> = sqlx::query_as(
        "SELECT day, converters FROM arm_goal_daily WHERE arm_id = $1 AND goal_id = $2",
    )
    .bind(x.arms[0])
    .bind(x.purchase)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(conv, vec![(today - time::Duration::days(1), 1)]);
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn ingested_items_are_counted_by_outcome_in_the_metrics(pool: PgPool) {
    let app = TestApp::new(pool);
    let (_org, s, x) = running(&app, "single", &[2]).await;
    let body = batch(vec![
        exposure("e1", &s, x.id, x.arms[0], "v1"),
        conversion("c1", &s, "nobody", "purchase", None),
        json!({"id": "bad"}),
    ]);
    ingest_ok(&app, &body).await;
    ingest_ok(&app, &body).await;
    let text = app.get("/metrics", None).await.text();
    for line in [
        r#"samplit_ingest_items_total{outcome="accepted"} 1"#,
        r#"samplit_ingest_items_total{outcome="unattributed"} 1"#,
        r#"samplit_ingest_items_total{outcome="duplicate"} 2"#,
        r#"samplit_ingest_items_total{outcome="rejected"} 2"#,
    ] {
        assert!(text.contains(line), "{line} in {text}");
    }
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn the_first_exposure_from_a_verified_host_marks_the_snippet_as_seen(pool: PgPool) {
    let app = TestApp::new(pool);
    let (org, s, x) = running(&app, "single", &[2]).await;
    sqlx::query("INSERT INTO site_domains (site_id, host, token) VALUES ($1, 'shop.example', 't')")
        .bind(s.id)
        .execute(&app.pool)
        .await
        .unwrap();
    let seen = || async {
        sqlx::query_scalar::<_, Option<time::OffsetDateTime>>(
            "SELECT snippet_seen_at FROM sites WHERE id = $1",
        )
        .bind(s.id)
        .fetch_one(&app.pool)
        .await
        .unwrap()
    };
    let with_host = |id: &str, host: &str| {
        let mut e = exposure(id, &s, x.id, x.arms[0], "v1");
        e["host"] = serde_json::json!(host);
        e
    };
    // From an unverified (pending) host, or a host the site does not hold: not installed.
    ingest_ok(
        &app,
        &batch(vec![
            with_host("e1", "shop.example"),
            with_host("e2", "shop.victim.com"),
        ]),
    )
    .await;
    assert!(seen().await.is_none(), "a pending host proves nothing");
    sqlx::query("UPDATE site_domains SET status = 'verified', method = 'dns_txt', verified_at = now() WHERE site_id = $1")
        .bind(s.id)
        .execute(&app.pool)
        .await
        .unwrap();
    ingest_ok(
        &app,
        &batch(vec![exposure("e3", &s, x.id, x.arms[0], "v1")]),
    )
    .await;
    assert!(
        seen().await.is_none(),
        "an exposure without a host (an older edge) proves nothing"
    );
    ingest_ok(&app, &batch(vec![with_host("e4", "SHOP.example")])).await;
    let first = seen()
        .await
        .expect("set by the first exposure from the verified host");
    ingest_ok(&app, &batch(vec![with_host("e5", "shop.example")])).await;
    assert_eq!(seen().await, Some(first), "set once");
    let view = app
        .get(&format!("/api/v1/sites/{}", s.id), Some(&org.token))
        .await
        .json();
    assert!(view["snippet_seen_at"].is_string(), "{view}");
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn unsigned_revenue_is_capped_per_visitor_and_signed_revenue_is_not(pool: PgPool) {
    // The edge refuses a single unsigned event above the cap; many events just under it
    // would still add up, so ingestion holds each visitor's unsigned total on a goal to
    // the site's cap. Revenue from signed server calls (`"signed": true`, set by the edge
    // after verifying the call) is counted whole.
    let app = TestApp::new(pool);
    let (org, s, x) = running(&app, "single", &[2]).await;
    let uri = format!("/api/v1/sites/{}/revenue-cap", s.id);
    let etag = app.get(&uri, Some(&org.token)).await.etag();
    let put = app
        .call_with(
            Method::PUT,
            &uri,
            Some(&org.token),
            Some(json!({ "revenue_cap": 100 })),
            &[("if-match", &etag)],
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text());
    let signed = |mut item: serde_json::Value| {
        item["signed"] = json!(true);
        item
    };
    ingest_ok(
        &app,
        &batch(vec![
            exposure("e1", &s, x.id, x.arms[0], "forger"),
            exposure("e2", &s, x.id, x.arms[0], "buyer"),
            exposure("e3", &s, x.id, x.arms[0], "mixed"),
        ]),
    )
    .await;
    // forger: 60 + 60 in one batch (→ 100), then 99 more later (→ still 100).
    // buyer: signed 150 + 150 (→ 300, no cap).
    // mixed: unsigned 80, signed 500, then unsigned 80 (→ 100 unsigned + 500 signed).
    ingest_ok(
        &app,
        &batch(vec![
            conversion("f1", &s, "forger", "purchase", Some(60.0)),
            conversion("f2", &s, "forger", "purchase", Some(60.0)),
            signed(conversion("b1", &s, "buyer", "purchase", Some(150.0))),
            signed(conversion("b2", &s, "buyer", "purchase", Some(150.0))),
            conversion("m1", &s, "mixed", "purchase", Some(80.0)),
            signed(conversion("m2", &s, "mixed", "purchase", Some(500.0))),
        ]),
    )
    .await;
    ingest_ok(
        &app,
        &batch(vec![
            conversion("f3", &s, "forger", "purchase", Some(99.0)),
            conversion("m3", &s, "mixed", "purchase", Some(80.0)),
        ]),
    )
    .await;
    let totals: Vec<(String, f64, f64, f64)> = sqlx::query_as(
        "SELECT visitor_id, revenue, unsigned_revenue, signed_revenue FROM goal_conversions
          WHERE goal_id = $1 ORDER BY visitor_id",
    )
    .bind(x.purchase)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        totals,
        vec![
            ("buyer".to_owned(), 300.0, 0.0, 300.0),
            ("forger".to_owned(), 100.0, 100.0, 0.0),
            ("mixed".to_owned(), 600.0, 100.0, 500.0),
        ]
    );
    // The aggregates the results read agree: Σ = 1000, Σ² = 300² + 100² + 600².
    assert_eq!(
        goal_totals(&app, x.arms[0], x.purchase).await,
        (3, 3, 1000.0, 460_000.0)
    );
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn a_parked_conversion_keeps_its_signed_flag_and_the_cap_applies_when_it_is_attributed(
    pool: PgPool,
) {
    let app = TestApp::new(pool);
    let (_org, s, x) = running(&app, "single", &[2]).await;
    sqlx::query("UPDATE sites SET revenue_cap = 50 WHERE id = $1")
        .bind(s.id)
        .execute(&app.pool)
        .await
        .unwrap();
    let mut signed = conversion("p-signed", &s, "early", "purchase", Some(200.0));
    signed["signed"] = json!(true);
    ingest_ok(
        &app,
        &batch(vec![
            signed,
            conversion("p-unsigned-1", &s, "early", "purchase", Some(40.0)),
            conversion("p-unsigned-2", &s, "early", "purchase", Some(40.0)),
        ]),
    )
    .await;
    let parked: Vec<(String, f64, bool)> =
        sqlx::query_as("SELECT item_id, value, signed FROM pending_conversions ORDER BY item_id")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        parked,
        vec![
            ("p-signed".to_owned(), 200.0, true),
            ("p-unsigned-1".to_owned(), 40.0, false),
            ("p-unsigned-2".to_owned(), 40.0, false),
        ]
    );
    ingest_ok(
        &app,
        &batch(vec![exposure("x-early", &s, x.id, x.arms[1], "early")]),
    )
    .await;
    // 200 signed + min(40 + 40, 50) unsigned.
    assert_eq!(
        goal_totals(&app, x.arms[1], x.purchase).await,
        (1, 1, 250.0, 62_500.0)
    );
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn housekeeping_forgets_ids_and_parked_conversions_past_the_replay_window_and_stops_on_shutdown(
    pool: PgPool,
) {
    use samplit_control_plane::ingest::housekeeping;
    let app = TestApp::new(pool.clone());
    let (_org, s, x) = running(&app, "single", &[2]).await;
    ingest_ok(
        &app,
        &batch(vec![
            conversion("fresh-parked", &s, "nobody-yet", "purchase", Some(1.0)),
            exposure("fresh-exposure", &s, x.id, x.arms[0], "v1"),
        ]),
    )
    .await;
    // Age some rows past the 14-day window, as if they had been written then.
    sqlx::query(
        "INSERT INTO ingest_seen_items (item_id, seen_at)
         VALUES ('old-1', now() - interval '15 days'), ('old-2', now() - interval '30 days')",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO pending_conversions (item_id, goal_id, experiment_id, visitor_id, value, at)
         VALUES ('old-parked', $1, $2, 'gone', 1, now() - interval '15 days')",
    )
    .bind(x.purchase)
    .bind(x.id)
    .execute(&pool)
    .await
    .unwrap();

    let pruned = housekeeping::prune(&pool, time::OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert_eq!((pruned.seen, pruned.pending), (2, 1));
    let seen: Vec<String> =
        sqlx::query_scalar("SELECT item_id FROM ingest_seen_items ORDER BY item_id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(seen, ["fresh-exposure", "fresh-parked"], "recent ids stay");
    let parked: Vec<String> = sqlx::query_scalar("SELECT item_id FROM pending_conversions")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(parked, ["fresh-parked"]);

    // The task prunes at start, then waits for its interval or the shutdown signal.
    sqlx::query("INSERT INTO ingest_seen_items (item_id, seen_at) VALUES ('old-3', now() - interval '20 days')")
        .execute(&pool)
        .await
        .unwrap();
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(housekeeping::run(
        pool.clone(),
        std::time::Duration::from_secs(3600),
        90,
        async move {
            let _ = stop_rx.wait_for(|s| *s).await;
        },
    ));
    let mut gone = false;
    for _ in 0..100 {
        let n: i64 =
            sqlx::query_scalar("SELECT count(*) FROM ingest_seen_items WHERE item_id = 'old-3'")
                .fetch_one(&pool)
                .await
                .unwrap();
        if n == 0 {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(gone, "the task prunes when it starts");
    stop_tx.send(true).unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(5), task)
        .await
        .expect("the task stops on shutdown")
        .unwrap();
}

/// Revenue is counted in one currency per site: the first event naming one fixes it (a
/// Shopify install fixes it to the shop's), revenue in another is rejected item by item
/// (`currency_mismatch`) and never added; an invalid code is an invalid item; a value
/// without a currency counts in the site's. The results say which currency they are in.
#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn revenue_in_a_second_currency_is_refused_and_results_name_the_currency(pool: PgPool) {
    let app = TestApp::new(pool);
    let (org, s, x) = running(&app, "single", &[2]).await;
    ingest_ok(
        &app,
        &batch(vec![
            exposure("e1", &s, x.id, x.arms[0], "v1"),
            exposure("e2", &s, x.id, x.arms[0], "v2"),
        ]),
    )
    .await;
    let uri = format!("/api/v1/experiments/{}/results", x.id);
    let before = app.get(&uri, Some(&org.token)).await.json();
    assert_eq!(before["currency"], json!(null), "{before}");

    let with_currency = |id: &str, visitor: &str, value: f64, code: &str| {
        let mut c = conversion(id, &s, visitor, "purchase", Some(value));
        c["currency"] = json!(code);
        c
    };
    let r = ingest_ok(
        &app,
        &batch(vec![
            with_currency("eur", "v1", 10.0, "EUR"),
            with_currency("usd", "v2", 5.0, "USD"),
            with_currency("lower", "v2", 5.0, "eur"),
            conversion("plain", &s, "v2", "purchase", Some(3.0)),
        ]),
    )
    .await;
    assert_eq!(r["accepted"], 2, "{r}");
    let reasons = rejection_reasons(&r);
    assert_eq!(
        reasons,
        vec![
            ("lower".to_owned(), "invalid_item".to_owned()),
            ("usd".to_owned(), "currency_mismatch".to_owned()),
        ]
    );
    // v1: 10 EUR, v2: 3 (the site's currency); the 5 USD is nowhere.
    assert_eq!(
        goal_totals(&app, x.arms[0], x.purchase).await,
        (2, 2, 13.0, 109.0)
    );
    let currency: Option<String> = sqlx::query_scalar("SELECT currency FROM sites WHERE id = $1")
        .bind(s.id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(currency.as_deref(), Some("EUR"));
    let after = app.get(&uri, Some(&org.token)).await.json();
    assert_eq!(after["currency"], "EUR", "{after}");
}
