//! Outgoing webhooks per organisation: signed JSON deliveries of [`AlertEvent`]s, retried
//! with back-off, logged.
//!
//! Layout:
//! - [`enqueue`] (called in the alert's transaction) writes one `webhook_deliveries` row
//!   per enabled webhook of the organisation that subscribes to the event's kind, with
//!   the payload ([`payload`]); `UNIQUE (webhook_id, event_id)` queues an event once.
//!   `POST /webhooks/{id}/test` queues a [`TEST_TYPE`] delivery the same way.
//! - [`pass`] (what [`run`] does every `SAMPLIT_WEBHOOK_POLL_MS`) sends the due deliveries
//!   one per transaction, each locked `FOR UPDATE SKIP LOCKED` like the mail outbox. The
//!   body is the stored payload with its links added ([`render`]); it is POSTed with a
//!   `Samplit-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>` header
//!   ([`signature_header`]). A 2xx is delivered; anything else (another status, a redirect
//!   — never followed —, a timeout, a refused address) is retried after
//!   [`crate::mail::outbox::backoff`] of `SAMPLIT_WEBHOOK_RETRY_BASE_MS`, until
//!   `SAMPLIT_WEBHOOK_GIVE_UP` after the delivery was queued: then it is `failed`, logged
//!   at error level with the webhook id (never the secret).
//! - Secrets are never stored: [`signing_secret`] derives one from
//!   `SAMPLIT_WEBHOOK_SECRET`, the webhook id and its `secret_version` (a rotation
//!   increments the version). Without `SAMPLIT_WEBHOOK_SECRET` webhooks are off: the
//!   endpoints answer 503 and the worker sends nothing.
//! - Addresses ([`check_url`] when saving, [`addresses`] when sending): `https` only, no
//!   credentials, at most [`MAX_URL_CHARS`]; the host is resolved when sending and every
//!   address must pass [`verification::may_connect`] (no private, link-local, metadata
//!   or reserved address); the request is pinned to the checked addresses (no second
//!   lookup can swap in another one). With `SAMPLIT_DEV_ALLOW_LOCAL_DOMAINS`, `http` and
//!   loopback are allowed (tests and local development).

use std::net::{IpAddr, SocketAddr};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{AlertEvent, AlertKind};
use crate::config::{Config, Secret};
use crate::db::webhooks as db;
use crate::domain::verification;
use crate::mail::outbox::backoff;
use crate::state::AppState;

/// The longest URL accepted.
pub const MAX_URL_CHARS: usize = 2048;
/// The payload type of a test delivery (not an alert kind).
pub const TEST_TYPE: &str = "test";
/// Prefix of signing secrets.
pub const SECRET_PREFIX: &str = "whsec_";
/// The most deliveries one pass sends (the next pass continues).
pub const PASS_LIMIT: usize = 200;
/// The longest error text kept in the delivery log.
pub const MAX_ERROR_CHARS: usize = 300;
/// Bytes of a refused answer's body kept for the log.
const MAX_BODY_EXCERPT: usize = 200;
pub const USER_AGENT: &str = "Samplit-Webhooks/1";

type HmacSha256 = Hmac<Sha256>;

fn mac(key: &[u8]) -> HmacSha256 {
    <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC-SHA256 accepts keys of any length")
}

/// The payload `type` of an alert kind.
pub fn event_type(kind: AlertKind) -> &'static str {
    match kind {
        AlertKind::Winner => "experiment.winner",
        AlertKind::Srm => "experiment.srm",
        AlertKind::GuardrailHarmed => "experiment.guardrail_harmed",
        AlertKind::PublishFailing => "site.publish_failing",
    }
}

/// The signing secret of version `version` of webhook `webhook_id`:
/// `whsec_` + base64url(HMAC-SHA256(key, `"samplit webhook v1:<id>:<version>"`)).
pub fn signing_secret(key: &Secret, webhook_id: Uuid, version: i32) -> String {
    use base64::Engine as _;
    let mut m = mac(key.expose());
    m.update(format!("samplit webhook v1:{webhook_id}:{version}").as_bytes());
    let digest = m.finalize().into_bytes();
    format!(
        "{SECRET_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
    )
}

/// `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`; the key is the whole
/// secret string (with its `whsec_` prefix) as UTF-8 bytes.
pub fn signature_header(secret: &str, t: i64, body: &[u8]) -> String {
    let mut m = mac(secret.as_bytes());
    m.update(format!("{t}.").as_bytes());
    m.update(body);
    format!("t={t},v1={}", hex::encode(m.finalize().into_bytes()))
}

/// Whether `raw` may be saved as a webhook URL; the parsed URL, or why not.
pub fn check_url(raw: &str, dev_allow_local: bool) -> Result<url::Url, String> {
    if raw.chars().count() > MAX_URL_CHARS {
        return Err(format!(
            "a webhook URL has at most {MAX_URL_CHARS} characters"
        ));
    }
    let url = url::Url::parse(raw.trim()).map_err(|e| format!("not a valid URL ({e})"))?;
    match url.scheme() {
        "https" => {}
        "http" if dev_allow_local => {}
        _ => return Err("a webhook URL must be https".to_owned()),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("a webhook URL cannot contain credentials (user:password@)".to_owned());
    }
    match url.host() {
        None => return Err("a webhook URL needs a host".to_owned()),
        Some(url::Host::Domain(host)) => {
            if !dev_allow_local && verification::is_development_name(host) {
                return Err(format!(
                    "{host} is a development name (localhost, .test, .example, .invalid, .local)"
                ));
            }
        }
        Some(url::Host::Ipv4(ip)) => refuse_internal(IpAddr::V4(ip), dev_allow_local)?,
        Some(url::Host::Ipv6(ip)) => refuse_internal(IpAddr::V6(ip), dev_allow_local)?,
    }
    Ok(url)
}

fn refuse_internal(ip: IpAddr, dev_allow_local: bool) -> Result<(), String> {
    verification::may_connect(ip, dev_allow_local).map_err(|why| {
        format!("{ip} is an internal address ({why}); webhooks go to public addresses")
    })
}

/// The addresses a delivery to `url` may connect to: the host resolved once, every
/// address checked; refused when any is internal (a name that mixes public and internal
/// addresses is suspect).
pub async fn addresses(url: &url::Url, dev_allow_local: bool) -> Result<Vec<SocketAddr>, String> {
    let checked = check_url(url.as_str(), dev_allow_local)?;
    let port = checked
        .port_or_known_default()
        .ok_or_else(|| "the URL has no port".to_owned())?;
    let found: Vec<SocketAddr> = match checked.host() {
        Some(url::Host::Ipv4(ip)) => vec![SocketAddr::new(IpAddr::V4(ip), port)],
        Some(url::Host::Ipv6(ip)) => vec![SocketAddr::new(IpAddr::V6(ip), port)],
        Some(url::Host::Domain(host)) => tokio::net::lookup_host((host, port))
            .await
            .map_err(|_| format!("{host} could not be resolved"))?
            .collect(),
        None => return Err("a webhook URL needs a host".to_owned()),
    };
    if found.is_empty() {
        return Err("the host has no address".to_owned());
    }
    for addr in &found {
        refuse_internal(addr.ip(), dev_allow_local)?;
    }
    Ok(found)
}

/// The stored payload of `event` (its links are added when sending, by [`render`]).
pub fn payload(event: &AlertEvent) -> serde_json::Value {
    serde_json::json!({
        "id": event.id,
        "type": event_type(event.kind),
        "created_at": crate::http::rfc3339(event.at),
        "organization_id": event.org_id,
        "experiment": event.experiment.as_ref().map(|(id, name)| serde_json::json!({ "id": id, "name": name })),
        "site": event.site.as_ref().map(|(id, name)| serde_json::json!({ "id": id, "name": name })),
        "text": slack_escape(&event.text),
        "detail": event.detail,
    })
}

/// The stored payload of a test delivery to `webhook_id`.
pub fn test_payload(org_id: Uuid, webhook_id: Uuid, event_id: Uuid) -> serde_json::Value {
    serde_json::json!({
        "id": event_id,
        "type": TEST_TYPE,
        "created_at": crate::http::rfc3339(OffsetDateTime::now_utc()),
        "organization_id": org_id,
        "experiment": null,
        "site": null,
        "text": "Samplit: a test delivery to this webhook. It works.",
        "detail": { "webhook_id": webhook_id },
    })
}

/// Slack's escaping of `&`, `<` and `>` in message text (its link syntax uses `<…|…>`).
pub fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The body sent: the stored payload with the experiment's `url` and, at the end of
/// `text`, a link in Slack's `<url|label>` form (to the results, the site or the webhook
/// settings). Without `SAMPLIT_PUBLIC_URL` there is no link (`url` is null).
pub fn render(config: &Config, stored: &serde_json::Value) -> serde_json::Value {
    let mut body = stored.clone();
    let public = config.public_url.is_some();
    let experiment_id = stored["experiment"]["id"].as_str().map(str::to_owned);
    let site_id = stored["site"]["id"].as_str().map(str::to_owned);
    let link = if let Some(id) = &experiment_id {
        let url = crate::mail::console_url(config, &format!("/experiments/{id}/results"));
        body["experiment"]["url"] = if public {
            url.clone().into()
        } else {
            serde_json::Value::Null
        };
        Some((url, "Open the results"))
    } else if let Some(id) = &site_id {
        Some((
            crate::mail::console_url(config, &format!("/sites/{id}")),
            "Open the site",
        ))
    } else {
        Some((
            crate::mail::console_url(config, "/webhooks"),
            "Webhook settings",
        ))
    };
    if let (true, Some((url, label)), Some(text)) = (public, link, stored["text"].as_str()) {
        body["text"] = format!("{text} <{url}|{label}>").into();
    }
    body
}

/// Queues a delivery of `event` to each of its organisation's enabled webhooks, in the
/// caller's transaction; how many were queued.
pub async fn enqueue(conn: &mut PgConnection, event: &AlertEvent) -> Result<usize, sqlx::Error> {
    let hooks = db::subscribed(conn, event.org_id, event.kind.as_str()).await?;
    let body = payload(event);
    let mut queued = 0;
    for webhook_id in hooks {
        if db::queue(conn, webhook_id, event.id, event_type(event.kind), &body)
            .await?
            .is_some()
        {
            queued += 1;
        }
    }
    Ok(queued)
}

/// What one [`pass`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    pub delivered: usize,
    pub retried: usize,
    pub failed: usize,
}

/// One attempt's failure: the receiver's status (if it answered) and a bounded text.
struct Failure {
    status: Option<i32>,
    error: String,
}

fn failure(status: Option<i32>, error: impl Into<String>) -> Failure {
    let error: String = error
        .into()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_ERROR_CHARS)
        .collect();
    Failure { status, error }
}

/// Sends what was due when it started (each delivery at most once), up to
/// [`PASS_LIMIT`] deliveries; a failure does not stop the pass (receivers are
/// independent, unlike the mail outbox's one server). Does nothing
/// while webhooks are off (no `SAMPLIT_WEBHOOK_SECRET`).
pub async fn pass(state: &AppState) -> anyhow::Result<Report> {
    let mut report = Report::default();
    let Some(key) = state.config.webhook_secret.as_ref() else {
        return Ok(report);
    };
    let alerts = &state.config.alerts;
    // The database's clock, which `next_attempt_at` is written with.
    let started: OffsetDateTime = sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(&state.pool)
        .await?;
    for _ in 0..PASS_LIMIT {
        let mut tx = state.pool.begin().await?;
        let Some(due) = db::lock_due(&mut tx, started).await? else {
            break;
        };
        let secret = signing_secret(key, due.webhook_id, due.secret_version);
        let outcome = send(&state.config, &due, &secret).await;
        let attempts = u32::try_from(due.attempts).unwrap_or(0).saturating_add(1);
        match outcome {
            Ok(status) => {
                db::mark_delivered(&mut tx, due.id, status).await?;
                report.delivered += 1;
            }
            Err(f) => {
                let age = OffsetDateTime::now_utc() - due.created_at;
                if age >= alerts.webhook_give_up {
                    tracing::error!(
                        webhook_id = %due.webhook_id, delivery_id = %due.id, event_id = %due.event_id,
                        attempts, status = ?f.status, error = %f.error,
                        "webhook delivery given up"
                    );
                    db::mark_failed_attempt(&mut tx, due.id, f.status, &f.error, None).await?;
                    report.failed += 1;
                } else {
                    let delay = backoff(alerts.webhook_retry_base, attempts);
                    tracing::warn!(
                        webhook_id = %due.webhook_id, delivery_id = %due.id, attempts,
                        retry_in_ms = delay.as_millis() as u64, status = ?f.status,
                        error = %f.error, "webhook delivery failed; will retry"
                    );
                    let delay = time::Duration::try_from(delay).unwrap_or(time::Duration::HOUR);
                    db::mark_failed_attempt(&mut tx, due.id, f.status, &f.error, Some(delay))
                        .await?;
                    report.retried += 1;
                }
            }
        }
        tx.commit().await?;
    }
    Ok(report)
}

/// One attempt: the receiver's 2xx status, or why not.
async fn send(config: &Config, due: &db::DueRow, secret: &str) -> Result<i32, Failure> {
    let url = url::Url::parse(&due.url).map_err(|_| failure(None, "the stored URL is invalid"))?;
    let pinned = addresses(&url, config.dev_allow_local_domains)
        .await
        .map_err(|e| failure(None, e))?;
    let timeout = config.alerts.webhook_timeout;
    let mut client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout)
        .no_proxy()
        .user_agent(USER_AGENT);
    if let Some(url::Host::Domain(host)) = url.host() {
        client = client.resolve_to_addrs(host, &pinned);
    }
    let client = client.build().map_err(|e| {
        tracing::error!(error = %e, "cannot build the webhook client");
        failure(None, "the webhook client could not be built")
    })?;
    let body = serde_json::to_vec(&render(config, &due.payload))
        .map_err(|_| failure(None, "the payload could not be serialised"))?;
    let t = OffsetDateTime::now_utc().unix_timestamp();
    let response = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("Samplit-Event-Id", due.event_id.to_string())
        .header("Samplit-Signature", signature_header(secret, t, &body))
        .body(body)
        .send()
        .await
        .map_err(|e| {
            // Never the error's URL: a receiver URL may carry a token in its path.
            let e = e.without_url();
            let what = if e.is_timeout() {
                "timed out".to_owned()
            } else if e.is_connect() {
                "could not connect".to_owned()
            } else {
                format!("request failed: {e}")
            };
            failure(None, what)
        })?;
    let status = response.status();
    let code = i32::from(status.as_u16());
    if status.is_success() {
        return Ok(code);
    }
    if status.is_redirection() {
        return Err(failure(
            Some(code),
            format!("HTTP {code}: a redirect; redirects are not followed"),
        ));
    }
    let excerpt = excerpt(response).await;
    Err(failure(Some(code), format!("HTTP {code}: {excerpt}")))
}

/// The first bytes of a refused answer's body (bounded: the rest is not read).
async fn excerpt(mut response: reqwest::Response) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < MAX_BODY_EXCERPT {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    bytes.truncate(MAX_BODY_EXCERPT);
    String::from_utf8_lossy(&bytes).trim().to_owned()
}

/// Delivers due webhook calls every `SAMPLIT_WEBHOOK_POLL_MS` until `shutdown` resolves.
pub async fn run(state: AppState, shutdown: impl std::future::Future<Output = ()> + Send) {
    let poll = state.config.alerts.webhook_poll;
    crate::background::every(poll, shutdown, || async {
        match pass(&state).await {
            Ok(report) if report != Report::default() => tracing::info!(
                delivered = report.delivered,
                retried = report.retried,
                failed = report.failed,
                "webhook pass"
            ),
            Ok(_) => {}
            Err(error) => tracing::error!(%error, "webhook pass failed"),
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_https_without_credentials_to_public_hosts() {
        let cases = [
            (
                "https://hooks.slack.com/services/T/B/x",
                false,
                true,
                "a public https URL",
            ),
            (
                "http://hooks.slack.com/x",
                false,
                false,
                "http without the dev switch",
            ),
            (
                "http://127.0.0.1:9/x",
                true,
                true,
                "http to loopback with the dev switch",
            ),
            (
                "https://127.0.0.1/x",
                false,
                false,
                "loopback without the dev switch",
            ),
            (
                "https://10.0.0.1/x",
                true,
                false,
                "private, even with the dev switch",
            ),
            ("https://169.254.169.254/x", true, false, "metadata address"),
            ("https://[::1]/x", false, false, "IPv6 loopback"),
            ("https://user:pw@example.org/x", false, false, "credentials"),
            ("https://localhost/x", false, false, "a development name"),
            ("ftp://example.org/x", true, false, "another scheme"),
            ("not a url", true, false, "garbage"),
        ];
        for (url, dev, ok, what) in cases {
            assert_eq!(check_url(url, dev).is_ok(), ok, "{what}: {url}");
        }
        let long = format!("https://example.org/{}", "a".repeat(MAX_URL_CHARS));
        assert!(check_url(&long, false).is_err(), "too long");
    }

    #[test]
    fn slack_text_is_escaped() {
        assert_eq!(slack_escape("a < b & c > d"), "a &lt; b &amp; c &gt; d");
    }
}
