//! The Worker under workerd: `wrangler dev --local` with a config in a temporary
//! directory, filled in from `edge-worker/test/wrangler.template.toml` (the template the
//! node harness, `edge-worker/test/harness.mjs`, fills in too). The config has no
//! `[build]` table (the Worker is built once by `cargo xtask edge-build`; wrangler starts
//! in about a second), local KV and a Queue whose consumer is the same Worker, forwarding
//! to the control plane with a 1 s batch timeout and 1 s retry delay (so a control-plane
//! outage is retried quickly), and the two rate-limiting bindings with the limits asked
//! for. Secrets go in a `.dev.vars` file next to the config, not in the config nor on the
//! command line. Local state (`--persist-to`) lives in the temporary directory and goes
//! with it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::net::wait_for;
use crate::paths;
use crate::process::Proc;

/// How the Worker is configured.
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    pub port: u16,
    /// `SAMPLIT_CONTROL_PLANE_URL`: the consumer POSTs to `{url}/api/v1/ingest`.
    pub control_plane_url: String,
    pub ingest_secret: String,
    pub snapshot_secret: String,
    /// Queue consumer: deliveries of a failing batch before it goes to the DLQ.
    pub max_retries: u32,
    /// Queue consumer: seconds between deliveries of a failing batch.
    pub retry_delay_secs: u32,
    /// Queue consumer: seconds it waits to fill a batch (`max_batch_timeout`; 5 in the
    /// repository's wrangler.toml, 1 in tests).
    pub batch_timeout_secs: u32,
    /// The `[[ratelimits]]` bindings' limits.
    pub rate_limits: RateLimits,
    /// `SAMPLIT_ORIGIN_OVERRIDE` (development): where the Worker fetches a routed host's
    /// pages from, for edge rendering and the visual editor's proxy.
    pub origin_override: Option<String>,
}

/// Requests per 10 s per site and client address that the Worker lets through on
/// `/v1/assign` and `/v1/events` (edge-worker/src/ratelimit.rs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    pub assign: u32,
    pub events: u32,
}

impl RateLimits {
    /// The repository's `wrangler.toml`: what production runs.
    pub const PRODUCTION: Self = Self {
        assign: 300,
        events: 120,
    };
    /// Far above anything one loopback client sends: for tests and the demo, whose
    /// simulated visitors all come from 127.0.0.1.
    pub const GENEROUS: Self = Self {
        assign: 1_000_000,
        events: 1_000_000,
    };
}

/// A running Worker.
#[derive(Debug)]
pub struct Edge {
    // Field order is drop order: the process goes before its directory.
    proc: Proc,
    base: String,
    _dir: tempfile::TempDir,
}

/// One site in `GET /v1/healthz?site_key=`.
#[derive(Debug, Clone, Deserialize)]
pub struct SiteHealth {
    pub site_key: String,
    /// `None`: the Worker serves no snapshot for the site.
    pub version: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct Health {
    site: SiteHealth,
}

impl Edge {
    /// Writes the config and starts `wrangler dev`; ready when `/v1/healthz` answers.
    pub async fn start(config: &EdgeConfig) -> anyhow::Result<Self> {
        paths::require_edge_build()?;
        let dir = tempfile::Builder::new()
            .prefix("samplit-edge-")
            .tempdir()
            .context("creating the Worker's temporary directory")?;
        let config_path = write_config(dir.path(), config)?;
        let state = dir.path().join("state");
        let log = dir.path().join("wrangler.log");
        let wrangler = paths::wrangler();
        let mut command = Command::new(&wrangler);
        command
            .current_dir(dir.path())
            .arg("dev")
            .arg("--local")
            .args(["--ip", "127.0.0.1", "--port", &config.port.to_string()])
            .arg("--persist-to")
            .arg(&state)
            .arg("--config")
            .arg(&config_path)
            .args([
                "--show-interactive-dev-session=false",
                "--log-level",
                "info",
            ])
            // No calls home, no update check, no cf.json fetch; caches in the temp dir.
            .env("WRANGLER_SEND_METRICS", "false")
            .env("WRANGLER_HIDE_BANNER", "true")
            .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
            .env("XDG_CONFIG_HOME", dir.path().join("xdg-config"))
            .env("XDG_CACHE_HOME", dir.path().join("xdg-cache"))
            .env("CI", "true");
        let started = Instant::now();
        let mut proc = Proc::spawn("wrangler dev", command, &log)?;
        let base = format!("http://127.0.0.1:{}", config.port);
        let health_url = format!("{base}/v1/healthz");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let outcome = wait_for(
            &format!("wrangler dev to answer {health_url}"),
            Duration::from_secs(90),
            Duration::from_millis(200),
            || {
                let exited = proc.exited();
                let request = http.get(&health_url).send();
                async move {
                    if let Some(status) = exited {
                        bail!("wrangler dev exited early ({status})");
                    }
                    Ok(match request.await {
                        Ok(r) if r.status().is_success() => Some(()),
                        _ => None,
                    })
                }
            },
        )
        .await;
        if let Err(e) = outcome {
            let tail = proc.log_tail(60);
            return Err(e).context(format!("--- wrangler log ---\n{tail}"));
        }
        eprintln!(
            "[harness] Worker (wrangler dev) ready on {base} in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        Ok(Self {
            proc,
            base,
            _dir: dir,
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    pub fn log_tail(&self, lines: usize) -> String {
        self.proc.log_tail(lines)
    }

    pub fn log_path(&self) -> PathBuf {
        self.proc.log_path().to_path_buf()
    }

    /// The snapshot version the Worker serves for `site_key`
    /// (`GET /v1/healthz?site_key=`), `None` when it serves none.
    pub async fn site_version(
        &self,
        http: &reqwest::Client,
        site_key: &str,
    ) -> anyhow::Result<Option<u64>> {
        let health: Health = http
            .get(format!("{}/v1/healthz", self.base))
            .query(&[("site_key", site_key)])
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        anyhow::ensure!(
            health.site.site_key == site_key,
            "healthz answered for another site"
        );
        Ok(health.site.version)
    }

    /// Waits until the Worker holds a snapshot of `site_key` with version ≥ `min_version`;
    /// returns the version.
    pub async fn wait_for_snapshot(
        &self,
        http: &reqwest::Client,
        site_key: &str,
        min_version: u64,
        timeout: Duration,
    ) -> anyhow::Result<u64> {
        wait_for(
            &format!("the Worker to hold snapshot version ≥ {min_version} of site {site_key}"),
            timeout,
            Duration::from_millis(200),
            || async {
                let version = self.site_version(http, site_key).await.ok().flatten();
                Ok(version.filter(|v| *v >= min_version))
            },
        )
        .await
    }

    /// Stops wrangler (and workerd).
    pub fn stop(mut self) {
        self.proc.stop(Duration::from_secs(5));
    }
}

/// The config template both test harnesses fill in (edge-worker/test/harness.mjs reads
/// the same file); its header documents the syntax and the placeholders. Built into the
/// binary, so the harness and the demo find it from any working directory.
const TEMPLATE: &str = include_str!("../../edge-worker/test/wrangler.template.toml");
/// Where [`TEMPLATE`] lives, for messages.
const TEMPLATE_PATH: &str = "edge-worker/test/wrangler.template.toml";

/// The `wrangler.toml` filled in from [`TEMPLATE`], and `.dev.vars` with the secrets;
/// returns the config's path.
fn write_config(dir: &Path, c: &EdgeConfig) -> anyhow::Result<PathBuf> {
    let main = paths::edge_shim();
    let main = main.to_str().context("the Worker's path is not UTF-8")?;
    let toml = render_template(TEMPLATE, &config_values(main, c))?;
    let path = dir.join("wrangler.toml");
    std::fs::write(&path, toml).context("writing wrangler.toml")?;
    let vars = format!(
        "SAMPLIT_SNAPSHOT_SECRET={}\nSAMPLIT_INGEST_SECRET={}\n",
        c.snapshot_secret, c.ingest_secret
    );
    std::fs::write(dir.join(".dev.vars"), vars).context("writing .dev.vars")?;
    Ok(path)
}

/// The template's values for `c` with the Worker at `main`. The secrets are not among
/// them: they go in `.dev.vars`, so they are not in [vars] nor on a command line.
fn config_values(main: &str, c: &EdgeConfig) -> Vec<(&'static str, String)> {
    vec![
        ("WORKER_NAME", toml_string("samplit-edge-local")),
        ("MAIN", toml_string(main)),
        (
            "VARS",
            match &c.origin_override {
                None => format!(
                    "SAMPLIT_CONTROL_PLANE_URL = {}",
                    toml_string(&c.control_plane_url)
                ),
                Some(origin) => format!(
                    "SAMPLIT_CONTROL_PLANE_URL = {}\nSAMPLIT_ORIGIN_OVERRIDE = {}",
                    toml_string(&c.control_plane_url),
                    toml_string(origin)
                ),
            },
        ),
        ("KV_NAMESPACE_ID", toml_string("local-snapshots")),
        ("MAX_RETRIES", c.max_retries.to_string()),
        ("RETRY_DELAY", c.retry_delay_secs.to_string()),
        ("BATCH_TIMEOUT", c.batch_timeout_secs.to_string()),
        ("RATE_ASSIGN", c.rate_limits.assign.to_string()),
        ("RATE_EVENTS", c.rate_limits.events.to_string()),
    ]
}

/// `s` as a TOML basic string, quotes included.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Fills in the template text (the rules in its header, as `renderTemplate` in
/// edge-worker/test/harness.mjs): lines starting with `##` are dropped, `{{NAME}}` is
/// replaced by NAME's value, and the lines between `{{#NAME}}` and `{{/NAME}}` are kept
/// only when `values` has NAME. A placeholder without a value is an error.
fn render_template(template: &str, values: &[(&str, String)]) -> anyhow::Result<String> {
    let value = |name: &str| values.iter().find(|(n, _)| *n == name).map(|(_, v)| v);
    // The open section: its name and whether its lines are kept.
    let mut section: Option<(&str, bool)> = None;
    let mut out = String::with_capacity(template.len());
    for line in template.split_inclusive('\n') {
        if line.starts_with("##") {
            continue;
        }
        let marker = line.trim_end();
        if let Some(name) = marker_name(marker, '#') {
            if let Some((open, _)) = section {
                bail!("{TEMPLATE_PATH}: {{{{#{name}}}}} inside {{{{#{open}}}}}");
            }
            section = Some((name, value(name).is_some()));
        } else if let Some(name) = marker_name(marker, '/') {
            if section.map(|(open, _)| open) != Some(name) {
                bail!("{TEMPLATE_PATH}: {{{{/{name}}}}} closes no section");
            }
            section = None;
        } else if section.is_none_or(|(_, keep)| keep) {
            let mut rest = line;
            while let Some(start) = rest.find("{{") {
                let after = &rest[start + 2..];
                let name = after
                    .find("}}")
                    .map(|end| &after[..end])
                    .filter(|name| is_placeholder_name(name));
                out.push_str(&rest[..start]);
                match name {
                    Some(name) => {
                        let v = value(name).with_context(|| {
                            format!("{TEMPLATE_PATH}: no value for {{{{{name}}}}}")
                        })?;
                        out.push_str(v);
                        rest = &after[name.len() + 2..];
                    }
                    // Not a placeholder: keep one brace and look again from the next.
                    None => {
                        out.push('{');
                        rest = &rest[start + 1..];
                    }
                }
            }
            out.push_str(rest);
        }
    }
    if let Some((open, _)) = section {
        bail!("{TEMPLATE_PATH}: {{{{#{open}}}}} is not closed");
    }
    Ok(out)
}

/// NAME when `line` is `{{<sigil>NAME}}`.
fn marker_name(line: &str, sigil: char) -> Option<&str> {
    line.strip_prefix("{{")?
        .strip_prefix(sigil)?
        .strip_suffix("}}")
        .filter(|name| is_placeholder_name(name))
}

/// `[A-Z0-9_]+`, as the node harness's pattern.
fn is_placeholder_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
        pairs.iter().map(|(n, v)| (*n, (*v).to_owned())).collect()
    }

    #[test]
    fn the_template_is_filled_in_completely() {
        let c = EdgeConfig {
            port: 8787,
            control_plane_url: "http://127.0.0.1:4000".to_owned(),
            ingest_secret: "i".to_owned(),
            snapshot_secret: "s".to_owned(),
            max_retries: 3,
            retry_delay_secs: 2,
            batch_timeout_secs: 1,
            rate_limits: RateLimits {
                assign: 7,
                events: 9,
            },
            origin_override: Some("http://127.0.0.1:8000".to_owned()),
        };
        let toml = render_template(TEMPLATE, &config_values("/w/shim.mjs", &c)).unwrap();
        assert!(!toml.contains("{{"), "a placeholder is left:\n{toml}");
        assert!(!toml.contains("##"), "a template comment is left:\n{toml}");
        for line in [
            r#"name = "samplit-edge-local""#,
            r#"main = "/w/shim.mjs""#,
            r#"SAMPLIT_CONTROL_PLANE_URL = "http://127.0.0.1:4000""#,
            r#"SAMPLIT_ORIGIN_OVERRIDE = "http://127.0.0.1:8000""#,
            r#"id = "local-snapshots""#,
            "max_retries = 3",
            "retry_delay = 2",
            "simple = { limit = 7, period = 10 }",
            "simple = { limit = 9, period = 10 }",
        ] {
            assert!(
                toml.lines().any(|l| l == line),
                "no line {line:?} in:\n{toml}"
            );
        }
        assert!(!toml.contains("SECRET"), "secrets belong in .dev.vars");
    }

    #[test]
    fn an_optional_section_without_a_value_is_left_out() {
        let template = "## about\na = {{A}}\n{{#B}}\nb = {{B}}\n{{/B}}\n{{#C}}\nc = {{C}}\n{{/C}}\nend {{ x }}\n";
        let toml = render_template(template, &values(&[("A", "1"), ("C", "3")])).unwrap();
        assert_eq!(toml, "a = 1\nc = 3\nend {{ x }}\n");
    }

    #[test]
    fn braces_that_are_not_a_placeholder_are_kept() {
        let toml = render_template("a = {{{A}}} {{ b }} {{c}}\n", &values(&[("A", "1")])).unwrap();
        assert_eq!(toml, "a = {1} {{ b }} {{c}}\n");
    }

    #[test]
    fn a_placeholder_without_a_value_or_an_unclosed_section_is_an_error() {
        let cases = [
            ("a = {{A}}\n", "no value for {{A}}"),
            ("{{#A}}\na = 1\n", "{{#A}} is not closed"),
            ("{{/A}}\n", "{{/A}} closes no section"),
            ("{{#A}}\n{{#B}}\n{{/B}}\n{{/A}}\n", "{{#B}} inside {{#A}}"),
        ];
        for (template, message) in cases {
            let error = render_template(template, &[]).unwrap_err().to_string();
            assert!(error.contains(message), "{template:?}: {error}");
        }
    }

    #[test]
    fn toml_strings_are_escaped() {
        assert_eq!(toml_string("http://h:1/p"), r#""http://h:1/p""#);
        assert_eq!(toml_string("a\"b\\c\nd\u{1}"), r#""a\"b\\c\nd\u0001""#);
    }
}
