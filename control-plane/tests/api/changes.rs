//! What a variant may do to a page, as the API enforces it when saving: structural
//! changes that could produce script are refused with a 422 naming the change, form
//! actions and redirects stay on the site's domains, and custom code (`custom_js`,
//! `custom_css`) is for owners and admins only, audited, and flagged in results.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::{Member, TestApp, new_org, new_team};
use crate::sites::{audit_actions, create_site};

/// An experiment whose second variant carries `changes`.
fn with_changes(changes: Value) -> Value {
    json!({
        "name": "Changes",
        "elements": [{
            "selector": "#hero",
            "variants": [
                { "name": "Control", "is_control": true },
                { "name": "B", "changes": changes }
            ]
        }],
        "goals": [{ "name": "signup", "primary": true, "trigger": { "type": "custom", "event": "signup" } }]
    })
}

/// A site on `shop.example` (made by the team's admin); returns its id.
async fn shop(app: &TestApp, admin: &Member) -> String {
    let site = create_site(app, &admin.token, &["shop.example", "www.shop.example"]).await;
    site["id"].as_str().unwrap().to_owned()
}

async fn create(
    app: &TestApp,
    member: &Member,
    site: &str,
    body: Value,
) -> crate::helpers::TestResponse {
    app.post(
        &format!("/api/v1/sites/{site}/experiments"),
        Some(&member.token),
        body,
    )
    .await
}

/// Asserts a 422 whose errors name `field` with a message containing `why`.
#[track_caller]
fn assert_refused(resp: &crate::helpers::TestResponse, field: &str, why: &str) {
    let problem = resp.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let errors = problem["errors"].as_array().unwrap();
    assert!(
        errors
            .iter()
            .any(|e| e["field"] == field && e["message"].as_str().unwrap().contains(why)),
        "expected {field}: …{why}… in {problem}"
    );
}

const CHANGE: &str = "elements[0].variants[1].changes[0]";

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn structural_changes_that_could_run_script_are_refused_with_422_naming_the_change(
    pool: PgPool,
) {
    let app = TestApp::new(pool);
    let team = new_team(&app).await;
    let site = shop(&app, &team.admin).await;
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            json!({ "selector": "script", "action": { "type": "set_text", "text": "alert(1)" } }),
            "<script>",
            "text into a script",
        ),
        (
            json!({ "selector": "head > style.theme", "action": { "type": "set_text", "text": "x" } }),
            "<style>",
            "text into a style",
        ),
        (
            json!({ "selector": "div:is(.a, base)", "action": { "type": "set_attribute", "name": "href", "value": "/x" } }),
            "<base>",
            "a base element through :is()",
        ),
        (
            json!({ "selector": "iframe#pay", "action": { "type": "set_attribute", "name": "src", "value": "https://evil.example/" } }),
            "<iframe>",
            "an iframe's source",
        ),
        (
            json!({ "selector": "a.cta", "action": { "type": "set_attribute", "name": "href", "value": "javascript:alert(document.cookie)" } }),
            "URL",
            "a javascript: link",
        ),
        (
            json!({ "selector": "a.cta", "action": { "type": "set_attribute", "name": "href", "value": "java\tscript:alert(1)" } }),
            "URL",
            "a javascript: link with a tab",
        ),
        (
            json!({ "selector": "img", "action": { "type": "set_attribute", "name": "src", "value": "//evil.example/pixel" } }),
            "URL",
            "a protocol-relative source",
        ),
        (
            json!({ "selector": "form#login", "action": { "type": "set_attribute", "name": "action", "value": "https://evil.example/steal" } }),
            "leaves the site's domains",
            "a login form posting elsewhere",
        ),
        (
            json!({ "selector": ".buy", "action": { "type": "set_attribute", "name": "formaction", "value": "https://evil.example/steal" } }),
            "leaves the site's domains",
            "a button's formaction elsewhere",
        ),
        (
            json!({ "selector": "body", "action": { "type": "redirect", "url": "https://evil.example/" } }),
            "leaves the site's domains",
            "a redirect to another site",
        ),
        (
            json!({ "selector": "p", "action": { "type": "set_attribute", "name": "http-equiv", "value": "refresh" } }),
            "http-equiv",
            "http-equiv",
        ),
    ];
    for (change, why, what) in cases {
        let resp = create(&app, &team.editor, &site, with_changes(json!([change]))).await;
        assert_eq!(
            resp.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{what}: {}",
            resp.text()
        );
        assert_refused(&resp, CHANGE, why);
    }
    // The site's own hosts are fine.
    let ok = json!([
        { "selector": "form#login", "action": { "type": "set_attribute", "name": "action", "value": "https://www.shop.example/login" } },
        { "selector": "form#search", "action": { "type": "set_attribute", "name": "action", "value": "/search" } },
        { "selector": "body", "action": { "type": "redirect", "url": "https://shop.example/landing-b" } },
        { "selector": "a.partner", "action": { "type": "set_attribute", "name": "href", "value": "https://partner.example/" } }
    ]);
    let resp = create(&app, &team.editor, &site, with_changes(ok)).await;
    assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.text());
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn a_patch_and_the_visual_editor_apply_the_same_rules(pool: PgPool) {
    let app = TestApp::new(pool);
    let team = new_team(&app).await;
    let site = shop(&app, &team.admin).await;
    let created = create(&app, &team.editor, &site, with_changes(json!([])))
        .await
        .json();
    let id = created["id"].as_str().unwrap();
    let uri = format!("/api/v1/experiments/{id}");
    let etag = app.get(&uri, Some(&team.editor.token)).await.etag();
    let elements = with_changes(
        json!([{ "selector": "form", "action": { "type": "set_attribute", "name": "action", "value": "https://evil.example/" } }]),
    )["elements"]
        .clone();
    let resp = app
        .call_with(
            Method::PATCH,
            &uri,
            Some(&team.editor.token),
            Some(json!({ "elements": elements })),
            &[("if-match", &etag)],
        )
        .await;
    assert_refused(&resp, CHANGE, "leaves the site's domains");

    let variant = created["elements"][0]["variants"][1]["id"]
        .as_str()
        .unwrap();
    let put = |changes: Value| {
        let uri = format!("{uri}/variants/{variant}/changes");
        let app = &app;
        let etag = etag.clone();
        let token = team.editor.token.clone();
        async move {
            app.call_with(
                Method::PUT,
                &uri,
                Some(&token),
                Some(json!({ "changes": changes })),
                &[("if-match", &etag)],
            )
            .await
        }
    };
    assert_refused(
        &put(json!([{ "selector": "script", "action": { "type": "set_text", "text": "x" } }]))
            .await,
        "changes[0]",
        "<script>",
    );
    assert_refused(
        &put(json!([
            { "selector": "h1", "action": { "type": "set_text", "text": "ok" } },
            { "selector": "body", "action": { "type": "redirect", "url": "https://evil.example/" } }
        ]))
        .await,
        "changes[1]",
        "leaves the site's domains",
    );
}

fn custom_js() -> Value {
    json!([
        { "action": { "type": "custom_js", "code": "document.documentElement.dataset.b = '1';" } },
        { "action": { "type": "custom_css", "code": ".cta { background: #c00 }" } }
    ])
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn an_editor_cannot_save_custom_code_but_owners_and_admins_can_and_it_is_audited(
    pool: PgPool,
) {
    let app = TestApp::new(pool.clone());
    let team = new_team(&app).await;
    let site = shop(&app, &team.admin).await;

    let resp = create(&app, &team.editor, &site, with_changes(custom_js())).await;
    let problem = resp.assert_problem(StatusCode::FORBIDDEN, "forbidden");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("owners and admins")
            || problem.to_string().contains("owners and admins"),
        "the problem says who may: {problem}"
    );
    let resp = create(&app, &team.viewer, &site, with_changes(custom_js())).await;
    resp.assert_problem(StatusCode::FORBIDDEN, "forbidden");

    for member in [&team.admin, &team.owner] {
        let resp = create(&app, member, &site, with_changes(custom_js())).await;
        assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.text());
        let changes = &resp.json()["elements"][0]["variants"][1]["changes"];
        assert_eq!(changes[0]["action"]["type"], "custom_js");
        assert!(changes[0].get("selector").is_none(), "{changes}");
    }
    let entries: Vec<String> = sqlx::query_scalar(
        "SELECT entry FROM audit_log WHERE org_id = $1 AND action = 'experiment.custom_code' ORDER BY seq",
    )
    .bind(team.owner.org_id)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(entries.len(), 2, "one entry per save with custom code");
    let entry: Value = serde_json::from_str(&entries[0]).unwrap();
    assert_eq!(entry["before"]["custom_code"], json!([]));
    let added = &entry["after"]["custom_code"];
    assert_eq!(added[0]["type"], "custom_js");
    assert_eq!(added[0]["variant"], "B");
    assert_eq!(
        added[0]["code"],
        "document.documentElement.dataset.b = '1';"
    );
    assert_eq!(added[0]["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(added[1]["type"], "custom_css");

    // Custom code is bounded and cannot close its element, even for an owner.
    let too_big = json!([{ "action": { "type": "custom_js", "code": "x".repeat(64 * 1024 + 1) } }]);
    assert_refused(
        &create(&app, &team.owner, &site, with_changes(too_big)).await,
        CHANGE,
        "too long",
    );
    let breakout =
        json!([{ "action": { "type": "custom_css", "code": "</style><script>x()</script>" } }]);
    assert_refused(
        &create(&app, &team.owner, &site, with_changes(breakout)).await,
        CHANGE,
        "</style",
    );

    // Another organisation's admin cannot save anything on this site.
    let stranger = new_org(&app).await;
    let resp = create(&app, &stranger, &site, with_changes(custom_js())).await;
    resp.assert_problem(StatusCode::NOT_FOUND, "not_found");
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn an_editor_can_neither_add_custom_code_in_the_visual_editor_nor_edit_an_experiment_that_has_it(
    pool: PgPool,
) {
    let app = TestApp::new(pool.clone());
    let team = new_team(&app).await;
    let site = shop(&app, &team.admin).await;
    let created = create(&app, &team.editor, &site, with_changes(json!([])))
        .await
        .json();
    let id = created["id"].as_str().unwrap();
    let variant = created["elements"][0]["variants"][1]["id"]
        .as_str()
        .unwrap();
    let uri = format!("/api/v1/experiments/{id}");
    let put = |member: &Member, etag: String| {
        let uri = format!("{uri}/variants/{variant}/changes");
        let token = member.token.clone();
        let app = &app;
        async move {
            app.call_with(
                Method::PUT,
                &uri,
                Some(&token),
                Some(json!({ "changes": custom_js() })),
                &[("if-match", &etag)],
            )
            .await
        }
    };
    let etag = app.get(&uri, Some(&team.editor.token)).await.etag();
    put(&team.editor, etag.clone())
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    let resp = put(&team.admin, etag).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    let actions = audit_actions(&pool, team.owner.org_id).await;
    assert!(
        actions.ends_with(&[
            "variant.changes.update".into(),
            "experiment.custom_code".into()
        ]),
        "{actions:?}"
    );

    // The editor may not rename it now (saving it would save its custom code)...
    let etag = app.get(&uri, Some(&team.editor.token)).await.etag();
    let rename = |member: &Member| {
        let token = member.token.clone();
        let (app, uri, etag) = (&app, uri.clone(), etag.clone());
        async move {
            app.call_with(
                Method::PATCH,
                &uri,
                Some(&token),
                Some(json!({ "name": "Renamed" })),
                &[("if-match", &etag)],
            )
            .await
        }
    };
    rename(&team.editor)
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    // ...an admin may, and a save that leaves the code as it was adds no custom-code entry.
    let before = audit_actions(&pool, team.owner.org_id).await.len();
    let resp = rename(&team.admin).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    let actions = audit_actions(&pool, team.owner.org_id).await;
    assert_eq!(actions[before..], ["experiment.update".to_owned()]);
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn results_flag_the_arms_that_carry_custom_code(pool: PgPool) {
    let app = TestApp::new(pool);
    let team = new_team(&app).await;
    let site = shop(&app, &team.admin).await;
    let created = create(&app, &team.admin, &site, with_changes(custom_js())).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let id = created.json()["id"].as_str().unwrap().to_owned();
    let resp = app
        .get(
            &format!("/api/v1/experiments/{id}/results"),
            Some(&team.viewer.token),
        )
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    let subjects = &resp.json()["analyses"][0]["subjects"];
    let flags: Vec<(&str, bool)> = subjects
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap(),
                s["custom_code"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(flags, [("Control", false), ("B", true)]);
}
