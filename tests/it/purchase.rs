//! `purchase`, `purchase reconcile`, `switch-network` and `change-credentials` (issue "The
//! rest of the provider's API"): the real binary against the simulator, with the faults that
//! leave a write applied or not, asserting on the simulator's calls and state, the database,
//! stdout and the exit code.

use proxy_renewd::purchase::PurchaseState;
use proxy_renewd::sim::{FaultKind, Simulator};
use serde_json::Value;

use crate::helpers::{DAY, Ran, Setup, bin, run, spawn};

const NL_30D: &str = "k17m3q5v7n9p1r2t4w6y8z0a";
const BERLIN: &str = "b1c2d3e4f5g6h7j8k9m0n1p2";
const PARIS_INACTIVE: &str = "f1r2p3a4r5i6s7x8x9x0x1x2";

async fn cli(s: &Setup, args: &[&str]) -> Ran {
    let mut cmd = bin();
    cmd.arg("--config").arg(s.config_path()).args(args);
    run(cmd).await
}

async fn cli_env(s: &Setup, env: &[(&str, &str)], args: &[&str]) -> Ran {
    let mut cmd = bin();
    cmd.arg("--config").arg(s.config_path()).args(args).envs(env.iter().copied());
    run(cmd).await
}

fn json(r: &Ran) -> Value {
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("stdout is JSON ({e}): {}\n{}", r.stdout, r.stderr))
}

fn count(sim: &Simulator) -> usize {
    sim.state().subscriptions.len()
}

#[tokio::test]
async fn a_purchase_moves_the_balance_by_the_total_it_shows_and_records_the_new_ids() {
    let (sim, s) = spawn(&[10 * DAY], "").await;
    let (before, subs) = (sim.state().balance_cents, count(&sim));
    let preview =
        cli(&s, &["purchase", NL_30D, "--quantity", "2", "--repeat-count", "3", "--dry-run", "--format", "json"]).await;
    assert_eq!(preview.code, 0, "{}", preview.stderr);
    let total = json(&preview)["would_buy"]["total_cents"].as_i64().expect("a total");
    assert_eq!(total, 1200 * 3 * 2);
    assert!(sim.calls_of("purchase").is_empty(), "a dry run sends nothing");
    assert_eq!(sim.state().balance_cents, before);

    let r = cli(
        &s,
        &["purchase", NL_30D, "--quantity", "2", "--repeat-count", "3", "--yes", "--no-auto-renew", "--format", "json"],
    )
    .await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let out = json(&r);
    assert_eq!(out["result"], "done");
    assert_eq!(sim.calls_of("purchase").len(), 1);
    assert_eq!(sim.state().balance_cents, before - total, "the balance moved by the total shown");
    assert_eq!(count(&sim), subs + 2);
    let ids: Vec<String> =
        out["subscription_ids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect();
    assert_eq!(ids.len(), 2);
    let rows = s.store.purchases(false, 10).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].state, PurchaseState::Done);
    assert_eq!(rows[0].terms.price.0, total);
    assert_eq!(rows[0].subscription_ids.iter().map(|i| i.as_str().to_owned()).collect::<Vec<_>>(), ids);
    for id in &ids {
        let rule = s.store.rule(&proxy_renewd::values::SubscriptionId::parse(id).unwrap()).await.unwrap();
        assert!(!rule.expect("--no-auto-renew writes a rule").rule.enabled, "{id} is not renewed automatically");
    }
    let spent = s.store.spend_since(proxy_renewd::values::EpochMs(0)).await.unwrap();
    assert_eq!(spent.0, total, "the daily budget counts the purchase");
}

#[tokio::test]
async fn a_purchase_is_checked_and_confirmed_before_anything_is_sent() {
    let (sim, s) = spawn(&[10 * DAY], "").await;
    let unconfirmed = cli(&s, &["purchase", NL_30D]).await;
    assert_eq!(unconfirmed.code, 1);
    assert!(unconfirmed.stderr.contains("pass --yes"), "{}", unconfirmed.stderr);
    let unknown_plan = cli(&s, &["purchase", "nosuchplan", "--yes"]).await;
    assert_eq!(unknown_plan.code, 1);
    assert!(
        unknown_plan.stderr.contains("not offered") && unknown_plan.stderr.contains(NL_30D),
        "{}",
        unknown_plan.stderr
    );
    let over = cli(&s, &["purchase", NL_30D, "--quantity", "2", "--yes", "--max-price-cents", "2399"]).await;
    assert_eq!(over.code, 1);
    assert!(over.stderr.contains("over --max-price-cents 2399"), "{}", over.stderr);
    assert!(sim.calls_of("purchase").is_empty(), "none of these sent a purchase");
    assert!(s.store.purchases(false, 10).await.unwrap().is_empty(), "and none wrote a row");
    let help = run({
        let mut c = bin();
        c.args(["purchase", "--help"]);
        c
    })
    .await;
    assert!(help.stdout.contains("SPENDS MONEY") && help.stdout.contains("--dry-run"), "{}", help.stdout);
}

/// Each fault: the exit code, whether the simulator applied it, and the row's state.
#[tokio::test]
async fn purchase_faults_make_exactly_one_effect_or_none_and_say_which() {
    let cases: Vec<(&str, Option<FaultKind>, i32, bool, PurchaseState)> = vec![
        ("402", None, 1, false, PurchaseState::Refused),
        ("409", Some(FaultKind::StatusBefore { status: 409 }), 1, false, PurchaseState::Refused),
        ("400", Some(FaultKind::StatusBefore { status: 400 }), 1, false, PurchaseState::Refused),
        ("500 after", Some(FaultKind::StatusAfter { status: 500 }), 3, true, PurchaseState::Unknown),
        ("drop after", Some(FaultKind::DropAfter), 3, true, PurchaseState::Unknown),
    ];
    for (name, fault, code, applied, state) in cases {
        let (sim, s) = spawn(&[10 * DAY], "").await;
        match fault {
            Some(f) => sim.fault("purchase", f, 1),
            None => sim.update(|st, _| st.balance_cents = 100),
        }
        let (balance, subs) = (sim.state().balance_cents, count(&sim));
        let r = cli(&s, &["purchase", NL_30D, "--yes", "--format", "json"]).await;
        assert_eq!(r.code, code, "{name}: {}\n{}", r.stdout, r.stderr);
        assert_eq!(sim.calls_of("purchase").len(), 1, "{name}: sent exactly once, never retried");
        assert_eq!(count(&sim) == subs + 1, applied, "{name}: one subscription or none");
        assert_eq!(sim.state().balance_cents != balance, applied, "{name}");
        let rows = s.store.purchases(false, 10).await.unwrap();
        assert_eq!(rows[0].state, state, "{name}");
        let out = json(&r);
        assert_eq!(out["result"], if applied { "unknown" } else { "refused" }, "{name}");
        if applied {
            assert_eq!(out["check"], "proxy-renewd purchase reconcile", "{name}");
        }
    }
}

#[tokio::test]
async fn after_a_lost_answer_the_next_purchase_is_refused_and_reconcile_names_the_new_ids() {
    let (sim, s) = spawn(&[10 * DAY], "").await;
    sim.fault("purchase", FaultKind::DropAfter, 1);
    let lost = cli(&s, &["purchase", NL_30D, "--yes"]).await;
    assert_eq!(lost.code, 3, "{}", lost.stderr);
    assert!(lost.stdout.contains("purchase reconcile"), "{}", lost.stdout);
    let new_id = sim.state().subscriptions.last().unwrap().id.clone();

    let again = cli(&s, &["purchase", NL_30D, "--yes"]).await;
    assert_eq!(again.code, 1);
    assert!(again.stderr.contains("purchase 1") && again.stderr.contains("--force"), "{}", again.stderr);
    assert_eq!(sim.calls_of("purchase").len(), 1, "refused without sending");

    let report = cli(&s, &["purchase", "reconcile"]).await;
    assert_eq!(report.code, 3, "something awaits a person: {}", report.stderr);
    assert!(report.stdout.contains(&new_id) && report.stdout.contains("(fits)"), "{}", report.stdout);
    let j = json(&cli(&s, &["purchase", "reconcile", "--format", "json"]).await);
    assert_eq!(j["open"][0]["appeared"][0]["subscription_id"], new_id.as_str());
    assert_eq!(j["open"][0]["appeared"].as_array().unwrap().len(), 1, "only the new one, not those listed before");

    let settled = cli(&s, &["purchase", "reconcile", "1", "--applied"]).await;
    assert_eq!(settled.code, 0, "{}", settled.stderr);
    let row = s.store.purchase(1).await.unwrap().unwrap();
    assert_eq!(row.state, PurchaseState::Done);
    assert_eq!(row.subscription_ids[0].as_str(), new_id);
    assert_eq!(cli(&s, &["purchase", "reconcile"]).await.code, 0, "nothing open now");

    // Settled: the plan can be bought again, and the new purchase does not claim the old id.
    sim.fault("purchase", FaultKind::DropAfter, 1);
    assert_eq!(cli(&s, &["purchase", NL_30D, "--yes"]).await.code, 3);
    let j = json(&cli(&s, &["purchase", "reconcile", "--format", "json"]).await);
    let appeared = j["open"][0]["appeared"].as_array().unwrap();
    assert_eq!(appeared.len(), 1);
    assert_ne!(appeared[0]["subscription_id"], new_id.as_str(), "claimed by purchase 1");
    let forced = cli(&s, &["purchase", NL_30D, "--yes", "--force"]).await;
    assert_eq!(forced.code, 0, "--force buys despite the open one: {}", forced.stderr);
    let not = cli(&s, &["purchase", "reconcile", "2", "--not-applied"]).await;
    assert_eq!(not.code, 0, "{}", not.stderr);
    assert_eq!(s.store.purchase(2).await.unwrap().unwrap().state, PurchaseState::NotApplied);
    let twice = cli(&s, &["purchase", "reconcile", "2", "--applied"]).await;
    assert_eq!(twice.code, 1, "a settled purchase is not settled again");
}

#[tokio::test]
async fn switch_network_moves_only_to_an_available_network_and_updates_the_snapshot() {
    let (sim, s) = spawn(&[10 * DAY], "").await;
    s.cycle_with(true).await;
    let refused = cli(&s, &["switch-network", "sub0", PARIS_INACTIVE, "--yes"]).await;
    assert_eq!(refused.code, 1);
    assert!(refused.stderr.contains("not available") && refused.stderr.contains(BERLIN), "{}", refused.stderr);
    assert!(sim.calls_of("switch-network").is_empty());

    let r = cli(&s, &["switch-network", "sub0", BERLIN, "--yes"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("NL-AMS") && r.stdout.contains("DE-BER"), "old and new: {}", r.stdout);
    assert_eq!(sim.state().subscriptions[0].network_id, BERLIN);
    assert_eq!(sim.calls_of("switch-network").len(), 1);
    let snap = s.store.snapshot().await.unwrap();
    let seen = snap.iter().find(|r| r.seen.subscription_id.as_str() == "sub0").unwrap();
    assert!(seen.seen.network_label.as_deref().unwrap_or("").contains("DE"), "{:?}", seen.seen.network_label);
}

#[tokio::test]
async fn switch_network_and_change_credentials_faults_say_refused_or_unknown() {
    for (op, args) in [
        ("switch-network", vec!["switch-network", "sub0", BERLIN, "--yes", "--format", "json"]),
        ("change-credentials", vec!["change-credentials", "sub0", "--yes", "--format", "json", "--show-secrets"]),
    ] {
        for (kind, code, applied) in [
            (FaultKind::StatusBefore { status: 402 }, 1, false),
            (FaultKind::StatusBefore { status: 409 }, 1, false),
            (FaultKind::StatusBefore { status: 400 }, 1, false),
            (FaultKind::StatusAfter { status: 500 }, 3, true),
            (FaultKind::DropAfter, 3, true),
        ] {
            let (sim, s) = spawn(&[10 * DAY], "").await;
            let before = sim.state().subscriptions[0].clone();
            sim.fault(op, kind.clone(), 1);
            let r = cli(&s, &args).await;
            assert_eq!(r.code, code, "{op} {kind:?}: {}\n{}", r.stdout, r.stderr);
            assert_eq!(sim.calls_of(op).len(), 1, "{op} {kind:?}: sent once");
            let after = sim.state().subscriptions[0].clone();
            let changed = after.network_id != before.network_id || after.password != before.password;
            assert_eq!(changed, applied, "{op} {kind:?}");
            let out = json(&r);
            assert_eq!(out["result"], if applied { "unknown" } else { "refused" }, "{op} {kind:?}");
            assert!(!r.stdout.contains(&after.password), "{op} {kind:?}: no password on a failure");
        }
    }
}

#[tokio::test]
async fn a_new_password_appears_once_on_stdout_and_nowhere_else() {
    // SQLite: the database file and its WAL are searched for the password.
    let (sim, s) = crate::helpers::spawn_sqlite(&[10 * DAY], "").await;
    let r = cli_env(&s, &[("RUST_LOG", "trace")], &["change-credentials", "sub0", "--yes"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let new = sim.state().subscriptions[0].clone();
    assert_eq!(r.stdout.matches(&new.password).count(), 1, "{}", r.stdout);
    assert_eq!(r.stdout.matches(&new.vpn).count(), 1);
    assert!(!r.stderr.contains(&new.password) && !r.stderr.contains(&new.vpn), "never in a log line");
    let db = s.config().database_url.trim_start_matches("sqlite://").to_owned();
    for file in [db.clone(), format!("{db}-wal")] {
        if let Ok(bytes) = std::fs::read(&file) {
            let text = String::from_utf8_lossy(&bytes);
            assert!(!text.contains(&new.password) && !text.contains(&new.vpn), "not in {file}");
        }
    }
    let hidden = cli(&s, &["change-credentials", "sub0", "--yes", "--format", "json"]).await;
    assert_eq!(hidden.code, 2, "JSON without --show-secrets would throw the new password away: {}", hidden.stderr);
    assert!(hidden.stderr.contains("--show-secrets"), "{}", hidden.stderr);
    assert_eq!(sim.calls_of("change-credentials").len(), 1, "and nothing was sent");
    let shown = json(&cli(&s, &["change-credentials", "sub0", "--yes", "--format", "json", "--show-secrets"]).await);
    assert_eq!(shown["password"], sim.state().subscriptions[0].password.as_str());
}

#[tokio::test]
async fn the_client_redacts_a_new_password_from_the_next_error_at_once() {
    let (sim, s) = spawn(&[10 * DAY], "").await;
    let id = proxy_renewd::values::SubscriptionId::parse("sub0").unwrap();
    let new = s.client.change_credentials(&id).await.expect("changed");
    use secrecy::ExposeSecret;
    let password = new.password.expose_secret().to_owned();
    sim.fault(
        "renewal-plans",
        crate::helpers::canned(500, format!("{{\"ok\":false,\"error\":\"boom {password}\"}}")),
        5,
    );
    let e = s.client.renewal_plans(&id).await.expect_err("a 500");
    assert!(!format!("{e} {e:?}").contains(&password), "{e}");
    // The VPN id of a listed subscription is only inside its vless URL: learned from it.
    sim.clear_faults();
    s.client.subscriptions().await.unwrap();
    let vpn = sim.state().subscriptions[0].vpn.clone();
    sim.fault(
        "renewal-plans",
        crate::helpers::canned(500, format!("{{\"ok\":false,\"error\":\"vpn {vpn} down\"}}")),
        5,
    );
    let e = s.client.renewal_plans(&id).await.expect_err("a 500");
    assert!(!format!("{e} {e:?}").contains(&vpn), "{e}");
}

#[tokio::test]
async fn the_next_cycle_alerts_on_an_unknown_purchase_until_it_is_settled() {
    let (sim, s) = spawn(&[10 * DAY], "").await;
    sim.fault("purchase", FaultKind::StatusAfter { status: 502 }, 1);
    assert_eq!(cli(&s, &["purchase", NL_30D, "--yes"]).await.code, 3);
    s.cycle().await;
    let rows = s.store.outbox(false, 50).await.unwrap();
    let alert = rows
        .iter()
        .find(|r| r.alert.kind == proxy_renewd::alert::AlertKind::UnknownOutcome)
        .expect("an unknown-outcome alert for the purchase");
    assert!(
        alert.alert.happened.contains("purchase 1") && alert.alert.happened.contains("1 of which fit"),
        "{:?}",
        alert.alert
    );
    assert!(alert.alert.action.contains("purchase reconcile 1 --applied"), "{:?}", alert.alert);
    assert_eq!(alert.alert.amount.map(|c| c.0), Some(1200));
    assert_eq!(sim.calls_of("purchase").len(), 1, "the cycle never retries a purchase");

    assert_eq!(cli(&s, &["purchase", "reconcile", "1", "--applied"]).await.code, 0);
    s.clock.advance(2 * DAY);
    s.cycle().await;
    let n = s
        .store
        .outbox(false, 50)
        .await
        .unwrap()
        .iter()
        .filter(|r| r.alert.kind == proxy_renewd::alert::AlertKind::UnknownOutcome)
        .count();
    assert_eq!(n, 1, "settled: no new alert");
}

#[tokio::test]
async fn two_concurrent_purchases_of_one_plan_record_one_and_block_the_other() {
    use proxy_renewd::purchase::{PurchaseTerms, RuleOverrides};
    use proxy_renewd::store::Begun;
    use proxy_renewd::values::{Cents, EpochMs, PlanId};
    let (_sim, s) = spawn(&[10 * DAY], "").await;
    let terms = PurchaseTerms::of_plan(PlanId::parse(NL_30D).unwrap(), Cents(1200), 30 * DAY, 1, 1, None).unwrap();
    let none = RuleOverrides::default();
    let (a, b) = tokio::join!(
        s.store.begin_purchase(&terms, &none, &[], false, EpochMs(1)),
        s.store.begin_purchase(&terms, &none, &[], false, EpochMs(1)),
    );
    let begun = [a.unwrap(), b.unwrap()];
    assert_eq!(begun.iter().filter(|b| matches!(b, Begun::Started(_))).count(), 1, "{begun:?}");
    assert_eq!(begun.iter().filter(|b| matches!(b, Begun::Blocked(_))).count(), 1, "{begun:?}");
    assert!(
        matches!(s.store.begin_purchase(&terms, &none, &[], true, EpochMs(2)).await.unwrap(), Begun::Started(_)),
        "--force"
    );
    let other = PurchaseTerms { plan_id: PlanId::parse("q2w4e6r8t0y2u4i6o8p0a2s4").unwrap(), ..terms.clone() };
    assert!(
        matches!(s.store.begin_purchase(&other, &none, &[], false, EpochMs(3)).await.unwrap(), Begun::Started(_)),
        "another plan is not blocked"
    );
    let rows = s.store.spend_rows_since(EpochMs(0)).await.unwrap();
    assert_eq!(rows.len(), 3, "open purchases count against the budget: {rows:?}");
    let missing = s
        .store
        .settle_purchase(
            99,
            &proxy_renewd::store::PurchaseSettlement {
                state: PurchaseState::Done,
                subscription_ids: vec![],
                http_status: None,
                error: None,
            },
            &s.config().defaults,
            EpochMs(4),
        )
        .await;
    assert!(missing.unwrap_err().to_string().contains("no purchase 99"));
}

#[tokio::test]
async fn a_purchase_that_cannot_be_recorded_is_not_sent() {
    use sqlx::Connection;
    // SQLite: another connection to the file holds its write lock.
    let (sim, s) = crate::helpers::spawn_sqlite(&[10 * DAY], "").await;
    // Another process holds the write lock past the busy timeout (5 s).
    let mut holder = sqlx::SqliteConnection::connect(&s.config().database_url).await.unwrap();
    sqlx::query("BEGIN EXCLUSIVE").execute(&mut holder).await.unwrap();
    let r = cli(&s, &["purchase", NL_30D, "--yes"]).await;
    sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("locked") && r.stderr.contains("nothing was sent"), "{}", r.stderr);
    assert!(sim.calls_of("purchase").is_empty(), "no row, no request");
    assert!(s.store.purchases(false, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_purchase_in_flight_cannot_be_settled_and_dry_run_settles_nothing() {
    use proxy_renewd::purchase::{PurchaseTerms, RuleOverrides};
    use proxy_renewd::values::{Cents, EpochMs, PlanId};
    let (sim, s) = spawn(&[10 * DAY], "").await;
    let terms = PurchaseTerms::of_plan(PlanId::parse(NL_30D).unwrap(), Cents(1200), 30 * DAY, 1, 1, None).unwrap();
    s.store.begin_purchase(&terms, &RuleOverrides::default(), &[], false, EpochMs::now()).await.unwrap();
    let listed = cli(&s, &["purchase", "reconcile"]).await;
    assert!(listed.stdout.contains("being sent right now"), "{}", listed.stdout);
    assert!(!listed.stdout.contains("--not-applied"), "no advice to settle what may be in flight: {}", listed.stdout);
    let r = cli(&s, &["purchase", "reconcile", "1", "--not-applied"]).await;
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("being sent right now"), "{}", r.stderr);
    let dry = cli(&s, &["--dry-run", "purchase", "reconcile", "1", "--not-applied"]).await;
    assert_eq!(dry.code, 2, "{}", dry.stderr);
    assert_eq!(s.store.purchase(1).await.unwrap().unwrap().state, PurchaseState::Sending, "nothing settled");
    assert!(sim.calls_of("purchase").is_empty());
}

#[tokio::test]
async fn a_purchase_made_keeps_its_exit_code_when_stdout_cannot_be_written() {
    let (sim, s) = spawn(&[10 * DAY], "").await;
    let mut cmd = bin();
    cmd.arg("--config").arg(s.config_path()).args(["purchase", NL_30D, "--yes"]);
    cmd.stdout(std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap()).stderr(std::process::Stdio::piped());
    let out = cmd.spawn().unwrap().wait_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "bought: exit 0, not an error a script would retry: {stderr}");
    assert!(stderr.contains("what happened: purchase 1 done"), "{stderr}");
    assert_eq!(sim.calls_of("purchase").len(), 1);
}

#[tokio::test]
async fn a_manual_renewal_keeps_its_exit_code_when_stdout_cannot_be_written() {
    let (sim, s) = spawn(&[DAY], "").await;
    let mut cmd = bin();
    cmd.arg("--config").arg(s.config_path()).args(["renew", "sub0", "--yes"]);
    cmd.stdout(std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap()).stderr(std::process::Stdio::piped());
    let out = cmd.spawn().unwrap().wait_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "renewed: exit 0, not an error a script would retry: {stderr}");
    assert!(stderr.contains("what happened: sub0: renewed"), "{stderr}");
    assert_eq!(sim.calls_of("renew").len(), 1);
}
