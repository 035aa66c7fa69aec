//! First-party cookies: the visitor id, the sticky experiment → arm pairs and the
//! visitor's history.
//!
//! - `samplit_vid`: a random UUID, one year, `HttpOnly` (the snippet gets the id in the
//!   response body), `SameSite=Lax`, `Secure` on https.
//! - `samplit_arms`: `key=token&key=token` (sticky key → sticky token `<arm>.<mac>`,
//!   see [`crate::trust`]; only tokens minted for this site and visitor are obeyed),
//!   each part form-urlencoded, so arm and experiment ids may hold any character without
//!   breaking the cookie grammar. Capped at
//!   [`STICKY_COOKIE_MAX`] bytes, newest pairs first, so it never grows past what
//!   browsers keep.
//! - `samplit_hist`: the visitor's history, `1.<visits>.<conversions>.<last_seen_min>`
//!   ([`samplit_engine::context::HistoryCookie`], read and re-set in
//!   [`crate::context`]), same attributes as `samplit_vid`. Not MAC'd: it only
//!   describes the visitor's own browser (prior visits and conversions as segment and
//!   covariate values); editing it only mislabels that visitor, as clearing it would.

use url::form_urlencoded;

pub const VISITOR_COOKIE: &str = "samplit_vid";
pub const STICKY_COOKIE: &str = "samplit_arms";
pub const HISTORY_COOKIE: &str = "samplit_hist";
pub const ONE_YEAR_SECONDS: u32 = 365 * 24 * 60 * 60;
/// Browsers keep at least 4096 bytes per cookie, name and attributes included.
pub const STICKY_COOKIE_MAX: usize = 3000;
/// Longest visitor id accepted from a client or a plugin.
pub const VISITOR_ID_MAX: usize = 128;

/// Parses a `Cookie` header into (name, value) pairs, skipping malformed pieces.
pub fn parse_cookie_header(header: &str) -> Vec<(String, String)> {
    header
        .split(';')
        .filter_map(|piece| {
            let (name, value) = piece.split_once('=')?;
            let name = name.trim();
            let value = value.trim().trim_matches('"');
            (!name.is_empty()).then(|| (name.to_owned(), value.to_owned()))
        })
        .collect()
}

/// A visitor id we accept from a cookie, a body or a query: 1..=128 printable ASCII
/// characters that are legal in a cookie value.
pub fn valid_visitor_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= VISITOR_ID_MAX
        && id
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b',' | b';' | b'\\'))
}

/// A `Set-Cookie` value for a one-year first-party cookie.
pub fn set_cookie(name: &str, value: &str, secure: bool) -> String {
    let mut c =
        format!("{name}={value}; Path=/; Max-Age={ONE_YEAR_SECONDS}; SameSite=Lax; HttpOnly");
    if secure {
        c.push_str("; Secure");
    }
    c
}

/// Decodes the sticky cookie (or a plugin's `sticky` string in a query) into pairs.
pub fn decode_sticky(value: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(value.as_bytes())
        .filter(|(k, v)| !k.is_empty() && !v.is_empty())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Encodes pairs, newest first, dropping the oldest once the cookie would exceed the cap.
/// `fresh` (this response's assignments) win over `previous` for the same key.
pub fn encode_sticky(fresh: &[(String, String)], previous: &[(String, String)]) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    let mut len = 0usize;
    let mut seen: Vec<&str> = Vec::new();
    for (k, v) in fresh.iter().chain(previous.iter()) {
        if seen.contains(&k.as_str()) {
            continue;
        }
        let piece_len = form_urlencoded::byte_serialize(k.as_bytes())
            .chain(form_urlencoded::byte_serialize(v.as_bytes()))
            .map(str::len)
            .sum::<usize>()
            + 2;
        if len + piece_len > STICKY_COOKIE_MAX {
            break;
        }
        len += piece_len;
        seen.push(k);
        out.append_pair(k, v);
    }
    out.finish()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Owned (name, value) pairs from borrowed ones (also for `trust`'s tests).
    pub(crate) fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    #[test]
    fn cookie_headers_parse_leniently() {
        let c = parse_cookie_header("a=1; samplit_vid=abc ; junk; =x; q=\"v\"");
        assert_eq!(c, pairs(&[("a", "1"), ("samplit_vid", "abc"), ("q", "v")]));
    }

    #[test]
    fn sticky_pairs_round_trip_with_any_characters() {
        let fresh = pairs(&[("exp 1", "arm=b;c"), ("e2", "ä")]);
        let enc = encode_sticky(&fresh, &[]);
        assert!(!enc.contains(';') && !enc.contains(' ') && !enc.contains(','));
        assert_eq!(decode_sticky(&enc), fresh);
    }

    #[test]
    fn fresh_assignments_override_previous_ones_and_the_cookie_is_capped() {
        let enc = encode_sticky(&pairs(&[("e1", "b")]), &pairs(&[("e1", "a"), ("e0", "z")]));
        assert_eq!(decode_sticky(&enc), pairs(&[("e1", "b"), ("e0", "z")]));

        let many: Vec<(String, String)> = (0..500)
            .map(|i| (format!("experiment-{i:04}"), "arm".to_owned()))
            .collect();
        let enc = encode_sticky(&many, &[]);
        assert!(enc.len() <= STICKY_COOKIE_MAX);
        assert_eq!(decode_sticky(&enc)[0].0, "experiment-0000");
    }

    #[test]
    fn visitor_ids_are_checked() {
        assert!(valid_visitor_id("1b4e28ba-2fa1-4d2e-883f-0016d3cca427"));
        assert!(!valid_visitor_id(""));
        assert!(!valid_visitor_id("a b"));
        assert!(!valid_visitor_id("a;b"));
        assert!(!valid_visitor_id(&"x".repeat(129)));
    }

    #[test]
    fn cookies_are_secure_only_on_https() {
        assert!(set_cookie("n", "v", true).ends_with("; Secure"));
        assert!(!set_cookie("n", "v", false).contains("Secure"));
        assert!(set_cookie("n", "v", false).contains("SameSite=Lax"));
    }
}
