//! The WordPress plugin's connect flow, in process: the console's connect call (roles,
//! other organisations' sites, the return URL's origin), the one-time code, the rotated
//! server secret, the domain proof through the file the plugin serves, the connection's
//! status and disconnect. The whole flow on a real WordPress:
//! `integrations/wordpress/tests/e2e/wordpress.test.mjs`.

use std::sync::{Arc, Mutex};

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::domains::{LocalDns, app_with};
use crate::helpers::{TEST_SNAPSHOT_SECRET, TestApp, TestResponse, new_team};

const SITE_URL: &str = "https://wp.shop.test";

fn connect_body(state: &str) -> Value {
    json!({
        "site_url": SITE_URL,
        "return_url": format!("{SITE_URL}/wp-admin/options-general.php?page=samplit"),
        "state": state,
    })
}

async fn bearer(app: &TestApp, method: Method, uri: &str, token: &str) -> TestResponse {
    app.call(
        method,
        uri,
        Some(token),
        if uri.ends_with("connection") {
            None
        } else {
            Some(json!({}))
        },
    )
    .await
}

/// The code and state the redirect URL carries.
fn code_of(redirect: &str) -> (String, String) {
    let url = url::Url::parse(redirect).unwrap();
    let get = |k: &str| {
        url.query_pairs()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.into_owned())
            .unwrap()
    };
    (get("code"), get("state"))
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn connect_needs_an_admin_the_sites_own_origin_and_a_valid_state(pool: PgPool) {
    let dns = LocalDns::start().await;
    let app = app_with(pool, &dns, &[]);
    let team = new_team(&app).await;
    let stranger = new_team(&app).await;

    for who in [&team.viewer, &team.editor] {
        let r = app
            .post(
                "/api/v1/wordpress/connect",
                Some(&who.token),
                connect_body("state-123456"),
            )
            .await;
        r.assert_problem(StatusCode::FORBIDDEN, "forbidden");
    }
    let r = app
        .post(
            "/api/v1/wordpress/connect",
            None,
            connect_body("state-123456"),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    let bad = [
        (
            json!({ "site_url": "http://wp.shop.test", "return_url": "http://wp.shop.test/wp-admin/", "state": "state-123456" }),
            "site_url",
        ),
        (
            json!({ "site_url": SITE_URL, "return_url": "https://evil.example/steal", "state": "state-123456" }),
            "return_url",
        ),
        (
            json!({ "site_url": SITE_URL, "return_url": "https://wp.shop.test:8443/wp-admin/", "state": "state-123456" }),
            "return_url",
        ),
        (
            json!({ "site_url": SITE_URL, "return_url": format!("{SITE_URL}/wp-admin/"), "state": "short" }),
            "state",
        ),
        (
            json!({ "site_url": "https://user:pw@wp.shop.test", "return_url": format!("{SITE_URL}/wp-admin/"), "state": "state-123456" }),
            "site_url",
        ),
    ];
    for (body, field) in bad {
        let r = app
            .post(
                "/api/v1/wordpress/connect",
                Some(&team.admin.token),
                body.clone(),
            )
            .await;
        let problem = r.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert!(
            problem["errors"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["field"] == field),
            "{body}: {problem}"
        );
    }

    // Another organisation's site id is 404, and nothing was created.
    let theirs = crate::sites::create_site(&app, &stranger.admin.token, &["their.shop.test"]).await;
    let mut body = connect_body("state-123456");
    body["site_id"] = theirs["id"].clone();
    let r = app
        .post("/api/v1/wordpress/connect", Some(&team.admin.token), body)
        .await;
    r.assert_problem(StatusCode::NOT_FOUND, "not_found");
    let sites = app
        .get("/api/v1/sites", Some(&team.admin.token))
        .await
        .json();
    assert_eq!(sites, json!([]));
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn a_code_is_exchanged_once_for_the_site_key_a_fresh_secret_and_a_connection_token(
    pool: PgPool,
) {
    let dns = LocalDns::start().await;
    let app = app_with(
        pool,
        &dns,
        &[("SAMPLIT_EDGE_URL", "https://edge.example".to_owned())],
    );
    let team = new_team(&app).await;
    let r = app
        .post(
            "/api/v1/wordpress/connect",
            Some(&team.admin.token),
            connect_body("state-abcdef12"),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let out = r.json();
    let redirect = out["redirect_url"].as_str().unwrap();
    assert!(
        redirect.starts_with(&format!(
            "{SITE_URL}/wp-admin/options-general.php?page=samplit&code="
        )),
        "{redirect}"
    );
    let (code, state) = code_of(redirect);
    assert_eq!(state, "state-abcdef12");
    let site_id = out["site_id"].as_str().unwrap();
    let site = app
        .get(&format!("/api/v1/sites/{site_id}"), Some(&team.admin.token))
        .await
        .json();
    assert_eq!(site["domains"], json!(["wp.shop.test"]));
    assert_eq!(site["domain_verification"][0]["status"], "pending");

    // A code presented for another WordPress is refused and spent.
    let wrong = app
        .post(
            "/api/v1/wordpress/exchange",
            None,
            json!({ "code": code, "site_url": "https://other.shop.test" }),
        )
        .await;
    wrong.assert_problem(StatusCode::BAD_REQUEST, "invalid_code");
    let again = app
        .post(
            "/api/v1/wordpress/exchange",
            None,
            json!({ "code": code, "site_url": SITE_URL }),
        )
        .await;
    again.assert_problem(StatusCode::BAD_REQUEST, "invalid_code");

    let r = app.post("/api/v1/wordpress/connect", Some(&team.admin.token), json!({
        "site_url": SITE_URL, "return_url": format!("{SITE_URL}/wp-admin/"), "state": "state-second1", "site_id": site_id,
    })).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let (code, _) = code_of(r.json()["redirect_url"].as_str().unwrap());
    let salt_before: String =
        sqlx::query_scalar("SELECT server_secret_salt FROM sites WHERE id = $1::uuid")
            .bind(site_id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    let r = app
        .post(
            "/api/v1/wordpress/exchange",
            None,
            json!({ "code": code, "site_url": SITE_URL }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let got = r.json();
    assert_eq!(got["site_key"], site["site_key"]);
    assert_eq!(got["edge_url"], "https://edge.example");
    assert_eq!(got["host"], "wp.shop.test");
    assert_eq!(
        got["verification"]["path"],
        "/.well-known/samplit-verification.txt"
    );
    assert_eq!(
        got["verification"]["token"],
        site["domain_verification"][0]["txt_value"]
    );
    assert!(
        got["connection_token"]
            .as_str()
            .unwrap()
            .starts_with("wpc_")
    );
    // The secret is the one the edge derives from the site's new salt.
    let salt: String =
        sqlx::query_scalar("SELECT server_secret_salt FROM sites WHERE id = $1::uuid")
            .bind(site_id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_ne!(salt, salt_before);
    let expected = samplit_engine::server_call::server_secret(
        TEST_SNAPSHOT_SECRET.as_bytes(),
        site["site_key"].as_str().unwrap(),
        &salt,
    );
    assert_eq!(got["server_secret"], expected.as_str());
    // Only hashes are stored.
    let stored: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM wordpress_connections WHERE token_hash = sha256($1::text::bytea)",
    )
    .bind(got["connection_token"].as_str().unwrap())
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(stored, 1);
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn the_plugin_proves_its_host_reads_its_connection_and_disconnects(pool: PgPool) {
    let dns = LocalDns::start().await;
    dns.a("wp.shop.test", "127.0.0.1");
    let served: Arc<Mutex<String>> = Arc::default();
    let body = served.clone();
    let origin = axum::Router::new().route(
        "/.well-known/samplit-verification.txt",
        axum::routing::get(move || {
            let body = body.clone();
            async move { body.lock().unwrap().clone() }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, origin).await.unwrap() });
    let app = app_with(
        pool,
        &dns,
        &[
            ("SAMPLIT_DEV_ALLOW_LOCAL_DOMAINS", "true".to_owned()),
            ("SAMPLIT_DEV_VERIFY_PORT", port.to_string()),
        ],
    );
    let team = new_team(&app).await;
    let r = app
        .post(
            "/api/v1/wordpress/connect",
            Some(&team.admin.token),
            connect_body("state-verify01"),
        )
        .await;
    let (code, _) = code_of(r.json()["redirect_url"].as_str().unwrap());
    let got = app
        .post(
            "/api/v1/wordpress/exchange",
            None,
            json!({ "code": code, "site_url": SITE_URL }),
        )
        .await
        .json();
    let token = got["connection_token"].as_str().unwrap().to_owned();

    // Nothing served yet: 422 with what was found; then the plugin serves the token.
    let r = bearer(&app, Method::POST, "/api/v1/wordpress/verify", &token).await;
    r.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    *served.lock().unwrap() = got["verification"]["token"].as_str().unwrap().to_owned();
    let r = bearer(&app, Method::POST, "/api/v1/wordpress/verify", &token).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({ "host": "wp.shop.test", "status": "verified" })
    );

    let status = bearer(&app, Method::GET, "/api/v1/wordpress/connection", &token).await;
    assert_eq!(status.status, StatusCode::OK, "{}", status.text());
    let status = status.json();
    assert_eq!(status["host"], "wp.shop.test");
    assert_eq!(status["domain_status"], "verified");
    assert_eq!(status["site"]["site_key"], got["site_key"]);
    assert_eq!(status["experiments"], json!([]));

    // Tokens that are not a live connection's.
    for bad in ["wpc_nope", "sk_not_a_connection", &team.admin.token] {
        let r = bearer(&app, Method::GET, "/api/v1/wordpress/connection", bad).await;
        r.assert_problem(StatusCode::UNAUTHORIZED, "invalid_connection_token");
    }

    let salt_before: String =
        sqlx::query_scalar("SELECT server_secret_salt FROM sites WHERE site_key = $1")
            .bind(got["site_key"].as_str().unwrap())
            .fetch_one(&app.pool)
            .await
            .unwrap();
    let r = bearer(&app, Method::POST, "/api/v1/wordpress/disconnect", &token).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    let r = bearer(&app, Method::GET, "/api/v1/wordpress/connection", &token).await;
    r.assert_problem(StatusCode::UNAUTHORIZED, "invalid_connection_token");
    let salt_after: String =
        sqlx::query_scalar("SELECT server_secret_salt FROM sites WHERE site_key = $1")
            .bind(got["site_key"].as_str().unwrap())
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_ne!(
        salt_before, salt_after,
        "the plugin's secret no longer verifies"
    );
    let actions: Vec<String> =
        sqlx::query_scalar("SELECT action FROM audit_log WHERE org_id = $1 ORDER BY seq")
            .bind(team.owner.org_id)
            .fetch_all(&app.pool)
            .await
            .unwrap();
    for a in [
        "wordpress.connect",
        "wordpress.connected",
        "site.domain.verify",
        "wordpress.disconnect",
    ] {
        assert!(actions.iter().any(|x| x == a), "{a} in {actions:?}");
    }
}
