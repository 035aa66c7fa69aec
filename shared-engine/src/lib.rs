//! # samplit-engine
//!
//! The logic the edge Worker and the control plane share: pure functions, no I/O, no
//! clock, no global RNG. `#![no_std]` + `alloc`, so it compiles natively, to
//! `wasm32-unknown-unknown` and to `x86_64-unknown-none`.
//!
//! Layout:
//! - [`bucket`]: GrowthBook-compatible hashing (v1, v2), bucket ranges, namespaces.
//! - [`allocator`]: fixed split and Thompson sampling, with propensities.
//! - [`targeting`]: URL rules, coverage, IP/CIDR/range, bots, header, cookie, query.
//! - [`changes`]: the visual editor's change model (selector + action).
//! - [`editor_token`]: the signed, short-lived pass for the edge's editor proxy.
//! - [`multi`]: multi-element experiments (independent and factorial).
//! - [`snapshot`]: the signed, versioned document the control plane publishes.
//! - [`assign`]: a visitor's assignments for a site, from a snapshot.
//! - [`stats`]: the statistics behind results — [`stats::bayes`] (no_std, used by the
//!   Thompson allocator) always; the frequentist analysis behind feature `analysis`.
#![no_std]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod allocator;
pub mod assign;
pub mod bucket;
pub mod changes;
pub mod editor_token;
pub mod multi;
pub mod snapshot;
pub mod targeting;

pub mod stats;
