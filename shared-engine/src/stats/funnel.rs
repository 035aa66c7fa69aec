//! # Funnels: ordered steps per arm, and the arms compared at each step
//!
//! A funnel is 2–[`MAX_STEPS`] ordered steps (each one of the experiment's goals) and a
//! window. A visitor **enters** the funnel of an arm when assigned to it (their first
//! exposure, at time `t₀`), and **reaches** step `k` when they completed steps `1..k` in
//! that order within `[t₀, t₀ + window]`.
//!
//! ## Reach (greedy, in order)
//! [`steps_reached`] walks the visitor's events in time order and keeps the next step
//! still to complete: an event inside the window whose goal matches that step completes
//! it, and the walk moves to the following step. So step `k` is completed by the
//! **earliest** matching event after the completion of step `k − 1`, and one event
//! completes at most one step (two steps whose goals share a name need two events). The
//! greedy choice is optimal: completing a step as early as possible never prevents a
//! later step (any in-order completion can be moved earlier to the greedy one), so the
//! number of steps reached is the largest any in-order assignment of the events gives.
//! Events before `t₀` or after `t₀ + window` are ignored: a step done before the visitor
//! was exposed does not count, even if it was done again later inside the window only
//! then.
//!
//! ## Per arm ([`analyze_funnel`])
//! With `n` visitors entered and `r_k` reaching step `k` (so `n ≥ r_1 ≥ r_2 ≥ …`):
//! - reach from entry `r_k / n`, with its Wilson 95 % interval
//!   ([`wilson_interval`]);
//! - conversion from the previous step `r_k / r_{k−1}` (`r_0 = n`);
//! - drop-off `r_{k−1} − r_k` visitors, and its share `1 − r_k / r_{k−1}`.
//!
//! ## Against the control, at each step
//! The difference of the reach proportions `d = p̂_B − p̂_A` (`p̂ = r_k / n`) with:
//! - the **Newcombe hybrid score interval** (Newcombe 1998, "Interval estimation for the
//!   difference between independent proportions: comparison of eleven methods",
//!   *Statistics in Medicine* 17(8):873–890, `doi:10.1002/(SICI)1097-0258(19980430)17:8<873::AID-SIM779>3.0.CO;2-I`,
//!   method 10): with the Wilson intervals `[l_A, u_A]`, `[l_B, u_B]` of each arm,
//!   `[d − √((p̂_B − l_B)² + (u_A − p̂_A)²), d + √((u_B − p̂_B)² + (p̂_A − l_A)²)]`;
//! - the **pooled two-proportion z-test**
//!   ([`two_proportion_z_test`]), two-sided;
//! - the p-values **Holm-adjusted** ([`holm`]) over the whole
//!   family of the funnel: every (step, arm) comparison that has a p-value.
//!
//! These are fixed-horizon statistics of one look: a funnel is for exploring where the
//! arms differ, not for deciding (the primary goal's always-valid test decides).

use alloc::vec::Vec;
use core::fmt;

use serde::{Deserialize, Serialize};

use super::multiple::holm;
use super::proportions::{Counts, Interval, two_proportion_z_test, wilson_interval};

/// Fewest steps of a funnel.
pub const MIN_STEPS: usize = 2;
/// Most steps of a funnel.
pub const MAX_STEPS: usize = 8;

/// Why a funnel analysis was refused.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FunnelError {
    /// No arm, or the control index is not an arm.
    NoControl,
    /// Arms with different numbers of steps, or a number outside 2..=8.
    StepCount(usize),
    /// A step reached by more visitors than the previous one (or than entered).
    NotNested {
        /// The arm's index.
        arm: usize,
        /// The step's index (0-based).
        step: usize,
    },
    /// The confidence level is not in (0, 1).
    InvalidLevel(f64),
}

impl fmt::Display for FunnelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoControl => write!(f, "the control is not one of the arms"),
            Self::StepCount(n) => write!(
                f,
                "a funnel has {MIN_STEPS} to {MAX_STEPS} steps, the same for every arm (got {n})"
            ),
            Self::NotNested { arm, step } => write!(
                f,
                "arm {arm}: step {step} is reached by more visitors than the step before"
            ),
            Self::InvalidLevel(l) => write!(f, "confidence level {l} not in (0, 1)"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for FunnelError {}

/// One event of a visitor: when (ms since the epoch) and which steps its goal matches
/// (bit `k` set: it is step `k`'s goal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepEvent {
    /// The event's time, ms.
    pub ts_ms: i64,
    /// Bit `k`: the event matches step `k` (0-based).
    pub steps: u32,
}

/// How many steps (0..=`steps`) a visitor who entered at `entry_ms` reached within
/// `window_ms`, walking `events` **in the order given** (time order; the caller sorts,
/// ties in a fixed order). See the module docs for the rule.
pub fn steps_reached(entry_ms: i64, window_ms: i64, events: &[StepEvent], steps: usize) -> usize {
    let end = entry_ms.saturating_add(window_ms);
    let mut next = 0;
    for e in events {
        if next >= steps || next >= 32 {
            break;
        }
        if e.ts_ms < entry_ms || e.ts_ms > end {
            continue;
        }
        if e.steps & (1u32 << next) != 0 {
            next += 1;
        }
    }
    next
}

/// One arm's funnel counts: visitors entered and, per step, visitors who reached it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FunnelCounts {
    /// Visitors who entered (were assigned to the arm).
    pub entered: u64,
    /// `reached[k]`: visitors who completed steps `0..=k` in order within the window.
    pub reached: Vec<u64>,
}

impl FunnelCounts {
    /// Zero counts for a funnel of `steps` steps.
    pub fn new(steps: usize) -> Self {
        Self {
            entered: 0,
            reached: alloc::vec![0; steps],
        }
    }

    /// Adds one visitor who entered and reached `reached` steps.
    pub fn add(&mut self, reached: usize) {
        self.entered += 1;
        for r in self.reached.iter_mut().take(reached) {
            *r += 1;
        }
    }
}

/// One step of one arm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepStats {
    /// Visitors who reached the step.
    pub reached: u64,
    /// `reached / entered`; None without visitors.
    pub rate_from_entry: Option<f64>,
    /// Wilson interval of `rate_from_entry`; None without visitors.
    pub interval: Option<Interval>,
    /// `reached / reached at the previous step` (entered for the first); None when the
    /// previous step has nobody.
    pub rate_from_previous: Option<f64>,
    /// Visitors lost since the previous step (`entered` for the first).
    pub drop_off: u64,
    /// `drop_off / previous`; None when the previous step has nobody.
    pub drop_off_rate: Option<f64>,
}

/// One step of an arm against the control's same step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepComparison {
    /// `rate_from_entry(arm) − rate_from_entry(control)`.
    pub difference: f64,
    /// Newcombe hybrid score interval of the difference.
    pub interval: Interval,
    /// Pooled two-proportion z statistic.
    pub z: f64,
    /// Two-sided p-value of the z-test (one look).
    pub p_value: f64,
    /// `p_value` Holm-adjusted over every comparison of the funnel.
    pub p_value_holm: f64,
}

/// One arm of the analysis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunnelArm {
    /// Visitors entered.
    pub entered: u64,
    /// One per step, in order.
    pub steps: Vec<StepStats>,
    /// One per step against the control; empty for the control itself, and None at the
    /// steps where an arm has no visitor.
    pub comparisons: Vec<Option<StepComparison>>,
}

/// Per-arm step statistics and the comparisons with the control. `arms` are in the
/// caller's order, `control` indexes them, `level` is the intervals' confidence (0.95).
pub fn analyze_funnel(
    arms: &[FunnelCounts],
    control: usize,
    level: f64,
) -> Result<Vec<FunnelArm>, FunnelError> {
    if !(level > 0.0 && level < 1.0) {
        return Err(FunnelError::InvalidLevel(level));
    }
    let ctrl = arms.get(control).ok_or(FunnelError::NoControl)?;
    let steps = ctrl.reached.len();
    if !(MIN_STEPS..=MAX_STEPS).contains(&steps) {
        return Err(FunnelError::StepCount(steps));
    }
    for (ai, a) in arms.iter().enumerate() {
        if a.reached.len() != steps {
            return Err(FunnelError::StepCount(a.reached.len()));
        }
        let mut previous = a.entered;
        for (step, &r) in a.reached.iter().enumerate() {
            if r > previous {
                return Err(FunnelError::NotNested { arm: ai, step });
            }
            previous = r;
        }
    }

    let mut out: Vec<FunnelArm> = Vec::with_capacity(arms.len());
    // (arm, step, raw p) of every comparison, for Holm.
    let mut family: Vec<(usize, usize, f64)> = Vec::new();
    for (ai, a) in arms.iter().enumerate() {
        let mut previous = a.entered;
        let mut stats = Vec::with_capacity(steps);
        let mut comparisons = Vec::new();
        for (k, &r) in a.reached.iter().enumerate() {
            let counts = Counts::new(a.entered, r).ok();
            stats.push(StepStats {
                reached: r,
                rate_from_entry: counts.map(|c| c.rate()),
                interval: counts.and_then(|c| wilson_interval(c, level).ok()),
                rate_from_previous: (previous > 0).then(|| r as f64 / previous as f64),
                drop_off: previous - r,
                drop_off_rate: (previous > 0).then(|| (previous - r) as f64 / previous as f64),
            });
            previous = r;
            if ai != control {
                let c = Counts::new(ctrl.entered, ctrl.reached[k]).ok();
                let comparison = match (c, counts) {
                    (Some(a_counts), Some(b_counts)) => {
                        newcombe_interval(a_counts, b_counts, level).map(|interval| {
                            let z = two_proportion_z_test(a_counts, b_counts);
                            family.push((ai, k, z.p_value));
                            StepComparison {
                                difference: b_counts.rate() - a_counts.rate(),
                                interval,
                                z: z.z,
                                p_value: z.p_value,
                                p_value_holm: z.p_value,
                            }
                        })
                    }
                    _ => None,
                };
                comparisons.push(comparison);
            }
        }
        out.push(FunnelArm {
            entered: a.entered,
            steps: stats,
            comparisons,
        });
    }
    let raw: Vec<f64> = family.iter().map(|(_, _, p)| *p).collect();
    if let Ok(adjusted) = holm(&raw) {
        for ((ai, k, _), p) in family.iter().zip(adjusted) {
            if let Some(Some(c)) = out[*ai].comparisons.get_mut(*k) {
                c.p_value_holm = p;
            }
        }
    }
    Ok(out)
}

/// Newcombe's hybrid score interval (method 10) of `p̂_B − p̂_A` from the two Wilson
/// intervals; None for an invalid level.
pub fn newcombe_interval(control: Counts, treatment: Counts, level: f64) -> Option<Interval> {
    let (pa, pb) = (control.rate(), treatment.rate());
    let wa = wilson_interval(control, level).ok()?;
    let wb = wilson_interval(treatment, level).ok()?;
    let d = pb - pa;
    let sq = |x: f64| x * x;
    Some(Interval {
        lower: d - (sq(pb - wb.lower) + sq(wa.upper - pa)).sqrt(),
        upper: d + (sq(wb.upper - pb) + sq(pa - wa.lower)).sqrt(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(ts_ms: i64, steps: u32) -> StepEvent {
        StepEvent { ts_ms, steps }
    }

    #[test]
    fn steps_in_order_within_the_window() {
        // Step 0 then 1 then 2.
        let e = [ev(10, 1), ev(20, 2), ev(30, 4)];
        assert_eq!(steps_reached(0, 100, &e, 3), 3);
        // Out of order: 1 before 0 does not count; 2 after 0 but before 1 neither.
        let e = [ev(10, 2), ev(20, 1), ev(25, 4), ev(30, 2)];
        assert_eq!(steps_reached(0, 100, &e, 3), 2);
        // Before the entry: ignored; after the window: ignored.
        let e = [ev(-5, 1), ev(10, 2), ev(150, 1)];
        assert_eq!(steps_reached(0, 100, &e, 3), 0);
        // The window's end is included.
        let e = [ev(0, 1), ev(100, 2)];
        assert_eq!(steps_reached(0, 100, &e, 2), 2);
        // One event matching two steps completes one.
        let e = [ev(10, 3)];
        assert_eq!(steps_reached(0, 100, &e, 2), 1);
        let e = [ev(10, 3), ev(11, 3)];
        assert_eq!(steps_reached(0, 100, &e, 2), 2);
        // Nothing past the last step.
        let e = [ev(10, 1), ev(20, 2), ev(30, 1)];
        assert_eq!(steps_reached(0, 100, &e, 2), 2);
    }

    #[test]
    fn counts_are_nested() {
        let mut c = FunnelCounts::new(3);
        c.add(0);
        c.add(2);
        c.add(3);
        assert_eq!(c.entered, 3);
        assert_eq!(c.reached, [2, 2, 1]);
    }

    #[test]
    fn refuses_bad_input() {
        let ok = FunnelCounts {
            entered: 10,
            reached: alloc::vec![5, 2],
        };
        assert_eq!(
            analyze_funnel(core::slice::from_ref(&ok), 1, 0.95),
            Err(FunnelError::NoControl)
        );
        let widening = FunnelCounts {
            entered: 10,
            reached: alloc::vec![5, 6],
        };
        assert_eq!(
            analyze_funnel(&[ok.clone(), widening], 0, 0.95),
            Err(FunnelError::NotNested { arm: 1, step: 1 })
        );
        let one = FunnelCounts {
            entered: 10,
            reached: alloc::vec![5],
        };
        assert_eq!(
            analyze_funnel(&[one], 0, 0.95),
            Err(FunnelError::StepCount(1))
        );
        assert_eq!(
            analyze_funnel(&[ok], 0, 1.0),
            Err(FunnelError::InvalidLevel(1.0))
        );
    }

    /// Knuth's MMIX LCG, as `control-plane/tests/reference/funnels.py` runs it.
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self, m: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 33) % m
        }
    }

    /// The reference script's visitors, walked by [`steps_reached`]: the totals must be
    /// those its exhaustive search found.
    fn reference_counts() -> Vec<FunnelCounts> {
        let arms: [(u64, [u64; 4]); 3] = [
            (1500, [30, 20, 10, 40]),
            (1500, [30, 25, 15, 30]),
            (1400, [35, 20, 10, 35]),
        ];
        let mut rng = Lcg(20261205);
        arms.iter()
            .map(|(n, weights)| {
                let mut counts = FunnelCounts::new(3);
                for _ in 0..*n {
                    let entry = rng.next(500) as i64;
                    let events_n = rng.next(7);
                    let mut events = Vec::new();
                    for _ in 0..events_n {
                        let ts = entry - 200 + rng.next(1600) as i64;
                        let u = rng.next(100);
                        let mut acc = 0;
                        let goal = weights
                            .iter()
                            .position(|w| {
                                acc += w;
                                u < acc
                            })
                            .unwrap_or(0);
                        // Goal 3 is not a step.
                        let steps = if goal < 3 { 1u32 << goal } else { 0 };
                        events.push(StepEvent { ts_ms: ts, steps });
                    }
                    events.sort_by_key(|e| e.ts_ms); // stable, as Python's sort
                    counts.add(steps_reached(entry, 1000, &events, 3));
                }
                counts
            })
            .collect()
    }

    fn close(got: f64, want: f64, tol: f64) {
        assert!(
            (got - want).abs() <= tol * want.abs().max(1e-300),
            "got {got}, want {want} (relative tolerance {tol})"
        );
    }

    #[test]
    fn matches_the_reference_script() {
        let counts = reference_counts();
        let entered: Vec<u64> = counts.iter().map(|c| c.entered).collect();
        assert_eq!(entered, [1500, 1500, 1400]);
        assert_eq!(counts[0].reached, [590, 97, 4]);
        assert_eq!(counts[1].reached, [662, 163, 12]);
        assert_eq!(counts[2].reached, [649, 142, 9]);

        let out = analyze_funnel(&counts, 0, 0.95).unwrap();
        // Wilson (statsmodels proportion_confint "wilson"), a few of them.
        let wilson = [
            (0, 0, 0.36891535887815924, 0.41829625300881274),
            (0, 2, 0.0010374882451031457, 0.0068366521779040425),
            (1, 1, 0.09390505421302367, 0.12542754689730504),
            (2, 2, 0.003385756789368013, 0.012172594677928146),
        ];
        for (a, k, lo, hi) in wilson {
            let i = out[a].steps[k].interval.unwrap();
            close(i.lower, lo, 1e-9);
            close(i.upper, hi, 1e-9);
        }
        // (arm, step, difference, Newcombe lower, upper, z, p, Holm p) from statsmodels.
        #[allow(clippy::type_complexity)]
        let reference: [(usize, usize, f64, f64, f64, f64, f64, f64); 6] = [
            (
                1,
                0,
                0.04800000000000004,
                0.012708553047594384,
                0.0831229303097028,
                2.6657550782246395,
                0.007681563304368569,
                0.02304468991310571,
            ),
            (
                1,
                1,
                0.044,
                0.023934151277094612,
                0.06425214488644426,
                4.282946086018824,
                1.8443487317866845e-05,
                0.00011066092390720107,
            ),
            (
                1,
                2,
                0.005333333333333334,
                -5.832327183100117e-05,
                0.011484345278385337,
                2.0053547619260854,
                0.044925134287636316,
                0.08985026857527263,
            ),
            (
                2,
                0,
                0.07023809523809527,
                0.03420431963186577,
                0.1060420668274176,
                3.8208580422333713,
                0.000132988186885616,
                0.0006649409344280801,
            ),
            (
                2,
                1,
                0.03676190476190476,
                0.01671248389822538,
                0.05714640612256294,
                3.597371288858636,
                0.0003214494734983562,
                0.0012857978939934248,
            ),
            (
                2,
                2,
                0.003761904761904762,
                -0.0014002169038912177,
                0.009732501500794327,
                1.5153793846662027,
                0.129676355028362,
                0.129676355028362,
            ),
        ];
        for (a, k, d, lo, hi, z, p, ph) in reference {
            // Index among the non-control arms' comparisons: the arm's own list.
            let c = out[a].comparisons[k].clone().unwrap();
            close(c.difference, d, 1e-12);
            close(c.interval.lower, lo, 1e-9);
            close(c.interval.upper, hi, 1e-9);
            close(c.z, z, 1e-9);
            close(c.p_value, p, 1e-7);
            close(c.p_value_holm, ph, 1e-7);
        }
        // Drop-off adds up: entered − reached at the last step.
        let lost: u64 = out[1].steps.iter().map(|s| s.drop_off).sum();
        assert_eq!(lost, 1500 - 12);
    }

    #[test]
    fn arms_without_visitors_have_no_comparison() {
        let a = FunnelCounts {
            entered: 10,
            reached: alloc::vec![5, 2],
        };
        let b = FunnelCounts::new(2);
        let out = analyze_funnel(&[a, b], 0, 0.95).unwrap();
        assert!(out[0].comparisons.is_empty());
        assert_eq!(out[1].comparisons, [None, None]);
        assert_eq!(out[1].steps[0].rate_from_entry, None);
        assert_eq!(out[1].steps[0].drop_off, 0);
        assert_eq!(out[0].steps[1].drop_off, 3);
        assert_eq!(out[0].steps[1].rate_from_previous, Some(0.4));
    }
}
