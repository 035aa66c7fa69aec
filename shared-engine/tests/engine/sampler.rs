//! The Beta sampler behind Thompson draws, checked against the Beta CDF.

use samplit_engine::allocator::{ArmStats, Thompson, visitor_rng};
use statrs::distribution::{Beta, ContinuousCDF};

/// One-sample Kolmogorov–Smirnov statistic `D = sup |F_n(x) − F(x)|`.
fn ks_statistic(mut xs: Vec<f64>, cdf: impl Fn(f64) -> f64) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len() as f64;
    xs.iter()
        .enumerate()
        .map(|(i, &x)| {
            let f = cdf(x);
            (f - i as f64 / n).max((i + 1) as f64 / n - f)
        })
        .fold(0.0, f64::max)
}

/// Kolmogorov–Smirnov test of `Thompson::sample_posterior` (rand_distr's Beta, Cheng's
/// BB and BC algorithms, driven by the edge's ChaCha8 stream) against statrs' Beta CDF.
///
/// n = 20 000 draws per case. Critical value at α = 0.001 for large n:
/// `c(α)/√n` with `c(0.001) = √(−ln(α/2)/2) = 1.9495`, i.e. `D < 0.01378`. The seeds
/// are fixed, so the test is deterministic; a wrong sampler (e.g. swapped parameters,
/// which this test catches for the asymmetric cases) gives D far above the bound.
#[test]
fn posterior_draws_follow_the_beta_distribution() {
    const N: usize = 20_000;
    let critical = (-(0.001f64 / 2.0).ln() / 2.0).sqrt() / (N as f64).sqrt();
    assert!((critical - 0.013785).abs() < 1e-5);
    // (prior_alpha, prior_beta, exposures, conversions): covers BC (min ≤ 1) and BB.
    let cases: &[(f64, f64, u64, u64)] = &[
        (0.5, 0.5, 0, 0),           // Beta(0.5, 0.5), U-shaped, algorithm BC
        (1.0, 1.0, 0, 0),           // uniform
        (0.3, 2.0, 0, 0),           // BC, skewed
        (2.0, 5.0, 0, 0),           // BB
        (1.0, 1.0, 1000, 50),       // Beta(51, 951): a typical posterior
        (1.0, 1.0, 100_000, 4_000), // Beta(4001, 96001): a large posterior
    ];
    for (case, &(pa, pb, exposures, conversions)) in cases.iter().enumerate() {
        let t = Thompson::new(pa, pb, 0, 0.0).unwrap();
        let stats = ArmStats {
            exposures,
            conversions,
        };
        let (alpha, beta) = t.posterior(0, stats).unwrap();
        let mut rng = visitor_rng("ks", &["case", &case.to_string()], 1);
        let xs: Vec<f64> = (0..N)
            .map(|_| t.sample_posterior(0, stats, &mut rng).unwrap())
            .collect();
        let reference = Beta::new(alpha, beta).unwrap();
        let d = ks_statistic(xs, |x| reference.cdf(x));
        assert!(d < critical, "Beta({alpha}, {beta}): D = {d} ≥ {critical}");
    }
}

#[test]
fn the_ks_test_detects_a_wrong_distribution() {
    // Sanity check of the harness itself: Beta(2, 5) draws tested against Beta(5, 2).
    let t = Thompson::new(2.0, 5.0, 0, 0.0).unwrap();
    let mut rng = visitor_rng("ks", &["wrong"], 1);
    let xs: Vec<f64> = (0..2_000)
        .map(|_| {
            t.sample_posterior(0, ArmStats::default(), &mut rng)
                .unwrap()
        })
        .collect();
    let wrong = Beta::new(5.0, 2.0).unwrap();
    assert!(ks_statistic(xs, |x| wrong.cdf(x)) > 0.5);
}
