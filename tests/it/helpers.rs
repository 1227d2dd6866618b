//! Shared test set-up: a simulator on a free loopback port ([`sim`], [`world`]), a client for
//! it with fast retries, a temp database with a ready cycle built the way the program builds
//! it ([`Setup`], [`spawn`]), the one switch that puts those databases on PostgreSQL instead
//! of SQLite ([`database_url`], `PROXY_RENEWD_TEST_ENGINE`), a clock the tests move instead of
//! sleeping, the reference fixtures, and the real binary.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use proxy_renewd::api::{Client, ClientConfig, RetryPolicy};
use proxy_renewd::app::{App, Mode};
use proxy_renewd::attempt::LedgerState;
use proxy_renewd::config::Config;
use proxy_renewd::cycle::Cycle;
use proxy_renewd::report::CycleReport;
use proxy_renewd::sim::{SimConfig, SimState, Simulator};
use proxy_renewd::store::Store;
use proxy_renewd::values::{EpochMs, ManualClock, SubscriptionId};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

/// The key the test simulators accept.
pub const KEY: &str = "rk_test_4f9a2c7e1b8d3f60";

/// A simulator with the sample data and [`KEY`].
pub async fn sim() -> Simulator {
    sim_with(SimState::sample(EpochMs::now().0)).await
}

/// A simulator with the given state and [`KEY`].
pub async fn sim_with(state: SimState) -> Simulator {
    Simulator::start(SimConfig { api_key: KEY.into(), state, ..SimConfig::sample() }).await.expect("simulator starts")
}

/// Client settings for `sim` with retries fast enough for tests.
pub fn config_for(sim: &Simulator) -> ClientConfig {
    let mut cfg = ClientConfig::new(sim.base_url(), SecretString::from(KEY));
    cfg.timeout = Duration::from_secs(5);
    cfg.retry = RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        max_retry_after: Duration::from_secs(5),
    };
    cfg
}

/// A client for `sim`.
pub fn client(sim: &Simulator) -> Client {
    Client::new(config_for(sim)).expect("client builds")
}

/// A client for `sim` with another key.
pub fn client_with_key(sim: &Simulator, key: &str) -> Client {
    let mut cfg = config_for(sim);
    cfg.key = SecretString::from(key.to_owned());
    Client::new(cfg).expect("client builds")
}

pub const DAY: i64 = 86_400_000;

/// One plan (30 days, 12.00), one network, and subscriptions expiring at the given offsets
/// from now (ids `sub0`, `sub1`, …).
pub fn world(offsets_ms: &[i64]) -> SimState {
    let mut s = SimState::sample(EpochMs::now().0);
    let now = EpochMs::now().0;
    let template = s.subscriptions[1].clone();
    s.subscriptions = offsets_ms
        .iter()
        .enumerate()
        .map(|(i, off)| {
            let mut sub = template.clone();
            sub.id = format!("sub{i}");
            sub.active_until_ms = now + off;
            sub.renewal_plan_ids = vec!["k17m3q5v7n9p1r2t4w6y8z0a".into()];
            sub.port = 13000 + u16::try_from(i).unwrap();
            sub
        })
        .collect();
    s.balance_cents = 1_000_000;
    s
}

/// [`world`], with a second plan (33.00, `q2w4…`) offered to every subscription and the
/// cheapest (12.00, `k17m…`) sold out: a 409 on it leaves one other plan to try.
pub fn world_with_the_cheapest_sold_out(offsets_ms: &[i64]) -> SimState {
    let mut state = world(offsets_ms);
    for sub in &mut state.subscriptions {
        sub.renewal_plan_ids.push("q2w4e6r8t0y2u4i6o8p0a2s4".into());
    }
    state.plans.iter_mut().find(|p| p.id == "k17m3q5v7n9p1r2t4w6y8z0a").expect("the cheapest plan").sold_out = true;
    state
}

/// A simulator serving `world(offsets_ms)` and a [`Setup`] for it.
pub async fn spawn(offsets_ms: &[i64], extra_toml: &str) -> (Simulator, Setup) {
    let sim = sim_with(world(offsets_ms)).await;
    let setup = Setup::new(&sim, extra_toml).await;
    (sim, setup)
}

/// [`spawn`] on SQLite whatever [`ENGINE_VAR`] says, for a test that opens the database file.
pub async fn spawn_sqlite(offsets_ms: &[i64], extra_toml: &str) -> (Simulator, Setup) {
    let sim = sim_with(world(offsets_ms)).await;
    let setup = Setup::sqlite(&sim, extra_toml).await;
    (sim, setup)
}

/// The variable that moves the shared set-ups' databases: `postgres` puts them on PostgreSQL
/// (a new database per test, [`crate::pg::database`]); unset, empty or `sqlite`, on SQLite.
pub const ENGINE_VAR: &str = "PROXY_RENEWD_TEST_ENGINE";

/// The store engine a test's database is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// A SQLite file in the test's temp dir.
    Sqlite,
    /// A new empty database on the tests' PostgreSQL.
    Postgres,
}

impl Engine {
    /// The engine [`ENGINE_VAR`] asks for; any other value than those it lists fails the test.
    pub fn from_env() -> Engine {
        match std::env::var(ENGINE_VAR).unwrap_or_default().as_str() {
            "" | "sqlite" => Engine::Sqlite,
            "postgres" | "postgresql" => Engine::Postgres,
            other => panic!("{ENGINE_VAR}={other:?}: set it to postgres or sqlite, or leave it unset (sqlite)"),
        }
    }

    /// A `[database] url` on this engine: `sqlite://` and `sqlite_file`, or a new PostgreSQL
    /// database (where `sqlite_file` is not used, and never created).
    pub fn database_url(self, sqlite_file: &Path) -> String {
        match self {
            Engine::Sqlite => format!("sqlite://{}", sqlite_file.display()),
            Engine::Postgres => crate::pg::database_blocking(),
        }
    }
}

/// The `[database] url` for a test's database, the one switch between the engines: SQLite at
/// `sqlite_file`, or with `PROXY_RENEWD_TEST_ENGINE=postgres` a new empty PostgreSQL database.
/// A test that opens, copies or checks the SQLite file itself asks for
/// `Engine::Sqlite.database_url` (or [`Setup::sqlite`], `daemon::Instance::sqlite`) instead.
pub fn database_url(sqlite_file: &Path) -> String {
    Engine::from_env().database_url(sqlite_file)
}

/// A temp directory with a config for a simulator and a database in it, and the program
/// built from them ([`App`], real mode) on a [`ManualClock`].
pub struct Setup {
    pub _dir: tempfile::TempDir,
    path: PathBuf,
    pub app: App,
    /// The app's clock: `clock.advance(ms)` is time passing, without sleeping.
    pub clock: ManualClock,
    /// The app's client and database (clones share them).
    pub client: Client,
    pub store: Store,
}

impl Setup {
    /// A config for `sim` with `extra_toml`, its database where [`database_url`] says.
    pub async fn new(sim: &Simulator, extra_toml: &str) -> Setup {
        Setup::on(Engine::from_env(), sim, extra_toml).await
    }

    /// [`Setup::new`] on SQLite whatever [`ENGINE_VAR`] says, for a test that opens the
    /// database file (`renewd.db` beside the config).
    pub async fn sqlite(sim: &Simulator, extra_toml: &str) -> Setup {
        Setup::on(Engine::Sqlite, sim, extra_toml).await
    }

    async fn on(engine: Engine, sim: &Simulator, extra_toml: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        let toml = format!(
            "[api]\nbase_url = \"{}\"\nkey = \"{KEY}\"\ntimeout = \"1s\"\nmax_attempts = 2\n[ledger]\nreconcile_after = \"3s\"\n[database]\nurl = \"{}\"\n{extra_toml}",
            sim.base_url(),
            engine.database_url(&dir.path().join("renewd.db"))
        );
        std::fs::write(&path, toml).unwrap();
        let clock = ManualClock::new();
        let app = build(&path, &clock).await;
        Setup::with_app(dir, path, app, clock)
    }

    fn with_app(dir: tempfile::TempDir, path: PathBuf, app: App, clock: ManualClock) -> Setup {
        let client = app.client().clone();
        let store = app.store().expect("a real app has its database").clone();
        Setup { _dir: dir, path, app, clock, client, store }
    }

    /// The same set-up with `n` requests in flight at once.
    pub fn with_max_concurrency(mut self, n: usize) -> Setup {
        self.app = self.app.with_max_concurrency(n);
        self
    }

    /// The config file, for running the real binary against the same database.
    pub fn config_path(&self) -> &std::path::Path {
        &self.path
    }

    /// The configuration the app was built from.
    pub fn config(&self) -> &Config {
        self.app.config()
    }

    pub async fn cycle(&self) -> CycleReport {
        self.cycle_with(false).await
    }

    pub async fn cycle_with(&self, dry_run: bool) -> CycleReport {
        self.cycle_of(dry_run).run().await.unwrap()
    }

    /// The cycle itself, for tests that expect it to fail.
    pub fn cycle_of(&self, dry_run: bool) -> Cycle<'_> {
        let cancel = CancellationToken::new();
        if dry_run { self.app.audit_cycle(cancel) } else { self.app.cycle(cancel) }
    }

    /// The same database, config and clock in a new "process": the app is dropped (its lock
    /// released, its connections closed) and built again, start-up recovery included.
    pub async fn restart(self) -> Setup {
        let Setup { _dir, path, app, clock, .. } = self;
        app.close().await;
        drop(app);
        let app = build(&path, &clock).await;
        Setup::with_app(_dir, path, app, clock)
    }
    pub async fn states(&self, id: &str) -> Vec<LedgerState> {
        self.store.ledger_for(&SubscriptionId::parse(id).unwrap()).await.unwrap().iter().map(|e| e.state).collect()
    }
}

async fn build(path: &std::path::Path, clock: &ManualClock) -> App {
    let config = Config::load(Some(path)).unwrap();
    App::build_with_clock(config, Mode::Real, Arc::new(clock.clone())).await.unwrap()
}

/// A subscription id from the sample data by position (0 is the reference's
/// `j97b2f6m1k4n8p3r5t7v9x0z`, which expired two days ago).
pub fn sample_id(i: usize) -> SubscriptionId {
    let s = if i == 0 { "j97b2f6m1k4n8p3r5t7v9x0z".to_string() } else { format!("s{i:02}b2f6m1k4n8p3r5t7v9x0z") };
    SubscriptionId::parse(&s).unwrap()
}

/// `renew` of sample subscription `i` with `plan`, no coupon, default repeat count.
pub fn renew_req(i: usize, plan: &str) -> proxy_renewd::api::RenewRequest {
    proxy_renewd::api::RenewRequest {
        subscription_id: sample_id(i),
        plan_id: proxy_renewd::values::PlanId::parse(plan).unwrap(),
        coupon_code: None,
        repeat_count: None,
    }
}

/// A fault that answers exactly `body` with `status`.
pub fn canned(status: u16, body: impl Into<String>) -> proxy_renewd::sim::FaultKind {
    proxy_renewd::sim::FaultKind::Canned { status, body: body.into(), headers: vec![] }
}

/// A fixture copied verbatim from the provider's reference.
pub fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

/// The real binary, with a clean environment for our variables and an empty config file
/// (`$PROXY_RENEWD_CONFIG`), so that a developer's `/etc/proxy-renewd/config.toml` (a real
/// key, real SMTP) is never read; `--config` and a test's own `PROXY_RENEWD_CONFIG` win.
pub fn bin() -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_proxy-renewd"));
    for (k, _) in std::env::vars() {
        if k.starts_with("PROXY_RENEWD_") || k == "RUST_LOG" || k == "CREDENTIALS_DIRECTORY" || k == "JOURNAL_STREAM" {
            cmd.env_remove(k);
        }
    }
    let empty = std::env::temp_dir().join("proxy-renewd-it-empty-cwd");
    std::fs::create_dir_all(&empty).expect("temp dir");
    let no_config = empty.join("empty-config.toml");
    std::fs::write(&no_config, "").expect("an empty config file");
    cmd.env("PROXY_RENEWD_CONFIG", no_config);
    cmd.current_dir(empty).kill_on_drop(true).stdin(std::process::Stdio::null());
    cmd
}

/// The binary pointed at `sim` through the environment.
pub fn bin_for(sim: &Simulator) -> tokio::process::Command {
    let mut cmd = bin();
    cmd.env("PROXY_RENEWD_API__BASE_URL", sim.base_url().as_str()).env("PROXY_RENEWD_API__KEY", KEY);
    cmd
}

/// What a finished command printed.
pub struct Ran {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cmd` to completion, within two minutes: a hung binary fails its test instead of
/// hanging the suite.
pub async fn run(mut cmd: tokio::process::Command) -> Ran {
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("the binary finished within 2 minutes")
        .expect("the binary runs");
    Ran {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

/// A loopback port for a server a test starts itself (SMTP, `--metrics-listen`): below the
/// kernel's ephemeral range (32768 and up, where every simulator, client and `bind(0)` port
/// comes from), so that none of those can take it between our check and the server's bind;
/// each call moves on, so two servers of this run never get the same one.
pub fn free_port() -> u16 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let start = 20_000 + std::process::id() % 10_000;
    loop {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let port = u16::try_from(20_000 + (start - 20_000 + n) % 12_000).expect("below 32000");
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}
