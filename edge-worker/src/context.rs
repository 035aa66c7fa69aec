//! The exposure context at the edge: what a request says about its visitor before any
//! arm is chosen, built in one place for `/v1/assign` ([`crate::assignment`]) and for
//! pages rendered at the edge ([`crate::site`]), and the `samplit_hist` cookie that
//! remembers the visitor's prior visits and conversions (also bumped by conversions on
//! `/v1/events`, [`crate::events`]). The classification rules are the engine's
//! ([`samplit_engine::context`]); `docs/visitor-context.md` describes them.
//!
//! Cost: the history cookie is read and re-set on every assignment (a few string
//! operations); the context itself (user-agent and referrer classification) is built
//! only when an exposure is about to be queued.

use samplit_engine::context::{self as rules, ExposureContext, HistoryCookie, MAX_PRIOR_COUNT};

use crate::clock::now_ms;
use crate::cookies::{self, HISTORY_COOKIE};
use crate::error::ApiError;

/// Longest `referrer` accepted on `/v1/assign`, in bytes (a longer one is a 400).
pub const REFERRER_MAX: usize = 2048;

/// The current time in Unix minutes, the history cookie's clock.
pub fn now_min() -> u32 {
    u32::try_from(now_ms().max(0) / 60_000).unwrap_or(u32::MAX)
}

/// The visitor's prior visits and conversions for this request, and the history cookie
/// to set (none for a signed server call: its answer goes to the plugin's server, not
/// the visitor's browser).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History {
    pub prior_visits: u32,
    pub prior_conversions: u32,
    pub set_cookie: Option<String>,
}

impl History {
    /// From the browser's `samplit_hist` cookie (missing or malformed: a first visit).
    /// The cookie is re-set only when its value changes (a new minute or a new visit).
    pub fn from_cookie(value: Option<&str>, now_min: u32, secure: bool) -> Self {
        let (next, prior_visits, prior_conversions) =
            HistoryCookie::on_request(value.and_then(HistoryCookie::parse), now_min);
        let encoded = next.encode();
        let set_cookie = (value != Some(encoded.as_str()))
            .then(|| cookies::set_cookie(HISTORY_COOKIE, &encoded, secure));
        Self {
            prior_visits,
            prior_conversions,
            set_cookie,
        }
    }

    /// What a signed server call says it knows (the plugin's own records), else 0.
    pub fn from_signed_call(prior_visits: Option<u32>, prior_conversions: Option<u32>) -> Self {
        Self {
            prior_visits: prior_visits.unwrap_or(0).min(MAX_PRIOR_COUNT),
            prior_conversions: prior_conversions.unwrap_or(0).min(MAX_PRIOR_COUNT),
            set_cookie: None,
        }
    }
}

/// The `Set-Cookie` that records `count` conversions from this browser, given its
/// current `samplit_hist` cookie (`/v1/events`).
pub fn conversion_cookie(value: Option<&str>, count: u32, now_min: u32, secure: bool) -> String {
    let next = HistoryCookie::on_conversions(value.and_then(HistoryCookie::parse), now_min, count);
    cookies::set_cookie(HISTORY_COOKIE, &next.encode(), secure)
}

/// What the context is built from.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// Cloudflare's `request.cf.country`, or a signed call's `country`.
    pub country: Option<&'a str>,
    /// The effective user agent (the header, or a signed call's `user_agent`).
    pub user_agent: Option<&'a str>,
    /// The page the visitor is on.
    pub page_url: &'a str,
    /// The page's referrer (the `Referer` header when rendering; the snippet's
    /// `document.referrer` on `/v1/assign`).
    pub referrer: Option<&'a str>,
    pub prior_visits: u32,
    pub prior_conversions: u32,
}

impl Facts<'_> {
    /// The exposure context: the engine's classification of these facts. Only the
    /// classes are kept, never the user agent, the referrer or an address.
    pub fn context(&self) -> ExposureContext {
        let (device, browser) = rules::classify_user_agent(self.user_agent.unwrap_or(""));
        ExposureContext {
            country: self.country.and_then(rules::country_code),
            device,
            browser,
            source: rules::classify_source(self.page_url, self.referrer.filter(|r| !r.is_empty())),
            landing: rules::landing_path(self.page_url),
            prior_visits: self.prior_visits.min(MAX_PRIOR_COUNT),
            prior_conversions: self.prior_conversions.min(MAX_PRIOR_COUNT),
        }
    }
}

/// A `country` a signed call passes: two capital letters (ISO 3166-1 alpha-2), else 400.
/// `XX` (unknown) is accepted and stored as unknown.
pub fn check_country(country: &str) -> Result<(), ApiError> {
    if country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "invalid_country",
            "country must be an ISO 3166-1 alpha-2 code (two capital letters)",
        ))
    }
}

/// A `referrer` of at most [`REFERRER_MAX`] bytes, else 400.
pub fn check_referrer(referrer: &str) -> Result<(), ApiError> {
    if referrer.len() <= REFERRER_MAX {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "invalid_referrer",
            format!("referrer must be at most {REFERRER_MAX} bytes"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use samplit_engine::context::{Browser, Device, Source};

    const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 13_5_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.1.1 Mobile/15E148 Safari/604.1";

    #[test]
    fn the_context_keeps_classes_only() {
        let facts = Facts {
            country: Some("ES"),
            user_agent: Some(IPHONE),
            page_url: "https://shop.test/pricing?utm_medium=email",
            referrer: Some("https://www.google.com/"),
            prior_visits: 2,
            prior_conversions: 5000,
        };
        let c = facts.context();
        assert_eq!(c.country.as_deref(), Some("ES"));
        assert_eq!((c.device, c.browser), (Device::Mobile, Browser::Safari));
        assert_eq!(c.source, Source::Email);
        assert_eq!(c.landing.as_deref(), Some("/pricing"));
        assert_eq!((c.prior_visits, c.prior_conversions), (2, MAX_PRIOR_COUNT));
        // Cloudflare's unknown and Tor countries, an empty referrer, no agent.
        let c = Facts {
            country: Some("T1"),
            user_agent: None,
            referrer: Some(""),
            page_url: "https://shop.test/",
            ..facts
        }
        .context();
        assert_eq!(c.country, None);
        assert_eq!(
            (c.device, c.browser, c.source),
            (Device::Other, Browser::Other, Source::Direct)
        );
    }

    #[test]
    fn the_history_cookie_is_set_on_a_first_visit_and_only_when_it_changes() {
        let first = History::from_cookie(None, 100, true);
        assert_eq!((first.prior_visits, first.prior_conversions), (0, 0));
        let line = first.set_cookie.unwrap();
        assert!(
            line.starts_with(
                "samplit_hist=1.1.0.100; Path=/; Max-Age=31536000; SameSite=Lax; HttpOnly"
            ),
            "{line}"
        );
        assert!(line.ends_with("; Secure"));
        // The same minute: nothing to set.
        assert_eq!(
            History::from_cookie(Some("1.1.0.100"), 100, true).set_cookie,
            None
        );
        // 31 minutes later: a new visit.
        let later = History::from_cookie(Some("1.1.2.100"), 131, false);
        assert_eq!((later.prior_visits, later.prior_conversions), (1, 2));
        assert!(
            later
                .set_cookie
                .unwrap()
                .starts_with("samplit_hist=1.2.2.131;")
        );
        // Garbage is a new visitor.
        assert_eq!(History::from_cookie(Some("1.x"), 5, false).prior_visits, 0);
    }

    #[test]
    fn conversions_bump_the_cookie_and_signed_counts_are_capped() {
        assert!(
            conversion_cookie(Some("1.3.1.100"), 2, 110, false)
                .starts_with("samplit_hist=1.3.3.110;")
        );
        assert!(conversion_cookie(None, 1, 7, false).starts_with("samplit_hist=1.1.1.7;"));
        let signed = History::from_signed_call(Some(7), Some(u32::MAX));
        assert_eq!(
            (
                signed.prior_visits,
                signed.prior_conversions,
                signed.set_cookie
            ),
            (7, MAX_PRIOR_COUNT, None)
        );
        assert_eq!(History::from_signed_call(None, None).prior_visits, 0);
    }

    #[test]
    fn signed_countries_and_referrers_are_checked() {
        assert!(check_country("DE").is_ok());
        for bad in ["de", "DEU", "", "D1"] {
            assert_eq!(
                check_country(bad).unwrap_err().code,
                "invalid_country",
                "{bad:?}"
            );
        }
        assert!(check_referrer(&"r".repeat(REFERRER_MAX)).is_ok());
        assert_eq!(
            check_referrer(&"r".repeat(REFERRER_MAX + 1))
                .unwrap_err()
                .status,
            400
        );
    }
}
