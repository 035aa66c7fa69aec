//! The sites' snapshots: pushed by the control plane, stored in KV, held in the isolate.
//!
//! - Push: `PUT /v1/internal/snapshots/{site_key}` with a JSON [`SignedSnapshot`]. The
//!   engine verifies the HMAC (`SAMPLIT_SNAPSHOT_SECRET`), the schema and the document;
//!   the version must not be older than the one held (in this isolate or in KV; an equal
//!   version is an idempotent retry); the site key in the path must equal the payload's.
//!   The signed form is stored in KV (binding `SNAPSHOTS`, key `snapshot:<site_key>`),
//!   so any isolate can verify it again.
//! - Read: the hot path uses the parsed copy in this isolate ([`CACHE`], a
//!   `thread_local`: an isolate runs one thread). After [`TTL_MS`] the next request
//!   re-reads KV. KV is eventually consistent and writable by anything holding the
//!   namespace, so a value read from KV is verified again — but only when its signature
//!   differs from the one held (unchanged values are skipped), and never older than what
//!   the isolate holds. Verification (HMAC + parse) therefore runs at most once per
//!   snapshot version per isolate, never per request.
//! - Failure modes: KV unreachable, a missing key, a bad or older value → the isolate
//!   keeps serving what it holds (stale beats empty); a site never seen gets no
//!   experiments. Nothing here calls the control plane.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use samplit_engine::snapshot::{self, SignedSnapshot, Snapshot, SnapshotError};
use serde::Serialize;
use worker::Env;

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
    /// When KV was last consulted (ms since epoch).
    checked_at_ms: i64,
}

struct Held {
    snapshot: Rc<Snapshot>,
    signature: String,
    loaded_at_ms: i64,
}

thread_local! {
    /// The isolate's snapshots, by site key. A `BTreeMap` so `/v1/healthz` lists sites
    /// in a stable order.
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

fn secret(env: &Env) -> Result<String, ApiError> {
    match env.secret(SECRET_NAME) {
        Ok(s) if !s.to_string().is_empty() => Ok(s.to_string()),
        _ => Err(ApiError::not_configured(SECRET_NAME)),
    }
}

/// The snapshot for `site_key`: the isolate's copy, refreshed from KV after [`TTL_MS`].
/// `Ok(None)`: the site has no snapshot (a site never published, or an unknown key).
pub async fn current(env: &Env, site_key: &str) -> Result<Option<Rc<Snapshot>>, ApiError> {
    let now = now_ms();
    let (fresh, held) = CACHE.with_borrow(|cache| match cache.get(site_key) {
        Some(entry) => (
            now - entry.checked_at_ms < TTL_MS,
            entry
                .held
                .as_ref()
                .map(|h| (Rc::clone(&h.snapshot), h.signature.clone())),
        ),
        None => (false, None),
    });
    if fresh {
        return Ok(held.map(|(s, _)| s));
    }
    let key = secret(env)?;
    let loaded = load_from_kv(env, site_key, &key, held.as_ref()).await;
    CACHE.with_borrow_mut(|cache| {
        if cache.len() >= MAX_SITES && !cache.contains_key(site_key) {
            cache.retain(|_, e| e.held.is_some());
        }
        let entry = cache.entry(site_key.to_owned()).or_insert(Entry {
            held: None,
            checked_at_ms: now,
        });
        entry.checked_at_ms = now;
        match loaded {
            Ok(Some((snapshot, signature))) => {
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
        Ok(entry.held.as_ref().map(|h| Rc::clone(&h.snapshot)))
    })
}

/// Why a KV value was not taken (logged; the held copy stays in use).
enum LoadError {
    Kv(String),
    Unverified(SnapshotError),
    Unparsable(String),
    WrongSite(String),
}

impl core::fmt::Display for LoadError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Kv(e) => write!(f, "KV read failed: {e}"),
            Self::Unverified(e) => write!(f, "KV value refused: {e}"),
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
) -> Result<Option<(Snapshot, String)>, LoadError> {
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
    if held.is_some_and(|(_, sig)| *sig == signed.signature) {
        return Ok(None);
    }
    let held_version = held.map(|(s, _)| s.version);
    let snapshot =
        snapshot::verify(&signed, key.as_bytes(), held_version).map_err(LoadError::Unverified)?;
    if snapshot.site_key != site_key {
        return Err(LoadError::WrongSite(snapshot.site_key));
    }
    Ok(Some((snapshot, signed.signature)))
}

/// The answer to a successful push.
#[derive(Serialize)]
pub struct Stored {
    pub site_key: String,
    pub version: u64,
    /// `false` when this exact version was already held (an idempotent retry).
    pub replaced: bool,
}

/// `PUT /v1/internal/snapshots/{site_key}`.
pub async fn push(
    env: &Env,
    site_key: &str,
    req: &mut worker::Request,
) -> Result<Stored, ApiError> {
    check_site_key(site_key)?;
    let key = secret(env)?;
    let raw = body::read_capped(req, SNAPSHOT_BODY_LIMIT).await?;
    let signed: SignedSnapshot = body::parse_json(&raw)?;

    // The version held: this isolate's, or KV's (verified) if that is newer.
    let isolate_version = CACHE.with_borrow(|c| {
        c.get(site_key)
            .and_then(|e| e.held.as_ref())
            .map(|h| h.snapshot.version)
    });
    let kv = env
        .kv(KV_BINDING)
        .map_err(|e| ApiError::upstream("the SNAPSHOTS KV binding", e))?;
    let stored_version = match kv.get(&kv_key(site_key)).text().await {
        Ok(Some(text)) => serde_json::from_str::<SignedSnapshot>(&text)
            .ok()
            .and_then(|s| snapshot::verify(&s, key.as_bytes(), None).ok())
            .map(|s| s.version),
        Ok(None) => None,
        Err(e) => return Err(ApiError::upstream("the SNAPSHOTS KV store", e)),
    };
    let held_version = isolate_version.max(stored_version);

    let snapshot = snapshot::verify(&signed, key.as_bytes(), held_version).map_err(push_error)?;
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
    let text = serde_json::to_string(&signed)
        .map_err(|e| ApiError::upstream("serializing the snapshot", e))?;
    kv.put(&kv_key(site_key), text)
        .map_err(|e| ApiError::upstream("the SNAPSHOTS KV store", e))?
        .execute()
        .await
        .map_err(|e| ApiError::upstream("the SNAPSHOTS KV store", e))?;

    let version = snapshot.version;
    let now = now_ms();
    CACHE.with_borrow_mut(|cache| {
        let entry = cache.entry(site_key.to_owned()).or_insert(Entry {
            held: None,
            checked_at_ms: now,
        });
        entry.checked_at_ms = now;
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

/// One site in `/v1/healthz`.
#[derive(Serialize)]
pub struct SiteHealth {
    pub site_key: String,
    /// `null` when KV had no snapshot for a site someone asked about.
    pub version: Option<u64>,
    /// Now minus the snapshot's `generated_at_ms`: how old the published data is.
    pub age_ms: Option<i64>,
    /// Now minus when this isolate loaded it.
    pub loaded_ms_ago: Option<i64>,
    /// Now minus the last KV check.
    pub checked_ms_ago: i64,
}

/// The sites this isolate holds, for `/v1/healthz`.
pub fn health() -> Vec<SiteHealth> {
    let now = now_ms();
    CACHE.with_borrow(|cache| {
        cache
            .iter()
            .map(|(site_key, e)| SiteHealth {
                site_key: site_key.clone(),
                version: e.held.as_ref().map(|h| h.snapshot.version),
                age_ms: e.held.as_ref().map(|h| now - h.snapshot.generated_at_ms),
                loaded_ms_ago: e.held.as_ref().map(|h| now - h.loaded_at_ms),
                checked_ms_ago: now - e.checked_at_ms,
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
