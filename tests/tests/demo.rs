//! The one-command demo, run non-interactively for a short time: `samplit-demo
//! --duration 20s --exit` must start the product (a private PostgreSQL cluster when the
//! machine has the server binaries, as on a fresh clone), serve the landing page with
//! the snippet, print the login, URLs and a results table with visitors in it, and then
//! stop everything it started.
//!
//! Needs the built Worker (`cargo xtask edge-build`).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use samplit_tests::db::PrivatePostgres;
use samplit_tests::net::free_port;
use samplit_tests::paths;

/// The demo's whole run must end within this (build check, start, 20 s of visitors,
/// queue drain, shutdown).
const DEADLINE: Duration = Duration::from_secs(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_shows_results_from_simulated_visitors_and_stops_everything_it_started() {
    paths::require_edge_build().unwrap_or_else(|e| panic!("{e:#}"));
    let (api_port, edge_port, page_port) = (
        free_port().unwrap(),
        free_port().unwrap(),
        free_port().unwrap(),
    );
    let pg_dir = tempfile::Builder::new()
        .prefix("samplit-demo-pg-")
        .tempdir()
        .unwrap();
    let private_cluster = PrivatePostgres::find_binaries().is_ok();

    let mut command = Command::new(env!("CARGO_BIN_EXE_samplit-demo"));
    command.args([
        "--duration",
        "20s",
        "--exit",
        "--visitors-per-second",
        "30",
        "--refresh",
        "5s",
        "--api-port",
        &api_port.to_string(),
        "--edge-port",
        &edge_port.to_string(),
        "--page-port",
        &page_port.to_string(),
    ]);
    command.arg("--pg-dir").arg(pg_dir.path());
    if private_cluster {
        // As on a fresh clone: no DATABASE_URL, the demo starts its own cluster.
        command.env_remove("DATABASE_URL");
    } else {
        command.env("DATABASE_URL", samplit_tests::db::server_url_from_env());
    }
    command.stdout(Stdio::piped()).stderr(Stdio::inherit());
    let mut child = command.spawn().expect("starting samplit-demo");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            eprintln!("[demo] {line}");
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    // Read the output; once the demo says it is running, visit the landing page.
    let started = Instant::now();
    let mut output = Vec::<String>::new();
    let mut page_checked = false;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let status = loop {
        while let Ok(line) = rx.try_recv() {
            output.push(line);
        }
        if !page_checked && output.iter().any(|l| l.starts_with("Samplit is running.")) {
            check_landing_page(&http, page_port).await;
            page_checked = true;
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!(
                "the demo did not finish within {DEADLINE:?}:\n{}",
                output.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    reader.join().unwrap();
    output.extend(rx.try_iter());
    let text = output.join("\n");
    assert!(status.success(), "the demo failed ({status}):\n{text}");
    assert!(page_checked, "the demo never said it was running:\n{text}");

    // The login and the URLs.
    for expected in [
        "log in          demo@samplit.example / ",
        "/docs",
        "demo page",
        "/results",
    ] {
        assert!(
            text.contains(expected),
            "the output lacks {expected:?}:\n{text}"
        );
    }
    // The last table: its total line counts the visitors the results show.
    let total = output
        .iter()
        .rev()
        .find(|l| l.starts_with("total"))
        .unwrap_or_else(|| panic!("no results table in the output:\n{text}"));
    let visitors: u64 = total
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(
        visitors > 100,
        "the results show only {visitors} visitors after 20 s at 30/s:\n{text}"
    );
    let arm_lines = output.iter().filter(|l| l.contains(" × ")).count();
    assert!(arm_lines >= 9, "the table should list the 9 arms:\n{text}");
    let sent_line = output
        .iter()
        .find(|l| l.starts_with("demo: "))
        .unwrap_or_else(|| panic!("no summary line:\n{text}"));
    assert!(
        sent_line.ends_with(" 0 errors"),
        "the edge answered errors: {sent_line}"
    );

    // Nothing left running: the ports are closed and the private cluster is stopped.
    for (what, port) in [
        ("the API", api_port),
        ("the Worker", edge_port),
        ("the page", page_port),
    ] {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "{what} still listens on {port} after the demo exited"
        );
    }
    if private_cluster {
        assert!(
            text.contains("the private PostgreSQL cluster stopped"),
            "{text}"
        );
        assert!(
            !pg_dir.path().join("data").join("postmaster.pid").exists(),
            "the private PostgreSQL cluster is still running"
        );
    }
}

/// The page carries the site key and loads the snippet, which its server forwards from
/// the edge.
async fn check_landing_page(http: &reqwest::Client, port: u16) {
    let base = format!("http://127.0.0.1:{port}");
    let html = http
        .get(format!("{base}/"))
        .send()
        .await
        .expect("the demo page answers")
        .text()
        .await
        .expect("the demo page has a body");
    assert!(
        html.contains("data-site-key=\"pk_"),
        "the page has no site key: {html}"
    );
    let key = html
        .split("src=\"/v1/samplit.js?site=")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("the page loads no site script: {html}"))
        .to_owned();
    assert!(html.contains(&format!("data-site-key=\"{key}\"")), "{html}");
    let snippet = http
        .get(format!("{base}/v1/samplit.js?site={key}"))
        .send()
        .await
        .expect("the page server forwards the snippet");
    assert_eq!(snippet.status(), 200);
    let source = snippet.text().await.expect("the snippet has a body");
    assert!(
        source.starts_with("window.__samplit_site = {")
            && source.contains(&format!("\"key\":\"{key}\""))
            && source.contains("samplit.track"),
        "the site's snippet did not come through: {}",
        &source[..source.len().min(300)]
    );
}
