//! SQL, in small free functions per aggregate. Each takes the connection or pool it runs
//! on (a transaction for changes, so the caller can write the audit entry in the same
//! transaction) and uses runtime-checked queries (`sqlx::query_as`), every one of them
//! exercised by the integration tests in `control-plane/tests/api/`.
//!
//! - [`users`]: accounts (email, argon2id hash).
//! - [`orgs`]: organisations, memberships and invitations.
//! - [`sessions`]: login sessions and their rotating refresh tokens.
//! - [`api_keys`]: automation keys (hashed).
//! - [`audit`]: reading the audit trail (writing is `crate::audit::record`).
//! - [`sites`], [`experiments`]: sites and experiments with their parts.
//! - [`domains`]: domain ownership, signed host routes and site tombstones.
//! - [`editor`]: the visual editor's variant lookups and change saves.
//! - [`publications`]: the snapshots published to the edge.
//! - [`events`]: ingestion's checks and set-wise writes (seen ids, assignments, conversions).
//! - [`aggregates`]: per-arm totals and daily buckets; `arm_counts` for the publisher.
//! - [`results`]: what the results endpoints read.
//! - [`retention`]: finished mails, webhook deliveries and orphaned alert states forgotten.
//! - [`shares`]: read-only share links of results (hashed tokens).

pub mod account_tokens;
pub mod aggregates;
pub mod alerts;
pub mod api_keys;
pub mod audit;
pub mod domains;
pub mod editor;
pub mod events;
pub mod experiments;
pub mod funnels;
pub mod orgs;
pub mod publications;
pub mod raw_events;
pub mod results;
pub mod retention;
pub mod segments;
pub mod sessions;
pub mod shares;
pub mod shopify;
pub mod sites;
pub mod users;
pub mod webhooks;
pub mod wordpress;
