//! The cycle through the library against the simulator: a due subscription is renewed once;
//! the fault matrix on `renew` settles to exactly the renewals the simulator applied; a
//! long-lapsed subscription is renewed once, then held; two renewers racing on one period
//! send one POST; the budget holds across one cycle.

use proxy_renewd::attempt::{LedgerState, Origin, RenewOutcome};
use proxy_renewd::policy::{Decision, RETRY_BACKOFF_BASE_MS};
use proxy_renewd::renewer::Renewer;
use proxy_renewd::sim::{FaultKind, Simulator};
use proxy_renewd::store::Store;
use proxy_renewd::values::{EpochMs, SubscriptionId};

use crate::helpers::{DAY, Setup, sim_with, spawn, world};

fn applied_renewals(sim: &Simulator) -> usize {
    sim.calls_of("renew").iter().filter(|c| c.applied).count()
}

#[tokio::test]
async fn a_due_subscription_is_renewed_once_and_the_next_cycle_does_nothing() {
    let (sim, s) = spawn(&[DAY, 10 * DAY], "").await;
    let before = sim.state().subscriptions[0].active_until_ms;
    let report = s.cycle().await;
    assert!(!report.needs_attention(), "{report:?}");
    assert!(matches!(report.items[0].outcome, Some(RenewOutcome::Succeeded { held: false, .. })));
    assert_eq!(sim.state().subscriptions[0].active_until_ms, before + 30 * DAY);
    assert_eq!(sim.state().balance_cents, 1_000_000 - 1200);
    let report = s.cycle().await;
    assert!(report.items.iter().all(|i| matches!(i.decision, Decision::Ok { .. })), "{report:?}");
    assert_eq!(sim.calls_of("renew").len(), 1);
    assert_eq!(sim.calls_of("renewal-plans").len(), 1, "plans are read only for due subscriptions");
    assert_eq!(s.states("sub0").await, [LedgerState::Succeeded]);
}

/// One fault on the first renew; then cycles: right away, and after the windows have passed.
async fn matrix_case(kind: FaultKind) -> (Simulator, Setup) {
    let (sim, s) = spawn(&[DAY], "").await;
    sim.fault("renew", kind, 1);
    s.cycle().await;
    s.cycle().await;
    s.clock.advance(RETRY_BACKOFF_BASE_MS.max(3_000));
    s.cycle().await;
    s.cycle().await;
    (sim, s)
}

#[tokio::test]
async fn faults_that_apply_the_renewal_are_reconciled_never_repeated() {
    for kind in [FaultKind::DropAfter, FaultKind::StatusAfter { status: 500 }, FaultKind::StallAfter { ms: 3_000 }] {
        let (sim, s) = matrix_case(kind.clone()).await;
        assert_eq!(sim.calls_of("renew").len(), 1, "{kind:?}: one POST in all");
        assert_eq!(applied_renewals(&sim), 1, "{kind:?}");
        assert_eq!(s.states("sub0").await, [LedgerState::Succeeded], "{kind:?}: unknown, then reconciled");
        let e = &s.store.ledger_for(&SubscriptionId::parse("sub0").unwrap()).await.unwrap()[0];
        assert!(e.error.as_deref().unwrap_or_default().contains("reconciled"), "{kind:?}: {e:?}");
        assert_eq!(e.actual_end_at.map(|t| t.0), Some(sim.state().subscriptions[0].active_until_ms));
    }
}

#[tokio::test]
async fn a_503_before_applying_waits_out_the_window_then_renews_once() {
    let (sim, s) = spawn(&[DAY], "").await;
    sim.fault("renew", FaultKind::StatusBefore { status: 503 }, 1);
    let report = s.cycle().await;
    assert!(matches!(report.items[0].outcome, Some(RenewOutcome::Unknown { status: Some(503), .. })), "{report:?}");
    assert_eq!(s.states("sub0").await, [LedgerState::Unknown]);
    let e = &s.store.ledger_for(&SubscriptionId::parse("sub0").unwrap()).await.unwrap()[0];
    assert_eq!(e.http_status, Some(503), "the status an unknown outcome was answered with is kept");
    let report = s.cycle().await;
    assert_eq!(report.items[0].decision.reason(), "in-flight", "no second attempt inside the window");
    assert_eq!(sim.calls_of("renew").len(), 1);
    s.clock.advance(3_000);
    s.cycle().await;
    assert_eq!(s.states("sub0").await, [LedgerState::Failed, LedgerState::Succeeded]);
    assert_eq!((sim.calls_of("renew").len(), applied_renewals(&sim)), (2, 1));
}

#[tokio::test]
async fn refusals_402_and_409_back_off_then_succeed_once() {
    for status in [402, 409] {
        let (sim, s) = matrix_case(FaultKind::StatusBefore { status }).await;
        assert_eq!(s.states("sub0").await, [LedgerState::Refused, LedgerState::Succeeded], "{status}");
        assert_eq!((sim.calls_of("renew").len(), applied_renewals(&sim)), (2, 1), "{status}");
        let e = &s.store.ledger_for(&SubscriptionId::parse("sub0").unwrap()).await.unwrap()[0];
        assert_eq!(e.http_status, Some(status));
    }
}

#[tokio::test]
async fn a_long_lapsed_subscription_is_renewed_once_then_held() {
    let mut state = world(&[-40 * DAY]);
    state.settings.renew_from_expiry = true;
    let sim = sim_with(state).await;
    let s = Setup::new(&sim, "").await;
    let report = s.cycle().await;
    assert!(matches!(report.items[0].outcome, Some(RenewOutcome::Succeeded { held: true, .. })), "{report:?}");
    assert!(report.needs_attention());
    let report = s.cycle().await;
    assert_eq!(report.items[0].decision.reason(), "on-hold");
    assert_eq!(sim.calls_of("renew").len(), 1, "no automatic catch-up spending");
    assert_eq!(s.store.holds().await.unwrap().len(), 1);
    assert!(s.store.clear_hold(&SubscriptionId::parse("sub0").unwrap()).await.unwrap());
    s.cycle().await;
    assert_eq!(sim.calls_of("renew").len(), 2, "a person lifted the hold");
}

#[tokio::test]
async fn two_renewers_racing_on_one_period_send_one_post() {
    let (sim, s) = spawn(&[DAY], "").await;
    sim.fault("renew", FaultKind::Latency { ms: 300 }, 1);
    let report = s.cycle_with(true).await;
    let Decision::Renew(r) = report.items[0].decision.clone() else { panic!("{report:?}") };
    let id = SubscriptionId::parse("sub0").unwrap();
    let other = Store::open(&s.config().database_url).await.unwrap();
    if other.is_postgres() {
        // Both under one lease (as two tasks of one leader): the period key alone keeps
        // them apart, the ledger's second guard.
        let epoch = other.take_lease("racer pid 1", 60_000).await.unwrap().unwrap();
        let fence = proxy_renewd::store::Fence { holder: "racer pid 1".into(), epoch, lease_ms: 60_000 };
        other.set_fence(Some(fence.clone()));
        s.store.set_fence(Some(fence));
    }
    let daemon = Renewer {
        client: &s.client,
        store: &s.store,
        origin: Origin::Daemon,
        repeat_interval_ms: 3_600_000,
        clock: &s.clock,
    };
    let manual = Renewer { store: &other, origin: Origin::Manual, ..daemon };
    let (a, b) =
        tokio::join!(daemon.renew(&id, &r, 3 * DAY, |_| Vec::new()), manual.renew(&id, &r, 3 * DAY, |_| Vec::new()));
    let outcomes = [a.name(), b.name()];
    assert!(outcomes.contains(&"succeeded") && outcomes.contains(&"conflict"), "{outcomes:?}");
    assert_eq!(sim.calls_of("renew").len(), 1);
}

#[tokio::test]
async fn one_cycle_never_spends_past_the_budget() {
    let (sim, s) =
        spawn(&[DAY, DAY + 1, DAY + 2, DAY + 3, DAY + 4], "[budget]\nmax_spend_cents_per_day = 3600\n").await;
    let report = s.cycle().await;
    assert_eq!(sim.calls_of("renew").len(), 3, "3 × 12.00 fit in 36.00");
    let reasons: Vec<&str> = report.items.iter().map(|i| i.decision.reason()).collect();
    assert_eq!(reasons, ["renew", "renew", "renew", "over-budget", "over-budget"], "most urgent first");
    s.cycle().await;
    assert_eq!(sim.calls_of("renew").len(), 3, "the rolling 24 h still counts them");
}

#[tokio::test]
async fn a_dry_run_sends_no_post_and_writes_nothing() {
    // SQLite: `dump` reads every table through SQLite's own schema.
    let (sim, s) = crate::helpers::spawn_sqlite(&[DAY, 10 * DAY], "").await;
    // Something in every table first (a real cycle renews sub0, alerts, records the poll).
    sim.fault("renew", FaultKind::StatusBefore { status: 402 }, 1);
    s.cycle().await;
    sim.update(|st, _| st.subscriptions.remove(1));
    let before = dump(&s).await;
    sim.clear_calls();
    let report = s.cycle_with(true).await;
    assert!(matches!(report.items[0].decision, Decision::Renew(_) | Decision::Blocked(_)), "{report:?}");
    assert!(sim.calls().iter().all(|c| c.method == "GET"));
    assert_eq!(dump(&s).await, before, "no table changed");
}

/// Every row of every table, as text.
async fn dump(s: &crate::helpers::Setup) -> Vec<String> {
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&s.config().database_url).await.unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let mut out = Vec::new();
    for t in tables {
        let columns: Vec<String> = sqlx::query_scalar("SELECT name FROM pragma_table_info(?) ORDER BY cid")
            .bind(&t)
            .fetch_all(&mut conn)
            .await
            .unwrap();
        let cols: Vec<String> = columns.iter().map(|c| format!("quote(\"{c}\")")).collect();
        let sql = format!("SELECT json_group_array(json_array({})) FROM \"{t}\"", cols.join(", "));
        let rows: String = sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(&mut conn).await.unwrap();
        out.push(format!("{t}: {rows}"));
    }
    conn.close().await.unwrap();
    out
}

#[tokio::test]
async fn a_subscription_listed_twice_with_different_expiries_is_not_renewed() {
    let (sim, s) = spawn(&[DAY], "").await;
    let until = sim.state().subscriptions[0].active_until_ms;
    let entry = |t: i64| format!(r#"{{"subscriptionId": "sub0", "status": "active", "activeUntil": {t}}}"#);
    let body = format!(r#"{{"ok": true, "subscriptions": [{}, {}]}}"#, entry(until), entry(until + 1));
    sim.fault("subscriptions", crate::helpers::canned(200, body), 1);
    let report = s.cycle().await;
    assert!(report.items.is_empty(), "{report:?}");
    assert!(report.malformed[0].reason.contains("listed 2 times"), "{:?}", report.malformed);
    assert!(report.needs_attention());
    assert!(sim.calls_of("renew").is_empty(), "no charge for either copy");
    // Identical copies are one subscription.
    let body = format!(r#"{{"ok": true, "subscriptions": [{}, {}]}}"#, entry(until), entry(until));
    sim.fault("subscriptions", crate::helpers::canned(200, body), 1);
    let report = s.cycle().await;
    assert_eq!(report.items.len(), 1);
    assert_eq!(sim.calls_of("renew").len(), 1);
}

#[tokio::test]
async fn an_expiry_that_goes_back_after_a_renewal_is_not_paid_again() {
    let (sim, s) = spawn(&[DAY], "").await;
    let before = sim.state().subscriptions[0].active_until_ms;
    s.cycle().await;
    assert_eq!(sim.calls_of("renew").len(), 1);
    sim.update(|st, _| st.subscriptions[0].active_until_ms = before - 1_000);
    let report = s.cycle().await;
    assert_eq!(report.items[0].decision.reason(), "regressed", "{report:?}");
    assert!(report.needs_attention());
    assert_eq!(sim.calls_of("renew").len(), 1, "no second payment for the same time");
}

#[tokio::test]
async fn a_hold_covers_only_the_expiry_it_was_written_for() {
    let mut state = world(&[-40 * DAY]);
    state.settings.renew_from_expiry = true;
    let sim = sim_with(state).await;
    let s = Setup::new(&sim, "").await;
    s.cycle().await;
    assert_eq!(s.cycle().await.items[0].decision.reason(), "on-hold");
    // Renewed elsewhere past the held expiry, then due again later: renewed, not held.
    sim.update(|st, now| st.subscriptions[0].active_until_ms = now + DAY);
    let report = s.cycle().await;
    assert_eq!(report.items[0].decision.reason(), "renew", "{report:?}");
}

#[tokio::test]
async fn an_answer_about_another_subscription_is_an_unknown_outcome() {
    let (sim, s) = spawn(&[DAY, 20 * DAY], "").await;
    let other = format!(r#"{{"ok": true, "subscriptionId": "sub1", "endAt": {}}}"#, EpochMs::now().0 + 40 * DAY);
    sim.fault("renew", crate::helpers::canned(200, other), 1);
    let report = s.cycle().await;
    let first = report.items.iter().find(|i| i.subscription.subscription_id.as_str() == "sub0").unwrap();
    assert!(matches!(first.outcome, Some(RenewOutcome::Unknown { .. })), "{first:?}");
    assert_eq!(s.states("sub0").await, [LedgerState::Unknown]);
}

#[tokio::test]
async fn a_short_balance_goes_to_the_most_urgent_and_stops_the_rest() {
    let sim = sim_with(world(&[2 * DAY, DAY, 2 * DAY + 1])).await;
    sim.update(|s, _| s.balance_cents = 1_200);
    let s = Setup::new(&sim, "").await.with_max_concurrency(1);
    let report = s.cycle().await;
    let outcome = |id: &str| {
        report
            .items
            .iter()
            .find(|i| i.subscription.subscription_id.as_str() == id)
            .and_then(|i| i.outcome.as_ref())
            .map(RenewOutcome::name)
    };
    assert_eq!(
        (outcome("sub1"), outcome("sub0"), outcome("sub2")),
        (Some("succeeded"), Some("refused"), Some("not-attempted"))
    );
    assert_eq!(sim.calls_of("renew").len(), 2, "nothing sent after the 402");
    assert!(report.needs_attention());
}
