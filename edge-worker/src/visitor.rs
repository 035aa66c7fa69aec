//! What a request says about its visitor, read the same way by `/v1/assign`
//! ([`crate::assignment`]) and by edge rendering ([`crate::site`]): headers, cookies and
//! Cloudflare's verified-bot flag; the assignment itself (bots out first, then the
//! engine with the site's rules); the cookies that remember the result; and what the
//! exposure context needs from the request (Cloudflare's country, the history cookie:
//! [`crate::context`]).

use std::net::IpAddr;

use samplit_engine::assign::{self, SiteAssignment, VisitorContext};
use samplit_engine::snapshot::Snapshot;
use samplit_engine::targeting::{self, ExclusionReason, ExclusionRule};
use worker::{Headers, Request};

use crate::context::History;
use crate::cookies::{self, HISTORY_COOKIE, STICKY_COOKIE, VISITOR_COOKIE};

/// Headers every request path reads; copied across the JS boundary once, up front.
/// Anything else (the snapshot's header rules) is asked for by name when needed, so a
/// request does not pay to copy every header it carries into wasm.
pub const COMMON_HEADERS: [&str; 5] = [
    "user-agent",
    "cookie",
    "cf-connecting-ip",
    "origin",
    "accept",
];

/// The request's headers and cookies, read once.
pub struct RequestVisitor {
    /// The request's headers, for names outside [`COMMON_HEADERS`].
    source: Headers,
    /// The [`COMMON_HEADERS`] the request carries, lower-case names.
    headers: Vec<(String, String)>,
    cookies: Vec<(String, String)>,
    /// Cloudflare's verified-bot flag (bot management), when present.
    pub verified_bot: bool,
    /// Cloudflare's `request.cf.country` as given (`XX`, `T1` included; the context
    /// drops those), when present.
    pub country: Option<String>,
}

/// Who is being assigned, beyond what the request's headers and cookies say.
pub struct Subject<'a> {
    pub visitor_id: &'a str,
    pub url: &'a str,
    pub user_agent: Option<&'a str>,
    pub ip: Option<IpAddr>,
    /// (sticky key, arm) pairs the visitor keeps.
    pub sticky: &'a [(String, String)],
    /// Caller-supplied attributes (only `/v1/assign` has any).
    pub attributes: &'a [(&'a str, &'a str)],
}

fn refs(pairs: &[(String, String)]) -> Vec<(&str, &str)> {
    pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

impl RequestVisitor {
    pub fn read(req: &Request) -> Self {
        let source = req.headers().clone();
        let headers: Vec<(String, String)> = COMMON_HEADERS
            .iter()
            .filter_map(|name| {
                let value = source.get(name).ok().flatten()?;
                Some(((*name).to_owned(), value))
            })
            .collect();
        let cookies = headers
            .iter()
            .find(|(k, _)| k == "cookie")
            .map(|(_, v)| cookies::parse_cookie_header(v))
            .unwrap_or_default();
        let cf = req.cf();
        let verified_bot = cf
            .and_then(|cf| cf.bot_management())
            .is_some_and(|b| b.verified_bot());
        let country = cf.and_then(|cf| cf.country());
        Self {
            source,
            headers,
            cookies,
            verified_bot,
            country,
        }
    }

    /// A header's value, for a name in [`COMMON_HEADERS`] (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        debug_assert!(COMMON_HEADERS.iter().any(|h| h.eq_ignore_ascii_case(name)));
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The headers the snapshot's rules look at: the common ones plus each name a
    /// header rule (site-wide or an experiment's) asks for, read from the request now.
    fn rule_headers(&self, snapshot: &Snapshot) -> Vec<(String, String)> {
        let mut out = self.headers.clone();
        let rules = snapshot.exclusions.iter().chain(
            snapshot
                .experiments
                .iter()
                .flat_map(|e| e.exclusions.iter()),
        );
        for rule in rules {
            if let ExclusionRule::Header { name, .. } = rule
                && !out
                    .iter()
                    .any(|(k, _)| k.eq_ignore_ascii_case(name.as_str()))
                && let Ok(Some(value)) = self.source.get(name.as_str())
            {
                out.push((name.as_str().to_ascii_lowercase(), value));
            }
        }
        out
    }

    /// A cookie's value.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The visitor-id cookie, when it holds a valid id.
    pub fn cookie_visitor_id(&self) -> Option<&str> {
        self.cookie(VISITOR_COOKIE)
            .filter(|v| cookies::valid_visitor_id(v))
    }

    /// The visitor's history from the `samplit_hist` cookie, and the cookie to re-set.
    pub fn history(&self, now_min: u32, secure: bool) -> History {
        History::from_cookie(self.cookie(HISTORY_COOKIE), now_min, secure)
    }

    /// The sticky pairs the cookie remembers.
    pub fn sticky_cookie(&self) -> Vec<(String, String)> {
        self.cookie(STICKY_COOKIE)
            .map(cookies::decode_sticky)
            .unwrap_or_default()
    }

    /// Bots (the verified-bot flag, the engine's user-agent list) are always out; then
    /// the engine assigns with the snapshot's rules.
    pub fn assign<'s>(&self, snapshot: &'s Snapshot, who: &Subject<'_>) -> SiteAssignment<'s> {
        if self.verified_bot || who.user_agent.is_some_and(targeting::is_bot_user_agent) {
            return SiteAssignment {
                excluded: Some(ExclusionReason::Bot),
                assignments: assign::Assignments::default(),
            };
        }
        let rule_headers = self.rule_headers(snapshot);
        let headers = refs(&rule_headers);
        let cookies = refs(&self.cookies);
        let sticky = refs(who.sticky);
        assign::assign_site(
            snapshot,
            &VisitorContext {
                visitor_id: who.visitor_id,
                url: who.url,
                ip: who.ip,
                user_agent: who.user_agent,
                verified_bot: self.verified_bot,
                headers: &headers,
                cookies: &cookies,
                sticky: &sticky,
                attributes: who.attributes,
            },
        )
    }

    /// The `Set-Cookie` values that remember an assignment: the visitor id when the
    /// browser does not hold it, the sticky pairs (`fresh` first, then `previous`) when
    /// there are fresh ones and the cookie would change.
    pub fn set_cookies(
        &self,
        visitor_id: &str,
        fresh: &[(String, String)],
        previous: &[(String, String)],
        secure: bool,
    ) -> Vec<String> {
        let mut out = Vec::new();
        if self.cookie_visitor_id() != Some(visitor_id) {
            out.push(cookies::set_cookie(VISITOR_COOKIE, visitor_id, secure));
        }
        let encoded = cookies::encode_sticky(fresh, previous);
        if !fresh.is_empty() && self.cookie(STICKY_COOKIE) != Some(encoded.as_str()) {
            out.push(cookies::set_cookie(STICKY_COOKIE, &encoded, secure));
        }
        out
    }
}
