//! Several `run` nodes on one PostgreSQL database (issue 14), as the real binary with a real
//! PostgreSQL and the simulator, all on loopback: a leader SIGKILLed mid-cycle is replaced and
//! every due subscription is renewed exactly once; a leader paused (SIGSTOP) past its lease is
//! replaced and, woken, sends nothing and says its lease is stale; PostgreSQL restarted, or the
//! daemons' connections cut, mid-cycle: no `renew` without its ledger row, no double renewal,
//! and the nodes recover on their own; `once` beside a leading daemon is refused naming it,
//! and succeeds once the daemon gave the lease up on SIGTERM; a follower's `/metrics`,
//! `/healthz` and `/readyz`. The assertions are on what the simulator saw, the ledger rows
//! (read with sqlx), exit codes and log lines; the only times asserted are generous upper
//! bounds on a takeover. `takeover_times` (ignored) measures takeovers with the default lease.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proxy_renewd::sim::{FaultKind, Simulator};
use tokio::io::AsyncBufReadExt as _;

use crate::helpers::{DAY, KEY, bin, free_port, run, sim_with, world};

/// A config file shared by the nodes of one test: the simulator, the database `url`, a cron
/// every two seconds, `[ha] lease = lease` (none: the default, 30 s) and `extra` TOML.
struct Cluster {
    dir: tempfile::TempDir,
    url: String,
}

impl Cluster {
    fn new(sim: &Simulator, url: &str, lease: Option<&str>, max_concurrency: u32, extra: &str) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let ha = lease.map_or_else(String::new, |l| format!("[ha]\nlease = \"{l}\"\n"));
        let toml = format!(
            "[api]\nbase_url = \"{}\"\nkey = \"{KEY}\"\ntimeout = \"1s\"\nmax_attempts = 2\nmax_concurrency = {max_concurrency}\n\
             [ledger]\nreconcile_after = \"3s\"\n[database]\nurl = \"{url}\"\n\
             [schedule]\ncron = \"*/2 * * * * *\"\njitter = \"0s\"\n{ha}{extra}",
            sim.base_url(),
        );
        std::fs::write(dir.path().join("config.toml"), toml).unwrap();
        Cluster { dir, url: url.to_owned() }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("config.toml")
    }

    fn cmd(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = bin();
        cmd.arg("--config").arg(self.config()).args(args).env("PROXY_RENEWD_LOG__FORMAT", "json");
        cmd
    }

    /// A `run` node, its stderr (the JSON log) read line by line as it comes.
    fn node(&self, name: &str) -> Node {
        self.node_with(name, &[])
    }

    fn node_with(&self, name: &str, env: &[(&str, String)]) -> Node {
        let mut cmd = self.cmd(&["run"]);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Node::spawn(name, cmd)
    }
}

/// A log line and when the test read it.
type Lines = Arc<Mutex<Vec<(Instant, String)>>>;

/// One `run` process.
struct Node {
    name: String,
    child: tokio::process::Child,
    pid: u32,
    log: Lines,
    reader: tokio::task::JoinHandle<()>,
}

impl Node {
    fn spawn(name: &str, mut cmd: tokio::process::Command) -> Node {
        let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let pid = child.id().unwrap();
        let log: Lines = Arc::default();
        let stderr = child.stderr.take().unwrap();
        let lines = log.clone();
        let reader = tokio::spawn(async move {
            let mut r = tokio::io::BufReader::new(stderr).lines();
            while let Ok(Some(line)) = r.next_line().await {
                lines.lock().unwrap().push((Instant::now(), line));
            }
        });
        Node { name: name.to_owned(), child, pid, log, reader }
    }

    fn text(&self) -> String {
        self.log.lock().unwrap().iter().map(|(_, l)| l.as_str()).collect::<Vec<_>>().join("\n")
    }

    /// When the first line containing `s` was read.
    fn first(&self, s: &str) -> Option<Instant> {
        self.log.lock().unwrap().iter().find(|(_, l)| l.contains(s)).map(|(t, _)| *t)
    }

    fn has(&self, s: &str) -> bool {
        self.first(s).is_some()
    }

    /// The lines containing `s` read after `since`.
    fn lines_since(&self, s: &str, since: Instant) -> Vec<String> {
        self.log.lock().unwrap().iter().filter(|(t, l)| *t > since && l.contains(s)).map(|(_, l)| l.clone()).collect()
    }

    /// The subscriptions this node logged `renewed` for.
    fn renewed(&self) -> Vec<String> {
        let log = self.log.lock().unwrap();
        log.iter()
            .filter(|(_, l)| l.contains(r#""message":"renewed""#))
            .filter_map(|(_, l)| {
                let v: serde_json::Value = serde_json::from_str(l).ok()?;
                find_key(&v, "subscription_id").map(str::to_owned)
            })
            .collect()
    }

    fn signal(&self, sig: &str) {
        let ok = std::process::Command::new("kill").arg(format!("-{sig}")).arg(self.pid.to_string()).status().unwrap();
        assert!(ok.success(), "kill -{sig} {}", self.pid);
    }

    /// SIGKILL, and reaped.
    async fn kill(&mut self) {
        self.child.kill().await.unwrap();
    }

    /// SIGTERM, then its exit code within 15 s, and its whole log.
    async fn stop(mut self) -> (Option<i32>, String) {
        self.signal("TERM");
        let status = tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("{} stops within 15 s of SIGTERM: {}", self.name, self.text()))
            .unwrap();
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.reader).await;
        (status.code(), self.text())
    }
}

/// `key`'s string value anywhere in `v` (a span field is nested in the JSON log line).
fn find_key<'a>(v: &'a serde_json::Value, key: &str) -> Option<&'a str> {
    match v {
        serde_json::Value::Object(m) => {
            m.get(key).and_then(serde_json::Value::as_str).or_else(|| m.values().find_map(|x| find_key(x, key)))
        }
        serde_json::Value::Array(a) => a.iter().find_map(|x| find_key(x, key)),
        _ => None,
    }
}

/// What happened, for a reader of `--nocapture`: the leadership lines of each node and the
/// ledger's states.
async fn summary(test: &str, nodes: &[&Node], url: &str) {
    let rows = ledger(url).await;
    let mut states: HashMap<&str, usize> = HashMap::new();
    for r in &rows {
        *states.entry(r.3.as_str()).or_default() += 1;
    }
    eprintln!("{test}: ledger {states:?}");
    for n in nodes {
        let keys =
            ["became leader", "following:", "lost the lease", "not the leader", "cannot", "in flight", "gave up"];
        let lines: Vec<String> = n
            .log
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, l)| keys.iter().any(|k| l.contains(k)))
            .filter_map(|(_, l)| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|v| v["message"].as_str().unwrap_or_default().to_owned())
            .collect();
        eprintln!("  {} pid {}: {} renewed; {lines:#?}", n.name, n.pid, n.renewed().len());
    }
}

/// `wait_until`, printing the nodes' logs when it times out.
async fn wait_logged(what: &str, secs: u64, nodes: &[&Node], check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut check = check;
    while !check() {
        if Instant::now() >= deadline {
            let logs: Vec<String> =
                nodes.iter().map(|n| format!("--- {} (pid {}):\n{}", n.name, n.pid, n.text())).collect();
            panic!("timed out after {secs} s waiting for {what}\n{}", logs.join("\n"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The ledger as the database has it: (subscription, period, attempt, state).
async fn ledger(url: &str) -> Vec<(String, i64, i64, String)> {
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    let rows = sqlx::query_as("SELECT subscription_id, active_until_before_ms, attempt, state FROM ledger ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    rows
}

/// Waits until no ledger row is `sending` or `unknown` (within 30 s), then 3 s more: a late
/// call would show.
async fn settled(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let open: Vec<_> = ledger(url).await.into_iter().filter(|r| r.3 == "sending" || r.3 == "unknown").collect();
        if open.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "rows still open after 30 s: {open:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
}

/// Each subscription's `activeUntil` at the start, by id.
fn expiries(sim: &Simulator) -> HashMap<String, i64> {
    sim.state().subscriptions.iter().map(|s| (s.id.clone(), s.active_until_ms)).collect()
}

/// Renew calls per subscription: (all, applied).
fn renew_calls(sim: &Simulator) -> HashMap<String, (usize, usize)> {
    let mut per: HashMap<String, (usize, usize)> = HashMap::new();
    for c in sim.calls_of("renew") {
        let id = c.params["subscriptionId"].as_str().unwrap_or_default().to_owned();
        let e = per.entry(id).or_default();
        e.0 += 1;
        e.1 += usize::from(c.applied);
    }
    per
}

fn applied_renewals(sim: &Simulator) -> usize {
    sim.calls_of("renew").iter().filter(|c| c.applied).count()
}

/// Every subscription of `before` renewed in the simulator's state (moved by about a plan).
fn all_renewed(sim: &Simulator, before: &HashMap<String, i64>) -> bool {
    sim.state().subscriptions.iter().all(|s| s.active_until_ms > before[&s.id] + 20 * DAY)
}

/// Exactly one renewal applied per subscription, its expiry moved once, and no `renew` without
/// a ledger row: every call the simulator saw for a subscription has a row of its own for that
/// subscription and its period (the expiry before), and exactly one row succeeded.
async fn assert_exactly_once(sim: &Simulator, before: &HashMap<String, i64>, url: &str) {
    let calls = renew_calls(sim);
    let rows = ledger(url).await;
    let state = sim.state();
    for s in &state.subscriptions {
        let (sent, applied) = calls.get(&s.id).copied().unwrap_or_default();
        assert_eq!(applied, 1, "{}: exactly one renewal applied ({sent} sent); rows {:?}", s.id, rows_of(&rows, &s.id));
        let moved = s.active_until_ms - before[&s.id];
        assert!((20 * DAY..40 * DAY).contains(&moved), "{}: activeUntil moved once (by {moved} ms)", s.id);
        let mine: Vec<_> = rows_of(&rows, &s.id);
        let in_period = mine.iter().filter(|r| (r.1 - before[&s.id]).abs() <= 1_000).count();
        assert!(sent <= in_period, "{}: {sent} renew calls but {in_period} ledger rows for its period: {mine:?}", s.id);
        assert_eq!(mine.iter().filter(|r| r.3 == "succeeded").count(), 1, "{}: one succeeded row: {mine:?}", s.id);
    }
    let unknown: Vec<_> = calls.keys().filter(|k| !before.contains_key(*k)).collect();
    assert!(unknown.is_empty(), "renew calls for subscriptions not in the world: {unknown:?}");
}

fn rows_of(rows: &[(String, i64, i64, String)], id: &str) -> Vec<(String, i64, i64, String)> {
    rows.iter().filter(|r| r.0 == id).cloned().collect()
}

/// `renew` slowed by `ms` each (a fault for every call the test makes).
fn slow_renewals(sim: &Simulator, ms: u64) {
    sim.fault("renew", FaultKind::Latency { ms }, 100_000);
}

const LEADS: &str = "became leader (epoch";
const FOLLOWS: &str = "following: ";

/// 1. The leader SIGKILLed mid-cycle: the follower takes over within the lease and a cycle,
/// finishes, and each of 200 due subscriptions was renewed exactly once.
#[tokio::test]
async fn a_leader_killed_mid_cycle_is_replaced_and_every_renewal_happens_once() {
    let sim = sim_with(world(&[DAY; 200])).await;
    slow_renewals(&sim, 50);
    let before = expiries(&sim);
    let url = crate::pg::database().await;
    let cluster = Cluster::new(&sim, &url, Some("3s"), 2, "");
    let mut a = cluster.node("a");
    wait_logged("a to lead", 20, &[&a], || a.has(LEADS)).await;
    let b = cluster.node("b");
    wait_logged("b to follow", 20, &[&a, &b], || b.has(FOLLOWS)).await;
    wait_logged("a to renew some", 30, &[&a, &b], || applied_renewals(&sim) >= 40).await;
    a.kill().await;
    let killed = Instant::now();
    let at_kill = applied_renewals(&sim);
    assert!(at_kill < 200, "the kill lands mid-cycle ({at_kill} renewed)");
    wait_logged("b to take over", 15, &[&a, &b], || b.has(LEADS)).await;
    assert!(b.first(LEADS).unwrap() - killed < Duration::from_secs(3 + 10), "b leads within the lease and a cycle");
    wait_logged("every subscription renewed", 60, &[&a, &b], || all_renewed(&sim, &before)).await;
    settled(&url).await;
    summary("killed", &[&a, &b], &url).await;
    assert_exactly_once(&sim, &before, &url).await;
    assert!(!b.renewed().is_empty(), "b renewed the rest");
    let (code, log) = b.stop().await;
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("gave up the lease"), "{log}");
}

/// 2. The leader paused (SIGSTOP) with renewals pending, past its lease: the follower takes
/// over and renews the rest; woken (SIGCONT), the old leader sends nothing more and says its
/// lease is stale.
#[tokio::test]
async fn a_paused_leader_is_replaced_and_woken_sends_nothing() {
    let sim = sim_with(world(&[DAY; 12])).await;
    slow_renewals(&sim, 300);
    let before = expiries(&sim);
    let url = crate::pg::database().await;
    let cluster = Cluster::new(&sim, &url, Some("3s"), 1, "");
    let a = cluster.node("a");
    wait_logged("a to lead", 20, &[&a], || a.has(LEADS)).await;
    let b = cluster.node("b");
    wait_logged("b to follow", 20, &[&a, &b], || b.has(FOLLOWS)).await;
    wait_logged("a to renew some", 30, &[&a, &b], || applied_renewals(&sim) >= 3).await;
    // Paused with a renewal in flight, or between two, and more due.
    a.signal("STOP");
    let paused = Instant::now();
    let at_pause = applied_renewals(&sim);
    assert!(at_pause < 12, "paused with work pending ({at_pause} renewed)");
    wait_logged("b to take over", 15, &[&a, &b], || b.has(LEADS)).await;
    assert!(b.first(LEADS).unwrap() - paused < Duration::from_secs(3 + 10), "b leads within the lease and a cycle");
    wait_logged("every subscription renewed", 40, &[&a, &b], || all_renewed(&sim, &before)).await;
    settled(&url).await;
    let calls = sim.calls_of("renew").len();
    let woken = Instant::now();
    a.signal("CONT");
    wait_logged("a to say it lost the lease", 15, &[&a, &b], || !a.lines_since("lost the lease", woken).is_empty())
        .await;
    let lost = a.lines_since("lost the lease", woken);
    assert!(lost.iter().any(|l| l.contains("is stale") && l.contains("sends nothing more")), "{lost:?}");
    let b_leads = format!("pid {} leads", b.pid);
    wait_logged("a to follow b", 15, &[&a, &b], || a.lines_since(FOLLOWS, woken).iter().any(|l| l.contains(&b_leads)))
        .await;
    // Two more of a's cycles' worth of time: nothing sent by anyone.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(sim.calls_of("renew").len(), calls, "no renew after SIGCONT");
    assert!(a.lines_since("\"message\":\"renewed\"", woken + Duration::from_secs(2)).is_empty(), "{}", a.text());
    summary("paused", &[&a, &b], &url).await;
    assert_exactly_once(&sim, &before, &url).await;
    assert!(!b.renewed().is_empty(), "b renewed what a left");
    for n in [a, b] {
        let (code, log) = n.stop().await;
        assert_eq!(code, Some(0), "{log}");
    }
}

/// The two nodes of a fault test on a private server: a leader `a` that has renewed some of
/// `n` due subscriptions (each `renew` slowed by `latency` ms) and a follower `b`.
async fn two_nodes_mid_cycle(
    server: &crate::pg::Server,
    n: usize,
    latency: u64,
) -> (Simulator, HashMap<String, i64>, Cluster, Node, Node) {
    let sim = sim_with(world(&vec![DAY; n])).await;
    slow_renewals(&sim, latency);
    let before = expiries(&sim);
    let url = server.database().await;
    let cluster = Cluster::new(&sim, &url, Some("3s"), 1, "");
    let a = cluster.node("a");
    wait_logged("a to lead", 20, &[&a], || a.has(LEADS)).await;
    let b = cluster.node("b");
    wait_logged("b to follow", 20, &[&a, &b], || b.has(FOLLOWS)).await;
    wait_logged("a to renew some", 30, &[&a, &b], || applied_renewals(&sim) >= 5).await;
    (sim, before, cluster, a, b)
}

/// After a database fault: a leader again (either node), every subscription renewed exactly
/// once with a row for every call, and both nodes still running, stopping cleanly.
async fn recovered(sim: &Simulator, before: &HashMap<String, i64>, cluster: &Cluster, a: Node, b: Node) {
    wait_logged("every subscription renewed", 60, &[&a, &b], || all_renewed(sim, before)).await;
    settled(&cluster.url).await;
    summary("db fault", &[&a, &b], &cluster.url).await;
    assert_exactly_once(sim, before, &cluster.url).await;
    // A leader still: the lease is held and unexpired, and cycles go on.
    let pool = sqlx::PgPool::connect(&cluster.url).await.unwrap();
    let (holder, live): (String, bool) =
        sqlx::query_as("SELECT holder, expires_at > clock_timestamp() FROM lease WHERE name = 'leader'")
            .fetch_one(&pool)
            .await
            .unwrap();
    pool.close().await;
    assert!(live, "a leader holds the lease ({holder})");
    let reads = sim.calls_of("subscriptions").len();
    wait_logged("another cycle", 15, &[&a, &b], || sim.calls_of("subscriptions").len() > reads).await;
    assert!([a.pid, b.pid].iter().any(|p| holder.ends_with(&format!("pid {p}"))), "{holder}");
    for n in [a, b] {
        let (code, log) = n.stop().await;
        assert_eq!(code, Some(0), "neither node needed a restart: {log}");
    }
}

/// 3a. PostgreSQL restarted (fast shutdown, then started again) mid-cycle, down for longer than
/// the lease: the leader loses it, and whichever node takes it next finishes the cycle.
#[tokio::test]
async fn postgres_restarted_mid_cycle_loses_no_row_and_renews_once() {
    let mut server = crate::pg::Server::start().await;
    let (sim, before, cluster, a, b) = two_nodes_mid_cycle(&server, 40, 100).await;
    server.stop().await;
    let down = applied_renewals(&sim);
    assert!(down < 40, "stopped mid-cycle ({down} renewed)");
    tokio::time::sleep(Duration::from_secs(4)).await;
    server.start_again().await;
    recovered(&sim, &before, &cluster, a, b).await;
}

/// 3b. The daemons' connections cut (`pg_terminate_backend`) mid-cycle, ten times in 1.5 s so
/// that some cuts land inside a statement or a group commit.
#[tokio::test]
async fn cut_connections_mid_cycle_lose_no_row_and_renew_once() {
    let server = crate::pg::Server::start().await;
    let (sim, before, cluster, a, b) = two_nodes_mid_cycle(&server, 40, 100).await;
    let cut = server.terminate_backends(Some("proxy-renewd")).await;
    assert!(cut >= 2, "both nodes' connections cut ({cut})");
    let at_cut = applied_renewals(&sim);
    assert!(at_cut < 40, "cut mid-cycle ({at_cut} renewed)");
    let mut again = 0;
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        again += server.terminate_backends(Some("proxy-renewd")).await;
    }
    assert!(again > 0, "cut again as they reconnect");
    recovered(&sim, &before, &cluster, a, b).await;
}

/// 4. `once` while a `run` node leads: exit 1 naming the holder; after SIGTERM (the lease
/// given up), `once` succeeds at once, the default 30 s lease notwithstanding.
#[tokio::test]
async fn once_beside_a_leader_is_refused_naming_it_and_runs_once_it_resigned() {
    let sim = sim_with(world(&[10 * DAY, 20 * DAY])).await;
    let url = crate::pg::database().await;
    let cluster = Cluster::new(&sim, &url, None, 1, "[ha]\n");
    let a = cluster.node("a");
    wait_logged("a to lead", 20, &[&a], || a.has(LEADS)).await;
    assert!(a.has("lease 30s"), "the default lease: {}", a.text());
    let out = run(cluster.cmd(&["once"])).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    let holder =
        format!("another proxy-renewd leads on this database ({} pid {}, ", proxy_renewd::lock::hostname(), a.pid);
    assert!(out.stderr.contains(&holder), "{holder:?} in {}", out.stderr);
    let (code, log) = a.stop().await;
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("gave up the lease"), "{log}");
    let started = Instant::now();
    let out = run(cluster.cmd(&["once"])).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(started.elapsed() < Duration::from_secs(20), "once did not wait out the lease");
}

async fn get(url: &str) -> (u16, String) {
    let r = reqwest::get(url).await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    (r.status().as_u16(), r.text().await.unwrap())
}

fn gauge(metrics: &str, name: &str) -> Option<String> {
    metrics.lines().find_map(|l| l.strip_prefix(&format!("{name} ")).map(str::to_owned))
}

/// 5. A follower serves `/metrics` (`proxy_renewd_leader 0`, the leader 1), `/healthz` 200
/// while the leader cycles (from the leader's last cycle in the database) and `/readyz` 200.
#[tokio::test]
async fn a_follower_serves_metrics_health_and_readiness() {
    let sim = sim_with(world(&[10 * DAY])).await;
    let url = crate::pg::database().await;
    let cluster = Cluster::new(&sim, &url, Some("3s"), 1, "");
    let (pa, pb) = (free_port(), free_port());
    let listen = |p: u16| [("PROXY_RENEWD_SERVER__LISTEN", format!("127.0.0.1:{p}"))];
    let a = cluster.node_with("a", &listen(pa));
    wait_logged("a to lead", 20, &[&a], || a.has(LEADS)).await;
    let b = cluster.node_with("b", &listen(pb));
    wait_logged("b to follow", 20, &[&a, &b], || b.has(FOLLOWS)).await;
    let (base_a, base_b) = (format!("http://127.0.0.1:{pa}"), format!("http://127.0.0.1:{pb}"));
    // The leader has cycled, and the follower has seen it.
    let deadline = Instant::now() + Duration::from_secs(15);
    let health = loop {
        let (status, body) = get(&format!("{base_b}/healthz")).await;
        if status == 200 && body.contains("last successful cycle") {
            break body;
        }
        assert!(Instant::now() < deadline, "the follower's /healthz: {status} {body}\n{}", b.text());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(health.starts_with("ok"), "{health}");
    assert_eq!(get(&format!("{base_b}/readyz")).await.0, 200);
    let (sa, ma) = get(&format!("{base_a}/metrics")).await;
    let (sb, mb) = get(&format!("{base_b}/metrics")).await;
    assert_eq!((sa, sb), (200, 200));
    assert_eq!(gauge(&ma, "proxy_renewd_leader").as_deref(), Some("1"), "{ma}");
    assert_eq!(gauge(&mb, "proxy_renewd_leader").as_deref(), Some("0"), "{mb}");
    assert_eq!(gauge(&ma, "proxy_renewd_leader_epoch"), gauge(&mb, "proxy_renewd_leader_epoch"), "the same epoch");
    assert_eq!(get(&format!("{base_a}/healthz")).await.0, 200);
    assert_eq!(get(&format!("{base_a}/readyz")).await.0, 200);
    assert!(!sim.calls_of("subscriptions").is_empty() && sim.calls_of("renew").is_empty());
    for n in [a, b] {
        let (code, log) = n.stop().await;
        assert_eq!(code, Some(0), "{log}");
    }
}

/// Takeover times, measured (not a CI test: about 5 minutes). Ten SIGKILLs of the leader with
/// the default `[ha] lease = "30s"`, then ten with 4 s: from the kill to the follower's
/// `became leader` line, and to its first `renew` (a subscription made due just after the
/// kill). Run with
/// `cargo test --test it -- --ignored --nocapture ha::takeover_times`.
#[tokio::test]
#[ignore = "a measurement: about 5 minutes"]
async fn takeover_times() {
    for lease in [None, Some("4s")] {
        measure_takeovers(lease, 10).await;
    }
}

async fn measure_takeovers(lease: Option<&str>, rounds: usize) {
    let sim = sim_with(world(&vec![10 * DAY; rounds])).await;
    let url = crate::pg::database().await;
    let (ha, extra) = match lease {
        Some(l) => (Some(l), ""),
        None => (None, "[ha]\n"),
    };
    let cluster = Cluster::new(&sim, &url, ha, 1, extra);
    let name = lease.unwrap_or("30s (default)");
    let mut leader = cluster.node("n0");
    wait_logged("the first leader", 30, &[&leader], || leader.has(LEADS)).await;
    let mut follower = cluster.node("n1");
    wait_logged("the first follower", 30, &[&leader, &follower], || follower.has(FOLLOWS)).await;
    let (mut to_lead, mut to_renew) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        // Vary where in the lease's renewal period the kill lands.
        tokio::time::sleep(Duration::from_millis(300 + 700 * (round as u64 % 5))).await;
        leader.kill().await;
        let killed = Instant::now();
        let killed_ms = proxy_renewd::values::EpochMs::now().0;
        let sub = format!("sub{round}");
        sim.update(|s, now| s.subscriptions[round].active_until_ms = now + DAY);
        wait_logged("the follower to take over", 90, &[&leader, &follower], || follower.has(LEADS)).await;
        let led = follower.first(LEADS).unwrap() - killed;
        wait_logged("its first renew", 30, &[&follower], || {
            sim.calls_of("renew").iter().any(|c| c.params["subscriptionId"] == sub.as_str())
        })
        .await;
        let call = sim.calls_of("renew").into_iter().find(|c| c.params["subscriptionId"] == sub.as_str()).unwrap();
        let renewed = Duration::from_millis((call.at_ms - killed_ms).max(0).unsigned_abs());
        println!(
            "lease {name}: round {}: kill → became leader {:.2} s, kill → first renew {:.2} s",
            round + 1,
            led.as_secs_f64(),
            renewed.as_secs_f64()
        );
        to_lead.push(led);
        to_renew.push(renewed);
        let next = cluster.node(&format!("n{}", round + 2));
        wait_logged("a new follower", 30, &[&follower, &next], || next.has(FOLLOWS)).await;
        leader = std::mem::replace(&mut follower, next);
    }
    for (what, mut v) in [("became leader", to_lead), ("first renew", to_renew)] {
        v.sort();
        let median = (v[(v.len() - 1) / 2] + v[v.len() / 2]) / 2;
        println!(
            "lease {name}: kill → {what}: median {:.2} s, worst {:.2} s, best {:.2} s ({} kills)",
            median.as_secs_f64(),
            v.last().unwrap().as_secs_f64(),
            v[0].as_secs_f64(),
            v.len()
        );
    }
    for n in [leader, follower] {
        let (code, log) = n.stop().await;
        assert_eq!(code, Some(0), "{log}");
    }
}
