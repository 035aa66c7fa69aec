//! `cargo xtask ...`: the developer entry points.
//!
//! - `cargo xtask test`: the whole test suite, exactly what `.ci/run` runs after its
//!   lint steps: the engine's no_std builds, then every crate's tests against the real
//!   PostgreSQL.
//!
//! Each step prints what it runs and how long it took, so progress is visible.
//! Plain `std` only: this crate must build before anything else is installed.

use std::process::{Command, ExitCode};
use std::time::Instant;

/// Where tests find PostgreSQL when `DATABASE_URL` is not set: the local server our
/// machines run (trust auth). Tests create their own databases on it.
const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(),
        _ => {
            eprintln!("usage: cargo xtask test");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

/// One step: a command, run to completion with inherited output, timed.
fn step(title: &str, program: &str, args: &[&str], envs: &[(&str, &str)]) -> Result<(), String> {
    eprintln!("==> {title}: {program} {}", args.join(" "));
    let started = Instant::now();
    let status = Command::new(program)
        .args(args)
        .envs(envs.iter().copied())
        .status()
        .map_err(|e| format!("{title}: could not start {program}: {e}"))?;
    eprintln!("<== {title}: {:.1} s", started.elapsed().as_secs_f64());
    if status.success() {
        Ok(())
    } else {
        Err(format!("{title} failed ({status})"))
    }
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

fn test() -> Result<(), String> {
    let cargo = cargo();
    let database_url =
        std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned());
    let db = [("DATABASE_URL", database_url.as_str())];

    step(
        "engine builds for wasm32 (the Worker's target)",
        &cargo,
        &["build", "-p", "samplit-engine", "--no-default-features", "--target", "wasm32-unknown-unknown"],
        &[],
    )?;
    step(
        "engine builds with no std at all",
        &cargo,
        &["build", "-p", "samplit-engine", "--no-default-features", "--target", "x86_64-unknown-none"],
        &[],
    )?;
    step(
        "unit and integration tests (PostgreSQL)",
        &cargo,
        &["test", "--workspace", "--all-features"],
        &db,
    )?;
    eprintln!("xtask test: all steps passed");
    Ok(())
}
