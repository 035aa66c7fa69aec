//! Calibration of the always-valid test by simulation (full size).
//!
//! 2 000 A/A experiments (both arms convert at 5%), looked at after every 100 visitors per
//! arm up to 20 000 per arm (200 looks), stopping at the first rejection. Prints the
//! false-positive rate of the mSPRT (must stay ≤ 5% within Monte Carlo error:
//! `0.05 + 3·√(0.05·0.95/2000) = 0.0646`) and of a naive fixed-horizon z-test checked the
//! same way (inflated far above 5%), then the power of the mSPRT for a 20% relative
//! lift (5% → 6%).
//!
//! ```text
//! cargo run --release -p samplit-engine --features analysis --example calibration
//! ```
//!
//! A smaller seeded copy runs in `tests/stats_analysis.rs`.

use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;
use rand_distr::{Binomial, Distribution};
use samplit_engine::stats::proportions::{Counts, two_proportion_z_test};
use samplit_engine::stats::sequential::{MsprtConfig, msprt};

const EXPERIMENTS: usize = 2_000;
const STEP: u64 = 100;
const MAX_PER_ARM: u64 = 20_000;
const ALPHA: f64 = 0.05;

struct Rates {
    sequential: f64,
    naive: f64,
    /// Mean visitors per arm at the mSPRT's first rejection (rejecting experiments only).
    mean_stop: f64,
}

fn simulate(seed: u64, p_a: f64, p_b: f64) -> Result<Rates, Box<dyn std::error::Error>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // rand_distr's no_std error types do not implement std::error::Error.
    let draw_a = Binomial::new(STEP, p_a).map_err(|e| format!("{e:?}"))?;
    let draw_b = Binomial::new(STEP, p_b).map_err(|e| format!("{e:?}"))?;
    let cfg = MsprtConfig {
        alpha: ALPHA,
        ..MsprtConfig::default()
    };
    let (mut seq_hits, mut naive_hits, mut stop_sum) = (0usize, 0usize, 0u64);
    for _ in 0..EXPERIMENTS {
        let (mut n, mut xa, mut xb) = (0u64, 0u64, 0u64);
        let (mut seq, mut naive) = (false, false);
        let mut previous = None;
        while n < MAX_PER_ARM && !(seq && naive) {
            n += STEP;
            xa += draw_a.sample(&mut rng);
            xb += draw_b.sample(&mut rng);
            let (a, b) = (Counts::new(n, xa)?, Counts::new(n, xb)?);
            let r = msprt(a, b, previous, cfg)?;
            previous = Some(r.p_value);
            if r.reject && !seq {
                seq = true;
                stop_sum += n;
            }
            naive |= two_proportion_z_test(a, b).p_value < ALPHA;
        }
        seq_hits += usize::from(seq);
        naive_hits += usize::from(naive);
    }
    Ok(Rates {
        sequential: seq_hits as f64 / EXPERIMENTS as f64,
        naive: naive_hits as f64 / EXPERIMENTS as f64,
        mean_stop: if seq_hits > 0 {
            stop_sum as f64 / seq_hits as f64
        } else {
            0.0
        },
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bound = ALPHA + 3.0 * (ALPHA * (1.0 - ALPHA) / EXPERIMENTS as f64).sqrt();
    let t = std::time::Instant::now();
    let aa = simulate(1, 0.05, 0.05)?;
    println!(
        "A/A, {EXPERIMENTS} experiments, 5% rate, a look every {STEP} visitors/arm up to {MAX_PER_ARM}:"
    );
    println!(
        "  mSPRT (tau^2 = {}) false-positive rate: {:.4}  (bound {bound:.4}) {}",
        MsprtConfig::default().tau_squared,
        aa.sequential,
        if aa.sequential <= bound {
            "OK"
        } else {
            "EXCEEDED"
        }
    );
    println!(
        "  naive z-test, same looks:          {:.4}  ({:.1}x the nominal 5%)",
        aa.naive,
        aa.naive / ALPHA
    );
    let ab = simulate(2, 0.05, 0.06)?;
    println!("A/B, 5% -> 6% (+20% relative), same looks:");
    println!(
        "  mSPRT power: {:.4}, mean visitors/arm at detection: {:.0}",
        ab.sequential, ab.mean_stop
    );
    println!("  (naive z-test 'power', invalid: {:.4})", ab.naive);
    println!("elapsed: {:.2?}", t.elapsed());
    if aa.sequential > bound {
        return Err("sequential false-positive rate above its bound".into());
    }
    Ok(())
}
