//! The wire items of a batch and their field checks (shape only; whether the site,
//! experiment and arm exist is decided against the database in [`super::process`]).
//!
//! Items are parsed one by one from `serde_json::Value`s so that one bad item is
//! rejected with a reason while the rest of the batch is kept.

use serde::Deserialize;
use serde_json::Value;

/// Longest accepted item id, visitor id, site key (characters).
pub const MAX_ID_LEN: usize = 128;
/// Longest accepted goal name (the goals table allows 100).
pub const MAX_GOAL_LEN: usize = 100;
/// Largest accepted conversion value (revenue), in the site's currency units.
pub const MAX_VALUE: f64 = 1e12;

/// A batch as sent by the edge: `{"batch_id", "items": [...]}`.
#[derive(Debug, Deserialize)]
pub struct WireBatch {
    pub batch_id: String,
    pub items: Vec<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WireItem {
    Exposure(WireExposure),
    Conversion(WireConversion),
    Custom(WireConversion),
    Pageview(WirePageview),
}

#[derive(Debug, Deserialize)]
pub struct WireExposure {
    pub site_key: String,
    pub experiment_id: String,
    #[serde(default)]
    pub element_id: Option<String>,
    pub arm_id: String,
    pub visitor_id: String,
    pub propensity: f64,
    pub snapshot_version: u64,
    pub ts_ms: i64,
    /// The page's host as the edge saw it (the request's host or the `url`'s); marks the
    /// site's snippet as seen when it is one of its verified hosts. Absent from older
    /// edges.
    #[serde(default)]
    pub host: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct WireConversion {
    pub site_key: String,
    pub visitor_id: String,
    pub goal: String,
    #[serde(default)]
    pub value: Option<f64>,
    pub ts_ms: i64,
    /// Set by the edge when the event came in a verified signed server call: its value is
    /// not held to the site's per-visitor revenue cap. Absent means unsigned.
    #[serde(default)]
    pub signed: bool,
}

#[derive(Debug, Deserialize)]
pub struct WirePageview {
    pub site_key: String,
    pub visitor_id: String,
    pub url: String,
    pub ts_ms: i64,
}

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
        Some(Value::String(id)) if !id.is_empty() && id.chars().count() <= MAX_ID_LEN => Ok(id),
        Some(Value::String(_)) => Err(Rejection::new(
            "",
            "invalid_id",
            format!("id must be 1 to {MAX_ID_LEN} characters"),
        )),
        _ => Err(Rejection::new(
            "",
            "missing_id",
            "every item needs a string id",
        )),
    }
}

/// Parses the item's fields (type-tagged).
pub fn parse(id: &str, value: &Value) -> Result<WireItem, Rejection> {
    WireItem::deserialize(value)
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
    if p.is_finite() && p > 0.0 && p <= 1.0 {
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
        Some(v) if v.is_finite() && (0.0..=MAX_VALUE).contains(&v) => Ok(v),
        Some(_) => Err(Rejection::new(
            id,
            "invalid_item",
            format!("value must be a number in [0, {MAX_VALUE}]"),
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
        assert!(matches!(parse("a", &ok), Ok(WireItem::Custom(_))));
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
