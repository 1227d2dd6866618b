//! Advice that works (issue 12): for each alert kind, doing what its "what to do" says makes
//! the next audit (`--dry-run`) clean for that subscription. Each test raises the alert with
//! a real cycle, checks the advice, follows it, and audits.

use proxy_renewd::rule::{PlanChoice, Rule};
use proxy_renewd::sim::FaultKind;
use proxy_renewd::values::{Cents, EpochMs, PlanId, SubscriptionId};

use crate::helpers::{DAY, Setup, bin, run, sim_with, spawn, world};

const K17: &str = "k17m3q5v7n9p1r2t4w6y8z0a";
const Q2W: &str = "q2w4e6r8t0y2u4i6o8p0a2s4";

fn sub0() -> SubscriptionId {
    SubscriptionId::parse("sub0").unwrap()
}

/// The action of the one alert of `kind` about a subscription, asserting it names `advice`.
async fn advice(s: &Setup, kind: &str, advice: &str) {
    let rows = s.store.outbox(false, 50).await.unwrap();
    let alert =
        rows.iter().find(|r| r.alert.kind.as_str() == kind && r.alert.subscription_id.is_some()).unwrap_or_else(|| {
            panic!("no {kind} alert: {:?}", rows.iter().map(|r| r.alert.kind.as_str()).collect::<Vec<_>>())
        });
    assert!(alert.alert.action.contains(advice), "{kind}: {}", alert.alert.action);
}

/// The next audit is clean for sub0.
async fn audit_is_clean(s: &Setup) {
    let report = s.cycle_with(true).await;
    let item = report.items.iter().find(|i| i.subscription.subscription_id == sub0()).unwrap();
    assert!(!item.needs_attention(), "still flagged: {} {:?}", item.decision.reason(), item.decision);
}

async fn set_rule(s: &Setup, change: impl FnOnce(&mut Rule)) {
    let mut rule = s.store.rule(&sub0()).await.unwrap().map_or_else(|| s.config().defaults.clone(), |r| r.rule);
    change(&mut rule);
    s.store.put_rule(&sub0(), &rule, EpochMs::now()).await.unwrap();
}

async fn cli(s: &Setup, args: &[&str]) {
    let mut cmd = bin();
    cmd.arg("--config").arg(s.config_path()).args(args);
    let ran = run(cmd).await;
    assert_eq!(ran.code, 0, "{args:?}: {}", ran.stderr);
}

#[tokio::test]
async fn unavailable_choose_another_plan() {
    let mut state = world(&[2 * DAY]);
    state.subscriptions[0].renewal_plan_ids.push(Q2W.into());
    let sim = sim_with(state).await;
    sim.fault("renew", FaultKind::StatusBefore { status: 409 }, 1);
    let s = Setup::new(&sim, &format!("[defaults]\nplan = \"{K17}\"\n")).await;
    s.cycle().await;
    advice(&s, "unavailable", &format!("on offer now: {Q2W}")).await;
    set_rule(&s, |r| r.plan = PlanChoice::Plan(PlanId::parse(Q2W).unwrap())).await;
    audit_is_clean(&s).await;
}

#[tokio::test]
async fn no_eligible_plan_choose_another_plan() {
    let (_sim, s) = spawn(&[2 * DAY], &format!("[defaults]\nplan = \"{Q2W}\"\n")).await;
    s.cycle().await;
    advice(&s, "no-eligible-plan", &format!("on offer now: {K17}")).await;
    set_rule(&s, |r| r.plan = PlanChoice::Plan(PlanId::parse(K17).unwrap())).await;
    audit_is_clean(&s).await;
}

#[tokio::test]
async fn over_price_cap_raise_the_cap() {
    let (_sim, s) = spawn(&[2 * DAY], "[defaults]\nmax_price_cents = 1000\n").await;
    s.cycle().await;
    advice(&s, "over-price-cap", "rules set sub0 --max-price-cents").await;
    set_rule(&s, |r| r.max_price_cents = Some(Cents(1500))).await;
    audit_is_clean(&s).await;
}

#[tokio::test]
async fn over_budget_raise_the_budget() {
    let (_sim, s) = spawn(&[2 * DAY], "[budget]\nmax_spend_cents_per_day = 1000\n").await;
    s.cycle().await;
    advice(&s, "over-budget", "raise [budget] max_spend_cents_per_day").await;
    let path = s.config_path().to_owned();
    let toml = std::fs::read_to_string(&path)
        .unwrap()
        .replace("max_spend_cents_per_day = 1000", "max_spend_cents_per_day = 5000");
    std::fs::write(&path, toml).unwrap();
    let s = s.restart().await;
    audit_is_clean(&s).await;
}

#[tokio::test]
async fn insufficient_balance_top_up() {
    let (sim, s) = spawn(&[2 * DAY], "").await;
    sim.update(|st, _| st.balance_cents = 0);
    s.cycle().await;
    advice(&s, "insufficient-balance", "top up the account balance").await;
    // The account's figure: the blocked renewal is all the next 24 h need.
    let rows = s.store.outbox(false, 50).await.unwrap();
    let account = rows.iter().find(|r| r.alert.subscription_id.is_none()).expect("the account's top-up");
    assert_eq!(
        account.alert.happened,
        "the next 24 h need 12.00: 1 renewal by the forecast, the 1 renewal the short balance blocked now included"
    );
    assert!(account.alert.action.starts_with("top up by at least 12.00 (1200 cents) to cover the next 24 h"));
    sim.update(|st, _| st.balance_cents = 100_000);
    audit_is_clean(&s).await;
}

#[tokio::test]
async fn still_due_after_renewal_allow_it() {
    let mut state = world(&[-40 * DAY]);
    state.settings.renew_from_expiry = true;
    let sim = sim_with(state).await;
    let s = Setup::new(&sim, "").await;
    s.cycle().await;
    advice(&s, "still-due-after-renewal", "rules set sub0 --enable").await;
    cli(&s, &["rules", "set", "sub0", "--enable"]).await;
    audit_is_clean(&s).await;
}

#[tokio::test]
async fn unknown_outcome_wait_for_reconciliation() {
    let (sim, s) = spawn(&[DAY], "").await;
    sim.fault("renew", FaultKind::DropAfter, 1);
    s.cycle().await;
    advice(&s, "unknown-outcome", "history --subscription sub0").await;
    // "Nothing yet": the next real cycle reconciles it.
    s.cycle().await;
    audit_is_clean(&s).await;
}

#[tokio::test]
async fn malformed_fixed_at_the_provider() {
    let (sim, s) = spawn(&[DAY], "").await;
    sim.update(|st, _| st.subscriptions[0].active_until_ms = 1_700_000_000);
    s.cycle().await;
    advice(&s, "malformed", "check the subscription at the provider").await;
    sim.update(|st, now| st.subscriptions[0].active_until_ms = now + 20 * DAY);
    audit_is_clean(&s).await;
}

#[tokio::test]
async fn ambiguous_checked_then_allowed() {
    let (sim, s) = spawn(&[DAY], "").await;
    sim.fault("renew", FaultKind::StatusBefore { status: 503 }, 1);
    s.cycle().await;
    sim.update(|st, _| st.subscriptions[0].active_until_ms += DAY);
    s.cycle().await;
    advice(&s, "ambiguous", "rules set sub0 --enable").await;
    cli(&s, &["rules", "set", "sub0", "--enable"]).await;
    audit_is_clean(&s).await;
}

/// Rewrites the set-up's config file (`from` → `to`) and starts it again: what a person does
/// after fixing a key in the config.
async fn edit_config(s: Setup, from: &str, to: &str) -> Setup {
    let path = s.config_path().to_owned();
    let toml = std::fs::read_to_string(&path).unwrap();
    assert!(toml.contains(from), "{toml}");
    std::fs::write(&path, toml.replace(from, to)).unwrap();
    s.restart().await
}

#[tokio::test]
async fn auth_fix_the_key() {
    // The provider knows another key than the config's.
    let config = proxy_renewd::sim::SimConfig {
        api_key: "rk_the_right_key_42".into(),
        state: world(&[20 * DAY]),
        ..proxy_renewd::sim::SimConfig::sample()
    };
    let sim = proxy_renewd::sim::Simulator::start(config).await.unwrap();
    let s = Setup::new(&sim, "").await;
    assert!(s.cycle_of(false).run().await.is_err());
    let rows = s.store.outbox(false, 10).await.unwrap();
    assert!(rows.iter().any(|r| r.alert.kind.as_str() == "auth" && r.alert.action.contains("[api].key")));
    let s = edit_config(s, crate::helpers::KEY, "rk_the_right_key_42").await;
    audit_is_clean(&s).await;
}

#[tokio::test]
async fn unreachable_fix_the_address() {
    let (sim, s) = spawn(&[20 * DAY], "").await;
    let right = sim.base_url().to_string();
    let s = edit_config(s, right.trim_end_matches('/'), "http://127.0.0.1:9").await;
    for _ in 0..3 {
        assert!(s.cycle_of(false).run().await.is_err());
        s.clock.advance(15 * 60_000);
    }
    let rows = s.store.outbox(false, 10).await.unwrap();
    assert!(rows.iter().any(|r| r.alert.kind.as_str() == "unreachable" && r.alert.action.contains("base_url")));
    let s = edit_config(s, "http://127.0.0.1:9", right.trim_end_matches('/')).await;
    audit_is_clean(&s).await;
}
