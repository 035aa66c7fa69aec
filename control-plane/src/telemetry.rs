//! JSON logs and Prometheus metrics.
//!
//! Metrics live in a registry owned by the app state (not a global), so every test app
//! has its own and `/metrics` shows exactly this process's figures.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

/// Installs the JSON log subscriber (`RUST_LOG` filters; default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .init();
}

pub struct Metrics {
    pub registry: Registry,
    pub requests: IntCounterVec,
    pub latency: HistogramVec,
    /// Ingested items by outcome (accepted, duplicate, rejected).
    pub ingest_items: IntCounterVec,
    /// Shopify orders/create deliveries by outcome (forwarded, already_recorded,
    /// no_visitor, not_installed).
    pub shopify_orders: IntCounterVec,
    /// Ingest batches waiting for a writer (`crate::ingest`'s group commit).
    pub ingest_waiting: IntGauge,
    /// Batches per ingest transaction (more than one: batches grouped while others were
    /// being written).
    pub ingest_group_batches: Histogram,
    pub pool_size: IntGauge,
    pub pool_idle: IntGauge,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "samplit_http_requests_total",
                "HTTP requests by route and status",
            ),
            &["method", "route", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "samplit_http_request_duration_seconds",
                "HTTP request latency",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            &["method", "route"],
        )?;
        let ingest_items = IntCounterVec::new(
            Opts::new("samplit_ingest_items_total", "Ingested items by outcome"),
            &["outcome"],
        )?;
        let shopify_orders = IntCounterVec::new(
            Opts::new(
                "samplit_shopify_orders_total",
                "Shopify orders/create deliveries by outcome",
            ),
            &["outcome"],
        )?;
        let ingest_waiting = IntGauge::new(
            "samplit_ingest_batches_waiting",
            "Ingest batches waiting for a writer",
        )?;
        let ingest_group_batches = Histogram::with_opts(
            HistogramOpts::new(
                "samplit_ingest_group_batches",
                "Ingest batches written per transaction",
            )
            .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0]),
        )?;
        let pool_size = IntGauge::new("samplit_db_pool_connections", "Open database connections")?;
        let pool_idle = IntGauge::new(
            "samplit_db_pool_idle_connections",
            "Idle database connections",
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(ingest_items.clone()))?;
        registry.register(Box::new(shopify_orders.clone()))?;
        registry.register(Box::new(ingest_waiting.clone()))?;
        registry.register(Box::new(ingest_group_batches.clone()))?;
        registry.register(Box::new(pool_size.clone()))?;
        registry.register(Box::new(pool_idle.clone()))?;
        Ok(Self {
            registry,
            requests,
            latency,
            ingest_items,
            shopify_orders,
            ingest_waiting,
            ingest_group_batches,
            pool_size,
            pool_idle,
        })
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut buf = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buf)?;
        String::from_utf8(buf).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }
}
