//! The exposure's `context` (`samplit_engine::context`), read leniently, field by field:
//! a newer edge may send a device class or a traffic source this control plane does not
//! know yet, and that must never lose the exposure. So the context is read from the raw
//! JSON, not through the contract's strict types:
//!
//! - an unknown `device` or `browser` → `other`; an unknown `source` → unknown (the
//!   contract has no `other` source);
//! - a `country` that is not two capital letters → unknown;
//! - `landing` made a page template again ([`template_path`]: no e-mail address, order
//!   number or token, whatever the sender did) and cut to [`MAX_LANDING_LEN`] bytes (at
//!   a character boundary), empty → none;
//! - counts clamped to [`MAX_PRIOR_COUNT`]; not a whole number ≥ 0 → unknown;
//! - no `context`, or not an object → every field unknown.
//!
//! Unknown is `None` in [`StoredContext`] (NULL in the database, `unknown` as a segment).

use samplit_engine::context::{
    Browser, Device, MAX_LANDING_LEN, MAX_PRIOR_COUNT, Source, template_path,
};
use serde_json::Value;

use crate::db::raw_events::StoredContext;

/// The context of an exposure item (`item["context"]`), see the module docs.
#[must_use]
pub fn lenient(item: &Value) -> StoredContext {
    item.get("context").map(of_context).unwrap_or_default()
}

/// The same from the `context` value itself (the ingestion's typed path, `super::read`,
/// reads it on its own).
#[must_use]
pub fn of_context(context: &Value) -> StoredContext {
    let Some(c) = context.as_object() else {
        return StoredContext::default();
    };
    let text = |key: &str| c.get(key).and_then(Value::as_str);
    let count = |key: &str| {
        c.get(key)
            .and_then(Value::as_u64)
            .map(|n| i32::try_from(n.min(u64::from(MAX_PRIOR_COUNT))).unwrap_or(i32::MAX))
    };
    StoredContext {
        country: text("country")
            .filter(|s| s.len() == 2 && s.bytes().all(|b| b.is_ascii_uppercase()))
            .map(str::to_owned),
        device: text("device").map(|s| {
            Device::parse(s)
                .unwrap_or(Device::Other)
                .as_str()
                .to_owned()
        }),
        browser: text("browser").map(|s| {
            Browser::parse(s)
                .unwrap_or(Browser::Other)
                .as_str()
                .to_owned()
        }),
        source: text("source")
            .and_then(Source::parse)
            .map(|s| s.as_str().to_owned()),
        landing: text("landing")
            .map(|s| cut(&template_path(s), MAX_LANDING_LEN).to_owned())
            // PostgreSQL text cannot hold NUL: such a landing page is unknown.
            .filter(|s| !s.is_empty() && !s.contains('\0')),
        prior_visits: count("prior_visits"),
        prior_conversions: count("prior_conversions"),
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends at a character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use samplit_engine::context::Dimension;
    use serde_json::json;

    #[test]
    fn a_well_formed_context_is_kept_as_sent() {
        let c = lenient(&json!({"context": {"country": "ES", "device": "mobile",
            "browser": "safari", "source": "search", "landing": "/pricing",
            "prior_visits": 3, "prior_conversions": 1}}));
        assert_eq!(
            c,
            StoredContext {
                country: Some("ES".into()),
                device: Some("mobile".into()),
                browser: Some("safari".into()),
                source: Some("search".into()),
                landing: Some("/pricing".into()),
                prior_visits: Some(3),
                prior_conversions: Some(1),
            }
        );
        assert_eq!(c.value(Dimension::VisitorType), "returning");
    }

    #[test]
    fn unknown_or_malformed_fields_degrade_to_other_or_unknown_one_by_one() {
        let long = "é".repeat(150); // 300 bytes
        let c = lenient(&json!({"context": {"country": "es", "device": "fridge",
            "browser": "netscape", "source": "carrier-pigeon", "landing": long,
            "prior_visits": 5000, "prior_conversions": -1}}));
        assert_eq!(c.country, None, "lower case is not a country code");
        assert_eq!(c.device.as_deref(), Some("other"));
        assert_eq!(c.browser.as_deref(), Some("other"));
        assert_eq!(c.source, None);
        let landing = c.landing.unwrap();
        assert_eq!(landing.len(), 200, "cut to 200 bytes at a char boundary");
        assert_eq!(c.prior_visits, Some(1000), "clamped");
        assert_eq!(c.prior_conversions, None, "negative is not a count");
        for country in ["ESP", "E", "1A", "É1"] {
            let c = lenient(&json!({"context": {"country": country}}));
            assert_eq!(c.country, None, "{country}");
        }
        // A cut inside a multi-byte character steps back.
        assert_eq!(cut("aé", 2), "a");
        // Personal data in a path is masked here too, whatever the edge sent.
        let c = lenient(&json!({"context": {"landing": "/orders/ana@example.com/100234"}}));
        assert_eq!(c.landing.as_deref(), Some("/orders/:email/:id"));
    }

    #[test]
    fn no_context_is_unknown_in_every_dimension() {
        for item in [
            json!({}),
            json!({"context": "mobile"}),
            json!({"context": null}),
        ] {
            let c = lenient(&item);
            assert_eq!(c, StoredContext::default());
            for d in Dimension::ALL {
                assert_eq!(c.value(*d), "unknown", "{item} {d:?}");
            }
        }
        let new = lenient(
            &json!({"context": {"device": "desktop", "browser": "chrome",
            "source": "direct", "prior_visits": 0, "prior_conversions": 0}}),
        );
        assert_eq!(new.value(Dimension::VisitorType), "new");
        assert_eq!(new.value(Dimension::Country), "unknown");
    }
}
