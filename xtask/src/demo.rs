//! `cargo xtask demo [options]`: runs the product locally with simulated visitors.
//!
//! Checks first that PostgreSQL is reachable or installable (`DATABASE_URL`, or the
//! server binaries the demo starts a private cluster with), so a missing package stops
//! the demo before minutes of building; then installs the npm packages when
//! `node_modules` is stale (the control plane's build script bundles the web console and
//! Swagger UI with them), builds the Worker (installing its toolchain when missing,
//! [`crate::edge_build`]) and replaces itself with
//! `cargo run -p samplit-tests --bin samplit-demo -- <options>`, which does the rest
//! (see `tests/src/bin/samplit-demo.rs`). Replacing the process (exec) means Ctrl-C
//! reaches the demo directly, which then stops everything it started.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

/// The command that installs PostgreSQL's server binaries (Debian/Ubuntu).
const INSTALL_POSTGRES: &str = "sudo apt-get install postgresql";

pub fn demo(args: &[String]) -> Result<(), String> {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        return exec_demo(args);
    }
    check_postgres()?;
    crate::npm_ci_if_stale(&crate::root())?;
    crate::edge_build()?;
    exec_demo(args)
}

fn exec_demo(args: &[String]) -> Result<(), String> {
    let cargo = crate::cargo();
    let mut command = Command::new(&cargo);
    command
        .current_dir(crate::root())
        .args([
            "run",
            "--quiet",
            "-p",
            "samplit-tests",
            "--bin",
            "samplit-demo",
            "--",
        ])
        .args(args);
    eprintln!(
        "==> run the demo: {cargo} run -p samplit-tests --bin samplit-demo -- {}",
        args.join(" ")
    );
    // Only returns on failure.
    let error = command.exec();
    Err(format!("could not run cargo: {error}"))
}

/// `DATABASE_URL` set, or `initdb` and `pg_ctl` installed.
fn check_postgres() -> Result<(), String> {
    if std::env::var("DATABASE_URL").is_ok_and(|v| !v.is_empty()) {
        eprintln!("==> PostgreSQL: DATABASE_URL is set; the demo creates its own database there");
        return Ok(());
    }
    let has_tools = |dir: &Path| dir.join("initdb").exists() && dir.join("pg_ctl").exists();
    let installed = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .any(|version| has_tools(&version.path().join("bin")))
        || std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|dir| has_tools(&dir)));
    if installed {
        eprintln!(
            "==> PostgreSQL: server binaries found; the demo starts a private cluster under target/demo-pg"
        );
        Ok(())
    } else {
        Err(format!(
            "the demo needs PostgreSQL: set DATABASE_URL to a server, or install the server binaries with\n\n    {INSTALL_POSTGRES}\n"
        ))
    }
}
