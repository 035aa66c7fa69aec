//! What the edge knows about a visitor *before* assigning them, carried with each
//! exposure ([`crate::ingest::Exposure::context`]) so results can be sliced by it
//! (segments) and used as pre-exposure covariates (variance reduction). Nothing here can
//! be changed by the treatment: it is read from the request and from the visitor's
//! history cookie before any arm is chosen.
//!
//! Privacy: no IP address and no full user agent: a country code, a device class and a
//! browser family, a traffic source class, the entry page's path, and two small counts.
//!
//! How each field is read (the edge calls these; `docs/visitor-context.md` explains
//! them for users): [`country_code`], [`classify_user_agent`], [`classify_source`],
//! [`landing_path`] (a page template: [`template_path`]), and the history cookie
//! [`HistoryCookie`].
//!
//! ## Wire form (inside an exposure item)
//! ```json
//! "context": {"country": "ES", "device": "mobile", "browser": "safari",
//!             "source": "search", "landing": "/pricing",
//!             "prior_visits": 3, "prior_conversions": 1}
//! ```
//! `country` and `landing` are left out when unknown. An exposure without `context`
//! (an older edge, a plugin's unsigned call that could not tell) counts under the value
//! `unknown` of every dimension.

use alloc::string::String;

use serde::{Deserialize, Serialize};

/// Longest `landing` path kept, in bytes; longer paths are cut at a character boundary.
pub const MAX_LANDING_LEN: usize = 200;
/// Counts above this are stored as this (a visitor's 10 000th visit tells no more).
pub const MAX_PRIOR_COUNT: u32 = 1000;

/// The pre-assignment facts of one exposure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExposureContext {
    /// ISO 3166-1 alpha-2, upper case (Cloudflare's `request.cf.country`); absent when
    /// unknown (Cloudflare's `XX`, Tor's `T1`, no `cf` object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    pub device: Device,
    pub browser: Browser,
    pub source: Source,
    /// The path (no query, no fragment) of the page where the visitor entered the
    /// experiment, at most [`MAX_LANDING_LEN`] bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub landing: Option<String>,
    /// Visits (sessions: 30 minutes without a request end one) before the current one,
    /// from the edge's history cookie; 0 for a first-time visitor. At most
    /// [`MAX_PRIOR_COUNT`].
    pub prior_visits: u32,
    /// Conversions the edge saw from this browser before this request (conversions
    /// earlier in the current visit included: the context is read before any arm is
    /// chosen, so they still precede the exposure). At most [`MAX_PRIOR_COUNT`].
    pub prior_conversions: u32,
}

impl ExposureContext {
    /// New (no prior visit) or returning.
    #[must_use]
    pub fn visitor_type(&self) -> VisitorType {
        if self.prior_visits == 0 {
            VisitorType::New
        } else {
            VisitorType::Returning
        }
    }

    /// The value of `dimension` for this exposure, as stored in segment statistics.
    #[must_use]
    pub fn value(&self, dimension: Dimension) -> &str {
        match dimension {
            Dimension::Country => self.country.as_deref().unwrap_or(UNKNOWN),
            Dimension::Device => self.device.as_str(),
            Dimension::Browser => self.browser.as_str(),
            Dimension::Source => self.source.as_str(),
            Dimension::VisitorType => self.visitor_type().as_str(),
        }
    }
}

/// The value every dimension takes for an exposure without context.
pub const UNKNOWN: &str = "unknown";

macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vm])* $variant),+ }

        impl $name {
            /// Every value, in wire order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire name.
            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// The value with this wire name.
            #[must_use]
            pub fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some($name::$variant),)+ _ => None }
            }
        }
    };
}

wire_enum!(
    /// The device class, from the user agent.
    Device {
        Desktop => "desktop",
        Mobile => "mobile",
        Tablet => "tablet",
        /// Anything else (TVs, consoles, unknown agents).
        Other => "other",
    }
);

wire_enum!(
    /// The browser family, from the user agent.
    Browser {
        Chrome => "chrome",
        Safari => "safari",
        Firefox => "firefox",
        Edge => "edge",
        Samsung => "samsung",
        Opera => "opera",
        Other => "other",
    }
);

wire_enum!(
    /// Where the visit came from: the page's `utm_medium` and click ids first, then the
    /// referrer's host.
    Source {
        /// No referrer, no campaign parameters.
        Direct => "direct",
        Search => "search",
        Social => "social",
        Email => "email",
        /// Paid campaigns (`utm_medium` cpc/ppc/paid/display…, or a `gclid`/`fbclid`/`msclkid`).
        Paid => "paid",
        /// Another site's link.
        Referral => "referral",
        /// A page of the same site.
        Internal => "internal",
    }
);

wire_enum!(
    /// New or returning visitor.
    VisitorType {
        New => "new",
        Returning => "returning",
    }
);

wire_enum!(
    /// The dimensions results can be sliced by (segment statistics are kept per value of
    /// each). The entry page is stored with each exposure but is not a dimension: its
    /// values are unbounded.
    Dimension {
        Country => "country",
        Device => "device",
        Browser => "browser",
        Source => "source",
        VisitorType => "visitor_type",
    }
);

// ---------------------------------------------------------------------------------------
// Classification: pure functions the edge calls on each request that queues an exposure.
// ---------------------------------------------------------------------------------------

/// Markers of televisions, set-top boxes and game consoles: their agents often say
/// `Windows`, `Linux` or `Android`, but a TV is neither a desktop nor a tablet.
const OTHER_DEVICE_MARKERS: &[&str] = &[
    "SMART-TV",
    "SmartTV",
    "Smart-TV",
    "Web0S",
    "AppleTV",
    "GoogleTV",
    "CrKey",
    "BRAVIA",
    "Xbox",
    "PlayStation",
    "Nintendo",
];

/// The device class and browser family of a `User-Agent`.
///
/// Device, in this order: TV and console markers → [`Device::Other`]; `iPad`, `Tablet`,
/// or `Android` without `Mobi` → [`Device::Tablet`]; `Mobi` anywhere →
/// [`Device::Mobile`] (MDN's advice: "we recommend looking for the string `Mobi`
/// anywhere in the User Agent to detect a mobile device"); `Windows`, `Macintosh`,
/// `X11` or `CrOS` → [`Device::Desktop`]; anything else (an empty agent too) →
/// [`Device::Other`].
///
/// Browser, first match wins (most Chromium browsers also say `Chrome/` and `Safari/`,
/// so the specific tokens come first): `Edg/`, `EdgA/`, `EdgiOS/` (and EdgeHTML's
/// `Edge/`) → edge; `OPR/`, `Opera` → opera; `SamsungBrowser` → samsung; `Firefox/`,
/// `FxiOS` → firefox; `Chrome/`, `CriOS` → chrome; `Safari/` → safari; else other.
///
/// Limitation: iPadOS Safari asks for desktop sites by default and then sends the same
/// agent as macOS Safari, so such iPads read as desktops (nothing in the agent tells
/// them apart; only client-side touch detection could).
#[must_use]
pub fn classify_user_agent(ua: &str) -> (Device, Browser) {
    (device_of(ua), browser_of(ua))
}

fn device_of(ua: &str) -> Device {
    let has = |t: &str| ua.contains(t);
    if OTHER_DEVICE_MARKERS.iter().any(|m| has(m)) {
        Device::Other
    } else if has("iPad") || has("Tablet") || (has("Android") && !has("Mobi")) {
        Device::Tablet
    } else if has("Mobi") {
        Device::Mobile
    } else if has("Windows") || has("Macintosh") || has("X11") || has("CrOS") {
        Device::Desktop
    } else {
        Device::Other
    }
}

fn browser_of(ua: &str) -> Browser {
    let any = |tokens: &[&str]| tokens.iter().any(|t| ua.contains(t));
    if any(&["Edg/", "EdgA/", "EdgiOS/", "Edge/"]) {
        Browser::Edge
    } else if any(&["OPR/", "Opera"]) {
        Browser::Opera
    } else if any(&["SamsungBrowser"]) {
        Browser::Samsung
    } else if any(&["Firefox/", "FxiOS"]) {
        Browser::Firefox
    } else if any(&["Chrome/", "CriOS"]) {
        Browser::Chrome
    } else if any(&["Safari/"]) {
        Browser::Safari
    } else {
        Browser::Other
    }
}

/// Query parameters that only an ad click adds: Google Ads (`gclid`, and `gbraid` /
/// `wbraid` on iOS), Meta (`fbclid`), Microsoft Advertising (`msclkid`), TikTok (`ttclid`).
const CLICK_IDS: &[&str] = &["gclid", "gbraid", "wbraid", "fbclid", "msclkid", "ttclid"];

/// `utm_medium` values (compared without regard to ASCII case) and the source each means.
const MEDIUMS: &[(&[&str], Source)] = &[
    (
        &[
            "cpc",
            "ppc",
            "paid",
            "paidsearch",
            "paid_search",
            "paid-search",
            "display",
            "cpm",
            "banner",
            "cpv",
            "paid_social",
            "paidsocial",
        ],
        Source::Paid,
    ),
    (&["email", "e-mail", "e_mail", "newsletter"], Source::Email),
    (
        &[
            "social",
            "social-network",
            "social-media",
            "sm",
            "social_network",
        ],
        Source::Social,
    ),
    (&["organic"], Source::Search),
];

/// Webmail hosts (checked before the search engines: `mail.google.com` is not Google search).
const WEBMAIL: &[&str] = &[
    "mail.google.com",
    "outlook.live.com",
    "outlook.office.com",
    "mail.yahoo.com",
];
/// Search engines by registrable domain (any subdomain matches).
const SEARCH: &[&str] = &[
    "bing.com",
    "duckduckgo.com",
    "search.yahoo.com",
    "baidu.com",
    "ecosia.org",
    "search.brave.com",
    "startpage.com",
    "qwant.com",
];
/// Search engines present under many country domains (`google.de`, `google.co.uk`).
const SEARCH_ANY_TLD: &[&str] = &["google", "yahoo", "yandex"];
/// Social networks by registrable domain (any subdomain matches: `m.facebook.com`,
/// `l.facebook.com`, `old.reddit.com`).
const SOCIAL: &[&str] = &[
    "facebook.com",
    "instagram.com",
    "t.co",
    "twitter.com",
    "x.com",
    "linkedin.com",
    "lnkd.in",
    "reddit.com",
    "youtube.com",
    "tiktok.com",
    "threads.net",
    "bsky.app",
];
/// Social networks under many country domains.
const SOCIAL_ANY_TLD: &[&str] = &["pinterest"];

/// Where a visit came from.
///
/// The page's query string first: a click id (`gclid`, `gbraid`, `wbraid`, `fbclid`,
/// `msclkid`, `ttclid`, with a value) → [`Source::Paid`]; else `utm_medium`
/// (case-insensitive): `cpc`, `ppc`, `paid`, `paidsearch`, `paid_search`, `paid-search`,
/// `display`, `cpm`, `banner`, `cpv`, `paid_social`, `paidsocial` → paid; `email`,
/// `e-mail`, `e_mail`, `newsletter` → email; `social`, `social-network`,
/// `social-media`, `sm`, `social_network` → social; `organic` → search. Any other
/// medium says nothing and the referrer decides:
/// - none, empty or without a host → [`Source::Direct`];
/// - the page's own host, or its `www.` variant → [`Source::Internal`];
/// - webmail (`mail.google.com`, `outlook.live.com`, `outlook.office.com`,
///   `mail.yahoo.com`) → [`Source::Email`];
/// - search engines (`google.*`, `bing.com`, `duckduckgo.com`, `search.yahoo.com`,
///   `yahoo.*`, `baidu.com`, `yandex.*`, `ecosia.org`, `search.brave.com`,
///   `startpage.com`, `qwant.com`) → [`Source::Search`];
/// - social networks (`facebook.com`, `instagram.com`, `t.co`, `twitter.com`, `x.com`,
///   `linkedin.com`, `lnkd.in`, `pinterest.*`, `reddit.com`, `youtube.com`,
///   `tiktok.com`, `threads.net`, `bsky.app`) → [`Source::Social`];
/// - any other host → [`Source::Referral`].
///
/// A domain matches itself and its subdomains (`www.bing.com`, `m.facebook.com`);
/// `name.*` matches `name.<tld>` and `name.<sld>.<tld>` for country domains
/// (`google.de`, `google.co.uk`, `yahoo.co.jp`): a suffix of one or two alphabetic
/// labels of at most three letters each (a heuristic in place of the Public Suffix
/// List, which is too large for the Worker).
#[must_use]
pub fn classify_source(page_url: &str, referrer: Option<&str>) -> Source {
    if let Some(source) = query_source(page_url) {
        return source;
    }
    let Some(from) = referrer.and_then(host_of) else {
        return Source::Direct;
    };
    if let Some(page) = host_of(page_url)
        && same_site(&from, &page)
    {
        return Source::Internal;
    }
    let host = from.as_str();
    if WEBMAIL.iter().any(|d| under(host, d)) {
        Source::Email
    } else if SEARCH.iter().any(|d| under(host, d)) || any_tld(host, SEARCH_ANY_TLD) {
        Source::Search
    } else if SOCIAL.iter().any(|d| under(host, d)) || any_tld(host, SOCIAL_ANY_TLD) {
        Source::Social
    } else {
        Source::Referral
    }
}

/// The source the page's query says, if it says one.
fn query_source(page_url: &str) -> Option<Source> {
    let query = page_url.split('#').next()?.split_once('?')?.1;
    let mut medium = None;
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if value.is_empty() {
            continue;
        }
        if CLICK_IDS.contains(&key) {
            return Some(Source::Paid);
        }
        if key == "utm_medium" && medium.is_none() {
            medium = Some(value);
        }
    }
    let medium = percent_decode(medium?);
    let medium = medium.trim();
    MEDIUMS
        .iter()
        .find(|(names, _)| names.iter().any(|n| n.eq_ignore_ascii_case(medium)))
        .map(|(_, source)| *source)
}

/// `%XX` and `+` decoded (form encoding); bytes that are not UTF-8 are replaced.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = alloc::vec::Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        // Two hex digits are at most 0xFF.
                        out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The host of an absolute URL (`scheme://[userinfo@]host[:port]/...`), lower case,
/// without a trailing dot; `None` when there is no scheme or no host.
fn host_of(url: &str) -> Option<String> {
    let url = url.trim();
    let (scheme, rest) = url.split_once("://")?;
    let mut chars = scheme.chars();
    if !chars.next()?.is_ascii_alphabetic()
        || !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    {
        return None;
    }
    let authority = rest.split(['/', '?', '#', '\\']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        let (inner, _) = v6.split_once(']')?;
        inner
    } else {
        host_port.split(':').next().unwrap_or_default()
    };
    let host = host.trim_end_matches('.');
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'))
    {
        return None;
    }
    Some(host.to_ascii_lowercase())
}

/// The same host, or one is the other's `www.` variant.
fn same_site(a: &str, b: &str) -> bool {
    let bare = |h: &str| -> String { String::from(h.strip_prefix("www.").unwrap_or(h)) };
    bare(a) == bare(b)
}

/// `host` is `domain` or one of its subdomains.
fn under(host: &str, domain: &str) -> bool {
    host == domain
        || host
            .strip_suffix(domain)
            .is_some_and(|head| head.ends_with('.'))
}

/// `host` is `<name>.<country suffix>` or a subdomain of one, for one of `names`.
fn any_tld(host: &str, names: &[&str]) -> bool {
    let labels: alloc::vec::Vec<&str> = host.split('.').collect();
    labels.iter().enumerate().any(|(i, label)| {
        let suffix = &labels[i + 1..];
        names.contains(label)
            && (1..=2).contains(&suffix.len())
            && suffix
                .iter()
                .all(|l| (2..=3).contains(&l.len()) && l.bytes().all(|b| b.is_ascii_lowercase()))
    })
}

/// The path of the page (no scheme, host, query or fragment), with the segments that
/// look like personal data or identifiers replaced ([`template_path`]), at most
/// [`MAX_LANDING_LEN`] bytes, cut at a character boundary; `/` for an empty path.
/// A path-only URL (`/pricing?x=1`) is accepted too; anything else is `None`.
#[must_use]
pub fn landing_path(page_url: &str) -> Option<String> {
    let url = page_url.trim();
    let rest = if let Some((_, rest)) = url.split_once("://") {
        // The authority ends at the first `/`, `?` or `#`.
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        if end == 0 {
            return None;
        }
        &rest[end..]
    } else if url.starts_with('/') {
        url
    } else {
        return None;
    };
    let path = rest.split(['?', '#']).next().unwrap_or_default();
    let path = if path.is_empty() {
        String::from("/")
    } else {
        template_path(path)
    };
    let mut cut = path.len().min(MAX_LANDING_LEN);
    while !path.is_char_boundary(cut) {
        cut -= 1;
    }
    Some(String::from(&path[..cut]))
}

/// `path` with each segment that may carry personal data or an identifier replaced by a
/// placeholder, so that a landing page is a page *template* (`/orders/:id`), never a
/// person's address (`/orders/ana@example.com`) or an order's number kept for 90 days:
///
/// - `:email` — the segment holds `@` (or its percent-encoding `%40`);
/// - `:id` — it holds four digits or more (order numbers, dates, numeric ids; a product
///   name such as `iphone-15` keeps its two), or it is a hexadecimal string of 16
///   characters or more (UUIDs, hashes);
/// - `:token` — it is 24 characters or more of letters and digits together (session
///   tokens, base64).
///
/// Idempotent (placeholders are left as they are), so the control plane can apply it
/// again to what an edge sent.
#[must_use]
pub fn template_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len().min(MAX_LANDING_LEN + 8));
    for (i, segment) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        out.push_str(segment_template(segment).unwrap_or(segment));
    }
    out
}

fn segment_template(segment: &str) -> Option<&'static str> {
    if segment.is_empty() || segment.starts_with(':') {
        return None;
    }
    let lower_has = |needle: &str| {
        segment
            .as_bytes()
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
    };
    if segment.contains('@') || lower_has("%40") {
        return Some(":email");
    }
    let digits = segment.bytes().filter(u8::is_ascii_digit).count();
    let hex_only = segment.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    let hex_digits = segment.bytes().filter(u8::is_ascii_hexdigit).count();
    if digits >= 4 || (hex_only && hex_digits >= 16) {
        return Some(":id");
    }
    let letters = segment.bytes().filter(u8::is_ascii_alphabetic).count();
    let token_chars = segment
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'%'));
    if segment.len() >= 24 && token_chars && digits > 0 && letters > 0 {
        return Some(":token");
    }
    None
}

/// A country code as the edge stores it: two ASCII capital letters, and not `XX`
/// (Cloudflare's "unknown"); Tor's `T1` and anything else are `None`.
#[must_use]
pub fn country_code(code: &str) -> Option<String> {
    let ok = code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase()) && code != "XX";
    ok.then(|| String::from(code))
}

// ---------------------------------------------------------------------------------------
// The history cookie
// ---------------------------------------------------------------------------------------

/// A visit ends after this many minutes without a request (Google Analytics' default
/// session timeout).
pub const VISIT_TIMEOUT_MIN: u32 = 30;

/// What the edge remembers of a browser's past, in its own first-party cookie
/// (`samplit_hist`): `1.<visits>.<conversions>.<last_seen_min>`.
///
/// - `visits`: visits so far, the current one included (a request more than
///   [`VISIT_TIMEOUT_MIN`] minutes after the last one starts a new visit); at most
///   `MAX_PRIOR_COUNT + 1`, so the prior count reaches [`MAX_PRIOR_COUNT`];
/// - `conversions`: conversions the edge saw from this browser, at most
///   [`MAX_PRIOR_COUNT`];
/// - `last_seen_min`: the last request, in Unix minutes.
///
/// The leading `1` is the format's version. Anything that does not parse is a new
/// visitor. The cookie is not signed: it only describes the visitor's own browser to
/// the visitor's own experiments, and a visitor who edits it only mislabels
/// themselves (as clearing it would).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryCookie {
    pub visits: u32,
    pub conversions: u32,
    pub last_seen_min: u32,
}

impl HistoryCookie {
    /// The format's version, the cookie's first field.
    pub const VERSION: &'static str = "1";

    /// Parses a cookie value; `None` for anything that is not exactly
    /// `1.<u32>.<u32>.<u32>` (decimal digits only).
    #[must_use]
    pub fn parse(value: &str) -> Option<Self> {
        let mut parts = value.split('.');
        if parts.next()? != Self::VERSION {
            return None;
        }
        let mut number = || -> Option<u32> {
            let p = parts.next()?;
            if p.is_empty() || p.len() > 10 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            p.parse().ok()
        };
        let cookie = Self {
            visits: number()?,
            conversions: number()?,
            last_seen_min: number()?,
        };
        parts.next().is_none().then_some(cookie)
    }

    /// The cookie value.
    #[must_use]
    pub fn encode(&self) -> String {
        alloc::format!(
            "{}.{}.{}.{}",
            Self::VERSION,
            self.visits,
            self.conversions,
            self.last_seen_min
        )
    }

    /// A request at `now_min` (Unix minutes): the updated cookie, and the visitor's
    /// prior visits (before the current one) and prior conversions (before this request).
    ///
    /// No cookie: the first visit, `(1, 0, now)` and priors `(0, 0)`. Otherwise a request
    /// more than [`VISIT_TIMEOUT_MIN`] minutes away from `last_seen_min` (either way: a
    /// `last_seen_min` in the future is not trusted to freeze the count) starts a new
    /// visit. Counts saturate: prior visits and conversions at [`MAX_PRIOR_COUNT`].
    #[must_use]
    pub fn on_request(prev: Option<Self>, now_min: u32) -> (Self, u32, u32) {
        let Some(prev) = prev else {
            let first = Self {
                visits: 1,
                conversions: 0,
                last_seen_min: now_min,
            };
            return (first, 0, 0);
        };
        let new_visit = now_min.abs_diff(prev.last_seen_min) > VISIT_TIMEOUT_MIN;
        let visits = if new_visit {
            prev.visits.saturating_add(1)
        } else {
            prev.visits
        }
        .clamp(1, MAX_PRIOR_COUNT + 1);
        let conversions = prev.conversions.min(MAX_PRIOR_COUNT);
        let next = Self {
            visits,
            conversions,
            last_seen_min: now_min,
        };
        (next, visits - 1, conversions)
    }

    /// `count` conversions at `now_min`: the request is counted as [`Self::on_request`]
    /// does, then the conversions added (saturating at [`MAX_PRIOR_COUNT`]).
    #[must_use]
    pub fn on_conversions(prev: Option<Self>, now_min: u32, count: u32) -> Self {
        let (mut next, _, _) = Self::on_request(prev, now_min);
        next.conversions = next.conversions.saturating_add(count).min(MAX_PRIOR_COUNT);
        next
    }

    /// One conversion at `now_min` ([`Self::on_conversions`] with a count of one).
    #[must_use]
    pub fn on_conversion(prev: Option<Self>, now_min: u32) -> Self {
        Self::on_conversions(prev, now_min, 1)
    }
}
