//! The real binary as a daemon and a one-shot: killed mid-renewal it renews nothing more when
//! started again; a second instance is refused; `run` stops on SIGTERM; a manual `renew`
//! racing the daemon sends no second POST; `--dry-run` leaves the database byte-identical;
//! exit codes follow `daemon.md`.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use proxy_renewd::sim::{FaultKind, Simulator};
use serde_json::Value;

use crate::helpers::{DAY, Engine, world};
use crate::helpers::{KEY, Ran, bin, run, sim_with};

/// A temp dir with a config for a simulator, for running the real binary against it; its
/// database is where [`crate::helpers::database_url`] says, unless built with
/// [`Instance::sqlite`].
pub struct Instance {
    dir: tempfile::TempDir,
    engine: Engine,
}

impl Instance {
    /// A config for `sim` whose schedule never ticks (the start-up cycle alone).
    pub fn new(sim: &Simulator) -> Instance {
        Instance::with(sim, "0 0 0 1 1 *", "")
    }

    /// A config for `sim` with this `schedule.cron` and `extra` TOML sections.
    pub fn with(sim: &Simulator, cron: &str, extra: &str) -> Instance {
        Instance::on(Engine::from_env(), sim, cron, extra)
    }

    /// [`Instance::new`] on SQLite whatever `PROXY_RENEWD_TEST_ENGINE` says, for a test of the
    /// database file itself ([`Instance::db`]: its bytes, its lock, its deletion).
    pub fn sqlite(sim: &Simulator) -> Instance {
        Instance::sqlite_with(sim, "0 0 0 1 1 *", "")
    }

    /// [`Instance::with`] on SQLite whatever `PROXY_RENEWD_TEST_ENGINE` says.
    pub fn sqlite_with(sim: &Simulator, cron: &str, extra: &str) -> Instance {
        Instance::on(Engine::Sqlite, sim, cron, extra)
    }

    fn on(engine: Engine, sim: &Simulator, cron: &str, extra: &str) -> Instance {
        let dir = tempfile::tempdir().unwrap();
        let toml = format!(
            "[api]\nbase_url = \"{}\"\nkey = \"{KEY}\"\ntimeout = \"2s\"\nmax_attempts = 2\n[ledger]\nreconcile_after = \"6s\"\n[database]\nurl = \"{}\"\n[schedule]\ncron = \"{cron}\"\njitter = \"0s\"\n{extra}",
            sim.base_url(),
            engine.database_url(&dir.path().join("renewd.db"))
        );
        std::fs::write(dir.path().join("config.toml"), toml).unwrap();
        Instance { dir, engine }
    }

    /// The SQLite file: only for an instance built with [`Instance::sqlite`].
    pub fn db(&self) -> PathBuf {
        assert_eq!(
            self.engine,
            Engine::Sqlite,
            "Instance::db is the SQLite file: build this one with Instance::sqlite"
        );
        self.dir.path().join("renewd.db")
    }

    pub fn cmd(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = bin();
        cmd.arg("--config").arg(self.dir.path().join("config.toml")).args(args).env("PROXY_RENEWD_LOG__FORMAT", "json");
        cmd
    }

    pub async fn run(&self, args: &[&str]) -> Ran {
        run(self.cmd(args)).await
    }
}

/// Polls `check` every 20 ms for up to 15 s.
pub async fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn sigterm(pid: u32) {
    let ok = std::process::Command::new("sh").arg("-c").arg(format!("kill -TERM {pid}")).status().unwrap();
    assert!(ok.success());
}

#[tokio::test]
/// On SQLite: on PostgreSQL a SIGKILLed process holds the lease until it expires (`ha.rs`).
async fn killed_mid_renewal_and_restarted_it_renews_nothing_more() {
    let sim = sim_with(world(&[DAY])).await;
    let inst = Instance::sqlite(&sim);
    sim.fault("renew", FaultKind::StallAfter { ms: 30_000 }, 1);
    let mut child = inst.cmd(&["once"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    wait_for("the renewal to be applied", || sim.calls_of("renew").iter().any(|c| c.applied)).await;
    child.kill().await.unwrap();
    let out = inst.run(&["once", "--format", "json"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(sim.calls_of("renew").len(), 1, "no second POST after the crash");
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["reconciled"][0]["state"], "succeeded", "{doc}");
    let history: Value = serde_json::from_str(&inst.run(&["history", "--format", "json"]).await.stdout).unwrap();
    assert_eq!(history["ledger"].as_array().unwrap().len(), 1);
    assert_eq!(history["ledger"][0]["state"], "succeeded");
}

#[tokio::test]
async fn a_second_instance_is_refused_and_sigterm_stops_the_daemon() {
    let sim = sim_with(world(&[10 * DAY])).await;
    // The SQLite lock file's refusal; on PostgreSQL the lease refuses in its own words.
    let inst = Instance::sqlite(&sim);
    let mut daemon = inst.cmd(&["run"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    wait_for("the first cycle", || !sim.calls_of("subscriptions").is_empty()).await;
    let out = inst.run(&["once"]).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    let line = out.stderr.lines().find(|l| l.starts_with("error:")).unwrap_or_default().to_owned();
    assert!(
        line.contains("another proxy-renewd is running") && line.contains(&format!("pid {}", daemon.id().unwrap())),
        "{line}"
    );
    let started = Instant::now();
    sigterm(daemon.id().unwrap());
    let status =
        tokio::time::timeout(Duration::from_secs(10), daemon.wait()).await.expect("run stops after SIGTERM").unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(started.elapsed() < Duration::from_secs(10));
    // The lock went with it: a new instance may run.
    assert_eq!(inst.run(&["once"]).await.code, 0);
}

#[tokio::test]
async fn a_stale_lock_from_a_dead_process_is_taken_over() {
    let sim = sim_with(world(&[10 * DAY])).await;
    let inst = Instance::sqlite(&sim);
    let lock = inst.dir.path().join("renewd.db.lock");
    std::fs::write(&lock, "pid 999999 on elsewhere since long ago").unwrap();
    // A live holder of the flock (util-linux `flock`): refused, and named.
    // `-o`: the lock is flock's own, not its child's, so killing flock releases it.
    // Its own process group and no inherited stdio, so that its `sleep` dies with it and
    // never holds the test run's output pipe open.
    let mut holder = std::process::Command::new("flock")
        .arg("-o")
        .arg(&lock)
        .args(["sleep", "60"])
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the holder to lock", || std::fs::File::open(&lock).is_ok_and(|f| f.try_lock().is_err())).await;
    let out = inst.run(&["once"]).await;
    assert_eq!(out.code, 1, "a held lock refuses: {}", out.stderr);
    assert!(out.stderr.contains("another proxy-renewd is running"), "{}", out.stderr);
    // The holder dies (SIGKILL): the kernel drops its lock, and the next one takes over.
    let group = holder.id();
    std::process::Command::new("kill").args(["-KILL", "--", &format!("-{group}")]).status().unwrap();
    holder.wait().unwrap();
    let out = inst.run(&["once"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
}

#[tokio::test]
/// On SQLite: on PostgreSQL a `renew` is refused while a daemon leads (`ha.rs`).
async fn a_manual_renew_during_the_daemons_renewal_sends_nothing() {
    let sim = sim_with(world(&[DAY])).await;
    let inst = Instance::sqlite(&sim);
    // The daemon's renew is held at the gateway until the manual renew has been refused:
    // no sleep decides the order (and the daemon waits up to a minute for its answer).
    sim.fault("renew", FaultKind::Hold, 1);
    let daemon = inst
        .cmd(&["once"])
        .env("PROXY_RENEWD_API__TIMEOUT", "60s")
        .env("PROXY_RENEWD_LEDGER__RECONCILE_AFTER", "3m")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the daemon's renewal to be held at the gateway", || sim.stats().held > 0).await;
    let manual = inst.run(&["renew", "sub0", "--yes"]).await;
    sim.release(1);
    assert_eq!(manual.code, 1, "{}", manual.stderr);
    assert!(manual.stderr.contains("attempt 1 for sub0 is sending"), "{}", manual.stderr);
    let status = daemon.wait_with_output().await.unwrap().status;
    assert_eq!(status.code(), Some(0));
    assert_eq!(sim.calls_of("renew").len(), 1);
}

#[tokio::test]
async fn a_manual_renew_asks_unless_yes_and_records_its_origin() {
    let sim = sim_with(world(&[20 * DAY])).await;
    let inst = Instance::new(&sim);
    let out = inst.run(&["renew", "sub0"]).await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("pass --yes"), "{}", out.stderr);
    assert!(sim.calls_of("renew").is_empty());
    let out = inst.run(&["renew", "sub0", "--yes", "--repeat-count", "2"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("renewed"), "{}", out.stdout);
    assert_eq!(sim.calls_of("renew")[0].params["repeatCount"], 2);
    let history: Value =
        serde_json::from_str(&inst.run(&["history", "--subscription", "sub0", "--format", "json"]).await.stdout)
            .unwrap();
    assert_eq!(history["ledger"][0]["origin"], "manual");
    let out = inst.run(&["renew", "nosuchsub", "--yes"]).await;
    assert!(out.code == 1 && out.stderr.contains("not listed by the provider"), "{}", out.stderr);
}

#[tokio::test]
async fn a_dry_run_leaves_the_database_byte_identical_and_reports() {
    let sim = sim_with(world(&[10 * DAY, 20 * DAY])).await;
    let inst = Instance::sqlite(&sim);
    assert_eq!(inst.run(&["once"]).await.code, 0);
    let before = std::fs::read(inst.db()).unwrap();
    sim.update(|s, now| s.subscriptions[0].active_until_ms = now + DAY);
    sim.clear_calls();
    let out = inst.run(&["--dry-run", "--format", "json"]).await;
    assert_eq!(out.code, 0, "a renewable due subscription needs no one: {}", out.stderr);
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        (doc["dry_run"].as_bool(), doc["totals"]["renewable"].as_u64(), doc["totals"]["spend_cents"].as_i64()),
        (Some(true), Some(1), Some(1200))
    );
    assert_eq!(doc["subscriptions"][0]["decision"], "renew");
    assert!(sim.calls().iter().all(|c| c.method == "GET"), "no POST");
    assert_eq!(std::fs::read(inst.db()).unwrap(), before, "the database file is byte-identical");
    // A due subscription that cannot be renewed: exit 3.
    sim.update(|s, _| s.plans.iter_mut().for_each(|p| p.sold_out = p.id == "k17m3q5v7n9p1r2t4w6y8z0a"));
    sim.update(|s, _| s.subscriptions[0].renewal_plan_ids = vec![]);
    let out = inst.run(&["once", "--dry-run"]).await;
    assert_eq!(out.code, 3, "{}", out.stdout);
    assert!(out.stdout.contains("no-eligible-plan") && out.stdout.contains("dry run"), "{}", out.stdout);
    assert_eq!(std::fs::read(inst.db()).unwrap(), before);
}

#[tokio::test]
async fn a_dry_run_without_a_database_creates_none() {
    let sim = sim_with(world(&[DAY])).await;
    let inst = Instance::sqlite(&sim);
    let out = inst.run(&["--dry-run"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!inst.db().exists(), "a dry run creates no database");
}

#[tokio::test]
async fn once_exits_3_when_a_renewal_is_refused_and_1_when_the_key_is() {
    let sim = sim_with(world(&[DAY])).await;
    let inst = Instance::new(&sim);
    sim.update(|s, _| s.balance_cents = 100);
    let out = inst.run(&["once"]).await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stdout.contains("refused (HTTP 402: top up the balance)"), "{}", out.stdout);
    let refused = out.stderr.lines().find(|l| l.contains(r#""message":"renewal refused""#)).unwrap_or_default();
    assert!(refused.contains(r#""status":402"#) && refused.contains("sub0"), "the log says so: {}", out.stderr);
    // Topped up: the next cycle's balance probe renews it, and the log line gives the price
    // and the new expiry.
    sim.update(|s, _| s.balance_cents = 1_000_000);
    let out = inst.run(&["once"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let renewed = out.stderr.lines().find(|l| l.contains(r#""message":"renewed""#)).unwrap_or_default();
    assert!(renewed.contains(r#""price_cents":"#) && renewed.contains(r#""end_at":"#), "{}", out.stderr);
    let mut cmd = inst.cmd(&["once"]);
    cmd.env("PROXY_RENEWD_API__KEY", "rk_wrong");
    let out = run(cmd).await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("cannot read subscriptions") && out.stderr.contains("HTTP 401"), "{}", out.stderr);
}

#[tokio::test]
async fn the_daemon_cycles_on_its_schedule_and_audits_in_dry_run() {
    for dry_run in [false, true] {
        let sim = sim_with(world(&[DAY, 10 * DAY])).await;
        let inst = Instance::new(&sim);
        let mut args = vec!["run"];
        if dry_run {
            args.push("--dry-run");
        }
        let mut cmd = inst.cmd(&args);
        cmd.env("PROXY_RENEWD_SCHEDULE__CRON", "* * * * * *").stdout(Stdio::null()).stderr(Stdio::null());
        let mut daemon = cmd.spawn().unwrap();
        wait_for("three cycles", || sim.calls_of("subscriptions").len() >= 3).await;
        sigterm(daemon.id().unwrap());
        let status = tokio::time::timeout(Duration::from_secs(10), daemon.wait()).await.unwrap().unwrap();
        assert_eq!(status.code(), Some(0));
        let renews = sim.calls_of("renew").len();
        assert_eq!(renews, usize::from(!dry_run), "dry run {dry_run}: one renewal in all, however many cycles");
        assert_eq!(
            sim.stats().peak_in_flight,
            1,
            "cycles never overlap (max_concurrency aside, one request at a time here)"
        );
    }
}

/// Every request takes 1.5 s and the schedule ticks every second, so each tick during a cycle
/// must be skipped, not queued: cycles then start on ticks two seconds apart (a read ends
/// 1.5 s into its cycle, the next tick comes 0.5 s later). A queued tick would start the next
/// cycle the moment the last one ended, 1.5 s apart.
#[tokio::test]
async fn a_tick_during_a_cycle_is_skipped_not_queued() {
    let sim = sim_with(world(&[10 * DAY])).await;
    sim.update(|s, _| s.settings.latency_ms = 1_500);
    let inst = Instance::new(&sim);
    let mut cmd = inst.cmd(&["run"]);
    cmd.env("PROXY_RENEWD_SCHEDULE__CRON", "* * * * * *").stdout(Stdio::null()).stderr(Stdio::piped());
    let daemon = cmd.spawn().unwrap();
    wait_for("four cycles", || sim.calls_of("subscriptions").len() >= 4).await;
    sigterm(daemon.id().unwrap());
    let out = tokio::time::timeout(Duration::from_secs(10), daemon.wait_with_output()).await.unwrap().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("a cycle is still running; this tick is skipped"), "{stderr}");
    assert_eq!(sim.stats().peak_in_flight, 1, "cycles never overlap");
    let ends: Vec<i64> = sim.calls_of("subscriptions").iter().map(|c| c.at_ms).collect();
    // The first cycle starts at start-up, off the ticks; from the second on they start on one.
    for pair in ends[1..].windows(2) {
        assert!(pair[1] - pair[0] >= 1_800, "a cycle started without waiting for a tick: reads ended at {ends:?}");
    }
}

#[tokio::test]
async fn a_symlink_to_the_database_shares_its_lock() {
    let sim = sim_with(world(&[10 * DAY])).await;
    let inst = Instance::sqlite(&sim);
    let mut daemon = inst.cmd(&["run"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    wait_for("the first cycle", || !sim.calls_of("subscriptions").is_empty()).await;
    let link = inst.dir.path().join("link.db");
    std::os::unix::fs::symlink(inst.db(), &link).unwrap();
    let mut cmd = inst.cmd(&["once"]);
    cmd.env("PROXY_RENEWD_DATABASE__URL", format!("sqlite://{}", link.display()));
    let out = run(cmd).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("another proxy-renewd is running"), "{}", out.stderr);
    sigterm(daemon.id().unwrap());
    let _ = daemon.wait().await;
}
