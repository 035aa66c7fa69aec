//! The change model's validation.

use samplit_engine::changes::{Change, ChangeAction, ChangeError, InsertPosition};

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
        ("img", attr("src", "data:image/png;base64,iVBORw0")),
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
        ("srcdoc", "iframe", attr("srcdoc", "<script>")),
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
        (
            "data html",
            "iframe",
            attr("src", "data:text/html,<script>"),
        ),
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
