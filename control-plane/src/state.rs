//! The state every handler shares: the pool, the configuration, keys and metrics.

use std::sync::Arc;

use sqlx::PgPool;

use crate::auth::{JwtKeys, PasswordGate};
use crate::config::Config;
use crate::telemetry::Metrics;

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub config: Arc<Config>,
    pub jwt: JwtKeys,
    pub metrics: Arc<Metrics>,
    /// Bounds concurrent argon2 work (`SAMPLIT_ARGON2_CONCURRENCY`).
    pub passwords: Arc<PasswordGate>,
    /// Bounds concurrent analyses over raw events (`crate::analysis_gate`).
    pub analyses: Arc<crate::analysis_gate::AnalysisGate>,
    /// Recently computed public results of share links (`http::shares`).
    pub shared_results: Arc<crate::http::SharedResultsCache>,
    /// The Shopify app's clients, when it is configured.
    pub shopify: Option<Arc<crate::shopify::Shopify>>,
    /// How mail leaves (`crate::mail::outbox`): SMTP, or the log.
    pub mail: Arc<crate::mail::outbox::Sender>,
    /// Ingestion of the edge's batches, with its writers (`crate::ingest`).
    pub ingestor: crate::ingest::Ingestor,
}

impl AppState {
    pub fn new(pool: PgPool, config: Config) -> anyhow::Result<Self> {
        let shopify = match &config.shopify {
            Some(c) => Some(Arc::new(crate::shopify::Shopify::new(c.clone())?)),
            None => None,
        };
        let metrics = Arc::new(Metrics::new()?);
        Ok(Self {
            shopify,
            mail: Arc::new(crate::mail::outbox::Sender::new(&config)?),
            jwt: JwtKeys::new(config.jwt_secret.expose(), &config.limits.jwt_issuer),
            passwords: Arc::new(PasswordGate::new(
                config.limits.argon2_concurrency,
                config.limits.argon2_wait,
            )),
            analyses: Arc::new(crate::analysis_gate::AnalysisGate::new(
                config.limits.analysis_concurrency,
                config.limits.analysis_wait,
                config.limits.analysis_per_org,
                config.limits.analysis_timeout,
                config.limits.analysis_background_timeout,
            )),
            shared_results: Arc::default(),
            ingestor: crate::ingest::Ingestor::new(
                pool.clone(),
                crate::ingest::IngestLimits {
                    raw_events_per_site_day: config.limits.raw_events_per_site_day,
                },
                &metrics,
            ),
            metrics,
            config: Arc::new(config),
            pool,
        })
    }
}
