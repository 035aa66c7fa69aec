//! Editor tokens: the short-lived, signed pass the control plane mints for one admin
//! and one site, which the edge verifies on every `/v1/editor` request without calling
//! the control plane.
//!
//! ## Format
//! `base64url(payload) "." base64url(mac)`, both without padding, where `payload` is the
//! canonical JSON of [`EditorClaims`] (`serde_json::to_string`: fields in declaration
//! order, no maps, so the same claims always give the same bytes) and
//! `mac = HMAC-SHA256(editor_key, payload)`. The MAC covers the payload bytes as
//! received; they are parsed only after the MAC verifies.
//!
//! ## Key
//! The key is **derived from the snapshot secret** (`SAMPLIT_SNAPSHOT_SECRET`, which the
//! control plane and the edge already share): `editor_key = HMAC-SHA256(snapshot_secret,
//! "samplit/editor-token/v1")`. One secret fewer to configure and rotate, and still
//! domain-separated: a snapshot signature can never pass as an editor token or the other
//! way round, because the two MACs use different keys. Rotating the snapshot secret
//! invalidates outstanding editor tokens, which live at most [`MAX_LIFETIME_MS`] anyway.
//!
//! ## Checks ([`verify`])
//! Token length ≤ [`MAX_TOKEN_LEN`]; two base64url parts; the MAC (constant time);
//! the version; `exp_ms` after the caller's clock (the edge's `Date.now()`), and no
//! more than [`MAX_LIFETIME_MS`] ahead of it (so a leaked signing bug cannot mint
//! everlasting tokens); and the claims' own validation ([`EditorClaims::validate`]):
//! plain lower-case host names, an `http(s)://host[:port]` admin origin, and preview
//! changes that pass [`Change`]'s validation (they deserialise through it).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::changes::Change;

type HmacSha256 = Hmac<Sha256>;

/// The claims' format version.
pub const TOKEN_VERSION: u8 = 1;
/// Longest token accepted (bytes). Tokens travel in URLs (every proxied link carries
/// one), and Cloudflare refuses URLs past 16 KB, so previews with very large changes are
/// refused when minted rather than failing later.
pub const MAX_TOKEN_LEN: usize = 12 * 1024;
/// Longest lifetime a token may claim relative to the verifier's clock (2 hours).
pub const MAX_LIFETIME_MS: i64 = 2 * 60 * 60 * 1000;
/// Most allowed domains a token carries.
pub const MAX_DOMAINS: usize = 50;
/// The key-derivation label (see the module docs).
const KEY_LABEL: &[u8] = b"samplit/editor-token/v1";

/// What an editor token grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EditorClaims {
    /// Always [`TOKEN_VERSION`].
    pub v: u8,
    /// The site whose pages may be proxied.
    pub site_key: String,
    /// The admin the token was minted for (for the edge's logs).
    pub user_id: String,
    /// Host names (lower case, no port) the proxy may fetch.
    pub allowed_domains: Vec<String>,
    /// The admin application's origin, the only one the editor script talks to.
    pub admin_origin: String,
    /// Expiry, Unix ms.
    pub exp_ms: i64,
    /// A variant to apply to every proxied page (preview mode), if any.
    #[serde(default)]
    pub preview: Option<Preview>,
}

/// A variant to preview: its changes are applied by the edge's rewriter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preview {
    /// The experiment.
    pub experiment_id: String,
    /// The variant.
    pub variant_id: String,
    /// Its changes (validated on deserialisation).
    pub changes: Vec<Change>,
}

/// Why a token was refused or could not be minted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// The signing key is empty.
    EmptyKey,
    /// Not two base64url parts, or longer than [`MAX_TOKEN_LEN`].
    Malformed,
    /// The MAC does not verify.
    BadSignature,
    /// A version this engine does not read.
    UnsupportedVersion(u8),
    /// `exp_ms` is not after now.
    Expired,
    /// `exp_ms` is more than [`MAX_LIFETIME_MS`] after now.
    LifetimeTooLong,
    /// The claims are not valid (the reason).
    Invalid(String),
    /// The minted token would be longer than [`MAX_TOKEN_LEN`].
    TooLong(usize),
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EmptyKey => write!(f, "the signing key is empty"),
            Self::Malformed => write!(f, "the token is malformed"),
            Self::BadSignature => write!(f, "the token signature does not verify"),
            Self::UnsupportedVersion(v) => write!(f, "token version {v} is not supported"),
            Self::Expired => write!(f, "the token has expired"),
            Self::LifetimeTooLong => write!(f, "the token claims too long a lifetime"),
            Self::Invalid(why) => write!(f, "the token claims are invalid: {why}"),
            Self::TooLong(n) => write!(
                f,
                "the token would be {n} bytes, at most {MAX_TOKEN_LEN} (preview too large)"
            ),
        }
    }
}

impl core::error::Error for TokenError {}

/// Whether `host` is a plain DNS name or IP literal as the URL parser prints it:
/// lower case, 1..=253 bytes of `[a-z0-9.-]` (or `[` `:` `]` for IPv6), no port.
#[must_use]
pub fn valid_host(host: &str) -> bool {
    if host.is_empty() || host.len() > 253 {
        return false;
    }
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_hexdigit() || b == b':');
    }
    host.bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && !host.starts_with('.')
        && !host.starts_with('-')
        && !host.contains("..")
}

/// Whether `origin` is `http(s)://host[:port]` with nothing after it.
#[must_use]
pub fn valid_origin(origin: &str) -> bool {
    let Some(rest) = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
    else {
        return false;
    };
    let (host, port) = if rest.starts_with('[') {
        match rest.find(']') {
            Some(i) => (&rest[..=i], rest[i + 1..].strip_prefix(':')),
            None => return false,
        }
    } else {
        match rest.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        }
    };
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    // `[::1]x` leaves junk after the bracket that is not a port.
    let bracket_ok =
        !rest.starts_with('[') || rest.len() == host.len() + port.map_or(0, |p| p.len() + 1);
    valid_host(host) && port_ok && bracket_ok
}

impl EditorClaims {
    /// Structural checks (see the module docs).
    pub fn validate(&self) -> Result<(), TokenError> {
        let invalid = |why: &str| Err(TokenError::Invalid(why.into()));
        if self.site_key.is_empty() || self.site_key.len() > 128 {
            return invalid("site_key must be 1-128 bytes");
        }
        if self.user_id.is_empty() || self.user_id.len() > 128 {
            return invalid("user_id must be 1-128 bytes");
        }
        if self.allowed_domains.is_empty() || self.allowed_domains.len() > MAX_DOMAINS {
            return invalid("allowed_domains must hold 1-50 host names");
        }
        if !self.allowed_domains.iter().all(|d| valid_host(d)) {
            return invalid("allowed_domains must be lower-case host names without ports");
        }
        if !valid_origin(&self.admin_origin) {
            return invalid("admin_origin must be http(s)://host[:port]");
        }
        Ok(())
    }
}

fn editor_key(secret: &[u8]) -> Result<HmacSha256, TokenError> {
    if secret.is_empty() {
        return Err(TokenError::EmptyKey);
    }
    let mut derive =
        <HmacSha256 as Mac>::new_from_slice(secret).map_err(|_| TokenError::EmptyKey)?;
    derive.update(KEY_LABEL);
    let key = derive.finalize().into_bytes();
    <HmacSha256 as Mac>::new_from_slice(&key).map_err(|_| TokenError::EmptyKey)
}

/// Mints a token for `claims` with the snapshot secret.
pub fn sign(claims: &EditorClaims, snapshot_secret: &[u8]) -> Result<String, TokenError> {
    claims.validate()?;
    if claims.v != TOKEN_VERSION {
        return Err(TokenError::UnsupportedVersion(claims.v));
    }
    let payload =
        serde_json::to_string(claims).map_err(|e| TokenError::Invalid(alloc::format!("{e}")))?;
    let mut mac = editor_key(snapshot_secret)?;
    mac.update(payload.as_bytes());
    let tag = mac.finalize().into_bytes();
    let mut token = URL_SAFE_NO_PAD.encode(payload.as_bytes());
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(tag));
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::TooLong(token.len()));
    }
    Ok(token)
}

/// Verifies `token` with the snapshot secret at `now_ms` (the verifier's clock).
pub fn verify(
    token: &str,
    snapshot_secret: &[u8],
    now_ms: i64,
) -> Result<EditorClaims, TokenError> {
    let mut mac = editor_key(snapshot_secret)?;
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed);
    }
    let (payload_b64, tag_b64) = token.split_once('.').ok_or(TokenError::Malformed)?;
    let payload = URL_SAFE_NO_PAD
        .decode(payload_b64)
        .map_err(|_| TokenError::Malformed)?;
    let tag = URL_SAFE_NO_PAD
        .decode(tag_b64)
        .map_err(|_| TokenError::Malformed)?;
    mac.update(&payload);
    mac.verify_slice(&tag)
        .map_err(|_| TokenError::BadSignature)?;

    // Only signed bytes are parsed from here on.
    #[derive(Deserialize)]
    struct Version {
        v: u8,
    }
    let version: Version =
        serde_json::from_slice(&payload).map_err(|e| TokenError::Invalid(alloc::format!("{e}")))?;
    if version.v != TOKEN_VERSION {
        return Err(TokenError::UnsupportedVersion(version.v));
    }
    let claims: EditorClaims =
        serde_json::from_slice(&payload).map_err(|e| TokenError::Invalid(alloc::format!("{e}")))?;
    if claims.exp_ms <= now_ms {
        return Err(TokenError::Expired);
    }
    if claims.exp_ms - now_ms > MAX_LIFETIME_MS {
        return Err(TokenError::LifetimeTooLong);
    }
    claims.validate()?;
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::changes::ChangeAction;
    use alloc::string::ToString as _;
    use alloc::vec;

    const KEY: &[u8] = b"a-snapshot-secret-of-at-least-32-bytes!!";
    const NOW: i64 = 1_800_000_000_000;

    fn claims() -> EditorClaims {
        EditorClaims {
            v: TOKEN_VERSION,
            site_key: "sk_live_1".into(),
            user_id: "5f0c6f1e-1111-4111-8111-111111111111".into(),
            allowed_domains: vec!["shop.example.com".into(), "www.example.com".into()],
            admin_origin: "https://app.samplit.test".into(),
            exp_ms: NOW + 15 * 60 * 1000,
            preview: None,
        }
    }

    #[test]
    fn a_signed_token_verifies_to_the_same_claims() {
        let mut c = claims();
        c.preview = Some(Preview {
            experiment_id: "e".into(),
            variant_id: "v".into(),
            changes: vec![
                Change::new(
                    "#hero h1",
                    ChangeAction::SetText {
                        text: "Hi \"there\" </script>".into(),
                    },
                )
                .unwrap(),
            ],
        });
        let token = sign(&c, KEY).unwrap();
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')),
            "URL-safe: {token}"
        );
        assert_eq!(verify(&token, KEY, NOW).unwrap(), c);
        // Same claims, same token (canonical payload, deterministic MAC).
        assert_eq!(sign(&c, KEY).unwrap(), token);
    }

    #[test]
    fn a_tampered_payload_or_signature_is_refused() {
        let token = sign(&claims(), KEY).unwrap();
        let (p, s) = token.split_once('.').unwrap();
        // Re-encode a payload that grants another domain, keep the old MAC.
        let mut evil = claims();
        evil.allowed_domains = vec!["169.254.169.254".into()];
        let evil_payload = URL_SAFE_NO_PAD.encode(serde_json::to_string(&evil).unwrap());
        assert_eq!(
            verify(&alloc::format!("{evil_payload}.{s}"), KEY, NOW),
            Err(TokenError::BadSignature)
        );
        // Flip one character of the MAC.
        let mut s2: Vec<u8> = s.bytes().collect();
        s2[3] = if s2[3] == b'A' { b'B' } else { b'A' };
        let s2 = String::from_utf8(s2).unwrap();
        assert_eq!(
            verify(&alloc::format!("{p}.{s2}"), KEY, NOW),
            Err(TokenError::BadSignature)
        );
        // A snapshot-style signature (hex HMAC with the raw secret) is not accepted.
        let mut raw = <HmacSha256 as Mac>::new_from_slice(KEY).unwrap();
        raw.update(&URL_SAFE_NO_PAD.decode(p).unwrap());
        let raw_tag = URL_SAFE_NO_PAD.encode(raw.finalize().into_bytes());
        assert_eq!(
            verify(&alloc::format!("{p}.{raw_tag}"), KEY, NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn a_token_signed_with_another_key_is_refused() {
        let token = sign(&claims(), b"another-secret-another-secret-another").unwrap();
        assert_eq!(verify(&token, KEY, NOW), Err(TokenError::BadSignature));
        assert_eq!(verify(&token, b"", NOW), Err(TokenError::EmptyKey));
        assert_eq!(sign(&claims(), b""), Err(TokenError::EmptyKey));
    }

    #[test]
    fn expiry_is_checked_against_the_verifiers_clock() {
        let token = sign(&claims(), KEY).unwrap();
        let exp = claims().exp_ms;
        assert!(verify(&token, KEY, exp - 1).is_ok());
        assert_eq!(verify(&token, KEY, exp), Err(TokenError::Expired));
        assert_eq!(verify(&token, KEY, exp + 1), Err(TokenError::Expired));
        let mut long = claims();
        long.exp_ms = NOW + MAX_LIFETIME_MS + 1;
        let token = sign(&long, KEY).unwrap();
        assert_eq!(verify(&token, KEY, NOW), Err(TokenError::LifetimeTooLong));
    }

    #[test]
    fn garbage_gives_typed_errors_never_panics() {
        let cases: &[(&str, TokenError)] = &[
            ("", TokenError::Malformed),
            ("no-dot", TokenError::Malformed),
            ("a.b.c", TokenError::Malformed),
            ("!!!.AAAA", TokenError::Malformed),
            ("AAAA.!!!", TokenError::Malformed),
            ("AAAA.AAAA", TokenError::BadSignature),
        ];
        for (token, want) in cases {
            assert_eq!(&verify(token, KEY, NOW).unwrap_err(), want, "{token:?}");
        }
        let huge = "A".repeat(MAX_TOKEN_LEN + 1);
        assert_eq!(verify(&huge, KEY, NOW), Err(TokenError::Malformed));
    }

    #[test]
    fn signed_but_invalid_claims_are_refused() {
        // Sign arbitrary bytes with the right key: structure is still checked.
        let sign_raw = |payload: &str| {
            let mut mac = editor_key(KEY).unwrap();
            mac.update(payload.as_bytes());
            alloc::format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(payload),
                URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
            )
        };
        let mut future = serde_json::to_value(claims()).unwrap();
        future["v"] = 2.into();
        assert_eq!(
            verify(&sign_raw(&future.to_string()), KEY, NOW),
            Err(TokenError::UnsupportedVersion(2))
        );
        let mut bad_domain = serde_json::to_value(claims()).unwrap();
        bad_domain["allowed_domains"] = serde_json::json!(["Shop.Example.com:8080"]);
        assert!(matches!(
            verify(&sign_raw(&bad_domain.to_string()), KEY, NOW),
            Err(TokenError::Invalid(_))
        ));
        let mut bad_change = serde_json::to_value(claims()).unwrap();
        bad_change["preview"] = serde_json::json!({"experiment_id": "e", "variant_id": "v",
            "changes": [{"selector": "a", "action": {"type": "set_attribute", "name": "onclick", "value": "x"}}]});
        assert!(matches!(
            verify(&sign_raw(&bad_change.to_string()), KEY, NOW),
            Err(TokenError::Invalid(_))
        ));
        assert!(matches!(
            verify(&sign_raw("not json"), KEY, NOW),
            Err(TokenError::Invalid(_))
        ));
    }

    #[test]
    fn claims_validation_names_what_is_wrong() {
        let cases: Vec<(EditorClaims, &str)> = vec![
            (
                EditorClaims {
                    allowed_domains: vec![],
                    ..claims()
                },
                "no domains",
            ),
            (
                EditorClaims {
                    allowed_domains: vec!["https://shop.example.com".into()],
                    ..claims()
                },
                "a URL, not a host",
            ),
            (
                EditorClaims {
                    admin_origin: "https://app.test/path".into(),
                    ..claims()
                },
                "an origin with a path",
            ),
            (
                EditorClaims {
                    admin_origin: "javascript:alert(1)".into(),
                    ..claims()
                },
                "not http(s)",
            ),
            (
                EditorClaims {
                    site_key: String::new(),
                    ..claims()
                },
                "no site key",
            ),
        ];
        for (c, why) in cases {
            assert!(matches!(c.validate(), Err(TokenError::Invalid(_))), "{why}");
            assert!(sign(&c, KEY).is_err(), "{why}");
        }
        assert!(valid_origin("http://127.0.0.1:8080"));
        assert!(valid_origin("https://app.samplit.test"));
        assert!(valid_host("127.0.0.1"));
        assert!(valid_host("[::1]"));
    }

    #[test]
    fn an_oversized_preview_cannot_be_minted() {
        let mut c = claims();
        c.preview = Some(Preview {
            experiment_id: "e".into(),
            variant_id: "v".into(),
            changes: vec![
                Change::new(
                    "p",
                    ChangeAction::SetText {
                        text: "x".repeat(MAX_TOKEN_LEN),
                    },
                )
                .unwrap(),
            ],
        });
        assert!(matches!(sign(&c, KEY), Err(TokenError::TooLong(_))));
    }
}
