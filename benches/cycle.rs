//! One `proxy-renewd once` cycle (the real binary) against the simulator with 10,000
//! subscriptions of which 1,000 are due, every request delayed 20 ms. Reports wall time, the
//! binary's peak RSS (VmHWM, sampled every 20 ms), and API calls made against the floor
//! (1 `subscriptions` + 2 per due subscription: `renewal-plans` and `renew`).
//!
//! Run: `cargo bench --bench cycle` (set `BENCH_SUBSCRIPTIONS`, `BENCH_DUE`,
//! `BENCH_LATENCY_MS`, `BENCH_CONCURRENCY` to vary it).

use std::time::{Duration, Instant};

use proxy_renewd::sim::{SimConfig, Simulator};
use proxy_renewd::values::EpochMs;

mod common;

use common::{env, warm, world};

fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::main]
async fn main() {
    let (total, due) = (env("BENCH_SUBSCRIPTIONS", 10_000) as usize, env("BENCH_DUE", 1_000) as usize);
    let (latency, concurrency) = (env("BENCH_LATENCY_MS", 20), env("BENCH_CONCURRENCY", 4));
    let sim = Simulator::start(SimConfig { state: world(total, due, latency), ..SimConfig::sample() }).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[api]\nbase_url = \"{}\"\nkey = \"rk_sim_key\"\nmax_concurrency = {concurrency}\n[database]\nurl = \"sqlite://{}\"\n[defaults]\nrenew_before = \"3d\"\n",
            sim.base_url(),
            dir.path().join("bench.db").display()
        ),
    )
    .unwrap();
    println!(
        "proxy-renewd once: {total} subscriptions, {due} due, {latency} ms per request, max_concurrency {concurrency}"
    );
    // The list is built once and then served from memory, as a real gateway would: built
    // here, before the clock starts.
    warm(&sim).await;
    let started = Instant::now();
    let started_ms = EpochMs::now().0;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_proxy-renewd"))
        .args(["once", "--format", "json", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let mut peak_kib = 0;
    let status = loop {
        if let Some(kib) = vm_hwm_kib(pid) {
            peak_kib = peak_kib.max(kib);
        }
        tokio::select! {
            s = child.wait() => break s.unwrap(),
            () = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    };
    let wall = started.elapsed();
    let calls = sim.calls();
    let renewed = calls.iter().filter(|c| c.op == "renew" && c.applied).count();
    let floor = 1 + 2 * due;
    println!("exit status:      {}", status.code().unwrap_or(-1));
    println!("wall time:        {:.2} s", wall.as_secs_f64());
    println!("peak RSS:         {:.1} MiB (VmHWM, sampled)", peak_kib as f64 / 1024.0);
    println!("API calls:        {} (floor {floor}: 1 subscriptions + 2 × {due} due)", calls.len());
    println!("  subscriptions:  {}", calls.iter().filter(|c| c.op == "subscriptions").count());
    println!("  renewal-plans:  {}", calls.iter().filter(|c| c.op == "renewal-plans").count());
    println!("  renew:          {} ({renewed} applied)", calls.iter().filter(|c| c.op == "renew").count());
    println!("peak concurrent:  {}", sim.stats().peak_in_flight);
    let at = |op: &str, last: bool| {
        let t = calls.iter().filter(|c| c.op == op).map(|c| c.at_ms - started_ms);
        if last { t.max() } else { t.min() }.unwrap_or(-1)
    };
    println!(
        "timeline (ms from start, when the simulator answered): subscriptions {}, renewal-plans {}..{}, renew {}..{}, exit {}",
        at("subscriptions", false),
        at("renewal-plans", false),
        at("renewal-plans", true),
        at("renew", false),
        at("renew", true),
        wall.as_millis()
    );
    assert_eq!(renewed, due, "every due subscription renewed exactly once");
}
