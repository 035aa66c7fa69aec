//! # samplit-control-plane
//!
//! The source of truth: a REST API under `/api/v1` over PostgreSQL, the ingestion of the
//! edge's event batches, results computed with `samplit-engine`, and the publisher that
//! pushes signed snapshots to the edge.
//!
//! Layout: [`config`] (typed, from the environment), [`error`] (problem+json),
//! [`extract`] (JSON/query extractors in our error format), [`auth`] (tokens, keys,
//! roles, the [`auth::Actor`] extractor), [`audit`] (hash-chained trail), [`state`],
//! [`telemetry`], [`http`] (router and middleware; one module per resource), [`db`] (SQL
//! per aggregate), [`export`] (CSV/XLSX downloads), [`ratelimit`] (login throttling).
//! `main.rs` only parses the command line and calls [`serve`] or [`migrate`].

pub mod audit;
pub mod auth;
pub mod config;
pub mod db;
pub mod error;
pub mod export;
pub mod extract;
pub mod http;
pub mod ingest;
pub mod ratelimit;
pub mod state;
pub mod telemetry;

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
    let app = router(state);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await?;
    Ok(())
}
