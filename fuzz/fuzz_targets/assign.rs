//! `/v1/assign` input: a JSON body (POST) or a query string (GET), then the same field
//! checks the handler runs (`check`, `attribute_pairs`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use samplit_edge::assignment::{
    ATTRIBUTE_VALUE_MAX, ATTRIBUTES_MAX, AssignRequest, STICKY_MAX, URL_MAX,
};
use samplit_edge::{body, cookies, snapshots};
use samplit_fuzz::{assert_client_error, mode};

fuzz_target!(|data: &[u8]| {
    let Some((m, rest)) = mode(data) else { return };
    let parsed = if m & 1 == 0 {
        body::parse_json::<AssignRequest>(rest)
    } else {
        let Ok(q) = std::str::from_utf8(rest) else {
            return;
        };
        // What the Worker sees: the runtime hands it an already parsed URL.
        let Ok(url) = url::Url::parse(&format!("https://edge.test/v1/assign?{q}")) else {
            return;
        };
        AssignRequest::from_query(&url)
    };
    let req = match parsed {
        Ok(r) => r,
        Err(e) => return assert_client_error(&e),
    };
    if let Err(e) = req.check() {
        return assert_client_error(&e);
    }
    // What `check` promises.
    assert!(snapshots::valid_site_key(&req.site_key));
    assert!(!req.url.is_empty() && req.url.len() <= URL_MAX);
    if let Some(id) = &req.visitor_id {
        assert!(cookies::valid_visitor_id(id));
    }
    assert!(req.sticky.len() <= STICKY_MAX);
    match req.attribute_pairs() {
        Err(e) => assert_client_error(&e),
        Ok(pairs) => {
            assert!(pairs.len() <= ATTRIBUTES_MAX);
            for (name, value) in pairs {
                assert!(!name.is_empty() && name.len() <= 64);
                assert!(value.len() <= ATTRIBUTE_VALUE_MAX);
            }
        }
    }
});
