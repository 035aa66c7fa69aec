//! Sticky tokens: the value that keeps a visitor on an arm, which only the edge can mint.
//!
//! Without it anyone could choose an arm: a caller would send `{"<experiment>": "<arm>"}`
//! and the edge would obey, bypassing coverage and the allocator. A token binds the arm to
//! the site, the visitor and the sticky key (experiment or unit id), under a key only the
//! edge and the control plane hold, so a token is obeyed only for the visitor it was
//! minted for.
//!
//! ## Format
//! `<arm>.<mac>` where `mac` is base64url without padding of the first
//! [`MAC_LEN`] bytes of
//! `HMAC-SHA256(derive_key(snapshot_secret, "samplit/sticky/v1"), msg)` and `msg` is the
//! four fields `site_key, visitor_id, sticky_key, arm`, each as a 4-byte big-endian
//! length followed by its bytes (unambiguous: ("ab","c") and ("a","bc") differ). The arm
//! may itself hold dots: the MAC is what follows the *last* dot (base64url has no dot).
//!
//! 128 bits of MAC: a forger has to guess it online, one request per guess.
//!
//! ## Verification
//! [`StickyKey::verify`] recomputes the MAC and compares in constant time
//! (`hmac`'s `verify_slice`). A malformed, forged or foreign token yields `None`: the
//! caller assigns the visitor as if no token were sent, never an error.

use alloc::string::String;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::routing::derive_key;

/// Key-derivation label for sticky tokens.
pub const STICKY_KEY_LABEL: &[u8] = b"samplit/sticky/v1";
/// MAC bytes kept in a token (a truncated HMAC-SHA256).
pub const MAC_LEN: usize = 16;
/// Length of the MAC's base64url text (16 bytes, no padding).
pub const MAC_B64_LEN: usize = 22;
/// Longest token read (an arm id plus the MAC); longer ones are ignored unread.
pub const MAX_TOKEN_LEN: usize = 256;

type HmacSha256 = Hmac<Sha256>;

/// The sticky-token key, derived once from the snapshot secret.
#[derive(Clone)]
pub struct StickyKey([u8; 32]);

impl core::fmt::Debug for StickyKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("StickyKey(..)")
    }
}

impl StickyKey {
    /// `HMAC-SHA256(snapshot_secret, "samplit/sticky/v1")`.
    #[must_use]
    pub fn derive(snapshot_secret: &[u8]) -> Self {
        Self(derive_key(snapshot_secret, STICKY_KEY_LABEL))
    }

    fn mac(&self, site_key: &str, visitor_id: &str, sticky_key: &str, arm: &str) -> HmacSha256 {
        let mut m = <HmacSha256 as Mac>::new_from_slice(&self.0)
            .expect("HMAC-SHA256 accepts keys of any length");
        for field in [site_key, visitor_id, sticky_key, arm] {
            // Fields are bounded far below 4 GiB (ids ≤ 128 bytes, URLs ≤ 4 KiB); a
            // longer one saturates, which still never equals a shorter field's prefix.
            let len = u32::try_from(field.len()).unwrap_or(u32::MAX);
            m.update(&len.to_be_bytes());
            m.update(field.as_bytes());
        }
        m
    }

    /// The token that keeps `visitor_id` of `site_key` on `arm` for `sticky_key`.
    #[must_use]
    pub fn token(&self, site_key: &str, visitor_id: &str, sticky_key: &str, arm: &str) -> String {
        let tag = self
            .mac(site_key, visitor_id, sticky_key, arm)
            .finalize()
            .into_bytes();
        let mut out = String::with_capacity(arm.len() + 1 + MAC_B64_LEN);
        out.push_str(arm);
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(&tag[..MAC_LEN], &mut out);
        out
    }

    /// The arm `token` names, if it was minted by this key for exactly this site,
    /// visitor and sticky key; `None` for anything else (malformed, forged, another
    /// visitor's or another site's token).
    #[must_use]
    pub fn verify<'t>(
        &self,
        site_key: &str,
        visitor_id: &str,
        sticky_key: &str,
        token: &'t str,
    ) -> Option<&'t str> {
        if token.len() > MAX_TOKEN_LEN {
            return None;
        }
        let (arm, mac_b64) = token.rsplit_once('.')?;
        if arm.is_empty() || mac_b64.len() != MAC_B64_LEN {
            return None;
        }
        let mut tag = [0u8; MAC_LEN];
        let n = URL_SAFE_NO_PAD
            .decode_slice(mac_b64, &mut tag)
            .ok()
            .filter(|&n| n == MAC_LEN)?;
        self.mac(site_key, visitor_id, sticky_key, arm)
            .verify_truncated_left(&tag[..n])
            .ok()?;
        Some(arm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    const SECRET: &[u8] = b"test-snapshot-secret-0123456789abcdef012345";

    #[test]
    /// Computed independently with Python:
    /// ```text
    /// /usr/bin/python3 -c 'import hmac,hashlib,base64,struct
    /// s=b"test-snapshot-secret-0123456789abcdef012345"
    /// k=hmac.new(s,b"samplit/sticky/v1",hashlib.sha256).digest()
    /// m=b"".join(struct.pack(">I",len(f))+f for f in [b"pk_abc",b"visitor-1",b"exp-1",b"treatment"])
    /// print(base64.urlsafe_b64encode(hmac.new(k,m,hashlib.sha256).digest()[:16]).rstrip(b"=").decode())'
    /// ```
    fn the_token_format_is_pinned() {
        let key = StickyKey::derive(SECRET);
        let token = key.token("pk_abc", "visitor-1", "exp-1", "treatment");
        assert_eq!(token, "treatment.zC-fgzXkELyGIPy-XxE4Gw");
        assert_eq!(
            key.verify("pk_abc", "visitor-1", "exp-1", &token),
            Some("treatment")
        );
    }

    #[test]
    fn a_token_is_obeyed_only_for_its_site_visitor_and_key() {
        let key = StickyKey::derive(SECRET);
        let token = key.token("pk_a", "v1", "e1", "arm.with.dots");
        assert_eq!(
            key.verify("pk_a", "v1", "e1", &token),
            Some("arm.with.dots")
        );
        assert_eq!(key.verify("pk_b", "v1", "e1", &token), None, "another site");
        assert_eq!(
            key.verify("pk_a", "v2", "e1", &token),
            None,
            "another visitor"
        );
        assert_eq!(
            key.verify("pk_a", "v1", "e2", &token),
            None,
            "another experiment"
        );
        let other = StickyKey::derive(b"another-secret");
        assert_eq!(
            other.verify("pk_a", "v1", "e1", &token),
            None,
            "another key"
        );
    }

    #[test]
    fn forged_and_malformed_tokens_are_ignored() {
        let key = StickyKey::derive(SECRET);
        let good = key.token("pk_a", "v1", "e1", "control");
        let (_, mac) = good.rsplit_once('.').unwrap();
        let cases = [
            ("a bare arm id (the old format)", String::from("treatment")),
            ("the arm swapped", format!("treatment.{mac}")),
            ("an empty arm", format!(".{mac}")),
            ("a short MAC", format!("control.{}", &mac[..21])),
            ("a long MAC", format!("control.{mac}A")),
            ("not base64url", format!("control.{}", "!".repeat(22))),
            ("empty", String::new()),
            ("huge", "x".repeat(MAX_TOKEN_LEN + 1)),
        ];
        for (why, token) in cases {
            assert_eq!(key.verify("pk_a", "v1", "e1", &token), None, "{why}");
        }
        // Fields are length-prefixed: moving bytes between fields changes the MAC.
        let t = key.token("pk_a", "ab", "c", "arm");
        assert_eq!(key.verify("pk_a", "a", "bc", &t), None);
    }
}
