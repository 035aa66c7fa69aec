//! The public simulator: the 3×3 landing-page grid (or any k arms) run in the browser
//! with the engine's own allocators, fixed split and Thompson sampling side by side, on
//! the same simulated visitors' true conversion rates.
//!
//! Each strategy gets the same number of visitors. A visitor's arm is chosen with
//! [`Allocator::choose`] exactly as the edge chooses it; Thompson sees the arms'
//! statistics as of the last "snapshot" (refreshed every `refresh` visitors, like the
//! control plane's publications), so it lags as the real one does. A visitor converts
//! with its arm's true rate. Randomness is one ChaCha8 stream per strategy, seeded from
//! the caller's seed, so a run is reproducible.

use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};
use samplit_engine::allocator::{Allocator, ArmStats, FixedSplit, Thompson};
use samplit_engine::stats::bayes;
use wasm_bindgen::prelude::*;

/// Most arms a simulation runs (the engine's chance-to-be-best limit).
pub const MAX_ARMS: usize = bayes::MAX_ARMS;
/// Most visitors one [`Simulation::run`] call simulates (keeps the page responsive).
pub const MAX_STEP: u32 = 100_000;

/// One strategy's state: its allocator, what it has seen, and what it chooses with.
struct Strategy {
    allocator: Allocator,
    arms: Vec<ArmStats>,
    /// The statistics the allocator chooses with (Thompson: as of the last refresh).
    published: Vec<ArmStats>,
    rng: ChaCha8Rng,
}

impl Strategy {
    fn new(allocator: Allocator, k: usize, seed: u64) -> Self {
        Self {
            allocator,
            arms: vec![ArmStats::default(); k],
            published: vec![ArmStats::default(); k],
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    fn uniform(&mut self) -> f64 {
        // 53 random bits → [0, 1).
        (self.rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    fn visit(&mut self, rates: &[f64]) -> Result<(), String> {
        let bucket = self.uniform();
        let arm = self
            .allocator
            .choose(&self.published, bucket, 1.0, &mut self.rng)
            .map_err(|e| e.to_string())?
            .ok_or("a visitor fell outside full coverage")?;
        let converted = self.uniform() < rates[arm];
        let stats = &mut self.arms[arm];
        stats.exposures += 1;
        stats.conversions += u64::from(converted);
        Ok(())
    }

    fn regret(&self, rates: &[f64]) -> f64 {
        let best = rates.iter().copied().fold(0.0, f64::max);
        self.arms
            .iter()
            .zip(rates)
            .map(|(a, r)| a.exposures as f64 * (best - r))
            .sum()
    }

    fn chance_to_be_best(&self) -> Result<Vec<f64>, String> {
        let posteriors: Vec<(f64, f64)> = self
            .arms
            .iter()
            .map(|a| {
                (
                    1.0 + a.conversions as f64,
                    1.0 + (a.exposures - a.conversions) as f64,
                )
            })
            .collect();
        bayes::chance_to_be_best(&posteriors).map_err(|e| e.to_string())
    }
}

/// Fixed split and Thompson sampling on the same arms.
#[wasm_bindgen]
pub struct Simulation {
    rates: Vec<f64>,
    refresh: u32,
    since_refresh: u32,
    visitors: u64,
    fixed: Strategy,
    thompson: Strategy,
}

#[wasm_bindgen]
impl Simulation {
    /// `rates`: each arm's true conversion rate in [0, 1] (2 to [`MAX_ARMS`] arms);
    /// `seed`: the run's randomness; Thompson's `min_exposures` (burn-in per arm) and
    /// `floor` (each arm's least share, `k·floor < 1`); `refresh`: visitors between two
    /// snapshots of the statistics Thompson chooses with (≥ 1).
    #[wasm_bindgen(constructor)]
    pub fn new(
        rates: Vec<f64>,
        seed: u32,
        min_exposures: u32,
        floor: f64,
        refresh: u32,
    ) -> Result<Simulation, JsError> {
        Self::build(rates, seed, min_exposures, floor, refresh).map_err(|e| JsError::new(&e))
    }

    /// Simulates `visitors` more visitors (at most [`MAX_STEP`]) for each strategy.
    pub fn run(&mut self, visitors: u32) -> Result<(), JsError> {
        self.advance(visitors).map_err(|e| JsError::new(&e))
    }

    /// Visitors each strategy has had.
    #[wasm_bindgen(getter)]
    pub fn visitors(&self) -> f64 {
        self.visitors as f64
    }

    /// Each arm's exposures under fixed split (`thompson = false`) or Thompson.
    pub fn exposures(&self, thompson: bool) -> Vec<f64> {
        self.strategy(thompson)
            .arms
            .iter()
            .map(|a| a.exposures as f64)
            .collect()
    }

    /// Each arm's conversions under one strategy.
    pub fn conversions(&self, thompson: bool) -> Vec<f64> {
        self.strategy(thompson)
            .arms
            .iter()
            .map(|a| a.conversions as f64)
            .collect()
    }

    /// Conversions lost against always showing the best arm, in expectation:
    /// Σ exposures·(best rate − arm rate).
    pub fn regret(&self, thompson: bool) -> f64 {
        self.strategy(thompson).regret(&self.rates)
    }

    /// The share of new visitors each arm gets now (Thompson: from its last snapshot,
    /// as the control plane publishes it; fixed split: equal).
    pub fn propensities(&self, thompson: bool) -> Result<Vec<f64>, JsError> {
        let s = self.strategy(thompson);
        s.allocator
            .propensities(&s.published)
            .map_err(|e| JsError::new(&e.to_string()))
    }

    /// Each arm's chance to be best given one strategy's data (Beta(1, 1) prior).
    #[wasm_bindgen(js_name = chanceToBeBest)]
    pub fn chance_to_be_best(&self, thompson: bool) -> Result<Vec<f64>, JsError> {
        self.strategy(thompson)
            .chance_to_be_best()
            .map_err(|e| JsError::new(&e))
    }
}

impl Simulation {
    /// [`Simulation::new`] with a plain error (for native tests).
    pub fn build(
        rates: Vec<f64>,
        seed: u32,
        min_exposures: u32,
        floor: f64,
        refresh: u32,
    ) -> Result<Self, String> {
        let k = rates.len();
        if !(2..=MAX_ARMS).contains(&k) {
            return Err(format!("between 2 and {MAX_ARMS} arms, not {k}"));
        }
        if let Some(r) = rates.iter().find(|r| !(0.0..=1.0).contains(*r)) {
            return Err(format!("a conversion rate must be in [0, 1], not {r}"));
        }
        if refresh == 0 {
            return Err("refresh must be at least 1 visitor".to_owned());
        }
        let thompson =
            Thompson::new(1.0, 1.0, u64::from(min_exposures), floor).map_err(|e| e.to_string())?;
        let thompson = Allocator::Thompson(thompson);
        thompson.check_arms(k).map_err(|e| e.to_string())?;
        let fixed = Allocator::FixedSplit(FixedSplit::equal(k).map_err(|e| e.to_string())?);
        let seed = u64::from(seed);
        Ok(Self {
            rates,
            refresh,
            since_refresh: 0,
            visitors: 0,
            fixed: Strategy::new(fixed, k, seed),
            thompson: Strategy::new(thompson, k, seed ^ 0x9e37_79b9_7f4a_7c15),
        })
    }

    /// [`Simulation::run`] with a plain error.
    pub fn advance(&mut self, visitors: u32) -> Result<(), String> {
        if visitors > MAX_STEP {
            return Err(format!("at most {MAX_STEP} visitors per step"));
        }
        for _ in 0..visitors {
            self.fixed.visit(&self.rates)?;
            self.thompson.visit(&self.rates)?;
            self.visitors += 1;
            self.since_refresh += 1;
            if self.since_refresh >= self.refresh {
                self.since_refresh = 0;
                self.thompson.published.clone_from(&self.thompson.arms);
            }
        }
        Ok(())
    }

    fn strategy(&self, thompson: bool) -> &Strategy {
        if thompson {
            &self.thompson
        } else {
            &self.fixed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The original's 3×3 demo rates (headline × call to action), best 5.5 %.
    const GRID: [f64; 9] = [
        0.025, 0.038, 0.028, 0.042, 0.055, 0.045, 0.021, 0.031, 0.036,
    ];

    #[test]
    fn bad_inputs_are_refused_with_a_reason() {
        assert!(Simulation::build(vec![0.1], 1, 100, 0.01, 100).is_err());
        assert!(Simulation::build(vec![0.1, 1.5], 1, 100, 0.01, 100).is_err());
        assert!(Simulation::build(vec![0.1, f64::NAN], 1, 100, 0.01, 100).is_err());
        assert!(
            Simulation::build(GRID.to_vec(), 1, 100, 0.2, 100).is_err(),
            "9 × 0.2 ≥ 1"
        );
        assert!(Simulation::build(GRID.to_vec(), 1, 100, 0.01, 0).is_err());
        let mut ok = Simulation::build(GRID.to_vec(), 1, 100, 0.01, 100).unwrap();
        assert!(ok.advance(MAX_STEP + 1).is_err());
    }

    #[test]
    fn a_seed_gives_the_same_run() {
        let mut a = Simulation::build(GRID.to_vec(), 7, 50, 0.01, 200).unwrap();
        let mut b = Simulation::build(GRID.to_vec(), 7, 50, 0.01, 200).unwrap();
        a.advance(5_000).unwrap();
        b.advance(5_000).unwrap();
        assert_eq!(a.exposures(true), b.exposures(true));
        assert_eq!(a.conversions(false), b.conversions(false));
        assert_eq!(a.exposures(true).iter().sum::<f64>(), 5_000.0);
        assert_eq!(a.exposures(false).iter().sum::<f64>(), 5_000.0);
    }

    #[test]
    fn fixed_split_shares_equally_and_converts_at_the_true_rates() {
        let mut s = Simulation::build(vec![0.1, 0.3], 3, 100, 0.01, 100).unwrap();
        s.advance(40_000).unwrap();
        let n = s.exposures(false);
        let c = s.conversions(false);
        // Binomial(40 000, ½): sd 100; 5 sd.
        assert!((n[0] - 20_000.0).abs() < 500.0, "{n:?}");
        // Each arm's observed rate within 5 sd of its true rate.
        for (i, want) in [0.1, 0.3].into_iter().enumerate() {
            let got = c[i] / n[i];
            let sd = (want * (1.0 - want) / n[i]).sqrt();
            assert!((got - want).abs() < 5.0 * sd, "arm {i}: {got} vs {want}");
        }
        assert_eq!(s.propensities(false).unwrap_or_default(), vec![0.5, 0.5]);
    }

    /// By simulation: over 20 seeds of 30 000 visitors on the 3×3 grid, Thompson sends
    /// the best arm far more than fixed split's 1/9, loses fewer conversions, and its
    /// published propensities sum to 1 with every arm at least the floor.
    #[test]
    fn thompson_moves_traffic_to_the_best_arm_and_loses_fewer_conversions() {
        let mut thompson_best_share = 0.0;
        let mut wins = 0;
        for seed in 0..20 {
            let mut s = Simulation::build(GRID.to_vec(), seed, 100, 0.01, 500).unwrap();
            s.advance(30_000).unwrap();
            let n = s.exposures(true);
            thompson_best_share += n[4] / 30_000.0 / 20.0;
            if s.regret(true) < s.regret(false) {
                wins += 1;
            }
            let p = s.propensities(true).unwrap_or_default();
            assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-9, "{p:?}");
            assert!(p.iter().all(|x| *x >= 0.01 - 1e-12), "{p:?}");
            let fixed_share = s.exposures(false)[4] / 30_000.0;
            assert!((fixed_share - 1.0 / 9.0).abs() < 0.02, "{fixed_share}");
        }
        assert!(
            thompson_best_share > 0.3,
            "Thompson's mean share of the best arm: {thompson_best_share}"
        );
        assert!(
            wins >= 18,
            "Thompson lost fewer conversions in {wins} of 20 runs"
        );
    }
}
