//! Guardrails (`stats::guardrail`): the non-inferiority verdict against reference values,
//! its error rates by simulation under continuous monitoring, and the recommendation's
//! guardrail veto (`stats::recommend::with_guardrails`).
//!
//! Reference values: `tests/reference/stats_guardrail.py` (data generated and summarised
//! with NumPy, the always-valid interval found by SciPy's `brentq` on the mixture
//! likelihood ratio, not with the closed form), pasted below verbatim.
#![cfg(feature = "analysis")]

use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;
use rand_distr::{Binomial, Distribution, LogNormal};
use samplit_engine::stats::continuous::Moments;
use samplit_engine::stats::guardrail::{
    Direction, Guardrail, GuardrailError, GuardrailStatus, non_inferiority, rate_moments,
};
use samplit_engine::stats::recommend::{Recommendation, WaitReason, with_guardrails};

type Case = (
    u64,
    f64,
    f64,
    u64,
    f64,
    f64,
    f64,
    &'static str,
    f64,
    f64,
    f64,
    f64,
    f64,
    &'static str,
);

/// From `tests/reference/stats_guardrail.py`, pasted verbatim.
#[rustfmt::skip]
const REFERENCE: [Case; 9] = [
    // revenue, variant 30 % lower, 20 000 a side
    (20000, 62124.38, 8116831.422, 20000, 43297.060000000005, 3564248.1067999997, 0.05, "higher_is_better", -0.3030584772033136, 0.043549695961488805, -0.4540157312367946, -0.15210122316983252, 0.00010313028908008993, "harmed"),
    // revenue, no difference, 20 000 a side
    (20000, 58286.91, 5905707.2195, 20000, 59610.72, 6897899.0568, 0.1, "higher_is_better", 0.02271196054139768, 0.06118937634290073, -0.17099923410555218, 0.21642315518834754, 1.0, "inconclusive"),
    // revenue, small samples
    (800, 2466.43, 126645.44570000001, 900, 3043.3900000000003, 189668.8439, 0.2, "higher_is_better", 0.09682235277528894, 0.21655291851646974, -0.7236711848174923, 0.9173158903680702, 1.0, "inconclusive"),
    // rate, 20 % vs 16 %, 40 000 a side
    (40000, 8000.0, 8000.0, 40000, 6400.0, 6400.0, 0.05, "higher_is_better", -0.20000000000000007, 0.012165677132511049, -0.23730173655358625, -0.1626982634464139, 2.8839769205157575e-31, "harmed"),
    // rate, 20 % vs 19.9 %, 200 000 a side
    (200000, 40000.0, 40000.0, 200000, 39800.0, 39800.0, 0.05, "higher_is_better", -0.0050000000000000044, 0.006302822671459839, -0.02523839707141123, 0.01523839707141122, 1.0, "not_inferior"),
    // bounce rate up from 30 % to 36 %, 30 000 a side
    (30000, 9000.0, 9000.0, 30000, 10800.0, 10800.0, 0.05, "lower_is_better", 0.19999999999999996, 0.014047772468629241, 0.15719248134395916, 0.24280751865604075, 4.1767981735525764e-23, "harmed"),
    // bounce rate down from 30 % to 29 %, 100 000 a side
    (100000, 30000.0, 30000.0, 100000, 29000.0, 29000.0, 0.05, "lower_is_better", -0.033333333333333326, 0.006684454226095388, -0.054695353145914755, -0.011971313520751897, 1.0, "not_inferior"),
    // variant sells nothing
    (5000, 12360.07, 1003220.8176999999, 5000, 0.0, 0.0, 0.05, "higher_is_better", -1.0, 0.07980029451518691, -1.3779185057431083, -0.622081494256891, 2.4902842908701933e-09, "harmed"),
    // ten visitors a side, one sale against none
    (10, 25.0, 625.0, 10, 0.0, 0.0, 0.05, "higher_is_better", -1.0, 1.0, -50.026304494117575, 48.026304494117575, 1.0, "inconclusive"),
];

fn close(got: f64, want: f64, what: &str) {
    let tol = 1e-9 * want.abs().max(1.0);
    assert!(
        (got - want).abs() <= tol,
        "{what}: got {got}, reference {want}"
    );
}

#[test]
fn the_verdict_matches_the_reference_values() {
    for (na, sa, qa, nb, sb, qb, margin, direction, rel, se, lower, upper, p, status) in REFERENCE {
        let what = format!("({na}, {sa}) vs ({nb}, {sb}), margin {margin}, {direction}");
        let guardrail = Guardrail::new(margin, Direction::parse(direction).unwrap()).unwrap();
        let r = non_inferiority(
            Moments {
                n: na,
                sum: sa,
                sum_sq: qa,
            },
            Moments {
                n: nb,
                sum: sb,
                sum_sq: qb,
            },
            guardrail,
            0.05,
            None,
        )
        .unwrap();
        close(
            r.relative_difference.unwrap(),
            rel,
            &format!("{what}: relative"),
        );
        close(r.std_error.unwrap(), se, &format!("{what}: se"));
        let interval = r.interval.unwrap();
        close(interval.lower, lower, &format!("{what}: lower"));
        close(interval.upper, upper, &format!("{what}: upper"));
        close(r.p_value, p, &format!("{what}: p"));
        assert_eq!(
            r.p_value <= 0.05,
            status == "harmed",
            "{what}: p ≤ α iff harmed"
        );
        let want = match status {
            "harmed" => GuardrailStatus::Harmed,
            "not_inferior" => GuardrailStatus::NotInferior,
            _ => GuardrailStatus::Inconclusive,
        };
        assert_eq!(r.status, want, "{what}");
        assert_eq!((r.margin, r.direction.as_str()), (margin, direction));
    }
}

#[test]
fn a_rate_is_the_mean_of_zeros_and_ones() {
    assert_eq!(
        rate_moments(1000, 50),
        Moments {
            n: 1000,
            sum: 50.0,
            sum_sq: 50.0
        }
    );
    // The reference's rate cases are exactly these moments.
    let r = non_inferiority(
        rate_moments(40_000, 8000),
        rate_moments(40_000, 6400),
        Guardrail::new(0.05, Direction::HigherIsBetter).unwrap(),
        0.05,
        None,
    )
    .unwrap();
    close(r.relative_difference.unwrap(), -0.2, "relative");
    assert_eq!(r.status, GuardrailStatus::Harmed);
}

#[test]
fn without_a_control_mean_or_two_visitors_the_verdict_is_inconclusive() {
    let g = Guardrail::new(0.05, Direction::HigherIsBetter).unwrap();
    for (control, treatment, why) in [
        (
            rate_moments(1000, 0),
            rate_moments(1000, 10),
            "no control conversion",
        ),
        (
            rate_moments(1, 1),
            rate_moments(1000, 10),
            "one control visitor",
        ),
        (
            rate_moments(1000, 10),
            rate_moments(0, 0),
            "no variant visitor",
        ),
    ] {
        let r = non_inferiority(control, treatment, g, 0.05, None).unwrap();
        assert_eq!(r.status, GuardrailStatus::Inconclusive, "{why}");
        assert_eq!((r.relative_difference, r.interval), (None, None), "{why}");
    }
}

#[test]
fn bad_settings_and_impossible_moments_are_refused() {
    for m in [0.0, -0.1, 1.5, f64::NAN] {
        assert_eq!(
            Guardrail::new(m, Direction::LowerIsBetter)
                .unwrap_err()
                .to_string(),
            GuardrailError::InvalidMargin(m).to_string(),
            "margin {m}"
        );
    }
    let g = Guardrail::new(1.0, Direction::LowerIsBetter).unwrap();
    let ok = rate_moments(100, 10);
    for alpha in [0.0, 1.0, f64::NAN] {
        assert!(matches!(
            non_inferiority(ok, ok, g, alpha, None),
            Err(GuardrailError::InvalidAlpha(_))
        ));
    }
    assert!(matches!(
        non_inferiority(ok, ok, g, 0.05, Some(0.0)),
        Err(GuardrailError::InvalidTauSquared(_))
    ));
    for bad in [
        Moments {
            n: 10,
            sum: f64::NAN,
            sum_sq: 1.0,
        },
        Moments {
            n: 10,
            sum: 10.0,
            sum_sq: 1.0,
        },
        Moments {
            n: 10,
            sum: 1.0,
            sum_sq: -1.0,
        },
    ] {
        assert_eq!(
            non_inferiority(ok, bad, g, 0.05, None),
            Err(GuardrailError::InvalidMoments),
            "{bad:?}"
        );
    }
}

#[test]
fn a_harmed_guardrail_turns_a_winner_into_a_refusal_and_nothing_else() {
    let deploy = Recommendation::DeployWinner { arm: 2 };
    assert_eq!(
        with_guardrails(deploy, &[None, None, Some(1)]),
        Recommendation::GuardrailHarmed {
            arm: 2,
            guardrail: 1
        }
    );
    assert_eq!(
        with_guardrails(deploy, &[None, Some(0), None]),
        deploy,
        "another arm's harm"
    );
    assert_eq!(with_guardrails(deploy, &[]), deploy, "no guardrails");
    for other in [
        Recommendation::NoDifference,
        Recommendation::KeepCollecting {
            reason: WaitReason::NotConclusive,
        },
        Recommendation::KeepCollecting {
            reason: WaitReason::MinimumSample,
        },
    ] {
        assert_eq!(with_guardrails(other, &[Some(0), Some(0)]), other);
    }
    assert_eq!(
        serde_json::to_value(Recommendation::GuardrailHarmed {
            arm: 1,
            guardrail: 0
        })
        .unwrap(),
        serde_json::json!({"action": "guardrail_harmed", "arm": 1, "guardrail": 0})
    );
}

// ---- error rates by simulation, under continuous monitoring ----

/// How often `harmed` is ever declared over `experiments` seeded experiments, looking
/// after every `step` visitors per arm up to `max_per_arm`. `draw(rng, n, arm)` gives the
/// moments of `n` new visitors of arm 0 (control) or 1 (variant).
fn harmed_rate(
    seed: u64,
    experiments: usize,
    step: u64,
    max_per_arm: u64,
    guardrail: Guardrail,
    mut draw: impl FnMut(&mut ChaCha8Rng, u64, usize) -> Moments,
) -> f64 {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut hits = 0usize;
    for _ in 0..experiments {
        let mut arms = [Moments {
            n: 0,
            sum: 0.0,
            sum_sq: 0.0,
        }; 2];
        while arms[0].n < max_per_arm {
            for (i, arm) in arms.iter_mut().enumerate() {
                let d = draw(&mut rng, step, i);
                arm.n += d.n;
                arm.sum += d.sum;
                arm.sum_sq += d.sum_sq;
            }
            let r = non_inferiority(arms[0], arms[1], guardrail, 0.05, None)
                .expect("simulated moments are valid");
            if r.status == GuardrailStatus::Harmed {
                hits += 1;
                break;
            }
        }
    }
    let rate = hits as f64 / experiments as f64;
    // Shown with `--nocapture`: the figures docs/statistics.md quotes.
    println!("seed {seed}: harmed declared in {rate} of {experiments} experiments");
    rate
}

/// Conversion rates `p[arm]`: each look adds `Binomial(n, p)` conversions.
fn rates(p: [f64; 2]) -> impl FnMut(&mut ChaCha8Rng, u64, usize) -> Moments {
    move |rng, n, arm| {
        let x = Binomial::new(n, p[arm])
            .expect("valid binomial")
            .sample(rng);
        rate_moments(n, x)
    }
}

/// Revenue per visitor: a purchase with probability `rate`, of a log-normal value
/// (σ = 0.8) with mean `mean_order[arm]`.
fn revenue(rate: f64, mean_order: [f64; 2]) -> impl FnMut(&mut ChaCha8Rng, u64, usize) -> Moments {
    let sigma = 0.8f64;
    let values = mean_order
        .map(|m| LogNormal::new(m.ln() - sigma * sigma / 2.0, sigma).expect("valid log-normal"));
    move |rng, n, arm| {
        let buyers = Binomial::new(n, rate).expect("valid binomial").sample(rng);
        let (mut sum, mut sum_sq) = (0.0, 0.0);
        for _ in 0..buyers {
            let v: f64 = values[arm].sample(rng);
            sum += v;
            sum_sq += v * v;
        }
        Moments { n, sum, sum_sq }
    }
}

/// Bound on a rate estimated from `k` experiments when the true rate is at most `p`:
/// `p + 3·√(p(1−p)/k)`.
fn bound(p: f64, k: usize) -> f64 {
    p + 3.0 * (p * (1.0 - p) / k as f64).sqrt()
}

/// Without harm, and at the worst case of the null (a true loss of exactly the margin),
/// `harmed` is declared at most α of the time though the results are looked at every
/// 2 000 visitors per arm (50 looks).
#[test]
fn harmed_is_declared_at_most_alpha_of_the_time_when_the_loss_is_within_the_margin() {
    let g = Guardrail::new(0.05, Direction::HigherIsBetter).unwrap();
    let k = 400;
    for (why, p, seed) in [
        ("no difference", [0.20, 0.20], 1),
        ("a loss of exactly the margin", [0.20, 0.19], 2),
    ] {
        let rate = harmed_rate(seed, k, 2_000, 100_000, g, rates(p));
        assert!(
            rate <= bound(0.05, k),
            "{why}: harmed in {rate} of experiments"
        );
    }
    // A bad event (lower is better) rising by exactly the margin.
    let bad = Guardrail::new(0.05, Direction::LowerIsBetter).unwrap();
    let rate = harmed_rate(3, k, 2_000, 100_000, bad, rates([0.30, 0.315]));
    assert!(rate <= bound(0.05, k), "bounce +5 %: harmed in {rate}");
    // Revenue per visitor, no difference.
    let rate = harmed_rate(4, 200, 5_000, 100_000, g, revenue(0.05, [60.0, 60.0]));
    assert!(rate <= bound(0.05, 200), "revenue: harmed in {rate}");
}

/// A true loss of twice the margin is detected in at least 80 % of experiments by
/// 100 000 visitors per arm (800 000 for revenue per visitor, a noisier metric).
#[test]
fn a_loss_of_twice_the_margin_is_detected_at_least_80_percent_of_the_time() {
    let g = Guardrail::new(0.05, Direction::HigherIsBetter).unwrap();
    let power = harmed_rate(5, 300, 2_000, 100_000, g, rates([0.20, 0.18]));
    assert!(power >= 0.8, "rate: detected in {power}");
    let bad = Guardrail::new(0.05, Direction::LowerIsBetter).unwrap();
    let power = harmed_rate(6, 300, 2_000, 100_000, bad, rates([0.30, 0.33]));
    assert!(power >= 0.8, "bounce: detected in {power}");
    // Revenue per visitor −10 % (the order value drops): noisier, so more visitors.
    let power = harmed_rate(7, 200, 20_000, 800_000, g, revenue(0.05, [60.0, 54.0]));
    assert!(power >= 0.8, "revenue: detected in {power}");
}
