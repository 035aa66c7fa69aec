//! # samplit-control-plane
//!
//! The source of truth: a REST API under `/api/v1` over PostgreSQL, the ingestion of the
//! edge's event batches, results computed with `samplit-engine`, and the publisher that
//! pushes signed snapshots to the edge.
//!
//! Layout: [`config`] (typed, from the environment), [`error`] (problem+json),
//! [`extract`] (JSON/query extractors in our error format), [`auth`] (tokens, keys,
//! roles, the [`auth::Actor`] extractor), [`audit`] (hash-chained trail), [`state`],
//! [`telemetry`], [`http`] (router and middleware; one module per resource: extract,
//! call, map to a response), [`accounts`] (emails, passwords and argon2, registration,
//! login, sessions), [`domain`] (validated values; imports neither `http` nor `db`:
//! request bodies convert into it on the HTTP side, rows decode into it),
//! [`ingest`] (the edge's batches: a pure planner and a set-wise writer),
//! [`background`] (the periodic tasks `serve` runs), [`db`] (SQL per aggregate), [`export`]
//! (CSV/XLSX downloads), [`ratelimit`] (login throttling), [`quota`] (per-organisation
//! limits), [`publisher`] (signed snapshots, routes and tombstones pushed to the edge),
//! [`verify`] (domain-ownership proofs over DNS and HTTP), [`mail`] (the outbox and its
//! SMTP worker), [`funnel_runs`] (funnels too large for a request, computed by a worker).
//! `main.rs` only parses the command line and calls [`serve`] or [`migrate`].

pub mod accounts;
pub mod alerts;
pub mod analysis_gate;
pub mod audit;
pub mod auth;
pub mod background;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod export;
pub mod extract;
pub mod funnel_runs;
pub mod http;
pub mod ingest;
pub mod mail;
pub mod publisher;
pub mod quota;
pub mod ratelimit;
pub mod shopify;
pub mod state;
pub mod telemetry;
pub mod verify;

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

pub use http::router;
pub use state::AppState;

/// The migrations in `migrations/`, embedded at build time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

pub async fn connect(config: &config::Config) -> anyhow::Result<PgPool> {
    Ok(PgPoolOptions::new()
        .max_connections(20)
        .acquire_timeout(Duration::from_secs(5))
        .connect(&config.database_url)
        .await?)
}

pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    MIGRATOR.run(pool).await?;
    Ok(())
}

/// Runs the API until `shutdown` resolves, then drains in-flight requests.
pub async fn serve(
    config: config::Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let pool = connect(&config).await?;
    if config.migrate_on_start {
        migrate(&pool).await?;
    }
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    tracing::info!(address = %listener.local_addr()?, "samplit control plane listening");
    let state = AppState::new(pool, config)?;
    // One shutdown signal, fanned out to the server, the publisher and the housekeeping.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let publisher = if state.config.edge_url.is_some() && state.config.snapshot_secret.is_some() {
        let mut rx = stop_rx.clone();
        tracing::info!("snapshot publisher enabled");
        Some(tokio::spawn(publisher::run(state.clone(), async move {
            let _ = rx.wait_for(|stop| *stop).await;
        })))
    } else {
        tracing::warn!(
            "snapshot publisher disabled: set SAMPLIT_EDGE_URL and SAMPLIT_SNAPSHOT_SECRET to enable it"
        );
        None
    };
    let housekeeping = {
        let mut rx = stop_rx.clone();
        tokio::spawn(ingest::housekeeping::run(
            state.pool.clone(),
            ingest::housekeeping::PRUNE_EVERY,
            state.config.raw_events_retention_days,
            async move {
                let _ = rx.wait_for(|stop| *stop).await;
            },
        ))
    };
    let mail_worker = {
        let mut rx = stop_rx.clone();
        if !mail::delivers(&state.config) {
            tracing::warn!(
                "SAMPLIT_SMTP_URL is not set: mail is written to the log, not sent (addresses cannot be verified)"
            );
        }
        tokio::spawn(mail::outbox::run(
            state.pool.clone(),
            state.config.clone(),
            state.mail.clone(),
            async move {
                let _ = rx.wait_for(|stop| *stop).await;
            },
        ))
    };
    let alerts = {
        let mut rx = stop_rx.clone();
        tokio::spawn(alerts::run(state.clone(), async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }))
    };
    let webhook_worker = {
        let mut rx = stop_rx.clone();
        tokio::spawn(alerts::webhooks::run(state.clone(), async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }))
    };
    let funnel_worker = {
        let mut rx = stop_rx.clone();
        tokio::spawn(funnel_runs::run(state.clone(), async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }))
    };
    let app = router(state);
    let mut server_rx = stop_rx;
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        let _ = server_rx.wait_for(|stop| *stop).await;
    });
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    server.await?;
    if let Some(handle) = publisher {
        let _ = handle.await;
    }
    let _ = housekeeping.await;
    let _ = mail_worker.await;
    let _ = alerts.await;
    let _ = webhook_worker.await;
    let _ = funnel_worker.await;
    Ok(())
}
