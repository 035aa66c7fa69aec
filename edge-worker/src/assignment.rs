//! `POST /v1/assign` (the snippet) and `GET /v1/assign` (server-side plugins).
//!
//! Input, as a JSON body or the same names in the query string:
//! - `site_key` (required), `url` (required: the page the visitor is on);
//! - `visitor_id` (optional: else the `samplit_vid` cookie, else a new random id);
//! - `sticky` (optional): sticky tokens the caller kept from an earlier answer, as an
//!   object `{"<key>": "<token>"}` in a body, or `key=token&...` (form-encoded, like the
//!   cookie) in a query. Only tokens the edge minted for this site and visitor are
//!   obeyed ([`crate::trust`]); anything else is ignored;
//! - `referrer` (optional): the page's referrer (the snippet sends `document.referrer`),
//!   at most 2048 bytes (400 `invalid_referrer`); classifies the traffic source of the
//!   exposures' context;
//! - `user_agent`, `ip`, `country`, `prior_visits`, `prior_conversions` (optional): for
//!   plugins calling server-side on behalf of a visitor, whose own headers, country and
//!   cookies are the plugin server's. `country` is two capital letters (400
//!   `invalid_country`); the counts are the plugin's own records (whole numbers, capped
//!   at 1000). Only in a signed call (`X-Samplit-Timestamp`/`X-Samplit-Signature`, see
//!   [`crate::trust`]); unsigned: 401 `signature_required`;
//! - `attributes` (optional): what the caller knows about the visitor, as an object of
//!   strings, numbers or booleans in a body (`{"plan": "enterprise", "orders": 3}`), or
//!   `attr.<name>=<value>` pairs in a query; at most 50, names 1-64 characters, values at
//!   most 256 bytes. The snapshot's `attribute` exclusion rules match on them (numbers
//!   and booleans as their JSON text, e.g. `3`, `true`).
//!
//! Output: `{"site_key", "visitor_id", "snapshot_version", "excluded", "assignments":
//! [{experiment_id, element_id, arm_id, variant_ids, changes, propensity,
//! snapshot_version, sticky, sticky_key}], "goals": [...], "sticky": {"<sticky_key>":
//! "<token>"}}`. `sticky_key` is the unit id for an independent element, else the
//! experiment id; the top-level `sticky` map is what to send back in `sticky`.
//!
//! Exclusion: Cloudflare's verified-bot flag and the engine's bot user-agent list always
//! exclude; the snapshot's site rules (IP from `CF-Connecting-IP`, headers, cookies,
//! query) come next, inside `assign_site`. An excluded visitor gets an empty list, no
//! cookie and no exposure.
//!
//! Goals: URL goals whose rule matches the page are queued as conversions right here
//! (id derived from site, visitor and goal, see `url_goal_item_id`); click goals come back as `goals: [{goal, kind:
//! "click", selector}]` for the snippet to watch.
//!
//! Exposures: one queue item per assignment served, sticky or not, each with a fresh
//! id; the control plane dedupes by id and counts a visitor's first exposure per arm.
//! Each carries the request's `context` ([`crate::context`]: country, device, browser,
//! source, landing path, prior visits and conversions); an unsigned call reads the
//! prior counts from the `samplit_hist` cookie and re-sets it (a signed call: from its
//! body, else 0, and no cookie). See `docs/visitor-context.md`.
//! They are enqueued after the response (`events::send_after_response`: `wait_until`,
//! coalesced for 50 ms with the other requests of the isolate into one `sendBatch`), so
//! the queue's latency is not the visitor's.

use std::collections::BTreeMap;
use std::net::IpAddr;

use samplit_engine::assign::{self, Assignment};
use samplit_engine::ingest::{GoalEvent, Item};
use samplit_engine::targeting::ExclusionReason;
use serde::{Deserialize, Serialize};
use worker::{Context, Env, Request, Response};

use crate::body::{self, PUBLIC_BODY_LIMIT};
use crate::clock::now_ms;
use crate::context::{self, Facts, History};
use crate::cookies;
use crate::error::ApiError;
use crate::visitor::{RequestVisitor, Subject};
use crate::{cors, events, ids, ratelimit, snapshots, trust};

/// Longest page URL accepted.
pub const URL_MAX: usize = 4096;
/// Most sticky pairs read from a request.
pub const STICKY_MAX: usize = 200;
/// Most attributes read from a request.
pub const ATTRIBUTES_MAX: usize = 50;
/// Longest attribute value, in bytes.
pub const ATTRIBUTE_VALUE_MAX: usize = 256;

/// The request, from a body or a query string.
#[derive(Debug, Default, Deserialize)]
pub struct AssignRequest {
    pub site_key: String,
    pub url: String,
    #[serde(default)]
    pub visitor_id: Option<String>,
    #[serde(default)]
    pub sticky: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub user_agent: Option<String>,
    #[serde(default)]
    pub ip: Option<String>,
    #[serde(default)]
    pub attributes: std::collections::BTreeMap<String, serde_json::Value>,
    /// The page's referrer (the snippet sends `document.referrer`), at most
    /// [`context::REFERRER_MAX`] bytes; empty is none.
    #[serde(default)]
    pub referrer: Option<String>,
    /// Signed calls only: the visitor's country (two capital letters).
    #[serde(default)]
    pub country: Option<String>,
    /// Signed calls only: the plugin's own count of the visitor's prior visits.
    #[serde(default)]
    pub prior_visits: Option<u32>,
    /// Signed calls only: the plugin's own count of the visitor's prior conversions.
    #[serde(default)]
    pub prior_conversions: Option<u32>,
}

impl AssignRequest {
    /// The fields present that only a signed server call may pass (they speak for a
    /// visitor elsewhere), in the order the 401 names the first of them.
    fn signed_only_fields(&self) -> impl Iterator<Item = &'static str> {
        [
            ("ip", self.ip.is_some()),
            ("user_agent", self.user_agent.is_some()),
            ("country", self.country.is_some()),
            ("prior_visits", self.prior_visits.is_some()),
            ("prior_conversions", self.prior_conversions.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, present)| present.then_some(name))
    }

    /// From `GET /v1/assign?site_key=...&url=...`.
    pub fn from_query(url: &worker::Url) -> Result<Self, ApiError> {
        let count = |name: &str, value: &str| {
            value.parse::<u32>().map_err(|_| {
                ApiError::bad_request(
                    "invalid_prior_count",
                    format!("{name} must be a whole number from 0 to 4294967295"),
                )
            })
        };
        let mut r = AssignRequest::default();
        for (k, v) in url.query_pairs() {
            match k.as_ref() {
                "site_key" => r.site_key = v.into_owned(),
                "url" => r.url = v.into_owned(),
                "visitor_id" => r.visitor_id = Some(v.into_owned()),
                "sticky" => r.sticky.extend(cookies::decode_sticky(&v)),
                "user_agent" => r.user_agent = Some(v.into_owned()),
                "ip" => r.ip = Some(v.into_owned()),
                "referrer" => r.referrer = Some(v.into_owned()),
                "country" => r.country = Some(v.into_owned()),
                "prior_visits" => r.prior_visits = Some(count(&k, &v)?),
                "prior_conversions" => r.prior_conversions = Some(count(&k, &v)?),
                name if name.starts_with("attr.") => {
                    r.attributes.insert(
                        name["attr.".len()..].to_owned(),
                        serde_json::Value::String(v.into_owned()),
                    );
                }
                _ => {}
            }
        }
        if r.site_key.is_empty() {
            return Err(ApiError::bad_request(
                "missing_field",
                "site_key is required",
            ));
        }
        Ok(r)
    }

    /// Field checks of a parsed request (site key, url, visitor id, sticky count).
    pub fn check(&self) -> Result<(), ApiError> {
        snapshots::check_site_key(&self.site_key)?;
        if self.url.is_empty() || self.url.len() > URL_MAX {
            return Err(ApiError::bad_request(
                "invalid_url",
                format!("url is required, at most {URL_MAX} bytes"),
            ));
        }
        if let Some(id) = &self.visitor_id
            && !cookies::valid_visitor_id(id)
        {
            return Err(ApiError::bad_request(
                "invalid_visitor_id",
                "visitor_id must be 1-128 printable ASCII characters without quotes, commas, semicolons or backslashes",
            ));
        }
        if self.sticky.len() > STICKY_MAX {
            return Err(ApiError::bad_request(
                "too_many_sticky",
                format!("at most {STICKY_MAX} sticky pairs"),
            ));
        }
        if let Some(referrer) = &self.referrer {
            context::check_referrer(referrer)?;
        }
        if let Some(country) = &self.country {
            context::check_country(country)?;
        }
        Ok(())
    }

    /// The attributes as (name, text) pairs: strings as they are, numbers and booleans
    /// as their JSON text. Anything else, too many, or too long is a 400.
    pub fn attribute_pairs(&self) -> Result<Vec<(&str, String)>, ApiError> {
        let bad = |why: String| ApiError::bad_request("invalid_attributes", why);
        if self.attributes.len() > ATTRIBUTES_MAX {
            return Err(bad(format!("at most {ATTRIBUTES_MAX} attributes")));
        }
        let mut out = Vec::with_capacity(self.attributes.len());
        for (name, value) in &self.attributes {
            if name.is_empty()
                || name.len() > 64
                || !name.bytes().all(|b| b.is_ascii_graphic() && b != b'"')
            {
                return Err(bad(format!(
                    "attribute names must be 1-64 printable ASCII characters: {:?}",
                    name.chars().take(64).collect::<String>()
                )));
            }
            let text = match value {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                _ => {
                    return Err(bad(format!(
                        "attribute {name:?} must be a string, a number or a boolean"
                    )));
                }
            };
            if text.len() > ATTRIBUTE_VALUE_MAX {
                return Err(bad(format!(
                    "attribute {name:?} is longer than {ATTRIBUTE_VALUE_MAX} bytes"
                )));
            }
            out.push((name.as_str(), text));
        }
        Ok(out)
    }
}

/// A click goal for the snippet to watch: `{"goal", "kind": "click", "selector"}`.
#[derive(Serialize)]
struct ClickGoal<'a> {
    goal: &'a str,
    kind: &'static str,
    selector: &'a str,
}

#[derive(Serialize)]
struct AssignResponse<'a> {
    site_key: &'a str,
    visitor_id: Option<&'a str>,
    snapshot_version: Option<u64>,
    excluded: Option<ExclusionReason>,
    assignments: &'a [Assignment<'a>],
    goals: Vec<ClickGoal<'a>>,
    /// Sticky key → token, for this response's assignments: what to send back in
    /// `sticky` (the cookie holds the same).
    sticky: BTreeMap<&'a str, &'a str>,
}

/// Handles both methods. `ctx` carries the exposure enqueue past the response.
pub async fn handle(req: &mut Request, env: &Env, ctx: &Context) -> Result<Response, ApiError> {
    let (input, raw) = if req.method() == worker::Method::Get {
        let url = req
            .url()
            .map_err(|e| ApiError::bad_request("invalid_url", e.to_string()))?;
        (AssignRequest::from_query(&url)?, Vec::new())
    } else {
        let raw = body::read_capped(req, PUBLIC_BODY_LIMIT).await?;
        (body::parse_json::<AssignRequest>(&raw)?, raw)
    };
    input.check()?;
    // An unsigned call is counted before anything else is looked at; a signed one once
    // its signature verified, under the visitor it speaks for (`crate::ratelimit`).
    let signature_sent = trust::has_signature_headers(req);
    if !signature_sent {
        ratelimit::check(env, req, ratelimit::Route::Assign, &input.site_key).await?;
    }
    let attributes = input.attribute_pairs()?;

    let request = RequestVisitor::read(req);
    let origin = request.header("origin").map(str::to_owned);

    let snapshot = snapshots::current(env, &input.site_key).await?;
    // Only a server holding the site's secret speaks for someone else's address or
    // browser; a browser's own headers are what count for it.
    let signed = trust::check_call(req, env, snapshot.as_deref(), &raw)?;
    for field in input.signed_only_fields() {
        trust::require_signed(signed, field)?;
    }
    if signature_sent {
        let addr = input.ip.as_deref().or(request.header("cf-connecting-ip"));
        ratelimit::check_for(env, ratelimit::Route::Assign, &input.site_key, addr).await?;
    }
    let Some(snapshot) = snapshot else {
        // No snapshot: no experiments. Nothing to remember, so no cookie either.
        return respond(
            &AssignResponse {
                site_key: &input.site_key,
                visitor_id: input.visitor_id.as_deref(),
                snapshot_version: None,
                excluded: None,
                assignments: &[],
                goals: Vec::new(),
                sticky: BTreeMap::new(),
            },
            origin.as_deref(),
            &[],
            &[],
        );
    };

    // Who the visitor is.
    let visitor_id = match (&input.visitor_id, request.cookie_visitor_id()) {
        (Some(id), _) => id.clone(),
        (None, Some(id)) => id.to_owned(),
        (None, None) => ids::time_ordered_uuid(now_ms())
            .map_err(|e| ApiError::upstream("the random number generator", e))?,
    };
    let user_agent = input.user_agent.as_deref().or(request.header("user-agent"));
    let ip: Option<IpAddr> = input
        .ip
        .as_deref()
        .or(request.header("cf-connecting-ip"))
        .and_then(|s| s.trim().parse().ok());

    // Sticky tokens: only those minted for this site and visitor count (anything else
    // is ignored, never an error); the caller's explicit ones win over the cookie's.
    let sticky_key = trust::sticky_key(env)?;
    let explicit: Vec<(String, String)> = input.sticky.clone().into_iter().collect();
    let previous: Vec<(String, String)> = request
        .sticky_cookie()
        .into_iter()
        .take(STICKY_MAX)
        .filter(|(k, t)| {
            sticky_key
                .verify(&input.site_key, &visitor_id, k, t)
                .is_some()
        })
        .collect();
    let sticky = trust::verified_sticky(
        &sticky_key,
        &input.site_key,
        &visitor_id,
        explicit.iter().chain(previous.iter()),
    );

    let attribute_refs: Vec<(&str, &str)> =
        attributes.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let result = request.assign(
        &snapshot,
        &Subject {
            visitor_id: &visitor_id,
            url: &input.url,
            user_agent,
            ip,
            sticky: &sticky,
            attributes: &attribute_refs,
        },
    );
    if result.excluded.is_some() {
        return respond(
            &AssignResponse {
                site_key: &input.site_key,
                visitor_id: None,
                snapshot_version: Some(snapshot.version),
                excluded: result.excluded,
                assignments: &[],
                goals: Vec::new(),
                sticky: BTreeMap::new(),
            },
            origin.as_deref(),
            &snapshot.allowed_origins,
            &[],
        );
    }

    // Cookies: the visitor id when the browser had none; the sticky pairs when they change.
    let secure = req.url().is_ok_and(|u| u.scheme() == "https");
    let arms: Vec<(String, String)> = result
        .assignments
        .iter()
        .map(|a| (a.sticky_key.to_owned(), a.arm_id.to_owned()))
        .collect();
    let fresh = trust::tokens(&sticky_key, &input.site_key, &visitor_id, &arms);
    let mut set_cookies = request.set_cookies(&visitor_id, &fresh, &previous, secure);

    // What the exposures record of the visitor (`crate::context`). A signed call speaks
    // for a visitor elsewhere: the request's own country and cookies are the plugin
    // server's, so only what the call says counts (and no history cookie is set).
    let history = if signed {
        History::from_signed_call(input.prior_visits, input.prior_conversions)
    } else {
        request.history(context::now_min(), secure)
    };
    set_cookies.extend(history.set_cookie.clone());
    let facts = Facts {
        country: if signed {
            input.country.as_deref()
        } else {
            request.country.as_deref()
        },
        user_agent,
        page_url: &input.url,
        referrer: input.referrer.as_deref(),
        prior_visits: history.prior_visits,
        prior_conversions: history.prior_conversions,
    };

    // URL goals this page fires become conversions now (no snippet needed); click goals
    // go to the snippet. Over the whole snapshot: a goal page is usually outside the
    // experiment's own URL rules, and the control plane attributes only assigned visitors.
    let page_goals = assign::page_goals(&snapshot, &input.url);
    enqueue_items(
        env,
        ctx,
        &input.site_key,
        &visitor_id,
        &result.assignments,
        &page_goals.url_goals,
        &facts,
    )?;
    let goals = page_goals
        .click_goals
        .iter()
        .map(|(goal, selector)| ClickGoal {
            goal,
            kind: "click",
            selector,
        })
        .collect();

    respond(
        &AssignResponse {
            site_key: &input.site_key,
            visitor_id: Some(&visitor_id),
            snapshot_version: Some(snapshot.version),
            excluded: None,
            assignments: &result.assignments,
            goals,
            sticky: fresh
                .iter()
                .map(|(k, t)| (k.as_str(), t.as_str()))
                .collect(),
        },
        origin.as_deref(),
        &snapshot.allowed_origins,
        &set_cookies,
    )
}

/// Builds the exposure items and the URL-goal conversions now (ids fixed at enqueue
/// time) and sends them after the response. A URL-goal conversion's id is derived from
/// (site, visitor, goal), so reloading the goal page adds nothing downstream.
fn enqueue_items(
    env: &Env,
    ctx: &Context,
    site_key: &str,
    visitor_id: &str,
    assignments: &[Assignment<'_>],
    url_goals: &[&str],
    facts: &Facts<'_>,
) -> Result<(), ApiError> {
    if assignments.is_empty() && url_goals.is_empty() {
        return Ok(());
    }
    let ts_ms = now_ms();
    let mut items = Vec::with_capacity(assignments.len() + url_goals.len());
    for goal in url_goals {
        items.push(Item::Conversion(GoalEvent {
            id: url_goal_item_id(site_key, visitor_id, goal),
            site_key: site_key.to_owned(),
            visitor_id: visitor_id.to_owned(),
            goal: (*goal).to_owned(),
            value: None,
            currency: None,
            ts_ms,
            signed: false,
        }));
    }
    if !assignments.is_empty() {
        // Classified only now: a request that queues no exposure never pays for it.
        let context = facts.context();
        let served: Vec<&Assignment<'_>> = assignments.iter().collect();
        items.extend(crate::site::exposures(
            site_key,
            visitor_id,
            &served,
            facts.page_url,
            Some(&context),
        )?);
    }
    events::send_after_response(ctx, events::queue(env)?, items, "exposures");
    Ok(())
}

/// `ug-` + the first 128 bits of SHA-256(site, NUL, visitor, NUL, goal) in hex: the same
/// for every view of the goal page by that visitor, within the control plane's
/// 128-character id limit whatever the lengths of the visitor id and goal name. The site
/// key is part of it because the control plane deduplicates by item id: without it, a
/// page on one site could send the same (visitor, goal) first and burn another site's
/// conversion id.
fn url_goal_item_id(site_key: &str, visitor_id: &str, goal: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(site_key.as_bytes());
    h.update([0u8]);
    h.update(visitor_id.as_bytes());
    h.update([0u8]);
    h.update(goal.as_bytes());
    let digest = h.finalize();
    format!("ug-{}", hex::encode(&digest[..16]))
}

/// A JSON response with CORS for the site and its cookies; never cached.
fn respond<T: Serialize>(
    body: &T,
    origin: Option<&str>,
    allowed: &[String],
    set_cookies: &[String],
) -> Result<Response, ApiError> {
    let response = Response::from_json(body).map_err(crate::internal)?;
    let headers = response.headers();
    headers
        .set("Cache-Control", "no-store")
        .map_err(crate::internal)?;
    cors::apply(headers, origin, allowed).map_err(crate::internal)?;
    for c in set_cookies {
        headers.append("Set-Cookie", c).map_err(crate::internal)?;
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_goal_item_ids_are_stable_short_and_distinct() {
        let a = url_goal_item_id("sk_a", "visitor-1", "thanks");
        assert_eq!(a, url_goal_item_id("sk_a", "visitor-1", "thanks"));
        assert_eq!(a.len(), 35);
        assert_ne!(a, url_goal_item_id("sk_a", "visitor-1", "thanks2"));
        // The separators keep ("ab", "c") and ("a", "bc") apart.
        assert_ne!(
            url_goal_item_id("s", "ab", "c"),
            url_goal_item_id("s", "a", "bc")
        );
        assert_ne!(
            url_goal_item_id("sa", "b", "c"),
            url_goal_item_id("s", "ab", "c")
        );
        assert_eq!(
            url_goal_item_id(&"s".repeat(128), &"v".repeat(128), &"g".repeat(100)).len(),
            35
        );
    }

    #[test]
    fn one_site_cannot_burn_another_sites_url_goal_ids() {
        // Same visitor id and goal name on two sites: two conversions, two ids.
        assert_ne!(
            url_goal_item_id("sk_victim", "visitor-1", "purchase"),
            url_goal_item_id("sk_attacker", "visitor-1", "purchase")
        );
        // Pinned, so a change of derivation (which re-counts reloads once) is deliberate.
        assert_eq!(
            url_goal_item_id("sk_a", "visitor-1", "thanks"),
            "ug-486f9cb75cb98924973a33e12cdddd09"
        );
    }

    #[test]
    fn query_input_reads_every_field() {
        let url = worker::Url::parse(
            "https://edge.test/v1/assign?site_key=sk_1&url=https%3A%2F%2Fshop.test%2F%3Fa%3D1&visitor_id=v1&sticky=e1%3Da1%26e2%3Da2&user_agent=UA&ip=10.0.0.1&referrer=https%3A%2F%2Fwww.google.com%2F&country=ES&prior_visits=3&prior_conversions=1",
        )
        .unwrap();
        let r = AssignRequest::from_query(&url).unwrap();
        assert_eq!(r.site_key, "sk_1");
        assert_eq!(r.url, "https://shop.test/?a=1");
        assert_eq!(r.visitor_id.as_deref(), Some("v1"));
        assert_eq!(r.sticky.get("e1").map(String::as_str), Some("a1"));
        assert_eq!(r.sticky.get("e2").map(String::as_str), Some("a2"));
        assert_eq!(r.user_agent.as_deref(), Some("UA"));
        assert_eq!(r.ip.as_deref(), Some("10.0.0.1"));
        assert_eq!(r.referrer.as_deref(), Some("https://www.google.com/"));
        assert_eq!(r.country.as_deref(), Some("ES"));
        assert_eq!((r.prior_visits, r.prior_conversions), (Some(3), Some(1)));
        r.check().unwrap();
        let bad =
            worker::Url::parse("https://edge.test/v1/assign?site_key=s&url=u&prior_visits=-1")
                .unwrap();
        assert_eq!(
            AssignRequest::from_query(&bad).unwrap_err().code,
            "invalid_prior_count"
        );
    }

    #[test]
    fn bad_inputs_are_refused_with_a_reason() {
        let base = || AssignRequest {
            site_key: "sk".into(),
            url: "https://x/".into(),
            ..Default::default()
        };
        let cases: Vec<(AssignRequest, &str)> = vec![
            (
                AssignRequest {
                    site_key: "a b".into(),
                    ..base()
                },
                "invalid_site_key",
            ),
            (
                AssignRequest {
                    url: String::new(),
                    ..base()
                },
                "invalid_url",
            ),
            (
                AssignRequest {
                    url: "x".repeat(URL_MAX + 1),
                    ..base()
                },
                "invalid_url",
            ),
            (
                AssignRequest {
                    visitor_id: Some("a;b".into()),
                    ..base()
                },
                "invalid_visitor_id",
            ),
            (
                AssignRequest {
                    referrer: Some("r".repeat(crate::context::REFERRER_MAX + 1)),
                    ..base()
                },
                "invalid_referrer",
            ),
            (
                AssignRequest {
                    country: Some("es".into()),
                    ..base()
                },
                "invalid_country",
            ),
        ];
        for (input, code) in cases {
            assert_eq!(input.check().unwrap_err().code, code);
        }
        let url = worker::Url::parse("https://edge.test/v1/assign?url=x").unwrap();
        assert_eq!(
            AssignRequest::from_query(&url).unwrap_err().code,
            "missing_field"
        );
    }
}
