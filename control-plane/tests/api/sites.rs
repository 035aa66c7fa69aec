//! `/api/v1/sites`: CRUD, secrets, snippet, exclusions, ETags, permissions, audit.

use axum::http::{Method, StatusCode};
use samplit_control_plane::config;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::helpers::{
    TEST_INGEST_SECRET, TEST_JWT_SECRET, TEST_SNAPSHOT_SECRET, TestApp, new_org, new_team,
};

pub async fn create_site(app: &TestApp, token: &str, domains: &[&str]) -> Value {
    let resp = app
        .post(
            "/api/v1/sites",
            Some(token),
            json!({ "name": "Shop", "domains": domains }),
        )
        .await;
    assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.text());
    resp.json()
}

pub async fn audit_actions(pool: &PgPool, org: uuid::Uuid) -> Vec<String> {
    sqlx::query_scalar("SELECT action FROM audit_log WHERE org_id = $1 ORDER BY seq")
        .bind(org)
        .fetch_all(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn an_admin_creates_reads_updates_and_deletes_a_site(pool: PgPool) {
    let app = TestApp::new(pool.clone());
    let team = new_team(&app).await;
    let token = Some(team.admin.token.as_str());

    let created = app
        .post(
            "/api/v1/sites",
            token,
            json!({ "name": " My shop ", "domains": ["WWW.Shop.example", "shop.example"] }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    assert_eq!(created.etag(), "\"1\"");
    let site = created.json();
    let id = site["id"].as_str().unwrap().to_owned();
    assert_eq!(site["name"], "My shop");
    assert_eq!(site["domains"], json!(["shop.example", "www.shop.example"]));
    let key = site["site_key"].as_str().unwrap();
    assert!(key.starts_with("pk_") && key.len() == 67, "{key}");
    let secret = site["server_secret"].as_str().unwrap();
    assert!(secret.starts_with("ss_"), "{secret}");

    // Only the secret's SHA-256 is stored.
    let stored: Vec<u8> =
        sqlx::query_scalar("SELECT server_secret_hash FROM sites WHERE id = $1::uuid")
            .bind(&id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(stored, Sha256::digest(secret.as_bytes()).to_vec());

    let read = app.get(&format!("/api/v1/sites/{id}"), token).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.etag(), "\"1\"");
    assert!(
        read.json().get("server_secret").is_none(),
        "the secret is shown once"
    );
    assert_eq!(read.json()["site_key"], site["site_key"]);

    let list = app
        .get("/api/v1/sites", Some(&team.viewer.token))
        .await
        .json();
    assert_eq!(list.as_array().unwrap().len(), 1);

    let patched = app
        .call_with(
            Method::PATCH,
            &format!("/api/v1/sites/{id}"),
            token,
            Some(json!({ "name": "Renamed", "domains": ["checkout.example"] })),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text());
    assert_eq!(patched.etag(), "\"2\"");
    assert_eq!(patched.json()["name"], "Renamed");
    assert_eq!(patched.json()["domains"], json!(["checkout.example"]));

    let deleted = app
        .call_with(
            Method::DELETE,
            &format!("/api/v1/sites/{id}"),
            token,
            None,
            &[("if-match", "\"2\"")],
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text());
    app.get(&format!("/api/v1/sites/{id}"), token)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");

    assert_eq!(
        audit_actions(&pool, team.admin.org_id).await,
        vec!["site.create", "site.update", "site.delete"]
    );
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn bad_site_inputs_are_refused_with_field_errors(pool: PgPool) {
    let app = TestApp::new(pool);
    let owner = new_org(&app).await;
    let cases: [(Value, &str, &str); 10] = [
        (json!({ "name": "", "domains": [] }), "name", "empty name"),
        (json!({ "name": "x".repeat(201) }), "name", "name too long"),
        (
            json!({ "name": "S", "domains": ["https://shop.com"] }),
            "domains[0]",
            "scheme",
        ),
        (
            json!({ "name": "S", "domains": ["shop.com/cart"] }),
            "domains[0]",
            "path",
        ),
        (
            json!({ "name": "S", "domains": ["shop.com:8443"] }),
            "domains[0]",
            "port",
        ),
        (
            json!({ "name": "S", "domains": ["192.168.1.1"] }),
            "domains[0]",
            "IPv4",
        ),
        (
            json!({ "name": "S", "domains": ["[::1]"] }),
            "domains[0]",
            "IPv6",
        ),
        (
            json!({ "name": "S", "domains": ["*.shop.com"] }),
            "domains[0]",
            "wildcard",
        ),
        (
            json!({ "name": "S", "domains": ["ok.com", "bad domain.com"] }),
            "domains[1]",
            "space",
        ),
        (
            json!({ "name": "S", "domains": ["a.com", "A.com"] }),
            "domains[1]",
            "duplicate",
        ),
    ];
    for (body, field, why) in cases {
        let resp = app.post("/api/v1/sites", Some(&owner.token), body).await;
        let problem = resp.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(problem["errors"][0]["field"], field, "{why}: {problem}");
    }
    let malformed = [
        ("{\"name\": ", "truncated JSON"),
        ("{\"name\": 5}", "wrong type"),
        ("{\"name\": \"S\", \"colour\": \"red\"}", "unknown field"),
    ];
    for (body, why) in malformed {
        let resp = app
            .call_raw(Method::POST, "/api/v1/sites", Some(&owner.token), body)
            .await;
        assert_eq!(
            resp.status,
            StatusCode::BAD_REQUEST,
            "{why}: {}",
            resp.text()
        );
        resp.assert_problem(StatusCode::BAD_REQUEST, "bad_request");
    }
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn rotating_the_secret_replaces_its_hash_and_shows_the_new_one_once(pool: PgPool) {
    let app = TestApp::new(pool.clone());
    let owner = new_org(&app).await;
    let site = create_site(&app, &owner.token, &["shop.example"]).await;
    let id = site["id"].as_str().unwrap();
    let rotated = app
        .post(
            &format!("/api/v1/sites/{id}/rotate-secret"),
            Some(&owner.token),
            json!({}),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.text());
    let new_secret = rotated.json()["server_secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, site["server_secret"].as_str().unwrap());
    let stored: Vec<u8> =
        sqlx::query_scalar("SELECT server_secret_hash FROM sites WHERE id = $1::uuid")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(stored, Sha256::digest(new_secret.as_bytes()).to_vec());
    let audit: String = sqlx::query_scalar(
        "SELECT entry FROM audit_log WHERE action = 'site.rotate_secret' AND target_id = $1::uuid",
    )
    .bind(id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(
        !audit.contains(&new_secret),
        "the audit trail never holds the secret"
    );
}

fn config_with_edge() -> config::Config {
    config::from_lookup(|name| {
        match name {
            "DATABASE_URL" => Some("postgres://unused-in-tests"),
            "SAMPLIT_JWT_SECRET" => Some(TEST_JWT_SECRET),
            "SAMPLIT_INGEST_SECRET" => Some(TEST_INGEST_SECRET),
            "SAMPLIT_SNAPSHOT_SECRET" => Some(TEST_SNAPSHOT_SECRET),
            "SAMPLIT_EDGE_URL" => Some("https://edge.example/"),
            _ => None,
        }
        .map(str::to_owned)
    })
    .unwrap()
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn the_snippet_points_at_the_edge_with_the_site_key(pool: PgPool) {
    let app = TestApp::with_config(pool.clone(), config_with_edge());
    let team = new_team(&app).await;
    let site = create_site(&app, &team.admin.token, &["shop.example"]).await;
    let id = site["id"].as_str().unwrap();
    let snippet = app
        .get(
            &format!("/api/v1/sites/{id}/snippet"),
            Some(&team.viewer.token),
        )
        .await;
    assert_eq!(snippet.status, StatusCode::OK, "{}", snippet.text());
    let html = snippet.json()["html"].as_str().unwrap().to_owned();
    let key = site["site_key"].as_str().unwrap();
    assert!(
        html.contains(&format!(
            "<script src=\"https://edge.example/v1/samplit.js?site={key}\" data-site-key=\"{key}\"></script>"
        )),
        "{html}"
    );
    assert!(html.contains("Anti-flicker"), "{html}");

    // Without an edge URL there is no snippet to give.
    let bare = TestApp::new(pool);
    bare.get(
        &format!("/api/v1/sites/{id}/snippet"),
        Some(&team.viewer.token),
    )
    .await
    .assert_problem(StatusCode::CONFLICT, "edge_not_configured");
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn exclusion_rules_are_validated_by_the_engine_and_stored(pool: PgPool) {
    let app = TestApp::new(pool);
    let owner = new_org(&app).await;
    let site = create_site(&app, &owner.token, &["shop.example"]).await;
    let uri = format!("/api/v1/sites/{}/exclusions", site["id"].as_str().unwrap());
    let rules = json!([
        { "type": "ip", "range": "10.0.0.0/8" },
        { "type": "ip", "range": "192.168.1.10-192.168.1.20" },
        { "type": "header", "name": "x-internal", "value": "1" },
        { "type": "cookie", "name": "staff", "value": null },
        { "type": "query_param", "name": "qa", "value": "1" },
        { "type": "bots" }
    ]);
    let ok = app
        .call_with(
            Method::PUT,
            &uri,
            Some(&owner.token),
            Some(rules),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    assert_eq!(ok.json()["exclusions"].as_array().unwrap().len(), 6);
    assert_eq!(ok.json()["exclusions"][0]["type"], "ip");
    assert_eq!(ok.etag(), "\"2\"");

    let bad: [(Value, &str, &str); 4] = [
        (
            json!([{ "type": "ip", "range": "10.0.0.0/33" }]),
            "exclusions[0]",
            "bad CIDR",
        ),
        (
            json!([{ "type": "bots" }, { "type": "teleport" }]),
            "exclusions[1]",
            "unknown type",
        ),
        (
            json!([{ "type": "header", "name": "bad name", "value": "1" }]),
            "exclusions[0]",
            "bad header name",
        ),
        (json!([{ "type": "ip" }]), "exclusions[0]", "missing range"),
    ];
    for (body, field, why) in bad {
        let resp = app
            .call_with(
                Method::PUT,
                &uri,
                Some(&owner.token),
                Some(body),
                &[("if-match", "\"2\"")],
            )
            .await;
        let problem = resp.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(problem["errors"][0]["field"], field, "{why}: {problem}");
    }
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn site_changes_need_a_fresh_if_match(pool: PgPool) {
    let app = TestApp::new(pool);
    let owner = new_org(&app).await;
    let site = create_site(&app, &owner.token, &["shop.example"]).await;
    let uri = format!("/api/v1/sites/{}", site["id"].as_str().unwrap());
    let body = Some(json!({ "name": "New" }));
    app.call_with(Method::PATCH, &uri, Some(&owner.token), body.clone(), &[])
        .await
        .assert_problem(StatusCode::PRECONDITION_REQUIRED, "if_match_required");
    app.call_with(
        Method::PATCH,
        &uri,
        Some(&owner.token),
        body.clone(),
        &[("if-match", "\"7\"")],
    )
    .await
    .assert_problem(StatusCode::PRECONDITION_FAILED, "stale_version");
    app.call_with(Method::DELETE, &uri, Some(&owner.token), None, &[])
        .await
        .assert_problem(StatusCode::PRECONDITION_REQUIRED, "if_match_required");
    let ok = app
        .call_with(
            Method::PATCH,
            &uri,
            Some(&owner.token),
            body.clone(),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    // The old ETag is now stale.
    app.call_with(
        Method::PATCH,
        &uri,
        Some(&owner.token),
        body,
        &[("if-match", "\"1\"")],
    )
    .await
    .assert_problem(StatusCode::PRECONDITION_FAILED, "stale_version");
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn site_permissions_follow_the_matrix(pool: PgPool) {
    let app = TestApp::new(pool);
    let team = new_team(&app).await;
    let stranger = new_org(&app).await;
    let site = create_site(&app, &team.owner.token, &["shop.example"]).await;
    let id = site["id"].as_str().unwrap().to_owned();
    let theirs = create_site(&app, &stranger.token, &["other.example"]).await;
    let their_id = theirs["id"].as_str().unwrap().to_owned();

    // (method, path, body, minimum role: false = viewer may, true = admin needed)
    let endpoints: Vec<(Method, String, Option<Value>, bool)> = vec![
        (Method::GET, "/api/v1/sites".into(), None, false),
        (Method::GET, format!("/api/v1/sites/{id}"), None, false),
        (
            Method::GET,
            format!("/api/v1/sites/{id}/publications"),
            None,
            false,
        ),
        (
            Method::POST,
            "/api/v1/sites".into(),
            Some(json!({ "name": "N" })),
            true,
        ),
        (
            Method::PATCH,
            format!("/api/v1/sites/{id}"),
            Some(json!({ "name": "N" })),
            true,
        ),
        (
            Method::PUT,
            format!("/api/v1/sites/{id}/exclusions"),
            Some(json!([])),
            true,
        ),
        (
            Method::POST,
            format!("/api/v1/sites/{id}/rotate-secret"),
            Some(json!({})),
            true,
        ),
        (
            Method::GET,
            format!("/api/v1/sites/{id}/revenue-cap"),
            None,
            false,
        ),
        (
            Method::PUT,
            format!("/api/v1/sites/{id}/revenue-cap"),
            Some(json!({ "revenue_cap": 500 })),
            true,
        ),
    ];
    for (method, path, body, admin_only) in &endpoints {
        let anon = app.call(method.clone(), path, None, body.clone()).await;
        anon.assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
        for (member, is_admin) in [
            (&team.viewer, false),
            (&team.editor, false),
            (&team.admin, true),
            (&team.owner, true),
        ] {
            // Read the current ETag each time: earlier allowed calls bump it.
            let current = app
                .get(&format!("/api/v1/sites/{id}"), Some(&team.owner.token))
                .await
                .etag();
            let resp = app
                .call_with(
                    method.clone(),
                    path,
                    Some(&member.token),
                    body.clone(),
                    &[("if-match", &current)],
                )
                .await;
            if *admin_only && !is_admin {
                resp.assert_problem(StatusCode::FORBIDDEN, "forbidden");
            } else {
                assert!(
                    resp.status.is_success(),
                    "{method} {path} as {}: {}",
                    member.email,
                    resp.text()
                );
            }
        }
    }
    for (method, path) in [
        (Method::GET, format!("/api/v1/sites/{id}/snippet")),
        (Method::DELETE, format!("/api/v1/sites/{id}")),
    ] {
        app.call_with(method, &path, None, None, &[("if-match", "\"1\"")])
            .await
            .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    // Another organisation's site does not exist for us, whatever the method.
    for (method, path, body) in [
        (Method::GET, format!("/api/v1/sites/{their_id}"), None),
        (
            Method::GET,
            format!("/api/v1/sites/{their_id}/snippet"),
            None,
        ),
        (
            Method::GET,
            format!("/api/v1/sites/{their_id}/publications"),
            None,
        ),
        (
            Method::PATCH,
            format!("/api/v1/sites/{their_id}"),
            Some(json!({ "name": "N" })),
        ),
        (
            Method::PUT,
            format!("/api/v1/sites/{their_id}/exclusions"),
            Some(json!([])),
        ),
        (
            Method::POST,
            format!("/api/v1/sites/{their_id}/rotate-secret"),
            Some(json!({})),
        ),
        (
            Method::GET,
            format!("/api/v1/sites/{their_id}/revenue-cap"),
            None,
        ),
        (
            Method::PUT,
            format!("/api/v1/sites/{their_id}/revenue-cap"),
            Some(json!({ "revenue_cap": 500 })),
        ),
        (Method::DELETE, format!("/api/v1/sites/{their_id}"), None),
    ] {
        app.call_with(
            method.clone(),
            &path,
            Some(&team.owner.token),
            body,
            &[("if-match", "\"1\"")],
        )
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    }
    // Delete last: viewer/editor forbidden, admin allowed.
    for member in [&team.viewer, &team.editor] {
        app.call_with(
            Method::DELETE,
            &format!("/api/v1/sites/{id}"),
            Some(&member.token),
            None,
            &[("if-match", "\"1\"")],
        )
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    }
    let current = app
        .get(&format!("/api/v1/sites/{id}"), Some(&team.owner.token))
        .await
        .etag();
    let del = app
        .call_with(
            Method::DELETE,
            &format!("/api/v1/sites/{id}"),
            Some(&team.admin.token),
            None,
            &[("if-match", &current)],
        )
        .await;
    assert_eq!(del.status, StatusCode::NO_CONTENT, "{}", del.text());
}

/// The site row and the snapshot the publisher would build for it now.
async fn site_and_snapshot(
    pool: &PgPool,
    id: &str,
) -> (
    samplit_control_plane::db::sites::SiteRow,
    samplit_engine::snapshot::Snapshot,
) {
    let mut conn = pool.acquire().await.unwrap();
    let site = samplit_control_plane::db::sites::all(&mut conn)
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.id.to_string() == id)
        .unwrap();
    let (snapshot, _) = samplit_control_plane::publisher::build_snapshot(&mut conn, &site)
        .await
        .unwrap();
    (site, snapshot)
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn the_server_secret_is_derived_from_a_published_salt_and_rotation_changes_both(
    pool: PgPool,
) {
    use samplit_engine::server_call::{server_secret, valid_salt};
    let app = TestApp::new(pool.clone());
    let owner = new_org(&app).await;
    let site = create_site(&app, &owner.token, &["shop.example"]).await;
    let id = site["id"].as_str().unwrap();
    let key = site["site_key"].as_str().unwrap();
    let first = site["server_secret"].as_str().unwrap().to_owned();

    // The snapshot publishes the salt (public) and the default cap; the secret is what
    // the edge derives from the salt and the snapshot secret, and is not stored.
    let (row, snap) = site_and_snapshot(&pool, id).await;
    let salt = row.server_secret_salt.clone().unwrap();
    assert!(valid_salt(&salt), "{salt}");
    assert_eq!(
        snap.trust.server_secret_salt.as_deref(),
        Some(salt.as_str())
    );
    assert_eq!(snap.trust.revenue_cap, Some(10_000.0));
    assert_eq!(
        first,
        server_secret(TEST_SNAPSHOT_SECRET.as_bytes(), key, &salt)
    );
    let stored: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sites WHERE strpos(row_to_json(sites)::text, $1) > 0",
    )
    .bind(&first)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(stored, 0, "the secret itself is stored nowhere");

    let rotated = app
        .post(
            &format!("/api/v1/sites/{id}/rotate-secret"),
            Some(&owner.token),
            json!({}),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.text());
    let second = rotated.json()["server_secret"].as_str().unwrap().to_owned();
    let (row2, snap2) = site_and_snapshot(&pool, id).await;
    let salt2 = row2.server_secret_salt.clone().unwrap();
    assert_ne!(salt2, salt, "a rotation draws a new salt");
    assert_eq!(
        snap2.trust.server_secret_salt.as_deref(),
        Some(salt2.as_str())
    );
    assert_eq!(
        second,
        server_secret(TEST_SNAPSHOT_SECRET.as_bytes(), key, &salt2)
    );
    assert_ne!(second, first);

    // A site from before signed calls (no salt) publishes none: the edge then answers
    // its signed calls `server_secret_not_set` until the secret is rotated.
    sqlx::query("UPDATE sites SET server_secret_salt = NULL WHERE id = $1::uuid")
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
    let (_, legacy) = site_and_snapshot(&pool, id).await;
    assert_eq!(legacy.trust.server_secret_salt, None);
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn the_revenue_cap_is_read_by_members_set_by_admins_validated_audited_and_published(
    pool: PgPool,
) {
    let app = TestApp::new(pool.clone());
    let team = new_team(&app).await;
    let site = create_site(&app, &team.owner.token, &["shop.example"]).await;
    let id = site["id"].as_str().unwrap();
    let uri = format!("/api/v1/sites/{id}/revenue-cap");

    let read = app.get(&uri, Some(&team.viewer.token)).await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.text());
    assert_eq!(
        read.json(),
        json!({ "revenue_cap": 10000.0 }),
        "the default"
    );
    let etag = read.etag();

    let cases: Vec<(Value, StatusCode, &str)> = vec![
        (
            json!({ "revenue_cap": 0 }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "zero",
        ),
        (
            json!({ "revenue_cap": -5 }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "negative",
        ),
        (
            json!({ "revenue_cap": 1e12 }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "above 1e9",
        ),
        (
            json!({ "revenue_cap": "100" }),
            StatusCode::BAD_REQUEST,
            "a string",
        ),
        (
            json!({ "cap": 100 }),
            StatusCode::BAD_REQUEST,
            "an unknown field",
        ),
    ];
    for (body, status, why) in cases {
        let resp = app
            .call_with(
                Method::PUT,
                &uri,
                Some(&team.admin.token),
                Some(body),
                &[("if-match", &etag)],
            )
            .await;
        assert_eq!(resp.status, status, "{why}: {}", resp.text());
    }
    app.call_with(
        Method::PUT,
        &uri,
        Some(&team.editor.token),
        Some(json!({ "revenue_cap": 250.5 })),
        &[("if-match", &etag)],
    )
    .await
    .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    app.call_with(
        Method::PUT,
        &uri,
        Some(&team.admin.token),
        Some(json!({ "revenue_cap": 250.5 })),
        &[],
    )
    .await
    .assert_problem(StatusCode::PRECONDITION_REQUIRED, "if_match_required");

    let set = app
        .call_with(
            Method::PUT,
            &uri,
            Some(&team.admin.token),
            Some(json!({ "revenue_cap": 250.5 })),
            &[("if-match", &etag)],
        )
        .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.text());
    assert_eq!(set.json(), json!({ "revenue_cap": 250.5 }));
    assert_eq!(
        app.get(&uri, Some(&team.viewer.token)).await.json()["revenue_cap"],
        250.5
    );
    let (_, snap) = site_and_snapshot(&pool, id).await;
    assert_eq!(
        snap.trust.revenue_cap,
        Some(250.5),
        "the next snapshot carries it"
    );

    let text: String = sqlx::query_scalar(
        "SELECT entry FROM audit_log WHERE action = 'site.revenue_cap.update' AND target_id = $1::uuid",
    )
    .bind(id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(text.contains("10000") && text.contains("250.5"), "{text}");
}
