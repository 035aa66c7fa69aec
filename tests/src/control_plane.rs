//! `samplit serve` as a child process: started with an explicit environment (nothing
//! inherited from `SAMPLIT_*` variables or a `.env`: it runs in a scratch directory),
//! ready when `/readyz` answers 200, killable (SIGKILL, like a crash) and restartable
//! on the same port and database.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::net::wait_for;
use crate::process::Proc;

/// How `samplit serve` is configured.
#[derive(Debug, Clone)]
pub struct ControlPlaneConfig {
    pub binary: PathBuf,
    pub database_url: String,
    pub port: u16,
    pub jwt_secret: String,
    pub ingest_secret: String,
    pub snapshot_secret: String,
    /// The Worker's origin; the publisher pushes there.
    pub edge_url: Option<String>,
    /// `SAMPLIT_PUBLISH_INTERVAL`, seconds.
    pub publish_interval_secs: u64,
    /// `RUST_LOG` for the process.
    pub log_filter: String,
    /// Further `SAMPLIT_*` settings (e.g. the demo's development switches).
    pub extra_env: Vec<(String, String)>,
}

/// A running (or stopped, between [`ControlPlane::kill`] and
/// [`ControlPlane::restart`]) control plane.
#[derive(Debug)]
pub struct ControlPlane {
    config: ControlPlaneConfig,
    workdir: PathBuf,
    proc: Option<Proc>,
    starts: u32,
}

impl ControlPlane {
    /// Starts `samplit serve` (it applies the migrations) and waits until it is ready.
    /// `workdir` holds its logs (`samplit-<n>.log`).
    pub async fn start(config: ControlPlaneConfig, workdir: &Path) -> anyhow::Result<Self> {
        let mut cp = Self {
            config,
            workdir: workdir.to_path_buf(),
            proc: None,
            starts: 0,
        };
        cp.spawn_and_wait().await?;
        Ok(cp)
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.config.port)
    }

    pub fn config(&self) -> &ControlPlaneConfig {
        &self.config
    }

    /// The log of the current (or last) process.
    pub fn log_tail(&self, lines: usize) -> String {
        self.proc
            .as_ref()
            .map(|p| p.log_tail(lines))
            .unwrap_or_default()
    }

    /// Kills the process with SIGKILL: no graceful shutdown, as in a crash.
    pub fn kill(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill();
        }
    }

    /// Stops the process gracefully (SIGTERM).
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.stop(Duration::from_secs(10));
        }
    }

    /// Starts the process again on the same port and database.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.spawn_and_wait().await
    }

    async fn spawn_and_wait(&mut self) -> anyhow::Result<()> {
        self.starts += 1;
        let c = &self.config;
        let log = self.workdir.join(format!("samplit-{}.log", self.starts));
        let mut command = Command::new(&c.binary);
        command.arg("serve").current_dir(&self.workdir);
        // Only what we set: a developer's SAMPLIT_* variables must not leak in.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("SAMPLIT_") {
                command.env_remove(&key);
            }
        }
        command
            .env("DATABASE_URL", &c.database_url)
            .env("SAMPLIT_LISTEN", format!("127.0.0.1:{}", c.port))
            .env("SAMPLIT_JWT_SECRET", &c.jwt_secret)
            .env("SAMPLIT_INGEST_SECRET", &c.ingest_secret)
            .env("SAMPLIT_SNAPSHOT_SECRET", &c.snapshot_secret)
            .env(
                "SAMPLIT_PUBLISH_INTERVAL",
                c.publish_interval_secs.to_string(),
            )
            .env("RUST_LOG", &c.log_filter);
        if let Some(edge) = &c.edge_url {
            command.env("SAMPLIT_EDGE_URL", edge);
        }
        command.envs(c.extra_env.iter().map(|(k, v)| (k, v)));
        let started = Instant::now();
        let mut proc = Proc::spawn("samplit serve", command, &log)?;
        let ready_url = format!("{}/readyz", self.base_url());
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let outcome = wait_for(
            &format!("samplit serve to answer {ready_url}"),
            Duration::from_secs(60),
            Duration::from_millis(100),
            || {
                let exited = proc.exited();
                let request = http.get(&ready_url).send();
                async move {
                    if let Some(status) = exited {
                        bail!("samplit serve exited early ({status})");
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
            let tail = proc.log_tail(40);
            return Err(e).context(format!("--- samplit log ({}) ---\n{tail}", log.display()));
        }
        eprintln!(
            "[harness] samplit serve ready on {} in {:.1} s",
            self.base_url(),
            started.elapsed().as_secs_f64()
        );
        self.proc = Some(proc);
        Ok(())
    }

    /// Runs `samplit migrate` against the configured database.
    pub fn migrate(config: &ControlPlaneConfig, workdir: &Path) -> anyhow::Result<()> {
        let out = Command::new(&config.binary)
            .arg("migrate")
            .current_dir(workdir)
            .env("DATABASE_URL", &config.database_url)
            .env("SAMPLIT_JWT_SECRET", &config.jwt_secret)
            .env("SAMPLIT_INGEST_SECRET", &config.ingest_secret)
            .output()
            .context("running samplit migrate")?;
        if !out.status.success() {
            bail!(
                "samplit migrate failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }
}
