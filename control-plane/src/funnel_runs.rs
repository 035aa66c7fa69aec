//! Funnels computed in the background (`funnel_runs`; docs/funnels.md, "Large funnels").
//!
//! A funnel's results are computed from raw events when asked for, inside the request's
//! `SAMPLIT_ANALYSIS_TIMEOUT_MS`. A funnel too large for that (a few million visitors on
//! a small machine: docs/benchmarks.md, "Funnels") is queued by the request, which answers
//! `202`; this worker, started by `serve`, computes it with
//! `SAMPLIT_ANALYSIS_BACKGROUND_TIMEOUT_MS` and keeps the answer, which the endpoint then
//! serves with its age. One funnel at a time per process, through one of the analysis
//! gate's global slots ([`crate::analysis_gate::AnalysisGate::background`]); several
//! replicas share the queue (`FOR UPDATE SKIP LOCKED`). An organisation has at most
//! `SAMPLIT_ANALYSIS_BACKGROUND_PER_ORG` funnels in the queue (the endpoint answers 429
//! past it), so none fills it for everyone.

use std::time::Duration;

use crate::db::funnels as db;
use crate::db::results as results_db;
use crate::error::ApiError;
use crate::http::funnels::compute;
use crate::state::AppState;

/// How often the worker looks for queued funnels.
pub const POLL_EVERY: Duration = Duration::from_secs(2);

/// Computes queued funnels, one at a time, until none is left; returns how many.
pub async fn run_pending(state: &AppState) -> anyhow::Result<usize> {
    let mut done = 0;
    while run_one(state).await? {
        done += 1;
    }
    Ok(done)
}

/// Computes the longest-waiting queued funnel, if any, and keeps its answer or why it
/// failed. A worker that stopped mid-way leaves its funnel to be taken again once the
/// background budget (and a minute) has passed.
pub async fn run_one(state: &AppState) -> anyhow::Result<bool> {
    let budget = state.config.limits.analysis_background_timeout;
    let Some((funnel_id, experiment_id, org_id)) =
        db::claim_run(&state.pool, budget + Duration::from_secs(60)).await?
    else {
        return Ok(false);
    };
    let started = std::time::Instant::now();
    let outcome = async {
        let experiment = results_db::experiment_in_org(&state.pool, org_id, experiment_id)
            .await?
            .ok_or(ApiError::NotFound("funnel"))?;
        let row = db::one(&state.pool, experiment_id, funnel_id)
            .await?
            .ok_or(ApiError::NotFound("funnel"))?;
        let slot = state.analyses.background().await?;
        compute(state, &experiment, row, &slot).await
    }
    .await;
    match outcome {
        Ok(results) => {
            let result = serde_json::to_value(&results)?;
            db::finish_run(&state.pool, funnel_id, Ok(&result)).await?;
            tracing::info!(
                %funnel_id,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "funnel computed in the background"
            );
        }
        Err(error) => {
            let failure = match &error {
                ApiError::Coded { message, .. } => message.clone(),
                other => {
                    tracing::error!(%funnel_id, error = ?other, "background funnel failed");
                    "computing this funnel in the background failed; it is tried again \
                     when asked for an hour later"
                        .to_owned()
                }
            };
            db::finish_run(&state.pool, funnel_id, Err(&failure)).await?;
        }
    }
    Ok(true)
}

/// The worker `serve` runs: [`run_pending`] every [`POLL_EVERY`] until `shutdown`.
pub async fn run(state: AppState, shutdown: impl std::future::Future<Output = ()> + Send) {
    crate::background::every(POLL_EVERY, shutdown, || async {
        if let Err(error) = run_pending(&state).await {
            tracing::error!(?error, "background funnels failed");
        }
    })
    .await;
}
