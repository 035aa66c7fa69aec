//! Builds the web assets the control plane embeds: `node console/build.mjs $OUT_DIR/console`
//! (the console under `/app` and Swagger UI under `/docs`; see `docs/console.md`). The
//! files land in Cargo's `OUT_DIR` and `src/http/assets.rs` embeds them with
//! `include_bytes!`, so the binary serves them with nothing on disk.
//!
//! Needs node and the npm packages pinned in the root `package-lock.json` (`npm ci`).
//! Builds without the `console` feature (the fuzz crate's) skip this and embed no assets,
//! so they never need node.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: building the web assets: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let manifest = PathBuf::from(env_var("CARGO_MANIFEST_DIR")?);
    // The control plane lives one level below the repository root.
    let root = manifest
        .parent()
        .ok_or("CARGO_MANIFEST_DIR has no parent")?
        .to_path_buf();
    for input in [
        "console/src",
        "console/build.mjs",
        "console/tsconfig.json",
        "package-lock.json",
    ] {
        println!("cargo::rerun-if-changed={}", root.join(input).display());
    }
    if std::env::var_os("CARGO_FEATURE_CONSOLE").is_none() {
        return Ok(());
    }

    let npm_ci = "run `npm ci` at the repository root";
    match Command::new("node").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            return Err(format!(
                "`node --version` failed ({}); install Node.js 20 or newer, then {npm_ci}",
                out.status
            ));
        }
        Err(e) => {
            return Err(format!(
                "cannot run node ({e}): install Node.js 20 or newer, then {npm_ci}"
            ));
        }
    }
    if !root.join("node_modules").join("esbuild").is_dir() {
        return Err(format!(
            "{} is missing: {npm_ci}",
            Path::new("node_modules").join("esbuild").display()
        ));
    }

    let out = PathBuf::from(env_var("OUT_DIR")?).join("console");
    let script = root.join("console").join("build.mjs");
    // Cargo reads a build script's stdout for `cargo::` directives: node's output goes to
    // stderr, which Cargo shows when the build fails.
    let status = Command::new("node")
        .arg(&script)
        .arg(&out)
        .current_dir(&root)
        .stdout(Stdio::from(std::io::stderr()))
        .status()
        .map_err(|e| format!("cannot run node {}: {e}", script.display()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "node {} failed ({status}); if a package is missing or stale, {npm_ci}",
            script.display()
        ))
    }
}

fn env_var(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|e| format!("{name}: {e}"))
}
