//! The `analysis` statistics against reference values, plus calibration by simulation.
//!
//! Reference values: `tests/reference/stats_analysis.py` (SciPy implementations where
//! SciPy has them, textbook formulas written independently in Python otherwise), pasted
//! below verbatim.
#![cfg(feature = "analysis")]

use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;
use rand_distr::{Binomial, Distribution};
use samplit_engine::stats::analyze::{
    AnalysisConfig, AnalysisInput, AnalysisOutput, AnalyzeError, ArmInput, analyze,
};
use samplit_engine::stats::continuous::{ContinuousError, Moments, summarize, welch_t_test};
use samplit_engine::stats::multiple::{MultipleError, benjamini_hochberg, holm};
use samplit_engine::stats::proportions::{
    Counts, ProportionError, lift, two_proportion_z_test, wilson_interval,
};
use samplit_engine::stats::recommend::{
    ArmEvidence, DecisionRule, Recommendation, WaitReason, recommend,
};
use samplit_engine::stats::sequential::{MsprtConfig, SequentialError, msprt};
use samplit_engine::stats::srm::{SrmError, sample_ratio_mismatch};

fn close(got: f64, want: f64, tol: f64, what: &str) {
    assert!(
        (got - want).abs() <= tol,
        "{what}: got {got}, reference {want}"
    );
}

fn counts(n: u64, x: u64) -> Counts {
    Counts::new(n, x).expect("test counts are valid")
}

// ---- values from tests/reference/stats_analysis.py ----

#[test]
fn wilson_interval_matches_scipy() {
    // scipy binomtest(x, n).proportion_ci(0.95, method="wilson")
    let table = [
        (50, 1000, 0.03813026239274881, 0.06531382024425081),
        (0, 20, 0.0, 0.16112515805281935),
        (20, 20, 0.8388748419471808, 1.0),
        (3, 7, 0.1582198552514697, 0.7495416354723428),
        (500, 10000, 0.04589848269058477, 0.05444711584302416),
    ];
    for (x, n, lo, hi) in table {
        let ci = wilson_interval(counts(n, x), 0.95).unwrap();
        close(ci.lower, lo, 1e-12, &format!("wilson lower {x}/{n}"));
        close(ci.upper, hi, 1e-12, &format!("wilson upper {x}/{n}"));
    }
}

#[test]
fn pooled_z_test_matches_reference() {
    let table = [
        (50, 1000, 65, 1000, 1.440793230951582, 0.14964310637037262),
        (
            200,
            4000,
            260,
            4100,
            2.6080605568494484,
            0.009105684397905222,
        ),
        (5, 100, 5, 100, 0.0, 1.0),
    ];
    for (xa, na, xb, nb, z, p) in table {
        let t = two_proportion_z_test(counts(na, xa), counts(nb, xb));
        close(t.z, z, 1e-12, "z");
        close(t.p_value, p, 1e-10, "p (statrs erfc: ~1e-11)");
    }
}

#[test]
fn lift_interval_is_the_katz_log_ratio_interval() {
    let table = [
        (
            50,
            1000,
            65,
            1000,
            0.30000000000000004,
            -0.0913085843070347,
            0.8598172831986217,
        ),
        (
            200,
            4000,
            260,
            4100,
            0.2682926829268293,
            0.06029721888492823,
            0.5170900205297144,
        ),
        (
            12,
            300,
            30,
            310,
            1.4193548387096775,
            0.2625541305479091,
            3.636060897482304,
        ),
    ];
    for (xa, na, xb, nb, rel, lo, hi) in table {
        let l = lift(counts(na, xa), counts(nb, xb), 0.95).unwrap().unwrap();
        close(l.relative, rel, 1e-12, "relative lift");
        let ci = l.interval.unwrap();
        close(ci.lower, lo, 1e-9, "lift lower");
        close(ci.upper, hi, 1e-9, "lift upper");
    }
    assert_eq!(
        lift(counts(100, 0), counts(100, 5), 0.95).unwrap(),
        None,
        "no control conversion"
    );
    let no_treatment = lift(counts(100, 5), counts(100, 0), 0.95).unwrap().unwrap();
    assert_eq!((no_treatment.relative, no_treatment.interval), (-1.0, None));
}

#[test]
fn welch_test_and_mean_interval_match_scipy() {
    // scipy ttest_ind_from_stats(equal_var=False); df by Welch–Satterthwaite.
    let table = [
        (
            (1000, 2500.0, 150000.0),
            (1000, 3100.0, 210000.0),
            1.022271886231791,
            1945.305652709749,
            0.30677934449237393,
        ),
        (
            (50, 120.5, 900.25),
            (80, 150.0, 1300.0),
            -0.8354166010850828,
            105.55584505804218,
            0.4053701623318884,
        ),
        (
            (12, 30.0, 100.0),
            (400, 900.0, 4000.0),
            -0.556561537737752,
            12.482934530492765,
            0.5876662858970289,
        ),
    ];
    for ((na, sa, qa), (nb, sb, qb), t, df, p) in table {
        let a = Moments {
            n: na,
            sum: sa,
            sum_sq: qa,
        };
        let b = Moments {
            n: nb,
            sum: sb,
            sum_sq: qb,
        };
        let w = welch_t_test(a, b).unwrap();
        close(w.t, t, 1e-10, "welch t");
        close(w.df, df, 1e-8, "welch df");
        close(w.p_value, p, 1e-9, "welch p");
    }
    // scipy t.interval(0.95, n-1, loc=mean, scale=s/sqrt(n))
    for (n, s, q, lo, hi) in [
        (1000, 2500.0, 150000.0, 1.755618172068099, 3.244381827931901),
        (12, 30.0, 100.0, 1.542144156344928, 3.457855843655072),
    ] {
        let m = summarize(
            Moments {
                n,
                sum: s,
                sum_sq: q,
            },
            0.95,
        )
        .unwrap();
        close(m.interval.lower, lo, 1e-9, "t-interval lower");
        close(m.interval.upper, hi, 1e-9, "t-interval upper");
    }
}

#[test]
fn srm_chi_square_matches_scipy() {
    let table: [(&[u64], &[f64], f64, f64); 4] = [
        (&[5000, 5000], &[0.5, 0.5], 0.0, 1.0),
        (
            &[5000, 5300],
            &[0.5, 0.5],
            8.737864077669903,
            0.003116693839866867,
        ),
        (
            &[3000, 3050, 3900],
            &[3010.2, 3044.9, 3895.5],
            0.048269677567309564,
            0.9761540774550752,
        ),
        (
            &[1000, 1080, 950],
            &[1.0, 1.0, 1.0],
            8.514851485148515,
            0.014158703685035972,
        ),
    ];
    for (obs, w, chi2, p) in table {
        let r = sample_ratio_mismatch(obs, w, 0.001).unwrap();
        close(r.chi_square, chi2, 1e-9, "chi2");
        close(r.p_value, p, 1e-10, "srm p");
        assert!(!r.mismatch, "{obs:?} is not an SRM at 0.001");
    }
    let gross = sample_ratio_mismatch(&[5000, 5600], &[0.5, 0.5], 0.001).unwrap();
    assert!(gross.mismatch && gross.p_value < 1e-5, "{gross:?}");
    let unallocated = sample_ratio_mismatch(&[10, 3], &[1.0, 0.0], 0.001).unwrap();
    assert!(unallocated.mismatch, "traffic to an arm with no allocation");
}

#[test]
fn holm_and_benjamini_hochberg_match_reference() {
    let table: [(&[f64], &[f64], &[f64]); 3] = [
        (
            &[0.01, 0.04, 0.03, 0.005],
            &[0.03, 0.06, 0.06, 0.02],
            &[0.02, 0.04, 0.039999999999999994, 0.02],
        ),
        (
            &[0.2, 0.5, 0.01],
            &[0.4, 0.5, 0.03],
            &[0.30000000000000004, 0.5, 0.03],
        ),
        (
            &[0.04, 0.04, 0.04],
            &[0.12, 0.12, 0.12],
            &[0.04, 0.04, 0.04],
        ),
    ];
    for (p, want_holm, want_bh) in table {
        for (g, w) in holm(p).unwrap().iter().zip(want_holm) {
            close(*g, *w, 1e-15, "holm");
        }
        for (g, w) in benjamini_hochberg(p).unwrap().iter().zip(want_bh) {
            close(*g, *w, 1e-15, "bh");
        }
    }
}

#[test]
fn msprt_likelihood_ratio_matches_mpmath() {
    // (xa, na, xb, nb, tau2, ln Λ, 1/Λ)
    let table = [
        (
            50,
            1000,
            65,
            1000,
            0.0001,
            0.17123965139800282,
            0.8426196143041356,
        ),
        (
            500,
            10000,
            600,
            10000,
            0.0001,
            3.1757157858152683,
            0.04176419916209068,
        ),
        (
            500,
            10000,
            520,
            10000,
            0.0001,
            -1.0253810450667957,
            2.788157671904131,
        ),
        (
            100,
            2000,
            150,
            2100,
            0.0004,
            2.554599865095862,
            0.07772332566153418,
        ),
    ];
    for (xa, na, xb, nb, tau_squared, llr, inv) in table {
        let cfg = MsprtConfig {
            tau_squared,
            alpha: 0.05,
        };
        let r = msprt(counts(na, xa), counts(nb, xb), None, cfg).unwrap();
        close(r.log_likelihood_ratio, llr, 1e-12, "ln Λ");
        close(r.p_value, f64::min(inv, 1.0), 1e-12, "always-valid p");
        assert_eq!(r.reject, inv <= 0.05);
    }
    // The running minimum: a smaller previous p-value is kept.
    let r = msprt(
        counts(1000, 50),
        counts(1000, 65),
        Some(0.2),
        MsprtConfig::default(),
    )
    .unwrap();
    assert_eq!(r.p_value, 0.2);
}

// ---- bad input: typed errors, no panics ----

#[test]
fn bad_inputs_are_rejected_with_typed_errors() {
    assert_eq!(
        Counts::new(10, 11),
        Err(ProportionError::ConversionsExceedVisitors {
            conversions: 11,
            visitors: 10
        }),
        "conversions > visitors"
    );
    assert_eq!(
        Counts::new(0, 0),
        Err(ProportionError::NoVisitors),
        "no visitors"
    );
    assert!(
        matches!(
            wilson_interval(counts(10, 1), f64::NAN),
            Err(ProportionError::InvalidLevel(_))
        ),
        "NaN level"
    );
    let m = |n, sum, sum_sq| Moments { n, sum, sum_sq };
    let cont: [(&str, Moments, ContinuousError); 4] = [
        ("NaN sum", m(10, f64::NAN, 1.0), ContinuousError::NotFinite),
        (
            "negative sum of squares",
            m(10, 1.0, -1.0),
            ContinuousError::InconsistentMoments,
        ),
        (
            "sum² > n·Σx²",
            m(10, 100.0, 1.0),
            ContinuousError::InconsistentMoments,
        ),
        (
            "one observation",
            m(1, 1.0, 1.0),
            ContinuousError::TooFewObservations(1),
        ),
    ];
    for (why, moments, want) in cont {
        assert_eq!(summarize(moments, 0.95).unwrap_err(), want, "{why}");
    }
    assert!(
        matches!(
            holm(&[0.1, f64::NAN]),
            Err(MultipleError::InvalidPValue { index: 1, .. })
        ),
        "NaN p"
    );
    assert!(
        matches!(
            benjamini_hochberg(&[1.5]),
            Err(MultipleError::InvalidPValue { index: 0, .. })
        ),
        "p > 1"
    );
    assert_eq!(
        sample_ratio_mismatch(&[1, 2], &[1.0], 0.001),
        Err(SrmError::LengthMismatch),
        "lengths"
    );
    assert_eq!(
        sample_ratio_mismatch(&[1, 2], &[1.0, -1.0], 0.001),
        Err(SrmError::InvalidWeight(1)),
        "negative weight"
    );
    assert_eq!(
        sample_ratio_mismatch(&[1], &[1.0], 0.001),
        Err(SrmError::TooFewArms),
        "one arm"
    );
    let bad_tau = MsprtConfig {
        tau_squared: 0.0,
        alpha: 0.05,
    };
    assert_eq!(
        msprt(counts(10, 1), counts(10, 1), None, bad_tau),
        Err(SequentialError::InvalidTauSquared(0.0))
    );
    assert!(matches!(
        msprt(
            counts(10, 1),
            counts(10, 1),
            Some(f64::NAN),
            MsprtConfig::default()
        ),
        Err(SequentialError::InvalidPreviousPValue(_))
    ));
}

fn arm(id: &str, visitors: u64, conversions: u64, share: f64) -> ArmInput {
    ArmInput {
        arm_id: id.into(),
        visitors,
        conversions,
        // Revenue 40.0 per conversion, so Σx = 40·x and Σx² = 1600·x.
        revenue: Moments {
            n: visitors,
            sum: 40.0 * conversions as f64,
            sum_sq: 1600.0 * conversions as f64,
        },
        propensity_sum: share,
        previous_sequential_p_value: None,
    }
}

fn input(arms: Vec<ArmInput>) -> AnalysisInput {
    AnalysisInput {
        arms,
        control: 0,
        config: AnalysisConfig::default(),
    }
}

#[test]
fn analyze_rejects_bad_input_without_panicking() {
    type ErrorCheck = fn(&AnalyzeError) -> bool;
    let cases: Vec<(&str, AnalysisInput, ErrorCheck)> = vec![
        ("one arm", input(vec![arm("a", 100, 5, 1.0)]), |e| {
            *e == AnalyzeError::TooFewArms
        }),
        (
            "control out of range",
            AnalysisInput {
                control: 5,
                ..input(vec![arm("a", 100, 5, 1.0), arm("b", 100, 5, 1.0)])
            },
            |e| *e == AnalyzeError::InvalidControl(5),
        ),
        (
            "conversions > visitors",
            input(vec![arm("a", 100, 5, 1.0), arm("b", 100, 101, 1.0)]),
            |e| matches!(e, AnalyzeError::Counts(1, _)),
        ),
        (
            "no visitors",
            input(vec![arm("a", 0, 0, 1.0), arm("b", 100, 1, 1.0)]),
            |e| matches!(e, AnalyzeError::Counts(0, ProportionError::NoVisitors)),
        ),
        (
            "NaN propensity sum",
            input(vec![arm("a", 100, 5, f64::NAN), arm("b", 100, 1, 1.0)]),
            |e| matches!(e, AnalyzeError::Srm(_)),
        ),
        (
            "bad revenue",
            {
                let mut i = input(vec![arm("a", 100, 5, 1.0), arm("b", 100, 1, 1.0)]);
                i.arms[1].revenue.sum = f64::INFINITY;
                i
            },
            |e| matches!(e, AnalyzeError::Revenue(1, ContinuousError::NotFinite)),
        ),
        (
            "bad alpha",
            {
                let mut i = input(vec![arm("a", 100, 5, 1.0), arm("b", 100, 1, 1.0)]);
                i.config.alpha = 1.5;
                i
            },
            |e| matches!(e, AnalyzeError::InvalidConfig(_)),
        ),
    ];
    for (why, inp, is_expected) in cases {
        let err = analyze(&inp).unwrap_err();
        assert!(is_expected(&err), "{why}: got {err:?}");
    }
}

#[test]
fn analyze_reports_every_per_arm_figure_consistently() {
    let out = analyze(&input(vec![
        arm("control", 10_000, 500, 0.5),
        arm("variant", 10_000, 600, 0.5),
    ]))
    .unwrap();
    let (c, v) = (&out.arms[0], &out.arms[1]);
    assert!(c.comparison.is_none(), "the control has no comparison");
    let cmp = v.comparison.unwrap();
    close(v.rate, 0.06, 1e-15, "rate");
    // Same figures as the single-purpose functions (mpmath value for the mSPRT).
    close(
        cmp.sequential_p_value,
        0.04176419916209068,
        1e-12,
        "always-valid p",
    );
    close(
        cmp.p_value_holm,
        cmp.sequential_p_value,
        0.0,
        "one comparison: Holm = raw",
    );
    assert!(cmp.significant);
    assert!(
        cmp.z_test_p_value < cmp.sequential_p_value,
        "peeking-safe p is the larger one"
    );
    close(cmp.lift.unwrap().relative, 0.2, 1e-12, "lift");
    close(
        c.chance_to_be_best + v.chance_to_be_best,
        1.0,
        1e-12,
        "chances sum to 1",
    );
    assert!(v.chance_to_be_best > 0.99 && v.expected_loss < c.expected_loss);
    let rev = v.revenue.unwrap();
    close(rev.mean, 40.0 * 0.06, 1e-12, "revenue per visitor");
    assert!(cmp.revenue_welch.unwrap().p_value < 0.05);
    assert!(!out.srm.mismatch);
    // Wins on the always-valid test but its expected loss 0.05·... is checked too.
    assert_eq!(out.recommendation, Recommendation::DeployWinner { arm: 1 });
    // Serde: the control plane ships these as JSON.
    let json = serde_json::to_string(&out).unwrap();
    let back: AnalysisOutput = serde_json::from_str(&json).unwrap();
    assert_eq!(back, out);
    assert!(
        json.contains(r#""recommendation":{"action":"deploy_winner","arm":1}"#),
        "{json}"
    );
    let input_json = r#"{"control":0,"arms":[
        {"arm_id":"a","visitors":100,"conversions":10,"revenue":{"n":100,"sum":5.0,"sum_sq":9.0},"propensity_sum":50.0},
        {"arm_id":"b","visitors":100,"conversions":12,"revenue":{"n":100,"sum":6.0,"sum_sq":11.0},"propensity_sum":50.0}]}"#;
    let parsed: AnalysisInput = serde_json::from_str(input_json).unwrap();
    assert_eq!(
        parsed.config,
        AnalysisConfig::default(),
        "config defaults when omitted"
    );
    analyze(&parsed).unwrap();
}

#[test]
fn recommendation_follows_the_documented_rule() {
    let ev = |visitors, conversions, chance, loss, significant, difference| ArmEvidence {
        visitors,
        conversions,
        chance_to_be_best: chance,
        expected_loss: loss,
        posterior_mean: 0.05,
        significant,
        difference,
    };
    let rule = DecisionRule::default();
    let keep = |reason| Recommendation::KeepCollecting { reason };
    let cases = [
        (
            "too few visitors",
            vec![
                ev(99, 10, 0.5, 0.0, false, 0.0),
                ev(5000, 300, 0.5, 0.0, false, 0.0),
            ],
            false,
            keep(WaitReason::MinimumSample),
        ),
        (
            "too few conversions",
            vec![
                ev(5000, 9, 0.5, 0.0, false, 0.0),
                ev(5000, 300, 0.5, 0.0, false, 0.0),
            ],
            false,
            keep(WaitReason::MinimumSample),
        ),
        (
            "SRM blocks a clear winner",
            vec![
                ev(5000, 250, 0.001, 0.01, false, 0.0),
                ev(5000, 350, 0.999, 0.0, true, 0.02),
            ],
            true,
            keep(WaitReason::SampleRatioMismatch),
        ),
        (
            "clear winner",
            vec![
                ev(5000, 250, 0.001, 0.01, false, 0.0),
                ev(5000, 350, 0.999, 0.0, true, 0.02),
            ],
            false,
            Recommendation::DeployWinner { arm: 1 },
        ),
        (
            "significant but ranking uncertain",
            vec![
                ev(5000, 250, 0.01, 0.01, false, 0.0),
                ev(5000, 350, 0.90, 0.0001, true, 0.02),
                ev(5000, 345, 0.09, 0.0002, true, 0.019),
            ],
            false,
            keep(WaitReason::NotConclusive),
        ),
        (
            "control wins when every variant is significantly worse",
            vec![
                ev(5000, 350, 0.999, 0.0, false, 0.0),
                ev(5000, 250, 0.001, 0.02, true, -0.02),
            ],
            false,
            Recommendation::DeployWinner { arm: 0 },
        ),
        (
            "no difference: nothing significant, keeping the control costs < 1%",
            vec![
                ev(90_000, 4500, 0.55, 0.0004, false, 0.0),
                ev(90_000, 4490, 0.45, 0.0005, false, -0.0001),
            ],
            false,
            Recommendation::NoDifference,
        ),
        (
            "not conclusive",
            vec![
                ev(5000, 250, 0.3, 0.004, false, 0.0),
                ev(5000, 270, 0.7, 0.001, false, 0.004),
            ],
            false,
            keep(WaitReason::NotConclusive),
        ),
    ];
    for (why, arms, srm, want) in cases {
        assert_eq!(recommend(&arms, 0, srm, &rule).unwrap(), want, "{why}");
    }
}

// ---- calibration by simulation ----

/// Runs `experiments` two-arm experiments with true rates `(p_a, p_b)`, looking after every
/// `step` visitors per arm up to `max_per_arm`, and returns the fraction in which the
/// mSPRT (α = 0.05, default τ²) and the naive fixed-horizon z-test (p < 0.05) ever reject.
fn simulate(
    seed: u64,
    experiments: usize,
    p_a: f64,
    p_b: f64,
    step: u64,
    max_per_arm: u64,
) -> (f64, f64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (draw_a, draw_b) = (
        Binomial::new(step, p_a).expect("valid binomial"),
        Binomial::new(step, p_b).expect("valid binomial"),
    );
    let cfg = MsprtConfig::default();
    let (mut seq_hits, mut naive_hits) = (0usize, 0usize);
    for _ in 0..experiments {
        let (mut n, mut xa, mut xb) = (0u64, 0u64, 0u64);
        let (mut seq, mut naive) = (false, false);
        let mut previous = None;
        while n < max_per_arm && !(seq && naive) {
            n += step;
            xa += draw_a.sample(&mut rng);
            xb += draw_b.sample(&mut rng);
            let r = msprt(counts(n, xa), counts(n, xb), previous, cfg)
                .expect("valid counts and config");
            previous = Some(r.p_value);
            seq |= r.reject;
            naive |= two_proportion_z_test(counts(n, xa), counts(n, xb)).p_value < 0.05;
        }
        seq_hits += usize::from(seq);
        naive_hits += usize::from(naive);
    }
    (
        seq_hits as f64 / experiments as f64,
        naive_hits as f64 / experiments as f64,
    )
}

/// 300 A/A experiments at 5%, a look every 100 visitors per arm up to 5 000 (50 looks).
/// Bound: α + 3·√(α(1−α)/300) = 0.05 + 0.038 = 0.088 (three binomial standard errors).
/// The full-size run (2 000 experiments to 20 000 per arm) is `examples/calibration.rs`.
#[test]
fn sequential_test_controls_false_positives_under_continuous_monitoring_while_peeking_at_a_z_test_does_not()
 {
    let experiments = 300;
    let (seq, naive) = simulate(20261128, experiments, 0.05, 0.05, 100, 5_000);
    let bound = 0.05 + 3.0 * (0.05f64 * 0.95 / experiments as f64).sqrt();
    assert!(seq <= bound, "mSPRT false-positive rate {seq} > {bound}");
    // Peeking at a fixed-horizon test 50 times: the known inflation is to ~25–30%; even
    // its lower 3-SE limit must clear 0.15, three times the nominal 5%.
    assert!(
        naive >= 0.15,
        "naive z-test false-positive rate {naive} should be well above 5%"
    );
}

/// Power sanity check: 5% → 6% (a 20% relative lift), looks every 100 visitors per arm
/// up to 20 000 per arm; the always-valid test detects it in most experiments.
#[test]
fn sequential_test_detects_a_real_20_percent_lift_most_of_the_time() {
    let (power, _) = simulate(7, 200, 0.05, 0.06, 100, 20_000);
    assert!(power >= 0.8, "power {power} at 20 000 visitors per arm");
}

proptest::proptest! {
    /// Whatever the aggregates — extreme counts, conversions above visitors, NaN or
    /// infinite revenue and propensities — `analyze` returns a value or a typed error,
    /// never panics, and a successful result has probabilities in [0, 1].
    #[test]
    fn analyze_never_panics(
        arms in proptest::collection::vec(
            (
                proptest::prop_oneof![0u64..3000, proptest::prelude::Just(u64::MAX)],
                0u64..3000,
                proptest::prop_oneof![-1e3f64..1e6, proptest::prelude::Just(f64::NAN), proptest::prelude::Just(f64::INFINITY)],
                proptest::prop_oneof![0.0f64..1e4, proptest::prelude::Just(f64::NAN), proptest::prelude::Just(-1.0)],
                proptest::option::of(-0.5f64..1.5),
            ),
            0..6,
        ),
        control in 0usize..7,
    ) {
        let input = AnalysisInput {
            arms: arms
                .iter()
                .enumerate()
                .map(|(i, &(visitors, conversions, sum, share, previous))| ArmInput {
                    arm_id: format!("arm-{i}"),
                    visitors,
                    conversions,
                    revenue: Moments { n: visitors, sum, sum_sq: sum * sum },
                    propensity_sum: share,
                    previous_sequential_p_value: previous,
                })
                .collect(),
            control,
            config: AnalysisConfig::default(),
        };
        if let Ok(out) = analyze(&input) {
            for a in &out.arms {
                proptest::prop_assert!((0.0..=1.0).contains(&a.chance_to_be_best));
                proptest::prop_assert!((0.0..=1.0).contains(&a.rate));
            }
        }
    }
}

#[test]
fn with_several_variants_decisions_use_holm_adjusted_always_valid_p_values() {
    let mut inp = input(vec![
        arm("control", 10_000, 500, 1.0),
        arm("big", 10_000, 620, 1.0),
        arm("small", 10_000, 540, 1.0),
        arm("same", 10_000, 500, 1.0),
    ]);
    // A stored running minimum is honoured for the variant it belongs to.
    inp.arms[3].previous_sequential_p_value = Some(0.5);
    let out = analyze(&inp).unwrap();
    let cmp: Vec<_> = out.arms[1..]
        .iter()
        .map(|a| a.comparison.unwrap())
        .collect();
    let raw: Vec<f64> = cmp.iter().map(|c| c.sequential_p_value).collect();
    let want_holm = holm(&raw).unwrap();
    let want_bh = benjamini_hochberg(&raw).unwrap();
    for (i, c) in cmp.iter().enumerate() {
        assert_eq!(c.p_value_holm, want_holm[i], "variant {i}: Holm");
        assert_eq!(c.p_value_bh, want_bh[i], "variant {i}: BH");
        assert_eq!(
            c.significant,
            c.p_value_holm <= 0.05,
            "variant {i}: decision on Holm"
        );
    }
    assert!(raw[2] <= 0.5, "running minimum with the stored p-value");
    assert!(cmp[0].significant && !cmp[1].significant && !cmp[2].significant);
    let sum: f64 = out.arms.iter().map(|a| a.chance_to_be_best).sum();
    close(sum, 1.0, 1e-12, "chances sum to 1");
    assert_eq!(out.recommendation, Recommendation::DeployWinner { arm: 1 });
}
