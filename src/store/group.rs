//! Group commit for the writes every renewal makes: the `sending` row before its `renew`
//! ([`Store::begin_attempt`]) and its outcome with its alerts after
//! ([`Store::enqueue_alerts`]). With `max_concurrency` renewals in flight, their writes queue
//! here; whoever holds the writer turn takes the whole queue into one `BEGIN IMMEDIATE`
//! transaction, each job in a savepoint of its own, and commits once (one `fsync` for all,
//! `synchronous=FULL`). Every job is answered only after that commit: "no row, no request"
//! holds, since a `sending` row is durable before its caller may send.
//!
//! On PostgreSQL a batch with `sending` rows first passes the lease's fence (`lease.rs`), in
//! the same transaction: if this node no longer leads, its `sending` rows are refused
//! ([`StoreError::LeaseLost`]) and only the outcomes of requests already sent are recorded.
//!
//! A job that fails on its own (a period key another process took: `Conflict`) is rolled
//! back to its savepoint and answered with its error; the others go on. A failure of the
//! transaction itself (cannot begin, cannot commit, a savepoint that cannot be rolled back)
//! answers every job of the batch with that error: nothing of it may be relied on, and
//! nothing is sent.

use tokio::sync::oneshot;

use super::db::{Tx, query};
use super::{Store, StoreError};
use crate::alert::Alert;
use crate::attempt::{NewAttempt, Settlement};
use crate::values::EpochMs;

/// One write to group.
pub(super) enum Job {
    /// [`Store::begin_attempt`].
    Begin { attempt: NewAttempt, now: EpochMs },
    /// [`Store::enqueue_alerts`].
    Outcome { alerts: Vec<Alert>, settle: Option<(i64, Settlement)>, now: EpochMs, repeat_interval_ms: i64 },
}

/// What a committed job gives back.
pub(super) enum Done {
    /// The new ledger row's id, and on PostgreSQL the instant by which its request must have
    /// ended: the lease the fence extended, less a margin.
    Begin(i64, Option<std::time::Instant>),
    /// How many alerts were queued.
    Outcome(usize),
}

/// A queued job and where its answer goes.
pub(super) struct Pending {
    job: Job,
    reply: oneshot::Sender<Result<Done, StoreError>>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.job {
            Job::Begin { .. } => "Pending(begin)",
            Job::Outcome { .. } => "Pending(outcome)",
        })
    }
}

/// The jobs waiting for the next group commit (shared by a store's clones).
pub(super) type Queue = std::sync::Arc<std::sync::Mutex<Vec<Pending>>>;

/// Why a job did not go through: its own failure, or its batch's.
enum JobError {
    Job(StoreError),
    Batch(StoreError),
}

impl Store {
    /// Queues `job`, takes the writer turn, commits whatever is queued by then (this job, if
    /// no one else has yet), and answers once this job's batch is committed.
    pub(super) async fn grouped(&self, job: Job) -> Result<Done, StoreError> {
        let (reply, mut answer) = oneshot::channel();
        self.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(Pending { job, reply });
        let turn = self.writer.clone().lock_owned().await;
        // Another holder of the turn may have committed this job already; else it is queued
        // still, and this holder commits it with whatever else waits.
        if let Ok(done) = answer.try_recv() {
            return done;
        }
        self.commit_queue().await;
        drop(turn);
        answer.await.unwrap_or_else(|_| {
            Err(StoreError::Other {
                path: self.path.clone(),
                detail: "the write was abandoned before its commit".into(),
            })
        })
    }

    /// With the turn held: takes the write lock, then every job queued by then (those that
    /// queued while the lock was waited for included), and commits them as one.
    async fn commit_queue(&self) {
        let take = || std::mem::take(&mut *self.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        let mut tx = match self.pool.begin_write().await {
            Ok(tx) => tx,
            Err(e) => return fail_all(take(), &self.err(e)),
        };
        let batch = take();
        let mut results = Vec::with_capacity(batch.len());
        // The fence, when there are `sending` rows to commit: its extension counts from before
        // the statement, so the deadline errs early.
        let fenced = if batch.iter().any(|p| matches!(p.job, Job::Begin { .. })) {
            let asked = std::time::Instant::now();
            match self.check_fence(&mut tx).await {
                Ok(()) => Ok(self.fence().map(|f| asked + fence_window(f.lease_ms))),
                Err(e) if e.is_lease_lost() => Err(e),
                Err(e) => return fail_all(batch, &e),
            }
        } else {
            Ok(None)
        };
        for p in &batch {
            let job = match (&p.job, &fenced) {
                (Job::Begin { .. }, Err(lost)) => {
                    results.push(Err(lost.clone()));
                    continue;
                }
                (job, _) => job,
            };
            let deadline = fenced.as_ref().ok().copied().flatten();
            match self.job_in(&mut tx, job, deadline).await {
                Ok(done) => results.push(Ok(done)),
                Err(JobError::Job(e)) => results.push(Err(e)),
                Err(JobError::Batch(e)) => return fail_all(batch, &e),
            }
        }
        if let Err(e) = tx.commit().await {
            return fail_all(batch, &self.err(e));
        }
        tracing::trace!(jobs = batch.len(), "group commit");
        for (p, r) in batch.into_iter().zip(results) {
            // A caller that went away has nothing to be told.
            let _ = p.reply.send(r);
        }
    }

    /// One job in its savepoint.
    async fn job_in(&self, conn: &mut Tx, job: &Job, deadline: Option<std::time::Instant>) -> Result<Done, JobError> {
        let batch = |e| JobError::Batch(self.err(e));
        query("SAVEPOINT job").execute(&mut *conn).await.map_err(batch)?;
        let result = match job {
            Job::Begin { attempt, now } => {
                self.insert_attempt(conn, attempt, *now).await.map(|id| Done::Begin(id, deadline))
            }
            Job::Outcome { alerts, settle, now, repeat_interval_ms } => self
                .enqueue_in(conn, alerts, settle.as_ref().map(|(id, s)| (*id, s)), *now, *repeat_interval_ms)
                .await
                .map(Done::Outcome),
        };
        match result {
            Ok(done) => {
                query("RELEASE job").execute(&mut *conn).await.map_err(batch)?;
                Ok(done)
            }
            Err(e) => {
                // Undo this job's part and go on; if that fails, the transaction is gone.
                if query("ROLLBACK TO job").execute(&mut *conn).await.is_err()
                    || query("RELEASE job").execute(&mut *conn).await.is_err()
                {
                    return Err(JobError::Batch(e));
                }
                Err(JobError::Job(e))
            }
        }
    }
}

fn fail_all(batch: Vec<Pending>, e: &StoreError) {
    for p in batch {
        let _ = p.reply.send(Err(e.clone()));
    }
}

/// How long after the fence a request may still run: the lease less its margin
/// ([`LEASE_MARGIN_MS`], or a quarter of a short lease).
fn fence_window(lease_ms: i64) -> std::time::Duration {
    let margin = LEASE_MARGIN_MS.min(lease_ms / 4);
    std::time::Duration::from_millis((lease_ms - margin).max(0).unsigned_abs())
}

/// The part of the lease a renewal request may not use (a quarter of a lease shorter than
/// 20 s): it ends this long before another node could take the lease, for the commit, the
/// drift between the node's clock rate and the database's, and the request's last bytes.
pub const LEASE_MARGIN_MS: i64 = 5_000;
