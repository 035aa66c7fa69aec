//! The abuse load test, on loopback and bounded: the whole product (PostgreSQL,
//! `samplit serve`, the Worker under workerd with the **production** rate limits of
//! `wrangler.toml`: 300 assignments and 120 event requests per 10 s per site and address).
//!
//! A site runs an experiment with a revenue goal; 40 real visitors, each from its own
//! address, are assigned and half of them buy. Once the results show exactly that, one
//! client (one address) sends 10 000 forged events, one per request, as fast as it can
//! with 32 requests in flight. The test asserts that the client is answered 429 (counted
//! and printed), waits for what got through to be ingested (a bounded loop on the
//! control plane's seen-item table), and asserts that the results did not move.
//!
//! The rate limit is the brake; it is not what keeps the results right. The few hundred
//! forged events that get through (one budget per 10 s window) are each harmless, for the
//! reasons given at [`Forgery`]: the edge and the control plane decide attribution, not
//! the caller.
//!
//! Local `wrangler dev` keeps a `CF-Connecting-IP` the client sends (Cloudflare sets it in
//! production): that is how the real visitors get addresses of their own.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use samplit_tests::api::{Api, Experiment, Site};
use samplit_tests::edge::RateLimits;
use samplit_tests::net::wait_for;
use samplit_tests::stack::{Stack, StackOptions};
use serde_json::{Value, json};
use sqlx::Connection;
use sqlx::postgres::PgConnection;

const GOAL: &str = "purchase";
const PAGE: &str = "https://shop.abuse.example/checkout";
const REAL_VISITORS: usize = 40;
/// Every other real visitor buys, for this much.
const ORDER_VALUE: f64 = 25.0;
const FORGED: usize = 10_000;
const IN_FLIGHT: usize = 32;
const ATTACKER_IP: &str = "198.51.100.66";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_forged_events_from_one_client_get_429s_and_do_not_move_the_results() {
    let started = Instant::now();
    let mut options = StackOptions::for_tests("samplit_abuse");
    options.rate_limits = RateLimits::PRODUCTION;
    let stack = match Stack::start(&options).await {
        Ok(stack) => stack,
        Err(e) => panic!("could not start the product: {e:#}"),
    };
    eprintln!(
        "[abuse] stack up in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    if let Err(e) = scenario(&stack).await {
        panic!("{e:#}\n{}", stack.logs(60));
    }
    eprintln!("[abuse] passed in {:.1} s", started.elapsed().as_secs_f64());
}

/// One arm's results: visitors, converters, revenue.
#[derive(Debug, Clone, PartialEq)]
struct ArmLine {
    arm_id: String,
    visitors: u64,
    conversions: u64,
    revenue_sum: f64,
}

async fn scenario(stack: &Stack) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let mut api = stack.api()?;
    let (site, experiment) = set_up(&mut api).await?;
    stack
        .edge
        .wait_for_snapshot(&http, &site.site_key, 1, Duration::from_secs(30))
        .await?;
    let edge = stack.edge.base_url().to_owned();

    // 1. Real traffic: each visitor from its own address, well inside the limits.
    let mut buyers = Vec::new();
    for i in 0..REAL_VISITORS {
        let visitor = format!("abuse-real-{i}");
        let ip = format!("10.20.0.{}", i + 1);
        let res = http
            .post(format!("{edge}/v1/assign"))
            .header("cf-connecting-ip", &ip)
            .json(&json!({"site_key": site.site_key, "url": PAGE, "visitor_id": visitor}))
            .send()
            .await?;
        ensure!(res.status() == 200, "assign {visitor}: {}", res.status());
        let body: Value = res.json().await?;
        ensure!(
            body["assignments"].as_array().is_some_and(|a| a.len() == 1),
            "assign {visitor}: {body}"
        );
        if i % 2 == 0 {
            let res = http
                .post(format!("{edge}/v1/events"))
                .header("cf-connecting-ip", &ip)
                .json(&json!({"site_key": site.site_key, "visitor_id": visitor,
                              "events": [{"type": "conversion", "goal": GOAL,
                                          "value": ORDER_VALUE, "id": format!("order-{i}")}]}))
                .send()
                .await?;
            ensure!(res.status() == 202, "events {visitor}: {}", res.status());
            buyers.push(visitor);
        }
    }
    let want_revenue = ORDER_VALUE * buyers.len() as f64;
    let before = wait_for(
        "the real traffic in the results",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || async {
            let lines = arm_lines(&api, &experiment).await?;
            let visitors: u64 = lines.iter().map(|l| l.visitors).sum();
            let conversions: u64 = lines.iter().map(|l| l.conversions).sum();
            let revenue: f64 = lines.iter().map(|l| l.revenue_sum).sum();
            Ok((visitors == REAL_VISITORS as u64
                && conversions == buyers.len() as u64
                && (revenue - want_revenue).abs() < 1e-9)
                .then_some(lines))
        },
    )
    .await?;
    eprintln!("[abuse] results before the attack: {before:?}");

    // 2. The attack.
    let mut db = PgConnection::connect(stack.database.url()).await?;
    let seen_before = seen_items(&mut db).await?;
    let attack = Attack {
        http: http.clone(),
        edge: edge.clone(),
        site_key: site.site_key.clone(),
        exposed: buyers[0].clone(),
    };
    let step = Instant::now();
    let tally = attack.run().await?;
    let elapsed = step.elapsed();
    eprintln!(
        "[abuse] {FORGED} forged events in {:.1} s from {ATTACKER_IP}: {} accepted (202), \
         {} refused with 429, {} refused with another 4xx, {} other answers, {} transport \
         errors; accepted by kind {:?}",
        elapsed.as_secs_f64(),
        tally.accepted,
        tally.limited,
        tally.refused,
        tally.other,
        tally.errors,
        tally.accepted_by_kind
    );
    ensure!(tally.limited > 0, "no 429 for {FORGED} requests");
    ensure!(
        tally.other == 0 && tally.errors == 0,
        "unexpected answers: {tally:?}"
    );
    // The binding counts per 10 s window: at most one budget per window the attack
    // touched (plus one for a window it started at the edge of).
    let windows = elapsed.as_secs() / 10 + 2;
    ensure!(
        tally.accepted as u64 <= windows * u64::from(RateLimits::PRODUCTION.events),
        "{} accepted in {windows} windows of {}",
        tally.accepted,
        RateLimits::PRODUCTION.events
    );

    // 3. Everything that got through is ingested: the kinds with fresh ids are marked
    //    seen (as unattributed); the others are rejected or duplicates, never seen anew.
    let want_seen = seen_before
        + (tally.accepted_by_kind[Forgery::NeverExposed as usize]
            + tally.accepted_by_kind[Forgery::UnknownGoal as usize]) as i64;
    let url = stack.database.url().to_owned();
    wait_for(
        &format!("{want_seen} seen items (the forged events that got through, ingested)"),
        Duration::from_secs(60),
        Duration::from_millis(500),
        || {
            let url = url.clone();
            async move {
                let mut db = PgConnection::connect(&url).await?;
                let seen = seen_items(&mut db).await?;
                ensure!(
                    seen <= want_seen,
                    "{seen} items seen, more than {want_seen}"
                );
                Ok((seen == want_seen).then_some(()))
            }
        },
    )
    .await?;
    // The rejected kinds leave no row to wait for: give their batches (sent in the same
    // queue batches as the counted ones, 1 s apart) a moment more.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let after = arm_lines(&api, &experiment).await?;
    ensure!(
        after == before,
        "the results moved:\nbefore {before:?}\nafter  {after:?}"
    );
    eprintln!("[abuse] results unchanged after the attack");
    Ok(())
}

async fn seen_items(db: &mut PgConnection) -> anyhow::Result<i64> {
    Ok(
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM ingest_seen_items")
            .fetch_one(db)
            .await?,
    )
}

/// The kinds of forged event, in turn. None can move the results, even when it gets past
/// the rate limit:
#[derive(Debug, Clone, Copy)]
enum Forgery {
    /// A conversion on the experiment's goal, with a large value, for a visitor id the
    /// edge never exposed: the control plane attributes conversions only to assignments
    /// it recorded from exposures, so it is counted `unattributed` and nothing else.
    NeverExposed = 0,
    /// A conversion for a real, exposed visitor on a goal name the experiment does not
    /// have, naming a made-up experiment and arm: events cannot name an experiment or an
    /// arm (those fields are ignored; attribution is by the site's goals and the
    /// visitor's recorded assignments), and no goal matches, so it is `unattributed`.
    UnknownGoal = 1,
    /// A conversion for a real buyer on the real goal, with a value far above the
    /// control plane's bound (1e12): rejected as `invalid_item`, never counted.
    HugeValue = 2,
    /// The same with a negative value: rejected as `invalid_item`.
    NegativeValue = 3,
    /// A replay of a real buyer's conversion, with the same client event id: the edge
    /// derives the same item id (site, visitor, id), so ingest counts it a duplicate.
    Replay = 4,
}

const KINDS: [Forgery; 5] = [
    Forgery::NeverExposed,
    Forgery::UnknownGoal,
    Forgery::HugeValue,
    Forgery::NegativeValue,
    Forgery::Replay,
];

#[derive(Debug, Default)]
struct Tally {
    accepted: usize,
    accepted_by_kind: [usize; 5],
    limited: usize,
    refused: usize,
    other: usize,
    errors: usize,
}

struct Attack {
    http: reqwest::Client,
    edge: String,
    site_key: String,
    /// A real visitor who was exposed and bought (`order-0`).
    exposed: String,
}

impl Attack {
    fn event(&self, i: usize) -> (Forgery, Value) {
        let kind = KINDS[i % KINDS.len()];
        let (visitor, event) = match kind {
            Forgery::NeverExposed => (
                format!("forged-{i}"),
                json!({"type": "conversion", "goal": GOAL, "value": 1e9}),
            ),
            Forgery::UnknownGoal => (
                self.exposed.clone(),
                json!({"type": "conversion", "goal": format!("forged-goal-{i}"), "value": 1e9,
                       "experiment_id": "00000000-0000-4000-8000-000000000000",
                       "arm_id": "forged-arm"}),
            ),
            Forgery::HugeValue => (
                self.exposed.clone(),
                json!({"type": "conversion", "goal": GOAL, "value": 1e15}),
            ),
            Forgery::NegativeValue => (
                self.exposed.clone(),
                json!({"type": "conversion", "goal": GOAL, "value": -1e6}),
            ),
            Forgery::Replay => (
                self.exposed.clone(),
                json!({"type": "conversion", "goal": GOAL, "value": ORDER_VALUE, "id": "order-0"}),
            ),
        };
        (
            kind,
            json!({"site_key": self.site_key, "visitor_id": visitor, "events": [event]}),
        )
    }

    /// Sends the [`FORGED`] events with at most [`IN_FLIGHT`] requests at once.
    async fn run(self) -> anyhow::Result<Tally> {
        let this = Arc::new(self);
        let next = Arc::new(AtomicUsize::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..IN_FLIGHT {
            let (this, next) = (Arc::clone(&this), Arc::clone(&next));
            tasks.spawn(async move {
                let mut tally = Tally::default();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= FORGED {
                        break tally;
                    }
                    let (kind, body) = this.event(i);
                    let sent = this
                        .http
                        .post(format!("{}/v1/events", this.edge))
                        .header("cf-connecting-ip", ATTACKER_IP)
                        .json(&body)
                        .send()
                        .await;
                    match sent {
                        Ok(res) => {
                            let status = res.status().as_u16();
                            let retry_after = res
                                .headers()
                                .get("retry-after")
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_owned);
                            let _ = res.bytes().await;
                            match status {
                                202 => {
                                    tally.accepted += 1;
                                    tally.accepted_by_kind[kind as usize] += 1;
                                }
                                429 if retry_after.as_deref() == Some("10") => tally.limited += 1,
                                // A client error the edge's own checks give a forged
                                // event (none does today) is a refusal too.
                                400..=428 | 430..=499 => tally.refused += 1,
                                _ => tally.other += 1,
                            }
                        }
                        Err(_) => tally.errors += 1,
                    }
                }
            });
        }
        let mut total = Tally::default();
        while let Some(done) = tasks.join_next().await {
            let t = done.context("an attack task panicked")?;
            total.accepted += t.accepted;
            total.limited += t.limited;
            total.refused += t.refused;
            total.other += t.other;
            total.errors += t.errors;
            for (sum, n) in total.accepted_by_kind.iter_mut().zip(t.accepted_by_kind) {
                *sum += n;
            }
        }
        Ok(total)
    }
}

/// Per arm: visitors, converters and revenue, from the results' `arms` analysis.
async fn arm_lines(api: &Api, experiment: &Experiment) -> anyhow::Result<Vec<ArmLine>> {
    let results = api.results_json(experiment.id).await?;
    let arms = results["analyses"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["scope"] == "arms"))
        .context("results: no `arms` analysis")?;
    let subjects = arms["subjects"]
        .as_array()
        .context("results: no subjects")?;
    let lines = arms["result"]["arms"].as_array();
    subjects
        .iter()
        .enumerate()
        .map(|(i, subject)| {
            let line = lines.and_then(|l| l.get(i));
            Ok(ArmLine {
                arm_id: subject["id"].as_str().context("subject id")?.to_owned(),
                visitors: line.and_then(|l| l["visitors"].as_u64()).unwrap_or(0),
                conversions: line.and_then(|l| l["conversions"].as_u64()).unwrap_or(0),
                revenue_sum: subject["revenue_sum"].as_f64().unwrap_or(0.0),
            })
        })
        .collect()
}

async fn set_up(api: &mut Api) -> anyhow::Result<(Site, Experiment)> {
    api.register(
        "owner@abuse.example",
        "abuse-password-0123",
        "Abuse Owner",
        "Abuse Shop",
    )
    .await?;
    let site = api
        .create_site("Abuse shop", &["shop.abuse.example"])
        .await?;
    let variant = |name: &str, text: &str, control: bool| {
        json!({"name": name, "is_control": control,
               "changes": if control { json!([]) } else {
                   json!([{"selector": "#buy", "action": {"type": "set_text", "text": text}}]) }})
    };
    let definition = json!({
        "name": "Checkout button",
        "kind": "single",
        "allocator": {"kind": "thompson"},
        "elements": [{
            "name": "Button",
            "selector": "#buy",
            "variants": [variant("Control", "", true), variant("Now", "Buy now", false)],
        }],
        "goals": [{"name": GOAL, "primary": true, "metric": "revenue",
                   "trigger": {"type": "custom", "event": GOAL}}],
    });
    let experiment = api.create_experiment(site.id, &definition).await?;
    let experiment = api.transition(&experiment, "start").await?;
    ensure!(
        experiment.status == "running",
        "status after start: {}",
        experiment.status
    );
    Ok((site, experiment))
}
