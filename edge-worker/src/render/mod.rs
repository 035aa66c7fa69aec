//! The streaming HTML rewriter: applies a variant's [`Change`]s to a page, and in
//! editor mode keeps the page inside the proxy — with `lol_html`, the engine behind
//! Cloudflare's `HTMLRewriter`, so pages are rewritten chunk by chunk as they arrive
//! from the origin and the first bytes reach the browser before the last are fetched.
//!
//! Layout: [`Plan`] says what to do; [`handlers`] turns it into element handlers written
//! once against [`PageElement`]; two backends run them:
//! - in the Worker (wasm32), `workers::transform` registers them on the runtime's
//!   `HTMLRewriter` — `lol_html` compiled natively into workerd — and streams the
//!   response through it. Compiling `lol_html` into our own wasm instead would add
//!   ~520 KB (selectors, cssparser, encoding_rs tables) and push the Worker past 1 MB;
//! - natively, [`Rewriter`] (push-style: `write(chunk) -> output so far`, `end() -> the
//!   rest`) runs them on the `lol_html` crate, for the unit tests and the benchmark.
//!   Both backends share the same matching engine, hence the same selector subset and the
//!   same output; the Worker's node tests check the workerd path end to end.
//!
//! Changes, one handler per change on the change's own selector:
//! - `set_text` → inner content as text (escaped by `lol_html`), `set_html` → inner
//!   content as HTML (sanitised by the control plane), `set_attribute`, `set_style`
//!   (appended to the `style` attribute, a later declaration wins), `hide`
//!   (`display:none !important`), `insert` (before / after / prepend / append);
//! - before touching an element, each handler asks the engine's one rule book,
//!   `changes::check(Target::Element(tag), action, SiteHosts::Only(plan.site_hosts))`:
//!   a change whose selector matched a `<script>`, `<style>`, `<iframe>`, … (e.g. `.x`
//!   on `<script class="x">`) or whose form action leaves the site's hosts is skipped
//!   on that element, whatever the snapshot says;
//! - `custom_css` → `<style>` elements just before `<body>` (after the page's own style
//!   sheets, before the first paint; a page without a `<body>` tag gets none at the
//!   edge), `custom_js` → `<script>` elements appended at the end of the document, where
//!   the snippet would run it (after the DOM is parsed). Both are
//!   written verbatim: the engine refuses code that would close its element. The
//!   editor's preview (editor mode) never runs custom code: the proxied page is on the
//!   edge's origin;
//! - `redirect` is not a rewrite: the caller answers 302 before fetching anything.
//!
//! `lol_html` matches a subset of CSS (type, `#id`, `.class`, attribute selectors,
//! `:nth-child`, `:nth-of-type`, `:first-*`, `:not`, descendant and child combinators);
//! a change whose selector it cannot compile is skipped and reported as [`Skipped`]
//! (the editor script only produces selectors in that subset).
//!
//! Editor mode ([`EditorMode`]): `a[href]`/`area[href]` and `form[action]` are rewritten
//! to `{edge}/v1/editor?url=<absolute>&token=…` (GET forms also get hidden fields, since
//! a GET submission replaces the action's query), existing `<base>` elements are removed
//! and `<base href="{page}">` is prepended to `<head>` (or put before `<body>` when the
//! page has no `<head>` tag) so the page's own resources load from the site, `<meta http-equiv>` CSP and refresh are removed, and the editor script
//! is appended at the end of the document.

#[cfg(not(target_arch = "wasm32"))]
mod native;
#[cfg(target_arch = "wasm32")]
pub mod workers;

#[cfg(not(target_arch = "wasm32"))]
pub use native::{Rewriter, rewrite_str};
#[cfg(target_arch = "wasm32")]
pub use workers::transform;

/// Natively there is no `HTMLRewriter` to stream through: this crate builds natively
/// only for its unit tests, clippy and the benchmark, and none of them run the fetch
/// handlers (worker's JS-backed types exist only in the Workers runtime).
#[cfg(not(target_arch = "wasm32"))]
pub fn transform(
    _plan: &Plan,
    _response: worker::Response,
    _label: &str,
) -> Result<worker::Response, RenderError> {
    Err(RenderError(
        "streaming responses are rewritten by the Workers runtime's HTMLRewriter".into(),
    ))
}

use std::rc::Rc;

use samplit_engine::changes::{Change, ChangeAction, InsertPosition, SiteHosts, Target, check};
use url::Url;

/// Editor-mode settings.
#[derive(Debug, Clone)]
pub struct EditorMode {
    /// The page being shown (base for relative links).
    pub page_url: Url,
    /// The edge's origin, e.g. `https://edge.samplit.io`, for absolute proxy links.
    pub edge_origin: String,
    /// The editor token, carried by every proxied link.
    pub token: String,
    /// The admin application's origin (the only one the editor script talks to).
    pub admin_origin: String,
}

impl EditorMode {
    /// `{edge}/v1/editor?url=<abs>&token=<token>`.
    pub fn proxy_link(&self, absolute: &Url) -> String {
        let mut link = format!("{}/v1/editor?", self.edge_origin);
        link.push_str(
            &url::form_urlencoded::Serializer::new(String::new())
                .append_pair("url", absolute.as_str())
                .append_pair("token", &self.token)
                .finish(),
        );
        link
    }

    /// The proxied form of a link found in the page, or `None` to leave it alone
    /// (fragments, `mailto:`, `tel:`, `javascript:` and other non-http schemes).
    pub fn rewrite_link(&self, href: &str) -> Option<String> {
        let trimmed = href.trim();
        if trimmed.starts_with('#') {
            return None;
        }
        let absolute = self.page_url.join(trimmed).ok()?;
        matches!(absolute.scheme(), "http" | "https").then(|| self.proxy_link(&absolute))
    }
}

/// What to do to a page.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Changes to apply, in order (redirects are ignored here).
    pub changes: Vec<Change>,
    /// Editor mode, if this is the editor proxy.
    pub editor: Option<EditorMode>,
    /// The site's hosts (lower case): where a form's `action` may send the visitor.
    pub site_hosts: Vec<String>,
}

/// A change the rewriter could not apply, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub selector: String,
    pub reason: String,
}

/// Why a rewrite failed mid-stream.
#[derive(Debug)]
pub struct RenderError(pub String);

impl core::fmt::Display for RenderError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "HTML rewriting failed: {}", self.0)
    }
}

/// What a handler may do to a matched element: the operations `lol_html`'s `Element`
/// and the runtime's `HTMLRewriter` element share. Attribute values are read as raw
/// source text (see [`attr_text`]) and written with `"` escaped but `&` as is (see
/// [`attr_value`]), in both backends.
pub trait PageElement {
    /// The element's tag name (any case; `svg:script` style names are fine).
    fn tag_name(&self) -> String;
    /// The raw value of an attribute.
    fn attribute(&self, name: &str) -> Option<String>;
    /// Sets an attribute (an invalid name is an error).
    fn set_attribute(&mut self, name: &str, value: &str) -> Result<(), String>;
    fn remove_attribute(&mut self, name: &str);
    /// Replaces the element's content, as HTML or as text (escaped).
    fn set_content(&mut self, content: &str, html: bool);
    /// Inserts content around or inside the element.
    fn insert(&mut self, at: InsertPosition, content: &str, html: bool);
    /// Removes the element and its content.
    fn remove(&mut self);
}

/// What runs on each element a selector matches.
pub type OnElement = Box<dyn FnMut(&mut dyn PageElement) -> Result<(), String>>;

/// One selector and its handler.
pub struct ElementHandler {
    pub selector: String,
    pub on_element: OnElement,
    /// From one of the plan's changes (an uncompilable selector is then [`Skipped`]
    /// rather than an error).
    pub from_change: bool,
}

/// A plan as handlers, for a backend to register.
pub struct Handlers {
    pub elements: Vec<ElementHandler>,
    /// HTML appended at the end of the document (the editor script).
    pub end_html: Option<String>,
}

/// HTML attribute-value escaping (for values we build ourselves).
pub fn escape_attr(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// An attribute value as `lol_html` reads it (raw source text, entities included) →
/// its text: the character references HTML source commonly uses are decoded.
pub fn attr_text(raw: &str) -> String {
    if !raw.contains('&') {
        return raw.to_owned();
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let decoded = rest.find(';').filter(|&end| end <= 10).and_then(|end| {
            let name = &rest[1..end];
            let c = match name {
                "amp" => Some('&'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "lt" => Some('<'),
                "gt" => Some('>'),
                _ => name
                    .strip_prefix("#x")
                    .or_else(|| name.strip_prefix("#X"))
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                    .or_else(|| name.strip_prefix('#').and_then(|d| d.parse().ok()))
                    .and_then(char::from_u32),
            }?;
            Some((c, end + 1))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Text → an attribute value for `set_attribute`, which escapes `"` but writes `&` as
/// is: `&` becomes `&amp;` so the browser reads back exactly `text`.
pub fn attr_value(text: &str) -> String {
    text.replace('&', "&amp;")
}

fn on(
    selector: &str,
    f: impl FnMut(&mut dyn PageElement) -> Result<(), String> + 'static,
) -> ElementHandler {
    ElementHandler {
        selector: selector.to_owned(),
        on_element: Box::new(f),
        from_change: false,
    }
}

fn append_style(el: &mut dyn PageElement, declaration: &str) -> Result<(), String> {
    let style = match el.attribute("style") {
        Some(s) if !s.trim().is_empty() => {
            let s = s.trim_end();
            if s.ends_with(';') {
                format!("{s} {declaration}")
            } else {
                format!("{s}; {declaration}")
            }
        }
        _ => declaration.to_owned(),
    };
    el.set_attribute("style", &style)
}

fn apply(el: &mut dyn PageElement, action: &ChangeAction) -> Result<(), String> {
    match action {
        ChangeAction::SetText { text } => el.set_content(text, false),
        ChangeAction::SetHtml { html } => el.set_content(html, true),
        ChangeAction::SetAttribute { name, value } => el.set_attribute(name, &attr_value(value))?,
        ChangeAction::SetStyle { property, value } => {
            append_style(el, &attr_value(&format!("{property}: {value};")))?;
        }
        ChangeAction::Hide => append_style(el, "display: none !important;")?,
        ChangeAction::Insert { position, html } => el.insert(*position, html, true),
        // Not element changes: redirects are answered before the page, custom code is
        // inserted once per page (see `handlers`).
        ChangeAction::Redirect { .. }
        | ChangeAction::CustomCss { .. }
        | ChangeAction::CustomJs { .. } => {}
    }
    Ok(())
}

fn editor_handlers(mode: &EditorMode) -> Vec<ElementHandler> {
    let mut handlers = Vec::new();
    let m = Rc::new(mode.clone());

    // `<base>` goes first in `<head>`; a page without a `<head>` tag gets it just before
    // `<body>`, where the browser's parser puts it into the implied head.
    let base_tag = Rc::new(format!(
        r#"<base href="{}">"#,
        escape_attr(mode.page_url.as_str())
    ));
    let based = Rc::new(std::cell::Cell::new(false));
    let (tag, done) = (Rc::clone(&base_tag), Rc::clone(&based));
    handlers.push(on("head", move |el| {
        if !done.replace(true) {
            el.insert(InsertPosition::Prepend, &tag, true);
        }
        Ok(())
    }));
    handlers.push(on("body", move |el| {
        if !based.replace(true) {
            el.insert(InsertPosition::Before, &base_tag, true);
        }
        Ok(())
    }));
    handlers.push(on("base", |el| {
        el.remove();
        Ok(())
    }));
    handlers.push(on("meta[http-equiv]", |el| {
        let kind = el.attribute("http-equiv").unwrap_or_default();
        let kind = kind.trim();
        if kind.eq_ignore_ascii_case("content-security-policy")
            || kind.eq_ignore_ascii_case("refresh")
            || kind.eq_ignore_ascii_case("x-frame-options")
        {
            el.remove();
        }
        Ok(())
    }));
    for selector in ["a[href]", "area[href]"] {
        let m = Rc::clone(&m);
        handlers.push(on(selector, move |el| {
            if let Some(href) = el.attribute("href")
                && let Some(link) = m.rewrite_link(&attr_text(&href))
            {
                el.set_attribute("href", &attr_value(&link))?;
                // Links that would leave the frame stay in it.
                el.remove_attribute("target");
            }
            Ok(())
        }));
    }
    let forms = Rc::clone(&m);
    handlers.push(on("form", move |el| {
        let action = attr_text(&el.attribute("action").unwrap_or_default());
        let Ok(absolute) = forms.page_url.join(action.trim()) else {
            return Ok(());
        };
        if !matches!(absolute.scheme(), "http" | "https") {
            return Ok(());
        }
        el.remove_attribute("target");
        let method = el.attribute("method").unwrap_or_default();
        if method.trim().eq_ignore_ascii_case("post") {
            // The proxy only fetches with GET: a POST lands on a 405 with a reason.
            el.set_attribute("action", &attr_value(&forms.proxy_link(&absolute)))?;
        } else {
            // A GET submission replaces the action's query with the form's fields, so
            // the target and the token travel as hidden fields instead.
            el.set_attribute("action", &format!("{}/v1/editor", forms.edge_origin))?;
            el.insert(
                InsertPosition::Prepend,
                &format!(
                    r#"<input type="hidden" name="__samplit_url" value="{}"><input type="hidden" name="__samplit_token" value="{}">"#,
                    escape_attr(absolute.as_str()),
                    escape_attr(&forms.token)
                ),
                true,
            );
        }
        Ok(())
    }));
    handlers
}

fn editor_script(mode: &EditorMode) -> String {
    format!(
        r#"<script src="{}/v1/editor.js" data-admin-origin="{}" data-page-url="{}" data-proxy="{}/v1/editor" data-token="{}"></script>"#,
        escape_attr(&mode.edge_origin),
        escape_attr(&mode.admin_origin),
        escape_attr(mode.page_url.as_str()),
        escape_attr(&mode.edge_origin),
        escape_attr(&mode.token),
    )
}

/// The handlers for `plan`: the editor's first (when in editor mode), then one per
/// structural change, in order (redirects are not rewrites and are left out), then the
/// custom CSS's (outside editor mode). Custom JS and the editor script go at the end.
pub fn handlers(plan: &Plan) -> Handlers {
    let mut elements = plan
        .editor
        .as_ref()
        .map(editor_handlers)
        .unwrap_or_default();
    let hosts: Rc<[String]> = plan.site_hosts.clone().into();
    let mut css = String::new();
    let mut js = String::new();
    for change in &plan.changes {
        match change.action() {
            ChangeAction::Redirect { .. } => continue,
            ChangeAction::CustomCss { code } => {
                css.push_str(&format!("<style data-samplit-custom>{code}</style>"));
                continue;
            }
            ChangeAction::CustomJs { code } => {
                js.push_str(&format!("<script data-samplit-custom>{code}</script>"));
                continue;
            }
            _ => {}
        }
        let action = change.action().clone();
        let hosts = Rc::clone(&hosts);
        let mut h = on(change.selector(), move |el| {
            // The rule book again, on the element actually matched.
            if check(
                Target::Element(&el.tag_name()),
                &action,
                SiteHosts::Only(&hosts[..]),
            )
            .is_ok()
            {
                apply(el, &action)?;
            }
            Ok(())
        });
        h.from_change = true;
        elements.push(h);
    }
    // Custom code is for visitors' pages, never for the editor's preview on the edge's
    // own origin.
    if plan.editor.is_some() {
        css.clear();
        js.clear();
    }
    if !css.is_empty() {
        // Just before `<body>`: after the page's own style sheets (so it wins at equal
        // specificity) and before anything is painted. The parser puts it in the head.
        let placed = std::cell::Cell::new(false);
        elements.push(on("body", move |el| {
            if !placed.replace(true) {
                el.insert(InsertPosition::Before, &css, true);
            }
            Ok(())
        }));
    }
    let end_html = match (plan.editor.as_ref().map(editor_script), js.is_empty()) {
        (Some(editor), _) => Some(editor),
        (None, false) => Some(js),
        (None, true) => None,
    };
    Handlers { elements, end_html }
}

/// The variant key of a set of assignments, for caches and ETags: `exp=arm` pairs,
/// sorted, joined with `&` (form-encoded), so two visitors with the same arms share it.
pub fn variant_key(arms: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = arms.iter().collect();
    sorted.sort();
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in sorted {
        s.append_pair(k, v);
    }
    s.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(selector: &str, action: ChangeAction) -> Change {
        Change::new(selector, action).unwrap()
    }

    fn render(changes: Vec<Change>, html: &str) -> String {
        let plan = Plan {
            changes,
            editor: None,
            site_hosts: vec!["shop.example.com".into()],
        };
        // Every chunk size gives the same output.
        let whole = rewrite_str(&plan, html, usize::MAX).unwrap();
        for chunk in [1, 7, 64] {
            assert_eq!(
                rewrite_str(&plan, html, chunk).unwrap(),
                whole,
                "chunk {chunk}"
            );
        }
        whole
    }

    const PAGE: &str = r#"<!doctype html><html><head><title>T</title></head><body>
<h1 id="headline" class="hero big">Original</h1><p class="lead" style="color: red">Lead</p>
<a id="cta" href="/signup">Sign up</a><div id="box"><span>in</span></div></body></html>"#;

    #[test]
    fn each_change_type_is_applied() {
        let out = render(
            vec![
                change(
                    "#headline",
                    ChangeAction::SetText {
                        text: "New <b>".into(),
                    },
                ),
                change(
                    "p.lead",
                    ChangeAction::SetHtml {
                        html: "<em>bold</em>".into(),
                    },
                ),
                change(
                    "#cta",
                    ChangeAction::SetAttribute {
                        name: "href".into(),
                        value: "/pricing".into(),
                    },
                ),
                change(
                    "p.lead",
                    ChangeAction::SetStyle {
                        property: "font-size".into(),
                        value: "20px".into(),
                    },
                ),
                change("#box span", ChangeAction::Hide),
                change(
                    "#box",
                    ChangeAction::Insert {
                        position: InsertPosition::Append,
                        html: "<i>appended</i>".into(),
                    },
                ),
                change(
                    "#box",
                    ChangeAction::Insert {
                        position: InsertPosition::Before,
                        html: "<hr>".into(),
                    },
                ),
            ],
            PAGE,
        );
        assert!(
            out.contains(r#"<h1 id="headline" class="hero big">New &lt;b&gt;</h1>"#),
            "{out}"
        );
        assert!(!out.contains("Original"));
        assert!(
            out.contains(
                r#"<p class="lead" style="color: red; font-size: 20px;"><em>bold</em></p>"#
            ),
            "{out}"
        );
        assert!(out.contains(r#"<a id="cta" href="/pricing">"#), "{out}");
        assert!(
            out.contains(r#"<span style="display: none !important;">in</span>"#),
            "{out}"
        );
        assert!(out.contains(r#"<hr><div id="box">"#), "{out}");
        assert!(out.contains("<i>appended</i></div>"), "{out}");
    }

    #[test]
    fn changes_are_checked_again_on_the_element_they_matched() {
        let attr = |name: &str, value: &str| ChangeAction::SetAttribute {
            name: name.into(),
            value: value.into(),
        };
        let page = r#"<html><head><script class="x">var a = 1;</script><style class="x">p{}</style></head><body>
<p class="x">para</p><form id="f" action="/login"><button class="buy">Buy</button></form><svg><script class="x">b()</script></svg></body></html>"#;
        let out = render(
            vec![
                change(
                    ".x",
                    ChangeAction::SetText {
                        text: "alert(1)".into(),
                    },
                ),
                change(".x", attr("src", "https://evil.example/x.js")),
                change("#f", attr("action", "https://evil.example/steal")),
                change(".buy", attr("formaction", "https://evil.example/steal")),
                change("#f", attr("data-checked", "yes")),
            ],
            page,
        );
        assert!(
            out.contains(r#"<script class="x">var a = 1;</script>"#),
            "{out}"
        );
        assert!(out.contains(r#"<style class="x">p{}</style>"#), "{out}");
        assert!(out.contains(r#"<script class="x">b()</script>"#), "{out}");
        assert!(
            out.contains(r#"<p class="x" src="https://evil.example/x.js">alert(1)</p>"#),
            "ordinary elements still get the change: {out}"
        );
        assert!(
            out.contains(r#"<form id="f" action="/login" data-checked="yes">"#),
            "the off-site action is not applied, the rest is: {out}"
        );
        assert!(out.contains(r#"<button class="buy">"#), "{out}");
        // An action on the site's own host is applied.
        let out = render(
            vec![change(
                "#f",
                attr("action", "https://shop.example.com/login2"),
            )],
            page,
        );
        assert!(
            out.contains(r#"action="https://shop.example.com/login2""#),
            "{out}"
        );
    }

    #[test]
    fn custom_css_goes_before_the_body_and_custom_js_at_the_end() {
        let custom = |action| Change::new("", action).unwrap();
        let changes = vec![
            custom(ChangeAction::CustomCss {
                code: ".cta{color:red}".into(),
            }),
            custom(ChangeAction::CustomJs {
                code: "window.b = 1;".into(),
            }),
        ];
        let out = render(changes.clone(), PAGE);
        assert!(
            out.contains("</head><style data-samplit-custom>.cta{color:red}</style><body>"),
            "{out}"
        );
        assert!(
            out.ends_with("</html><script data-samplit-custom>window.b = 1;</script>"),
            "{out}"
        );
        // Never in the editor's preview.
        let mut plan = editor_plan();
        plan.changes = changes;
        let out = rewrite_str(&plan, PAGE, 64).unwrap();
        assert!(!out.contains("data-samplit-custom"), "{out}");
    }

    #[test]
    fn unsupported_selectors_are_skipped_and_reported() {
        let plan = Plan {
            changes: vec![
                change("h1 + p", ChangeAction::Hide),
                change("#headline", ChangeAction::SetText { text: "ok".into() }),
            ],
            editor: None,
            site_hosts: vec!["shop.example.com".into()],
        };
        let r = Rewriter::new(&plan).unwrap();
        assert_eq!(r.skipped().len(), 1);
        assert_eq!(r.skipped()[0].selector, "h1 + p");
        let out = rewrite_str(&plan, PAGE, 100).unwrap();
        assert!(out.contains(">ok</h1>"));
    }

    #[test]
    fn a_page_without_changes_passes_through_byte_for_byte() {
        assert_eq!(render(vec![], PAGE), PAGE);
    }

    fn editor_plan() -> Plan {
        Plan {
            changes: vec![],
            editor: Some(EditorMode {
                page_url: Url::parse("https://shop.example.com/dir/page?x=1").unwrap(),
                edge_origin: "https://edge.test".into(),
                token: "tok.en".into(),
                admin_origin: "https://app.test".into(),
            }),
            site_hosts: vec!["shop.example.com".into()],
        }
    }

    #[test]
    fn editor_mode_keeps_links_and_forms_in_the_proxy() {
        let html = r##"<html><head><base href="https://evil.net/"><meta http-equiv="Content-Security-Policy" content="script-src 'none'"><meta http-equiv="refresh" content="0;url=https://evil.net"></head><body>
<a href="other">rel</a><a href="/abs?q=1" target="_top">root</a><a href="https://www.example.com/x">abs</a>
<a href="#frag">frag</a><a href="mailto:a@b.c">mail</a><a href="javascript:alert(1)">js</a>
<form action="/search"><input name="q"></form><form method="post" action="/login"></form></body></html>"##;
        let out = rewrite_str(&editor_plan(), html, 13).unwrap();
        let link = |u: &str| {
            format!(
                "https://edge.test/v1/editor?url={}&amp;token=tok.en",
                url::form_urlencoded::byte_serialize(u.as_bytes()).collect::<String>()
            )
        };
        assert!(
            out.contains(&format!(
                r#"href="{}""#,
                link("https://shop.example.com/dir/other")
            )),
            "{out}"
        );
        assert!(
            out.contains(&format!(
                r#"href="{}">root"#,
                link("https://shop.example.com/abs?q=1")
            )),
            "{out}"
        );
        assert!(!out.contains("_top"));
        assert!(out.contains(&format!(r#"href="{}""#, link("https://www.example.com/x"))));
        assert!(out.contains(r##"href="#frag""##));
        assert!(out.contains(r#"href="mailto:a@b.c""#));
        assert!(
            out.contains(r#"href="javascript:alert(1)""#),
            "left alone: not navigable through the proxy"
        );
        assert!(
            out.contains(r#"<head><base href="https://shop.example.com/dir/page?x=1">"#),
            "{out}"
        );
        assert!(!out.contains("evil.net"), "{out}");
        assert!(!out.contains("Content-Security-Policy"));
        assert!(out.contains(r#"<form action="https://edge.test/v1/editor"><input type="hidden" name="__samplit_url" value="https://shop.example.com/search"><input type="hidden" name="__samplit_token" value="tok.en">"#), "{out}");
        assert!(
            out.contains(&format!(
                r#"<form method="post" action="{}">"#,
                link("https://shop.example.com/login")
            )),
            "{out}"
        );
        assert!(out.ends_with(r#"<script src="https://edge.test/v1/editor.js" data-admin-origin="https://app.test" data-page-url="https://shop.example.com/dir/page?x=1" data-proxy="https://edge.test/v1/editor" data-token="tok.en"></script>"#), "{out}");
    }

    #[test]
    fn a_page_without_a_head_tag_gets_its_base_before_the_body() {
        let base = r#"<base href="https://shop.example.com/dir/page?x=1">"#;
        let out = rewrite_str(
            &editor_plan(),
            "<html><body><img src=a.png></body></html>",
            6,
        )
        .unwrap();
        assert!(
            out.starts_with(&format!("<html>{base}<body><img src=a.png>")),
            "{out}"
        );
        let out = rewrite_str(&editor_plan(), "<head></head><body></body>", 6).unwrap();
        assert_eq!(out.matches("<base").count(), 1, "{out}");
        assert!(
            out.starts_with(&format!("<head>{base}</head><body>")),
            "{out}"
        );
    }

    #[test]
    fn values_we_write_into_attributes_are_escaped() {
        assert_eq!(
            escape_attr(r#""><script>'&"#),
            "&quot;&gt;&lt;script&gt;&#39;&amp;"
        );
        let mut plan = editor_plan();
        if let Some(m) = plan.editor.as_mut() {
            m.page_url = Url::parse("https://shop.example.com/a\"><script>x</script>").unwrap();
        }
        let out = rewrite_str(&plan, "<head></head>", 4).unwrap();
        assert!(!out.contains("<script>x"), "{out}");
    }

    #[test]
    fn attribute_entities_are_read_as_text_and_ampersands_written_escaped() {
        assert_eq!(
            attr_text("/a?x=1&amp;y=2&#38;z=&#x33;&lt;&bogus;&"),
            "/a?x=1&y=2&z=3<&bogus;&"
        );
        assert_eq!(attr_value("a&b\"c"), "a&amp;b\"c");
        let out = rewrite_str(&editor_plan(), r#"<a href="/s?a=1&amp;b=2">x</a>"#, 5).unwrap();
        let want = url::form_urlencoded::byte_serialize(b"https://shop.example.com/s?a=1&b=2")
            .collect::<String>();
        assert!(
            out.contains(&format!("url={want}&amp;token=tok.en")),
            "{out}"
        );
        let plan = Plan {
            changes: vec![change(
                "a",
                ChangeAction::SetAttribute {
                    name: "href".into(),
                    value: "/p?a=1&b=2".into(),
                },
            )],
            editor: None,
            site_hosts: vec!["shop.example.com".into()],
        };
        assert_eq!(
            rewrite_str(&plan, "<a href=x>y</a>", 3).unwrap(),
            r#"<a href="/p?a=1&amp;b=2">y</a>"#
        );
    }

    #[test]
    fn variant_keys_are_order_independent() {
        let a = variant_key(&[("e2".into(), "b".into()), ("e1".into(), "a b".into())]);
        let b = variant_key(&[("e1".into(), "a b".into()), ("e2".into(), "b".into())]);
        assert_eq!(a, b);
        assert_eq!(a, "e1=a+b&e2=b");
    }
}
