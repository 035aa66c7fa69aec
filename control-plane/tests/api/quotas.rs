//! Per-organisation quotas (issue 10, hole 6): sites, running experiments, API keys and
//! snapshot bytes, each answered 422 `quota_exceeded` naming the quota and the count.

use axum::http::StatusCode;
use samplit_control_plane::auth::Role;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::experiments::{act, experiment_body};
use crate::helpers::{TestApp, TestResponse, create_api_key, new_org, new_team, test_config_with};
use crate::sites::create_site;

#[track_caller]
fn assert_quota(resp: &TestResponse, name: &str, limit: i64, current: i64) {
    let body = resp.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "quota_exceeded");
    assert_eq!(body["quota"]["name"], name, "{body}");
    assert_eq!(body["quota"]["limit"], limit, "{body}");
    assert_eq!(body["quota"]["current"], current, "{body}");
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains(name) && detail.contains(&current.to_string()),
        "{detail}"
    );
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn an_organisation_cannot_create_more_sites_than_its_quota(pool: PgPool) {
    let app = TestApp::with_config(pool, test_config_with(&[("SAMPLIT_QUOTA_SITES", "2")]));
    let owner = new_org(&app).await;
    let other = new_org(&app).await;
    create_site(&app, &owner.token, &["a.example"]).await;
    create_site(&app, &owner.token, &["b.example"]).await;
    let third = app
        .post(
            "/api/v1/sites",
            Some(&owner.token),
            json!({ "name": "Third", "domains": ["c.example"] }),
        )
        .await;
    assert_quota(&third, "sites", 2, 2);
    // The quota is per organisation.
    create_site(&app, &other.token, &["d.example"]).await;
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn running_experiments_are_limited_per_organisation(pool: PgPool) {
    let app = TestApp::with_config(
        pool,
        test_config_with(&[("SAMPLIT_QUOTA_RUNNING_EXPERIMENTS", "1")]),
    );
    let team = new_team(&app).await;
    let site = create_site(&app, &team.admin.token, &["shop.example"]).await;
    let uri = format!("/api/v1/sites/{}/experiments", site["id"].as_str().unwrap());
    let mut ids = Vec::new();
    for _ in 0..2 {
        let created = app
            .post(&uri, Some(&team.editor.token), experiment_body())
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
        ids.push(created.json()["id"].as_str().unwrap().to_owned());
    }
    let started = act(&app, &team.editor, &ids[0], "start").await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.text());
    assert_quota(
        &act(&app, &team.editor, &ids[1], "start").await,
        "running_experiments",
        1,
        1,
    );
    // Pausing frees the slot; resuming the first then hits the quota.
    assert_eq!(
        act(&app, &team.editor, &ids[0], "pause").await.status,
        StatusCode::OK
    );
    assert_eq!(
        act(&app, &team.editor, &ids[1], "start").await.status,
        StatusCode::OK
    );
    assert_quota(
        &act(&app, &team.editor, &ids[0], "resume").await,
        "running_experiments",
        1,
        1,
    );
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn live_api_keys_are_limited_and_a_revoked_one_frees_its_slot(pool: PgPool) {
    let app = TestApp::with_config(pool, test_config_with(&[("SAMPLIT_QUOTA_API_KEYS", "2")]));
    let owner = new_org(&app).await;
    let (first, _) = create_api_key(&app, &owner.token, "one", Role::Viewer).await;
    create_api_key(&app, &owner.token, "two", Role::Viewer).await;
    let third = app
        .post(
            "/api/v1/api-keys",
            Some(&owner.token),
            json!({ "name": "three", "role": "viewer" }),
        )
        .await;
    assert_quota(&third, "api_keys", 2, 2);
    app.delete(&format!("/api/v1/api-keys/{first}"), Some(&owner.token))
        .await;
    create_api_key(&app, &owner.token, "three", Role::Viewer).await;
}

/// An experiment whose variant carries `changes` set_text changes of `chars` characters.
fn heavy_experiment(changes: usize, chars: usize) -> Value {
    let mut body = experiment_body();
    let text = "x".repeat(chars);
    body["elements"][0]["variants"][1]["changes"] = (0..changes)
        .map(|i| {
            json!({ "selector": format!("#hero h{}", 1 + i % 6), "action": { "type": "set_text", "text": text } })
        })
        .collect();
    body
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn an_experiment_whose_snapshot_would_pass_the_byte_quota_is_refused_at_save_and_start(
    pool: PgPool,
) {
    // The default quota: 1 MiB, a quarter of the edge's 4 MiB snapshot body cap.
    let app = TestApp::new(pool);
    let team = new_team(&app).await;
    let site = create_site(&app, &team.admin.token, &["shop.example"]).await;
    let uri = format!("/api/v1/sites/{}/experiments", site["id"].as_str().unwrap());

    // Saving: one experiment of ~1.2 MB on its own.
    let too_big = app
        .post(&uri, Some(&team.editor.token), heavy_experiment(6, 200_000))
        .await;
    let body = too_big.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "quota_exceeded");
    assert_eq!(body["quota"]["name"], "snapshot_bytes", "{body}");
    assert_eq!(body["quota"]["limit"], 1024 * 1024, "{body}");
    assert!(
        body["quota"]["current"].as_i64().unwrap() > 1_200_000,
        "{body}"
    );

    // Starting: two of ~600 kB each fit alone, not together in the site's snapshot.
    let mut ids = Vec::new();
    for _ in 0..2 {
        let created = app
            .post(&uri, Some(&team.editor.token), heavy_experiment(3, 200_000))
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
        ids.push(created.json()["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        act(&app, &team.editor, &ids[0], "start").await.status,
        StatusCode::OK
    );
    let second = act(&app, &team.editor, &ids[1], "start").await;
    let body = second.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "quota_exceeded");
    assert_eq!(body["quota"]["name"], "snapshot_bytes", "{body}");
    let status = app
        .get(
            &format!("/api/v1/experiments/{}", ids[1]),
            Some(&team.editor.token),
        )
        .await
        .json()["status"]
        .clone();
    assert_eq!(status, "draft", "a refused start changes nothing");
}
