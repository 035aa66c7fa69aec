//! `/v1/events` bodies: the request parse and each event's check, as the handler runs
//! them; an accepted event becomes a queue item that serialises with the request's
//! site and visitor.
#![no_main]

use libfuzzer_sys::fuzz_target;
use samplit_edge::cookies;
use samplit_edge::events::{self, MAX_EVENTS};
use samplit_engine::ingest::Item;
use samplit_fuzz::assert_client_error;

fuzz_target!(|data: &[u8]| {
    let input = match events::parse_request(data) {
        Ok(i) => i,
        Err(e) => return assert_client_error(&e),
    };
    assert!(!input.events.is_empty() && input.events.len() <= MAX_EVENTS);
    let visitor = match &input.visitor_id {
        Some(v) if cookies::valid_visitor_id(v) => v.clone(),
        _ => "visitor-1".to_owned(),
    };
    let site_key = input.site_key.clone();
    // The revenue cap and whether the call was signed, taken from the input's length so
    // both branches of the value check run.
    let (cap, signed) = (1_000.0, data.len() % 2 == 0);
    for (i, e) in input.events.into_iter().enumerate() {
        let item = match events::to_item(e, i, &site_key, &visitor, 1_800_000_000_000, (cap, signed)) {
            Ok(item) => item,
            Err(e) => {
                assert_client_error(&e);
                continue;
            }
        };
        let json = serde_json::to_value(&item).expect("a queue item serialises");
        assert_eq!(json["site_key"], site_key.as_str());
        assert_eq!(json["visitor_id"], visitor.as_str());
        match &item {
            Item::Conversion(g) | Item::Custom(g) => {
                assert!(!g.goal.is_empty() && g.goal.len() <= events::GOAL_MAX);
                assert!(g.value.is_none_or(|v| v.is_finite() && (0.0..=samplit_engine::snapshot::MAX_EVENT_VALUE).contains(&v)));
                assert!(signed || g.value.is_none_or(|v| v <= cap), "an unsigned value above the cap");
            }
            Item::Pageview(p) => assert!(!p.url.is_empty() && p.url.len() <= events::URL_MAX),
            Item::Exposure(_) => panic!("an event became an exposure"),
        }
    }
});
