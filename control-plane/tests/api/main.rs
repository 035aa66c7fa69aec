//! Integration tests of the control plane: one binary, a fresh PostgreSQL database per
//! test (`#[sqlx::test]`), the router driven in process with `oneshot`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failing test helper should panic

mod alerts;
mod api_keys;
mod audit;
mod auth;
mod changes;
mod console_session;
mod contract;
mod docs;
mod domains;
mod editor;
mod experiments;
mod experiments_list;
mod fixtures;
mod funnels;
mod guardrails;
mod headlines;
mod health;
mod helpers;
mod ingest;
mod ingest_deletes;
mod ingest_groups;
mod mail;
mod mail_accounts;
mod members;
mod no_store;
mod planning;
mod publisher;
mod quotas;
mod raw_events;
mod raw_quota;
mod results;
mod retention;
mod segments;
mod shares;
mod shopify;
mod signups;
mod sites;
mod smtp;
mod variance_reduction;
mod webhooks;
mod wordpress;
