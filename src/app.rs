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
    /// key keeps the two apart.
    Manual,
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
    _lock: Option<InstanceLock>,
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
        let (store, lock) = match mode {
            Mode::DryRun => (open_for_audit(&config).await?, None),
            Mode::Real => {
                let (store, lock) = open_for_cycles(&config, clock.now()).await?;
                (Some(store), lock)
            }
            Mode::Manual => (Some(Store::open(&config.database_url).await?), None),
        };
        let mailer = match &config.alerts.email {
            Some(email) => Some(Mailer::new(email).map_err(anyhow::Error::msg)?),
            None => {
                if mode == Mode::Real {
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
            _lock: lock,
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
        self.cycle(cancel).run().await
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
        let result = crate::daemon::run(&self.cycle(cancel.clone()), &cancel, &tasks).await;
        // Whatever ended the daemon, the tasks beside it stop with it.
        cancel.cancel();
        tasks.close();
        tasks.wait().await;
        self.close().await;
        result
    }

    /// Closes the database (checkpointing the WAL); the lock goes when the app is dropped.
    pub async fn close(&self) {
        if let Some(s) = &self.store {
            s.close().await;
        }
    }
}

/// The database for a real cycle: the instance lock first, then the store, then start-up
/// recovery.
async fn open_for_cycles(cfg: &Config, now: EpochMs) -> anyhow::Result<(Store, Option<InstanceLock>)> {
    let lock = match store::database_file(&cfg.database_url)? {
        Some(file) => Some(InstanceLock::acquire(&file)?),
        None => None,
    };
    let store = Store::open(&cfg.database_url).await?;
    recover(&store, now).await?;
    Ok((store, lock))
}

/// The database for an audit: read-only, and none at all when the file does not exist yet.
async fn open_for_audit(cfg: &Config) -> anyhow::Result<Option<Store>> {
    match store::database_file(&cfg.database_url)? {
        Some(file) if !file.exists() => {
            tracing::info!(database = %file.display(), "no database yet: auditing with [defaults] and an empty ledger");
            Ok(None)
        }
        _ => Ok(Some(Store::open_read_only(&cfg.database_url).await?)),
    }
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
