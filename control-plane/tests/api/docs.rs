//! The offline API docs page: served with a strict CSP, no third-party resources, and
//! fed by the OpenAPI document that lists the accounts endpoints.

use axum::http::{Method, StatusCode};
use serde_json::json;
use sqlx::PgPool;

use crate::helpers::TestApp;

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn the_docs_page_is_self_contained_with_a_strict_csp(pool: PgPool) {
    let app = TestApp::new(pool);
    let page = app.get("/docs", None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.headers["content-type"], "text/html; charset=utf-8");
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    let html = page.text();
    assert!(html.contains("<script src=\"/docs/docs.js\""), "{html}");
    assert!(!html.contains("<script>"), "no inline script");
    assert!(!html.contains("style="), "no inline style");
    assert!(
        !html.contains("https://") && !html.contains("http://"),
        "nothing fetched from elsewhere"
    );

    let js = app.get("/docs/docs.js", None).await;
    assert_eq!(js.status, StatusCode::OK);
    assert_eq!(js.headers["content-type"], "text/javascript; charset=utf-8");
    let js = js.text();
    assert!(js.contains("/api/v1/openapi.json"));
    assert!(!js.contains("innerHTML"), "text is never parsed as markup");
    assert!(!js.contains("https://"), "no CDN");
    let css = app.get("/docs/docs.css", None).await;
    assert_eq!(css.headers["content-type"], "text/css; charset=utf-8");
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn the_openapi_document_describes_the_accounts_endpoints(pool: PgPool) {
    let app = TestApp::new(pool);
    let doc = app.get("/api/v1/openapi.json", None).await.json();
    for (path, method, tag) in [
        ("/auth/register", "post", "auth"),
        ("/auth/login", "post", "auth"),
        ("/auth/refresh", "post", "auth"),
        ("/auth/logout", "post", "auth"),
        ("/auth/me", "get", "auth"),
        ("/auth/switch", "post", "auth"),
        ("/members", "get", "members"),
        ("/members/{user_id}", "patch", "members"),
        ("/members/{user_id}", "delete", "members"),
        ("/invitations", "post", "members"),
        ("/invitations/accept", "post", "members"),
        ("/api-keys", "post", "api-keys"),
        ("/api-keys/{id}", "delete", "api-keys"),
        ("/audit", "get", "audit"),
        ("/audit/verify", "get", "audit"),
        ("/audit/export", "get", "audit"),
    ] {
        let op = &doc["paths"][path][method];
        assert_eq!(op["tags"][0], tag, "{method} {path}: {op}");
    }
    assert!(doc["components"]["schemas"]["TokenResponse"].is_object());
    assert!(doc["components"]["schemas"]["ChainReport"].is_object());
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn every_documented_operation_routes_under_the_documents_server_url(pool: PgPool) {
    // A client generated from the document calls `servers[0].url` + path: each of those
    // must reach a handler on the real router (an answer from the handler — 401, 400,
    // 422 — not the router's 404 "no such endpoint" or a 405).
    let app = TestApp::new(pool);
    let doc = app.get("/api/v1/openapi.json", None).await.json();
    assert_eq!(doc["servers"][0]["url"], "/api/v1", "{}", doc["servers"]);
    assert_eq!(
        doc,
        serde_json::to_value(samplit_control_plane::http::openapi()).unwrap(),
        "`samplit openapi` prints the document the server serves"
    );
    let paths = doc["paths"].as_object().expect("paths");
    let mut checked = Vec::new();
    for (path, item) in paths {
        assert!(
            !path.starts_with("/api/v1"),
            "{path}: paths are relative to the server URL"
        );
        // Every path parameter as a well-formed id (handlers answer 401 first anyway).
        let concrete: String = path
            .split('/')
            .map(|seg| {
                if seg.starts_with('{') && seg.ends_with('}') {
                    "0b0e5a1c-5d7e-4f8a-9b6c-2d3e4f5a6b7c".to_owned()
                } else {
                    seg.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        for method in ["get", "post", "put", "patch", "delete"] {
            if !item[method].is_object() {
                continue;
            }
            let m = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
            let body = matches!(method, "post" | "put" | "patch").then(|| json!({}));
            let uri = format!("/api/v1{concrete}");
            let resp = app.call(m, &uri, None, body).await;
            assert_ne!(
                resp.status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {uri}: documented but not routed for this method"
            );
            if resp.status == StatusCode::NOT_FOUND {
                assert_ne!(
                    resp.json()["detail"],
                    "no such endpoint",
                    "{method} {uri}: documented but not routed"
                );
            }
            checked.push(format!("{method} {path}"));
        }
    }
    assert!(
        checked.len() >= 40,
        "only {} operations: {checked:?}",
        checked.len()
    );
    // Without the server URL nothing routes: the prefix is part of every real URL.
    let bare = app.get("/sites", None).await;
    assert_eq!(bare.status, StatusCode::NOT_FOUND);
    assert_eq!(bare.json()["detail"], "no such endpoint");
}

#[test]
fn the_contract_check_refuses_a_body_or_status_the_document_does_not_allow() {
    // Every response in these tests goes through `contract::check` (helpers.rs); this
    // shows it can fail: a 200 of `/auth/me` without its fields, and a status
    // `/auth/me` never documents.
    use crate::contract::check;
    let me = "/api/v1/auth/me";
    let json = Some("application/json");
    let outcomes = [
        (StatusCode::OK, br#"{"unexpected": true}"#.as_slice()),
        (StatusCode::IM_A_TEAPOT, br#"{}"#.as_slice()),
    ]
    .map(|(status, body)| {
        std::panic::catch_unwind(|| check(&Method::GET, me, status, json, body)).is_err()
    });
    assert_eq!(outcomes, [true, true], "both contradictions are caught");
    // What the document allows passes: a problem body for 401.
    check(
        &Method::GET,
        me,
        StatusCode::UNAUTHORIZED,
        Some("application/problem+json"),
        br#"{"type":"about:blank","title":"Unauthorized","status":401,"code":"unauthorized","detail":"missing token","request_id":"r1"}"#,
    );
}
