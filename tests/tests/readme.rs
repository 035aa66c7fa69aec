//! The README's examples run as written. Every fenced block marked ```` ```sh test ````
//! in README.md is extracted, in order, and run in one bash session (`set -euo
//! pipefail`, so each `curl -f` must succeed) against a live product: `samplit serve`
//! and the Worker under `wrangler dev`, on the ports the README names replaced by this
//! run's ports. A block that fails names itself.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use samplit_tests::paths;
use samplit_tests::stack::{Stack, StackOptions};

/// The base URLs the README uses.
const README_API: &str = "http://127.0.0.1:8080";
const README_EDGE: &str = "http://127.0.0.1:8787";

/// The ```` ```sh test ```` blocks of a Markdown text, in order.
fn tested_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in markdown.lines() {
        match current.as_mut() {
            None if line.trim_start().starts_with("```") => {
                let info: Vec<&str> = line
                    .trim_start()
                    .trim_start_matches('`')
                    .split_whitespace()
                    .collect();
                if info == ["sh", "test"] {
                    current = Some(Vec::new());
                }
            }
            None => {}
            Some(_) if line.trim_start().starts_with("```") => {
                blocks.push(current.take().unwrap_or_default().join("\n"));
            }
            Some(lines) => lines.push(line),
        }
    }
    blocks
}

#[test]
fn only_blocks_marked_sh_test_are_extracted() {
    let md = "a\n```sh\nnot me\n```\n```sh test\necho one\necho two\n```\n```json\n{}\n```\n```sh test\necho three\n```\n";
    assert_eq!(
        tested_blocks(md),
        vec!["echo one\necho two".to_owned(), "echo three".to_owned()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_curl_examples_work_against_the_running_product() {
    for tool in ["bash", "curl", "jq"] {
        let found = Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        assert!(
            found.is_ok(),
            "the README examples need `{tool}` (e.g. `sudo apt-get install {tool}`)"
        );
    }
    let readme = std::fs::read_to_string(paths::workspace_root().join("README.md")).unwrap();
    let blocks = tested_blocks(&readme);
    assert!(
        blocks.len() >= 6,
        "README.md should have its API examples marked ```sh test; found {}",
        blocks.len()
    );
    assert!(
        blocks.iter().any(|b| b.contains(README_API))
            && blocks.iter().any(|b| b.contains(README_EDGE)),
        "the README's examples should name {README_API} and {README_EDGE}"
    );

    let stack = Stack::start(&StackOptions::for_tests("samplit_readme"))
        .await
        .unwrap_or_else(|e| panic!("could not start the product: {e:#}"));
    let mut script = String::from("set -euo pipefail\n");
    for (i, block) in blocks.iter().enumerate() {
        let block = block
            .replace(README_API, &stack.control_plane.base_url())
            .replace(README_EDGE, stack.edge.base_url());
        script.push_str(&format!("echo '### README block {}' >&2\n{block}\n", i + 1));
    }
    script.push_str("echo '### all README blocks passed' >&2\n");

    let started = Instant::now();
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(stack.workdir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Bounded: the blocks wait at most 30 s for the snapshot; everything else is quick.
    let deadline = Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        status.success() && stderr.contains("### all README blocks passed"),
        "the README examples failed ({status}) — the last `### README block N` below is the one that failed\n\
         --- stderr ---\n{stderr}\n--- stdout ---\n{stdout}\n{}",
        stack.logs(30)
    );
    // The blocks did what they say: the experiment started and the edge assigned the visitor.
    assert!(
        stdout.contains("\"running\""),
        "the start example did not print the running status:\n{stdout}"
    );
    assert!(
        stdout.contains("\"experiment_id\""),
        "the plugin example got no assignment:\n{stdout}"
    );
    eprintln!(
        "[readme] {} blocks passed in {:.1} s",
        blocks.len(),
        started.elapsed().as_secs_f64()
    );
}
