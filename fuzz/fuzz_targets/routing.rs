//! Signed host routes and site tombstones: verify on payloads MACed with the kind's
//! derived key (to reach the parser) or on whole `SignedDoc` bodies. Verified documents
//! re-sign and re-verify to themselves; a route never verifies as a tombstone.
#![no_main]

use hmac::Mac;
use libfuzzer_sys::fuzz_target;
use samplit_edge::body;
use samplit_engine::routing::{
    self, ROUTE_KEY_LABEL, RoutingError, SignedDoc, TOMBSTONE_KEY_LABEL,
};
use samplit_fuzz::{assert_client_error, mode};

const SECRET: &[u8] = b"fuzz-snapshot-secret-0123456789abcdef";

fn signed(payload: &str, label: &[u8]) -> SignedDoc {
    let key = routing::derive_key(SECRET, label);
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(payload.as_bytes());
    SignedDoc {
        payload: payload.to_owned(),
        signature: hex::encode(mac.finalize().into_bytes()),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((m, rest)) = mode(data) else { return };
    let docs = match m % 3 {
        0 | 1 => {
            let Ok(payload) = std::str::from_utf8(rest) else {
                return;
            };
            let label = if m % 3 == 0 {
                ROUTE_KEY_LABEL
            } else {
                TOMBSTONE_KEY_LABEL
            };
            vec![signed(payload, label)]
        }
        _ => match body::parse_json::<SignedDoc>(rest) {
            Ok(d) => vec![d],
            Err(e) => return assert_client_error(&e),
        },
    };
    for doc in docs {
        if let Ok(route) = routing::verify_route(&doc, SECRET, None) {
            assert!(routing::valid_host(&route.host));
            let again = routing::sign_route(&route, SECRET).expect("a verified route re-signs");
            assert_eq!(
                routing::verify_route(&again, SECRET, None).as_ref(),
                Ok(&route)
            );
            assert!(routing::verify_route(&doc, SECRET, Some(route.version)).is_ok());
            if let Some(newer) = route.version.checked_add(1) {
                assert!(matches!(
                    routing::verify_route(&doc, SECRET, Some(newer)),
                    Err(RoutingError::Stale { .. })
                ));
            }
            assert_eq!(
                routing::verify_tombstone(&doc, SECRET, None),
                Err(RoutingError::BadSignature),
                "a route verified as a tombstone"
            );
        }
        if let Ok(t) = routing::verify_tombstone(&doc, SECRET, None) {
            assert!(!t.site_key.is_empty());
            let again = routing::sign_tombstone(&t, SECRET).expect("a verified tombstone re-signs");
            assert_eq!(
                routing::verify_tombstone(&again, SECRET, None).as_ref(),
                Ok(&t)
            );
            assert!(routing::verify_route(&doc, SECRET, None).is_err());
        }
        assert_eq!(
            routing::verify_route(&doc, b"", None),
            Err(RoutingError::EmptyKey)
        );
    }
});
