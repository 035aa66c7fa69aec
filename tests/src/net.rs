//! Loopback ports and bounded waiting.

use std::future::Future;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A TCP port that was free on 127.0.0.1 a moment ago (the OS picks it).
pub fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Calls `check` every `every` until it returns `Ok(Some(value))`, for at most
/// `timeout`. `Ok(None)` means "not yet"; an error ends the wait at once (use it for
/// conditions that cannot get better, like a process that exited). On timeout the error
/// names `what`.
pub async fn wait_for<T, F, Fut>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut check: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        if started.elapsed() >= timeout {
            bail!("timed out after {:.0?} waiting for {what}", timeout);
        }
        tokio::time::sleep(every).await;
    }
}
