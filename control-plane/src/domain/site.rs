//! Sites: a display name and the host names the site's pages are served from.
//!
//! [`SiteDomain`] accepts a plain DNS host name only — lower-cased, without scheme, path,
//! port, credentials or trailing dot, not an IP address, at least two labels, each label
//! 1–63 characters of `a-z`, `0-9` and `-` (not at either end), at most 253 characters.
//! Internationalised names are entered in their punycode form (`xn--…`).
//!
//! Wildcards (`*.shop.com`) are **refused**: the edge answers CORS by exact origin match
//! (`edge-worker/src/cors.rs`), so a wildcard would be stored but never honoured. List
//! each subdomain instead (`www.shop.com`, `shop.com`).

use serde::Serialize;

use super::DomainError;

/// A site's display name: 1–200 characters after trimming.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SiteName(String);

impl SiteName {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let name = raw.trim();
        let len = name.chars().count();
        if len == 0 {
            return Err(DomainError::new("name", "must not be empty"));
        }
        if len > 200 {
            return Err(DomainError::new("name", "must be at most 200 characters"));
        }
        if name.chars().any(char::is_control) {
            return Err(DomainError::new(
                "name",
                "must not contain control characters",
            ));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A validated, lower-cased host name (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct SiteDomain(String);

/// Most domains one site may list.
pub const MAX_DOMAINS: usize = 50;

impl SiteDomain {
    /// Parses one host name; `field` names it in the error (e.g. `domains[2]`).
    pub fn parse(raw: &str, field: &str) -> Result<Self, DomainError> {
        let err = |m: &str| DomainError::new(field, format!("{raw:?} {m}"));
        let host = raw.trim().to_ascii_lowercase();
        if host.is_empty() {
            return Err(err("is empty"));
        }
        if host.contains("://") {
            return Err(err("must be a host name without a scheme (no https://)"));
        }
        if host.contains('/') || host.contains('?') || host.contains('#') {
            return Err(err("must be a host name without a path"));
        }
        if host.contains('@') {
            return Err(err("must not contain credentials"));
        }
        if host.contains(':') || host.contains('[') {
            return Err(err("must not contain a port or an IPv6 address"));
        }
        if host.contains('*') {
            return Err(err(
                "is a wildcard; list each subdomain (the edge matches origins exactly)",
            ));
        }
        if !host.is_ascii() {
            return Err(err(
                "must be ASCII; enter internationalised names in punycode (xn--)",
            ));
        }
        let host = host.strip_suffix('.').unwrap_or(&host).to_owned();
        if host.len() > 253 {
            return Err(err("is longer than 253 characters"));
        }
        let labels: Vec<&str> = host.split('.').collect();
        if labels.len() < 2 {
            return Err(err("needs at least two labels (e.g. shop.com)"));
        }
        for label in &labels {
            let ok = (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-');
            if !ok {
                return Err(err(
                    "is not a valid host name (labels of a-z, 0-9 and inner hyphens, 1-63 characters)",
                ));
            }
        }
        if host.parse::<std::net::Ipv4Addr>().is_ok()
            || labels
                .last()
                .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(err("is an IP address; use a host name"));
        }
        Ok(Self(host))
    }

    /// Parses a list, rejecting duplicates and more than [`MAX_DOMAINS`]; the result is
    /// sorted, so equal sets compare equal.
    pub fn parse_list(raw: &[String]) -> Result<Vec<Self>, Vec<DomainError>> {
        let mut errors = Vec::new();
        if raw.len() > MAX_DOMAINS {
            errors.push(DomainError::new(
                "domains",
                format!("at most {MAX_DOMAINS} domains"),
            ));
        }
        let mut out: Vec<Self> = Vec::with_capacity(raw.len());
        for (i, d) in raw.iter().enumerate() {
            match Self::parse(d, &format!("domains[{i}]")) {
                Ok(d) if out.contains(&d) => errors.push(DomainError::new(
                    format!("domains[{i}]"),
                    format!("{:?} is listed twice", d.0),
                )),
                Ok(d) => out.push(d),
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            out.sort();
            Ok(out)
        } else {
            Err(errors)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The browser origin of pages on this host (sites are served over HTTPS).
    pub fn https_origin(&self) -> String {
        format!("https://{}", self.0)
    }
}

/// The largest event value an unsigned (browser) call may report for a site: a number
/// in (0, [`samplit_engine::snapshot::MAX_EVENT_VALUE`]] (the edge refuses any value
/// above that ceiling, signed or not).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RevenueCap(f64);

impl RevenueCap {
    pub fn parse(raw: f64) -> Result<Self, DomainError> {
        use samplit_engine::snapshot::MAX_EVENT_VALUE;
        if raw.is_finite() && raw > 0.0 && raw <= MAX_EVENT_VALUE {
            Ok(Self(raw))
        } else {
            Err(DomainError::new(
                "revenue_cap",
                format!("must be a number above 0 and at most {MAX_EVENT_VALUE:e}"),
            ))
        }
    }

    pub fn get(self) -> f64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_are_accepted_and_lower_cased() {
        for (raw, want) in [
            ("Shop.Example.COM", "shop.example.com"),
            ("  www.shop.com ", "www.shop.com"),
            ("shop.com.", "shop.com"),
            ("xn--bcher-kva.example", "xn--bcher-kva.example"),
            ("a-b.co", "a-b.co"),
        ] {
            assert_eq!(SiteDomain::parse(raw, "d").unwrap().as_str(), want, "{raw}");
        }
    }

    #[test]
    fn anything_but_a_host_name_is_refused() {
        let cases = [
            ("", "empty"),
            ("https://shop.com", "scheme"),
            ("shop.com/path", "path"),
            ("shop.com:8080", "port"),
            ("user@shop.com", "credentials"),
            ("10.0.0.1", "IPv4"),
            ("[::1]", "IPv6"),
            ("localhost", "single label"),
            ("*.shop.com", "wildcard"),
            ("-shop.com", "leading hyphen"),
            ("shop_1.com", "underscore"),
            ("bücher.de", "non-ASCII"),
            ("shop..com", "empty label"),
            ("shop.123", "numeric TLD"),
        ];
        for (raw, why) in cases {
            assert!(
                SiteDomain::parse(raw, "d").is_err(),
                "{why}: {raw:?} accepted"
            );
        }
    }

    #[test]
    fn duplicate_domains_are_refused_after_normalising() {
        let errs =
            SiteDomain::parse_list(&["shop.com".to_owned(), "SHOP.com".to_owned()]).unwrap_err();
        assert_eq!(errs[0].field, "domains[1]");
    }

    #[test]
    fn a_revenue_cap_is_positive_and_at_most_a_billion() {
        for ok in [0.01, 1.0, 10_000.0, 1e9] {
            assert_eq!(RevenueCap::parse(ok).unwrap().get(), ok, "{ok}");
        }
        for bad in [0.0, -1.0, 1e9 + 1.0, f64::NAN, f64::INFINITY] {
            assert!(RevenueCap::parse(bad).is_err(), "{bad}");
        }
    }
}
