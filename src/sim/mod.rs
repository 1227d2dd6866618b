//! A stateful simulator of the provider API, in the spirit of stripe-mock: the eight ops of
//! `gateway-api.md` over in-memory state ([`state`]), the reference's error table ([`ops`]),
//! injected faults ([`faults`]), the HTTP surface (`server.rs`) and an admin surface under
//! `/__sim/` (`admin.rs`), put together here.
//!
//! Tests start it in-process with [`Simulator::start`] and drive it through the returned
//! handle; `proxy-renewd sim` serves it from the command line. The admin surface answers
//! loopback peers only:
//!
//! | route | does |
//! |---|---|
//! | `GET/PUT /__sim/state` | read or replace the whole [`SimState`] |
//! | `POST /__sim/balance` `{"balance_cents": N}` | set the balance |
//! | `POST /__sim/clock` `{"offset_ms": N}` | move the simulator's clock |
//! | `GET/POST/DELETE /__sim/faults` | list, add (one [`Fault`] or a list), clear faults |
//! | `GET/DELETE /__sim/calls` | the call log ([`CallRecord`]s), or clear it and the peak |
//! | `GET /__sim/stats` | [`Stats`]: requests in flight, peak in flight, calls |

mod admin;
pub mod faults;
pub mod ops;
mod server;
pub mod state;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use faults::{Fault, FaultKind};
pub use state::SimState;

use crate::values::EpochMs;

/// The API key the simulator accepts unless told otherwise.
pub const DEFAULT_API_KEY: &str = "rk_sim_key";

/// The most calls the log keeps; older ones are dropped first.
const MAX_CALLS: usize = 100_000;

/// One request the simulator received, for tests to assert on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    /// Order of arrival, from 1.
    pub seq: u64,
    /// Simulator time of the request, ms since the epoch.
    pub at_ms: i64,
    /// `GET` or `POST`.
    pub method: String,
    /// The `op` asked for; empty when none could be read.
    pub op: String,
    /// The query parameters or JSON body (never the key, which is a header); `null` when the
    /// body was not a JSON object.
    pub params: Value,
    /// The status answered; `None` when the connection was dropped.
    pub status: Option<u16>,
    /// Whether the op ran and changed (or, for a read, read) state.
    pub applied: bool,
    /// The fault that hit this request, e.g. `status-after 500`.
    pub fault: Option<String>,
    /// Whether the `x-api-key` header matched.
    pub key_ok: bool,
}

/// Load figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// `/api/proxy` requests being handled now.
    pub in_flight: u64,
    /// The most handled at once since start or the last clear of the call log.
    pub peak_in_flight: u64,
    /// Calls in the log.
    pub calls: u64,
    /// Requests waiting in a `hold` fault for a release.
    #[serde(default)]
    pub held: u64,
}

/// What a simulator starts with.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Where to listen; port 0 picks a free one.
    pub listen: SocketAddr,
    /// The only `x-api-key` accepted (not a real secret: it is printed at start-up).
    pub api_key: String,
    /// The account it serves.
    pub state: SimState,
}

impl SimConfig {
    /// Loopback, a free port, the default key and the sample data.
    #[must_use]
    pub fn sample() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            api_key: DEFAULT_API_KEY.into(),
            state: SimState::sample(EpochMs::now().0),
        }
    }
}

/// Per-connection facts handed to handlers.
#[derive(Clone)]
pub(crate) struct ConnInfo {
    /// The client's address; the admin surface answers loopback peers only.
    peer: SocketAddr,
    /// Cancelled to close the connection without answering.
    kill: CancellationToken,
}

struct Inner {
    state: SimState,
    faults: Vec<Fault>,
    calls: Vec<CallRecord>,
    seq: u64,
    /// The `op=subscriptions` success body for `state` as it is, built by the first read
    /// after a change (every mutable access clears it): a large list is served at the
    /// network's speed, as a real gateway serving it from memory would.
    subscriptions_body: Option<axum::body::Bytes>,
}

/// State shared by the HTTP handlers and the [`Simulator`] handle.
pub(crate) struct Shared {
    api_key: String,
    inner: Mutex<Inner>,
    in_flight: AtomicU64,
    peak_in_flight: AtomicU64,
    /// Requests waiting in a `hold` fault.
    held: AtomicU64,
    /// One permit per release; a `hold` takes one to go on.
    releases: tokio::sync::Semaphore,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `f` on the state with the simulator's "now" (wall clock + offset), in ms.
    fn with_state<T>(&self, f: impl FnOnce(&mut SimState, i64) -> T) -> T {
        let mut inner = self.lock();
        inner.subscriptions_body = None;
        let now = EpochMs::now().0.saturating_add(inner.state.settings.clock_offset_ms);
        f(&mut inner.state, now)
    }

    /// The request latency setting, in ms (a read: the cached list stays).
    fn latency_ms(&self) -> u64 {
        self.lock().state.settings.latency_ms
    }

    /// The `op=subscriptions` success body, from the cache when the state has not changed.
    fn subscriptions_body(&self) -> axum::body::Bytes {
        let mut inner = self.lock();
        if let Some(b) = &inner.subscriptions_body {
            return b.clone();
        }
        let body = ops::subscriptions_body(&inner.state);
        inner.subscriptions_body = Some(body.clone());
        body
    }

    fn state(&self) -> SimState {
        self.lock().state.clone()
    }

    fn take_fault(&self, op: &str) -> Option<FaultKind> {
        faults::take(&mut self.lock().faults, op)
    }

    fn add_fault(&self, f: Fault) {
        self.lock().faults.push(f);
    }

    fn faults(&self) -> Vec<Fault> {
        self.lock().faults.clone()
    }

    fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    fn record(&self, mut call: CallRecord) {
        let mut inner = self.lock();
        inner.seq += 1;
        call.seq = inner.seq;
        call.at_ms = EpochMs::now().0.saturating_add(inner.state.settings.clock_offset_ms);
        tracing::debug!(op = %call.op, status = ?call.status, applied = call.applied, fault = ?call.fault, "simulator: call");
        if inner.calls.len() >= MAX_CALLS {
            inner.calls.remove(0);
        }
        inner.calls.push(call);
    }

    fn calls(&self) -> Vec<CallRecord> {
        self.lock().calls.clone()
    }

    fn clear_calls(&self) {
        self.lock().calls.clear();
        self.peak_in_flight.store(self.in_flight.load(Ordering::SeqCst), Ordering::SeqCst);
    }

    fn stats(&self) -> Stats {
        Stats {
            in_flight: self.in_flight.load(Ordering::SeqCst),
            peak_in_flight: self.peak_in_flight.load(Ordering::SeqCst),
            calls: self.lock().calls.len() as u64,
            held: self.held.load(Ordering::SeqCst),
        }
    }
}

/// A running simulator. Dropping it stops it.
pub struct Simulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl Simulator {
    /// Binds `cfg.listen` and serves in the background on the current tokio runtime.
    ///
    /// # Errors
    /// The bind error (address in use, permission denied).
    pub async fn start(cfg: SimConfig) -> std::io::Result<Simulator> {
        let listener = TcpListener::bind(cfg.listen).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            api_key: cfg.api_key,
            inner: Mutex::new(Inner {
                state: cfg.state,
                faults: Vec::new(),
                calls: Vec::new(),
                seq: 0,
                subscriptions_body: None,
            }),
            in_flight: AtomicU64::new(0),
            peak_in_flight: AtomicU64::new(0),
            held: AtomicU64::new(0),
            releases: tokio::sync::Semaphore::new(0),
        });
        let shutdown = CancellationToken::new();
        let router = server::routes().merge(admin::routes()).with_state(shared.clone());
        tokio::spawn(server::serve(listener, router, shutdown.clone()));
        Ok(Simulator { addr, shared, shutdown })
    }

    /// The bound address.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, the `base_url` a client should use.
    #[must_use]
    pub fn base_url(&self) -> url::Url {
        url::Url::parse(&format!("http://{}", self.addr)).expect("a socket address makes a valid URL")
    }

    /// A copy of the current state.
    #[must_use]
    pub fn state(&self) -> SimState {
        self.shared.state()
    }

    /// Changes the state in place; `f` gets the simulator's "now" in ms.
    pub fn update<T>(&self, f: impl FnOnce(&mut SimState, i64) -> T) -> T {
        self.shared.with_state(f)
    }

    /// Adds a fault.
    pub fn add_fault(&self, fault: Fault) {
        self.shared.add_fault(fault);
    }

    /// Shorthand: `count` uses of `kind` on `op`.
    pub fn fault(&self, op: &str, kind: FaultKind, count: u32) {
        self.add_fault(Fault { op: op.into(), kind, count });
    }

    /// Lets `count` requests held by a `hold` fault go on (now, or when they arrive).
    pub fn release(&self, count: u32) {
        self.shared.releases.add_permits(count as usize);
    }

    /// Removes every fault.
    pub fn clear_faults(&self) {
        self.shared.clear_faults();
    }

    /// Every call so far, oldest first.
    #[must_use]
    pub fn calls(&self) -> Vec<CallRecord> {
        self.shared.calls()
    }

    /// The calls of one op.
    #[must_use]
    pub fn calls_of(&self, op: &str) -> Vec<CallRecord> {
        self.calls().into_iter().filter(|c| c.op == op).collect()
    }

    /// Forgets the call log and resets the peak.
    pub fn clear_calls(&self) {
        self.shared.clear_calls();
    }

    /// Load figures.
    #[must_use]
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// Stops accepting and closes every connection.
    pub fn stop(&self) {
        self.shutdown.cancel();
    }

    /// Serves until `shutdown` resolves (the command line passes
    /// [`crate::shutdown::signal`]), then stops.
    pub async fn run_until(self, shutdown: impl std::future::Future<Output = ()>) {
        shutdown.await;
        self.stop();
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
