//! Targeting rules: URL patterns, IP ranges, bots, header/cookie/query.

use std::net::IpAddr;

use samplit_engine::assign::VisitorContext;
use samplit_engine::targeting::{
    BOT_USER_AGENTS, ExclusionReason, ExclusionRule, IpRange, TargetingError, UrlMatch, UrlRule,
    first_exclusion, is_bot_user_agent, url_allowed,
};

#[test]
fn url_rules_match_paths_and_full_urls() {
    let cases: &[(UrlMatch, &str, &str, bool)] = &[
        (
            UrlMatch::Exact,
            "/pricing",
            "https://a.example/pricing",
            true,
        ),
        (
            UrlMatch::Exact,
            "/pricing",
            "https://a.example/pricing/",
            true,
        ),
        (
            UrlMatch::Exact,
            "/pricing",
            "https://a.example/pricing?x=1#top",
            true,
        ),
        (
            UrlMatch::Exact,
            "/pricing",
            "https://a.example/pricing/team",
            false,
        ),
        (UrlMatch::Exact, "/", "https://a.example", true),
        (
            UrlMatch::Prefix,
            "/blog",
            "https://a.example/blog/post",
            true,
        ),
        (
            UrlMatch::Prefix,
            "/blog",
            "https://a.example/about/blog",
            false,
        ),
        (
            UrlMatch::Prefix,
            "https://a.example/shop",
            "https://a.example/shop/x",
            true,
        ),
        (
            UrlMatch::Prefix,
            "https://a.example/shop",
            "https://b.example/shop/x",
            false,
        ),
        (
            UrlMatch::Wildcard,
            "/p/*/buy",
            "https://a.example/p/42/buy",
            true,
        ),
        (
            UrlMatch::Wildcard,
            "/p/*/buy",
            "https://a.example/p/42/view",
            false,
        ),
        (
            UrlMatch::Wildcard,
            "https://*.example/*",
            "https://shop.example/x",
            true,
        ),
        (
            UrlMatch::Wildcard,
            "https://*.example/*",
            "https://shop.other/x",
            false,
        ),
        (UrlMatch::Exact, "/p", "/p", true),
    ];
    for &(kind, pattern, url, want) in cases {
        let r = UrlRule::new(kind, pattern, true).unwrap();
        assert_eq!(r.matches(url), want, "{kind:?} {pattern} vs {url}");
    }
}

#[test]
fn includes_and_excludes_combine() {
    let rules = [
        UrlRule::new(UrlMatch::Prefix, "/shop", true).unwrap(),
        UrlRule::new(UrlMatch::Prefix, "/blog", true).unwrap(),
        UrlRule::new(UrlMatch::Wildcard, "*/checkout*", false).unwrap(),
    ];
    assert!(url_allowed(&rules, "https://a.example/shop/shoes"));
    assert!(url_allowed(&rules, "https://a.example/blog"));
    assert!(!url_allowed(&rules, "https://a.example/shop/checkout/pay"));
    assert!(!url_allowed(&rules, "https://a.example/about"));
    assert!(url_allowed(&[], "https://a.example/anything"));
    let only_exclude = [UrlRule::new(UrlMatch::Exact, "/admin", false).unwrap()];
    assert!(url_allowed(&only_exclude, "https://a.example/"));
    assert!(!url_allowed(&only_exclude, "https://a.example/admin"));
}

#[test]
fn bad_url_patterns_are_rejected() {
    assert_eq!(
        UrlRule::new(UrlMatch::Exact, "", true),
        Err(TargetingError::Empty)
    );
    assert_eq!(
        UrlRule::new(UrlMatch::Exact, "/a b", true),
        Err(TargetingError::InvalidCharacter(' '))
    );
    assert_eq!(
        UrlRule::new(UrlMatch::Exact, "/pricing?plan=pro", true),
        Err(TargetingError::InvalidCharacter('?'))
    );
    assert_eq!(
        UrlRule::new(UrlMatch::Prefix, "/docs#intro", true),
        Err(TargetingError::InvalidCharacter('#'))
    );
    assert!(matches!(
        UrlRule::new(UrlMatch::Prefix, "/".repeat(3000), true),
        Err(TargetingError::TooLong(3000))
    ));
}

#[test]
fn ip_ranges_parse_addresses_cidrs_and_ranges() {
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let cases: &[(&str, &str, bool)] = &[
        ("203.0.113.7", "203.0.113.7", true),
        ("203.0.113.7", "203.0.113.8", false),
        ("10.0.0.0/8", "10.255.255.255", true),
        ("10.0.0.0/8", "11.0.0.0", false),
        ("10.1.2.3/8", "10.200.0.1", true), // host bits are masked
        ("0.0.0.0/0", "8.8.8.8", true),
        ("0.0.0.0/0", "::1", false), // families do not mix
        ("192.0.2.10-192.0.2.20", "192.0.2.15", true),
        ("192.0.2.10-192.0.2.20", "192.0.2.21", false),
        ("2001:db8::/32", "2001:db8:ffff::1", true),
        ("2001:db8::/32", "2001:db9::1", false),
        ("2001:db8::1-2001:db8::ff", "2001:db8::80", true),
        ("::1", "::1", true),
        ("10.0.0.0/8", "::ffff:10.1.2.3", true), // IPv4-mapped IPv6 matches as IPv4
        ("::/0", "2606:4700::1", true),
    ];
    for &(range, addr, want) in cases {
        let r = IpRange::parse(range).unwrap();
        assert_eq!(r.contains(ip(addr)), want, "{range} contains {addr}");
    }
    let (first, last) = IpRange::parse("10.0.0.0/30").unwrap().bounds();
    assert_eq!((first, last), (ip("10.0.0.0"), ip("10.0.0.3")));
}

/// Found by the `url_rules` fuzz target in CI: a range written in IPv4-mapped IPv6 form
/// did not contain its own bounds (addresses are compared in canonical form, so a mapped
/// address is its IPv4 one) and matched nobody.
#[test]
fn ipv4_mapped_ranges_match_the_ipv4_addresses_they_map_and_contain_their_bounds() {
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let cases: &[(&str, &str, bool)] = &[
        ("::ffff:203.0.113.0/120", "203.0.113.7", true),
        ("::ffff:203.0.113.0/120", "::ffff:203.0.113.255", true),
        ("::ffff:203.0.113.0/120", "203.0.114.0", false),
        ("::ffff:198.51.100.1", "198.51.100.1", true),
        ("::ffff:10.0.0.1-::ffff:10.0.0.9", "10.0.0.5", true),
        ("::ffff:0:0/96", "8.8.8.8", true),
        // Reaching outside the mapped block: an IPv6 range, matching an IPv4 address
        // when it covers its mapped form (the second crash the fuzzer found: `::/80`).
        ("::/0", "8.8.8.8", true),
        ("::/80", "255.255.255.255", true),
        ("::/80", "2001:db8::1", false),
        ("2001:db8::/32", "8.8.8.8", false),
    ];
    for &(range, addr, want) in cases {
        let r = IpRange::parse(range).unwrap();
        assert_eq!(r.contains(ip(addr)), want, "{range} contains {addr}");
        let (lo, hi) = r.bounds();
        assert!(
            r.contains(lo) && r.contains(hi),
            "{range} contains its bounds"
        );
    }
}

#[test]
fn bad_ip_rules_fail_at_creation() {
    let cases: &[(&str, TargetingError)] = &[
        ("10.0.0.0/33", TargetingError::InvalidPrefix(33)),
        ("::/129", TargetingError::InvalidPrefix(129)),
        ("10.0.0/8", TargetingError::InvalidIp("10.0.0/8".into())),
        ("10.0.0.0/x", TargetingError::InvalidIp("10.0.0.0/x".into())),
        ("300.1.1.1", TargetingError::InvalidIp("300.1.1.1".into())),
        ("", TargetingError::InvalidIp(String::new())),
        (
            "10.0.0.9-10.0.0.1",
            TargetingError::InvalidRange("10.0.0.9-10.0.0.1".into()),
        ),
        (
            "10.0.0.1-::1",
            TargetingError::InvalidRange("10.0.0.1-::1".into()),
        ),
    ];
    for (text, want) in cases {
        assert_eq!(IpRange::parse(text).as_ref().err(), Some(want), "{text}");
        assert!(ExclusionRule::ip(text).is_err(), "{text}");
    }
    // Deserialisation validates too.
    assert!(
        serde_json::from_str::<ExclusionRule>(r#"{"type":"ip","range":"10.0.0.0/33"}"#).is_err()
    );
    let ok: ExclusionRule = serde_json::from_str(r#"{"type":"ip","range":"10.0.0.0/8"}"#).unwrap();
    assert_eq!(
        serde_json::to_string(&ok).unwrap(),
        r#"{"type":"ip","range":"10.0.0.0/8"}"#
    );
}

/// Real browser user agents (desktop and mobile, in-app browsers): none may be a bot.
const BROWSERS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/126.0.6478.54 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/440.0.0.34.109;FBBV/585678043]",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Instagram 309.0.0.40.113",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 OPR/115.0.0.0",
    "Mozilla/5.0 (Linux; Android 9; CUBOT X19 Build/PPR1.180610.011) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) YaBrowser/24.10.0.0 Safari/537.36",
];

/// Known automated clients: every one must be caught.
const BOTS: &[&str] = &[
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm) Chrome/116.0.1938.76 Safari/537.36",
    "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
    "Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "Twitterbot/1.0",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; ClaudeBot/1.0; +claudebot@anthropic.com)",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36",
    "curl/8.5.0",
    "Wget/1.21.4",
    "python-requests/2.32.3",
    "Go-http-client/2.0",
    "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "Mozilla/5.0 (Linux; Android 11; moto g power (2022)) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/109.0.0.0 Mobile Safari/537.36 Chrome-Lighthouse",
    "Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)",
    "WhatsApp/2.23.20.0",
    "Scrapy/2.11 (+https://scrapy.org)",
    "Mozilla/5.0 (compatible; DuckDuckBot-Https/1.1; https://duckduckgo.com/duckduckbot)",
    "ZoominfoBot (zoominfobot at zoominfo dot com)",
    "Mozilla/5.0 (compatible; CensysInspect/1.1; +https://about.censys.io/)",
    "Mozilla/5.0 zgrab/0.x",
    "Feedly/1.0 (+http://www.feedly.com/fetcher.html; 16 subscribers; like FeedFetcher-Google)",
    "meta-externalfetcher/1.1 (+https://developers.facebook.com/docs/sharing/webmasters/crawler)",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 PTST/231204.152301",
    "Mozilla/4.0 (compatible; MSIE 5.0; Windows 95) VoilaBot BETA 1.2 (support.voilabot@orange-ftgroup.com)",
];

#[test]
fn the_bot_list_catches_crawlers_and_spares_browsers() {
    assert!(
        BOT_USER_AGENTS.len() >= 100,
        "a maintained list, not five words"
    );
    assert!(
        BOT_USER_AGENTS
            .iter()
            .all(|p| *p == p.to_ascii_lowercase() && !p.is_empty())
    );
    for ua in BOTS {
        assert!(is_bot_user_agent(ua), "bot not caught: {ua}");
    }
    for ua in BROWSERS {
        let hit = BOT_USER_AGENTS
            .iter()
            .find(|p| ua.to_ascii_lowercase().contains(*p));
        assert_eq!(hit, None, "browser flagged as bot: {ua}");
    }
    assert!(
        is_bot_user_agent("MOZILLA/5.0 (COMPATIBLE; GOOGLEBOT/2.1)"),
        "case-insensitive"
    );
}

/// The definition `is_bot_user_agent` must agree with: one substring search per pattern
/// in the lower-cased user agent.
fn naive_is_bot(ua: &str) -> bool {
    let lower = ua.to_ascii_lowercase();
    BOT_USER_AGENTS.iter().any(|p| lower.contains(p))
}

#[test]
fn the_indexed_bot_check_agrees_with_a_scan_of_the_whole_list() {
    let mut uas: Vec<String> = BROWSERS
        .iter()
        .chain(BOTS)
        .map(|s| (*s).to_owned())
        .collect();
    uas.extend(
        [
            "",
            "a",
            "rs",
            "rss",
            "RsS",
            "Mozilla/5.0",
            "é",
            "ébot/",
            "\u{1F600}curl/",
        ]
        .map(String::from),
    );
    for (n, p) in BOT_USER_AGENTS.iter().enumerate() {
        // Mixed case, at the start, the end, in the middle, next to non-ASCII text.
        let mixed: String = p
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if (i + n) % 2 == 0 {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect();
        uas.push(mixed.clone());
        uas.push(format!("Mozilla/5.0 ({mixed}"));
        uas.push(format!("{mixed} Safari/537.36"));
        uas.push(format!("é{mixed}ü"));
        // Near misses: the pattern less its last byte, or with its first byte changed.
        let cut = &p[..p.len() - 1];
        uas.push(format!("Mozilla/5.0 {cut}"));
        uas.push(format!("Mozilla/5.0 ~{}", &p[1..]));
    }
    let mut bots = 0;
    for ua in &uas {
        let want = naive_is_bot(ua);
        assert_eq!(is_bot_user_agent(ua), want, "{ua:?}");
        bots += usize::from(want);
    }
    assert!(bots > BOT_USER_AGENTS.len() * 4, "{bots} of {}", uas.len());
}

proptest::proptest! {
    #[test]
    fn the_indexed_bot_check_agrees_on_any_text(
        ua in "[ -~]{0,60}|\\PC{0,30}",
        pattern in proptest::sample::select(BOT_USER_AGENTS),
        at in 0usize..60,
        upper in proptest::bool::ANY,
    ) {
        proptest::prop_assert_eq!(is_bot_user_agent(&ua), naive_is_bot(&ua));
        // With a pattern spliced in (at a char boundary).
        let mut with = ua.clone();
        let at = with.char_indices().map(|(i, _)| i).nth(at).unwrap_or(with.len());
        let pattern = if upper { pattern.to_ascii_uppercase() } else { pattern.to_owned() };
        with.insert_str(at, &pattern);
        proptest::prop_assert!(is_bot_user_agent(&with));
        proptest::prop_assert_eq!(is_bot_user_agent(&with), naive_is_bot(&with));
    }
}

#[test]
fn header_cookie_and_query_rules_match_as_documented() {
    let header = ExclusionRule::header("X-Internal", "yes").unwrap();
    let cookie_any = ExclusionRule::cookie("staff", None).unwrap();
    let cookie_val = ExclusionRule::cookie("env", Some("qa")).unwrap();
    let query = ExclusionRule::query_param("samplit_off", Some("a b")).unwrap();
    let query_any = ExclusionRule::query_param("preview", None).unwrap();
    let base = VisitorContext {
        visitor_id: "v",
        url: "https://a.example/?x=1",
        user_agent: Some("Mozilla/5.0"),
        ..VisitorContext::default()
    };
    let hdr = [("x-internal", "yes")];
    let hdr_wrong = [("x-internal", "no")];
    let cookies = [("staff", "1"), ("env", "prod")];
    let cookies_qa = [("env", "qa")];
    let cases: Vec<(&str, &ExclusionRule, VisitorContext<'_>, bool)> = vec![
        (
            "header, name case-insensitive",
            &header,
            VisitorContext {
                headers: &hdr,
                ..base
            },
            true,
        ),
        (
            "header, wrong value",
            &header,
            VisitorContext {
                headers: &hdr_wrong,
                ..base
            },
            false,
        ),
        ("no header", &header, base, false),
        (
            "cookie present",
            &cookie_any,
            VisitorContext {
                cookies: &cookies,
                ..base
            },
            true,
        ),
        (
            "cookie absent",
            &cookie_any,
            VisitorContext {
                cookies: &cookies_qa,
                ..base
            },
            false,
        ),
        (
            "cookie wrong value",
            &cookie_val,
            VisitorContext {
                cookies: &cookies,
                ..base
            },
            false,
        ),
        (
            "cookie right value",
            &cookie_val,
            VisitorContext {
                cookies: &cookies_qa,
                ..base
            },
            true,
        ),
        (
            "query decoded +",
            &query,
            VisitorContext {
                url: "https://a.example/?samplit_off=a+b",
                ..base
            },
            true,
        ),
        (
            "query decoded %20",
            &query,
            VisitorContext {
                url: "/p?z=1&samplit_off=a%20b#f",
                ..base
            },
            true,
        ),
        (
            "query other value",
            &query,
            VisitorContext {
                url: "/p?samplit_off=ab",
                ..base
            },
            false,
        ),
        (
            "query in fragment only",
            &query_any,
            VisitorContext {
                url: "/p#preview",
                ..base
            },
            false,
        ),
        (
            "query flag without value",
            &query_any,
            VisitorContext {
                url: "/p?preview",
                ..base
            },
            true,
        ),
    ];
    for (why, rule, c, want) in cases {
        assert_eq!(rule.matches(&c), want, "{why}");
    }
}

#[test]
fn attribute_rules_match_the_callers_attributes_exactly() {
    let plan = ExclusionRule::attribute("plan", Some("enterprise")).unwrap();
    let staff = ExclusionRule::attribute("staff", None).unwrap();
    assert_eq!(plan.reason(), ExclusionReason::Attribute);
    let base = VisitorContext {
        visitor_id: "v",
        url: "https://a.example/",
        user_agent: Some("Mozilla/5.0"),
        ..VisitorContext::default()
    };
    let enterprise = [("plan", "enterprise"), ("orders", "3")];
    let other = [("plan", "Enterprise"), ("Staff", "1")];
    let with = |attributes| VisitorContext { attributes, ..base };
    assert!(plan.matches(&with(&enterprise)));
    assert!(!plan.matches(&with(&other)), "values compare exactly");
    assert!(!staff.matches(&with(&other)), "names compare exactly");
    assert!(staff.matches(&with(&[("staff", "")])));
    assert!(!plan.matches(&base), "no attributes: no match");
    // The same attribute as a header or cookie does not count.
    let hdr = [("plan", "enterprise")];
    assert!(!plan.matches(&VisitorContext {
        headers: &hdr,
        cookies: &hdr,
        ..base
    }));
    assert_eq!(
        first_exclusion(&[staff.clone(), plan.clone()], &with(&enterprise)),
        Some(ExclusionReason::Attribute)
    );
    // Wire form.
    let json = serde_json::to_string(&plan).unwrap();
    assert_eq!(
        json,
        r#"{"type":"attribute","name":"plan","value":"enterprise"}"#
    );
    assert_eq!(serde_json::from_str::<ExclusionRule>(&json).unwrap(), plan);
}

#[test]
fn bad_names_are_rejected() {
    assert!(ExclusionRule::header("", "1").is_err());
    assert!(ExclusionRule::header("x internal", "1").is_err());
    assert!(ExclusionRule::cookie("a=b", None).is_err());
    assert!(ExclusionRule::query_param("a;b", None).is_err());
    assert!(ExclusionRule::attribute("", None).is_err());
    assert!(ExclusionRule::header("x-ok", "line\nbreak").is_err());
}
