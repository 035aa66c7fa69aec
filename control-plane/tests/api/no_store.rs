//! Every response that carries a credential shown once — session tokens, an API key, an
//! invitation token, a site's server secret — says `Cache-Control: no-store`, so no
//! browser, proxy or cache keeps a copy; ordinary reads do not.

use axum::http::StatusCode;
use serde_json::json;
use sqlx::PgPool;

use crate::helpers::{GOOD_PASSWORD, Session, TestApp, TestResponse, login, register};

fn assert_no_store(what: &str, resp: &TestResponse, status: StatusCode) {
    assert_eq!(resp.status, status, "{what}: {}", resp.text());
    assert_eq!(
        resp.headers
            .get("cache-control")
            .map(|v| v.to_str().unwrap()),
        Some("no-store"),
        "{what}"
    );
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn responses_carrying_a_secret_are_never_stored(pool: PgPool) {
    let app = TestApp::new(pool);
    let email = "secrets@example.com";

    let registered = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({ "email": email, "password": GOOD_PASSWORD, "name": "S",
                    "organization_name": "Secrets" }),
        )
        .await;
    assert_no_store("register", &registered, StatusCode::CREATED);
    let session = Session::from_json(&registered.json());

    assert_no_store(
        "login",
        &login(&app, email, GOOD_PASSWORD).await,
        StatusCode::OK,
    );
    let refreshed = app
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({ "refresh_token": session.refresh }),
        )
        .await;
    assert_no_store("refresh", &refreshed, StatusCode::OK);
    let token = Session::from_json(&refreshed.json()).access;

    let other = register(&app, "other-org@example.com").await;
    let invitation = app
        .post(
            "/api/v1/invitations",
            Some(&other.access),
            json!({ "email": email, "role": "viewer" }),
        )
        .await;
    assert_no_store("invitation", &invitation, StatusCode::CREATED);
    let accepted = app
        .post(
            "/api/v1/invitations/accept",
            Some(&token),
            json!({ "token": invitation.json()["token"] }),
        )
        .await;
    assert_no_store("accepted invitation", &accepted, StatusCode::OK);
    let switched = app
        .post(
            "/api/v1/auth/switch",
            Some(&token),
            json!({ "organization_id": session.org_id }),
        )
        .await;
    assert_no_store("switch", &switched, StatusCode::OK);

    let key = app
        .post(
            "/api/v1/api-keys",
            Some(&token),
            json!({ "name": "ci", "role": "viewer" }),
        )
        .await;
    assert_no_store("api key", &key, StatusCode::CREATED);

    let site = app
        .post(
            "/api/v1/sites",
            Some(&token),
            json!({ "name": "Shop", "domains": ["shop.example"] }),
        )
        .await;
    assert_no_store("site", &site, StatusCode::CREATED);
    let id = site.json()["id"].as_str().unwrap().to_owned();
    let rotated = app
        .post(
            &format!("/api/v1/sites/{id}/rotate-secret"),
            Some(&token),
            json!({}),
        )
        .await;
    assert_no_store("rotated secret", &rotated, StatusCode::OK);

    // A read carries no secret and is not marked.
    let read = app.get(&format!("/api/v1/sites/{id}"), Some(&token)).await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.text());
    assert_ne!(
        read.headers
            .get("cache-control")
            .map(|v| v.to_str().unwrap()),
        Some("no-store")
    );
}
