//! The long-running daemon and the one-shot cycle: the instance lock, start-up recovery,
//! cycles on the cron schedule that never overlap, and shutdown on request.
//!
//! One `run` or `once` per database: an exclusive `flock` on `DB.lock` for the process's
//! life. The kernel releases it when the process dies, so a stale lock is simply taken over;
//! a live holder is named (pid, host, since) in the refusal.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_cron_scheduler::{Job, JobScheduler};

use crate::api::EpochMs;
use crate::cycle::{Cycle, CycleError, CycleReport};
use crate::store::Store;

/// Why the instance lock was not taken.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// Another live process holds it.
    #[error("another proxy-renewd is running on this database ({holder}; lock file {}): stop it first, or use another [database] url", .path.display())]
    Held {
        /// The lock file.
        path: PathBuf,
        /// `pid N on HOST since TIME`, as the holder wrote it.
        holder: String,
    },
    /// The lock file cannot be opened or locked.
    #[error("cannot lock {}: {source}", .path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// The held instance lock; released when dropped or when the process exits.
#[derive(Debug)]
pub struct InstanceLock {
    _file: File,
    path: PathBuf,
}

impl InstanceLock {
    /// Takes the lock for the database file `db`, at `db` + `.lock`.
    ///
    /// # Errors
    /// [`LockError::Held`] naming the holder; [`LockError::Io`] when the file cannot be
    /// opened or locked.
    pub fn acquire(db: &Path) -> Result<InstanceLock, LockError> {
        // One lock per file, however it is named: resolve links and relative paths.
        let db = std::fs::canonicalize(db).unwrap_or_else(|_| {
            let dir = db.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
            std::fs::canonicalize(dir).map_or_else(|_| db.to_path_buf(), |d| d.join(db.file_name().unwrap_or_default()))
        });
        let mut name = db.as_os_str().to_owned();
        name.push(".lock");
        let path = PathBuf::from(name);
        let io = |source| LockError::Io { path: path.clone(), source };
        let mut file = File::options().read(true).write(true).create(true).truncate(false).open(&path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim().to_owned();
                let holder = if holder.is_empty() { "holder unknown".into() } else { holder };
                return Err(LockError::Held { path, holder });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        let me = format!("pid {} on {} since {}", std::process::id(), hostname(), EpochMs::now());
        file.set_len(0).and_then(|()| file.rewind()).and_then(|()| file.write_all(me.as_bytes())).map_err(io)?;
        tracing::debug!(lock = %path.display(), "instance lock taken");
        Ok(InstanceLock { _file: file, path })
    }

    /// The lock file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown host".into())
}

/// Start-up recovery: rows left `sending` by a process that stopped mid-request become
/// `unknown`, to be reconciled.
///
/// # Errors
/// The database error.
pub async fn recover(store: &Store) -> Result<(), crate::store::StoreError> {
    let n = store.sending_to_unknown(EpochMs::now()).await?;
    if n > 0 {
        tracing::warn!(
            attempts = n,
            "attempts were in flight when the last process stopped; they are now unknown and will be reconciled"
        );
    }
    Ok(())
}

/// The daemon: one cycle now (catch-up after downtime), then one per `schedule.cron` tick
/// (UTC) plus a random delay up to `schedule.jitter`, until `cancel`. Cycles never overlap: a
/// tick that finds one running is skipped and logged. A failed cycle is logged and the next
/// tick tries again.
///
/// # Errors
/// The scheduler could not be set up.
pub async fn run(cycle: &Cycle<'_>) -> anyhow::Result<()> {
    let (cfg, cancel, dry_run) = (cycle.config, &cycle.cancel, cycle.dry_run);
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
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval / 2);
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = tick.tick() => notify(&[sd_notify::NotifyState::Watchdog]),
                }
            }
        });
    }
    run_logged(cycle, &busy).await;
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            Some(()) = ticks.recv() => {
                let jitter = rand::random_range(0..=cfg.schedule.jitter_ms.max(0));
                tokio::select! {
                    () = cancel.cancelled() => break,
                    () = tokio::time::sleep(Duration::from_millis(jitter.unsigned_abs())) => {}
                }
                run_logged(cycle, &busy).await;
            }
        }
    }
    tracing::info!("shutting down: no more cycles");
    notify(&[sd_notify::NotifyState::Stopping]);
    scheduler.shutdown().await?;
    Ok(())
}

fn notify(state: &[sd_notify::NotifyState]) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

async fn run_logged(cycle: &Cycle<'_>, busy: &AtomicBool) {
    busy.store(true, Ordering::SeqCst);
    match cycle.run().await {
        Ok(report) => log_summary(&report),
        Err(CycleError::Cancelled) => tracing::info!("cycle stopped by shutdown"),
        Err(e) => tracing::error!(error = %e, "cycle failed; the next tick will try again"),
    }
    busy.store(false, Ordering::SeqCst);
}

fn log_summary(report: &CycleReport) {
    let t = crate::report::totals(report);
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
