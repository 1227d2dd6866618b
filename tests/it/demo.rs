//! `demo` and `health` through the real binary.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::helpers::{DAY, world};
use crate::helpers::{KEY, bin, run, sim_with};

#[tokio::test]
async fn the_demo_runs_the_daemon_and_leaves_nothing_behind() {
    let mut cmd = bin();
    // A real provider's settings in the environment must not reach the demo.
    cmd.arg("demo").env("PROXY_RENEWD_API__BASE_URL", "http://127.0.0.1:1").env("PROXY_RENEWD_API__KEY", "rk_real_key");
    let out = run(cmd).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    for section in [
        "== 1. The audit",
        "== 2. One real cycle",
        "== 3. The ledger",
        "== 4. The alert email",
        "== 5. The audit after",
    ] {
        assert!(out.stdout.contains(section), "missing {section}:\n{}", out.stdout);
    }
    assert!(
        out.stdout.contains("renewed to")
            && out.stdout.contains("refused (HTTP 402")
            && out.stdout.contains("refused (HTTP 409"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("succeeded") && out.stdout.contains("Subject: [proxy-renewd]"), "{}", out.stdout);
    assert!(!out.stdout.contains("p_sim") && !out.stdout.contains("rk_real_key"), "no secrets");
    assert!(out.stdout.contains("temporary database is removed"));
}

#[tokio::test]
async fn demo_keep_leaves_a_database_and_a_working_config() {
    let dir = tempfile::tempdir().unwrap();
    let keep = dir.path().join("kept");
    let mut cmd = bin();
    cmd.args(["demo", "--keep"]).arg(&keep).stdout(Stdio::piped()).stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let found = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.starts_with("Kept in") {
                return true;
            }
        }
        false
    })
    .await
    .unwrap();
    assert!(found);
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    assert!(keep.join("demo.db").exists() && keep.join("config.toml").exists());
    let mut history = bin();
    history.args(["history", "--format", "json", "--config"]).arg(keep.join("config.toml"));
    let out = run(history).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["ledger"].as_array().unwrap().len(), 5);
    let mut audit = bin();
    audit.args(["--dry-run", "--config"]).arg(keep.join("config.toml"));
    assert_eq!(run(audit).await.code, 3, "the kept simulator still answers; some still need a person");
    child.kill().await.unwrap();
}

#[tokio::test]
async fn health_says_whether_the_daemon_is_cycling() {
    let sim = sim_with(world(&[10 * DAY])).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!(
            "[api]\nbase_url = \"{}\"\nkey = \"{KEY}\"\n[database]\nurl = \"sqlite://{}\"\n",
            sim.base_url(),
            dir.path().join("r.db").display()
        ),
    )
    .unwrap();
    let health = |max_age: &str| {
        let mut cmd = bin();
        cmd.args(["health", "--max-age", max_age, "--config"]).arg(&config);
        run(cmd)
    };
    let out = health("30m").await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("no database yet"), "{}", out.stderr);
    let mut once = bin();
    once.args(["once", "--config"]).arg(&config);
    assert_eq!(run(once).await.code, 0);
    let out = health("30m").await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.starts_with("healthy: last cycle finished"), "{}", out.stdout);
    // Two hours pass (in the database, not by sleeping).
    let url = format!("sqlite://{}", dir.path().join("r.db").display());
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url).await.unwrap();
    sqlx::query("UPDATE daemon_state SET value = value - 7200000 WHERE key = 'last_cycle_ms'")
        .execute(&mut conn)
        .await
        .unwrap();
    drop(conn);
    let out = health("30m").await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("unhealthy: the last cycle finished"), "{}", out.stderr);
}
