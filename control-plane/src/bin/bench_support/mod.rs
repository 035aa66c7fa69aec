//! What the control plane's bench binaries share, included by each with `#[path]` (cargo
//! does not make a binary of a folder without `main.rs`): a database made for the run and
//! dropped after it, the app's configuration with fresh secrets, and an organisation that
//! owns a site with a running two-arm experiment.

// Each bench uses a part of it (as `tests/api/helpers.rs`).
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use samplit_control_plane::{AppState, config};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

/// The count in the environment variable `name`, or `default` when it is unset or not a
/// number.
pub fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Creates `samplit_bench_<random>` on the server of `DATABASE_URL` (default: the local
/// PostgreSQL), runs `run` with its URL, and drops it whatever `run` returned.
pub async fn in_scratch_database<F, Fut>(run: F) -> anyhow::Result<()>
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let base = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let name = format!(
        "samplit_bench_{}",
        &Uuid::new_v4().simple().to_string()[..12]
    );
    let url = match base.rfind('/') {
        Some(i) => format!("{}/{name}", &base[..i]),
        None => anyhow::bail!("DATABASE_URL has no database path"),
    };
    let mut admin = PgConnection::connect(&base).await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await?;
    let outcome = run(url).await;
    sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await?;
    outcome
}

/// The configuration of a control plane on `url`, with fresh secrets; `ingest_secret`
/// is the caller's, to sign the batches it sends. Nothing is published (no publisher
/// runs in a bench): the edge URL is only for the site page's snippet.
pub fn config(url: &str, ingest_secret: &str) -> anyhow::Result<config::Config> {
    let jwt_secret = samplit_control_plane::auth::new_token("jwt_");
    let snapshot_secret = samplit_control_plane::auth::new_token("snap_");
    Ok(config::from_lookup(|k| match k {
        "DATABASE_URL" => Some(url.to_owned()),
        "SAMPLIT_JWT_SECRET" => Some(jwt_secret.clone()),
        "SAMPLIT_INGEST_SECRET" => Some(ingest_secret.to_owned()),
        "SAMPLIT_EDGE_URL" => Some("http://127.0.0.1:9".to_owned()),
        "SAMPLIT_SNAPSHOT_SECRET" => Some(snapshot_secret.clone()),
        _ => None,
    })?)
}

/// An owner, their organisation and site, and a running single-element experiment with
/// two arms (a 50/50 fixed split), as [`two_arm_experiment`] inserts them.
pub struct Owner {
    pub org: Uuid,
    pub user: Uuid,
    pub site: Uuid,
    pub site_key: String,
    pub experiment: Uuid,
    pub arms: [Uuid; 2],
    /// A viewer JWT of the owner (bearer token, one hour).
    pub token: String,
}

/// Inserts an organisation, its owner with a session, a site and a running two-arm
/// experiment in `tx` (goals are each bench's own).
pub async fn two_arm_experiment(tx: &mut PgConnection, state: &AppState) -> anyhow::Result<Owner> {
    let org = Uuid::new_v4();
    let user = Uuid::new_v4();
    let session = Uuid::new_v4();
    let site = Uuid::new_v4();
    let experiment = Uuid::new_v4();
    let element = Uuid::new_v4();
    let variants = [Uuid::new_v4(), Uuid::new_v4()];
    let arms = [Uuid::new_v4(), Uuid::new_v4()];
    let site_key = format!("site_{}", site.simple());
    sqlx::query("INSERT INTO organizations (id, name) VALUES ($1, 'Bench')")
        .bind(org)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO users (id, email, password_hash) VALUES ($1, 'bench@example.com', 'x')",
    )
    .bind(user)
    .execute(&mut *tx)
    .await?;
    sqlx::query("INSERT INTO memberships (org_id, user_id, role) VALUES ($1, $2, 'owner')")
        .bind(org)
        .bind(user)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO auth_sessions (id, user_id, org_id, expires_at) VALUES ($1, $2, $3, now() + interval '1 day')",
    )
    .bind(session)
    .bind(user)
    .bind(org)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO sites (id, org_id, name, site_key, server_secret_hash) VALUES ($1, $2, 'Bench', $3, '\\x00')",
    )
    .bind(site)
    .bind(org)
    .bind(&site_key)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO experiments (id, org_id, site_id, name, kind, status, allocator, seed, started_at)
         VALUES ($1, $2, $3, 'Bench', 'single', 'running', '{\"kind\":\"fixed_split\",\"weights\":[0.5,0.5]}', 's', now())",
    )
    .bind(experiment)
    .bind(org)
    .bind(site)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO elements (id, experiment_id, position, name, selector) VALUES ($1, $2, 0, 'Hero', 'h1')",
    )
    .bind(element)
    .bind(experiment)
    .execute(&mut *tx)
    .await?;
    for (i, (variant, arm)) in variants.iter().zip(arms).enumerate() {
        sqlx::query(
            "INSERT INTO variants (id, experiment_id, element_id, position, name, is_control) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(variant)
        .bind(experiment)
        .bind(element)
        .bind(i as i32)
        .bind(format!("V{i}"))
        .bind(i == 0)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO arms (id, experiment_id, position, name, variant_ids, is_control) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(arm)
        .bind(experiment)
        .bind(i as i32)
        .bind(format!("V{i}"))
        .bind(vec![*variant])
        .bind(i == 0)
        .execute(&mut *tx)
        .await?;
    }
    let token = state
        .jwt
        .issue(user, org, session, Duration::from_secs(3600))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(Owner {
        org,
        user,
        site,
        site_key,
        experiment,
        arms,
        token,
    })
}

/// CPU time, from Linux's `/proc` (clock ticks, usually 1/100 s): this process's (user +
/// system) and the whole machine's busy time (every state but idle and iowait), read at
/// the start and the end of a phase. On the machine the benches run on, the rest of the
/// busy time is PostgreSQL's (and any other load: compare runs of the same hour).
#[derive(Debug, Clone, Copy)]
pub struct CpuMeter {
    process: u64,
    machine: u64,
}

/// CPU-seconds of a phase: this process's, and the rest of the machine's.
#[derive(Debug, Clone, Copy)]
pub struct CpuSpent {
    pub process_s: f64,
    pub others_s: f64,
}

impl CpuMeter {
    /// Now (`None` where `/proc` cannot be read: the figures are then left out).
    pub fn start() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // The fields after the command name (which may hold spaces) in parentheses.
        let after = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = after.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of the line: 12 and 13 after the name.
        let process = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        let cpu = std::fs::read_to_string("/proc/stat").ok()?;
        let total: Vec<u64> = cpu
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .filter_map(|v| v.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal ...
        let idle = total.get(3)? + total.get(4)?;
        let machine = total.iter().take(8).sum::<u64>() - idle;
        Some(Self { process, machine })
    }

    /// What was spent since `self`.
    pub fn spent(self) -> Option<CpuSpent> {
        let now = Self::start()?;
        // Linux's USER_HZ, the unit of both files, is 100 on every architecture the
        // benches run on (reading it needs `sysconf`, not worth a dependency here).
        const TICKS: f64 = 100.0;
        let process = now.process.saturating_sub(self.process) as f64 / TICKS;
        let machine = now.machine.saturating_sub(self.machine) as f64 / TICKS;
        Some(CpuSpent {
            process_s: process,
            others_s: (machine - process).max(0.0),
        })
    }
}
