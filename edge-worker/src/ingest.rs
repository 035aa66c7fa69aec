//! The queue consumer: forwards batches of items to the control plane's ingest endpoint.
//!
//! Per the contract: `POST {SAMPLIT_CONTROL_PLANE_URL}/api/v1/ingest`, headers
//! `X-Samplit-Timestamp: <unix seconds>` and `X-Samplit-Signature: sha256=<hex>` where the
//! hex is HMAC-SHA256(`SAMPLIT_INGEST_SECRET`, `"<ts>." + body`). Any failure (missing
//! configuration, network error, non-2xx) retries the whole batch through the queue;
//! after `max_retries` the queue moves it to the dead-letter queue, which this same
//! consumer drains slowly (wrangler.toml: hourly retries for about the queues' 4-day
//! retention), so a long control-plane outage delays items without losing them. Each
//! request names the queue its batch came from (`X-Samplit-Queue`). Items keep the ids
//! they got when enqueued, so a retried batch is deduplicated by the control plane.
//! Messages that do not parse as items can never succeed: they are logged and dropped
//! rather than poisoning the batch. The items, the batch and its signature are the
//! ingest contract's ([`samplit_engine::ingest`]), shared with the control plane.

use samplit_engine::ingest::{self, Batch, Item, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use serde::Deserialize;
use worker::{AbortSignal, Env, Fetch, Headers, MessageBatch, Method, Request, RequestInit};

use crate::ids;

/// A control plane that does not answer within this is a failure (the batch retries),
/// rather than a consumer hanging until the platform's wall-clock limit.
pub const DELIVERY_TIMEOUT_MS: u32 = 15_000;

/// The control plane's answer: `{"accepted", "duplicates", "rejected": [{"id", "reason"}]}`.
#[derive(Debug, Deserialize)]
struct IngestAnswer {
    #[serde(default)]
    accepted: u64,
    #[serde(default)]
    duplicates: u64,
    #[serde(default)]
    rejected: Vec<serde_json::Value>,
}

/// Why a batch was not delivered (it is then retried by the queue).
#[derive(Debug)]
pub enum DeliveryError {
    NotConfigured(&'static str),
    Network(String),
    Rejected(u16),
}

impl core::fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NotConfigured(name) => write!(f, "{name} is not configured"),
            Self::Network(e) => write!(f, "network error: {e}"),
            Self::Rejected(status) => write!(f, "control plane answered {status}"),
        }
    }
}

/// Handles one queue batch: deliver everything, or retry everything.
pub async fn consume(batch: MessageBatch<serde_json::Value>, env: &Env) {
    let mut items = Vec::new();
    for message in batch.iter() {
        match message.map(|m| serde_json::from_value::<Item>(m.into_body())) {
            Ok(Ok(item)) => items.push(item),
            Ok(Err(e)) => {
                worker::console_error!("dropping a queue message that is not an item: {e}")
            }
            Err(e) => worker::console_error!("dropping an unreadable queue message: {e}"),
        }
    }
    let queue = batch.queue();
    let mut result = Ok(());
    for chunk in items.chunks(ingest::MAX_ITEMS) {
        result = deliver(chunk, &queue, env).await;
        if result.is_err() {
            break;
        }
    }
    match result {
        Ok(()) => batch.ack_all(),
        Err(e) => {
            worker::console_warn!(
                "ingest delivery of {} items from {queue} failed, retrying: {e}",
                items.len()
            );
            batch.retry_all();
        }
    }
}

/// One signed `POST /api/v1/ingest`.
async fn deliver(items: &[Item], queue: &str, env: &Env) -> Result<(), DeliveryError> {
    let base = env
        .var("SAMPLIT_CONTROL_PLANE_URL")
        .map_err(|_| DeliveryError::NotConfigured("SAMPLIT_CONTROL_PLANE_URL"))?
        .to_string();
    let secret = env
        .secret("SAMPLIT_INGEST_SECRET")
        .map_err(|_| DeliveryError::NotConfigured("SAMPLIT_INGEST_SECRET"))?
        .to_string();
    if secret.is_empty() {
        return Err(DeliveryError::NotConfigured("SAMPLIT_INGEST_SECRET"));
    }
    let batch_id = ids::time_ordered_uuid(crate::clock::now_ms())
        .map_err(|e| DeliveryError::Network(e.to_string()))?;
    let batch = Batch::<&Item> {
        batch_id,
        items: items.iter().collect(),
    };
    let body = serde_json::to_string(&batch).map_err(|e| DeliveryError::Network(e.to_string()))?;
    let ts = crate::clock::now_ms().div_euclid(1000).max(0) as u64;

    let headers = Headers::new();
    let set = |k: &str, v: &str| {
        headers
            .set(k, v)
            .map_err(|e| DeliveryError::Network(e.to_string()))
    };
    set("Content-Type", "application/json")?;
    let ts = ts.to_string();
    set(TIMESTAMP_HEADER, &ts)?;
    set("X-Samplit-Queue", queue)?;
    set(
        SIGNATURE_HEADER,
        &ingest::sign(secret.as_bytes(), &ts, body.as_bytes()),
    )?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(body.into()));
    let url = format!("{}/api/v1/ingest", base.trim_end_matches('/'));
    let request =
        Request::new_with_init(&url, &init).map_err(|e| DeliveryError::Network(e.to_string()))?;
    let signal = AbortSignal::from(worker::web_sys::AbortSignal::timeout_with_u32(
        DELIVERY_TIMEOUT_MS,
    ));
    let mut response = Fetch::Request(request)
        .send_with_signal(&signal)
        .await
        .map_err(|e| DeliveryError::Network(e.to_string()))?;
    let status = response.status_code();
    if !(200..300).contains(&status) {
        return Err(DeliveryError::Rejected(status));
    }
    // Items the control plane refused for good (invalid, unknown experiment...) cannot
    // succeed on a retry: log them; the batch is done.
    if let Ok(answer) = response.json::<IngestAnswer>().await
        && !answer.rejected.is_empty()
    {
        worker::console_warn!(
            "ingest: {} accepted, {} duplicates, {} rejected: {:?}",
            answer.accepted,
            answer.duplicates,
            answer.rejected.len(),
            answer.rejected
        );
    }
    Ok(())
}
