//! Editor URLs: the proxy's query (`target_of`), the SSRF policy on the target and on a
//! redirect's `Location`, and the rewriter's proxied links. Whatever passes the policy
//! is https (or http in development), on an allowed host, without credentials or a
//! fragment; a proxied link reads back as the same target and token.
#![no_main]

use libfuzzer_sys::fuzz_target;
use samplit_edge::editor::target_of;
use samplit_edge::proxy_policy::{self, Policy, URL_MAX};
use samplit_edge::render::EditorMode;
use samplit_fuzz::{assert_client_error, mode, split2};
use url::Url;

fn allowed(url: &Url, policy: &Policy<'_>) {
    assert!(url.as_str().len() <= URL_MAX);
    match url.scheme() {
        "https" => {}
        "http" => assert!(policy.allow_http),
        s => panic!("scheme {s} passed the policy"),
    }
    assert!(url.username().is_empty() && url.password().is_none());
    assert!(url.fragment().is_none());
    let host = url.host_str().expect("a checked URL has a host");
    let host = host.strip_suffix('.').unwrap_or(host);
    assert!(
        policy
            .allowed_domains
            .iter()
            .any(|d| d.eq_ignore_ascii_case(host)),
        "host {host} is not allowed"
    );
    if let Some(port) = url.port() {
        assert!(policy.allowed_ports.contains(&port), "port {port} passed");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((m, rest)) = mode(data) else { return };
    let Ok(s) = std::str::from_utf8(rest) else {
        return;
    };
    let (query, location) = split2(s);
    let domains = ["shop.example.com".to_owned(), "127.0.0.1".to_owned()];
    let policy = Policy {
        allowed_domains: &domains,
        allow_http: m & 1 == 1,
        allow_loopback: m & 2 == 2,
        allowed_ports: if m & 4 == 4 { &[8080] } else { &[] },
    };
    let Ok(request) = Url::parse(&format!("https://edge.test/v1/editor?{query}")) else {
        return;
    };
    let (target, token) = match target_of(&request) {
        Ok(t) => t,
        Err(e) => return assert_client_error(&e),
    };
    let Ok(url) = proxy_policy::check(&target, &policy) else {
        return;
    };
    allowed(&url, &policy);
    if let Ok(next) = proxy_policy::check_redirect(&url, location, &policy) {
        allowed(&next, &policy);
    }

    // The rewriter's links come back to the proxy as the same target and token.
    let editor = EditorMode {
        page_url: url.clone(),
        edge_origin: "https://edge.test".into(),
        token: token.clone(),
        admin_origin: "https://app.test".into(),
    };
    if let Some(link) = editor.rewrite_link(location) {
        let link = Url::parse(&link).expect("a proxied link is a URL");
        let (t2, tok2) = target_of(&link).expect("a proxied link names a target");
        assert_eq!(tok2, token);
        let absolute = url.join(location.trim()).expect("rewrite_link resolved it");
        assert_eq!(t2, absolute.as_str());
    }
});
