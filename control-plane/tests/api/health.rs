use axum::http::StatusCode;
use sqlx::PgPool;

use crate::helpers::{TestApp, new_org, test_config_with};

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn health_and_readiness_answer_when_the_database_is_up(pool: PgPool) {
    let app = TestApp::new(pool);
    let health = app.get("/healthz", None).await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.json()["status"], "ok");
    let ready = app.get("/readyz", None).await;
    assert_eq!(ready.status, StatusCode::OK);
    assert!(ready.headers.contains_key("x-request-id"));
    assert_eq!(ready.headers["x-content-type-options"], "nosniff");
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn readiness_fails_with_503_when_the_database_is_gone(pool: PgPool) {
    let app = TestApp::new(pool.clone());
    pool.close().await;
    app.get("/readyz", None)
        .await
        .assert_problem(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn metrics_count_requests_by_route(pool: PgPool) {
    let app = TestApp::new(pool);
    app.get("/healthz", None).await;
    let metrics = app.get("/metrics", None).await;
    assert_eq!(metrics.status, StatusCode::OK);
    let text = metrics.text();
    assert!(
        text.contains(
            r#"samplit_http_requests_total{method="GET",route="/healthz",status="200"} 1"#
        ),
        "{text}"
    );
    assert!(text.contains("samplit_db_pool_connections"), "{text}");
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn unknown_routes_get_a_problem_body(pool: PgPool) {
    let app = TestApp::new(pool);
    app.get("/api/v1/nope", None)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn the_openapi_document_is_served(pool: PgPool) {
    let app = TestApp::new(pool);
    let doc = app.get("/api/v1/openapi.json", None).await;
    assert_eq!(doc.status, StatusCode::OK);
    let doc = doc.json();
    assert_eq!(doc["info"]["title"], "Samplit control plane");
    assert!(
        doc["components"]["securitySchemes"]["bearer"].is_object(),
        "{doc}"
    );
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn metrics_name_route_templates_never_site_keys_or_tenant_ids(pool: PgPool) {
    let app = TestApp::new(pool);
    let owner = new_org(&app).await;
    let site = app
        .post(
            "/api/v1/sites",
            Some(&owner.token),
            serde_json::json!({ "name": "Shop", "domains": ["shop.example.com"] }),
        )
        .await
        .json();
    let site_id = site["id"].as_str().unwrap().to_owned();
    let site_key = site["site_key"].as_str().unwrap().to_owned();
    app.get(&format!("/api/v1/sites/{site_id}"), Some(&owner.token))
        .await;
    // An unmatched path that carries the key must not become a label either.
    app.get(&format!("/v1/assign/{site_key}"), None).await;
    let text = app.get("/metrics", None).await.text();
    assert!(text.contains(r#"route="/api/v1/sites/{id}""#), "{text}");
    for secret in [&site_id, &site_key, &owner.org_id.to_string()] {
        assert!(!text.contains(secret.as_str()), "{secret} leaked: {text}");
    }
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn with_a_metrics_token_metrics_answer_only_that_bearer(pool: PgPool) {
    let token = "metrics-token-0123456789abcdef0123456789";
    let app = TestApp::with_config(pool, test_config_with(&[("SAMPLIT_METRICS_TOKEN", token)]));
    app.get("/metrics", None)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    app.get(
        "/metrics",
        Some("metrics-token-wrong-0123456789abcdef01234"),
    )
    .await
    .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    let ok = app.get("/metrics", Some(token)).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    assert!(ok.text().contains("samplit_http_requests_total"));
}
