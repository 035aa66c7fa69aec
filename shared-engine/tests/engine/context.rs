//! The exposure context: user-agent classification against published agents, traffic
//! sources, the landing path, country codes and the history cookie (with properties).

use proptest::prelude::*;
use samplit_engine::context::{
    Browser, Device, HistoryCookie, MAX_LANDING_LEN, MAX_PRIOR_COUNT, Source, VISIT_TIMEOUT_MIN,
    classify_source, classify_user_agent, country_code, landing_path, template_path,
};

/// Real user agents, each with where its form is published (version numbers differ
/// between revisions of those pages; the tokens the rules read do not), and what it must
/// read as.
const AGENTS: &[(&str, Device, Browser, &str)] = &[
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:47.0) Gecko/20100101 Firefox/47.0",
        Device::Desktop,
        Browser::Firefox,
        "MDN, HTTP headers > User-Agent: Firefox on Windows",
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X x.y; rv:42.0) Gecko/20100101 Firefox/42.0",
        Device::Desktop,
        Browser::Firefox,
        "MDN, User-Agent: Firefox on macOS",
    ),
    (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/51.0.2704.103 Safari/537.36",
        Device::Desktop,
        Browser::Chrome,
        "MDN, User-Agent: Chrome on Linux",
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/51.0.2704.106 Safari/537.36 OPR/38.0.2220.41",
        Device::Desktop,
        Browser::Opera,
        "MDN, User-Agent: Chromium-based Opera",
    ),
    (
        "Opera/9.80 (Macintosh; Intel Mac OS X; U; en) Presto/2.2.15 Version/10.00",
        Device::Desktop,
        Browser::Opera,
        "MDN, User-Agent: Presto-based Opera",
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/91.0.4472.124 Safari/537.36 Edg/91.0.864.59",
        Device::Desktop,
        Browser::Edge,
        "MDN, User-Agent: Microsoft Edge on Windows",
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 13_5_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.1.1 Mobile/15E148 Safari/604.1",
        Device::Mobile,
        Browser::Safari,
        "MDN, User-Agent: Safari on iPhone",
    ),
    (
        "Mozilla/5.0 (Android 4.4; Mobile; rv:41.0) Gecko/41.0 Firefox/41.0",
        Device::Mobile,
        Browser::Firefox,
        "MDN, Browser detection using the user agent: Firefox for Android, phone",
    ),
    (
        "Mozilla/5.0 (Android 4.4; Tablet; rv:41.0) Gecko/41.0 Firefox/41.0",
        Device::Tablet,
        Browser::Firefox,
        "MDN, Browser detection using the user agent: Firefox for Android, tablet",
    ),
    (
        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Mobile Safari/537.36",
        Device::Mobile,
        Browser::Chrome,
        "Chrome for Developers, User-Agent reduction: reduced Android phone agent",
    ),
    (
        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Safari/537.36",
        Device::Tablet,
        Browser::Chrome,
        "Chrome for Developers, User-Agent reduction: reduced Android tablet agent",
    ),
    (
        "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Safari/537.36",
        Device::Desktop,
        Browser::Chrome,
        "Chrome for Developers, User-Agent reduction: ChromeOS",
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/126.0.6478.54 Mobile/15E148 Safari/604.1",
        Device::Mobile,
        Browser::Chrome,
        "Chrome for Developers, Chrome on iOS (CriOS)",
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) FxiOS/127.0 Mobile/15E148 Safari/605.1.15",
        Device::Mobile,
        Browser::Firefox,
        "Mozilla, Firefox for iOS user agent (FxiOS)",
    ),
    (
        "Mozilla/5.0 (Linux; Android 9; SAMSUNG SM-G960U) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/10.1 Chrome/71.0.3578.99 Mobile Safari/537.36",
        Device::Mobile,
        Browser::Samsung,
        "Samsung Developers, Samsung Internet user agent string",
    ),
    (
        "Mozilla/5.0 (Linux; Android 10; HD1913) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.6478.71 Mobile Safari/537.36 EdgA/126.0.2592.80",
        Device::Mobile,
        Browser::Edge,
        "Microsoft Learn, Microsoft Edge user agent string: Edge on Android",
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 EdgiOS/126.2592.86 Mobile/15E148 Safari/605.1.15",
        Device::Mobile,
        Browser::Edge,
        "Microsoft Learn, Microsoft Edge user agent string: Edge on iOS",
    ),
    (
        "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
        Device::Tablet,
        Browser::Safari,
        "Apple, Safari on iPad asking for the mobile site (says iPad, and Mobile)",
    ),
    (
        // Documented limitation: iPadOS Safari asks for desktop sites by default and
        // then sends macOS Safari's agent.
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
        Device::Desktop,
        Browser::Safari,
        "Apple, iPadOS Safari in desktop mode (= macOS Safari): reads as desktop",
    ),
    (
        "Mozilla/5.0 (SMART-TV; LINUX; Tizen 6.0) AppleWebKit/537.36 (KHTML, like Gecko) 76.0.3809.146/6.0 TV Safari/537.36",
        Device::Other,
        Browser::Safari,
        "Samsung Developers, Samsung Smart TV (Tizen) user agent",
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; Xbox; Xbox One) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/70.0.3538.102 Safari/537.36 Edge/18.19041",
        Device::Other,
        Browser::Edge,
        "Xbox One's EdgeHTML browser, as reported in the wild (says Windows, is a console)",
    ),
    (
        "Mozilla/5.0 (PlayStation; PlayStation 5/2.26) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.0 Safari/605.1.15",
        Device::Other,
        Browser::Safari,
        "PlayStation 5 browser, as reported in the wild",
    ),
    ("curl/8.5.0", Device::Other, Browser::Other, "curl"),
    ("", Device::Other, Browser::Other, "no agent at all"),
];

#[test]
fn published_user_agents_read_as_their_device_and_browser() {
    for (ua, device, browser, source) in AGENTS {
        assert_eq!(
            classify_user_agent(ua),
            (*device, *browser),
            "{source}: {ua}"
        );
    }
}

#[test]
fn traffic_sources_follow_the_query_first_then_the_referrer() {
    let page = "https://shop.example.com/pricing";
    // (page URL, referrer, expected, why)
    let cases: &[(&str, Option<&str>, Source, &str)] = &[
        (page, None, Source::Direct, "no referrer"),
        (page, Some(""), Source::Direct, "an empty referrer"),
        (
            page,
            Some("not a url"),
            Source::Direct,
            "an unparsable referrer",
        ),
        (
            page,
            Some("https:///x"),
            Source::Direct,
            "a referrer without a host",
        ),
        (
            page,
            Some("https://shop.example.com/"),
            Source::Internal,
            "the same host",
        ),
        (
            page,
            Some("https://www.shop.example.com/cart"),
            Source::Internal,
            "the www. variant of the page's host",
        ),
        (
            "https://www.shop.example.com/",
            Some("https://SHOP.example.com:443/a"),
            Source::Internal,
            "the bare host of a www. page, any case, with a port",
        ),
        (
            page,
            Some("https://www.google.com/"),
            Source::Search,
            "google.com",
        ),
        (
            page,
            Some("https://www.google.co.uk/"),
            Source::Search,
            "a country Google",
        ),
        (
            page,
            Some("https://google.de/"),
            Source::Search,
            "google.de",
        ),
        (
            page,
            Some("https://www.bing.com/search?q=x"),
            Source::Search,
            "Bing",
        ),
        (
            page,
            Some("https://duckduckgo.com/"),
            Source::Search,
            "DuckDuckGo",
        ),
        (
            page,
            Some("https://search.yahoo.com/"),
            Source::Search,
            "Yahoo search",
        ),
        (page, Some("https://yandex.ru/"), Source::Search, "Yandex"),
        (
            page,
            Some("https://www.ecosia.org/"),
            Source::Search,
            "Ecosia",
        ),
        (
            page,
            Some("https://search.brave.com/"),
            Source::Search,
            "Brave search",
        ),
        (
            page,
            Some("https://www.baidu.com/"),
            Source::Search,
            "Baidu",
        ),
        (
            page,
            Some("https://mail.google.com/"),
            Source::Email,
            "Gmail is webmail, not search",
        ),
        (
            page,
            Some("https://outlook.live.com/mail/0/"),
            Source::Email,
            "Outlook",
        ),
        (
            page,
            Some("https://mail.yahoo.com/"),
            Source::Email,
            "Yahoo Mail",
        ),
        (
            page,
            Some("https://l.facebook.com/l.php?u=x"),
            Source::Social,
            "Facebook's link shim",
        ),
        (page, Some("https://t.co/abc"), Source::Social, "t.co"),
        (page, Some("https://x.com/"), Source::Social, "x.com"),
        (
            page,
            Some("https://www.linkedin.com/"),
            Source::Social,
            "LinkedIn",
        ),
        (
            page,
            Some("https://www.pinterest.fr/"),
            Source::Social,
            "a country Pinterest",
        ),
        (
            page,
            Some("https://old.reddit.com/r/x"),
            Source::Social,
            "a reddit subdomain",
        ),
        (page, Some("https://bsky.app/"), Source::Social, "Bluesky"),
        (
            page,
            Some("https://blog.example.org/post"),
            Source::Referral,
            "another site",
        ),
        (
            page,
            Some("https://notgoogle.com/"),
            Source::Referral,
            "a name that only ends like a search engine",
        ),
        (
            page,
            Some("https://google.evil.example/"),
            Source::Referral,
            "google.<anything> is not google.<country>",
        ),
        (
            page,
            Some("https://xfacebook.com/"),
            Source::Referral,
            "a suffix that is not on a label boundary",
        ),
        (
            "https://shop.example.com/?utm_medium=email&utm_source=news",
            Some("https://www.google.com/"),
            Source::Email,
            "utm_medium wins over the referrer",
        ),
        (
            "https://shop.example.com/?utm_medium=CPC",
            None,
            Source::Paid,
            "utm_medium is case-insensitive",
        ),
        (
            "https://shop.example.com/?utm_medium=paid%2Dsearch",
            None,
            Source::Paid,
            "utm_medium is percent-decoded",
        ),
        (
            "https://shop.example.com/?utm_medium=social-network",
            None,
            Source::Social,
            "a social medium",
        ),
        (
            "https://shop.example.com/?utm_medium=organic",
            Some("https://blog.example.org/"),
            Source::Search,
            "organic",
        ),
        (
            "https://shop.example.com/?utm_medium=affiliate",
            Some("https://blog.example.org/"),
            Source::Referral,
            "an unknown medium lets the referrer decide",
        ),
        (
            "https://shop.example.com/?x=1&gclid=abc",
            Some("https://www.google.com/"),
            Source::Paid,
            "a Google Ads click id",
        ),
        (
            "https://shop.example.com/?utm_medium=email&fbclid=xyz",
            None,
            Source::Paid,
            "a click id wins over utm_medium",
        ),
        (
            "https://shop.example.com/?gclid=",
            None,
            Source::Direct,
            "an empty click id says nothing",
        ),
        (
            "https://shop.example.com/#?utm_medium=email",
            None,
            Source::Direct,
            "a query inside the fragment is not the page's query",
        ),
    ];
    for (page_url, referrer, expected, why) in cases {
        assert_eq!(
            classify_source(page_url, *referrer),
            *expected,
            "{why}: {page_url} from {referrer:?}"
        );
    }
}

#[test]
fn the_landing_page_is_the_path_alone_and_bounded() {
    let cases: &[(&str, Option<&str>)] = &[
        (
            "https://shop.example.com/pricing?plan=pro#top",
            Some("/pricing"),
        ),
        ("https://shop.example.com", Some("/")),
        ("https://shop.example.com?x=1", Some("/")),
        ("https://shop.example.com/a/b/", Some("/a/b/")),
        ("/checkout?step=2", Some("/checkout")),
        ("", None),
        ("pricing", None),
    ];
    for (url, expected) in cases {
        assert_eq!(landing_path(url).as_deref(), *expected, "{url}");
    }
    // Cut at a character boundary: 'é' is two bytes, so MAX_LANDING_LEN - 1 bytes of
    // ASCII then 'é' keeps only the ASCII.
    let long = format!("https://x.test/{}é", "a".repeat(MAX_LANDING_LEN - 2));
    let path = landing_path(&long).unwrap();
    assert_eq!(path.len(), MAX_LANDING_LEN - 1);
    assert!(path.ends_with('a'));
    let longer = format!("https://x.test/{}", "z".repeat(5 * MAX_LANDING_LEN));
    assert_eq!(landing_path(&longer).unwrap().len(), MAX_LANDING_LEN);
}

#[test]
fn a_landing_page_is_a_template_without_personal_data_or_identifiers() {
    let cases: &[(&str, &str)] = &[
        (
            "https://shop.example/orders/ana@example.com",
            "/orders/:email",
        ),
        (
            "https://shop.example/u/ana%40example.com/settings",
            "/u/:email/settings",
        ),
        ("https://shop.example/orders/100234?key=x", "/orders/:id"),
        (
            "https://shop.example/blog/2026/12/05/sale",
            "/blog/:id/12/05/sale",
        ),
        ("/o/order-98765/thanks", "/o/:id/thanks"),
        (
            "/c/3f2504e0-4f89-11d3-9a0c-0305e82c3301/view",
            "/c/:id/view",
        ),
        ("/r/deadbeefdeadbeef", "/r/:id"),
        ("/reset/Xk3pQzLmNvBtRwYhJcGfDsAe", "/reset/:token"),
        // Product names, words and short numbers stay: they are the page.
        ("/products/iphone-15-pro", "/products/iphone-15-pro"),
        ("/collections/summer-sale/", "/collections/summer-sale/"),
        ("/p/123", "/p/123"),
        ("/feed", "/feed"),
        (
            "/accessibility-statement-for-customers",
            "/accessibility-statement-for-customers",
        ),
    ];
    for (url, expected) in cases {
        assert_eq!(landing_path(url).as_deref(), Some(*expected), "{url}");
        // Idempotent: the control plane applies it again to what the edge sent.
        assert_eq!(template_path(expected), *expected, "{expected}");
    }
}

#[test]
fn country_codes_are_two_capital_letters_and_unknown_ones_are_dropped() {
    assert_eq!(country_code("ES").as_deref(), Some("ES"));
    for bad in ["XX", "T1", "es", "E", "ESP", "", "1A"] {
        assert_eq!(country_code(bad), None, "{bad:?}");
    }
}

#[test]
fn the_history_cookie_counts_visits_and_conversions() {
    let t = 29_000_000; // Unix minutes, late 2025
    // First request: a first visit, nothing prior.
    let (c, visits, conversions) = HistoryCookie::on_request(None, t);
    assert_eq!((c.visits, c.conversions, c.last_seen_min), (1, 0, t));
    assert_eq!((visits, conversions), (0, 0));
    assert_eq!(c.encode(), format!("1.1.0.{t}"));
    // Within the visit (30 minutes after the last request is still the same visit).
    let (c, visits, _) = HistoryCookie::on_request(Some(c), t + VISIT_TIMEOUT_MIN);
    assert_eq!((c.visits, visits), (1, 0));
    // 31 minutes of silence: a new visit; the first one is prior.
    let (c, visits, _) = HistoryCookie::on_request(Some(c), t + 2 * VISIT_TIMEOUT_MIN + 1);
    assert_eq!((c.visits, visits), (2, 1));
    // A conversion is counted, and is prior from the next request on.
    let c = HistoryCookie::on_conversion(Some(c), t + 2 * VISIT_TIMEOUT_MIN + 2);
    assert_eq!((c.visits, c.conversions), (2, 1));
    let (_, visits, conversions) =
        HistoryCookie::on_request(Some(c), t + 2 * VISIT_TIMEOUT_MIN + 3);
    assert_eq!((visits, conversions), (1, 1));
    // A conversion from a browser without a cookie starts its history.
    let c = HistoryCookie::on_conversions(None, t, 3);
    assert_eq!((c.visits, c.conversions, c.last_seen_min), (1, 3, t));
    // A last_seen in the future does not freeze the count.
    let future = HistoryCookie {
        visits: 4,
        conversions: 0,
        last_seen_min: t + 10_000,
    };
    assert_eq!(HistoryCookie::on_request(Some(future), t).1, 4);
}

#[test]
fn history_counts_saturate_at_the_cap() {
    let full = HistoryCookie {
        visits: u32::MAX,
        conversions: u32::MAX,
        last_seen_min: 0,
    };
    let (c, visits, conversions) = HistoryCookie::on_request(Some(full), 1_000);
    assert_eq!((visits, conversions), (MAX_PRIOR_COUNT, MAX_PRIOR_COUNT));
    assert_eq!(c.visits, MAX_PRIOR_COUNT + 1);
    let (c, visits, _) = HistoryCookie::on_request(Some(c), 2_000);
    assert_eq!((c.visits, visits), (MAX_PRIOR_COUNT + 1, MAX_PRIOR_COUNT));
    assert_eq!(
        HistoryCookie::on_conversion(Some(c), 2_001).conversions,
        MAX_PRIOR_COUNT
    );
    // A zero visit count (a hand-made cookie) still reads as the current visit.
    let zero = HistoryCookie {
        visits: 0,
        conversions: 0,
        last_seen_min: 5,
    };
    assert_eq!(HistoryCookie::on_request(Some(zero), 6).1, 0);
}

#[test]
fn malformed_history_cookies_are_a_new_visitor() {
    assert_eq!(
        HistoryCookie::parse("1.3.2.29000000"),
        Some(HistoryCookie {
            visits: 3,
            conversions: 2,
            last_seen_min: 29_000_000
        })
    );
    for bad in [
        "",
        "1",
        "1.3.2",
        "1.3.2.29000000.9",
        "2.3.2.29000000",
        "1.-3.2.29000000",
        "1.+3.2.29000000",
        "1.3..29000000",
        "1.3.2.99999999999",
        "1.3.2.4294967296",
        "1.a.2.3",
        " 1.3.2.3",
        "1.3.2.3 ",
    ] {
        assert_eq!(HistoryCookie::parse(bad), None, "{bad:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn history_cookies_round_trip(visits in any::<u32>(), conversions in any::<u32>(), last_seen_min in any::<u32>()) {
        let c = HistoryCookie { visits, conversions, last_seen_min };
        prop_assert_eq!(HistoryCookie::parse(&c.encode()), Some(c));
    }

    #[test]
    fn parsing_any_string_never_panics(text in any::<String>()) {
        let _ = HistoryCookie::parse(&text);
        let _ = classify_user_agent(&text);
        let _ = classify_source(&text, Some(&text));
        let _ = landing_path(&text);
        let once = template_path(&text);
        prop_assert_eq!(template_path(&once), once);
    }

    #[test]
    fn parsing_cookie_like_strings_never_panics_and_accepts_only_the_format(text in "[0-9.+-]{0,40}") {
        if let Some(c) = HistoryCookie::parse(&text) {
            prop_assert!(text.starts_with("1.") && text.split('.').count() == 4);
            prop_assert_eq!(HistoryCookie::parse(&c.encode()), Some(c));
        }
    }

    #[test]
    fn prior_counts_never_exceed_the_cap(
        visits in any::<u32>(), conversions in any::<u32>(), last in any::<u32>(), now in any::<u32>()
    ) {
        let prev = HistoryCookie { visits, conversions, last_seen_min: last };
        let (next, pv, pc) = HistoryCookie::on_request(Some(prev), now);
        prop_assert!(pv <= MAX_PRIOR_COUNT && pc <= MAX_PRIOR_COUNT);
        prop_assert_eq!(next.last_seen_min, now);
        prop_assert_eq!(HistoryCookie::parse(&next.encode()), Some(next));
    }
}
