//! `GET /v1/samplit.js`: the site snippet, embedded at compile time.
//!
//! The source is `edge-worker/snippet/samplit.js` (plain, readable JS; the gzip the CDN
//! applies keeps it far under 5 KB). Served with a strong `ETag` derived from its bytes
//! at compile time and a short shared cache lifetime, so a new deploy reaches browsers
//! within minutes while repeat loads are `304 Not Modified`.

use worker::{Headers, Response};

/// The snippet's source.
pub const SOURCE: &str = include_str!("../snippet/samplit.js");

/// Browsers and CDNs keep it 5 minutes, then revalidate with the ETag.
pub const CACHE_CONTROL: &str = "public, max-age=300, stale-while-revalidate=86400";

/// FNV-1a 64 of the source, computed by the compiler: changes whenever the file does.
const fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}

const HASH: u64 = fnv1a64(SOURCE.as_bytes());

/// The quoted strong ETag.
pub fn etag() -> String {
    format!("\"{HASH:016x}\"")
}

/// Whether an `If-None-Match` header names our ETag (or `*`).
pub fn not_modified(if_none_match: Option<&str>) -> bool {
    let tag = etag();
    if_none_match.is_some_and(|h| {
        h.split(',')
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == tag || t == "*")
    })
}

/// The response: 200 with the script, or 304 when the client already has it.
pub fn respond(if_none_match: Option<&str>, head_only: bool) -> worker::Result<Response> {
    let headers = Headers::new();
    headers.set("Content-Type", "text/javascript; charset=utf-8")?;
    headers.set("Cache-Control", CACHE_CONTROL)?;
    headers.set("ETag", &etag())?;
    // Any site may load the script; it carries no credentials or per-visitor data.
    headers.set("Access-Control-Allow-Origin", "*")?;
    if not_modified(if_none_match) {
        return Ok(Response::empty()?.with_status(304).with_headers(headers));
    }
    let body = if head_only {
        Vec::new()
    } else {
        SOURCE.as_bytes().to_vec()
    };
    Ok(Response::from_bytes(body)?.with_headers(headers))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_etag_matches_itself_only() {
        let tag = etag();
        assert!(not_modified(Some(&tag)));
        assert!(not_modified(Some(&format!("\"x\", W/{tag}"))));
        assert!(!not_modified(Some("\"0000000000000000\"")));
        assert!(!not_modified(None));
    }

    #[test]
    fn the_snippet_reads_its_site_key_and_tracks_with_beacons() {
        assert!(SOURCE.contains("data-site-key"));
        assert!(SOURCE.contains("sendBeacon"));
        assert!(SOURCE.contains("/v1/assign"));
    }
}
