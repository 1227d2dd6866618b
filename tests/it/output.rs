//! What the command line prints, for people and scripts: every table fits `$COLUMNS` (ids
//! whole, no trailing space) and keeps whole rows in a pipe; every printing command honours
//! `--format json` with a document; the ledger's error says each thing once.

use proxy_renewd::sim::SimState;
use proxy_renewd::values::EpochMs;

use crate::helpers::{Ran, Setup, bin, run, sim_with};

/// The sample account (a suspended subscription, a sold-out plan, a refused renewal, alerts
/// in the outbox) after one real cycle, with a rule whose note is long.
async fn account() -> (proxy_renewd::sim::Simulator, Setup) {
    let sim = sim_with(SimState::sample(EpochMs::now().0)).await;
    let setup = Setup::new(&sim, "").await;
    setup.cycle().await;
    let note = "the customer asked for this one to be renewed a week early because of the holidays";
    let out =
        cli(&setup, &["rules", "set", "s01b2f6m1k4n8p3r5t7v9x0z", "--note", note, "--coupon-code", "WINTER"], None)
            .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    (sim, setup)
}

/// The binary on `setup`'s config, with `$COLUMNS` set to `columns` (or unset).
async fn cli(setup: &Setup, args: &[&str], columns: Option<&str>) -> Ran {
    let mut cmd = bin();
    cmd.arg("--config").arg(setup.config_path()).args(args);
    match columns {
        Some(c) => cmd.env("COLUMNS", c),
        None => cmd.env_remove("COLUMNS"),
    };
    run(cmd).await
}

/// Every command that prints a table, and the ids it must show whole.
fn table_commands(setup: &Setup) -> Vec<Vec<String>> {
    let _ = setup;
    let sub = "s01b2f6m1k4n8p3r5t7v9x0z";
    [
        vec!["--dry-run"],
        vec!["history"],
        vec!["rules", "list"],
        vec!["alerts", "list"],
        vec!["forecast"],
        vec!["forecast", "--offline"],
        vec!["purchase", "reconcile"],
        vec!["api", "subscriptions"],
        vec!["api", "plans"],
        vec!["api", "renewal-plans", sub],
        vec!["api", "networks", sub],
    ]
    .into_iter()
    .map(|a| a.into_iter().map(String::from).collect())
    .collect()
}

/// The 24-character ids (subscriptions, plans) in `text`: words of lowercase letters and
/// digits, 24 long.
fn ids(text: &str) -> std::collections::BTreeSet<String> {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| w.len() == 24 && w.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()))
        .map(String::from)
        .collect()
}

#[tokio::test]
async fn every_table_fits_columns_keeps_ids_whole_and_has_no_trailing_space() {
    let (_sim, setup) = account().await;
    for args in table_commands(&setup) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let wide = cli(&setup, &args, None).await;
        let narrow = cli(&setup, &args, Some("100")).await;
        assert!(matches!(narrow.code, 0 | 3), "{args:?}: {}", narrow.stderr);
        assert_eq!(narrow.code, wide.code, "{args:?}");
        for (n, line) in narrow.stdout.lines().enumerate() {
            assert!(
                line.chars().count() <= 100,
                "{args:?} line {n} is {} wide:\n{}",
                line.chars().count(),
                narrow.stdout
            );
            assert!(!line.ends_with(' '), "{args:?} line {n} ends in a space: {line:?}");
        }
        assert!(wide.stdout.lines().all(|l| !l.ends_with(' ')), "{args:?}: {:?}", wide.stdout);
        // Every id the unlimited table shows is there, whole, at 100 columns (a column that
        // gives way is one of the others).
        let (all, kept) = (ids(&wide.stdout), ids(&narrow.stdout));
        let subs: Vec<&String> =
            all.iter().filter(|id| wide.stdout.lines().any(|l| l.trim_start().starts_with(id.as_str()))).collect();
        for id in subs {
            assert!(kept.contains(id), "{args:?}: {id} is missing at 100 columns:\n{}", narrow.stdout);
        }
    }
}

#[tokio::test]
async fn the_sample_tables_are_wider_than_100_without_a_limit_and_rows_stay_whole_in_a_pipe() {
    let (_sim, setup) = account().await;
    for args in [&["history"][..], &["--dry-run"], &["alerts", "list"], &["rules", "list"]] {
        let out = cli(&setup, args, None).await;
        let widest = out.stdout.lines().map(|l| l.chars().count()).max().unwrap_or(0);
        assert!(widest > 100, "{args:?} is the wide case this test needs:\n{}", out.stdout);
    }
    // A pipe without $COLUMNS: one line per ledger row, so that grep finds whole rows.
    let out = cli(&setup, &["history"], None).await;
    let rows = setup.store.history(None, 50).await.unwrap();
    assert_eq!(out.stdout.lines().count(), rows.len() + 1, "{}", out.stdout);
    for e in &rows {
        let line = out.stdout.lines().find(|l| l.contains(&format!(" {} ", e.subscription_id))).expect("a row");
        assert!(line.contains(e.renewal.plan_id.as_str()) && line.contains(e.state.as_str()), "{line}");
    }
    // A narrow $COLUMNS wraps the prose around the tables; a table narrower than its ids
    // allow is as narrow as it gets, its rows never cut again.
    let out = cli(&setup, &["--dry-run"], Some("60")).await;
    let (prose, table) = out.stdout.split_once(" SUBSCRIPTION").expect("a table");
    assert!(prose.lines().count() > 2 && prose.lines().all(|l| l.chars().count() <= 60), "{}", out.stdout);
    for line in table.lines().skip(1).filter(|l| !l.starts_with("  ") && !l.starts_with('(')) {
        assert!(ids(line).len() == 1 && line.starts_with(' '), "{line:?} in\n{}", out.stdout);
    }
}

/// A config for `sim` (and `extra`) in a temp dir, with no process holding its database.
fn config_file(sim: &proxy_renewd::sim::Simulator, extra: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    let toml = format!(
        "[api]\nbase_url = \"{}\"\nkey = \"{}\"\ntimeout = \"1s\"\nmax_attempts = 2\n[database]\nurl = \"{}\"\n{extra}",
        sim.base_url(),
        crate::helpers::KEY,
        crate::helpers::database_url(&dir.path().join("renewd.db"))
    );
    std::fs::write(&path, toml).unwrap();
    (dir, path)
}

async fn json_of(config: &std::path::Path, args: &[&str]) -> (Ran, serde_json::Value) {
    let mut cmd = bin();
    cmd.arg("--config").arg(config).arg("--format").arg("json").args(args);
    let out = run(cmd).await;
    let doc = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: stdout is not one JSON document ({e}):\n{}\n{}", out.stdout, out.stderr));
    (out, doc)
}

#[tokio::test]
async fn every_printing_command_honours_format_json() {
    let smtp = crate::smtp::SmtpServer::start();
    let sim = sim_with(SimState::sample(EpochMs::now().0)).await;
    let email = format!(
        "[alerts.email]\nsmtp_url = \"{}\"\nfrom = \"proxy-renewd <renewd@example.com>\"\nto = [\"ops@example.com\"]\n",
        smtp.url()
    );
    let (_dir, config) = config_file(&sim, &email);
    let sub = "s01b2f6m1k4n8p3r5t7v9x0z";
    let plan = "k17m3q5v7n9p1r2t4w6y8z0a";
    let net = "b1c2d3e4f5g6h7j8k9m0n1p2";
    // (command, its exit code, a key its document has)
    let cases: &[(&[&str], i32, &str)] = &[
        (&["--dry-run"], 3, "totals"),
        (&["once", "--dry-run"], 3, "totals"),
        (&["once"], 3, "totals"),
        (&["health"], 0, "healthy"),
        (&["history"], 0, "ledger"),
        (&["history", "--subscription", sub], 0, "ledger"),
        (&["rules", "set", sub, "--note", "json"], 0, "rule"),
        (&["rules", "set", "s05b2f6m1k4n8p3r5t7v9x0z", "--enable"], 0, "action"),
        (&["rules", "list"], 0, "rules"),
        (&["rules", "remove", sub], 0, "action"),
        (&["rules", "remove", sub], 0, "action"),
        (&["alerts", "list"], 0, "alerts"),
        (&["alerts", "test"], 0, "accepted"),
        (&["forecast"], 3, "totals"),
        (&["forecast", "--offline"], 3, "totals"),
        (&["renew", "s05b2f6m1k4n8p3r5t7v9x0z", "--yes"], 0, "result"),
        (&["purchase", plan, "--dry-run"], 0, "would_buy"),
        (&["purchase", plan, "--yes"], 0, "result"),
        (&["purchase", "reconcile"], 0, "open"),
        (&["switch-network", sub, net, "--yes"], 0, "result"),
        (&["change-credentials", sub, "--yes", "--show-secrets"], 0, "result"),
        (&["api", "plans"], 0, "plans"),
        (&["api", "subscriptions"], 0, "subscriptions"),
        (&["api", "renewal-plans", sub], 0, "renewalPlans"),
        (&["api", "networks", sub], 0, "networks"),
    ];
    for (args, code, key) in cases {
        let (out, doc) = json_of(&config, args).await;
        assert_eq!(out.code, *code, "{args:?}: {}\n{}", out.stdout, out.stderr);
        assert!(doc.get(*key).is_some(), "{args:?}: no {key:?} in {doc:#}");
    }
    // The same key twice: removed, then nothing to remove.
    let (_, doc) = json_of(&config, &["rules", "remove", sub]).await;
    assert_eq!(doc["action"], "none", "{doc:#}");
    let tests = smtp.messages().iter().filter(|m| crate::smtp::subject(m) == "[proxy-renewd] test message").count();
    assert_eq!(tests, 1, "alerts test sent one message");
}

#[tokio::test]
async fn renew_answers_json_with_fields_not_a_debug_dump() {
    let sim = sim_with(SimState::sample(EpochMs::now().0)).await;
    let (_dir, config) = config_file(&sim, "");
    let (out, doc) = json_of(&config, &["renew", "s05b2f6m1k4n8p3r5t7v9x0z", "--yes"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(doc["result"], "succeeded", "{doc:#}");
    assert!(doc["ledger_id"].is_i64() && doc["end_at_ms"].is_i64(), "{doc:#}");
    let end = doc["end_at"].as_str().expect("an ISO time");
    assert!(end.ends_with('Z') && end.contains('T'), "{end}");
    assert!(doc["detail"].as_str().unwrap().starts_with("renewed; activeUntil is now "), "{doc:#}");
    // A refusal: the status and the provider's words, as fields.
    let (out, doc) = json_of(&config, &["renew", "s03b2f6m1k4n8p3r5t7v9x0z", "--yes"]).await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert_eq!(doc["result"], "refused", "{doc:#}");
    assert_eq!(doc["http_status"], 409, "{doc:#}");
    for text in [out.stdout.as_str(), out.stderr.as_str()] {
        for debug in ["Succeeded {", "Refused {", "EpochMs(", "Some(", "ledger_id:"] {
            assert!(!text.contains(debug), "a Debug dump ({debug}) in:\n{text}");
        }
    }
}

#[tokio::test]
async fn health_in_json_says_why_it_is_unhealthy_and_still_exits_1() {
    let sim = sim_with(SimState::sample(EpochMs::now().0)).await;
    let (_dir, config) = config_file(&sim, "");
    let (out, doc) = json_of(&config, &["health"]).await;
    assert_eq!(out.code, 1);
    assert_eq!(doc["healthy"], false, "{doc:#}");
    assert!(doc["reason"].as_str().unwrap().contains("no database yet"), "{doc:#}");
    assert!(out.stderr.contains("error: unhealthy"), "{}", out.stderr);
    let (out, _) = json_of(&config, &["once"]).await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    let (out, doc) = json_of(&config, &["health", "--max-age", "1ms"]).await;
    assert_eq!(out.code, 1);
    assert_eq!(doc["healthy"], false, "{doc:#}");
    assert!(doc["last_cycle_at_ms"].is_i64() && doc["max_age_ms"] == 1, "{doc:#}");
}

#[tokio::test]
async fn alerts_test_in_json_lists_who_accepted_and_who_refused() {
    let smtp = crate::smtp::SmtpServer::rejecting_typos();
    let sim = sim_with(SimState::sample(EpochMs::now().0)).await;
    let email = format!(
        "[alerts.email]\nsmtp_url = \"{}\"\nfrom = \"proxy-renewd <renewd@example.com>\"\nto = [\"ops@example.com\", \"typo@example.com\"]\n",
        smtp.url()
    );
    let (_dir, config) = config_file(&sim, &email);
    let (out, doc) = json_of(&config, &["alerts", "test"]).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(doc["accepted"][0]["to"], "ops@example.com", "{doc:#}");
    assert_eq!(doc["refused"][0]["to"], "typo@example.com", "{doc:#}");
    assert!(doc["refused"][0]["error"].as_str().unwrap().contains("550"), "{doc:#}");
    assert!(out.stderr.contains("error: the test message was not accepted"), "{}", out.stderr);
}

#[tokio::test]
async fn a_402_reads_once_in_history_table_and_json_old_rows_included() {
    let sim = crate::helpers::sim_with(crate::helpers::world(&[crate::helpers::DAY])).await;
    sim.update(|s, _| s.balance_cents = 100);
    // SQLite: an older version's row is written into the file directly.
    let setup = Setup::sqlite(&sim, "").await;
    setup.cycle().await;
    let said = |text: &str| text.to_lowercase().matches("insufficient balance").count();
    let (out, doc) = {
        let mut cmd = bin();
        cmd.arg("--config").arg(setup.config_path()).args(["--format", "json", "history"]);
        let out = run(cmd).await;
        let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        (out, doc)
    };
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(doc["ledger"][0]["http_status"], 402, "{doc:#}");
    let error = doc["ledger"][0]["error"].as_str().unwrap().to_owned();
    assert_eq!(error, "HTTP 402 insufficient balance", "the simulator says `Insufficient balance`, already said");
    let table = cli(&setup, &["history"], None).await;
    let row = table.stdout.lines().find(|l| l.contains("sub0")).expect("the row");
    assert_eq!(said(row), 1, "{row}");
    assert!(row.trim_end().ends_with("HTTP 402 insufficient balance"), "{row}");

    // A refusal that says more than its status: the provider's words follow, once.
    sim.update(|s, _| s.balance_cents = 1_000_000);
    sim.fault(
        "renew",
        crate::helpers::canned(402, r#"{"ok":false,"error":"Balance 1.00 is below the price 12.00"}"#),
        1,
    );
    let renewed = cli(&setup, &["renew", "sub0", "--yes"], None).await;
    assert_eq!(renewed.code, 3, "refused: {}", renewed.stderr);
    let table = cli(&setup, &["history"], None).await;
    let rows: Vec<&str> = table.stdout.lines().filter(|l| l.contains("sub0")).collect();
    assert!(
        rows.iter()
            .any(|r| r.trim_end().ends_with("HTTP 402 insufficient balance: Balance 1.00 is below the price 12.00")),
        "{}",
        table.stdout
    );

    // A row an older version wrote reads the same way.
    let pool = sqlx::SqlitePool::connect(&setup.config().database_url).await.unwrap();
    sqlx::query("UPDATE ledger SET error = ? WHERE id = 1")
        .bind("renew: HTTP 402: insufficient balance: top up the account balance (provider said: Insufficient balance)")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let table = cli(&setup, &["history"], None).await;
    let old = table.stdout.lines().find(|l| l.starts_with(" 1 ")).expect("row 1");
    assert!(old.trim_end().ends_with("HTTP 402 insufficient balance"), "{old}");
    assert_eq!(said(old), 1, "{old}");
}

#[tokio::test]
async fn demo_and_sim_honour_format_json_too() {
    let mut cmd = bin();
    cmd.args(["--format", "json", "demo"]);
    let out = run(cmd).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("one JSON document");
    for key in ["audit", "once", "audit_after"] {
        assert!(doc[key]["totals"].is_object(), "{key}: {doc:#}");
    }
    assert!(doc["ledger"].as_array().is_some_and(|l| !l.is_empty()), "{doc:#}");
    assert!(doc["email"]["subject"].is_string(), "{doc:#}");

    // The simulator's banner: one document, then it serves until stopped.
    use tokio::io::AsyncBufReadExt;
    let mut cmd = bin();
    cmd.args(["--format", "json", "sim", "--listen", "127.0.0.1:0"]).stdout(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut text = String::new();
    while let Some(line) =
        tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line()).await.unwrap().unwrap()
    {
        text.push_str(&line);
        if line == "}" {
            break;
        }
    }
    child.kill().await.unwrap();
    let banner: serde_json::Value = serde_json::from_str(&text).expect("the banner is JSON");
    assert!(banner["api_url"].as_str().unwrap().ends_with("/api/proxy"), "{banner:#}");
}

#[tokio::test]
async fn a_real_cycles_report_fits_columns_too() {
    let sim = sim_with(SimState::sample(EpochMs::now().0)).await;
    let (_dir, config) = config_file(&sim, "");
    let mut cmd = bin();
    cmd.arg("--config").arg(&config).arg("once").env("COLUMNS", "100");
    let out = run(cmd).await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stdout.contains("OUTCOME"), "{}", out.stdout);
    for line in out.stdout.lines() {
        assert!(line.chars().count() <= 100 && !line.ends_with(' '), "{line:?} in\n{}", out.stdout);
    }
    let listed = sim.state().subscriptions.len();
    let shown = out.stdout.lines().filter(|l| ids(l).iter().any(|id| l.trim_start().starts_with(id.as_str()))).count();
    assert_eq!(shown, listed, "every subscription's row starts with its whole id:\n{}", out.stdout);
}

#[tokio::test]
async fn on_a_terminal_without_columns_tables_fit_its_width() {
    // util-linux `script` gives the binary a terminal of 40 rows and 80 columns.
    let (_sim, setup) = account().await;
    let bin = env!("CARGO_BIN_EXE_proxy-renewd");
    let inner = format!("stty rows 40 cols 80; {bin} --config '{}' history 2>/dev/null", setup.config_path().display());
    let mut cmd = tokio::process::Command::new("script");
    cmd.args(["-qec", &inner, "/dev/null"]).env_remove("COLUMNS").stdin(std::process::Stdio::null());
    let out = run(cmd).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let text = out.stdout.replace('\r', "");
    assert!(text.contains("SUBSCRIPTION"), "{text}");
    assert!(text.lines().all(|l| l.chars().count() <= 80), "{text}");
    let unlimited = cli(&setup, &["history"], None).await;
    assert!(unlimited.stdout.lines().any(|l| l.chars().count() > 80), "the wide case: {}", unlimited.stdout);
}
