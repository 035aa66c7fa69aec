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
//! - [`routing`]: signed host → site routes and site tombstones (unpublish).
//! - [`sticky`]: sticky tokens (`<arm>.<mac>`) that only the edge mints.
//! - [`server_call`]: derived server secrets and signed server-side requests.
//! - [`context`]: what the edge knows of a visitor before assigning them (segments).
//! - [`ingest`]: the ingest contract — queue/ingest items, their limits, the batch
//!   signature — used by the edge's queue consumer and the control plane.
//! - [`assign`]: a visitor's assignments for a site, from a snapshot.
//! - [`stats`]: the statistics behind results — [`stats::bayes`] (no_std, used by the
//!   Thompson allocator) always; the frequentist analysis behind feature `analysis`.
//!
//! How the parts meet: the control plane builds a [`snapshot::Snapshot`] (computing each
//! arm's propensity with [`allocator::Allocator::propensities`]), signs it
//! ([`snapshot::try_sign`]) and pushes it; the edge verifies it ([`snapshot::verify`])
//! and, per request, calls [`assign::assign_site`]. Every decision is a function of the
//! snapshot and the request alone — the GrowthBook hash for buckets, a ChaCha8 stream
//! seeded from (visitor, experiment, snapshot version) for Thompson draws, `libm` for
//! math on every target — so the control plane can replay any logged assignment.
//!
//! Proofs live in `tests/`: golden vectors from independent references
//! (`tests/reference/*.py`), property tests, a Kolmogorov–Smirnov test of the Beta
//! sampler and chi-square checks of assignment frequencies against propensities.
//! `benches/assign.rs` times the hot paths; `examples/simulate.rs` compares Thompson
//! sampling with a fixed split.
#![no_std]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod allocator;
pub mod assign;
pub mod bucket;
pub mod changes;
pub mod context;
pub mod editor_token;
pub mod ingest;
pub mod multi;
pub mod routing;
pub mod server_call;
pub mod snapshot;
pub mod sticky;
pub mod targeting;

pub mod stats;
