//! API keys: creation (shown once, stored hashed), use as a bearer credential, role
//! limits, listing without the key, revocation.

use axum::http::StatusCode;
use samplit_control_plane::auth::{Role, token_hash};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{TestApp, create_api_key, new_org, new_team};

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn an_api_key_is_shown_once_works_as_a_bearer_and_stops_when_revoked(pool: PgPool) {
    let app = TestApp::new(pool.clone());
    let team = new_team(&app).await;
    let resp = app
        .post(
            "/api/v1/api-keys",
            Some(&team.admin.token),
            json!({ "name": "  CI deploys ", "role": "editor" }),
        )
        .await;
    assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.text());
    let created = resp.json();
    let key = created["key"].as_str().unwrap().to_owned();
    let id: Uuid = created["id"].as_str().unwrap().parse().unwrap();
    assert!(key.starts_with("sk_") && key.len() == 67, "{key}");
    assert_eq!(created["name"], "CI deploys");
    assert_eq!(created["role"], "editor");
    assert_eq!(created["prefix"], key[..11]);
    assert_eq!(created["created_by"], team.admin.user_id.to_string());

    // Stored: the SHA-256 and the prefix, never the key.
    let (hash, prefix): (Vec<u8>, String) =
        sqlx::query_as("SELECT key_hash, key_prefix FROM api_keys WHERE id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(hash, token_hash(&key));
    assert_ne!(hash, key.as_bytes());
    assert_eq!(prefix, &key[..11]);

    // The list never shows the key again.
    let list = app.get("/api/v1/api-keys", Some(&team.owner.token)).await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(!list.text().contains(&key));
    let listed = list.json();
    assert_eq!(listed[0]["id"], id.to_string());
    assert!(listed[0].get("key").is_none());
    assert!(listed[0]["revoked_at"].is_null());

    // The key authenticates with its own role.
    let me = app.get("/api/v1/auth/me", Some(&key)).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text());
    let me = me.json();
    assert_eq!(me["api_key"]["name"], "CI deploys");
    assert_eq!(me["role"], "editor");
    assert!(me["user"].is_null());
    assert_eq!(
        app.get("/api/v1/members", Some(&key)).await.status,
        StatusCode::OK
    );
    app.get("/api/v1/api-keys", Some(&key))
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    let used: Option<time::OffsetDateTime> =
        sqlx::query_scalar("SELECT last_used_at FROM api_keys WHERE id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(used.is_some(), "use is recorded");

    // Revoked: rejected from the next request; revoking again is a no-op.
    let uri = format!("/api/v1/api-keys/{id}");
    assert_eq!(
        app.delete(&uri, Some(&team.admin.token)).await.status,
        StatusCode::NO_CONTENT
    );
    app.get("/api/v1/auth/me", Some(&key))
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(
        app.delete(&uri, Some(&team.admin.token)).await.status,
        StatusCode::NO_CONTENT
    );
    let listed = app
        .get("/api/v1/api-keys", Some(&team.owner.token))
        .await
        .json();
    assert!(listed[0]["revoked_at"].is_string());

    // Both changes are audited, once each, without the key.
    let audit = app.get("/api/v1/audit", Some(&team.owner.token)).await;
    assert!(!audit.text().contains(&key));
    let actions: Vec<String> = audit.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(actions, ["api_key.revoked", "api_key.created"]);
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn a_key_role_is_at_most_admin_and_at_most_the_creators(pool: PgPool) {
    let app = TestApp::new(pool);
    let team = new_team(&app).await;
    // (token, body, status, code, why)
    let cases = [
        (
            &team.owner.token,
            json!({ "name": "k", "role": "owner" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("validation_failed"),
            "no owner keys",
        ),
        (
            &team.owner.token,
            json!({ "name": "k", "role": "admin" }),
            StatusCode::CREATED,
            None,
            "an owner creates an admin key",
        ),
        (
            &team.admin.token,
            json!({ "name": "k", "role": "admin" }),
            StatusCode::CREATED,
            None,
            "an admin creates an admin key",
        ),
        (
            &team.editor.token,
            json!({ "name": "k", "role": "viewer" }),
            StatusCode::FORBIDDEN,
            Some("forbidden"),
            "editors create no keys",
        ),
        (
            &team.viewer.token,
            json!({ "name": "k", "role": "viewer" }),
            StatusCode::FORBIDDEN,
            Some("forbidden"),
            "viewers create no keys",
        ),
        (
            &team.admin.token,
            json!({ "role": "viewer" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("validation_failed"),
            "name missing",
        ),
        (
            &team.admin.token,
            json!({ "name": " ", "role": "viewer" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("validation_failed"),
            "blank name",
        ),
        (
            &team.admin.token,
            json!({ "name": "x".repeat(101), "role": "viewer" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("validation_failed"),
            "name too long",
        ),
        (
            &team.admin.token,
            json!({ "name": "k" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("validation_failed"),
            "role missing",
        ),
        (
            &team.admin.token,
            json!({ "name": "k", "role": "god" }),
            StatusCode::BAD_REQUEST,
            Some("bad_request"),
            "unknown role",
        ),
    ];
    for (token, body, status, code, why) in cases {
        let resp = app.post("/api/v1/api-keys", Some(token), body).await;
        assert_eq!(resp.status, status, "{why}: {}", resp.text());
        if let Some(code) = code {
            resp.assert_problem(status, code);
        }
    }
    // A viewer key cannot create keys; an admin key can, up to admin.
    let (_, viewer_key) = create_api_key(&app, &team.admin.token, "v", Role::Viewer).await;
    app.post(
        "/api/v1/api-keys",
        Some(&viewer_key),
        json!({ "name": "x", "role": "viewer" }),
    )
    .await
    .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    let (_, admin_key) = create_api_key(&app, &team.admin.token, "a", Role::Admin).await;
    let resp = app
        .post(
            "/api/v1/api-keys",
            Some(&admin_key),
            json!({ "name": "child", "role": "editor" }),
        )
        .await;
    assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.text());
    // Minted by a key: it answers for the key's person, and remembers the minting key.
    let minted = resp.json();
    assert_eq!(minted["created_by"], team.admin.user_id.to_string());
    assert!(minted["created_by_key"].is_string(), "{minted}");
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn another_orgs_key_cannot_be_seen_or_revoked(pool: PgPool) {
    let app = TestApp::new(pool);
    let ours = new_org(&app).await;
    let theirs = new_org(&app).await;
    let (their_id, their_key) = create_api_key(&app, &theirs.token, "theirs", Role::Admin).await;
    app.delete(&format!("/api/v1/api-keys/{their_id}"), Some(&ours.token))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    app.delete("/api/v1/api-keys/not-a-uuid", Some(&ours.token))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    let list = app.get("/api/v1/api-keys", Some(&ours.token)).await.json();
    assert_eq!(list.as_array().unwrap().len(), 0);
    // Their key still works, in their org only.
    let me = app.get("/api/v1/auth/me", Some(&their_key)).await.json();
    assert_eq!(me["organization"]["id"], theirs.org_id.to_string());
}

// ---------------------------------------------------------------------------------------
// Keys follow their people (issue 10, hole 3).

fn member_uri(user_id: Uuid) -> String {
    format!("/api/v1/members/{user_id}")
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn a_key_outliving_its_creators_demotion_can_neither_re_promote_them_nor_mint(pool: PgPool) {
    let app = TestApp::new(pool);
    let team = new_team(&app).await;
    let (_, key) = create_api_key(&app, &team.admin.token, "ci", Role::Admin).await;
    let demoted = app
        .patch(
            &member_uri(team.admin.user_id),
            Some(&team.owner.token),
            json!({ "role": "viewer" }),
        )
        .await;
    assert_eq!(demoted.status, StatusCode::OK, "{}", demoted.text());

    // The key now acts as a viewer: min(admin, the creator's current viewer).
    let me = app.get("/api/v1/auth/me", Some(&key)).await.json();
    assert_eq!(me["role"], "viewer", "{me}");
    app.patch(
        &member_uri(team.admin.user_id),
        Some(&key),
        json!({ "role": "admin" }),
    )
    .await
    .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    app.post(
        "/api/v1/invitations",
        Some(&key),
        json!({ "email": "friend@example.com", "role": "admin" }),
    )
    .await
    .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    app.post(
        "/api/v1/api-keys",
        Some(&key),
        json!({ "name": "spare", "role": "viewer" }),
    )
    .await
    .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    // Reading still works, at the capped role.
    let members = app.get("/api/v1/members", Some(&key)).await;
    assert_eq!(members.status, StatusCode::OK, "{}", members.text());
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn a_key_cannot_change_the_role_of_or_remove_the_person_who_minted_it(pool: PgPool) {
    let app = TestApp::new(pool.clone());
    let team = new_team(&app).await;
    let (_, key) = create_api_key(&app, &team.admin.token, "ci", Role::Admin).await;
    let (_, child) = create_api_key(&app, &key, "child", Role::Admin).await;
    for token in [&key, &child] {
        app.patch(
            &member_uri(team.admin.user_id),
            Some(token),
            json!({ "role": "editor" }),
        )
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
        app.delete(&member_uri(team.admin.user_id), Some(token))
            .await
            .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    }
    let role: String =
        sqlx::query_scalar("SELECT role FROM memberships WHERE org_id = $1 AND user_id = $2")
            .bind(team.owner.org_id)
            .bind(team.admin.user_id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(role, "admin");
    // Other members are still theirs to manage.
    let resp = app
        .patch(
            &member_uri(team.viewer.user_id),
            Some(&key),
            json!({ "role": "editor" }),
        )
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn removing_a_member_kills_their_keys_the_keys_minted_from_them_and_their_invitations(
    pool: PgPool,
) {
    let app = TestApp::new(pool);
    let team = new_team(&app).await;
    let (key_id, key) = create_api_key(&app, &team.admin.token, "ci", Role::Admin).await;
    let (child_id, child) = create_api_key(&app, &key, "child", Role::Editor).await;
    let invited = app
        .post(
            "/api/v1/invitations",
            Some(&key),
            json!({ "email": "friend@example.com", "role": "editor" }),
        )
        .await;
    assert_eq!(invited.status, StatusCode::CREATED, "{}", invited.text());
    let removed = app
        .delete(&member_uri(team.admin.user_id), Some(&team.owner.token))
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT, "{}", removed.text());

    for token in [&key, &child] {
        app.get("/api/v1/auth/me", Some(token))
            .await
            .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let keys = app
        .get("/api/v1/api-keys", Some(&team.owner.token))
        .await
        .json();
    for id in [key_id, child_id] {
        let listed = keys
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["id"] == id.to_string())
            .unwrap();
        assert!(listed["revoked_at"].is_string(), "{listed}");
        assert_eq!(listed["revoked_reason"], "member_removed", "{listed}");
    }
    let invitations = app
        .get("/api/v1/invitations", Some(&team.owner.token))
        .await
        .json();
    assert_eq!(invitations.as_array().unwrap().len(), 0, "{invitations}");
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn a_key_minted_by_a_key_is_capped_by_its_whole_chain(pool: PgPool) {
    let app = TestApp::new(pool);
    let team = new_team(&app).await;
    let (parent_id, parent) = create_api_key(&app, &team.admin.token, "ci", Role::Admin).await;
    let (_, child) = create_api_key(&app, &parent, "child", Role::Admin).await;
    assert_eq!(
        app.get("/api/v1/auth/me", Some(&child)).await.json()["role"],
        "admin"
    );

    // The person at the root is demoted: the grandchild of their power shrinks too.
    app.patch(
        &member_uri(team.admin.user_id),
        Some(&team.owner.token),
        json!({ "role": "editor" }),
    )
    .await;
    assert_eq!(
        app.get("/api/v1/auth/me", Some(&child)).await.json()["role"],
        "editor"
    );
    app.post(
        "/api/v1/api-keys",
        Some(&child),
        json!({ "name": "x", "role": "viewer" }),
    )
    .await
    .assert_problem(StatusCode::FORBIDDEN, "forbidden");

    // Revoking the minting key kills the chain below it.
    app.delete(
        &format!("/api/v1/api-keys/{parent_id}"),
        Some(&team.owner.token),
    )
    .await;
    app.get("/api/v1/auth/me", Some(&child))
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn demoting_a_member_cancels_the_invitations_their_new_role_could_not_send(pool: PgPool) {
    let app = TestApp::new(pool);
    let team = new_team(&app).await;
    let invited = app
        .post(
            "/api/v1/invitations",
            Some(&team.admin.token),
            json!({ "email": "friend@example.com", "role": "admin" }),
        )
        .await;
    assert_eq!(invited.status, StatusCode::CREATED, "{}", invited.text());
    app.patch(
        &member_uri(team.admin.user_id),
        Some(&team.owner.token),
        json!({ "role": "editor" }),
    )
    .await;
    let invitations = app
        .get("/api/v1/invitations", Some(&team.owner.token))
        .await
        .json();
    assert_eq!(invitations.as_array().unwrap().len(), 0, "{invitations}");
}
