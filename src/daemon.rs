//! The long-running daemon: one cycle at start-up, then cycles on the cron schedule
//! (tokio-cron-scheduler, UTC, jitter) that never overlap, the systemd notifications, and a
//! stop when its cancellation token is cancelled. What a cycle does is [`crate::cycle`]'s;
//! what it runs with is built by [`crate::app`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_cron_scheduler::{Job, JobScheduler};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cycle::{Cycle, CycleError};
use crate::report::CycleReport;
use crate::store::StoreError;

/// The daemon: one cycle now (catch-up after downtime), then one per `schedule.cron` tick
/// (UTC) plus a random delay up to `schedule.jitter`, until `cancel` is cancelled. Cycles
/// never overlap: a tick that finds one running is skipped and logged. A failed cycle is
/// logged and the next tick tries again. The tasks it spawns (the systemd watchdog) go on
/// `tasks`, for the caller to await; `cycle.cancel` should be `cancel` or a child of it, so
/// that a cycle under way stops starting renewals too.
///
/// # Errors
/// The scheduler could not be set up.
pub async fn run(cycle: &Cycle<'_>, cancel: &CancellationToken, tasks: &TaskTracker) -> anyhow::Result<()> {
    let (cfg, dry_run) = (cycle.config, cycle.dry_run);
    let busy = Arc::new(AtomicBool::new(false));
    let (tick_tx, mut ticks) = mpsc::channel::<()>(1);
    let mut scheduler = JobScheduler::new().await?;
    let job_busy = busy.clone();
    let job = Job::new_async(cfg.schedule.cron.as_str(), move |_, _| {
        let (busy, tx) = (job_busy.clone(), tick_tx.clone());
        Box::pin(async move {
            if busy.load(Ordering::SeqCst) || tx.try_send(()).is_err() {
                tracing::info!("a cycle is still running; this tick is skipped");
            }
        })
    })?;
    scheduler.add(job).await?;
    scheduler.start().await?;
    tracing::info!(cron = %cfg.schedule.cron, dry_run, "daemon started; first cycle now");
    // systemd (Type=notify): ready once the first cycle starts; a no-op outside systemd.
    notify(&[sd_notify::NotifyState::Ready]);
    if let Some(interval) = sd_notify::watchdog_enabled() {
        let stop = cancel.clone();
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(interval / 2);
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = tick.tick() => notify(&[sd_notify::NotifyState::Watchdog]),
                }
            }
        });
    }
    let mut fatal = run_logged(cycle, &busy).await;
    while fatal.is_none() {
        tokio::select! {
            () = cancel.cancelled() => break,
            Some(()) = ticks.recv() => {
                let jitter = rand::random_range(0..=cfg.schedule.jitter_ms.max(0));
                tokio::select! {
                    () = cancel.cancelled() => break,
                    () = tokio::time::sleep(Duration::from_millis(jitter.unsigned_abs())) => {}
                }
                fatal = run_logged(cycle, &busy).await;
            }
        }
    }
    tracing::info!("no more cycles on this node");
    scheduler.shutdown().await?;
    match fatal {
        Some(e) => Err(anyhow::Error::new(e).context("the daemon stopped")),
        None => Ok(()),
    }
}

/// Tells systemd (`Type=notify`); a no-op outside it.
pub fn notify(state: &[sd_notify::NotifyState]) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

/// Runs one cycle and logs it; returns the error that must stop the daemon, if any (a
/// database file deleted or replaced under it: writing on would lose the ledger).
async fn run_logged(cycle: &Cycle<'_>, busy: &AtomicBool) -> Option<CycleError> {
    busy.store(true, Ordering::SeqCst);
    let fatal = match cycle.run().await {
        Ok(report) => {
            log_summary(&report);
            None
        }
        Err(CycleError::Cancelled) => {
            tracing::info!("cycle stopped (a shutdown, or this node lost the lease)");
            None
        }
        Err(e @ CycleError::Store(StoreError::Replaced { .. })) => {
            tracing::error!(error = %e, "the database file is gone or replaced: stopping");
            Some(e)
        }
        Err(e) => {
            tracing::error!(error = %e, "cycle failed; the next tick will try again");
            None
        }
    };
    busy.store(false, Ordering::SeqCst);
    fatal
}

fn log_summary(report: &CycleReport) {
    let t = report.totals();
    tracing::info!(
        subscriptions = t.subscriptions,
        due = t.due,
        renewable = t.renewable,
        renewed = t.renewed,
        needs_attention = t.attention,
        spend_cents = t.spend_cents,
        dry_run = report.dry_run,
        elapsed_ms = report.finished_at.since(report.read_at),
        "cycle done"
    );
}
