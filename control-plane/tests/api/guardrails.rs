//! Guardrail goals (issue 16) through the API: the goal fields on create, read and draft
//! edit with their validation and authorisation; and, on signed ingested events, a
//! variant that wins the primary goal but harms a guardrail is not recommended, with the
//! reason, while the same data without the guardrail flag recommend deploying it.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::experiments::{act, experiment_body, site_and_experiment};
use crate::fixtures::{Site, batch, conversion, exposure, ingest_ok};
use crate::helpers::{Member, TestApp, new_org, new_team};

/// The experiments' test body with goal 2 (`cta`, revenue) a guardrail.
fn body_with_guardrail(margin: Value, direction: Option<&str>) -> Value {
    let mut body = experiment_body();
    body["goals"][2]["guardrail"] = json!(true);
    body["goals"][2]["guardrail_margin"] = margin;
    if let Some(d) = direction {
        body["goals"][2]["guardrail_direction"] = json!(d);
    }
    body
}

fn goal<'a>(experiment: &'a Value, name: &str) -> &'a Value {
    experiment["goals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == name)
        .unwrap_or_else(|| panic!("no goal {name} in {experiment}"))
}

async fn patch(app: &TestApp, m: &Member, id: &str, body: Value) -> crate::helpers::TestResponse {
    let etag = app
        .get(&format!("/api/v1/experiments/{id}"), Some(&m.token))
        .await
        .etag();
    app.call_with(
        Method::PATCH,
        &format!("/api/v1/experiments/{id}"),
        Some(&m.token),
        Some(body),
        &[("if-match", &etag)],
    )
    .await
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn a_guardrail_goal_is_created_read_back_and_edited_in_a_draft(pool: PgPool) {
    let app = TestApp::new(pool);
    let team = new_team(&app).await;
    let (_, exp) = site_and_experiment(
        &app,
        &team.editor,
        body_with_guardrail(json!(0.05), Some("lower_is_better")),
    )
    .await;
    let cta = goal(&exp, "cta");
    assert_eq!(
        (
            &cta["guardrail"],
            &cta["guardrail_margin"],
            &cta["guardrail_direction"]
        ),
        (&json!(true), &json!(0.05), &json!("lower_is_better")),
        "{cta}"
    );
    for other in ["signup", "thanks"] {
        let g = goal(&exp, other);
        assert_eq!(
            (
                &g["guardrail"],
                &g["guardrail_margin"],
                &g["guardrail_direction"]
            ),
            (&json!(false), &Value::Null, &Value::Null),
            "{other}"
        );
    }
    let id = exp["id"].as_str().unwrap();
    let read = app
        .get(
            &format!("/api/v1/experiments/{id}"),
            Some(&team.viewer.token),
        )
        .await
        .json();
    assert_eq!(goal(&read, "cta"), cta, "read back as created");

    // The direction defaults to higher_is_better.
    let mut goals = body_with_guardrail(json!(0.1), None)["goals"].clone();
    let resp = patch(&app, &team.editor, id, json!({ "goals": goals.clone() })).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    let cta = goal(&resp.json(), "cta").clone();
    assert_eq!(
        (&cta["guardrail_margin"], &cta["guardrail_direction"]),
        (&json!(0.1), &json!("higher_is_better"))
    );
    // Unmarking it clears the margin and direction.
    goals[2] = json!({ "name": "cta", "metric": "revenue", "trigger": { "type": "click", "selector": ".cta" } });
    let resp = patch(&app, &team.editor, id, json!({ "goals": goals })).await;
    let cta = goal(&resp.json(), "cta").clone();
    assert_eq!(
        (
            &cta["guardrail"],
            &cta["guardrail_margin"],
            &cta["guardrail_direction"]
        ),
        (&json!(false), &Value::Null, &Value::Null)
    );
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn bad_guardrail_fields_are_refused_naming_the_field(pool: PgPool) {
    let app = TestApp::new(pool);
    let team = new_team(&app).await;
    let (site, exp) = site_and_experiment(&app, &team.editor, experiment_body()).await;
    let create = format!("/api/v1/sites/{}/experiments", site["id"].as_str().unwrap());
    let id = exp["id"].as_str().unwrap();
    let with = |edit: &dyn Fn(&mut Value)| {
        let mut body = experiment_body();
        edit(&mut body);
        body
    };
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            with(&|b| {
                b["goals"][0]["guardrail"] = json!(true);
                b["goals"][0]["guardrail_margin"] = json!(0.05);
            }),
            "goals[0].guardrail",
            "the primary goal as a guardrail",
        ),
        (
            with(&|b| b["goals"][2]["guardrail"] = json!(true)),
            "goals[2].guardrail_margin",
            "a guardrail without a margin",
        ),
        (
            body_with_guardrail(json!(0), None),
            "goals[2].guardrail_margin",
            "a margin of 0",
        ),
        (
            body_with_guardrail(json!(1.5), None),
            "goals[2].guardrail_margin",
            "a margin above 1",
        ),
        (
            body_with_guardrail(json!(-0.05), None),
            "goals[2].guardrail_margin",
            "a negative margin",
        ),
        (
            body_with_guardrail(json!(0.05), Some("sideways")),
            "goals[2].guardrail_direction",
            "an unknown direction",
        ),
        (
            with(&|b| b["goals"][1]["guardrail_margin"] = json!(0.05)),
            "goals[1].guardrail_margin",
            "a margin on a goal that is not a guardrail",
        ),
        (
            with(&|b| b["goals"][1]["guardrail_direction"] = json!("lower_is_better")),
            "goals[1].guardrail_direction",
            "a direction on a goal that is not a guardrail",
        ),
    ];
    for (body, field, why) in cases {
        for resp in [
            app.post(&create, Some(&team.editor.token), body.clone())
                .await,
            patch(&app, &team.editor, id, json!({ "goals": body["goals"] })).await,
        ] {
            let problem =
                resp.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
            let fields: Vec<&str> = problem["errors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["field"].as_str().unwrap())
                .collect();
            assert_eq!(fields, [field], "{why}: {problem}");
        }
    }
    // Wrong JSON types are the extractor's 400, as for every other field.
    app.post(
        &create,
        Some(&team.editor.token),
        body_with_guardrail(json!("5 %"), None),
    )
    .await
    .assert_problem(StatusCode::BAD_REQUEST, "bad_request");
    // Nothing was written by the refused edits.
    let read = app
        .get(
            &format!("/api/v1/experiments/{id}"),
            Some(&team.editor.token),
        )
        .await
        .json();
    assert_eq!(read["goals"], exp["goals"]);
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn guardrail_goals_are_written_by_editors_of_the_organisation_only(pool: PgPool) {
    let app = TestApp::new(pool);
    let team = new_team(&app).await;
    let (site, exp) = site_and_experiment(&app, &team.editor, experiment_body()).await;
    let create = format!("/api/v1/sites/{}/experiments", site["id"].as_str().unwrap());
    let id = exp["id"].as_str().unwrap();
    let body = body_with_guardrail(json!(0.05), None);
    app.post(&create, None, body.clone())
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    app.post(&create, Some(&team.viewer.token), body.clone())
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    patch(&app, &team.viewer, id, json!({ "goals": body["goals"] }))
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    for m in [&team.editor, &team.admin, &team.owner] {
        let resp = app.post(&create, Some(&m.token), body.clone()).await;
        assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.text());
        assert_eq!(goal(&resp.json(), "cta")["guardrail"], json!(true));
    }
    // Another organisation's experiment is not found, for reading or editing.
    let stranger = new_org(&app).await;
    app.get(&format!("/api/v1/experiments/{id}"), Some(&stranger.token))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    app.call_with(
        Method::PATCH,
        &format!("/api/v1/experiments/{id}"),
        Some(&stranger.token),
        Some(json!({ "goals": body["goals"] })),
        &[("if-match", "\"1\"")],
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not_found");
    app.get(
        &format!("/api/v1/experiments/{id}/results"),
        Some(&stranger.token),
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not_found");
}

/// A running experiment created through the API: primary goal `signup` (custom event),
/// secondary goal `purchase` (custom event, revenue) marked as a guardrail or not.
async fn running_with_purchase_goal(
    app: &TestApp,
    m: &Member,
    guardrail: bool,
) -> (Site, String, Vec<Uuid>) {
    let mut body = experiment_body();
    let mut purchase = json!({
        "name": "purchase", "metric": "revenue",
        "trigger": { "type": "custom", "event": "purchase" }
    });
    if guardrail {
        purchase["guardrail"] = json!(true);
        purchase["guardrail_margin"] = json!(0.05);
        purchase["guardrail_direction"] = json!("higher_is_better");
    }
    body["goals"] = json!([body["goals"][0].clone(), purchase]);
    let (site, exp) = site_and_experiment(app, m, body).await;
    let id = exp["id"].as_str().unwrap().to_owned();
    let resp = act(app, m, &id, "start").await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    let arms = exp["arms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap().parse().unwrap())
        .collect();
    let site = Site {
        id: site["id"].as_str().unwrap().parse().unwrap(),
        key: site["site_key"].as_str().unwrap().to_owned(),
    };
    (site, id, arms)
}

/// 2 000 visitors an arm. Signups: control 100, variant 200 (5 % → 10 %). Purchases of
/// 50: control 200, variant 100 — revenue per visitor 5 → 2.5 (−50 %).
async fn ingest_winner_that_halves_revenue(app: &TestApp, site: &Site, id: &str, arms: &[Uuid]) {
    let experiment: Uuid = id.parse().unwrap();
    let mut items = Vec::new();
    for (a, (signups, purchases)) in [(100, 200), (200, 100)].into_iter().enumerate() {
        for v in 0..2000 {
            let visitor = format!("v-{a}-{v}");
            items.push(exposure(
                &format!("e-{a}-{v}"),
                site,
                experiment,
                arms[a],
                &visitor,
            ));
            if v < signups {
                items.push(conversion(
                    &format!("s-{a}-{v}"),
                    site,
                    &visitor,
                    "signup",
                    None,
                ));
            }
            if v < purchases {
                items.push(conversion(
                    &format!("p-{a}-{v}"),
                    site,
                    &visitor,
                    "purchase",
                    Some(50.0),
                ));
            }
        }
    }
    for chunk in items.chunks(1000) {
        let r = ingest_ok(app, &batch(chunk.to_vec())).await;
        assert!(r["rejected"].as_array().unwrap().is_empty(), "{r}");
    }
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn a_winner_that_harms_a_guardrail_is_not_recommended_and_the_reason_says_why(pool: PgPool) {
    let app = TestApp::new(pool);
    let team = new_team(&app).await;
    let (site, id, arms) = running_with_purchase_goal(&app, &team.editor, true).await;
    ingest_winner_that_halves_revenue(&app, &site, &id, &arms).await;

    let results = app
        .get(
            &format!("/api/v1/experiments/{id}/results"),
            Some(&team.viewer.token),
        )
        .await;
    assert_eq!(results.status, StatusCode::OK, "{}", results.text());
    let results = results.json();
    let analysis = &results["analyses"][0];
    assert_eq!(
        analysis["result"]["recommendation"],
        json!({"action": "guardrail_harmed", "arm": 1, "guardrail": 0}),
        "{analysis}"
    );
    // The control has no verdicts; the variant's is harmed, with its figures.
    assert_eq!(analysis["subjects"][0]["guardrails"], json!([]));
    let verdict = &analysis["subjects"][1]["guardrails"][0];
    assert_eq!(verdict["name"], "purchase");
    assert_eq!(verdict["status"], "harmed", "{verdict}");
    assert_eq!(verdict["margin"], 0.05);
    assert_eq!(verdict["direction"], "higher_is_better");
    assert_eq!(verdict["metric"], "revenue");
    assert!((verdict["relative_difference"].as_f64().unwrap() + 0.5).abs() < 1e-12);
    assert!((verdict["control_value"].as_f64().unwrap() - 5.0).abs() < 1e-12);
    assert!((verdict["arm_value"].as_f64().unwrap() - 2.5).abs() < 1e-12);
    assert!(
        verdict["interval"]["upper"].as_f64().unwrap() < -0.05,
        "{verdict}"
    );
    assert!(verdict["p_value"].as_f64().unwrap() <= 0.05, "{verdict}");
    let reason = analysis["recommendation_reason"].as_str().unwrap();
    assert!(
        reason.starts_with(
            "\"Short\" leads on \"signup\" but harms the guardrail \"purchase\": -50.0 % against control (95 % interval"
        ) && reason.contains("by more than its 5.0 % margin"),
        "{reason}"
    );
    // The list's headline carries the same recommendation, and names no arm to deploy.
    let headlines = app
        .get(
            &format!("/api/v1/experiments/headlines?ids={id}"),
            Some(&team.viewer.token),
        )
        .await
        .json();
    assert_eq!(
        headlines[0]["recommendation"]["action"], "guardrail_harmed",
        "{headlines}"
    );
    assert_eq!(headlines[0]["recommended_arm"], Value::Null);
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn the_same_data_without_the_guardrail_flag_recommend_deploying_the_winner(pool: PgPool) {
    let app = TestApp::new(pool);
    let team = new_team(&app).await;
    let (site, id, arms) = running_with_purchase_goal(&app, &team.editor, false).await;
    ingest_winner_that_halves_revenue(&app, &site, &id, &arms).await;
    let results = app
        .get(
            &format!("/api/v1/experiments/{id}/results"),
            Some(&team.viewer.token),
        )
        .await
        .json();
    let analysis = &results["analyses"][0];
    assert_eq!(
        analysis["result"]["recommendation"],
        json!({"action": "deploy_winner", "arm": 1}),
        "{analysis}"
    );
    assert_eq!(analysis["subjects"][1]["guardrails"], json!([]));
    assert_eq!(analysis["recommendation_reason"], Value::Null);
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn a_guardrail_within_its_margin_does_not_block_the_winner(pool: PgPool) {
    let app = TestApp::new(pool);
    let team = new_team(&app).await;
    let (site, id, arms) = running_with_purchase_goal(&app, &team.editor, true).await;
    // Revenue is worse by half, but the margin is 100 %: a loss the owner accepts.
    sqlx::query("UPDATE goals SET guardrail_margin = 1 WHERE name = 'purchase'")
        .execute(&app.pool)
        .await
        .unwrap();
    ingest_winner_that_halves_revenue(&app, &site, &id, &arms).await;
    let results = app
        .get(
            &format!("/api/v1/experiments/{id}/results"),
            Some(&team.viewer.token),
        )
        .await
        .json();
    let analysis = &results["analyses"][0];
    assert_eq!(
        analysis["result"]["recommendation"],
        json!({"action": "deploy_winner", "arm": 1}),
        "{analysis}"
    );
    assert_eq!(
        analysis["subjects"][1]["guardrails"][0]["status"], "not_inferior",
        "{analysis}"
    );
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn the_openapi_document_describes_the_guardrail_fields(pool: PgPool) {
    let app = TestApp::new(pool);
    let doc = app.get("/api/v1/openapi.json", None).await.json();
    let schemas = &doc["components"]["schemas"];
    for (schema, fields) in [
        (
            "GoalInput",
            &["guardrail", "guardrail_margin", "guardrail_direction"][..],
        ),
        (
            "GoalView",
            &["guardrail", "guardrail_margin", "guardrail_direction"][..],
        ),
        (
            "ArmGuardrailView",
            &[
                "goal_id",
                "name",
                "status",
                "margin",
                "direction",
                "relative_difference",
                "interval",
                "p_value",
            ][..],
        ),
        ("SubjectView", &["guardrails"][..]),
        ("AnalysisView", &["recommendation_reason"][..]),
    ] {
        for field in fields {
            assert!(
                schemas[schema]["properties"][field].is_object(),
                "{schema}.{field} missing from the OpenAPI document: {}",
                schemas[schema]
            );
        }
    }
}
