//! What one publisher tick costs per running experiment, without the database:
//! `cargo bench -p samplit-control-plane --bench snapshot_build`.
//!
//! - `experiment_snapshot/single_2_arms_*`: a typical A/B test, fixed split and Thompson
//!   after burn-in (one numerical integration over 2 posteriors).
//! - `experiment_snapshot/factorial_250_arms_thompson`: near the largest Thompson unit
//!   (the engine integrates over at most 256 posteriors; 5 × 10 × 5 combinations) after
//!   burn-in — the publisher's worst case, run on a blocking thread in
//!   `publisher::build_snapshot`.
//! - `experiment_snapshot/factorial_500_arms_fixed_split`: the largest factorial unit.
//! - `sign/factorial_500_arms`: canonical JSON + HMAC of a snapshot carrying it.

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use samplit_control_plane::db::experiments::{
    ArmRow, ElementRow, ExperimentRow, Loaded, VariantRow,
};
use samplit_control_plane::publisher::experiment_snapshot;
use samplit_engine::allocator::ArmStats;
use samplit_engine::snapshot::{SCHEMA_VERSION, Snapshot, sign};
use uuid::Uuid;

/// A running experiment whose elements have `variant_counts` variants, every arm with
/// 1000 exposures and a conversion count that varies by arm (post burn-in).
fn experiment(
    kind: &str,
    variant_counts: &[usize],
    allocator: serde_json::Value,
) -> (Loaded, HashMap<Uuid, ArmStats>) {
    let now = time::OffsetDateTime::now_utc();
    let mut elements = Vec::new();
    let mut variants = Vec::new();
    let mut ids_per_element: Vec<Vec<Uuid>> = Vec::new();
    for (i, &n) in variant_counts.iter().enumerate() {
        let el = Uuid::new_v4();
        elements.push(ElementRow {
            id: el,
            position: i as i32,
            name: format!("e{i}"),
            selector: format!("#e{i}"),
        });
        let mut ids = Vec::new();
        for j in 0..n {
            let id = Uuid::new_v4();
            ids.push(id);
            variants.push(VariantRow {
                id,
                element_id: el,
                position: j as i32,
                name: format!("v{j}"),
                is_control: j == 0,
                weight: 1.0,
                changes: serde_json::json!([{ "selector": format!("#e{i}"), "action": { "type": "set_text", "text": format!("variant {j}") } }]),
            });
        }
        ids_per_element.push(ids);
    }
    let combos =
        samplit_engine::multi::factorial_combinations(variant_counts).expect("≤ 500 combinations");
    let arms: Vec<ArmRow> = combos
        .iter()
        .enumerate()
        .map(|(k, combo)| ArmRow {
            id: Uuid::new_v4(),
            element_id: None,
            position: k as i32,
            name: format!("arm{k}"),
            variant_ids: combo
                .iter()
                .enumerate()
                .map(|(i, &j)| ids_per_element[i][j])
                .collect(),
            is_control: k == 0,
        })
        .collect();
    let counts = arms
        .iter()
        .enumerate()
        .map(|(k, a)| {
            (
                a.id,
                ArmStats {
                    exposures: 1000,
                    conversions: 40 + (k as u64 * 7) % 30,
                },
            )
        })
        .collect();
    let loaded = Loaded {
        experiment: ExperimentRow {
            id: Uuid::new_v4(),
            org_id: Uuid::new_v4(),
            site_id: Uuid::new_v4(),
            name: "bench".into(),
            description: String::new(),
            kind: samplit_control_plane::domain::experiment::ExperimentKind::parse(kind)
                .expect("a kind"),
            status: samplit_control_plane::domain::Status::Running,
            allocator: sqlx::types::Json(
                serde_json::from_value(allocator).expect("a valid allocator"),
            ),
            coverage: 1.0,
            url_rules: serde_json::json!([]),
            seed: "seed".into(),
            hash_version: 2,
            version: 1,
            started_at: Some(now),
            ended_at: None,
            created_at: now,
            updated_at: now,
        },
        elements,
        variants,
        arms,
        goals: Vec::new(),
    };
    (loaded, counts)
}

fn thompson() -> serde_json::Value {
    serde_json::json!({ "kind": "thompson", "prior_alpha": 1.0, "prior_beta": 1.0, "min_exposures": 100, "floor": 0.001 })
}

fn benches(c: &mut Criterion) {
    let (fixed, fixed_counts) =
        experiment("single", &[2], serde_json::json!({ "kind": "fixed_split" }));
    c.bench_function("experiment_snapshot/single_2_arms_fixed_split", |b| {
        b.iter(|| experiment_snapshot(black_box(&fixed), black_box(&fixed_counts)).expect("valid"))
    });
    let (ts, ts_counts) = experiment("single", &[2], thompson());
    c.bench_function("experiment_snapshot/single_2_arms_thompson", |b| {
        b.iter(|| experiment_snapshot(black_box(&ts), black_box(&ts_counts)).expect("valid"))
    });
    let (ts_big, ts_big_counts) = experiment("factorial", &[5, 10, 5], thompson());
    let (big, big_counts) = experiment(
        "factorial",
        &[5, 10, 10],
        serde_json::json!({ "kind": "fixed_split" }),
    );
    let mut group = c.benchmark_group("experiment_snapshot");
    group.sample_size(10);
    group.bench_function("factorial_250_arms_thompson", |b| {
        b.iter(|| {
            experiment_snapshot(black_box(&ts_big), black_box(&ts_big_counts)).expect("valid")
        })
    });
    group.bench_function("factorial_500_arms_fixed_split", |b| {
        b.iter(|| experiment_snapshot(black_box(&big), black_box(&big_counts)).expect("valid"))
    });
    group.finish();
    let (exp, _) = experiment_snapshot(&big, &big_counts).expect("valid");
    let snapshot = Snapshot {
        schema: SCHEMA_VERSION,
        site_key: "pk_bench".into(),
        version: 1,
        generated_at_ms: 0,
        allowed_origins: vec!["https://shop.example".into()],
        exclusions: Vec::new(),
        experiments: vec![exp],
        trust: Default::default(),
    };
    c.bench_function("sign/factorial_500_arms", |b| {
        b.iter(|| sign(black_box(&snapshot), b"bench-signing-key-0123456789abcdef"))
    });
}

criterion_group!(snapshot_build, benches);
criterion_main!(snapshot_build);
