//! Cookies: the `Cookie` header, the visitor id, and the sticky cookie's encode/decode
//! (the same decoder reads a plugin's `sticky` query value).
#![no_main]

use libfuzzer_sys::fuzz_target;
use samplit_edge::cookies::{
    STICKY_COOKIE, STICKY_COOKIE_MAX, VISITOR_COOKIE, decode_sticky, encode_sticky,
    parse_cookie_header, set_cookie, valid_visitor_id,
};
use samplit_fuzz::split2;

/// First occurrence of each key, in order (what `encode_sticky` keeps).
fn dedup(pairs: &[(String, String)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in pairs {
        if !out.iter().any(|(ok, _)| ok == k) {
            out.push((k.clone(), v.clone()));
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };

    for (name, value) in parse_cookie_header(s) {
        assert!(!name.is_empty() && name == name.trim());
        assert!(!name.contains(';') && !value.contains(';'));
    }

    // A valid visitor id survives the Set-Cookie → Cookie round trip.
    if valid_visitor_id(s) {
        let header = set_cookie(VISITOR_COOKIE, s, true);
        let first = parse_cookie_header(&header).into_iter().next();
        assert_eq!(first, Some((VISITOR_COOKIE.to_owned(), s.to_owned())));
    }

    // Sticky pairs: what is encoded decodes to the newest pairs, first key wins, within
    // the cap, and the value is a legal cookie value.
    let (a, b) = split2(s);
    let fresh = decode_sticky(a);
    let previous = decode_sticky(b);
    for (k, v) in fresh.iter().chain(&previous) {
        assert!(!k.is_empty() && !v.is_empty());
    }
    let encoded = encode_sticky(&fresh, &previous);
    assert!(encoded.len() <= STICKY_COOKIE_MAX);
    assert!(
        encoded
            .bytes()
            .all(|c| c.is_ascii_graphic() && !matches!(c, b'"' | b',' | b';' | b'\\')),
        "not a cookie value: {encoded:?}"
    );
    let decoded = decode_sticky(&encoded);
    let all: Vec<(String, String)> = fresh.iter().chain(&previous).cloned().collect();
    let expected = dedup(&all);
    assert!(decoded.len() <= expected.len());
    assert_eq!(decoded[..], expected[..decoded.len()]);
    let header = format!("a=b; {}", set_cookie(STICKY_COOKIE, &encoded, false));
    let back = parse_cookie_header(&header);
    if !encoded.is_empty() {
        assert_eq!(back[1], (STICKY_COOKIE.to_owned(), encoded));
    }
});
