//! Rate limits for `/v1/assign` and `/v1/events`, per site and client address.
//!
//! Counting is Cloudflare's rate-limiting binding (`[[ratelimits]]` in `wrangler.toml`),
//! one binding per route: `SAMPLIT_RATE_ASSIGN` (300 requests / 10 s by default) and
//! `SAMPLIT_RATE_EVENTS` (120 / 10 s). Why the binding and not a counter in the isolate:
//! a Cloudflare location runs many isolates of one Worker, each with its own memory, so
//! an in-isolate table bounds one isolate, not a client; the binding's counters are
//! shared by every isolate in the location. It also runs locally: wrangler 4.86 (the
//! version pinned here) simulates it inside workerd, and `worker` 0.8.7 calls it
//! (`Env::rate_limiter`), so the tests exercise the same code path as production.
//!
//! What the binding does not do, and what we do about it:
//! - Its limit and period live in `wrangler.toml` (period 10 or 60 s only); the Worker
//!   cannot read them. The `Retry-After` we send is [`PERIOD_SECS`], which a unit test
//!   below pins against `wrangler.toml`: waiting one period always reaches a new window.
//! - Counters are per location and eventually consistent (Cloudflare's documentation):
//!   a client spread over many locations gets the limit in each. It is a brake on one
//!   client hammering the edge, not an exact global quota; the control plane still
//!   validates and deduplicates everything it ingests.
//! - A missing binding answers 503 `not_configured` (never "no limit"), and a binding
//!   that fails answers 503 `unavailable`: the routes fail closed.
//!
//! The key is `{site_key}|{client}` where the client is `CF-Connecting-IP` (set by
//! Cloudflare, not by the caller; the same header `/v1/assign` reads), IPv4 as is and
//! IPv6 reduced to its /64 (one subscriber usually holds a whole /64, so per-address
//! counting would give an attacker 2^64 budgets). Requests without a parseable address
//! share one `unknown` budget per site. Each route has its own binding, hence its own
//! counters.
//!
//! Signed server calls (a plugin's or a store's server, [`crate::trust::check_call`]) speak
//! for many visitors from one address. A verified signed `/v1/assign` that names the
//! visitor's `ip` spends that visitor's budget, as the visitor's own browser would, not
//! the server's; its signature is checked first ([`check_for`]), so a caller cannot pick
//! the address it is counted under without the site's server secret. Other calls,
//! `/v1/events` included, are counted under `CF-Connecting-IP`.

use std::net::IpAddr;

use worker::{Env, Request};

use crate::error::ApiError;

/// The limiting window in seconds, as configured for both bindings in `wrangler.toml`.
pub const PERIOD_SECS: u32 = 10;

/// A rate-limited route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Assign,
    Events,
}

impl Route {
    /// The name of the route's rate-limiting binding.
    pub const fn binding(self) -> &'static str {
        match self {
            Route::Assign => "SAMPLIT_RATE_ASSIGN",
            Route::Events => "SAMPLIT_RATE_EVENTS",
        }
    }
}

/// The client part of the key: an IPv4 address as is, an IPv6 address as its /64
/// (`2001:db8:1:2::/64`), an IPv4-mapped IPv6 address as the IPv4 one, anything else
/// `unknown`.
pub fn client_key(addr: Option<&str>) -> String {
    match addr.and_then(|a| a.trim().parse::<IpAddr>().ok()) {
        Some(IpAddr::V4(v4)) => v4.to_string(),
        Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        None => "unknown".to_owned(),
    }
}

/// The binding's key for a site and a client address.
pub fn key(site_key: &str, addr: Option<&str>) -> String {
    format!("{site_key}|{}", client_key(addr))
}

/// Counts this request against the route's limit for (site, client); `Err` with 429
/// `rate_limited` and `Retry-After` when over it. Call it once the site key is known to
/// be well formed (it is part of the key).
pub async fn check(env: &Env, req: &Request, route: Route, site_key: &str) -> Result<(), ApiError> {
    let addr = req.headers().get("cf-connecting-ip").ok().flatten();
    check_for(env, route, site_key, addr.as_deref()).await
}

/// [`check`] for an explicit client address: the visitor's `ip` of a verified signed call.
pub async fn check_for(
    env: &Env,
    route: Route,
    site_key: &str,
    addr: Option<&str>,
) -> Result<(), ApiError> {
    let limiter = env
        .rate_limiter(route.binding())
        .map_err(|_| ApiError::not_configured(route.binding()))?;
    let outcome = limiter
        .limit(key(site_key, addr))
        .await
        .map_err(|e| ApiError::upstream("the rate limiter", e))?;
    if outcome.success {
        Ok(())
    } else {
        Err(ApiError::rate_limited(PERIOD_SECS))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_counted_per_64() {
        let cases = [
            (Some("203.0.113.7"), "203.0.113.7", "IPv4 as is"),
            (Some(" 203.0.113.7 "), "203.0.113.7", "surrounding spaces"),
            (
                Some("2001:db8:1:2:aaaa:bbbb:cccc:dddd"),
                "2001:db8:1:2::/64",
                "IPv6 to its /64",
            ),
            (Some("2001:db8:1:2::9"), "2001:db8:1:2::/64", "same /64"),
            (Some("2001:db8:1:3::9"), "2001:db8:1:3::/64", "next /64"),
            (Some("::ffff:198.51.100.1"), "198.51.100.1", "IPv4-mapped"),
            (Some("not an ip"), "unknown", "garbage"),
            (Some(""), "unknown", "empty"),
            (None, "unknown", "missing header"),
        ];
        for (addr, want, why) in cases {
            assert_eq!(client_key(addr), want, "{why}");
        }
    }

    #[test]
    fn keys_separate_sites_and_clients() {
        assert_eq!(key("sk_a", Some("10.0.0.1")), "sk_a|10.0.0.1");
        assert_ne!(key("sk_a", Some("10.0.0.1")), key("sk_b", Some("10.0.0.1")));
        assert_ne!(key("sk_a", Some("10.0.0.1")), key("sk_a", Some("10.0.0.2")));
        assert_eq!(
            key("sk_a", Some("2001:db8::1")),
            key("sk_a", Some("2001:db8::ffff:1"))
        );
    }

    /// `Retry-After` is [`PERIOD_SECS`]: it is only true if `wrangler.toml` configures
    /// both bindings with that period, and with the documented defaults.
    #[test]
    fn wrangler_toml_declares_both_bindings_with_the_documented_defaults() {
        let toml = include_str!("../../wrangler.toml");
        for (route, limit) in [(Route::Assign, 300), (Route::Events, 120)] {
            let name = format!("name = \"{}\"", route.binding());
            let at = toml
                .find(&name)
                .unwrap_or_else(|| panic!("wrangler.toml has no {name}"));
            let table = &toml[at..];
            let table = &table[..table[1..].find("[[").map_or(table.len(), |end| end + 1)];
            assert!(
                table.contains(&format!(
                    "simple = {{ limit = {limit}, period = {PERIOD_SECS} }}"
                )),
                "{name}: expected limit {limit} per {PERIOD_SECS} s in:\n{table}"
            );
        }
    }
}
