//! The visual editor's endpoints: editor sessions (signed tokens the edge verifies) and
//! saving a variant's changes (engine validation, ammonia, drafts only, ETags, audit).

use axum::http::{Method, StatusCode};
use samplit_engine::editor_token;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::experiments::{act, experiment_body, site_and_experiment};
use crate::helpers::{TEST_SNAPSHOT_SECRET, TestApp, new_team, test_config};
use crate::sites::audit_actions;

fn app_with_edge(pool: PgPool) -> TestApp {
    let mut config = test_config();
    config.edge_url = Some("https://edge.example".into());
    TestApp::with_config(pool, config)
}

/// A site whose domain `shop.example` is verified (editor sessions open verified hosts
/// only), with an experiment.
async fn verified_site_and_experiment(
    app: &TestApp,
    member: &crate::helpers::Member,
    body: Value,
) -> (Value, Value) {
    let (site, experiment) = site_and_experiment(app, member, body).await;
    // Some tests make two such sites: the newest one holds the host (a transfer).
    sqlx::query(
        "UPDATE site_domains SET status = 'pending', method = NULL, verified_at = NULL
          WHERE host = 'shop.example' AND status = 'verified'",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    crate::domains::mark_verified(&app.pool, site["id"].as_str().unwrap(), "shop.example").await;
    (site, experiment)
}

fn now_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

fn sessions(site: &Value) -> String {
    format!(
        "/api/v1/sites/{}/editor-sessions",
        site["id"].as_str().unwrap()
    )
}

fn changes_uri(experiment: &Value, variant: usize) -> String {
    format!(
        "/api/v1/experiments/{}/variants/{}/changes",
        experiment["id"].as_str().unwrap(),
        experiment["elements"][0]["variants"][variant]["id"]
            .as_str()
            .unwrap()
    )
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn an_editor_gets_a_token_the_edge_can_verify_for_the_sites_domains(pool: PgPool) {
    let app = app_with_edge(pool.clone());
    let team = new_team(&app).await;
    let (site, _) = verified_site_and_experiment(&app, &team.editor, experiment_body()).await;
    let resp = app
        .post(
            &sessions(&site),
            Some(&team.editor.token),
            json!({ "url": "https://shop.example/pricing" }),
        )
        .await;
    assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.text());
    let body = resp.json();
    let token = body["token"].as_str().unwrap();
    let claims = editor_token::verify(token, TEST_SNAPSHOT_SECRET.as_bytes(), now_ms()).unwrap();
    assert_eq!(claims.site_key, site["site_key"].as_str().unwrap());
    assert_eq!(claims.allowed_domains, vec!["shop.example".to_owned()]);
    assert_eq!(claims.admin_origin, "https://admin.example");
    assert!(claims.preview.is_none());
    let ttl = claims.exp_ms - now_ms();
    assert!(
        ttl > 29 * 60 * 1000 && ttl <= 30 * 60 * 1000,
        "30 minutes: {ttl}"
    );
    let editor_url = url::Url::parse(body["editor_url"].as_str().unwrap()).unwrap();
    assert_eq!(
        editor_url.origin().ascii_serialization(),
        "https://edge.example"
    );
    assert_eq!(editor_url.path(), "/v1/editor");
    let q: std::collections::HashMap<_, _> = editor_url.query_pairs().into_owned().collect();
    assert_eq!(q["url"], "https://shop.example/pricing");
    assert_eq!(q["token"], token);
    // Another key does not verify it.
    assert!(
        editor_token::verify(token, b"another-secret-another-secret-another", now_ms()).is_err()
    );
    assert!(
        audit_actions(&pool, team.owner.org_id)
            .await
            .contains(&"editor.session".to_owned())
    );
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn a_preview_session_carries_the_variants_sanitised_changes(pool: PgPool) {
    let app = app_with_edge(pool.clone());
    let team = new_team(&app).await;
    let (site, experiment) =
        verified_site_and_experiment(&app, &team.editor, experiment_body()).await;
    let variant = experiment["elements"][0]["variants"][1]["id"]
        .as_str()
        .unwrap();
    let resp = app
        .post(
            &sessions(&site),
            Some(&team.editor.token),
            json!({ "preview_variant_id": variant }),
        )
        .await;
    assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.text());
    let claims = editor_token::verify(
        resp.json()["token"].as_str().unwrap(),
        TEST_SNAPSHOT_SECRET.as_bytes(),
        now_ms(),
    )
    .unwrap();
    let preview = claims.preview.unwrap();
    assert_eq!(preview.variant_id, variant);
    assert_eq!(preview.experiment_id, experiment["id"].as_str().unwrap());
    assert_eq!(
        serde_json::to_value(&preview.changes).unwrap(),
        experiment["elements"][0]["variants"][1]["changes"]
    );

    // A variant of another organisation's experiment is not found.
    let other = new_team(&app).await;
    let (other_site, _) =
        verified_site_and_experiment(&app, &other.editor, experiment_body()).await;
    let resp = app
        .post(
            &sessions(&other_site),
            Some(&other.editor.token),
            json!({ "preview_variant_id": variant }),
        )
        .await;
    resp.assert_problem(StatusCode::NOT_FOUND, "not_found");
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn editor_sessions_follow_the_permission_matrix(pool: PgPool) {
    let app = app_with_edge(pool.clone());
    let team = new_team(&app).await;
    let (site, _) = verified_site_and_experiment(&app, &team.editor, experiment_body()).await;
    let uri = sessions(&site);
    app.post(&uri, None, json!({}))
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    app.post(&uri, Some(&team.viewer.token), json!({}))
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    for member in [&team.editor, &team.admin, &team.owner] {
        assert_eq!(
            app.post(&uri, Some(&member.token), json!({})).await.status,
            StatusCode::CREATED
        );
    }
    let other = new_team(&app).await;
    app.post(&uri, Some(&other.owner.token), json!({}))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn bad_session_requests_are_refused_with_a_reason(pool: PgPool) {
    let app = app_with_edge(pool.clone());
    let team = new_team(&app).await;
    let (site, _) = verified_site_and_experiment(&app, &team.editor, experiment_body()).await;
    let cases = [
        (
            json!({ "url": "https://evil.example/" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "another host",
        ),
        (
            json!({ "url": "http://shop.example/" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "plain http",
        ),
        (
            json!({ "url": "file:///etc/passwd" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "file:",
        ),
        (
            json!({ "preview_variant_id": "00000000-0000-4000-8000-000000000000" }),
            StatusCode::NOT_FOUND,
            "unknown variant",
        ),
        (
            json!({ "nope": 1 }),
            StatusCode::BAD_REQUEST,
            "unknown field",
        ),
    ];
    for (body, status, why) in cases {
        let resp = app
            .post(&sessions(&site), Some(&team.editor.token), body)
            .await;
        assert_eq!(resp.status, status, "{why}: {}", resp.text());
    }
    // Without an edge URL the control plane cannot send the admin anywhere: 503.
    let bare = TestApp::new(pool.clone());
    let resp = bare
        .post(&sessions(&site), Some(&team.editor.token), json!({}))
        .await;
    assert_eq!(resp.status, StatusCode::SERVICE_UNAVAILABLE);
}

async fn put_changes(
    app: &TestApp,
    token: &str,
    uri: &str,
    etag: &str,
    changes: Value,
) -> crate::helpers::TestResponse {
    app.call_with(
        Method::PUT,
        uri,
        Some(token),
        Some(json!({ "changes": changes })),
        &[("if-match", etag)],
    )
    .await
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn an_editor_saves_a_variants_changes_sanitised_with_a_new_etag_and_an_audit_entry(
    pool: PgPool,
) {
    let app = TestApp::new(pool.clone());
    let team = new_team(&app).await;
    let (_, experiment) = verified_site_and_experiment(&app, &team.editor, experiment_body()).await;
    let uri = changes_uri(&experiment, 1);
    let etag = format!("\"{}\"", experiment["version"]);
    let changes = json!([
        { "selector": "#hero h1", "action": { "type": "set_text", "text": "Try it free" } },
        { "selector": "#hero p", "action": { "type": "set_html", "html": "<b>Bold</b><script>alert(1)</script><img src=x onerror=alert(1)>" } },
        { "selector": ".cta", "action": { "type": "set_style", "property": "background-color", "value": "#ff0000" } },
    ]);
    let resp = put_changes(&app, &team.editor.token, &uri, &etag, changes).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    let body = resp.json();
    assert_eq!(resp.etag(), format!("\"{}\"", body["version"]));
    assert_eq!(
        body["version"].as_i64(),
        experiment["version"].as_i64().map(|v| v + 1)
    );
    let saved = &body["elements"][0]["variants"][1]["changes"];
    assert_eq!(saved[0]["action"]["text"], "Try it free");
    let html = saved[1]["action"]["html"].as_str().unwrap();
    assert!(html.contains("<b>Bold</b>"), "{html}");
    assert!(
        !html.contains("script") && !html.contains("onerror"),
        "sanitised: {html}"
    );
    // Read back.
    let read = app
        .get(
            &format!("/api/v1/experiments/{}", experiment["id"].as_str().unwrap()),
            Some(&team.viewer.token),
        )
        .await;
    assert_eq!(&read.json()["elements"][0]["variants"][1]["changes"], saved);
    assert!(
        audit_actions(&pool, team.owner.org_id)
            .await
            .contains(&"variant.changes.update".to_owned())
    );
    // The old ETag is stale now.
    let resp = put_changes(&app, &team.editor.token, &uri, &etag, json!([])).await;
    resp.assert_problem(StatusCode::PRECONDITION_FAILED, "stale_version");
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn invalid_changes_are_refused_naming_each_bad_one(pool: PgPool) {
    let app = TestApp::new(pool.clone());
    let team = new_team(&app).await;
    let (_, experiment) = verified_site_and_experiment(&app, &team.editor, experiment_body()).await;
    let uri = changes_uri(&experiment, 1);
    let etag = format!("\"{}\"", experiment["version"]);
    let cases = [
        (
            json!([{ "selector": "", "action": { "type": "hide" } }]),
            "an empty selector",
        ),
        (
            json!([{ "selector": "a<script>", "action": { "type": "hide" } }]),
            "markup in a selector",
        ),
        (
            json!([{ "selector": "a", "action": { "type": "set_attribute", "name": "onclick", "value": "x" } }]),
            "an event handler",
        ),
        (
            json!([{ "selector": "a", "action": { "type": "set_attribute", "name": "href", "value": "javascript:alert(1)" } }]),
            "a script URL",
        ),
        (
            json!([{ "selector": "a", "action": { "type": "redirect", "url": "//evil.example" } }]),
            "a protocol-relative redirect",
        ),
        (
            json!([{ "selector": "a", "action": { "type": "explode" } }]),
            "an unknown action",
        ),
        (
            json!([{ "selector": "a", "action": { "type": "set_style", "property": "color", "value": "red;}body{x" } }]),
            "a style escape",
        ),
    ];
    for (changes, why) in cases {
        let resp = put_changes(&app, &team.editor.token, &uri, &etag, changes).await;
        let problem = resp.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(
            problem["errors"][0]["field"], "changes[0]",
            "{why}: {problem}"
        );
    }
    let too_many: Vec<Value> = (0..101)
        .map(|_| json!({ "selector": "a", "action": { "type": "hide" } }))
        .collect();
    let resp = put_changes(
        &app,
        &team.editor.token,
        &uri,
        &etag,
        Value::Array(too_many),
    )
    .await;
    resp.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn changes_are_saved_only_on_drafts_by_editors_of_the_organisation(pool: PgPool) {
    let app = TestApp::new(pool.clone());
    let team = new_team(&app).await;
    let (_, experiment) = verified_site_and_experiment(&app, &team.editor, experiment_body()).await;
    let uri = changes_uri(&experiment, 1);
    let etag = format!("\"{}\"", experiment["version"]);
    let hide = json!([{ "selector": "#hero h1", "action": { "type": "hide" } }]);

    let anonymous = app
        .call_with(
            Method::PUT,
            &uri,
            None,
            Some(json!({ "changes": hide })),
            &[("if-match", &etag)],
        )
        .await;
    anonymous.assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    put_changes(&app, &team.viewer.token, &uri, &etag, hide.clone())
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    let other = new_team(&app).await;
    put_changes(&app, &other.owner.token, &uri, &etag, hide.clone())
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    let wrong_variant = format!(
        "/api/v1/experiments/{}/variants/00000000-0000-4000-8000-000000000000/changes",
        experiment["id"].as_str().unwrap()
    );
    put_changes(
        &app,
        &team.editor.token,
        &wrong_variant,
        &etag,
        hide.clone(),
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not_found");
    app.call_with(
        Method::PUT,
        &uri,
        Some(&team.editor.token),
        Some(json!({ "changes": hide })),
        &[],
    )
    .await
    .assert_problem(StatusCode::PRECONDITION_REQUIRED, "if_match_required");

    let started = act(
        &app,
        &team.editor,
        experiment["id"].as_str().unwrap(),
        "start",
    )
    .await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.text());
    let resp = put_changes(&app, &team.editor.token, &uri, &started.etag(), hide).await;
    resp.assert_problem(StatusCode::CONFLICT, "not_editable");
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn no_editor_session_opens_a_host_the_site_has_not_verified(pool: PgPool) {
    let app = app_with_edge(pool.clone());
    let team = new_team(&app).await;
    // A stranger lists someone else's host: it stays pending, so no token names it.
    let (site, _) = site_and_experiment(&app, &team.editor, experiment_body()).await;
    let resp = app
        .post(
            &sessions(&site),
            Some(&team.editor.token),
            json!({ "url": "https://shop.example/pricing" }),
        )
        .await;
    let problem = resp.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert!(
        problem["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("no verified domains"),
        "{problem}"
    );
}

/// The console frames the editor proxy: its CSP allows frames from the edge's origin
/// (scheme, host and port of `SAMPLIT_EDGE_URL`, never its path) and from nowhere else;
/// without an edge, no frame at all. `/docs` frames nothing either way.
#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn the_consoles_csp_frames_the_edge_origin_only(pool: PgPool) {
    use axum::http::header::CONTENT_SECURITY_POLICY;
    use samplit_control_plane::http::assets::CONTENT_SECURITY_POLICY as BASE_CSP;

    let mut config = test_config();
    config.edge_url = Some("https://edge.example:8443/some/path/".into());
    let app = TestApp::with_config(pool.clone(), config);
    for path in ["/app", "/app/experiments/x/editor", "/app/app.js"] {
        let res = app.get(path, None).await;
        assert_eq!(res.status, StatusCode::OK, "{path}");
        let csp = res.headers[CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert_eq!(
            csp,
            format!("{BASE_CSP}; frame-src https://edge.example:8443"),
            "{path}"
        );
    }
    let docs = app.get("/docs", None).await;
    assert_eq!(
        docs.headers[CONTENT_SECURITY_POLICY].to_str().unwrap(),
        BASE_CSP
    );

    let no_edge = TestApp::new(pool);
    let res = no_edge.get("/app", None).await;
    let csp = res.headers[CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert_eq!(csp, BASE_CSP);
    assert!(!csp.contains("frame-src"), "{csp}");
}
