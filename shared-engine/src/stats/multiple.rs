//! # Multiple-comparison adjustments
//!
//! With several variants each compared with the control, the chance that at least one
//! comparison is "significant" by luck grows with their number. Both adjustments accept
//! any valid p-values, including the always-valid ones of
//! [`sequential`](super::sequential), and need no independence:
//!
//! - **Holm** step-down, controls the family-wise error rate (Holm 1979, "A simple
//!   sequentially rejective multiple test procedure", *Scand. J. Statist.* 6(2):65–70,
//!   <https://www.jstor.org/stable/4615733>): with `p_(1) ≤ … ≤ p_(m)`,
//!   `p̃_(i) = max_{j≤i} min(1, (m − j + 1)·p_(j))`. Used for decisions.
//! - **Benjamini–Hochberg** step-up, controls the false discovery rate (Benjamini &
//!   Hochberg 1995, *JRSS B* 57(1):289–300, doi:10.1111/j.2517-6161.1995.tb02031.x):
//!   `p̃_(i) = min_{j≥i} min(1, m·p_(j)/j)`. Shown for reference. (Strictly, BH assumes
//!   independence or positive dependence, which comparisons sharing a control satisfy —
//!   Benjamini & Yekutieli 2001, doi:10.1214/aos/1013699998.)

use std::fmt;
use std::vec;
use std::vec::Vec;

/// Why an adjustment was refused.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MultipleError {
    /// A p-value outside [0, 1] or NaN, with its index.
    InvalidPValue {
        /// Index in the input.
        index: usize,
        /// The value.
        value: f64,
    },
}

impl fmt::Display for MultipleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidPValue { index, value } => {
                write!(f, "p-value {index} = {value} is not in [0, 1]")
            }
        }
    }
}

impl std::error::Error for MultipleError {}

fn sorted_order(p: &[f64]) -> Result<Vec<usize>, MultipleError> {
    for (index, &value) in p.iter().enumerate() {
        if !(0.0..=1.0).contains(&value) {
            return Err(MultipleError::InvalidPValue { index, value });
        }
    }
    let mut order: Vec<usize> = (0..p.len()).collect();
    // Stable sort on validated (non-NaN) values: ties keep input order.
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    Ok(order)
}

/// Holm-adjusted p-values, in input order.
pub fn holm(p: &[f64]) -> Result<Vec<f64>, MultipleError> {
    let order = sorted_order(p)?;
    let m = p.len() as f64;
    let mut out = vec![0.0; p.len()];
    let mut running = 0.0_f64;
    for (rank, &i) in order.iter().enumerate() {
        let adjusted = ((m - rank as f64) * p[i]).min(1.0);
        running = running.max(adjusted);
        out[i] = running;
    }
    Ok(out)
}

/// Benjamini–Hochberg adjusted p-values (q-values), in input order.
pub fn benjamini_hochberg(p: &[f64]) -> Result<Vec<f64>, MultipleError> {
    let order = sorted_order(p)?;
    let m = p.len() as f64;
    let mut out = vec![0.0; p.len()];
    let mut running = 1.0_f64;
    for (rank, &i) in order.iter().enumerate().rev() {
        let adjusted = (m * p[i] / (rank as f64 + 1.0)).min(1.0);
        running = running.min(adjusted);
        out[i] = running;
    }
    Ok(out)
}
