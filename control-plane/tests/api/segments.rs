//! `GET /api/v1/experiments/{id}/segments`: numbers against the SciPy reference
//! (`control-plane/tests/reference/segments.py`), segment sums equal to the arm totals in
//! every dimension, and authorisation.

use axum::http::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::fixtures::{
    arm_totals, batch, conversion, exposure, exposure_at, goal_totals, ingest_ok, now_ms,
    team_running,
};
use crate::helpers::{TestApp, new_org};

fn with_context(mut item: Value, context: Value) -> Value {
    item["context"] = context;
    item
}

fn device(name: &str) -> Value {
    json!({"device": name, "browser": "chrome", "source": "direct",
           "prior_visits": 0, "prior_conversions": 0})
}

fn close(actual: &Value, expected: f64) {
    let a = actual
        .as_f64()
        .unwrap_or_else(|| panic!("{actual} is not a number"));
    assert!((a - expected).abs() < 1e-9, "{a} vs {expected}");
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn segment_figures_equal_the_reference_values(pool: PgPool) {
    let app = TestApp::new(pool);
    let (team, s, x) = team_running(&app, "single", &[2]).await;
    // (device, arm, visitors, converters): the reference scenario.
    let plan = [
        ("desktop", 0, 120, 12),
        ("desktop", 1, 130, 26),
        ("mobile", 0, 150, 15),
        ("mobile", 1, 140, 21),
        ("tablet", 0, 40, 4),
        ("tablet", 1, 30, 6),
    ];
    let mut items = Vec::new();
    for (dev, arm, visitors, converters) in plan {
        for i in 0..visitors {
            let v = format!("{dev}-{arm}-{i}");
            items.push(with_context(
                exposure(&format!("x-{v}"), &s, x.id, x.arms[arm], &v),
                device(dev),
            ));
            if i < converters {
                items.push(conversion(&format!("c-{v}"), &s, &v, "purchase", None));
            }
        }
    }
    let answer = ingest_ok(&app, &batch(items)).await;
    assert_eq!(answer["rejected"], json!([]), "{answer}");

    let r = app
        .get(
            &format!("/api/v1/experiments/{}/segments?dimension=device", x.id),
            Some(&team.viewer.token),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let body = r.json();
    assert_eq!(body["dimension"], "device");
    assert_eq!(body["goal"]["id"], json!(x.purchase), "the primary goal");
    let analysis = &body["analyses"][0];
    assert_eq!(analysis["scope"], "arms");
    assert_eq!(analysis["subjects"][0]["is_control"], true);
    let segments = analysis["segments"].as_array().unwrap();
    let values: Vec<&str> = segments
        .iter()
        .map(|s| s["value"].as_str().unwrap())
        .collect();
    assert_eq!(values, ["desktop", "mobile", "tablet"]);
    let (desktop, mobile, tablet) = (&segments[0], &segments[1], &segments[2]);
    assert_eq!(desktop["arms"][0]["visitors"], 120);
    assert_eq!(desktop["arms"][1]["converters"], 26);
    close(
        &desktop["arms"][0]["rate_interval"]["lower"],
        0.05813359202601076,
    );
    close(
        &desktop["arms"][0]["rate_interval"]["upper"],
        0.166681741108952,
    );
    close(
        &mobile["arms"][1]["rate_interval"]["lower"],
        0.10025055316583266,
    );
    let c = &desktop["arms"][1]["comparison"];
    close(&c["lift"]["relative"], 1.0);
    close(&c["lift"]["interval"]["lower"], 0.05730596524075393);
    close(&c["lift"]["interval"]["upper"], 2.7832000683824574);
    close(&c["p_value"], 0.027788966789612336);
    close(&c["p_value_holm"], 0.05557793357922467);
    close(
        &mobile["arms"][1]["comparison"]["lift"]["interval"]["lower"],
        -0.19410665701627394,
    );
    close(
        &mobile["arms"][1]["comparison"]["p_value"],
        0.19692605428514054,
    );
    close(
        &mobile["arms"][1]["comparison"]["p_value_holm"],
        0.19692605428514054,
    );
    close(&desktop["srm"]["p_value"], 0.5270892568655381);
    close(&mobile["srm"]["p_value"], 0.557055814409406);
    close(&tablet["srm"]["p_value"], 0.23199772362873072);
    assert_eq!(tablet["small"], true);
    assert_eq!(tablet["arms"][1]["comparison"]["p_value"], Value::Null);
    assert_eq!(tablet["arms"][1]["comparison"]["small"], true);
    // A revenue goal without values: revenue per visitor 0.
    assert_eq!(desktop["arms"][0]["revenue_per_visitor"], 0.0);
    let codes: Vec<&str> = body["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["multiple_comparisons", "small_segments"]);
    assert_eq!(body["warnings"][1]["values"], json!(["tablet"]));
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn segments_add_up_to_the_arm_totals_in_every_dimension(pool: PgPool) {
    let app = TestApp::new(pool);
    let (team, s, x) = team_running(&app, "single", &[2]).await;
    let contexts = [
        json!({"country": "ES", "device": "mobile", "browser": "safari", "source": "search",
               "prior_visits": 2, "prior_conversions": 0}),
        json!({"country": "FR", "device": "desktop", "browser": "firefox", "source": "paid",
               "prior_visits": 0, "prior_conversions": 0}),
        json!({"country": "xx", "device": "smart-fridge", "browser": "lynx", "source": "??",
               "prior_visits": 0, "prior_conversions": 0}),
        Value::Null, // no context at all
    ];
    let t = now_ms();
    let mut items = Vec::new();
    for i in 0..40 {
        let v = format!("v{i}");
        let mut e = exposure_at(&format!("x{i}"), &s, x.id, x.arms[i % 2], &v, t - 1000);
        if !contexts[i % 4].is_null() {
            e = with_context(e, contexts[i % 4].clone());
        }
        items.push(e);
        // A later exposure of the same visitor with another context: the first counts.
        items.push(with_context(
            exposure_at(&format!("y{i}"), &s, x.id, x.arms[i % 2], &v, t),
            contexts[(i + 1) % 4].clone(),
        ));
        if i % 3 == 0 {
            items.push(conversion(
                &format!("c{i}"),
                &s,
                &v,
                "purchase",
                Some(10.0 + i as f64),
            ));
        }
        if i % 5 == 0 {
            items.push(conversion(&format!("d{i}"), &s, &v, "signup", None));
        }
    }
    // A conflicting exposure and a conversion parked before its exposure.
    items.push(exposure_at("z0", &s, x.id, x.arms[1], "v0", t));
    items.push(conversion("early", &s, "late", "purchase", Some(7.0)));
    ingest_ok(&app, &batch(items)).await;
    // A second batch: repeated purchases of the same visitors (revenue moments move by
    // t1² − t0²), the parked visitor's exposure, and new visitors.
    let mut more = vec![with_context(
        exposure("x-late", &s, x.id, x.arms[0], "late"),
        contexts[0].clone(),
    )];
    for i in (0..40).step_by(3) {
        more.push(conversion(
            &format!("c2-{i}"),
            &s,
            &format!("v{i}"),
            "purchase",
            Some(2.5),
        ));
    }
    for i in 40..50 {
        more.push(with_context(
            exposure(&format!("x{i}"), &s, x.id, x.arms[i % 2], &format!("v{i}")),
            contexts[i % 4].clone(),
        ));
        more.push(conversion(
            &format!("c{i}"),
            &s,
            &format!("v{i}"),
            "purchase",
            Some(1.0),
        ));
    }
    ingest_ok(&app, &batch(more)).await;

    for goal in [x.purchase, x.signup] {
        for dimension in ["country", "device", "browser", "source", "visitor_type"] {
            let r = app
                .get(
                    &format!(
                        "/api/v1/experiments/{}/segments?dimension={dimension}&goal={goal}",
                        x.id
                    ),
                    Some(&team.viewer.token),
                )
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text());
            let body = r.json();
            let segments = body["analyses"][0]["segments"].as_array().unwrap();
            assert!(segments.len() > 1, "{dimension}: {body}");
            for (i, arm) in x.arms.iter().enumerate() {
                let sum = |field: &str| -> f64 {
                    segments
                        .iter()
                        .map(|s| s["arms"][i][field].as_f64().unwrap())
                        .sum()
                };
                let (visitors, _) = arm_totals(&app, *arm).await;
                let (converters, _, revenue, revenue_sq) = goal_totals(&app, *arm, goal).await;
                let what = format!("{dimension}, arm {i}, goal {goal}");
                assert_eq!(sum("visitors"), visitors as f64, "{what}");
                assert_eq!(sum("converters"), converters as f64, "{what}");
                if goal == x.purchase {
                    assert!((sum("revenue_sum") - revenue).abs() < 1e-9, "{what}");
                    assert!((sum("revenue_sumsq") - revenue_sq).abs() < 1e-6, "{what}");
                    assert!(revenue_sq > 0.0);
                }
            }
        }
    }
    // The first exposure's context decided: v0 (context 0) is a returning mobile visitor.
    let r = app
        .get(
            &format!("/api/v1/experiments/{}/segments?dimension=device", x.id),
            Some(&team.viewer.token),
        )
        .await
        .json();
    let values: Vec<&str> = r["analyses"][0]["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["value"].as_str().unwrap())
        .collect();
    assert_eq!(values, ["desktop", "mobile", "other", "unknown"]);
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn segments_are_for_members_and_check_their_parameters(pool: PgPool) {
    let app = TestApp::new(pool);
    let (team, s, x) = team_running(&app, "single", &[2]).await;
    ingest_ok(
        &app,
        &batch(vec![exposure("x1", &s, x.id, x.arms[0], "v1")]),
    )
    .await;
    let base = format!("/api/v1/experiments/{}/segments", x.id);
    for (who, token) in [
        ("viewer", &team.viewer.token),
        ("editor", &team.editor.token),
        ("admin", &team.admin.token),
    ] {
        let r = app
            .get(&format!("{base}?dimension=visitor_type"), Some(token))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{who}: {}", r.text());
        // One segment: no multiple-comparisons warning.
        assert_eq!(r.json()["warnings"][0]["code"], "small_segments");
    }
    let stranger = new_org(&app).await;
    app.get(&format!("{base}?dimension=device"), Some(&stranger.token))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    let r = app.get(&format!("{base}?dimension=device"), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    for (what, query, field) in [
        ("no dimension", String::new(), "dimension"),
        (
            "unknown dimension",
            "?dimension=planet".to_owned(),
            "dimension",
        ),
        (
            "goal not an id",
            "?dimension=device&goal=purchase".to_owned(),
            "goal",
        ),
    ] {
        let problem = app
            .get(&format!("{base}{query}"), Some(&team.viewer.token))
            .await
            .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(problem["errors"][0]["field"], field, "{what}: {problem}");
    }
    app.get(
        &format!("{base}?dimension=device&goal={}", uuid::Uuid::new_v4()),
        Some(&team.viewer.token),
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not_found");
}
