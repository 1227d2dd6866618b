//! One cycle (`daemon.md`, *Ledger*; issue "The cycle"): read `subscriptions` → update the
//! snapshot → reconcile open ledger entries → decide with the policy → for each due
//! subscription fetch `renewal-plans`, choose, commit the ledger row, send `renew`, record the
//! outcome. Returns a [`CycleReport`] of every subscription's decision and outcome.
//!
//! A dry run does every read and none of the writes: no POST, no ledger or snapshot write,
//! and the database (if any) opened read-only; reconciliation and holds are applied in memory
//! so that the report shows what a real cycle would decide.
//!
//! Budget: subscriptions are decided most urgent first, and each renewal reserves its price,
//! so that concurrent renewals in one cycle cannot together exceed the daily budget.
//!
//! Read top to bottom: [`Cycle::run`] here; what is kept of the read in `read.rs`; what the
//! database knows (reconciled) in `known.rs`; deciding in `decide.rs`; renewing, with the
//! retries a refusal allows within the cycle, in `renew.rs`.

mod decide;
mod forecast;
mod known;
mod outage;
mod purchases;
mod read;
mod renew;

pub use forecast::{CATALOG_MAX_AGE_MS, PLANS_HORIZON_MS};
pub use read::seen;

use tokio_util::sync::CancellationToken;

use crate::alert::Alert;
use crate::alerts;
use crate::alerts::email::Mailer;
use crate::api::{ApiError, Client};
use crate::attempt::RenewOutcome;
use crate::config::{Config, Email};
use crate::report::{CycleObserver, CycleReport};
use crate::store::{SeenSubscription, Store, StoreError};
use crate::values::{Clock, EpochMs};

/// How long alert delivery may go on after a shutdown request (SIGTERM), in all.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// Why a cycle could not run at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CycleError {
    /// `op=subscriptions` failed: nothing can be decided. (Not a `source`: the message
    /// already carries it, and a chain would print it twice.) The client's message starts
    /// with the op (`subscriptions: could not connect …`), so it is not named twice.
    #[error("cannot read {0}")]
    Read(ApiError),
    /// The database failed before anything was sent.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A shutdown request arrived before any renewal started.
    #[error("stopped by a shutdown request")]
    Cancelled,
}

/// What a cycle runs with.
pub struct Cycle<'a> {
    /// The provider client.
    pub client: &'a Client,
    /// The database; `None` only for a dry run without a database file.
    pub store: Option<&'a Store>,
    /// The configuration (rules' defaults, budget, reconcile window).
    pub config: &'a Config,
    /// Requests in flight at once (`api.max_concurrency`).
    pub max_concurrency: usize,
    /// Reads only.
    pub dry_run: bool,
    /// Stops starting renewals once cancelled; those under way finish.
    pub cancel: CancellationToken,
    /// Delivers the outbox at the end of the cycle; `None`: alerts are logged only.
    pub mailer: Option<(&'a Mailer, &'a Email)>,
    /// Told as the cycle starts, ends or fails (the metrics of `[server]`), if anyone.
    pub observer: Option<&'a dyn CycleObserver>,
    /// Where "now" comes from, for every decision and every time written.
    pub clock: &'a dyn Clock,
    /// What this cycle could not write to the database (filled as it runs; empty to start).
    pub unrecorded: std::sync::Mutex<Vec<String>>,
    /// Alerts this cycle could not queue, for one direct delivery at its end (empty to start).
    pub unqueued: std::sync::Mutex<Vec<Alert>>,
    /// `op=plans` as last read for the forecast, and when (empty to start): the daemon's
    /// forecast prices what is not due yet with it, read again after
    /// [`forecast::CATALOG_MAX_AGE_MS`].
    pub plans_catalog: std::sync::Mutex<Option<(EpochMs, Vec<forecast::Listed>)>>,
}

impl std::fmt::Debug for Cycle<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cycle")
            .field("client", self.client)
            .field("store", &self.store)
            .field("max_concurrency", &self.max_concurrency)
            .field("dry_run", &self.dry_run)
            .finish_non_exhaustive()
    }
}

impl Cycle<'_> {
    /// Runs one cycle.
    ///
    /// # Errors
    /// [`CycleError::Read`] when `subscriptions` cannot be read (after retries);
    /// [`CycleError::Store`] when the database fails before any renewal is sent.
    pub async fn run(&self) -> Result<CycleReport, CycleError> {
        let started = std::time::Instant::now();
        if let Some(m) = self.observer {
            m.cycle_started();
        }
        let result = match self.lead_for_this_cycle().await {
            Ok(lease) => {
                let result = self.run_inner().await;
                if let Some(lease) = lease {
                    lease.resign().await;
                }
                result
            }
            Err(e) => Err(e),
        };
        if let Some(m) = self.observer {
            match &result {
                Ok(report) => m.cycle_done(report),
                Err(e) => m.cycle_failed(started.elapsed(), &e.to_string()),
            }
        }
        result
    }

    /// On PostgreSQL, a real cycle of a process that does not lead already (`once`, a test's
    /// cycle; not the daemon's leader) takes the lease for itself, and gives it up after.
    ///
    /// # Errors
    /// [`StoreError::LeaseLost`] naming the holder when another node leads.
    async fn lead_for_this_cycle(&self) -> Result<Option<crate::leader::Leadership>, CycleError> {
        let (Some(store), Some(ha)) = (self.store, self.config.ha) else { return Ok(None) };
        if self.dry_run || !store.is_postgres() || store.fence().is_some() {
            return Ok(None);
        }
        crate::leader::Leadership::take(store, ha.lease_ms)
            .await
            .map(Some)
            .map_err(|e| CycleError::Store(StoreError::LeaseLost { detail: e.to_string() }))
    }

    async fn run_inner(&self) -> Result<CycleReport, CycleError> {
        self.check_database_file().await?;
        let read_at = self.clock.now();
        let list = tokio::select! {
            r = self.client.subscriptions() => match r {
                Ok(list) => list,
                Err(e) => {
                    self.on_read_failure(&e, read_at).await;
                    // What is queued goes out even while the provider cannot be read.
                    self.deliver().await;
                    return Err(CycleError::Read(e));
                }
            },
            () = self.cancel.cancelled() => return Err(CycleError::Cancelled),
        };
        self.on_read_success(read_at).await;
        let mut list = read::without_duplicates(list);
        tracing::info!(
            subscriptions = list.subscriptions.len(),
            malformed = list.malformed.len(),
            not_objects = list.not_objects,
            "subscriptions read"
        );
        let seen: Vec<SeenSubscription> = list.subscriptions.iter().map(read::seen).collect();
        // `seen` kept the public fields and the client learned the secrets: nothing after
        // this needs them, and they are most of the list's memory.
        list.subscriptions.iter_mut().for_each(crate::api::Subscription::forget_secrets);
        let gone = match (self.store, self.dry_run) {
            (Some(store), false) => store.record_poll(&seen, read_at).await?,
            _ => Vec::new(),
        };
        let known = self.load(&list.subscriptions, read_at).await?;
        // Alerted once, when a managed subscription stops being listed (one listed but set
        // aside as malformed, e.g. twice with different data, is not gone: it alerts as that).
        let set_aside: std::collections::HashSet<&crate::values::SubscriptionId> =
            list.malformed.iter().filter_map(|m| m.subscription_id.as_ref()).collect();
        let vanished: Vec<SeenSubscription> = gone
            .into_iter()
            .filter(|s| !set_aside.contains(&s.subscription_id))
            .filter(|s| s.status == "active" && self.rule_of(&known, &s.subscription_id).1.enabled)
            .collect();
        for s in &vanished {
            tracing::warn!(subscription_id = %s.subscription_id, active_until = %s.active_until, "a managed subscription is no longer listed");
        }
        let (mut items, plans, probe) = tokio::select! {
            decided = self.decide_all(&list.subscriptions, seen, &known, read_at) => decided,
            () = self.cancel.cancelled() => return Err(CycleError::Cancelled),
        };
        let interrupted =
            if self.dry_run { false } else { self.renew_all(&mut items, &known, &plans, probe.as_ref()).await };
        let forecast = if self.wants_forecast(&items) {
            self.forecast_after(&list.subscriptions, &known, &items, &plans, read_at, crate::report::FORECAST_DAYS)
                .await
        } else {
            None
        };
        items.iter().filter(|i| i.needs_attention()).for_each(|i| {
            tracing::warn!(subscription_id = %i.subscription.subscription_id, reason = i.decision.reason(), outcome = i.outcome.as_ref().map(RenewOutcome::name), "needs attention");
        });
        let report = CycleReport {
            read_at,
            finished_at: self.clock.now(),
            dry_run: self.dry_run,
            items,
            malformed: list.malformed,
            not_objects: list.not_objects,
            vanished,
            unrecorded: std::mem::take(&mut *self.unrecorded.lock().unwrap_or_else(std::sync::PoisonError::into_inner)),
            reconciled: known.reconciled,
            unaccounted: known.unaccounted,
            interrupted,
            forecast,
        };
        let raised = alerts::for_cycle(&report, self.config.alerts.lapse_warning_ms, &known.alerted);
        self.raise(&raised, self.clock.now()).await;
        self.raise_open_purchases(&list.subscriptions, read_at).await;
        self.raise_weekly_forecast(&report).await;
        self.deliver().await;
        if let (Some(store), false) = (self.store, self.dry_run)
            && let Err(e) = store.record_cycle(report.finished_at).await
        {
            tracing::error!(error = %e, "cannot record the cycle's time (health checks will see it as old)");
        }
        Ok(report)
    }

    /// Sends what the outbox holds that is due (also what earlier cycles failed to send).
    /// After a shutdown request it gets [`SHUTDOWN_GRACE`] more, then gives up: what was not
    /// sent stays queued for the next start, and the process stops in time (Docker's 10 s).
    async fn deliver(&self) {
        let stopped = async {
            self.cancel.cancelled().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        };
        tokio::select! {
            () = self.deliver_now() => {}
            () = stopped => tracing::warn!(
                "shutdown: alert delivery abandoned after the grace period; the alerts stay queued for the next start"
            ),
        }
    }

    async fn deliver_now(&self) {
        let (Some(store), false) = (self.store, self.dry_run) else { return };
        let unqueued = std::mem::take(&mut *self.unqueued.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        alerts::deliver::deliver_direct(&unqueued, self.mailer, self.clock.now()).await;
        match alerts::deliver::deliver(store, self.mailer, self.clock.now()).await {
            Ok(d) => {
                if let Some(m) = self.observer {
                    let kinds: Vec<&str> = d.kinds.iter().map(|k| k.as_str()).collect();
                    let pending = store.pending_alerts().await.unwrap_or(0);
                    let dead =
                        store.recipients().await.map_or(0, |r| r.iter().filter(|r| r.dead_since.is_some()).count());
                    m.alerts_delivered(&kinds, if d.failed > 0 { 1 } else { 0 }, pending, dead as i64);
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot read or update the alert outbox"),
        }
    }

    /// Queues alerts (deduplicated); a dry run queues nothing. A failure is logged: the
    /// condition persists and the next cycle raises it again.
    async fn raise(&self, raised: &[Alert], now: EpochMs) {
        let (Some(store), false) = (self.store, self.dry_run) else { return };
        if raised.is_empty() {
            return;
        }
        match store.enqueue_alerts(raised, None, now, self.config.alerts.repeat_interval_ms).await {
            Ok(n) => tracing::debug!(raised = raised.len(), queued = n, "alerts queued"),
            Err(e) => {
                tracing::error!(error = %e, "cannot queue alerts; sending them directly");
                self.not_written(format!("{} alerts: {e}", raised.len()), raised);
            }
        }
    }

    /// Something could not be written to the database: remembered for the report (the
    /// command then exits 1), and `alerts` that could not be queued are delivered directly
    /// when the cycle delivers (one email for all of them).
    pub(super) fn not_written(&self, what: String, alerts: &[Alert]) {
        self.unrecorded.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(what);
        self.unqueued.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend_from_slice(alerts);
    }

    /// Stops a real cycle on a database file deleted or replaced under it, with an alert
    /// sent directly (it cannot go into that database).
    async fn check_database_file(&self) -> Result<(), CycleError> {
        let (Some(store), false) = (self.store, self.dry_run) else { return Ok(()) };
        let Err(e) = store.check_file() else { return Ok(()) };
        let alert = Alert::account(crate::alert::AlertKind::Database, None).with(
            e.to_string(),
            "nothing: no renewal until the database is back (the daemon stops)",
            "restore the database file from a backup, or restart proxy-renewd to start an empty one on purpose",
        );
        alerts::deliver::deliver_direct(&[alert], self.mailer, self.clock.now()).await;
        Err(CycleError::Store(e))
    }
}
