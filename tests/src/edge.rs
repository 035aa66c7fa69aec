//! The Worker under workerd: `wrangler dev --local` with a generated config in a
//! temporary directory. The config has no `[build]` table (the Worker is built once by
//! `cargo xtask edge-build`; wrangler starts in about a second), local KV and a Queue
//! whose consumer is the same Worker, forwarding to the control plane with a 1 s batch
//! timeout and 1 s retry delay (so a control-plane outage is retried quickly), and the
//! two rate-limiting bindings with the limits asked for. Secrets go
//! in a `.dev.vars` file next to the config, not on the command line. Local state
//! (`--persist-to`) lives in the temporary directory and goes with it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::net::wait_for;
use crate::paths;
use crate::process::Proc;

/// How the Worker is configured.
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    pub port: u16,
    /// `SAMPLIT_CONTROL_PLANE_URL`: the consumer POSTs to `{url}/api/v1/ingest`.
    pub control_plane_url: String,
    pub ingest_secret: String,
    pub snapshot_secret: String,
    /// Queue consumer: deliveries of a failing batch before it goes to the DLQ.
    pub max_retries: u32,
    /// Queue consumer: seconds between deliveries of a failing batch.
    pub retry_delay_secs: u32,
    /// The `[[ratelimits]]` bindings' limits.
    pub rate_limits: RateLimits,
}

/// Requests per 10 s per site and client address that the Worker lets through on
/// `/v1/assign` and `/v1/events` (edge-worker/src/ratelimit.rs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    pub assign: u32,
    pub events: u32,
}

impl RateLimits {
    /// The repository's `wrangler.toml`: what production runs.
    pub const PRODUCTION: Self = Self {
        assign: 300,
        events: 120,
    };
    /// Far above anything one loopback client sends: for tests and the demo, whose
    /// simulated visitors all come from 127.0.0.1.
    pub const GENEROUS: Self = Self {
        assign: 1_000_000,
        events: 1_000_000,
    };
}

/// A running Worker.
#[derive(Debug)]
pub struct Edge {
    // Field order is drop order: the process goes before its directory.
    proc: Proc,
    base: String,
    _dir: tempfile::TempDir,
}

/// One site in `GET /v1/healthz?site_key=`.
#[derive(Debug, Clone, Deserialize)]
pub struct SiteHealth {
    pub site_key: String,
    /// `None`: the Worker serves no snapshot for the site.
    pub version: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct Health {
    site: SiteHealth,
}

impl Edge {
    /// Writes the config and starts `wrangler dev`; ready when `/v1/healthz` answers.
    pub async fn start(config: &EdgeConfig) -> anyhow::Result<Self> {
        paths::require_edge_build()?;
        let dir = tempfile::Builder::new()
            .prefix("samplit-edge-")
            .tempdir()
            .context("creating the Worker's temporary directory")?;
        let config_path = write_config(dir.path(), config)?;
        let state = dir.path().join("state");
        let log = dir.path().join("wrangler.log");
        let wrangler = paths::wrangler();
        let mut command = Command::new(&wrangler);
        command
            .current_dir(dir.path())
            .arg("dev")
            .arg("--local")
            .args(["--ip", "127.0.0.1", "--port", &config.port.to_string()])
            .arg("--persist-to")
            .arg(&state)
            .arg("--config")
            .arg(&config_path)
            .args([
                "--show-interactive-dev-session=false",
                "--log-level",
                "info",
            ])
            // No calls home, no update check, no cf.json fetch; caches in the temp dir.
            .env("WRANGLER_SEND_METRICS", "false")
            .env("WRANGLER_HIDE_BANNER", "true")
            .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
            .env("XDG_CONFIG_HOME", dir.path().join("xdg-config"))
            .env("XDG_CACHE_HOME", dir.path().join("xdg-cache"))
            .env("CI", "true");
        let started = Instant::now();
        let mut proc = Proc::spawn("wrangler dev", command, &log)?;
        let base = format!("http://127.0.0.1:{}", config.port);
        let health_url = format!("{base}/v1/healthz");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let outcome = wait_for(
            &format!("wrangler dev to answer {health_url}"),
            Duration::from_secs(90),
            Duration::from_millis(200),
            || {
                let exited = proc.exited();
                let request = http.get(&health_url).send();
                async move {
                    if let Some(status) = exited {
                        bail!("wrangler dev exited early ({status})");
                    }
                    Ok(match request.await {
                        Ok(r) if r.status().is_success() => Some(()),
                        _ => None,
                    })
                }
            },
        )
        .await;
        if let Err(e) = outcome {
            let tail = proc.log_tail(60);
            return Err(e).context(format!("--- wrangler log ---\n{tail}"));
        }
        eprintln!(
            "[harness] Worker (wrangler dev) ready on {base} in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        Ok(Self {
            proc,
            base,
            _dir: dir,
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    pub fn log_tail(&self, lines: usize) -> String {
        self.proc.log_tail(lines)
    }

    pub fn log_path(&self) -> PathBuf {
        self.proc.log_path().to_path_buf()
    }

    /// The snapshot version the Worker serves for `site_key`
    /// (`GET /v1/healthz?site_key=`), `None` when it serves none.
    pub async fn site_version(
        &self,
        http: &reqwest::Client,
        site_key: &str,
    ) -> anyhow::Result<Option<u64>> {
        let health: Health = http
            .get(format!("{}/v1/healthz", self.base))
            .query(&[("site_key", site_key)])
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        anyhow::ensure!(
            health.site.site_key == site_key,
            "healthz answered for another site"
        );
        Ok(health.site.version)
    }

    /// Waits until the Worker holds a snapshot of `site_key` with version ≥ `min_version`;
    /// returns the version.
    pub async fn wait_for_snapshot(
        &self,
        http: &reqwest::Client,
        site_key: &str,
        min_version: u64,
        timeout: Duration,
    ) -> anyhow::Result<u64> {
        wait_for(
            &format!("the Worker to hold snapshot version ≥ {min_version} of site {site_key}"),
            timeout,
            Duration::from_millis(200),
            || async {
                let version = self.site_version(http, site_key).await.ok().flatten();
                Ok(version.filter(|v| *v >= min_version))
            },
        )
        .await
    }

    /// Stops wrangler (and workerd).
    pub fn stop(mut self) {
        self.proc.stop(Duration::from_secs(5));
    }
}

/// The generated `wrangler.toml` and `.dev.vars`; returns the config's path.
fn write_config(dir: &Path, c: &EdgeConfig) -> anyhow::Result<PathBuf> {
    let main = paths::edge_shim();
    let main = main
        .to_str()
        .context("the Worker's path is not UTF-8")?
        .to_owned();
    let toml = format!(
        r#"# Generated by samplit-tests for a local run; see tests/src/edge.rs.
name = "samplit-edge-local"
main = {main:?}
compatibility_date = "2026-04-01"

[vars]
SAMPLIT_CONTROL_PLANE_URL = {cp:?}

[[kv_namespaces]]
binding = "SNAPSHOTS"
id = "local-snapshots"

[[queues.producers]]
binding = "EVENTS"
queue = "samplit-events"

[[queues.consumers]]
queue = "samplit-events"
max_batch_size = 100
max_batch_timeout = 1
max_retries = {retries}
retry_delay = {delay}
dead_letter_queue = "samplit-events-dlq"

# As in production, the dead-letter queue is drained by the same Worker.
[[queues.consumers]]
queue = "samplit-events-dlq"
max_batch_size = 100
max_batch_timeout = 1
max_retries = {retries}
retry_delay = {delay}

# Rate limits per site and client address (edge-worker/src/ratelimit.rs).
[[ratelimits]]
name = "SAMPLIT_RATE_ASSIGN"
namespace_id = "1001"
simple = {{ limit = {assign}, period = 10 }}

[[ratelimits]]
name = "SAMPLIT_RATE_EVENTS"
namespace_id = "1002"
simple = {{ limit = {events}, period = 10 }}
"#,
        cp = c.control_plane_url,
        retries = c.max_retries,
        delay = c.retry_delay_secs,
        assign = c.rate_limits.assign,
        events = c.rate_limits.events,
    );
    let path = dir.join("wrangler.toml");
    std::fs::write(&path, toml).context("writing wrangler.toml")?;
    let vars = format!(
        "SAMPLIT_SNAPSHOT_SECRET={}\nSAMPLIT_INGEST_SECRET={}\n",
        c.snapshot_secret, c.ingest_secret
    );
    std::fs::write(dir.join(".dev.vars"), vars).context("writing .dev.vars")?;
    Ok(path)
}
