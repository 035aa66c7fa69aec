//! Funnel results at scale (docs/benchmarks.md, "Funnels").
//!
//! ```sh
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!   cargo run --release -p samplit-control-plane --bin bench_funnels
//! # BENCH_VISITORS (default 100000), BENCH_CONVERSIONS (default 400000),
//! # BENCH_REQUESTS (default 20); BENCH_EXPLAIN=1 prints the query's plan
//! ```
//!
//! 1. Creates a database `samplit_bench_<random>`, migrates it, and inserts an
//!    organisation, a site and a running two-arm experiment with three goals.
//! 2. Inserts `BENCH_VISITORS` assignments (first exposures spread over the last 7 days)
//!    and `BENCH_CONVERSIONS` raw conversions of those visitors (each one of the three
//!    steps' goals or an unrelated event, within a few hours of the exposure, some before
//!    it), in the raw events' day partitions, with `generate_series`; then `ANALYZE`.
//! 3. Creates a 3-step funnel with a 1-day window through the API and times
//!    `BENCH_REQUESTS` `GET .../funnels/{id}/results` after 2 warm-ups (the real router:
//!    authentication, the raw-event read, the fold, the statistics); prints min, p50,
//!    max, and the counts of the last answer.
//! 4. Drops the database.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, Request, header};
use samplit_control_plane::db::raw_events;
use samplit_control_plane::{AppState, router};
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    bench_support::in_scratch_database(|url| async move { run(&url).await }).await
}

struct Fixture {
    site: Uuid,
    experiment: Uuid,
    arms: [Uuid; 2],
    goals: [Uuid; 3],
    token: String,
}

async fn run(url: &str) -> anyhow::Result<()> {
    let visitors = bench_support::env_count("BENCH_VISITORS", 100_000);
    let conversions = bench_support::env_count("BENCH_CONVERSIONS", 400_000);
    let requests = bench_support::env_count("BENCH_REQUESTS", 20).max(1);
    let pool = PgPoolOptions::new().max_connections(8).connect(url).await?;
    samplit_control_plane::MIGRATOR.run(&pool).await?;
    let cfg = bench_support::config(url, &samplit_control_plane::auth::new_token("ingest_"))?;
    let state = AppState::new(pool.clone(), cfg)?;
    let fx = fixture(&pool, &state).await?;
    let app = router(state);

    // Raw events: the partitions of the last 8 days and the next one.
    let today = time::OffsetDateTime::now_utc().date();
    let days: Vec<time::Date> = (-8..=1)
        .filter_map(|d| today.checked_add(time::Duration::days(d)))
        .collect();
    raw_events::ensure_partitions(&pool, &days).await?;
    let started = Instant::now();
    sqlx::query(
        "INSERT INTO assignments (experiment_id, visitor_id, unit, arm_id, propensity,
                                  snapshot_version, first_seen_at)
         SELECT $1, 'v' || i, $1, CASE WHEN i % 2 = 0 THEN $2 ELSE $3 END, 0.5, 1,
                now() - interval '7 days' + (i * 5 % 600000) * interval '1 second'
           FROM generate_series(1, $4::int) AS i",
    )
    .bind(fx.experiment)
    .bind(fx.arms[0])
    .bind(fx.arms[1])
    .bind(i32::try_from(visitors)?)
    .execute(&pool)
    .await?;
    // Conversion j belongs to visitor (j * 7919 mod visitors) + 1; it comes between 10
    // minutes before and about 5 hours after that visitor's exposure; its goal is a step
    // (add_to_cart, begin_checkout, purchase) or `newsletter`, more often the earlier
    // steps.
    sqlx::query(
        "WITH c AS (
           SELECT j, (j::bigint * 7919 % $3) + 1 AS v FROM generate_series(1, $2::int) AS j)
         INSERT INTO raw_conversions (day, ts, site_id, item_id, visitor_id, kind, goal,
                                      value, currency, signed)
         SELECT (t.ts AT TIME ZONE 'UTC')::date, t.ts, $1, 'c' || c.j, 'v' || c.v, 'custom',
                (ARRAY['add_to_cart', 'add_to_cart', 'add_to_cart', 'begin_checkout',
                       'begin_checkout', 'purchase', 'newsletter'])[1 + (c.j * 31 % 7)],
                0, NULL, false
           FROM c
           CROSS JOIN LATERAL (
             SELECT now() - interval '7 days' + (c.v * 5 % 600000) * interval '1 second'
                    + ((c.j * 13 % 1900) - 60) * interval '10 seconds' AS ts) t
          WHERE t.ts < now() + interval '1 day'",
    )
    .bind(fx.site)
    .bind(i32::try_from(conversions)?)
    .bind(i64::try_from(visitors)?)
    .execute(&pool)
    .await?;
    sqlx::query("ANALYZE assignments").execute(&pool).await?;
    sqlx::query("ANALYZE raw_conversions")
        .execute(&pool)
        .await?;
    println!(
        "filled {visitors} assignments and {conversions} raw conversions in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let created = call(
        &app,
        Method::POST,
        &format!("/api/v1/experiments/{}/funnels", fx.experiment),
        &fx.token,
        Some(json!({"name": "Checkout", "steps": fx.goals, "window_seconds": 86400})),
    )
    .await?;
    let funnel = created["id"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("no funnel: {created}"))?
        .to_owned();
    let uri = format!(
        "/api/v1/experiments/{}/funnels/{funnel}/results",
        fx.experiment
    );
    for _ in 0..2 {
        call(&app, Method::GET, &uri, &fx.token, None).await?;
    }
    let mut times = Vec::with_capacity(requests);
    let mut last = Value::Null;
    for _ in 0..requests {
        let t = Instant::now();
        last = call(&app, Method::GET, &uri, &fx.token, None).await?;
        times.push(t.elapsed());
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "GET funnel results ({requests} requests): min {:.0} ms, p50 {:.0} ms, max {:.0} ms",
        ms(times[0]),
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1])
    );
    for arm in last["analyses"][0]["arms"].as_array().into_iter().flatten() {
        let reached: Vec<&Value> = arm["steps"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| &s["reached"])
            .collect();
        println!(
            "  {}: entered {}, reached {}",
            arm["name"],
            arm["entered"],
            Value::from(reached.into_iter().cloned().collect::<Vec<_>>())
        );
    }
    if std::env::var("BENCH_EXPLAIN").is_ok_and(|v| v == "1") {
        let keys = ["add_to_cart", "begin_checkout", "purchase"].map(str::to_owned);
        // With the sort in memory, and at the server's default (4 MB: the sort spills to
        // disk, which measured no slower here).
        for work_mem in ["64MB", "4MB"] {
            let mut tx = pool.begin().await?;
            sqlx::query(&format!("SET LOCAL work_mem = '{work_mem}'"))
                .execute(&mut *tx)
                .await?;
            let plan: Vec<String> = sqlx::query_scalar(&format!(
                "EXPLAIN (ANALYZE, BUFFERS) {}",
                samplit_control_plane::db::funnels::STEP_EVENTS_SQL
            ))
            .bind(fx.experiment)
            .bind(fx.site)
            .bind(&keys[..])
            .bind(86400.0_f64)
            .bind(days[0])
            .bind(days[days.len() - 1])
            .fetch_all(&mut *tx)
            .await?;
            tx.rollback().await?;
            println!("work_mem {work_mem}:");
            println!("{}", plan.join("\n"));
        }
    }
    Ok(())
}

async fn call(
    app: &axum::Router,
    method: Method,
    uri: &str,
    token: &str,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"));
    let body = match body {
        Some(json) => {
            request = request.header(header::CONTENT_TYPE, "application/json");
            Body::from(json.to_string())
        }
        None => Body::empty(),
    };
    let response = app.clone().oneshot(request.body(body)?).await?;
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await?;
    anyhow::ensure!(
        status.is_success(),
        "{uri}: {status} {}",
        String::from_utf8_lossy(&bytes)
    );
    Ok(serde_json::from_slice(&bytes)?)
}

async fn fixture(pool: &PgPool, state: &AppState) -> anyhow::Result<Fixture> {
    let goals = [Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4()];
    let mut tx = pool.begin().await?;
    let owner = bench_support::two_arm_experiment(&mut tx, state).await?;
    for (goal, (name, event, primary)) in goals.iter().zip([
        ("Cart", "add_to_cart", false),
        ("Checkout", "begin_checkout", false),
        ("Purchase", "purchase", true),
    ]) {
        sqlx::query(
            "INSERT INTO goals (id, experiment_id, name, trigger, target, metric, is_primary)
             VALUES ($1, $2, $3, 'custom', $4, 'conversion', $5)",
        )
        .bind(goal)
        .bind(owner.experiment)
        .bind(name)
        .bind(event)
        .bind(primary)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(Fixture {
        site: owner.site,
        experiment: owner.experiment,
        arms: owner.arms,
        goals,
        token: owner.token,
    })
}
