//! The API reference (`/docs`, Swagger UI) and the console's shell (`/app`): embedded
//! assets served with a strict CSP, nothing from another origin, the right types,
//! ETag revalidation and precompressed gzip; the console's first load within its size
//! budget; and the OpenAPI document they are fed from.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use samplit_control_plane::http::assets::{
    CONSOLE_GZIP_BUDGET, CONTENT_SECURITY_POLICY, gzipped_size,
};
use serde_json::json;
use sqlx::PgPool;

use crate::helpers::{TestApp, TestResponse};

/// A GET with extra request headers.
async fn get_with(
    app: &TestApp,
    uri: &str,
    headers: &[(header::HeaderName, &str)],
) -> TestResponse {
    let mut request = Request::builder().method(Method::GET).uri(uri);
    for (name, value) in headers {
        request = request.header(name, *value);
    }
    app.send(request.body(Body::empty()).unwrap()).await
}

fn header_of(response: &TestResponse, name: header::HeaderName) -> &str {
    response
        .headers
        .get(&name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

/// CRC-32 (IEEE 802.3, reflected, as gzip's trailer stores it).
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Asserts `gz` is a gzip member whose trailer (CRC-32 and length, RFC 1952 §2.3) is that
/// of `plain`: the compressed body is of exactly this content.
#[track_caller]
fn assert_gzip_of(gz: &[u8], plain: &[u8]) {
    assert_eq!(&gz[..3], [0x1f, 0x8b, 8], "gzip magic and deflate");
    let trailer = &gz[gz.len() - 8..];
    let crc = u32::from_le_bytes(trailer[..4].try_into().unwrap());
    let size = u32::from_le_bytes(trailer[4..].try_into().unwrap());
    assert_eq!(crc, crc32(plain), "CRC-32 of the content");
    assert_eq!(size as usize, plain.len(), "length of the content");
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn the_docs_page_is_swagger_ui_from_this_origin_under_a_strict_csp(pool: PgPool) {
    let app = TestApp::new(pool);
    let page = app.get("/docs", None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(
        header_of(&page, header::CONTENT_TYPE),
        "text/html; charset=utf-8"
    );
    let csp = header_of(&page, header::CONTENT_SECURITY_POLICY);
    assert_eq!(csp, CONTENT_SECURITY_POLICY);
    for directive in [
        "default-src 'none'",
        "script-src 'self';",
        "style-src 'self';",
        "img-src 'self' data:;",
        "connect-src 'self';",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} in {csp}");
    }
    for loose in ["unsafe-inline", "unsafe-eval", "http:", "https:", "*"] {
        assert!(!csp.contains(loose), "{loose} in {csp}");
    }

    let html = page.text();
    for tag in [
        r#"<link rel="stylesheet" href="/docs/swagger-ui.css">"#,
        r#"<script src="/docs/swagger-ui-bundle.js" defer></script>"#,
        r#"<script src="/docs/docs.js" defer></script>"#,
        r#"<div id="swagger"></div>"#,
    ] {
        assert!(html.contains(tag), "{tag} in {html}");
    }
    assert_eq!(
        html.matches("<script").count(),
        html.matches("<script src=\"/docs/").count(),
        "every script is a file from /docs/, none inline: {html}"
    );
    assert!(
        html.contains(r#"<link rel="icon" type="image/png" href="/docs/favicon-32x32.png">"#),
        "an icon of its own, so the browser asks for no /favicon.ico"
    );
    assert!(!html.contains("style="), "no inline style attribute");
    assert!(!html.contains("<style"), "no inline style element");
    assert!(
        !html.contains("https://") && !html.contains("http://") && !html.contains("\"//"),
        "nothing fetched from elsewhere: {html}"
    );

    // Each file the page loads, with its type and the same policy.
    for (path, content_type, marker) in [
        (
            "/docs/swagger-ui-bundle.js",
            "text/javascript; charset=utf-8",
            "SwaggerUIBundle",
        ),
        (
            "/docs/swagger-ui.css",
            "text/css; charset=utf-8",
            ".swagger-ui",
        ),
        (
            "/docs/docs.js",
            "text/javascript; charset=utf-8",
            "/api/v1/openapi.json",
        ),
        ("/docs/docs.css", "text/css; charset=utf-8", "box-sizing"),
        (
            "/docs/swagger-ui-bundle.js.LICENSE.txt",
            "text/plain; charset=utf-8",
            "license",
        ),
        ("/docs/favicon-32x32.png", "image/png", "PNG"),
    ] {
        let file = app.get(path, None).await;
        assert_eq!(file.status, StatusCode::OK, "{path}");
        assert_eq!(
            header_of(&file, header::CONTENT_TYPE),
            content_type,
            "{path}"
        );
        assert_eq!(
            header_of(&file, header::CONTENT_SECURITY_POLICY),
            CONTENT_SECURITY_POLICY,
            "{path}"
        );
        assert!(file.text().contains(marker), "{path} holds {marker}");
        assert!(
            !file.text().contains("sourceMappingURL"),
            "{path}: no pointer to a source map that is not served"
        );
    }
    let init = app.get("/docs/docs.js", None).await.text();
    assert!(init.contains("dom_id:\"#swagger\""), "{init}");
    assert!(
        init.contains("validatorUrl:null"),
        "no badge from validator.swagger.io: {init}"
    );
    assert!(!init.contains("http"), "no absolute URL: {init}");
    assert!(!init.contains("localStorage"), "{init}");

    let missing = app.get("/docs/swagger-ui-bundle.js.map", None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn assets_come_gzipped_when_accepted_and_revalidate_with_their_etag(pool: PgPool) {
    let app = TestApp::new(pool);
    let path = "/docs/swagger-ui-bundle.js";

    let plain = get_with(&app, path, &[]).await;
    assert_eq!(plain.status, StatusCode::OK);
    assert!(plain.headers.get(header::CONTENT_ENCODING).is_none());
    assert_eq!(header_of(&plain, header::CACHE_CONTROL), "no-cache");
    assert_eq!(header_of(&plain, header::VARY), "accept-encoding");
    assert_eq!(
        header_of(&plain, header::CONTENT_LENGTH),
        plain.body.len().to_string()
    );
    let plain_tag = header_of(&plain, header::ETAG).to_owned();
    assert!(
        plain_tag.starts_with('"') && plain_tag.ends_with('"') && plain_tag.len() == 34,
        "a strong tag of 128 hex bits: {plain_tag}"
    );

    let gz = get_with(
        &app,
        path,
        &[(header::ACCEPT_ENCODING, "gzip, deflate, br")],
    )
    .await;
    assert_eq!(gz.status, StatusCode::OK);
    assert_eq!(header_of(&gz, header::CONTENT_ENCODING), "gzip");
    assert_eq!(header_of(&gz, header::VARY), "accept-encoding");
    assert_eq!(
        header_of(&gz, header::CONTENT_LENGTH),
        gz.body.len().to_string()
    );
    assert_gzip_of(&gz.body, &plain.body);
    assert!(
        gz.body.len() * 3 < plain.body.len(),
        "{} gzipped vs {} plain",
        gz.body.len(),
        plain.body.len()
    );
    let gz_tag = header_of(&gz, header::ETAG).to_owned();
    assert_ne!(gz_tag, plain_tag, "each representation has its own tag");

    let refused = get_with(&app, path, &[(header::ACCEPT_ENCODING, "gzip;q=0")]).await;
    assert!(refused.headers.get(header::CONTENT_ENCODING).is_none());

    // Revalidation: the tag of what would be sent answers 304 with no body.
    for (tag, encoding) in [(&plain_tag, ""), (&gz_tag, "gzip")] {
        let mut headers = vec![(header::IF_NONE_MATCH, tag.as_str())];
        if !encoding.is_empty() {
            headers.push((header::ACCEPT_ENCODING, encoding));
        }
        let again = get_with(&app, path, &headers).await;
        assert_eq!(again.status, StatusCode::NOT_MODIFIED, "{tag}");
        assert!(again.body.is_empty());
        assert_eq!(header_of(&again, header::ETAG), tag.as_str());
        assert_eq!(header_of(&again, header::CACHE_CONTROL), "no-cache");
    }
    // A tag of another version, or of the other encoding, gets the full body.
    for (tag, encoding) in [("\"0123\"", "gzip"), (gz_tag.as_str(), "identity")] {
        let changed = get_with(
            &app,
            path,
            &[
                (header::IF_NONE_MATCH, tag),
                (header::ACCEPT_ENCODING, encoding),
            ],
        )
        .await;
        assert_eq!(changed.status, StatusCode::OK, "{tag} {encoding}");
        assert!(!changed.body.is_empty());
    }
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn the_consoles_first_load_stays_within_150_kb_gzipped(pool: PgPool) {
    let app = TestApp::new(pool);
    let shell = app.get("/app", None).await;
    assert_eq!(shell.status, StatusCode::OK);
    assert_eq!(
        header_of(&shell, header::CONTENT_SECURITY_POLICY),
        CONTENT_SECURITY_POLICY
    );
    let html = shell.text();
    assert!(
        html.contains(r#"<script src="/app/app.js" defer></script>"#),
        "{html}"
    );
    assert!(
        html.contains(r#"<link rel="stylesheet" href="/app/app.css">"#),
        "{html}"
    );
    assert!(html.contains(r#"<div id="app"></div>"#), "{html}");

    let mut total = 0;
    for (path, name, content_type) in [
        ("/app/app.js", "app.js", "text/javascript; charset=utf-8"),
        ("/app/app.css", "app.css", "text/css; charset=utf-8"),
    ] {
        let file = get_with(&app, path, &[(header::ACCEPT_ENCODING, "gzip")]).await;
        assert_eq!(file.status, StatusCode::OK, "{path}");
        assert_eq!(
            header_of(&file, header::CONTENT_TYPE),
            content_type,
            "{path}"
        );
        // Sent as stored: what the server's own header and body say.
        let sent: usize = header_of(&file, header::CONTENT_LENGTH).parse().unwrap();
        assert_eq!(sent, file.body.len(), "{path}");
        assert_eq!(Some(sent), gzipped_size(name), "{path}");
        eprintln!("{path}: {sent} bytes sent (gzip where smaller)");
        total += sent;
    }
    eprintln!("console first load: {total} bytes of {CONSOLE_GZIP_BUDGET}");
    assert!(
        total <= CONSOLE_GZIP_BUDGET,
        "app.js + app.css = {total} bytes gzipped, over the {CONSOLE_GZIP_BUDGET}-byte budget"
    );
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
    // What Swagger UI's "Authorize" and "Try it out" rely on: the bearer scheme, and a
    // server URL on this same origin (relative, so try-it calls stay under the CSP's
    // `connect-src 'self'`).
    let bearer = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!(bearer["type"], "http", "{bearer}");
    assert_eq!(bearer["scheme"], "bearer", "{bearer}");
    assert_eq!(doc["servers"][0]["url"], "/api/v1");
    assert_eq!(
        doc["paths"]["/auth/me"]["get"]["security"],
        json!([{ "bearer": [] }]),
        "an operation that needs a token says so, so Swagger UI sends it"
    );
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
