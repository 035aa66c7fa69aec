//! SQL, in small free functions per aggregate. Each takes the connection it runs on
//! (a transaction for changes, so the caller can write the audit entry in the same
//! transaction) and returns `sqlx::Error`; handlers map "no row" to 404/412.
//!
//! Queries are runtime-checked (`sqlx::query_as`) and every one is exercised by the
//! integration tests in `control-plane/tests/api/`.

pub mod experiments;
pub mod publications;
pub mod sites;
