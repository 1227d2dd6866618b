//! Speed and memory at fleet scale, against the peer a user replaces (`curl | jq`) and the
//! floors measured in the same run, with every target of issue 13 printed as PASS or
//! FALL SHORT and its ratio:
//!
//! - **Audit** (`--dry-run --format json`, none due) at 1,000 / 10,000 / 100,000
//!   subscriptions: against a bare `curl -o /dev/null` of the same list (the network floor)
//!   and `curl | jq` selecting the due ones (the peer). Median of several runs.
//! - **Cycle** (`once`, 10,000 subscriptions, 1,000 due, 20 ms per request) at
//!   `max_concurrency` 8 and 32: wall time against the latency floor
//!   (1 + 2 × due ÷ concurrency) × latency, and API calls against their floor (1 + 2 × due).
//! - **Memory**: peak RSS of the audit and of `once` (exact: `getrusage` of a wrapper's only
//!   child) at each size, and of the idle daemon after its first cycle (VmRSS).
//! - **250,000 subscriptions** read with the default configuration.
//!
//! Every process is real: the simulator in this process on a loopback port (it serves the
//! list from memory once built), the release binary, curl and jq (installed with apt-get
//! when missing and run as root). Run: `cargo bench --bench scale`; `BENCH_RUNS` (default 5)
//! sets the runs per median, `BENCH_LARGE=0` skips 100,000 and 250,000.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use proxy_renewd::sim::{SimConfig, SimState, Simulator};
use proxy_renewd::values::EpochMs;

const BIN: &str = env!("CARGO_BIN_EXE_proxy-renewd");

mod common;

use common::{DAY, KEY, env, world};

/// What one run of a command took: wall time, its peak RSS, its exit code.
#[derive(Clone, Copy)]
struct Run {
    wall: Duration,
    rss_kib: u64,
    code: i32,
}

/// Wrapper mode (`scale --measure CMD ARGS…`): runs CMD with stdout and stderr to /dev/null,
/// then prints `wall_ns rss_kib code`. Its only child is CMD, so `getrusage(RUSAGE_CHILDREN)`
/// is CMD's own peak RSS (for a pipeline under `sh -c`, the largest of its processes).
fn measure(cmd: &[String]) {
    let started = Instant::now();
    let status = Command::new(&cmd[0])
        .args(&cmd[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("the measured command starts");
    let wall = started.elapsed();
    // SAFETY: getrusage writes into the zeroed struct it is given, nothing else.
    let rss_kib = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage.ru_maxrss
    };
    println!("{} {rss_kib} {}", wall.as_nanos(), status.code().unwrap_or(-1));
}

/// Runs `cmd` once under the wrapper.
fn run_once(cmd: &[&str]) -> Run {
    let out = Command::new(std::env::current_exe().expect("the bench binary"))
        .arg("--measure")
        .args(cmd)
        .output()
        .expect("the wrapper runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let f: Vec<i64> = text.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    assert_eq!(f.len(), 3, "the wrapper's answer: {text:?}");
    Run { wall: Duration::from_nanos(f[0] as u64), rss_kib: f[1] as u64, code: f[2] as i32 }
}

/// The median wall time (and the largest RSS) of `runs` runs, after one warm-up run.
fn median(cmd: &[&str], runs: u64) -> Run {
    run_once(cmd);
    let mut all: Vec<Run> = (0..runs.max(1)).map(|_| run_once(cmd)).collect();
    all.sort_by_key(|r| r.wall);
    let rss_kib = all.iter().map(|r| r.rss_kib).max().unwrap_or(0);
    Run { rss_kib, ..all[all.len() / 2] }
}

/// A simulator serving `state`, its `subscriptions` list already built (a real gateway
/// serves it from memory; the simulator builds it at the first read after a change).
fn start(runtime: &tokio::runtime::Runtime, state: SimState) -> Simulator {
    runtime.block_on(async {
        let sim = Simulator::start(SimConfig { state, ..SimConfig::sample() }).await.expect("the simulator starts");
        common::warm(&sim).await;
        sim
    })
}

fn config(dir: &Path, name: &str, sim: &Simulator, extra: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    let text = format!(
        "[api]\nbase_url = \"{}\"\nkey = \"{KEY}\"\n{extra}\n[database]\nurl = \"sqlite://{}\"\n[defaults]\nrenew_before = \"3d\"\n",
        sim.base_url(),
        dir.join(format!("{name}.db")).display()
    );
    std::fs::write(&path, text).expect("the config is written");
    // The key is in the file: keep it private, as the program asks (no warning in the runs).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
    }
    path
}

fn has(tool: &str) -> bool {
    Command::new(tool).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// curl and jq, installed from Debian's packages when missing (as root).
fn peers_available() -> bool {
    if has("curl") && has("jq") {
        return true;
    }
    println!("curl or jq is missing: installing them with apt-get");
    let _ = Command::new("apt-get").args(["install", "-y", "-qq", "curl", "jq"]).status();
    has("curl") && has("jq")
}

/// One target's line: what, measured, the bound, the ratio, and the verdict.
struct Verdicts(Vec<(String, String, bool)>);

impl Verdicts {
    fn add(&mut self, what: String, measured: String, pass: bool) {
        self.0.push((what, measured, pass));
    }

    fn print(&self) {
        println!("\n{:<66} {:<40} verdict", "target", "measured");
        for (what, measured, pass) in &self.0 {
            println!("{what:<66} {measured:<40} {}", if *pass { "PASS" } else { "FALL SHORT" });
        }
        let short = self.0.iter().filter(|(_, _, pass)| !pass).count();
        println!("{} targets: {} PASS, {short} FALL SHORT", self.0.len(), self.0.len() - short);
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--measure") {
        measure(&args[2..]);
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a runtime");
    let runs = env("BENCH_RUNS", 5);
    let large = env("BENCH_LARGE", 1) == 1;
    let dir = tempfile::tempdir().expect("a temp dir");
    let peers = peers_available();
    let mut verdicts = Verdicts(Vec::new());
    println!("proxy-renewd at scale: {} (release), {runs} runs per median", BIN);

    // Audit and `once`, none due, at each size.
    let sizes: &[usize] = if large { &[1_000, 10_000, 100_000] } else { &[1_000, 10_000] };
    let mut rss_audit = Vec::new();
    for &n in sizes {
        let sim = start(&runtime, world(n, 0, 0));
        let cfg = config(dir.path(), &format!("audit{n}"), &sim, "");
        let cfg = cfg.to_str().expect("a UTF-8 path");
        let url = format!("{}api/proxy?op=subscriptions", sim.base_url());
        let header = format!("x-api-key: {KEY}");
        let once = run_once(&[BIN, "once", "--format", "json", "--config", cfg]);
        assert_eq!(once.code, 0, "once with none due exits 0");
        let ours = median(&[BIN, "--dry-run", "--format", "json", "--config", cfg], runs);
        assert_eq!(ours.code, 0, "the audit with none due exits 0");
        let bare = median(&["curl", "-s", "-o", "/dev/null", "-H", &header, &url], runs);
        let due_before = EpochMs::now().0 + 3 * DAY;
        let jq = format!(
            "curl -s -H '{header}' '{url}' | jq '[.subscriptions[] | select(.activeUntil < {due_before}) | .subscriptionId]'"
        );
        let peer = if peers { Some(median(&["sh", "-c", &jq], runs)) } else { None };
        println!(
            "{n:>7} subscriptions: audit {:.1} ms ({:.1} MiB), once {:.1} ms ({:.1} MiB), bare curl {:.1} ms, curl | jq {}",
            ms(ours.wall),
            mib(ours.rss_kib),
            ms(once.wall),
            mib(once.rss_kib),
            ms(bare.wall),
            peer.map_or("skipped".into(), |p| format!("{:.1} ms ({:.1} MiB)", ms(p.wall), mib(p.rss_kib)))
        );
        if n >= 10_000 {
            let r = ours.wall.as_secs_f64() / bare.wall.as_secs_f64();
            verdicts.add(
                format!("audit {n}: ≤ 2 × a bare download of the list"),
                format!("{:.1} ms / {:.1} ms = {r:.1}×", ms(ours.wall), ms(bare.wall)),
                r <= 2.0,
            );
            if let Some(p) = peer {
                let r = p.wall.as_secs_f64() / ours.wall.as_secs_f64();
                verdicts.add(
                    format!("audit {n}: ≥ 4 × faster than curl | jq"),
                    format!("{:.1} ms / {:.1} ms = {r:.1}×", ms(p.wall), ms(ours.wall)),
                    r >= 4.0,
                );
            }
            let cap = if n >= 100_000 { 256.0 } else { 64.0 };
            for (what, run) in [("audit", ours), ("once", once)] {
                verdicts.add(
                    format!("peak RSS, {what} {n}: ≤ {cap} MiB"),
                    format!("{:.1} MiB", mib(run.rss_kib)),
                    mib(run.rss_kib) <= cap,
                );
            }
        }
        rss_audit.push((n, ours.rss_kib, once.rss_kib));
        sim.stop();
    }
    let growth: Vec<String> = rss_audit.iter().map(|(n, a, o)| format!("{n}: {:.0}/{:.0}", mib(*a), mib(*o))).collect();
    println!("peak RSS in MiB, audit/once, by size: {}", growth.join(", "));

    // The cycle against its latency floor.
    let (total, due, latency) = (10_000, 1_000, 20);
    for concurrency in [8u64, 32] {
        let sim = start(&runtime, world(total, due, latency));
        let cfg = config(dir.path(), &format!("cycle{concurrency}"), &sim, &format!("max_concurrency = {concurrency}"));
        let run = run_once(&[BIN, "once", "--format", "json", "--config", cfg.to_str().expect("UTF-8")]);
        let calls = sim.calls();
        let renewed = calls.iter().filter(|c| c.op == "renew" && c.applied).count();
        let floor_ms = (1.0 + 2.0 * due as f64 / concurrency as f64) * latency as f64;
        let r = ms(run.wall) / floor_ms;
        println!(
            "once, {total} subscriptions, {due} due, {latency} ms per request, max_concurrency {concurrency}: {:.0} ms, {:.1} MiB, {} calls ({renewed} renewals applied), exit {}",
            ms(run.wall),
            mib(run.rss_kib),
            calls.len(),
            run.code
        );
        assert_eq!(renewed, due, "every due subscription renewed exactly once");
        verdicts.add(
            format!("cycle at max_concurrency {concurrency}: ≤ 1.2 × the latency floor"),
            format!("{:.0} ms / {floor_ms:.0} ms = {r:.2}×", ms(run.wall)),
            r <= 1.2,
        );
        verdicts.add(
            format!("cycle at max_concurrency {concurrency}: API calls = the floor"),
            format!("{} calls, floor {}", calls.len(), 1 + 2 * due),
            calls.len() == 1 + 2 * due,
        );
        sim.stop();
    }

    // The idle daemon after its first cycle.
    let sim = start(&runtime, SimConfig::sample().state);
    let cfg = config(dir.path(), "idle", &sim, "");
    let mut daemon = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the daemon starts");
    let deadline = Instant::now() + Duration::from_secs(30);
    while sim.calls_of("subscriptions").is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(2));
    let status = std::fs::read_to_string(format!("/proc/{}/status", daemon.id())).unwrap_or_default();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let (rss, threads) = (field("VmRSS:"), field("Threads:"));
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) };
    let _ = daemon.wait();
    verdicts.add(
        "idle daemon after its first cycle: ≤ 15 MiB".into(),
        format!("{:.1} MiB, {threads} threads", mib(rss)),
        mib(rss) <= 15.0,
    );
    sim.stop();

    // 250,000 subscriptions with the default configuration.
    if large {
        let n = 250_000;
        let sim = start(&runtime, world(n, 0, 0));
        let cfg = config(dir.path(), "big", &sim, "");
        let run = run_once(&[BIN, "--dry-run", "--format", "json", "--config", cfg.to_str().expect("UTF-8")]);
        verdicts.add(
            format!("{n} subscriptions read with the default configuration"),
            format!("exit {}, {:.0} ms, {:.0} MiB", run.code, ms(run.wall), mib(run.rss_kib)),
            run.code == 0,
        );
        sim.stop();
    }

    verdicts.print();
}
