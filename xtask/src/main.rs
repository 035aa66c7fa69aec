//! `cargo xtask ...`: the developer entry points.
//!
//! - `cargo xtask test`: the whole test suite, exactly what `.ci/run` runs after its
//!   lint steps: the engine's no_std builds, every crate's tests against the real
//!   PostgreSQL, then the edge Worker built to wasm and its node tests run against it
//!   under workerd (local `wrangler dev`) and, for the browser tests, headless Chromium
//!   from Debian's packages (installed by `edge-worker/test/install-chromium.sh` if missing).
//!   It starts with the npm packages (`npm ci` when `node_modules` is older than the
//!   lockfile: the control plane's build script bundles the web assets with them) and the
//!   console's TypeScript type-check. The node and PHP suites (the Worker's, the
//!   console's, Shopify's, WordPress's) run beside the Rust tests, their output kept in
//!   `target/xtask-node-tests.log` and printed when they end; the OpenAPI document's
//!   validation comes last.
//! - `cargo xtask edge-build`: builds the Worker (`edge-worker/build/`), first installing
//!   what a new machine lacks: wasm-bindgen-cli and worker-build at the pinned versions,
//!   and the npm packages (wrangler, wasm-opt) from the committed lockfile.
//! - `cargo xtask edge-test`: `edge-build`, then only the Worker's node tests.
//! - `cargo xtask console-test`: the web console's TypeScript type-check and its browser
//!   tests (`console/test/*.test.mjs`: the console and Swagger UI on a real `samplit
//!   serve`; the visual editor also with the Worker under workerd).
//!
//! Each step prints what it runs and how long it took, so progress is visible.
//! Plain `std` only: this crate must build before anything else is installed.

mod demo;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

/// Where tests find PostgreSQL when `DATABASE_URL` is not set: the local server our
/// machines run (trust auth). Tests create their own databases on it.
const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Must equal the `wasm-bindgen` crate version the `worker` crate pins (Cargo.lock).
const WASM_BINDGEN_VERSION: &str = "0.2.130";
/// The `worker` crate's version: worker-build must match it.
const WORKER_BUILD_VERSION: &str = "0.8.7";
/// wasm-pack, which packages the public simulator for the browser (control-plane/build.rs
/// runs it, so it must be there before anything compiles the control plane).
const WASM_PACK_VERSION: &str = "0.15.1";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(),
        Some("tools") => tools(),
        Some("edge-build") => edge_build(),
        Some("edge-test") => edge_build().and_then(|()| edge_node_tests()),
        Some("console-test") => console_test(),
        Some("demo") => demo::demo(&args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask test | tools | edge-build | edge-test | console-test | demo [options]"
            );
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
    step_in(title, None, program, args, envs)
}

/// [`step`] in a working directory.
fn step_in(
    title: &str,
    dir: Option<&Path>,
    program: &str,
    args: &[&str],
    envs: &[(&str, &str)],
) -> Result<(), String> {
    say(&format!("==> {title}: {program} {}", args.join(" ")));
    let started = Instant::now();
    let mut command = Command::new(program);
    command.args(args).envs(envs.iter().copied());
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    let log = LOG.with(|log| log.borrow().as_ref().map(std::fs::File::try_clone));
    if let Some(log) = log {
        let log = log.map_err(|e| format!("{title}: cannot share the log file: {e}"))?;
        let err = log
            .try_clone()
            .map_err(|e| format!("{title}: cannot share the log file: {e}"))?;
        command.stdout(log).stderr(err);
    }
    let status = command
        .status()
        .map_err(|e| format!("{title}: could not start {program}: {e}"))?;
    say(&format!(
        "<== {title}: {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    if status.success() {
        Ok(())
    } else {
        Err(format!("{title} failed ({status})"))
    }
}

thread_local! {
    /// Where this thread's steps write (their commands' output and the `==>` lines):
    /// a file for the steps [`test()`] runs beside the Rust tests, the terminal otherwise.
    static LOG: std::cell::RefCell<Option<std::fs::File>> = const { std::cell::RefCell::new(None) };
}

/// A progress line, to this thread's log ([`LOG`]) or the terminal.
fn say(line: &str) {
    use std::io::Write;
    LOG.with(|log| match log.borrow_mut().as_mut() {
        Some(file) => {
            let _ = writeln!(file, "{line}");
        }
        None => eprintln!("{line}"),
    });
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

/// The workspace root: xtask lives one level below it.
fn root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(Path::to_path_buf).unwrap_or(manifest)
}

/// Where `cargo install` puts binaries: `$CARGO_HOME/bin`, else `~/.cargo/bin`.
fn cargo_bin_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CARGO_HOME") {
        return PathBuf::from(home).join("bin");
    }
    let home = std::env::var_os("HOME").unwrap_or_default();
    PathBuf::from(home).join(".cargo").join("bin")
}

/// Whether `program --version` prints a line containing `version`.
fn has_version(program: &Path, version: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .map(|out| out.status.success() && String::from_utf8_lossy(&out.stdout).contains(version))
        .unwrap_or(false)
}

fn path_str(path: &Path) -> Result<&str, String> {
    path.to_str()
        .ok_or_else(|| format!("path is not UTF-8: {}", path.display()))
}

fn test() -> Result<(), String> {
    let cargo = cargo();
    let database_url =
        std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned());
    let db = [("DATABASE_URL", database_url.as_str())];

    // First, since it takes a second: esbuild strips types without checking them, so a
    // type error would otherwise pass every build.
    npm_ci_if_stale(&root())?;
    console_typecheck()?;
    step(
        "engine builds for wasm32 (the Worker's target)",
        &cargo,
        &[
            "build",
            "-p",
            "samplit-engine",
            "--no-default-features",
            "--target",
            "wasm32-unknown-unknown",
        ],
        &[],
    )?;
    step(
        "engine builds with no std at all",
        &cargo,
        &[
            "build",
            "-p",
            "samplit-engine",
            "--no-default-features",
            "--target",
            "x86_64-unknown-none",
        ],
        &[],
    )?;
    // The Worker is built before the Rust tests: the end-to-end tests in `tests/` run it
    // under workerd.
    edge_build()?;
    // The end-to-end tests and the demo test start `samplit` (a debug build with default
    // features, not the test build's); built here so their deadlines time what they test,
    // not the compiler.
    step(
        "build the control plane binary the end-to-end tests start",
        &cargo,
        &["build", "-p", "samplit-control-plane", "--bin", "samplit"],
        &[],
    )?;
    step(
        "compile the unit, integration and end-to-end tests",
        &cargo,
        &["test", "--workspace", "--all-features", "--no-run"],
        &db,
    )?;
    // The node and PHP suites run beside the Rust tests (on two cores this saves a third
    // of the suite's time): they share nothing but the PostgreSQL server — every test
    // makes its own database and takes free ports. Their output goes to a file, printed
    // when they end, so the two streams do not interleave.
    let log_path = root().join("target").join("xtask-node-tests.log");
    let log = std::fs::File::create(&log_path)
        .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
    eprintln!(
        "==> beside the Rust tests: the Worker's, the console's, Shopify's and WordPress's \
         tests (output in {}, printed when they end)",
        log_path.display()
    );
    let node_url = database_url.clone();
    let node = std::thread::spawn(move || {
        LOG.with(|l| *l.borrow_mut() = Some(log));
        let started = Instant::now();
        let result = node_suites(&node_url);
        say(&format!(
            "<== node and PHP suites: {:.1} s in all",
            started.elapsed().as_secs_f64()
        ));
        result
    });
    let rust = step(
        "unit, integration and end-to-end tests (PostgreSQL, workerd)",
        &cargo,
        &["test", "--workspace", "--all-features"],
        &db,
    );
    let node = node
        .join()
        .unwrap_or_else(|_| Err("the node and PHP suites' thread panicked".to_owned()));
    eprintln!(
        "==> output of the node and PHP suites ({}):",
        log_path.display()
    );
    match std::fs::read_to_string(&log_path) {
        Ok(text) => eprint!("{text}"),
        Err(e) => eprintln!("(cannot read it: {e})"),
    }
    rust?;
    node?;
    openapi_validate()?;
    eprintln!("xtask test: all steps passed");
    Ok(())
}

/// The suites [`test()`] runs beside the Rust tests, one after the other (one Chromium at
/// a time).
fn node_suites(database_url: &str) -> Result<(), String> {
    edge_node_tests()?;
    console_browser_tests(database_url)?;
    shopify_browser_tests(database_url)?;
    wordpress_php_checks()?;
    wordpress_browser_tests(database_url)
}

/// The validator the OpenAPI document is checked with (PyPI), pinned.
const OPENAPI_VALIDATOR: &str = "openapi-spec-validator==0.7.1";

/// Writes `samplit openapi` to `target/openapi.json` and validates it with
/// openapi-spec-validator (OpenAPI 3.1 rules and JSON Schema), installed once into a
/// virtual environment under `target/` with Debian's Python.
fn openapi_validate() -> Result<(), String> {
    let root = root();
    let target = root.join("target");
    eprintln!("==> the OpenAPI document: samplit openapi > target/openapi.json");
    let out = Command::new(cargo())
        .args([
            "run",
            "-q",
            "-p",
            "samplit-control-plane",
            "--bin",
            "samplit",
            "--",
            "openapi",
        ])
        .output()
        .map_err(|e| format!("cannot run samplit openapi: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "samplit openapi failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let doc = target.join("openapi.json");
    std::fs::write(&doc, &out.stdout)
        .map_err(|e| format!("cannot write {}: {e}", doc.display()))?;
    let venv = target.join("openapi-venv");
    let validator = venv.join("bin").join("openapi-spec-validator");
    if !validator.exists() {
        let python = if Path::new("/usr/bin/python3").exists() {
            "/usr/bin/python3"
        } else {
            "python3"
        };
        step(
            "a Python virtual environment for the OpenAPI validator",
            python,
            &["-m", "venv", path_str(&venv)?],
            &[],
        )?;
        step(
            "install the OpenAPI validator",
            path_str(&venv.join("bin").join("pip"))?,
            &[
                "install",
                "--quiet",
                "--disable-pip-version-check",
                OPENAPI_VALIDATOR,
            ],
            &[],
        )?;
    }
    step(
        "validate the OpenAPI document",
        path_str(&validator)?,
        &[path_str(&doc)?],
        &[],
    )
}

/// The environment every wrangler/worker-build invocation gets: no network calls home
/// (metrics, update banner, cf.json), caches and config inside `target/`.
fn edge_env(root: &Path) -> Result<Vec<(String, String)>, String> {
    let bin = cargo_bin_dir();
    let node_bin = root.join("node_modules").join(".bin");
    let target = root.join("target");
    Ok(vec![
        (
            "WASM_BINDGEN_BIN".into(),
            path_str(&bin.join("wasm-bindgen"))?.to_owned(),
        ),
        (
            "WASM_OPT_BIN".into(),
            path_str(&node_bin.join("wasm-opt"))?.to_owned(),
        ),
        (
            "ESBUILD_BIN".into(),
            path_str(&worker_esbuild(root))?.to_owned(),
        ),
        (
            "XDG_CACHE_HOME".into(),
            path_str(&target.join("xdg-cache"))?.to_owned(),
        ),
        (
            "XDG_CONFIG_HOME".into(),
            path_str(&target.join("xdg-config"))?.to_owned(),
        ),
        ("WRANGLER_SEND_METRICS".into(), "false".into()),
        ("WRANGLER_HIDE_BANNER".into(), "true".into()),
        ("CLOUDFLARE_CF_FETCH_ENABLED".into(), "false".into()),
    ])
}

/// The esbuild worker-build bundles the Worker's JavaScript shim with: wrangler's own
/// (the version wrangler was released with), which npm nests under wrangler since the
/// root `esbuild` is the console's newer one; the root one if npm ever hoists it again.
fn worker_esbuild(root: &Path) -> PathBuf {
    let modules = root.join("node_modules");
    let nested = modules
        .join("wrangler")
        .join("node_modules")
        .join(".bin")
        .join("esbuild");
    if nested.exists() {
        nested
    } else {
        modules.join(".bin").join("esbuild")
    }
}

fn borrow_env(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// `node_modules` is missing, or older than the lockfile (npm writes its own copy of the
/// lockfile into `node_modules/.package-lock.json` on every install).
fn node_modules_stale(root: &Path) -> bool {
    let modified = |p: PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    match (
        modified(root.join("node_modules").join(".package-lock.json")),
        modified(root.join("package-lock.json")),
    ) {
        (Some(installed), Some(lock)) => installed < lock,
        _ => true,
    }
}

/// `npm ci` from the committed lockfile when `node_modules` is missing or stale: wrangler,
/// miniflare and wasm-opt for the Worker; esbuild, TypeScript, Preact, uPlot and Swagger
/// UI for the web assets the control plane's build script bundles (`console/build.mjs`).
pub(crate) fn npm_ci_if_stale(root: &Path) -> Result<(), String> {
    if node_modules_stale(root) {
        step_in(
            "npm ci (the Worker's and the web console's node tooling)",
            Some(root),
            "npm",
            &["ci", "--no-audit", "--no-fund"],
            &[],
        )
    } else {
        eprintln!("==> node_modules: up to date with package-lock.json");
        Ok(())
    }
}

/// Installs the pinned tools the builds run where missing: wasm-bindgen-cli and
/// worker-build (the Worker), wasm-pack (the simulator, from control-plane/build.rs,
/// which also needs that wasm-bindgen-cli: wasm-pack uses the one on PATH).
fn tools() -> Result<(), String> {
    let cargo = cargo();
    let bin = cargo_bin_dir();
    // wasm-bindgen-cli without --locked: its lockfile wants a webpki-roots release the
    // registry lacks.
    for (name, version, locked) in [
        ("wasm-bindgen", WASM_BINDGEN_VERSION, false),
        ("worker-build", WORKER_BUILD_VERSION, true),
        ("wasm-pack", WASM_PACK_VERSION, true),
    ] {
        let krate = if name == "wasm-bindgen" {
            "wasm-bindgen-cli"
        } else {
            name
        };
        if has_version(&bin.join(name), version) {
            eprintln!("==> {krate} {version}: already installed");
            continue;
        }
        let mut args = vec!["install", krate, "--version", version];
        if locked {
            args.push("--locked");
        }
        step(&format!("install {krate}"), &cargo, &args, &[])?;
    }
    Ok(())
}

/// Installs the edge toolchain where missing, then builds the Worker with worker-build.
fn edge_build() -> Result<(), String> {
    let root = root();
    let bin = cargo_bin_dir();
    tools()?;
    npm_ci_if_stale(&root)?;

    let mut env = edge_env(&root)?;
    // Size: whole-program LTO and one codegen unit, for this build only (the workspace's
    // release profile also builds the control plane, where compile time matters more).
    env.push(("CARGO_PROFILE_RELEASE_LTO".into(), "true".into()));
    env.push(("CARGO_PROFILE_RELEASE_CODEGEN_UNITS".into(), "1".into()));
    // Every dependency optimised for size (serde_json, url and the runtime bindings are
    // most of the Worker); the engine keeps opt-level 3 through its package override in
    // the workspace Cargo.toml, since it is the hot path.
    env.push(("CARGO_PROFILE_RELEASE_OPT_LEVEL".into(), "z".into()));
    let worker_build = bin.join("worker-build");
    step_in(
        "build the edge Worker (wasm)",
        Some(&root.join("edge-worker")),
        path_str(&worker_build)?,
        &["--release"],
        &borrow_env(&env),
    )?;
    let wasm = root.join("edge-worker").join("build").join("index_bg.wasm");
    // worker-build keeps the function-name section (it passes --debuginfo to wasm-opt):
    // ~140 KB that only helps stack traces. Strip it and the producers section; no code
    // changes (no optimisation passes run here).
    let wasm_opt = root.join("node_modules").join(".bin").join("wasm-opt");
    let wasm_path = path_str(&wasm)?;
    step_in(
        "strip debug names from the wasm",
        Some(&root),
        path_str(&wasm_opt)?,
        &[
            wasm_path,
            "--strip-debug",
            "--strip-producers",
            "-o",
            wasm_path,
        ],
        &[],
    )?;
    if let Ok(meta) = std::fs::metadata(&wasm) {
        eprintln!("    {}: {} bytes", wasm.display(), meta.len());
    }
    Ok(())
}

/// The Worker's node tests (`edge-worker/test/*.test.mjs`), run against the build.
fn edge_node_tests() -> Result<(), String> {
    let root = root();
    let dir = root.join("edge-worker").join("test");
    ensure_chromium(&root)?;
    let files = test_files(&dir)?;
    let mut args = vec!["--test", "--test-concurrency=1"];
    args.extend(files.iter().map(String::as_str));
    let env = edge_env(&root)?;
    step_in(
        "edge Worker tests under workerd (node --test)",
        Some(&root),
        "node",
        &args,
        &borrow_env(&env),
    )
}

/// The browser tests drive Debian's Chromium (never a downloaded one): installed with
/// `edge-worker/test/install-chromium.sh` when missing.
fn ensure_chromium(root: &Path) -> Result<(), String> {
    if std::env::var_os("SAMPLIT_CHROMIUM").is_some() || Path::new("/usr/bin/chromium").exists() {
        return Ok(());
    }
    let script = root
        .join("edge-worker")
        .join("test")
        .join("install-chromium.sh");
    step(
        "install Chromium (Debian package) for the browser tests",
        path_str(&script)?,
        &[],
        &[],
    )
}

/// The `*.test.mjs` files of `dir`, sorted.
fn test_files(dir: &Path) -> Result<Vec<String>, String> {
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".test.mjs"))
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format!("no *.test.mjs files in {}", dir.display()));
    }
    Ok(files)
}

/// `tsc -p console --noEmit`: the console's TypeScript, type-checked (strict).
fn console_typecheck() -> Result<(), String> {
    let root = root();
    let tsc = root.join("node_modules").join(".bin").join("tsc");
    step_in(
        "type-check the web console (TypeScript)",
        Some(&root),
        path_str(&tsc)?,
        &["-p", "console", "--noEmit"],
        &[],
    )
}

/// The console's browser tests (`console/test/*.test.mjs`): each starts the debug
/// `samplit` binary on a fresh database of `database_url`'s server, on a free port.
fn console_browser_tests(database_url: &str) -> Result<(), String> {
    let root = root();
    ensure_chromium(&root)?;
    let files = test_files(&root.join("console").join("test"))?;
    let mut args = vec!["--test", "--test-concurrency=1"];
    args.extend(files.iter().map(String::as_str));
    step_in(
        "web console tests in Chromium against samplit serve (node --test)",
        Some(&root),
        "node",
        &args,
        &[("DATABASE_URL", database_url)],
    )
}

/// The Shopify stand-in's own tests (`tests/shopify-standin/*.test.mjs`), then the
/// Shopify app's end-to-end tests (`integrations/shopify/test/*.test.mjs`): the
/// `samplit` binary, the Worker and the Shopify stand-in (`tests/shopify-standin`), with a
/// storefront in Chromium; a fresh database of `database_url`'s server each.
fn shopify_browser_tests(database_url: &str) -> Result<(), String> {
    let root = root();
    ensure_chromium(&root)?;
    let mut files = test_files(&root.join("tests").join("shopify-standin"))?;
    files.extend(test_files(
        &root.join("integrations").join("shopify").join("test"),
    )?);
    let mut args = vec!["--test", "--test-concurrency=1"];
    args.extend(files.iter().map(String::as_str));
    step_in(
        "Shopify app end to end in Chromium against samplit serve, the Worker and the Shopify stand-in (node --test)",
        Some(&root),
        "node",
        &args,
        &[("DATABASE_URL", database_url)],
    )
}

/// The WordPress plugin's PHP: `php -l` on every file under `integrations/wordpress`,
/// then its PHPUnit tests (Debian's `php-cli` and `phpunit`, installed by `.ci/run`).
fn wordpress_php_checks() -> Result<(), String> {
    let root = root();
    let mut files = Vec::new();
    let mut dirs = vec![root.join("integrations").join("wordpress")];
    while let Some(dir) = dirs.pop() {
        let entries =
            std::fs::read_dir(&dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "php") {
                files.push(path);
            }
        }
    }
    files.sort();
    say(&format!(
        "==> php -l on {} PHP files under integrations/wordpress",
        files.len()
    ));
    for file in &files {
        let out = Command::new("php")
            .arg("-l")
            .arg(file)
            .output()
            .map_err(|e| format!("cannot run php (apt install php-cli): {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "php -l {}: {}{}",
                file.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    let config = root
        .join("integrations")
        .join("wordpress")
        .join("tests")
        .join("unit")
        .join("phpunit.xml");
    step(
        "the WordPress plugin's unit tests (PHPUnit)",
        "phpunit",
        &["-c", path_str(&config)?],
        &[],
    )
}

/// The WordPress plugin end to end (integrations/wordpress/tests/e2e/*.test.mjs) on a real
/// WordPress: Debian's `wordpress` on a private MariaDB served by `php -S`, with
/// `samplit serve`, the Worker under workerd and Chromium (`.ci/run` installs the Debian
/// packages).
fn wordpress_browser_tests(database_url: &str) -> Result<(), String> {
    let root = root();
    ensure_chromium(&root)?;
    let files = test_files(
        &root
            .join("integrations")
            .join("wordpress")
            .join("tests")
            .join("e2e"),
    )?;
    let mut args = vec!["--test", "--test-concurrency=1"];
    args.extend(files.iter().map(String::as_str));
    step_in(
        "WordPress plugin end to end on a real WordPress (php -S, MariaDB) with samplit serve, the Worker and Chromium (node --test)",
        Some(&root),
        "node",
        &args,
        &[("DATABASE_URL", database_url)],
    )
}

/// `cargo xtask console-test`: what `test` runs for the console, alone: the npm packages,
/// the type-check, the Worker (the visual editor's test frames its proxy), the `samplit`
/// binary the browser tests start, the browser tests.
fn console_test() -> Result<(), String> {
    let database_url =
        std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned());
    npm_ci_if_stale(&root())?;
    console_typecheck()?;
    edge_build()?;
    step(
        "build the control plane binary the browser test starts",
        &cargo(),
        &["build", "-p", "samplit-control-plane", "--bin", "samplit"],
        &[],
    )?;
    console_browser_tests(&database_url)
}
