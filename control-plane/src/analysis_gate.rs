//! The analysis gate: bounds the analyses computed from raw events (a funnel's results:
//! one query over the experiment's raw exposures and conversions, ~0.8 s at 100 000
//! visitors, `docs/benchmarks.md` "Funnels"), so that a free account — or one viewer's
//! API key in a loop — cannot keep PostgreSQL busy for everyone.
//!
//! Two limits, both per process (they protect this process's share of the database; a
//! replica adds its own):
//! - per organisation, at most `SAMPLIT_ANALYSIS_PER_ORG` (default 1) at once: a further
//!   request of that organisation waits for it (the console loads a page's funnels at
//!   once, so they queue one behind the other) up to `SAMPLIT_ANALYSIS_WAIT_MS` (default
//!   5000), then gets `429 rate_limited` with `Retry-After`;
//! - in all, at most `SAMPLIT_ANALYSIS_CONCURRENCY` (default: the cores) at once: a request
//!   that holds its organisation's turn waits up to the same time for a slot, then gets
//!   `503 busy` with `Retry-After`.
//!
//! A permit also carries the analysis's time budget, `SAMPLIT_ANALYSIS_TIMEOUT_MS` from
//! the moment it is granted (below the 30 s request timeout): before each of the
//! analysis's statements, [`AnalysisPermit::arm`] makes what is left the transaction's
//! `statement_timeout`, so PostgreSQL stops the computation once the budget is spent
//! (`503 analysis_timeout`, [`AnalysisPermit::stopped`]). Without it, a computation past
//! the request timeout went on in the database after the client got its answer and the
//! permit was dropped, outside both limits.
//!
//! A funnel too large for that budget is computed in the background
//! ([`crate::funnel_runs`]) with [`AnalysisGate::background`]'s permit: one of the same
//! global slots, no organisation's turn, and `SAMPLIT_ANALYSIS_BACKGROUND_TIMEOUT_MS`.
//!
//! A waiting request holds no database connection. The aggregates-based endpoints
//! (results, timeseries, segments: a few milliseconds, their cost independent of the
//! number of events) are not gated.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, SemaphorePermit};
use uuid::Uuid;

use crate::error::ApiError;

/// The problem code of an analysis stopped at its time budget.
pub const ANALYSIS_TIMEOUT: &str = "analysis_timeout";

/// Whether `error` is an analysis stopped at its time budget ([`AnalysisPermit::stopped`]).
pub fn is_spent(error: &ApiError) -> bool {
    matches!(error, ApiError::Coded { code, .. } if *code == ANALYSIS_TIMEOUT)
}

pub struct AnalysisGate {
    slots: Semaphore,
    wait: Duration,
    /// Each analysis's time budget in the database.
    timeout: Duration,
    /// The budget of an analysis computed in the background ([`AnalysisGate::background`]).
    background_timeout: Duration,
    per_org: usize,
    /// Each organisation's turns; an entry lives while someone holds or awaits one.
    orgs: Mutex<HashMap<Uuid, Arc<Semaphore>>>,
    max_in_flight: AtomicUsize,
    in_flight: AtomicUsize,
}

/// Held while an analysis runs; dropping it frees the global slot and the
/// organisation's turn.
pub struct AnalysisPermit<'a> {
    gate: &'a AnalysisGate,
    org_id: Uuid,
    turn: Option<OwnedSemaphorePermit>,
    _slot: SemaphorePermit<'a>,
    /// When the analysis's time budget is spent.
    deadline: Instant,
    /// Computed in the background (a worker's, not a request's).
    background: bool,
}

impl AnalysisGate {
    pub fn new(
        permits: usize,
        wait: Duration,
        per_org: usize,
        timeout: Duration,
        background_timeout: Duration,
    ) -> Self {
        Self {
            slots: Semaphore::new(permits.max(1)),
            wait,
            timeout,
            background_timeout,
            per_org: per_org.max(1),
            orgs: Mutex::default(),
            max_in_flight: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }

    fn retry_after(&self) -> u64 {
        self.wait.as_secs().max(1)
    }

    /// A slot for one analysis of `org_id`: `429 rate_limited` when the organisation's
    /// own earlier analyses keep its turns past the wait, `503 busy` when no global slot
    /// frees up within it.
    pub async fn enter(&self, org_id: Uuid) -> Result<AnalysisPermit<'_>, ApiError> {
        let deadline = tokio::time::Instant::now() + self.wait;
        let turns = {
            let mut orgs = self.orgs.lock().unwrap_or_else(|p| p.into_inner());
            orgs.entry(org_id)
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_org)))
                .clone()
        };
        let turn = tokio::time::timeout_at(deadline, turns.acquire_owned()).await;
        let turn = match turn {
            Ok(Ok(turn)) => turn,
            Ok(Err(closed)) => {
                self.forget(org_id);
                return Err(ApiError::Internal(closed.into()));
            }
            Err(_) => {
                self.forget(org_id);
                return Err(ApiError::TooManyRequests {
                    retry_after_secs: self.retry_after(),
                });
            }
        };
        let slot = match tokio::time::timeout_at(deadline, self.slots.acquire()).await {
            Ok(Ok(slot)) => slot,
            failed => {
                drop(turn);
                self.forget(org_id);
                return Err(match failed {
                    Ok(Err(closed)) => ApiError::Internal(closed.into()),
                    _ => ApiError::Busy {
                        retry_after_secs: self.retry_after(),
                    },
                });
            }
        };
        let now = self.in_flight.fetch_add(1, SeqCst) + 1;
        self.max_in_flight.fetch_max(now, SeqCst);
        Ok(AnalysisPermit {
            gate: self,
            org_id,
            turn: Some(turn),
            _slot: slot,
            deadline: Instant::now() + self.timeout,
            background: false,
        })
    }

    /// A slot for an analysis computed in the background, with the background budget
    /// (`SAMPLIT_ANALYSIS_BACKGROUND_TIMEOUT_MS`). It waits as long as it takes for one of
    /// the global slots and takes no organisation's turn: the worker computes one analysis
    /// at a time, so a large funnel in the background never keeps its organisation's
    /// other funnels waiting, and the database still runs at most the global number.
    pub async fn background(&self) -> Result<AnalysisPermit<'_>, ApiError> {
        let slot = self
            .slots
            .acquire()
            .await
            .map_err(|closed| ApiError::Internal(closed.into()))?;
        let now = self.in_flight.fetch_add(1, SeqCst) + 1;
        self.max_in_flight.fetch_max(now, SeqCst);
        Ok(AnalysisPermit {
            gate: self,
            org_id: Uuid::nil(),
            turn: None,
            _slot: slot,
            deadline: Instant::now() + self.background_timeout,
            background: true,
        })
    }

    /// Drops the organisation's entry when nobody holds or awaits a turn (only the map
    /// keeps its semaphore alive).
    fn forget(&self, org_id: Uuid) {
        let mut orgs = self.orgs.lock().unwrap_or_else(|p| p.into_inner());
        if orgs.get(&org_id).is_some_and(|s| Arc::strong_count(s) == 1) {
            orgs.remove(&org_id);
        }
    }

    /// The most analyses that ever ran at once (for tests and operators).
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight.load(SeqCst)
    }
}

impl AnalysisPermit<'_> {
    /// Makes what is left of the budget the statement timeout of `conn`'s transaction
    /// (call it inside the transaction, before each statement); `503 analysis_timeout`
    /// when nothing is left.
    pub async fn arm(&self, conn: &mut sqlx::PgConnection) -> Result<(), ApiError> {
        let left = self
            .deadline
            .saturating_duration_since(Instant::now())
            .as_millis();
        if left == 0 {
            return Err(self.spent());
        }
        sqlx::query("SELECT set_config('statement_timeout', $1, true)")
            .bind(format!("{left}ms"))
            .execute(conn)
            .await?;
        Ok(())
    }

    /// `503 analysis_timeout` for a statement PostgreSQL stopped at the budget (SQLSTATE
    /// 57014, `query_canceled`); any other error as usual.
    pub fn stopped(&self, e: sqlx::Error) -> ApiError {
        match &e {
            sqlx::Error::Database(db) if db.code().as_deref() == Some("57014") => self.spent(),
            _ => ApiError::from(e),
        }
    }

    fn spent(&self) -> ApiError {
        let (secs, variable) = if self.background {
            (
                self.gate.background_timeout.as_secs_f64(),
                "SAMPLIT_ANALYSIS_BACKGROUND_TIMEOUT_MS",
            )
        } else {
            (
                self.gate.timeout.as_secs_f64(),
                "SAMPLIT_ANALYSIS_TIMEOUT_MS",
            )
        };
        tracing::warn!(
            limit_s = secs,
            background = self.background,
            "analysis stopped at its time budget"
        );
        ApiError::coded(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            ANALYSIS_TIMEOUT,
            format!(
                "computing this funnel took longer than the server's limit of {secs} s \
                 ({variable}) and was stopped: a funnel reads every event of its steps \
                 since the experiment began, so steps on rarer events or a shorter window \
                 make it cheaper"
            ),
        )
    }
}

impl Drop for AnalysisPermit<'_> {
    fn drop(&mut self) {
        self.gate.in_flight.fetch_sub(1, SeqCst);
        drop(self.turn.take());
        self.gate.forget(self.org_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(e: &ApiError) -> &'static str {
        match e {
            ApiError::TooManyRequests { .. } => "429",
            ApiError::Busy { .. } => "503",
            _ => "other",
        }
    }

    #[tokio::test]
    async fn one_analysis_per_organisation_and_a_bounded_total() {
        let gate = AnalysisGate::new(
            2,
            Duration::from_millis(20),
            1,
            Duration::from_secs(20),
            Duration::from_secs(600),
        );
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let first = gate.enter(a).await.expect("a's first");
        // The same organisation again: its turn stays taken past the wait.
        let again = gate.enter(a).await.err().expect("a's second is refused");
        assert_eq!(status(&again), "429");
        // Another organisation takes the second global slot.
        let second = gate.enter(b).await.expect("b's first");
        // A third organisation finds no global slot within the wait.
        let busy = gate.enter(c).await.err().expect("no slot left");
        assert_eq!(status(&busy), "503");
        assert_eq!(gate.max_in_flight(), 2);
        // The refused ones left nothing behind; a finished analysis frees both slots.
        drop(first);
        let third = gate.enter(c).await.expect("c gets a's slot");
        let a_again = gate.enter(a).await.err().expect("no global slot for a");
        assert_eq!(status(&a_again), "503");
        drop(second);
        drop(third);
        let _a = gate
            .enter(a)
            .await
            .expect("a again once its analysis finished");
        let orgs = gate.orgs.lock().unwrap();
        assert_eq!(orgs.len(), 1, "only a is counted");
        assert!(orgs.contains_key(&a));
    }

    #[tokio::test]
    async fn a_waiting_request_gets_the_turn_that_frees_up() {
        let gate = Arc::new(AnalysisGate::new(
            1,
            Duration::from_secs(5),
            1,
            Duration::from_secs(20),
            Duration::from_secs(600),
        ));
        let org = Uuid::new_v4();
        let held = gate.enter(org).await.unwrap();
        let g = gate.clone();
        // The same organisation: queues behind its running analysis, not refused.
        let waiter = tokio::spawn(async move { g.enter(org).await.map(|_| ()) });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "it waits for the turn");
        drop(held);
        waiter
            .await
            .unwrap()
            .expect("the waiter got the freed turn");
        assert!(gate.orgs.lock().unwrap().is_empty(), "nothing left behind");
    }
}
