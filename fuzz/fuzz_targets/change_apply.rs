//! Applying changes (the edge's rewriter, natively on `lol_html` as in workerd): any
//! structural change the rule book accepts, applied to pages holding every kind of
//! forbidden element under the same ids and classes as ordinary ones, never adds an
//! element and never alters a forbidden one (`<script>`, `<style>`, `<iframe>`, …).
//! `set_html`/`insert` carry HTML the control plane sanitises (ammonia) before saving,
//! so their content is not what this target checks: only the text-only change types.
#![no_main]

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use lol_html::{HtmlRewriter, Settings, element, text};
use samplit_edge::render::{Plan, rewrite_str};
use samplit_engine::changes::{Change, ChangeAction, FORBIDDEN_TARGETS};

#[derive(Debug, Arbitrary)]
enum Action {
    SetText(String),
    SetAttribute(String, String),
    SetStyle(String, String),
    Hide,
}

#[derive(Debug, Arbitrary)]
struct Input {
    page: u8,
    changes: Vec<(String, Action)>,
}

const PAGES: &[&str] = &[
    r#"<!doctype html><html><head><title class="x">T</title><meta id="m" class="x" http-equiv="refresh" content="0"><base class="x" href="/"><link class="x" rel="stylesheet" href="/a.css"><style class="x">p{}</style><script class="x" id="s">var a = 1;</script></head><body class="x"><h1 id="h" class="x y">Hello</h1><p class="x">A <a class="x" href="/b">link</a></p><form class="x" action="/f"><input class="x" name="q"><button class="x" formaction="/g">Go</button></form><iframe class="x" src="/i"></iframe><object class="x" data="/o"></object><embed class="x" src="/e"><noscript class="x"><p>ns</p></noscript><template class="x"><p>t</p></template><svg class="x"><animate class="x" attributeName="href"/><set class="x"/><foreignObject class="x"><p>fo</p></foreignObject><script class="x">svg()</script></svg><div id="d" class="x"><span class="x">in</span><script>inner()</script></div></body></html>"#,
    r#"<div class="x"><SCRIPT class="x">up()</SCRIPT><p class="x" id="p">text</p><textarea class="x">ta</textarea><xmp class="x">raw</xmp><style>q{}</style></div>"#,
];

/// Tag → how many; and every forbidden element as (tag, attributes, its text).
#[derive(Debug, Default)]
struct Census {
    counts: BTreeMap<String, usize>,
    forbidden: Vec<(String, Vec<(String, String)>, String)>,
}

fn census(html: &str) -> Census {
    let c = RefCell::new(Census::default());
    let open = Cell::new(None::<usize>);
    let selector = FORBIDDEN_TARGETS.join(", ");
    {
        let settings = Settings::new()
            .append_element_content_handler(element!("*", |el| {
                *c.borrow_mut().counts.entry(el.tag_name()).or_default() += 1;
                Ok(())
            }))
            .append_element_content_handler(element!(selector, |el| {
                let attrs = el
                    .attributes()
                    .iter()
                    .map(|a| (a.name(), a.value()))
                    .collect();
                let mut c = c.borrow_mut();
                c.forbidden.push((el.tag_name(), attrs, String::new()));
                open.set(Some(c.forbidden.len() - 1));
                Ok(())
            }))
            .append_element_content_handler(text!("script, style", |t| {
                if let Some(i) = open.get() {
                    c.borrow_mut().forbidden[i].2.push_str(t.as_str());
                }
                Ok(())
            }));
        let mut rw = HtmlRewriter::new(settings, |_: &[u8]| {});
        rw.write(html.as_bytes())
            .expect("lol_html parses what it wrote");
        rw.end().expect("lol_html parses what it wrote");
    }
    c.into_inner()
}

fuzz_target!(|input: Input| {
    let page = PAGES[usize::from(input.page) % PAGES.len()];
    let changes: Vec<Change> = input
        .changes
        .into_iter()
        .take(8)
        .filter_map(|(selector, a)| {
            let action = match a {
                Action::SetText(text) => ChangeAction::SetText { text },
                Action::SetAttribute(name, value) => ChangeAction::SetAttribute { name, value },
                Action::SetStyle(property, value) => ChangeAction::SetStyle { property, value },
                Action::Hide => ChangeAction::Hide,
            };
            Change::new(selector, action).ok()
        })
        .collect();
    if changes.is_empty() {
        return;
    }
    let plan = Plan {
        changes,
        editor: None,
        site_hosts: vec!["shop.example.com".into()],
    };
    let Ok(out) = rewrite_str(&plan, page, 64) else {
        return;
    };
    let before = census(page);
    let after = census(&out);
    for (tag, n) in &after.counts {
        let had = before.counts.get(tag).copied().unwrap_or(0);
        assert!(*n <= had, "a change added <{tag}> ({had} -> {n}):\n{out}");
    }
    for f in &after.forbidden {
        assert!(
            before.forbidden.contains(f),
            "a change altered a forbidden element {f:?}:\n{out}"
        );
    }
});
