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
