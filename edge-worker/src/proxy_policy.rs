//! Which URLs the editor proxy may fetch: a pure function of the URL and a [`Policy`],
//! tested natively (the SSRF table below), used for the first request and again for
//! every redirect hop.
//!
//! A URL is fetched only when all of these hold:
//! - it parses as an absolute URL (WHATWG parsing through the `url` crate, the same
//!   algorithm as `fetch`: `http://2130706433/`, `http://0x7f.1/`, `http://017700000001/`
//!   all parse to the IPv4 host 127.0.0.1, so numeric tricks are seen as the IP literals
//!   they are);
//! - the scheme is `https`, or `http` when the policy allows it (development only);
//! - it has no user name or password;
//! - the host is a DNS name in the token's allowed domains (exact, case-insensitive,
//!   ignoring one trailing dot). IP literals (v4 or v6, any spelling) are refused —
//!   unless the policy allows loopback (development only, for tests), and then only a
//!   loopback address that is itself listed in the allowed domains;
//! - the port is the scheme's default, or one the policy lists (development only);
//! - it is at most [`URL_MAX`] bytes.
//!
//! DNS rebinding is out of scope by construction: a Worker's `fetch` to a public host
//! name goes through Cloudflare, which does not connect to private addresses for it;
//! allowed domains are the site's own, verified by the control plane.
//!
//! Refusal messages never repeat the input: they are fixed strings.

use std::net::IpAddr;

use url::{Host, Url};

/// Longest URL accepted.
pub const URL_MAX: usize = 4096;
/// Most redirects followed.
pub const MAX_REDIRECTS: usize = 5;

/// What may be fetched, besides the allowed domains.
#[derive(Debug, Clone, Default)]
pub struct Policy<'a> {
    /// Host names the token allows (lower case).
    pub allowed_domains: &'a [String],
    /// Development: accept `http:` too.
    pub allow_http: bool,
    /// Development: accept loopback IP literals that are in `allowed_domains`.
    pub allow_loopback: bool,
    /// Development: non-default ports accepted.
    pub allowed_ports: &'a [u16],
}

/// Why a URL is refused. Each has a stable code and a fixed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    TooLong,
    Unparsable,
    Scheme,
    Credentials,
    IpLiteral,
    HostNotAllowed,
    Port,
}

impl Refusal {
    /// The machine-readable code.
    #[must_use]
    pub fn code(self) -> &'static str {
        match self {
            Self::TooLong => "url_too_long",
            Self::Unparsable => "invalid_url",
            Self::Scheme => "scheme_not_allowed",
            Self::Credentials => "credentials_not_allowed",
            Self::IpLiteral => "ip_literal_not_allowed",
            Self::HostNotAllowed => "host_not_allowed",
            Self::Port => "port_not_allowed",
        }
    }

    /// A fixed, human-readable reason (never the input).
    #[must_use]
    pub fn message(self) -> &'static str {
        match self {
            Self::TooLong => "the URL is too long",
            Self::Unparsable => "the URL is not an absolute URL",
            Self::Scheme => "only https URLs can be opened in the editor",
            Self::Credentials => "URLs with a user name or password are not allowed",
            Self::IpLiteral => "IP addresses are not allowed; use one of the site's domains",
            Self::HostNotAllowed => "the host is not one of the site's allowed domains",
            Self::Port => "only the default port is allowed",
        }
    }
}

impl core::fmt::Display for Refusal {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.message())
    }
}

fn domain_allowed(host: &str, allowed: &[String]) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    allowed.iter().any(|d| d.eq_ignore_ascii_case(host))
}

/// Checks an absolute URL string; returns the parsed URL without its fragment.
pub fn check(raw: &str, policy: &Policy<'_>) -> Result<Url, Refusal> {
    if raw.len() > URL_MAX {
        return Err(Refusal::TooLong);
    }
    let url = Url::parse(raw).map_err(|_| Refusal::Unparsable)?;
    check_url(url, policy)
}

/// [`check`] for an already parsed URL (a redirect's `Location` resolved against the
/// current URL).
pub fn check_url(mut url: Url, policy: &Policy<'_>) -> Result<Url, Refusal> {
    if url.as_str().len() > URL_MAX {
        return Err(Refusal::TooLong);
    }
    match url.scheme() {
        "https" => {}
        "http" if policy.allow_http => {}
        _ => return Err(Refusal::Scheme),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Refusal::Credentials);
    }
    match url.host() {
        None => return Err(Refusal::Unparsable),
        Some(Host::Domain(d)) => {
            if !domain_allowed(d, policy.allowed_domains) {
                return Err(Refusal::HostNotAllowed);
            }
        }
        Some(Host::Ipv4(ip)) => check_ip(IpAddr::V4(ip), &ip.to_string(), policy)?,
        Some(Host::Ipv6(ip)) => check_ip(IpAddr::V6(ip), &format!("[{ip}]"), policy)?,
    }
    // `port()` is `None` for the scheme's default port (the parser drops `:443`).
    if let Some(port) = url.port()
        && !policy.allowed_ports.contains(&port)
    {
        return Err(Refusal::Port);
    }
    url.set_fragment(None);
    Ok(url)
}

fn check_ip(ip: IpAddr, printed: &str, policy: &Policy<'_>) -> Result<(), Refusal> {
    let loopback = match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    };
    if policy.allow_loopback && loopback && domain_allowed(printed, policy.allowed_domains) {
        Ok(())
    } else {
        Err(Refusal::IpLiteral)
    }
}

/// Resolves a redirect's `Location` against the URL that answered, then checks it.
pub fn check_redirect(current: &Url, location: &str, policy: &Policy<'_>) -> Result<Url, Refusal> {
    if location.len() > URL_MAX {
        return Err(Refusal::TooLong);
    }
    let next = current.join(location).map_err(|_| Refusal::Unparsable)?;
    check_url(next, policy)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domains() -> Vec<String> {
        vec!["shop.example.com".into(), "www.example.com".into()]
    }

    #[test]
    fn the_sites_own_https_pages_are_allowed() {
        let d = domains();
        let p = Policy {
            allowed_domains: &d,
            ..Policy::default()
        };
        for ok in [
            "https://shop.example.com/",
            "https://shop.example.com/pricing?plan=pro#faq",
            "https://SHOP.example.com:443/a",
            "https://shop.example.com./trailing-dot",
            "https://www.example.com/%2e%2e/x",
        ] {
            let url = check(ok, &p).unwrap_or_else(|e| panic!("{ok}: {e}"));
            assert!(url.fragment().is_none(), "{ok}: fragment dropped");
        }
    }

    /// The SSRF table: every attempt, the refusal it must get, and why.
    #[test]
    fn ssrf_attempts_are_refused_with_a_reason() {
        let d = domains();
        let p = Policy {
            allowed_domains: &d,
            ..Policy::default()
        };
        let cases: &[(&str, Refusal, &str)] = &[
            (
                "https://evil.example.net/",
                Refusal::HostNotAllowed,
                "another host",
            ),
            (
                "https://example.com/",
                Refusal::HostNotAllowed,
                "the parent domain",
            ),
            (
                "https://shop.example.com.evil.net/",
                Refusal::HostNotAllowed,
                "suffix trick",
            ),
            (
                "https://evilshop.example.com/",
                Refusal::HostNotAllowed,
                "prefix trick",
            ),
            ("https://localhost/", Refusal::HostNotAllowed, "localhost"),
            ("https://127.0.0.1/", Refusal::IpLiteral, "IPv4 loopback"),
            (
                "https://169.254.169.254/latest/meta-data/",
                Refusal::IpLiteral,
                "cloud metadata",
            ),
            ("https://10.0.0.1/", Refusal::IpLiteral, "private IPv4"),
            ("https://2130706433/", Refusal::IpLiteral, "decimal IPv4"),
            ("https://0x7f000001/", Refusal::IpLiteral, "hex IPv4"),
            ("https://0x7f.1/", Refusal::IpLiteral, "mixed hex IPv4"),
            ("https://017700000001/", Refusal::IpLiteral, "octal IPv4"),
            (
                "https://0177.0.0.1/",
                Refusal::IpLiteral,
                "octal dotted IPv4",
            ),
            ("https://127.1/", Refusal::IpLiteral, "short IPv4"),
            ("https://[::1]/", Refusal::IpLiteral, "IPv6 loopback"),
            (
                "https://[::ffff:127.0.0.1]/",
                Refusal::IpLiteral,
                "IPv4-mapped IPv6",
            ),
            ("https://[fd00::1]/", Refusal::IpLiteral, "private IPv6"),
            ("file:///etc/passwd", Refusal::Scheme, "file:"),
            ("ftp://shop.example.com/", Refusal::Scheme, "ftp:"),
            ("gopher://shop.example.com/", Refusal::Scheme, "gopher:"),
            ("javascript:alert(1)", Refusal::Scheme, "javascript:"),
            (
                "data:text/html,<script>alert(1)</script>",
                Refusal::Scheme,
                "data:",
            ),
            (
                "http://shop.example.com/",
                Refusal::Scheme,
                "plain http in production",
            ),
            (
                "https://user:pass@shop.example.com/",
                Refusal::Credentials,
                "credentials",
            ),
            (
                "https://user@shop.example.com/",
                Refusal::Credentials,
                "a user name",
            ),
            (
                "https://shop.example.com@evil.net/",
                Refusal::Credentials,
                "userinfo trick",
            ),
            ("https://shop.example.com:8443/", Refusal::Port, "odd port"),
            ("https://shop.example.com:22/", Refusal::Port, "ssh port"),
            (
                "https://shop.example.com:80/",
                Refusal::Port,
                "http port over https",
            ),
            ("/relative/path", Refusal::Unparsable, "relative URL"),
            ("//evil.net/", Refusal::Unparsable, "protocol-relative"),
            ("", Refusal::Unparsable, "empty"),
            ("https://", Refusal::Unparsable, "no host"),
        ];
        for (url, want, why) in cases {
            assert_eq!(check(url, &p), Err(*want), "{why}: {url}");
        }
        let long = format!("https://shop.example.com/{}", "a".repeat(URL_MAX));
        assert_eq!(check(&long, &p), Err(Refusal::TooLong), "too long");
    }

    #[test]
    fn development_opens_http_loopback_and_listed_ports_only_when_told() {
        let d = vec!["127.0.0.1".to_owned(), "[::1]".to_owned()];
        let strict = Policy {
            allowed_domains: &d,
            ..Policy::default()
        };
        assert_eq!(
            check("http://127.0.0.1:8123/", &strict),
            Err(Refusal::Scheme)
        );
        assert_eq!(
            check("https://127.0.0.1/", &strict),
            Err(Refusal::IpLiteral)
        );
        let dev = Policy {
            allowed_domains: &d,
            allow_http: true,
            allow_loopback: true,
            allowed_ports: &[8123],
        };
        assert!(check("http://127.0.0.1:8123/page", &dev).is_ok());
        assert!(check("http://[::1]:8123/page", &dev).is_ok());
        assert_eq!(check("http://127.0.0.1:8124/", &dev), Err(Refusal::Port));
        // Loopback is allowed only when listed, and other addresses never.
        assert_eq!(
            check("http://127.0.0.2:8123/", &dev),
            Err(Refusal::IpLiteral)
        );
        assert_eq!(
            check("http://10.0.0.1:8123/", &dev),
            Err(Refusal::IpLiteral)
        );
        assert_eq!(
            check("http://2130706433:8123/", &dev).map(|u| u.host_str().map(str::to_owned)),
            Ok(Some("127.0.0.1".into()))
        );
    }

    #[test]
    fn every_redirect_hop_is_checked_again() {
        let d = domains();
        let p = Policy {
            allowed_domains: &d,
            ..Policy::default()
        };
        let here = Url::parse("https://shop.example.com/a/b").unwrap();
        assert_eq!(
            check_redirect(&here, "../c?x=1", &p).unwrap().as_str(),
            "https://shop.example.com/c?x=1"
        );
        assert_eq!(
            check_redirect(&here, "https://www.example.com/", &p)
                .unwrap()
                .as_str(),
            "https://www.example.com/"
        );
        for (location, want) in [
            ("https://evil.net/", Refusal::HostNotAllowed),
            ("//169.254.169.254/", Refusal::IpLiteral),
            ("http://shop.example.com/", Refusal::Scheme),
            ("file:///etc/passwd", Refusal::Scheme),
            ("https://shop.example.com:8080/", Refusal::Port),
        ] {
            assert_eq!(check_redirect(&here, location, &p), Err(want), "{location}");
        }
    }

    #[test]
    fn refusal_messages_never_carry_the_input() {
        for r in [
            Refusal::TooLong,
            Refusal::Unparsable,
            Refusal::Scheme,
            Refusal::Credentials,
            Refusal::IpLiteral,
            Refusal::HostNotAllowed,
            Refusal::Port,
        ] {
            assert!(!r.message().contains('<') && !r.code().is_empty());
        }
    }
}
