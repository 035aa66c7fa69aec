//! Identifiers: visitor ids, queue item ids and ingest batch ids.
//!
//! All are UUID-formatted strings. New ones are time-ordered (RFC 9562 version 7: the
//! Unix time in milliseconds, then 74 random bits from `crypto.getRandomValues` through
//! getrandom's `wasm_js` backend), so the control plane's indexes on visitor and item ids
//! take new ids at their right edge instead of on random pages (docs/benchmarks.md,
//! "Time-ordered ids"); a client-supplied event id is turned into a deterministic id
//! (version 8, SHA-256 based) so a beacon the browser re-sends becomes the same item and
//! the control plane's dedupe drops it.

use sha2::{Digest, Sha256};

/// The error when the platform has no randomness (never seen on Workers; typed anyway).
#[derive(Debug)]
pub struct NoRandomness(pub getrandom::Error);

impl core::fmt::Display for NoRandomness {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "no randomness available: {}", self.0)
    }
}

/// A new UUID v7 made at `unix_ms`, e.g. `019af8e2-7c41-7d2e-883f-0016d3cca427`: the
/// time in the first 48 bits, random bits after (a time before 1970 counts as 1970).
pub fn time_ordered_uuid(unix_ms: i64) -> Result<String, NoRandomness> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes[6..]).map_err(NoRandomness)?;
    let ms = u64::try_from(unix_ms).unwrap_or(0).min((1 << 48) - 1);
    bytes[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    Ok(format_uuid(bytes, 7))
}

/// A stable id for a client-supplied event id: the same site, visitor and client id
/// always give the same UUID (version 8: custom, here the first 16 bytes of SHA-256).
pub fn derived_uuid(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        // Length-prefix each part so ("ab","c") and ("a","bc") differ.
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    let digest = hasher.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    format_uuid(bytes, 8)
}

/// Sets the version and RFC 9562 variant bits and prints the 8-4-4-4-12 hex form.
fn format_uuid(mut b: [u8; 16], version: u8) -> String {
    b[6] = (b[6] & 0x0f) | (version << 4);
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_are_version_7_uuids_that_carry_their_time_and_differ() {
        // 2026-12-07T14:00:00.123Z
        let ms = 1_796_652_000_123_i64;
        let a = time_ordered_uuid(ms).unwrap();
        let b = time_ordered_uuid(ms).unwrap();
        assert_ne!(a, b, "same millisecond, different random bits");
        assert_eq!(a.len(), 36);
        assert_eq!(&a[..13], format!("{:08x}-{:04x}", ms >> 16, ms & 0xffff));
        assert_eq!(&a[14..15], "7");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
        // Later ids sort after earlier ones, as text and as bytes.
        let later = time_ordered_uuid(ms + 1).unwrap();
        assert!(a < later && b < later, "{a} {b} {later}");
        assert!(
            time_ordered_uuid(-5)
                .unwrap()
                .starts_with("00000000-0000-7")
        );
    }

    #[test]
    fn derived_ids_are_stable_and_separate_their_parts() {
        let a = derived_uuid(&["site", "visitor", "evt-1"]);
        assert_eq!(a, derived_uuid(&["site", "visitor", "evt-1"]));
        assert_ne!(a, derived_uuid(&["site", "visito", "revt-1"]));
        assert_eq!(&a[14..15], "8");
    }
}
