//! The composition root: [`App::build`] turns a checked [`Config`] and a [`Mode`] into
//! everything a cycle runs with (the provider client, the database behind its instance lock,
//! the mailer, the clock) and [`App`] runs it: one cycle ([`App::once`]) or the daemon with its
//! metrics server ([`App::run_until_stopped`]). The commands, the tests and the benches all
//! build through here, so there is one way to wire a cycle.

use std::sync::Arc;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::alerts::email::Mailer;
use crate::api::Client;
use crate::attempt::Origin;
use crate::config::Config;
use crate::cycle::{Cycle, CycleError};
use crate::leader::Leadership;
use crate::lock::InstanceLock;
use crate::metrics::Metrics;
use crate::renewer::Renewer;
use crate::report::{CycleObserver, CycleReport};
use crate::server;
use crate::store::{self, Store};
use crate::values::{Clock, EpochMs, SystemClock};

/// What the cycles do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Renew what is due: the instance lock, the database read-write (created and migrated
    /// if missing), and start-up recovery of attempts left `sending`.
    Real,
    /// An audit (`--dry-run`): every read as usual, no POST, no write; the database opened
    /// read-only, or none at all when its file does not exist yet; no lock.
    DryRun,
    /// A person's `renew`: the database read-write, but no instance lock and no start-up
    /// recovery, since a daemon may be running (and renewing) beside it; the ledger's period
    /// key keeps the two apart. On PostgreSQL it takes the lease (or fails naming its holder).
    Manual,
    /// `run`: as [`Mode::Real`] on SQLite. On PostgreSQL the lease is not taken at build: the
    /// daemon follows until it can lead ([`App::run_until_stopped`]).
    Daemon,
}

/// What keeps a real app's work the only one: the instance lock (SQLite), or on PostgreSQL
/// the lease of a person's `renew` for the app's life (a cycle takes the lease for itself).
#[derive(Debug)]
enum Guard {
    File(#[allow(dead_code, reason = "held for its Drop")] InstanceLock),
    Lease(Leadership),
}

/// A built program, ready to run cycles.
pub struct App {
    config: Config,
    mode: Mode,
    client: Client,
    store: Option<Store>,
    mailer: Option<Mailer>,
    metrics: Option<Arc<Metrics>>,
    clock: Arc<dyn Clock>,
    max_concurrency: usize,
    /// Held for the life of a real app: released when it is dropped.
    guard: Option<Guard>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("mode", &self.mode)
            .field("client", &self.client)
            .field("store", &self.store)
            .field("max_concurrency", &self.max_concurrency)
            .finish_non_exhaustive()
    }
}

impl App {
    /// Builds the client from `[api]`, opens the database as `mode` says and the mailer
    /// from `[alerts.email]` (without it, alerts are logged only, and a real app says so).
    ///
    /// # Errors
    /// `[api]` incomplete or invalid ([`crate::config::ConfigError`]); the instance lock held
    /// by another process ([`crate::lock::LockError`]); the database unusable
    /// ([`crate::store::StoreError`]); the SMTP URL invalid.
    pub async fn build(config: Config, mode: Mode) -> anyhow::Result<App> {
        App::build_with_clock(config, mode, Arc::new(SystemClock)).await
    }

    /// [`App::build`] reading time from `clock`, start-up recovery included (tests move a
    /// [`crate::values::ManualClock`] instead of ageing rows or sleeping).
    ///
    /// # Errors
    /// As [`App::build`].
    pub async fn build_with_clock(config: Config, mode: Mode, clock: Arc<dyn Clock>) -> anyhow::Result<App> {
        let api = config.api()?;
        let client = Client::new(api.client).context("cannot set up the provider client")?;
        let (store, guard) = match mode {
            Mode::DryRun => (open_for_audit(&config).await?, None),
            Mode::Real | Mode::Daemon => {
                let (store, guard) = open_for_cycles(&config, clock.now(), mode == Mode::Daemon).await?;
                (Some(store), guard)
            }
            Mode::Manual => {
                let store = Store::open(&config.database_url).await?;
                let guard = match config.ha {
                    Some(ha) if store.is_postgres() => Some(Guard::Lease(Leadership::take(&store, ha.lease_ms).await?)),
                    _ => None,
                };
                (Some(store), guard)
            }
        };
        let mailer = match &config.alerts.email {
            Some(email) => Some(Mailer::new(email).map_err(anyhow::Error::msg)?),
            None => {
                if matches!(mode, Mode::Real | Mode::Daemon) {
                    tracing::warn!("no [alerts.email]: alerts are recorded and logged, and no one will be emailed");
                }
                None
            }
        };
        Ok(App {
            max_concurrency: api.max_concurrency as usize,
            config,
            mode,
            client,
            store,
            mailer,
            metrics: None,
            clock,
            guard,
        })
    }

    /// The same app with another number of requests in flight at once than
    /// `api.max_concurrency` (the demo uses 1, so that it shows the same every time).
    #[must_use]
    pub fn with_max_concurrency(mut self, n: usize) -> App {
        self.max_concurrency = n.max(1);
        self
    }

    /// The configuration it was built from.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The provider client.
    #[must_use]
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The database; `None` only for a dry run without a database file.
    #[must_use]
    pub fn store(&self) -> Option<&Store> {
        self.store.as_ref()
    }

    /// The clock its cycles read.
    #[must_use]
    pub fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
    }

    /// A renewer for `origin` over the app's client, database and clock; `None` for a dry run
    /// without a database.
    #[must_use]
    pub fn renewer(&self, origin: Origin) -> Option<Renewer<'_>> {
        Some(Renewer {
            client: &self.client,
            store: self.store.as_ref()?,
            origin,
            repeat_interval_ms: self.config.alerts.repeat_interval_ms,
            clock: self.clock.as_ref(),
        })
    }

    /// A cycle in the app's mode, stopped by `cancel`.
    #[must_use]
    pub fn cycle(&self, cancel: CancellationToken) -> Cycle<'_> {
        self.cycle_as(self.mode == Mode::DryRun, cancel)
    }

    /// An audit cycle over the app's database, whatever its mode: what `demo` shows before
    /// and after its real cycle.
    #[must_use]
    pub fn audit_cycle(&self, cancel: CancellationToken) -> Cycle<'_> {
        self.cycle_as(true, cancel)
    }

    fn cycle_as(&self, dry_run: bool, cancel: CancellationToken) -> Cycle<'_> {
        Cycle {
            client: &self.client,
            store: self.store.as_ref(),
            config: &self.config,
            max_concurrency: self.max_concurrency,
            dry_run,
            cancel,
            mailer: self.mailer.as_ref().zip(self.config.alerts.email.as_ref()),
            observer: self.metrics.as_deref().map(|m| m as &dyn CycleObserver),
            clock: self.clock.as_ref(),
            unrecorded: std::sync::Mutex::default(),
            unqueued: std::sync::Mutex::default(),
            plans_catalog: std::sync::Mutex::default(),
        }
    }

    /// One cycle in the app's mode.
    ///
    /// # Errors
    /// As [`Cycle::run`].
    pub async fn once(&self, cancel: CancellationToken) -> Result<CycleReport, CycleError> {
        // On PostgreSQL the cycle takes the lease for itself, and gives it up after.
        self.cycle(cancel).run().await
    }

    /// Closes the database (checkpointing the WAL), giving the lease up first on PostgreSQL;
    /// the lock goes when the app is dropped.
    pub async fn close(&self) {
        if let Some(Guard::Lease(lease)) = &self.guard {
            lease.resign().await;
        }
        if let Some(s) = &self.store {
            s.close().await;
        }
    }

    /// The daemon until `cancel`: the metrics server when `[server] listen` is set, then
    /// cycles on the schedule ([`crate::daemon::run`]). Every task it spawns is awaited
    /// before it returns, and the database is closed.
    ///
    /// # Errors
    /// `[server] listen` cannot be bound; the scheduler cannot be set up.
    pub async fn run_until_stopped(mut self, cancel: CancellationToken) -> anyhow::Result<()> {
        let tasks = TaskTracker::new();
        if let Some(addr) = self.config.server_listen {
            let metrics = Arc::new(Metrics::new());
            let listener = server::bind(addr)
                .await
                .with_context(|| format!("cannot serve [server] listen = {addr}: pick another address"))?;
            self.client = self.client.clone().with_observer(metrics.clone());
            metrics.set_ready();
            tracing::info!(listen = %addr, "serving /metrics, /healthz, /readyz");
            let window = server::health_window(&self.config.schedule.cron);
            tasks.spawn(server::serve(listener, metrics.clone(), window, cancel.clone()));
            self.metrics = Some(metrics);
        }
        let result = match (&self.store, self.config.ha) {
            (Some(store), Some(ha)) if store.is_postgres() && self.mode == Mode::Daemon => {
                self.lead_until_stopped(store, ha.lease_ms, &cancel, &tasks).await
            }
            _ => crate::daemon::run(&self.cycle(cancel.clone()), &cancel, &tasks).await,
        };
        // Whatever ended the daemon, the tasks beside it stop with it.
        crate::daemon::notify(&[sd_notify::NotifyState::Stopping]);
        cancel.cancel();
        tasks.close();
        tasks.wait().await;
        self.close().await;
        result
    }

    /// One of several nodes on PostgreSQL, until `cancel`: follow until the lease is free; as
    /// leader, reconcile what the last leader left in flight, then run the daemon until the
    /// lease is lost (then follow again) or `cancel` (then give the lease up).
    async fn lead_until_stopped(
        &self,
        store: &Store,
        lease_ms: i64,
        cancel: &CancellationToken,
        tasks: &TaskTracker,
    ) -> anyhow::Result<()> {
        if let Some(m) = &self.metrics {
            m.set_leader(false, 0);
        }
        while let Some(lease) = Leadership::campaign(store, lease_ms, cancel, self.metrics.as_ref()).await {
            let leading = stopped_by_lease_loss(&lease, cancel.clone());
            let result = match recover(store, self.clock.now()).await {
                Ok(()) => crate::daemon::run(&self.cycle(leading.clone()), &leading, tasks).await,
                Err(e) => {
                    tracing::error!(error = %e, "cannot reconcile what the last leader left; following again");
                    Ok(())
                }
            };
            leading.cancel();
            if cancel.is_cancelled() || result.is_err() {
                lease.resign().await;
                return result;
            }
            if !lease.lost().is_cancelled() {
                // Recovery failed: let another node try.
                lease.resign().await;
            }
        }
        Ok(())
    }
}

/// The database for a real cycle: the instance lock first, then the store, then start-up
/// recovery. On PostgreSQL the lease instead of the lock: taken now (or an error naming its
/// holder), or for the daemon (`campaign`) later, recovery with it.
async fn open_for_cycles(cfg: &Config, now: EpochMs, campaign: bool) -> anyhow::Result<(Store, Option<Guard>)> {
    if let Some(ha) = cfg.ha.filter(|_| store::is_postgres(&cfg.database_url)) {
        let store = Store::open(&cfg.database_url).await?;
        if campaign {
            return Ok((store, None));
        }
        // Taken now, to refuse at once when another node leads, and for recovery; given up
        // until a cycle takes it again, so that a built app that is not cycling blocks no one.
        let lease = Leadership::take(&store, ha.lease_ms).await?;
        let recovered = recover(&store, now).await;
        lease.resign().await;
        recovered?;
        return Ok((store, None));
    }
    let lock = match store::database_file(&cfg.database_url)? {
        Some(file) => Some(Guard::File(InstanceLock::acquire(&file)?)),
        None => None,
    };
    let store = Store::open(&cfg.database_url).await?;
    recover(&store, now).await?;
    Ok((store, lock))
}

/// The database for an audit: read-only, and none at all when the file does not exist yet.
async fn open_for_audit(cfg: &Config) -> anyhow::Result<Option<Store>> {
    if store::exists(&cfg.database_url).await? {
        return Ok(Some(Store::open_read_only(&cfg.database_url).await?));
    }
    let database = store::redact_url(&cfg.database_url);
    tracing::info!(%database, "no database yet: auditing with [defaults] and an empty ledger");
    Ok(None)
}

/// Start-up recovery: rows left `sending` by a process that stopped mid-request become
/// `unknown`, to be reconciled.
async fn recover(store: &Store, now: EpochMs) -> Result<(), crate::store::StoreError> {
    let n = store.sending_to_unknown(now).await?;
    if n > 0 {
        tracing::warn!(
            attempts = n,
            "attempts were in flight when the last process stopped; they are now unknown and will be reconciled"
        );
    }
    Ok(())
}

/// A child of `cancel` that the loss of `lease` cancels too.
fn stopped_by_lease_loss(lease: &Leadership, cancel: CancellationToken) -> CancellationToken {
    let child = cancel.child_token();
    let (lost, stop) = (lease.lost().clone(), child.clone());
    tokio::spawn(async move {
        tokio::select! {
            () = lost.cancelled() => stop.cancel(),
            () = stop.cancelled() => {}
        }
    });
    child
}
