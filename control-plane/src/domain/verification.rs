//! Domain-ownership proofs, the pure part: what a site must publish, which names can be
//! proven at all, which resolved addresses the control plane may connect to, and how a
//! fetched answer or a TXT record set is judged. The I/O (DNS, HTTP) is in
//! `crate::verify`; these functions decide, so they are tested without a network.
//!
//! A proof is `samplit-verification=<token>`, published either
//! - as a DNS TXT record on `_samplit.<host>` ([`Method::DnsTxt`]), or
//! - at `https://<host>/.well-known/samplit-verification.txt`, or as
//!   `<meta name="samplit-verification" content="<token>">` in the home page
//!   ([`Method::HttpFile`]).
//!
//! Development names — `localhost`, `*.localhost`, `*.test`, `*.example`, `*.invalid` —
//! and names resolving only to internal addresses are never provable unless the
//! development switch (`SAMPLIT_DEV_ALLOW_LOCAL_DOMAINS`) is on.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The prefix of the value a site publishes.
pub const PROOF_PREFIX: &str = "samplit-verification=";
/// The DNS label the TXT record lives under.
pub const TXT_LABEL: &str = "_samplit";
/// Where the file method looks first.
pub const WELL_KNOWN_PATH: &str = "/.well-known/samplit-verification.txt";
/// The meta tag name the file method accepts in the home page.
pub const META_NAME: &str = "samplit-verification";

crate::domain::named_set! {
    /// How a domain was (or is to be) proven.
    pub enum Method("verification method") {
        DnsTxt = "dns_txt",
        HttpFile = "http_file",
        /// Proven by a platform install (the Shopify Admin API lists the shop's domains
        /// to the app the merchant installed); never asked for through the API.
        ShopifyInstall = "shopify_install",
    }
}

crate::domain::named_set! {
    /// Whether a site's host is proven to be the site's (`site_domains.status`).
    pub enum DomainStatus("domain status") {
        /// Added, not proven yet: the edge does not serve the site on it.
        Pending = "pending",
        /// Proven by DNS or HTTP (or by a platform install): the edge serves the site on it.
        Verified = "verified",
    }
}

/// The value to publish for `token`.
pub fn proof_value(token: &str) -> String {
    format!("{PROOF_PREFIX}{token}")
}

/// The TXT record name for `host`.
pub fn txt_name(host: &str) -> String {
    format!("{TXT_LABEL}.{host}")
}

/// Development-only names (RFC 6761 / 2606 special-use): never provable without the
/// development switch.
pub fn is_development_name(host: &str) -> bool {
    host == "localhost"
        || [".localhost", ".test", ".example", ".invalid", ".local"]
            .iter()
            .any(|suffix| host.ends_with(suffix))
}

/// Why an address may not be connected to (or counted as the host's).
pub fn internal_address(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => internal_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return internal_v4(v4);
            }
            internal_v6(v6)
        }
    }
}

fn internal_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        Some("link-local (cloud metadata)")
    } else if ip.is_unspecified() || a == 0 {
        Some("unspecified")
    } else if ip.is_broadcast() || ip.is_multicast() || a >= 240 {
        Some("reserved")
    } else if a == 100 && (64..128).contains(&b) {
        Some("carrier-grade NAT")
    } else if a == 198 && (18..20).contains(&b) {
        Some("benchmarking")
    } else if ip.is_documentation() {
        Some("documentation")
    } else {
        None
    }
}

fn internal_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_unspecified() {
        Some("unspecified")
    } else if ip.is_multicast() {
        Some("reserved")
    } else if first & 0xfe00 == 0xfc00 {
        Some("private (unique local)")
    } else if first & 0xffc0 == 0xfe80 {
        Some("link-local")
    } else if first == 0x2001 && ip.segments()[1] == 0x0db8 {
        Some("documentation")
    } else {
        None
    }
}

/// Whether the control plane may connect to `ip`: public addresses always; loopback only
/// with the development switch (so tests and the demo can prove a local origin); private,
/// link-local, metadata and reserved ranges never.
pub fn may_connect(ip: IpAddr, dev_allow_local: bool) -> Result<(), &'static str> {
    match internal_address(ip) {
        None => Ok(()),
        Some("loopback") if dev_allow_local => Ok(()),
        Some(why) => Err(why),
    }
}

/// Whether a TXT record set proves `token`. Each record's strings are joined (a long TXT
/// value may be split into 255-byte strings); surrounding whitespace is ignored.
pub fn txt_proves(records: &[String], token: &str) -> bool {
    let want = proof_value(token);
    records.iter().any(|r| r.trim() == want)
}

/// Whether a fetched well-known file proves `token`: its first non-empty line is the
/// proof value (or the bare token).
pub fn file_proves(body: &str, token: &str) -> bool {
    body.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .is_some_and(|l| l == proof_value(token) || l == token)
}

/// Whether a home page carries `<meta name="samplit-verification" content="TOKEN">`
/// (attribute order and quoting free, case-insensitive names).
pub fn meta_proves(html: &str, token: &str) -> bool {
    let lower = html.to_ascii_lowercase();
    let mut rest = lower.as_str();
    while let Some(start) = rest.find("<meta") {
        let tag = &rest[start..];
        let end = tag.find('>').unwrap_or(tag.len());
        let tag = &tag[..end];
        if attr(tag, "name").as_deref() == Some(META_NAME)
            && attr(tag, "content").is_some_and(|c| c == token || c == proof_value(token))
        {
            return true;
        }
        rest = &rest[start + 5..];
    }
    false
}

/// The value of `name="…"`, `name='…'` or `name=…` in a lower-cased tag.
fn attr(tag: &str, name: &str) -> Option<String> {
    let mut search = tag;
    loop {
        let at = search.find(name)?;
        let before = search[..at].chars().last();
        let after = search[at + name.len()..].trim_start();
        search = &search[at + name.len()..];
        if !before.is_some_and(char::is_whitespace) {
            continue;
        }
        let Some(value) = after.strip_prefix('=') else {
            continue;
        };
        let value = value.trim_start();
        return Some(match value.chars().next() {
            Some(q @ ('"' | '\'')) => value[1..].split(q).next().unwrap_or("").to_owned(),
            _ => value
                .split(|c: char| c.is_whitespace() || c == '/')
                .next()
                .unwrap_or("")
                .to_owned(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn development_names_are_recognised() {
        for host in [
            "localhost",
            "demo.localhost",
            "shop.test",
            "shop.e2e.example",
            "x.invalid",
        ] {
            assert!(is_development_name(host), "{host}");
        }
        for host in ["shop.example.com", "example.org", "testshop.com"] {
            assert!(!is_development_name(host), "{host}");
        }
    }

    #[test]
    fn internal_addresses_are_refused_and_loopback_only_with_the_switch() {
        let cases: [(&str, Option<&str>); 10] = [
            ("93.184.216.34", None),
            ("127.0.0.1", Some("loopback")),
            ("10.1.2.3", Some("private")),
            ("192.168.1.1", Some("private")),
            ("169.254.169.254", Some("link-local (cloud metadata)")),
            ("100.64.0.1", Some("carrier-grade NAT")),
            ("0.0.0.0", Some("unspecified")),
            ("::1", Some("loopback")),
            ("fd00::1", Some("private (unique local)")),
            ("::ffff:10.0.0.1", Some("private")),
        ];
        for (ip, want) in cases {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(internal_address(ip), want, "{ip}");
        }
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let private: IpAddr = "10.0.0.1".parse().unwrap();
        assert!(may_connect(lo, false).is_err());
        assert!(may_connect(lo, true).is_ok());
        assert!(may_connect(private, true).is_err(), "never private");
    }

    #[test]
    fn proofs_must_carry_exactly_the_token() {
        let t = "abc123";
        assert!(txt_proves(&["samplit-verification=abc123".into()], t));
        assert!(!txt_proves(&["samplit-verification=abc1234".into()], t));
        assert!(!txt_proves(&["v=spf1 -all".into()], t));
        assert!(file_proves("\nsamplit-verification=abc123\n", t));
        assert!(!file_proves("samplit-verification=other", t));
        assert!(meta_proves(
            r#"<html><head><META content="abc123" name="samplit-verification"></head>"#,
            t
        ));
        assert!(meta_proves(
            "<meta name=samplit-verification content=samplit-verification=abc123>",
            t
        ));
        assert!(!meta_proves(
            r#"<meta name="description" content="abc123"><meta name="samplit-verification" content="x">"#,
            t
        ));
    }
}
