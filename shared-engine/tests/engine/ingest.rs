//! The ingest contract: the wire form pinned by a committed document, the limits, and
//! the batch signature against independently computed references.

use samplit_engine::context::{Browser, Device, ExposureContext, Source};
use samplit_engine::ingest::{
    Batch, Exposure, GoalEvent, Item, MAX_ITEMS, Pageview, SignatureError, propensity_in_bounds,
    sign, value_in_bounds, verify,
};

/// One item of each kind, optional fields both present and absent (the first exposure
/// carries a full `context`, the second none).
fn golden_batch() -> Batch {
    Batch {
        batch_id: "0b0e5a1c-5d7e-4f8a-9b6c-2d3e4f5a6b7c".into(),
        items: vec![
            Item::Exposure(Exposure {
                id: "x1".into(),
                site_key: "pk_golden".into(),
                experiment_id: "11111111-1111-4111-8111-111111111111".into(),
                element_id: None,
                arm_id: "22222222-2222-4222-8222-222222222222".into(),
                visitor_id: "v1".into(),
                propensity: 0.5,
                snapshot_version: 12,
                ts_ms: 1_764_300_000_000,
                host: Some("shop.example.com".into()),
                context: Some(ExposureContext {
                    country: Some("ES".into()),
                    device: Device::Mobile,
                    browser: Browser::Safari,
                    source: Source::Search,
                    landing: Some("/pricing".into()),
                    prior_visits: 3,
                    prior_conversions: 1,
                }),
            }),
            Item::Exposure(Exposure {
                id: "x2".into(),
                site_key: "pk_golden".into(),
                experiment_id: "11111111-1111-4111-8111-111111111111".into(),
                element_id: Some("33333333-3333-4333-8333-333333333333".into()),
                arm_id: "44444444-4444-4444-8444-444444444444".into(),
                visitor_id: "v1".into(),
                propensity: 0.25,
                snapshot_version: 12,
                ts_ms: 1_764_300_000_001,
                host: None,
                context: None,
            }),
            Item::Conversion(GoalEvent {
                id: "c1".into(),
                site_key: "pk_golden".into(),
                visitor_id: "v1".into(),
                goal: "purchase".into(),
                value: Some(19.99),
                currency: Some("EUR".into()),
                ts_ms: 1_764_300_000_002,
                signed: true,
            }),
            Item::Conversion(GoalEvent {
                id: "c2".into(),
                site_key: "pk_golden".into(),
                visitor_id: "v1".into(),
                goal: "signup".into(),
                value: None,
                currency: None,
                ts_ms: 1_764_300_000_003,
                signed: false,
            }),
            Item::Custom(GoalEvent {
                id: "e1".into(),
                site_key: "pk_golden".into(),
                visitor_id: "v1".into(),
                goal: "video_play".into(),
                value: Some(0.0),
                currency: None,
                ts_ms: 1_764_300_000_004,
                signed: false,
            }),
            Item::Pageview(Pageview {
                id: "p1".into(),
                site_key: "pk_golden".into(),
                visitor_id: "v1".into(),
                url: "https://shop.example.com/pricing?plan=pro".into(),
                ts_ms: 1_764_300_000_005,
            }),
        ],
    }
}

const GOLDEN: &str = include_str!("../golden/ingest_batch.json");

#[test]
fn a_batch_serialises_to_the_committed_wire_document_and_back() {
    // The document is what both sides send and accept: changing a field name, a tag or
    // when an optional field is left out breaks this test, not production.
    let batch = golden_batch();
    assert_eq!(serde_json::to_string(&batch).unwrap(), GOLDEN.trim_end());
    let back: Batch = serde_json::from_str(GOLDEN).unwrap();
    assert_eq!(back, batch);
    // The control plane reads items one by one from JSON values: same result.
    let loose: Batch<serde_json::Value> = serde_json::from_str(GOLDEN).unwrap();
    let items: Vec<Item> = loose
        .items
        .into_iter()
        .map(|v| serde_json::from_value(v).unwrap())
        .collect();
    assert_eq!(items, batch.items);
    assert_eq!(
        batch.items.iter().map(Item::id).collect::<Vec<_>>(),
        ["x1", "x2", "c1", "c2", "e1", "p1"]
    );
    assert!(batch.items.iter().all(|i| i.site_key() == "pk_golden"));
}

#[test]
fn items_of_an_unknown_type_or_with_wrong_field_types_do_not_parse() {
    for (doc, why) in [
        (
            r#"{"id":"a","type":"click","site_key":"k","visitor_id":"v","ts_ms":1}"#,
            "unknown type",
        ),
        (
            r#"{"id":"a","site_key":"k","visitor_id":"v","goal":"g","ts_ms":1}"#,
            "no type",
        ),
        (
            r#"{"id":"a","type":"conversion","site_key":"k","visitor_id":"v","goal":"g","value":"12","ts_ms":1}"#,
            "value as a string",
        ),
        (
            r#"{"id":"a","type":"exposure","site_key":"k","experiment_id":"e","arm_id":"a","visitor_id":"v","propensity":0.5,"snapshot_version":-1,"ts_ms":1}"#,
            "negative snapshot version",
        ),
        (
            r#"{"type":"pageview","site_key":"k","visitor_id":"v","url":"u","ts_ms":1}"#,
            "no id",
        ),
    ] {
        assert!(serde_json::from_str::<Item>(doc).is_err(), "{why}");
    }
}

#[test]
fn limits_are_the_contracts() {
    assert_eq!(MAX_ITEMS, 1000);
    for (v, ok) in [
        (0.0, true),
        (19.99, true),
        (1e9, true),
        (1e9 + 1.0, false),
        (-0.01, false),
        (f64::NAN, false),
        (f64::INFINITY, false),
    ] {
        assert_eq!(value_in_bounds(v), ok, "value {v}");
    }
    for (p, ok) in [
        (1.0, true),
        (1e-9, true),
        (0.0, false),
        (1.000_001, false),
        (f64::NAN, false),
    ] {
        assert_eq!(propensity_in_bounds(p), ok, "propensity {p}");
    }
}

const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

#[test]
fn the_signature_is_hmac_sha256_over_timestamp_dot_body() {
    // References computed independently:
    // printf '1700000000.{}' | openssl dgst -sha256 -hmac 0123456789abcdef0123456789abcdef
    assert_eq!(
        sign(KEY, "1700000000", b"{}"),
        "sha256=417adf36b901772f658597a76d329694e335e65fc0849d7715c3ca33406309b5"
    );
    // Python: hmac.new(b"test-secret", b'1700000000.{"batch_id":"b","items":[]}', sha256)
    assert_eq!(
        sign(
            b"test-secret",
            "1700000000",
            br#"{"batch_id":"b","items":[]}"#
        ),
        "sha256=1eb0834a3c07ef57595a9fbcf9604d0b8554b44c2be743464b6a7a644f799ced"
    );
}

/// (what, timestamp header, signature header, body, now, expected error)
type Case<'a> = (
    &'a str,
    Option<&'a str>,
    Option<&'a str>,
    &'a [u8],
    i64,
    SignatureError,
);

#[test]
fn a_signature_made_by_sign_verifies_and_any_change_breaks_it() {
    let sig = sign(KEY, "1700000000", b"{\"items\":[]}");
    assert_eq!(
        verify(
            KEY,
            Some("1700000000"),
            Some(&sig),
            b"{\"items\":[]}",
            1700000100
        ),
        Ok(())
    );
    let cases: [Case<'_>; 8] = [
        (
            "body changed",
            Some("1700000000"),
            Some(&sig),
            b"{\"items\":[1]}",
            1700000000,
            SignatureError::Mismatch,
        ),
        (
            "timestamp changed",
            Some("1700000001"),
            Some(&sig),
            b"{\"items\":[]}",
            1700000000,
            SignatureError::Mismatch,
        ),
        (
            "too old",
            Some("1700000000"),
            Some(&sig),
            b"{\"items\":[]}",
            1700000301,
            SignatureError::StaleTimestamp,
        ),
        (
            "from the future",
            Some("1700000000"),
            Some(&sig),
            b"{\"items\":[]}",
            1699999699,
            SignatureError::StaleTimestamp,
        ),
        (
            "no timestamp",
            None,
            Some(&sig),
            b"{\"items\":[]}",
            1700000000,
            SignatureError::MissingTimestamp,
        ),
        (
            "timestamp not a number",
            Some("soon"),
            Some(&sig),
            b"{\"items\":[]}",
            1700000000,
            SignatureError::MalformedTimestamp,
        ),
        (
            "no signature",
            Some("1700000000"),
            None,
            b"{\"items\":[]}",
            1700000000,
            SignatureError::MissingSignature,
        ),
        (
            "not hex",
            Some("1700000000"),
            Some("sha256=zz"),
            b"{\"items\":[]}",
            1700000000,
            SignatureError::MalformedSignature,
        ),
    ];
    for (what, ts, sig, body, now, expected) in cases {
        assert_eq!(verify(KEY, ts, sig, body, now), Err(expected), "{what}");
    }
}
