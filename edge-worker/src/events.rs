//! `POST /v1/events`: conversions, custom events and page views, into the `EVENTS` queue.
//!
//! Body (JSON; `text/plain` from `navigator.sendBeacon` is fine):
//! `{"site_key", "visitor_id"?, "events": [{"type": "conversion"|"custom"|"pageview",
//! "goal"?, "value"?, "currency"?, "url"?, "id"?}]}` — at most [`MAX_EVENTS`] events. `visitor_id`
//! falls back to the `samplit_vid` cookie. `goal` is required for conversion/custom,
//! `url` for pageview; `value` must be a number in [0, 1e9] (422 `invalid_value`), and at
//! most the site's revenue cap (snapshot `trust.revenue_cap`, default 10 000) unless the
//! request is a signed server call (422 `revenue_over_cap`; see [`crate::trust`]; a bad
//! signature is a 401); `currency`, when given, is an ISO 4217 code of the value (three
//! capital letters, 422 `invalid_event` otherwise; ingestion counts revenue only in the
//! site's currency). A client `id` makes the item id
//! deterministic (site, visitor, id), so a re-sent beacon is deduplicated downstream.
//! The site must have a snapshot (else 404). Answer: 202 `{"accepted": n}` once the
//! items are in the queue. When the request (unsigned: the visitor's browser) carries
//! `conversion` events, the answer re-sets the `samplit_hist` cookie with its conversion
//! count raised by that many (custom events and page views do not count; see
//! [`crate::context`]).

use samplit_engine::snapshot::MAX_EVENT_VALUE;
use serde::Deserialize;
use worker::{Context, Delay, Env, Queue, Request, Response};

use crate::body::{self, PUBLIC_BODY_LIMIT};
use crate::clock::now_ms;
use crate::cookies::{self, HISTORY_COOKIE, VISITOR_COOKIE};
use crate::error::ApiError;
use crate::{context, cors, ids, snapshots, trust};
use samplit_engine::ingest::{self, GoalEvent, Item, Pageview};

/// The queue binding exposures and events go to.
pub const QUEUE_BINDING: &str = "EVENTS";
/// Most events in one request.
pub const MAX_EVENTS: usize = 50;
/// Most messages per `sendBatch` call (the Queues limit).
pub const QUEUE_BATCH_MAX: usize = 100;
/// Longest client event id (the control plane's item id limit).
pub const NAME_MAX: usize = 128;
/// Longest goal name: the ingest contract's (the control plane's goals table allows 100).
/// A longer one used to be accepted here with 202 and then dropped at ingest.
pub const GOAL_MAX: usize = ingest::MAX_GOAL_LEN;
/// Longest page URL.
pub const URL_MAX: usize = 4096;

/// A `POST /v1/events` body.
#[derive(Debug, Deserialize)]
pub struct EventsRequest {
    pub site_key: String,
    #[serde(default)]
    pub visitor_id: Option<String>,
    pub events: Vec<EventInput>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Conversion,
    Custom,
    Pageview,
}

/// One event of a request (checked by [`to_item`]).
#[derive(Debug, Deserialize)]
pub struct EventInput {
    #[serde(rename = "type")]
    kind: EventKind,
    #[serde(default)]
    goal: Option<String>,
    /// Any JSON, checked by [`event_value`]: a value that is not a number in range is a
    /// 422 naming the event, not a parse error for the whole body.
    #[serde(default)]
    value: Option<serde_json::Value>,
    #[serde(default)]
    currency: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    id: Option<String>,
}

/// The queue binding, or 503 when it is missing.
pub fn queue(env: &Env) -> Result<Queue, ApiError> {
    env.queue(QUEUE_BINDING)
        .map_err(|_| ApiError::not_configured("EVENTS queue binding"))
}

/// Sends items in batches the Queues API accepts.
pub async fn send(queue: &Queue, items: Vec<Item>) -> worker::Result<()> {
    let mut items = items;
    while !items.is_empty() {
        let rest = items.split_off(items.len().min(QUEUE_BATCH_MAX));
        queue.send_batch(items).await?;
        items = rest;
    }
    Ok(())
}

/// How long exposures wait in the isolate to be sent together with those of other
/// requests ([`send_after_response`]).
pub const COALESCE_MS: u64 = 50;

thread_local! {
    /// Items waiting for the next coalesced send, with what they are (for the error log).
    static PENDING: std::cell::RefCell<Vec<(Item, &'static str)>> =
        const { std::cell::RefCell::new(Vec::new()) };
    /// When the send task that has not taken the buffer yet was registered (ms; 0: none).
    static SCHEDULED_AT: std::cell::Cell<i64> = const { std::cell::Cell::new(0) };
}

/// Sends `items` after the response, coalesced with the other requests of this isolate.
///
/// The items join a buffer in the isolate. When no send task is waiting, this request
/// registers one with `wait_until` (which keeps the isolate alive until it is done): it
/// waits [`COALESCE_MS`], takes everything the buffer holds by then and sends it in
/// `sendBatch` calls of at most [`QUEUE_BATCH_MAX`]. Items added while a task waits ride
/// with it; items added after it took the buffer get a new task. So every item is sent
/// at most ~[`COALESCE_MS`] after it was added, by a task some request is keeping alive,
/// and nothing waits for traffic that may not come. Under load one Queue call (and one
/// timer) carries the exposures of many requests — Queues count, and bill, per call —
/// and none of the work runs before the visitor has the answer. A failed send is logged
/// with what it carried (`what`).
pub fn send_after_response(ctx: &Context, queue: Queue, items: Vec<Item>, what: &'static str) {
    PENDING.with_borrow_mut(|pending| pending.extend(items.into_iter().map(|i| (i, what))));
    let now = now_ms();
    let waiting_since = SCHEDULED_AT.get();
    // A task registered long ago that never ran (its request's context was torn down)
    // does not hold the buffer hostage: after 20 windows a new task is registered.
    if waiting_since != 0 && now.saturating_sub(waiting_since) < 20 * COALESCE_MS as i64 {
        return;
    }
    SCHEDULED_AT.set(now);
    ctx.wait_until(async move {
        Delay::from(std::time::Duration::from_millis(COALESCE_MS)).await;
        SCHEDULED_AT.set(0);
        let taken = PENDING.with_borrow_mut(std::mem::take);
        if taken.is_empty() {
            return;
        }
        let mut kinds: Vec<&'static str> = taken.iter().map(|(_, w)| *w).collect();
        kinds.sort_unstable();
        kinds.dedup();
        let count = taken.len();
        if let Err(e) = send(&queue, taken.into_iter().map(|(i, _)| i).collect()).await {
            worker::console_error!("{count} items ({}) not enqueued: {e}", kinds.join(", "));
        }
    });
}

/// An event's value: absent (or `null`), or a finite number in
/// [0, [`MAX_EVENT_VALUE`]] (422 `invalid_value` otherwise, whoever sends it); above
/// `cap` only in a signed call (422 `revenue_over_cap` otherwise).
fn event_value(
    value: Option<&serde_json::Value>,
    index: usize,
    cap: f64,
    signed: bool,
) -> Result<Option<f64>, ApiError> {
    let v = match value {
        None | Some(serde_json::Value::Null) => return Ok(None),
        Some(serde_json::Value::Number(n)) => n.as_f64(),
        Some(_) => None,
    };
    let Some(v) = v.filter(|v| v.is_finite() && (0.0..=MAX_EVENT_VALUE).contains(v)) else {
        return Err(ApiError::new(
            422,
            "invalid_value",
            format!("events[{index}]: value must be a number in [0, {MAX_EVENT_VALUE:e}]"),
        ));
    };
    if v > cap && !signed {
        return Err(ApiError::new(
            422,
            "revenue_over_cap",
            format!(
                "events[{index}]: value {v} is above this site's revenue cap ({cap}); larger values need a signed server call"
            ),
        ));
    }
    Ok(Some(v))
}

/// Parses a request body and checks what does not need the site: the site key's shape
/// and the number of events.
pub fn parse_request(raw: &[u8]) -> Result<EventsRequest, ApiError> {
    let input: EventsRequest = body::parse_json(raw)?;
    snapshots::check_site_key(&input.site_key)?;
    if input.events.is_empty() || input.events.len() > MAX_EVENTS {
        return Err(ApiError::bad_request(
            "invalid_events",
            format!("events must hold 1 to {MAX_EVENTS} events"),
        ));
    }
    Ok(input)
}

/// Validates one event and turns it into a queue item. `cap` and `signed` decide which
/// values are accepted (`event_value`).
pub fn to_item(
    e: EventInput,
    index: usize,
    site_key: &str,
    visitor_id: &str,
    ts_ms: i64,
    (cap, signed): (f64, bool),
) -> Result<Item, ApiError> {
    let bad =
        |what: &str| ApiError::bad_request("invalid_event", format!("events[{index}]: {what}"));
    let value = event_value(e.value.as_ref(), index, cap, signed)?;
    let id = match &e.id {
        Some(client) if client.is_empty() || client.len() > NAME_MAX => {
            return Err(bad("id must be 1-128 bytes"));
        }
        Some(client) => ids::derived_uuid(&[site_key, visitor_id, client]),
        None => ids::time_ordered_uuid(ts_ms)
            .map_err(|e| ApiError::upstream("the random number generator", e))?,
    };
    let currency = match e.currency {
        Some(c) if !ingest::currency_valid(&c) => {
            return Err(bad(
                "currency must be an ISO 4217 code (three capital letters)",
            ));
        }
        c => c,
    };
    let goal = |g: Option<String>| match g {
        Some(g) if !g.is_empty() && g.len() <= GOAL_MAX => Ok(g),
        _ => Err(bad("goal is required, 1-100 bytes")),
    };
    Ok(match e.kind {
        EventKind::Conversion | EventKind::Custom => {
            let item = GoalEvent {
                id,
                site_key: site_key.to_owned(),
                visitor_id: visitor_id.to_owned(),
                goal: goal(e.goal)?,
                value,
                currency,
                ts_ms,
                signed,
            };
            if matches!(e.kind, EventKind::Conversion) {
                Item::Conversion(item)
            } else {
                Item::Custom(item)
            }
        }
        EventKind::Pageview => {
            let url = match e.url {
                Some(u) if !u.is_empty() && u.len() <= URL_MAX => u,
                _ => return Err(bad("url is required for a pageview, at most 4096 bytes")),
            };
            Item::Pageview(Pageview {
                id,
                site_key: site_key.to_owned(),
                visitor_id: visitor_id.to_owned(),
                url,
                ts_ms,
            })
        }
    })
}

/// `POST /v1/events`.
pub async fn handle(req: &mut Request, env: &Env) -> Result<Response, ApiError> {
    let raw = body::read_capped(req, PUBLIC_BODY_LIMIT).await?;
    let input = parse_request(&raw)?;
    crate::ratelimit::check(env, req, crate::ratelimit::Route::Events, &input.site_key).await?;
    let jar = req
        .headers()
        .get("cookie")
        .ok()
        .flatten()
        .map(|h| cookies::parse_cookie_header(&h))
        .unwrap_or_default();
    let cookie = |name: &str| jar.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let cookie_vid = cookie(VISITOR_COOKIE).map(str::to_owned);
    let visitor_id = input.visitor_id.or(cookie_vid).ok_or_else(|| {
        ApiError::bad_request(
            "missing_visitor_id",
            "visitor_id is required (or the samplit_vid cookie)",
        )
    })?;
    if !cookies::valid_visitor_id(&visitor_id) {
        return Err(ApiError::bad_request(
            "invalid_visitor_id",
            "visitor_id is not a valid id",
        ));
    }
    let Some(snapshot) = snapshots::current(env, &input.site_key).await? else {
        return Err(ApiError::unknown_site());
    };
    let signed = trust::check_call(req, env, Some(&snapshot), &raw)?;
    let limits = (snapshot.trust.revenue_cap(), signed);

    let ts_ms = now_ms();
    let items = input
        .events
        .into_iter()
        .enumerate()
        .map(|(i, e)| to_item(e, i, &input.site_key, &visitor_id, ts_ms, limits))
        .collect::<Result<Vec<_>, _>>()?;
    let accepted = items.len();
    let conversions = items
        .iter()
        .filter(|i| matches!(i, Item::Conversion(_)))
        .count();
    let queue = queue(env)?;
    send(&queue, items)
        .await
        .map_err(|e| ApiError::upstream("the EVENTS queue", e))?;

    let response = Response::from_json(&serde_json::json!({ "accepted": accepted }))
        .map_err(crate::internal)?
        .with_status(202);
    let origin = req.headers().get("origin").ok().flatten();
    cors::apply(
        response.headers(),
        origin.as_deref(),
        &snapshot.allowed_origins,
    )
    .map_err(crate::internal)?;
    response
        .headers()
        .set("Cache-Control", "no-store")
        .map_err(crate::internal)?;
    // The browser's history cookie counts its conversions (prior conversions of its
    // later exposures, `crate::context`); a signed call is the plugin's server, not the
    // visitor's browser.
    if conversions > 0 && !signed {
        let secure = req.url().is_ok_and(|u| u.scheme() == "https");
        let count = u32::try_from(conversions).unwrap_or(u32::MAX);
        let line =
            context::conversion_cookie(cookie(HISTORY_COOKIE), count, context::now_min(), secure);
        response
            .headers()
            .append("Set-Cookie", &line)
            .map_err(crate::internal)?;
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: EventKind) -> EventInput {
        EventInput {
            kind,
            goal: None,
            value: None,
            currency: None,
            url: None,
            id: None,
        }
    }

    #[test]
    fn events_are_validated_per_kind() {
        let cases: Vec<(EventInput, bool, &str)> = vec![
            (
                EventInput {
                    goal: Some("signup".into()),
                    ..ev(EventKind::Conversion)
                },
                true,
                "conversion with goal",
            ),
            (ev(EventKind::Conversion), false, "conversion without goal"),
            (
                EventInput {
                    goal: Some(String::new()),
                    ..ev(EventKind::Custom)
                },
                false,
                "empty goal",
            ),
            (
                EventInput {
                    goal: Some("g".into()),
                    value: Some(serde_json::json!("NaN")),
                    ..ev(EventKind::Custom)
                },
                false,
                "NaN value",
            ),
            (
                EventInput {
                    url: Some("https://x/".into()),
                    ..ev(EventKind::Pageview)
                },
                true,
                "pageview with url",
            ),
            (ev(EventKind::Pageview), false, "pageview without url"),
            (
                EventInput {
                    goal: Some("purchase".into()),
                    value: Some(serde_json::json!(12.5)),
                    currency: Some("EUR".into()),
                    ..ev(EventKind::Conversion)
                },
                true,
                "revenue with a currency",
            ),
            (
                EventInput {
                    goal: Some("purchase".into()),
                    currency: Some("eur".into()),
                    ..ev(EventKind::Conversion)
                },
                false,
                "a currency that is not three capital letters",
            ),
            (
                EventInput {
                    goal: Some("purchase".into()),
                    currency: Some("EURO".into()),
                    ..ev(EventKind::Conversion)
                },
                false,
                "a four-letter currency",
            ),
            (
                EventInput {
                    goal: Some("g".into()),
                    id: Some("x".repeat(129)),
                    ..ev(EventKind::Conversion)
                },
                false,
                "long id",
            ),
            (
                EventInput {
                    goal: Some("g".repeat(GOAL_MAX)),
                    ..ev(EventKind::Conversion)
                },
                true,
                "goal at the ingest limit",
            ),
            (
                EventInput {
                    goal: Some("g".repeat(GOAL_MAX + 1)),
                    ..ev(EventKind::Conversion)
                },
                false,
                "goal over the ingest limit (was a 202 here and a drop at ingest)",
            ),
        ];
        for (input, ok, why) in cases {
            assert_eq!(
                to_item(input, 0, "s", "v", 1, (100.0, false)).is_ok(),
                ok,
                "{why}"
            );
        }
    }

    #[test]
    fn values_are_bounded_and_the_cap_binds_only_unsigned_calls() {
        use serde_json::json;
        // (value, signed, expected value or error code, why)
        type Case = (
            serde_json::Value,
            bool,
            Result<Option<f64>, &'static str>,
            &'static str,
        );
        let cases: Vec<Case> = vec![
            (json!(null), false, Ok(None), "null is no value"),
            (json!(0), false, Ok(Some(0.0)), "zero"),
            (json!(99.5), false, Ok(Some(99.5)), "under the cap"),
            (json!(100), false, Ok(Some(100.0)), "at the cap"),
            (
                json!(100.01),
                false,
                Err("revenue_over_cap"),
                "over the cap, unsigned",
            ),
            (json!(5000), true, Ok(Some(5000.0)), "over the cap, signed"),
            (json!(1e9), true, Ok(Some(1e9)), "the ceiling, signed"),
            (
                json!(1e12),
                true,
                Err("invalid_value"),
                "above the ceiling, even signed",
            ),
            (json!(-1), false, Err("invalid_value"), "negative"),
            (json!("NaN"), false, Err("invalid_value"), "a string"),
            (json!([1]), true, Err("invalid_value"), "an array"),
        ];
        for (value, signed, expected, why) in cases {
            let got = event_value(Some(&value), 3, 100.0, signed);
            match expected {
                Ok(v) => assert_eq!(got.unwrap(), v, "{why}"),
                Err(code) => {
                    let e = got.unwrap_err();
                    assert_eq!((e.status, e.code), (422, code), "{why}");
                    assert!(e.message.starts_with("events[3]"), "{why}");
                }
            }
        }
    }

    #[test]
    fn a_client_event_id_gives_a_stable_item_id() {
        let mk = || EventInput {
            goal: Some("g".into()),
            id: Some("evt-1".into()),
            ..ev(EventKind::Conversion)
        };
        let a = to_item(mk(), 0, "s", "v", 1, (100.0, false)).unwrap();
        let b = to_item(mk(), 0, "s", "v", 2, (100.0, false)).unwrap();
        let id = |i: &Item| match i {
            Item::Conversion(g) => g.id.clone(),
            _ => unreachable!(),
        };
        assert_eq!(id(&a), id(&b));
    }
}
