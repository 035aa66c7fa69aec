//! The bandit loop, end to end, at default settings: from a conversion arriving at the
//! edge to the first snapshot at the edge whose weights include it.
//!
//! Runs the real parts on loopback — a fresh PostgreSQL database, `samplit serve` with the
//! default publish interval (10 s), the Worker under workerd with production's queue
//! batching (`max_batch_timeout = 5`) — and a 2-arm Thompson-sampling experiment. For
//! each sample: a new visitor is assigned through `/v1/assign`; once a published snapshot
//! counts their exposure, the conversion is sent to `/v1/events` (time 0), then the run
//! polls every 50 ms for
//! - **ingested**: the results API counts the conversion (queue → consumer → ingest);
//! - **published**: a publication whose weights count it (`GET /sites/{id}/publications`);
//! - **at the edge**: the Worker holds that snapshot version or a later one
//!   (`/v1/healthz?site_key=`), the end of the loop.
//!
//! Samples start at random moments (0–10 s apart, seeded), so they fall on every phase of
//! the publish tick and of the queue's batch window.
//!
//! ```sh
//! cargo xtask edge-build
//! cargo run --release -p samplit-tests --bin bench_bandit_loop   # BENCH_SAMPLES=20
//! ```
//! Needs `DATABASE_URL` (or PostgreSQL on 127.0.0.1:5432). docs/benchmarks.md has the
//! figures.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use rand::{Rng, SeedableRng};
use samplit_tests::api::{Api, Publication};
use samplit_tests::stack::{Stack, StackOptions};
use serde_json::{Value, json};
use uuid::Uuid;

const GOAL: &str = "signup";
const PAGE: &str = "https://shop.loop.example/pricing";
/// The control plane's default `SAMPLIT_PUBLISH_INTERVAL`.
const PUBLISH_INTERVAL_SECS: u64 = 10;
/// The repository's wrangler.toml: `max_batch_timeout` of the events queue.
const QUEUE_BATCH_TIMEOUT_SECS: u32 = 5;
const POLL: Duration = Duration::from_millis(50);
const SAMPLE_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Copy)]
struct Sample {
    ingested: f64,
    published: f64,
    at_edge: f64,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let samples: usize = std::env::var("BENCH_SAMPLES")
        .ok()
        .map(|s| s.parse().context("BENCH_SAMPLES"))
        .transpose()?
        .unwrap_or(20);
    ensure!(samples > 0, "BENCH_SAMPLES must be at least 1");
    println!("load average at start: {}", load_average());
    let mut options = StackOptions::for_tests("samplit_bench_loop");
    options.publish_interval_secs = PUBLISH_INTERVAL_SECS;
    options.queue_batch_timeout_secs = QUEUE_BATCH_TIMEOUT_SECS;
    options.log_filter = "warn".to_owned();
    let stack = Stack::start(&options).await?;
    let result = run(&stack, samples).await;
    if let Err(e) = &result {
        eprintln!("{e:#}\n{}", stack.logs(40));
    }
    result
}

async fn run(stack: &Stack, samples: usize) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let mut api = stack.api()?;
    api.register(
        "owner@loop.example",
        "loop-password-0123",
        "Loop Owner",
        "Loop Shop",
    )
    .await?;
    let site = api.create_site("Loop shop", &["shop.loop.example"]).await?;
    let variant = |name: &str, control: bool| {
        json!({"name": name, "is_control": control,
               "changes": if control { json!([]) } else {
                   json!([{"selector": "h1", "action": {"type": "set_text", "text": "New"}}]) }})
    };
    let definition = json!({
        "name": "Loop",
        "kind": "single",
        "allocator": {"kind": "thompson"},
        "elements": [{"name": "Headline", "selector": "h1",
                      "variants": [variant("Control", true), variant("New", false)]}],
        "goals": [{"name": GOAL, "primary": true, "trigger": {"type": "custom", "event": GOAL}}],
    });
    let experiment = api.create_experiment(site.id, &definition).await?;
    let experiment = api.transition(&experiment, "start").await?;
    stack
        .edge
        .wait_for_snapshot(&http, &site.site_key, 1, Duration::from_secs(60))
        .await?;
    println!(
        "settings: publish interval {PUBLISH_INTERVAL_SECS} s, queue max_batch_timeout \
         {QUEUE_BATCH_TIMEOUT_SECS} s, {samples} samples"
    );
    println!(
        "{:>3} {:>10} {:>10} {:>10}",
        "#", "ingested", "published", "at edge"
    );

    let mut rng = rand::rngs::StdRng::seed_from_u64(0x100b);
    let mut out = Vec::with_capacity(samples);
    // Visitors assigned per arm: this run's are the only ones.
    let mut assigned: HashMap<Uuid, u64> = HashMap::new();
    for i in 0..samples {
        let visitor = format!("loop-visitor-{i}");
        let arm = assign(&http, stack.edge.base_url(), &site.site_key, &visitor).await?;
        let expected = {
            let n = assigned.entry(arm).or_default();
            *n += 1;
            *n
        };
        // The exposure first: a published snapshot counts it, so the conversion is the
        // only thing the next snapshots can add for this arm.
        let (_, conversions) =
            wait_published(&api, site.id, experiment.id, arm, |(e, _)| e >= expected).await?;
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..10_000))).await;
        let sample = measure(
            stack,
            &http,
            &api,
            &site,
            experiment.id,
            arm,
            &visitor,
            conversions,
        )
        .await?;
        println!(
            "{i:>3} {:>9.2}s {:>9.2}s {:>9.2}s",
            sample.ingested, sample.published, sample.at_edge
        );
        out.push(sample);
    }

    println!("load average at end: {}", load_average());
    for (what, pick) in [
        ("ingested", (|s: &Sample| s.ingested) as fn(&Sample) -> f64),
        ("published", |s: &Sample| s.published),
        ("at the edge", |s: &Sample| s.at_edge),
    ] {
        let mut v: Vec<f64> = out.iter().map(pick).collect();
        v.sort_by(f64::total_cmp);
        println!(
            "{what:>12}: min {:.2} s, p50 {:.2} s, p90 {:.2} s, max {:.2} s",
            v[0],
            quantile(&v, 0.5),
            quantile(&v, 0.9),
            v[v.len() - 1]
        );
    }
    Ok(())
}

/// Nearest-rank quantile of sorted values.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let rank = (q * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

/// `/v1/assign` for a new visitor: the arm they got.
async fn assign(
    http: &reqwest::Client,
    edge: &str,
    site_key: &str,
    visitor: &str,
) -> anyhow::Result<Uuid> {
    let body: Value = http
        .post(format!("{edge}/v1/assign"))
        .json(&json!({"site_key": site_key, "url": PAGE, "visitor_id": visitor}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    body["assignments"][0]["arm_id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("no assignment in {body}"))
}

/// The arm's (exposures, conversions) in a publication's weights.
fn arm_counts(p: &Publication, experiment: Uuid, arm: Uuid) -> Option<(u64, u64)> {
    let experiment = experiment.to_string();
    let arm = arm.to_string();
    p.weights
        .as_array()?
        .iter()
        .filter(|e| e["experiment_id"].as_str() == Some(&experiment))
        .flat_map(|e| e["units"].as_array().into_iter().flatten())
        .flat_map(|u| u["arms"].as_array().into_iter().flatten())
        .find(|a| a["arm_id"].as_str() == Some(&arm))
        .and_then(|a| Some((a["exposures"].as_u64()?, a["conversions"].as_u64()?)))
}

/// The newest published snapshot's version and the arm's counts in it.
async fn newest(
    api: &Api,
    site: Uuid,
    experiment: Uuid,
    arm: Uuid,
) -> anyhow::Result<Option<(i64, (u64, u64))>> {
    Ok(api
        .publications(site)
        .await?
        .into_iter()
        .find(|p| p.status == "published")
        .and_then(|p| Some((p.version, arm_counts(&p, experiment, arm)?))))
}

/// Waits until the newest published snapshot's counts for the arm satisfy `done`.
async fn wait_published(
    api: &Api,
    site: Uuid,
    experiment: Uuid,
    arm: Uuid,
    done: impl Fn((u64, u64)) -> bool,
) -> anyhow::Result<(u64, u64)> {
    let started = Instant::now();
    loop {
        if let Some((_, counts)) = newest(api, site, experiment, arm).await?
            && done(counts)
        {
            return Ok(counts);
        }
        if started.elapsed() > SAMPLE_TIMEOUT {
            bail!("no snapshot counted the exposure within {SAMPLE_TIMEOUT:?}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Sends the conversion and times its way back to the edge.
#[allow(clippy::too_many_arguments)]
async fn measure(
    stack: &Stack,
    http: &reqwest::Client,
    api: &Api,
    site: &samplit_tests::api::Site,
    experiment: Uuid,
    arm: Uuid,
    visitor: &str,
    conversions_before: u64,
) -> anyhow::Result<Sample> {
    let converters_before = converters(api, experiment, arm).await?;
    let t0 = Instant::now();
    http.post(format!("{}/v1/events", stack.edge.base_url()))
        .json(&json!({"site_key": site.site_key, "visitor_id": visitor,
                      "events": [{"type": "custom", "goal": GOAL}]}))
        .send()
        .await?
        .error_for_status()
        .context("POST /v1/events")?;
    let (mut ingested, mut published) = (None, None::<(f64, i64)>);
    loop {
        let elapsed = t0.elapsed().as_secs_f64();
        if ingested.is_none() && converters(api, experiment, arm).await? > converters_before {
            ingested = Some(elapsed);
        }
        if published.is_none()
            && let Some((version, (_, c))) = newest(api, site.id, experiment, arm).await?
            && c > conversions_before
        {
            published = Some((elapsed, version));
        }
        if let Some((published_at, version)) = published {
            let at_edge = stack.edge.site_version(http, &site.site_key).await?;
            if at_edge.is_some_and(|v| i64::try_from(v).unwrap_or(i64::MAX) >= version) {
                let at_edge = t0.elapsed().as_secs_f64();
                return Ok(Sample {
                    ingested: ingested.unwrap_or(published_at),
                    published: published_at,
                    at_edge,
                });
            }
        }
        if t0.elapsed() > SAMPLE_TIMEOUT {
            bail!("the conversion did not reach the edge within {SAMPLE_TIMEOUT:?}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The arm's converters on the primary goal, from the results API.
async fn converters(api: &Api, experiment: Uuid, arm: Uuid) -> anyhow::Result<u64> {
    Ok(api
        .arm_results(experiment)
        .await?
        .into_iter()
        .find(|a| a.arm_id == arm)
        .map_or(0, |a| a.conversions))
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}
