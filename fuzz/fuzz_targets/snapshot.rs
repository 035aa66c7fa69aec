//! Snapshot documents: verify (signature, schema, parse, validate, staleness) on a
//! payload signed with the test key (so the parser behind the MAC is reached) or on a
//! whole push body as the edge reads it. A verified document re-signs canonically and
//! re-verifies to the same snapshot.
#![no_main]

use libfuzzer_sys::fuzz_target;
use samplit_edge::body;
use samplit_engine::snapshot::{self, SignedSnapshot, SnapshotError};
use samplit_fuzz::{assert_client_error, mode};

const KEY: &[u8] = b"fuzz-snapshot-secret-0123456789abcdef";

fuzz_target!(|data: &[u8]| {
    let Some((m, rest)) = mode(data) else { return };
    let signed = if m & 1 == 0 {
        // A payload the control plane signed (or a key holder forged): MAC it here.
        let Ok(payload) = std::str::from_utf8(rest) else {
            return;
        };
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(KEY).unwrap();
        mac.update(payload.as_bytes());
        SignedSnapshot {
            payload: payload.to_owned(),
            signature: hex::encode(mac.finalize().into_bytes()),
        }
    } else {
        match body::parse_json::<SignedSnapshot>(rest) {
            Ok(s) => s,
            Err(e) => return assert_client_error(&e),
        }
    };
    let snap = match snapshot::verify(&signed, KEY, None) {
        Ok(s) => s,
        Err(SnapshotError::EmptyKey | SnapshotError::Stale { .. }) => {
            panic!("a non-empty key with no held version")
        }
        Err(_) => return,
    };
    snap.validate().expect("verify returns a valid snapshot");

    // Canonical re-signing round-trips, and is a fixed point.
    let again = snapshot::try_sign(&snap, KEY).expect("a verified snapshot re-signs");
    let snap2 = snapshot::verify(&again, KEY, None).expect("a re-signed snapshot verifies");
    assert_eq!(snap, snap2);
    assert_eq!(snapshot::sign(&snap2, KEY), again);

    // Versions: equal is an idempotent retry, newer held is stale, another key fails.
    assert!(snapshot::verify(&signed, KEY, Some(snap.version)).is_ok());
    if let Some(newer) = snap.version.checked_add(1) {
        assert!(matches!(
            snapshot::verify(&signed, KEY, Some(newer)),
            Err(SnapshotError::Stale { .. })
        ));
    }
    assert_eq!(
        snapshot::verify(&signed, b"another key", None),
        Err(SnapshotError::BadSignature)
    );
});
