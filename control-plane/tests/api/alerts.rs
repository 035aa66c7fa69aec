//! Alerts (issue 15): the alert pass (`alerts::evaluate`) on real results and real
//! publication rows, the mails it enqueues (sent through the outbox to a real SMTP server
//! on loopback, [`crate::smtp`]) — to whom, in which language, once per state change —
//! and the preference endpoints with their authorisation.
//!
//! Aggregates are written directly (`arm_stats`, `arm_goal_stats`): what ingestion would
//! have accumulated, without ingesting thousands of events.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use samplit_control_plane::AppState;
use samplit_control_plane::alerts::{self, AlertKind, Report};
use samplit_control_plane::auth::Role;
use samplit_control_plane::mail::outbox;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::fixtures::{Experiment, Site, experiment, site};
use crate::helpers::{Member, TestApp, add_member, create_api_key, new_org, new_team};
use crate::smtp::SmtpServer;

/// Sets each arm's totals: `visitors`, and converters on the primary goal (`purchase`,
/// each buying once for 10) and on the secondary goal (`signup`).
async fn set_counts(
    app: &TestApp,
    x: &Experiment,
    visitors: [i64; 2],
    purchases: [i64; 2],
    signups: [i64; 2],
) {
    for a in 0..2 {
        sqlx::query(
            "INSERT INTO arm_stats (arm_id, experiment_id, visitors) VALUES ($1, $2, $3)
             ON CONFLICT (arm_id) DO UPDATE SET visitors = EXCLUDED.visitors",
        )
        .bind(x.arms[a])
        .bind(x.id)
        .bind(visitors[a])
        .execute(&app.pool)
        .await
        .unwrap();
        for (goal, converters, revenue) in [
            (x.purchase, purchases[a], 10.0),
            (x.signup, signups[a], 0.0),
        ] {
            sqlx::query(
                "INSERT INTO arm_goal_stats
                     (arm_id, goal_id, experiment_id, converters, revenue_n, revenue_sum, revenue_sumsq)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (arm_id, goal_id) DO UPDATE SET converters = EXCLUDED.converters,
                     revenue_n = EXCLUDED.revenue_n, revenue_sum = EXCLUDED.revenue_sum,
                     revenue_sumsq = EXCLUDED.revenue_sumsq",
            )
            .bind(x.arms[a])
            .bind(goal)
            .bind(x.id)
            .bind(converters)
            .bind(if revenue > 0.0 { converters } else { 0 })
            .bind(converters as f64 * revenue)
            .bind(converters as f64 * revenue * revenue)
            .execute(&app.pool)
            .await
            .unwrap();
        }
    }
}

/// Marks the member's address verified, with a mail language.
async fn verify(app: &TestApp, m: &Member, language: &str) {
    sqlx::query("UPDATE users SET email_verified_at = now(), language = $2 WHERE id = $1")
        .bind(m.user_id)
        .bind(language)
        .execute(&app.pool)
        .await
        .unwrap();
}

async fn evaluate(app: &TestApp) -> Report {
    alerts::evaluate(&app.state).await.unwrap()
}

async fn send_mail(state: &AppState) -> usize {
    outbox::pass(&state.pool, &state.config, &state.mail)
        .await
        .unwrap()
        .sent
}

async fn rename(app: &TestApp, x: &Experiment, name: &str) {
    sqlx::query("UPDATE experiments SET name = $2 WHERE id = $1")
        .bind(x.id)
        .bind(name)
        .execute(&app.pool)
        .await
        .unwrap();
}

const WINNER: ([i64; 2], [i64; 2], [i64; 2]) = ([5000, 5000], [250, 400], [100, 100]);

#[sqlx::test(migrations = "../migrations")]
async fn a_winner_is_mailed_once_to_who_asked_in_their_language(pool: PgPool) {
    let smtp = SmtpServer::start();
    let app = TestApp::with_config(pool, smtp.config(&[]));
    let team = new_team(&app).await;
    let org = team.owner.org_id;
    let s = site(&app, org).await;
    let x = experiment(&app, org, s.id, "single", &[2], "running").await;
    rename(&app, &x, "Buy & <save>").await;
    let unverified_admin = add_member(&app, org, Role::Admin).await;
    let muting_admin = add_member(&app, org, Role::Admin).await;
    let opted_editor = add_member(&app, org, Role::Editor).await;
    let following_viewer = add_member(&app, org, Role::Viewer).await;
    verify(&app, &team.owner, "es").await;
    for m in [
        &team.admin,
        &team.editor,
        &team.viewer,
        &muting_admin,
        &opted_editor,
        &following_viewer,
    ] {
        verify(&app, m, "en").await;
    }
    let r = app
        .call(
            Method::PUT,
            &format!("/api/v1/experiments/{}/alerts", x.id),
            Some(&muting_admin.token),
            Some(json!({"mode": "mute"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = app
        .call(
            Method::PUT,
            &format!("/api/v1/experiments/{}/alerts", x.id),
            Some(&following_viewer.token),
            Some(json!({"mode": "follow"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = app
        .call(
            Method::PUT,
            "/api/v1/notifications/preferences",
            Some(&opted_editor.token),
            Some(json!({"winner": true})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());

    // Nothing to say before the data shows a winner.
    let report = evaluate(&app).await;
    assert_eq!(report.experiments, 1);
    assert!(report.fired.is_empty(), "{report:?}");

    let (v, p, s2) = WINNER;
    set_counts(&app, &x, v, p, s2).await;
    let report = evaluate(&app).await;
    assert_eq!(report.fired, vec![(AlertKind::Winner, x.id)], "{report:?}");
    assert_eq!(
        report.mails, 4,
        "owner, admin, opted-in editor, following viewer"
    );
    assert_eq!(send_mail(&app.state).await, 4);
    let got = smtp.wait_for(4, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 4);

    let results = format!("https://app.samplit.test/app/experiments/{}/results", x.id);
    let admin = smtp.messages_to(&team.admin.email);
    assert_eq!(admin.len(), 1);
    assert_eq!(admin[0].subject, "[Samplit] Winner: Buy & <save>");
    assert_eq!(admin[0].link(&results).as_deref(), Some(results.as_str()));
    assert!(admin[0].text.contains("\"arm 1\""), "{}", admin[0].text);
    assert!(
        admin[0].text.contains("+60.0 %"),
        "the lift: {}",
        admin[0].text
    );
    assert!(
        admin[0]
            .text
            .contains("https://app.samplit.test/app/notifications"),
        "how to change preferences: {}",
        admin[0].text
    );
    assert!(
        !admin[0].html.contains("<save>") && admin[0].html.contains("Buy &"),
        "the HTML part escapes the name: {}",
        admin[0].html
    );
    let owner = smtp.messages_to(&team.owner.email);
    assert_eq!(owner.len(), 1);
    assert_eq!(owner[0].subject, "[Samplit] Ganador: Buy & <save>");
    assert!(owner[0].text.contains("+60,0 %"), "{}", owner[0].text);
    assert!(owner[0].text.contains(&results));
    assert_eq!(smtp.messages_to(&opted_editor.email).len(), 1);
    assert_eq!(smtp.messages_to(&following_viewer.email).len(), 1);
    for (m, why) in [
        (&unverified_admin, "unverified address"),
        (&muting_admin, "muted the experiment"),
        (&team.editor, "editors get nothing by default"),
        (&team.viewer, "viewers get nothing by default"),
    ] {
        assert!(smtp.messages_to(&m.email).is_empty(), "{why}");
    }

    // The same state again: no second alert, no mail.
    let report = evaluate(&app).await;
    assert!(report.fired.is_empty() && report.mails == 0, "{report:?}");
    assert_eq!(send_mail(&app.state).await, 0);

    // The console's list and the experiment's state.
    let list = app.get("/api/v1/alerts", Some(&team.viewer.token)).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text());
    let list = list.json();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["kind"], "winner");
    assert_eq!(list[0]["subject_id"], x.id.to_string());
    assert_eq!(list[0]["detail"]["arm"]["name"], "arm 1");
    assert_eq!(list[0]["detail"]["experiment"]["id"], x.id.to_string());
    assert!(
        list[0]["text"]
            .as_str()
            .unwrap()
            .contains("has a winner: \"arm 1\""),
        "{list}"
    );
    let state = app
        .get(
            &format!("/api/v1/experiments/{}/alerts", x.id),
            Some(&following_viewer.token),
        )
        .await
        .json();
    assert_eq!(state["mode"], "follow");
    let winner = &state["alerts"][0];
    assert_eq!(
        (
            winner["kind"].as_str(),
            winner["active"].as_bool(),
            winner["activations"].as_i64(),
            winner["receives"].as_bool()
        ),
        (Some("winner"), Some(true), Some(1), Some(true)),
        "{state}"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn an_srm_fires_once_then_again_after_it_went_away(pool: PgPool) {
    let smtp = SmtpServer::start();
    let app = TestApp::with_config(pool, smtp.config(&[]));
    let owner = new_org(&app).await;
    verify(&app, &owner, "en").await;
    let s = site(&app, owner.org_id).await;
    let x = experiment(&app, owner.org_id, s.id, "single", &[2], "running").await;

    // 1000 against 1400 visitors for a 50/50 split, the same conversion rate.
    set_counts(&app, &x, [1000, 1400], [50, 70], [10, 14]).await;
    let report = evaluate(&app).await;
    assert_eq!(report.fired, vec![(AlertKind::Srm, x.id)], "{report:?}");
    assert_eq!(evaluate(&app).await.fired, vec![], "still the same SRM");

    // Back to the split: recorded, not mailed.
    set_counts(&app, &x, [1200, 1200], [60, 60], [12, 12]).await;
    let report = evaluate(&app).await;
    assert_eq!(report.cleared, vec![(AlertKind::Srm, x.id)], "{report:?}");
    assert!(report.fired.is_empty() && report.mails == 0);

    // Again: a new state change, a new alert.
    set_counts(&app, &x, [1000, 1400], [50, 70], [10, 14]).await;
    let report = evaluate(&app).await;
    assert_eq!(report.fired, vec![(AlertKind::Srm, x.id)], "{report:?}");
    assert_eq!(send_mail(&app.state).await, 2);
    let got = smtp.wait_for(2, Duration::from_secs(10)).await;
    for m in &got {
        assert_eq!(m.to, owner.email);
        assert_eq!(m.subject, "[Samplit] Sample ratio mismatch: Test");
        assert!(
            m.text
                .contains("arm 0: 1000 visitors (expected share 50.0 %)"),
            "{}",
            m.text
        );
        assert!(m.text.contains("arm 1: 1400 visitors"), "{}", m.text);
    }
    let state = app
        .get(
            &format!("/api/v1/experiments/{}/alerts", x.id),
            Some(&owner.token),
        )
        .await
        .json();
    let srm = &state["alerts"][1];
    assert_eq!(
        (
            srm["kind"].as_str(),
            srm["active"].as_bool(),
            srm["activations"].as_i64()
        ),
        (Some("srm"), Some(true), Some(2)),
        "{state}"
    );
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM alert_events WHERE kind = 'srm'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(events, 2);
}

/// Marks the fixture's secondary goal (`signup`) a guardrail with a 5 % margin.
async fn mark_guardrail(app: &TestApp, x: &Experiment, direction: &str) {
    sqlx::query(
        "UPDATE goals SET guardrail = true, guardrail_margin = 0.05, guardrail_direction = $2
         WHERE id = $1",
    )
    .bind(x.signup)
    .bind(direction)
    .execute(&app.pool)
    .await
    .unwrap();
}

#[sqlx::test(migrations = "../migrations")]
async fn a_harmed_guardrail_fires_a_guardrail_alert_even_without_smtp(pool: PgPool) {
    // No SMTP: mail is logged, and still only enqueued for verified addresses.
    let app = TestApp::new(pool);
    let team = new_team(&app).await;
    let org = team.owner.org_id;
    verify(&app, &team.owner, "en").await;
    let s = site(&app, org).await;
    let x = experiment(&app, org, s.id, "single", &[2], "running").await;
    // The primary goal is even; the variant's signups drop from 8 % to 5 % (−37.5 %).
    set_counts(&app, &x, [5000, 5000], [250, 250], [400, 250]).await;
    // A secondary goal that is not a guardrail is never one, however much worse.
    let report = evaluate(&app).await;
    assert!(report.fired.is_empty(), "{report:?}");
    mark_guardrail(&app, &x, "higher_is_better").await;
    let report = evaluate(&app).await;
    assert_eq!(
        report.fired,
        vec![(AlertKind::GuardrailHarmed, x.id)],
        "{report:?}"
    );
    assert_eq!(
        report.mails, 1,
        "the verified owner only (the admin is unverified)"
    );
    let rows: Vec<(String, String, String)> =
        sqlx::query_as("SELECT to_address, subject, text_body FROM mail_outbox")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, team.owner.email);
    assert_eq!(rows[0].1, "[Samplit] Guardrail harmed: Test");
    assert!(
        rows[0].2.contains("\"arm 1\" on \"signup\": -37.5 %"),
        "{}",
        rows[0].2
    );
    let (detail, text): (Value, String) = sqlx::query_as("SELECT detail, text FROM alert_events")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(detail["harmed"][0]["goal"]["id"], x.signup.to_string());
    assert_eq!(detail["harmed"][0]["arm"]["id"], x.arms[1].to_string());
    assert_eq!(detail["harmed"][0]["guardrail"]["margin"], 0.05);
    assert_eq!(
        detail["harmed"][0]["guardrail"]["direction"],
        "higher_is_better"
    );
    assert!(
        detail["harmed"][0]["guardrail"]["interval"]["upper"]
            .as_f64()
            .unwrap()
            < -0.05,
        "{detail}"
    );
    assert!(
        text.starts_with(
            "Samplit: in \"Test\", \"arm 1\" harms the guardrail \"signup\" (-37.5 % against control, margin 5.0 %, p "
        ),
        "{text}"
    );
    // A better variant on a higher-is-better guardrail is not harm...
    let y = experiment(&app, org, s.id, "single", &[2], "running").await;
    mark_guardrail(&app, &y, "higher_is_better").await;
    set_counts(&app, &y, [5000, 5000], [250, 250], [250, 400]).await;
    let report = evaluate(&app).await;
    assert!(report.fired.is_empty(), "{report:?}");
    // ...but the same rise of a lower-is-better goal (a bounce, an error) is, once there
    // are enough visitors to bound a relative change of a 5 % rate.
    let z = experiment(&app, org, s.id, "single", &[2], "running").await;
    mark_guardrail(&app, &z, "lower_is_better").await;
    set_counts(&app, &z, [20000, 20000], [1000, 1000], [1000, 1600]).await;
    let report = evaluate(&app).await;
    assert_eq!(
        report.fired,
        vec![(AlertKind::GuardrailHarmed, z.id)],
        "{report:?}"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn two_passes_at_once_fire_an_alert_once(pool: PgPool) {
    let app = TestApp::new(pool);
    let owner = new_org(&app).await;
    verify(&app, &owner, "en").await;
    let s = site(&app, owner.org_id).await;
    let x = experiment(&app, owner.org_id, s.id, "single", &[2], "running").await;
    set_counts(&app, &x, [1000, 1400], [50, 70], [10, 14]).await;
    // Two control planes (or a pass overrunning its interval): only the pass that flips
    // the state fires; the other finds it active already.
    let (a, b) = tokio::join!(alerts::evaluate(&app.state), alerts::evaluate(&app.state));
    let fired = a.unwrap().fired.len() + b.unwrap().fired.len();
    assert_eq!(fired, 1);
    let (events, mails): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM alert_events), (SELECT count(*) FROM mail_outbox)",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!((events, mails), (1, 1));
}

/// Records a publication attempt of `site` (the next version).
async fn publication(app: &TestApp, site: &Site, ok: bool) {
    sqlx::query(
        "INSERT INTO snapshot_publications (site_id, version, hash, content_hash, weights, status, attempts, error)
         SELECT $1, COALESCE(max(version), 0) + 1, 'h', 'c', '{}', $2, 1, $3
           FROM snapshot_publications WHERE site_id = $1",
    )
    .bind(site.id)
    .bind(if ok { "published" } else { "failed" })
    .bind((!ok).then_some("edge answered 503"))
    .execute(&app.pool)
    .await
    .unwrap();
}

#[sqlx::test(migrations = "../migrations")]
async fn a_publication_failing_three_times_fires_once_and_again_after_a_recovery(pool: PgPool) {
    let smtp = SmtpServer::start();
    let app = TestApp::with_config(pool, smtp.config(&[]));
    let owner = new_org(&app).await;
    verify(&app, &owner, "es").await;
    let s = site(&app, owner.org_id).await;
    publication(&app, &s, true).await;
    publication(&app, &s, false).await;
    publication(&app, &s, false).await;
    let report = evaluate(&app).await;
    assert_eq!(report.sites, 1);
    assert!(
        report.fired.is_empty(),
        "two failures are under the threshold: {report:?}"
    );
    publication(&app, &s, false).await;
    let report = evaluate(&app).await;
    assert_eq!(
        report.fired,
        vec![(AlertKind::PublishFailing, s.id)],
        "{report:?}"
    );
    publication(&app, &s, false).await;
    assert!(
        evaluate(&app).await.fired.is_empty(),
        "a longer streak is the same state"
    );
    publication(&app, &s, true).await;
    assert_eq!(
        evaluate(&app).await.cleared,
        vec![(AlertKind::PublishFailing, s.id)]
    );
    for _ in 0..3 {
        publication(&app, &s, false).await;
    }
    assert_eq!(
        evaluate(&app).await.fired,
        vec![(AlertKind::PublishFailing, s.id)]
    );
    assert_eq!(send_mail(&app.state).await, 2);
    let got = smtp.wait_for(2, Duration::from_secs(10)).await;
    let site_page = format!("https://app.samplit.test/app/sites/{}", s.id);
    for m in &got {
        assert_eq!(m.subject, "[Samplit] La publicación está fallando: Shop");
        assert_eq!(m.link(&site_page).as_deref(), Some(site_page.as_str()));
        assert!(
            m.text.contains("Último error: edge answered 503"),
            "{}",
            m.text
        );
    }
    assert!(
        got[0].text.contains("Los últimos 3 intentos"),
        "{}",
        got[0].text
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn preferences_follow_the_role_until_set(pool: PgPool) {
    let app = TestApp::new(pool);
    let team = new_team(&app).await;
    let uri = "/api/v1/notifications/preferences";
    let admin = app.get(uri, Some(&team.admin.token)).await;
    assert_eq!(admin.status, StatusCode::OK, "{}", admin.text());
    let admin = admin.json();
    assert_eq!(admin["email_verified"], false);
    for p in admin["preferences"].as_array().unwrap() {
        assert_eq!(
            (p["enabled"].as_bool(), p["is_default"].as_bool()),
            (Some(true), Some(true)),
            "{p}"
        );
    }
    let kinds: Vec<&str> = admin["preferences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["winner", "srm", "guardrail_harmed", "publish_failing"]
    );
    let editor = app.get(uri, Some(&team.editor.token)).await.json();
    for p in editor["preferences"].as_array().unwrap() {
        assert_eq!(p["enabled"], false, "{p}");
    }

    // Partial: only what is named changes.
    let r = app
        .call(
            Method::PUT,
            uri,
            Some(&team.editor.token),
            Some(json!({"srm": true})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let body = r.json();
    assert_eq!(body["preferences"][1]["enabled"], true);
    assert_eq!(body["preferences"][1]["is_default"], false);
    assert_eq!(body["preferences"][0]["enabled"], false);
    assert_eq!(body["preferences"][0]["is_default"], true);
    let r = app
        .call(
            Method::PUT,
            uri,
            Some(&team.admin.token),
            Some(json!({"winner": false, "publish_failing": false})),
        )
        .await
        .json();
    assert_eq!(
        r["preferences"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["enabled"].as_bool().unwrap())
            .collect::<Vec<_>>(),
        [false, true, true, false]
    );
    // Another member's settings are untouched.
    let owner = app.get(uri, Some(&team.owner.token)).await.json();
    assert!(
        owner["preferences"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["enabled"] == true)
    );

    for (body, why) in [
        (json!({"winer": true}), "unknown kind"),
        (json!({"winner": "yes"}), "not a boolean"),
        (json!([]), "not an object"),
    ] {
        let r = app
            .call(Method::PUT, uri, Some(&team.admin.token), Some(body))
            .await;
        r.assert_problem(StatusCode::BAD_REQUEST, "bad_request");
        let _ = why;
    }
}

/// (method, uri, token, body, expected status, why).
type Case<'a> = (
    Method,
    &'a str,
    Option<&'a str>,
    Option<Value>,
    StatusCode,
    &'a str,
);

#[sqlx::test(migrations = "../migrations")]
async fn every_alert_endpoint_is_a_persons_and_stays_in_the_organisation(pool: PgPool) {
    let app = TestApp::new(pool);
    let team = new_team(&app).await;
    let s = site(&app, team.owner.org_id).await;
    let x = experiment(&app, team.owner.org_id, s.id, "single", &[2], "running").await;
    let other = new_org(&app).await;
    let other_site = site(&app, other.org_id).await;
    let foreign = experiment(&app, other.org_id, other_site.id, "single", &[2], "running").await;
    let (_, key) = create_api_key(&app, &team.owner.token, "automation", Role::Admin).await;
    let mine = format!("/api/v1/experiments/{}/alerts", x.id);
    let theirs = format!("/api/v1/experiments/{}/alerts", foreign.id);
    let unknown = format!("/api/v1/experiments/{}/alerts", Uuid::new_v4());
    let follow = Some(json!({"mode": "follow"}));

    let cases: Vec<Case<'_>> = vec![
        (
            Method::GET,
            "/api/v1/notifications/preferences",
            None,
            None,
            StatusCode::UNAUTHORIZED,
            "no token",
        ),
        (
            Method::GET,
            "/api/v1/notifications/preferences",
            Some(&key),
            None,
            StatusCode::FORBIDDEN,
            "an API key has no preferences",
        ),
        (
            Method::PUT,
            "/api/v1/notifications/preferences",
            Some(&key),
            Some(json!({"winner": true})),
            StatusCode::FORBIDDEN,
            "nor sets them",
        ),
        (
            Method::GET,
            &mine,
            None,
            None,
            StatusCode::UNAUTHORIZED,
            "no token",
        ),
        (
            Method::GET,
            &mine,
            Some(&key),
            None,
            StatusCode::FORBIDDEN,
            "an API key follows nothing",
        ),
        (
            Method::PUT,
            &mine,
            Some(&key),
            follow.clone(),
            StatusCode::FORBIDDEN,
            "nor can it follow",
        ),
        (
            Method::GET,
            &theirs,
            Some(&team.owner.token),
            None,
            StatusCode::NOT_FOUND,
            "another organisation's experiment",
        ),
        (
            Method::PUT,
            &theirs,
            Some(&team.owner.token),
            follow.clone(),
            StatusCode::NOT_FOUND,
            "another organisation's experiment",
        ),
        (
            Method::GET,
            &unknown,
            Some(&team.viewer.token),
            None,
            StatusCode::NOT_FOUND,
            "no such experiment",
        ),
        (
            Method::PUT,
            &unknown,
            Some(&team.viewer.token),
            follow.clone(),
            StatusCode::NOT_FOUND,
            "no such experiment",
        ),
        (
            Method::PUT,
            &mine,
            Some(&team.viewer.token),
            Some(json!({"mode": "always"})),
            StatusCode::BAD_REQUEST,
            "unknown mode",
        ),
        (
            Method::GET,
            "/api/v1/alerts",
            None,
            None,
            StatusCode::UNAUTHORIZED,
            "no token",
        ),
        (
            Method::GET,
            "/api/v1/alerts",
            Some(&key),
            None,
            StatusCode::FORBIDDEN,
            "an API key",
        ),
        (
            Method::GET,
            "/api/v1/alerts?limit=0",
            Some(&team.viewer.token),
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
            "limit below 1",
        ),
        (
            Method::GET,
            "/api/v1/alerts?limit=201",
            Some(&team.viewer.token),
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
            "limit over 200",
        ),
        (
            Method::GET,
            "/api/v1/alerts?limit=many",
            Some(&team.viewer.token),
            None,
            StatusCode::BAD_REQUEST,
            "limit not a number",
        ),
    ];
    for (method, uri, token, body, want, why) in cases {
        let r = app.call(method.clone(), uri, token, body).await;
        assert_eq!(r.status, want, "{method} {uri}: {why}: {}", r.text());
    }

    // Any member sets their own override; `default` removes it.
    for (mode, receives) in [("follow", true), ("mute", false), ("default", false)] {
        let r = app
            .call(
                Method::PUT,
                &mine,
                Some(&team.viewer.token),
                Some(json!({"mode": mode})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        let body = r.json();
        assert_eq!(body["mode"], mode);
        assert_eq!(
            body["alerts"].as_array().unwrap().len(),
            3,
            "the experiment kinds"
        );
        assert!(
            body["alerts"]
                .as_array()
                .unwrap()
                .iter()
                .all(|a| a["receives"] == receives),
            "{body}"
        );
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM experiment_alert_overrides")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(count, 0, "default leaves no override behind");
    let admin = app.get(&mine, Some(&team.admin.token)).await.json();
    assert_eq!(admin["mode"], "default");
    assert!(
        admin["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["receives"] == true && a["active"] == false)
    );

    // The list holds only the caller's organisation's alerts.
    verify(&app, &other, "en").await;
    let (v, p, s2) = WINNER;
    set_counts(&app, &foreign, v, p, s2).await;
    assert_eq!(
        evaluate(&app).await.fired,
        vec![(AlertKind::Winner, foreign.id)]
    );
    let list = app.get("/api/v1/alerts", Some(&team.owner.token)).await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.json(), json!([]));
    let list = app
        .get("/api/v1/alerts?limit=1", Some(&other.token))
        .await
        .json();
    assert_eq!(list.as_array().unwrap().len(), 1);
}
