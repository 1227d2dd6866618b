//! Shared test set-up: a simulator on a free loopback port, a client for it with fast
//! retries, the reference fixtures, and the real binary.

use std::path::PathBuf;
use std::time::Duration;

use proxy_renewd::api::{Client, ClientConfig, RetryPolicy, SubscriptionId};
use proxy_renewd::sim::{SimConfig, SimState, Simulator};
use secrecy::SecretString;

/// The key the test simulators accept.
pub const KEY: &str = "rk_test_4f9a2c7e1b8d3f60";

/// A simulator with the sample data and [`KEY`].
pub async fn sim() -> Simulator {
    sim_with(SimState::sample(proxy_renewd::api::EpochMs::now().0)).await
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
        plan_id: proxy_renewd::api::PlanId::parse(plan).unwrap(),
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

/// The real binary, with no config file and a clean environment for our variables.
pub fn bin() -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_proxy-renewd"));
    for (k, _) in std::env::vars() {
        if k.starts_with("PROXY_RENEWD_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    let empty = std::env::temp_dir().join("proxy-renewd-it-empty-cwd");
    std::fs::create_dir_all(&empty).expect("temp dir");
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

/// Runs `cmd` to completion.
pub async fn run(mut cmd: tokio::process::Command) -> Ran {
    let out = cmd.output().await.expect("the binary runs");
    Ran {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}
