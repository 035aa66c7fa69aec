//! Statistics benchmarks (criterion).
//!
//! ```text
//! cargo bench -p samplit-engine --features analysis --bench stats
//! ```
//!
//! - `chance_to_be_best/4_arms_1000_visitors`: the allocator's propensity computation for
//!   four realistic posteriors (goal ≤ 100 µs at absolute error ≤ 1e-6; the accuracy is
//!   checked against mpmath in `tests/stats_bayes.rs`, same inputs).
//! - `chance_to_be_best/4_arms_1e6_visitors`: the same shape at a million visitors per arm.
//! - `best_arm/16_arms`: a wide multi-arm experiment.
//! - `analyze/4_arms` (feature `analysis`): a whole results page.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use samplit_engine::stats::bayes::{best_arm, chance_to_be_best, credible_interval};

const FOUR_ARMS: [(f64, f64); 4] = [
    (1.0 + 50.0, 1.0 + 950.0),
    (1.0 + 60.0, 1.0 + 940.0),
    (1.0 + 55.0, 1.0 + 945.0),
    (1.0 + 45.0, 1.0 + 955.0),
];

fn bayes(c: &mut Criterion) {
    let mut g = c.benchmark_group("chance_to_be_best");
    g.bench_function("4_arms_1000_visitors", |b| {
        b.iter(|| chance_to_be_best(black_box(&FOUR_ARMS)))
    });
    let large: Vec<(f64, f64)> = [50_000.0, 50_300.0, 50_150.0, 49_900.0]
        .iter()
        .map(|&x| (1.0 + x, 1.0 + 1e6 - x))
        .collect();
    g.bench_function("4_arms_1e6_visitors", |b| {
        b.iter(|| chance_to_be_best(black_box(&large)))
    });
    g.finish();
    let sixteen: Vec<(f64, f64)> = (0..16)
        .map(|i| (1.0 + 40.0 + f64::from(i), 1.0 + 960.0 - f64::from(i)))
        .collect();
    c.bench_function("best_arm/16_arms", |b| {
        b.iter(|| best_arm(black_box(&sixteen)))
    });
    c.bench_function("credible_interval/95", |b| {
        b.iter(|| credible_interval(black_box(51.0), black_box(951.0), 0.95))
    });
}

#[cfg(feature = "analysis")]
fn analysis(c: &mut Criterion) {
    use samplit_engine::stats::analyze::{AnalysisConfig, AnalysisInput, ArmInput, analyze};
    use samplit_engine::stats::continuous::Moments;
    let arms = [(10_000, 500), (10_000, 560), (10_000, 530), (10_000, 480)]
        .iter()
        .enumerate()
        .map(|(i, &(n, x))| ArmInput {
            arm_id: format!("arm-{i}"),
            visitors: n,
            conversions: x,
            revenue: Moments {
                n,
                sum: 40.0 * x as f64,
                sum_sq: 1600.0 * x as f64,
            },
            propensity_sum: 10_000.0,
            previous_sequential_p_value: None,
        })
        .collect();
    let input = AnalysisInput {
        arms,
        control: 0,
        config: AnalysisConfig::default(),
    };
    c.bench_function("analyze/4_arms", |b| b.iter(|| analyze(black_box(&input))));
}

#[cfg(not(feature = "analysis"))]
fn analysis(_: &mut Criterion) {}

criterion_group!(benches, bayes, analysis);
criterion_main!(benches);
