//! The queue items: what the Worker enqueues on `EVENTS` and the consumer forwards to
//! the control plane, exactly in the contract's ingest wire form.
//!
//! Each item's `id` is made when it is enqueued (random, or derived from a client event
//! id), so a batch the queue retries carries the same ids and the control plane's dedupe
//! by id keeps delivery exactly-once in effect.

use serde::{Deserialize, Serialize};

/// One ingest item. `type` is the tag: `exposure`, `conversion`, `custom`, `pageview`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Item {
    /// A visitor was served an arm. One per assignment in a `/v1/assign` response.
    Exposure {
        id: String,
        site_key: String,
        experiment_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        element_id: Option<String>,
        arm_id: String,
        visitor_id: String,
        propensity: f64,
        snapshot_version: u64,
        ts_ms: i64,
        /// The page's host (the rendered request's, or the `url`'s on `/v1/assign`): the
        /// control plane marks the site's snippet as seen when it is a verified host.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        host: Option<String>,
    },
    Conversion(GoalItem),
    Custom(GoalItem),
    Pageview {
        id: String,
        site_key: String,
        visitor_id: String,
        url: String,
        ts_ms: i64,
    },
}

/// The fields of a conversion or a custom event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GoalItem {
    pub id: String,
    pub site_key: String,
    pub visitor_id: String,
    pub goal: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    pub ts_ms: i64,
    /// The event came in a signed server call (`X-Samplit-Signature` verified): its value
    /// is not held to the site's per-visitor revenue cap at ingest. Left out when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub signed: bool,
}

/// The body of one `POST /api/v1/ingest`.
#[derive(Debug, Serialize)]
pub struct IngestBatch<'a> {
    pub batch_id: String,
    pub items: &'a [Item],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_serialize_to_the_contract_wire_form() {
        let exposure = Item::Exposure {
            id: "i1".into(),
            site_key: "s".into(),
            experiment_id: "e".into(),
            element_id: None,
            arm_id: "a".into(),
            visitor_id: "v".into(),
            propensity: 0.5,
            snapshot_version: 3,
            ts_ms: 1_700_000_000_000,
            host: None,
        };
        let v = serde_json::to_value(&exposure).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"id":"i1","type":"exposure","site_key":"s","experiment_id":"e",
                "arm_id":"a","visitor_id":"v","propensity":0.5,"snapshot_version":3,
                "ts_ms":1_700_000_000_000_i64})
        );
        let conversion = Item::Conversion(GoalItem {
            id: "i2".into(),
            site_key: "s".into(),
            visitor_id: "v".into(),
            goal: "signup".into(),
            value: Some(9.5),
            ts_ms: 1,
            signed: false,
        });
        let v = serde_json::to_value(&conversion).unwrap();
        assert_eq!(v["type"], "conversion");
        assert_eq!(v["goal"], "signup");
        assert_eq!(v["value"], 9.5);
        assert!(
            v.get("signed").is_none(),
            "unsigned is the default, left out"
        );
        let back: Item = serde_json::from_value(v).unwrap();
        assert_eq!(back, conversion);
        let Item::Conversion(mut signed) = conversion else {
            unreachable!()
        };
        signed.signed = true;
        let v = serde_json::to_value(Item::Conversion(signed)).unwrap();
        assert_eq!(v["signed"], true);
        let pv = serde_json::to_value(Item::Pageview {
            id: "i3".into(),
            site_key: "s".into(),
            visitor_id: "v".into(),
            url: "https://x/".into(),
            ts_ms: 1,
        })
        .unwrap();
        assert_eq!(pv["type"], "pageview");
        assert!(pv.get("goal").is_none());
    }
}
