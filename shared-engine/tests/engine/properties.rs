//! Property tests (proptest) of the engine's invariants.

use proptest::prelude::*;
use samplit_engine::allocator::{
    Allocator, ArmStats, FixedSplit, Thompson, visitor_rng, visitor_seed,
};
use samplit_engine::assign::{VisitorContext, assign_site};
use samplit_engine::bucket::{
    Seed, bucket_ranges, choose_from_weights, choose_variation, hash, hash_parts,
};
use samplit_engine::snapshot::{SignedSnapshot, SnapshotError, sign, verify};

use crate::fixtures::{KEY, site_snapshot};

fn weights_strategy() -> impl Strategy<Value = Option<Vec<f64>>> {
    prop_oneof![
        Just(None),
        // Arbitrary (often invalid) weights: wrong sums exercise the equal-weight fallback.
        prop::collection::vec(0.0f64..1.0, 1..8).prop_map(Some),
        // Valid weights: normalised.
        prop::collection::vec(0.01f64..1.0, 1..8).prop_map(|w| {
            let s: f64 = w.iter().sum();
            Some(w.iter().map(|x| x / s).collect())
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn ranges_lie_in_the_unit_interval_and_do_not_overlap(
        n in 1usize..12,
        coverage in -0.5f64..1.5,
        weights in weights_strategy(),
    ) {
        let ranges = bucket_ranges(n, coverage, weights.as_deref());
        prop_assert_eq!(ranges.len(), n);
        let mut prev_end = 0.0f64;
        for &(start, end) in &ranges {
            prop_assert!((0.0..=1.0 + 1e-9).contains(&start), "start {start}");
            prop_assert!((0.0..=1.0 + 1e-9).contains(&end), "end {end}");
            prop_assert!(start <= end);
            prop_assert!(start + 1e-12 >= prev_end, "ranges overlap");
            prev_end = end;
        }
    }

    #[test]
    fn the_chosen_variation_is_the_first_range_containing_the_bucket(
        n in 1usize..12,
        coverage in 0.0f64..=1.0,
        weights in weights_strategy(),
        x in 0.0f64..1.0,
    ) {
        let ranges = bucket_ranges(n, coverage, weights.as_deref());
        let chosen = choose_variation(x, &ranges);
        match chosen {
            Some(i) => {
                prop_assert!(ranges[i].0 <= x && x < ranges[i].1);
                prop_assert!(ranges[..i].iter().all(|&(s, e)| !(s <= x && x < e)));
            }
            None => prop_assert!(ranges.iter().all(|&(s, e)| !(s <= x && x < e))),
        }
        // The allocation-free hot path agrees.
        prop_assert_eq!(choose_from_weights(x, n, coverage, weights.as_deref()), chosen);
    }

    #[test]
    fn piecewise_hashing_equals_hashing_the_concatenation(
        seed in ".{0,20}", sep in ".{0,3}", element in ".{0,20}", visitor in ".{0,40}",
        version in 0u8..4,
    ) {
        let joined = format!("{seed}{sep}{element}");
        prop_assert_eq!(
            hash_parts(&[&seed, &sep, &element], &visitor, version),
            hash(&joined, &visitor, version)
        );
        if let Some(h) = hash(&joined, &visitor, version) {
            prop_assert!((0.0..1.0).contains(&h));
        } else {
            prop_assert!(!(1..=2).contains(&version));
        }
    }

    #[test]
    fn a_seed_with_its_stored_hash_state_hashes_like_the_plain_seed(
        seed in ".{0,40}", sep in ".{0,3}", element in ".{0,20}", visitor in ".{0,40}",
        version in 0u8..4,
    ) {
        let stored = Seed::new(seed.clone());
        prop_assert_eq!(
            stored.hash_parts(&[&sep, &element], &visitor, version),
            hash_parts(&[&seed, &sep, &element], &visitor, version)
        );
        prop_assert_eq!(
            stored.hash_parts(&[], &visitor, version),
            hash(&seed, &visitor, version)
        );
        // It serialises as (and parses from) the plain string.
        let json = serde_json::to_string(&stored).unwrap();
        prop_assert_eq!(&json, &serde_json::to_string(&seed).unwrap());
        prop_assert_eq!(serde_json::from_str::<Seed>(&json).unwrap(), stored);
    }

    #[test]
    fn the_visitor_seed_streams_unit_parts_like_their_concatenation(
        visitor in ".{0,40}", a in ".{0,20}", b in ".{0,20}", c in ".{0,20}", version in any::<u64>(),
    ) {
        let joined = format!("{a}{b}{c}");
        prop_assert_eq!(
            visitor_seed(&visitor, &[&a, &b, &c], version),
            visitor_seed(&visitor, &[&joined], version)
        );
    }

    #[test]
    fn thompson_propensities_sum_to_one_and_respect_the_floor(
        counts in prop::collection::vec((0u64..5000, 0.0f64..1.0), 2..6),
        floor_share in 0.0f64..0.99,
        min_exposures in 0u64..200,
    ) {
        let k = counts.len();
        let floor = floor_share / k as f64; // in [0, 1/k)
        let stats: Vec<ArmStats> = counts
            .iter()
            .map(|&(e, r)| ArmStats { exposures: e, conversions: (e as f64 * r) as u64 })
            .collect();
        let a = Allocator::Thompson(Thompson::new(1.0, 1.0, min_exposures, floor).unwrap());
        let p = a.propensities(&stats).unwrap();
        prop_assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-6, "sum {}", p.iter().sum::<f64>());
        for &pi in &p {
            prop_assert!(pi >= floor - 1e-12, "{pi} < floor {floor}");
            prop_assert!(pi <= 1.0 + 1e-12);
        }
    }

    #[test]
    fn fixed_split_propensities_sum_to_one(w in prop::collection::vec(0.01f64..1.0, 1..10)) {
        let s: f64 = w.iter().sum();
        let w: Vec<f64> = w.iter().map(|x| x / s).collect();
        let a = Allocator::FixedSplit(FixedSplit::new(w.clone()).unwrap());
        let p = a.propensities(&vec![ArmStats::default(); w.len()]).unwrap();
        prop_assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn a_thompson_choice_is_deterministic_and_in_range(
        visitor in "[a-f0-9-]{1,36}",
        version in any::<u64>(),
        bucket in 0.0f64..1.0,
    ) {
        let a = Allocator::Thompson(Thompson::default());
        let s = [
            ArmStats { exposures: 500, conversions: 20 },
            ArmStats { exposures: 500, conversions: 25 },
            ArmStats { exposures: 500, conversions: 22 },
        ];
        let first = a.choose(&s, bucket, 1.0, &mut visitor_rng(&visitor, &["e"], version)).unwrap();
        let again = a.choose(&s, bucket, 1.0, &mut visitor_rng(&visitor, &["e"], version)).unwrap();
        prop_assert_eq!(first, again);
        prop_assert!(first.is_some_and(|i| i < 3));
    }

    #[test]
    fn site_assignment_is_deterministic(visitor in ".{1,40}", path in "/[a-z/]{0,20}") {
        let snap = site_snapshot(9);
        let url = format!("https://shop.example{path}");
        let ctx = VisitorContext {
            visitor_id: &visitor,
            url: &url,
            user_agent: Some("Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"),
            ..VisitorContext::default()
        };
        let a = assign_site(&snap, &ctx);
        prop_assert_eq!(&a, &assign_site(&snap, &ctx));
        for x in &a.assignments {
            prop_assert!(x.propensity > 0.0 && x.propensity <= 1.0);
        }
    }
}

proptest! {
    // Each case signs and verifies a full snapshot; fewer cases keep the suite quick.
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn sign_then_verify_round_trips(version in 1u64..u64::MAX, generated in any::<i64>()) {
        let mut snap = site_snapshot(version);
        snap.generated_at_ms = generated;
        let signed = sign(&snap, KEY);
        prop_assert_eq!(verify(&signed, KEY, Some(version)).unwrap(), snap);
    }

    #[test]
    fn any_flipped_payload_byte_is_rejected(pos in any::<prop::sample::Index>(), bit in 0u8..8) {
        let signed = sign(&site_snapshot(3), KEY);
        let mut bytes = signed.payload.clone().into_bytes();
        let i = pos.index(bytes.len());
        bytes[i] ^= 1 << bit;
        // A flip may break UTF-8; the wire form is a JSON string, so such a payload could
        // not even be delivered. Valid UTF-8 flips must fail the signature check.
        if let Ok(payload) = String::from_utf8(bytes) {
            let tampered = SignedSnapshot { payload, signature: signed.signature.clone() };
            prop_assert_eq!(verify(&tampered, KEY, None), Err(SnapshotError::BadSignature));
        }
    }

    #[test]
    fn any_flipped_signature_bit_is_rejected(pos in 0usize..32, bit in 0u8..8) {
        let signed = sign(&site_snapshot(3), KEY);
        let mut raw = hex::decode(&signed.signature).unwrap();
        raw[pos] ^= 1 << bit;
        let tampered = SignedSnapshot { payload: signed.payload.clone(), signature: hex::encode(raw) };
        prop_assert_eq!(verify(&tampered, KEY, None), Err(SnapshotError::BadSignature));
    }

    /// A correctly signed but arbitrary or corrupted document never panics the
    /// verifier: it is either a valid snapshot or a typed error.
    #[test]
    fn verify_never_panics_on_signed_garbage(
        pos in any::<prop::sample::Index>(),
        replacement in "[0-9a-z\\-\\.\\[\\]{}\":,]{0,3}",
        garbage in ".{0,64}",
    ) {
        let payload = sign(&site_snapshot(3), KEY).payload;
        let mut i = pos.index(payload.len());
        while !payload.is_char_boundary(i) {
            i -= 1;
        }
        let corrupted = format!("{}{}{}", &payload[..i], replacement, &payload[(i + 1).min(payload.len())..]);
        for p in [corrupted, garbage] {
            let signed = sign_raw(p);
            match verify(&signed, KEY, None) {
                Ok(snap) => prop_assert!(snap.validate().is_ok()),
                Err(e) => prop_assert!(!matches!(e, SnapshotError::BadSignature)),
            }
        }
    }
}

fn sign_raw(payload: String) -> SignedSnapshot {
    use hmac::{Hmac, Mac};
    let mut m = <Hmac<sha2::Sha256> as Mac>::new_from_slice(KEY).expect("any key length");
    m.update(payload.as_bytes());
    SignedSnapshot {
        payload,
        signature: hex::encode(m.finalize().into_bytes()),
    }
}
