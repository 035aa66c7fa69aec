//! Multi-element experiments.
//!
//! An experiment changes one or more page elements. Its [`Mode`] says how arms relate to
//! elements:
//!
//! - [`Mode::Single`]: one allocation unit; each arm names a variant index for every
//!   element (a classic A/B/n test whose variants may touch several elements).
//! - [`Mode::Independent`]: one allocation unit *per element*, each with its own arms
//!   and its own bucketing salt `seed + ":" + element_id` ([`element_salt`]), so the
//!   elements are assigned independently of each other.
//! - [`Mode::Factorial`]: one allocation unit whose arms are every combination of the
//!   elements' variants ([`factorial_combinations`]), at most [`MAX_FACTORIAL_ARMS`].

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use serde::{Deserialize, Serialize};

/// Most arms a factorial experiment may have.
pub const MAX_FACTORIAL_ARMS: usize = 500;

/// How an experiment's arms relate to its elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// One unit; arms chosen by the author.
    Single,
    /// One unit per element, each bucketed with its own salt.
    Independent,
    /// One unit whose arms are the full product of the elements' variants.
    Factorial,
}

/// Why a multi-element layout was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultiError {
    /// No elements, or an element without variants.
    NoVariants,
    /// The product of variant counts exceeds [`MAX_FACTORIAL_ARMS`].
    TooManyCombinations {
        /// The product (saturated at `usize::MAX`).
        combinations: usize,
    },
}

impl fmt::Display for MultiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoVariants => write!(f, "every element needs at least one variant"),
            Self::TooManyCombinations { combinations } => write!(
                f,
                "{combinations} combinations, at most {MAX_FACTORIAL_ARMS} arms allowed"
            ),
        }
    }
}

impl core::error::Error for MultiError {}

/// Every combination of variant indices, in lexicographic order (the last element varies
/// fastest). `[3, 3]` gives `[0,0], [0,1], [0,2], [1,0], …, [2,2]`.
pub fn factorial_combinations(variant_counts: &[usize]) -> Result<Vec<Vec<usize>>, MultiError> {
    if variant_counts.is_empty() || variant_counts.contains(&0) {
        return Err(MultiError::NoVariants);
    }
    let combinations = variant_counts
        .iter()
        .try_fold(1usize, |acc, &n| acc.checked_mul(n))
        .unwrap_or(usize::MAX);
    if combinations > MAX_FACTORIAL_ARMS {
        return Err(MultiError::TooManyCombinations { combinations });
    }
    let mut out = Vec::with_capacity(combinations);
    let mut current = alloc::vec![0usize; variant_counts.len()];
    for _ in 0..combinations {
        out.push(current.clone());
        // Odometer increment from the last position.
        for pos in (0..current.len()).rev() {
            current[pos] += 1;
            if current[pos] < variant_counts[pos] {
                break;
            }
            current[pos] = 0;
        }
    }
    Ok(out)
}

/// The arm id of a factorial combination: its variant ids joined by `+`
/// (e.g. `"B+Y"`), stable and readable in reports.
#[must_use]
pub fn factorial_arm_id(variant_ids: &[&str]) -> String {
    variant_ids.join("+")
}

/// The bucketing salt of an element in an independent experiment, as parts to feed
/// [`crate::bucket::hash_parts`] without allocating: `seed + ":" + element_id`.
#[must_use]
pub fn element_salt<'a>(seed: &'a str, element_id: &'a str) -> [&'a str; 3] {
    [seed, ":", element_id]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_three_by_three_grid_has_nine_arms_in_order() {
        let c = factorial_combinations(&[3, 3]).unwrap();
        assert_eq!(c.len(), 9);
        assert_eq!(c[0], [0, 0]);
        assert_eq!(c[1], [0, 1]);
        assert_eq!(c[3], [1, 0]);
        assert_eq!(c[8], [2, 2]);
    }

    #[test]
    fn more_than_500_combinations_are_rejected() {
        assert!(factorial_combinations(&[5, 10, 10]).is_ok());
        assert_eq!(
            factorial_combinations(&[3, 13, 13]),
            Err(MultiError::TooManyCombinations { combinations: 507 })
        );
        assert!(matches!(
            factorial_combinations(&[usize::MAX, 2]),
            Err(MultiError::TooManyCombinations { .. })
        ));
        assert_eq!(factorial_combinations(&[]), Err(MultiError::NoVariants));
        assert_eq!(factorial_combinations(&[2, 0]), Err(MultiError::NoVariants));
    }
}
