//! Selectors and change validation (`changes::check`, the rule book the control plane,
//! the deserialiser and the edge's rewriter share), on structured changes and on JSON.
//! Accepted changes round-trip through JSON, never name a forbidden subject element,
//! and a site-scoped check is never looser than the context-free one.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use samplit_engine::changes::{
    self, Change, ChangeAction, InsertPosition, SiteHosts, Target, URL_ATTRIBUTES,
    is_forbidden_target, subject_tags, validate_selector,
};

#[derive(Debug, Arbitrary)]
enum Action {
    SetText(String),
    SetHtml(String),
    SetAttribute(String, String),
    SetStyle(String, String),
    Hide,
    Insert(u8, String),
    Redirect(String),
    CustomCss(String),
    CustomJs(String),
}

#[derive(Debug, Arbitrary)]
struct Input {
    selector: String,
    action: Action,
    tag: String,
    hosts: Vec<String>,
    json: String,
}

fn action(a: Action) -> ChangeAction {
    match a {
        Action::SetText(text) => ChangeAction::SetText { text },
        Action::SetHtml(html) => ChangeAction::SetHtml { html },
        Action::SetAttribute(name, value) => ChangeAction::SetAttribute { name, value },
        Action::SetStyle(property, value) => ChangeAction::SetStyle { property, value },
        Action::Hide => ChangeAction::Hide,
        Action::Insert(p, html) => ChangeAction::Insert {
            position: [
                InsertPosition::Before,
                InsertPosition::After,
                InsertPosition::Prepend,
                InsertPosition::Append,
            ][usize::from(p % 4)],
            html,
        },
        Action::Redirect(url) => ChangeAction::Redirect { url },
        Action::CustomCss(code) => ChangeAction::CustomCss { code },
        Action::CustomJs(code) => ChangeAction::CustomJs { code },
    }
}

fn accepted(change: &Change) {
    let json = serde_json::to_string(change).expect("a change serialises");
    let back: Change = serde_json::from_str(&json).expect("an accepted change deserialises");
    assert_eq!(&back, change);
    if !change.is_custom_code() {
        for tag in subject_tags(change.selector()).expect("an accepted selector is valid") {
            assert!(!is_forbidden_target(&tag), "{tag} reachable by {change:?}");
        }
    }
    if let ChangeAction::SetAttribute { name, value } = change.action() {
        let lower = name.to_ascii_lowercase();
        assert!(!lower.starts_with("on") && lower != "srcdoc" && lower != "http-equiv");
        if URL_ATTRIBUTES.contains(&lower.as_str())
            && lower != "srcset"
            && lower != "imagesrcset"
            && lower != "ping"
        {
            changes::check_url(value).expect("an accepted URL attribute passes check_url");
        }
    }
}

fuzz_target!(|input: Input| {
    let _ = validate_selector(&input.selector);
    if let Ok(tags) = subject_tags(&input.selector) {
        assert!(validate_selector(&input.selector).is_ok());
        for t in tags {
            assert_eq!(t, t.to_ascii_lowercase(), "subject tags are lower case");
        }
    }

    let a = action(input.action);
    let free = changes::check(Target::Selector(&input.selector), &a, SiteHosts::Unknown);
    let scoped = changes::check(
        Target::Selector(&input.selector),
        &a,
        SiteHosts::Only(&input.hosts),
    );
    if scoped.is_ok() {
        assert!(
            free.is_ok(),
            "site-scoped check looser than the free one: {free:?}"
        );
    }
    let on_element = changes::check(
        Target::Element(&input.tag),
        &a,
        SiteHosts::Only(&input.hosts),
    );
    if on_element.is_ok() && !a.is_custom_code() {
        assert!(!is_forbidden_target(&input.tag));
    }
    match Change::new(input.selector.clone(), a) {
        Ok(c) => {
            assert!(free.is_ok());
            accepted(&c);
        }
        Err(e) => assert_eq!(free, Err(e)),
    }

    if let Ok(list) = serde_json::from_str::<Vec<Change>>(&input.json) {
        for c in &list {
            accepted(c);
        }
    }
});
