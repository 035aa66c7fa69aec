//! The change model's validation.

use samplit_engine::changes::{
    Change, ChangeAction, ChangeError, FORBIDDEN_TARGETS, InsertPosition, MAX_CUSTOM_CODE_LEN,
    SiteHosts, Target, URL_ATTRIBUTES, check, subject_tags,
};

fn attr(name: &str, value: &str) -> ChangeAction {
    ChangeAction::SetAttribute {
        name: name.into(),
        value: value.into(),
    }
}

#[test]
fn valid_changes_are_accepted() {
    let cases: Vec<(&str, ChangeAction)> = vec![
        (
            "#hero > h1.title",
            ChangeAction::SetText {
                text: "Hello <b>".into(),
            },
        ),
        (
            "div[data-x=\"1\"] p:nth-child(2)",
            ChangeAction::SetHtml {
                html: "<b>hi</b>".into(),
            },
        ),
        ("a.cta", attr("href", "https://shop.example/buy?x=1&y=2")),
        ("a.cta", attr("href", "/pricing")),
        ("img", attr("src", "https://cdn.example/a.png")),
        (
            "img",
            attr("srcset", "/a.png 1x, https://cdn.example/b.png 2x"),
        ),
        ("a", attr("ping", "/ping https://stats.example/p")),
        ("a", attr("href", "")),
        ("a", attr("href", "#pricing")),
        ("a", attr("href", "pricing?x=1")),
        ("p", attr("style", "scroll-behavior: smooth; color: red")),
        ("div:not(script)", ChangeAction::Hide),
        (".md\\:flex > span", ChangeAction::Hide),
        ("script + p", ChangeAction::Hide),
        ("a[title='script, style']", ChangeAction::Hide),
        ("img", attr("alt", "javascript: the good parts")), // not a URL attribute
        ("button", attr("data-variant", "b")),
        ("button", attr("aria-label", "Buy")),
        (
            ".cta",
            ChangeAction::SetStyle {
                property: "background-color".into(),
                value: "#ff0000".into(),
            },
        ),
        (
            ".cta",
            ChangeAction::SetStyle {
                property: "--brand".into(),
                value: "rgb(1, 2, 3)".into(),
            },
        ),
        (".banner", ChangeAction::Hide),
        (
            "main",
            ChangeAction::Insert {
                position: InsertPosition::Prepend,
                html: "<p>x</p>".into(),
            },
        ),
        (
            "body",
            ChangeAction::Redirect {
                url: "https://shop.example/new-landing".into(),
            },
        ),
        (
            "body",
            ChangeAction::Redirect {
                url: "/new-landing?ref=ab".into(),
            },
        ),
    ];
    for (selector, action) in cases {
        let r = Change::new(selector, action.clone());
        assert!(r.is_ok(), "{selector} {action:?}: {r:?}");
        // And through serde.
        let json = serde_json::to_string(&r.unwrap()).unwrap();
        assert!(serde_json::from_str::<Change>(&json).is_ok(), "{json}");
    }
}

#[test]
fn unsafe_or_malformed_changes_are_rejected() {
    let text = || ChangeAction::SetText { text: "x".into() };
    let cases: Vec<(&str, &str, ChangeAction)> = vec![
        ("empty selector", "", text()),
        ("blank selector", "   ", text()),
        ("markup as selector", "<script>", text()),
        ("braces", "a { color: red }", text()),
        ("semicolon", "a; b", text()),
        ("unbalanced bracket", "a[href", text()),
        ("unbalanced paren", "li:nth-child(2", text()),
        ("control char", "a\u{0}", text()),
        ("event handler", "a", attr("onclick", "steal()")),
        ("event handler, upper case", "a", attr("OnError", "x")),
        ("srcdoc", "div", attr("srcdoc", "<script>")),
        ("http-equiv", "div", attr("http-equiv", "refresh")),
        ("attribute name with space", "a", attr("data x", "1")),
        ("attribute name with quote", "a", attr("x\"", "1")),
        ("javascript href", "a", attr("href", "javascript:alert(1)")),
        (
            "obfuscated javascript href",
            "a",
            attr("href", " JaVa\tScRiPt:alert(1)"),
        ),
        (
            "entity-encoded javascript",
            "a",
            attr("href", "&#106;avascript:alert(1)"),
        ),
        ("vbscript src", "img", attr("src", "vbscript:x")),
        ("data html", "img", attr("src", "data:text/html,<script>")),
        (
            "javascript in style attribute",
            "a",
            attr("style", "background:url(javascript:x)"),
        ),
        (
            "css expression",
            ".x",
            ChangeAction::SetStyle {
                property: "width".into(),
                value: "expression(alert(1))".into(),
            },
        ),
        (
            "style breakout",
            ".x",
            ChangeAction::SetStyle {
                property: "color".into(),
                value: "red; } body {".into(),
            },
        ),
        (
            "bad property",
            ".x",
            ChangeAction::SetStyle {
                property: "col or".into(),
                value: "red".into(),
            },
        ),
        (
            "javascript redirect",
            "body",
            ChangeAction::Redirect {
                url: "javascript:alert(1)".into(),
            },
        ),
        (
            "protocol-relative redirect",
            "body",
            ChangeAction::Redirect {
                url: "//evil.example".into(),
            },
        ),
        (
            "backslash redirect",
            "body",
            ChangeAction::Redirect {
                url: "/\\evil.example".into(),
            },
        ),
        (
            "relative redirect",
            "body",
            ChangeAction::Redirect {
                url: "landing".into(),
            },
        ),
        (
            "ftp redirect",
            "body",
            ChangeAction::Redirect {
                url: "ftp://x.example".into(),
            },
        ),
        (
            "hostless redirect",
            "body",
            ChangeAction::Redirect {
                url: "https:///path".into(),
            },
        ),
        (
            "huge text",
            "p",
            ChangeAction::SetText {
                text: "x".repeat(300 * 1024),
            },
        ),
    ];
    for (why, selector, action) in cases {
        assert!(
            Change::new(selector, action).is_err(),
            "{why} should be rejected"
        );
    }
    assert_eq!(
        Change::new("", ChangeAction::Hide),
        Err(ChangeError::EmptySelector)
    );
}

#[test]
fn deserialisation_validates_changes() {
    let bad = r#"{"selector":"a","action":{"type":"set_attribute","name":"onload","value":"x"}}"#;
    assert!(serde_json::from_str::<Change>(bad).is_err());
    let good = r#"{"selector":"a","action":{"type":"hide"}}"#;
    let c: Change = serde_json::from_str(good).unwrap();
    assert_eq!(c.action(), &ChangeAction::Hide);
    assert_eq!(serde_json::to_string(&c).unwrap(), good);
}

fn hide() -> ChangeAction {
    ChangeAction::Hide
}

fn text(t: &str) -> ChangeAction {
    ChangeAction::SetText { text: t.into() }
}

#[test]
fn every_forbidden_element_is_refused_as_a_selector_subject_and_as_an_element() {
    for tag in FORBIDDEN_TARGETS {
        let upper = tag.to_ascii_uppercase();
        for selector in [
            String::from(*tag),
            format!("body > {tag}"),
            format!("{upper}.x"),
            format!("div {tag}[src]"),
            format!("svg|{tag}"),
            format!("*|{tag}"),
            format!("p, {tag}"),
            format!(".x:is(p, {tag})"),
            format!(":where({tag})"),
            format!("li:nth-child(2n+1 of {tag}.x)"),
        ] {
            assert_eq!(
                Change::new(&selector, text("x")),
                Err(ChangeError::ForbiddenTarget(tag.to_string())),
                "selector {selector:?} targets <{tag}>"
            );
        }
        assert_eq!(
            check(Target::Element(&upper), &hide(), SiteHosts::Unknown),
            Err(ChangeError::ForbiddenTarget(tag.to_string())),
            "an element named {upper} is not touched"
        );
    }
    // Case and namespaces as the DOM reports them.
    for tag in [
        "SCRIPT",
        "svg:script",
        "animateMotion",
        "foreignObject",
        "Style",
    ] {
        assert!(
            check(Target::Element(tag), &hide(), SiteHosts::Unknown).is_err(),
            "{tag}"
        );
    }
    for tag in [
        "A", "div", "p", "svg", "img", "form", "button", "h1", "section",
    ] {
        assert!(
            check(Target::Element(tag), &hide(), SiteHosts::Unknown).is_ok(),
            "{tag} is an ordinary element"
        );
    }
}

#[test]
fn escaped_and_nested_selector_subjects_are_decoded() {
    let cases: Vec<(&str, Vec<&str>, &str)> = vec![
        ("scr\\69 pt", vec!["script"], "hex escape with its space"),
        (
            "\\73\\63\\72\\69\\70\\74",
            vec!["script"],
            "every letter escaped",
        ),
        (
            "sc\\ript",
            vec!["script"],
            "an escaped letter that is not hex",
        ),
        ("div >  a.cta", vec!["a"], "child combinator, extra spaces"),
        ("div~p+span", vec!["span"], "combinators without spaces"),
        (".x", vec![], "no type selector"),
        ("*", vec![], "universal"),
        ("#a\\ b", vec![], "an escaped space is not a combinator"),
        ("a[href='x y'] span", vec!["span"], "a space in a string"),
        (".a:not(script)", vec![], ":not does not name the subject"),
        ("h1, h2", vec!["h1", "h2"], "a list"),
        (":is(a, :where(b)) ", vec!["a", "b"], "nested"),
        ("DIV", vec!["div"], "lower-cased"),
    ];
    for (selector, want, why) in cases {
        assert_eq!(subject_tags(selector).unwrap(), want, "{why}: {selector:?}");
    }
    assert!(
        Change::new("/**/script", hide()).is_err(),
        "comments are refused"
    );
    assert!(
        Change::new(format!("{}a{}", ":is(".repeat(9), ")".repeat(9)), hide()).is_err(),
        "too deep"
    );
}

#[test]
fn dangerous_urls_are_refused_in_every_url_attribute() {
    let bad: Vec<(&str, &str)> = vec![
        ("javascript:alert(1)", "script scheme"),
        ("JaVaScRiPt:alert(1)", "mixed case"),
        ("java\tscript:alert(1)", "tab inside the scheme"),
        ("java\nscript:alert(1)", "newline inside the scheme"),
        ("\u{1}javascript:alert(1)", "leading control character"),
        (" javascript:alert(1)", "leading space"),
        ("javascript:alert(1) ", "trailing space"),
        ("&#106;avascript:alert(1)", "decimal character reference"),
        ("&#x6A;avascript:alert(1)", "hex character reference"),
        ("javascript&colon;alert(1)", "named reference"),
        ("vbscript:msgbox", "vbscript"),
        ("data:text/html,<script>alert(1)</script>", "data HTML"),
        ("data:image/svg+xml;base64,PHN2Zz4=", "any data URL"),
        ("//evil.example/x.js", "protocol-relative"),
        ("\\\\evil.example/x.js", "backslash protocol-relative"),
        ("/\\evil.example/x.js", "slash-backslash"),
        ("\\/evil.example/x.js", "backslash-slash"),
        ("https://user@evil.example/", "userinfo"),
        ("https:evil.example", "http scheme without //"),
        ("https:///path", "no host"),
        ("ftp://files.example/x", "another scheme"),
        ("blob:https://x/1", "blob"),
    ];
    for attribute in URL_ATTRIBUTES {
        for (url, why) in &bad {
            assert!(
                Change::new("img", attr(attribute, url)).is_err(),
                "{attribute}={url:?} ({why}) must be refused"
            );
        }
        for ok in [
            "https://cdn.example/a",
            "http://cdn.example/a",
            "/a",
            "a/b?c=d&e=f",
        ] {
            let r = Change::new("img", attr(attribute, ok));
            assert!(r.is_ok(), "{attribute}={ok:?}: {r:?}");
        }
    }
    for (srcset, why) in [
        ("/a.png 1x, javascript:alert(1) 2x", "second candidate"),
        ("//evil.example/a.png 1x", "protocol-relative candidate"),
        ("data:image/png;base64,AAAA 1x", "data candidate"),
    ] {
        assert!(
            Change::new("img", attr("srcset", srcset)).is_err(),
            "srcset {srcset:?}: {why}"
        );
    }
    assert!(Change::new("a", attr("ping", "/p javascript:x")).is_err());
}

#[test]
fn styles_that_run_or_load_code_are_refused() {
    let style = |v: &str| attr("style", v);
    for (value, why) in [
        ("background:url(javascript:alert(1))", "javascript url"),
        ("background:url(JAVASCRIPT:alert(1))", "upper case"),
        ("width:expression(alert(1))", "IE expression"),
        ("behavior:url(x.htc)", "IE behavior"),
        ("-moz-binding:url(x.xml#x)", "XBL binding"),
        ("background:url(java\\script:x)", "CSS escape"),
        ("color:red/**/", "comment"),
    ] {
        assert!(
            Change::new("p", style(value)).is_err(),
            "style {value:?}: {why}"
        );
    }
    for property in ["behavior", "-moz-binding"] {
        assert!(
            Change::new(
                "p",
                ChangeAction::SetStyle {
                    property: property.into(),
                    value: "url(x)".into()
                }
            )
            .is_err(),
            "property {property}"
        );
    }
}

#[test]
fn form_actions_and_redirects_stay_on_the_sites_hosts() {
    let hosts = vec![
        String::from("shop.example.com"),
        String::from("www.shop.example.com"),
    ];
    let site = SiteHosts::Only(&hosts);
    let change = |selector: &str, action: ChangeAction| Change::new(selector, action).unwrap();
    let cases: Vec<(Change, bool, &str)> = vec![
        (
            change("form", attr("action", "/login")),
            true,
            "relative action",
        ),
        (
            change("form", attr("action", "https://shop.example.com/login")),
            true,
            "the site's host",
        ),
        (
            change("form", attr("action", "https://SHOP.example.com./login")),
            true,
            "case and trailing dot",
        ),
        (
            change(
                "form",
                attr("action", "https://shop.example.com:8443/login"),
            ),
            true,
            "another port of the site's host",
        ),
        (
            change("form", attr("action", "https://evil.com/steal")),
            false,
            "another host",
        ),
        (
            change(".x", attr("ACTION", "https://evil.com/steal")),
            false,
            "upper-case attribute, class selector",
        ),
        (
            change("button", attr("formaction", "https://evil.com/steal")),
            false,
            "button formaction",
        ),
        (
            change("form", attr("action", "https://shop.example.com.evil.com/")),
            false,
            "suffix trick",
        ),
        (
            change("a", attr("href", "https://partner.example/")),
            true,
            "links may leave the site",
        ),
        (
            change(
                "body",
                ChangeAction::Redirect {
                    url: "https://www.shop.example.com/b".into(),
                },
            ),
            true,
            "redirect to another of the site's hosts",
        ),
        (
            change(
                "body",
                ChangeAction::Redirect {
                    url: "/landing-b".into(),
                },
            ),
            true,
            "root-relative redirect",
        ),
        (
            change(
                "body",
                ChangeAction::Redirect {
                    url: "https://evil.com/".into(),
                },
            ),
            false,
            "redirect to another host",
        ),
    ];
    for (c, ok, why) in cases {
        let r = c.check_for_site(site);
        assert_eq!(r.is_ok(), ok, "{why}: {r:?}");
        if !ok {
            assert!(matches!(r, Err(ChangeError::OffSiteUrl(_))), "{why}");
            // The same rule when applied to the element.
            assert!(c.check_on_element("form", site).is_err(), "{why}, applied");
        }
    }
    // No hosts known (deserialisation): only the context-free rules.
    assert!(Change::new("form", attr("action", "https://evil.com/")).is_ok());
    // A site without domains: only relative targets.
    let none: Vec<String> = vec![];
    assert!(
        Change::new("form", attr("action", "https://shop.example.com/"))
            .unwrap()
            .check_for_site(SiteHosts::Only(&none))
            .is_err()
    );
}

#[test]
fn custom_code_is_bounded_and_cannot_close_its_element() {
    let css = |c: &str| ChangeAction::CustomCss { code: c.into() };
    let js = |c: &str| ChangeAction::CustomJs { code: c.into() };
    let ok: Vec<(ChangeAction, &str)> = vec![
        (css(".cta { color: red }"), "css"),
        (
            js("document.title = 'B';\nconsole.log('<\\/script>')"),
            "js",
        ),
        (js(&"x".repeat(MAX_CUSTOM_CODE_LEN)), "js at the limit"),
    ];
    for (action, why) in ok {
        let c = Change::new("", action).unwrap_or_else(|e| panic!("{why}: {e}"));
        assert!(c.is_custom_code(), "{why}");
        assert!(
            c.check_on_element("script", SiteHosts::Unknown).is_ok(),
            "{why}: no target"
        );
    }
    let bad: Vec<(&str, ChangeAction, &str)> = vec![
        (
            "",
            css("</style><script>alert(1)</script>"),
            "css closing its style",
        ),
        ("", css("a{}</STYLE >"), "upper case"),
        ("", js("x()</script><img src=x>"), "js closing its script"),
        (
            "",
            js("<!--<script>"),
            "js entering the double-escaped state",
        ),
        ("", js(&"x".repeat(MAX_CUSTOM_CODE_LEN + 1)), "too long"),
        ("", js("a\u{0}b"), "control character"),
        ("body", js("x()"), "a selector"),
    ];
    for (selector, action, why) in bad {
        assert!(Change::new(selector, action).is_err(), "{why}");
    }
    let json = r#"{"action":{"type":"custom_js","code":"x()"}}"#;
    let c: Change = serde_json::from_str(json).unwrap();
    assert_eq!(
        serde_json::to_string(&c).unwrap(),
        json,
        "no selector written"
    );
    assert!(
        serde_json::from_str::<Change>(r#"{"action":{"type":"hide"}}"#).is_err(),
        "structural changes still need a selector"
    );
}

#[test]
fn set_text_cannot_put_code_into_script_or_style() {
    for selector in [
        "script",
        "style",
        "head > script#data",
        "svg script",
        "noscript",
    ] {
        assert!(
            matches!(
                Change::new(selector, text("alert(document.cookie)")),
                Err(ChangeError::ForbiddenTarget(_))
            ),
            "{selector}"
        );
    }
    assert!(
        check(
            Target::Element("script"),
            &text("alert(1)"),
            SiteHosts::Unknown
        )
        .is_err(),
        "`.x` matching a script is refused when applied"
    );
}
