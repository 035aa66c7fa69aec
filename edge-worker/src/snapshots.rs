//! The sites' snapshots: pushed by the control plane, stored in KV, held in the isolate.
//!
//! - Push: `PUT /v1/internal/snapshots/{site_key}` with a JSON [`SignedSnapshot`]. The
//!   engine verifies the HMAC (`SAMPLIT_SNAPSHOT_SECRET`), the schema and the document;
//!   the version must not be older than the one held (in this isolate or in KV; an equal
//!   version is an idempotent retry); the site key in the path must equal the payload's.
//!   The signed form is stored in KV (binding `SNAPSHOTS`, key `snapshot:<site_key>`),
//!   so any isolate can verify it again.
//! - Read: the hot path uses the parsed copy in this isolate (`CACHE`, a
//!   `thread_local`: an isolate runs one thread). After [`TTL_MS`] the next request
//!   re-reads KV. KV is eventually consistent and writable by anything holding the
//!   namespace, so a value read from KV is verified again — but only when its signature
//!   differs from the one held (unchanged values are skipped), and never older than what
//!   the isolate holds. Verification (HMAC + parse) therefore runs at most once per
//!   snapshot version per isolate, never per request.
//! - Unpublish: `PUT /v1/internal/tombstones/{site_key}` with a signed
//!   `routing::SiteTombstone` (its own derived key, so it never verifies as a snapshot).
//!   It is stored in the same KV slot, so every isolate picks it up within [`TTL_MS`];
//!   from then on [`current`] answers `None` for the site (as for an unknown key: no
//!   assignments, no hide list, no rendering, no CORS origins), and a snapshot push at or
//!   below the tombstone's version is refused (409), so a late push cannot resurrect it.
//! - Failure modes: KV unreachable, a missing key, a bad or older value → the isolate
//!   keeps serving what it holds (stale beats empty); a site never seen gets no
//!   experiments. Nothing here calls the control plane.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use samplit_engine::routing::{self, RoutingError, SignedDoc};
use samplit_engine::snapshot::{self, SignedSnapshot, Snapshot, SnapshotError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use worker::Env;
use worker::kv::KvStore;

use crate::body::{self, SNAPSHOT_BODY_LIMIT};
use crate::clock::now_ms;
use crate::error::ApiError;

/// KV binding holding the signed snapshots.
pub const KV_BINDING: &str = "SNAPSHOTS";
/// Secret the control plane signs snapshots with.
pub const SECRET_NAME: &str = "SAMPLIT_SNAPSHOT_SECRET";
/// How long an isolate serves its copy before looking at KV again.
pub const TTL_MS: i64 = 5_000;
/// Longest site key accepted.
pub const SITE_KEY_MAX: usize = 128;
/// Most sites an isolate remembers. Requests with made-up site keys create entries
/// (negative caching spares KV), so past this the entries without a snapshot go first.
pub const MAX_SITES: usize = 1000;

/// What the isolate holds for one site.
struct Entry {
    /// The verified snapshot, if any was ever loaded.
    held: Option<Held>,
    /// A verified tombstone: (version, signature). Outranks a held snapshot of a lower
    /// or equal version.
    tombstone: Option<(u64, String)>,
    /// When KV was last consulted (ms since epoch).
    checked_at_ms: i64,
}

struct Held {
    snapshot: Rc<Snapshot>,
    signature: String,
    loaded_at_ms: i64,
}

thread_local! {
    /// The isolate's snapshots, by site key.
    static CACHE: RefCell<BTreeMap<String, Entry>> = const { RefCell::new(BTreeMap::new()) };
}

fn kv_key(site_key: &str) -> String {
    format!("snapshot:{site_key}")
}

/// Site keys are opaque to the edge but bounded: 1..=128 of `[A-Za-z0-9_.-]`.
pub fn valid_site_key(site_key: &str) -> bool {
    !site_key.is_empty()
        && site_key.len() <= SITE_KEY_MAX
        && site_key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// Rejects a malformed site key with 400.
pub fn check_site_key(site_key: &str) -> Result<(), ApiError> {
    if valid_site_key(site_key) {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "invalid_site_key",
            "site_key must be 1-128 characters of A-Z a-z 0-9 _ . -",
        ))
    }
}

/// The snapshot secret (503 when it is not configured).
pub(crate) fn secret(env: &Env) -> Result<String, ApiError> {
    match env.secret(SECRET_NAME) {
        Ok(s) if !s.to_string().is_empty() => Ok(s.to_string()),
        _ => Err(ApiError::not_configured(SECRET_NAME)),
    }
}

/// The snapshot for `site_key`: the isolate's copy, refreshed from KV after [`TTL_MS`].
/// `Ok(None)`: the site has no snapshot (a site never published, or an unknown key).
pub async fn current(env: &Env, site_key: &str) -> Result<Option<Rc<Snapshot>>, ApiError> {
    let now = now_ms();
    let (fresh, held, tombstone) = CACHE.with_borrow(|cache| match cache.get(site_key) {
        Some(entry) => (
            now - entry.checked_at_ms < TTL_MS,
            entry
                .held
                .as_ref()
                .map(|h| (Rc::clone(&h.snapshot), h.signature.clone())),
            entry.tombstone.clone(),
        ),
        None => (false, None, None),
    });
    if fresh {
        return Ok(live(held.map(|(s, _)| s), tombstone.as_ref()));
    }
    let key = secret(env)?;
    let loaded = load_from_kv(env, site_key, &key, held.as_ref(), tombstone.as_ref()).await;
    CACHE.with_borrow_mut(|cache| {
        if cache.len() >= MAX_SITES && !cache.contains_key(site_key) {
            cache.retain(|_, e| e.held.is_some());
        }
        let entry = checked_entry(cache, site_key, now);
        match loaded {
            Ok(Some(Loaded::Tombstone(version, signature))) => {
                if entry.tombstone.as_ref().is_none_or(|(v, _)| *v <= version) {
                    entry.tombstone = Some((version, signature));
                }
            }
            Ok(Some(Loaded::Snapshot(snapshot, signature))) => {
                // Another request may have stored a newer one while we awaited KV.
                let newer = entry
                    .held
                    .as_ref()
                    .is_none_or(|h| h.snapshot.version <= snapshot.version);
                if newer {
                    entry.held = Some(Held {
                        snapshot: Rc::new(snapshot),
                        signature,
                        loaded_at_ms: now,
                    });
                }
            }
            Ok(None) => {}
            Err(e) => worker::console_warn!("snapshot {site_key}: keeping the held copy: {e}"),
        }
        Ok(live(
            entry.held.as_ref().map(|h| Rc::clone(&h.snapshot)),
            entry.tombstone.as_ref(),
        ))
    })
}

/// The snapshot unless a tombstone of its version or newer is held.
fn live(snapshot: Option<Rc<Snapshot>>, tombstone: Option<&(u64, String)>) -> Option<Rc<Snapshot>> {
    match tombstone {
        Some((dead, _)) => snapshot.filter(|s| s.version > *dead),
        None => snapshot,
    }
}

/// What a KV value turned out to be.
enum Loaded {
    Snapshot(Snapshot, String),
    /// A site tombstone: version and signature.
    Tombstone(u64, String),
}

/// Why a KV value was not taken (logged; the held copy stays in use).
enum LoadError {
    Kv(String),
    Unverified(SnapshotError),
    Tombstone(RoutingError),
    Unparsable(String),
    WrongSite(String),
}

impl core::fmt::Display for LoadError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Kv(e) => write!(f, "KV read failed: {e}"),
            Self::Unverified(e) => write!(f, "KV value refused: {e}"),
            Self::Tombstone(e) => write!(f, "KV tombstone refused: {e}"),
            Self::Unparsable(e) => write!(f, "KV value is not a signed snapshot: {e}"),
            Self::WrongSite(s) => write!(f, "KV value is for site {s}"),
        }
    }
}

/// Reads and verifies the KV value. `Ok(None)` when there is none or it is the one held.
async fn load_from_kv(
    env: &Env,
    site_key: &str,
    key: &str,
    held: Option<&(Rc<Snapshot>, String)>,
    tombstone: Option<&(u64, String)>,
) -> Result<Option<Loaded>, LoadError> {
    let kv = env
        .kv(KV_BINDING)
        .map_err(|e| LoadError::Kv(e.to_string()))?;
    let Some(text) = kv
        .get(&kv_key(site_key))
        .text()
        .await
        .map_err(|e| LoadError::Kv(e.to_string()))?
    else {
        return Ok(None);
    };
    let signed: SignedSnapshot =
        serde_json::from_str(&text).map_err(|e| LoadError::Unparsable(e.to_string()))?;
    if held.is_some_and(|(_, sig)| *sig == signed.signature)
        || tombstone.is_some_and(|(_, sig)| *sig == signed.signature)
    {
        return Ok(None);
    }
    let held_version = held.map(|(s, _)| s.version);
    match snapshot::verify(&signed, key.as_bytes(), held_version) {
        Ok(snapshot) if snapshot.site_key != site_key => {
            Err(LoadError::WrongSite(snapshot.site_key))
        }
        Ok(snapshot) => Ok(Some(Loaded::Snapshot(snapshot, signed.signature))),
        // Not a snapshot's signature: perhaps the site's tombstone (its own key).
        Err(SnapshotError::BadSignature) => {
            let doc = SignedDoc {
                payload: signed.payload,
                signature: signed.signature,
            };
            let t = routing::verify_tombstone(&doc, key.as_bytes(), held_version)
                .map_err(LoadError::Tombstone)?;
            if t.site_key != site_key {
                return Err(LoadError::WrongSite(t.site_key));
            }
            Ok(Some(Loaded::Tombstone(t.version, doc.signature)))
        }
        Err(e) => Err(LoadError::Unverified(e)),
    }
}

/// The version held in KV for a site (verified): a snapshot's, or a tombstone's with
/// `true`.
async fn stored_version(
    kv: &KvStore,
    site_key: &str,
    key: &str,
) -> Result<Option<(u64, bool)>, ApiError> {
    let text = match kv.get(&kv_key(site_key)).text().await {
        Ok(Some(text)) => text,
        Ok(None) => return Ok(None),
        Err(e) => return Err(ApiError::upstream("the SNAPSHOTS KV store", e)),
    };
    let Ok(doc) = serde_json::from_str::<SignedDoc>(&text) else {
        return Ok(None);
    };
    let as_snapshot = SignedSnapshot {
        payload: doc.payload.clone(),
        signature: doc.signature.clone(),
    };
    if let Ok(s) = snapshot::verify(&as_snapshot, key.as_bytes(), None) {
        return Ok(Some((s.version, false)));
    }
    Ok(routing::verify_tombstone(&doc, key.as_bytes(), None)
        .ok()
        .map(|t| (t.version, true)))
}

/// The tombstone version this isolate holds for a site.
fn held_tombstone(site_key: &str) -> Option<u64> {
    CACHE.with_borrow(|c| {
        c.get(site_key)
            .and_then(|e| e.tombstone.as_ref().map(|(v, _)| *v))
    })
}

/// The answer to a successful push.
#[derive(Serialize)]
pub struct Stored {
    pub site_key: String,
    pub version: u64,
    /// `false` when this exact version was already held (an idempotent retry).
    pub replaced: bool,
}

/// What a push to a site's slot (a snapshot or a tombstone) starts from.
struct Incoming<T> {
    /// The snapshot secret.
    key: String,
    /// The request body: the signed document.
    doc: T,
    kv: KvStore,
    /// The snapshot version this isolate holds.
    isolate_version: Option<u64>,
    /// What KV holds, verified: a snapshot's version, or a tombstone's with `true`.
    stored: Option<(u64, bool)>,
}

impl<T: DeserializeOwned> Incoming<T> {
    /// The steps both pushes begin with, in this order: the site key checked (400), the
    /// secret (503), the body read (413 over [`SNAPSHOT_BODY_LIMIT`]) and parsed (400),
    /// then what the isolate and KV hold for the site.
    async fn begin(env: &Env, site_key: &str, req: &mut worker::Request) -> Result<Self, ApiError> {
        check_site_key(site_key)?;
        let key = secret(env)?;
        let raw = body::read_capped(req, SNAPSHOT_BODY_LIMIT).await?;
        let doc: T = body::parse_json(&raw)?;
        let isolate_version = CACHE.with_borrow(|c| {
            c.get(site_key)
                .and_then(|e| e.held.as_ref())
                .map(|h| h.snapshot.version)
        });
        let kv = env
            .kv(KV_BINDING)
            .map_err(|e| ApiError::upstream("the SNAPSHOTS KV binding", e))?;
        let stored = stored_version(&kv, site_key, &key).await?;
        Ok(Self {
            key,
            doc,
            kv,
            isolate_version,
            stored,
        })
    }

    /// The newest tombstone version held for the site: this isolate's or KV's.
    fn tombstone_version(&self, site_key: &str) -> Option<u64> {
        held_tombstone(site_key).max(self.stored.filter(|(_, t)| *t).map(|(v, _)| v))
    }
}

/// Writes a signed document (`what`: "snapshot" or "tombstone") to the site's KV slot.
async fn put_slot(
    kv: &KvStore,
    site_key: &str,
    doc: &impl Serialize,
    what: &str,
) -> Result<(), ApiError> {
    let text = serde_json::to_string(doc)
        .map_err(|e| ApiError::upstream(&format!("serializing the {what}"), e))?;
    kv.put(&kv_key(site_key), text)
        .map_err(|e| ApiError::upstream("the SNAPSHOTS KV store", e))?
        .execute()
        .await
        .map_err(|e| ApiError::upstream("the SNAPSHOTS KV store", e))
}

/// The isolate's entry for `site_key` (created empty), marked as checked at `now`.
fn checked_entry<'a>(
    cache: &'a mut BTreeMap<String, Entry>,
    site_key: &str,
    now: i64,
) -> &'a mut Entry {
    let entry = cache.entry(site_key.to_owned()).or_insert(Entry {
        held: None,
        tombstone: None,
        checked_at_ms: now,
    });
    entry.checked_at_ms = now;
    entry
}

/// `PUT /v1/internal/snapshots/{site_key}`.
pub async fn push(
    env: &Env,
    site_key: &str,
    req: &mut worker::Request,
) -> Result<Stored, ApiError> {
    let incoming = Incoming::<SignedSnapshot>::begin(env, site_key, req).await?;
    let (key, signed) = (&incoming.key, &incoming.doc);
    let dead = incoming.tombstone_version(site_key);
    // The version held: this isolate's, or KV's (verified) if that is newer.
    let held_version = incoming
        .isolate_version
        .max(incoming.stored.map(|(v, _)| v));

    let snapshot = snapshot::verify(signed, key.as_bytes(), held_version).map_err(push_error)?;
    if let Some(dead) = dead
        && snapshot.version <= dead
    {
        return Err(ApiError::new(
            409,
            "site_deleted",
            format!(
                "the site was deleted (tombstone version {dead}); snapshot version {} is not newer",
                snapshot.version
            ),
        ));
    }
    if snapshot.site_key != site_key {
        return Err(ApiError::bad_request(
            "site_key_mismatch",
            format!(
                "the path names site {site_key} but the snapshot is for {}",
                snapshot.site_key
            ),
        ));
    }
    let replaced = held_version != Some(snapshot.version);
    put_slot(&incoming.kv, site_key, signed, "snapshot").await?;

    let version = snapshot.version;
    let now = now_ms();
    CACHE.with_borrow_mut(|cache| {
        let entry = checked_entry(cache, site_key, now);
        if entry
            .held
            .as_ref()
            .is_none_or(|h| h.snapshot.version <= version)
        {
            entry.held = Some(Held {
                snapshot: Rc::new(snapshot),
                signature: signed.signature.clone(),
                loaded_at_ms: now,
            });
        }
    });
    Ok(Stored {
        site_key: site_key.to_owned(),
        version,
        replaced,
    })
}

/// `PUT /v1/internal/tombstones/{site_key}`: the site was deleted. Refused (409) when
/// the snapshot held is newer than the tombstone; an equal or newer tombstone already
/// held makes this an idempotent success.
pub async fn push_tombstone(
    env: &Env,
    site_key: &str,
    req: &mut worker::Request,
) -> Result<Stored, ApiError> {
    let incoming = Incoming::<SignedDoc>::begin(env, site_key, req).await?;
    let (key, doc) = (&incoming.key, &incoming.doc);
    let snapshot_version = incoming
        .isolate_version
        .max(incoming.stored.filter(|(_, t)| !*t).map(|(v, _)| v));
    let tombstone =
        routing::verify_tombstone(doc, key.as_bytes(), snapshot_version).map_err(routing_error)?;
    if tombstone.site_key != site_key {
        return Err(ApiError::bad_request(
            "site_key_mismatch",
            format!(
                "the path names site {site_key} but the tombstone is for {}",
                tombstone.site_key
            ),
        ));
    }
    let held_dead = incoming.tombstone_version(site_key);
    let replaced = held_dead.is_none_or(|v| v < tombstone.version);
    if replaced {
        put_slot(&incoming.kv, site_key, doc, "tombstone").await?;
    }
    let now = now_ms();
    CACHE.with_borrow_mut(|cache| {
        let entry = checked_entry(cache, site_key, now);
        if entry
            .tombstone
            .as_ref()
            .is_none_or(|(v, _)| *v < tombstone.version)
        {
            entry.tombstone = Some((tombstone.version, doc.signature.clone()));
        }
    });
    Ok(Stored {
        site_key: site_key.to_owned(),
        version: tombstone.version,
        replaced,
    })
}

/// Maps a refused route or tombstone like `push_error` does snapshots.
pub fn routing_error(e: RoutingError) -> ApiError {
    match e {
        RoutingError::EmptyKey => ApiError::not_configured(SECRET_NAME),
        RoutingError::BadSignature => {
            ApiError::new(401, "bad_signature", "the signature does not verify")
        }
        RoutingError::Stale { .. } => ApiError::new(409, "stale_version", e.to_string()),
        RoutingError::UnsupportedSchema(_) => {
            ApiError::new(422, "unsupported_schema", e.to_string())
        }
        RoutingError::Malformed(_) | RoutingError::Invalid(_) => {
            ApiError::new(422, "invalid_document", e.to_string())
        }
    }
}

/// Maps the engine's refusal to a status: 401 for a signature, 409 for an older version,
/// 422 for a document that verified but is not one this engine accepts.
fn push_error(e: SnapshotError) -> ApiError {
    match e {
        SnapshotError::EmptyKey => ApiError::not_configured(SECRET_NAME),
        SnapshotError::BadSignature => ApiError::new(
            401,
            "bad_signature",
            "the snapshot signature does not verify",
        ),
        SnapshotError::Stale { .. } => ApiError::new(409, "stale_version", e.to_string()),
        SnapshotError::UnsupportedSchema(_) => {
            ApiError::new(422, "unsupported_schema", e.to_string())
        }
        SnapshotError::Malformed(_) | SnapshotError::Invalid(_) => {
            ApiError::new(422, "invalid_snapshot", e.to_string())
        }
    }
}

/// `GET /v1/healthz?site_key=...`: one site, as this isolate serves it.
#[derive(Serialize)]
pub struct SiteHealth {
    pub site_key: String,
    /// The version served; `null` when there is none (never published, unknown key,
    /// unpublished by a tombstone).
    pub version: Option<u64>,
    /// Now minus the served snapshot's `generated_at_ms`: how old the published data is.
    pub age_ms: Option<i64>,
    /// Now minus when this isolate loaded it.
    pub loaded_ms_ago: Option<i64>,
    /// Now minus the last KV check.
    pub checked_ms_ago: Option<i64>,
}

/// `GET /v1/healthz`: counts and ages over every site this isolate remembers, and no
/// site keys (they would list every tenant to anyone; ask for one with `?site_key=`).
#[derive(Debug, Default, PartialEq, Eq, Serialize)]
pub struct HealthSummary {
    /// Sites with a snapshot being served.
    pub serving: usize,
    /// Site keys remembered with nothing to serve (negative cache, tombstones).
    pub without_snapshot: usize,
    /// Youngest and oldest `age_ms` among the served snapshots.
    pub newest_age_ms: Option<i64>,
    pub oldest_age_ms: Option<i64>,
    /// The longest time any remembered site has gone without a KV check.
    pub max_checked_ms_ago: Option<i64>,
}

impl HealthSummary {
    /// Folds one site in: its served snapshot's age (if any) and its last KV check.
    fn add(&mut self, age_ms: Option<i64>, checked_ms_ago: i64) {
        match age_ms {
            Some(age) => {
                self.serving += 1;
                self.newest_age_ms = Some(self.newest_age_ms.map_or(age, |a| a.min(age)));
                self.oldest_age_ms = Some(self.oldest_age_ms.map_or(age, |a| a.max(age)));
            }
            None => self.without_snapshot += 1,
        }
        self.max_checked_ms_ago = Some(
            self.max_checked_ms_ago
                .map_or(checked_ms_ago, |c| c.max(checked_ms_ago)),
        );
    }
}

/// Counts and ages over the sites this isolate holds, for `/v1/healthz`.
pub fn health() -> HealthSummary {
    let now = now_ms();
    CACHE.with_borrow(|cache| {
        let mut summary = HealthSummary::default();
        for e in cache.values() {
            let served = live(
                e.held.as_ref().map(|h| Rc::clone(&h.snapshot)),
                e.tombstone.as_ref(),
            );
            summary.add(
                served.map(|s| now - s.generated_at_ms),
                now - e.checked_at_ms,
            );
        }
        summary
    })
}

/// One site for `/v1/healthz?site_key=`: what [`current`] serves (loading it from KV
/// when the isolate's copy is stale, as `/v1/assign` would), with its ages.
pub async fn site_health(env: &Env, site_key: &str) -> Result<SiteHealth, ApiError> {
    check_site_key(site_key)?;
    let served = current(env, site_key).await?;
    let now = now_ms();
    let (loaded, checked) = CACHE.with_borrow(|cache| match cache.get(site_key) {
        Some(e) => (
            e.held.as_ref().map(|h| h.loaded_at_ms),
            Some(e.checked_at_ms),
        ),
        None => (None, None),
    });
    Ok(SiteHealth {
        site_key: site_key.to_owned(),
        version: served.as_ref().map(|s| s.version),
        age_ms: served.as_ref().map(|s| now - s.generated_at_ms),
        loaded_ms_ago: served.and(loaded).map(|t| now - t),
        checked_ms_ago: checked.map(|t| now - t),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_health_summary_counts_and_ages_without_naming_sites() {
        let mut summary = HealthSummary::default();
        summary.add(Some(5_000), 100);
        summary.add(None, 4_000);
        summary.add(Some(60_000), 300);
        assert_eq!(
            summary,
            HealthSummary {
                serving: 2,
                without_snapshot: 1,
                newest_age_ms: Some(5_000),
                oldest_age_ms: Some(60_000),
                max_checked_ms_ago: Some(4_000),
            }
        );
        let json = serde_json::to_value(&summary).unwrap();
        assert_eq!(
            json.as_object().unwrap().keys().collect::<Vec<_>>(),
            [
                "max_checked_ms_ago",
                "newest_age_ms",
                "oldest_age_ms",
                "serving",
                "without_snapshot"
            ],
            "counts and ages only"
        );
        assert_eq!(HealthSummary::default().max_checked_ms_ago, None);
    }

    #[test]
    fn site_keys_are_bounded() {
        assert!(valid_site_key("sk_live_abc-123.x"));
        for bad in ["", "a b", "a/b", "k\u{e9}", &"k".repeat(129)] {
            assert!(!valid_site_key(bad), "{bad:?}");
        }
    }

    #[test]
    fn engine_refusals_map_to_distinct_client_errors() {
        let cases = [
            (SnapshotError::BadSignature, 401, "bad_signature"),
            (
                SnapshotError::Stale {
                    held: 2,
                    received: 1,
                },
                409,
                "stale_version",
            ),
            (
                SnapshotError::UnsupportedSchema(9),
                422,
                "unsupported_schema",
            ),
            (
                SnapshotError::Malformed("x".into()),
                422,
                "invalid_snapshot",
            ),
            (SnapshotError::EmptyKey, 503, "not_configured"),
        ];
        for (e, status, code) in cases {
            let api = push_error(e);
            assert_eq!((api.status, api.code), (status, code));
        }
    }
}
