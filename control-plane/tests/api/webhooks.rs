//! Outgoing webhooks (issue 15): signed deliveries to a local receiver, retries, the delivery log.
//!
//! The receiver is an axum server on 127.0.0.1:0 started by each test; it recomputes the
//! `Samplit-Signature` with the `hmac`/`sha2` crates from the secret the API returned
//! (independently of the control plane's code) and records every request.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode};
use hmac::{Hmac, Mac};
use samplit_control_plane::alerts::webhooks::{self, Report, pass};
use samplit_control_plane::alerts::{AlertEvent, AlertKind};
use samplit_control_plane::auth::Role;
use serde_json::{Value, json};
use sha2::Sha256;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::helpers::{TestApp, create_api_key, new_org, new_team, test_config_with};

const WEBHOOK_KEY: &str = "test-webhook-secret-0123456789abcdef0123456789";

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Received {
    at: Instant,
    headers: HeaderMap,
    body: Bytes,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }

    /// Whether `Samplit-Signature` is HMAC-SHA256(secret, "<t>.<body>"), recomputed here.
    fn signed_with(&self, secret: &str) -> bool {
        let header = self.header("samplit-signature");
        let mut t = None;
        let mut v1 = None;
        for part in header.split(',') {
            match part.split_once('=') {
                Some(("t", value)) => t = Some(value.to_owned()),
                Some(("v1", value)) => v1 = Some(value.to_owned()),
                _ => {}
            }
        }
        let (Some(t), Some(v1)) = (t, v1) else {
            return false;
        };
        let stamp: i64 = t.parse().unwrap();
        let now = OffsetDateTime::now_utc().unix_timestamp();
        if (now - stamp).abs() > 300 {
            return false;
        }
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(t.as_bytes());
        mac.update(b".");
        mac.update(&self.body);
        let Ok(given) = hex::decode(v1) else {
            return false;
        };
        mac.verify_slice(&given).is_ok()
    }
}

/// A local receiver: answers the scripted statuses in order, then `then`.
#[derive(Clone)]
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    async fn start(script: Vec<u16>, then: u16) -> Self {
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let script = Arc::new(Mutex::new(script.into_iter()));
        let recorded = got.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let recorded = recorded.clone();
                let script = script.clone();
                async move {
                    recorded.lock().unwrap().push(Received {
                        at: Instant::now(),
                        headers,
                        body,
                    });
                    let status = script.lock().unwrap().next().unwrap_or(then);
                    // A long refusal, to check the log keeps an excerpt only.
                    let text = if status >= 300 {
                        format!("receiver says no {}", "x".repeat(5000))
                    } else {
                        "ok".to_owned()
                    };
                    (StatusCode::from_u16(status).unwrap(), text)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            url: format!("http://127.0.0.1:{port}/hook"),
            got,
        }
    }

    fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }
}

fn config(extra: &[(&str, &str)]) -> samplit_control_plane::config::Config {
    let mut vars = vec![
        ("SAMPLIT_WEBHOOK_SECRET", WEBHOOK_KEY),
        ("SAMPLIT_DEV_ALLOW_LOCAL_DOMAINS", "true"),
        ("SAMPLIT_WEBHOOK_RETRY_BASE_MS", "50"),
        ("SAMPLIT_WEBHOOK_TIMEOUT_MS", "2000"),
        ("SAMPLIT_PUBLIC_URL", "https://app.samplit.test"),
    ];
    for (k, v) in extra {
        vars.retain(|(name, _)| name != k);
        vars.push((k, v));
    }
    test_config_with(&vars)
}

fn app(pool: PgPool) -> TestApp {
    TestApp::with_config(pool, config(&[]))
}

/// Creates a webhook through the API; (id, secret).
async fn create(app: &TestApp, token: &str, body: Value) -> (Uuid, String) {
    let r = app.post("/api/v1/webhooks", Some(token), body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(
        r.headers.get("cache-control").unwrap(),
        "no-store",
        "the secret is never cached"
    );
    let b = r.json();
    (
        b["id"].as_str().unwrap().parse().unwrap(),
        b["secret"].as_str().unwrap().to_owned(),
    )
}

fn event(org_id: Uuid, kind: AlertKind) -> AlertEvent {
    AlertEvent {
        id: Uuid::new_v4(),
        org_id,
        kind,
        experiment: Some((Uuid::new_v4(), "Checkout <button>".to_owned())),
        site: Some((Uuid::new_v4(), "Shop".to_owned())),
        text: "Samplit: \"Checkout <button>\" has a winner: \"B\" (+12.0% on Purchase, p = 0.001). Deploy it.".to_owned(),
        detail: json!({ "winner": "B", "lift": 0.12 }),
        at: OffsetDateTime::now_utc(),
    }
}

async fn enqueue(app: &TestApp, event: &AlertEvent) -> usize {
    let mut tx = app.pool.begin().await.unwrap();
    let n = webhooks::enqueue(&mut tx, event).await.unwrap();
    tx.commit().await.unwrap();
    n
}

async fn deliveries(app: &TestApp, token: &str, id: Uuid) -> Vec<Value> {
    let r = app
        .get(&format!("/api/v1/webhooks/{id}/deliveries"), Some(token))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    r.json().as_array().unwrap().clone()
}

/// Runs passes until `done` holds for the receiver, or panics after `limit`.
async fn pass_until(app: &TestApp, limit: Duration, mut done: impl FnMut(&Report) -> bool) {
    let start = Instant::now();
    loop {
        let report = pass(&app.state).await.unwrap();
        if done(&report) {
            return;
        }
        assert!(start.elapsed() < limit, "not done within {limit:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn an_alert_is_delivered_once_signed_with_the_secret_given_at_creation(pool: PgPool) {
    let app = app(pool);
    let team = new_team(&app).await;
    let receiver = Receiver::start(vec![], 200).await;
    let (id, secret) = create(
        &app,
        &team.admin.token,
        json!({ "url": receiver.url, "description": "Slack #growth" }),
    )
    .await;
    assert!(secret.starts_with("whsec_"), "{secret}");
    // Another webhook that only wants SRM alerts, and another organisation's webhook.
    let srm_only = Receiver::start(vec![], 200).await;
    create(
        &app,
        &team.owner.token,
        json!({ "url": srm_only.url, "kinds": ["srm"] }),
    )
    .await;
    let other = new_org(&app).await;
    let other_receiver = Receiver::start(vec![], 200).await;
    create(&app, &other.token, json!({ "url": other_receiver.url })).await;

    let alert = event(team.owner.org_id, AlertKind::Winner);
    assert_eq!(
        enqueue(&app, &alert).await,
        1,
        "only the subscribed webhook"
    );
    assert_eq!(
        enqueue(&app, &alert).await,
        0,
        "an event is queued once per webhook"
    );

    let report = pass(&app.state).await.unwrap();
    assert_eq!(report.delivered, 1);
    assert_eq!(
        pass(&app.state).await.unwrap(),
        Report::default(),
        "nothing more"
    );
    assert!(srm_only.received().is_empty());
    assert!(other_receiver.received().is_empty());

    let got = receiver.received();
    assert_eq!(got.len(), 1, "delivered once");
    let hit = &got[0];
    assert!(hit.signed_with(&secret), "the signature verifies");
    assert!(
        !hit.signed_with("whsec_wrong"),
        "and not with another secret"
    );
    assert_eq!(hit.header("content-type"), "application/json");
    assert_eq!(hit.header("user-agent"), "Samplit-Webhooks/1");
    assert_eq!(hit.header("samplit-event-id"), alert.id.to_string());
    let body = hit.json();
    let (x_id, x_name) = alert.experiment.clone().unwrap();
    let (site_id, _) = alert.site.clone().unwrap();
    assert_eq!(body["id"], alert.id.to_string());
    assert_eq!(body["type"], "experiment.winner");
    assert_eq!(body["organization_id"], team.owner.org_id.to_string());
    assert_eq!(body["experiment"]["id"], x_id.to_string());
    assert_eq!(body["experiment"]["name"], x_name);
    let results = format!("https://app.samplit.test/app/experiments/{x_id}/results");
    assert_eq!(body["experiment"]["url"], results);
    assert_eq!(body["site"]["id"], site_id.to_string());
    assert_eq!(body["detail"]["winner"], "B");
    assert!(
        OffsetDateTime::parse(
            body["created_at"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339
        )
        .is_ok()
    );
    let text = body["text"].as_str().unwrap();
    assert!(
        text.starts_with("Samplit: \"Checkout &lt;button&gt;\" has a winner"),
        "Slack-escaped: {text}"
    );
    assert!(
        text.ends_with(&format!(" <{results}|Open the results>")),
        "a Slack link: {text}"
    );

    // A test delivery, through the API.
    let r = app
        .post(
            &format!("/api/v1/webhooks/{id}/test"),
            Some(&team.admin.token),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    assert_eq!(r.json()["status"], "pending");
    assert_eq!(r.json()["type"], "test");
    assert_eq!(pass(&app.state).await.unwrap().delivered, 1);
    let got = receiver.received();
    assert_eq!(got.len(), 2);
    assert!(got[1].signed_with(&secret));
    let test = got[1].json();
    assert_eq!(test["type"], "test");
    assert_eq!(test["experiment"], Value::Null);
    assert!(
        test["text"]
            .as_str()
            .unwrap()
            .ends_with("<https://app.samplit.test/app/webhooks|Webhook settings>")
    );

    // The log, newest first.
    let log = deliveries(&app, &team.admin.token, id).await;
    assert_eq!(log.len(), 2);
    assert_eq!(log[0]["type"], "test");
    assert_eq!(log[1]["type"], "experiment.winner");
    assert_eq!(log[1]["event_id"], alert.id.to_string());
    for entry in &log {
        assert_eq!(entry["status"], "delivered");
        assert_eq!(entry["attempts"], 1);
        assert_eq!(entry["last_status_code"], 200);
        assert_eq!(entry["last_error"], Value::Null);
        assert!(entry["delivered_at"].is_string());
        assert_eq!(entry["next_attempt_at"], Value::Null);
    }
    let limited = app
        .get(
            &format!("/api/v1/webhooks/{id}/deliveries?limit=1"),
            Some(&team.admin.token),
        )
        .await;
    assert_eq!(limited.json().as_array().unwrap().len(), 1);
    app.get(
        &format!("/api/v1/webhooks/{id}/deliveries?limit=0"),
        Some(&team.admin.token),
    )
    .await
    .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn a_failing_receiver_is_retried_with_growing_delays_then_delivered_once(pool: PgPool) {
    let app = app(pool);
    let team = new_team(&app).await;
    let receiver = Receiver::start(vec![500, 500], 200).await;
    let (id, secret) = create(&app, &team.admin.token, json!({ "url": receiver.url })).await;
    let alert = event(team.owner.org_id, AlertKind::Srm);
    assert_eq!(enqueue(&app, &alert).await, 1);

    let mut retried = 0;
    pass_until(&app, Duration::from_secs(10), |r| {
        retried += r.retried;
        r.delivered == 1
    })
    .await;
    assert_eq!(retried, 2);
    for _ in 0..3 {
        assert_eq!(pass(&app.state).await.unwrap(), Report::default());
    }

    let got = receiver.received();
    assert_eq!(got.len(), 3, "two refusals, one success");
    for hit in &got {
        assert!(hit.signed_with(&secret));
        assert_eq!(hit.header("samplit-event-id"), alert.id.to_string());
        assert_eq!(hit.json()["type"], "experiment.srm");
    }
    // Back-off: 50 ms after the first failure, 100 ms after the second.
    let first = got[1].at - got[0].at;
    let second = got[2].at - got[1].at;
    assert!(first >= Duration::from_millis(50), "{first:?}");
    assert!(second >= Duration::from_millis(100), "{second:?}");

    let log = deliveries(&app, &team.admin.token, id).await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["status"], "delivered");
    assert_eq!(log[0]["attempts"], 3);
    assert_eq!(log[0]["last_status_code"], 200);
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn a_receiver_that_always_fails_is_given_up_after_the_give_up_time(pool: PgPool) {
    let app = TestApp::with_config(pool, config(&[("SAMPLIT_WEBHOOK_GIVE_UP", "1")]));
    let team = new_team(&app).await;
    let receiver = Receiver::start(vec![], 500).await;
    let (id, _) = create(&app, &team.admin.token, json!({ "url": receiver.url })).await;
    let started = Instant::now();
    enqueue(&app, &event(team.owner.org_id, AlertKind::GuardrailHarmed)).await;

    // While retrying, the log says pending, with the last refusal and the next attempt.
    pass(&app.state).await.unwrap();
    let log = deliveries(&app, &team.admin.token, id).await;
    assert_eq!(log[0]["status"], "pending");
    assert_eq!(log[0]["attempts"], 1);
    assert!(log[0]["next_attempt_at"].is_string());

    pass_until(&app, Duration::from_secs(10), |r| r.failed == 1).await;
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "not before the give-up time"
    );
    let attempts = receiver.received().len();
    assert!(attempts >= 2, "retried before giving up: {attempts}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..3 {
        assert_eq!(pass(&app.state).await.unwrap(), Report::default());
    }
    assert_eq!(receiver.received().len(), attempts, "no more attempts");

    let log = deliveries(&app, &team.admin.token, id).await;
    assert_eq!(log[0]["status"], "failed");
    assert_eq!(log[0]["attempts"], attempts);
    assert_eq!(log[0]["last_status_code"], 500);
    assert_eq!(log[0]["next_attempt_at"], Value::Null);
    let error = log[0]["last_error"].as_str().unwrap();
    assert!(error.starts_with("HTTP 500: receiver says no"), "{error}");
    assert!(error.chars().count() <= 300, "an excerpt: {}", error.len());
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn a_rotated_secret_replaces_the_old_one(pool: PgPool) {
    let app = app(pool);
    let team = new_team(&app).await;
    let receiver = Receiver::start(vec![], 200).await;
    let (id, old) = create(&app, &team.admin.token, json!({ "url": receiver.url })).await;

    let r = app
        .post(
            &format!("/api/v1/webhooks/{id}/rotate-secret"),
            Some(&team.admin.token),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.headers.get("cache-control").unwrap(), "no-store");
    let new = r.json()["secret"].as_str().unwrap().to_owned();
    assert_eq!(r.json()["secret_version"], 2);
    assert_ne!(new, old);
    let listed = app.get("/api/v1/webhooks", Some(&team.admin.token)).await;
    assert!(
        !listed.text().contains(&new) && !listed.text().contains(&old),
        "a list never shows a secret"
    );

    app.post(
        &format!("/api/v1/webhooks/{id}/test"),
        Some(&team.admin.token),
        json!({}),
    )
    .await;
    assert_eq!(pass(&app.state).await.unwrap().delivered, 1);
    let got = receiver.received();
    assert!(got[0].signed_with(&new), "signed with the new secret");
    assert!(
        !got[0].signed_with(&old),
        "the old secret no longer verifies"
    );
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn webhook_urls_are_checked_when_saved(pool: PgPool) {
    // Without the development switch.
    let app = TestApp::with_config(
        pool.clone(),
        config(&[("SAMPLIT_DEV_ALLOW_LOCAL_DOMAINS", "false")]),
    );
    let team = new_team(&app).await;
    let long = format!("https://hooks.example.org/{}", "a".repeat(2048));
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            json!({ "url": "http://example.com/hook" }),
            "url",
            "http without the development switch",
        ),
        (
            json!({ "url": "https://10.0.0.1/hook" }),
            "url",
            "a private address",
        ),
        (
            json!({ "url": "https://127.0.0.1/hook" }),
            "url",
            "loopback without the development switch",
        ),
        (
            json!({ "url": "https://[fd00::1]/hook" }),
            "url",
            "a unique-local IPv6 address",
        ),
        (
            json!({ "url": "https://169.254.169.254/latest" }),
            "url",
            "the metadata address",
        ),
        (
            json!({ "url": "https://user:pw@hooks.example.org/x" }),
            "url",
            "credentials in the URL",
        ),
        (
            json!({ "url": "https://localhost/hook" }),
            "url",
            "a development name",
        ),
        (json!({ "url": long }), "url", "longer than 2048 characters"),
        (
            json!({ "url": "ftp://hooks.example.org/x" }),
            "url",
            "not https",
        ),
        (json!({ "url": "hooks" }), "url", "not a URL"),
        (json!({}), "url", "missing"),
        (
            json!({ "url": "https://hooks.example.org/x", "kinds": [] }),
            "kinds",
            "no kind",
        ),
        (
            json!({ "url": "https://hooks.example.org/x", "description": "a\u{0}b" }),
            "description",
            "a control character",
        ),
    ];
    for (body, field, what) in cases {
        let r = app
            .post("/api/v1/webhooks", Some(&team.admin.token), body)
            .await;
        let problem = r.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(problem["errors"][0]["field"], field, "{what}: {problem}");
    }
    let r = app
        .post(
            "/api/v1/webhooks",
            Some(&team.admin.token),
            json!({ "url": "https://hooks.example.org/x", "kinds": ["nope"] }),
        )
        .await;
    assert!(r.status.is_client_error(), "an unknown kind: {}", r.status);

    let (id, _) = create(
        &app,
        &team.admin.token,
        json!({ "url": "https://hooks.example.org/x", "kinds": ["winner", "srm", "winner"] }),
    )
    .await;
    let got = app
        .get(&format!("/api/v1/webhooks/{id}"), Some(&team.admin.token))
        .await
        .json();
    assert_eq!(got["kinds"], json!(["winner", "srm"]));
    assert_eq!(got["enabled"], true);
    let r = app
        .patch(
            &format!("/api/v1/webhooks/{id}"),
            Some(&team.admin.token),
            json!({ "url": "https://192.168.1.10/x" }),
        )
        .await;
    let problem = r.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(problem["errors"][0]["field"], "url");

    // With the switch, private addresses stay refused.
    let dev = TestApp::with_config(pool, config(&[]));
    let r = dev
        .post(
            "/api/v1/webhooks",
            Some(&team.admin.token),
            json!({ "url": "http://10.1.2.3/hook" }),
        )
        .await;
    r.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn addresses_are_checked_again_when_sending(pool: PgPool) {
    // Saved while loopback was allowed; sent by a server where it is not.
    let dev = app(pool.clone());
    let team = new_team(&dev).await;
    let receiver = Receiver::start(vec![], 200).await;
    let (id, _) = create(&dev, &team.admin.token, json!({ "url": receiver.url })).await;
    enqueue(&dev, &event(team.owner.org_id, AlertKind::Winner)).await;
    let strict = TestApp::with_config(
        pool,
        config(&[("SAMPLIT_DEV_ALLOW_LOCAL_DOMAINS", "false")]),
    );
    let report = pass(&strict.state).await.unwrap();
    assert_eq!(report.retried, 1);
    assert!(receiver.received().is_empty(), "nothing was sent");
    let log = deliveries(&dev, &team.admin.token, id).await;
    assert_eq!(log[0]["status"], "pending");
    assert_eq!(log[0]["last_status_code"], Value::Null);
    let error = log[0]["last_error"].as_str().unwrap();
    assert_eq!(
        error, "a webhook URL must be https",
        "plain http to loopback needs the development switch"
    );
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn a_disabled_or_deleted_webhook_receives_nothing(pool: PgPool) {
    let app = app(pool);
    let team = new_team(&app).await;
    let receiver = Receiver::start(vec![], 200).await;
    let (id, _) = create(&app, &team.admin.token, json!({ "url": receiver.url })).await;
    let uri = format!("/api/v1/webhooks/{id}");

    // Queued, then disabled: the pending delivery waits.
    enqueue(&app, &event(team.owner.org_id, AlertKind::Winner)).await;
    let r = app
        .patch(
            &uri,
            Some(&team.admin.token),
            json!({ "enabled": false, "description": "paused" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["enabled"], false);
    assert!(r.json()["disabled_at"].is_string());
    assert_eq!(r.json()["description"], "paused");
    assert_eq!(pass(&app.state).await.unwrap(), Report::default());
    assert_eq!(
        enqueue(&app, &event(team.owner.org_id, AlertKind::Winner)).await,
        0,
        "a disabled webhook gets no new deliveries"
    );
    app.post(&format!("{uri}/test"), Some(&team.admin.token), json!({}))
        .await
        .assert_problem(StatusCode::CONFLICT, "webhook_disabled");
    assert!(receiver.received().is_empty());

    // Enabled again: the waiting delivery goes.
    let r = app
        .patch(&uri, Some(&team.admin.token), json!({ "enabled": true }))
        .await;
    assert_eq!(r.json()["disabled_at"], Value::Null);
    assert_eq!(pass(&app.state).await.unwrap().delivered, 1);

    // Deleted: its pending deliveries go with it.
    enqueue(&app, &event(team.owner.org_id, AlertKind::Srm)).await;
    let r = app.delete(&uri, Some(&team.admin.token)).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(pass(&app.state).await.unwrap(), Report::default());
    assert_eq!(receiver.received().len(), 1);
    app.get(&uri, Some(&team.admin.token))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");

    let actions: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM audit_log WHERE org_id = $1 AND target_id = $2 ORDER BY seq",
    )
    .bind(team.owner.org_id)
    .bind(id)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        actions,
        [
            "webhook.created",
            "webhook.updated",
            "webhook.updated",
            "webhook.deleted"
        ]
    );
    let entries: Vec<String> = sqlx::query_scalar(
        "SELECT entry::text FROM audit_log WHERE org_id = $1 AND target_id = $2",
    )
    .bind(team.owner.org_id)
    .bind(id)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert!(
        entries.iter().all(|e| !e.contains("/hook")),
        "the audit trail keeps the host, not the URL: {entries:?}"
    );
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn an_organisation_has_at_most_ten_webhooks(pool: PgPool) {
    let app = app(pool);
    let owner = new_org(&app).await;
    for i in 0..10 {
        create(
            &app,
            &owner.token,
            json!({ "url": format!("https://hooks.example.org/{i}") }),
        )
        .await;
    }
    let r = app
        .post(
            "/api/v1/webhooks",
            Some(&owner.token),
            json!({ "url": "https://hooks.example.org/x" }),
        )
        .await;
    let problem = r.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "quota_exceeded");
    assert_eq!(problem["quota"]["name"], "webhooks");
    assert_eq!(problem["quota"]["limit"], 10);
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn without_the_webhook_secret_webhooks_are_off(pool: PgPool) {
    let app = TestApp::with_config(pool, test_config_with(&[]));
    let owner = new_org(&app).await;
    let id = Uuid::new_v4();
    let routes = [
        (Method::GET, "/api/v1/webhooks".to_owned(), None),
        (
            Method::POST,
            "/api/v1/webhooks".to_owned(),
            Some(json!({ "url": "https://hooks.example.org/x" })),
        ),
        (Method::GET, format!("/api/v1/webhooks/{id}"), None),
        (
            Method::PATCH,
            format!("/api/v1/webhooks/{id}"),
            Some(json!({})),
        ),
        (Method::DELETE, format!("/api/v1/webhooks/{id}"), None),
        (
            Method::POST,
            format!("/api/v1/webhooks/{id}/rotate-secret"),
            None,
        ),
        (Method::POST, format!("/api/v1/webhooks/{id}/test"), None),
        (
            Method::GET,
            format!("/api/v1/webhooks/{id}/deliveries"),
            None,
        ),
    ];
    for (method, uri, body) in routes {
        app.call(method.clone(), &uri, Some(&owner.token), body)
            .await
            .assert_problem(StatusCode::SERVICE_UNAVAILABLE, "webhooks_not_configured");
    }
    assert_eq!(pass(&app.state).await.unwrap(), Report::default());
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn only_admins_and_owners_manage_webhooks_and_other_organisations_ids_are_not_found(
    pool: PgPool,
) {
    let app = app(pool);
    let team = new_team(&app).await;
    let (id, _) = create(
        &app,
        &team.owner.token,
        json!({ "url": "https://hooks.example.org/a" }),
    )
    .await;
    let other = new_org(&app).await;
    let (foreign, _) = create(
        &app,
        &other.token,
        json!({ "url": "https://hooks.example.org/b" }),
    )
    .await;

    let routes = |id: Uuid| {
        vec![
            (Method::GET, format!("/api/v1/webhooks/{id}"), None),
            (
                Method::PATCH,
                format!("/api/v1/webhooks/{id}"),
                Some(json!({ "description": "x" })),
            ),
            (
                Method::POST,
                format!("/api/v1/webhooks/{id}/rotate-secret"),
                None,
            ),
            (Method::POST, format!("/api/v1/webhooks/{id}/test"), None),
            (
                Method::GET,
                format!("/api/v1/webhooks/{id}/deliveries"),
                None,
            ),
            (Method::DELETE, format!("/api/v1/webhooks/{id}"), None),
        ]
    };
    let mut all = routes(id);
    all.push((Method::GET, "/api/v1/webhooks".to_owned(), None));
    all.push((
        Method::POST,
        "/api/v1/webhooks".to_owned(),
        Some(json!({ "url": "https://hooks.example.org/c" })),
    ));

    for (who, token) in [
        ("viewer", &team.viewer.token),
        ("editor", &team.editor.token),
    ] {
        for (method, uri, body) in &all {
            let r = app
                .call(method.clone(), uri, Some(token), body.clone())
                .await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{who} {method} {uri}");
        }
    }
    for (method, uri, body) in &all {
        let r = app.call(method.clone(), uri, None, body.clone()).await;
        r.assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    for (method, uri, body) in routes(foreign) {
        app.call(method.clone(), &uri, Some(&team.owner.token), body)
            .await
            .assert_problem(StatusCode::NOT_FOUND, "not_found");
    }
    // The other organisation's webhook is untouched and not listed here.
    let listed = app
        .get("/api/v1/webhooks", Some(&team.admin.token))
        .await
        .json();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["id"], id.to_string());
    let theirs = app
        .get(&format!("/api/v1/webhooks/{foreign}"), Some(&other.token))
        .await
        .json();
    assert_eq!(theirs["secret_version"], 1);
    assert_eq!(theirs["url"], "https://hooks.example.org/b");

    // An admin API key manages webhooks like an admin.
    let (_, key) = create_api_key(&app, &team.admin.token, "automation", Role::Admin).await;
    let (made, _) = create(&app, &key, json!({ "url": "https://hooks.example.org/k" })).await;
    let r = app
        .patch(
            &format!("/api/v1/webhooks/{made}"),
            Some(&key),
            json!({ "kinds": ["publish_failing"] }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["kinds"], json!(["publish_failing"]));
    let r = app
        .delete(&format!("/api/v1/webhooks/{made}"), Some(&key))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
}
