//! The policy, on hand-written cases (every decision reason, every tie-break) and on random
//! ones (proptest): it never renews what is not due, never exceeds a cap or the budget,
//! always picks an offered plan, never opens a second attempt for a period that may have been
//! charged, and gives the same answer for the same inputs.

use proptest::prelude::*;
use proxy_renewd::api::RenewalPlan;
use proxy_renewd::attempt::{LedgerEntry, LedgerState, Origin, RenewalTerms};
use proxy_renewd::policy::{
    Blocked, Decision, Input, ManualDecision, ManualInput, ManualRefusal, RETRY_BACKOFF_BASE_MS, Skip, decide,
    decide_manual,
};
use proxy_renewd::rule::{PlanChoice, Rule};
use proxy_renewd::values::{Cents, EpochMs, PlanId, SubscriptionId};

const NOW: EpochMs = EpochMs(1_800_000_000_000);
const DAY: i64 = 86_400_000;
const MIN: i64 = 60_000;

fn plan(id: &str, days: i64, cents: i64) -> RenewalPlan {
    RenewalPlan {
        id: PlanId::parse(id).unwrap(),
        connection_type: None,
        duration_ms: days * DAY,
        price_amount_cents: Cents(cents),
    }
}

fn entry(period: EpochMs, attempt: u32, state: LedgerState, status: Option<u16>, at: EpochMs) -> LedgerEntry {
    LedgerEntry {
        id: i64::from(attempt),
        subscription_id: SubscriptionId::parse("sub1").unwrap(),
        origin: Origin::Daemon,
        renewal: RenewalTerms {
            active_until_before: period,
            attempt,
            plan_id: PlanId::parse("p30").unwrap(),
            repeat_count: 1,
            price: Cents(1200),
            coupon_code: None,
            expected_end_at: EpochMs(period.0 + 30 * DAY),
        },
        state,
        actual_end_at: None,
        http_status: status,
        error: None,
        retry_at: None,
        created_at: at,
        updated_at: at,
    }
}

/// A due (expires in 1 day), active, default-rule case with two plans.
#[derive(Debug, Clone)]
struct Case {
    status: &'static str,
    active_until: EpochMs,
    rule: Rule,
    plans: Option<Vec<RenewalPlan>>,
    ledger: Vec<LedgerEntry>,
    on_hold: bool,
    paid_until: Option<EpochMs>,
    spent: Cents,
    budget: Option<Cents>,
    /// `alerts.lapse_warning`: an hour here, so that a case due in a day is outside it.
    lapse_warning_ms: i64,
    probe_balance: bool,
    balance_ok_since: Option<EpochMs>,
}

impl Case {
    fn due() -> Case {
        Case {
            status: "active",
            active_until: EpochMs(NOW.0 + DAY),
            rule: Rule::default(),
            plans: Some(vec![plan("p30", 30, 1200), plan("p90", 90, 3300)]),
            ledger: vec![],
            on_hold: false,
            paid_until: None,
            spent: Cents(0),
            budget: None,
            lapse_warning_ms: 3_600_000,
            probe_balance: false,
            balance_ok_since: None,
        }
    }

    fn decide(&self) -> Decision {
        decide(&Input {
            status: self.status,
            active_until: self.active_until,
            rule: &self.rule,
            renewal_plans: self.plans.as_deref(),
            ledger: &self.ledger,
            on_hold: self.on_hold,
            paid_until: self.paid_until,
            spent_last_24h: self.spent,
            max_spend_per_day: self.budget,
            lapse_warning_ms: self.lapse_warning_ms,
            probe_balance: self.probe_balance,
            balance_ok_since: self.balance_ok_since,
            now: NOW,
        })
    }
}

/// Backing off after a refusal with `status`, until `until_ms`.
fn backoff(status: u16, until_ms: i64) -> Decision {
    Decision::Blocked(Blocked::Backoff { status: Some(status), until: EpochMs(until_ms) })
}

fn renewal(d: Decision) -> proxy_renewd::attempt::RenewalTerms {
    match d {
        Decision::Renew(r) => r,
        other => panic!("expected a renewal, got {other:?}"),
    }
}

#[test]
fn an_implausible_expiry_is_malformed_whatever_else_holds() {
    for bad in [1_762_592_000, 978_307_199_999, 7_258_118_400_000, -1] {
        let mut c = Case::due();
        c.active_until = EpochMs(bad);
        c.status = "suspended";
        let d = c.decide();
        assert_eq!(d, Decision::Blocked(Blocked::Malformed { active_until: EpochMs(bad) }));
        assert!(d.needs_attention() && d.reason() == "malformed");
    }
}

#[test]
fn a_status_other_than_active_is_not_renewable() {
    let mut c = Case::due();
    c.status = "expired";
    let d = c.decide();
    assert_eq!(d, Decision::Skip(Skip::NotRenewable { status: "expired".into() }));
    assert!(d.needs_attention());
}

#[test]
fn a_disabled_rule_skips_until_expiry_is_near() {
    let mut c = Case::due();
    c.rule.enabled = false;
    assert_eq!(c.decide(), Decision::Blocked(Blocked::ExpiringUnmanaged { expires_in_ms: DAY }));
    c.active_until = EpochMs(NOW.0 + 10 * DAY);
    let d = c.decide();
    assert_eq!(d, Decision::Skip(Skip::Disabled));
    assert!(!d.needs_attention());
}

#[test]
fn not_due_says_when_and_due_starts_at_the_boundary() {
    let mut c = Case::due();
    c.active_until = EpochMs(NOW.0 + 3 * DAY + 1);
    assert_eq!(c.decide(), Decision::Ok { due_in_ms: 1 });
    c.active_until = EpochMs(NOW.0 + 10 * DAY);
    assert_eq!(c.decide(), Decision::Ok { due_in_ms: 7 * DAY }, "expiry minus renew_before");
    c.active_until = EpochMs(NOW.0 + 3 * DAY);
    assert!(matches!(c.decide(), Decision::Renew(_)), "due when activeUntil - now == renew_before");
}

#[test]
fn due_without_plans_asks_for_them() {
    let mut c = Case::due();
    c.plans = None;
    assert_eq!(c.decide(), Decision::FetchPlans);
}

#[test]
fn a_renewal_carries_period_attempt_price_and_expected_expiry() {
    let mut c = Case::due();
    c.rule.repeat_count = 3;
    c.rule.coupon_code = Some("MYCODE".into());
    let r = renewal(c.decide());
    assert_eq!((r.plan_id.as_str(), r.price, r.attempt, r.repeat_count), ("p30", Cents(3600), 1, 3));
    assert_eq!(r.active_until_before, c.active_until);
    assert_eq!(r.expected_end_at, EpochMs(c.active_until.0 + 90 * DAY));
    assert_eq!(r.coupon_code.as_deref(), Some("MYCODE"));
    // A lapsed subscription is extended from now.
    c.active_until = EpochMs(NOW.0 - 5 * DAY);
    assert_eq!(renewal(c.decide()).expected_end_at, EpochMs(NOW.0 + 90 * DAY));
}

#[test]
fn an_open_attempt_for_any_period_blocks() {
    for state in [LedgerState::Sending, LedgerState::Unknown] {
        let mut c = Case::due();
        let older = EpochMs(c.active_until.0 - 30 * DAY);
        c.ledger = vec![entry(older, 1, state, None, NOW)];
        assert_eq!(c.decide(), Decision::Blocked(Blocked::InFlight { active_until_before: older, attempt: 1, state }));
    }
}

#[test]
fn a_period_renewed_once_is_not_renewed_again() {
    let mut c = Case::due();
    c.ledger = vec![entry(c.active_until, 1, LedgerState::Succeeded, Some(200), NOW)];
    assert_eq!(c.decide(), Decision::Blocked(Blocked::AlreadyRenewed { attempt: 1, at: NOW }));
    // A success for an earlier period does not block this one.
    c.ledger = vec![entry(EpochMs(c.active_until.0 - 30 * DAY), 1, LedgerState::Succeeded, Some(200), NOW)];
    assert_eq!(renewal(c.decide()).attempt, 1);
}

#[test]
fn a_held_subscription_waits_for_a_person() {
    let mut c = Case::due();
    c.on_hold = true;
    let d = c.decide();
    assert_eq!(d, Decision::Blocked(Blocked::OnHold));
    assert!(d.needs_attention());
    c.active_until = EpochMs(NOW.0 + 10 * DAY);
    assert!(matches!(c.decide(), Decision::Ok { .. }), "a hold matters only when due");
}

#[test]
fn an_expiry_that_went_back_before_a_paid_renewal_is_not_renewed_again() {
    let mut c = Case::due();
    c.paid_until = Some(EpochMs(c.active_until.0 + 30 * DAY));
    assert_eq!(c.decide(), Decision::Blocked(Blocked::Regressed { paid_until: EpochMs(c.active_until.0 + 30 * DAY) }));
    c.paid_until = Some(c.active_until);
    assert!(matches!(c.decide(), Decision::Renew(_)), "equal is fine: that renewal is what activeUntil shows");
}

#[test]
fn a_failed_attempt_allows_the_next_one() {
    let mut c = Case::due();
    c.ledger = vec![entry(c.active_until, 1, LedgerState::Failed, None, NOW)];
    assert_eq!(renewal(c.decide()).attempt, 2);
}

#[test]
fn refusals_that_a_retry_cannot_fix_need_a_person() {
    for status in [400, 401, 403, 404] {
        let mut c = Case::due();
        c.ledger = vec![entry(c.active_until, 1, LedgerState::Refused, Some(status), EpochMs(NOW.0 - DAY))];
        assert_eq!(c.decide(), Decision::Blocked(Blocked::Refused { attempt: 1, status: Some(status) }), "{status}");
    }
}

#[test]
fn balance_and_sold_out_refusals_back_off_then_retry() {
    let mut c = Case::due();
    let at = EpochMs(NOW.0 - 5 * MIN);
    c.ledger = vec![entry(c.active_until, 1, LedgerState::Refused, Some(402), at)];
    assert_eq!(c.decide(), backoff(402, at.0 + RETRY_BACKOFF_BASE_MS));
    // The cycle's balance probe goes now, whatever the backoff; so does every subscription
    // once a renewal succeeded after the 402 (a top-up), but not for one before it.
    c.probe_balance = true;
    assert_eq!(renewal(c.decide()).attempt, 2, "the balance probe");
    c.probe_balance = false;
    c.balance_ok_since = Some(EpochMs(at.0 + 1));
    assert_eq!(renewal(c.decide()).attempt, 2, "a success since the 402");
    c.balance_ok_since = Some(at);
    assert!(matches!(c.decide(), Decision::Blocked(Blocked::Backoff { .. })), "a success before it is no top-up");
    c.balance_ok_since = None;
    c.ledger[0].updated_at = EpochMs(NOW.0 - RETRY_BACKOFF_BASE_MS);
    let r = renewal(c.decide());
    assert_eq!((r.attempt, r.plan_id.as_str()), (2, "p30"), "a 402 does not make the plan sold out");
    // A second refusal doubles the wait (an explicit plan: a strategy would try another plan at
    // once after a 409, see below).
    c.rule.plan = PlanChoice::Plan(PlanId::parse("p30").unwrap());
    c.ledger.push(entry(c.active_until, 2, LedgerState::Refused, Some(409), EpochMs(NOW.0 - 15 * MIN)));
    assert_eq!(c.decide(), backoff(409, NOW.0 - 15 * MIN + 2 * RETRY_BACKOFF_BASE_MS));
}

/// A ledger entry for `plan` refused with 409 `ago` before now.
fn sold_out(c: &Case, attempt: u32, plan: &str, ago: i64) -> LedgerEntry {
    let mut e = entry(c.active_until, attempt, LedgerState::Refused, Some(409), EpochMs(NOW.0 - ago));
    e.renewal.plan_id = PlanId::parse(plan).unwrap();
    e
}

#[test]
fn after_a_409_a_strategy_takes_another_plan_at_once_and_backs_off_when_none_is_left() {
    let mut c = Case::due();
    c.ledger = vec![sold_out(&c, 1, "p30", MIN)];
    let r = renewal(c.decide());
    assert_eq!((r.plan_id.as_str(), r.attempt), ("p90", 2), "the cheapest not refused, at once");
    // Both plans refused: the sold-out one again, but only after the doubled backoff (20 min
    // from the last refusal), and at once when it has passed.
    c.ledger.push(sold_out(&c, 2, "p90", MIN));
    assert_eq!(c.decide(), backoff(409, NOW.0 - MIN + 2 * RETRY_BACKOFF_BASE_MS));
    for e in &mut c.ledger {
        e.updated_at = EpochMs(NOW.0 - 2 * RETRY_BACKOFF_BASE_MS);
    }
    let r = renewal(c.decide());
    assert_eq!((r.plan_id.as_str(), r.attempt), ("p30", 3), "the wait ends exactly at `until`");
}

#[test]
fn a_strategy_tries_at_most_three_plans_after_409s_then_backs_off() {
    let mut c = Case::due();
    c.plans = Some(vec![plan("p30", 30, 1200), plan("p60", 60, 2300), plan("p90", 90, 3300), plan("p120", 120, 4400)]);
    c.ledger = vec![sold_out(&c, 1, "p30", MIN), sold_out(&c, 2, "p60", MIN)];
    assert_eq!(renewal(c.decide()).plan_id.as_str(), "p90", "the third plan, at once");
    c.ledger.push(sold_out(&c, 3, "p90", MIN));
    assert_eq!(
        c.decide(),
        backoff(409, NOW.0 - MIN + 4 * RETRY_BACKOFF_BASE_MS),
        "three plans refused: the period backs off, p120 is not tried at once"
    );
}

#[test]
fn after_a_409_on_an_explicit_plan_another_plan_chosen_by_a_person_goes_at_once() {
    let mut c = Case::due();
    c.ledger = vec![sold_out(&c, 1, "p30", MIN)];
    c.rule.plan = PlanChoice::Plan(PlanId::parse("p90").unwrap());
    let r = renewal(c.decide());
    assert_eq!((r.plan_id.as_str(), r.attempt), ("p90", 2));
    c.rule.plan = PlanChoice::Plan(PlanId::parse("p30").unwrap());
    assert!(matches!(c.decide(), Decision::Blocked(Blocked::Backoff { .. })), "the refused plan itself waits");
}

#[test]
fn a_429_waits_for_its_retry_after_or_else_ten_minutes() {
    let mut c = Case::due();
    let at = EpochMs(NOW.0 - MIN);
    let mut refused = entry(c.active_until, 1, LedgerState::Refused, Some(429), at);
    refused.retry_at = Some(EpochMs(NOW.0 + 30 * MIN));
    c.ledger = vec![refused];
    assert_eq!(c.decide(), backoff(429, NOW.0 + 30 * MIN), "Retry-After, not the 10 min backoff");
    c.ledger[0].retry_at = None;
    assert_eq!(c.decide(), backoff(429, at.0 + RETRY_BACKOFF_BASE_MS));
}

#[test]
fn a_manual_renew_checks_plausibility_the_plan_and_the_ledger_but_not_the_due_date() {
    let rule = Rule::default();
    let plans = [plan("p30", 30, 1200), plan("p90", 90, 3300)];
    let far = EpochMs(NOW.0 + 60 * DAY);
    let p90 = PlanId::parse("p90").unwrap();
    let gone = PlanId::parse("gone").unwrap();
    let input = |active_until, plan, renewal_plans, ledger| ManualInput {
        active_until,
        rule: &rule,
        plan,
        repeat_count: Some(2),
        renewal_plans,
        ledger,
        now: NOW,
    };
    let d = decide_manual(&input(EpochMs(1_700_000_000), None, Some(&plans), &[]));
    assert_eq!(d, ManualDecision::Refused(ManualRefusal::Malformed { active_until: EpochMs(1_700_000_000) }));
    assert_eq!(decide_manual(&input(far, None, None, &[])), ManualDecision::FetchPlans);
    let ManualDecision::Renew(r) = decide_manual(&input(far, Some(&p90), Some(&plans), &[])) else {
        panic!("a renewal")
    };
    assert_eq!(
        (r.plan_id.as_str(), r.price, r.repeat_count, r.attempt),
        ("p90", Cents(6600), 2, 1),
        "not due: still renewed"
    );
    assert_eq!(r.expected_end_at, EpochMs(far.0 + 2 * 90 * DAY));
    let ManualDecision::Renew(r) = decide_manual(&input(far, None, Some(&plans), &[])) else { panic!("a renewal") };
    assert_eq!(r.plan_id.as_str(), "p30", "the rule's choice");
    assert!(matches!(
        decide_manual(&input(far, Some(&gone), Some(&plans), &[])),
        ManualDecision::Refused(ManualRefusal::NoPlan { offered, .. }) if offered.len() == 2
    ));
    let open = [entry(far, 1, LedgerState::Unknown, None, NOW)];
    assert!(matches!(
        decide_manual(&input(far, None, Some(&plans), &open)),
        ManualDecision::Refused(ManualRefusal::Ledger(Blocked::InFlight { attempt: 1, .. }))
    ));
}

#[test]
fn the_backoff_stops_doubling_at_two_hours() {
    // An explicit plan refused with 409 five times: 10 min × 2^4 = 160 min, capped at 2 h.
    let mut c = Case::due();
    c.active_until = EpochMs(NOW.0 + 2 * DAY);
    c.rule.plan = PlanChoice::Plan(PlanId::parse("p30").unwrap());
    let last = EpochMs(NOW.0 - MIN);
    c.ledger = (1..=5).map(|n| entry(c.active_until, n, LedgerState::Refused, Some(409), last)).collect();
    assert_eq!(c.decide(), backoff(409, last.0 + 2 * 3_600_000));
}

#[test]
fn no_eligible_plan() {
    let mut c = Case::due();
    c.plans = Some(vec![]);
    assert_eq!(c.decide(), Decision::Blocked(Blocked::NoEligiblePlan { plan: PlanChoice::Cheapest, offered: 0 }));
    c.plans = Some(vec![plan("p0", 0, 100), RenewalPlan { price_amount_cents: Cents(-1), ..plan("pneg", 30, 0) }]);
    assert!(
        matches!(c.decide(), Decision::Blocked(Blocked::NoEligiblePlan { offered: 2, .. })),
        "zero duration and negative price are not eligible"
    );
    // The edge: a plan that costs nothing (a full-discount offer) is eligible.
    c.plans = Some(vec![plan("pfree", 30, 0)]);
    assert!(matches!(c.decide(), Decision::Renew(r) if r.price == Cents(0)), "{:?}", c.decide());
    let mut c = Case::due();
    c.rule.plan = PlanChoice::Plan(PlanId::parse("gone").unwrap());
    assert_eq!(c.decide().reason(), "no-eligible-plan");
}

#[test]
fn the_price_cap_counts_the_repeat_count() {
    let mut c = Case::due();
    c.rule.repeat_count = 2;
    c.rule.max_price_cents = Some(Cents(2400));
    assert_eq!(renewal(c.decide()).price, Cents(2400), "equal to the cap is allowed");
    c.rule.max_price_cents = Some(Cents(2399));
    assert_eq!(
        c.decide(),
        Decision::Blocked(Blocked::OverPriceCap {
            plan_id: PlanId::parse("p30").unwrap(),
            price: Cents(2400),
            cap: Cents(2399)
        })
    );
}

#[test]
fn the_daily_budget_counts_what_was_spent() {
    let mut c = Case::due();
    c.budget = Some(Cents(5000));
    c.spent = Cents(3800);
    assert!(matches!(c.decide(), Decision::Renew(_)), "3800 + 1200 == budget is allowed");
    c.spent = Cents(3801);
    assert_eq!(
        c.decide(),
        Decision::Blocked(Blocked::OverBudget {
            plan_id: PlanId::parse("p30").unwrap(),
            price: Cents(1200),
            spent: Cents(3801),
            budget: Cents(5000)
        })
    );
}

fn chosen(choice: &str, plans: Vec<RenewalPlan>, repeat: u32) -> String {
    let mut c = Case::due();
    c.rule.plan = choice.parse().unwrap();
    c.rule.repeat_count = repeat;
    c.plans = Some(plans);
    renewal(c.decide()).plan_id.to_string()
}

#[test]
fn cheapest_prefers_the_lower_total_then_the_longer_plan_then_the_smaller_id() {
    assert_eq!(chosen("cheapest", vec![plan("a", 30, 1200), plan("b", 7, 400)], 1), "b");
    assert_eq!(chosen("cheapest", vec![plan("a", 30, 1200), plan("b", 60, 1200)], 2), "b");
    assert_eq!(chosen("cheapest", vec![plan("z", 30, 1200), plan("y", 30, 1200)], 1), "y");
}

#[test]
fn best_value_prefers_the_lower_price_per_day_then_the_longer_plan() {
    assert_eq!(chosen("best-value", vec![plan("a", 30, 1200), plan("b", 90, 3300), plan("c", 7, 300)], 1), "b");
    assert_eq!(chosen("best-value", vec![plan("a", 30, 1200), plan("b", 60, 2400)], 1), "b");
}

#[test]
fn longest_prefers_the_longer_plan_then_the_cheaper() {
    assert_eq!(chosen("longest", vec![plan("a", 30, 100), plan("b", 90, 9000)], 1), "b");
    assert_eq!(chosen("longest", vec![plan("a", 90, 3300), plan("b", 90, 3000)], 1), "b");
}

#[test]
fn an_explicit_plan_is_taken_even_when_dearer() {
    assert_eq!(chosen("p90", vec![plan("p30", 30, 1200), plan("p90", 90, 3300)], 1), "p90");
}

// --- properties ------------------------------------------------------------------------

const IDS: [&str; 4] = ["pa", "pb", "pc", "pd"];

fn arb_plan() -> impl Strategy<Value = RenewalPlan> {
    (0..IDS.len(), 0i64..120, 0i64..6000).prop_map(|(i, days, cents)| plan(IDS[i], days, cents))
}

fn arb_state() -> impl Strategy<Value = LedgerState> {
    // Every state, refusals three times as often (they are where the waits are).
    let mut states = LedgerState::ALL.to_vec();
    states.extend([LedgerState::Refused, LedgerState::Refused]);
    prop::sample::select(states)
}

fn arb_rule() -> impl Strategy<Value = Rule> {
    let choice = prop_oneof![
        Just(PlanChoice::Cheapest),
        Just(PlanChoice::BestValue),
        Just(PlanChoice::Longest),
        (0..IDS.len() + 1)
            .prop_map(|i| PlanChoice::Plan(PlanId::parse(IDS.get(i).copied().unwrap_or("missing")).unwrap())),
    ];
    (any::<bool>(), 0i64..10 * DAY, choice, 1u32..5, prop::option::of(0i64..20_000)).prop_map(
        |(enabled, renew_before_ms, plan, repeat_count, cap)| Rule {
            enabled,
            renew_before_ms,
            plan,
            repeat_count,
            max_price_cents: cap.map(Cents),
            coupon_code: None,
            note: None,
        },
    )
}

prop_compose! {
    fn arb_case()(
        status in prop::sample::select(vec!["active", "active", "suspended"]),
        offset in -12 * DAY..12 * DAY,
        implausible in prop::bool::weighted(0.05),
        rule in arb_rule(),
        plans in prop::option::of(prop::collection::vec(arb_plan(), 0..5)),
        raw_ledger in prop::collection::vec((any::<bool>(), 1u32..4, arb_state(), prop::sample::select(vec![None, Some(200u16), Some(400), Some(402), Some(409), Some(429), Some(500)]), 0i64..30 * MIN), 0..5),
        on_hold in prop::bool::weighted(0.1),
        paid_back in prop::option::of(-40 * DAY..40 * DAY),
        spent in 0i64..30_000,
        budget in prop::option::of(0i64..30_000),
        lapse_warning_ms in prop::sample::select(vec![0i64, 0, 3_600_000, 6 * 3_600_000]),
    ) -> Case {
        let active_until = if implausible { EpochMs(1_700_000_000) } else { EpochMs(NOW.0 + offset) };
        let ledger = raw_ledger.into_iter().map(|(this_period, attempt, state, status, ago)| {
            let period = if this_period { active_until } else { EpochMs(active_until.0 - 30 * DAY) };
            entry(period, attempt, state, status, EpochMs(NOW.0 - ago))
        }).collect();
        let paid_until = paid_back.map(|d| EpochMs(active_until.0 + d));
        Case { status, active_until, rule, plans, ledger, on_hold, paid_until, spent: Cents(spent), budget: budget.map(Cents), lapse_warning_ms, probe_balance: false, balance_ok_since: None }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn a_renewal_is_always_due_capped_budgeted_offered_and_unique(c in arb_case()) {
        let d = c.decide();
        prop_assert_eq!(&d, &c.decide(), "same inputs, same decision");
        if matches!(d, Decision::FetchPlans) {
            prop_assert!(c.plans.is_none());
        }
        // A refusal never holds a due subscription back into its last lapse_warning.
        if let Decision::Blocked(Blocked::Backoff { until, .. }) = &d {
            prop_assert!(until.0 <= c.active_until.0 - c.lapse_warning_ms, "backoff until {until} runs into the lapse window");
            prop_assert!(NOW.0 < c.active_until.0 - c.lapse_warning_ms, "a backoff inside the lapse window");
        }
        if let Decision::Renew(r) = d {
            // Due, active, managed, plausible.
            prop_assert!(c.status == "active" && c.rule.enabled && !c.on_hold);
            prop_assert!(c.paid_until.is_none_or(|p| c.active_until >= p), "never pays again for time already paid");
            prop_assert!(c.active_until.0 - NOW.0 <= c.rule.renew_before_ms);
            prop_assert!(c.active_until.0 >= 978_307_200_000);
            // Within the cap and the budget.
            if let Some(cap) = c.rule.max_price_cents { prop_assert!(r.price <= cap); }
            if let Some(b) = c.budget { prop_assert!(c.spent.0 + r.price.0 <= b.0); }
            // One of the offered, eligible plans, priced as offered.
            let plans = c.plans.as_ref().unwrap();
            let offered = plans.iter().find(|p| p.id == r.plan_id && p.duration_ms > 0);
            prop_assert!(offered.is_some(), "chose {} not offered", r.plan_id);
            prop_assert!(plans.iter().any(|p| p.id == r.plan_id && p.price_amount_cents.0 * i64::from(c.rule.repeat_count) == r.price.0));
            if let PlanChoice::Plan(id) = &c.rule.plan { prop_assert_eq!(id, &r.plan_id); }
            // At most one charge per period: nothing open anywhere, nothing succeeded in this
            // period, every earlier attempt of the period settled without effect.
            prop_assert!(c.ledger.iter().all(|e| !e.state.is_open()));
            for e in c.ledger.iter().filter(|e| e.renewal.active_until_before == c.active_until) {
                prop_assert!(matches!(e.state, LedgerState::Failed | LedgerState::Refused));
                prop_assert!(e.renewal.attempt < r.attempt);
            }
            prop_assert_eq!(r.active_until_before, c.active_until);
        }
    }

    #[test]
    fn cheapest_is_never_beaten(plans in prop::collection::vec(arb_plan(), 1..6), repeat in 1u32..4) {
        let eligible: Vec<&RenewalPlan> = plans.iter().filter(|p| p.duration_ms > 0).collect();
        let got = proxy_renewd::policy::choose_plan(&PlanChoice::Cheapest, &plans, repeat);
        prop_assert_eq!(got.is_some(), !eligible.is_empty());
        if let Some((p, price, _)) = got {
            prop_assert!(eligible.iter().all(|q| q.price_amount_cents.0 * i64::from(repeat) >= price.0));
            prop_assert!(eligible.iter().filter(|q| q.price_amount_cents == p.price_amount_cents).all(|q| q.duration_ms <= p.duration_ms));
        }
    }
}

/// The random cases reach every kind of decision, so the properties above are not vacuous.
#[test]
fn the_random_cases_reach_every_decision() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut seen = std::collections::BTreeMap::<&'static str, u32>::new();
    for _ in 0..20_000 {
        let case = arb_case().new_tree(&mut runner).unwrap().current();
        *seen.entry(case.decide().reason()).or_default() += 1;
    }
    for reason in [
        "ok",
        "not-renewable",
        "disabled",
        "due",
        "renew",
        "malformed",
        "expiring-unmanaged",
        "on-hold",
        "regressed",
        "in-flight",
        "already-renewed",
        "refused",
        "backoff",
        "no-eligible-plan",
        "over-price-cap",
        "over-budget",
    ] {
        assert!(seen.get(reason).copied().unwrap_or(0) >= 5, "{reason} is rare or missing: {seen:?}");
    }
}
