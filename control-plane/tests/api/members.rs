//! Members, roles and invitations: who may grant what, the last-owner rule, invitation
//! acceptance, and the permission matrix of every accounts endpoint.

use axum::http::{Method, StatusCode};
use samplit_control_plane::auth::{Role, token_hash};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{
    GOOD_PASSWORD, Session, TestApp, add_member, create_api_key, new_org, new_team, register,
};

fn member_uri(user_id: Uuid) -> String {
    format!("/api/v1/members/{user_id}")
}

async fn role_of(pool: &PgPool, org: Uuid, user: Uuid) -> Option<String> {
    sqlx::query_scalar("SELECT role FROM memberships WHERE org_id = $1 AND user_id = $2")
        .bind(org)
        .bind(user)
        .fetch_optional(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn every_member_can_list_the_members(pool: PgPool) {
    let app = TestApp::new(pool);
    let team = new_team(&app).await;
    let resp = app.get("/api/v1/members", Some(&team.viewer.token)).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    let members = resp.json();
    let mut roles: Vec<&str> = members
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    roles.sort_unstable();
    assert_eq!(roles, ["admin", "editor", "owner", "viewer"]);
    // Another organisation's members are not listed.
    let stranger = new_org(&app).await;
    let theirs = app
        .get("/api/v1/members", Some(&stranger.token))
        .await
        .json();
    assert_eq!(theirs.as_array().unwrap().len(), 1);
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn role_changes_follow_the_rules(pool: PgPool) {
    let app = TestApp::new(pool.clone());
    let team = new_team(&app).await;
    let org = team.owner.org_id;
    let second_editor = add_member(&app, org, Role::Editor).await;
    let stranger = new_org(&app).await;
    // (actor token, target, new role, expected status, expected code, why)
    let cases = [
        (
            &team.admin.token,
            team.admin.user_id,
            "owner",
            StatusCode::FORBIDDEN,
            Some("forbidden"),
            "an admin cannot grant themselves owner",
        ),
        (
            &team.owner.token,
            team.owner.user_id,
            "admin",
            StatusCode::FORBIDDEN,
            Some("forbidden"),
            "nobody changes their own role",
        ),
        (
            &team.editor.token,
            team.editor.user_id,
            "admin",
            StatusCode::FORBIDDEN,
            Some("forbidden"),
            "an editor cannot promote themselves",
        ),
        (
            &team.admin.token,
            team.editor.user_id,
            "owner",
            StatusCode::FORBIDDEN,
            Some("forbidden"),
            "an admin cannot make owners",
        ),
        (
            &team.admin.token,
            team.owner.user_id,
            "viewer",
            StatusCode::FORBIDDEN,
            Some("forbidden"),
            "an admin cannot demote an owner",
        ),
        (
            &team.editor.token,
            team.viewer.user_id,
            "editor",
            StatusCode::FORBIDDEN,
            Some("forbidden"),
            "editors manage nobody",
        ),
        (
            &team.viewer.token,
            team.editor.user_id,
            "viewer",
            StatusCode::FORBIDDEN,
            Some("forbidden"),
            "viewers manage nobody",
        ),
        (
            &team.admin.token,
            stranger.user_id,
            "viewer",
            StatusCode::NOT_FOUND,
            Some("not_found"),
            "another org's member is not found",
        ),
        (
            &team.admin.token,
            Uuid::new_v4(),
            "viewer",
            StatusCode::NOT_FOUND,
            Some("not_found"),
            "unknown user",
        ),
        (
            &team.admin.token,
            team.viewer.user_id,
            "editor",
            StatusCode::OK,
            None,
            "an admin promotes a viewer",
        ),
        (
            &team.admin.token,
            second_editor.user_id,
            "admin",
            StatusCode::OK,
            None,
            "an admin makes another admin",
        ),
        (
            &team.admin.token,
            second_editor.user_id,
            "viewer",
            StatusCode::OK,
            None,
            "an admin demotes an admin",
        ),
        (
            &team.owner.token,
            team.admin.user_id,
            "owner",
            StatusCode::OK,
            None,
            "an owner makes an owner",
        ),
    ];
    for (token, target, role, status, code, why) in cases {
        let resp = app
            .patch(&member_uri(target), Some(token), json!({ "role": role }))
            .await;
        assert_eq!(resp.status, status, "{why}: {}", resp.text());
        if let Some(code) = code {
            resp.assert_problem(status, code);
        } else {
            assert_eq!(resp.json()["role"], role, "{why}");
        }
    }
    assert_eq!(
        role_of(&pool, org, team.viewer.user_id).await.as_deref(),
        Some("editor")
    );
    assert_eq!(
        role_of(&pool, org, team.admin.user_id).await.as_deref(),
        Some("owner")
    );
    assert_eq!(
        role_of(&pool, stranger.org_id, stranger.user_id)
            .await
            .as_deref(),
        Some("owner")
    );
    // The new owner may now demote the old one: two owners, so one remains.
    let resp = app
        .patch(
            &member_uri(team.owner.user_id),
            Some(&team.admin.token),
            json!({ "role": "admin" }),
        )
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    // The role change takes effect at once: the former owner cannot grant owner any more.
    app.patch(
        &member_uri(team.editor.user_id),
        Some(&team.owner.token),
        json!({ "role": "owner" }),
    )
    .await
    .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    // Each change is audited with before and after.
    let audit = app
        .get(
            &format!(
                "/api/v1/audit?action=member.role_changed&target_id={}",
                team.owner.user_id
            ),
            Some(&team.admin.token),
        )
        .await
        .json();
    assert_eq!(audit["items"][0]["before"]["role"], "owner");
    assert_eq!(audit["items"][0]["after"]["role"], "admin");
    // Bad role values are refused as bad input.
    app.patch(
        &member_uri(team.editor.user_id),
        Some(&team.admin.token),
        json!({ "role": "root" }),
    )
    .await
    .assert_problem(StatusCode::BAD_REQUEST, "bad_request");
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn an_admin_key_cannot_touch_owners(pool: PgPool) {
    let app = TestApp::new(pool);
    let team = new_team(&app).await;
    let (_, key) = create_api_key(&app, &team.owner.token, "ops", Role::Admin).await;
    app.patch(
        &member_uri(team.owner.user_id),
        Some(&key),
        json!({ "role": "viewer" }),
    )
    .await
    .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    app.delete(&member_uri(team.owner.user_id), Some(&key))
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    let resp = app
        .patch(
            &member_uri(team.editor.user_id),
            Some(&key),
            json!({ "role": "viewer" }),
        )
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn the_last_owner_cannot_leave_but_others_can(pool: PgPool) {
    let app = TestApp::new(pool.clone());
    let team = new_team(&app).await;
    let org = team.owner.org_id;
    app.delete(&member_uri(team.owner.user_id), Some(&team.owner.token))
        .await
        .assert_problem(StatusCode::CONFLICT, "last_owner");
    assert_eq!(
        role_of(&pool, org, team.owner.user_id).await.as_deref(),
        Some("owner")
    );
    // A viewer leaves on their own.
    let left = app
        .delete(&member_uri(team.viewer.user_id), Some(&team.viewer.token))
        .await;
    assert_eq!(left.status, StatusCode::NO_CONTENT, "{}", left.text());
    assert_eq!(role_of(&pool, org, team.viewer.user_id).await, None);
    // With a second owner, the first may leave.
    let resp = app
        .patch(
            &member_uri(team.admin.user_id),
            Some(&team.owner.token),
            json!({ "role": "owner" }),
        )
        .await;
    assert_eq!(resp.status, StatusCode::OK);
    let left = app
        .delete(&member_uri(team.owner.user_id), Some(&team.owner.token))
        .await;
    assert_eq!(left.status, StatusCode::NO_CONTENT, "{}", left.text());
    app.get("/api/v1/auth/me", Some(&team.owner.token))
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    // And now the remaining owner is the last one.
    app.delete(&member_uri(team.admin.user_id), Some(&team.admin.token))
        .await
        .assert_problem(StatusCode::CONFLICT, "last_owner");
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn removing_members_needs_admin_and_owners_need_an_owner(pool: PgPool) {
    let app = TestApp::new(pool.clone());
    let team = new_team(&app).await;
    let stranger = new_org(&app).await;
    app.delete(&member_uri(team.editor.user_id), Some(&team.viewer.token))
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    app.delete(&member_uri(team.viewer.user_id), Some(&team.editor.token))
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    app.delete(&member_uri(team.owner.user_id), Some(&team.admin.token))
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    app.delete(&member_uri(stranger.user_id), Some(&team.admin.token))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    let removed = app
        .delete(&member_uri(team.editor.user_id), Some(&team.admin.token))
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT, "{}", removed.text());
    // Their token stops working at once, and the removal is audited.
    app.get("/api/v1/members", Some(&team.editor.token))
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    let audit = app
        .get(
            "/api/v1/audit?action=member.removed",
            Some(&team.owner.token),
        )
        .await
        .json();
    assert_eq!(
        audit["items"][0]["target_id"],
        team.editor.user_id.to_string()
    );
    assert_eq!(audit["items"][0]["before"]["role"], "editor");
    assert_eq!(
        role_of(&pool, stranger.org_id, stranger.user_id)
            .await
            .as_deref(),
        Some("owner")
    );
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn a_new_person_accepts_an_invitation_by_setting_a_password(pool: PgPool) {
    let app = TestApp::new(pool.clone());
    let team = new_team(&app).await;
    let resp = app
        .post(
            "/api/v1/invitations",
            Some(&team.admin.token),
            json!({ "email": " New.Person@Example.com", "role": "editor" }),
        )
        .await;
    assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.text());
    let invitation = resp.json();
    assert_eq!(invitation["email"], "new.person@example.com");
    let token = invitation["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("inv_"));
    // Only the hash is stored; the list never shows the token.
    let stored: Vec<u8> = sqlx::query_scalar("SELECT token_hash FROM invitations")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stored, token_hash(&token));
    let list = app
        .get("/api/v1/invitations", Some(&team.admin.token))
        .await;
    assert_eq!(list.json().as_array().unwrap().len(), 1);
    assert!(!list.text().contains(&token));

    // A password is required for a new account.
    app.post(
        "/api/v1/invitations/accept",
        None,
        json!({ "token": token }),
    )
    .await
    .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    app.post(
        "/api/v1/invitations/accept",
        None,
        json!({ "token": token, "password": "short" }),
    )
    .await
    .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let accepted = app
        .post(
            "/api/v1/invitations/accept",
            None,
            json!({ "token": token, "password": GOOD_PASSWORD, "name": "New Person" }),
        )
        .await;
    assert_eq!(accepted.status, StatusCode::OK, "{}", accepted.text());
    let session = Session::from_json(&accepted.json());
    assert_eq!(session.org_id, team.owner.org_id);
    let me = app
        .get("/api/v1/auth/me", Some(&session.access))
        .await
        .json();
    assert_eq!(me["role"], "editor");
    assert_eq!(me["user"]["email"], "new.person@example.com");
    // The new user can log in, and the token is used up.
    assert_eq!(
        crate::helpers::login(&app, "new.person@example.com", GOOD_PASSWORD)
            .await
            .status,
        StatusCode::OK
    );
    app.post(
        "/api/v1/invitations/accept",
        None,
        json!({ "token": token, "password": GOOD_PASSWORD }),
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not_found");
    let audit = app
        .get(
            "/api/v1/audit?action=member.joined",
            Some(&team.owner.token),
        )
        .await
        .json();
    assert_eq!(audit["items"][0]["after"]["role"], "editor");
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn an_existing_account_accepts_only_when_logged_in_as_the_invited_email(pool: PgPool) {
    let app = TestApp::new(pool.clone());
    let team = new_team(&app).await;
    let invitee = register(&app, "invitee@example.com").await;
    let someone_else = register(&app, "else@example.com").await;
    let token = app
        .post(
            "/api/v1/invitations",
            Some(&team.owner.token),
            json!({ "email": "invitee@example.com", "role": "viewer" }),
        )
        .await
        .json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    app.post(
        "/api/v1/invitations/accept",
        None,
        json!({ "token": token, "password": "a new password to take over" }),
    )
    .await
    .assert_problem(StatusCode::CONFLICT, "login_required");
    app.post(
        "/api/v1/invitations/accept",
        Some(&someone_else.access),
        json!({ "token": token }),
    )
    .await
    .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    let accepted = app
        .post(
            "/api/v1/invitations/accept",
            Some(&invitee.access),
            json!({ "token": token }),
        )
        .await;
    assert_eq!(accepted.status, StatusCode::OK, "{}", accepted.text());
    assert_eq!(
        Session::from_json(&accepted.json()).org_id,
        team.owner.org_id
    );
    let me = app
        .get("/api/v1/auth/me", Some(&invitee.access))
        .await
        .json();
    assert_eq!(me["organizations"].as_array().unwrap().len(), 2);
    // Inviting a member again is a conflict.
    app.post(
        "/api/v1/invitations",
        Some(&team.owner.token),
        json!({ "email": "invitee@example.com", "role": "editor" }),
    )
    .await
    .assert_problem(StatusCode::CONFLICT, "already_member");
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn invitation_rules_and_expiry(pool: PgPool) {
    let app = TestApp::new(pool.clone());
    let team = new_team(&app).await;
    // Only owners invite owners; editors and viewers invite nobody.
    for (token, role, status, why) in [
        (
            &team.admin.token,
            "owner",
            StatusCode::FORBIDDEN,
            "admin invites an owner",
        ),
        (
            &team.editor.token,
            "viewer",
            StatusCode::FORBIDDEN,
            "editor invites",
        ),
        (
            &team.viewer.token,
            "viewer",
            StatusCode::FORBIDDEN,
            "viewer invites",
        ),
        (
            &team.owner.token,
            "owner",
            StatusCode::CREATED,
            "owner invites an owner",
        ),
        (
            &team.admin.token,
            "admin",
            StatusCode::CREATED,
            "admin invites an admin",
        ),
    ] {
        let resp = app
            .post(
                "/api/v1/invitations",
                Some(token),
                json!({ "email": format!("{}@example.com", Uuid::new_v4().simple()), "role": role }),
            )
            .await;
        assert_eq!(resp.status, status, "{why}: {}", resp.text());
    }
    for (body, why) in [
        (json!({ "role": "viewer" }), "email missing"),
        (json!({ "email": "nope", "role": "viewer" }), "bad email"),
        (json!({ "email": "a@example.com" }), "role missing"),
    ] {
        app.post("/api/v1/invitations", Some(&team.admin.token), body)
            .await
            .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        let _ = why;
    }
    // A re-invitation replaces the open one; an expired token is refused.
    let first = app
        .post(
            "/api/v1/invitations",
            Some(&team.admin.token),
            json!({ "email": "late@example.com", "role": "viewer" }),
        )
        .await
        .json();
    let second = app
        .post(
            "/api/v1/invitations",
            Some(&team.admin.token),
            json!({ "email": "late@example.com", "role": "editor" }),
        )
        .await
        .json();
    app.post(
        "/api/v1/invitations/accept",
        None,
        json!({ "token": first["token"], "password": GOOD_PASSWORD }),
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not_found");
    sqlx::query("UPDATE invitations SET expires_at = now() - interval '1 second' WHERE id = $1")
        .bind(second["id"].as_str().unwrap().parse::<Uuid>().unwrap())
        .execute(&pool)
        .await
        .unwrap();
    app.post(
        "/api/v1/invitations/accept",
        None,
        json!({ "token": second["token"], "password": GOOD_PASSWORD }),
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not_found");
    // Revoking: 204 in this org, 404 from another org.
    let third = app
        .post(
            "/api/v1/invitations",
            Some(&team.admin.token),
            json!({ "email": "rev@example.com", "role": "viewer" }),
        )
        .await
        .json();
    let uri = format!("/api/v1/invitations/{}", third["id"].as_str().unwrap());
    let stranger = new_org(&app).await;
    app.delete(&uri, Some(&stranger.token))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(
        app.delete(&uri, Some(&team.admin.token)).await.status,
        StatusCode::NO_CONTENT
    );
    app.post(
        "/api/v1/invitations/accept",
        None,
        json!({ "token": third["token"], "password": GOOD_PASSWORD }),
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not_found");
}

/// One request per endpoint, sent as anonymous and as each role: the permission matrix of
/// `docs/permissions.md` for the accounts endpoints.
#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn every_accounts_endpoint_follows_the_permission_matrix(pool: PgPool) {
    let app = TestApp::new(pool);
    let team = new_team(&app).await;
    let target = add_member(&app, team.owner.org_id, Role::Viewer).await;
    let (key_id, _) = create_api_key(&app, &team.owner.token, "k", Role::Viewer).await;
    let stranger = new_org(&app).await;
    let (foreign_key, _) = create_api_key(&app, &stranger.token, "theirs", Role::Viewer).await;

    #[derive(Clone, Copy)]
    enum Min {
        Viewer,
        Admin,
    }
    let fresh_email =
        || json!({ "email": format!("{}@example.com", Uuid::new_v4().simple()), "role": "viewer" });
    // (method, uri, body maker, minimum role, success status)
    type Body = Box<dyn Fn() -> Option<serde_json::Value>>;
    let endpoints: Vec<(Method, String, Body, Min, StatusCode)> = vec![
        (
            Method::GET,
            "/api/v1/auth/me".into(),
            Box::new(|| None),
            Min::Viewer,
            StatusCode::OK,
        ),
        (
            Method::GET,
            "/api/v1/members".into(),
            Box::new(|| None),
            Min::Viewer,
            StatusCode::OK,
        ),
        (
            Method::PATCH,
            member_uri(target.user_id),
            Box::new(|| Some(json!({ "role": "viewer" }))),
            Min::Admin,
            StatusCode::OK,
        ),
        (
            Method::GET,
            "/api/v1/invitations".into(),
            Box::new(|| None),
            Min::Admin,
            StatusCode::OK,
        ),
        (
            Method::POST,
            "/api/v1/invitations".into(),
            Box::new(move || Some(fresh_email())),
            Min::Admin,
            StatusCode::CREATED,
        ),
        (
            Method::DELETE,
            format!("/api/v1/invitations/{}", Uuid::new_v4()),
            Box::new(|| None),
            Min::Admin,
            StatusCode::NOT_FOUND,
        ),
        (
            Method::GET,
            "/api/v1/api-keys".into(),
            Box::new(|| None),
            Min::Admin,
            StatusCode::OK,
        ),
        (
            Method::POST,
            "/api/v1/api-keys".into(),
            Box::new(|| Some(json!({ "name": "m", "role": "viewer" }))),
            Min::Admin,
            StatusCode::CREATED,
        ),
        (
            Method::DELETE,
            format!("/api/v1/api-keys/{foreign_key}"),
            Box::new(|| None),
            Min::Admin,
            StatusCode::NOT_FOUND,
        ),
        (
            Method::GET,
            "/api/v1/audit".into(),
            Box::new(|| None),
            Min::Admin,
            StatusCode::OK,
        ),
        (
            Method::GET,
            "/api/v1/audit/verify".into(),
            Box::new(|| None),
            Min::Admin,
            StatusCode::OK,
        ),
        (
            Method::GET,
            "/api/v1/audit/export?format=csv".into(),
            Box::new(|| None),
            Min::Admin,
            StatusCode::OK,
        ),
    ];
    let roles = [
        (Role::Viewer, &team.viewer.token),
        (Role::Editor, &team.editor.token),
        (Role::Admin, &team.admin.token),
        (Role::Owner, &team.owner.token),
    ];
    for (method, uri, body, min, success) in &endpoints {
        app.call(method.clone(), uri, None, body())
            .await
            .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
        for (role, token) in roles {
            let allowed = match min {
                Min::Viewer => true,
                Min::Admin => role >= Role::Admin,
            };
            let resp = app.call(method.clone(), uri, Some(token), body()).await;
            let expected = if allowed {
                *success
            } else {
                StatusCode::FORBIDDEN
            };
            assert_eq!(
                resp.status,
                expected,
                "{method} {uri} as {role:?}: {}",
                resp.text()
            );
        }
    }
    // The key of this org still exists (the foreign-key DELETE touched nothing here).
    let keys = app
        .get("/api/v1/api-keys", Some(&team.admin.token))
        .await
        .json();
    assert!(
        keys.as_array()
            .unwrap()
            .iter()
            .any(|k| k["id"] == key_id.to_string())
    );
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn roles_round_trip_through_postgres_and_an_unknown_stored_role_is_a_decode_error(
    pool: PgPool,
) {
    use samplit_control_plane::domain::Role;
    for role in [Role::Viewer, Role::Editor, Role::Admin, Role::Owner] {
        let (text, back): (String, Role) = sqlx::query_as("SELECT $1::text, $1::text")
            .bind(role)
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!((text.as_str(), back), (role.as_str(), role));
    }
    // The columns' CHECK constraints keep other values out; if one got in anyway (a
    // hand-edited row, a future role an old binary does not know), reading it fails
    // loudly instead of becoming some default role.
    let err = sqlx::query_scalar::<_, Role>("SELECT 'root'::text")
        .fetch_one(&pool)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("unknown role \"root\""), "{err}");
}
