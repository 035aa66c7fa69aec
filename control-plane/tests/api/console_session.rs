//! The console's browser sessions: an HttpOnly, SameSite=Strict, `__Host-` cookie in
//! place of tokens, CSRF tokens on every state change, organisation switching, logout,
//! and the cookie's authority following the member's current role.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::{GOOD_PASSWORD, TestApp, TestResponse, test_config_with};

const COOKIE: &str = "__Host-samplit_session";

/// A signed-in browser: its `Cookie` header and CSRF token.
struct Browser {
    cookie: String,
    csrf: String,
    org_id: String,
}

impl Browser {
    fn from(resp: &TestResponse, name: &str) -> Self {
        let set = resp.headers["set-cookie"].to_str().unwrap();
        let pair = set.split(';').next().unwrap();
        assert!(pair.starts_with(&format!("{name}=cs_")), "{set}");
        let body = resp.json();
        Self {
            cookie: pair.to_owned(),
            csrf: body["csrf_token"].as_str().unwrap().to_owned(),
            org_id: body["organization_id"].as_str().unwrap().to_owned(),
        }
    }

    async fn call(
        &self,
        app: &TestApp,
        method: Method,
        uri: &str,
        body: Option<Value>,
        csrf: Option<&str>,
    ) -> TestResponse {
        let mut headers = vec![("cookie", self.cookie.as_str())];
        if let Some(token) = csrf {
            headers.push(("x-csrf-token", token));
        }
        app.call_with(method, uri, None, body, &headers).await
    }
}

async fn console_register(app: &TestApp, email: &str) -> TestResponse {
    app.post(
        "/api/v1/auth/console/register",
        None,
        json!({ "email": email, "password": GOOD_PASSWORD, "name": "Mia",
                "organization_name": "Mia's shop" }),
    )
    .await
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn signing_up_sets_a_strict_http_only_host_cookie_and_no_token(pool: PgPool) {
    let app = TestApp::new(pool.clone());
    let resp = console_register(&app, "mia@example.com").await;
    assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.text());
    let set = resp.headers["set-cookie"].to_str().unwrap().to_owned();
    for attribute in [
        "HttpOnly",
        "SameSite=Strict",
        "Secure",
        "Path=/",
        "Max-Age=",
    ] {
        assert!(set.contains(attribute), "{attribute} in {set}");
    }
    assert!(
        !set.contains("Domain="),
        "a __Host- cookie has no Domain: {set}"
    );
    assert_eq!(resp.headers["cache-control"], "no-store");
    let body = resp.json();
    assert!(body.get("access_token").is_none() && body.get("refresh_token").is_none());
    let browser = Browser::from(&resp, COOKIE);

    // Only the cookie's hash is stored.
    let value = browser.cookie.split_once('=').unwrap().1;
    let stored: Vec<u8> =
        sqlx::query_scalar("SELECT cookie_hash FROM auth_sessions WHERE cookie_hash IS NOT NULL")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_ne!(stored, value.as_bytes());
    assert_eq!(stored.len(), 32);

    // The cookie authenticates reads.
    let me = browser
        .call(&app, Method::GET, "/api/v1/auth/me", None, None)
        .await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text());
    assert_eq!(me.json()["user"]["email"], "mia@example.com");
    assert_eq!(me.json()["role"], "owner");

    // A reloaded page gets the same CSRF token back.
    let again = browser
        .call(
            &app,
            Method::GET,
            "/api/v1/auth/console/session",
            None,
            None,
        )
        .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text());
    assert_eq!(again.json()["csrf_token"], browser.csrf.as_str());
    assert_eq!(again.json()["organization_id"], browser.org_id.as_str());
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn a_state_change_with_the_cookie_needs_the_sessions_csrf_token(pool: PgPool) {
    let app = TestApp::new(pool.clone());
    let browser = Browser::from(&console_register(&app, "csrf@example.com").await, COOKIE);
    let other = Browser::from(&console_register(&app, "other@example.com").await, COOKIE);
    let site = json!({ "name": "Shop", "domains": ["shop.example"] });

    for (what, token) in [
        ("no token", None),
        ("an empty token", Some("")),
        ("a malformed token", Some("not-hex")),
        ("another session's token", Some(other.csrf.as_str())),
        ("a truncated token", Some(&browser.csrf[..32])),
    ] {
        let resp = browser
            .call(
                &app,
                Method::POST,
                "/api/v1/sites",
                Some(site.clone()),
                token,
            )
            .await;
        resp.assert_problem(StatusCode::FORBIDDEN, "forbidden");
        assert!(
            resp.text().contains("X-CSRF-Token"),
            "{what}: {}",
            resp.text()
        );
    }
    let sites: i64 = sqlx::query_scalar("SELECT count(*) FROM sites")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(sites, 0, "nothing was created without the token");

    let created = browser
        .call(
            &app,
            Method::POST,
            "/api/v1/sites",
            Some(site),
            Some(&browser.csrf),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let id = created.json()["id"].as_str().unwrap().to_owned();

    // The cookie is scoped to its organisation like any credential.
    other
        .call(
            &app,
            Method::GET,
            &format!("/api/v1/sites/{id}"),
            None,
            None,
        )
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");

    // API clients (bearer tokens) never need the CSRF token.
    let login = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({ "email": "csrf@example.com", "password": GOOD_PASSWORD }),
        )
        .await;
    let token = login.json()["access_token"].as_str().unwrap().to_owned();
    let key = app
        .post(
            "/api/v1/api-keys",
            Some(&token),
            json!({ "name": "ci", "role": "viewer" }),
        )
        .await;
    assert_eq!(key.status, StatusCode::CREATED, "{}", key.text());
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn logout_ends_the_browser_session_and_clears_the_cookie(pool: PgPool) {
    let app = TestApp::new(pool);
    let browser = Browser::from(&console_register(&app, "out@example.com").await, COOKIE);
    // Logging out is a state change: a foreign page cannot sign the user out either.
    browser
        .call(&app, Method::POST, "/api/v1/auth/logout", None, None)
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    let out = browser
        .call(
            &app,
            Method::POST,
            "/api/v1/auth/logout",
            None,
            Some(&browser.csrf),
        )
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT, "{}", out.text());
    let clear = out.headers["set-cookie"].to_str().unwrap();
    assert!(clear.starts_with(&format!("{COOKIE}=;")), "{clear}");
    assert!(clear.contains("Max-Age=0"), "{clear}");
    browser
        .call(&app, Method::GET, "/api/v1/auth/me", None, None)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn signing_in_switching_organisation_and_losing_membership(pool: PgPool) {
    let app = TestApp::new(pool.clone());
    let first = Browser::from(&console_register(&app, "two@example.com").await, COOKIE);
    // A second organisation invites the same person as a viewer.
    let inviter = Browser::from(&console_register(&app, "boss@example.com").await, COOKIE);
    let invitation = inviter
        .call(
            &app,
            Method::POST,
            "/api/v1/invitations",
            Some(json!({ "email": "two@example.com", "role": "viewer" })),
            Some(&inviter.csrf),
        )
        .await;
    assert_eq!(
        invitation.status,
        StatusCode::CREATED,
        "{}",
        invitation.text()
    );
    let accepted = first
        .call(
            &app,
            Method::POST,
            "/api/v1/invitations/accept",
            Some(json!({ "token": invitation.json()["token"] })),
            Some(&first.csrf),
        )
        .await;
    assert_eq!(
        accepted.status,
        StatusCode::NO_CONTENT,
        "{}",
        accepted.text()
    );

    // Wrong password: the same 401 as the API's login.
    app.post(
        "/api/v1/auth/console/login",
        None,
        json!({ "email": "two@example.com", "password": "wrong password!" }),
    )
    .await
    .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    let signed_in = app
        .post(
            "/api/v1/auth/console/login",
            None,
            json!({ "email": "two@example.com", "password": GOOD_PASSWORD }),
        )
        .await;
    assert_eq!(signed_in.status, StatusCode::OK, "{}", signed_in.text());
    let browser = Browser::from(&signed_in, COOKIE);
    assert_eq!(
        browser.org_id, first.org_id,
        "the oldest membership by default"
    );

    let switched = browser
        .call(
            &app,
            Method::POST,
            "/api/v1/auth/console/switch",
            Some(json!({ "organization_id": inviter.org_id })),
            Some(&browser.csrf),
        )
        .await;
    assert_eq!(switched.status, StatusCode::OK, "{}", switched.text());
    let there = Browser::from(&switched, COOKIE);
    assert_eq!(there.org_id, inviter.org_id);
    assert_ne!(there.csrf, browser.csrf);
    let me = there
        .call(&app, Method::GET, "/api/v1/auth/me", None, None)
        .await;
    assert_eq!(me.json()["role"], "viewer");
    // The cookie it replaced is over.
    browser
        .call(&app, Method::GET, "/api/v1/auth/me", None, None)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    // A viewer's cookie cannot create (the role, not the credential, decides).
    there
        .call(
            &app,
            Method::POST,
            "/api/v1/sites",
            Some(json!({ "name": "x", "domains": ["x.example"] })),
            Some(&there.csrf),
        )
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");

    // Removed from the organisation: the cookie stops working at once.
    sqlx::query("DELETE FROM memberships WHERE org_id = $1::uuid AND user_id = (SELECT id FROM users WHERE email = 'two@example.com')")
        .bind(&inviter.org_id)
        .execute(&pool)
        .await
        .unwrap();
    there
        .call(&app, Method::GET, "/api/v1/auth/me", None, None)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");

    // Switching is for browser sessions; an API client has /auth/switch.
    let api = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({ "email": "two@example.com", "password": GOOD_PASSWORD }),
        )
        .await;
    let token = api.json()["access_token"].as_str().unwrap().to_owned();
    app.post(
        "/api/v1/auth/console/switch",
        Some(&token),
        json!({ "organization_id": first.org_id }),
    )
    .await
    .assert_problem(StatusCode::BAD_REQUEST, "bad_request");
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn plain_http_development_uses_a_cookie_without_secure(pool: PgPool) {
    let app = TestApp::with_config(
        pool,
        test_config_with(&[("SAMPLIT_DEV_INSECURE_COOKIES", "true")]),
    );
    let resp = console_register(&app, "dev@example.com").await;
    assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.text());
    let set = resp.headers["set-cookie"].to_str().unwrap().to_owned();
    assert!(!set.contains("Secure"), "{set}");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let browser = Browser::from(&resp, "samplit_session");
    let me = browser
        .call(&app, Method::GET, "/api/v1/auth/me", None, None)
        .await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text());
}

/// Login CSRF: a foreign page can post a form (`text/plain`, `application/x-www-form-
/// urlencoded` or `multipart/form-data`, the content types a cross-site form or a
/// CORS-simple request may send) but not JSON. None of them signs a browser in.
#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn a_cross_site_form_cannot_sign_a_browser_in(pool: PgPool) {
    use axum::body::Body;
    use axum::http::{Request, header};

    let app = TestApp::new(pool);
    let registered = console_register(&app, "victim-of-login-csrf@example.com").await;
    assert_eq!(
        registered.status,
        StatusCode::CREATED,
        "{}",
        registered.text()
    );
    let body = json!({ "email": "victim-of-login-csrf@example.com", "password": GOOD_PASSWORD })
        .to_string();
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        let resp = app
            .send(
                Request::builder()
                    .method(Method::POST)
                    .uri("/api/v1/auth/console/login")
                    .header(header::CONTENT_TYPE, content_type)
                    .header(header::ORIGIN, "https://evil.example")
                    .body(Body::from(body.clone()))
                    .unwrap(),
            )
            .await;
        // The body is refused before any credential is looked at.
        resp.assert_problem(StatusCode::BAD_REQUEST, "bad_request");
        assert!(resp.text().contains("application/json"), "{content_type}");
        assert!(resp.headers.get("set-cookie").is_none(), "{content_type}");
    }
}
