//! URL rules and exclusion rules (targeting): construction from outside strings, JSON
//! deserialisation as snapshots and the API carry them, and matching. Accepted rules
//! round-trip through JSON; `url_allowed` agrees with `matches`; an IP range contains
//! its own bounds; a rule matches the visitor it describes.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use samplit_engine::assign::VisitorContext;
use samplit_engine::targeting::{
    ExclusionRule, IpRange, UrlMatch, UrlRule, first_exclusion, url_allowed,
};

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    kind: u8,
    pattern: &'a str,
    urls: Vec<&'a str>,
    ip_text: &'a str,
    rule_name: &'a str,
    rule_value: Option<&'a str>,
    headers: Vec<(&'a str, &'a str)>,
    cookies: Vec<(&'a str, &'a str)>,
    attributes: Vec<(&'a str, &'a str)>,
    ip: Option<[u8; 16]>,
    user_agent: Option<&'a str>,
    rules_json: &'a str,
}

fn roundtrip<T>(v: &T)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let json = serde_json::to_string(v).expect("serialises");
    let back: T = serde_json::from_str(&json).expect("what serialises deserialises");
    assert_eq!(&back, v);
}

fuzz_target!(|input: Input<'_>| {
    let kind = match input.kind % 3 {
        0 => UrlMatch::Exact,
        1 => UrlMatch::Prefix,
        _ => UrlMatch::Wildcard,
    };
    if let (Ok(inc), Ok(exc)) = (
        UrlRule::new(kind, input.pattern, true),
        UrlRule::new(kind, input.pattern, false),
    ) {
        roundtrip(&inc);
        for url in &input.urls {
            let m = inc.matches(url);
            assert_eq!(exc.matches(url), m);
            assert_eq!(url_allowed(std::slice::from_ref(&inc), url), m);
            assert_eq!(url_allowed(std::slice::from_ref(&exc), url), !m);
            assert!(!url_allowed(&[inc.clone(), exc.clone()], url));
            assert!(url_allowed(&[], url));
        }
    }

    if let Ok(range) = IpRange::parse(input.ip_text) {
        let (lo, hi) = range.bounds();
        assert!(range.contains(lo) && range.contains(hi));
        let text = String::from(range.clone());
        assert_eq!(IpRange::parse(&text).as_ref(), Ok(&range));
    }

    let mut rules: Vec<ExclusionRule> = [
        ExclusionRule::ip(input.ip_text),
        ExclusionRule::header(input.rule_name, input.rule_value.unwrap_or_default()),
        ExclusionRule::cookie(input.rule_name, input.rule_value),
        ExclusionRule::query_param(input.rule_name, input.rule_value),
        ExclusionRule::attribute(input.rule_name, input.rule_value),
    ]
    .into_iter()
    .flatten()
    .collect();
    if let Ok(from_json) = serde_json::from_str::<Vec<ExclusionRule>>(input.rules_json) {
        rules.extend(from_json);
    }
    if let Ok(url_rules) = serde_json::from_str::<Vec<UrlRule>>(input.rules_json) {
        for r in &url_rules {
            roundtrip(r);
        }
        for url in &input.urls {
            let _ = url_allowed(&url_rules, url);
        }
    }
    for r in &rules {
        roundtrip(r);
    }
    let ip = input.ip.map(|b| {
        if b[0] & 1 == 0 {
            std::net::IpAddr::from([b[1], b[2], b[3], b[4]])
        } else {
            std::net::IpAddr::from(b)
        }
    });
    for url in input.urls.iter().take(4) {
        let ctx = VisitorContext {
            visitor_id: "v",
            url,
            ip,
            user_agent: input.user_agent,
            verified_bot: false,
            headers: &input.headers,
            cookies: &input.cookies,
            attributes: &input.attributes,
            sticky: &[],
        };
        let first = first_exclusion(&rules, &ctx);
        assert_eq!(first.is_some(), rules.iter().any(|r| r.matches(&ctx)));
        if let (Some(ip), Ok(range)) = (ip, IpRange::parse(input.ip_text)) {
            let r = ExclusionRule::ip(input.ip_text).expect("the range parsed");
            assert_eq!(r.matches(&ctx), range.contains(ip));
        }
    }

    // A rule matches the visitor it describes.
    let value = input.rule_value.unwrap_or_default();
    let pair = [(input.rule_name, value)];
    let upper = input.rule_name.to_ascii_uppercase();
    let header = [(upper.as_str(), value)];
    let ctx = VisitorContext {
        visitor_id: "v",
        url: "https://shop.example.com/",
        ip: None,
        user_agent: Some("Mozilla/5.0"),
        verified_bot: false,
        headers: &header,
        cookies: &pair,
        attributes: &pair,
        sticky: &[],
    };
    if let Ok(r) = ExclusionRule::header(input.rule_name, value) {
        assert!(r.matches(&ctx), "header rule {r:?} misses its own header");
    }
    for r in [
        ExclusionRule::cookie(input.rule_name, input.rule_value),
        ExclusionRule::attribute(input.rule_name, input.rule_value),
    ]
    .into_iter()
    .flatten()
    {
        assert!(r.matches(&ctx), "rule {r:?} misses its own visitor");
    }
});
