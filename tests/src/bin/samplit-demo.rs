//! `samplit-demo`: the whole product on this machine, with simulated visitors.
//!
//! Run through `cargo xtask demo` (which builds the Worker first). Steps, each printed
//! with its time:
//! 1. PostgreSQL: the server of `DATABASE_URL` if set, else a private cluster under
//!    `target/demo-pg` started from the machine's PostgreSQL binaries; a fresh database
//!    for this run, migrated with `samplit migrate`;
//! 2. the Worker under `wrangler dev` and `samplit serve` publishing to it;
//! 3. a demo organisation and user (generated password), a site, and a 3×3
//!    multi-element factorial experiment (headline A/B/C × call to action X/Y/Z) run by
//!    Thompson sampling;
//! 4. a landing page on localhost that loads the snippet from the edge (its server
//!    forwards `/v1/*` to the Worker, as a site routed through the Worker would, so the
//!    snippet is same-origin);
//! 5. simulated visitors through the real edge, converting at hidden true rates, and a
//!    results table refreshed every few seconds.
//!
//! Ctrl-C (or the end of `--duration` with `--exit`) stops everything it started: the
//! Worker and control plane process groups, the run's database, the private cluster.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use samplit_tests::api::{Api, Experiment};
use samplit_tests::control_plane::{ControlPlane, ControlPlaneConfig};
use samplit_tests::db::{PrivatePostgres, TestDatabase, redact};
use samplit_tests::edge::{Edge, EdgeConfig, RateLimits};
use samplit_tests::net::free_port;
use samplit_tests::visitors::{Simulator, SimulatorConfig, Tally};
use samplit_tests::{paths, random_secret, table};
use serde_json::json;
use uuid::Uuid;

const USAGE: &str = "usage: samplit-demo [--duration 60s] [--visitors-per-second 40] [--exit]
                    [--api-port 8080] [--edge-port 8787] [--page-port 8000] [--pg-dir DIR]
                    [--refresh 3s]

  --duration D             how long simulated visitors arrive (s, m, ms suffixes; default 60s)
  --visitors-per-second N  arrival rate (default 40)
  --exit                   stop everything when the duration ends (default: keep serving
                           until Ctrl-C, so you can explore the API and the page)
  --api-port, --edge-port, --page-port
                           preferred ports (a free one is used when taken)
  --pg-dir DIR             the private PostgreSQL cluster's directory (default target/demo-pg;
                           used only when DATABASE_URL is not set)
  --refresh D              how often the results table is printed (default 3s)";

/// Hidden true conversion rates of the factorial arms (headline, call to action).
const TRUE_RATES: [(&str, &str, f64); 9] = [
    ("A", "X", 0.025),
    ("A", "Y", 0.038),
    ("A", "Z", 0.028),
    ("B", "X", 0.042),
    ("B", "Y", 0.055),
    ("B", "Z", 0.045),
    ("C", "X", 0.021),
    ("C", "Y", 0.031),
    ("C", "Z", 0.036),
];
const HEADLINES: [(&str, &str); 3] = [
    ("A", "Ship experiments, not guesses"),
    ("B", "Find your best page while it earns"),
    ("C", "A/B testing at the edge"),
];
const CTAS: [(&str, &str); 3] = [
    ("X", "Start free trial"),
    ("Y", "Get started in 2 minutes"),
    ("Z", "See a live demo"),
];
const GOAL: &str = "signup";
/// The demo site's host: a development name (`*.localhost`, loopback everywhere), proven
/// by the file method against the demo page's server with the control plane's
/// development switches, so the console's visual editor can open it (through the Worker,
/// which fetches it from the page's port: `SAMPLIT_ORIGIN_OVERRIDE`).
const DOMAIN: &str = "demo.localhost";

#[derive(Debug)]
struct Options {
    duration: Duration,
    per_second: f64,
    exit: bool,
    api_port: u16,
    edge_port: u16,
    page_port: u16,
    pg_dir: PathBuf,
    refresh: Duration,
}

fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    let t = text.trim();
    let (number, unit) = match t.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let value: f64 = number
        .parse()
        .with_context(|| format!("not a duration: {text:?} (try 60s, 2m, 500ms)"))?;
    let secs = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => bail!("unknown unit in {text:?} (ms, s, m, h)"),
    };
    if !secs.is_finite() || secs <= 0.0 {
        bail!("a duration must be positive: {text:?}");
    }
    Ok(Duration::from_secs_f64(secs))
}

fn parse_args() -> anyhow::Result<Options> {
    let mut o = Options {
        duration: Duration::from_secs(60),
        per_second: 40.0,
        exit: false,
        api_port: 8080,
        edge_port: 8787,
        page_port: 8000,
        pg_dir: paths::target_dir().join("demo-pg"),
        refresh: Duration::from_secs(3),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
            None => (arg.clone(), None),
        };
        let mut value = || -> anyhow::Result<String> {
            inline
                .clone()
                .or_else(|| args.next())
                .with_context(|| format!("{name} needs a value\n{USAGE}"))
        };
        match name.as_str() {
            "--duration" => o.duration = parse_duration(&value()?)?,
            "--visitors-per-second" => {
                o.per_second = value()?
                    .parse()
                    .context("--visitors-per-second: a number")?;
                if !(o.per_second > 0.0 && o.per_second <= 2000.0) {
                    bail!("--visitors-per-second must be in (0, 2000]");
                }
            }
            "--exit" => o.exit = true,
            "--api-port" => o.api_port = value()?.parse().context("--api-port")?,
            "--edge-port" => o.edge_port = value()?.parse().context("--edge-port")?,
            "--page-port" => o.page_port = value()?.parse().context("--page-port")?,
            "--pg-dir" => o.pg_dir = PathBuf::from(value()?),
            "--refresh" => o.refresh = parse_duration(&value()?)?,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    Ok(o)
}

/// The preferred port when free, else any free one.
fn port(preferred: u16) -> anyhow::Result<u16> {
    if preferred != 0 && std::net::TcpListener::bind(("127.0.0.1", preferred)).is_ok() {
        Ok(preferred)
    } else {
        free_port()
    }
}

/// Prints a step's title, runs it, prints how long it took.
async fn step<T, F>(title: &str, f: F) -> anyhow::Result<T>
where
    F: std::future::Future<Output = anyhow::Result<T>>,
{
    println!("==> {title}");
    let started = Instant::now();
    let out = f.await.with_context(|| format!("step failed: {title}"))?;
    println!("<== {title}: {:.1} s", started.elapsed().as_secs_f64());
    Ok(out)
}

/// Everything the demo started; field order is drop (stop) order.
struct Running {
    control_plane: Option<ControlPlane>,
    edge: Option<Edge>,
    database: Option<TestDatabase>,
    postgres: Option<PrivatePostgres>,
    _workdir: tempfile::TempDir,
}

impl Running {
    /// Stops everything, printing each step.
    fn shut_down(&mut self) {
        if self.control_plane.is_none()
            && self.edge.is_none()
            && self.database.is_none()
            && self.postgres.is_none()
        {
            return;
        }
        println!("==> stopping everything the demo started");
        let started = Instant::now();
        if let Some(mut cp) = self.control_plane.take() {
            cp.stop();
            println!("    samplit serve stopped");
        }
        if let Some(edge) = self.edge.take() {
            edge.stop();
            println!("    wrangler dev (workerd) stopped");
        }
        if let Some(db) = self.database.take() {
            drop(db);
            println!("    the demo database dropped");
        }
        if let Some(mut pg) = self.postgres.take() {
            match pg.stop() {
                Ok(()) => println!("    the private PostgreSQL cluster stopped"),
                Err(e) => println!("    stopping the private PostgreSQL failed: {e:#}"),
            }
        }
        println!(
            "<== stopped in {:.1} s; nothing left running",
            started.elapsed().as_secs_f64()
        );
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shut_down();
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let options = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("samplit-demo: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    match run(options).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("samplit-demo: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(options: Options) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    spawn_signal_watch(stop.clone());
    let workdir = tempfile::Builder::new().prefix("samplit-demo-").tempdir()?;
    let mut running = Running {
        control_plane: None,
        edge: None,
        database: None,
        postgres: None,
        _workdir: workdir,
    };
    let workdir = running._workdir.path().to_path_buf();

    // 1. PostgreSQL.
    let server_url = match std::env::var("DATABASE_URL").ok().filter(|v| !v.is_empty()) {
        Some(url) => {
            println!(
                "==> PostgreSQL: using DATABASE_URL's server ({})",
                redact(&url)
            );
            url
        }
        None => {
            let dir = options.pg_dir.clone();
            let pg = step(
                &format!("PostgreSQL: private cluster in {}", dir.display()),
                async {
                    let pg_port = free_port()?;
                    tokio::task::spawn_blocking(move || PrivatePostgres::start(&dir, pg_port))
                        .await?
                },
            )
            .await?;
            println!("    listening on 127.0.0.1:{}", pg.port());
            let url = pg.url();
            running.postgres = Some(pg);
            url
        }
    };
    let binary = step(
        "build the control plane (cargo build -p samplit-control-plane)",
        async { tokio::task::spawn_blocking(paths::build_control_plane).await? },
    )
    .await?;
    let database = step(
        "create the demo database",
        TestDatabase::create(&server_url, "samplit_demo"),
    )
    .await?;
    let database_url = database.url().to_owned();
    running.database = Some(database);

    let api_port = port(options.api_port)?;
    let edge_port = port(options.edge_port)?;
    let page_port = port(options.page_port)?;
    let (ingest_secret, snapshot_secret) = (random_secret(), random_secret());
    let cp_config = ControlPlaneConfig {
        binary,
        database_url,
        port: api_port,
        jwt_secret: random_secret(),
        ingest_secret: ingest_secret.clone(),
        snapshot_secret: snapshot_secret.clone(),
        edge_url: Some(format!("http://127.0.0.1:{edge_port}")),
        publish_interval_secs: 2,
        log_filter: "info".to_owned(),
        extra_env: vec![
            // The console on plain http (loopback): its session cookie without `Secure`.
            ("SAMPLIT_DEV_INSECURE_COOKIES".to_owned(), "true".to_owned()),
            // The demo site's host is a development name, proven by the file method
            // over plain http on the demo page's port.
            (
                "SAMPLIT_DEV_ALLOW_LOCAL_DOMAINS".to_owned(),
                "true".to_owned(),
            ),
            ("SAMPLIT_DEV_VERIFY_PORT".to_owned(), page_port.to_string()),
            // The console's origin: the admin origin the visual editor talks to.
            (
                "SAMPLIT_CORS_ORIGINS".to_owned(),
                format!("http://127.0.0.1:{api_port}"),
            ),
        ],
    };
    step("apply migrations (samplit migrate)", async {
        ControlPlane::migrate(&cp_config, &workdir)
    })
    .await?;

    // 2. The Worker and the control plane.
    let edge = step(
        "start the edge Worker (wrangler dev, workerd)",
        Edge::start(&EdgeConfig {
            port: edge_port,
            control_plane_url: format!("http://127.0.0.1:{api_port}"),
            ingest_secret,
            snapshot_secret,
            max_retries: 100,
            retry_delay_secs: 1,
            // Results move within seconds of the simulated visitors (production: 5).
            batch_timeout_secs: 1,
            // The simulated visitors all come from 127.0.0.1.
            rate_limits: RateLimits::GENEROUS,
            // The editor's proxy (and a visit to demo.localhost on the edge's port)
            // fetches the demo page.
            origin_override: Some(format!("http://127.0.0.1:{page_port}")),
        }),
    )
    .await?;
    let edge_url = edge.base_url().to_owned();
    running.edge = Some(edge);
    let cp = step(
        "start the control plane (samplit serve)",
        ControlPlane::start(cp_config, &workdir),
    )
    .await?;
    let api_url = cp.base_url();
    running.control_plane = Some(cp);

    // 3. Demo organisation, user, site and experiment.
    let email = "demo@samplit.example";
    let password = random_secret()[..20].to_owned();
    let mut api = Api::new(&api_url)?;
    let site = step("create the demo organisation, user and site", async {
        api.register(email, &password, "Demo Admin", "Demo Company")
            .await?;
        api.create_site("Demo landing page", &[DOMAIN]).await
    })
    .await?;

    // 4. The landing page, which also publishes the domain's proof; then the proof.
    let page_url = format!("http://127.0.0.1:{page_port}/");
    let proof = api.domain_proof(site.id, DOMAIN).await?;
    step(
        "serve the demo landing page",
        serve_page(page_port, edge_url.clone(), site.site_key.clone(), proof),
    )
    .await?;
    step(
        &format!("verify {DOMAIN} (file method, against the demo page)"),
        async {
            let state = api.verify_domain(site.id, DOMAIN, "http_file").await?;
            if state["status"] != "verified" {
                bail!("{DOMAIN} is not verified: {state}");
            }
            Ok(())
        },
    )
    .await?;
    let experiment = step("create and start the demo experiment", async {
        let experiment = api
            .create_experiment(site.id, &experiment_definition())
            .await?;
        api.transition(&experiment, "start").await
    })
    .await?;
    let http = reqwest::Client::new();
    let version = step("publish the first snapshot to the edge", async {
        running
            .edge
            .as_ref()
            .context("edge stopped")?
            .wait_for_snapshot(&http, &site.site_key, 1, Duration::from_secs(60))
            .await
    })
    .await?;
    println!("    the edge holds snapshot v{version}");

    let rates = arm_rates(&experiment)?;
    println!();
    println!("Samplit is running.");
    println!("  console         {api_url}/app");
    println!("  log in          {email} / {password}");
    println!("  API docs        {api_url}/docs   (OpenAPI: {api_url}/api/v1/openapi.json)");
    println!("  demo page       {page_url}");
    println!(
        "  visual editor   {api_url}/app/experiments/new, then on the draft's page \"Edit … in the visual editor\" ({DOMAIN} is verified)"
    );
    println!(
        "  results         {api_url}/api/v1/experiments/{}/results",
        experiment.id
    );
    println!("  edge            {edge_url}/v1/healthz");
    println!(
        "  a token         curl -s {api_url}/api/v1/auth/login -H 'content-type: application/json' \\"
    );
    println!(
        "                    -d '{{\"email\":\"{email}\",\"password\":\"{password}\"}}' | jq -r .access_token"
    );
    println!(
        "  visitors        {} per second for {:.0} s through {edge_url}/v1/assign (true rates hidden from the bandit; best: B × Y 5.5%)",
        options.per_second,
        options.duration.as_secs_f64()
    );
    println!();

    // 5. Visitors and the table.
    let simulator = Simulator::new(SimulatorConfig {
        edge: edge_url.clone(),
        site_key: site.site_key.clone(),
        page_url: format!("https://{DOMAIN}/"),
        experiment_id: experiment.id.to_string(),
        goal: GOAL.to_owned(),
        rates: rates.iter().map(|(id, r)| (id.to_string(), *r)).collect(),
        seed: rand::random(),
        prefix: format!("demo-{}", &Uuid::new_v4().simple().to_string()[..8]),
        max_in_flight: 16,
    })?;
    let tally = Arc::new(Mutex::new(Tally::default()));
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let visitors_stop = Arc::new(AtomicBool::new(false));
    let driver = {
        let (sim, vs, tally, errors, rate) = (
            simulator.clone(),
            visitors_stop.clone(),
            tally.clone(),
            errors.clone(),
            options.per_second,
        );
        tokio::spawn(async move { sim.run_paced(0, rate, 16, vs, tally, errors).await })
    };
    let started = Instant::now();
    let interactive = std::io::stdout().is_terminal();
    let mut visitors_done = false;
    let dashboard = Dashboard {
        api: &api,
        site_id: site.id,
        experiment: &experiment,
        rates: &rates,
        tally: &tally,
        errors: &errors,
        started,
    };
    loop {
        let tick = Instant::now();
        while tick.elapsed() < options.refresh && !stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if !visitors_done && started.elapsed() >= options.duration {
            visitors_stop.store(true, Ordering::Relaxed);
            visitors_done = true;
        }
        dashboard.print(interactive).await;
        if stop.load(Ordering::Relaxed) {
            println!("Ctrl-C: stopping.");
            break;
        }
        if visitors_done {
            if options.exit {
                // Let the queue drain so the last table is complete.
                wait_for_drain(&api, experiment.id, &tally).await;
                dashboard.print(false).await;
                break;
            }
            println!(
                "Visitors stopped after {:.0} s. Everything keeps running: press Ctrl-C to stop.",
                options.duration.as_secs_f64()
            );
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            break;
        }
    }
    visitors_stop.store(true, Ordering::Relaxed);
    let _ = tokio::time::timeout(Duration::from_secs(20), driver).await;
    let sent = tally.lock().map(|t| t.clone()).unwrap_or_default();
    println!(
        "demo: {} visitors sent, {} conversions, {} errors",
        sent.visitors,
        sent.conversions(),
        errors.lock().map(|e| e.len()).unwrap_or(0)
    );
    running.shut_down();
    Ok(())
}

/// Sets `stop` on Ctrl-C or SIGTERM.
fn spawn_signal_watch(stop: Arc<AtomicBool>) {
    tokio::spawn(async move {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            () = term => {},
        }
        stop.store(true, Ordering::Relaxed);
    });
}

/// The 3×3 factorial experiment: headline A/B/C × call to action X/Y/Z, Thompson
/// sampling (burn-in 50 visitors per arm so the demo moves within a minute).
fn experiment_definition() -> serde_json::Value {
    let variants = |list: &[(&str, &str)], selector: &str| -> Vec<serde_json::Value> {
        list.iter()
            .enumerate()
            .map(|(i, (name, text))| {
                json!({"name": name, "is_control": i == 0,
                       "changes": [{"selector": selector, "action": {"type": "set_text", "text": text}}]})
            })
            .collect()
    };
    json!({
        "name": "Landing page: headline × call to action",
        "description": "The original's 3×3 demo: which headline and button text sign up most visitors?",
        "kind": "factorial",
        "allocator": {"kind": "thompson", "min_exposures": 50},
        "elements": [
            {"name": "Headline", "selector": "#headline", "variants": variants(&HEADLINES, "#headline")},
            {"name": "Call to action", "selector": "#cta", "variants": variants(&CTAS, "#cta")},
        ],
        "goals": [{"name": GOAL, "primary": true, "trigger": {"type": "custom", "event": GOAL}}],
    })
}

/// Arm id → hidden true rate, from the arm's variants' names.
fn arm_rates(experiment: &Experiment) -> anyhow::Result<HashMap<Uuid, f64>> {
    let variant_name: HashMap<Uuid, &str> = experiment
        .elements
        .iter()
        .flat_map(|e| e.variants.iter().map(|v| (v.id, v.name.as_str())))
        .collect();
    experiment
        .arms
        .iter()
        .map(|arm| {
            let names: Vec<&str> = arm
                .variant_ids
                .iter()
                .map(|v| variant_name.get(v).copied().unwrap_or("?"))
                .collect();
            let rate = TRUE_RATES
                .iter()
                .find(|(h, c, _)| names == [*h, *c])
                .map(|(_, _, r)| *r)
                .with_context(|| format!("arm {} has no true rate ({names:?})", arm.name))?;
            Ok((arm.id, rate))
        })
        .collect()
}

/// What the results table is printed from.
struct Dashboard<'a> {
    api: &'a Api,
    site_id: Uuid,
    experiment: &'a Experiment,
    rates: &'a HashMap<Uuid, f64>,
    tally: &'a Arc<Mutex<Tally>>,
    errors: &'a Arc<Mutex<Vec<String>>>,
    started: Instant,
}

impl Dashboard<'_> {
    /// Prints the sent counts and the results table (`clear`: clear the terminal first).
    async fn print(&self, clear: bool) {
        let Self {
            api,
            site_id,
            experiment,
            rates,
            tally,
            errors,
            started,
        } = self;
        let (site_id, started) = (*site_id, *started);
        let sent = tally.lock().map(|t| t.clone()).unwrap_or_default();
        let (error_count, last_error) = errors
            .lock()
            .map(|e| (e.len(), e.last().cloned()))
            .unwrap_or((0, None));
        let arms = match api.arm_results(experiment.id).await {
            Ok(arms) => arms,
            Err(e) => {
                println!("(results unavailable: {e:#})");
                return;
            }
        };
        let propensities: HashMap<Uuid, f64> = match api.publications(site_id).await {
            Ok(p) => p
                .iter()
                .find(|p| p.status == "published")
                .map(|p| p.propensities(experiment.id).into_iter().collect())
                .unwrap_or_default(),
            Err(_) => HashMap::new(),
        };
        if clear {
            print!("\x1b[2J\x1b[H");
        }
        println!(
            "t = {:>4.0} s   visitors sent {}   conversions sent {}   edge errors {}",
            started.elapsed().as_secs_f64(),
            sent.visitors,
            sent.conversions(),
            error_count
        );
        if let Some(e) = last_error {
            println!("  last error: {e}");
        }
        print!("{}", table::render(&arms, &propensities, rates));
        println!(
            "(P(best): chance to be best from the results; propensity: share of new visitors in the latest snapshot; * = current leader)"
        );
        println!();
    }
}

/// Waits (at most 30 s) until the results count every visitor sent.
async fn wait_for_drain(api: &Api, experiment_id: Uuid, tally: &Arc<Mutex<Tally>>) {
    let sent = tally.lock().map(|t| t.exposures()).unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(arms) = api.arm_results(experiment_id).await
            && arms.iter().map(|a| a.visitors).sum::<u64>() >= sent
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

// --- the landing page ---------------------------------------------------------------------

#[derive(Clone)]
struct PageState {
    edge: String,
    site_key: String,
    /// `samplit-verification=…`, served at the well-known path.
    proof: String,
    http: reqwest::Client,
}

/// Serves the page on 127.0.0.1:`port` in the background.
async fn serve_page(
    port: u16,
    edge: String,
    site_key: String,
    proof: String,
) -> anyhow::Result<()> {
    let state = PageState {
        edge,
        site_key,
        proof,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()?,
    };
    let app = axum::Router::new()
        .route("/", axum::routing::get(page))
        .route(
            "/.well-known/samplit-verification.txt",
            axum::routing::get(|State(state): State<PageState>| async move { state.proof }),
        )
        .route("/v1/{*rest}", axum::routing::any(forward))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| format!("binding 127.0.0.1:{port}"))?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(())
}

async fn page(State(state): State<PageState>) -> Html<String> {
    Html(PAGE.replace("{SITE_KEY}", &state.site_key))
}

/// Forwards `/v1/*` to the Worker: method, query, body, and the headers the edge reads
/// (cookies, content type, user agent); back come the status, body, and the headers the
/// snippet and browser need (content type, cookies, caching).
async fn forward(State(state): State<PageState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| parts.uri.path().to_owned());
    let Ok(body) = axum::body::to_bytes(body, 64 * 1024).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let Ok(method) = reqwest::Method::from_bytes(parts.method.as_str().as_bytes()) else {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    };
    let mut upstream = state
        .http
        .request(method, format!("{}{path_and_query}", state.edge));
    for name in [
        header::COOKIE,
        header::CONTENT_TYPE,
        header::USER_AGENT,
        header::IF_NONE_MATCH,
    ] {
        if let Some(value) = parts.headers.get(&name).and_then(|v| v.to_str().ok()) {
            upstream = upstream.header(name.as_str(), value);
        }
    }
    let answer = match upstream.body(body.to_vec()).send().await {
        Ok(a) => a,
        Err(_) => return StatusCode::BAD_GATEWAY.into_response(),
    };
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut headers = HeaderMap::new();
    for name in ["content-type", "set-cookie", "etag", "cache-control"] {
        for value in answer.headers().get_all(name) {
            if let (Ok(n), Ok(v)) = (
                header::HeaderName::from_bytes(name.as_bytes()),
                header::HeaderValue::from_bytes(value.as_bytes()),
            ) {
                headers.append(n, v);
            }
        }
    }
    let bytes = answer.bytes().await.unwrap_or_default();
    (status, headers, Body::from(bytes)).into_response()
}

const PAGE: &str = r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Samplit demo landing page</title>
<!-- The site snippet, as GET /api/v1/sites/{id}/snippet gives it. This page's server
     forwards /v1/* to the edge Worker, so the snippet and its calls are same-origin. -->
<script src="/v1/samplit.js?site={SITE_KEY}" data-site-key="{SITE_KEY}"></script>
<style>
  body { font: 18px/1.5 system-ui, sans-serif; max-width: 40rem; margin: 4rem auto; padding: 0 1rem; }
  #cta { font-size: 1.1rem; padding: .7rem 1.4rem; border: 0; border-radius: .4rem; background: #2459d6; color: #fff; cursor: pointer; }
  .note { color: #666; font-size: .9rem; margin-top: 3rem; }
</style>
</head>
<body>
  <h1 id="headline">Ship experiments, not guesses</h1>
  <p>Samplit assigns every visitor at the edge and learns which page works best while it runs.</p>
  <button id="cta" type="button">Start free trial</button>
  <p id="thanks" hidden>Thanks! That sign-up was sent to the edge as a conversion.</p>
  <p class="note">Reload with a fresh cookie (private window) to see another combination: the
  headline and the button text are this visitor's arm of the 3×3 experiment.</p>
  <script>
    document.getElementById('cta').addEventListener('click', function () {
      if (window.samplit) window.samplit.track('signup');
      document.getElementById('thanks').hidden = false;
    });
  </script>
</body>
</html>
"##;
