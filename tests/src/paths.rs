//! Where things are: the workspace root, the target directory, the `samplit` binary, the
//! built Worker and the node tools; and the build steps the harness runs itself.
//!
//! The control plane is built here (`cargo build -p samplit-control-plane --bin samplit`,
//! a no-op when up to date). The Worker is not: it needs the wasm toolchain, which
//! `cargo xtask edge-build` installs and drives, so a missing build is an error that
//! names that command rather than a silent skip.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};

/// The command that builds the Worker (and installs its toolchain when missing).
pub const EDGE_BUILD_COMMAND: &str = "cargo xtask edge-build";

/// The workspace root (this crate lives one level below it).
pub fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(Path::to_path_buf).unwrap_or(manifest)
}

/// `CARGO_TARGET_DIR` when set (relative to the workspace root), else `<root>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                workspace_root().join(dir)
            }
        }
        None => workspace_root().join("target"),
    }
}

/// The debug build of the control plane's binary.
pub fn samplit_binary() -> PathBuf {
    target_dir().join("debug").join("samplit")
}

/// The Worker's entry module written by worker-build.
pub fn edge_shim() -> PathBuf {
    workspace_root()
        .join("edge-worker")
        .join("build")
        .join("worker")
        .join("shim.mjs")
}

/// `node_modules/.bin/wrangler` (pinned in package-lock.json).
pub fn wrangler() -> PathBuf {
    workspace_root()
        .join("node_modules")
        .join(".bin")
        .join("wrangler")
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

/// Builds `samplit` (debug) and returns its path. Cargo's output goes to stderr, so a
/// first, slow build shows its progress.
pub fn build_control_plane() -> anyhow::Result<PathBuf> {
    let started = Instant::now();
    let mut command = Command::new(cargo());
    command.current_dir(workspace_root()).args([
        "build",
        "-p",
        "samplit-control-plane",
        "--bin",
        "samplit",
    ]);
    // Cargo sets these for the test or `cargo run` process that calls us. Build scripts
    // (ring's) declare `rerun-if-env-changed` on some of them, so passing them on would
    // make this build differ from a plain one and rebuild those crates every time.
    for (key, _) in std::env::vars_os() {
        let key_text = key.to_string_lossy();
        let set_by_cargo = [
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
            "CARGO_CRATE_",
            "CARGO_BIN_",
            "CARGO_CFG_",
        ]
        .iter()
        .any(|prefix| key_text.starts_with(prefix))
            || [
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
                "CARGO_RUSTC_CURRENT_DIR",
                "OUT_DIR",
            ]
            .contains(&key_text.as_ref());
        if set_by_cargo {
            command.env_remove(&key);
        }
    }
    let status = command
        .status()
        .context("could not run cargo to build the control plane")?;
    if !status.success() {
        bail!("`cargo build -p samplit-control-plane --bin samplit` failed ({status})");
    }
    let binary = samplit_binary();
    if !binary.exists() {
        bail!(
            "cargo built the control plane but {} does not exist (CARGO_TARGET_DIR?)",
            binary.display()
        );
    }
    eprintln!(
        "[harness] control plane binary ready in {:.1} s: {}",
        started.elapsed().as_secs_f64(),
        binary.display()
    );
    Ok(binary)
}

/// Checks that the Worker has been built, is newer than its sources (the Worker's and
/// the engine's), and that wrangler is installed; the error says which command to run.
pub fn require_edge_build() -> anyhow::Result<()> {
    let shim = edge_shim();
    if !shim.exists() {
        bail!(
            "the edge Worker is not built ({} is missing): run `{EDGE_BUILD_COMMAND}` first \
             (`cargo xtask test` does it before the end-to-end tests)",
            shim.display()
        );
    }
    let built = std::fs::metadata(&shim).and_then(|m| m.modified())?;
    let root = workspace_root();
    let sources = [
        root.join("edge-worker").join("src"),
        root.join("edge-worker").join("snippet"),
        root.join("edge-worker").join("Cargo.toml"),
        root.join("shared-engine").join("src"),
        root.join("shared-engine").join("Cargo.toml"),
    ];
    if let Some(newer) = sources.iter().find_map(|p| newer_than(p, built)) {
        bail!(
            "the edge Worker build is older than its sources ({} changed since): run `{EDGE_BUILD_COMMAND}` \
             so the test runs the code you have",
            newer.display()
        );
    }
    let wrangler = wrangler();
    if !wrangler.exists() {
        bail!(
            "wrangler is not installed ({} is missing): run `{EDGE_BUILD_COMMAND}` (it runs `npm ci`)",
            wrangler.display()
        );
    }
    Ok(())
}

/// The first file under `path` (a file or a directory tree) modified after `time`.
fn newer_than(path: &Path, time: std::time::SystemTime) -> Option<PathBuf> {
    let meta = std::fs::metadata(path).ok()?;
    if meta.is_file() {
        return meta
            .modified()
            .ok()
            .filter(|m| *m > time)
            .map(|_| path.to_path_buf());
    }
    std::fs::read_dir(path)
        .ok()?
        .flatten()
        .find_map(|entry| newer_than(&entry.path(), time))
}
