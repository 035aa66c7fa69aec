//! The snapshot publisher, driven tick by tick against a fake edge: an axum server on
//! 127.0.0.1:0 that verifies every pushed snapshot with the engine and records it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::put;
use samplit_control_plane::{AppState, config, publisher};
use samplit_engine::routing::{self, Route, SignedDoc, SiteTombstone};
use samplit_engine::snapshot::{self, SignedSnapshot, Snapshot};
use serde_json::json;
use sqlx::PgPool;

use crate::domains::mark_verified;
use crate::experiments::{act, experiment_body};
use crate::helpers::{
    Member, TEST_INGEST_SECRET, TEST_JWT_SECRET, TEST_SNAPSHOT_SECRET, TestApp, new_team,
};
use crate::sites::create_site;

#[derive(Default)]
struct EdgeLog {
    /// (site key from the path, verified snapshot)
    pushes: Vec<(String, Snapshot)>,
    /// Requests answered 503 before succeeding (counts down).
    fail_next: usize,
    requests: usize,
    request_times: Vec<Instant>,
    /// When set, every request is answered with this status (an edge that keeps failing
    /// or keeps refusing).
    answer_with: Option<StatusCode>,
    /// Verified routes received, in order.
    routes: Vec<Route>,
    /// Verified site tombstones received, in order.
    tombstones: Vec<SiteTombstone>,
}

struct FakeEdge {
    url: String,
    log: Arc<Mutex<EdgeLog>>,
}

impl FakeEdge {
    async fn start() -> Self {
        let log = Arc::new(Mutex::new(EdgeLog::default()));
        let app = axum::Router::new()
            .route("/v1/internal/snapshots/{site_key}", put(receive))
            .route("/v1/internal/routes/{host}", put(receive_route))
            .route("/v1/internal/tombstones/{site_key}", put(receive_tombstone))
            .with_state(log.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, log }
    }

    fn pushes(&self) -> Vec<(String, Snapshot)> {
        self.log.lock().unwrap().pushes.clone()
    }
}

async fn receive(
    State(log): State<Arc<Mutex<EdgeLog>>>,
    Path(site_key): Path<String>,
    axum::Json(signed): axum::Json<SignedSnapshot>,
) -> StatusCode {
    let mut log = log.lock().unwrap();
    log.requests += 1;
    log.request_times.push(Instant::now());
    if let Some(status) = log.answer_with {
        return status;
    }
    if log.fail_next > 0 {
        log.fail_next -= 1;
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let held = log
        .pushes
        .iter()
        .filter(|(k, _)| *k == site_key)
        .map(|(_, s)| s.version)
        .max();
    match snapshot::verify(&signed, TEST_SNAPSHOT_SECRET.as_bytes(), held) {
        Ok(s) if s.site_key == site_key => {
            log.pushes.push((site_key, s));
            StatusCode::NO_CONTENT
        }
        Ok(_) => StatusCode::BAD_REQUEST,
        Err(_) => StatusCode::UNAUTHORIZED,
    }
}

async fn receive_route(
    State(log): State<Arc<Mutex<EdgeLog>>>,
    Path(host): Path<String>,
    axum::Json(signed): axum::Json<SignedDoc>,
) -> StatusCode {
    let mut log = log.lock().unwrap();
    log.requests += 1;
    if log.fail_next > 0 {
        log.fail_next -= 1;
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    match routing::verify_route(&signed, TEST_SNAPSHOT_SECRET.as_bytes(), None) {
        Ok(r) if r.host == host => {
            log.routes.push(r);
            StatusCode::OK
        }
        Ok(_) => StatusCode::BAD_REQUEST,
        Err(_) => StatusCode::UNAUTHORIZED,
    }
}

async fn receive_tombstone(
    State(log): State<Arc<Mutex<EdgeLog>>>,
    Path(site_key): Path<String>,
    axum::Json(signed): axum::Json<SignedDoc>,
) -> StatusCode {
    let mut log = log.lock().unwrap();
    log.requests += 1;
    if log.fail_next > 0 {
        log.fail_next -= 1;
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    match routing::verify_tombstone(&signed, TEST_SNAPSHOT_SECRET.as_bytes(), None) {
        Ok(t) if t.site_key == site_key => {
            log.tombstones.push(t);
            StatusCode::OK
        }
        Ok(_) => StatusCode::BAD_REQUEST,
        Err(_) => StatusCode::UNAUTHORIZED,
    }
}

fn publishing_app(pool: PgPool, edge_url: &str) -> TestApp {
    publishing_app_with(pool, edge_url, &[])
}

fn publishing_app_with(pool: PgPool, edge_url: &str, extra: &[(&str, &str)]) -> TestApp {
    let edge_url = edge_url.to_owned();
    let extra: Vec<(String, String)> = extra
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let config = config::from_lookup(move |name| match name {
        _ if extra.iter().any(|(k, _)| k == name) => extra
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone()),
        "DATABASE_URL" => Some("postgres://unused-in-tests".to_owned()),
        "SAMPLIT_JWT_SECRET" => Some(TEST_JWT_SECRET.to_owned()),
        "SAMPLIT_INGEST_SECRET" => Some(TEST_INGEST_SECRET.to_owned()),
        "SAMPLIT_SNAPSHOT_SECRET" => Some(TEST_SNAPSHOT_SECRET.to_owned()),
        "SAMPLIT_EDGE_URL" => Some(edge_url.clone()),
        _ => None,
    })
    .unwrap();
    TestApp::with_config(pool, config)
}

fn fast_retry() -> publisher::RetryPolicy {
    publisher::RetryPolicy {
        attempts: 4,
        base_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(400),
    }
}

async fn create_experiment(app: &TestApp, editor: &Member, site_id: &str) -> serde_json::Value {
    let resp = app
        .post(
            &format!("/api/v1/sites/{site_id}/experiments"),
            Some(&editor.token),
            experiment_body(),
        )
        .await;
    assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.text());
    resp.json()
}

async fn tick(state: &AppState) -> publisher::TickReport {
    let client = publisher::http_client().unwrap();
    publisher::tick(state, &client).await.unwrap()
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn a_signed_snapshot_carries_only_running_experiments_with_arms_and_propensities(
    pool: PgPool,
) {
    let edge = FakeEdge::start().await;
    let app = publishing_app(pool.clone(), &edge.url);
    let team = new_team(&app).await;
    let site = create_site(
        &app,
        &team.admin.token,
        &["shop.example", "www.shop.example"],
    )
    .await;
    let site_id = site["id"].as_str().unwrap();
    // Only verified hosts reach the snapshot (crate::domains covers the proofs).
    mark_verified(&pool, site_id, "shop.example").await;
    mark_verified(&pool, site_id, "www.shop.example").await;
    let running = create_experiment(&app, &team.editor, site_id).await;
    let paused = create_experiment(&app, &team.editor, site_id).await;
    let _draft = create_experiment(&app, &team.editor, site_id).await;
    for (exp, actions) in [
        (&running, &["start"][..]),
        (&paused, &["start", "pause"][..]),
    ] {
        for action in actions {
            let r = act(&app, &team.editor, exp["id"].as_str().unwrap(), action).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        }
    }
    let exclusions = app
        .call_with(
            axum::http::Method::PUT,
            &format!("/api/v1/sites/{site_id}/exclusions"),
            Some(&team.admin.token),
            Some(json!([{ "type": "bots" }])),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(exclusions.status, StatusCode::OK, "{}", exclusions.text());

    let report = tick(&app.state).await;
    assert!(report.leader);
    assert_eq!(report.published.len(), 1, "{report:?}");
    let pushes = edge.pushes();
    assert_eq!(pushes.len(), 1);
    let (key, snap) = &pushes[0];
    assert_eq!(key, site["site_key"].as_str().unwrap());
    assert_eq!(snap.version, 1);
    assert_eq!(
        snap.allowed_origins,
        vec!["https://shop.example", "https://www.shop.example"]
    );
    assert_eq!(snap.exclusions.len(), 1);
    assert_eq!(snap.experiments.len(), 1, "only the running experiment");
    let exp = &snap.experiments[0];
    assert_eq!(exp.id, running["id"].as_str().unwrap());
    assert_eq!(exp.seed.as_str(), exp.id);
    assert_eq!(exp.elements[0].selector, "#hero h1");
    assert_eq!(exp.elements[0].variants[1].changes.len(), 1);
    let unit = &exp.units[0];
    let arm_ids: Vec<&str> = unit.arms.iter().map(|a| a.id.as_str()).collect();
    let api_arms: Vec<&str> = running["arms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(arm_ids, api_arms);
    let propensities: Vec<f64> = unit.arms.iter().map(|a| a.propensity).collect();
    assert_eq!(propensities, vec![0.5, 0.5], "equal weights");
    assert_eq!(unit.arms[1].variants, vec![1]);

    // The publication is listed and audited.
    let pubs = app
        .get(
            &format!("/api/v1/sites/{site_id}/publications"),
            Some(&team.viewer.token),
        )
        .await
        .json();
    assert_eq!(pubs[0]["version"], 1);
    assert_eq!(pubs[0]["status"], "published");
    assert_eq!(pubs[0]["attempts"], 1);
    assert_eq!(
        pubs[0]["weights"][0]["units"][0]["arms"][0]["propensity"],
        0.5
    );
    let entry: String = sqlx::query_scalar(
        "SELECT entry FROM audit_log WHERE action = 'snapshot.publish' AND target_id = $1::uuid",
    )
    .bind(site_id)
    .fetch_one(&pool)
    .await
    .unwrap();
    let entry: serde_json::Value = serde_json::from_str(&entry).unwrap();
    assert_eq!(entry["after"]["version"], 1);
    assert_eq!(entry["after"]["hash"], pubs[0]["hash"]);
    assert_eq!(entry["actor_label"], "publisher");
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn versions_increase_and_unchanged_sites_are_skipped(pool: PgPool) {
    let edge = FakeEdge::start().await;
    let app = publishing_app(pool, &edge.url);
    let team = new_team(&app).await;
    let site = create_site(&app, &team.admin.token, &["shop.example"]).await;
    let site_id = site["id"].as_str().unwrap();
    let exp = create_experiment(&app, &team.editor, site_id).await;
    let id = exp["id"].as_str().unwrap();

    assert_eq!(
        tick(&app.state).await.published.len(),
        1,
        "first snapshot: no experiments"
    );
    let again = tick(&app.state).await;
    assert_eq!(
        (again.published.len(), again.unchanged),
        (0, 1),
        "nothing changed"
    );
    // A draft edit does not change what the edge runs.
    let etag = app
        .get(
            &format!("/api/v1/experiments/{id}"),
            Some(&team.editor.token),
        )
        .await
        .etag();
    app.call_with(
        axum::http::Method::PATCH,
        &format!("/api/v1/experiments/{id}"),
        Some(&team.editor.token),
        Some(json!({ "name": "renamed" })),
        &[("if-match", &etag)],
    )
    .await;
    assert_eq!(tick(&app.state).await.unchanged, 1);

    assert_eq!(
        act(&app, &team.editor, id, "start").await.status,
        StatusCode::OK
    );
    let started = tick(&app.state).await;
    assert_eq!(
        started.published,
        vec![(uuid::Uuid::parse_str(site_id).unwrap(), 2)]
    );
    assert_eq!(
        act(&app, &team.editor, id, "pause").await.status,
        StatusCode::OK
    );
    tick(&app.state).await;

    let versions: Vec<(u64, usize)> = edge
        .pushes()
        .iter()
        .map(|(_, s)| (s.version, s.experiments.len()))
        .collect();
    assert_eq!(versions, vec![(1, 0), (2, 1), (3, 0)]);
    let pubs = app
        .get(
            &format!("/api/v1/sites/{site_id}/publications"),
            Some(&team.viewer.token),
        )
        .await
        .json();
    let listed: Vec<i64> = pubs
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["version"].as_i64().unwrap())
        .collect();
    assert_eq!(listed, vec![3, 2, 1], "latest first");
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn a_failing_edge_is_retried_with_exponential_backoff(pool: PgPool) {
    let edge = FakeEdge::start().await;
    let app = publishing_app(pool.clone(), &edge.url);
    let team = new_team(&app).await;
    let site = create_site(&app, &team.admin.token, &["shop.example"]).await;
    let site_id = site["id"].as_str().unwrap();
    let client = publisher::http_client().unwrap();

    edge.log.lock().unwrap().fail_next = 2;
    let report = publisher::tick_with(&app.state, &client, fast_retry())
        .await
        .unwrap();
    assert_eq!(report.published.len(), 1, "{report:?}");
    let times = edge.log.lock().unwrap().request_times.clone();
    assert_eq!(times.len(), 3, "two 503s, then success");
    assert!(times[1] - times[0] >= Duration::from_millis(50));
    assert!(
        times[2] - times[1] >= Duration::from_millis(100),
        "the wait doubles"
    );
    let attempts: i32 =
        sqlx::query_scalar("SELECT attempts FROM snapshot_publications WHERE site_id = $1::uuid")
            .bind(site_id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(attempts, 3);

    // An edge that stays down: bounded tries, recorded as failed, retried next tick.
    let exp = create_experiment(&app, &team.editor, site_id).await;
    act(&app, &team.editor, exp["id"].as_str().unwrap(), "start").await;
    edge.log.lock().unwrap().fail_next = 100;
    let before = edge.log.lock().unwrap().requests;
    let down = publisher::tick_with(&app.state, &client, fast_retry())
        .await
        .unwrap();
    assert_eq!(down.failed.len(), 1, "{down:?}");
    assert_eq!(
        edge.log.lock().unwrap().requests - before,
        4,
        "at most 4 tries"
    );
    edge.log.lock().unwrap().fail_next = 0;
    // The failed site backs off for one publish interval: let it pass.
    time_passes(&pool, 15).await;
    let recovered = publisher::tick_with(&app.state, &client, fast_retry())
        .await
        .unwrap();
    assert_eq!(recovered.published.len(), 1, "{recovered:?}");
    let rows: Vec<(i64, String)> = sqlx::query_as(
        "SELECT version, status FROM snapshot_publications WHERE site_id = $1::uuid ORDER BY version",
    )
    .bind(site_id)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        rows,
        vec![
            (1, "published".to_owned()),
            (2, "failed".to_owned()),
            (3, "published".to_owned())
        ]
    );
    let publishes: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'snapshot.publish'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(publishes, 2, "only successful publications are audited");
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn only_one_of_two_publishers_publishes(pool: PgPool) {
    let edge = FakeEdge::start().await;
    let first = publishing_app(pool.clone(), &edge.url);
    let second = publishing_app(pool.clone(), &edge.url);
    let team = new_team(&first).await;
    for _ in 0..3 {
        create_site(&first, &team.admin.token, &["shop.example"]).await;
    }
    let client = publisher::http_client().unwrap();
    let (a, b) = tokio::join!(
        publisher::tick(&first.state, &client),
        publisher::tick(&second.state, &client)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.published.len() + b.published.len(), 3, "{a:?} {b:?}");
    assert_eq!(edge.pushes().len(), 3, "each site pushed once");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM snapshot_publications")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 3);

    // While another replica holds the lock, a tick does nothing at all.
    let mut holder = pool.acquire().await.unwrap();
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(publisher::LOCK_KEY)
        .fetch_one(&mut *holder)
        .await
        .unwrap();
    assert!(locked);
    create_site(&first, &team.admin.token, &["new.example"]).await;
    let idle = publisher::tick(&second.state, &client).await.unwrap();
    assert!(!idle.leader);
    assert!(idle.published.is_empty());
    assert_eq!(edge.pushes().len(), 3);
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn an_independent_thompson_experiment_gets_one_unit_per_element(pool: PgPool) {
    let edge = FakeEdge::start().await;
    let app = publishing_app(pool, &edge.url);
    let team = new_team(&app).await;
    let site = create_site(&app, &team.admin.token, &["shop.example"]).await;
    let mut body = experiment_body();
    body["kind"] = json!("independent");
    body["allocator"] = json!({ "kind": "thompson", "min_exposures": 50, "floor": 0.02 });
    body["url_rules"] = json!([{ "match": "prefix", "pattern": "/products", "include": true }]);
    body["elements"] = json!([
        { "selector": "h1", "variants": [{ "name": "A" }, { "name": "B" }] },
        { "selector": ".cta", "variants": [{ "name": "X" }, { "name": "Y" }, { "name": "Z" }] }
    ]);
    let resp = app
        .post(
            &format!("/api/v1/sites/{}/experiments", site["id"].as_str().unwrap()),
            Some(&team.editor.token),
            body,
        )
        .await;
    assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.text());
    let exp = resp.json();
    assert_eq!(
        act(&app, &team.editor, exp["id"].as_str().unwrap(), "start")
            .await
            .status,
        StatusCode::OK
    );

    assert_eq!(tick(&app.state).await.published.len(), 1);
    let (_, snap) = edge.pushes().pop().unwrap();
    let e = &snap.experiments[0];
    assert_eq!(e.url_rules.len(), 1);
    assert_eq!(e.units.len(), 2, "one allocation unit per element");
    for (unit, element) in e.units.iter().zip(&e.elements) {
        assert_eq!(unit.element_id.as_deref(), Some(element.id.as_str()));
        assert_eq!(unit.id, element.id);
        let k = unit.arms.len() as f64;
        // No exposures yet: burn-in, so every arm gets 1/k.
        assert!(
            unit.arms
                .iter()
                .all(|a| (a.propensity - 1.0 / k).abs() < 1e-12),
            "{unit:?}"
        );
        match &unit.allocator {
            samplit_engine::allocator::Allocator::Thompson(t) => {
                assert_eq!((t.min_exposures(), t.floor()), (50, 0.02));
            }
            other => panic!("expected Thompson, got {other:?}"),
        }
    }
    let variants: Vec<Vec<usize>> = e.units[1].arms.iter().map(|a| a.variants.clone()).collect();
    assert_eq!(
        variants,
        vec![vec![0], vec![1], vec![2]],
        "indices into the unit's element"
    );
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn a_factorial_experiment_publishes_every_combination_with_product_weights(pool: PgPool) {
    let edge = FakeEdge::start().await;
    let app = publishing_app(pool, &edge.url);
    let team = new_team(&app).await;
    let site = create_site(&app, &team.admin.token, &["shop.example"]).await;
    let mut body = experiment_body();
    body["kind"] = json!("factorial");
    body["elements"] = json!([
        { "selector": "h1", "variants": [{ "name": "A" }, { "name": "B" }] },
        { "selector": ".cta", "variants": [{ "name": "X", "weight": 1 }, { "name": "Y", "weight": 3 }] }
    ]);
    let exp = app
        .post(
            &format!("/api/v1/sites/{}/experiments", site["id"].as_str().unwrap()),
            Some(&team.editor.token),
            body,
        )
        .await
        .json();
    assert_eq!(
        act(&app, &team.editor, exp["id"].as_str().unwrap(), "start")
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(tick(&app.state).await.published.len(), 1);
    let (_, snap) = edge.pushes().pop().unwrap();
    let unit = &snap.experiments[0].units[0];
    assert!(unit.element_id.is_none());
    let combos: Vec<Vec<usize>> = unit.arms.iter().map(|a| a.variants.clone()).collect();
    assert_eq!(combos, vec![vec![0, 0], vec![0, 1], vec![1, 0], vec![1, 1]]);
    let p: Vec<f64> = unit.arms.iter().map(|a| a.propensity).collect();
    assert_eq!(
        p,
        vec![0.125, 0.375, 0.125, 0.375],
        "each element's split applied independently"
    );
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn a_tick_cancelled_mid_way_does_not_leave_the_lock_held(pool: PgPool) {
    let edge = FakeEdge::start().await;
    // A pool without the test harness's 1 s idle timeout, which would close a leaked
    // connection (and so release its lock) by itself and hide the bug under test.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(5)
        .connect_with((*pool.connect_options()).clone())
        .await
        .unwrap();
    let app = publishing_app(pool.clone(), &edge.url);
    let team = new_team(&app).await;
    create_site(&app, &team.admin.token, &["shop.example"]).await;
    edge.log.lock().unwrap().fail_next = 100;
    let state = app.state.clone();
    let slow = publisher::RetryPolicy {
        attempts: 10,
        base_delay: Duration::from_secs(5),
        max_delay: Duration::from_secs(5),
    };
    let task = tokio::spawn(async move {
        let client = publisher::http_client().unwrap();
        publisher::tick_with(&state, &client, slow).await
    });
    // Wait until the tick is inside its backoff (it has pushed once), then cancel it.
    let deadline = Instant::now() + Duration::from_secs(5);
    while edge.log.lock().unwrap().requests == 0 {
        assert!(Instant::now() < deadline, "the tick never pushed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    task.abort();
    let _ = task.await;

    // The session that held the lock is gone, so another replica — a connection outside
    // this pool (a session that held the lock could take it again re-entrantly) — can
    // take it.
    use sqlx::Connection;
    let mut other = sqlx::PgConnection::connect_with(&pool.connect_options())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(publisher::LOCK_KEY)
            .fetch_one(&mut other)
            .await
            .unwrap();
        if got {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the lock is still held after cancellation"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn posteriors_come_from_the_ingested_aggregates_and_move_traffic_to_the_better_arm(
    pool: PgPool,
) {
    use crate::fixtures::{Site, batch, conversion, exposure, ingest_ok};

    let edge = FakeEdge::start().await;
    let app = publishing_app(pool, &edge.url);
    let team = new_team(&app).await;
    let site = create_site(&app, &team.admin.token, &["shop.example"]).await;
    let mut body = experiment_body();
    body["allocator"] = json!({ "kind": "thompson", "min_exposures": 50, "floor": 0.01 });
    let resp = app
        .post(
            &format!("/api/v1/sites/{}/experiments", site["id"].as_str().unwrap()),
            Some(&team.editor.token),
            body,
        )
        .await;
    assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.text());
    let exp = resp.json();
    let exp_id = exp["id"].as_str().unwrap();
    assert_eq!(
        act(&app, &team.editor, exp_id, "start").await.status,
        StatusCode::OK
    );
    assert_eq!(tick(&app.state).await.published.len(), 1);
    let (_, first) = edge.pushes().pop().unwrap();
    let arms: Vec<String> = first.experiments[0].units[0]
        .arms
        .iter()
        .map(|a| a.id.clone())
        .collect();
    assert_eq!(arms.len(), 2);

    // 100 visitors per arm through the real ingestion: 2 converters on the first arm,
    // 20 on the second ("signup" is the primary goal's event).
    let ingest_site = Site {
        id: site["id"].as_str().unwrap().parse().unwrap(),
        key: site["site_key"].as_str().unwrap().to_owned(),
    };
    let exp_uuid = exp_id.parse().unwrap();
    let mut items = Vec::new();
    for (a, arm) in arms.iter().enumerate() {
        let converters = if a == 0 { 2 } else { 20 };
        for v in 0..100 {
            let visitor = format!("v-{a}-{v}");
            items.push(exposure(
                &format!("x-{visitor}"),
                &ingest_site,
                exp_uuid,
                arm.parse().unwrap(),
                &visitor,
            ));
            if v < converters {
                items.push(conversion(
                    &format!("c-{visitor}"),
                    &ingest_site,
                    &visitor,
                    "signup",
                    None,
                ));
            }
        }
    }
    let report = ingest_ok(&app, &batch(items)).await;
    assert_eq!(report["rejected"], json!([]), "{report}");

    assert_eq!(
        tick(&app.state).await.published.len(),
        1,
        "new counts change the snapshot"
    );
    let (_, second) = edge.pushes().pop().unwrap();
    assert_eq!(second.version, first.version + 1);
    let unit = &second.experiments[0].units[0];
    let counts: Vec<(u64, u64)> = unit
        .arms
        .iter()
        .map(|a| (a.exposures, a.conversions))
        .collect();
    assert_eq!(counts, vec![(100, 2), (100, 20)]);
    // Burn-in (50 per arm) is over: Thompson sends nearly everything to the second arm,
    // but the first keeps its 1% floor.
    assert!(unit.arms[1].propensity > 0.98, "{unit:?}");
    assert!(unit.arms[0].propensity >= 0.01 - 1e-12, "{unit:?}");
}

// ---------------------------------------------------------------------------------------
// Back-pressure (issue 10, hole 6): failing sites back off, refused ones wait for a change.

/// Moves every recorded publication `secs` into the past, as if that much time passed.
async fn time_passes(pool: &PgPool, secs: i64) {
    sqlx::query(
        "UPDATE snapshot_publications SET published_at = published_at - make_interval(secs => $1)",
    )
    .bind(secs as f64)
    .execute(pool)
    .await
    .unwrap();
}

fn requests(edge: &FakeEdge) -> usize {
    edge.log.lock().unwrap().requests
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn a_site_whose_pushes_keep_failing_backs_off_exponentially(pool: PgPool) {
    let edge = FakeEdge::start().await;
    edge.log.lock().unwrap().answer_with = Some(StatusCode::INTERNAL_SERVER_ERROR);
    let app = publishing_app(pool.clone(), &edge.url);
    let team = new_team(&app).await;
    create_site(&app, &team.admin.token, &["shop.example"]).await;
    let client = publisher::http_client().unwrap();
    let tick = async || {
        publisher::tick_with(&app.state, &client, fast_retry())
            .await
            .unwrap()
    };

    let first = tick().await;
    assert_eq!(first.failed.len(), 1, "{first:?}");
    assert_eq!(requests(&edge), 4, "bounded tries within the tick");
    // The next ticks leave it alone: no rebuild, no signing, no push.
    for _ in 0..3 {
        let report = tick().await;
        assert_eq!(report.deferred, 1, "{report:?}");
    }
    assert_eq!(requests(&edge), 4);
    // After one interval (10 s by default) it is tried again, and fails again.
    time_passes(&pool, 11).await;
    assert_eq!(tick().await.failed.len(), 1);
    assert_eq!(requests(&edge), 8);
    // Two failures: the wait doubled to 20 s.
    time_passes(&pool, 11).await;
    assert_eq!(tick().await.deferred, 1);
    assert_eq!(requests(&edge), 8);
    time_passes(&pool, 10).await;
    assert_eq!(tick().await.failed.len(), 1);
    assert_eq!(requests(&edge), 12);
    // The edge recovers; once the wait (40 s) is over, the site publishes.
    edge.log.lock().unwrap().answer_with = None;
    time_passes(&pool, 41).await;
    let recovered = tick().await;
    assert_eq!(recovered.published.len(), 1, "{recovered:?}");
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn a_snapshot_the_edge_refuses_as_too_large_is_not_pushed_again_until_the_site_changes(
    pool: PgPool,
) {
    let edge = FakeEdge::start().await;
    edge.log.lock().unwrap().answer_with = Some(StatusCode::PAYLOAD_TOO_LARGE);
    let app = publishing_app(pool.clone(), &edge.url);
    let team = new_team(&app).await;
    let site = create_site(&app, &team.admin.token, &["shop.example"]).await;
    let site_id = site["id"].as_str().unwrap();
    let client = publisher::http_client().unwrap();

    let refused = publisher::tick_with(&app.state, &client, fast_retry())
        .await
        .unwrap();
    assert_eq!(refused.failed.len(), 1, "{refused:?}");
    assert_eq!(requests(&edge), 1, "a 413 is not retried within the tick");
    // However long we wait, the same content is not pushed again.
    time_passes(&pool, 24 * 3600).await;
    let held = publisher::tick_with(&app.state, &client, fast_retry())
        .await
        .unwrap();
    assert_eq!(held.deferred, 1, "{held:?}");
    assert_eq!(requests(&edge), 1);
    // The site's publications list says so.
    let list = app
        .get(
            &format!("/api/v1/sites/{site_id}/publications"),
            Some(&team.admin.token),
        )
        .await
        .json();
    assert_eq!(list[0]["status"], "failed", "{list}");
    assert_eq!(list[0]["permanent"], true, "{list}");
    assert!(list[0]["error"].as_str().unwrap().contains("413"), "{list}");
    // The site changes (an experiment starts): the new content is pushed.
    edge.log.lock().unwrap().answer_with = None;
    let exp = create_experiment(&app, &team.editor, site_id).await;
    act(&app, &team.editor, exp["id"].as_str().unwrap(), "start").await;
    let changed = publisher::tick_with(&app.state, &client, fast_retry())
        .await
        .unwrap();
    assert_eq!(changed.published.len(), 1, "{changed:?}");
    assert_eq!(requests(&edge), 2);
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn a_snapshot_over_the_quota_is_recorded_but_never_pushed(pool: PgPool) {
    let edge = FakeEdge::start().await;
    let app = publishing_app_with(
        pool.clone(),
        &edge.url,
        &[("SAMPLIT_QUOTA_SNAPSHOT_BYTES", "200")],
    );
    let team = new_team(&app).await;
    let site = create_site(&app, &team.admin.token, &["shop.example"]).await;
    let site_id = site["id"].as_str().unwrap();
    let report = tick(&app.state).await;
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert_eq!(requests(&edge), 0);
    let list = app
        .get(
            &format!("/api/v1/sites/{site_id}/publications"),
            Some(&team.admin.token),
        )
        .await
        .json();
    assert_eq!(list[0]["attempts"], 0, "{list}");
    assert_eq!(list[0]["permanent"], true, "{list}");
    let error = list[0]["error"].as_str().unwrap();
    assert!(
        error.contains("snapshot_bytes") && error.contains("200"),
        "{error}"
    );
    assert_eq!(tick(&app.state).await.deferred, 1);
}

#[sqlx::test(migrator = "samplit_control_plane::MIGRATOR")]
async fn deleting_a_site_pushes_a_signed_tombstone_above_its_snapshots_and_tombstones_its_routes(
    pool: PgPool,
) {
    let edge = FakeEdge::start().await;
    let app = publishing_app(pool.clone(), &edge.url);
    let team = new_team(&app).await;
    let site = create_site(&app, &team.admin.token, &["shop.doomed.com"]).await;
    let site_id = site["id"].as_str().unwrap();
    let site_key = site["site_key"].as_str().unwrap().to_owned();
    mark_verified(&pool, site_id, "shop.doomed.com").await;
    sqlx::query("INSERT INTO domain_routes (host, site_key, version) VALUES ('shop.doomed.com', $1, nextval('domain_route_version_seq'))")
        .bind(&site_key)
        .execute(&pool)
        .await
        .unwrap();
    let exp = create_experiment(&app, &team.editor, site_id).await;
    act(&app, &team.editor, exp["id"].as_str().unwrap(), "start").await;

    let report = tick(&app.state).await;
    assert_eq!(report.published.len(), 1, "{report:?}");
    assert_eq!(report.routes.len(), 1, "{report:?}");
    {
        let log = edge.log.lock().unwrap();
        assert_eq!(log.routes[0].site_key.as_deref(), Some(site_key.as_str()));
    }
    let snapshot_version = edge.pushes()[0].1.version;

    let resp = app
        .call_with(
            axum::http::Method::DELETE,
            &format!("/api/v1/sites/{site_id}"),
            Some(&team.admin.token),
            None,
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(resp.status, StatusCode::NO_CONTENT, "{}", resp.text());

    // The edge is down for the next tick: nothing is lost, the tombstone is retried.
    edge.log.lock().unwrap().fail_next = 100;
    let report = tick_fast(&app.state).await;
    assert!(
        report.tombstones.is_empty() && !report.routing_failed.is_empty(),
        "{report:?}"
    );
    edge.log.lock().unwrap().fail_next = 0;
    let report = tick(&app.state).await;
    assert_eq!(report.tombstones.len(), 1, "{report:?}");
    {
        let log = edge.log.lock().unwrap();
        let tomb = &log.tombstones[0];
        assert_eq!(tomb.site_key, site_key);
        assert!(
            tomb.version > snapshot_version,
            "{} > {snapshot_version}",
            tomb.version
        );
        let last = log.routes.last().unwrap();
        assert_eq!(
            (last.host.as_str(), last.site_key.as_deref()),
            ("shop.doomed.com", None)
        );
        assert!(last.version > log.routes[0].version);
    }

    // Taken once: the next tick pushes nothing more.
    let report = tick(&app.state).await;
    assert!(
        report.tombstones.is_empty() && report.routes.is_empty(),
        "{report:?}"
    );
}

async fn tick_fast(state: &AppState) -> publisher::TickReport {
    let client = publisher::http_client().unwrap();
    publisher::tick_with(state, &client, fast_retry())
        .await
        .unwrap()
}
