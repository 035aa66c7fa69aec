//! `GET /v1/samplit.js`: the site snippet, embedded at compile time.
//!
//! The source is `edge-worker/snippet/samplit.js` (plain, readable JS; the gzip the CDN
//! applies keeps it far under 5 KB). Served with a strong `ETag` derived from its bytes
//! at compile time and a short shared cache lifetime, so a new deploy reaches browsers
//! within minutes while repeat loads are `304 Not Modified`.
//!
//! `GET /v1/samplit.js?site=KEY` is the same script preceded by one line that names the
//! site and the selectors its running experiments change (every arm's, redirects
//! aside), from the snapshot the edge holds. Loaded synchronously in `<head>`, it hides
//! those elements before the first paint, so even a first visit — when nothing is
//! remembered yet — never shows the original. Its `ETag` adds the snapshot version and
//! it is cached for a minute, so a newly started experiment is hidden within a minute.

use samplit_engine::changes::ChangeAction;
use samplit_engine::snapshot::Snapshot;
use worker::{Headers, Response};

/// The snippet's source.
pub const SOURCE: &str = include_str!("../snippet/samplit.js");

/// Browsers and CDNs keep it 5 minutes, then revalidate with the ETag.
pub const CACHE_CONTROL: &str = "public, max-age=300, stale-while-revalidate=86400";

/// The per-site script changes with the site's snapshot: one minute, then revalidate.
pub const SITE_CACHE_CONTROL: &str = "public, max-age=60, stale-while-revalidate=600";

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

/// The quoted strong ETag of the plain script.
pub fn etag() -> String {
    format!("\"{HASH:016x}\"")
}

/// The quoted strong ETag of a site's script: the source's hash and the snapshot
/// version it was built from (0: no snapshot yet).
pub fn site_etag(version: Option<u64>) -> String {
    format!("\"{HASH:016x}-{}\"", version.unwrap_or(0))
}

/// Whether an `If-None-Match` header names `tag` (or `*`).
pub fn not_modified(if_none_match: Option<&str>, tag: &str) -> bool {
    if_none_match.is_some_and(|h| {
        h.split(',')
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == tag || t == "*")
    })
}

/// The selectors the site's running experiments change, in snapshot order, each once.
/// Redirects change no element and are left out.
pub fn targeted_selectors(snapshot: &Snapshot) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    let changes = snapshot
        .experiments
        .iter()
        .flat_map(|e| e.elements.iter())
        .flat_map(|el| el.variants.iter())
        .flat_map(|v| v.changes.iter());
    for c in changes {
        // Custom code has no selector.
        if !matches!(c.action(), ChangeAction::Redirect { .. })
            && !c.selector().is_empty()
            && !out.contains(&c.selector())
        {
            out.push(c.selector());
        }
    }
    out
}

/// A site's script: `window.__samplit_site = {key, version, hide, hosts};` then the
/// snippet. `hosts` are the site's hosts (the snapshot's allowed origins): where the
/// snippet lets a form action or a redirect go (without them, the page's own host).
pub fn site_source(site_key: &str, snapshot: Option<&Snapshot>) -> String {
    let prelude = serde_json::json!({
        "key": site_key,
        "version": snapshot.map(|s| s.version),
        "hide": snapshot.map(targeted_selectors).unwrap_or_default(),
        "hosts": snapshot.map(crate::site::hosts_of),
    });
    format!("window.__samplit_site = {prelude};\n{SOURCE}")
}

/// A script response: 200 with `body()`, or 304 when the client already holds `tag`.
pub fn respond(
    if_none_match: Option<&str>,
    head_only: bool,
    tag: &str,
    cache_control: &str,
    body: impl FnOnce() -> String,
) -> worker::Result<Response> {
    let headers = Headers::new();
    headers.set("Content-Type", "text/javascript; charset=utf-8")?;
    headers.set("Cache-Control", cache_control)?;
    headers.set("ETag", tag)?;
    // Any site may load the script; it carries no credentials or per-visitor data.
    headers.set("Access-Control-Allow-Origin", "*")?;
    if not_modified(if_none_match, tag) {
        return Ok(Response::empty()?.with_status(304).with_headers(headers));
    }
    let bytes = if head_only {
        Vec::new()
    } else {
        body().into_bytes()
    };
    Ok(Response::from_bytes(bytes)?.with_headers(headers))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_etag_matches_itself_only() {
        let tag = etag();
        assert!(not_modified(Some(&tag), &tag));
        assert!(not_modified(Some(&format!("\"x\", W/{tag}")), &tag));
        assert!(!not_modified(Some("\"0000000000000000\""), &tag));
        assert!(!not_modified(None, &tag));
        assert_ne!(site_etag(Some(3)), site_etag(Some(4)));
        assert!(!not_modified(
            Some(&site_etag(Some(3))),
            &site_etag(Some(4))
        ));
    }

    #[test]
    fn the_snippet_reads_its_site_key_and_tracks_with_beacons() {
        assert!(SOURCE.contains("data-site-key"));
        assert!(SOURCE.contains("sendBeacon"));
        assert!(SOURCE.contains("/v1/assign"));
    }

    fn snapshot() -> Snapshot {
        let change = |sel: &str, action: serde_json::Value| serde_json::json!({"selector": sel, "action": action});
        let text = serde_json::json!({"type": "set_text", "text": "x"});
        serde_json::from_value(serde_json::json!({
            "schema": 1, "site_key": "sk_1", "version": 7, "generated_at_ms": 0,
            "allowed_origins": ["https://shop.test", "https://www.shop.test:8443"], "exclusions": [],
            "experiments": [{
                "id": "e1", "seed": "s", "hash_version": 2, "coverage": 1.0, "url_rules": [],
                "namespace": null, "mode": "single",
                "elements": [
                    {"id": "h", "selector": "#headline", "variants": [
                        {"id": "c", "changes": []},
                        {"id": "t", "changes": [change("#headline", text.clone()), change(".cta", serde_json::json!({"type": "hide"})), {"action": {"type": "custom_css", "code": "p{}"}}]},
                        {"id": "u", "changes": [change("#headline", text.clone()), change("body", serde_json::json!({"type": "redirect", "url": "https://shop.test/b"}))]}
                    ]}
                ],
                "units": [{"id": "u1", "element_id": null,
                    "allocator": {"kind": "fixed_split", "weights": [0.5, 0.3, 0.2]},
                    "arms": [
                        {"id": "a", "variants": [0], "exposures": 0, "conversions": 0, "propensity": 0.5},
                        {"id": "b", "variants": [1], "exposures": 0, "conversions": 0, "propensity": 0.3},
                        {"id": "c", "variants": [2], "exposures": 0, "conversions": 0, "propensity": 0.2}
                    ]}]
            }]
        }))
        .unwrap()
    }

    #[test]
    fn a_sites_script_names_the_selectors_its_experiments_change() {
        let snap = snapshot();
        assert_eq!(targeted_selectors(&snap), vec!["#headline", ".cta"]);
        let src = site_source("sk_1", Some(&snap));
        let (prelude, rest) = src.split_once('\n').unwrap();
        assert_eq!(
            prelude,
            r##"window.__samplit_site = {"hide":["#headline",".cta"],"hosts":["shop.test","www.shop.test"],"key":"sk_1","version":7};"##
        );
        assert_eq!(rest, SOURCE);
        let none = site_source("sk_2", None);
        assert!(
            none.starts_with(
                r#"window.__samplit_site = {"hide":[],"hosts":null,"key":"sk_2","version":null};"#
            ),
            "{none}"
        );
    }
}
