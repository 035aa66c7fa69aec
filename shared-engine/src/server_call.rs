//! Signed server-side calls: how a plugin or a customer's server proves it holds the
//! site's server secret when it calls `/v1/assign` or `/v1/events`.
//!
//! ## The server secret is derived, never stored
//! `server_secret = "ss_" + base64url_nopad(HMAC-SHA256(K, site_key || 0x00 || salt))`
//! with `K = derive_key(snapshot_secret, "samplit/server-secret/v1")` and `salt` the
//! site's public salt as its lower-case hex text (≥ [`MIN_SALT_HEX`] hex digits, i.e.
//! ≥ 16 random bytes). The control plane stores only the salt (and a hash of the secret,
//! for display); the snapshot carries the salt; the edge, which holds the snapshot
//! secret, recomputes the secret per signed request. Rotation is a new salt: the next
//! snapshot carries it and the old secret stops verifying within one publish interval.
//!
//! ## Request signature
//! Headers [`TIMESTAMP_HEADER`]`: <unix seconds>` and [`SIGNATURE_HEADER`]`: v1=<hex>`,
//! where `hex` is the lower-case hex HMAC-SHA256 under the server secret (its ASCII text,
//! `ss_` included) of
//! `timestamp "\n" METHOD "\n" path-with-query "\n" body`
//! (`METHOD` upper case; `path-with-query` exactly as sent, e.g.
//! `/v1/assign?site_key=pk_…&url=…`; `body` the raw bytes, empty for a GET).
//! [`verify`] checks the MAC in constant time, then that the timestamp is within
//! [`WINDOW_SECONDS`] of the verifier's clock (a captured request replays for at most
//! that long; the events it carries are deduplicated downstream by their ids).

use alloc::string::String;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::routing::derive_key;

/// Key-derivation label for server secrets.
pub const SERVER_SECRET_LABEL: &[u8] = b"samplit/server-secret/v1";
/// Prefix of server secrets.
pub const SERVER_SECRET_PREFIX: &str = "ss_";
/// The request timestamp header (Unix seconds).
pub const TIMESTAMP_HEADER: &str = "X-Samplit-Timestamp";
/// The request signature header (`v1=<hex>`).
pub const SIGNATURE_HEADER: &str = "X-Samplit-Signature";
/// How far a signed request's timestamp may be from the verifier's clock, either way.
pub const WINDOW_SECONDS: i64 = 300;
/// Fewest hex digits in a salt (16 bytes).
pub const MIN_SALT_HEX: usize = 32;
/// Most hex digits in a salt.
pub const MAX_SALT_HEX: usize = 128;

type HmacSha256 = Hmac<Sha256>;

/// Why a signed call was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallError {
    /// The headers are malformed, or the MAC does not verify.
    BadSignature,
    /// The MAC verifies but the timestamp is outside the window.
    Expired,
}

impl core::fmt::Display for CallError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::BadSignature => "the signature does not verify",
            Self::Expired => "the signature's timestamp is outside the allowed window",
        })
    }
}

impl core::error::Error for CallError {}

fn mac(key: &[u8]) -> HmacSha256 {
    <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC-SHA256 accepts keys of any length")
}

/// A salt as sites carry it: [`MIN_SALT_HEX`]..=[`MAX_SALT_HEX`] lower-case hex digits.
#[must_use]
pub fn valid_salt(salt: &str) -> bool {
    (MIN_SALT_HEX..=MAX_SALT_HEX).contains(&salt.len())
        && salt
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The site's server secret (see the module docs for the formula).
#[must_use]
pub fn server_secret(snapshot_secret: &[u8], site_key: &str, salt: &str) -> String {
    let mut m = mac(&derive_key(snapshot_secret, SERVER_SECRET_LABEL));
    m.update(site_key.as_bytes());
    m.update(&[0]);
    m.update(salt.as_bytes());
    let mut out = String::from(SERVER_SECRET_PREFIX);
    URL_SAFE_NO_PAD.encode_string(m.finalize().into_bytes(), &mut out);
    out
}

fn request_mac(
    server_secret: &str,
    timestamp: &str,
    method: &str,
    path_and_query: &str,
    body: &[u8],
) -> HmacSha256 {
    let mut m = mac(server_secret.as_bytes());
    m.update(timestamp.as_bytes());
    m.update(b"\n");
    m.update(method.as_bytes());
    m.update(b"\n");
    m.update(path_and_query.as_bytes());
    m.update(b"\n");
    m.update(body);
    m
}

/// The `X-Samplit-Signature` value for a request: `v1=<lower hex>`.
#[must_use]
pub fn sign(
    server_secret: &str,
    timestamp: i64,
    method: &str,
    path_and_query: &str,
    body: &[u8],
) -> String {
    let ts = alloc::format!("{timestamp}");
    let tag = request_mac(server_secret, &ts, method, path_and_query, body)
        .finalize()
        .into_bytes();
    let mut out = String::from("v1=");
    out.push_str(&hex::encode(tag));
    out
}

/// Verifies a signed request at `now_s` (Unix seconds): the MAC first (constant time),
/// then the window, so [`CallError::Expired`] is only ever said of a genuine signature.
pub fn verify(
    server_secret: &str,
    timestamp: &str,
    signature: &str,
    now_s: i64,
    method: &str,
    path_and_query: &str,
    body: &[u8],
) -> Result<(), CallError> {
    let timestamp = timestamp.trim();
    let ts: i64 = if !timestamp.is_empty()
        && timestamp.len() <= 12
        && timestamp.bytes().all(|b| b.is_ascii_digit())
    {
        timestamp.parse().map_err(|_| CallError::BadSignature)?
    } else {
        return Err(CallError::BadSignature);
    };
    let hex_sig = signature
        .trim()
        .strip_prefix("v1=")
        .ok_or(CallError::BadSignature)?;
    let mut tag = [0u8; 32];
    hex::decode_to_slice(hex_sig, &mut tag).map_err(|_| CallError::BadSignature)?;
    request_mac(server_secret, timestamp, method, path_and_query, body)
        .verify_slice(&tag)
        .map_err(|_| CallError::BadSignature)?;
    if (now_s - ts).abs() > WINDOW_SECONDS {
        return Err(CallError::Expired);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"test-snapshot-secret-0123456789abcdef012345";
    const SALT: &str = "00112233445566778899aabbccddeeff";
    const NOW: i64 = 1_700_000_000;

    #[test]
    /// Both values computed independently with Python:
    /// ```text
    /// /usr/bin/python3 -c 'import hmac,hashlib,base64
    /// s=b"test-snapshot-secret-0123456789abcdef012345"
    /// k=hmac.new(s,b"samplit/server-secret/v1",hashlib.sha256).digest()
    /// ss="ss_"+base64.urlsafe_b64encode(hmac.new(k,b"pk_abc\x00"+b"00112233445566778899aabbccddeeff",hashlib.sha256).digest()).rstrip(b"=").decode()
    /// print(ss)
    /// msg=b"1700000000\nPOST\n/v1/events\n"+b"{\"site_key\":\"pk_abc\"}"
    /// print("v1="+hmac.new(ss.encode(),msg,hashlib.sha256).hexdigest())'
    /// ```
    fn the_server_secret_and_the_request_signature_are_pinned() {
        let ss = server_secret(SECRET, "pk_abc", SALT);
        assert_eq!(ss, "ss_BnUlfcp3PE-hTtbVdFHC9hrTMJAsDO0d1TNXL8_KPFI");
        let body = br#"{"site_key":"pk_abc"}"#;
        let sig = sign(&ss, NOW, "POST", "/v1/events", body);
        assert_eq!(
            sig,
            "v1=cd482347e36b5f0bbfad4a996d25685b4800a974ff7b6849837e5a987af867e6"
        );
        assert_eq!(
            verify(&ss, "1700000000", &sig, NOW, "POST", "/v1/events", body),
            Ok(())
        );
    }

    #[test]
    fn the_secret_depends_on_the_site_the_salt_and_the_snapshot_secret() {
        let ss = server_secret(SECRET, "pk_abc", SALT);
        assert_ne!(ss, server_secret(SECRET, "pk_abd", SALT));
        assert_ne!(
            ss,
            server_secret(SECRET, "pk_abc", "10112233445566778899aabbccddeeff")
        );
        assert_ne!(ss, server_secret(b"other", "pk_abc", SALT));
        // The NUL separator: ("pk_a", "b…") and ("pk_ab", "…") differ.
        assert_ne!(
            server_secret(SECRET, "pk_a", "b0112233445566778899aabbccddeeff"),
            server_secret(SECRET, "pk_ab", "0112233445566778899aabbccddeeff")
        );
    }

    #[test]
    fn a_tampered_or_foreign_request_is_refused() {
        let ss = server_secret(SECRET, "pk_abc", SALT);
        let body = b"{}";
        let sig = sign(&ss, NOW, "POST", "/v1/assign", body);
        let other = server_secret(SECRET, "pk_abc", "ffffffffffffffffffffffffffffffff");
        // (why, secret, timestamp, method, path, body)
        type Case<'a> = (&'a str, &'a str, &'a str, &'a str, &'a str, &'a [u8]);
        let cases: [Case<'_>; 8] = [
            (
                "another secret",
                &other,
                "1700000000",
                "POST",
                "/v1/assign",
                body,
            ),
            (
                "another body",
                &ss,
                "1700000000",
                "POST",
                "/v1/assign",
                b"{ }",
            ),
            (
                "another path",
                &ss,
                "1700000000",
                "POST",
                "/v1/events",
                body,
            ),
            (
                "another method",
                &ss,
                "1700000000",
                "GET",
                "/v1/assign",
                body,
            ),
            (
                "another timestamp",
                &ss,
                "1700000001",
                "POST",
                "/v1/assign",
                body,
            ),
            (
                "a signed timestamp",
                &ss,
                "-1700000000",
                "POST",
                "/v1/assign",
                body,
            ),
            ("an empty timestamp", &ss, "", "POST", "/v1/assign", body),
            (
                "a float timestamp",
                &ss,
                "1700000000.0",
                "POST",
                "/v1/assign",
                body,
            ),
        ];
        for (why, secret, ts, method, path, body) in cases {
            assert_eq!(
                verify(secret, ts, &sig, NOW, method, path, body),
                Err(CallError::BadSignature),
                "{why}"
            );
        }
        for bad in ["", "v1=", "v2=00", &sig[3..], &sig.to_uppercase()[..10]] {
            assert_eq!(
                verify(&ss, "1700000000", bad, NOW, "POST", "/v1/assign", body),
                Err(CallError::BadSignature),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_window_is_five_minutes_either_way() {
        let ss = server_secret(SECRET, "pk_abc", SALT);
        let sig = sign(&ss, NOW, "GET", "/v1/assign?a=1", b"");
        let at = |now| verify(&ss, "1700000000", &sig, now, "GET", "/v1/assign?a=1", b"");
        assert_eq!(at(NOW + WINDOW_SECONDS), Ok(()));
        assert_eq!(at(NOW - WINDOW_SECONDS), Ok(()));
        assert_eq!(at(NOW + WINDOW_SECONDS + 1), Err(CallError::Expired));
        assert_eq!(at(NOW - WINDOW_SECONDS - 1), Err(CallError::Expired));
    }

    #[test]
    fn salts_are_long_lower_case_hex() {
        assert!(valid_salt(SALT));
        for bad in [
            "",
            "0011",
            &SALT.to_uppercase(),
            &"g".repeat(32),
            &"a".repeat(129),
        ] {
            assert!(!valid_salt(bad), "{bad:?}");
        }
    }
}
