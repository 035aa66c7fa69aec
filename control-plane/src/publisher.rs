//! The snapshot publisher: every `SAMPLIT_PUBLISH_INTERVAL` it rebuilds each site's
//! snapshot, and pushes the changed ones, signed, to the edge.
//!
//! One [`tick`]:
//! 1. takes a session advisory lock ([`LOCK_KEY`]) on a dedicated connection with
//!    `pg_try_advisory_lock`; if another replica holds it, the tick does nothing — so
//!    with several control-plane replicas exactly one publishes at a time;
//! 2. for each site, builds the engine [`Snapshot`]: allowed origins from the domains,
//!    the site's exclusion rules, and every **running** experiment with its elements,
//!    variants and changes, its allocation units and arms; per arm the posterior counts
//!    ([`db::experiments::arm_counts`]) and the propensity computed by the engine's
//!    `Allocator::propensities` (fixed split: normalised weights; Thompson: uniform
//!    during burn-in, then `floor + (1 − k·floor)·P(best)`);
//! 3. hashes the snapshot with its version and timestamp zeroed (the *content hash*):
//!    a site whose content hash equals its last successful publication's is skipped —
//!    this covers every input (site and experiment edits, lifecycle, new aggregates)
//!    without trusting timestamps (an `updated_at` is the editing transaction's start,
//!    so an edit committed just after a build could carry an older timestamp than the
//!    build and be missed; building costs a few indexed queries per site);
//! 4. otherwise gives it the next version (monotonic per site), signs it with
//!    `snapshot::try_sign` (which refuses anything the edge would reject) and `PUT`s it
//!    to `{SAMPLIT_EDGE_URL}/v1/internal/snapshots/{site_key}`, retrying connection
//!    errors, 429 and 5xx within the tick with exponential backoff ([`RetryPolicy`],
//!    bounded);
//! 5. records the attempt in `snapshot_publications` and, when it succeeded, an audit
//!    entry `snapshot.publish` (version, hash, weights) in the same transaction.
//!
//! Back-pressure (issue 10): a site whose publications keep failing is not rebuilt,
//! re-signed and re-pushed every tick. After `n` consecutive failures it waits
//! [`failure_backoff`] (one interval, doubling, capped at `SAMPLIT_PUBLISH_BACKOFF_MAX`,
//! default 10 minutes) before being tried again. A *permanent* failure — the edge answered
//! 413 or 422, or the signed body is above the `snapshot_bytes` quota
//! (`SAMPLIT_QUOTA_SNAPSHOT_BYTES`, then it is not pushed at all) — is not retried until
//! the site's content changes; the publications list shows it (`permanent`, `error`).
//! Hashing, signing and the experiment builders run in `spawn_blocking`.
//!
//! 6. pushes the signed host routes and site tombstones the edge has not taken yet
//!    (`publish_routing`; see docs/security.md, "Domains: ownership, routing,
//!    unpublish"): a snapshot's `allowed_origins` lists only the site's verified hosts.
//!
//! [`run`] loops [`tick`] until shutdown; `serve` starts it when `SAMPLIT_EDGE_URL` and
//! `SAMPLIT_SNAPSHOT_SECRET` are both set.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, anyhow};
use samplit_engine::allocator::ArmStats;
use samplit_engine::changes::Change;
use samplit_engine::multi::Mode;
use samplit_engine::routing::{self, Route, SiteTombstone};
use samplit_engine::snapshot::{
    self, AllocationUnit, Arm, Element, ExperimentSnapshot, GoalSnapshot, GoalTrigger,
    SCHEMA_VERSION, Snapshot, Variant,
};
use samplit_engine::targeting::{ExclusionRule, UrlRule};
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::audit::{self, By, Change as AuditChange};
use crate::db;
use crate::db::experiments::Loaded;
use crate::db::publications::PublicationRow;
use crate::db::sites::SiteRow;
use crate::domain::SiteDomain;
use crate::domain::experiment::AllocatorSpec;
use crate::domain::publication::PublicationStatus;
use crate::state::AppState;

/// The advisory lock that elects the publishing replica (an arbitrary constant:
/// ASCII "samplitP").
pub const LOCK_KEY: i64 = 0x7361_6d70_6c69_7450;

/// How pushes are retried: `attempts` tries in all, waiting `base`, `2·base`, `4·base`…
/// (capped at `max_delay`) between them.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 4 tries over at most 1.75 s: a tick stays well inside the 10 s default interval.
    fn default() -> Self {
        Self {
            attempts: 4,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// The wait before try number `attempt + 1` (`attempt` ≥ 1).
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }
}

/// What one tick did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct TickReport {
    /// False when another replica held the lock (nothing else was done).
    pub leader: bool,
    /// Sites pushed successfully, with the version published.
    pub published: Vec<(Uuid, u64)>,
    /// Sites whose content had not changed since their last publication.
    pub unchanged: usize,
    /// Sites left alone: still backing off after failures, or refused permanently by
    /// the edge with the same content.
    pub deferred: usize,
    /// Sites that could not be built or pushed, with the reason.
    pub failed: Vec<(Uuid, String)>,
    /// Host routes the edge accepted (host, version).
    pub routes: Vec<(String, i64)>,
    /// Site tombstones the edge accepted (site key, version).
    pub tombstones: Vec<(String, i64)>,
    /// Routes or tombstones the edge did not take (retried next tick), with the reason.
    pub routing_failed: Vec<(String, String)>,
}

/// Runs [`tick`] every `interval` until `shutdown` resolves. Errors are logged; the
/// loop keeps going (the next tick retries whatever did not publish).
pub async fn run(state: AppState, shutdown: impl std::future::Future<Output = ()> + Send) {
    let client = match http_client() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "publisher: cannot build the HTTP client; not publishing");
            return;
        }
    };
    // A tick in progress is abandoned at shutdown (its transaction rolls back and the lock
    // connection closes): with an unreachable edge a tick can take a while.
    let (state, client) = (&state, &client);
    crate::background::every(
        state.config.publish_interval,
        shutdown,
        move || async move {
            match tick(state, client).await {
                Ok(report) if report.leader => tracing::info!(
                    published = report.published.len(),
                    unchanged = report.unchanged,
                    failed = report.failed.len(),
                    "publisher tick"
                ),
                Ok(_) => tracing::debug!("publisher: another replica holds the lock"),
                Err(e) => tracing::error!(error = ?e, "publisher tick failed"),
            }
        },
    )
    .await;
    tracing::info!("publisher stopped");
}

/// The client used for pushes: bounded connect and request timeouts.
pub fn http_client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(10))
        .build()
}

/// One publishing pass with the default [`RetryPolicy`].
pub async fn tick(state: &AppState, client: &reqwest::Client) -> anyhow::Result<TickReport> {
    tick_with(state, client, RetryPolicy::default()).await
}

/// One publishing pass (see the module docs).
pub async fn tick_with(
    state: &AppState,
    client: &reqwest::Client,
    retry: RetryPolicy,
) -> anyhow::Result<TickReport> {
    let edge_url = state
        .config
        .edge_url
        .as_deref()
        .ok_or_else(|| anyhow!("SAMPLIT_EDGE_URL is not set"))?;
    let key = state
        .config
        .snapshot_secret
        .as_ref()
        .ok_or_else(|| anyhow!("SAMPLIT_SNAPSHOT_SECRET is not set"))?;

    // A dedicated connection holds the session lock for the whole tick. The guard makes
    // this drop-safe: if the tick is cancelled (shutdown) or fails before unlocking, the
    // connection is closed instead of going back to the pool still holding the lock.
    let mut guard = LockConnection(Some(state.pool.acquire().await?));
    let leader: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(LOCK_KEY)
        .fetch_one(guard.conn()?)
        .await?;
    if !leader {
        guard.release();
        return Ok(TickReport::default());
    }
    let mut outcome = publish_all(state, client, retry, edge_url, key.expose()).await;
    if let Ok(report) = &mut outcome
        && let Err(e) = publish_routing(state, client, retry, edge_url, key.expose(), report).await
    {
        tracing::error!(error = ?e, "publisher: routes and tombstones");
    }
    let unlocked: Result<bool, sqlx::Error> = sqlx::query_scalar("SELECT pg_advisory_unlock($1)")
        .bind(LOCK_KEY)
        .fetch_one(guard.conn()?)
        .await;
    if matches!(unlocked, Ok(true)) {
        guard.release();
    } else {
        tracing::warn!(
            ?unlocked,
            "publisher: unlock failed; closing the lock connection"
        );
    }
    outcome
}

/// The connection that holds the advisory lock. Dropped without [`Self::release`], it
/// closes the session (which releases a session-level advisory lock) rather than
/// returning a locked connection to the pool.
struct LockConnection(Option<sqlx::pool::PoolConnection<sqlx::Postgres>>);

impl LockConnection {
    fn conn(&mut self) -> anyhow::Result<&mut PgConnection> {
        self.0
            .as_deref_mut()
            .ok_or_else(|| anyhow!("the lock connection was already released"))
    }

    /// Returns the (unlocked) connection to the pool.
    fn release(&mut self) {
        drop(self.0.take());
    }
}

impl Drop for LockConnection {
    fn drop(&mut self) {
        if let Some(conn) = self.0.take() {
            // Detached from the pool, the connection closes its socket when dropped and
            // PostgreSQL ends the session, releasing its locks.
            drop(conn.detach());
        }
    }
}

/// How long a site waits after `failures` consecutive failed publications before the
/// next try: one publish interval, doubling with each further failure, capped at `max`.
pub fn failure_backoff(interval: Duration, failures: i64, max: Duration) -> Duration {
    let doublings = u32::try_from(failures.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    interval
        .saturating_mul(2u32.saturating_pow(doublings))
        .min(max)
}

/// Why a push did not succeed.
#[derive(Debug, Clone)]
pub struct PushFailure {
    /// The edge refused the snapshot itself (413, 422): pushing the same content again
    /// cannot succeed.
    pub permanent: bool,
    /// The edge's HTTP status, when it answered.
    pub status: Option<u16>,
    pub reason: String,
}

async fn publish_all(
    state: &AppState,
    client: &reqwest::Client,
    retry: RetryPolicy,
    edge_url: &str,
    key: &[u8],
) -> anyhow::Result<TickReport> {
    let mut report = TickReport {
        leader: true,
        ..TickReport::default()
    };
    let limits = &state.config.limits;
    let mut conn = state.pool.acquire().await?;
    let sites = db::sites::all(&mut conn).await?;
    for site in sites {
        // Back-off: a site whose pushes keep failing is left alone (not even rebuilt)
        // until its wait is over; a permanent refusal waits for new content instead.
        let streak = db::publications::failure_streak(&mut conn, site.id).await?;
        if let Some(streak) = &streak
            && !streak.permanent
        {
            let wait = failure_backoff(
                state.config.publish_interval,
                streak.failures,
                limits.publish_backoff_max,
            );
            if time::OffsetDateTime::now_utc() < streak.last_at + wait {
                report.deferred += 1;
                continue;
            }
        }
        let built = build_snapshot(&mut conn, &site).await;
        let (snapshot, weights) = match built {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(site_id = %site.id, error = ?e, "publisher: cannot build the snapshot");
                report.failed.push((site.id, format!("{e:#}")));
                continue;
            }
        };
        // Hashing and signing walk the whole document: off the async workers too.
        let (snapshot, content_hash) = tokio::task::spawn_blocking(move || {
            let bytes = serde_json::to_vec(&snapshot).context("serialising the snapshot")?;
            anyhow::Ok((snapshot, hex::encode(Sha256::digest(bytes))))
        })
        .await
        .context("the snapshot hasher panicked")??;
        let last = db::publications::last_published_content(&mut conn, site.id).await?;
        if last.as_deref() == Some(content_hash.as_str()) {
            report.unchanged += 1;
            continue;
        }
        if let Some(streak) = &streak
            && streak.permanent
            && streak.content_hash == content_hash
        {
            report.deferred += 1;
            continue;
        }
        let version = db::publications::next_version(&mut conn, site.id).await?;
        let mut snapshot = snapshot;
        snapshot.version = u64::try_from(version).context("negative version")?;
        snapshot.generated_at_ms =
            i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
                .unwrap_or(i64::MAX);
        let signing_key = key.to_vec();
        let signed = tokio::task::spawn_blocking(move || {
            let signed = snapshot::try_sign(&snapshot, &signing_key)?;
            let body_bytes = serde_json::to_vec(&signed).map_or(usize::MAX, |b| b.len());
            Ok::<_, snapshot::SnapshotError>((snapshot, signed, body_bytes))
        })
        .await
        .context("the snapshot signer panicked")?;
        let (snapshot, signed, body_bytes) = match signed {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(site_id = %site.id, error = %e, "publisher: the snapshot does not validate");
                report.failed.push((site.id, e.to_string()));
                continue;
            }
        };
        let hash = hex::encode(Sha256::digest(signed.payload.as_bytes()));
        let (attempts, result) = if body_bytes > limits.max_snapshot_bytes {
            // Never pushed: the edge would refuse it (or, below its cap, it would cost
            // every isolate that much memory). Recorded so the site's list shows why.
            (
                0,
                Err(PushFailure {
                    permanent: true,
                    status: None,
                    reason: format!(
                        "not pushed: the snapshot is {body_bytes} bytes, above the snapshot_bytes \
                         quota of {} (SAMPLIT_QUOTA_SNAPSHOT_BYTES)",
                        limits.max_snapshot_bytes
                    ),
                }),
            )
        } else {
            let url = format!(
                "{}/v1/internal/snapshots/{}",
                edge_url.trim_end_matches('/'),
                site.site_key
            );
            push(client, &url, &signed, retry).await
        };
        let row = PublicationRow {
            site_id: site.id,
            version,
            hash: hash.clone(),
            content_hash,
            weights: weights.clone(),
            status: if result.is_ok() {
                PublicationStatus::Published
            } else {
                PublicationStatus::Failed
            },
            attempts: i32::try_from(attempts).unwrap_or(i32::MAX),
            error: result.as_ref().err().map(|f| f.reason.clone()),
            published_at: time::OffsetDateTime::now_utc(),
            permanent: result.as_ref().err().is_some_and(|f| f.permanent),
        };
        let mut tx = state.pool.begin().await?;
        db::publications::insert(&mut tx, &row).await?;
        if result.is_ok() {
            audit::record(
                &mut tx,
                site.org_id,
                By::System("publisher"),
                AuditChange {
                    action: "snapshot.publish",
                    target_type: "site",
                    target_id: Some(site.id),
                    before: None,
                    after: Some(serde_json::json!({
                        "version": version,
                        "hash": hash,
                        "weights": weights,
                    })),
                },
            )
            .await
            .map_err(|e| anyhow!("audit: {e}"))?;
        }
        tx.commit().await?;
        match result {
            Ok(()) => report.published.push((site.id, snapshot.version)),
            Err(e) => {
                tracing::warn!(site_id = %site.id, version, permanent = e.permanent, error = %e.reason, "publisher: push failed");
                report.failed.push((site.id, e.reason));
            }
        }
    }
    Ok(report)
}

/// PUTs the signed snapshot, retrying transient failures (connection errors, 429, 5xx).
/// Returns the number of tries and the outcome; 413 and 422 are permanent (the edge
/// refuses this document, whatever the retry), other 4xx are failures that the next
/// tick's back-off retries.
/// PUTs a signed document (snapshot, route, tombstone), retrying transient failures. Returns the number of tries
/// and the outcome (a readable reason on failure).
async fn push(
    client: &reqwest::Client,
    url: &str,
    signed: &impl serde::Serialize,
    retry: RetryPolicy,
) -> (u32, Result<(), PushFailure>) {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let (transient, permanent, status, reason) = match client.put(url).json(signed).send().await
        {
            Ok(resp) if resp.status().is_success() => return (attempt, Ok(())),
            Ok(resp) => {
                let status = resp.status();
                let body = crate::shopify::admin::body_excerpt(resp).await;
                (
                    status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS,
                    status == reqwest::StatusCode::PAYLOAD_TOO_LARGE
                        || status == reqwest::StatusCode::UNPROCESSABLE_ENTITY,
                    Some(status.as_u16()),
                    format!("edge answered {status}: {body}"),
                )
            }
            // Without the URL: it names the edge's internal address and the site key, and
            // this reason reaches the site's alerts, mails and outgoing webhooks.
            Err(e) => (
                true,
                false,
                None,
                format!("edge unreachable: {}", error_chain(&e.without_url())),
            ),
        };
        if !transient || attempt >= retry.attempts.max(1) {
            return (
                attempt,
                Err(PushFailure {
                    permanent,
                    status,
                    reason,
                }),
            );
        }
        tokio::time::sleep(retry.delay(attempt)).await;
    }
}

/// An error and its sources, `: `-separated (reqwest's `Display` shows only the outer
/// "error sending request").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn now_ms() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
        .unwrap_or(i64::MAX)
}

/// A route or tombstone push's outcome: a 409 (the edge holds a newer version, which can
/// only have come from here) counts as taken; other failures keep their reason.
fn taken_or_newer(result: Result<(), PushFailure>) -> Result<(), String> {
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.status == Some(409) => Ok(()),
        Err(e) => Err(e.reason),
    }
}

/// Pushes the signed host routes and site tombstones the edge has not accepted yet
/// (`domain_routes`, `site_tombstones`): `PUT /v1/internal/routes/{host}` and
/// `PUT /v1/internal/tombstones/{site_key}`. Snapshots go first (in [`publish_all`]), so
/// a new owner's snapshot lists a host by the time its route arrives. Whatever the edge
/// does not take is retried next tick; a 409 (the edge holds a newer version) counts as
/// taken, since a newer document can only have come from here.
async fn publish_routing(
    state: &AppState,
    client: &reqwest::Client,
    retry: RetryPolicy,
    edge_url: &str,
    secret: &[u8],
    report: &mut TickReport,
) -> anyhow::Result<()> {
    let base = edge_url.trim_end_matches('/');
    let mut conn = state.pool.acquire().await?;
    for row in db::domains::unpushed_tombstones(&mut conn).await? {
        let doc = SiteTombstone {
            schema: routing::SCHEMA_VERSION,
            site_key: row.site_key.clone(),
            version: u64::try_from(row.version).context("negative tombstone version")?,
            generated_at_ms: now_ms(),
        };
        let signed = routing::sign_tombstone(&doc, secret).map_err(|e| anyhow!("{e}"))?;
        let url = format!("{base}/v1/internal/tombstones/{}", row.site_key);
        let (_, result) = push(client, &url, &signed, retry).await;
        let result = taken_or_newer(result);
        db::domains::tombstone_pushed(
            &mut conn,
            &row.site_key,
            result.as_ref().err().map(String::as_str),
        )
        .await?;
        match result {
            Ok(()) => {
                // `site.delete` was audited when the site went; its organisation may be
                // gone by now, so nothing is recorded against it here.
                report.tombstones.push((row.site_key, row.version));
            }
            Err(e) => {
                tracing::warn!(site_key = %row.site_key, error = %e, "publisher: tombstone push failed");
                report.routing_failed.push((row.site_key, e));
            }
        }
    }
    for row in db::domains::unpushed_routes(&mut conn).await? {
        let doc = Route {
            schema: routing::SCHEMA_VERSION,
            host: row.host.clone(),
            site_key: row.site_key.clone(),
            version: u64::try_from(row.version).context("negative route version")?,
            generated_at_ms: now_ms(),
        };
        let signed = routing::sign_route(&doc, secret).map_err(|e| anyhow!("{e}"))?;
        let url = format!("{base}/v1/internal/routes/{}", row.host);
        let (_, result) = push(client, &url, &signed, retry).await;
        let result = taken_or_newer(result);
        db::domains::route_pushed(
            &mut conn,
            &row.host,
            row.version,
            result.as_ref().err().map(String::as_str),
        )
        .await?;
        match result {
            Ok(()) => report.routes.push((row.host, row.version)),
            Err(e) => {
                tracing::warn!(host = %row.host, error = %e, "publisher: route push failed");
                report.routing_failed.push((row.host, e));
            }
        }
    }
    Ok(())
}

/// The snapshot of a site (version 0, timestamp 0: the caller stamps them) and the
/// weights record kept with the publication.
pub async fn build_snapshot(
    conn: &mut PgConnection,
    site: &SiteRow,
) -> anyhow::Result<(Snapshot, serde_json::Value)> {
    build_snapshot_including(conn, site, None).await
}

/// [`build_snapshot`], with experiment `also` included as if it were running (the
/// snapshot quota checks an experiment being saved or started this way).
pub async fn build_snapshot_including(
    conn: &mut PgConnection,
    site: &SiteRow,
    also: Option<Uuid>,
) -> anyhow::Result<(Snapshot, serde_json::Value)> {
    let exclusions: Vec<ExclusionRule> =
        serde_json::from_value(site.exclusions.clone()).context("stored exclusion rules")?;
    // Verified hosts only: a pending domain may be anyone's (docs/security.md, "Domains").
    let verified = db::domains::verified_hosts(conn, site.id).await?;
    let mut allowed_origins = Vec::with_capacity(verified.len());
    for d in &verified {
        allowed_origins.push(SiteDomain::parse(d, "domains")?.https_origin());
    }
    let mut experiments = Vec::new();
    let mut weights = Vec::new();
    let mut running = db::experiments::running_for_site(conn, site.id).await?;
    if let Some(id) = also
        && !running.iter().any(|l| l.experiment.id == id)
        && let Some(row) = db::experiments::get_row(conn, site.org_id, id, false).await?
    {
        running.push(db::experiments::load_parts(conn, row).await?);
    }
    for loaded in running {
        let id = loaded.experiment.id;
        let counts = db::experiments::arm_counts(conn, id).await?;
        // Thompson propensities integrate numerically (up to 500 arms for a factorial
        // experiment): CPU work, kept off the async workers.
        let (experiment, record) =
            tokio::task::spawn_blocking(move || experiment_snapshot(&loaded, &counts))
                .await
                .context("the snapshot builder panicked")?
                .with_context(|| format!("experiment {id}"))?;
        experiments.push(experiment);
        weights.push(record);
    }
    Ok((
        Snapshot {
            schema: SCHEMA_VERSION,
            site_key: site.site_key.clone(),
            version: 0,
            generated_at_ms: 0,
            allowed_origins,
            exclusions,
            experiments,
            trust: snapshot::Trust {
                server_secret_salt: site.server_secret_salt.clone(),
                revenue_cap: Some(site.revenue_cap),
            },
        },
        serde_json::Value::Array(weights),
    ))
}

/// One running experiment as the edge will run it, and its weights record.
pub fn experiment_snapshot(
    loaded: &Loaded,
    counts: &HashMap<Uuid, ArmStats>,
) -> anyhow::Result<(ExperimentSnapshot, serde_json::Value)> {
    let e = &loaded.experiment;
    let mode = e.kind.0;
    let allocator: AllocatorSpec = e.allocator.0;
    let url_rules: Vec<UrlRule> =
        serde_json::from_value(e.url_rules.clone()).context("stored URL rules")?;

    // Variant id → (element position, index within the element, weight).
    let mut variant_index: HashMap<Uuid, (usize, usize, f64)> = HashMap::new();
    let mut elements = Vec::with_capacity(loaded.elements.len());
    for (i, el) in loaded.elements.iter().enumerate() {
        let mut variants = Vec::new();
        for (j, v) in loaded
            .variants
            .iter()
            .filter(|v| v.element_id == el.id)
            .enumerate()
        {
            variant_index.insert(v.id, (i, j, v.weight));
            let changes: Vec<Change> =
                serde_json::from_value(v.changes.clone()).context("stored changes")?;
            variants.push(Variant {
                id: v.id.to_string(),
                changes,
            });
        }
        elements.push(Element {
            id: el.id.to_string(),
            selector: el.selector.clone(),
            variants,
        });
    }

    // Goals the snippet detects by itself; custom-event goals come from samplit.track.
    let mut goals = Vec::new();
    for g in &loaded.goals {
        let trigger = match g.trigger.as_str() {
            "url" => GoalTrigger::Url {
                rule: serde_json::from_str(&g.target).context("stored URL goal rule")?,
            },
            "click" => GoalTrigger::Click {
                selector: g.target.clone(),
            },
            _ => continue,
        };
        goals.push(GoalSnapshot {
            name: g.name.clone(),
            trigger,
        });
    }

    // Allocation units: one per element (independent) or one for the experiment.
    let groups: Vec<(String, Option<Uuid>)> = match mode {
        Mode::Independent => loaded
            .elements
            .iter()
            .map(|el| (el.id.to_string(), Some(el.id)))
            .collect(),
        Mode::Single | Mode::Factorial => vec![(e.id.to_string(), None)],
    };
    let mut units = Vec::with_capacity(groups.len());
    let mut record = Vec::with_capacity(groups.len());
    for (unit_id, element_id) in groups {
        let arm_rows: Vec<_> = loaded
            .arms
            .iter()
            .filter(|a| a.element_id == element_id)
            .collect();
        let mut arms = Vec::with_capacity(arm_rows.len());
        let mut arm_weights = Vec::with_capacity(arm_rows.len());
        let mut stats = Vec::with_capacity(arm_rows.len());
        for a in &arm_rows {
            let mut indices = Vec::with_capacity(a.variant_ids.len());
            let mut weight = 1.0;
            for vid in &a.variant_ids {
                let (_, j, w) = variant_index
                    .get(vid)
                    .ok_or_else(|| anyhow!("arm {} names unknown variant {vid}", a.id))?;
                indices.push(*j);
                weight *= w;
            }
            let mut s = counts.get(&a.id).copied().unwrap_or_default();
            if s.conversions > s.exposures {
                // Aggregates are updated set-wise by ingestion; should they ever disagree,
                // one arm must not stop the whole site from publishing.
                tracing::warn!(arm_id = %a.id, ?s, "more conversions than exposures; clamped");
                s.conversions = s.exposures;
            }
            arm_weights.push(weight);
            stats.push(s);
            arms.push(Arm {
                id: a.id.to_string(),
                variants: indices,
                exposures: s.exposures,
                conversions: s.conversions,
                propensity: 0.0,
            });
        }
        let unit_allocator = allocator
            .unit_allocator(&arm_weights)
            .map_err(|m| anyhow!("unit {unit_id}: {m}"))?;
        let propensities = unit_allocator
            .propensities(&stats)
            .map_err(|err| anyhow!("unit {unit_id}: {err}"))?;
        for (arm, p) in arms.iter_mut().zip(&propensities) {
            arm.propensity = *p;
        }
        record.push(serde_json::json!({
            "unit_id": unit_id,
            "allocator": allocator.kind(),
            "arms": arms.iter().map(|a| serde_json::json!({
                "arm_id": a.id,
                "exposures": a.exposures,
                "conversions": a.conversions,
                "propensity": a.propensity,
            })).collect::<Vec<_>>(),
        }));
        units.push(AllocationUnit {
            id: unit_id,
            element_id: element_id.map(|id| id.to_string()),
            allocator: unit_allocator,
            arms,
        });
    }
    Ok((
        ExperimentSnapshot {
            goals,
            id: e.id.to_string(),
            seed: e.seed.as_str().into(),
            hash_version: u8::try_from(e.hash_version).unwrap_or(2),
            coverage: e.coverage,
            url_rules,
            exclusions: Vec::new(),
            namespace: None,
            mode,
            elements,
            units,
        },
        serde_json::json!({ "experiment_id": e.id, "units": record }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unreachable_edge_is_reported_without_its_url() {
        // A loopback port nobody listens on: bind one, note it, drop it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}/v1/internal/snapshots/site-key-secretish");
        let retry = RetryPolicy {
            attempts: 1,
            ..RetryPolicy::default()
        };
        let (tries, outcome) =
            push(&http_client().unwrap(), &url, &serde_json::json!({}), retry).await;
        let failure = outcome.unwrap_err();
        assert_eq!(tries, 1);
        assert!(
            failure.reason.starts_with("edge unreachable: "),
            "{}",
            failure.reason
        );
        assert!(!failure.reason.contains("site-key"), "{}", failure.reason);
        assert!(!failure.reason.contains("127.0.0.1"), "{}", failure.reason);
        assert!(
            failure.reason.len() > "edge unreachable: ".len() + 10,
            "{}",
            failure.reason
        );
    }
    use crate::db::experiments::{ArmRow, ElementRow, ExperimentRow, VariantRow};

    /// A running single-element experiment with two arms and the given allocator JSON.
    fn loaded(allocator: serde_json::Value) -> Loaded {
        let now = time::OffsetDateTime::now_utc();
        let (el, v0, v1) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let variant = |id, position, name: &str, weight| VariantRow {
            id,
            element_id: el,
            position,
            name: name.to_owned(),
            is_control: position == 0,
            weight,
            changes: serde_json::json!([]),
        };
        let arm = |position, v| ArmRow {
            id: Uuid::new_v4(),
            element_id: None,
            position,
            name: format!("arm{position}"),
            variant_ids: vec![v],
            is_control: position == 0,
        };
        Loaded {
            experiment: ExperimentRow {
                id: Uuid::new_v4(),
                org_id: Uuid::new_v4(),
                site_id: Uuid::new_v4(),
                name: "e".into(),
                description: String::new(),
                kind: crate::domain::experiment::ExperimentKind(
                    samplit_engine::multi::Mode::Single,
                ),
                status: crate::domain::Status::Running,
                allocator: sqlx::types::Json(
                    serde_json::from_value(allocator).expect("a valid allocator"),
                ),
                coverage: 0.8,
                url_rules: serde_json::json!([]),
                seed: "seed".into(),
                hash_version: 2,
                version: 1,
                started_at: Some(now),
                ended_at: None,
                created_at: now,
                updated_at: now,
            },
            elements: vec![ElementRow {
                id: el,
                position: 0,
                name: "h".into(),
                selector: "h1".into(),
            }],
            variants: vec![variant(v0, 0, "A", 1.0), variant(v1, 1, "B", 3.0)],
            arms: vec![arm(0, v0), arm(1, v1)],
            goals: vec![],
        }
    }

    fn counts(l: &Loaded, stats: [(u64, u64); 2]) -> HashMap<Uuid, ArmStats> {
        l.arms
            .iter()
            .zip(stats)
            .map(|(a, (exposures, conversions))| {
                (
                    a.id,
                    ArmStats {
                        exposures,
                        conversions,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn fixed_split_propensities_are_the_normalised_variant_weights() {
        let l = loaded(serde_json::json!({ "kind": "fixed_split" }));
        let (snap, _) = experiment_snapshot(&l, &counts(&l, [(10, 1), (10, 2)])).unwrap();
        let p: Vec<f64> = snap.units[0].arms.iter().map(|a| a.propensity).collect();
        assert_eq!(p, vec![0.25, 0.75]);
        assert_eq!(snap.coverage, 0.8);
        assert_eq!(snap.units[0].arms[1].exposures, 10);
    }

    #[test]
    fn thompson_is_uniform_in_burn_in_then_follows_the_posteriors_above_the_floor() {
        let l = loaded(serde_json::json!({
            "kind": "thompson", "prior_alpha": 1.0, "prior_beta": 1.0,
            "min_exposures": 100, "floor": 0.05
        }));
        // Arm 1 has fewer than min_exposures: burn-in, uniform.
        let (snap, _) = experiment_snapshot(&l, &counts(&l, [(1000, 100), (99, 1)])).unwrap();
        let p: Vec<f64> = snap.units[0].arms.iter().map(|a| a.propensity).collect();
        assert_eq!(p, vec![0.5, 0.5]);
        // After burn-in a clearly worse arm (1 % vs 10 %) sits at the floor, and the
        // better one gets floor + (1 − 2·floor)·P(best) ≈ 0.95.
        let (snap, record) =
            experiment_snapshot(&l, &counts(&l, [(1000, 100), (1000, 10)])).unwrap();
        let p: Vec<f64> = snap.units[0].arms.iter().map(|a| a.propensity).collect();
        assert!(
            (p[0] - 0.95).abs() < 1e-6 && (p[1] - 0.05).abs() < 1e-6,
            "{p:?}"
        );
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        assert_eq!(record["units"][0]["allocator"], "thompson");
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let p = RetryPolicy {
            attempts: 6,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(500),
        };
        let delays: Vec<u128> = (1..=5).map(|a| p.delay(a).as_millis()).collect();
        assert_eq!(delays, vec![100, 200, 400, 500, 500]);
    }

    #[test]
    fn a_failing_site_waits_one_interval_then_doubling_up_to_the_cap() {
        let waits: Vec<u64> = (1..=8)
            .map(|n| {
                failure_backoff(Duration::from_secs(10), n, Duration::from_secs(600)).as_secs()
            })
            .collect();
        assert_eq!(waits, vec![10, 20, 40, 80, 160, 320, 600, 600]);
        assert_eq!(
            failure_backoff(Duration::from_secs(10), i64::MAX, Duration::from_secs(600)),
            Duration::from_secs(600),
            "no overflow however long the streak"
        );
    }
}
