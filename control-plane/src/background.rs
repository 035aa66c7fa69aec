//! Periodic background tasks started by `serve` — the snapshot publisher and ingest
//! housekeeping — share one loop: a pass at start and then every period, until the
//! shutdown signal resolves.

use std::future::Future;
use std::time::Duration;

/// Runs `pass` at once and then every `period` (a late pass delays the next rather than
/// bunching them) until `shutdown` resolves. Once shutdown is signalled it wins over a
/// ready tick (`biased`), and a pass in progress is abandoned: whatever it was doing in a
/// transaction rolls back, and the next start redoes it.
pub async fn every<F, Fut>(period: Duration, shutdown: impl Future<Output = ()> + Send, mut pass: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            _ = interval.tick() => {}
        }
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            () = pass() => {}
        }
    }
}
