//! CORS for the public routes, per site.
//!
//! Only an origin listed in the site's snapshot (`allowed_origins`) is echoed back, with
//! `Access-Control-Allow-Credentials: true` so the visitor cookie travels; any other
//! origin gets no CORS headers at all (the browser then blocks the read). Never `*`:
//! credentials and a wildcard origin must not meet. `Vary: Origin` always, so a cache
//! in front never serves one site's headers to another.

use worker::Headers;

/// Compares origins as browsers send them: `scheme://host[:port]`, case-insensitive,
/// ignoring a trailing slash someone typed into the dashboard.
pub fn origin_allowed(origin: &str, allowed: &[String]) -> bool {
    let origin = origin.trim_end_matches('/');
    !origin.is_empty()
        && origin != "null"
        && allowed
            .iter()
            .any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(origin))
}

/// Adds the CORS headers for `origin` when it is allowed; `Vary: Origin` in every case.
pub fn apply(headers: &Headers, origin: Option<&str>, allowed: &[String]) -> worker::Result<()> {
    headers.append("Vary", "Origin")?;
    if let Some(origin) = origin
        && origin_allowed(origin, allowed)
    {
        headers.set("Access-Control-Allow-Origin", origin)?;
        headers.set("Access-Control-Allow-Credentials", "true")?;
    }
    Ok(())
}

/// The extra headers of a successful preflight.
pub fn apply_preflight(headers: &Headers) -> worker::Result<()> {
    headers.set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")?;
    headers.set("Access-Control-Allow-Headers", "Content-Type")?;
    headers.set("Access-Control-Max-Age", "600")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_origins_match() {
        let allowed = vec![
            "https://shop.example.com/".to_owned(),
            "http://localhost:3000".to_owned(),
        ];
        let cases = [
            (
                "https://shop.example.com",
                true,
                "exact, list has a trailing slash",
            ),
            ("HTTPS://SHOP.EXAMPLE.COM", true, "case-insensitive"),
            ("http://localhost:3000", true, "port kept"),
            ("http://localhost:3001", false, "other port"),
            ("https://evil.example.com", false, "other host"),
            ("https://shop.example.com.evil.io", false, "suffix attack"),
            ("null", false, "opaque origin"),
            ("", false, "empty"),
        ];
        for (origin, expected, why) in cases {
            assert_eq!(
                origin_allowed(origin, &allowed),
                expected,
                "{why}: {origin}"
            );
        }
        assert!(!origin_allowed("https://shop.example.com", &[]));
    }
}
