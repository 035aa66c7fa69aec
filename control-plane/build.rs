//! Builds the web assets the control plane embeds: `node console/build.mjs $OUT_DIR/console`
//! (the console under `/app` and Swagger UI under `/docs`; see `docs/console.md`). The
//! files land in Cargo's `OUT_DIR` and `src/http/assets.rs` embeds them with
//! `include_bytes!`, so the binary serves them with nothing on disk.
//!
//! First it packages the public simulator (`simulator/`, the engine's allocators) for the
//! browser with `wasm-pack build --target web` into `$OUT_DIR/sim-pkg` (its own target
//! directory, `target/simulator-wasm`, so it never waits on this build's lock), then
//! shrinks the wasm with the pinned binaryen's `wasm-opt -Oz` from `node_modules`;
//! `console/build.mjs` bundles the page around it (`/simulator`).
//!
//! Needs node and the npm packages pinned in the root `package-lock.json` (`npm ci`),
//! `wasm-pack` (`cargo install wasm-pack --version 0.15.1 --locked`), and the
//! `wasm-bindgen` CLI at the version `Cargo.lock` pins (wasm-pack uses the one on `PATH`;
//! `cargo xtask edge-build` installs it), so nothing is downloaded.
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
        "simulator/src",
        "simulator/Cargo.toml",
        "shared-engine/src",
        "shared-engine/Cargo.toml",
        "Cargo.lock",
        // `sqlx::migrate!` (src/lib.rs) embeds this directory's files; without this line a
        // new migration file is missed by an incremental build (sqlx's documented advice).
        "migrations",
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

    let out_dir = PathBuf::from(env_var("OUT_DIR")?);
    let sim_pkg = out_dir.join("sim-pkg");
    build_simulator(&root, &sim_pkg)?;

    let out = out_dir.join("console");
    let script = root.join("console").join("build.mjs");
    // Cargo reads a build script's stdout for `cargo::` directives: node's output goes to
    // stderr, which Cargo shows when the build fails.
    let status = Command::new("node")
        .arg(&script)
        .arg(&out)
        .env("SAMPLIT_SIM_PKG", &sim_pkg)
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

/// `wasm-pack build` of `simulator/` into `pkg`, then `wasm-opt -Oz` on its wasm.
fn build_simulator(root: &Path, pkg: &Path) -> Result<(), String> {
    let install = "install it with `cargo install wasm-pack --version 0.15.1 --locked`";
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(|d| root.join(d))
        .unwrap_or_else(|| root.join("target"))
        .join("simulator-wasm");
    let mut wasm_pack = Command::new("wasm-pack");
    wasm_pack
        .args([
            "build",
            "--target",
            "web",
            "--release",
            "--no-typescript",
            "--no-pack",
        ])
        .args(["--out-name", "samplit_simulator", "--out-dir"])
        .arg(pkg)
        .arg(root.join("simulator"))
        .args(["--", "--locked"])
        .env("CARGO_TARGET_DIR", &target_dir)
        .current_dir(root)
        .stdout(Stdio::from(std::io::stderr()));
    // What this build's Cargo set for a build script must not leak into the nested
    // build: a clippy wrapper, this target's flags.
    for name in [
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CLIPPY_ARGS",
    ] {
        wasm_pack.env_remove(name);
    }
    let status = wasm_pack
        .status()
        .map_err(|e| format!("cannot run wasm-pack ({e}): {install}"))?;
    if !status.success() {
        return Err(format!(
            "wasm-pack build simulator failed ({status}); if it tried to download \
             wasm-bindgen, install the CLI at Cargo.lock's version (`cargo xtask edge-build` does)"
        ));
    }
    let wasm = pkg.join("samplit_simulator_bg.wasm");
    let wasm_opt = root.join("node_modules").join(".bin").join("wasm-opt");
    let status = Command::new(&wasm_opt)
        .arg("-Oz")
        .arg(&wasm)
        .arg("-o")
        .arg(&wasm)
        .stdout(Stdio::from(std::io::stderr()))
        .status()
        .map_err(|e| format!("cannot run {} ({e}): run `npm ci`", wasm_opt.display()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("wasm-opt -Oz {} failed ({status})", wasm.display()))
    }
}

fn env_var(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|e| format!("{name}: {e}"))
}
