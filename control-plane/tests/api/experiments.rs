//! `/api/v1/experiments`: creation in one request, arms, validation, lifecycle, ETags,
//! edit limits while running, permissions, audit.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::{Member, TestApp, new_org, new_team};
use crate::sites::{audit_actions, create_site};

pub fn experiment_body() -> Value {
    json!({
        "name": "Hero headline",
        "description": "Does a shorter headline sell more?",
        "kind": "single",
        "elements": [{
            "name": "Headline",
            "selector": "#hero h1",
            "variants": [
                { "name": "Control", "is_control": true },
                { "name": "Short", "changes": [
                    { "selector": "#hero h1", "action": { "type": "set_text", "text": "Buy now" } }
                ] }
            ]
        }],
        "goals": [
            { "name": "signup", "primary": true, "trigger": { "type": "custom", "event": "signup" } },
            { "name": "thanks", "trigger": { "type": "url", "rule": { "match": "prefix", "pattern": "/thanks", "include": true } } },
            { "name": "cta", "metric": "revenue", "trigger": { "type": "click", "selector": ".cta" } }
        ]
    })
}

/// A site (with a domain) and a draft experiment on it; returns (site, experiment).
pub async fn site_and_experiment(app: &TestApp, member: &Member, body: Value) -> (Value, Value) {
    let owner_site = create_site(app, &owner_token(app, member).await, &["shop.example"]).await;
    let resp = app
        .post(
            &format!(
                "/api/v1/sites/{}/experiments",
                owner_site["id"].as_str().unwrap()
            ),
            Some(&member.token),
            body,
        )
        .await;
    assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.text());
    (owner_site, resp.json())
}

/// Sites are created by admins; experiments by editors: an admin token of the member's org.
async fn owner_token(app: &TestApp, member: &Member) -> String {
    crate::helpers::add_member(app, member.org_id, samplit_control_plane::auth::Role::Admin)
        .await
        .token
}

pub async fn act(
    app: &TestApp,
    member: &Member,
    id: &str,
    action: &str,
) -> crate::helpers::TestResponse {
    let etag = app
        .get(&format!("/api/v1/experiments/{id}"), Some(&member.token))
        .await
        .etag();
    app.call_with(
        Method::POST,
        &format!("/api/v1/experiments/{id}/{action}"),
        Some(&member.token),
        None,
        &[("if-match", &etag)],
    )
    .await
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn an_editor_creates_an_experiment_in_one_request_and_reads_it_back(pool: PgPool) {
    let app = TestApp::new(pool.clone());
    let team = new_team(&app).await;
    let (site, exp) = site_and_experiment(&app, &team.editor, experiment_body()).await;
    let id = exp["id"].as_str().unwrap();
    assert_eq!(exp["status"], "draft");
    assert_eq!(exp["version"], 1);
    assert_eq!(exp["coverage"], 1.0);
    assert_eq!(exp["allocator"], json!({ "kind": "fixed_split" }));
    let variants = exp["elements"][0]["variants"].as_array().unwrap();
    assert_eq!(variants.len(), 2);
    assert_eq!(variants[1]["changes"][0]["action"]["text"], "Buy now");
    let arms = exp["arms"].as_array().unwrap();
    assert_eq!(arms.len(), 2, "one arm per variant");
    assert_eq!(arms[0]["variant_ids"], json!([variants[0]["id"]]));
    assert_eq!(arms[0]["is_control"], true);
    assert!(arms[0]["element_id"].is_null());
    let goals = exp["goals"].as_array().unwrap();
    assert_eq!(goals.len(), 3);
    assert_eq!(goals[0]["name"], "signup");
    assert_eq!(goals[0]["primary"], true);
    assert!(
        goals
            .iter()
            .any(|g| g["trigger"]["rule"]["pattern"] == "/thanks"),
        "{goals:?}"
    );

    let read = app
        .get(
            &format!("/api/v1/experiments/{id}"),
            Some(&team.viewer.token),
        )
        .await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.etag(), "\"1\"");
    assert_eq!(read.json(), exp);

    let list = app
        .get(
            &format!(
                "/api/v1/experiments?site_id={}",
                site["id"].as_str().unwrap()
            ),
            Some(&team.viewer.token),
        )
        .await
        .json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], exp["id"]);
    assert_eq!(list[0]["status"], "draft");

    assert!(
        audit_actions(&pool, team.editor.org_id)
            .await
            .contains(&"experiment.create".to_owned())
    );
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn independent_and_factorial_experiments_generate_their_arms(pool: PgPool) {
    let app = TestApp::new(pool);
    let team = new_team(&app).await;
    let elements = json!([
        { "selector": "h1", "variants": [{ "name": "A" }, { "name": "B" }] },
        { "selector": ".cta", "variants": [{ "name": "X" }, { "name": "Y", "is_control": true }, { "name": "Z" }] }
    ]);
    let mut body = experiment_body();
    body["kind"] = json!("independent");
    body["elements"] = elements.clone();
    let (_, independent) = site_and_experiment(&app, &team.editor, body).await;
    let arms = independent["arms"].as_array().unwrap();
    assert_eq!(arms.len(), 5, "one arm per variant");
    let first_el = &independent["elements"][0]["id"];
    let second_el = &independent["elements"][1]["id"];
    assert_eq!(
        arms.iter().filter(|a| &a["element_id"] == first_el).count(),
        2
    );
    assert_eq!(
        arms.iter()
            .filter(|a| &a["element_id"] == second_el)
            .count(),
        3
    );
    let controls: Vec<&str> = arms
        .iter()
        .filter(|a| a["is_control"] == true)
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        controls,
        vec!["A", "Y"],
        "the first variant unless one is marked"
    );

    let mut body = experiment_body();
    body["kind"] = json!("factorial");
    body["elements"] = elements;
    let (_, factorial) = site_and_experiment(&app, &team.editor, body).await;
    let arms = factorial["arms"].as_array().unwrap();
    assert_eq!(arms.len(), 6, "2 × 3 combinations");
    let names: Vec<&str> = arms.iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        vec!["A × X", "A × Y", "A × Z", "B × X", "B × Y", "B × Z"]
    );
    assert!(
        arms.iter()
            .all(|a| a["element_id"].is_null() && a["variant_ids"].as_array().unwrap().len() == 2)
    );
    let control: Vec<&str> = arms
        .iter()
        .filter(|a| a["is_control"] == true)
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(control, vec!["A × Y"], "the combination of the controls");
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn bad_experiment_inputs_are_refused_with_field_errors(pool: PgPool) {
    let app = TestApp::new(pool);
    let team = new_team(&app).await;
    let (site, _) = site_and_experiment(&app, &team.editor, experiment_body()).await;
    let uri = format!("/api/v1/sites/{}/experiments", site["id"].as_str().unwrap());

    let with = |path: &[&str], value: Value| {
        let mut body = experiment_body();
        let mut target = &mut body;
        for key in &path[..path.len() - 1] {
            target = match key.parse::<usize>() {
                Ok(i) => &mut target[i],
                Err(_) => &mut target[*key],
            };
        }
        let last = path[path.len() - 1];
        match last.parse::<usize>() {
            Ok(i) => target[i] = value,
            Err(_) => target[last] = value,
        }
        body
    };
    let eight: Vec<Value> = (0..8).map(|i| json!({ "name": format!("v{i}") })).collect();
    let big_factorial = {
        let mut b = experiment_body();
        b["kind"] = json!("factorial");
        b["elements"] = json!([
            { "selector": "h1", "variants": eight },
            { "selector": "h2", "variants": eight },
            { "selector": "h3", "variants": eight }
        ]);
        b
    };
    let cases: Vec<(Value, &str, &str)> = vec![
        (with(&["name"], json!("")), "name", "empty name"),
        (
            with(&["kind"], json!("multivariate")),
            "kind",
            "unknown kind",
        ),
        (
            with(&["coverage"], json!(1.5)),
            "coverage",
            "coverage above 1",
        ),
        (
            with(&["coverage"], json!(-0.1)),
            "coverage",
            "negative coverage",
        ),
        (
            with(&["elements", "0", "selector"], json!("  ")),
            "elements[0].selector",
            "empty selector",
        ),
        (
            with(&["elements", "0", "selector"], json!("h1 { color: red }")),
            "elements[0].selector",
            "CSS rule, not a selector",
        ),
        (
            with(&["elements", "0", "variants", "0", "weight"], json!(-1)),
            "elements[0].variants[0].weight",
            "negative weight",
        ),
        (
            with(
                &["elements", "0", "variants", "1", "changes", "0", "action"],
                json!({ "type": "explode" }),
            ),
            "elements[0].variants[1].changes[0]",
            "unknown change action",
        ),
        (
            with(
                &["elements", "0", "variants", "1", "changes", "0", "selector"],
                json!(""),
            ),
            "elements[0].variants[1].changes[0]",
            "empty change selector",
        ),
        (
            with(
                &["elements", "0", "variants", "1", "changes", "0", "action"],
                json!({ "type": "redirect", "url": "javascript:alert(1)" }),
            ),
            "elements[0].variants[1].changes[0]",
            "script redirect",
        ),
        (
            with(
                &["elements", "0", "variants", "1", "changes", "0", "action"],
                json!({ "type": "set_attribute", "name": "onclick", "value": "x()" }),
            ),
            "elements[0].variants[1].changes[0]",
            "event-handler attribute",
        ),
        (
            with(
                &["elements", "0", "variants", "1", "is_control"],
                json!(true),
            ),
            "elements[0].variants",
            "two controls",
        ),
        (
            with(&["elements", "0", "variants"], json!([])),
            "elements[0].variants",
            "no variants",
        ),
        (with(&["elements"], json!([])), "elements", "no elements"),
        (
            with(
                &["elements"],
                json!([
                    { "selector": "h1", "variants": [{ "name": "A" }] },
                    { "selector": "h2", "variants": [{ "name": "A" }] }
                ]),
            ),
            "elements",
            "two elements in a single experiment",
        ),
        (
            with(&["goals", "1", "primary"], json!(true)),
            "goals",
            "two primaries",
        ),
        (
            with(&["goals", "1", "name"], json!("signup")),
            "goals[1].name",
            "duplicate goal name",
        ),
        (
            with(&["goals", "0", "metric"], json!("happiness")),
            "goals[0].metric",
            "unknown metric",
        ),
        (
            with(&["goals", "2", "trigger", "selector"], json!("")),
            "goals[2].trigger.selector",
            "empty click selector",
        ),
        (
            with(
                &["url_rules"],
                json!([{ "match": "glob", "pattern": "/x", "include": true }]),
            ),
            "url_rules[0]",
            "unknown URL match",
        ),
        (
            with(&["allocator"], json!({ "kind": "thompson", "floor": 0.6 })),
            "allocator",
            "floor too high for 2 arms",
        ),
        (
            with(
                &["allocator"],
                json!({ "kind": "thompson", "prior_alpha": 0 }),
            ),
            "allocator",
            "zero prior",
        ),
        (
            with(&["allocator"], json!({ "kind": "epsilon_greedy" })),
            "allocator",
            "unknown allocator",
        ),
        (
            with(
                &["elements", "0", "variants"],
                json!([{ "name": "A", "weight": 0 }, { "name": "B", "weight": 0 }]),
            ),
            "elements",
            "all weights zero",
        ),
        (big_factorial, "elements", "factorial with 512 arms"),
        (
            {
                let mut b = experiment_body();
                b["kind"] = json!("factorial");
                b["allocator"] = json!({ "kind": "thompson", "floor": 0.001 });
                let seven: Vec<Value> =
                    (0..7).map(|i| json!({ "name": format!("v{i}") })).collect();
                b["elements"] = json!([
                    { "selector": "h1", "variants": seven },
                    { "selector": "h2", "variants": seven },
                    { "selector": "h3", "variants": seven }
                ]);
                b
            },
            "allocator",
            "Thompson over 343 arms (the engine integrates at most 256)",
        ),
    ];
    for (body, field, why) in cases {
        let resp = app.post(&uri, Some(&team.editor.token), body).await;
        let problem = resp.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        let fields: Vec<&str> = problem["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert!(
            fields.contains(&field),
            "{why}: expected {field}, got {problem}"
        );
    }
    for (raw, why) in [
        ("{\"name\": \"x\", ", "truncated JSON"),
        ("{\"name\": \"x\", \"elements\": 3}", "elements not a list"),
        (
            "{\"name\": \"x\", \"elements\": [], \"colour\": 1}",
            "unknown field",
        ),
        ("[]", "not an object"),
    ] {
        app.call_raw(Method::POST, &uri, Some(&team.editor.token), raw)
            .await
            .assert_problem(StatusCode::BAD_REQUEST, "bad_request");
        let _ = why;
    }
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn html_in_changes_is_sanitised_keeping_ordinary_markup(pool: PgPool) {
    let app = TestApp::new(pool);
    let team = new_team(&app).await;
    let mut body = experiment_body();
    body["elements"][0]["variants"][1]["changes"] = json!([
        { "selector": "#hero", "action": { "type": "set_html",
          "html": "<p class=\"lead\" onclick=\"steal()\">Hello <b>world</b><script>alert(1)</script><a href=\"javascript:alert(2)\">x</a><img src=\"/a.png\" onerror=\"boom()\"></p>" } },
        { "selector": "#hero", "action": { "type": "insert", "position": "after",
          "html": "<div><iframe src=\"https://evil.example\"></iframe><em>ok</em></div>" } }
    ]);
    let (_, exp) = site_and_experiment(&app, &team.editor, body).await;
    let changes = &exp["elements"][0]["variants"][1]["changes"];
    let html = changes[0]["action"]["html"].as_str().unwrap();
    for gone in ["<script", "onclick", "javascript:", "onerror", "alert"] {
        assert!(!html.contains(gone), "{gone} survived: {html}");
    }
    for kept in ["<p>", "Hello <b>world</b>", "<img src=\"/a.png\">"] {
        assert!(html.contains(kept), "{kept} lost: {html}");
    }
    let inserted = changes[1]["action"]["html"].as_str().unwrap();
    assert_eq!(inserted, "<div><em>ok</em></div>");
}

/// Puts an experiment into `status` directly (the lifecycle itself is under test).
async fn force_status(pool: &PgPool, id: &str, status: &str) {
    sqlx::query("UPDATE experiments SET status = $2 WHERE id = $1::uuid")
        .bind(id)
        .bind(status)
        .execute(pool)
        .await
        .unwrap();
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn every_lifecycle_transition_is_allowed_or_answered_409(pool: PgPool) {
    let app = TestApp::new(pool.clone());
    let team = new_team(&app).await;
    let (_, exp) = site_and_experiment(&app, &team.editor, experiment_body()).await;
    let id = exp["id"].as_str().unwrap();
    let table: [(&str, &str, Option<&str>); 25] = [
        ("draft", "start", Some("running")),
        ("draft", "pause", None),
        ("draft", "resume", None),
        ("draft", "complete", None),
        ("draft", "archive", None),
        ("running", "start", None),
        ("running", "pause", Some("paused")),
        ("running", "resume", None),
        ("running", "complete", Some("completed")),
        ("running", "archive", None),
        ("paused", "start", None),
        ("paused", "pause", None),
        ("paused", "resume", Some("running")),
        ("paused", "complete", Some("completed")),
        ("paused", "archive", None),
        ("completed", "start", None),
        ("completed", "pause", None),
        ("completed", "resume", None),
        ("completed", "complete", None),
        ("completed", "archive", Some("archived")),
        ("archived", "start", None),
        ("archived", "pause", None),
        ("archived", "resume", None),
        ("archived", "complete", None),
        ("archived", "archive", None),
    ];
    for (from, action, to) in table {
        force_status(&pool, id, from).await;
        let resp = act(&app, &team.editor, id, action).await;
        match to {
            Some(to) => {
                assert_eq!(
                    resp.status,
                    StatusCode::OK,
                    "{from} --{action}--> : {}",
                    resp.text()
                );
                assert_eq!(resp.json()["status"], to, "{from} --{action}-->");
            }
            None => {
                resp.assert_problem(StatusCode::CONFLICT, "invalid_transition");
            }
        }
    }
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn starting_needs_two_arms_a_primary_goal_and_a_site_domain(pool: PgPool) {
    let app = TestApp::new(pool.clone());
    let team = new_team(&app).await;

    let mut one_variant = experiment_body();
    one_variant["elements"][0]["variants"] = json!([{ "name": "Only" }]);
    let mut no_primary = experiment_body();
    no_primary["goals"][0]["primary"] = json!(false);
    let mut lonely_element = experiment_body();
    lonely_element["kind"] = json!("independent");
    lonely_element["elements"] = json!([
        { "selector": "h1", "variants": [{ "name": "A" }, { "name": "B" }] },
        { "selector": "h2", "variants": [{ "name": "A" }] }
    ]);
    for (body, needle) in [
        (one_variant, "at least 2 arms"),
        (no_primary, "primary goal"),
        (lonely_element, "at least 2 variants"),
    ] {
        let (_, exp) = site_and_experiment(&app, &team.editor, body).await;
        let problem = act(&app, &team.editor, exp["id"].as_str().unwrap(), "start")
            .await
            .assert_problem(StatusCode::CONFLICT, "not_ready");
        assert!(
            problem["detail"].as_str().unwrap().contains(needle),
            "{problem}"
        );
    }

    // A site without domains.
    let site = create_site(&app, &team.admin.token, &[]).await;
    let exp = app
        .post(
            &format!("/api/v1/sites/{}/experiments", site["id"].as_str().unwrap()),
            Some(&team.editor.token),
            experiment_body(),
        )
        .await
        .json();
    let problem = act(&app, &team.editor, exp["id"].as_str().unwrap(), "start")
        .await
        .assert_problem(StatusCode::CONFLICT, "not_ready");
    assert!(
        problem["detail"].as_str().unwrap().contains("domain"),
        "{problem}"
    );
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn changes_and_transitions_need_a_fresh_if_match(pool: PgPool) {
    let app = TestApp::new(pool);
    let team = new_team(&app).await;
    let (_, exp) = site_and_experiment(&app, &team.editor, experiment_body()).await;
    let id = exp["id"].as_str().unwrap();
    let uri = format!("/api/v1/experiments/{id}");
    let token = Some(team.editor.token.as_str());
    let rename = Some(json!({ "name": "Renamed" }));
    let calls: [(Method, String, Option<Value>); 3] = [
        (Method::PATCH, uri.clone(), rename.clone()),
        (Method::POST, format!("{uri}/start"), None),
        (Method::DELETE, uri.clone(), None),
    ];
    for (method, path, body) in &calls {
        app.call_with(method.clone(), path, token, body.clone(), &[])
            .await
            .assert_problem(StatusCode::PRECONDITION_REQUIRED, "if_match_required");
        app.call_with(
            method.clone(),
            path,
            token,
            body.clone(),
            &[("if-match", "\"99\"")],
        )
        .await
        .assert_problem(StatusCode::PRECONDITION_FAILED, "stale_version");
    }
    let ok = app
        .call_with(
            Method::PATCH,
            &uri,
            token,
            rename.clone(),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    assert_eq!(ok.etag(), "\"2\"");
    assert_eq!(ok.json()["name"], "Renamed");
    // Someone else's view (version 1) is now stale.
    app.call_with(Method::PATCH, &uri, token, rename, &[("if-match", "\"1\"")])
        .await
        .assert_problem(StatusCode::PRECONDITION_FAILED, "stale_version");
    let started = app
        .call_with(
            Method::POST,
            &format!("{uri}/start"),
            token,
            None,
            &[("if-match", "\"2\"")],
        )
        .await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.text());
    assert_eq!(started.etag(), "\"3\"");
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn a_draft_edit_replaces_the_structure_and_regenerates_arms(pool: PgPool) {
    let app = TestApp::new(pool);
    let team = new_team(&app).await;
    let (_, exp) = site_and_experiment(&app, &team.editor, experiment_body()).await;
    let id = exp["id"].as_str().unwrap();
    let resp = app
        .call_with(
            Method::PATCH,
            &format!("/api/v1/experiments/{id}"),
            Some(&team.editor.token),
            Some(json!({
                "elements": [{ "selector": "h1", "variants": [{ "name": "A" }, { "name": "B" }, { "name": "C", "weight": 2 }] }],
                "allocator": { "kind": "thompson" },
                "coverage": 0.5
            })),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    let after = resp.json();
    assert_eq!(after["arms"].as_array().unwrap().len(), 3);
    assert_eq!(after["coverage"], 0.5);
    assert_eq!(
        after["allocator"],
        json!({ "kind": "thompson", "prior_alpha": 1.0, "prior_beta": 1.0, "min_exposures": 100, "floor": 0.01 }),
        "defaults filled in"
    );
    assert_eq!(after["goals"], exp["goals"], "goals untouched");
    assert_ne!(after["arms"][0]["id"], exp["arms"][0]["id"]);
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn a_running_experiment_only_accepts_name_description_and_coverage(pool: PgPool) {
    let app = TestApp::new(pool);
    let team = new_team(&app).await;
    let (_, exp) = site_and_experiment(&app, &team.editor, experiment_body()).await;
    let id = exp["id"].as_str().unwrap();
    let uri = format!("/api/v1/experiments/{id}");
    assert_eq!(
        act(&app, &team.editor, id, "start").await.status,
        StatusCode::OK
    );

    let patch = |body: Value| {
        let app = &app;
        let uri = uri.clone();
        let token = team.editor.token.clone();
        async move {
            let etag = app.get(&uri, Some(&token)).await.etag();
            app.call_with(
                Method::PATCH,
                &uri,
                Some(&token),
                Some(body),
                &[("if-match", &etag)],
            )
            .await
        }
    };
    let ok = patch(json!({ "name": "Live", "description": "d", "coverage": 0.3 })).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    assert_eq!(ok.json()["coverage"], 0.3);
    let refused = [
        json!({ "elements": experiment_body()["elements"] }),
        json!({ "goals": [] }),
        json!({ "allocator": { "kind": "thompson" } }),
        json!({ "kind": "factorial" }),
        json!({ "url_rules": [] }),
        json!({ "name": "ok", "goals": [] }),
    ];
    for body in refused {
        patch(body.clone())
            .await
            .assert_problem(StatusCode::CONFLICT, "not_editable");
    }
    // Invalid values are still 422 even for allowed fields.
    patch(json!({ "coverage": 2 }))
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    // Not deletable while live.
    let etag = app.get(&uri, Some(&team.editor.token)).await.etag();
    app.call_with(
        Method::DELETE,
        &uri,
        Some(&team.editor.token),
        None,
        &[("if-match", &etag)],
    )
    .await
    .assert_problem(StatusCode::CONFLICT, "experiment_live");

    assert_eq!(
        act(&app, &team.editor, id, "complete").await.status,
        StatusCode::OK
    );
    patch(json!({ "coverage": 0.9 }))
        .await
        .assert_problem(StatusCode::CONFLICT, "not_editable");
    assert_eq!(
        patch(json!({ "description": "learned a lot" }))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        act(&app, &team.editor, id, "archive").await.status,
        StatusCode::OK
    );
    patch(json!({ "name": "x" }))
        .await
        .assert_problem(StatusCode::CONFLICT, "not_editable");
    let etag = app.get(&uri, Some(&team.editor.token)).await.etag();
    let deleted = app
        .call_with(
            Method::DELETE,
            &uri,
            Some(&team.editor.token),
            None,
            &[("if-match", &etag)],
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text());
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn experiment_permissions_follow_the_matrix(pool: PgPool) {
    let app = TestApp::new(pool.clone());
    let team = new_team(&app).await;
    let (site, exp) = site_and_experiment(&app, &team.editor, experiment_body()).await;
    let site_id = site["id"].as_str().unwrap().to_owned();
    let id = exp["id"].as_str().unwrap().to_owned();
    let stranger = new_org(&app).await;
    let (their_site, theirs) = site_and_experiment(&app, &stranger, experiment_body()).await;
    let their_site_id = their_site["id"].as_str().unwrap().to_owned();
    let their_id = theirs["id"].as_str().unwrap().to_owned();

    let reads = [
        format!("/api/v1/experiments?site_id={site_id}"),
        "/api/v1/experiments".to_owned(),
        format!("/api/v1/experiments/{id}"),
    ];
    for path in &reads {
        app.get(path, None)
            .await
            .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
        for m in [&team.viewer, &team.editor, &team.admin, &team.owner] {
            assert_eq!(
                app.get(path, Some(&m.token)).await.status,
                StatusCode::OK,
                "{path}"
            );
        }
    }

    // Writes: anonymous 401, viewer 403, editor/admin/owner allowed.
    let create_uri = format!("/api/v1/sites/{site_id}/experiments");
    app.post(&create_uri, None, experiment_body())
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    app.post(&create_uri, Some(&team.viewer.token), experiment_body())
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    for m in [&team.editor, &team.admin, &team.owner] {
        assert_eq!(
            app.post(&create_uri, Some(&m.token), experiment_body())
                .await
                .status,
            StatusCode::CREATED
        );
    }
    let patch_uri = format!("/api/v1/experiments/{id}");
    for action in ["start", "pause", "resume", "complete", "archive"] {
        let uri = format!("/api/v1/experiments/{id}/{action}");
        app.call_with(Method::POST, &uri, None, None, &[("if-match", "\"1\"")])
            .await
            .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
        let etag = app.get(&patch_uri, Some(&team.viewer.token)).await.etag();
        app.call_with(
            Method::POST,
            &uri,
            Some(&team.viewer.token),
            None,
            &[("if-match", &etag)],
        )
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    }
    for m in [&team.editor, &team.admin, &team.owner] {
        let etag = app.get(&patch_uri, Some(&m.token)).await.etag();
        let resp = app
            .call_with(
                Method::PATCH,
                &patch_uri,
                Some(&m.token),
                Some(json!({ "name": m.email })),
                &[("if-match", &etag)],
            )
            .await;
        assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    }
    let etag = app.get(&patch_uri, Some(&team.viewer.token)).await.etag();
    app.call_with(
        Method::PATCH,
        &patch_uri,
        Some(&team.viewer.token),
        Some(json!({ "name": "v" })),
        &[("if-match", &etag)],
    )
    .await
    .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    app.call_with(
        Method::DELETE,
        &patch_uri,
        Some(&team.viewer.token),
        None,
        &[("if-match", &etag)],
    )
    .await
    .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    app.call_with(
        Method::DELETE,
        &patch_uri,
        None,
        None,
        &[("if-match", &etag)],
    )
    .await
    .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    // Each lifecycle action by an editor, in order.
    for action in ["start", "pause", "resume", "complete", "archive"] {
        assert_eq!(
            act(&app, &team.editor, &id, action).await.status,
            StatusCode::OK,
            "{action}"
        );
    }
    let etag = app.get(&patch_uri, Some(&team.editor.token)).await.etag();
    let deleted = app
        .call_with(
            Method::DELETE,
            &patch_uri,
            Some(&team.editor.token),
            None,
            &[("if-match", &etag)],
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);

    // Another organisation's experiment and site: 404 for every method.
    let foreign: [(Method, String, Option<Value>); 8] = [
        (Method::GET, format!("/api/v1/experiments/{their_id}"), None),
        (
            Method::GET,
            format!("/api/v1/experiments?site_id={their_site_id}"),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/sites/{their_site_id}/experiments"),
            Some(experiment_body()),
        ),
        (
            Method::PATCH,
            format!("/api/v1/experiments/{their_id}"),
            Some(json!({ "name": "x" })),
        ),
        (
            Method::DELETE,
            format!("/api/v1/experiments/{their_id}"),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/experiments/{their_id}/start"),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/experiments/{their_id}/pause"),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/experiments/{their_id}/archive"),
            None,
        ),
    ];
    for (method, path, body) in foreign {
        app.call_with(
            method,
            &path,
            Some(&team.owner.token),
            body,
            &[("if-match", "\"1\"")],
        )
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    }
    // Their experiment is untouched.
    let status: String = sqlx::query_scalar("SELECT status FROM experiments WHERE id = $1::uuid")
        .bind(&their_id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(status, "draft");

    let actions = audit_actions(&pool, team.editor.org_id).await;
    for expected in [
        "experiment.create",
        "experiment.update",
        "experiment.start",
        "experiment.pause",
        "experiment.resume",
        "experiment.complete",
        "experiment.archive",
        "experiment.delete",
    ] {
        assert!(
            actions.contains(&expected.to_owned()),
            "{expected} missing from {actions:?}"
        );
    }
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn of_two_concurrent_edits_with_the_same_etag_exactly_one_wins(pool: PgPool) {
    let app = TestApp::new(pool);
    let team = new_team(&app).await;
    let (_, exp) = site_and_experiment(&app, &team.editor, experiment_body()).await;
    let uri = format!("/api/v1/experiments/{}", exp["id"].as_str().unwrap());
    let edit = |name: &'static str| {
        app.call_with(
            Method::PATCH,
            &uri,
            Some(&team.editor.token),
            Some(json!({ "name": name })),
            &[("if-match", "\"1\"")],
        )
    };
    let (a, b) = tokio::join!(edit("first"), edit("second"));
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::PRECONDITION_FAILED]);
    let now = app.get(&uri, Some(&team.editor.token)).await;
    assert_eq!(now.etag(), "\"2\"");
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn the_openapi_document_lists_sites_and_experiments(pool: PgPool) {
    let app = TestApp::new(pool);
    let doc = app.get("/api/v1/openapi.json", None).await.json();
    for path in [
        "/sites",
        "/sites/{id}",
        "/sites/{id}/rotate-secret",
        "/sites/{id}/snippet",
        "/sites/{id}/exclusions",
        "/sites/{id}/publications",
        "/sites/{id}/experiments",
        "/experiments",
        "/experiments/{id}",
        "/experiments/{id}/start",
        "/experiments/{id}/pause",
        "/experiments/{id}/resume",
        "/experiments/{id}/complete",
        "/experiments/{id}/archive",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
    assert!(doc["components"]["schemas"]["ExperimentInput"].is_object());
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn an_unknown_stored_status_is_a_decode_error_not_archived(pool: PgPool) {
    // `ExperimentRow` used to read an unknown status as `archived`; now the row does not
    // decode and the error names the value.
    use samplit_control_plane::domain::Status;
    for status in Status::ALL {
        let back: Status = sqlx::query_scalar("SELECT $1::text")
            .bind(status)
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(back, status);
    }
    let err = sqlx::query_scalar::<_, Status>("SELECT 'deleted'::text")
        .fetch_one(&pool)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("unknown experiment status \"deleted\""),
        "{err}"
    );
}
