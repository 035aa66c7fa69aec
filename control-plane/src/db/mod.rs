//! SQL, in small free functions per aggregate (see `docs/` and each module's docs).
//! Runtime-checked `sqlx::query_as` with `FromRow` rows; each query is exercised by an
//! integration test.

pub mod aggregates;
pub mod events;
pub mod results;
