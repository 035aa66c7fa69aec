//! # samplit-tests
//!
//! A small harness that runs Samplit's real parts together, for the end-to-end tests
//! (`tests/tests/*.rs`) and the one-command demo (`src/bin/samplit-demo.rs`):
//!
//! - [`paths`]: where the workspace, the built `samplit` binary, the built Worker and
//!   `wrangler` are; builds the control plane, and fails with the command to run when
//!   the Worker has not been built.
//! - [`process`]: child processes in their own process group, logged to a file, stopped
//!   (the whole group) on drop, so nothing outlives a test or the demo.
//! - [`net`]: free loopback ports and bounded polling.
//! - [`db`]: a fresh PostgreSQL database per run on `DATABASE_URL`'s server (dropped
//!   afterwards), and a private PostgreSQL cluster for the demo.
//! - [`control_plane`]: `samplit serve` as a process (start, kill, restart on the same
//!   port and database).
//! - [`edge`]: the Worker under workerd (`wrangler dev --local`) with a generated config
//!   (no `[build]`), local KV and Queue (consumer forwarding to the control plane with
//!   short retry delays) and secrets in a temporary `.dev.vars`.
//! - [`stack`]: the three together, with shared secrets generated per run.
//! - [`api`]: a client for the control plane's REST API (the calls users make).
//! - [`visitors`]: a visitor simulator that asks the edge for assignments and converts
//!   at given true rates, counting exactly what it sent.
//! - [`table`]: the results table the demo prints.
//!
//! Every wait is bounded; every failure names what was waited for and shows the tail of
//! the relevant process log.

pub mod api;
pub mod control_plane;
pub mod db;
pub mod edge;
pub mod net;
pub mod paths;
pub mod process;
pub mod stack;
pub mod table;
pub mod visitors;

/// A random secret: 32 random bytes, hex (64 characters; the control plane wants ≥ 32).
pub fn random_secret() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}
