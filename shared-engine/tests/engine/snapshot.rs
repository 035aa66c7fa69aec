//! Snapshot signing, verification and validation.

use samplit_engine::allocator::{Allocator, FixedSplit};
use samplit_engine::snapshot::{
    SCHEMA_VERSION, SignedSnapshot, Snapshot, SnapshotError, sign, try_sign, verify,
};

use crate::fixtures::{KEY, site_snapshot};

#[test]
fn a_signed_snapshot_verifies_and_round_trips() {
    let snap = site_snapshot(7);
    let signed = try_sign(&snap, KEY).unwrap();
    assert_eq!(signed.signature.len(), 64);
    let back = verify(&signed, KEY, None).unwrap();
    assert_eq!(back, snap);
}

#[test]
fn the_payload_is_canonical() {
    let snap = site_snapshot(7);
    let a = sign(&snap, KEY);
    let b = sign(&snap.clone(), KEY);
    assert_eq!(a, b, "same value, same bytes");
    // parse → serialise gives the same bytes back (floats round-trip via ryu).
    let parsed: Snapshot = serde_json::from_str(&a.payload).unwrap();
    assert_eq!(serde_json::to_string(&parsed).unwrap(), a.payload);
    // Field order is the declaration order.
    assert!(
        a.payload
            .starts_with(r#"{"schema":1,"site_key":"sk_test_site","version":7,"#)
    );
}

#[test]
fn a_wrong_key_or_tampered_payload_is_rejected() {
    let signed = sign(&site_snapshot(7), KEY);
    assert_eq!(
        verify(&signed, b"other key", None),
        Err(SnapshotError::BadSignature)
    );
    let mut tampered = signed.clone();
    tampered.payload = tampered.payload.replace("\"version\":7", "\"version\":8");
    assert_eq!(
        verify(&tampered, KEY, None),
        Err(SnapshotError::BadSignature)
    );
}

#[test]
fn malformed_signatures_are_rejected() {
    let signed = sign(&site_snapshot(7), KEY);
    let cases: &[(&str, String)] = &[
        ("empty", String::new()),
        ("short", signed.signature[..62].to_string()),
        ("long", format!("{}00", signed.signature)),
        ("not hex", "zz".repeat(32)),
        ("upper-case flipped bit", {
            let mut s = signed.signature.clone();
            let last = if s.ends_with('0') { '1' } else { '0' };
            s.pop();
            s.push(last);
            s
        }),
    ];
    for (why, sig) in cases {
        let s = SignedSnapshot {
            payload: signed.payload.clone(),
            signature: sig.clone(),
        };
        assert_eq!(
            verify(&s, KEY, None),
            Err(SnapshotError::BadSignature),
            "{why}"
        );
    }
}

#[test]
fn an_empty_key_is_refused() {
    let snap = site_snapshot(1);
    assert_eq!(try_sign(&snap, b""), Err(SnapshotError::EmptyKey));
    let signed = sign(&snap, b"");
    assert_eq!(verify(&signed, b"", None), Err(SnapshotError::EmptyKey));
}

#[test]
fn an_unknown_schema_is_rejected_before_parsing() {
    let mut snap = site_snapshot(3);
    snap.schema = SCHEMA_VERSION + 1;
    let signed = sign(&snap, KEY);
    assert_eq!(
        verify(&signed, KEY, None),
        Err(SnapshotError::UnsupportedSchema(SCHEMA_VERSION + 1))
    );
    // A future schema whose body we cannot parse still reports the schema.
    let payload = r#"{"schema":99,"totally":"different"}"#.to_string();
    let signed = sign_raw(payload);
    assert_eq!(
        verify(&signed, KEY, None),
        Err(SnapshotError::UnsupportedSchema(99))
    );
}

fn sign_raw(payload: String) -> SignedSnapshot {
    use hmac::{Hmac, Mac};
    let mut m =
        <Hmac<sha2::Sha256> as Mac>::new_from_slice(KEY).expect("HMAC takes any key length");
    m.update(payload.as_bytes());
    SignedSnapshot {
        payload,
        signature: hex::encode(m.finalize().into_bytes()),
    }
}

#[test]
fn older_versions_are_stale_and_equal_versions_are_idempotent() {
    let signed = sign(&site_snapshot(5), KEY);
    assert_eq!(
        verify(&signed, KEY, Some(6)),
        Err(SnapshotError::Stale {
            held: 6,
            received: 5
        })
    );
    assert!(
        verify(&signed, KEY, Some(5)).is_ok(),
        "equal version: idempotent replay"
    );
    assert!(verify(&signed, KEY, Some(4)).is_ok());
    assert!(signed.same_payload(&sign(&site_snapshot(5), KEY)));
}

#[test]
fn signed_but_invalid_documents_are_rejected() {
    type Mutation = fn(&mut Snapshot);
    let cases: &[(&str, Mutation)] = &[
        ("empty site key", |s| s.site_key.clear()),
        ("duplicate experiment", |s| {
            let e = s.experiments[0].clone();
            s.experiments.push(e);
        }),
        ("hash version 3", |s| s.experiments[0].hash_version = 3),
        ("coverage 1.5", |s| s.experiments[0].coverage = 1.5),
        ("propensities not summing to 1", |s| {
            s.experiments[0].units[0].arms[0].propensity += 0.1;
        }),
        ("negative propensity", |s| {
            let arms = &mut s.experiments[0].units[0].arms;
            arms[0].propensity = -0.1;
            arms[1].propensity += 0.1;
        }),
        ("conversions above exposures", |s| {
            s.experiments[1].units[0].arms[0].conversions = 10_000;
        }),
        ("variant index out of range", |s| {
            s.experiments[0].units[0].arms[0].variants = vec![9]
        }),
        ("weights not matching arms", |s| {
            s.experiments[0].units[0].allocator =
                Allocator::FixedSplit(FixedSplit::new(vec![0.5, 0.5]).unwrap());
        }),
        ("factorial missing a combination", |s| {
            s.experiments[2].units[0].arms.pop();
        }),
        ("independent unit without element", |s| {
            s.experiments[3].units[0].element_id = None
        }),
        ("bad element selector", |s| {
            s.experiments[0].elements[0].selector = "<script>".into()
        }),
        ("no elements", |s| s.experiments[0].elements.clear()),
        ("duplicate arm id", |s| {
            let arms = &mut s.experiments[0].units[0].arms;
            arms[1].id = arms[0].id.clone();
        }),
    ];
    for (why, mutate) in cases {
        let mut snap = site_snapshot(1);
        mutate(&mut snap);
        assert!(snap.validate().is_err(), "{why}: validate");
        assert!(try_sign(&snap, KEY).is_err(), "{why}: try_sign");
        let signed = sign(&snap, KEY);
        assert!(
            matches!(verify(&signed, KEY, None), Err(SnapshotError::Invalid(_))),
            "{why}: verify gave {:?}",
            verify(&signed, KEY, None)
        );
    }
}

#[test]
fn invalid_rules_inside_a_signed_payload_are_malformed() {
    let signed = sign(&site_snapshot(1), KEY);
    let cases: &[(&str, &str, &str)] = &[
        ("bad CIDR", "10.0.0.0/8", "10.0.0.0/33"),
        ("thompson floor >= 1", "\"floor\":0.01", "\"floor\":1.5"),
        (
            "javascript redirect in a change",
            "\"type\":\"set_text\"",
            "\"type\":\"redirect\",\"url\":\"javascript:alert(1)\"",
        ),
    ];
    for (why, from, to) in cases {
        assert!(signed.payload.contains(from), "{why}: fixture has {from}");
        let mut payload = signed.payload.replacen(from, to, 1);
        if *why == "javascript redirect in a change" {
            // Drop the now-unknown text field so only the URL check can fail.
            payload = payload.replacen(",\"text\":\"hero=v0\"", "", 1);
        }
        let s = sign_raw(payload);
        assert!(
            matches!(verify(&s, KEY, None), Err(SnapshotError::Malformed(_))),
            "{why}: {:?}",
            verify(&s, KEY, None)
        );
    }
}

#[test]
fn a_unit_built_with_propensities_carries_the_allocators_probabilities() {
    use samplit_engine::allocator::{ArmStats, Thompson};
    use samplit_engine::snapshot::AllocationUnit;
    let allocator = Allocator::Thompson(Thompson::default());
    let stats = [
        ArmStats {
            exposures: 1000,
            conversions: 50,
        },
        ArmStats {
            exposures: 1000,
            conversions: 65,
        },
    ];
    let unit = AllocationUnit::with_propensities(
        "u",
        None,
        allocator.clone(),
        vec![
            ("a".into(), vec![0], stats[0]),
            ("b".into(), vec![1], stats[1]),
        ],
    )
    .unwrap();
    let want = allocator.propensities(&stats).unwrap();
    let got: Vec<f64> = unit.arms.iter().map(|a| a.propensity).collect();
    assert_eq!(got, want);
    assert_eq!(unit.arms[1].exposures, 1000);
    assert_eq!(unit.arms[1].conversions, 65);
    // Invalid counts surface as the allocator's typed error.
    let bad = AllocationUnit::with_propensities(
        "u",
        None,
        allocator,
        vec![(
            "a".into(),
            vec![0],
            ArmStats {
                exposures: 1,
                conversions: 2,
            },
        )],
    );
    assert!(bad.is_err());
}

#[test]
fn trust_settings_are_optional_round_trip_and_are_validated() {
    use samplit_engine::snapshot::{DEFAULT_REVENUE_CAP, Trust};
    // A document without `trust` (every snapshot before signed calls) still parses, and
    // an empty `Trust` is omitted, so such documents keep their canonical bytes.
    let plain = site_snapshot(7);
    let signed = try_sign(&plain, KEY).unwrap();
    assert!(!signed.payload.contains("trust"));
    let back = verify(&signed, KEY, None).unwrap();
    assert_eq!(back.trust, Trust::default());
    assert_eq!(back.trust.revenue_cap(), DEFAULT_REVENUE_CAP);

    let mut with = site_snapshot(8);
    with.trust = Trust {
        server_secret_salt: Some("00112233445566778899aabbccddeeff".into()),
        revenue_cap: Some(250.5),
    };
    let signed = try_sign(&with, KEY).unwrap();
    assert!(signed.payload.ends_with(
        r#","trust":{"server_secret_salt":"00112233445566778899aabbccddeeff","revenue_cap":250.5}}"#
    ));
    let back = verify(&signed, KEY, None).unwrap();
    assert_eq!(back, with);
    assert_eq!(back.trust.revenue_cap(), 250.5);

    let cases: &[(&str, Trust)] = &[
        (
            "short salt",
            Trust {
                server_secret_salt: Some("abcd".into()),
                revenue_cap: None,
            },
        ),
        (
            "upper-case salt",
            Trust {
                server_secret_salt: Some("ABCDEF0123456789ABCDEF0123456789".into()),
                revenue_cap: None,
            },
        ),
        (
            "zero cap",
            Trust {
                server_secret_salt: None,
                revenue_cap: Some(0.0),
            },
        ),
        (
            "negative cap",
            Trust {
                server_secret_salt: None,
                revenue_cap: Some(-1.0),
            },
        ),
        (
            "huge cap",
            Trust {
                server_secret_salt: None,
                revenue_cap: Some(1e12),
            },
        ),
        (
            "NaN cap",
            Trust {
                server_secret_salt: None,
                revenue_cap: Some(f64::NAN),
            },
        ),
    ];
    for (why, trust) in cases {
        let mut s = site_snapshot(9);
        s.trust = trust.clone();
        assert!(
            matches!(try_sign(&s, KEY), Err(SnapshotError::Invalid(_))),
            "{why}"
        );
    }
}
