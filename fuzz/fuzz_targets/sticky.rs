//! Sticky tokens (`<arm>.<mac>`, shared-engine `sticky.rs`) as the edge reads them from a
//! body, a query or the cookie: nothing but a token this key minted for exactly this
//! site, visitor and sticky key names an arm.
#![no_main]

use libfuzzer_sys::fuzz_target;
use samplit_engine::sticky::{MAX_TOKEN_LEN, StickyKey};
use samplit_fuzz::split2;

const SECRET: &[u8] = b"fuzz-snapshot-secret-0123456789abcdef0123";

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let key = StickyKey::derive(SECRET);
    let (token, arm) = split2(s);

    // Outside input as a token: if it verifies, it names the arm before its last dot;
    // it is bounded; and it verifies for no other visitor, site or sticky key.
    if let Some(named) = key.verify("pk_site", "visitor-1", "exp-1", token) {
        assert!(token.len() <= MAX_TOKEN_LEN);
        assert_eq!(Some(named), token.rsplit_once('.').map(|(a, _)| a));
        assert!(key.verify("pk_site", "visitor-2", "exp-1", token).is_none());
        assert!(key.verify("pk_other", "visitor-1", "exp-1", token).is_none());
        assert!(key.verify("pk_site", "visitor-1", "exp-2", token).is_none());
    }

    // A token minted for any arm round-trips to that arm (when it fits the bound) and
    // never verifies under another key or for another visitor.
    if arm.is_empty() {
        return;
    }
    let minted = key.token("pk_site", "visitor-1", "exp-1", arm);
    let back = key.verify("pk_site", "visitor-1", "exp-1", &minted);
    if minted.len() <= MAX_TOKEN_LEN {
        assert_eq!(back, Some(arm));
    } else {
        assert_eq!(back, None);
    }
    assert!(key.verify("pk_site", "visitor-2", "exp-1", &minted).is_none());
    let other = StickyKey::derive(b"another-secret-entirely-0123456789abcdef");
    assert!(other.verify("pk_site", "visitor-1", "exp-1", &minted).is_none());
});
