//! Integration tests of samplit-engine's core (one binary, one module per area).
//! The statistics tests live in their own `stats*` files.

mod allocator;
mod assign;
mod bucket_golden;
mod changes;
mod context;
mod fixtures;
mod ingest;
mod properties;
mod sampler;
mod snapshot;
mod targeting;
