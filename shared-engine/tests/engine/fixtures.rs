//! Snapshot builders shared by the tests.
// Fixture builders run only inside tests and unwrap values known to be valid; clippy's
// `allow-unwrap-in-tests` covers `#[test]` functions but not these helpers.
#![allow(clippy::unwrap_used)]

use samplit_engine::allocator::{Allocator, ArmStats, FixedSplit, Thompson};
use samplit_engine::changes::{Change, ChangeAction};
use samplit_engine::multi::{Mode, factorial_arm_id, factorial_combinations};
use samplit_engine::snapshot::{
    AllocationUnit, Arm, Element, ExperimentSnapshot, SCHEMA_VERSION, Snapshot, Variant,
};
use samplit_engine::targeting::{ExclusionRule, UrlMatch, UrlRule};

pub const KEY: &[u8] = b"test-signing-key-0123456789abcdef";

pub fn text_variant(id: &str, selector: &str, text: &str) -> Variant {
    Variant {
        id: id.into(),
        changes: vec![Change::new(selector, ChangeAction::SetText { text: text.into() }).unwrap()],
    }
}

pub fn element(id: &str, selector: &str, variant_ids: &[&str]) -> Element {
    Element {
        id: id.into(),
        selector: selector.into(),
        variants: variant_ids
            .iter()
            .map(|v| text_variant(v, selector, &format!("{id}={v}")))
            .collect(),
    }
}

/// Arms with their propensities computed by the allocator, as the control plane does.
pub fn arms_with_propensities(
    allocator: &Allocator,
    ids_and_variants: Vec<(String, Vec<usize>)>,
    stats: &[ArmStats],
) -> Vec<Arm> {
    let p = allocator.propensities(stats).unwrap();
    ids_and_variants
        .into_iter()
        .zip(stats)
        .zip(p)
        .map(|(((id, variants), s), propensity)| Arm {
            id,
            variants,
            exposures: s.exposures,
            conversions: s.conversions,
            propensity,
        })
        .collect()
}

/// A single-element experiment with `k` variants.
pub fn single(id: &str, allocator: Allocator, stats: &[ArmStats]) -> ExperimentSnapshot {
    let k = stats.len();
    let ids: Vec<String> = (0..k).map(|i| format!("v{i}")).collect();
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let arms = arms_with_propensities(
        &allocator,
        (0..k).map(|i| (format!("arm{i}"), vec![i])).collect(),
        stats,
    );
    ExperimentSnapshot {
        goals: Vec::new(),
        id: id.into(),
        seed: format!("seed-{id}").into(),
        hash_version: 2,
        coverage: 1.0,
        url_rules: vec![],
        exclusions: vec![],
        namespace: None,
        mode: Mode::Single,
        elements: vec![element("hero", "#hero h1", &id_refs)],
        units: vec![AllocationUnit {
            id: format!("{id}-unit"),
            element_id: None,
            allocator,
            arms,
        }],
    }
}

/// The 3×3 landing-page grid as a factorial experiment.
pub fn factorial(id: &str, allocator: Allocator, stats: &[ArmStats; 9]) -> ExperimentSnapshot {
    let combos = factorial_combinations(&[3, 3]).unwrap();
    let names = [["A", "B", "C"], ["X", "Y", "Z"]];
    let arms = arms_with_propensities(
        &allocator,
        combos
            .iter()
            .map(|c| {
                (
                    factorial_arm_id(&[names[0][c[0]], names[1][c[1]]]),
                    c.clone(),
                )
            })
            .collect(),
        stats,
    );
    ExperimentSnapshot {
        goals: Vec::new(),
        id: id.into(),
        seed: format!("seed-{id}").into(),
        hash_version: 2,
        coverage: 1.0,
        url_rules: vec![],
        exclusions: vec![],
        namespace: None,
        mode: Mode::Factorial,
        elements: vec![
            element("headline", "h1", &names[0]),
            element("cta", ".cta", &names[1]),
        ],
        units: vec![AllocationUnit {
            id: format!("{id}-unit"),
            element_id: None,
            allocator,
            arms,
        }],
    }
}

/// Two independent elements, each a fixed 50/50 split.
pub fn independent(id: &str) -> ExperimentSnapshot {
    let elements = vec![
        element("headline", "h1", &["control", "bold"]),
        element("cta", ".cta", &["control", "green"]),
    ];
    let units = elements
        .iter()
        .map(|e| {
            let allocator = Allocator::FixedSplit(FixedSplit::equal(2).unwrap());
            let arms = arms_with_propensities(
                &allocator,
                vec![
                    (format!("{}-control", e.id), vec![0]),
                    (format!("{}-treatment", e.id), vec![1]),
                ],
                &[ArmStats::default(); 2],
            );
            AllocationUnit {
                id: format!("{id}-{}", e.id),
                element_id: Some(e.id.clone()),
                allocator,
                arms,
            }
        })
        .collect();
    ExperimentSnapshot {
        goals: Vec::new(),
        id: id.into(),
        seed: format!("seed-{id}").into(),
        hash_version: 2,
        coverage: 1.0,
        url_rules: vec![],
        exclusions: vec![],
        namespace: None,
        mode: Mode::Independent,
        elements,
        units,
    }
}

pub fn thompson_default() -> Allocator {
    Allocator::Thompson(Thompson::default())
}

pub fn stats(pairs: &[(u64, u64)]) -> Vec<ArmStats> {
    pairs
        .iter()
        .map(|&(exposures, conversions)| ArmStats {
            exposures,
            conversions,
        })
        .collect()
}

/// A site snapshot with a fixed-split, a Thompson, a factorial and an independent
/// experiment, plus the usual exclusions.
pub fn site_snapshot(version: u64) -> Snapshot {
    let mut fixed = single(
        "exp-fixed",
        Allocator::FixedSplit(FixedSplit::new(vec![0.5, 0.3, 0.2]).unwrap()),
        &stats(&[(0, 0), (0, 0), (0, 0)]),
    );
    fixed.url_rules = vec![UrlRule::new(UrlMatch::Prefix, "/", true).unwrap()];
    let thompson = single(
        "exp-thompson",
        thompson_default(),
        &stats(&[(1000, 50), (1000, 65), (1000, 40)]),
    );
    let grid = factorial(
        "exp-grid",
        thompson_default(),
        &[ArmStats {
            exposures: 200,
            conversions: 8,
        }; 9],
    );
    Snapshot {
        schema: SCHEMA_VERSION,
        site_key: "sk_test_site".into(),
        version,
        generated_at_ms: 1_764_288_000_000,
        allowed_origins: vec!["https://shop.example".into()],
        exclusions: vec![
            ExclusionRule::Bots,
            ExclusionRule::ip("10.0.0.0/8").unwrap(),
            ExclusionRule::header("x-samplit-internal", "1").unwrap(),
        ],
        experiments: vec![fixed, thompson, grid, independent("exp-multi")],
        trust: Default::default(),
    }
}
