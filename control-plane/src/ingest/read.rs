//! Reading one item of a batch into what the checks made of it ([`Parsed`]) or the
//! reason it is refused ([`Rejection`]), on one of two paths that give the same answer:
//!
//! - the **typed path**, for the items the edge sends: one pass over the item's JSON
//!   text into [`Fields`], strings borrowed from the request's body; only the exposure's
//!   `context` becomes a (small) tree, read leniently ([`context::of_context`]);
//! - the **tree path**, for everything else: the item as a `serde_json::Value`, read by
//!   the contract's own types ([`samplit_engine::ingest::Item`]), whose errors are the
//!   rejections' messages.
//!
//! The typed path only answers when it can answer exactly as the tree path would: any
//! item it cannot read (a missing or mistyped field, a field no item type has, an
//! unknown `type`, a repeated key, an explicit `null` where the contract has a default)
//! goes to the tree path, and the checks after reading ([`check`]) are the same code.
//! A field the typed path does not read could hide JSON that the tree refuses (nesting
//! past serde_json's depth limit, a number out of range, a lone surrogate escape): so
//! there is none — [`Fields`] refuses unknown fields, and the context is parsed as a
//! tree at the depth it has in the item. The unit tests below and the fuzz
//! target `ingest` compare the two on the same items. Why two: on a batch of 500
//! exposures the tree (a map per item and per context, a string per key and value, then
//! the contract's internally tagged enum buffering it once more) was about a third of
//! the control plane's CPU in ingestion (docs/benchmarks.md, "The allocator" and
//! "Reading items without a tree").

use std::borrow::Cow;

use samplit_engine::ingest::{Exposure as WireExposure, GoalEvent, Item, Pageview};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use serde_json::value::RawValue;
use time::OffsetDateTime;
use uuid::Uuid;

use super::items::{self, Rejection};
use super::{FUTURE_SKEW, RejectedItem, SEEN_RETENTION, context};
use crate::db::raw_events::StoredContext;

/// An item read: its id when it has a usable one (ids repeated inside a batch are
/// duplicates of their first occurrence), and the result of its checks.
pub(super) struct Read<'a> {
    pub(super) id: Option<Cow<'a, str>>,
    pub(super) parsed: Result<Parsed, Rejection>,
}

/// Reads one item: the typed path when it can answer, the tree path otherwise.
pub(super) fn read_item(raw: &RawValue, now: OffsetDateTime) -> Read<'_> {
    match read_typed(raw.get(), now) {
        Some(read) => read,
        None => read_tree(raw.get(), now),
    }
}

/// The per-item checks [`super::Ingestor::process`] runs before touching the database
/// (shape, ids, lengths, time window, propensity, value), without keeping the result:
/// for the fuzz targets (`fuzz/`), which run exactly this code on arbitrary batches.
pub fn check_item(raw: &RawValue, now: OffsetDateTime) -> Result<(), RejectedItem> {
    read_item(raw, now)
        .parsed
        .map(|_| ())
        .map_err(RejectedItem::from)
}

/// Whether the typed path, when it answers for `raw`, answers as the tree path does
/// (same id, same result and message): for the fuzz target `ingest`.
#[doc(hidden)]
pub fn paths_agree(raw: &RawValue, now: OffsetDateTime) -> bool {
    match read_typed(raw.get(), now) {
        None => true,
        Some(typed) => {
            let tree = read_tree(raw.get(), now);
            typed.id == tree.id && typed.parsed == tree.parsed
        }
    }
}

fn read_tree(text: &str, now: OffsetDateTime) -> Read<'_> {
    match serde_json::from_str::<Value>(text) {
        Ok(value) => Read {
            id: items::item_id(&value)
                .ok()
                .map(|id| Cow::Owned(id.to_owned())),
            parsed: parse_item(&value, now),
        },
        // Valid JSON the tree cannot hold (nested past serde_json's depth limit, a
        // number out of range): the batch around it is kept.
        Err(e) => Read {
            id: None,
            parsed: Err(Rejection::new(
                "",
                "invalid_item",
                format!("invalid item: {e}"),
            )),
        },
    }
}

/// Every field any item type has, as the typed path reads them; any other field sends the
/// item to the tree path. A field of another type than the item's is read too (and so
/// must have that field's type, or the tree path answers), and then ignored, as the
/// contract's types ignore it. Strings are borrowed from the body: one with an escape
/// sequence goes to the tree path.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Fields<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    site_key: Option<&'a str>,
    #[serde(borrow)]
    visitor_id: Option<&'a str>,
    ts_ms: Option<i64>,
    // Exposures.
    #[serde(borrow)]
    experiment_id: Option<&'a str>,
    #[serde(borrow)]
    element_id: Option<&'a str>,
    #[serde(borrow)]
    arm_id: Option<&'a str>,
    propensity: Option<f64>,
    snapshot_version: Option<u64>,
    #[serde(borrow)]
    host: Option<&'a str>,
    #[serde(borrow)]
    context: Option<&'a RawValue>,
    // Conversions and custom events.
    #[serde(borrow)]
    goal: Option<&'a str>,
    value: Option<f64>,
    #[serde(borrow)]
    currency: Option<&'a str>,
    /// The contract defaults it to `false` when absent but refuses `null`: so does this.
    #[serde(default, deserialize_with = "not_null")]
    signed: Option<bool>,
    // Page views.
    #[serde(borrow)]
    url: Option<&'a str>,
}

fn not_null<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    bool::deserialize(d).map(Some)
}

/// The typed path (`None`: the tree path answers).
fn read_typed(text: &str, now: OffsetDateTime) -> Option<Read<'_>> {
    // Only an object: a struct would also read an array, by position.
    if !text.starts_with('{') {
        return None;
    }
    let f: Fields<'_> = serde_json::from_str(text).ok()?;
    if !items::valid_id(&f.id) {
        return None;
    }
    let id = f.id.clone();
    let owned = str::to_owned;
    let item = match &*f.kind {
        "exposure" => Item::Exposure(WireExposure {
            id: f.id.into_owned(),
            site_key: owned(f.site_key?),
            experiment_id: owned(f.experiment_id?),
            element_id: f.element_id.map(owned),
            arm_id: owned(f.arm_id?),
            visitor_id: owned(f.visitor_id?),
            propensity: f.propensity?,
            snapshot_version: f.snapshot_version?,
            ts_ms: f.ts_ms?,
            host: f.host.map(owned),
            // Read leniently below, never strictly.
            context: None,
        }),
        kind @ ("conversion" | "custom") => {
            let event = GoalEvent {
                id: f.id.into_owned(),
                site_key: owned(f.site_key?),
                visitor_id: owned(f.visitor_id?),
                goal: owned(f.goal?),
                value: f.value,
                currency: f.currency.map(owned),
                ts_ms: f.ts_ms?,
                signed: f.signed.unwrap_or(false),
            };
            if kind == "custom" {
                Item::Custom(event)
            } else {
                Item::Conversion(event)
            }
        }
        "pageview" => Item::Pageview(Pageview {
            id: f.id.into_owned(),
            site_key: owned(f.site_key?),
            visitor_id: owned(f.visitor_id?),
            url: owned(f.url?),
            ts_ms: f.ts_ms?,
        }),
        _ => return None,
    };
    // The context as a tree of its own (a map of at most a few short fields), parsed
    // inside `[...]` so that it sits as deep as it does in the item: what the tree path
    // would refuse in it sends the item there.
    let context = match f.context {
        Some(raw) => Some(serde_json::from_str::<[Value; 1]>(&format!("[{}]", raw.get())).ok()?),
        None => None,
    };
    let parsed = check(&id, item, now, || {
        context
            .as_ref()
            .map(|[c]| context::of_context(c))
            .unwrap_or_default()
    });
    Some(Read {
        id: Some(id),
        parsed,
    })
}

#[derive(Debug, PartialEq)]
pub(super) struct Exposure {
    pub(super) id: String,
    pub(super) site_key: String,
    pub(super) experiment_id: Uuid,
    pub(super) element_id: Option<Uuid>,
    pub(super) arm_id: Uuid,
    pub(super) visitor_id: String,
    pub(super) propensity: f64,
    pub(super) snapshot_version: i64,
    pub(super) at: OffsetDateTime,
    /// The page host the edge reported (lower case), for "verify installation".
    pub(super) host: Option<String>,
    /// What the edge knew before assigning (read leniently: [`context`]).
    pub(super) context: StoredContext,
}

#[derive(Debug, PartialEq)]
pub(super) struct Conversion {
    pub(super) id: String,
    pub(super) site_key: String,
    pub(super) visitor_id: String,
    pub(super) goal: String,
    pub(super) value: f64,
    /// The value's currency, when the sender named one (checked against the site's).
    pub(super) currency: Option<String>,
    /// Came in a signed server call (not held to the per-visitor revenue cap).
    pub(super) signed: bool,
    /// A `custom` event rather than a `conversion` (kept as such in raw events).
    pub(super) custom: bool,
    pub(super) at: OffsetDateTime,
}

#[derive(Debug, PartialEq)]
pub(super) enum Parsed {
    Exposure(Exposure),
    Conversion(Conversion),
    Pageview { id: String, site_key: String },
}

impl Parsed {
    pub(super) fn site_key(&self) -> &str {
        match self {
            Self::Exposure(e) => &e.site_key,
            Self::Conversion(c) => &c.site_key,
            Self::Pageview { site_key, .. } => site_key,
        }
    }
}

fn to_time(id: &str, ts_ms: i64) -> Result<OffsetDateTime, Rejection> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ts_ms) * 1_000_000)
        .map_err(|_| Rejection::new(id, "invalid_item", "ts_ms is not a valid time"))
}

fn parse_uuid(id: &str, raw: &str, reason: &'static str, what: &str) -> Result<Uuid, Rejection> {
    Uuid::parse_str(raw).map_err(|_| Rejection::new(id, reason, format!("no such {what}")))
}

/// The tree path: the item as a `serde_json::Value`, read by the contract's types.
fn parse_item(value: &Value, now: OffsetDateTime) -> Result<Parsed, Rejection> {
    let id = items::item_id(value)?;
    // A context this control plane cannot read must not lose the exposure: it is read
    // leniently on its own ([`context::lenient`]) and, if the strict contract refuses
    // the item because of it, the item is read again without it.
    let item = match items::parse(id, value) {
        Ok(item) => item,
        Err(rejection) => match value.as_object() {
            Some(fields) if fields.contains_key("context") => {
                let mut fields = fields.clone();
                fields.remove("context");
                items::parse(id, &Value::Object(fields))?
            }
            _ => return Err(rejection),
        },
    };
    check(id, item, now, || context::lenient(value))
}

/// The field checks of an item read by either path (`context`: its exposure context,
/// read leniently, asked for only when the item is an exposure).
fn check(
    id: &str,
    item: Item,
    now: OffsetDateTime,
    context: impl FnOnce() -> StoredContext,
) -> Result<Parsed, Rejection> {
    let now_ms = i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX);
    let retention_ms = i64::try_from(SEEN_RETENTION.whole_milliseconds()).unwrap_or(i64::MAX);
    let skew_ms = i64::try_from(FUTURE_SKEW.whole_milliseconds()).unwrap_or(i64::MAX);
    let check_common = |site_key: &str, visitor_id: &str, ts_ms: i64| {
        items::check_text(id, "site_key", site_key, items::MAX_ID_LEN)?;
        items::check_text(id, "visitor_id", visitor_id, items::MAX_ID_LEN)?;
        items::check_ts(id, ts_ms, now_ms, retention_ms, skew_ms)?;
        to_time(id, ts_ms)
    };
    let custom = matches!(item, Item::Custom(_));
    match item {
        Item::Exposure(e) => {
            let at = check_common(&e.site_key, &e.visitor_id, e.ts_ms)?;
            items::check_propensity(id, e.propensity)?;
            let snapshot_version = i64::try_from(e.snapshot_version).map_err(|_| {
                Rejection::new(id, "invalid_item", "snapshot_version is out of range")
            })?;
            let element_id = e
                .element_id
                .as_deref()
                .map(|raw| parse_uuid(id, raw, "element_mismatch", "element"))
                .transpose()?;
            Ok(Parsed::Exposure(Exposure {
                id: id.to_owned(),
                experiment_id: parse_uuid(
                    id,
                    &e.experiment_id,
                    "unknown_experiment",
                    "experiment",
                )?,
                element_id,
                arm_id: parse_uuid(id, &e.arm_id, "unknown_arm", "arm")?,
                site_key: e.site_key,
                visitor_id: e.visitor_id,
                propensity: e.propensity,
                snapshot_version,
                at,
                // A malformed host only loses the installation check, not the exposure.
                host: e
                    .host
                    .map(|h| h.to_ascii_lowercase())
                    .filter(|h| samplit_engine::routing::valid_host(h)),
                context: context(),
            }))
        }
        Item::Conversion(c) | Item::Custom(c) => {
            let at = check_common(&c.site_key, &c.visitor_id, c.ts_ms)?;
            items::check_text(id, "goal", &c.goal, items::MAX_GOAL_LEN)?;
            let value = items::check_value(id, c.value)?;
            if let Some(code) = &c.currency
                && !samplit_engine::ingest::currency_valid(code)
            {
                return Err(Rejection::new(
                    id,
                    "invalid_item",
                    "currency must be an ISO 4217 code (three capital letters)",
                ));
            }
            Ok(Parsed::Conversion(Conversion {
                id: id.to_owned(),
                site_key: c.site_key,
                visitor_id: c.visitor_id,
                goal: c.goal,
                value,
                currency: c.currency,
                signed: c.signed,
                custom,
                at,
            }))
        }
        Item::Pageview(p) => {
            check_common(&p.site_key, &p.visitor_id, p.ts_ms)?;
            items::check_text(id, "url", &p.url, items::MAX_URL_LEN)?;
            Ok(Parsed::Pageview {
                id: id.to_owned(),
                site_key: p.site_key,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW_MS: i64 = 1_800_000_000_000;

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(NOW_MS / 1000).unwrap()
    }

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).unwrap()
    }

    const EXPERIMENT: &str = "6a2f41a0-0000-4000-8000-000000000001";
    const ARM: &str = "6a2f41a0-0000-4000-8000-000000000002";

    fn exposure() -> Value {
        json!({"id": "e-1", "type": "exposure", "site_key": "pk_site", "experiment_id": EXPERIMENT,
               "arm_id": ARM, "visitor_id": "v-1", "propensity": 0.5, "snapshot_version": 3,
               "ts_ms": NOW_MS - 1000, "host": "Shop.Example.com",
               "context": {"country": "ES", "device": "mobile", "browser": "safari",
                           "source": "search", "landing": "/orders/ana@example.com/100234",
                           "prior_visits": 2, "prior_conversions": 0}})
    }

    fn with(mut item: Value, key: &str, value: Value) -> String {
        item[key] = value;
        item.to_string()
    }

    /// The typed path answers for `text`, and as the tree path does.
    fn typed_and_agrees(text: &str) -> Result<Parsed, Rejection> {
        let raw = raw(text);
        let typed = read_typed(raw.get(), now()).expect("the typed path answers");
        let tree = read_tree(raw.get(), now());
        assert_eq!(typed.id, tree.id, "{text}");
        assert_eq!(typed.parsed, tree.parsed, "{text}");
        typed.parsed
    }

    #[test]
    fn what_the_edge_sends_takes_the_typed_path_and_reads_as_the_tree_does() {
        let parsed = typed_and_agrees(&exposure().to_string()).unwrap();
        let Parsed::Exposure(e) = parsed else {
            panic!("an exposure")
        };
        assert_eq!(e.host.as_deref(), Some("shop.example.com"));
        assert_eq!(e.context.landing.as_deref(), Some("/orders/:email/:id"));
        assert_eq!(e.context.prior_visits, Some(2));
        let goal = json!({"id": "c-1", "type": "conversion", "site_key": "pk_site",
                          "visitor_id": "v-1", "goal": "purchase", "value": 12.5,
                          "currency": "EUR", "ts_ms": NOW_MS, "signed": true});
        let Parsed::Conversion(c) = typed_and_agrees(&goal.to_string()).unwrap() else {
            panic!("a conversion")
        };
        assert!(c.signed && !c.custom);
        let custom = with(goal.clone(), "type", json!("custom"));
        assert!(matches!(typed_and_agrees(&custom), Ok(Parsed::Conversion(c)) if c.custom));
        let pageview = json!({"id": "p-1", "type": "pageview", "site_key": "pk_site",
                              "visitor_id": "v-1", "url": "https://shop.example.com/",
                              "ts_ms": NOW_MS});
        assert!(matches!(
            typed_and_agrees(&pageview.to_string()),
            Ok(Parsed::Pageview { .. })
        ));
        // Items the checks refuse after reading: the same reason and message.
        for (text, reason) in [
            (with(exposure(), "propensity", json!(0)), "invalid_item"),
            (
                with(exposure(), "arm_id", json!("not-a-uuid")),
                "unknown_arm",
            ),
            (
                with(exposure(), "ts_ms", json!(NOW_MS + 3_600_000)),
                "in_the_future",
            ),
            (with(exposure(), "ts_ms", json!(0)), "too_old"),
            (with(exposure(), "visitor_id", json!("")), "invalid_item"),
            (with(goal.clone(), "value", json!(-1)), "invalid_item"),
            (with(goal.clone(), "currency", json!("eur")), "invalid_item"),
        ] {
            assert_eq!(
                typed_and_agrees(&text).unwrap_err().reason,
                reason,
                "{text}"
            );
        }
        // A context that is not what the contract says still takes the typed path.
        for context in [
            json!("mobile"),
            json!(null),
            json!(["ES", "mobile"]),
            json!({"device": "fridge", "prior_visits": -0, "country": 5}),
        ] {
            typed_and_agrees(&with(exposure(), "context", context))
                .expect("never refused for its context");
        }
    }

    #[test]
    fn anything_else_goes_to_the_tree_path() {
        let goal = json!({"id": "c-1", "type": "conversion", "site_key": "pk_site",
                          "visitor_id": "v-1", "goal": "purchase", "ts_ms": NOW_MS});
        let cases = [
            // A missing or mistyped field, an unknown type: the contract's own message.
            with(exposure(), "snapshot_version", json!(1.0)),
            with(exposure(), "type", json!("teleport")),
            with(goal.clone(), "value", json!("12")),
            exposure().to_string().replace("\"propensity\":0.5,", ""),
            // `null` where the contract has a default refuses the item.
            with(goal.clone(), "signed", json!(null)),
            // A field of another type, mistyped, is ignored by the contract.
            with(goal.clone(), "propensity", json!("high")),
            // An escaped string, a repeated key, a bad id.
            with(goal.clone(), "goal", json!("say \"hi\"")),
            r#"{"id":"c-1","id":"c-2","type":"custom","site_key":"k","visitor_id":"v","goal":"g","ts_ms":1}"#.to_owned(),
            with(goal.clone(), "id", json!("")),
            with(goal.clone(), "id", json!(7)),
            // An array, even one whose elements are an item's fields in order.
            r#"["c-1","custom","k","v",1]"#.to_owned(),
        ];
        for text in cases {
            let raw = raw(&text);
            assert!(read_typed(raw.get(), now()).is_none(), "{text}");
            assert!(paths_agree(&raw, now()));
        }
        // The tree path's answers are the contract's.
        let null_signed = raw(&with(goal.clone(), "signed", json!(null)));
        let r = read_item(&null_signed, now());
        assert_eq!(r.id.as_deref(), Some("c-1"));
        assert_eq!(r.parsed.unwrap_err().reason, "invalid_item");
        let number_id = raw(&with(goal, "id", json!(7)));
        let r = read_item(&number_id, now());
        assert_eq!((r.id, r.parsed.unwrap_err().reason), (None, "missing_id"));
    }

    /// Valid JSON a tree refuses — nesting past serde_json's depth limit, a number out
    /// of range, a lone surrogate escape — inside an item the typed path could otherwise
    /// read: in a field no item type has, or in the context, where neither path looks at
    /// it. The tree refuses the whole item, so the typed path must not answer.
    #[test]
    fn json_a_tree_refuses_anywhere_in_the_item_goes_to_the_tree_path() {
        let nested = |levels: usize| format!("{}1{}", "[".repeat(levels), "]".repeat(levels));
        let hazards = [nested(200), "1e999".to_owned(), r#""\ud800""#.to_owned()];
        let mut cases = Vec::new();
        for hazard in &hazards {
            let item = exposure().to_string();
            // A field no item type has.
            cases.push(item.replacen('{', &format!(r#"{{"extra":{hazard},"#), 1));
            // A field the context does not know, and one it does.
            cases.push(item.replace(
                r#""context":{"#,
                &format!(r#""context":{{"extra":{hazard},"#),
            ));
            cases.push(item.replace(r#""browser":"safari""#, &format!(r#""browser":{hazard}"#)));
        }
        for text in &cases {
            let raw = raw(text);
            assert!(
                read_tree(raw.get(), now()).parsed.is_err(),
                "the tree refuses {text}"
            );
            assert!(read_typed(raw.get(), now()).is_none(), "{text}");
        }
        // At the depth limit exactly: the context nested as deep as the tree allows inside
        // the item reads, one level more does not, on both paths alike.
        let mut answered = Vec::new();
        for levels in 120..=130 {
            let text = exposure().to_string().replace(
                r#""browser":"safari""#,
                &format!(r#""browser":{}"#, nested(levels)),
            );
            let raw = raw(&text);
            assert!(paths_agree(&raw, now()), "{levels} levels");
            answered.push(read_tree(raw.get(), now()).parsed.is_ok());
        }
        assert!(
            answered.contains(&true) && answered.contains(&false),
            "{answered:?}"
        );
    }

    #[test]
    fn a_context_with_a_repeated_key_reads_its_last_value_as_the_tree_does() {
        let text = exposure().to_string().replace(
            "\"country\":\"ES\"",
            "\"country\":\"ES\",\"country\":\"FR\"",
        );
        let Parsed::Exposure(e) = typed_and_agrees(&text).unwrap() else {
            panic!("an exposure")
        };
        assert_eq!(e.context.country.as_deref(), Some("FR"));
    }

    #[test]
    fn json_the_tree_cannot_hold_rejects_the_item_not_the_batch() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let deep = raw(&deep);
        let r = read_item(&deep, now());
        assert_eq!((r.id, r.parsed.unwrap_err().reason), (None, "invalid_item"));
    }
}
