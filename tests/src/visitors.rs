//! A visitor simulator: each visitor asks the edge for its assignments
//! (`POST /v1/assign`, as the snippet does) and converts with the true rate of the arm
//! it got (`POST /v1/events`). It counts exactly what it sent, per arm: an exposure for
//! every assignment served (one per visitor, ids are unique), a conversion for every
//! event the edge accepted (202). Conversions are decided by an RNG seeded from
//! (seed, visitor index), so a run is reproducible given the arms served.
//!
//! [`Simulator::run`] drives a fixed range of visitors with bounded concurrency (a few
//! worker tasks sharing one connection pool); [`Simulator::run_paced`] drives visitors at
//! a steady rate until told to stop (the demo).

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use rand::{Rng, SeedableRng};
use serde::Deserialize;
use serde_json::json;

/// A desktop browser's user agent: the edge excludes bot-like ones.
pub const BROWSER_UA: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36";

/// What one visitor got and did.
#[derive(Debug, Clone, PartialEq)]
pub struct Visit {
    pub index: u64,
    /// The arm served in the simulated experiment (None: no assignment).
    pub arm_id: Option<String>,
    pub propensity: f64,
    pub snapshot_version: u64,
    pub converted: bool,
}

/// Counts per arm.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArmTally {
    /// Visitors served this arm (each sends exactly one exposure).
    pub exposures: u64,
    /// Conversions accepted by the edge (at most one per visitor).
    pub conversions: u64,
}

/// What a run sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    pub visitors: u64,
    /// Visitors the edge gave no assignment in the experiment.
    pub unassigned: u64,
    pub arms: BTreeMap<String, ArmTally>,
}

impl Tally {
    pub fn add(&mut self, visit: &Visit) {
        self.visitors += 1;
        match &visit.arm_id {
            None => self.unassigned += 1,
            Some(arm) => {
                let t = self.arms.entry(arm.clone()).or_default();
                t.exposures += 1;
                if visit.converted {
                    t.conversions += 1;
                }
            }
        }
    }

    pub fn merge(&mut self, other: &Tally) {
        self.visitors += other.visitors;
        self.unassigned += other.unassigned;
        for (arm, t) in &other.arms {
            let mine = self.arms.entry(arm.clone()).or_default();
            mine.exposures += t.exposures;
            mine.conversions += t.conversions;
        }
    }

    pub fn exposures(&self) -> u64 {
        self.arms.values().map(|t| t.exposures).sum()
    }

    pub fn conversions(&self) -> u64 {
        self.arms.values().map(|t| t.conversions).sum()
    }
}

/// Visitors of one site, converting on one goal at the given true rates per arm.
#[derive(Debug, Clone)]
pub struct Simulator {
    http: reqwest::Client,
    edge: String,
    site_key: String,
    page_url: String,
    experiment_id: String,
    goal: String,
    rates: HashMap<String, f64>,
    seed: u64,
    prefix: String,
}

#[derive(Debug, Deserialize)]
struct AssignResponse {
    assignments: Vec<AssignmentView>,
}

#[derive(Debug, Deserialize)]
struct AssignmentView {
    experiment_id: String,
    arm_id: String,
    propensity: f64,
    snapshot_version: u64,
}

/// What a [`Simulator`] sends where.
#[derive(Debug, Clone)]
pub struct SimulatorConfig {
    /// The Worker's origin.
    pub edge: String,
    pub site_key: String,
    /// The page the visitors are on (`url` of `/v1/assign`).
    pub page_url: String,
    /// The experiment whose arm each visitor gets.
    pub experiment_id: String,
    /// The goal a converting visitor sends (`goal` of a `conversion` event).
    pub goal: String,
    /// True conversion rate by arm id.
    pub rates: HashMap<String, f64>,
    /// Seeds the conversion draws.
    pub seed: u64,
    /// Visitor ids are `<prefix>-<index>`: unique per run.
    pub prefix: String,
    /// Sizes the connection pool.
    pub max_in_flight: usize,
}

impl Simulator {
    pub fn new(config: SimulatorConfig) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .pool_max_idle_per_host(config.max_in_flight)
            .user_agent(BROWSER_UA)
            .build()?;
        Ok(Self {
            http,
            edge: config.edge.trim_end_matches('/').to_owned(),
            site_key: config.site_key,
            page_url: config.page_url,
            experiment_id: config.experiment_id,
            goal: config.goal,
            rates: config.rates,
            seed: config.seed,
            prefix: config.prefix,
        })
    }

    pub fn visitor_id(&self, index: u64) -> String {
        format!("{}-{index:08}", self.prefix)
    }

    /// Whether visitor `index` converts on an arm with true rate `rate`: a uniform draw
    /// seeded from (seed, index), compared with the rate.
    pub fn converts(&self, index: u64, rate: f64) -> bool {
        let mut rng = rand::rngs::StdRng::seed_from_u64(
            self.seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        rng.r#gen::<f64>() < rate
    }

    /// One visitor: assignment, then a conversion if the arm's rate says so.
    pub async fn visit(&self, index: u64) -> anyhow::Result<Visit> {
        let visitor_id = self.visitor_id(index);
        let response = self
            .http
            .post(format!("{}/v1/assign", self.edge))
            .json(
                &json!({"site_key": self.site_key, "url": self.page_url, "visitor_id": visitor_id}),
            )
            .send()
            .await
            .with_context(|| format!("visitor {visitor_id}: POST /v1/assign"))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            bail!("visitor {visitor_id}: POST /v1/assign answered {status}: {text}");
        }
        let answer: AssignResponse = serde_json::from_str(&text)
            .with_context(|| format!("visitor {visitor_id}: assign answer {text}"))?;
        let Some(a) = answer
            .assignments
            .into_iter()
            .find(|a| a.experiment_id == self.experiment_id)
        else {
            return Ok(Visit {
                index,
                arm_id: None,
                propensity: 0.0,
                snapshot_version: 0,
                converted: false,
            });
        };
        let rate = self.rates.get(&a.arm_id).copied().with_context(|| {
            format!(
                "visitor {visitor_id}: the edge served arm {} which has no true rate",
                a.arm_id
            )
        })?;
        let converted = self.converts(index, rate);
        if converted {
            let response = self
                .http
                .post(format!("{}/v1/events", self.edge))
                .json(&json!({"site_key": self.site_key, "visitor_id": visitor_id,
                              "events": [{"type": "conversion", "goal": self.goal}]}))
                .send()
                .await
                .with_context(|| format!("visitor {visitor_id}: POST /v1/events"))?;
            let status = response.status();
            if status != reqwest::StatusCode::ACCEPTED {
                let text = response.text().await.unwrap_or_default();
                bail!("visitor {visitor_id}: POST /v1/events answered {status}: {text}");
            }
        }
        Ok(Visit {
            index,
            arm_id: Some(a.arm_id),
            propensity: a.propensity,
            snapshot_version: a.snapshot_version,
            converted,
        })
    }

    /// Visitors `range`, at most `concurrency` in flight. Stops at the first failure.
    /// Returns the tally and every visit, by index.
    pub async fn run(
        &self,
        range: Range<u64>,
        concurrency: usize,
    ) -> anyhow::Result<(Tally, Vec<Visit>)> {
        let next = Arc::new(AtomicU64::new(range.start));
        let failed = Arc::new(AtomicBool::new(false));
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..concurrency.max(1) {
            let (sim, next, failed, end) = (self.clone(), next.clone(), failed.clone(), range.end);
            workers.spawn(async move {
                let mut visits = Vec::new();
                while !failed.load(Ordering::Relaxed) {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= end {
                        break;
                    }
                    match sim.visit(index).await {
                        Ok(v) => visits.push(v),
                        Err(e) => {
                            failed.store(true, Ordering::Relaxed);
                            return Err(e);
                        }
                    }
                }
                Ok(visits)
            });
        }
        let mut visits = Vec::with_capacity(usize::try_from(range.end - range.start).unwrap_or(0));
        let mut first_error = None;
        while let Some(joined) = workers.join_next().await {
            match joined.context("a visitor task panicked")? {
                Ok(v) => visits.extend(v),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        visits.sort_by_key(|v| v.index);
        let mut tally = Tally::default();
        for v in &visits {
            tally.add(v);
        }
        Ok((tally, visits))
    }

    /// Visitors at `per_second` (indices from `first`), at most `concurrency` in flight,
    /// until `stop` is set. Each visit is added to `tally`; failures are counted in
    /// `errors` (the demo keeps going and reports them). A tick with every worker busy is
    /// skipped rather than queued, so a slow edge lowers the rate instead of building a
    /// backlog.
    pub async fn run_paced(
        &self,
        first: u64,
        per_second: f64,
        concurrency: usize,
        stop: Arc<AtomicBool>,
        tally: Arc<Mutex<Tally>>,
        errors: Arc<Mutex<Vec<String>>>,
    ) {
        let (tx, rx) = tokio::sync::mpsc::channel::<u64>(concurrency.max(1));
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..concurrency.max(1) {
            let (sim, rx, tally, errors) =
                (self.clone(), rx.clone(), tally.clone(), errors.clone());
            workers.spawn(async move {
                loop {
                    let next = rx.lock().await.recv().await;
                    let Some(index) = next else { break };
                    match sim.visit(index).await {
                        Ok(v) => {
                            if let Ok(mut t) = tally.lock() {
                                t.add(&v);
                            }
                        }
                        Err(e) => {
                            if let Ok(mut errs) = errors.lock() {
                                errs.push(format!("{e:#}"));
                            }
                        }
                    }
                }
            });
        }
        let period = Duration::from_secs_f64(1.0 / per_second.max(0.1));
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut index = first;
        while !stop.load(Ordering::Relaxed) {
            ticker.tick().await;
            if tx.try_send(index).is_ok() {
                index += 1;
            }
        }
        drop(tx);
        while workers.join_next().await.is_some() {}
    }
}
