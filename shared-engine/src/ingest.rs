//! The ingest contract: the items the edge enqueues and its queue consumer forwards to the
//! control plane (`POST /api/v1/ingest`), their limits, and the batch signature. Written
//! once, here; the edge (`edge-worker/src/items.rs`, `ingest.rs`) and the control plane
//! (`control-plane/src/ingest/`) both use it. A golden document
//! (`tests/golden/ingest_batch.json`) pins the wire form.
//!
//! ## Wire form
//! A batch is `{"batch_id": "<uuid>", "items": [Item, …]}` with at most [`MAX_ITEMS`]
//! items. Each item is an object tagged by `type` ([`Item`]); optional fields are left out
//! when absent (`element_id`, `host`, `value`) or false (`signed`).
//!
//! ## Signature
//! `X-Samplit-Timestamp: <unix seconds>` and `X-Samplit-Signature: sha256=<hex>`, the hex
//! being HMAC-SHA256 with the shared ingest secret over `"<timestamp>." + raw body`
//! ([`sign`]). [`verify`] compares in constant time and refuses timestamps more than
//! [`MAX_SKEW_SECS`] from the verifier's clock; the item ids make the replays that remain
//! harmless (the control plane counts each id once).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

pub use crate::server_call::{SIGNATURE_HEADER, TIMESTAMP_HEADER};

/// Most items in one batch.
pub const MAX_ITEMS: usize = 1000;
/// Longest item id, visitor id and site key, in characters.
pub const MAX_ID_LEN: usize = 128;
/// Longest goal name, in characters (the control plane's goals allow 100).
pub const MAX_GOAL_LEN: usize = 100;
/// Longest pageview URL, in characters.
pub const MAX_URL_LEN: usize = 8192;
/// Largest event value (revenue), in the site's currency units. Values are finite and
/// at least 0.
pub const MAX_VALUE: f64 = 1e9;
/// Largest accepted distance between a batch's signing time and the verifier's clock.
pub const MAX_SKEW_SECS: i64 = 300;

/// One ingest item; `type` is the tag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Item {
    /// A visitor was served an arm: one per assignment the edge makes.
    Exposure(Exposure),
    /// A conversion on a goal (URL and click goals by their name, custom goals by event).
    Conversion(GoalEvent),
    /// A custom event (`samplit.track`), matched to custom goals by name.
    Custom(GoalEvent),
    /// A page view (counted; URL goals arrive as conversions).
    Pageview(Pageview),
}

impl Item {
    /// The item's id (made when it was enqueued; the control plane dedupes by it).
    #[must_use]
    pub fn id(&self) -> &str {
        match self {
            Self::Exposure(e) => &e.id,
            Self::Conversion(g) | Self::Custom(g) => &g.id,
            Self::Pageview(p) => &p.id,
        }
    }

    /// The site key the item belongs to.
    #[must_use]
    pub fn site_key(&self) -> &str {
        match self {
            Self::Exposure(e) => &e.site_key,
            Self::Conversion(g) | Self::Custom(g) => &g.site_key,
            Self::Pageview(p) => &p.site_key,
        }
    }
}

/// The fields of an exposure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exposure {
    pub id: String,
    pub site_key: String,
    pub experiment_id: String,
    /// The element, for multi-element experiments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub element_id: Option<String>,
    pub arm_id: String,
    pub visitor_id: String,
    /// The probability the arm had for this visitor, in (0, 1].
    pub propensity: f64,
    pub snapshot_version: u64,
    pub ts_ms: i64,
    /// The page's host (the rendered request's, or the `url`'s on `/v1/assign`): the
    /// control plane marks the site's snippet as seen when it is a verified host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// What the edge knew of the visitor before assigning them (segments, covariates);
    /// left out when absent ([`crate::context`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<crate::context::ExposureContext>,
}

/// The fields of a conversion or a custom event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GoalEvent {
    pub id: String,
    pub site_key: String,
    pub visitor_id: String,
    pub goal: String,
    /// Revenue, in [0, [`MAX_VALUE`]]; absent for a plain conversion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// The currency of `value` (ISO 4217, three capital letters), when the sender named
    /// one. Ingestion counts revenue only in its site's currency. Left out when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    pub ts_ms: i64,
    /// The event came in a signed server call the edge verified: its value is not held to
    /// the site's per-visitor revenue cap at ingest. Left out when false.
    #[serde(default, skip_serializing_if = "core::ops::Not::not")]
    pub signed: bool,
}

/// The fields of a page view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pageview {
    pub id: String,
    pub site_key: String,
    pub visitor_id: String,
    pub url: String,
    pub ts_ms: i64,
}

/// The body of one `POST /api/v1/ingest`. The control plane reads `items` as
/// `Batch<serde_json::Value>` first, so one bad item is rejected with a reason and the
/// rest are kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch<I = Item> {
    pub batch_id: String,
    pub items: Vec<I>,
}

/// A value the contract accepts: finite, in [0, [`MAX_VALUE`]].
#[must_use]
pub fn value_in_bounds(value: f64) -> bool {
    value.is_finite() && (0.0..=MAX_VALUE).contains(&value)
}

/// A currency code the contract accepts: three ASCII capital letters (ISO 4217's shape).
#[must_use]
pub fn currency_valid(code: &str) -> bool {
    code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase())
}

/// A propensity the contract accepts: finite, in (0, 1].
#[must_use]
pub fn propensity_in_bounds(p: f64) -> bool {
    p.is_finite() && p > 0.0 && p <= 1.0
}

/// Why a batch's signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureError {
    MissingTimestamp,
    MalformedTimestamp,
    StaleTimestamp,
    MissingSignature,
    MalformedSignature,
    Mismatch,
}

impl core::fmt::Display for SignatureError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::MissingTimestamp => "missing X-Samplit-Timestamp header",
            Self::MalformedTimestamp => "X-Samplit-Timestamp is not a unix time in seconds",
            Self::StaleTimestamp => {
                "X-Samplit-Timestamp is more than 300 s away from the server clock"
            }
            Self::MissingSignature => "missing X-Samplit-Signature header",
            Self::MalformedSignature => "X-Samplit-Signature must be sha256=<hex>",
            Self::Mismatch => "the signature does not match the body",
        })
    }
}

impl core::error::Error for SignatureError {}

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &[u8], timestamp: &str, body: &[u8]) -> HmacSha256 {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(secret)
        .expect("HMAC-SHA256 accepts keys of any length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `X-Samplit-Signature` value (`sha256=<hex>`) for `body` signed at `timestamp`
/// (unix seconds, as sent in `X-Samplit-Timestamp`).
#[must_use]
pub fn sign(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    format!(
        "sha256={}",
        hex::encode(mac(secret, timestamp, body).finalize().into_bytes())
    )
}

/// Checks a batch's headers against its raw body at `now` (unix seconds).
pub fn verify(
    secret: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), SignatureError> {
    let timestamp = timestamp.ok_or(SignatureError::MissingTimestamp)?;
    let signed_at: i64 = timestamp
        .parse()
        .map_err(|_| SignatureError::MalformedTimestamp)?;
    if signed_at.abs_diff(now) > MAX_SKEW_SECS.unsigned_abs() {
        return Err(SignatureError::StaleTimestamp);
    }
    let signature = signature.ok_or(SignatureError::MissingSignature)?;
    let hex_part = signature
        .strip_prefix("sha256=")
        .ok_or(SignatureError::MalformedSignature)?;
    let expected = hex::decode(hex_part).map_err(|_| SignatureError::MalformedSignature)?;
    mac(secret, timestamp, body)
        .verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch)
}
