//! The offline API docs page: served with a strict CSP, no third-party resources, and
//! fed by the OpenAPI document that lists the accounts endpoints.

use axum::http::StatusCode;
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
