//! A database that cannot be written, or whose file goes away under a running daemon: the
//! alerts still reach someone (sent directly), the command exits 1, and nothing is written
//! into a deleted file or a new empty one (issue "No silent lapse"). The faults are made in the
//! SQLite file (triggers, deletion), so those tests stay on SQLite whatever the engine switch.

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

/// Creates the database with its schema, as the first write of any command would.
async fn create_database(db: &std::path::Path) {
    proxy_renewd::store::Store::open(&format!("sqlite://{}", db.display())).await.unwrap().close().await;
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
    let inst = Instance::sqlite_with(&sim, "0 0 0 1 1 *", &email_toml(&smtp));
    create_database(&inst.db()).await;
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
    let inst = Instance::sqlite(&sim);
    create_database(&inst.db()).await;
    fail_writes(&inst.db(), "ledger", "UPDATE").await;
    let ran = inst.run(&["once"]).await;
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    assert!(ran.stderr.contains("the outcome (succeeded)"), "{}", ran.stderr);
    assert_eq!(sim.calls_of("renew").len(), 1, "sent once; the row stays sending, reconciled later");
}

#[tokio::test]
async fn a_database_deleted_under_the_daemon_stops_it_and_is_not_recreated() {
    let sim = sim_with(world(&[10 * DAY])).await;
    let inst = Instance::sqlite_with(&sim, "* * * * * *", "");
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

#[tokio::test]
async fn sigterm_stops_within_10_seconds_whatever_smtp_does_and_the_alerts_stay_queued() {
    // An SMTP server that accepts connections and never says a word.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    silent.set_nonblocking(true).unwrap();
    let port = silent.local_addr().unwrap().port();
    let sim = sim_with(world(&[DAY])).await;
    sim.fault("renew", proxy_renewd::sim::FaultKind::StatusBefore { status: 409 }, 1);
    let email = format!(
        "[alerts.email]\nsmtp_url = \"smtp://127.0.0.1:{port}\"\nfrom = \"proxy-renewd <renewd@example.com>\"\nto = [\"ops@example.com\"]\n"
    );
    let inst = Instance::sqlite_with(&sim, "0 0 0 1 1 *", &email);
    let daemon = inst.cmd(&["run"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let mut accepted = Vec::new();
    wait_for("the daemon to start delivering the alert", || match silent.accept() {
        Ok((conn, _)) => {
            accepted.push(conn);
            true
        }
        Err(_) => false,
    })
    .await;
    crate::daemon::sigterm(daemon.id().unwrap());
    let started = std::time::Instant::now();
    let out = tokio::time::timeout(std::time::Duration::from_secs(10), daemon.wait_with_output())
        .await
        .expect("stopped within 10 s")
        .unwrap();
    assert!(out.status.success(), "{:?}", out.status);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    let store = proxy_renewd::store::Store::open_read_only(&format!("sqlite://{}", inst.db().display())).await.unwrap();
    assert!(store.pending_alerts().await.unwrap() >= 1, "unsent alerts stay queued");
    drop(accepted);
}

#[tokio::test]
async fn the_smtp_dialogue_never_reaches_the_log_whatever_rust_log_says() {
    let smtp = SmtpServer::start();
    let sim = sim_with(world(&[20 * DAY])).await;
    let inst = Instance::with(&sim, "0 0 0 1 1 *", &email_toml(&smtp));
    for filter in ["trace", "info,lettre::transport::smtp=trace", "info,lettre=trace"] {
        let mut cmd = inst.cmd(&["alerts", "test"]);
        cmd.env("RUST_LOG", filter);
        let ran = crate::helpers::run(cmd).await;
        assert_eq!(ran.code, 0, "{filter}: {}", ran.stderr);
        for dialogue in ["EHLO", "MAIL FROM", "RCPT TO", "DATA", "AUTH", "\"target\":\"lettre"] {
            assert!(!ran.stderr.contains(dialogue), "{filter}: {dialogue} in the log:\n{}", ran.stderr);
        }
        assert!(ran.stderr.contains("proxy_renewd"), "{filter}: our own log is still there");
    }
    assert_eq!(smtp.messages().len(), 3);
}

#[tokio::test]
async fn the_top_up_figure_covers_every_renewal_the_short_balance_blocked() {
    // Balance 0, six due at 12.00 each, one request at a time: one 402, five not tried.
    let smtp = SmtpServer::start();
    let mut state = world(&[2 * DAY, 2 * DAY + 1, 2 * DAY + 2, 2 * DAY + 3, 2 * DAY + 4, 2 * DAY + 5]);
    state.balance_cents = 0;
    let sim = sim_with(state).await;
    let s = crate::helpers::Setup::new(&sim, &format!("[alerts]\ninstance = \"eu-1\"\n{}", email_toml(&smtp)))
        .await
        .with_max_concurrency(1);
    s.cycle().await;
    assert_eq!(sim.calls_of("renew").len(), 1);
    let mail = smtp.messages();
    assert_eq!(mail.len(), 1);
    assert!(
        mail[0].contains("Top up the balance by at least 72.00 (7200 cents) to cover the 6 renewals"),
        "{}",
        mail[0]
    );
    assert!(mail[0].contains("(instance eu-1)"), "the host and the instance: {}", mail[0]);
    // Every action names the subscription.
    assert!(mail[0].contains("sub3") && !mail[0].contains(" ID`") && !mail[0].contains(" ID "), "{}", mail[0]);
}

#[tokio::test]
async fn starttls_with_a_private_ca_and_a_login_delivers_when_the_ca_is_trusted() {
    let smtp = SmtpServer::tls_with_login("renewd", "s3cret-pw-9q");
    let sim = sim_with(world(&[20 * DAY])).await;
    let url = format!("smtp://renewd:s3cret-pw-9q@localhost:{}?tls=required", smtp.port);
    let email = |ca: &str| {
        format!(
            "[alerts.email]\nsmtp_url = \"{url}\"\n{ca}from = \"proxy-renewd <renewd@example.com>\"\nto = [\"ops@example.com\"]\n"
        )
    };
    // Not trusted: refused, with a reason, and the password nowhere.
    let untrusted = Instance::with(&sim, "0 0 0 1 1 *", &email(""));
    let ran = untrusted.run(&["alerts", "test"]).await;
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    assert!(ran.stderr.to_lowercase().contains("certificate"), "says why: {}", ran.stderr);
    assert!(!ran.stderr.contains("s3cret-pw-9q") && !ran.stdout.contains("s3cret-pw-9q"), "{}", ran.stderr);
    assert!(smtp.messages().is_empty());
    // Trusted through [alerts.email] ca_file: STARTTLS, AUTH, delivered.
    let ca = format!("ca_file = \"{}\"\n", smtp.ca_file().display());
    let trusted = Instance::with(&sim, "0 0 0 1 1 *", &email(&ca));
    let ran = trusted.run(&["alerts", "test"]).await;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(!ran.stderr.contains("s3cret-pw-9q") && !ran.stdout.contains("s3cret-pw-9q"));
    assert_eq!(smtp.messages().len(), 1);
}

#[tokio::test]
async fn a_409_that_cannot_be_recorded_alerts_although_another_plan_would_have_been_tried() {
    // The cheapest plan is sold out and another is offered: a recorded 409 would be retried
    // on it at once, with no alert. Here the ledger cannot be updated, so nothing more is
    // tried, and the refusal must alert now.
    let sim = sim_with(crate::helpers::world_with_the_cheapest_sold_out(&[DAY])).await;
    let s = crate::helpers::Setup::sqlite(&sim, "").await;
    let db = s.config_path().with_file_name("renewd.db");
    fail_writes(&db, "ledger", "UPDATE").await;
    let _ = s.cycle_of(false).run().await;
    assert_eq!(sim.calls_of("renew").len(), 1, "no retry without the refusal on record");
    let rows = s.store.outbox(false, 10).await.unwrap();
    let kinds = crate::lapse::kinds_of(&rows);
    assert!(kinds.contains(&"unavailable"), "the 409 alerts: {kinds:?}");
}

#[tokio::test]
async fn a_402_that_cannot_be_recorded_alerts_once() {
    // Not retried either way: the refusal's alert goes out directly (it was meant for the
    // same transaction as the ledger row), and is not queued a second time.
    let smtp = SmtpServer::start();
    let sim = sim_with(world(&[DAY])).await;
    sim.update(|s, _| s.balance_cents = 100);
    let s = crate::helpers::Setup::sqlite(&sim, &email_toml(&smtp)).await;
    fail_writes(&s.config_path().with_file_name("renewd.db"), "ledger", "UPDATE").await;
    let _ = s.cycle_of(false).run().await;
    let mails = smtp.messages();
    // About the subscription (the account's top-up figure for the next 24 h is its own alert).
    let about_402 = mails.iter().filter(|m| m.contains("INSUFFICIENT BALANCE: sub0")).count();
    let queued = s.store.outbox(false, 10).await.unwrap();
    assert_eq!(
        about_402,
        1,
        "one email; still queued: {:?}",
        queued.iter().map(|r| r.alert.kind.as_str()).collect::<Vec<_>>()
    );
}
