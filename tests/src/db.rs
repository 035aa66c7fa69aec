//! PostgreSQL for a run: a fresh database on an existing server ([`TestDatabase`]), or a
//! private cluster started from the machine's PostgreSQL binaries ([`PrivatePostgres`],
//! for the demo when `DATABASE_URL` is not set).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use sqlx::Connection;
use sqlx::postgres::PgConnection;

/// Where tests find PostgreSQL when `DATABASE_URL` is not set (as in `cargo xtask test`).
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// `DATABASE_URL`, or [`DEFAULT_DATABASE_URL`].
pub fn server_url_from_env() -> String {
    std::env::var("DATABASE_URL")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned())
}

/// A database created for this run on an existing server, dropped (with its open
/// connections) when this value is dropped or [`TestDatabase::drop_database`] is called.
#[derive(Debug)]
pub struct TestDatabase {
    server_url: String,
    name: String,
    url: String,
    dropped: bool,
}

impl TestDatabase {
    /// Creates `<prefix>_<random>` on the server of `server_url` (any database on it).
    pub async fn create(server_url: &str, prefix: &str) -> anyhow::Result<Self> {
        let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        let mut conn = connect(server_url).await?;
        sqlx::raw_sql(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut conn)
            .await
            .with_context(|| format!("CREATE DATABASE {name} on {}", redact(server_url)))?;
        let _ = conn.close().await;
        let mut url = url::Url::parse(server_url).context("DATABASE_URL is not a URL")?;
        url.set_path(&format!("/{name}"));
        Ok(Self {
            server_url: server_url.to_owned(),
            name,
            url: url.to_string(),
            dropped: false,
        })
    }

    /// The new database's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Drops the database now (closing other sessions' connections to it).
    pub async fn drop_database(&mut self) -> anyhow::Result<()> {
        if self.dropped {
            return Ok(());
        }
        drop_database(&self.server_url, &self.name).await?;
        self.dropped = true;
        Ok(())
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        // Drop may run inside a runtime (a failing test): a thread with its own runtime.
        let (server, name) = (self.server_url.clone(), self.name.clone());
        let outcome = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(drop_database(&server, &name))
        })
        .join();
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("[harness] could not drop database {}: {e:#}", self.name),
            Err(_) => eprintln!("[harness] dropping database {} panicked", self.name),
        }
    }
}

async fn connect(url: &str) -> anyhow::Result<PgConnection> {
    tokio::time::timeout(Duration::from_secs(10), PgConnection::connect(url))
        .await
        .with_context(|| format!("connecting to {} timed out", redact(url)))?
        .with_context(|| {
            format!(
                "cannot connect to PostgreSQL at {} (set DATABASE_URL to a server where you may create databases)",
                redact(url)
            )
        })
}

async fn drop_database(server_url: &str, name: &str) -> anyhow::Result<()> {
    let mut conn = connect(server_url).await?;
    sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&mut conn)
        .await
        .with_context(|| format!("DROP DATABASE {name}"))?;
    let _ = conn.close().await;
    Ok(())
}

/// A URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "<invalid url>".to_owned(),
    }
}

/// The command that installs the PostgreSQL server binaries (Debian/Ubuntu).
pub const INSTALL_POSTGRES: &str = "sudo apt-get install postgresql";

/// A PostgreSQL cluster of our own in a directory (e.g. `target/demo-pg`), listening on
/// 127.0.0.1 only, trust authentication for the `postgres` user, no Unix socket. Stopped
/// (`pg_ctl stop -m fast`) by [`PrivatePostgres::stop`] or on drop; its files stay for the
/// next run.
#[derive(Debug)]
pub struct PrivatePostgres {
    bin: PathBuf,
    data: PathBuf,
    log: PathBuf,
    port: u16,
    /// PostgreSQL refuses to run as root; as root we run it as this user.
    run_as: Option<String>,
    running: bool,
}

impl PrivatePostgres {
    /// The newest `/usr/lib/postgresql/<version>/bin` holding `initdb` and `pg_ctl`, or
    /// the directory of an `initdb` on `PATH`.
    pub fn find_binaries() -> anyhow::Result<PathBuf> {
        let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let version: u32 = entry.file_name().to_str()?.parse().ok()?;
                let bin = entry.path().join("bin");
                (bin.join("initdb").exists() && bin.join("pg_ctl").exists())
                    .then_some((version, bin))
            })
            .collect();
        found.sort();
        if let Some((_, bin)) = found.pop() {
            return Ok(bin);
        }
        if let Some(path) = std::env::var_os("PATH") {
            for dir in std::env::split_paths(&path) {
                if dir.join("initdb").exists() && dir.join("pg_ctl").exists() {
                    return Ok(dir);
                }
            }
        }
        bail!(
            "no PostgreSQL server binaries found (initdb, pg_ctl under /usr/lib/postgresql/*/bin or on PATH). \
             Install them with `{INSTALL_POSTGRES}`, or set DATABASE_URL to a server you can use"
        )
    }

    /// Initialises `dir/data` when needed and starts the cluster on `port`.
    pub fn start(dir: &Path, port: u16) -> anyhow::Result<Self> {
        let bin = Self::find_binaries()?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let dir = dir
            .canonicalize()
            .with_context(|| format!("resolving {}", dir.display()))?;
        let euid = std::fs::metadata("/proc/self")
            .map(|m| m.uid())
            .unwrap_or(1);
        let run_as = (euid == 0).then(|| "postgres".to_owned());
        let mut pg = Self {
            bin,
            data: dir.join("data"),
            log: dir.join("postgres.log"),
            port,
            run_as,
            running: false,
        };
        if let Some(user) = &pg.run_as {
            // As root the cluster belongs to the `postgres` user (which the server package
            // creates): give it the directory.
            run(Command::new("chown")
                .args(["-R", &format!("{user}:{user}")])
                .arg(&dir))
            .context("chown of the private PostgreSQL directory")?;
        }
        if !pg.data.join("PG_VERSION").exists() {
            let data = path_str(&pg.data)?.to_owned();
            pg.run_pg(
                "initdb",
                &[
                    "-D",
                    &data,
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-instructions",
                ],
            )
            .context("initdb")?;
        }
        // A cluster left running by a run that was killed: stop it first.
        let data = path_str(&pg.data)?.to_owned();
        if pg.run_pg("pg_ctl", &["status", "-D", &data]).is_ok() {
            let _ = pg.run_pg("pg_ctl", &["stop", "-D", &data, "-m", "fast", "-w"]);
        }
        let log = path_str(&pg.log)?.to_owned();
        let options = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off"
        );
        pg.run_pg(
            "pg_ctl",
            &[
                "start", "-D", &data, "-l", &log, "-o", &options, "-w", "-t", "60",
            ],
        )
        .with_context(|| format!("starting PostgreSQL (log: {})", pg.log.display()))?;
        pg.running = true;
        Ok(pg)
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the cluster (fast shutdown: open sessions are ended).
    pub fn stop(&mut self) -> anyhow::Result<()> {
        if !self.running {
            return Ok(());
        }
        self.running = false;
        let data = path_str(&self.data)?.to_owned();
        self.run_pg(
            "pg_ctl",
            &["stop", "-D", &data, "-m", "fast", "-w", "-t", "30"],
        )
    }

    fn run_pg(&self, tool: &str, args: &[&str]) -> anyhow::Result<()> {
        let program = self.bin.join(tool);
        let mut command = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&program);
                c
            }
            None => Command::new(&program),
        };
        command.args(args);
        // `/` as working directory: the postgres user may not read ours.
        command.current_dir("/");
        run(&mut command)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("[harness] stopping the private PostgreSQL failed: {e:#}");
        }
    }
}

fn run(command: &mut Command) -> anyhow::Result<()> {
    let out = command
        .output()
        .with_context(|| format!("running {:?}", command.get_program()))?;
    if out.status.success() {
        Ok(())
    } else {
        bail!(
            "{:?} failed ({}): {}{}",
            command.get_program(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }
}

fn path_str(path: &Path) -> anyhow::Result<&str> {
    path.to_str()
        .with_context(|| format!("path is not UTF-8: {}", path.display()))
}
