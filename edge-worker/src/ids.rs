//! Identifiers: visitor ids, queue item ids and ingest batch ids.
//!
//! All are UUID-formatted strings. Random ones (RFC 9562 version 4) draw from
//! `crypto.getRandomValues` through getrandom's `wasm_js` backend; a client-supplied
//! event id is turned into a deterministic id (version 8, SHA-256 based) so a beacon the
//! browser re-sends becomes the same item and the control plane's dedupe drops it.

use sha2::{Digest, Sha256};

/// The error when the platform has no randomness (never seen on Workers; typed anyway).
#[derive(Debug)]
pub struct NoRandomness(pub getrandom::Error);

impl core::fmt::Display for NoRandomness {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "no randomness available: {}", self.0)
    }
}

/// A random UUID v4, e.g. `1b4e28ba-2fa1-4d2e-883f-0016d3cca427`.
pub fn random_uuid() -> Result<String, NoRandomness> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(NoRandomness)?;
    Ok(format_uuid(bytes, 4))
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
    fn random_ids_are_version_4_uuids_and_differ() {
        let a = random_uuid().unwrap();
        let b = random_uuid().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
    }

    #[test]
    fn derived_ids_are_stable_and_separate_their_parts() {
        let a = derived_uuid(&["site", "visitor", "evt-1"]);
        assert_eq!(a, derived_uuid(&["site", "visitor", "evt-1"]));
        assert_ne!(a, derived_uuid(&["site", "visito", "revt-1"]));
        assert_eq!(&a[14..15], "8");
    }
}
