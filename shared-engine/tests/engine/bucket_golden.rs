//! Golden vectors pinning GrowthBook-compatible bucketing.
//!
//! Every expected value below was computed by `tests/reference/growthbook_hash.py`, an
//! independent Python transcription of the definition (FNV-1a 32 over UTF-16 code units,
//! v1 and v2 formulas, getBucketRanges), and pasted here. The `SDK_CASES` block are
//! GrowthBook's own published cases (`packages/sdk-js/test/cases.json`, "hash" section);
//! the reference script reproduces them too, which is what ties it to the real SDK.

use samplit_engine::bucket::{
    bucket_ranges, choose_from_weights, choose_variation, fnv1a32, hash, hash_parts, in_namespace,
};

#[test]
fn fnv1a32_matches_the_reference_over_utf16_code_units() {
    let cases: &[(&str, u32)] = &[
        ("", 2166136261),
        ("a", 3826002220),
        ("foobar", 3214735720),
        ("hello world", 3582672807),
        ("ユーザー", 1415304117),
        // A surrogate pair: two code units, not four UTF-8 bytes.
        ("😀", 3409036472),
    ];
    for &(s, want) in cases {
        assert_eq!(fnv1a32(s), want, "fnv1a32({s:?})");
    }
}

#[test]
fn hash_matches_the_reference_for_v1_and_v2() {
    let cases: &[(&str, &str, u8, f64)] = &[
        ("", "", 1, 0.261),
        ("", "", 2, 0.2305),
        ("a", "1", 1, 0.751),
        ("a", "1", 2, 0.8633),
        ("seed", "user-123", 1, 0.246),
        ("seed", "user-123", 2, 0.6293),
        (
            "my-experiment",
            "0f8fad5b-d9cb-469f-a165-70867728950e",
            1,
            0.833,
        ),
        (
            "my-experiment",
            "0f8fad5b-d9cb-469f-a165-70867728950e",
            2,
            0.0692,
        ),
        ("exp:hero", "7c9e6679-7425-40de-944b-e07fc1f90ae7", 2, 0.986),
        ("checkout", "visitor", 1, 0.957),
        ("checkout", "visitor", 2, 0.8676),
        ("ünïcødé", "ユーザー", 1, 0.788),
        ("ünïcødé", "ユーザー", 2, 0.8771),
        ("emoji😀", "😀user", 1, 0.154),
        ("emoji😀", "😀user", 2, 0.6417),
    ];
    for &(seed, value, version, want) in cases {
        assert_eq!(
            hash(seed, value, version),
            Some(want),
            "hash({seed:?}, {value:?}, {version})"
        );
    }
}

#[test]
fn hash_reproduces_growthbooks_published_sdk_cases() {
    const SDK_CASES: &[(&str, &str, u8, f64)] = &[
        ("", "a", 1, 0.22),
        ("", "b", 1, 0.077),
        ("b", "a", 1, 0.946),
        ("ef", "d", 1, 0.652),
        ("asdf", "8952klfjas09ujk", 1, 0.549),
        ("", "123", 1, 0.011),
        ("", "___)((*\":&", 1, 0.563),
        ("seed", "a", 2, 0.0505),
        ("seed", "b", 2, 0.2696),
        ("foo", "ab", 2, 0.2575),
        ("foo", "def", 2, 0.2019),
        ("89123klj", "8952klfjas09ujkasdf", 2, 0.124),
        ("90850943850283058242805", "123", 2, 0.7516),
        ("()**(%$##$%#$#", "___)((*\":&", 2, 0.0128),
    ];
    for &(seed, value, version, want) in SDK_CASES {
        assert_eq!(
            hash(seed, value, version),
            Some(want),
            "hash({seed:?}, {value:?}, {version})"
        );
    }
}

#[test]
fn an_unknown_hash_version_gives_none() {
    for version in [0u8, 3, 99, 255] {
        assert_eq!(hash("seed", "visitor", version), None, "version {version}");
    }
}

#[test]
fn hash_parts_equals_hash_of_the_concatenated_seed() {
    for version in [1u8, 2] {
        assert_eq!(
            hash_parts(
                &["exp", ":", "hero"],
                "7c9e6679-7425-40de-944b-e07fc1f90ae7",
                version
            ),
            hash("exp:hero", "7c9e6679-7425-40de-944b-e07fc1f90ae7", version)
        );
    }
    assert_eq!(
        hash_parts(
            &["exp", ":", "hero"],
            "7c9e6679-7425-40de-944b-e07fc1f90ae7",
            2
        ),
        Some(0.986)
    );
}

#[test]
fn bucket_ranges_match_the_reference() {
    type Case = (usize, f64, Option<&'static [f64]>, &'static [(f64, f64)]);
    let cases: &[Case] = &[
        (2, 1.0, None, &[(0.0, 0.5), (0.5, 1.0)]),
        (
            3,
            1.0,
            None,
            &[
                (0.0, 0.3333333333333333),
                (0.3333333333333333, 0.6666666666666666),
                (0.6666666666666666, 1.0),
            ],
        ),
        (2, 0.5, None, &[(0.0, 0.25), (0.5, 0.75)]),
        (
            3,
            0.2,
            Some(&[0.2, 0.3, 0.5]),
            &[(0.0, 0.04000000000000001), (0.2, 0.26), (0.5, 0.6)],
        ),
        (2, 1.0, Some(&[0.4, 0.6]), &[(0.0, 0.4), (0.4, 1.0)]),
        // Sum 0.5, outside [0.99, 1.01]: equal weights.
        (2, 1.0, Some(&[0.4, 0.1]), &[(0.0, 0.5), (0.5, 1.0)]),
        // Wrong length: equal weights.
        (2, 1.0, Some(&[0.5, 0.25, 0.25]), &[(0.0, 0.5), (0.5, 1.0)]),
        // Coverage clamped to 0.
        (
            4,
            -0.2,
            None,
            &[(0.0, 0.0), (0.25, 0.25), (0.5, 0.5), (0.75, 0.75)],
        ),
        // Coverage clamped to 1.
        (
            3,
            1.7,
            Some(&[0.1, 0.1, 0.8]),
            &[(0.0, 0.1), (0.1, 0.2), (0.2, 1.0)],
        ),
    ];
    for &(n, coverage, weights, want) in cases {
        assert_eq!(
            bucket_ranges(n, coverage, weights),
            want,
            "bucket_ranges({n}, {coverage}, {weights:?})"
        );
    }
}

#[test]
fn choose_variation_takes_the_first_range_containing_n() {
    let ranges = bucket_ranges(2, 0.5, None); // [0, .25), [.5, .75)
    let cases: &[(f64, Option<usize>)] = &[
        (0.0, Some(0)),
        (0.2499, Some(0)),
        (0.25, None),
        (0.4, None),
        (0.5, Some(1)),
        (0.7499, Some(1)),
        (0.75, None),
        (0.99, None),
    ];
    for &(n, want) in cases {
        assert_eq!(choose_variation(n, &ranges), want, "n = {n}");
        assert_eq!(
            choose_from_weights(n, 2, 0.5, None),
            want,
            "allocation-free path, n = {n}"
        );
    }
    // Zero-width ranges never match; the next non-empty one does (GrowthBook's
    // "zeroRange" case: weights [0, 0.5, 0.5] … here [0.5, 0, 0.5]).
    let zero = bucket_ranges(3, 1.0, Some(&[0.5, 0.0, 0.5]));
    assert_eq!(choose_variation(0.5, &zero), Some(2));
}

#[test]
fn namespaces_match_the_reference() {
    // hash("__ns1", "user-1", 1) = 0.684; ("__ns1", "user-2") = 0.079;
    // ("__pricing", "0f8f…950e") = 0.795 (reference script).
    assert_eq!(hash("__ns1", "user-1", 1), Some(0.684));
    assert!(!in_namespace("user-1", ("ns1", 0.0, 0.4)));
    assert!(in_namespace("user-1", ("ns1", 0.4, 1.0)));
    assert_eq!(hash("__ns1", "user-2", 1), Some(0.079));
    assert!(in_namespace("user-2", ("ns1", 0.0, 0.4)));
    assert!(!in_namespace("user-2", ("ns1", 0.4, 1.0)));
    assert_eq!(
        hash("__pricing", "0f8fad5b-d9cb-469f-a165-70867728950e", 1),
        Some(0.795)
    );
    assert!(!in_namespace(
        "0f8fad5b-d9cb-469f-a165-70867728950e",
        ("pricing", 0.25, 0.75)
    ));
    assert!(in_namespace(
        "0f8fad5b-d9cb-469f-a165-70867728950e",
        ("pricing", 0.75, 0.8)
    ));
}
