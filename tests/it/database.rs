//! A database that cannot be written, or whose file goes away under a running daemon: the
//! alerts still reach someone (sent directly), the command exits 1, and nothing is written
//! into a deleted file or a new empty one (issue "No silent lapse").

use std::process::Stdio;

use sqlx::Connection;

use crate::daemon::{Instance, wait_for};
use crate::helpers::{DAY, sim_with, world};
use crate::smtp::SmtpServer;

fn email_toml(smtp: &SmtpServer) -> String {
    format!(
        "[alerts.email]\nsmtp_url = \"{}\"\nfrom = \"proxy-renewd <renewd@example.com>\"\nto = [\"ops@example.com\"]\n",
        smtp.url()
    )
}

/// Makes statements on `table` fail as a full disk would (`when`: `INSERT` or `UPDATE`).
async fn fail_writes(db: &std::path::Path, table: &str, when: &str) {
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display())).await.unwrap();
    let sql = format!(
        "CREATE TRIGGER full_{table}_{when} BEFORE {when} ON {table} BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();
}

#[tokio::test]
async fn an_unwritable_database_still_alerts_directly_and_exits_1() {
    let smtp = SmtpServer::start();
    let sim = sim_with(world(&[DAY])).await;
    let inst = Instance::with(&sim, "0 0 0 1 1 *", &email_toml(&smtp));
    assert_eq!(inst.run(&["rules", "list"]).await.code, 0, "creates the database");
    fail_writes(&inst.db(), "ledger", "INSERT").await;
    fail_writes(&inst.db(), "outbox", "INSERT").await;
    let ran = inst.run(&["once"]).await;
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    assert!(ran.stderr.contains("database could not be written"), "{}", ran.stderr);
    assert!(sim.calls_of("renew").is_empty(), "no row, no request");
    let mail = smtp.messages();
    assert_eq!(mail.len(), 1, "delivered although it could not be queued");
    assert!(mail[0].contains("the ledger could not be written"), "{}", mail[0]);
}

#[tokio::test]
async fn a_renewal_whose_outcome_cannot_be_recorded_exits_1() {
    let sim = sim_with(world(&[DAY])).await;
    let inst = Instance::new(&sim);
    assert_eq!(inst.run(&["rules", "list"]).await.code, 0);
    fail_writes(&inst.db(), "ledger", "UPDATE").await;
    let ran = inst.run(&["once"]).await;
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    assert!(ran.stderr.contains("the outcome (succeeded)"), "{}", ran.stderr);
    assert_eq!(sim.calls_of("renew").len(), 1, "sent once; the row stays sending, reconciled later");
}

#[tokio::test]
async fn a_database_deleted_under_the_daemon_stops_it_and_is_not_recreated() {
    let sim = sim_with(world(&[10 * DAY])).await;
    let inst = Instance::with(&sim, "* * * * * *", "");
    let mut daemon = inst.cmd(&["run"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let db = inst.db();
    wait_for("the first cycle", || !sim.calls_of("subscriptions").is_empty()).await;
    wait_for("the database", || db.exists()).await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let status = tokio::time::timeout(std::time::Duration::from_secs(15), daemon.wait())
        .await
        .expect("the daemon stops by itself")
        .unwrap();
    assert_eq!(status.code(), Some(1));
    let mut stderr = String::new();
    tokio::io::AsyncReadExt::read_to_string(daemon.stderr.as_mut().unwrap(), &mut stderr).await.unwrap();
    assert!(stderr.contains("was deleted while proxy-renewd ran"), "{stderr}");
    assert!(!db.exists(), "no new empty database under the daemon");
}
