//! SQL, in small free functions per aggregate. Every function takes a connection or a
//! pool (so callers choose the transaction) and uses runtime-checked queries, each of
//! them exercised by the integration tests in `tests/api/`.
//!
//! - [`users`]: accounts (email, argon2id hash).
//! - [`orgs`]: organisations, memberships and invitations.
//! - [`sessions`]: login sessions and their rotating refresh tokens.
//! - [`api_keys`]: automation keys (hashed).
//! - [`audit`]: reading the audit trail (writing is `crate::audit::record`).
//! - [`events`]: ingestion's checks and set-wise writes (seen ids, assignments, conversions).
//! - [`aggregates`]: per-arm totals and daily buckets; `arm_counts` for the publisher.
//! - [`results`]: what the results endpoints read.

pub mod aggregates;
pub mod api_keys;
pub mod audit;
pub mod events;
pub mod orgs;
pub mod results;
pub mod sessions;
pub mod users;
