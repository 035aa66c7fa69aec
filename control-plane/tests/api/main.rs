//! Integration tests of the control plane: one binary, a fresh PostgreSQL database per
//! test (`#[sqlx::test]`), the router driven in process with `oneshot`.

mod health;
mod helpers;
