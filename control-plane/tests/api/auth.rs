//! Registration, login, refresh-token rotation, logout, `me`, org switching, input
//! validation and login throttling.

use std::net::SocketAddr;

use axum::http::StatusCode;
use samplit_control_plane::auth::Role;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{GOOD_PASSWORD, Session, TestApp, add_member, login, register, test_config};

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn a_user_registers_logs_in_refreshes_with_rotation_and_logs_out(pool: PgPool) {
    let app = TestApp::new(pool.clone());
    let registered = register(&app, "Ada@Example.com").await;

    // The email is stored lower-cased; login is case-insensitive and trims.
    let stored: String = sqlx::query_scalar("SELECT email FROM users")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stored, "ada@example.com");
    let resp = login(&app, "  ADA@example.COM ", GOOD_PASSWORD).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    let body = resp.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    let session = Session::from_json(&body);
    assert_eq!(session.org_id, registered.org_id);

    // me: user, org, role, orgs.
    let me = app.get("/api/v1/auth/me", Some(&session.access)).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text());
    let me = me.json();
    assert_eq!(me["user"]["email"], "ada@example.com");
    assert_eq!(me["user"]["name"], "Test User");
    assert_eq!(me["role"], "owner");
    assert_eq!(me["organization"]["id"], registered.org_id.to_string());
    assert_eq!(me["organizations"].as_array().unwrap().len(), 1);
    assert!(me["api_key"].is_null());

    // Refresh rotates: a new refresh token, the old one is used up.
    let r1 = session.refresh.clone();
    let resp = app
        .post("/api/v1/auth/refresh", None, json!({ "refresh_token": r1 }))
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    let rotated = Session::from_json(&resp.json());
    assert_ne!(rotated.refresh, r1);
    assert_eq!(
        app.get("/api/v1/auth/me", Some(&rotated.access))
            .await
            .status,
        StatusCode::OK
    );

    // Reusing the used token revokes the whole family: the rotated refresh token and
    // every access token of the session stop working.
    app.post("/api/v1/auth/refresh", None, json!({ "refresh_token": r1 }))
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    app.post(
        "/api/v1/auth/refresh",
        None,
        json!({ "refresh_token": rotated.refresh }),
    )
    .await
    .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    app.get("/api/v1/auth/me", Some(&rotated.access))
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    let reason: Option<String> = sqlx::query_scalar(
        "SELECT revoked_reason FROM auth_sessions s JOIN refresh_tokens r ON r.session_id = s.id
          WHERE r.token_hash = $1",
    )
    .bind(samplit_control_plane::auth::token_hash(&r1))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(reason.as_deref(), Some("refresh_token_reuse"));

    // The registration session is independent and still works; logout ends it at once.
    assert_eq!(
        app.get("/api/v1/auth/me", Some(&registered.access))
            .await
            .status,
        StatusCode::OK
    );
    let out = app
        .post("/api/v1/auth/logout", Some(&registered.access), json!({}))
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT, "{}", out.text());
    app.get("/api/v1/auth/me", Some(&registered.access))
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    app.post(
        "/api/v1/auth/refresh",
        None,
        json!({ "refresh_token": registered.refresh }),
    )
    .await
    .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn refresh_tokens_are_stored_hashed_and_unknown_ones_are_refused(pool: PgPool) {
    let app = TestApp::new(pool.clone());
    let s = register(&app, "hash@example.com").await;
    let hashes: Vec<Vec<u8>> = sqlx::query_scalar("SELECT token_hash FROM refresh_tokens")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(hashes.len(), 1);
    assert_eq!(
        hashes[0],
        samplit_control_plane::auth::token_hash(&s.refresh)
    );
    assert_ne!(hashes[0], s.refresh.as_bytes());
    for token in ["", "rt_unknown", "not even a token"] {
        app.post(
            "/api/v1/auth/refresh",
            None,
            json!({ "refresh_token": token }),
        )
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    }
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn registering_an_existing_email_in_another_case_is_a_conflict(pool: PgPool) {
    let app = TestApp::new(pool);
    register(&app, "grace@example.com").await;
    let body = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({
                "email": " GRACE@example.com",
                "password": GOOD_PASSWORD,
                "organization_name": "Another",
            }),
        )
        .await
        .assert_problem(StatusCode::CONFLICT, "email_taken");
    assert!(body["detail"].as_str().unwrap().contains("already exists"));
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn bad_registrations_are_refused_with_field_errors(pool: PgPool) {
    let app = TestApp::new(pool.clone());
    let ok =
        json!({"email": "x@example.com", "password": GOOD_PASSWORD, "organization_name": "Org"});
    let with = |key: &str, value: serde_json::Value| {
        let mut body = ok.clone();
        body[key] = value;
        body.to_string()
    };
    let without = |key: &str| {
        let mut body = ok.clone();
        body.as_object_mut().unwrap().remove(key);
        body.to_string()
    };
    // (body, content type, status, code, fields with errors, why)
    type Case<'a> = (
        String,
        Option<&'a str>,
        StatusCode,
        &'a str,
        Vec<&'a str>,
        &'a str,
    );
    let cases: Vec<Case<'_>> = vec![
        (
            "{\"email\": ".into(),
            Some("application/json"),
            StatusCode::BAD_REQUEST,
            "bad_request",
            vec![],
            "malformed JSON",
        ),
        (
            ok.to_string(),
            None,
            StatusCode::BAD_REQUEST,
            "bad_request",
            vec![],
            "no content type",
        ),
        (
            with("email", json!(5)),
            Some("application/json"),
            StatusCode::BAD_REQUEST,
            "bad_request",
            vec![],
            "email is a number",
        ),
        (
            with("password", json!(["a"])),
            Some("application/json"),
            StatusCode::BAD_REQUEST,
            "bad_request",
            vec![],
            "password is an array",
        ),
        (
            "[]".into(),
            Some("application/json"),
            StatusCode::BAD_REQUEST,
            "bad_request",
            vec![],
            "not an object",
        ),
        (
            "{}".into(),
            Some("application/json"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            vec!["email", "password", "organization_name"],
            "every field missing",
        ),
        (
            without("email"),
            Some("application/json"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            vec!["email"],
            "email missing",
        ),
        (
            with("email", json!("not-an-email")),
            Some("application/json"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            vec!["email"],
            "no @",
        ),
        (
            with("email", json!("a@b")),
            Some("application/json"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            vec!["email"],
            "single-label domain",
        ),
        (
            with("password", json!("short")),
            Some("application/json"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            vec!["password"],
            "password under 10 characters",
        ),
        (
            with("password", json!("x".repeat(129))),
            Some("application/json"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            vec!["password"],
            "password over 128 characters",
        ),
        (
            with("organization_name", json!("   ")),
            Some("application/json"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            vec!["organization_name"],
            "blank organisation name",
        ),
        (
            with("organization_name", json!("o".repeat(201))),
            Some("application/json"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            vec!["organization_name"],
            "organisation name too long",
        ),
        (
            with("name", json!("n".repeat(201))),
            Some("application/json"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            vec!["name"],
            "name too long",
        ),
    ];
    for (body, content_type, status, code, fields, why) in cases {
        let resp = app
            .post_raw("/api/v1/auth/register", content_type, &body)
            .await;
        assert_eq!(resp.status, status, "{why}: {}", resp.text());
        let problem = resp.assert_problem(status, code);
        let got: Vec<&str> = problem["errors"]
            .as_array()
            .map(|a| a.iter().map(|e| e["field"].as_str().unwrap()).collect())
            .unwrap_or_default();
        assert_eq!(got, fields, "{why}: {problem}");
    }
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(users, 0, "no bad registration created a user");
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn unknown_email_and_wrong_password_get_the_same_answer(pool: PgPool) {
    let app = TestApp::new(pool);
    register(&app, "known@example.com").await;
    let wrong = login(&app, "known@example.com", "wrong password!").await;
    let unknown = login(&app, "nobody@example.com", "wrong password!").await;
    let too_long = login(&app, "known@example.com", &"x".repeat(10_000)).await;
    let a = wrong.assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    let b = unknown.assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    let c = too_long.assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(a["detail"], b["detail"]);
    assert_eq!(a["detail"], c["detail"]);
    assert_eq!(a["detail"], "invalid email or password");
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn login_is_throttled_per_account_after_five_failures(pool: PgPool) {
    let app = TestApp::new(pool);
    register(&app, "target@example.com").await;
    register(&app, "bystander@example.com").await;
    for attempt in 1..=5 {
        login(&app, "target@example.com", "wrong password!")
            .await
            .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
        let _ = attempt;
    }
    // Even the right password is refused now, before it is checked.
    let limited = login(&app, "TARGET@example.com", GOOD_PASSWORD).await;
    limited.assert_problem(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let retry: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&retry), "Retry-After {retry}");
    // Other accounts are not affected.
    assert_eq!(
        login(&app, "bystander@example.com", GOOD_PASSWORD)
            .await
            .status,
        StatusCode::OK
    );
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn a_success_clears_the_account_failures(pool: PgPool) {
    let app = TestApp::new(pool);
    register(&app, "forgetful@example.com").await;
    for _ in 0..4 {
        login(&app, "forgetful@example.com", "wrong password!").await;
    }
    assert_eq!(
        login(&app, "forgetful@example.com", GOOD_PASSWORD)
            .await
            .status,
        StatusCode::OK
    );
    for _ in 0..4 {
        login(&app, "forgetful@example.com", "wrong password!")
            .await
            .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    }
}

fn peer(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn login_is_throttled_per_address_ignoring_forwarded_for_from_an_untrusted_peer(
    pool: PgPool,
) {
    let app = TestApp::new(pool);
    register(&app, "victim@example.com").await;
    let attacker = peer("203.0.113.5:40000");
    for i in 0..20 {
        // A different account and a different forged X-Forwarded-For each time: neither
        // the per-account limit nor the header may save the attacker.
        let forged = format!("198.51.100.{i}");
        app.post_from(
            "/api/v1/auth/login",
            attacker,
            &[("x-forwarded-for", &forged)],
            json!({ "email": format!("guess{i}@example.com"), "password": "wrong password!" }),
        )
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let resp = app
        .post_from(
            "/api/v1/auth/login",
            peer("203.0.113.5:40001"),
            &[("x-forwarded-for", "192.0.2.77")],
            json!({ "email": "victim@example.com", "password": GOOD_PASSWORD }),
        )
        .await;
    resp.assert_problem(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert!(resp.headers.contains_key("retry-after"));
    // Another address is not limited.
    let other = app
        .post_from(
            "/api/v1/auth/login",
            peer("192.0.2.10:5000"),
            &[],
            json!({ "email": "victim@example.com", "password": GOOD_PASSWORD }),
        )
        .await;
    assert_eq!(other.status, StatusCode::OK, "{}", other.text());
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn behind_a_trusted_proxy_the_forwarded_client_address_is_limited(pool: PgPool) {
    let mut config = test_config();
    config.trusted_proxies = vec!["10.0.0.1".parse().unwrap()];
    let app = TestApp::with_config(pool, config);
    register(&app, "user@example.com").await;
    let proxy = peer("10.0.0.1:443");
    for i in 0..20 {
        app.post_from(
            "/api/v1/auth/login",
            proxy,
            &[("x-forwarded-for", "1.2.3.4, 198.51.100.1")],
            json!({ "email": format!("guess{i}@example.com"), "password": "wrong password!" }),
        )
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    app.post_from(
        "/api/v1/auth/login",
        proxy,
        &[("x-forwarded-for", "198.51.100.1")],
        json!({ "email": "user@example.com", "password": GOOD_PASSWORD }),
    )
    .await
    .assert_problem(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    // Another client behind the same proxy is not limited (the bucket is the client's).
    let other = app
        .post_from(
            "/api/v1/auth/login",
            proxy,
            &[("x-forwarded-for", "198.51.100.2")],
            json!({ "email": "user@example.com", "password": GOOD_PASSWORD }),
        )
        .await;
    assert_eq!(other.status, StatusCode::OK, "{}", other.text());
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn a_member_of_two_orgs_logs_into_either_and_switches(pool: PgPool) {
    let app = TestApp::new(pool.clone());
    let first = register(&app, "multi@example.com").await;
    let other = crate::helpers::new_org(&app).await;
    let user_id: Uuid =
        sqlx::query_scalar("SELECT id FROM users WHERE email = 'multi@example.com'")
            .fetch_one(&pool)
            .await
            .unwrap();
    sqlx::query("INSERT INTO memberships (org_id, user_id, role) VALUES ($1, $2, 'viewer')")
        .bind(other.org_id)
        .bind(user_id)
        .execute(&pool)
        .await
        .unwrap();

    // Default: the oldest membership.
    let default = Session::from_json(&login(&app, "multi@example.com", GOOD_PASSWORD).await.json());
    assert_eq!(default.org_id, first.org_id);
    let chosen = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({ "email": "multi@example.com", "password": GOOD_PASSWORD, "organization_id": other.org_id }),
        )
        .await;
    assert_eq!(chosen.status, StatusCode::OK, "{}", chosen.text());
    let me = app
        .get(
            "/api/v1/auth/me",
            Some(&Session::from_json(&chosen.json()).access),
        )
        .await
        .json();
    assert_eq!(me["role"], "viewer");
    assert_eq!(me["organizations"].as_array().unwrap().len(), 2);

    let switched = app
        .post(
            "/api/v1/auth/switch",
            Some(&default.access),
            json!({ "organization_id": other.org_id }),
        )
        .await;
    assert_eq!(switched.status, StatusCode::OK, "{}", switched.text());
    assert_eq!(Session::from_json(&switched.json()).org_id, other.org_id);

    // An organisation the user is not in: 404, whether at login or switch.
    let foreign = crate::helpers::new_org(&app).await;
    app.post(
        "/api/v1/auth/login",
        None,
        json!({ "email": "multi@example.com", "password": GOOD_PASSWORD, "organization_id": foreign.org_id }),
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not_found");
    app.post(
        "/api/v1/auth/switch",
        Some(&default.access),
        json!({ "organization_id": foreign.org_id }),
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not_found");
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn session_endpoints_need_credentials_and_keys_have_no_session(pool: PgPool) {
    let app = TestApp::new(pool);
    let owner = crate::helpers::new_org(&app).await;
    for (method, uri) in [
        ("GET", "/api/v1/auth/me"),
        ("POST", "/api/v1/auth/logout"),
        ("POST", "/api/v1/auth/switch"),
    ] {
        let resp = app
            .call(
                method.parse().unwrap(),
                uri,
                None,
                (method == "POST").then(|| json!({ "organization_id": owner.org_id })),
            )
            .await;
        resp.assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
        app.call(method.parse().unwrap(), uri, Some("garbage"), None)
            .await
            .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let (_, key) = crate::helpers::create_api_key(&app, &owner.token, "bot", Role::Viewer).await;
    app.post("/api/v1/auth/logout", Some(&key), json!({}))
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "bad_request");
    app.post(
        "/api/v1/auth/switch",
        Some(&key),
        json!({ "organization_id": owner.org_id }),
    )
    .await
    .assert_problem(StatusCode::FORBIDDEN, "forbidden");
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn registration_creates_an_owned_org_and_an_audit_entry(pool: PgPool) {
    let app = TestApp::new(pool.clone());
    let s = register(&app, "founder@example.com").await;
    let (role,): (String,) = sqlx::query_as("SELECT role FROM memberships WHERE org_id = $1")
        .bind(s.org_id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(role, "owner");
    let audit = app.get("/api/v1/audit", Some(&s.access)).await.json();
    assert_eq!(audit["items"][0]["action"], "organization.created");
    assert_eq!(audit["items"][0]["actor_label"], "founder@example.com");
    // Passwords are hashed with argon2id, never stored as given.
    let hash: String = sqlx::query_scalar("SELECT password_hash FROM users")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(hash.starts_with("$argon2id$") && !hash.contains(GOOD_PASSWORD));
    // A member whose membership is gone cannot use their session.
    let editor = add_member(&app, s.org_id, Role::Editor).await;
    sqlx::query("DELETE FROM memberships WHERE user_id = $1")
        .bind(editor.user_id)
        .execute(&pool)
        .await
        .unwrap();
    app.get("/api/v1/auth/me", Some(&editor.token))
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn registrations_are_limited_per_address(pool: PgPool) {
    let app = TestApp::new(pool);
    let body = |i: usize| json!({ "email": format!("signup{i}@example.com"), "password": GOOD_PASSWORD, "organization_name": "Spam" });
    let spammer = peer("203.0.113.50:1234");
    for i in 0..10 {
        let resp = app
            .post_from(
                "/api/v1/auth/register",
                spammer,
                &[("x-forwarded-for", "10.9.9.9")],
                body(i),
            )
            .await;
        assert_eq!(
            resp.status,
            StatusCode::CREATED,
            "registration {i}: {}",
            resp.text()
        );
    }
    let limited = app
        .post_from("/api/v1/auth/register", spammer, &[], body(10))
        .await;
    limited.assert_problem(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let retry: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3600).contains(&retry), "Retry-After {retry}");
    let elsewhere = app
        .post_from("/api/v1/auth/register", peer("192.0.2.1:1"), &[], body(11))
        .await;
    assert_eq!(
        elsewhere.status,
        StatusCode::CREATED,
        "{}",
        elsewhere.text()
    );
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn a_user_who_left_every_org_logs_in_to_nothing(pool: PgPool) {
    let app = TestApp::new(pool.clone());
    let founder = register(&app, "founder@example.com").await;
    let leaver = register(&app, "leaver@example.com").await;
    // The leaver joins the founder's org, then (as the sole owner of their own org cannot
    // leave) their own org is deleted and they leave the founder's.
    let leaver_id: Uuid =
        sqlx::query_scalar("SELECT id FROM users WHERE email = 'leaver@example.com'")
            .fetch_one(&pool)
            .await
            .unwrap();
    sqlx::query("INSERT INTO memberships (org_id, user_id, role) VALUES ($1, $2, 'viewer')")
        .bind(founder.org_id)
        .bind(leaver_id)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM organizations WHERE id = $1")
        .bind(leaver.org_id)
        .execute(&pool)
        .await
        .unwrap();
    let in_founders = Session::from_json(
        &login(&app, "leaver@example.com", GOOD_PASSWORD)
            .await
            .json(),
    );
    assert_eq!(in_founders.org_id, founder.org_id);
    let left = app
        .delete(
            &format!("/api/v1/members/{leaver_id}"),
            Some(&in_founders.access),
        )
        .await;
    assert_eq!(left.status, StatusCode::NO_CONTENT, "{}", left.text());
    // The password is right, but there is nowhere to log in.
    login(&app, "leaver@example.com", GOOD_PASSWORD)
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    // And the refresh token of the old session is dead too.
    app.post(
        "/api/v1/auth/refresh",
        None,
        json!({ "refresh_token": in_founders.refresh }),
    )
    .await
    .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn two_concurrent_refreshes_with_one_token_end_the_session(pool: PgPool) {
    let app = TestApp::new(pool);
    let s = register(&app, "racer@example.com").await;
    let body = json!({ "refresh_token": s.refresh });
    let (a, b) = tokio::join!(
        app.post("/api/v1/auth/refresh", None, body.clone()),
        app.post("/api/v1/auth/refresh", None, body.clone()),
    );
    // The token row is locked while it is rotated: exactly one caller gets new tokens, the
    // other sees a used token, which revokes the session (the winner's tokens included).
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::OK, StatusCode::UNAUTHORIZED],
        "{} / {}",
        a.text(),
        b.text()
    );
    let winner = if a.status == StatusCode::OK { &a } else { &b };
    let winner = Session::from_json(&winner.json());
    app.get("/api/v1/auth/me", Some(&winner.access))
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
}

/// Re-signs `claims` with the test JWT secret (HS256), as someone holding the secret
/// but not minting through this deployment would.
fn sign(claims: &serde_json::Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(crate::helpers::TEST_JWT_SECRET.as_bytes()),
    )
    .unwrap()
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn access_tokens_carry_and_require_this_issuer_and_audience(pool: PgPool) {
    let app = TestApp::new(pool);
    let owner = crate::helpers::new_org(&app).await;
    // The claims of a genuine token, read without checking them.
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.insecure_disable_signature_validation();
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let genuine: serde_json::Value = jsonwebtoken::decode(
        &owner.token,
        &jsonwebtoken::DecodingKey::from_secret(b"unused"),
        &validation,
    )
    .unwrap()
    .claims;
    assert_eq!(genuine["iss"], "samplit", "{genuine}");
    assert_eq!(genuine["aud"], "samplit-api", "{genuine}");
    let me = app.get("/api/v1/auth/me", Some(&sign(&genuine))).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text());

    let without = |field: &str| {
        let mut c = genuine.clone();
        c.as_object_mut().unwrap().remove(field);
        c
    };
    let with = |field: &str, value: &str| {
        let mut c = genuine.clone();
        c[field] = json!(value);
        c
    };
    for (claims, why) in [
        (without("iss"), "no issuer"),
        (without("aud"), "no audience"),
        (with("iss", "another-deployment"), "another issuer"),
        (with("aud", "another-service"), "another audience"),
    ] {
        let resp = app.get("/api/v1/auth/me", Some(&sign(&claims))).await;
        assert_eq!(
            resp.status,
            StatusCode::UNAUTHORIZED,
            "{why}: {}",
            resp.text()
        );
    }

    // The issuer is configurable; tokens of the old issuer stop working.
    let other = TestApp::with_config(
        app.pool.clone(),
        crate::helpers::test_config_with(&[("SAMPLIT_JWT_ISSUER", "samplit-staging")]),
    );
    other
        .get("/api/v1/auth/me", Some(&owner.token))
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
}

/// Fires one login per `(peer, email, password)` at once, each on its own task, and
/// returns the answers in order.
async fn parallel_logins(
    app: &TestApp,
    attempts: Vec<(SocketAddr, String, &'static str)>,
) -> Vec<crate::helpers::TestResponse> {
    let mut tasks = tokio::task::JoinSet::new();
    for (i, (from, email, password)) in attempts.into_iter().enumerate() {
        let app = TestApp {
            pool: app.pool.clone(),
            state: app.state.clone(),
        };
        tasks.spawn(async move {
            let resp = app
                .post_from(
                    "/api/v1/auth/login",
                    from,
                    &[],
                    json!({ "email": email, "password": password }),
                )
                .await;
            (i, resp)
        });
    }
    let mut out: Vec<_> = tasks.join_all().await;
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, r)| r).collect()
}

fn count(responses: &[crate::helpers::TestResponse], status: StatusCode) -> usize {
    responses.iter().filter(|r| r.status == status).count()
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn parallel_wrong_passwords_for_one_account_run_argon2_at_most_the_limit(pool: PgPool) {
    let app = TestApp::new(pool);
    register(&app, "target@example.com").await;
    let hashes_before = app.state.passwords.runs();
    let attempts = (0..12)
        .map(|i| {
            (
                peer(&format!("198.51.100.{}:4000", i + 1)),
                "target@example.com".to_owned(),
                "wrong password!",
            )
        })
        .collect();
    let answers = parallel_logins(&app, attempts).await;
    // Exactly the limit (5) were checked and refused; the other 7 never reached argon2.
    assert_eq!(count(&answers, StatusCode::UNAUTHORIZED), 5, "401s");
    assert_eq!(count(&answers, StatusCode::TOO_MANY_REQUESTS), 7, "429s");
    assert_eq!(app.state.passwords.runs() - hashes_before, 5, "argon2 runs");
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn parallel_wrong_passwords_from_one_ipv6_64_are_counted_together(pool: PgPool) {
    let app = TestApp::new(pool);
    // 24 addresses of one /64, each guessing a different account: one bucket of 20.
    let attempts = (0..24)
        .map(|i| {
            (
                peer(&format!("[2001:db8:7:7::{:x}]:4000", i + 1)),
                format!("guess{i}@example.com"),
                "wrong password!",
            )
        })
        .collect();
    let answers = parallel_logins(&app, attempts).await;
    assert_eq!(count(&answers, StatusCode::UNAUTHORIZED), 20, "401s");
    assert_eq!(count(&answers, StatusCode::TOO_MANY_REQUESTS), 4, "429s");
    // The neighbouring /64 is someone else.
    let other = app
        .post_from(
            "/api/v1/auth/login",
            peer("[2001:db8:7:8::1]:4000"),
            &[],
            json!({ "email": "guess0@example.com", "password": "wrong password!" }),
        )
        .await;
    other.assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn argon2_runs_behind_a_bounded_gate_and_overflow_gets_503_with_retry_after(pool: PgPool) {
    let app = TestApp::with_config(
        pool,
        crate::helpers::test_config_with(&[
            ("SAMPLIT_ARGON2_CONCURRENCY", "1"),
            ("SAMPLIT_ARGON2_WAIT_MS", "1"),
        ]),
    );
    let attempts = (0..8)
        .map(|i| {
            (
                peer(&format!("192.0.2.{}:4000", i + 1)),
                format!("nobody{i}@example.com"),
                "wrong password!",
            )
        })
        .collect();
    let answers = parallel_logins(&app, attempts).await;
    assert_eq!(app.state.passwords.max_in_flight(), 1, "one hash at a time");
    let busy: Vec<_> = answers
        .iter()
        .filter(|r| r.status == StatusCode::SERVICE_UNAVAILABLE)
        .collect();
    assert!(!busy.is_empty(), "some waited too long for the single slot");
    for resp in &busy {
        resp.assert_problem(StatusCode::SERVICE_UNAVAILABLE, "busy");
        assert_eq!(resp.headers["retry-after"], "1");
    }
    assert_eq!(
        count(&answers, StatusCode::UNAUTHORIZED) + busy.len(),
        8,
        "every other attempt was checked and refused"
    );
    // A busy answer never checked the password, so it does not count as a failure.
    let failures: i64 =
        sqlx::query_scalar("SELECT count(*) FROM login_attempts WHERE kind = 'login_failure'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(failures as usize, 8 - busy.len());
}
