//! Group commit: batches that arrive while others are being written wait, and the next
//! free writer writes everything waiting as one transaction.
//!
//! Why: every batch of an experiment adds to the same few shared rows (its arms' totals,
//! today's buckets, its goals' totals), and a row stays locked from its upsert to the
//! commit, so concurrent transactions of one experiment queue there, one commit after
//! the other, whatever their size (docs/benchmarks.md, "where a batch's time goes").
//! Written together, the batches in flight take those locks once.
//!
//! How: a batch joins a queue; if fewer than [`WRITERS`] writers run, one is started
//! (a task), which takes what waits — whole batches, in arrival order, up to
//! [`MAX_GROUP_ITEMS`] items, at least one batch — writes it, answers each batch with its
//! own counts ([`Tally::of`]), and goes on until the queue is empty. An idle server
//! writes a lone batch at once; only batches that would have waited anyway are grouped.
//!
//! What does not change: a batch is answered only after the commit that holds it (the
//! edge's queue acknowledges a message only on that answer), and a batch's counts are
//! those it would have had written alone just before or after the others (the plan
//! tags each item with its batch: [`Batch::merge`]). If a group's transaction fails,
//! each of its batches is written again on its own, so one bad batch never fails
//! another. A writer that panics answers its batches with an error instead of leaving
//! them waiting.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use prometheus::{Histogram, IntGauge};
use sqlx::PgPool;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use super::plan::{Batch, Catalog, Counts, Tally};
use super::write;

/// Groups written at the same time (each holds one connection for its transaction).
pub const WRITERS: usize = 4;
/// The most items one group takes (a batch larger than this is written alone).
pub const MAX_GROUP_ITEMS: usize = 4_000;

struct Job {
    batch: Batch,
    catalog: Catalog,
    reply: oneshot::Sender<Result<Counts, sqlx::Error>>,
}

/// The queue and the writers of one process.
pub(super) struct Groups {
    pool: PgPool,
    raw_quota: i64,
    queue: Mutex<VecDeque<Job>>,
    writers: Arc<Semaphore>,
    /// The batches in `queue`.
    waiting: IntGauge,
    /// Batches per group written.
    sizes: Histogram,
}

impl Groups {
    pub(super) fn new(pool: PgPool, raw_quota: i64, waiting: IntGauge, sizes: Histogram) -> Self {
        Self {
            pool,
            raw_quota,
            queue: Mutex::new(VecDeque::new()),
            writers: Arc::new(Semaphore::new(WRITERS)),
            waiting,
            sizes,
        }
    }

    /// Writes `batch` (alone or with others waiting) and returns its counts once the
    /// transaction that holds it has committed and the parked conversions of its
    /// visitors were attributed.
    pub(super) async fn write(
        self: &Arc<Self>,
        batch: Batch,
        catalog: Catalog,
    ) -> Result<Counts, sqlx::Error> {
        let (reply, answer) = oneshot::channel();
        let permit = {
            let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            queue.push_back(Job {
                batch,
                catalog,
                reply,
            });
            self.waiting.set(queue.len() as i64);
            // Under the queue's lock: a writer leaves only when it finds the queue empty,
            // under the same lock, so a job is never left without a writer.
            self.writers.clone().try_acquire_owned().ok()
        };
        if let Some(permit) = permit {
            tokio::spawn(self.clone().drain(permit));
        }
        answer.await.unwrap_or(Err(sqlx::Error::WorkerCrashed))
    }

    /// One writer: groups of waiting jobs until none waits.
    async fn drain(self: Arc<Self>, permit: OwnedSemaphorePermit) {
        loop {
            let jobs = {
                let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
                if queue.is_empty() {
                    drop(permit);
                    return;
                }
                let jobs = take_group(&mut queue);
                self.waiting.set(queue.len() as i64);
                jobs
            };
            self.sizes.observe(jobs.len() as f64);
            let (work, replies): (Vec<(Batch, Catalog)>, Vec<_>) = jobs
                .into_iter()
                .map(|j| ((j.batch, j.catalog), j.reply))
                .unzip();
            // In a task of its own, so that a panic answers the jobs with an error.
            let this = self.clone();
            let answers = match tokio::spawn(async move { this.write_group(work).await }).await {
                Ok(answers) => answers,
                Err(e) => {
                    tracing::error!(error = %e, "ingest writer failed");
                    replies
                        .iter()
                        .map(|_| Err(sqlx::Error::WorkerCrashed))
                        .collect()
                }
            };
            for (reply, answer) in replies.into_iter().zip(answers) {
                // The caller may have gone (its request was dropped): the batch is
                // written all the same, and its retry will count as duplicates.
                let _ = reply.send(answer);
            }
        }
    }

    /// Writes the jobs as one transaction, or each alone if that fails; one answer per
    /// job, in order.
    async fn write_group(&self, work: Vec<(Batch, Catalog)>) -> Vec<Result<Counts, sqlx::Error>> {
        if work.len() > 1 {
            let mut catalog = Catalog::default();
            for (_, c) in &work {
                catalog.merge(c);
            }
            let batch = Batch::merge(work.iter().map(|(b, _)| b));
            match self.commit(&batch, &catalog).await {
                Ok(tally) => {
                    // Committed: from here an error is every batch's (a retry of any of
                    // them counts as duplicates and attributes again).
                    return match self.attribute(&batch).await {
                        Ok(()) => (0..work.len()).map(|i| Ok(tally.of(i))).collect(),
                        Err(e) => (0..work.len()).map(|_| Err(copy_error(&e))).collect(),
                    };
                }
                Err(e) => {
                    tracing::warn!(error = %e, batches = work.len(),
                        "grouped ingest batches failed; writing each alone");
                }
            }
        }
        let mut answers = Vec::with_capacity(work.len());
        for (batch, catalog) in &work {
            let answer = match self.commit(batch, catalog).await {
                Ok(tally) => self.attribute(batch).await.map(|()| tally.of(0)),
                Err(e) => Err(e),
            };
            answers.push(answer);
        }
        answers
    }

    /// The batch's transaction, retried on deadlock or serialization failure.
    async fn commit(&self, batch: &Batch, catalog: &Catalog) -> Result<Tally, sqlx::Error> {
        write::retried("ingest batch", || {
            write::write_batch(&self.pool, batch, catalog, self.raw_quota)
        })
        .await
    }

    /// After the commit: the parked conversions of the batch's visitors that can now be
    /// attributed.
    async fn attribute(&self, batch: &Batch) -> Result<(), sqlx::Error> {
        let visitors = batch.visitor_ids();
        let attributed = write::retried("attributing parked conversions", || {
            write::attribute_pending(&self.pool, &visitors)
        })
        .await?;
        if attributed > 0 {
            tracing::debug!(attributed, "parked conversions attributed");
        }
        Ok(())
    }
}

/// The same error for each batch of a group (`sqlx::Error` is not `Clone`): what
/// `ApiError` tells apart — the database unreachable or not — is kept.
fn copy_error(e: &sqlx::Error) -> sqlx::Error {
    match e {
        sqlx::Error::PoolTimedOut => sqlx::Error::PoolTimedOut,
        sqlx::Error::Io(io) => sqlx::Error::Io(std::io::Error::new(io.kind(), io.to_string())),
        other => sqlx::Error::Protocol(other.to_string()),
    }
}

/// The next group: whole jobs from the front, while they fit in [`MAX_GROUP_ITEMS`]
/// (at least one).
fn take_group(queue: &mut VecDeque<Job>) -> Vec<Job> {
    let mut jobs = Vec::new();
    let mut items = 0;
    while let Some(next) = queue.front() {
        let n = next.batch.len();
        if !jobs.is_empty() && items + n > MAX_GROUP_ITEMS {
            break;
        }
        items += n;
        jobs.extend(queue.pop_front());
    }
    jobs
}
