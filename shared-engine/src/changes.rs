//! The visual editor's change model: an element selector plus an action, and the one
//! rule book ([`check`]) that decides what a change may do to a page.
//!
//! A variant is a list of [`Change`]s applied to the page (set text, set HTML, set an
//! attribute or a style property, hide, insert HTML, redirect — the *structural* types —
//! and the admin-only `custom_css` / `custom_js`). Three places apply or accept changes,
//! and all three ask [`check`]:
//!
//! - the control plane when a change is **saved** (`Target::Selector`, with the site's
//!   domains as [`SiteHosts::Only`]) — a refusal is a 422 naming the change;
//! - every deserialisation (`serde(try_from)`: snapshots, editor tokens, stored rows) via
//!   [`Change::new`] (`Target::Selector`, [`SiteHosts::Unknown`]), so a change held by a
//!   snapshot always passed the context-free rules;
//! - the edge's HTML rewriter when it **applies** a change to an element
//!   (`Target::Element` with the element's real tag name, and the snapshot's hosts), so
//!   `.x` matching a `<script>` is skipped there. The browser snippet mirrors the same
//!   rules in JS (`edge-worker/snippet/samplit.js`, `allowedChange`).
//!
//! The rules (structural types cannot produce script):
//! - **targets**: never [`FORBIDDEN_TARGETS`] (`script`, `style`, `base`, `link`, `meta`,
//!   frames, plug-ins, `template`, `noscript`, SVG animation and `foreignObject`). Saved
//!   changes are checked by the subject type selector(s) of their CSS selector
//!   ([`subject_tags`]: the last compound of each complex selector, including the
//!   arguments of `:is()`/`:where()`/`:matches()`/`:nth-child(… of S)`), applied ones by
//!   the element's tag;
//! - **selectors**: non-empty, at most [`MAX_SELECTOR_LEN`] bytes, without `<`, `{`,
//!   `}`, `;`, comments or control characters, balanced `[]`/`()` nested at most
//!   [`MAX_SELECTOR_NESTING`] deep;
//! - **attributes**: plain names, never event handlers (`on*`), `srcdoc` or
//!   `http-equiv`; `style` values as for `set_style`;
//! - **URLs** (`href`, `src`, `srcset`, `action`, `formaction`, … [`URL_ATTRIBUTES`], and
//!   redirects): only absolute `http:`/`https:` URLs with a host and no userinfo, or
//!   relative URLs that are not protocol-relative (`//host`, `/\host`, `\\host`); no
//!   control characters or surrounding whitespace (browsers strip them, which is how
//!   `java\tscript:` obfuscation works), no character references;
//! - **navigation stays on the site**: a form's `action`, a button's `formaction` and a
//!   redirect that are absolute must name one of the site's hosts (when known);
//! - **styles**: no `expression(`, `javascript:`/`vbscript:`, `@import`, `behavior`,
//!   `-moz-binding`, braces, angle brackets, backslashes or control characters;
//! - **HTML content** (`set_html`, `insert`) is sanitised by the control plane (ammonia)
//!   before it is stored; here only its size is bounded. `set_text` is inserted as text,
//!   and since it can never target `<script>`/`<style>`, text never becomes code.
//!
//! Custom code (`custom_css`, `custom_js`) is the deliberate exception: it has no
//! selector, is at most [`MAX_CUSTOM_CODE_LEN`] bytes, must not close its own element
//! (`</style`, `</script`, `<!--`), and only owners and admins may save it (the control
//! plane enforces the role; see `docs/permissions.md`).
//!
//! The selector reader is hand-written: the engine is `no_std`, and the selector
//! parsers that exist (`selectors`/`cssparser`, which `lol_html` uses) need `std` and
//! would add hundreds of KB to the Worker for one question — which element types can a
//! selector's subject be.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use serde::{Deserialize, Serialize};

/// Longest selector accepted (bytes).
pub const MAX_SELECTOR_LEN: usize = 1024;
/// Deepest `()`/`[]` nesting accepted in a selector.
pub const MAX_SELECTOR_NESTING: usize = 8;
/// Longest text or HTML payload accepted (bytes).
pub const MAX_CONTENT_LEN: usize = 256 * 1024;
/// Longest attribute value, style value or URL accepted (bytes).
pub const MAX_VALUE_LEN: usize = 8 * 1024;
/// Longest custom CSS or custom JS accepted (bytes).
pub const MAX_CUSTOM_CODE_LEN: usize = 64 * 1024;

/// Elements no structural change may target (compared ASCII case-insensitively): they
/// run script, load code, change how URLs resolve, or hold raw text a browser executes.
pub const FORBIDDEN_TARGETS: &[&str] = &[
    "script",
    "style",
    "base",
    "link",
    "meta",
    "iframe",
    "frame",
    "frameset",
    "object",
    "embed",
    "applet",
    "param",
    "template",
    "noscript",
    "animate",
    "set",
    "animatemotion",
    "animatetransform",
    "animatecolor",
    "foreignobject",
    "handler",
];

/// Attributes whose value is a URL (or a list of them) the browser may load or
/// navigate to.
pub const URL_ATTRIBUTES: &[&str] = &[
    "href",
    "src",
    "srcset",
    "imagesrcset",
    "action",
    "formaction",
    "xlink:href",
    "xml:base",
    "data",
    "poster",
    "background",
    "cite",
    "ping",
    "manifest",
    "codebase",
    "classid",
    "archive",
    "longdesc",
    "lowsrc",
    "dynsrc",
    "profile",
    "usemap",
    "icon",
];

/// Attributes whose absolute URLs must stay on the site's hosts (they send the
/// visitor's form data or the visitor elsewhere).
const SITE_ONLY_ATTRIBUTES: &[&str] = &["action", "formaction"];

/// Why a change was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeError {
    /// The selector is empty.
    EmptySelector,
    /// The selector is longer than [`MAX_SELECTOR_LEN`].
    SelectorTooLong(usize),
    /// The selector contains a character a CSS selector cannot (`<`, `{`, `}`, `;`,
    /// a control character), a comment, or unbalanced or too deep brackets.
    InvalidSelector(String),
    /// The change targets (or its selector's subject is) an element no structural
    /// change may touch ([`FORBIDDEN_TARGETS`]).
    ForbiddenTarget(String),
    /// An attribute name that is not a plain name, or is an event handler / `srcdoc` /
    /// `http-equiv`.
    UnsafeAttribute(String),
    /// A style property name that is not a CSS identifier, or one that loads code.
    InvalidStyleProperty(String),
    /// A style value that could escape its declaration or run script.
    UnsafeStyleValue(String),
    /// A URL that is neither absolute http(s) nor relative, or is obfuscated.
    UnsafeUrl(String),
    /// A form action or redirect to a host that is not the site's.
    OffSiteUrl(String),
    /// A redirect that is neither absolute http(s) nor root-relative.
    InvalidRedirect(String),
    /// Custom code given a selector (it applies to the whole page).
    CustomCodeSelector,
    /// Custom code that would close its own element.
    UnsafeCustomCode(&'static str),
    /// A payload longer than its limit.
    TooLong {
        /// Which field.
        field: &'static str,
        /// Its length.
        len: usize,
    },
}

impl fmt::Display for ChangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EmptySelector => write!(f, "the selector is empty"),
            Self::SelectorTooLong(n) => {
                write!(f, "the selector has {n} bytes, at most {MAX_SELECTOR_LEN}")
            }
            Self::InvalidSelector(s) => write!(f, "{s:?} is not a valid CSS selector"),
            Self::ForbiddenTarget(t) => write!(
                f,
                "changes may not target <{t}> elements (they could run or load code); \
                 use a custom_js or custom_css change (owners and admins)"
            ),
            Self::UnsafeAttribute(s) => write!(f, "attribute {s:?} is not allowed"),
            Self::InvalidStyleProperty(s) => {
                write!(f, "{s:?} is not an allowed CSS property name")
            }
            Self::UnsafeStyleValue(s) => write!(f, "style value {s:?} is not allowed"),
            Self::UnsafeUrl(s) => write!(
                f,
                "URL {s:?} is not allowed: use an absolute http(s) URL or a relative one"
            ),
            Self::OffSiteUrl(s) => write!(f, "URL {s:?} leaves the site's domains"),
            Self::InvalidRedirect(s) => write!(
                f,
                "redirect {s:?} must be an absolute http(s) URL or start with a single /"
            ),
            Self::CustomCodeSelector => write!(
                f,
                "custom code applies to the whole page: leave out the selector"
            ),
            Self::UnsafeCustomCode(why) => write!(f, "custom code {why}"),
            Self::TooLong { field, len } => write!(f, "{field} is too long ({len} bytes)"),
        }
    }
}

impl core::error::Error for ChangeError {}

/// Where [`ChangeAction::Insert`] puts its HTML relative to the selected element.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InsertPosition {
    /// Before the element.
    Before,
    /// After the element.
    After,
    /// As the element's first child.
    Prepend,
    /// As the element's last child.
    Append,
}

/// What to do to the selected element(s). Serialised with a `type` tag, e.g.
/// `{"type": "set_attribute", "name": "href", "value": "/pricing"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChangeAction {
    /// Replace the element's text content.
    SetText {
        /// The text (inserted as text, never parsed as HTML).
        text: String,
    },
    /// Replace the element's inner HTML (sanitised by the control plane).
    SetHtml {
        /// The HTML.
        html: String,
    },
    /// Set an attribute.
    SetAttribute {
        /// Attribute name (never `on*`, `srcdoc` or `http-equiv`).
        name: String,
        /// Attribute value.
        value: String,
    },
    /// Set one inline style property.
    SetStyle {
        /// CSS property name, e.g. `background-color`.
        property: String,
        /// CSS value, e.g. `#ff0000`.
        value: String,
    },
    /// Hide the element.
    Hide,
    /// Insert HTML (sanitised by the control plane) relative to the element.
    Insert {
        /// Where.
        position: InsertPosition,
        /// The HTML.
        html: String,
    },
    /// Redirect the visitor (split-URL test) to another page of the same site.
    Redirect {
        /// Absolute http(s) URL on one of the site's hosts, or a root-relative path.
        url: String,
    },
    /// Page-wide CSS, added as a `<style>` element (owners and admins only).
    CustomCss {
        /// The style sheet.
        code: String,
    },
    /// Page-wide JavaScript, added as a `<script>` element (owners and admins only).
    CustomJs {
        /// The script.
        code: String,
    },
}

impl ChangeAction {
    /// Whether this is custom code (`custom_css`, `custom_js`) rather than a
    /// structural change.
    #[must_use]
    pub fn is_custom_code(&self) -> bool {
        matches!(self, Self::CustomCss { .. } | Self::CustomJs { .. })
    }
}

/// One change: `{"selector": "#hero h1", "action": {"type": "set_text", "text": "Hi"}}`,
/// or custom code without a selector: `{"action": {"type": "custom_css", "code": "…"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "ChangeRaw")]
pub struct Change {
    #[serde(skip_serializing_if = "String::is_empty")]
    selector: String,
    action: ChangeAction,
}

#[derive(Deserialize)]
struct ChangeRaw {
    #[serde(default)]
    selector: String,
    action: ChangeAction,
}

impl TryFrom<ChangeRaw> for Change {
    type Error = ChangeError;
    fn try_from(r: ChangeRaw) -> Result<Self, Self::Error> {
        Self::new(r.selector, r.action)
    }
}

/// What a change is checked against: its CSS selector (when saved or deserialised) or
/// the tag name of an element it matched (when applied).
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// A CSS selector: its subject type selectors are checked.
    Selector(&'a str),
    /// An element's tag name (`"SCRIPT"`, `"a"`, `"svg:script"`, …).
    Element(&'a str),
}

/// The hosts a form action or redirect may point to.
#[derive(Debug, Clone, Copy)]
pub enum SiteHosts<'a> {
    /// Not known here (deserialisation): host rules are checked where they are.
    Unknown,
    /// The site's hosts (lower case; a trailing dot and a port are ignored).
    Only(&'a [String]),
}

impl SiteHosts<'_> {
    fn allows(&self, host: &str) -> bool {
        match self {
            Self::Unknown => true,
            Self::Only(hosts) => {
                let host = host.trim_end_matches('.');
                hosts.iter().any(|h| {
                    let h = h.split(':').next().unwrap_or("").trim_end_matches('.');
                    h.eq_ignore_ascii_case(host)
                })
            }
        }
    }
}

impl Change {
    /// A change that passes [`check`] with its selector and no host context.
    pub fn new(selector: impl Into<String>, action: ChangeAction) -> Result<Self, ChangeError> {
        let selector = selector.into();
        check(Target::Selector(&selector), &action, SiteHosts::Unknown)?;
        Ok(Self { selector, action })
    }

    /// The CSS selector (empty for custom code).
    #[must_use]
    pub fn selector(&self) -> &str {
        &self.selector
    }

    /// The action.
    #[must_use]
    pub fn action(&self) -> &ChangeAction {
        &self.action
    }

    /// Whether this is custom code (`custom_css`, `custom_js`).
    #[must_use]
    pub fn is_custom_code(&self) -> bool {
        self.action.is_custom_code()
    }

    /// [`check`] against a site's hosts, by selector (saving; redirects at the edge).
    pub fn check_for_site(&self, hosts: SiteHosts<'_>) -> Result<(), ChangeError> {
        check(Target::Selector(&self.selector), &self.action, hosts)
    }

    /// [`check`] against an element the selector matched (applying).
    pub fn check_on_element(&self, tag: &str, hosts: SiteHosts<'_>) -> Result<(), ChangeError> {
        check(Target::Element(tag), &self.action, hosts)
    }
}

/// The one rule book (see the module docs): may `action` be applied to `target` on a
/// site with `hosts`? Custom code ignores the target (it has none).
pub fn check(
    target: Target<'_>,
    action: &ChangeAction,
    hosts: SiteHosts<'_>,
) -> Result<(), ChangeError> {
    if let ChangeAction::CustomCss { code } | ChangeAction::CustomJs { code } = action {
        if let Target::Selector(s) = target
            && !s.trim().is_empty()
        {
            return Err(ChangeError::CustomCodeSelector);
        }
        return check_custom_code(action, code);
    }
    match target {
        Target::Selector(selector) => {
            validate_selector(selector)?;
            for tag in subject_tags(selector)? {
                check_target_tag(&tag)?;
            }
        }
        Target::Element(tag) => check_target_tag(tag)?,
    }
    validate_action(action, hosts)
}

/// Whether a structural change may touch an element with this tag name.
#[must_use]
pub fn is_forbidden_target(tag: &str) -> bool {
    // `svg:script` and the like: the local name decides.
    let local = tag.rsplit([':', '|']).next().unwrap_or(tag);
    FORBIDDEN_TARGETS
        .iter()
        .any(|f| f.eq_ignore_ascii_case(local))
}

fn check_target_tag(tag: &str) -> Result<(), ChangeError> {
    if is_forbidden_target(tag) {
        Err(ChangeError::ForbiddenTarget(tag.to_ascii_lowercase()))
    } else {
        Ok(())
    }
}

fn check_custom_code(action: &ChangeAction, code: &str) -> Result<(), ChangeError> {
    check_len("code", code, MAX_CUSTOM_CODE_LEN)?;
    if code
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(ChangeError::UnsafeCustomCode(
            "must not contain control characters",
        ));
    }
    let lower = code.to_ascii_lowercase();
    match action {
        ChangeAction::CustomCss { .. } if lower.contains("</style") => Err(
            ChangeError::UnsafeCustomCode("(CSS) must not contain \"</style\""),
        ),
        // `<!--` in a script element can make the parser swallow what follows it.
        ChangeAction::CustomJs { .. } if lower.contains("</script") || lower.contains("<!--") => {
            Err(ChangeError::UnsafeCustomCode(
                "(JS) must not contain \"</script\" or \"<!--\" (write \"<\\/script\")",
            ))
        }
        _ => Ok(()),
    }
}

/// Checks a CSS selector's syntax (also used for multi-element experiments' element
/// selectors and click goals).
pub fn validate_selector(selector: &str) -> Result<(), ChangeError> {
    if selector.trim().is_empty() {
        return Err(ChangeError::EmptySelector);
    }
    if selector.len() > MAX_SELECTOR_LEN {
        return Err(ChangeError::SelectorTooLong(selector.len()));
    }
    let bad = || ChangeError::InvalidSelector(selector.into());
    if selector.contains("/*") {
        return Err(bad());
    }
    let mut brackets = 0i32;
    let mut parens = 0i32;
    for c in selector.chars() {
        match c {
            '<' | '{' | '}' | ';' => return Err(bad()),
            c if c.is_control() => return Err(bad()),
            '[' => brackets += 1,
            ']' => brackets -= 1,
            '(' => parens += 1,
            ')' => parens -= 1,
            _ => {}
        }
        if brackets < 0 || parens < 0 || brackets + parens > MAX_SELECTOR_NESTING as i32 {
            return Err(bad());
        }
    }
    if brackets != 0 || parens != 0 {
        return Err(bad());
    }
    Ok(())
}

// -- the selector's subjects ---------------------------------------------------------

/// The element types a selector's subjects name, lower case: for each complex
/// selector of the list, the type selector of its last compound (`div > a.x` → `a`,
/// `svg|script` → `script`, `.x` → none), and the subjects of `:is()`, `:where()`,
/// `:matches()`, `:any()`, `::slotted()`, `:host()` and `:nth-child(… of S)` arguments
/// in that compound. CSS escapes are decoded (`scr\69 pt` → `script`). `*` is not
/// listed. Errors only for a selector [`validate_selector`] refuses.
pub fn subject_tags(selector: &str) -> Result<Vec<String>, ChangeError> {
    validate_selector(selector)?;
    let cs: Vec<char> = selector.chars().collect();
    let mut out = Vec::new();
    list_subjects(&cs, &mut out, 0);
    Ok(out)
}

/// Chars in a CSS escape starting at `cs[i] == '\\'`: hex digits (1–6) and one
/// whitespace after them, or the one escaped character.
fn escape_len(cs: &[char], i: usize) -> usize {
    let mut j = i + 1;
    if j >= cs.len() {
        return 1;
    }
    if !cs[j].is_ascii_hexdigit() {
        return 2;
    }
    let start = j;
    while j < cs.len() && j - start < 6 && cs[j].is_ascii_hexdigit() {
        j += 1;
    }
    if j < cs.len() && matches!(cs[j], ' ' | '\t' | '\n' | '\r' | '\x0c') {
        j += 1;
    }
    j - i
}

/// The character an escape at `cs[i]` stands for.
fn decode_escape(cs: &[char], i: usize) -> char {
    let hex: String = cs[i + 1..]
        .iter()
        .take(6)
        .take_while(|c| c.is_ascii_hexdigit())
        .collect();
    if hex.is_empty() {
        cs.get(i + 1).copied().unwrap_or('\u{FFFD}')
    } else {
        u32::from_str_radix(&hex, 16)
            .ok()
            .and_then(char::from_u32)
            .filter(|&c| c != '\0')
            .unwrap_or('\u{FFFD}')
    }
}

/// Index of the bracket closing the one at `cs[open]` (strings and escapes skipped),
/// or the end.
fn closing(cs: &[char], open: usize) -> usize {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut i = open;
    while i < cs.len() {
        let c = cs[i];
        if c == '\\' {
            i += escape_len(cs, i);
            continue;
        }
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '"' | '\'' => quote = Some(c),
                '(' | '[' => depth += 1,
                ')' | ']' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        return i;
                    }
                }
                _ => {}
            },
        }
        i += 1;
    }
    cs.len()
}

/// Splits at top-level (outside brackets, strings and escapes) characters `sep`
/// accepts; returns each part's start and end.
fn top_level_split(cs: &[char], sep: impl Fn(char) -> bool) -> Vec<(usize, usize)> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < cs.len() {
        let c = cs[i];
        if c == '\\' {
            i += escape_len(cs, i);
            continue;
        }
        if matches!(c, '(' | '[' | '"' | '\'') {
            i = if matches!(c, '"' | '\'') {
                // A stray quote at the top level: up to its match.
                cs[i + 1..]
                    .iter()
                    .position(|&d| d == c)
                    .map_or(cs.len(), |p| i + 1 + p)
            } else {
                closing(cs, i)
            } + 1;
            continue;
        }
        if sep(c) {
            parts.push((start, i));
            start = i + 1;
        }
        i += 1;
    }
    parts.push((start, cs.len().max(start)));
    parts
}

/// Trims CSS whitespace (ASCII only).
fn trim(cs: &[char]) -> &[char] {
    let start = cs
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(cs.len());
    let end = cs
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &cs[start..end.max(start)]
}

fn list_subjects(cs: &[char], out: &mut Vec<String>, depth: usize) {
    if depth > MAX_SELECTOR_NESTING {
        return;
    }
    for (s, e) in top_level_split(cs, |c| c == ',') {
        let complex = trim(&cs[s..e.min(cs.len())]);
        // The last compound: after the last top-level combinator.
        let parts = top_level_split(complex, |c| {
            c.is_ascii_whitespace() || matches!(c, '>' | '+' | '~')
        });
        if let Some(&(s, e)) = parts.iter().rev().find(|(s, e)| e > s) {
            compound_subjects(&complex[s..e], out, depth);
        }
    }
}

/// CSS identifier characters: ASCII letters, digits, `-`, `_` and any non-ASCII.
fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_') || !c.is_ascii()
}

/// Reads an identifier at `cs[i]` (escapes decoded); returns it and the index after.
fn read_ident(cs: &[char], mut i: usize) -> (String, usize) {
    let mut s = String::new();
    while i < cs.len() {
        let c = cs[i];
        if c == '\\' {
            s.push(decode_escape(cs, i));
            i += escape_len(cs, i);
        } else if is_ident_char(c) {
            s.push(c);
            i += 1;
        } else {
            break;
        }
    }
    (s, i)
}

fn compound_subjects(cs: &[char], out: &mut Vec<String>, depth: usize) {
    // The type selector: `tag`, `*`, `ns|tag`, `*|tag`, `|tag`.
    let mut i = 0;
    let mut name = String::new();
    if cs.first() == Some(&'*') {
        name.push('*');
        i = 1;
    } else if cs.first().is_some_and(|&c| c == '\\' || is_ident_char(c)) {
        (name, i) = read_ident(cs, 0);
    }
    if cs.get(i) == Some(&'|') && cs.get(i + 1) != Some(&'=') {
        i += 1;
        if cs.get(i) == Some(&'*') {
            name = "*".into();
            i += 1;
        } else {
            (name, i) = read_ident(cs, i);
        }
    }
    // HTML matches type selectors ASCII case-insensitively.
    if !name.is_empty() && name != "*" {
        out.push(name.to_ascii_lowercase());
    }
    // Functional pseudo-classes whose arguments are (or hold) the subject.
    while i < cs.len() {
        let c = cs[i];
        if c == '\\' {
            i += escape_len(cs, i);
            continue;
        }
        if matches!(c, '(' | '[') {
            i = closing(cs, i) + 1;
            continue;
        }
        if c != ':' {
            i += 1;
            continue;
        }
        let mut k = i + 1;
        if cs.get(k) == Some(&':') {
            k += 1;
        }
        let (pseudo, after) = read_ident(cs, k);
        if cs.get(after) != Some(&'(') {
            i = after.max(i + 1);
            continue;
        }
        let close = closing(cs, after);
        let arg = &cs[after + 1..close.min(cs.len())];
        let pseudo = pseudo.to_ascii_lowercase();
        match pseudo.as_str() {
            "is" | "where" | "matches" | "any" | "-webkit-any" | "-moz-any" | "slotted"
            | "host" | "host-context" | "current" | "past" | "future" => {
                list_subjects(arg, out, depth + 1);
            }
            "nth-child" | "nth-last-child" => {
                // `:nth-child(2n of S)`: the element must match S.
                let parts = top_level_split(arg, |c| c.is_ascii_whitespace());
                if let Some(pos) = parts.iter().position(|&(s, e)| {
                    let word: String = arg[s..e].iter().collect();
                    word.eq_ignore_ascii_case("of")
                }) {
                    let from = parts[pos].1;
                    list_subjects(&arg[from..], out, depth + 1);
                }
            }
            _ => {}
        }
        i = close + 1;
    }
}

// -- actions -----------------------------------------------------------------------

fn check_len(field: &'static str, s: &str, max: usize) -> Result<(), ChangeError> {
    if s.len() > max {
        Err(ChangeError::TooLong {
            field,
            len: s.len(),
        })
    } else {
        Ok(())
    }
}

fn validate_action(action: &ChangeAction, hosts: SiteHosts<'_>) -> Result<(), ChangeError> {
    match action {
        ChangeAction::SetText { text } => check_len("text", text, MAX_CONTENT_LEN),
        ChangeAction::SetHtml { html } | ChangeAction::Insert { html, .. } => {
            check_len("html", html, MAX_CONTENT_LEN)
        }
        ChangeAction::SetAttribute { name, value } => {
            check_len("value", value, MAX_VALUE_LEN)?;
            validate_attribute_name(name)?;
            let lower = name.to_ascii_lowercase();
            if lower == "srcset" || lower == "imagesrcset" {
                check_srcset(value)?;
            } else if lower == "ping" {
                for url in value.split_ascii_whitespace() {
                    check_url(url)?;
                }
            } else if URL_ATTRIBUTES.contains(&lower.as_str()) {
                let host = check_url(value)?;
                if SITE_ONLY_ATTRIBUTES.contains(&lower.as_str())
                    && let Some(host) = host
                    && !hosts.allows(&host)
                {
                    return Err(ChangeError::OffSiteUrl(value.clone()));
                }
            }
            if lower == "style" {
                check_style_value(value, true)?;
            }
            Ok(())
        }
        ChangeAction::SetStyle { property, value } => {
            check_len("value", value, MAX_VALUE_LEN)?;
            let body = property.trim_start_matches('-');
            let lower = property.to_ascii_lowercase();
            let ok = property.len() - body.len() <= 2
                && body.starts_with(|c: char| c.is_ascii_alphabetic())
                && body.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && property.len() <= 128
                && lower != "behavior"
                && lower != "-moz-binding";
            if !ok {
                return Err(ChangeError::InvalidStyleProperty(property.clone()));
            }
            check_style_value(value, false)
        }
        ChangeAction::Hide => Ok(()),
        ChangeAction::Redirect { url } => {
            check_len("url", url, MAX_VALUE_LEN)?;
            validate_redirect(url)?;
            match check_url(url)? {
                Some(host) if !hosts.allows(&host) => Err(ChangeError::OffSiteUrl(url.clone())),
                _ => Ok(()),
            }
        }
        // Checked by `check` before it gets here.
        ChangeAction::CustomCss { code } | ChangeAction::CustomJs { code } => {
            check_custom_code(action, code)
        }
    }
}

fn validate_attribute_name(name: &str) -> Result<(), ChangeError> {
    let bad = || ChangeError::UnsafeAttribute(name.into());
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':');
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '.' | '-'));
    if !first_ok || !rest_ok || name.len() > 128 {
        return Err(bad());
    }
    let lower = name.to_ascii_lowercase();
    // Event handlers (onclick, onerror, …) run script; srcdoc embeds a document;
    // http-equiv turns a meta into a header (refresh, CSP).
    if lower.starts_with("on") || lower == "srcdoc" || lower == "http-equiv" {
        return Err(bad());
    }
    Ok(())
}

/// The host of an absolute `http(s)` URL (`Some`, lower case) or `None` for a relative
/// URL; anything else — another scheme, a protocol-relative URL, userinfo, control
/// characters or surrounding whitespace, character references — is refused.
pub fn check_url(url: &str) -> Result<Option<String>, ChangeError> {
    let bad = || ChangeError::UnsafeUrl(url.into());
    // Browsers drop tabs and newlines anywhere and C0 controls and spaces around a URL
    // before reading its scheme (`java\tscript:`); we refuse them instead.
    if url.chars().any(char::is_control)
        || url.starts_with(char::is_whitespace)
        || url.ends_with(char::is_whitespace)
    {
        return Err(bad());
    }
    let lower = url.to_ascii_lowercase();
    if ["&#", "&colon", "&tab", "&newline"]
        .iter()
        .any(|r| lower.contains(r))
    {
        return Err(bad());
    }
    // A scheme is ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) before the first ':'.
    let scheme_end = lower
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
        .filter(|&i| {
            i > 0 && lower.as_bytes()[i] == b':' && lower.as_bytes()[0].is_ascii_alphabetic()
        });
    let Some(end) = scheme_end else {
        // Relative: not `//host`, `/\host`, `\\host` or `\/host` (another host).
        let mut first = url.chars().take(2);
        let slash = |c: Option<char>| matches!(c, Some('/' | '\\'));
        return if slash(first.next()) && slash(first.next()) {
            Err(bad())
        } else {
            Ok(None)
        };
    };
    if !matches!(&lower[..end], "http" | "https") {
        return Err(bad());
    }
    let Some(rest) = lower[end + 1..].strip_prefix("//") else {
        return Err(bad());
    };
    let authority = rest.split(['/', '?', '#', '\\']).next().unwrap_or("");
    if authority.contains('@') || authority.chars().any(char::is_whitespace) {
        return Err(bad());
    }
    let host = if authority.starts_with('[') {
        authority.find(']').map_or(authority, |i| &authority[..=i])
    } else {
        authority.split(':').next().unwrap_or("")
    };
    let host = host.trim_end_matches('.');
    if host.is_empty() {
        return Err(bad());
    }
    Ok(Some(host.into()))
}

/// A `srcset`: comma-separated candidates, each a URL and an optional descriptor.
fn check_srcset(value: &str) -> Result<(), ChangeError> {
    for candidate in value.split(',') {
        let candidate = candidate.trim_matches(|c: char| c == ' ');
        if let Some(url) = candidate.split(' ').next().filter(|u| !u.is_empty()) {
            check_url(url)?;
        }
        if candidate.chars().any(char::is_control) {
            return Err(ChangeError::UnsafeUrl(value.into()));
        }
    }
    Ok(())
}

/// A style value must stay inside its declaration and not run script.
fn check_style_value(value: &str, declarations: bool) -> Result<(), ChangeError> {
    let lower = value.to_ascii_lowercase();
    let escapes = value.chars().any(|c| {
        matches!(c, '{' | '}' | '<' | '>' | '\\') || c.is_control() || (!declarations && c == ';')
    });
    let script = lower.contains("expression(")
        || lower.contains("javascript:")
        || lower.contains("vbscript:")
        || lower.contains("@import")
        || lower
            .match_indices("behavior")
            .any(|(i, _)| !lower[..i].ends_with('-'))
        || lower.contains("-moz-binding")
        || lower.contains("/*");
    if escapes || script {
        Err(ChangeError::UnsafeStyleValue(value.into()))
    } else {
        Ok(())
    }
}

fn validate_redirect(url: &str) -> Result<(), ChangeError> {
    let bad = || ChangeError::InvalidRedirect(url.into());
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    let lower = url.to_ascii_lowercase();
    for scheme in ["https://", "http://"] {
        if let Some(rest) = lower.strip_prefix(scheme) {
            let host = rest.split(['/', '?', '#']).next().unwrap_or("");
            return if host.is_empty() || host.contains('\\') {
                Err(bad())
            } else {
                Ok(())
            };
        }
    }
    // Root-relative, but not protocol-relative (`//evil.example`) or `/\evil.example`,
    // which browsers treat as another host.
    if url.starts_with('/') && !url.starts_with("//") && !url.starts_with("/\\") {
        Ok(())
    } else {
        Err(bad())
    }
}
