//! Group commit for checkout's writes: the transactions of many shoppers' checkouts, run
//! together in one Postgres transaction and made durable by one commit.
//!
//! Why: a checkout writes a few rows per order, but each of its transactions costs Postgres a
//! commit, a round trip per statement and, on a hot SKU, a wait behind the inventory shard's
//! batch for the variant row (every order line's foreign-key check takes a key-share lock on
//! it). Writers take whatever jobs have queued, up to `checkout.commit_batch_max`, and run them
//! concurrently on one connection (tokio-postgres pipelines their statements) inside one
//! transaction, where each kind of job writes its rows for the whole batch by set-based
//! statements (Postgres's cost per statement, not per row, was then the limit). README,
//! "Reservations and checkout on one hot SKU", has the figures.
//!
//! Promises:
//! - A job's outcome is the one it would have in a transaction of its own. A batch commits only
//!   if every job in it succeeded; otherwise (a job's error, a database error, a failed commit)
//!   the whole batch is rolled back and each of its jobs runs again alone, in its own
//!   transaction, whose outcome is the job's answer. So jobs write only to Postgres (nothing a
//!   rollback would not undo: metrics, Redis and the gateway come after the answer) and may run
//!   twice, even after a first run that did commit (a commit whose answer was lost): checkout's
//!   jobs then find their own work done (the key taken, the order no longer pending, the
//!   payment already captured) and answer as a retry would.
//! - Jobs of one batch see each other's writes, so two jobs with the same `batch_key` (the cart
//!   they write) never share a batch: the later one waits for the next, and one cart's
//!   checkouts stay ordered by its row locks as between separate transactions.
//! - The queue is bounded (`checkout.commit_queue`): a job beyond it is refused at once with
//!   503, not queued.
//! - A job answers once its batch committed (or it ran alone): what it returned is durable.
//! - Jobs of one kind in a batch are handed over together (`GroupJob::run_together`), so a
//!   kind whose rows can be written by set-based statements writes a whole batch's rows with
//!   one statement per table instead of one per job. Alone, a job always runs by `run`: the
//!   reference its batched form must agree with.

use std::{
    any::{Any, TypeId},
    collections::{HashMap, HashSet, VecDeque},
    panic::AssertUnwindSafe,
    sync::Arc,
    time::Instant,
};

use futures_util::{future::LocalBoxFuture, FutureExt};
use tokio::sync::{mpsc, oneshot, Mutex};
use uuid::Uuid;

use crate::{
    configuration::CheckoutSettings,
    error::{error_chain, Error},
};

/// A unit of checkout's writing: what one request would do in its own transaction.
pub trait GroupJob: Send + 'static {
    type Output: Send + 'static;
    type Error: From<Error> + Send + 'static;

    /// What the job writes that no other job of its batch may write (the cart).
    fn batch_key(&self) -> Uuid;

    /// Does the job's work in `tx`. Called again, in a fresh transaction, if its batch fails.
    fn run<'a>(
        &'a self,
        tx: &'a deadpool_postgres::Transaction<'_>,
    ) -> LocalBoxFuture<'a, Result<Self::Output, Self::Error>>;

    /// Does the work of all `jobs` (this kind's share of a batch, distinct batch keys) in `tx`,
    /// answering each in order; any error fails the batch, whose jobs then `run` alone. The
    /// default runs each job's `run` concurrently (statements pipelined on the connection).
    fn run_together<'a>(
        jobs: Vec<&'a Self>,
        tx: &'a deadpool_postgres::Transaction<'_>,
    ) -> LocalBoxFuture<'a, Vec<Result<Self::Output, Self::Error>>>
    where
        Self: Sized,
    {
        Box::pin(futures_util::future::join_all(
            jobs.into_iter().map(|job| job.run(tx)),
        ))
    }
}

/// The answers of a kind's `run_together` whose jobs cannot all be written together (one was
/// refused, or the set-based statement failed with `cause`): an error each, which fails the
/// batch, so that every job runs again alone and answers from that.
pub fn failed_together<T, E: From<Error>>(jobs: usize, cause: Option<&Error>) -> Vec<Result<T, E>> {
    if let Some(cause) = cause {
        tracing::warn!(error = %error_chain(cause), "a set-based write failed; writing its batch job by job");
    }
    (0..jobs)
        .map(|_| Err(Error::internal(anyhow::anyhow!("its batch failed")).into()))
        .collect()
}

/// A queued job with the caller waiting for its answer.
trait Queued: Send {
    fn batch_key(&self) -> Uuid;
    /// The job's kind: jobs of one kind in a batch run together.
    fn kind(&self) -> TypeId;
    fn as_any_mut(&mut self) -> &mut dyn Any;
    /// Runs the job alone in `tx` and keeps its outcome; `true` if it succeeded.
    fn run<'a>(
        &'a mut self,
        tx: &'a deadpool_postgres::Transaction<'_>,
    ) -> LocalBoxFuture<'a, bool>;
    /// Runs the job and `mates`, jobs of its kind, together in `tx` and keeps their outcomes;
    /// `true` if all succeeded.
    fn run_with<'a>(
        &'a mut self,
        mates: Vec<&'a mut Box<dyn Queued>>,
        tx: &'a deadpool_postgres::Transaction<'_>,
    ) -> LocalBoxFuture<'a, bool>;
    /// Sends the kept outcome, or `failure` instead if the transaction did not commit.
    fn answer(self: Box<Self>, failure: Option<Error>);
}

struct Waiting<J: GroupJob> {
    job: J,
    outcome: Option<Result<J::Output, J::Error>>,
    reply: oneshot::Sender<Result<J::Output, J::Error>>,
}

impl<J: GroupJob> Queued for Waiting<J> {
    fn batch_key(&self) -> Uuid {
        self.job.batch_key()
    }

    fn kind(&self) -> TypeId {
        TypeId::of::<J>()
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn run<'a>(
        &'a mut self,
        tx: &'a deadpool_postgres::Transaction<'_>,
    ) -> LocalBoxFuture<'a, bool> {
        Box::pin(async move {
            let outcome = match AssertUnwindSafe(self.job.run(tx)).catch_unwind().await {
                Ok(outcome) => outcome,
                Err(_) => {
                    tracing::error!("a commit-group job panicked; answered as an internal error");
                    metrics::counter!("agora_commit_group_panics_total").increment(1);
                    Err(Error::internal(anyhow::anyhow!("a commit-group job panicked")).into())
                }
            };
            let succeeded = outcome.is_ok();
            self.outcome = Some(outcome);
            succeeded
        })
    }

    fn run_with<'a>(
        &'a mut self,
        mates: Vec<&'a mut Box<dyn Queued>>,
        tx: &'a deadpool_postgres::Transaction<'_>,
    ) -> LocalBoxFuture<'a, bool> {
        Box::pin(async move {
            let mut group: Vec<&mut Waiting<J>> = Vec::with_capacity(mates.len() + 1);
            group.push(self);
            for mate in mates {
                // Grouped by `kind`, so every mate is a `Waiting<J>`.
                match mate.as_any_mut().downcast_mut::<Waiting<J>>() {
                    Some(mate) => group.push(mate),
                    None => return false,
                }
            }
            // A kind that panics fails its batch (which is rolled back and re-run job by job),
            // instead of unwinding the writer with every job it holds.
            let outcomes = {
                let jobs = group.iter().map(|waiting| &waiting.job).collect();
                AssertUnwindSafe(J::run_together(jobs, tx))
                    .catch_unwind()
                    .await
            };
            let Ok(outcomes) = outcomes else {
                // Counted when the job that panics panics again alone.
                tracing::error!("a batch's commit-group jobs panicked; re-running them one by one");
                return false;
            };
            let mut succeeded = outcomes.len() == group.len();
            for (waiting, outcome) in group.into_iter().zip(outcomes) {
                succeeded &= outcome.is_ok();
                waiting.outcome = Some(outcome);
            }
            succeeded
        })
    }

    fn answer(self: Box<Self>, failure: Option<Error>) {
        let outcome = match (failure, self.outcome) {
            (Some(error), _) => Err(error.into()),
            (None, Some(outcome)) => outcome,
            (None, None) => {
                Err(Error::internal(anyhow::anyhow!("a commit-group job never ran")).into())
            }
        };
        // The caller may have gone (its request was cancelled); the work stands either way.
        let _ = self.reply.send(outcome);
    }
}

/// The handle checkout sends its writes through; cheap to clone, one per process.
#[derive(Clone)]
pub struct CommitGroup {
    /// Bounded: a full queue refuses new jobs (503) instead of growing.
    queue: mpsc::Sender<Box<dyn Queued>>,
}

impl CommitGroup {
    /// Starts `settings.commit_writers` writers on the current arbiter, each taking batches
    /// from the one queue and holding a pooled connection only while writing one.
    pub fn start(pool: deadpool_postgres::Pool, settings: &CheckoutSettings) -> Self {
        let (queue, jobs) = mpsc::channel(settings.commit_queue);
        let jobs = Arc::new(Mutex::new(jobs));
        for _ in 0..settings.commit_writers {
            let writer = Writer {
                pool: pool.clone(),
                jobs: Arc::clone(&jobs),
                batch_max: settings.commit_batch_max,
                deferred: VecDeque::new(),
            };
            actix_web::rt::spawn(writer.run());
        }
        Self { queue }
    }

    /// Runs `job` in the next batch and answers once that batch is durable.
    pub async fn run<J: GroupJob>(&self, job: J) -> Result<J::Output, J::Error> {
        let (reply, answer) = oneshot::channel();
        let waiting = Box::new(Waiting {
            job,
            outcome: None,
            reply,
        });
        if let Err(error) = self.queue.try_send(waiting) {
            metrics::counter!("agora_commit_group_refused_total").increment(1);
            return Err(Error::Unavailable(match error {
                mpsc::error::TrySendError::Full(_) => {
                    "too many checkouts are being written; retry shortly".into()
                }
                mpsc::error::TrySendError::Closed(_) => "the order writer has stopped".into(),
            })
            .into());
        }
        answer.await.unwrap_or_else(|_| {
            Err(Error::internal(anyhow::anyhow!("the order writer dropped a job")).into())
        })
    }
}

/// One writer: takes a batch, writes it, answers, repeats.
struct Writer {
    pool: deadpool_postgres::Pool,
    /// Shared by every writer; held only while taking a batch.
    jobs: Arc<Mutex<mpsc::Receiver<Box<dyn Queued>>>>,
    batch_max: usize,
    /// Jobs taken but left for this writer's next batch: their cart was already in the batch.
    deferred: VecDeque<Box<dyn Queued>>,
}

impl Writer {
    async fn run(mut self) {
        while let Some(batch) = self.next_batch().await {
            let started = Instant::now();
            metrics::histogram!("agora_commit_group_batch_size").record(batch.len() as f64);
            self.write(batch).await;
            metrics::histogram!("agora_commit_group_batch_seconds")
                .record(started.elapsed().as_secs_f64());
        }
    }

    /// Up to `batch_max` jobs with distinct batch keys, the deferred ones first. Waits for a
    /// job only when it has none deferred: another writer may be holding the queue while it
    /// waits for work, and a deferred job must not wait for that. `None` once the queue is
    /// closed and drained.
    async fn next_batch(&mut self) -> Option<Vec<Box<dyn Queued>>> {
        let mut batch: Vec<Box<dyn Queued>> = Vec::new();
        let mut keys = HashSet::new();
        for job in std::mem::take(&mut self.deferred) {
            if batch.len() < self.batch_max && keys.insert(job.batch_key()) {
                batch.push(job);
            } else {
                self.deferred.push_back(job);
            }
        }
        let queue = Arc::clone(&self.jobs);
        let mut jobs = if batch.is_empty() {
            let mut jobs = queue.lock().await;
            let job = jobs.recv().await?;
            keys.insert(job.batch_key());
            batch.push(job);
            jobs
        } else {
            match queue.try_lock() {
                Ok(jobs) => jobs,
                Err(_) => return Some(batch),
            }
        };
        while batch.len() < self.batch_max {
            let Ok(job) = jobs.try_recv() else { break };
            if keys.insert(job.batch_key()) {
                batch.push(job);
            } else {
                self.deferred.push_back(job);
            }
        }
        Some(batch)
    }

    async fn write(&self, mut batch: Vec<Box<dyn Queued>>) {
        if batch.len() > 1 {
            match self.write_together(&mut batch).await {
                Ok(()) => {
                    for job in batch {
                        job.answer(None);
                    }
                    return;
                }
                Err(why) => {
                    tracing::debug!(
                        jobs = batch.len(),
                        why,
                        "a batch failed; writing its jobs one by one"
                    );
                    metrics::counter!("agora_commit_group_split_total", "why" => why).increment(1);
                }
            }
        }
        for job in batch {
            self.write_alone(job).await;
        }
    }

    /// Every job in one transaction; `Err` (rolled back) unless all succeeded and it committed.
    async fn write_together(&self, batch: &mut [Box<dyn Queued>]) -> Result<(), &'static str> {
        let mut client = self.pool.get().await.map_err(|error| {
            tracing::warn!(%error, "no connection for a checkout batch");
            "no_connection"
        })?;
        let tx = client.transaction().await.map_err(|error| {
            tracing::warn!(%error, "a checkout batch could not begin");
            "database"
        })?;
        let mut kinds: HashMap<TypeId, Vec<&mut Box<dyn Queued>>> = HashMap::new();
        for job in batch.iter_mut() {
            kinds.entry(job.kind()).or_default().push(job);
        }
        let succeeded =
            futures_util::future::join_all(kinds.into_values().filter_map(|mut jobs| {
                let first = (!jobs.is_empty()).then(|| jobs.remove(0))?;
                Some(first.run_with(jobs, &tx))
            }))
            .await
            .into_iter()
            .all(|succeeded| succeeded);
        if !succeeded {
            return Err("job_failed");
        }
        tx.commit().await.map_err(|error| {
            tracing::warn!(%error, "a checkout batch did not commit");
            "commit_failed"
        })
    }

    async fn write_alone(&self, mut job: Box<dyn Queued>) {
        let failure = async {
            let mut client = self.pool.get().await?;
            let tx = client.transaction().await?;
            if job.run(&tx).await {
                tx.commit().await?;
            }
            // A failed job's transaction rolls back as it drops; its outcome is the answer.
            Ok::<(), Error>(())
        }
        .await
        .err();
        job.answer(failure);
    }
}
