//! The visual editor's change model: an element selector plus an action.
//!
//! A variant is a list of [`Change`]s the edge applies to the page (set text, set HTML,
//! set an attribute or a style property, hide, insert HTML, redirect). Everything is
//! validated when a change is created or deserialised (`serde(try_from)`), so a change
//! held by a snapshot is always structurally safe:
//!
//! - selectors are non-empty, at most [`MAX_SELECTOR_LEN`] bytes, without `<`, `{`, `}`,
//!   `;` or control characters, with balanced `[]`/`()` — a CSS selector, not markup;
//! - attribute names are plain names and never event handlers (`on*`) or `srcdoc`;
//! - URL-bearing attributes and redirects never carry `javascript:`, `vbscript:` or
//!   `data:text/html` (checked after removing the whitespace and control characters
//!   browsers ignore, and refusing character references that could spell them);
//! - redirects are absolute `http(s)` URLs or root-relative paths (not `//host`).
//!
//! HTML *content* (`SetHtml`, `Insert`) is sanitised by the control plane (ammonia)
//! before it is stored; this module only bounds its size.

use alloc::string::String;
use core::fmt;

use serde::{Deserialize, Serialize};

/// Longest selector accepted (bytes).
pub const MAX_SELECTOR_LEN: usize = 1024;
/// Longest text or HTML payload accepted (bytes).
pub const MAX_CONTENT_LEN: usize = 256 * 1024;
/// Longest attribute value, style value or URL accepted (bytes).
pub const MAX_VALUE_LEN: usize = 8 * 1024;

/// Why a change was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeError {
    /// The selector is empty.
    EmptySelector,
    /// The selector is longer than [`MAX_SELECTOR_LEN`].
    SelectorTooLong(usize),
    /// The selector contains a character a CSS selector cannot (`<`, `{`, `}`, `;`,
    /// a control character) or unbalanced brackets.
    InvalidSelector(String),
    /// An attribute name that is not a plain name, or is an event handler / `srcdoc`.
    UnsafeAttribute(String),
    /// A style property name that is not a CSS identifier.
    InvalidStyleProperty(String),
    /// A style value that could escape its declaration or run script.
    UnsafeStyleValue(String),
    /// A URL with a script scheme or character references.
    UnsafeUrl(String),
    /// A redirect that is neither absolute http(s) nor root-relative.
    InvalidRedirect(String),
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
            Self::UnsafeAttribute(s) => write!(f, "attribute {s:?} is not allowed"),
            Self::InvalidStyleProperty(s) => write!(f, "{s:?} is not a CSS property name"),
            Self::UnsafeStyleValue(s) => write!(f, "style value {s:?} is not allowed"),
            Self::UnsafeUrl(s) => write!(f, "URL {s:?} is not allowed"),
            Self::InvalidRedirect(s) => write!(
                f,
                "redirect {s:?} must be an absolute http(s) URL or start with a single /"
            ),
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
        /// Attribute name (never `on*` or `srcdoc`).
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
    /// Redirect the visitor (split-URL test).
    Redirect {
        /// Absolute http(s) URL or root-relative path.
        url: String,
    },
}

/// One change: `{"selector": "#hero h1", "action": {"type": "set_text", "text": "Hi"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "ChangeRaw")]
pub struct Change {
    selector: String,
    action: ChangeAction,
}

#[derive(Deserialize)]
struct ChangeRaw {
    selector: String,
    action: ChangeAction,
}

impl TryFrom<ChangeRaw> for Change {
    type Error = ChangeError;
    fn try_from(r: ChangeRaw) -> Result<Self, Self::Error> {
        Self::new(r.selector, r.action)
    }
}

impl Change {
    /// A validated change (see the module docs for the rules).
    pub fn new(selector: impl Into<String>, action: ChangeAction) -> Result<Self, ChangeError> {
        let selector = selector.into();
        validate_selector(&selector)?;
        validate_action(&action)?;
        Ok(Self { selector, action })
    }

    /// The CSS selector.
    #[must_use]
    pub fn selector(&self) -> &str {
        &self.selector
    }

    /// The action.
    #[must_use]
    pub fn action(&self) -> &ChangeAction {
        &self.action
    }
}

/// Checks a CSS selector (also used for multi-element experiments' element selectors).
pub fn validate_selector(selector: &str) -> Result<(), ChangeError> {
    if selector.trim().is_empty() {
        return Err(ChangeError::EmptySelector);
    }
    if selector.len() > MAX_SELECTOR_LEN {
        return Err(ChangeError::SelectorTooLong(selector.len()));
    }
    let bad = || ChangeError::InvalidSelector(selector.into());
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
        if brackets < 0 || parens < 0 {
            return Err(bad());
        }
    }
    if brackets != 0 || parens != 0 {
        return Err(bad());
    }
    Ok(())
}

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

/// Attributes whose value is a URL the browser may navigate to or load.
const URL_ATTRIBUTES: &[&str] = &[
    "href",
    "src",
    "action",
    "formaction",
    "xlink:href",
    "data",
    "poster",
    "background",
    "cite",
    "ping",
    "srcset",
    "manifest",
    "codebase",
    "longdesc",
    "lowsrc",
    "dynsrc",
];

fn validate_action(action: &ChangeAction) -> Result<(), ChangeError> {
    match action {
        ChangeAction::SetText { text } => check_len("text", text, MAX_CONTENT_LEN),
        ChangeAction::SetHtml { html } | ChangeAction::Insert { html, .. } => {
            check_len("html", html, MAX_CONTENT_LEN)
        }
        ChangeAction::SetAttribute { name, value } => {
            check_len("value", value, MAX_VALUE_LEN)?;
            validate_attribute_name(name)?;
            let lower = name.to_ascii_lowercase();
            if URL_ATTRIBUTES.contains(&lower.as_str()) {
                check_url_scheme(value)?;
            }
            if lower == "style" {
                check_style_value(value, true)?;
            }
            Ok(())
        }
        ChangeAction::SetStyle { property, value } => {
            check_len("value", value, MAX_VALUE_LEN)?;
            let body = property.trim_start_matches('-');
            let ok = property.len() - body.len() <= 2
                && body.starts_with(|c: char| c.is_ascii_alphabetic())
                && body.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && property.len() <= 128;
            if !ok {
                return Err(ChangeError::InvalidStyleProperty(property.clone()));
            }
            check_style_value(value, false)
        }
        ChangeAction::Hide => Ok(()),
        ChangeAction::Redirect { url } => {
            check_len("url", url, MAX_VALUE_LEN)?;
            check_url_scheme(url)?;
            validate_redirect(url)
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
    // Event handlers (onclick, onerror, …) run script; srcdoc embeds a document.
    if lower.starts_with("on") || lower == "srcdoc" {
        return Err(bad());
    }
    Ok(())
}

/// Rejects script-bearing schemes after dropping what browsers ignore in a scheme
/// (ASCII whitespace and control characters), and character references that could
/// spell one once the value lands in HTML.
fn check_url_scheme(url: &str) -> Result<(), ChangeError> {
    let squeezed: String = url
        .chars()
        .filter(|c| !c.is_ascii_whitespace() && !c.is_control())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let unsafe_url = squeezed.starts_with("javascript:")
        || squeezed.starts_with("vbscript:")
        || squeezed.starts_with("data:text/html")
        || squeezed.contains("&#")
        || squeezed.contains("&colon")
        || squeezed.contains("&tab")
        || squeezed.contains("&newline");
    if unsafe_url {
        Err(ChangeError::UnsafeUrl(url.into()))
    } else {
        Ok(())
    }
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
        || lower.contains("behavior:")
        || lower.contains("-moz-binding");
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
