//! The state every handler shares: the pool, the configuration, keys and metrics.

use std::sync::Arc;

use sqlx::PgPool;

use crate::auth::JwtKeys;
use crate::config::Config;
use crate::telemetry::Metrics;

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub config: Arc<Config>,
    pub jwt: JwtKeys,
    pub metrics: Arc<Metrics>,
}

impl AppState {
    pub fn new(pool: PgPool, config: Config) -> Result<Self, prometheus::Error> {
        Ok(Self {
            jwt: JwtKeys::new(config.jwt_secret.expose()),
            metrics: Arc::new(Metrics::new()?),
            config: Arc::new(config),
            pool,
        })
    }
}
