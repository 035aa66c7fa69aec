//! Thompson sampling vs fixed split on a 3×3 landing-page grid, through the real engine.
//!
//! `cargo run --release -p samplit-engine --example simulate [-- SEEDS]`
//!
//! The grid (headline A/B/C × call to action X/Y/Z) runs as a factorial experiment: 9
//! arms with true conversion rates
//!
//! |   | X    | Y    | Z    |
//! |---|------|------|------|
//! | A | .025 | .038 | .028 |
//! | B | .042 | .055 | .045 |
//! | C | .021 | .031 | .036 |
//!
//! Each run sends 10 000 visitors. Every allocator chooses arms with the engine's own
//! code, exactly as the edge would: fixed split through the GrowthBook bucket
//! (`Allocator::choose` with the visitor's hash), Thompson through `Allocator::choose`
//! with the visitor's seeded ChaCha8 stream. Thompson only sees the counts of the last
//! "snapshot", refreshed every 100 visitors (the control plane's publishing cadence), so
//! it pays the delay a real deployment pays.
//!
//! Conversions use common random numbers: visitor `i` of run `s` has one uniform `u_i`
//! and converts iff `u_i < rate(arm)`, so the allocators face the same visitors and the
//! comparison's variance comes from the allocation, not the coin flips.
//!
//! Reported per allocator, averaged over the runs (default 200 seeds, at least 50):
//! conversions; expected regret `Σ_i (0.055 − rate(arm_i))` (the conversions lost, in
//! expectation, against always showing the best arm B-Y); the share of traffic sent to
//! B-Y; and how often B-Y has the highest posterior mean at the end.

use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};
use samplit_engine::allocator::{Allocator, ArmStats, FixedSplit, Thompson, visitor_rng};
use samplit_engine::bucket::hash_parts;

const RATES: [f64; 9] = [
    0.025, 0.038, 0.028, 0.042, 0.055, 0.045, 0.021, 0.031, 0.036,
];
const NAMES: [&str; 9] = [
    "A-X", "A-Y", "A-Z", "B-X", "B-Y", "B-Z", "C-X", "C-Y", "C-Z",
];
const VISITORS: usize = 10_000;
const SNAPSHOT_EVERY: usize = 100;
const SEED: &str = "landing-grid";
const UNIT: &str = "exp-landing-grid";

struct RunResult {
    conversions: u64,
    regret: f64,
    best_share: f64,
    picked_best: bool,
}

fn run(allocator: &Allocator, seed: u64) -> RunResult {
    let best = RATES.iter().copied().fold(f64::MIN, f64::max);
    let best_arm = RATES.iter().position(|&r| r == best).unwrap_or(0);
    let mut live = [ArmStats::default(); 9];
    let mut snapshot = live;
    let mut coins = ChaCha8Rng::seed_from_u64(seed);
    let mut result = RunResult {
        conversions: 0,
        regret: 0.0,
        best_share: 0.0,
        picked_best: false,
    };
    let mut to_best = 0usize;
    for i in 0..VISITORS {
        if i % SNAPSHOT_EVERY == 0 {
            snapshot = live;
        }
        let version = (i / SNAPSHOT_EVERY) as u64 + 1;
        let visitor = format!("sim-{seed}-{i}");
        let bucket = hash_parts(&[SEED], &visitor, 2).unwrap_or(0.0);
        let mut rng = visitor_rng(&visitor, &[UNIT], version);
        let arm = allocator
            .choose(&snapshot, bucket, 1.0, &mut rng)
            .ok()
            .flatten()
            .expect("full coverage and a validated allocator always choose an arm");
        let u = (coins.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let converted = u < RATES[arm];
        live[arm].exposures += 1;
        if converted {
            live[arm].conversions += 1;
            result.conversions += 1;
        }
        result.regret += best - RATES[arm];
        to_best += usize::from(arm == best_arm);
    }
    result.best_share = to_best as f64 / VISITORS as f64;
    // Posterior mean with a Beta(1, 1) prior.
    let mean = |s: &ArmStats| (s.conversions as f64 + 1.0) / (s.exposures as f64 + 2.0);
    let leader = (0..9)
        .max_by(|&a, &b| mean(&live[a]).total_cmp(&mean(&live[b])))
        .unwrap_or(0);
    result.picked_best = leader == best_arm;
    result
}

fn mean_sd(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let m = xs.iter().sum::<f64>() / n;
    let v = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0);
    (m, v.sqrt())
}

fn main() {
    let seeds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .filter(|&s| s >= 50)
        .unwrap_or(200);
    let configs: Vec<(&str, Allocator)> = vec![
        (
            "fixed split (1/9 each)",
            Allocator::FixedSplit(FixedSplit::equal(9).expect("9 arms")),
        ),
        (
            "Thompson (burn-in 100/arm, floor 0.01)",
            Allocator::Thompson(Thompson::default()),
        ),
        (
            "Thompson (burn-in 0, floor 0)",
            Allocator::Thompson(Thompson::new(1.0, 1.0, 0, 0.0).expect("valid")),
        ),
    ];
    println!(
        "3x3 landing-page grid, factorial (9 arms), {VISITORS} visitors per run, snapshot every \
         {SNAPSHOT_EVERY} visitors, {seeds} seeds"
    );
    println!(
        "true rates: {}",
        NAMES
            .iter()
            .zip(RATES)
            .map(|(n, r)| format!("{n} {r}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "best arm B-Y: always showing it would convert {:.0} in expectation\n",
        0.055 * VISITORS as f64
    );
    println!(
        "| allocator | conversions (mean ± sd) | expected regret (mean ± sd) | traffic to B-Y | B-Y leads at end |"
    );
    println!("|---|---|---|---|---|");
    let mut regrets = Vec::new();
    for (name, allocator) in &configs {
        let runs: Vec<RunResult> = (0..seeds).map(|s| run(allocator, s)).collect();
        let conv: Vec<f64> = runs.iter().map(|r| r.conversions as f64).collect();
        let regret: Vec<f64> = runs.iter().map(|r| r.regret).collect();
        let share: Vec<f64> = runs.iter().map(|r| r.best_share).collect();
        let picked = runs.iter().filter(|r| r.picked_best).count() as f64 / seeds as f64;
        let (cm, cs) = mean_sd(&conv);
        let (rm, rs) = mean_sd(&regret);
        let (sm, _) = mean_sd(&share);
        println!(
            "| {name} | {cm:.1} ± {cs:.1} | {rm:.1} ± {rs:.1} | {:.1}% | {:.0}% |",
            sm * 100.0,
            picked * 100.0
        );
        regrets.push((name, rm, rs / (seeds as f64).sqrt()));
    }
    let (_, fixed_regret, fixed_se) = regrets[0];
    println!();
    for (name, rm, se) in &regrets[1..] {
        println!(
            "{name}: regret {:.0}% lower than fixed split (difference {:.1} ± {:.1} conversions, 95% CI from per-allocator standard errors)",
            (1.0 - rm / fixed_regret) * 100.0,
            fixed_regret - rm,
            1.96 * (se * se + fixed_se * fixed_se).sqrt()
        );
    }
}
