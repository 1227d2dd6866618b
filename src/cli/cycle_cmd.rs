//! `proxy-renewd once`, `run` and `--dry-run`: one cycle or the daemon, for real or as an
//! audit.

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use super::{Exit, emit, shutdown_signal};
use crate::alerts::email::Mailer;
use crate::api::Client;
use crate::config::Config;
use crate::cycle::Cycle;
use crate::daemon::{self, InstanceLock};
use crate::metrics::Metrics;
use crate::output::OutputFormat;
use crate::report;
use crate::server;
use crate::store::{self, Store};

/// The database for a real cycle: the instance lock first, then the store, then start-up
/// recovery.
async fn open_for_cycles(cfg: &Config) -> anyhow::Result<(Store, Option<InstanceLock>)> {
    let lock = match store::database_file(&cfg.database_url)? {
        Some(file) => Some(InstanceLock::acquire(&file)?),
        None => None,
    };
    let store = Store::open(&cfg.database_url).await?;
    daemon::recover(&store).await?;
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

/// A token cancelled by SIGTERM or Ctrl-C.
fn cancel_on_signal() -> CancellationToken {
    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutdown requested: no new renewals; those in flight finish");
        on_signal.cancel();
    });
    cancel
}

/// What a cycle or the daemon runs with: the client, the database (none for an audit
/// without one), the lock (none for an audit), and `api.max_concurrency`.
struct Prepared {
    client: Client,
    metrics: Option<std::sync::Arc<Metrics>>,
    mailer: Option<Mailer>,
    store: Option<Store>,
    _lock: Option<InstanceLock>,
    max_concurrency: usize,
}

impl Prepared {
    /// A cycle over these, stopped by `cancel`.
    fn cycle<'a>(&'a self, config: &'a Config, dry_run: bool, cancel: CancellationToken) -> Cycle<'a> {
        Cycle {
            client: &self.client,
            store: self.store.as_ref(),
            config,
            max_concurrency: self.max_concurrency,
            dry_run,
            cancel,
            mailer: self.mailer.as_ref().zip(config.alerts.email.as_ref()),
            metrics: self.metrics.as_deref(),
        }
    }
}

async fn prepare(cfg: &Config, dry_run: bool) -> anyhow::Result<Prepared> {
    let api = cfg.api()?;
    let client = Client::new(api.client).context("cannot set up the provider client")?;
    let (store, lock) = if dry_run {
        (open_for_audit(cfg).await?, None)
    } else {
        let (store, lock) = open_for_cycles(cfg).await?;
        (Some(store), lock)
    };
    let mailer = match &cfg.alerts.email {
        Some(email) => Some(Mailer::new(email).map_err(anyhow::Error::msg)?),
        None => {
            if !dry_run {
                tracing::warn!("no [alerts.email]: alerts are recorded and logged, and no one will be emailed");
            }
            None
        }
    };
    Ok(Prepared { client, metrics: None, mailer, store, _lock: lock, max_concurrency: api.max_concurrency as usize })
}

/// One cycle, printed as the report: exit 0, or 3 when something needs a person.
pub(super) async fn once(cfg: &Config, format: OutputFormat, dry_run: bool) -> anyhow::Result<Exit> {
    let p = prepare(cfg, dry_run).await?;
    let result = p.cycle(cfg, dry_run, cancel_on_signal()).run().await;
    if let Some(s) = &p.store {
        s.close().await;
    }
    let report = result?;
    emit(&report::render(&report, format))?;
    Ok(if report.needs_attention() { Exit::Attention } else { Exit::Ok })
}

/// The daemon until SIGTERM/SIGINT; exit 0 after a clean stop.
pub(super) async fn daemon(cfg: &Config, dry_run: bool) -> anyhow::Result<Exit> {
    let mut p = prepare(cfg, dry_run).await?;
    let cancel = cancel_on_signal();
    if let Some(addr) = cfg.server_listen {
        let metrics = std::sync::Arc::new(Metrics::new());
        let listener = server::bind(addr)
            .await
            .with_context(|| format!("cannot serve [server] listen = {addr}: pick another address"))?;
        p.client = p.client.clone().with_observer(metrics.clone());
        metrics.set_ready();
        tracing::info!(listen = %addr, "serving /metrics, /healthz, /readyz");
        tokio::spawn(server::serve(
            listener,
            metrics.clone(),
            server::health_window(&cfg.schedule.cron),
            cancel.clone(),
        ));
        p.metrics = Some(metrics);
    }
    let result = daemon::run(&p.cycle(cfg, dry_run, cancel)).await;
    if let Some(s) = &p.store {
        s.close().await;
    }
    result?;
    tracing::info!("stopped");
    Ok(Exit::Ok)
}
