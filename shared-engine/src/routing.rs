//! Signed documents that say which site a host belongs to, and that a site is gone.
//!
//! The control plane is the only party that knows which organisation proved ownership of
//! a host, so the edge takes its host → site mapping from documents the control plane
//! signs, never from whatever snapshot was pushed last:
//!
//! - [`Route`]: `{schema, host, site_key, version, generated_at_ms}` for one host.
//!   `site_key: None` is a *tombstone*: the host no longer belongs to any site (its
//!   domain was removed, its site deleted). Versions come from one PostgreSQL sequence,
//!   so they grow across control-plane replicas; the edge refuses a route older than
//!   the one it holds.
//! - [`SiteTombstone`]: `{schema, site_key, version, generated_at_ms}`: the site was
//!   deleted. Its version is above every snapshot version the site ever published, so a
//!   late snapshot push cannot resurrect it.
//!
//! ## Keys
//! Each kind is signed with HMAC-SHA256 under a key **derived** from the snapshot secret,
//! `HMAC-SHA256(snapshot_secret, label)`, with a label per kind ([`ROUTE_KEY_LABEL`],
//! [`TOMBSTONE_KEY_LABEL`]). Snapshots are signed with the secret itself, so a snapshot
//! signature never verifies as a route or a tombstone, nor one of those as the other,
//! even if someone managed to make the payload bytes coincide.
//!
//! ## Wire form
//! The same `{"payload": "<canonical JSON>", "signature": "<hex>"}` as snapshots
//! ([`SignedDoc`]); the payload is `serde_json::to_string` of the struct (fields in
//! declaration order, no maps), and the signature covers exactly those bytes. The golden
//! tests below pin both.

use alloc::string::{String, ToString};
use core::fmt;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The schema version of routes and tombstones.
pub const SCHEMA_VERSION: u32 = 1;
/// Key-derivation label for [`Route`]s.
pub const ROUTE_KEY_LABEL: &[u8] = b"samplit/route/v1";
/// Key-derivation label for [`SiteTombstone`]s.
pub const TOMBSTONE_KEY_LABEL: &[u8] = b"samplit/site-tombstone/v1";
/// Longest host name (DNS limit).
pub const MAX_HOST_LEN: usize = 253;

type HmacSha256 = Hmac<Sha256>;

/// Which site a host belongs to, or that it belongs to none (`site_key: None`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// Always [`SCHEMA_VERSION`].
    pub schema: u32,
    /// Lower-case host name, no port.
    pub host: String,
    /// The site that proved ownership; `None`: a tombstone.
    pub site_key: Option<String>,
    /// Monotonic across every host (one sequence on the control plane).
    pub version: u64,
    /// When it was signed (Unix ms); informational.
    pub generated_at_ms: i64,
}

/// A deleted site: the edge answers for its key as for an unknown site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteTombstone {
    /// Always [`SCHEMA_VERSION`].
    pub schema: u32,
    /// The deleted site's public key.
    pub site_key: String,
    /// Above every snapshot version the site published.
    pub version: u64,
    /// When it was signed (Unix ms); informational.
    pub generated_at_ms: i64,
}

/// A signed route or tombstone as pushed and stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedDoc {
    /// The canonical JSON the signature covers.
    pub payload: String,
    /// HMAC-SHA256 of `payload` under the kind's derived key, lower-case hex.
    pub signature: String,
}

/// Why a document was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoutingError {
    /// The secret is empty.
    EmptyKey,
    /// The signature is not 64 hex digits or does not verify.
    BadSignature,
    /// The payload does not parse.
    Malformed(String),
    /// A schema this engine does not read.
    UnsupportedSchema(u32),
    /// The document verified but is not acceptable (bad host, empty site key).
    Invalid(&'static str),
    /// Older than the version held.
    Stale {
        /// The version held.
        held: u64,
        /// The version received.
        received: u64,
    },
}

impl fmt::Display for RoutingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EmptyKey => f.write_str("the signing secret is empty"),
            Self::BadSignature => f.write_str("the signature does not verify"),
            Self::Malformed(m) => write!(f, "malformed document: {m}"),
            Self::UnsupportedSchema(s) => write!(f, "unsupported schema {s}"),
            Self::Invalid(m) => write!(f, "invalid document: {m}"),
            Self::Stale { held, received } => {
                write!(
                    f,
                    "version {received} is older than the held version {held}"
                )
            }
        }
    }
}

impl core::error::Error for RoutingError {}

fn mac(key: &[u8]) -> HmacSha256 {
    <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC-SHA256 accepts keys of any length")
}

/// `HMAC-SHA256(secret, label)`: the signing key of one document kind.
#[must_use]
pub fn derive_key(secret: &[u8], label: &[u8]) -> [u8; 32] {
    let mut m = mac(secret);
    m.update(label);
    m.finalize().into_bytes().into()
}

fn sign_payload(payload: String, secret: &[u8], label: &[u8]) -> Result<SignedDoc, RoutingError> {
    if secret.is_empty() {
        return Err(RoutingError::EmptyKey);
    }
    let mut m = mac(&derive_key(secret, label));
    m.update(payload.as_bytes());
    let signature = hex::encode(m.finalize().into_bytes());
    Ok(SignedDoc { payload, signature })
}

fn check_signature(doc: &SignedDoc, secret: &[u8], label: &[u8]) -> Result<(), RoutingError> {
    if secret.is_empty() {
        return Err(RoutingError::EmptyKey);
    }
    let mut sig = [0u8; 32];
    hex::decode_to_slice(&doc.signature, &mut sig).map_err(|_| RoutingError::BadSignature)?;
    let mut m = mac(&derive_key(secret, label));
    m.update(doc.payload.as_bytes());
    m.verify_slice(&sig).map_err(|_| RoutingError::BadSignature)
}

fn stale(held: Option<u64>, received: u64) -> Result<(), RoutingError> {
    match held {
        Some(held) if received < held => Err(RoutingError::Stale { held, received }),
        _ => Ok(()),
    }
}

/// A host as routes carry it: 1–253 characters of `a-z 0-9 . -`.
#[must_use]
pub fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= MAX_HOST_LEN
        && host
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
}

impl Route {
    fn validate(&self) -> Result<(), RoutingError> {
        if self.schema != SCHEMA_VERSION {
            return Err(RoutingError::UnsupportedSchema(self.schema));
        }
        if !valid_host(&self.host) {
            return Err(RoutingError::Invalid("host"));
        }
        if self.site_key.as_deref().is_some_and(str::is_empty) {
            return Err(RoutingError::Invalid("empty site_key"));
        }
        Ok(())
    }
}

/// Signs a route (validating it first).
pub fn sign_route(route: &Route, secret: &[u8]) -> Result<SignedDoc, RoutingError> {
    route.validate()?;
    let payload =
        serde_json::to_string(route).map_err(|e| RoutingError::Malformed(e.to_string()))?;
    sign_payload(payload, secret, ROUTE_KEY_LABEL)
}

/// Verifies the signature, then parses and validates the route, and refuses one older
/// than `held_version` (an equal version is an idempotent retry).
pub fn verify_route(
    doc: &SignedDoc,
    secret: &[u8],
    held_version: Option<u64>,
) -> Result<Route, RoutingError> {
    check_signature(doc, secret, ROUTE_KEY_LABEL)?;
    let route: Route =
        serde_json::from_str(&doc.payload).map_err(|e| RoutingError::Malformed(e.to_string()))?;
    route.validate()?;
    stale(held_version, route.version)?;
    Ok(route)
}

impl SiteTombstone {
    fn validate(&self) -> Result<(), RoutingError> {
        if self.schema != SCHEMA_VERSION {
            return Err(RoutingError::UnsupportedSchema(self.schema));
        }
        if self.site_key.is_empty() {
            return Err(RoutingError::Invalid("empty site_key"));
        }
        Ok(())
    }
}

/// Signs a site tombstone.
pub fn sign_tombstone(t: &SiteTombstone, secret: &[u8]) -> Result<SignedDoc, RoutingError> {
    t.validate()?;
    let payload = serde_json::to_string(t).map_err(|e| RoutingError::Malformed(e.to_string()))?;
    sign_payload(payload, secret, TOMBSTONE_KEY_LABEL)
}

/// Verifies a site tombstone; refuses one older than `held_version` (the version of the
/// snapshot or tombstone held for the site).
pub fn verify_tombstone(
    doc: &SignedDoc,
    secret: &[u8],
    held_version: Option<u64>,
) -> Result<SiteTombstone, RoutingError> {
    check_signature(doc, secret, TOMBSTONE_KEY_LABEL)?;
    let t: SiteTombstone =
        serde_json::from_str(&doc.payload).map_err(|e| RoutingError::Malformed(e.to_string()))?;
    t.validate()?;
    stale(held_version, t.version)?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::borrow::ToOwned;

    const SECRET: &[u8] = b"test-snapshot-secret-0123456789abcdef012345";

    fn route(site_key: Option<&str>, version: u64) -> Route {
        Route {
            schema: 1,
            host: "shop.example.com".to_owned(),
            site_key: site_key.map(str::to_owned),
            version,
            generated_at_ms: 1_700_000_000_000,
        }
    }

    #[test]
    /// Signatures computed independently: Python `hmac.new(hmac.new(secret, label,
    /// sha256).digest(), payload, sha256)`.
    fn the_route_wire_format_is_pinned() {
        let signed = sign_route(&route(Some("pk_abc"), 7), SECRET).unwrap();
        assert_eq!(
            signed.payload,
            r#"{"schema":1,"host":"shop.example.com","site_key":"pk_abc","version":7,"generated_at_ms":1700000000000}"#
        );
        assert_eq!(
            signed.signature,
            "864b1bdee902520b5f6241590cd7a40f7a32b20c0a464d081de732f23c9dba50"
        );
        let tomb = sign_route(&route(None, 8), SECRET).unwrap();
        assert!(tomb.payload.contains(r#""site_key":null"#));
    }

    #[test]
    fn the_tombstone_wire_format_is_pinned() {
        let t = SiteTombstone {
            schema: 1,
            site_key: "pk_abc".to_owned(),
            version: 9,
            generated_at_ms: 1_700_000_000_000,
        };
        let signed = sign_tombstone(&t, SECRET).unwrap();
        assert_eq!(
            signed.payload,
            r#"{"schema":1,"site_key":"pk_abc","version":9,"generated_at_ms":1700000000000}"#
        );
        assert_eq!(
            signed.signature,
            "9afe2ed8a9df36dc0d82b5eebdb3e307ad3dcf136f178e3c0b706e42407b77d5"
        );
    }

    #[test]
    fn a_route_round_trips_and_an_older_one_is_stale() {
        let signed = sign_route(&route(Some("pk_a"), 5), SECRET).unwrap();
        assert_eq!(verify_route(&signed, SECRET, Some(5)).unwrap().version, 5);
        assert_eq!(
            verify_route(&signed, SECRET, Some(6)),
            Err(RoutingError::Stale {
                held: 6,
                received: 5
            })
        );
    }

    #[test]
    fn a_forged_or_tampered_route_is_refused() {
        let mut signed = sign_route(&route(Some("pk_a"), 5), SECRET).unwrap();
        assert_eq!(
            verify_route(&signed, b"another-secret", None),
            Err(RoutingError::BadSignature)
        );
        signed.payload = signed.payload.replace("pk_a", "pk_b");
        assert_eq!(
            verify_route(&signed, SECRET, None),
            Err(RoutingError::BadSignature)
        );
    }

    #[test]
    fn no_kind_of_signature_verifies_as_another_kind() {
        // The same payload bytes signed as a route do not verify as a tombstone, and a
        // plain HMAC under the secret itself (a snapshot signature) verifies as neither.
        let t = SiteTombstone {
            schema: 1,
            site_key: "pk_a".to_owned(),
            version: 3,
            generated_at_ms: 0,
        };
        let as_tombstone = sign_tombstone(&t, SECRET).unwrap();
        let as_route = sign_payload(as_tombstone.payload.clone(), SECRET, ROUTE_KEY_LABEL).unwrap();
        assert_eq!(
            verify_tombstone(&as_route, SECRET, None),
            Err(RoutingError::BadSignature)
        );
        let mut m = mac(SECRET);
        m.update(as_tombstone.payload.as_bytes());
        let snapshot_style = SignedDoc {
            payload: as_tombstone.payload.clone(),
            signature: hex::encode(m.finalize().into_bytes()),
        };
        assert_eq!(
            verify_tombstone(&snapshot_style, SECRET, None),
            Err(RoutingError::BadSignature)
        );
        assert!(verify_route(&snapshot_style, SECRET, None).is_err());
    }

    #[test]
    fn hosts_are_lower_case_dns_names() {
        assert!(valid_host("shop.example.com"));
        for bad in ["", "Shop.com", "shop.com:443", "a/b", "ex ample.com"] {
            assert!(!valid_host(bad), "{bad:?}");
        }
    }
}
