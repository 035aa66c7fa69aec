//! SQL, in small free functions per aggregate. Every function takes a connection or a
//! pool (so callers choose the transaction) and uses runtime-checked queries, each of
//! them exercised by the integration tests in `tests/api/`.
//!
//! - [`users`]: accounts (email, argon2id hash).
//! - [`orgs`]: organisations, memberships and invitations.
//! - [`sessions`]: login sessions and their rotating refresh tokens.
//! - [`api_keys`]: automation keys (hashed).
//! - [`audit`]: reading the audit trail (writing is `crate::audit::record`).

pub mod api_keys;
pub mod audit;
pub mod orgs;
pub mod sessions;
pub mod users;
