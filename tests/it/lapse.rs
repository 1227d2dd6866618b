//! No silent lapse (issue 11): one bad byte, an outage, a refusal or a vanished entry never
//! stops renewals quietly. Each test names the fault it is about; each runs the real library
//! against the simulator.

use proxy_renewd::attempt::{LedgerState, RenewOutcome};
use proxy_renewd::policy::{Blocked, Decision};
use proxy_renewd::sim::FaultKind;
use proxy_renewd::values::{EpochMs, SubscriptionId};

use crate::helpers::{DAY, Setup, sim_with, spawn, world};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An entry for `id`, not due, whose field `field` holds `raw` verbatim.
fn entry_with(id: &str, field: &str, raw: &[u8]) -> String {
    let until = EpochMs::now().0 + 20 * DAY;
    let mut e = format!(r#"{{"subscriptionId": "{id}", "status": "active", "activeUntil": {until}, "#).into_bytes();
    e = [e, format!(r#""{field}": "#).into_bytes(), raw.to_vec(), b"}".to_vec()].concat();
    hex(&e)
}

#[tokio::test]
async fn one_unreadable_entry_does_not_hide_the_due_ones() {
    let (sim, s) = spawn(&[DAY], "").await;
    let deep = [vec![b'['; 300], vec![b']'; 300]].concat();
    let entries = vec![
        entry_with("badutf8", "label", b"\"\xff\xfe\""),
        entry_with("hugenumber", "rotationPolicy", b"1e400"),
        // Unknown fields are ignored, however odd: this entry is read and used.
        entry_with("deepnesting", "x", &deep),
        entry_with("unknownbytes", "y", b"\"\xff\""),
    ];
    sim.fault("subscriptions", FaultKind::RawEntries { entries_hex: entries }, 1);
    let report = s.cycle().await;
    assert!(matches!(report.items[0].outcome, Some(RenewOutcome::Succeeded { .. })), "{report:?}");
    assert_eq!(sim.calls_of("renew").len(), 1, "the due subscription is renewed");
    let named: Vec<String> = report
        .malformed
        .iter()
        .map(|m| m.subscription_id.as_ref().map(ToString::to_string).unwrap_or_default())
        .collect();
    assert_eq!(named, ["badutf8", "hugenumber"], "{:?}", report.malformed);
    let read: Vec<&str> = report.items.iter().map(|i| i.subscription.subscription_id.as_str()).collect();
    assert!(read.contains(&"deepnesting") && read.contains(&"unknownbytes"), "{read:?}");
    assert!(report.needs_attention());
    let kinds: Vec<String> =
        s.store.outbox(false, 100).await.unwrap().iter().map(|r| r.alert.kind.as_str().to_owned()).collect();
    assert_eq!(kinds.iter().filter(|k| *k == "malformed").count(), 2, "{kinds:?}");
}

#[tokio::test]
async fn a_list_of_non_objects_is_counted_once_not_alerted_one_by_one() {
    let (sim, s) = spawn(&[DAY], "").await;
    let mut entries: Vec<String> = vec![hex(b"1"); 300_000];
    // And some objects without a readable id: alerted ten at a time, the rest counted.
    entries.extend(std::iter::repeat_n(hex(b"{\"status\": 5}"), 50));
    sim.fault("subscriptions", FaultKind::RawEntries { entries_hex: entries }, 1);
    let report = s.cycle().await;
    assert_eq!(report.not_objects, 300_000);
    assert_eq!(report.malformed.len(), 50);
    assert_eq!(sim.calls_of("renew").len(), 1, "the due subscription is still renewed");
    let rows = s.store.outbox(false, 1_000).await.unwrap();
    let malformed: Vec<&str> =
        rows.iter().filter(|r| r.alert.kind.as_str() == "malformed").map(|r| r.alert.happened.as_str()).collect();
    assert_eq!(malformed.len(), 12, "ten entries, one for the other 40, one for the non-objects: {malformed:?}");
    assert!(malformed.iter().any(|h| h.contains("300000 entries of subscriptions[] are not objects")), "{malformed:?}");
    assert!(malformed.iter().any(|h| h.contains("40 more entries")), "{malformed:?}");
}

#[tokio::test]
async fn a_403_on_renewal_plans_is_an_auth_alert_not_no_eligible_plan() {
    let (sim, s) = spawn(&[DAY], "").await;
    sim.fault("renewal-plans", FaultKind::StatusBefore { status: 403 }, 1);
    let report = s.cycle().await;
    assert!(report.needs_attention());
    let kinds: Vec<String> =
        s.store.outbox(false, 100).await.unwrap().iter().map(|r| r.alert.kind.as_str().to_owned()).collect();
    assert!(kinds.contains(&"auth".to_owned()), "{kinds:?}");
    assert!(!kinds.contains(&"no-eligible-plan".to_owned()), "{kinds:?}");
    assert!(sim.calls_of("renew").is_empty());
}

/// The plans of the ledger attempts of `sub0`, with their states.
async fn attempts(s: &crate::helpers::Setup) -> Vec<(String, LedgerState)> {
    let id = SubscriptionId::parse("sub0").unwrap();
    s.store.ledger_for(&id).await.unwrap().into_iter().map(|e| (e.renewal.plan_id.to_string(), e.state)).collect()
}

#[tokio::test]
async fn a_409_on_the_plan_a_strategy_chose_tries_the_next_plan_in_the_same_cycle() {
    let mut state = world(&[DAY]);
    state.subscriptions[0].renewal_plan_ids.push("q2w4e6r8t0y2u4i6o8p0a2s4".into());
    let sim = sim_with(state).await;
    let s = Setup::new(&sim, "").await;
    sim.fault("renew", FaultKind::StatusBefore { status: 409 }, 1);
    let report = s.cycle().await;
    assert!(matches!(report.items[0].outcome, Some(RenewOutcome::Succeeded { .. })), "{report:?}");
    assert_eq!(
        attempts(&s).await,
        [
            ("k17m3q5v7n9p1r2t4w6y8z0a".to_owned(), LedgerState::Refused),
            ("q2w4e6r8t0y2u4i6o8p0a2s4".to_owned(), LedgerState::Succeeded)
        ]
    );
    assert_eq!(sim.calls_of("renew").len(), 2);
    let kinds: Vec<String> =
        s.store.outbox(false, 100).await.unwrap().iter().map(|r| r.alert.kind.as_str().to_owned()).collect();
    assert!(!kinds.contains(&"unavailable".to_owned()), "handled within the cycle: {kinds:?}");
}

#[tokio::test]
async fn a_short_retry_after_on_renew_is_waited_out_within_the_cycle() {
    let (sim, s) = spawn(&[DAY], "").await;
    sim.fault("renew", FaultKind::RateLimit { retry_after_secs: 1 }, 1);
    let report = s.cycle().await;
    assert!(matches!(report.items[0].outcome, Some(RenewOutcome::Succeeded { .. })), "{report:?}");
    let states: Vec<LedgerState> = attempts(&s).await.into_iter().map(|(_, st)| st).collect();
    assert_eq!(states, [LedgerState::Refused, LedgerState::Succeeded]);
}

#[tokio::test]
async fn a_long_retry_after_on_renew_is_the_next_attempt_time_not_ten_minutes() {
    // Two days out: outside the last lapse_warning (24 h), where waits apply.
    let (sim, s) = spawn(&[2 * DAY], "").await;
    sim.fault("renew", FaultKind::RateLimit { retry_after_secs: 3600 }, 1);
    s.cycle().await;
    let report = s.cycle().await;
    let Decision::Blocked(Blocked::Backoff { status: Some(429), until }) = report.items[0].decision else {
        panic!("{report:?}")
    };
    let wait = until.since(EpochMs::now());
    assert!((3_500_000..=3_700_000).contains(&wait), "waits the hour Retry-After asked, not 10 min: {wait} ms");
    s.clock.advance(3_600_000);
    s.cycle().await;
    assert_eq!(sim.calls_of("renew").len(), 2, "tried again once the hour passed");
}

#[tokio::test]
async fn inside_the_lapse_warning_a_refused_subscription_is_tried_every_cycle() {
    // 12 h out: inside the last lapse_warning (24 h); an explicit plan, so a 409 has no
    // other plan to move to.
    let (sim, s) = spawn(&[DAY / 2], "[defaults]\nplan = \"k17m3q5v7n9p1r2t4w6y8z0a\"\n").await;
    sim.fault("renew", FaultKind::StatusBefore { status: 409 }, 2);
    s.cycle().await;
    s.cycle().await;
    assert_eq!(sim.calls_of("renew").len(), 2, "no backoff in the last lapse_warning");
    let report = s.cycle().await;
    assert!(matches!(report.items[0].outcome, Some(RenewOutcome::Succeeded { .. })), "{report:?}");
}

#[tokio::test]
async fn after_a_402_the_next_cycle_probes_and_a_top_up_is_noticed_at_once() {
    // Two days out (outside the lapse window), three subscriptions, no money; one request
    // at a time, so that "the first 402" is well defined.
    let (sim, s) = spawn(&[2 * DAY, 2 * DAY + 1, 2 * DAY + 2], "").await;
    let s = s.with_max_concurrency(1);
    sim.update(|st, _| st.balance_cents = 0);
    s.cycle().await;
    assert_eq!(sim.calls_of("renew").len(), 1, "stops at the first 402");
    // Within the backoff: one probe a cycle, the most urgent, still short.
    s.clock.advance(60_000);
    let report = s.cycle().await;
    assert_eq!(sim.calls_of("renew").len(), 2, "one probe");
    assert_eq!(report.items[0].decision.reason(), "renew", "the most urgent is the probe: {report:?}");
    // Topped up: the probe succeeds, and the next cycle renews the rest.
    sim.update(|st, _| st.balance_cents = 100_000);
    s.clock.advance(60_000);
    let report = s.cycle().await;
    assert!(matches!(report.items[0].outcome, Some(RenewOutcome::Succeeded { .. })), "{report:?}");
    s.clock.advance(60_000);
    s.cycle().await;
    let applied = sim.calls_of("renew").iter().filter(|c| c.applied).count();
    assert_eq!(applied, 3, "all three renewed within two cycles of the top-up");
}

#[tokio::test]
async fn an_unknown_outcome_that_moves_activeuntil_by_another_amount_is_ambiguous() {
    let (sim, s) = spawn(&[DAY], "").await;
    sim.fault("renew", FaultKind::StatusBefore { status: 503 }, 1);
    s.cycle().await;
    // The provider adds a day of goodwill; our renewal was never applied.
    sim.update(|st, _| st.subscriptions[0].active_until_ms += DAY);
    let report = s.cycle().await;
    let states: Vec<LedgerState> = attempts(&s).await.into_iter().map(|(_, st)| st).collect();
    assert_eq!(states, [LedgerState::Ambiguous], "not booked as our success");
    assert_eq!(s.store.spend_since(EpochMs(0)).await.unwrap().0, 0, "not booked as our spend");
    assert_eq!(s.store.holds().await.unwrap().len(), 1, "held for a person");
    assert!(report.needs_attention() || !report.reconciled.is_empty());
    let alerts = s.store.outbox(false, 100).await.unwrap();
    let ambiguous: Vec<&str> =
        alerts.iter().filter(|r| r.alert.kind.as_str() == "ambiguous").map(|r| r.alert.happened.as_str()).collect();
    assert_eq!(ambiguous.len(), 1, "{alerts:?}");
    assert!(ambiguous[0].contains("expected"), "both figures: {}", ambiguous[0]);
    s.clock.advance(DAY / 2);
    s.cycle().await;
    assert_eq!(sim.calls_of("renew").len(), 1, "never followed by a blind new attempt");
}

#[tokio::test]
async fn an_implausible_end_at_is_settled_by_reading_activeuntil_not_stored_as_paid() {
    let (sim, s) = spawn(&[DAY], "").await;
    let seconds = r#"{"ok": true, "subscriptionId": "sub0", "endAt": 1900000000}"#;
    sim.fault("renew", crate::helpers::canned(200, seconds), 1);
    let report = s.cycle().await;
    assert_eq!(report.items[0].outcome.as_ref().map(RenewOutcome::name), Some("unknown"), "{report:?}");
    let states: Vec<LedgerState> = attempts(&s).await.into_iter().map(|(_, st)| st).collect();
    assert_eq!(states, [LedgerState::Unknown]);
    assert!(s.store.paid_until().await.unwrap().is_empty(), "no paid-until from an implausible endAt");
    // The canned answer applied nothing: after reconcile_after it is failed, and renewed.
    s.clock.advance(3_000);
    let report = s.cycle().await;
    assert_ne!(report.items[0].decision.reason(), "regressed", "{report:?}");
    let states: Vec<LedgerState> = attempts(&s).await.into_iter().map(|(_, st)| st).collect();
    assert_eq!(states, [LedgerState::Failed, LedgerState::Succeeded]);
}

#[tokio::test]
async fn a_managed_subscription_that_stops_being_listed_alerts_once() {
    let (sim, s) = spawn(&[10 * DAY, 20 * DAY], "").await;
    s.cycle().await;
    let removed = sim.update(|st, _| st.subscriptions.remove(0));
    let report = s.cycle().await;
    assert_eq!(report.vanished.len(), 1, "{report:?}");
    assert!(report.needs_attention(), "exit 3 material");
    s.cycle().await;
    let vanished: Vec<String> = s
        .store
        .outbox(false, 100)
        .await
        .unwrap()
        .iter()
        .filter(|r| r.alert.kind.as_str() == "vanished")
        .map(|r| r.alert.happened.clone())
        .collect();
    assert_eq!(vanished.len(), 1, "once: {vanished:?}");
    assert!(vanished[0].contains("last known expiry"), "{vanished:?}");
    // It comes back: normal again, and a later disappearance alerts again.
    sim.update(|st, _| st.subscriptions.push(removed));
    let report = s.cycle().await;
    assert!(report.vanished.is_empty() && !report.needs_attention(), "{report:?}");
}

pub fn kinds_of(rows: &[proxy_renewd::store::OutboxRow]) -> Vec<&str> {
    rows.iter().map(|r| r.alert.kind.as_str()).collect()
}

#[tokio::test]
async fn reads_that_keep_failing_alert_from_the_last_good_read_then_unreachable_then_recovered() {
    // Expires in 3 h; renewed only 1 h ahead, so the good read renews nothing.
    let (sim, s) = spawn(&[3 * 3_600_000], "[defaults]\nrenew_before = \"1h\"\n").await;
    s.cycle().await;
    assert!(s.store.outbox(false, 100).await.unwrap().is_empty());
    // 503 on every read (each cycle's read is tried twice).
    sim.fault("subscriptions", FaultKind::StatusBefore { status: 503 }, 6);
    for n in 1..=3 {
        assert!(s.cycle_of(false).run().await.is_err(), "read {n} fails");
        let kinds: Vec<String> =
            kinds_of(&s.store.outbox(false, 100).await.unwrap()).into_iter().map(str::to_owned).collect();
        assert!(kinds.contains(&"lapse-imminent".to_owned()), "from the last good read, at once: {kinds:?}");
        assert_eq!(kinds.contains(&"unreachable".to_owned()), n == 3, "after 3 cycles and 30 min: {n} {kinds:?}");
        s.clock.advance(15 * 60_000);
    }
    let failing = s.store.read_failures().await.unwrap().unwrap();
    assert_eq!(failing.count, 3);
    // It answers again: recovered, and the run of failures is over.
    s.cycle().await;
    let rows = s.store.outbox(false, 100).await.unwrap();
    let recovered: Vec<&str> =
        rows.iter().filter(|r| r.alert.kind.as_str() == "recovered").map(|r| r.alert.happened.as_str()).collect();
    assert_eq!(recovered.len(), 1, "{:?}", kinds_of(&rows));
    assert!(recovered[0].contains("answers again"), "{recovered:?}");
    assert!(s.store.read_failures().await.unwrap().is_none());
}

#[tokio::test]
async fn an_unreachable_provider_alerts_unreachable() {
    let (sim, s) = spawn(&[10 * DAY], "").await;
    s.cycle().await;
    // The provider goes away: port 1, where nothing listens (a stopped simulator's port can
    // be taken by another test's server at once).
    let toml = std::fs::read_to_string(s.config_path()).unwrap();
    std::fs::write(s.config_path(), toml.replace(sim.base_url().as_str(), "http://127.0.0.1:1/")).unwrap();
    let s = s.restart().await;
    for _ in 0..3 {
        assert!(s.cycle_of(false).run().await.is_err());
        s.clock.advance(15 * 60_000);
    }
    let rows = s.store.outbox(false, 100).await.unwrap();
    let unreachable: Vec<&str> =
        rows.iter().filter(|r| r.alert.kind.as_str() == "unreachable").map(|r| r.alert.happened.as_str()).collect();
    assert_eq!(unreachable.len(), 1, "{:?}", kinds_of(&rows));
    assert!(unreachable[0].contains("3 times in a row"), "{unreachable:?}");
    // `health` says why.
    let mut health = crate::helpers::bin();
    health.arg("--config").arg(s.config_path()).args(["health", "--max-age", "10d"]);
    let ran = crate::helpers::run(health).await;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(ran.stdout.contains("op=subscriptions has failed 3 times in a row"), "{}", ran.stdout);
}

#[tokio::test]
async fn an_interrupted_cycle_reports_exactly_what_was_sent() {
    let (sim, s) = spawn(&[DAY, DAY + 1, DAY + 2], "").await;
    let s = s.with_max_concurrency(1);
    sim.fault("renew", FaultKind::Latency { ms: 400 }, 1);
    let cancel = tokio_util::sync::CancellationToken::new();
    let stop = cancel.clone();
    let watcher = async {
        while sim.stats().in_flight == 0 || sim.calls_of("renewal-plans").len() < 3 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        stop.cancel();
    };
    let cycle = s.app.cycle(cancel);
    let (report, ()) = tokio::join!(cycle.run(), watcher);
    let report = report.unwrap();
    assert!(report.interrupted);
    let names: Vec<&str> = report.items.iter().map(|i| i.outcome.as_ref().map_or("none", RenewOutcome::name)).collect();
    assert_eq!(names, ["succeeded", "not-attempted", "not-attempted"], "the one in flight finished");
    let t = report.totals();
    assert_eq!((t.sent, t.renewed, t.not_started), (1, 1, 2));
    assert_eq!(sim.calls_of("renew").len(), 1);
    let table = proxy_renewd::output::report::render(&report, proxy_renewd::output::OutputFormat::Table);
    assert!(table.contains("1 renewed of 1 sent, 2 not started (shutdown requested)"), "{table}");
    assert!(report.needs_attention(), "exit 3: what was not started is due still");
}

#[tokio::test]
async fn after_a_fault_soak_with_retry_after_nothing_is_left_due_within_two_cycles() {
    // Ten subscriptions inside the last lapse_warning, renewed through three cycles of mixed
    // faults on `renew` (429 with short and long Retry-After, 409, 402, 5xx before and after
    // applying, dropped answers), then two cycles without faults.
    let offsets: Vec<i64> = (0..10).map(|i| DAY / 2 + i * 60_000).collect();
    let (sim, s) = spawn(&offsets, "").await;
    let kinds = [
        FaultKind::RateLimit { retry_after_secs: 1 },
        FaultKind::RateLimit { retry_after_secs: 3600 },
        FaultKind::StatusBefore { status: 409 },
        FaultKind::StatusBefore { status: 402 },
        FaultKind::StatusBefore { status: 503 },
        FaultKind::StatusAfter { status: 500 },
        FaultKind::DropAfter,
        FaultKind::DropBefore,
    ];
    let mut seed: u64 = 0x5eed;
    for _ in 0..3 {
        for _ in 0..6 {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            sim.fault("renew", kinds[(seed >> 33) as usize % kinds.len()].clone(), 1);
        }
        s.cycle().await;
        sim.clear_faults();
        s.clock.advance(60_000);
    }
    // Faults stop; unknown outcomes settle once reconcile_after (3 s here) has passed.
    s.clock.advance(3_000);
    s.cycle().await;
    s.clock.advance(3_000);
    let report = s.cycle().await;
    let due: Vec<(&str, &str)> = report
        .items
        .iter()
        .filter(|i| !matches!(i.decision, Decision::Ok { .. }))
        .map(|i| (i.subscription.subscription_id.as_str(), i.decision.reason()))
        .collect();
    assert!(due.is_empty(), "still due after the faults stopped: {due:?}");
    for sub in sim.state().subscriptions {
        let applied =
            sim.calls_of("renew").iter().filter(|c| c.applied && c.params["subscriptionId"] == sub.id.as_str()).count();
        assert_eq!(applied, 1, "{} renewed exactly once", sub.id);
    }
}

#[tokio::test]
async fn a_renewal_the_gateway_applies_after_the_client_gave_up_is_reconciled_not_repeated() {
    // The client gives up after 1 s (api.timeout); the gateway applies the request 1.5 s after
    // it arrived, within reconcile_after (3 s, counted from when the client gave up).
    let (sim, s) = spawn(&[DAY], "").await;
    sim.fault("renew", FaultKind::ApplyLate { ms: 1_500 }, 1);
    let report = s.cycle().await;
    assert_eq!(report.items[0].outcome.as_ref().map(RenewOutcome::name), Some("unknown"), "{report:?}");
    crate::daemon::wait_for("the late apply", || sim.calls_of("renew").iter().any(|c| c.applied)).await;
    let report = s.cycle().await;
    let states: Vec<LedgerState> = attempts(&s).await.into_iter().map(|(_, st)| st).collect();
    assert_eq!(states, [LedgerState::Succeeded], "reconciled from activeUntil: {report:?}");
    s.clock.advance(DAY / 4);
    s.cycle().await;
    assert_eq!(sim.calls_of("renew").len(), 1, "never sent again");
}

#[tokio::test]
async fn the_schema_is_in_the_main_file_after_migrations_not_only_in_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("renewd.db");
    let store = proxy_renewd::store::Store::open(&format!("sqlite://{}", db.display())).await.unwrap();
    // Copy the main file alone, while the store is open: what a backup of it would hold.
    let copy = dir.path().join("copy.db");
    std::fs::copy(&db, &copy).unwrap();
    let copied = proxy_renewd::store::Store::open_read_only(&format!("sqlite://{}", copy.display())).await;
    assert!(copied.is_ok(), "the copy has the whole schema: {:?}", copied.err());
    store.close().await;
}

/// `sub0`'s rule with an explicit plan, put in the rules table.
async fn put_plan(s: &Setup, sub: &str, plan: &str) {
    let rule = proxy_renewd::rule::Rule {
        plan: proxy_renewd::rule::PlanChoice::Plan(proxy_renewd::values::PlanId::parse(plan).unwrap()),
        ..s.config().defaults.clone()
    };
    s.store.put_rule(&SubscriptionId::parse(sub).unwrap(), &rule, EpochMs::now()).await.unwrap();
}

#[tokio::test]
async fn the_balance_probe_goes_last_so_a_cheaper_renewal_is_not_starved() {
    // sub0 is the most urgent and costs 33.00; sub1 costs 12.00; the balance holds 20.00.
    let mut state = world(&[2 * DAY, 2 * DAY + 1]);
    state.subscriptions[0].renewal_plan_ids.push("q2w4e6r8t0y2u4i6o8p0a2s4".into());
    state.balance_cents = 2_000;
    let sim = sim_with(state).await;
    let s = Setup::new(&sim, "").await.with_max_concurrency(1);
    put_plan(&s, "sub0", "q2w4e6r8t0y2u4i6o8p0a2s4").await;
    let report = s.cycle().await;
    let names: Vec<&str> = report.items.iter().map(|i| i.outcome.as_ref().map_or("none", RenewOutcome::name)).collect();
    assert_eq!(names, ["refused", "not-attempted"]);
    let rows = s.store.outbox(false, 100).await.unwrap();
    let short: Vec<Option<&str>> = rows
        .iter()
        .filter(|r| r.alert.kind.as_str() == "insufficient-balance")
        .map(|r| r.alert.subscription_id.as_ref().map(|i| i.as_str()))
        .collect();
    assert!(short.contains(&Some("sub1")), "the one not tried alerts too, with its price: {short:?}");
    s.clock.advance(60_000);
    let report = s.cycle().await;
    let sub1 = report.items.iter().find(|i| i.subscription.subscription_id.as_str() == "sub1").unwrap();
    assert!(matches!(sub1.outcome, Some(RenewOutcome::Succeeded { .. })), "{report:?}");
}

#[tokio::test]
async fn plans_tried_after_409s_share_one_budget() {
    // Two subscriptions, cheapest 12.00 (sold out: 409), next 33.00; a 50.00 budget.
    let sim = sim_with(crate::helpers::world_with_the_cheapest_sold_out(&[DAY, DAY + 1])).await;
    let s = Setup::new(&sim, "[budget]\nmax_spend_cents_per_day = 5000\n").await.with_max_concurrency(1);
    let report = s.cycle().await;
    let spent: i64 = sim
        .calls_of("renew")
        .iter()
        .filter(|c| c.applied)
        .map(|c| if c.params["planId"] == "q2w4e6r8t0y2u4i6o8p0a2s4" { 3_300 } else { 1_200 })
        .sum();
    assert!(spent <= 5_000, "the daily budget holds across retries: {spent}");
    assert_eq!(spent, 3_300, "sub0 moved to the 33.00 plan; sub1's move would break the budget");
    let names: Vec<&str> = report.items.iter().map(|i| i.outcome.as_ref().map_or("none", RenewOutcome::name)).collect();
    assert_eq!(names, ["succeeded", "refused"], "{report:?}");
}

#[tokio::test]
async fn a_plan_refused_with_409_gives_its_price_back_before_the_next_plan_is_weighed() {
    // Cheapest 12.00 sold out, next 33.00, a budget of exactly 33.00: once the 409 has freed
    // the 12.00, the 33.00 plan fits to the cent, and is tried in the same cycle.
    let sim = sim_with(crate::helpers::world_with_the_cheapest_sold_out(&[DAY])).await;
    let s = Setup::new(&sim, "[budget]\nmax_spend_cents_per_day = 3300\n").await;
    let report = s.cycle().await;
    let plans: Vec<String> =
        sim.calls_of("renew").iter().map(|c| c.params["planId"].as_str().unwrap().to_owned()).collect();
    assert_eq!(plans, ["k17m3q5v7n9p1r2t4w6y8z0a", "q2w4e6r8t0y2u4i6o8p0a2s4"], "{report:?}");
    assert_eq!(report.items[0].outcome.as_ref().map(RenewOutcome::name), Some("succeeded"));
}

#[tokio::test]
async fn a_refusal_retried_to_the_last_round_still_alerts() {
    let (sim, s) = spawn(&[DAY], "").await;
    sim.fault("renew", FaultKind::RateLimit { retry_after_secs: 1 }, 10);
    s.cycle().await;
    assert_eq!(sim.calls_of("renew").len(), 4, "bounded retries within the cycle");
    let kinds: Vec<String> =
        s.store.outbox(false, 100).await.unwrap().iter().map(|r| r.alert.kind.as_str().to_owned()).collect();
    assert!(kinds.contains(&"unavailable".to_owned()), "the last refusal alerts: {kinds:?}");
}

#[tokio::test]
async fn a_subscription_listed_twice_with_different_data_is_malformed_not_vanished() {
    let (sim, s) = spawn(&[10 * DAY], "").await;
    s.cycle().await;
    let until = sim.state().subscriptions[0].active_until_ms;
    let entry = |t: i64| format!(r#"{{"subscriptionId": "sub0", "status": "active", "activeUntil": {t}}}"#);
    let body = format!(r#"{{"ok": true, "subscriptions": [{}, {}]}}"#, entry(until), entry(until + 1));
    sim.fault("subscriptions", crate::helpers::canned(200, body), 1);
    let report = s.cycle().await;
    assert_eq!(report.malformed.len(), 1);
    assert!(report.vanished.is_empty(), "listed, though not usable: {:?}", report.vanished);
}
