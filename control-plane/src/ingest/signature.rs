//! The signature on an ingest batch (see `docs/ingestion.md` and the cross-part contract).
//!
//! The edge's queue consumer sends `X-Samplit-Timestamp: <unix seconds>` and
//! `X-Samplit-Signature: sha256=<hex>`, the hex being HMAC-SHA256 over
//! `"<timestamp>." + raw body` with `SAMPLIT_INGEST_SECRET`. Binding the timestamp into
//! the MAC and refusing timestamps more than [`MAX_SKEW_SECS`] from our clock bounds
//! replays of a captured request; the item ids make the replays that remain harmless.
//! The comparison is constant-time (`Mac::verify_slice`).

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Header carrying the signing time, unix seconds.
pub const TIMESTAMP_HEADER: &str = "x-samplit-timestamp";
/// Header carrying `sha256=<hex>`.
pub const SIGNATURE_HEADER: &str = "x-samplit-signature";
/// Largest accepted distance between the signing time and our clock, in seconds.
pub const MAX_SKEW_SECS: i64 = 300;

type HmacSha256 = Hmac<Sha256>;

/// Why a batch's signature was refused (every case is a 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing X-Samplit-Timestamp header")]
    MissingTimestamp,
    #[error("X-Samplit-Timestamp is not a unix time in seconds")]
    MalformedTimestamp,
    #[error("X-Samplit-Timestamp is more than 300 s away from the server clock")]
    StaleTimestamp,
    #[error("missing X-Samplit-Signature header")]
    MissingSignature,
    #[error("X-Samplit-Signature must be sha256=<hex>")]
    MalformedSignature,
    #[error("the signature does not match the body")]
    Mismatch,
}

fn mac(secret: &[u8], timestamp: &str, body: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `X-Samplit-Signature` value for `body` signed at `timestamp` (what the edge sends;
/// used by tests and the benchmark).
pub fn sign(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    format!(
        "sha256={}",
        hex::encode(mac(secret, timestamp, body).finalize().into_bytes())
    )
}

/// Checks the headers against the raw body, at `now` (unix seconds).
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

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    /// (what, timestamp header, signature header, body, now, expected error)
    type Case<'a> = (
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
        &'a [u8],
        i64,
        SignatureError,
    );

    #[test]
    fn a_signature_made_by_sign_verifies_and_any_change_breaks_it() {
        let sig = sign(KEY, "1700000000", b"{\"items\":[]}");
        assert_eq!(
            verify(
                KEY,
                Some("1700000000"),
                Some(&sig),
                b"{\"items\":[]}",
                1700000100
            ),
            Ok(())
        );
        let cases: [Case<'_>; 7] = [
            (
                "body changed",
                Some("1700000000"),
                Some(&sig),
                b"{\"items\":[1]}",
                1700000000,
                SignatureError::Mismatch,
            ),
            (
                "timestamp changed",
                Some("1700000001"),
                Some(&sig),
                b"{\"items\":[]}",
                1700000000,
                SignatureError::Mismatch,
            ),
            (
                "too old",
                Some("1700000000"),
                Some(&sig),
                b"{\"items\":[]}",
                1700000301,
                SignatureError::StaleTimestamp,
            ),
            (
                "from the future",
                Some("1700000000"),
                Some(&sig),
                b"{\"items\":[]}",
                1699999699,
                SignatureError::StaleTimestamp,
            ),
            (
                "no timestamp",
                None,
                Some(&sig),
                b"{\"items\":[]}",
                1700000000,
                SignatureError::MissingTimestamp,
            ),
            (
                "no signature",
                Some("1700000000"),
                None,
                b"{\"items\":[]}",
                1700000000,
                SignatureError::MissingSignature,
            ),
            (
                "not hex",
                Some("1700000000"),
                Some("sha256=zz"),
                b"{\"items\":[]}",
                1700000000,
                SignatureError::MalformedSignature,
            ),
        ];
        for (what, ts, sig, body, now, expected) in cases {
            assert_eq!(verify(KEY, ts, sig, body, now), Err(expected), "{what}");
        }
    }

    #[test]
    fn the_signature_is_hmac_sha256_over_timestamp_dot_body() {
        // Reference computed independently:
        // printf '1700000000.{}' | openssl dgst -sha256 -hmac 0123456789abcdef0123456789abcdef
        assert_eq!(
            sign(KEY, "1700000000", b"{}"),
            format!("sha256={}", REFERENCE)
        );
    }

    const REFERENCE: &str = "417adf36b901772f658597a76d329694e335e65fc0849d7715c3ca33406309b5";
}
