//! The whole product on loopback: a fresh database, the Worker under `wrangler dev`
//! and `samplit serve` publishing to it, sharing secrets generated for this run.
//!
//! Ports are chosen first, so each side can be given the other's URL. Dropping a
//! [`Stack`] stops the Worker, then the control plane, then drops the database.

use std::time::Instant;

use anyhow::Context;

use crate::api::Api;
use crate::control_plane::{ControlPlane, ControlPlaneConfig};
use crate::db::TestDatabase;
use crate::edge::{Edge, EdgeConfig, RateLimits};
use crate::net::free_port;
use crate::{paths, random_secret};

/// What to start.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// A PostgreSQL server URL (any database on it): the run creates its own database.
    pub database_server_url: String,
    /// Prefix of the run's database name.
    pub database_prefix: String,
    /// `SAMPLIT_PUBLISH_INTERVAL` in seconds.
    pub publish_interval_secs: u64,
    /// Deliveries of a failing event batch before the queue gives up on it.
    pub queue_max_retries: u32,
    /// Fixed ports (0: any free one).
    pub control_plane_port: u16,
    pub edge_port: u16,
    /// `RUST_LOG` of `samplit serve`.
    pub log_filter: String,
    /// The Worker's rate limits.
    pub rate_limits: RateLimits,
    /// Seconds the events queue's consumer waits to fill a batch (production: 5).
    pub queue_batch_timeout_secs: u32,
}

impl StackOptions {
    /// Defaults for tests: `DATABASE_URL`'s server, publishing every second, generous
    /// queue retries (a control-plane outage of a minute loses nothing), generous rate
    /// limits (every simulated visitor comes from 127.0.0.1).
    pub fn for_tests(database_prefix: &str) -> Self {
        Self {
            database_server_url: crate::db::server_url_from_env(),
            database_prefix: database_prefix.to_owned(),
            publish_interval_secs: 1,
            queue_max_retries: 100,
            control_plane_port: 0,
            edge_port: 0,
            log_filter: "info".to_owned(),
            rate_limits: RateLimits::GENEROUS,
            queue_batch_timeout_secs: 1,
        }
    }
}

/// The running product. Field order is drop order.
#[derive(Debug)]
pub struct Stack {
    pub edge: Edge,
    pub control_plane: ControlPlane,
    pub database: TestDatabase,
    pub workdir: tempfile::TempDir,
}

impl Stack {
    /// Builds the control plane (when needed), checks the Worker build, creates the
    /// database and starts the Worker and `samplit serve`, printing each step's time.
    pub async fn start(options: &StackOptions) -> anyhow::Result<Self> {
        paths::require_edge_build()?;
        let binary = tokio::task::spawn_blocking(paths::build_control_plane)
            .await
            .context("the build task panicked")??;
        let started = Instant::now();
        let database =
            TestDatabase::create(&options.database_server_url, &options.database_prefix).await?;
        eprintln!(
            "[harness] database {} created in {:.1} s",
            database.name(),
            started.elapsed().as_secs_f64()
        );
        let workdir = tempfile::Builder::new()
            .prefix("samplit-run-")
            .tempdir()
            .context("creating the run's directory")?;
        let pick = |p: u16| if p == 0 { free_port() } else { Ok(p) };
        let cp_port = pick(options.control_plane_port)?;
        let edge_port = pick(options.edge_port)?;
        let (ingest_secret, snapshot_secret) = (random_secret(), random_secret());

        let mut edge_config = EdgeConfig {
            port: edge_port,
            control_plane_url: format!("http://127.0.0.1:{cp_port}"),
            ingest_secret: ingest_secret.clone(),
            snapshot_secret: snapshot_secret.clone(),
            max_retries: options.queue_max_retries,
            retry_delay_secs: 1,
            batch_timeout_secs: options.queue_batch_timeout_secs,
            rate_limits: options.rate_limits,
            origin_override: None,
        };
        // A port picked for us may be taken by the time wrangler binds it: try again on
        // another one (at most twice), saying why.
        let mut attempt = 1;
        let edge = loop {
            match Edge::start(&edge_config).await {
                Ok(edge) => break edge,
                Err(e) if options.edge_port == 0 && attempt < 3 => {
                    eprintln!("[harness] the Worker did not start (attempt {attempt}): {e:#}");
                    attempt += 1;
                    edge_config.port = free_port()?;
                }
                Err(e) => return Err(e),
            }
        };
        let control_plane = ControlPlane::start(
            ControlPlaneConfig {
                binary,
                database_url: database.url().to_owned(),
                port: cp_port,
                jwt_secret: random_secret(),
                ingest_secret,
                snapshot_secret,
                edge_url: Some(edge.base_url().to_owned()),
                publish_interval_secs: options.publish_interval_secs,
                log_filter: options.log_filter.clone(),
                extra_env: Vec::new(),
            },
            workdir.path(),
        )
        .await?;
        Ok(Self {
            edge,
            control_plane,
            database,
            workdir,
        })
    }

    /// An unauthenticated API client for the control plane.
    pub fn api(&self) -> anyhow::Result<Api> {
        Api::new(&self.control_plane.base_url())
    }

    /// Copies the logs of this run (every `samplit serve` start and wrangler) into `dir`,
    /// which outlives the run; returns `dir`.
    pub fn keep_logs(&self, dir: &std::path::Path) -> anyhow::Result<std::path::PathBuf> {
        std::fs::create_dir_all(dir)?;
        for entry in std::fs::read_dir(self.workdir.path())?.flatten() {
            if entry.file_name().to_string_lossy().ends_with(".log") {
                std::fs::copy(entry.path(), dir.join(entry.file_name()))?;
            }
        }
        std::fs::copy(self.edge.log_path(), dir.join("wrangler.log"))?;
        Ok(dir.to_path_buf())
    }

    /// The last lines of both logs, for failure messages.
    pub fn logs(&self, lines: usize) -> String {
        format!(
            "--- samplit serve ---\n{}\n--- wrangler dev ---\n{}",
            self.control_plane.log_tail(lines),
            self.edge.log_tail(lines)
        )
    }
}
