//! Ingestion and results benchmark: prints figures, asserts nothing.
//!
//! `cargo run --release -p samplit-control-plane --bin bench_ingest`
//! (env: `DATABASE_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`;
//! `BENCH_EVENTS`, default 1 000 000; `BENCH_CONCURRENCY`, default 4;
//! `BENCH_NO_ERASURE_INDEX=1` drops the raw events' `(site_id, visitor_id)` indexes
//! before ingesting, to measure what they cost; `BENCH_SETUP_SQL` runs its SQL in the
//! bench database after the migrations, to measure a schema change before writing it;
//! `BENCH_SKIP_CONSOLE=1` skips step 5; `BENCH_KEYS=v7` makes item and visitor ids
//! time-ordered UUIDs (version 7), as the edge makes them, `BENCH_KEYS=random` random
//! ones (version 4), as it made them before, instead of `"<batch>-<i>"` and
//! `"visitor-<n>"`, whose index inserts land on few, hot pages).
//!
//! 1. Creates a database `samplit_bench_<random>`, migrates it, and inserts an
//!    organisation, a site and a running two-arm experiment with a revenue goal.
//! 2. Sends signed batches of 500 items (60 % first exposures of new visitors, 40 %
//!    purchases by visitors exposed `BENCH_PURCHASE_LAG` exposures earlier, default 3000,
//!    ten batches, drawn from the last `BENCH_BUYERS` of them, default 1000) through the
//!    real router (`oneshot`, the whole middleware stack, signature checks included),
//!    `BENCH_CONCURRENCY` batches in flight, and reports events/s, the CPU time this
//!    process and the rest of the machine (PostgreSQL) spent per event (from `/proc`),
//!    and how many batches each transaction wrote (group commit: docs/ingestion.md). Purchases start once
//!    `BENCH_BUYERS + BENCH_PURCHASE_LAG` visitors exist, so a large `BENCH_BUYERS` makes
//!    more of a short run exposures only: compare runs of the same mix. Exposures carry a
//!    `context` (country, device, browser, source, landing, prior visits: issue 16), so
//!    raw events, assignments' context and segment statistics are written as in
//!    production.
//! 3. As a ceiling, `COPY`s the same rows into a plain unindexed table in the same
//!    PostgreSQL and reports rows/s.
//! 4. With every event ingested, calls `GET /experiments/{id}/results`,
//!    `.../timeseries` and `.../segments?dimension=country` 500 times each and reports
//!    p50/p99 latency.
//! 5. The console's pages (issue 12: "a page's server time p99 ≤ 50 ms with 1 000 000
//!    ingested events"): for each page, the API calls it makes on load, sent at once as
//!    the browser does, with the console's session cookie (the real cookie lookup); a
//!    page's server time is the wall time until its last answer. 200 loads per page
//!    after 10 warm-up loads; p50/p99 reported.
//! 6. Segments at scale (issue 16: "segment results at 10 000 000 raw events: p99 ≤
//!    200 ms"): the segment tables' size depends on arms × values × days, not on the
//!    number of events, so this fills them as 10 000 000 events over 90 days would
//!    (every one of 250 countries on every day for both arms, on top of what was
//!    ingested) and times 500 `GET .../segments?dimension=country` after 20 warm-ups.
//!    `BENCH_SEGMENT_DAYS` (default 90), `BENCH_SEGMENT_VALUES` (default 250).
//! 7. Drops the database.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, Request, header};
use samplit_control_plane::{AppState, router};
use samplit_engine::ingest as signature;
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tower::ServiceExt;
use uuid::Uuid;

#[path = "bench_support/mod.rs"]
mod bench_support;

/// The allocator of `samplit serve` (`src/main.rs`), so the figures are the server's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BATCH: usize = 500;

struct Fixture {
    site_id: Uuid,
    site_key: String,
    experiment_id: Uuid,
    arms: [Uuid; 2],
    token: String,
    /// The console's session cookie (`name=value`).
    cookie: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let events = bench_support::env_count("BENCH_EVENTS", 1_000_000);
    let concurrency = bench_support::env_count("BENCH_CONCURRENCY", 4);
    bench_support::in_scratch_database(|url| async move { run(&url, events, concurrency).await })
        .await
}

async fn run(url: &str, events: usize, concurrency: usize) -> anyhow::Result<()> {
    let pool = PgPoolOptions::new()
        .max_connections(20)
        .connect(url)
        .await?;
    samplit_control_plane::MIGRATOR.run(&pool).await?;
    let no_erasure_index = std::env::var("BENCH_NO_ERASURE_INDEX").is_ok_and(|v| v == "1");
    if no_erasure_index {
        sqlx::query("DROP INDEX raw_exposures_site_visitor_idx, raw_conversions_site_visitor_idx")
            .execute(&pool)
            .await?;
    }
    if let Ok(extra) = std::env::var("BENCH_SETUP_SQL") {
        sqlx::raw_sql(&extra).execute(&pool).await?;
    }
    let secret = samplit_control_plane::auth::new_token("ingest_");
    let cfg = bench_support::config(url, &secret)?;
    let state = AppState::new(pool.clone(), cfg)?;
    let fx = fixture(&pool, &state).await?;
    let metrics = state.metrics.clone();
    let app = router(state);

    // Items, generated up front so the clock measures ingestion only.
    let batches = events.div_ceil(BATCH);
    let now_ms = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    let mut bodies = Vec::with_capacity(batches);
    let mut copy_rows = String::new();
    let mut visitor = 0usize;
    // How many exposures before a purchase its visitor was exposed: by default 10
    // batches' worth (3000), so the exposure was acknowledged before the purchase arrives,
    // as on a site where buying takes longer than a queue flush. `BENCH_PURCHASE_LAG=0`
    // makes buyers among the last 1000 exposed — mostly in batches still in flight, whose
    // purchases are parked and attributed after their exposures commit (the worst case).
    let lag = bench_support::env_count("BENCH_PURCHASE_LAG", 3000);
    // How many of those visitors the purchases are drawn from (`BENCH_BUYERS`, default
    // 1000): the window moves by 300 visitors a batch, so with 1000 a visitor buys in
    // about three consecutive batches, in flight together, and the second waits for the
    // first's commit on the visitor's `goal_conversions` row (repeat buyers a second
    // apart: pessimistic). A larger window spreads a visitor's purchases further apart.
    let buyers = bench_support::env_count("BENCH_BUYERS", 1000).max(1);
    let keys = match std::env::var("BENCH_KEYS").as_deref() {
        Err(_) | Ok("sequential") => Keys::Sequential,
        Ok("random") => Keys::Random,
        Ok("v7") => Keys::TimeOrdered,
        Ok(other) => {
            anyhow::bail!("BENCH_KEYS is `random`, `v7` or `sequential`, not `{other}`")
        }
    };
    // The time an item was sent and a visitor first seen: batch `b` is sent at
    // `now_ms - (batches - b) * 10` and first exposes 300 visitors.
    let sent_ms = |b: usize| now_ms - ((batches - b) as i64) * 10;
    let item_id = |b: usize, i: usize| match keys {
        Keys::Sequential => format!("{b}-{i}"),
        Keys::Random => scattered(1, (b * BATCH + i) as u64),
        Keys::TimeOrdered => time_ordered(1, (b * BATCH + i) as u64, sent_ms(b)),
    };
    let visitor_id = |n: usize| match keys {
        Keys::Sequential => format!("visitor-{n}"),
        Keys::Random => scattered(2, n as u64),
        Keys::TimeOrdered => time_ordered(2, n as u64, sent_ms(n / 300)),
    };
    for b in 0..batches {
        let mut items = Vec::with_capacity(BATCH);
        for i in 0..BATCH {
            let id = item_id(b, i);
            let ts = sent_ms(b);
            let item = if i % 5 < 3 || visitor < buyers + lag {
                visitor += 1;
                let arm = fx.arms[visitor % 2];
                const COUNTRIES: [&str; 6] = ["US", "ES", "DE", "FR", "GB", "BR"];
                const DEVICES: [&str; 3] = ["desktop", "mobile", "tablet"];
                const BROWSERS: [&str; 4] = ["chrome", "safari", "firefox", "edge"];
                const SOURCES: [&str; 5] = ["direct", "search", "social", "paid", "email"];
                json!({"id": id, "type": "exposure", "site_key": fx.site_key,
                       "experiment_id": fx.experiment_id, "arm_id": arm,
                       "visitor_id": visitor_id(visitor), "propensity": 0.5,
                       "snapshot_version": 1, "ts_ms": ts,
                       "context": {"country": COUNTRIES[visitor % 6], "device": DEVICES[visitor % 7 % 3],
                                   "browser": BROWSERS[visitor % 11 % 4], "source": SOURCES[visitor % 13 % 5],
                                   "landing": "/products/some-product", "prior_visits": visitor % 4,
                                   "prior_conversions": visitor % 9 / 8}})
            } else {
                // A purchase by one of `buyers` visitors exposed `lag` exposures earlier.
                let who = visitor - lag - (i * 7 + b) % buyers;
                json!({"id": id, "type": "conversion", "site_key": fx.site_key,
                       "visitor_id": visitor_id(who), "goal": "purchase",
                       "value": ((i % 13) as f64) * 2.5, "ts_ms": ts})
            };
            copy_line(&mut copy_rows, &item);
            items.push(item);
        }
        bodies.push(json!({"batch_id": Uuid::new_v4(), "items": items}).to_string());
    }

    // Ingestion through the handler.
    let cpu = bench_support::CpuMeter::start();
    let started = Instant::now();
    let queue = std::sync::Arc::new(tokio::sync::Mutex::new(bodies.into_iter()));
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let queue = queue.clone();
        let app = app.clone();
        let secret = secret.clone();
        workers.push(tokio::spawn(async move {
            let mut accepted = 0u64;
            loop {
                let Some(body) = queue.lock().await.next() else {
                    return Ok::<u64, anyhow::Error>(accepted);
                };
                let ts = time::OffsetDateTime::now_utc().unix_timestamp().to_string();
                let sig = signature::sign(secret.as_bytes(), &ts, body.as_bytes());
                let req = Request::builder()
                    .method(Method::POST)
                    .uri("/api/v1/ingest")
                    .header(header::CONTENT_TYPE, "application/json")
                    .header(signature::TIMESTAMP_HEADER, ts)
                    .header(signature::SIGNATURE_HEADER, sig)
                    .body(Body::from(body))?;
                let res = app.clone().oneshot(req).await?;
                let status = res.status();
                let bytes = axum::body::to_bytes(res.into_body(), usize::MAX).await?;
                anyhow::ensure!(status.is_success(), "ingest failed: {status} {bytes:?}");
                let out: Value = serde_json::from_slice(&bytes)?;
                accepted += out["accepted"].as_u64().unwrap_or(0);
            }
        }));
    }
    let mut accepted = 0;
    for w in workers {
        accepted += w.await??;
    }
    let elapsed = started.elapsed();
    let cpu = cpu.and_then(bench_support::CpuMeter::spent);
    let total = batches * BATCH;
    println!(
        "ingest (raw events kept, erasure index {}): {total} events in {} batches of {BATCH}, {concurrency} in flight: {:.2} s, {:.0} events/s ({accepted} accepted)",
        if no_erasure_index { "dropped" } else { "on" },
        batches,
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
    if let Some(cpu) = cpu {
        // The bench process is the control plane (and the client sending its pre-built,
        // signed batches); the rest is PostgreSQL on this machine.
        let per_event = |s: f64| s * 1e6 / total as f64;
        println!(
            "CPU during ingestion: this process {:.2} s ({:.1} µs per event), the rest of the machine (PostgreSQL) {:.2} s ({:.1} µs per event)",
            cpu.process_s,
            per_event(cpu.process_s),
            cpu.others_s,
            per_event(cpu.others_s)
        );
    }
    let groups = &metrics.ingest_group_batches;
    let transactions = groups.get_sample_count();
    println!(
        "group commit: {} batches in {transactions} transactions ({:.2} batches per transaction)",
        groups.get_sample_sum(),
        groups.get_sample_sum() / transactions.max(1) as f64
    );

    // The ceiling: COPY of the same rows into a plain table.
    let mut conn = pool.acquire().await?;
    sqlx::query(
        "CREATE TABLE bench_copy (id text, type text, site_key text, experiment_id text,
         arm_id text, visitor_id text, goal text, value float8, ts_ms int8)",
    )
    .execute(&mut *conn)
    .await?;
    let started = Instant::now();
    let mut copy = conn
        .copy_in_raw("COPY bench_copy FROM STDIN (FORMAT text)")
        .await?;
    copy.send(copy_rows.as_bytes()).await?;
    let copied = copy.finish().await?;
    let elapsed = started.elapsed();
    println!(
        "ceiling: COPY of the same {copied} rows into a plain table: {:.2} s, {:.0} rows/s",
        elapsed.as_secs_f64(),
        copied as f64 / elapsed.as_secs_f64()
    );
    drop(conn);

    // Results latency over the ingested experiment.
    for (what, uri) in [
        (
            "results",
            format!("/api/v1/experiments/{}/results", fx.experiment_id),
        ),
        (
            "timeseries",
            format!("/api/v1/experiments/{}/timeseries", fx.experiment_id),
        ),
        (
            "segments (country)",
            format!(
                "/api/v1/experiments/{}/segments?dimension=country",
                fx.experiment_id
            ),
        ),
    ] {
        let mut samples = Vec::with_capacity(500);
        for i in 0..520 {
            let req = Request::builder()
                .uri(&uri)
                .header(header::AUTHORIZATION, format!("Bearer {}", fx.token))
                .body(Body::empty())?;
            let t = Instant::now();
            let res = app.clone().oneshot(req).await?;
            let status = res.status();
            let bytes = axum::body::to_bytes(res.into_body(), usize::MAX).await?;
            let dt = t.elapsed();
            anyhow::ensure!(status.is_success(), "{what} failed: {status} {bytes:?}");
            if i >= 20 {
                samples.push(dt); // the first 20 warm the pool and caches
            }
        }
        samples.sort_unstable();
        println!(
            "{what} latency over {} ingested events ({} requests): p50 {:.2} ms, p99 {:.2} ms",
            total,
            samples.len(),
            ms(samples[samples.len() / 2]),
            ms(samples[samples.len() * 99 / 100])
        );
    }
    let raw: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM raw_exposures) + (SELECT count(*) FROM raw_conversions)",
    )
    .fetch_one(&pool)
    .await?;
    println!("raw events kept: {raw}");
    if !std::env::var("BENCH_SKIP_CONSOLE").is_ok_and(|v| v == "1") {
        console_pages(&app, &fx, total).await?;
    }
    segments_at_scale(&pool, &app, &fx).await?;
    pool.close().await;
    Ok(())
}

/// Step 5: each console page's API calls, sent at once with the session cookie.
async fn console_pages(app: &axum::Router, fx: &Fixture, total: usize) -> anyhow::Result<()> {
    let (site, exp) = (fx.site_id, fx.experiment_id);
    let pages: [(&str, Vec<String>); 9] = [
        ("shell (/app, app.js, app.css)", vec!["/app".into(), "/app/app.js".into(), "/app/app.css".into()]),
        ("sign-in check", vec!["/api/v1/auth/console/session".into(), "/api/v1/auth/me".into()]),
        ("overview", vec!["/api/v1/sites".into(), "/api/v1/experiments".into()]),
        ("site", vec![format!("/api/v1/sites/{site}"), format!("/api/v1/sites/{site}/publications"), format!("/api/v1/sites/{site}/snippet")]),
        ("experiments (1 live row)", vec!["/api/v1/experiments".into(), "/api/v1/sites".into(), format!("/api/v1/experiments/{exp}/results")]),
        ("results", vec![format!("/api/v1/experiments/{exp}/results"), format!("/api/v1/experiments/{exp}/timeseries"), format!("/api/v1/experiments/{exp}"), format!("/api/v1/sites/{site}/publications")]),
        ("planning", vec!["/api/v1/planning/sample-size?baseline_rate=0.05&minimum_detectable_effect=0.1&visitors_per_day=1000".into()]),
        ("team", vec!["/api/v1/members".into(), "/api/v1/invitations".into(), "/api/v1/api-keys".into()]),
        ("audit log", vec!["/api/v1/audit?limit=50".into(), "/api/v1/audit/verify".into()]),
    ];
    for (page, uris) in pages {
        let mut samples = Vec::with_capacity(200);
        for i in 0..210 {
            let t = Instant::now();
            let mut calls = tokio::task::JoinSet::new();
            for uri in &uris {
                let req = Request::builder()
                    .uri(uri)
                    .header(header::COOKIE, &fx.cookie)
                    .header(header::ACCEPT_ENCODING, "gzip")
                    .body(Body::empty())?;
                let (app, uri) = (app.clone(), uri.clone());
                calls.spawn(async move {
                    let res = app.oneshot(req).await?;
                    let status = res.status();
                    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX).await?;
                    anyhow::ensure!(status.is_success(), "{uri}: {status} {bytes:?}");
                    Ok::<(), anyhow::Error>(())
                });
            }
            while let Some(outcome) = calls.join_next().await {
                outcome??;
            }
            if i >= 10 {
                samples.push(t.elapsed());
            }
        }
        samples.sort_unstable();
        println!(
            "console page {page} over {total} ingested events ({} loads): p50 {:.2} ms, p99 {:.2} ms",
            samples.len(),
            ms(samples[samples.len() / 2]),
            ms(samples[samples.len() * 99 / 100])
        );
    }
    Ok(())
}

/// Step 6: the segment tables filled as by 10 000 000 events over many days, then timed.
async fn segments_at_scale(pool: &PgPool, app: &axum::Router, fx: &Fixture) -> anyhow::Result<()> {
    let (days, values) = (
        bench_support::env_count("BENCH_SEGMENT_DAYS", 90) as i64,
        bench_support::env_count("BENCH_SEGMENT_VALUES", 250) as i64,
    );
    let goal: Uuid = sqlx::query_scalar("SELECT id FROM goals WHERE experiment_id = $1")
        .bind(fx.experiment_id)
        .fetch_one(pool)
        .await?;
    // 10 000 000 events ≈ 6 000 000 visitors: spread over the cells.
    let cells = (days * values * 2).max(1);
    let per_cell = 6_000_000 / cells;
    sqlx::query(
        "INSERT INTO segment_daily (arm_id, dimension, value, day, experiment_id, visitors)
         SELECT arm, 'country', 'C' || v, current_date - d::int4, $2, $3
           FROM unnest($1::uuid[]) AS arm, generate_series(1, $4) AS d, generate_series(1, $5) AS v",
    )
    .bind(fx.arms.to_vec())
    .bind(fx.experiment_id)
    .bind(per_cell)
    .bind(days)
    .bind(values)
    .execute(pool)
    .await?;
    sqlx::query(
        "INSERT INTO segment_goal_daily (arm_id, goal_id, dimension, value, day, experiment_id,
                                         converters, revenue_n, revenue_sum, revenue_sumsq)
         SELECT arm, $2, 'country', 'C' || v, current_date - d::int4, $3, $4 / 20, $4 / 20,
                $4 * 1.5, $4 * 40.0
           FROM unnest($1::uuid[]) AS arm, generate_series(1, $5) AS d, generate_series(1, $6) AS v",
    )
    .bind(fx.arms.to_vec())
    .bind(goal)
    .bind(fx.experiment_id)
    .bind(per_cell)
    .bind(days)
    .bind(values)
    .execute(pool)
    .await?;
    sqlx::query("ANALYZE segment_daily, segment_goal_daily")
        .execute(pool)
        .await?;
    let uri = format!(
        "/api/v1/experiments/{}/segments?dimension=country",
        fx.experiment_id
    );
    let mut samples = Vec::with_capacity(500);
    for i in 0..520 {
        let req = Request::builder()
            .uri(&uri)
            .header(header::AUTHORIZATION, format!("Bearer {}", fx.token))
            .body(Body::empty())?;
        let t = Instant::now();
        let res = app.clone().oneshot(req).await?;
        let status = res.status();
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX).await?;
        let dt = t.elapsed();
        anyhow::ensure!(status.is_success(), "segments failed: {status} {bytes:?}");
        if i >= 20 {
            samples.push(dt);
        }
    }
    samples.sort_unstable();
    println!(
        "segments (country) at the scale of 10 000 000 events ({days} days x {values} values x 2 arms of segment rows, {} requests): p50 {:.2} ms, p99 {:.2} ms",
        samples.len(),
        ms(samples[samples.len() / 2]),
        ms(samples[samples.len() * 99 / 100])
    );
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The `n`th id of a kind as a UUID whose bits look random (and the same on every run):
/// two rounds of SplitMix64's finaliser over `n`, keyed by `kind`.
fn scattered(kind: u64, n: u64) -> String {
    fn mix(mut z: u64) -> u64 {
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    let high = mix(kind << 56 ^ n);
    Uuid::from_u64_pair(high, mix(high ^ n)).to_string()
}

/// How the bench makes item and visitor ids (`BENCH_KEYS`).
#[derive(Clone, Copy)]
enum Keys {
    /// `"<batch>-<i>"` and `"visitor-<n>"`: index inserts land on few, hot pages.
    Sequential,
    /// Version 4 UUIDs, as the edge made them before time-ordered ids.
    Random,
    /// Version 7 UUIDs (RFC 9562: Unix milliseconds, then random bits), as the edge makes
    /// them (`edge-worker/src/ids.rs`).
    TimeOrdered,
}

/// The `n`th id of a kind as a version 7 UUID made at `unix_ms`: the time in its first
/// 48 bits, then bits that look random (the same on every run).
fn time_ordered(kind: u64, n: u64, unix_ms: i64) -> String {
    let random = scattered(kind, n)
        .parse::<Uuid>()
        .expect("a UUID")
        .as_u64_pair();
    let high = ((unix_ms as u64) << 16) | 0x7000 | (random.0 & 0x0fff);
    let low = (random.1 & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    Uuid::from_u64_pair(high, low).to_string()
}

/// One tab-separated COPY line of an item (text format; our values have no tabs).
fn copy_line(out: &mut String, item: &Value) {
    let field = |k: &str| match &item[k] {
        Value::Null => "\\N".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let cols = [
        "id",
        "type",
        "site_key",
        "experiment_id",
        "arm_id",
        "visitor_id",
        "goal",
        "value",
        "ts_ms",
    ];
    let line: Vec<String> = cols.iter().map(|c| field(c)).collect();
    out.push_str(&line.join("\t"));
    out.push('\n');
}

async fn fixture(pool: &PgPool, state: &AppState) -> anyhow::Result<Fixture> {
    let mut tx = pool.begin().await?;
    let owner = bench_support::two_arm_experiment(&mut tx, state).await?;
    // The console's session (step 5): a cookie session of the same owner.
    let cookie_token = samplit_control_plane::auth::new_token("cs_");
    sqlx::query(
        "INSERT INTO auth_sessions (id, user_id, org_id, expires_at, cookie_hash)
         VALUES ($1, $2, $3, now() + interval '1 day', $4)",
    )
    .bind(Uuid::new_v4())
    .bind(owner.user)
    .bind(owner.org)
    .bind(samplit_control_plane::auth::token_hash(&cookie_token))
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO goals (id, experiment_id, name, trigger, target, metric, is_primary)
         VALUES ($1, $2, 'Purchase', 'custom', 'purchase', 'revenue', true)",
    )
    .bind(Uuid::new_v4())
    .bind(owner.experiment)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Fixture {
        site_id: owner.site,
        site_key: owner.site_key,
        experiment_id: owner.experiment,
        arms: owner.arms,
        token: owner.token,
        cookie: format!("__Host-samplit_session={cookie_token}"),
    })
}
