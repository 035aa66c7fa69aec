//! The wire items of a batch and their field checks (shape only; whether the site,
//! experiment and arm exist is decided against the database in [`super::Ingestor::process`]).
//!
//! Items are read one by one (`super::read`) so that one bad item is rejected with a
//! reason while the rest of the batch is kept.

use samplit_engine::ingest::{self, Item};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

pub use samplit_engine::ingest::{MAX_GOAL_LEN, MAX_ID_LEN, MAX_URL_LEN, MAX_VALUE};

/// A batch as the edge sends it, its items still JSON text borrowed from the body (read
/// one by one).
pub type WireBatch<'a> = ingest::Batch<&'a RawValue>;

/// Why an item was rejected: a stable code (the `reason` of the response) and a message.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub id: String,
    pub reason: &'static str,
    pub message: String,
}

impl Rejection {
    pub fn new(id: &str, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            id: id.to_owned(),
            reason,
            message: message.into(),
        }
    }
}

/// The item's id, if it has a usable one.
pub fn item_id(value: &Value) -> Result<&str, Rejection> {
    match value.get("id") {
        Some(Value::String(id)) if valid_id(id) => Ok(id),
        Some(Value::String(_)) => Err(Rejection::new(
            "",
            "invalid_id",
            format!("id must be 1 to {MAX_ID_LEN} characters, none of them NUL"),
        )),
        _ => Err(Rejection::new(
            "",
            "missing_id",
            "every item needs a string id",
        )),
    }
}

/// An id the contract accepts: 1 to [`MAX_ID_LEN`] characters, none of them NUL.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.chars().count() <= MAX_ID_LEN && !id.contains('\0')
}

/// Parses the item's fields (type-tagged), as the ingest contract defines them.
pub fn parse(id: &str, value: &Value) -> Result<Item, Rejection> {
    Item::deserialize(value)
        .map_err(|e| Rejection::new(id, "invalid_item", format!("invalid item: {e}")))
}

/// A short free-text identifier: non-empty, bounded.
pub fn check_text(id: &str, field: &str, value: &str, max: usize) -> Result<(), Rejection> {
    if value.is_empty() || value.chars().count() > max {
        return Err(Rejection::new(
            id,
            "invalid_item",
            format!("{field} must be 1 to {max} characters"),
        ));
    }
    // PostgreSQL text cannot hold NUL: stored, it would fail the whole batch's
    // transaction (and the queue batch carries other sites' events).
    if value.contains('\0') {
        return Err(Rejection::new(
            id,
            "invalid_item",
            format!("{field} must not contain a NUL character"),
        ));
    }
    Ok(())
}

/// `ts_ms` within `[now - retention, now + skew]`: older items could be replays of ids
/// already pruned from the seen-items table; later ones come from a broken clock.
pub fn check_ts(
    id: &str,
    ts_ms: i64,
    now_ms: i64,
    retention_ms: i64,
    skew_ms: i64,
) -> Result<(), Rejection> {
    if ts_ms < now_ms.saturating_sub(retention_ms) {
        return Err(Rejection::new(
            id,
            "too_old",
            "ts_ms is older than the replay window (14 days)",
        ));
    }
    if ts_ms > now_ms.saturating_add(skew_ms) {
        return Err(Rejection::new(
            id,
            "in_the_future",
            "ts_ms is in the future",
        ));
    }
    Ok(())
}

pub fn check_propensity(id: &str, p: f64) -> Result<(), Rejection> {
    if ingest::propensity_in_bounds(p) {
        Ok(())
    } else {
        Err(Rejection::new(
            id,
            "invalid_item",
            "propensity must be in (0, 1]",
        ))
    }
}

pub fn check_value(id: &str, value: Option<f64>) -> Result<f64, Rejection> {
    match value {
        None => Ok(0.0),
        Some(v) if ingest::value_in_bounds(v) => Ok(v),
        Some(_) => Err(Rejection::new(
            id,
            "invalid_item",
            format!("value must be a number in [0, {MAX_VALUE:e}]"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn items_parse_by_type_and_bad_fields_are_reasons_not_panics() {
        let ok =
            json!({"id":"a","type":"custom","site_key":"k","visitor_id":"v","goal":"g","ts_ms":1});
        assert!(matches!(parse("a", &ok), Ok(Item::Custom(_))));
        let cases = [
            (json!({"id":"a","type":"teleport"}), "unknown type"),
            (
                json!({"id":"a","type":"exposure","site_key":"k"}),
                "missing fields",
            ),
            (
                json!({"id":"a","type":"conversion","site_key":"k","visitor_id":"v","goal":"g","value":"12","ts_ms":1}),
                "value as a string",
            ),
        ];
        for (value, what) in cases {
            let err = parse("a", &value).unwrap_err();
            assert_eq!(err.reason, "invalid_item", "{what}");
        }
    }

    #[test]
    fn ids_values_and_propensities_are_bounded() {
        assert_eq!(item_id(&json!({"id": 5})).unwrap_err().reason, "missing_id");
        assert_eq!(
            item_id(&json!({"id": ""})).unwrap_err().reason,
            "invalid_id"
        );
        assert_eq!(item_id(&json!({"id": "x"})).unwrap(), "x");
        assert!(check_value("a", Some(-1.0)).is_err());
        assert!(check_value("a", Some(f64::NAN)).is_err());
        assert_eq!(check_value("a", None).unwrap(), 0.0);
        assert!(check_propensity("a", 0.0).is_err());
        assert!(check_propensity("a", 1.5).is_err());
        assert!(check_propensity("a", 0.5).is_ok());
        assert_eq!(
            check_ts("a", 0, 100_000, 10, 10).unwrap_err().reason,
            "too_old"
        );
        assert_eq!(
            check_ts("a", 200_000, 100_000, 10, 10).unwrap_err().reason,
            "in_the_future"
        );
    }
}
