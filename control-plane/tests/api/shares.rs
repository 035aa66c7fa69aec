//! Read-only share links of results: off until created, unguessable, revocable, only the
//! one experiment, stored hashed, audited, and every endpoint's authorisation — another
//! organisation's ids included.

use axum::http::{Method, StatusCode};
use samplit_control_plane::auth::Role;
use serde_json::json;
use sqlx::PgPool;

use crate::fixtures::{self, conversion, exposure};
use crate::helpers::{TestApp, add_member, new_org};

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn a_share_link_shows_one_experiments_results_until_revoked(pool: PgPool) {
    let app = TestApp::new(pool.clone());
    let (owner, site, exp) = fixtures::running(&app, "single", &[2]).await;
    let arms = exp.arms.clone();
    fixtures::ingest_ok(
        &app,
        &fixtures::batch(vec![
            exposure("e1", &site, exp.id, arms[0], "v1"),
            exposure("e2", &site, exp.id, arms[1], "v2"),
            conversion("c1", &site, "v2", "purchase", Some(12.5)),
        ]),
    )
    .await;
    let editor = add_member(&app, owner.org_id, Role::Editor).await;
    let viewer = add_member(&app, owner.org_id, Role::Viewer).await;
    let uri = format!("/api/v1/experiments/{}/shares", exp.id);

    // Nothing is public by default.
    let listed = app.get(&uri, Some(&viewer.token)).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text());
    assert_eq!(listed.json(), json!([]));

    // A viewer cannot create one; an editor can, and sees the token once.
    app.post(&uri, Some(&viewer.token), json!({}))
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    let created = app.post(&uri, Some(&editor.token), json!({})).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    assert_eq!(created.headers["cache-control"], "no-store");
    let token = created.json()["token"].as_str().unwrap().to_owned();
    let share_id = created.json()["id"].as_str().unwrap().to_owned();
    assert!(token.starts_with("rs_") && token.len() == 67, "{token}");
    let stored: Vec<u8> = sqlx::query_scalar("SELECT token_hash FROM results_shares")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stored.len(), 32);
    assert_ne!(stored, token.as_bytes());
    assert!(
        !app.get(&uri, Some(&viewer.token))
            .await
            .text()
            .contains(&token)
    );

    // Anyone with the token reads these results — the same as the members' view.
    let public = app
        .get(&format!("/api/v1/public/results/{token}"), None)
        .await;
    assert_eq!(public.status, StatusCode::OK, "{}", public.text());
    let member = app
        .get(
            &format!("/api/v1/experiments/{}/results", exp.id),
            Some(&viewer.token),
        )
        .await;
    assert_eq!(public.json()["analyses"], member.json()["analyses"]);
    assert_eq!(
        public.json()["analyses"][0]["result"]["arms"][1]["conversions"],
        1
    );
    let body = public.text();
    assert!(!body.contains(&owner.org_id.to_string()) && !body.contains(&site.key));

    // Hammering a link costs one analysis per 10 s: a new conversion shows to members at
    // once, and to the link's holders when the cached answer expires.
    fixtures::ingest_ok(
        &app,
        &fixtures::batch(vec![conversion("c2", &site, "v1", "purchase", Some(3.0))]),
    )
    .await;
    let again = app
        .get(&format!("/api/v1/public/results/{token}"), None)
        .await;
    assert_eq!(
        again.json()["analyses"],
        public.json()["analyses"],
        "served from the cache"
    );
    let fresh = app
        .get(
            &format!("/api/v1/experiments/{}/results", exp.id),
            Some(&viewer.token),
        )
        .await;
    assert_eq!(
        fresh.json()["analyses"][0]["result"]["arms"][0]["conversions"],
        1
    );

    // Guesses and other shapes are one 404.
    for guess in [
        "rs_0000",
        "not-a-token",
        &format!("{token}x"),
        &token.replace("rs_", "sk_"),
    ] {
        app.get(&format!("/api/v1/public/results/{guess}"), None)
            .await
            .assert_problem(StatusCode::NOT_FOUND, "not_found");
    }

    // Another organisation sees neither the links nor can revoke them.
    let stranger = new_org(&app).await;
    app.get(&uri, Some(&stranger.token))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    app.post(&uri, Some(&stranger.token), json!({}))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    let revoke = format!("{uri}/{share_id}");
    app.call(Method::DELETE, &revoke, Some(&stranger.token), None)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    let stranger_editor = add_member(&app, stranger.org_id, Role::Editor).await;
    app.call(Method::DELETE, &revoke, Some(&stranger_editor.token), None)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    app.call(Method::DELETE, &revoke, Some(&viewer.token), None)
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    app.call(
        Method::DELETE,
        &format!("{uri}/not-a-uuid"),
        Some(&editor.token),
        None,
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(
        app.get(&format!("/api/v1/public/results/{token}"), None)
            .await
            .status,
        StatusCode::OK,
        "still live"
    );

    // Revoked: gone at once, and listed as revoked.
    let done = app
        .call(Method::DELETE, &revoke, Some(&editor.token), None)
        .await;
    assert_eq!(done.status, StatusCode::NO_CONTENT, "{}", done.text());
    app.get(&format!("/api/v1/public/results/{token}"), None)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    app.call(Method::DELETE, &revoke, Some(&editor.token), None)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    let listed = app.get(&uri, Some(&viewer.token)).await.json();
    assert!(listed[0]["revoked_at"].is_string(), "{listed}");

    let actions: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM audit_log WHERE action LIKE 'results.share.%' ORDER BY seq",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(actions, ["results.share.created", "results.share.revoked"]);
}
