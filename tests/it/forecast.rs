//! The forecast: against the policy itself on random fleets (proptest: the first day's
//! renewals are exactly what the policy renews when the clock is moved to each cycle, and the
//! totals are the sums of the rows), on hand-checked cases (budget days, fund-by amounts,
//! repeated renewals of a short plan, what needs a person), and through the real binary
//! against the simulator (`forecast`, `--offline`, `--dry-run`'s line).

use proptest::prelude::*;
use proxy_renewd::api::RenewalPlan;
use proxy_renewd::attempt::{LedgerEntry, LedgerState, Origin, RenewalTerms};
use proxy_renewd::forecast::{self, DAY_MS, Forecast, Input, PlanSource, Subject};
use proxy_renewd::policy::{self, Decision};
use proxy_renewd::rule::{PlanChoice, Rule};
use proxy_renewd::values::{Cents, EpochMs, PlanId, SubscriptionId};

const NOW: EpochMs = EpochMs(1_800_000_123_456);
const HOUR: i64 = 3_600_000;
const MIN: i64 = 60_000;

fn plan(id: &str, duration_ms: i64, cents: i64) -> RenewalPlan {
    RenewalPlan { id: PlanId::parse(id).unwrap(), connection_type: None, duration_ms, price_amount_cents: Cents(cents) }
}

fn sid(n: usize) -> SubscriptionId {
    SubscriptionId::parse(&format!("sub{n:03}")).unwrap()
}

/// Every `step` ms from the epoch: the first tick at or after `t`.
fn every(step: i64) -> impl Fn(EpochMs) -> Option<EpochMs> {
    move |t: EpochMs| Some(EpochMs(t.0.div_euclid(step) * step + if t.0.rem_euclid(step) == 0 { 0 } else { step }))
}

/// One subscription of a fleet, owned.
#[derive(Debug, Clone)]
struct Sub {
    id: SubscriptionId,
    status: &'static str,
    active_until: EpochMs,
    rule: Rule,
    plans: Vec<RenewalPlan>,
    ledger: Vec<LedgerEntry>,
    on_hold: bool,
    /// No plan known for it at all (a renewal at a price not known).
    unpriced: bool,
}

#[derive(Debug, Clone)]
struct Fleet {
    subs: Vec<Sub>,
    spent: Vec<(EpochMs, Cents)>,
    budget: Option<Cents>,
    step: i64,
}

impl Fleet {
    fn forecast(&self, days: i64) -> Forecast {
        self.forecast_at(NOW, days)
    }

    fn forecast_at(&self, now: EpochMs, days: i64) -> Forecast {
        let next = every(self.step);
        forecast::forecast(&Input {
            subjects: self
                .subs
                .iter()
                .map(|s| Subject {
                    subscription_id: &s.id,
                    status: s.status,
                    active_until: s.active_until,
                    rule: &s.rule,
                    plans: (!s.unpriced).then_some((PlanSource::RenewalPlans, s.plans.as_slice())),
                    ledger: &s.ledger,
                    on_hold: s.on_hold,
                    paid_until: None,
                })
                .collect(),
            spent: &self.spent,
            max_spend_per_day: self.budget,
            lapse_warning_ms: HOUR,
            balance_ok_since: None,
            now,
            until: EpochMs(now.0 + days * DAY_MS),
            next_cycle: &next,
        })
    }

    /// What the policy renews when the clock is moved to each cycle of the first day, most
    /// urgent first within a cycle, each renewal applied (new expiry, a succeeded attempt,
    /// its price in the rolling spend, a hold when it leaves the subscription still due):
    /// (cycle, subscription, plan, price).
    fn cycle_by_cycle(&self) -> Vec<(EpochMs, SubscriptionId, PlanId, Cents)> {
        let mut subs = self.subs.clone();
        let mut spends = self.spent.clone();
        let mut out = vec![];
        let next = every(self.step);
        let mut t = next(NOW).unwrap();
        while t.0 < NOW.0 + DAY_MS {
            subs.sort_by(|a, b| (a.active_until, &a.id).cmp(&(b.active_until, &b.id)));
            let mut spent: i64 = spends.iter().filter(|(at, _)| at.0 >= t.0 - DAY_MS).map(|(_, c)| c.0).sum();
            for s in &mut subs {
                let ask = |plans: Option<&[RenewalPlan]>, s: &Sub| {
                    policy::decide(&policy::Input {
                        status: s.status,
                        active_until: s.active_until,
                        rule: &s.rule,
                        renewal_plans: plans,
                        ledger: &s.ledger,
                        on_hold: s.on_hold,
                        paid_until: None,
                        spent_last_24h: Cents(spent),
                        max_spend_per_day: self.budget,
                        lapse_warning_ms: HOUR,
                        probe_balance: false,
                        balance_ok_since: None,
                        now: t,
                    })
                };
                let mut d = ask(None, s);
                if d == Decision::FetchPlans {
                    d = ask(Some(&s.plans), s);
                }
                if let Decision::Renew(terms) = d {
                    out.push((t, s.id.clone(), terms.plan_id.clone(), terms.price));
                    spent += terms.price.0;
                    spends.push((t, terms.price));
                    s.ledger.push(forecast::booked(&s.id, &terms, t));
                    s.active_until = terms.expected_end_at;
                    if terms.expected_end_at.since(t) <= s.rule.renew_before_ms {
                        s.on_hold = true;
                    }
                }
            }
            t = next(EpochMs(t.0 + 1)).unwrap();
        }
        out
    }
}

fn past(id: &SubscriptionId, period: EpochMs, state: LedgerState, status: Option<u16>, at: EpochMs) -> LedgerEntry {
    LedgerEntry {
        id: 0,
        subscription_id: id.clone(),
        renewal: RenewalTerms {
            active_until_before: period,
            attempt: 1,
            plan_id: PlanId::parse("pa").unwrap(),
            repeat_count: 1,
            price: Cents(500),
            coupon_code: None,
            expected_end_at: EpochMs(period.0 + 30 * DAY_MS),
        },
        origin: Origin::Daemon,
        state,
        actual_end_at: None,
        http_status: status,
        error: None,
        retry_at: None,
        created_at: at,
        updated_at: at,
    }
}

fn arb_sub(n: usize) -> impl Strategy<Value = Sub> {
    let plan_list = prop::collection::vec(
        (
            prop::sample::select(vec!["pa", "pb", "pc", "pd"]),
            prop::sample::select(vec![2 * HOUR, DAY_MS, 7 * DAY_MS, 30 * DAY_MS]),
            0_i64..2500,
        ),
        0..4,
    );
    let choice = prop::sample::select(vec![
        PlanChoice::Cheapest,
        PlanChoice::BestValue,
        PlanChoice::Longest,
        PlanChoice::Plan(PlanId::parse("pb").unwrap()),
    ]);
    let history = prop::sample::select(vec![
        None,
        Some((LedgerState::Refused, Some(402))),
        Some((LedgerState::Refused, Some(409))),
        Some((LedgerState::Unknown, None)),
        Some((LedgerState::Failed, None)),
        Some((LedgerState::Refused, Some(400))),
    ]);
    (
        -2 * DAY_MS..3 * DAY_MS,
        prop::sample::select(vec![0, 30 * MIN, 12 * HOUR, DAY_MS, 3 * DAY_MS]),
        prop::bool::weighted(0.9),
        prop::bool::weighted(0.95),
        plan_list,
        choice,
        1_u32..3,
        prop::option::weighted(0.3, 500_i64..3000),
        history,
        0_i64..3 * HOUR,
        prop::bool::weighted(0.05),
    )
        .prop_map(
            move |(expires_in, renew_before, enabled, active, plans, plan, repeat, cap, history, ago, on_hold)| {
                let id = sid(n);
                let active_until = EpochMs(NOW.0 + expires_in);
                let ledger = history
                    .map(|(state, status)| past(&id, active_until, state, status, EpochMs(NOW.0 - ago)))
                    .into_iter()
                    .collect();
                Sub {
                    status: if active { "active" } else { "suspended" },
                    active_until,
                    rule: Rule {
                        enabled,
                        renew_before_ms: renew_before,
                        plan,
                        repeat_count: repeat,
                        max_price_cents: cap.map(Cents),
                        ..Rule::default()
                    },
                    plans: plans.into_iter().map(|(p, d, c)| self::plan(p, d, c)).collect(),
                    ledger,
                    on_hold,
                    unpriced: false,
                    id,
                }
            },
        )
}

fn arb_fleet() -> impl Strategy<Value = Fleet> {
    (1_usize..25)
        .prop_flat_map(|n| {
            (
                (0..n).map(arb_sub).collect::<Vec<_>>(),
                prop::collection::vec((0_i64..DAY_MS, 0_i64..2000), 0..4),
                prop::option::weighted(0.6, 0_i64..8000),
                prop::sample::select(vec![10 * MIN, HOUR, 7 * MIN]),
            )
        })
        .prop_map(|(subs, spent, budget, step)| Fleet {
            subs,
            spent: spent.into_iter().map(|(ago, c)| (EpochMs(NOW.0 - ago), Cents(c))).collect(),
            budget: budget.map(Cents),
            step,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn the_first_day_is_what_the_policy_renews_cycle_by_cycle(fleet in arb_fleet()) {
        let f = fleet.forecast(2);
        let first_day: Vec<(EpochMs, SubscriptionId, PlanId, Cents)> = f
            .renewals
            .iter()
            .filter(|r| r.at.0 < NOW.0 + DAY_MS)
            .map(|r| {
                let t = r.terms.as_ref().expect("every subscription has its plans");
                (r.at, r.subscription_id.clone(), t.plan_id.clone(), t.price)
            })
            .collect();
        prop_assert_eq!(first_day, fleet.cycle_by_cycle());
    }

    #[test]
    fn the_totals_are_the_sums_of_the_rows(fleet in arb_fleet()) {
        let f = fleet.forecast(30);
        let sum = |rows: &mut dyn Iterator<Item = &forecast::Renewal>| rows.map(|r| r.price().0).sum::<i64>();
        for w in &f.windows {
            let mut rows = f.renewals.iter().filter(|r| r.at.0 < NOW.0 + w.length_ms);
            let n = f.renewals.iter().filter(|r| r.at.0 < NOW.0 + w.length_ms).count();
            prop_assert_eq!(w.renewals, n);
            prop_assert_eq!(w.spend.0, sum(&mut rows));
        }
        prop_assert_eq!(f.days.iter().map(|d| d.renewals).sum::<usize>(), f.renewals.len());
        prop_assert_eq!(f.days.last().map_or(0, |d| d.cumulative.0), sum(&mut f.renewals.iter()));
        let mut running = 0;
        for d in &f.days {
            running += d.spend.0;
            prop_assert_eq!(d.cumulative.0, running, "fund-by is the running total");
        }
        // Never over the budget in any rolling 24 h, counting what was spent before.
        if let Some(b) = fleet.budget {
            for r in &f.renewals {
                let window = |t: EpochMs| t.0 >= r.at.0 - DAY_MS && t.0 <= r.at.0;
                let before: i64 = fleet.spent.iter().filter(|(t, _)| window(*t)).map(|(_, c)| c.0).sum();
                let forecast: i64 = f.renewals.iter().filter(|o| window(o.at)).map(|o| o.price().0).sum();
                prop_assert!(before + forecast <= b.0, "over budget at {}", r.at);
            }
        }
    }
}

fn one(active_until: EpochMs, plans: Vec<RenewalPlan>, rule: Rule, n: usize) -> Sub {
    Sub { id: sid(n), status: "active", active_until, rule, plans, ledger: vec![], on_hold: false, unpriced: false }
}

/// Due in 3 days, renewed 3 days ahead with a 30-day plan at 12.00.
fn rule_3d() -> Rule {
    Rule { renew_before_ms: 3 * DAY_MS, ..Rule::default() }
}

#[test]
fn a_budget_day_and_the_fund_by_amounts_hand_checked() {
    // Five subscriptions due at the first cycle, 12.00 each, a 30.00 budget: two renew at the
    // first cycle (24.00), the third would make 36.00. The next two renew 24 h (and one tick)
    // later, the last one 24 h after those.
    let start = EpochMs(NOW.0 + DAY_MS); // activeUntil - 3 d < now: due at once
    let subs: Vec<Sub> = (0..5).map(|n| one(start, vec![plan("pa", 30 * DAY_MS, 1200)], rule_3d(), n)).collect();
    let fleet = Fleet { subs, spent: vec![], budget: Some(Cents(3000)), step: 10 * MIN };
    let f = fleet.forecast(4);
    let first = every(10 * MIN)(NOW).unwrap();
    let after = |t: EpochMs| every(10 * MIN)(EpochMs(t.0 + DAY_MS + 1)).unwrap();
    let at: Vec<(String, EpochMs)> = f.renewals.iter().map(|r| (r.subscription_id.to_string(), r.at)).collect();
    assert_eq!(
        at,
        vec![
            ("sub000".into(), first),
            ("sub001".into(), first),
            ("sub002".into(), after(first)),
            ("sub003".into(), after(first)),
            ("sub004".into(), after(after(first))),
        ]
    );
    // The budget stops three on the first day; sub002 and sub003 lapse (at now + 1 d) before
    // their renewal (first + 1 d + 10 min), sub004 too.
    assert_eq!(f.budget_stops.len(), 3);
    assert!(f.budget_stops.iter().all(|s| s.at == first && s.price == Cents(1200)));
    assert_eq!(f.budget_stops[0].renewed_at, Some(after(first)));
    assert!(f.renewals[2].delayed_by_budget && f.renewals[2].lapses_first());
    assert!(!f.renewals[0].delayed_by_budget && !f.renewals[0].lapses_first());
    assert_eq!(f.spend(), Cents(6000));
    // Per day and fund-by: NOW's day holds the first two (first tick is the same day here).
    let per_day: Vec<(i64, i64, usize)> = f.days.iter().map(|d| (d.spend.0, d.cumulative.0, d.budget_stops)).collect();
    assert_eq!(f.days[0].start.0, NOW.0.div_euclid(DAY_MS) * DAY_MS);
    assert_eq!(per_day, vec![(2400, 2400, 3), (2400, 4800, 0), (1200, 6000, 0), (0, 6000, 0), (0, 6000, 0)]);
    assert_eq!(f.window("24h").map(|w| (w.renewals, w.spend)), Some((2, Cents(2400))));
    assert!(f.window("7d").is_none(), "a 4-day forecast has no 7-day total");
    assert!(f.attention.is_empty());
}

#[test]
fn a_short_plan_is_renewed_again_inside_the_window_and_the_longest_is_not() {
    // A 7-day plan renewed 1 day before expiry: expiry now + 2 d → renewed at now + 1 d, then
    // every 7 days; in 30 days that is 5 renewals (days 1, 8, 15, 22, 29).
    let rule = Rule { renew_before_ms: DAY_MS, ..Rule::default() };
    let subs = vec![
        one(EpochMs(NOW.0 + 2 * DAY_MS), vec![plan("pa", 7 * DAY_MS, 300)], rule.clone(), 0),
        one(EpochMs(NOW.0 + 2 * DAY_MS), vec![plan("pb", 90 * DAY_MS, 3000)], rule, 1),
    ];
    let f = Fleet { subs, spent: vec![], budget: None, step: 10 * MIN }.forecast(30);
    let weekly: Vec<i64> = f
        .renewals
        .iter()
        .filter(|r| r.subscription_id == sid(0))
        .map(|r| (r.at.0 - NOW.0 + 10 * MIN) / DAY_MS)
        .collect();
    assert_eq!(weekly, vec![1, 8, 15, 22, 29]);
    assert_eq!(f.renewals.iter().filter(|r| r.subscription_id == sid(1)).count(), 1);
    assert_eq!(f.window("30d").map(|w| w.spend), Some(Cents(5 * 300 + 3000)));
}

#[test]
fn what_the_daemon_will_not_renew_is_listed_with_its_expiry_and_reason() {
    let soon = EpochMs(NOW.0 + 2 * DAY_MS);
    let disabled = one(soon, vec![plan("pa", 30 * DAY_MS, 1200)], Rule { enabled: false, ..rule_3d() }, 0);
    let capped =
        one(soon, vec![plan("pa", 30 * DAY_MS, 1200)], Rule { max_price_cents: Some(Cents(1000)), ..rule_3d() }, 1);
    let none = one(soon, vec![], rule_3d(), 2);
    let mut held = one(soon, vec![plan("pa", 30 * DAY_MS, 1200)], rule_3d(), 3);
    held.on_hold = true;
    // A plan too short to leave it outside renew_before: renewed once, then held.
    let short = one(soon, vec![plan("pa", DAY_MS, 100)], rule_3d(), 4);
    // Disabled and far: not in the window, not listed.
    let far = one(EpochMs(NOW.0 + 60 * DAY_MS), vec![], Rule { enabled: false, ..rule_3d() }, 5);
    // Disabled and due on day 7: listed from then.
    let later = one(EpochMs(NOW.0 + 10 * DAY_MS), vec![], Rule { enabled: false, ..rule_3d() }, 6);
    let subs = vec![disabled, capped, none, held, short, far, later];
    let fleet = Fleet { subs, spent: vec![], budget: None, step: 10 * MIN };
    let f = fleet.forecast(30);
    let mut reasons: Vec<(String, &str)> =
        f.attention.iter().map(|a| (a.subscription_id.to_string(), a.reason)).collect();
    reasons.sort();
    assert_eq!(
        reasons,
        vec![
            ("sub000".into(), "expiring-unmanaged"),
            ("sub001".into(), "over-price-cap"),
            ("sub002".into(), "no-eligible-plan"),
            ("sub003".into(), "on-hold"),
            ("sub004".into(), "still-due-after-renewal"),
            ("sub006".into(), "expiring-unmanaged"),
        ]
    );
    let day7 = f.attention.iter().find(|a| a.subscription_id == sid(6)).unwrap().at;
    assert_eq!(day7, every(10 * MIN)(EpochMs(NOW.0 + 7 * DAY_MS)).unwrap(), "from the cycle it is due");
    assert_eq!(f.renewals.iter().map(|r| r.subscription_id.to_string()).collect::<Vec<_>>(), vec!["sub004"]);
    assert!(f.attention.iter().filter(|a| a.subscription_id.as_str() < "sub004").all(|a| a.active_until == soon));
}

#[test]
fn a_renewal_over_the_whole_budget_needs_a_person_and_is_never_forecast() {
    let subs = vec![one(EpochMs(NOW.0 + DAY_MS), vec![plan("pa", 30 * DAY_MS, 5000)], rule_3d(), 0)];
    let f = Fleet { subs, spent: vec![], budget: Some(Cents(4000)), step: 10 * MIN }.forecast(7);
    assert!(f.renewals.is_empty());
    assert_eq!(f.attention.iter().map(|a| a.reason).collect::<Vec<_>>(), vec!["over-budget"]);
}

#[test]
fn a_backoff_is_forecast_at_the_first_cycle_after_it() {
    // Refused with 409 five minutes ago, for an explicit plan (no other plan to try): the
    // 10-minute backoff ends at now + 5 min; with cycles every 7 minutes the renewal is at
    // the first tick at or after that.
    let mut s = one(EpochMs(NOW.0 + DAY_MS), vec![plan("pb", 30 * DAY_MS, 1200)], rule_3d(), 0);
    s.rule.plan = PlanChoice::Plan(PlanId::parse("pb").unwrap());
    let mut e = past(&s.id, s.active_until, LedgerState::Refused, Some(409), EpochMs(NOW.0 - 5 * MIN));
    e.renewal.plan_id = PlanId::parse("pb").unwrap();
    s.ledger.push(e);
    let f = Fleet { subs: vec![s], spent: vec![], budget: None, step: 7 * MIN }.forecast(1);
    let tick = every(7 * MIN)(EpochMs(NOW.0 + 5 * MIN)).unwrap();
    assert_eq!(f.renewals.iter().map(|r| r.at).collect::<Vec<_>>(), vec![tick]);
    // The refusal is listed: a person may have to answer it (another plan, a top-up).
    assert_eq!(f.attention.iter().map(|a| a.reason).collect::<Vec<_>>(), vec!["backoff"]);
}

// ---- Through the real binary and the library, against the simulator. ----

use proxy_renewd::sim::SimState;

use crate::helpers::{DAY, KEY, Setup, bin, run, sim_with, world};
use crate::smtp::SmtpServer;

const K17: &str = "k17m3q5v7n9p1r2t4w6y8z0a";

/// [`world`] with one plan listed (`op=plans`): k17, 30 days, 12.00.
fn one_plan_world(offsets: &[i64]) -> SimState {
    let mut state = world(offsets);
    state.plans.retain(|p| p.id == K17);
    state
}

/// A quoted-printable body, its soft line breaks joined.
fn unfold(mail: &str) -> String {
    mail.replace("\r\n", "\n").replace("=\n", "").replace("=3D", "=")
}

fn config(sim: &proxy_renewd::sim::Simulator, dir: &std::path::Path, extra: &str) -> std::path::PathBuf {
    let path = dir.join("c.toml");
    std::fs::write(
        &path,
        format!(
            "[api]\nbase_url = \"{}\"\nkey = \"{KEY}\"\ntimeout = \"2s\"\nmax_attempts = 1\n[ledger]\nreconcile_after = \"6s\"\n[database]\nurl = \"{}\"\n[schedule]\ncron = \"* * * * * *\"\njitter = \"0s\"\n{extra}",
            sim.base_url(),
            crate::helpers::database_url(&dir.join("r.db"))
        ),
    )
    .unwrap();
    path
}

async fn forecast_json(config: &std::path::Path, args: &[&str]) -> (i32, serde_json::Value) {
    let mut cmd = bin();
    cmd.arg("--config").arg(config).args(["--format", "json", "forecast"]).args(args);
    let ran = run(cmd).await;
    let doc = serde_json::from_str(&ran.stdout).unwrap_or_else(|e| panic!("{e}: {}\n{}", ran.stdout, ran.stderr));
    (ran.code, doc)
}

fn rows(doc: &serde_json::Value) -> Vec<(String, String, i64, String)> {
    doc["renewals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["subscription_id"].as_str().unwrap().to_owned(),
                r["plan_id"].as_str().unwrap_or("?").to_owned(),
                r["price_cents"].as_i64().unwrap_or(-1),
                r["plan_source"].as_str().unwrap_or("?").to_owned(),
            )
        })
        .collect()
}

fn totals(doc: &serde_json::Value, window: &str) -> (u64, i64) {
    let t = &doc["totals"][window];
    (t["renewals"].as_u64().unwrap(), t["spend_cents"].as_i64().unwrap())
}

#[tokio::test]
async fn a_fleet_with_known_expiries_gives_its_rows_and_totals() {
    // sub0 expires in 1 day: due now (renew_before 3d), renewed at once and again 27 days
    // after its new expiry's due date (day 28); sub1 in 9 days: due on day 6; sub2 in 40
    // days: due on day 37, outside the window; sub3 is disabled and expires in 5 days.
    let sim = sim_with(one_plan_world(&[DAY, 9 * DAY, 40 * DAY, 5 * DAY])).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&sim, dir.path(), "");
    let mut cmd = bin();
    cmd.arg("--config").arg(&cfg).args(["rules", "set", "sub3", "--disable"]);
    assert_eq!(run(cmd).await.code, 0);
    let (code, doc) = forecast_json(&cfg, &[]).await;
    assert_eq!(code, 3, "sub3 expires unmanaged: a person is needed");
    assert_eq!(
        rows(&doc),
        vec![
            ("sub0".into(), K17.into(), 1200, "renewal-plans".into()),
            ("sub1".into(), K17.into(), 1200, "cheapest-known".into()),
            ("sub0".into(), K17.into(), 1200, "renewal-plans".into()),
        ]
    );
    assert_eq!(totals(&doc, "24h"), (1, 1200));
    assert_eq!(totals(&doc, "7d"), (2, 2400));
    assert_eq!(totals(&doc, "30d"), (3, 3600));
    let attention = &doc["attention"].as_array().unwrap();
    assert_eq!(attention.len(), 1);
    assert_eq!(attention[0]["subscription_id"], "sub3");
    assert_eq!(attention[0]["reason"], "expiring-unmanaged");
    assert_eq!(doc["days"].as_array().unwrap().len(), 31, "today and the 30 days after, each listed");
    let last = doc["days"].as_array().unwrap().last().unwrap();
    assert_eq!(last["fund_by_cents"], 3600, "fund-by is the running total");
    // Reads only: one subscriptions, renewal-plans for the one due within 24 h, plans once.
    assert_eq!(sim.calls_of("subscriptions").len(), 1);
    assert_eq!(sim.calls_of("renewal-plans").len(), 1);
    assert_eq!(sim.calls_of("plans").len(), 1);
    assert!(sim.calls_of("renew").is_empty());
}

#[tokio::test]
async fn the_table_fits_a_100_column_terminal_and_names_what_needs_a_person() {
    // Two tables: a budget below the price (two need a person), and the sample data (ids of
    // 24 characters) with a budget that stops renewals: every section shown.
    let sim = sim_with(one_plan_world(&[DAY, 9 * DAY])).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&sim, dir.path(), "[budget]\nmax_spend_cents_per_day = 1000\n");
    let mut cmd = bin();
    cmd.arg("--config").arg(&cfg).args(["forecast", "--days", "7"]);
    let ran = run(cmd).await;
    assert_eq!(ran.code, 3, "the budget (10.00) is below the price (12.00): {}", ran.stdout);
    assert!(ran.stdout.contains("Needs a person (2)"), "{}", ran.stdout);
    assert!(ran.stdout.contains("over-budget"), "{}", ran.stdout);
    assert!(ran.stdout.contains("next  7d: 0 renewals, 0.00"), "{}", ran.stdout);
    let sample = crate::helpers::sim().await;
    let dir2 = tempfile::tempdir().unwrap();
    let cfg2 = config(&sample, dir2.path(), "[budget]\nmax_spend_cents_per_day = 3000\n");
    let mut cmd = bin();
    cmd.arg("--config").arg(&cfg2).args(["forecast", "--days", "7"]).env("COLUMNS", "100");
    let wide = run(cmd).await;
    for heading in ["Fund by", "Needs a person", "Stopped by the daily budget", "Renewals ("] {
        assert!(wide.stdout.contains(heading), "{heading}: {}", wide.stdout);
    }
    for line in ran.stdout.lines().chain(wide.stdout.lines()) {
        assert!(line.chars().count() <= 100, "{} columns: {line}", line.chars().count());
    }
}

#[tokio::test]
async fn offline_it_reads_the_snapshot_and_the_ledger_and_sends_nothing() {
    let sim = sim_with(one_plan_world(&[DAY, 9 * DAY])).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&sim, dir.path(), "");
    let mut cmd = bin();
    cmd.arg("--config").arg(&cfg).arg("once");
    assert_eq!(run(cmd).await.code, 0);
    let renewed = sim.state().subscriptions[0].active_until_ms;
    let calls = sim.calls().len();
    let (code, doc) = forecast_json(&cfg, &["--offline"]).await;
    assert_eq!(code, 0, "{doc}");
    assert_eq!(sim.calls().len(), calls, "offline: no request at all");
    assert_eq!(doc["source"], "snapshot");
    let (read, from) = (doc["read_at_ms"].as_i64().unwrap(), doc["from_ms"].as_i64().unwrap());
    assert!(read < from && from - read < 60_000, "the snapshot's read, {read}, is before now, {from}");
    // The snapshot predates sub0's renewal; the ledger has it: next due 3 days before its new
    // expiry, priced by its last renewal; sub1 by the cheapest plan the ledger knows.
    assert_eq!(
        rows(&doc),
        vec![
            ("sub1".into(), K17.into(), 1200, "cheapest-known".into()),
            ("sub0".into(), K17.into(), 1200, "last-renewal".into())
        ]
    );
    let at = doc["renewals"][1]["at_ms"].as_i64().unwrap();
    let due = renewed - 3 * DAY;
    assert!((due..due + 2_000).contains(&at), "sub0 at {at}, due {due}");
    // Online, the plan of its last renewal is priced as op=plans lists it now.
    sim.update(|s, _| s.plans.iter_mut().for_each(|p| p.price_cents = 1500));
    let (_, doc) = forecast_json(&cfg, &[]).await;
    let sub0: Vec<(String, String, i64, String)> = rows(&doc).into_iter().filter(|r| r.0 == "sub0").collect();
    assert_eq!(sub0, vec![("sub0".into(), K17.into(), 1500, "last-renewal".into())]);
}

#[tokio::test]
async fn offline_without_a_database_says_how_to_get_one() {
    let sim = sim_with(one_plan_world(&[DAY])).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&sim, dir.path(), "");
    let mut cmd = bin();
    cmd.arg("--config").arg(&cfg).args(["forecast", "--offline"]);
    let ran = run(cmd).await;
    assert_eq!(ran.code, 1);
    assert!(ran.stderr.contains("no snapshot") && ran.stderr.contains("without --offline"), "{}", ran.stderr);
    assert!(sim.calls().is_empty());
}

#[tokio::test]
async fn the_dry_run_prints_the_next_7_days_under_its_totals() {
    let sim = sim_with(one_plan_world(&[DAY, 9 * DAY])).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&sim, dir.path(), "");
    let mut cmd = bin();
    cmd.arg("--config").arg(&cfg).arg("--dry-run");
    let ran = run(cmd).await;
    // The totals come first, the forecast line right under them.
    let lines: Vec<&str> = ran.stdout.lines().collect();
    assert!(lines[0].starts_with("2 subscriptions: "), "{}", ran.stdout);
    assert_eq!(
        lines[1], "forecast, next 7 days: about 2 renewals, 24.00 (details: proxy-renewd forecast)",
        "{}",
        ran.stdout
    );
    let mut cmd = bin();
    cmd.arg("--config").arg(&cfg).args(["--dry-run", "--format", "json"]);
    let doc: serde_json::Value = serde_json::from_str(&run(cmd).await.stdout).unwrap();
    assert_eq!(doc["forecast"]["7d"]["renewals"], 2);
    assert_eq!(doc["forecast"]["30d"]["spend_cents"], 3600, "sub0 twice (days 0 and 28), sub1 once");
    assert!(sim.calls_of("plans").is_empty(), "the dry run reads no more than before");
}

#[tokio::test]
async fn a_402_alert_tops_up_for_everything_blocked_and_the_next_24_hours() {
    // Three due now (1 day left), one due in 12 hours (3 days 12 hours left), one far: the
    // balance covers none. The digest's figure is the three blocked plus the one due later.
    let smtp = SmtpServer::start();
    let sim = sim_with(one_plan_world(&[
        DAY,
        DAY + 1000,
        DAY + 2000,
        3 * DAY + 12 * 3_600_000,
        20 * DAY,
        3 * DAY + 12 * 3_600_000,
    ]))
    .await;
    sim.update(|s, _| s.balance_cents = 0);
    let email = format!(
        "[alerts.email]\nsmtp_url = \"{}\"\nfrom = \"proxy-renewd <renewd@example.com>\"\nto = [\"ops@example.com\"]\n",
        smtp.url()
    );
    let s = Setup::new(&sim, &email).await.with_max_concurrency(1);
    // sub5, due in 12 hours too, names a plan nobody lists: a renewal at a price not known.
    let rule = Rule { plan: PlanChoice::Plan(PlanId::parse("zzzzzzzzzzzzzzzzzzzzzzzz").unwrap()), ..Rule::default() };
    s.store.put_rule(&SubscriptionId::parse("sub5").unwrap(), &rule, EpochMs::now()).await.unwrap();
    let report = s.cycle().await;
    assert_eq!(sim.calls_of("renew").len(), 1, "stops at the 402");
    let f = report.forecast.as_ref().expect("a 402 makes the cycle forecast");
    assert_eq!(f.window("24h").map(|w| (w.renewals, w.spend, w.unpriced)), Some((5, Cents(4800), 1)));
    let mail = smtp.messages().into_iter().find(|m| m.contains("INSUFFICIENT BALANCE")).expect("the 402 digest");
    let mail = unfold(&mail);
    assert!(mail.contains("Top up the balance by at least 36.00 (3600 cents) to cover the 3 renewals"), "{mail}");
    assert!(
        mail.contains(
            "To cover the next 24 h of renewals as well (the forecast, these included): at least 48.00 (4800 cents)"
        ),
        "{mail}"
    );
    let account =
        s.store.outbox(false, 50).await.unwrap().into_iter().find(|r| r.alert.subscription_id.is_none()).unwrap();
    assert_eq!(
        account.alert.happened,
        "the next 24 h need 48.00: 5 renewals by the forecast (+1 at a price not known), the 3 renewals the short \
         balance blocked now included"
    );
    assert_eq!(account.alert.amount, Some(Cents(4800)));
}

#[tokio::test]
async fn the_weekly_forecast_is_emailed_once_a_week() {
    let smtp = SmtpServer::start();
    let sim = sim_with(one_plan_world(&[5 * DAY, 9 * DAY])).await;
    let email = format!(
        "[alerts]\nforecast = \"weekly\"\n[alerts.email]\nsmtp_url = \"{}\"\nfrom = \"proxy-renewd <renewd@example.com>\"\nto = [\"ops@example.com\"]\n",
        smtp.url()
    );
    let s = Setup::new(&sim, &email).await;
    s.cycle().await;
    let subjects = |smtp: &SmtpServer| {
        smtp.messages()
            .iter()
            .filter_map(|m| m.lines().find(|l| l.starts_with("Subject:")).map(str::to_owned))
            .collect::<Vec<_>>()
    };
    let first = subjects(&smtp);
    assert_eq!(first.len(), 1, "{first:?}");
    assert!(first[0].contains("renewal forecast: the next 7 days: 2 renewals, 24.00"), "{first:?}");
    let body = unfold(&smtp.messages()[0]);
    assert!(body.contains("proxy-renewd forecast --days 7"), "{body}");
    s.clock.advance(3_600_000);
    s.cycle().await;
    assert_eq!(subjects(&smtp).len(), 1, "not again within the week");
    s.clock.advance(7 * DAY);
    s.cycle().await;
    assert_eq!(subjects(&smtp).len(), 2, "again the next week");
}

#[tokio::test]
async fn a_forecast_setting_other_than_off_or_weekly_is_refused_with_the_choices() {
    let sim = sim_with(one_plan_world(&[DAY])).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&sim, dir.path(), "[alerts]\nforecast = \"daily\"\n");
    let mut cmd = bin();
    cmd.arg("--config").arg(&cfg).arg("forecast");
    let ran = run(cmd).await;
    assert_eq!(ran.code, 1);
    assert!(ran.stderr.contains("alerts.forecast") || ran.stderr.contains("forecast"), "{}", ran.stderr);
    assert!(ran.stderr.contains("weekly"), "{}", ran.stderr);
}

#[tokio::test]
async fn the_budget_day_and_fund_by_amounts_of_a_fleet_at_the_simulator() {
    // Three due now at 12.00 under a 24.00 budget: two at the first cycle, the third once the
    // first two are 24 h old (the next cycle after that: cron every second), which is after
    // it expires (1 day left). Fund by: 24.00 today, 36.00 tomorrow.
    let sim = sim_with(one_plan_world(&[DAY - 120_000, DAY - 60_000, DAY])).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&sim, dir.path(), "[budget]\nmax_spend_cents_per_day = 2400\n");
    let (code, doc) = forecast_json(&cfg, &["--days", "3"]).await;
    assert_eq!(code, 3, "sub2 lapses waiting for the budget: {doc}");
    let at: Vec<i64> = doc["renewals"].as_array().unwrap().iter().map(|r| r["at_ms"].as_i64().unwrap()).collect();
    assert_eq!(at.len(), 3, "{doc}");
    assert_eq!(at[0], at[1], "sub0 and sub1 in the same cycle");
    assert!((at[0] + DAY..at[0] + DAY + 1001).contains(&at[2]), "sub2 24 h later, at the next second: {at:?}");
    let stop = &doc["budget_stops"][0];
    assert_eq!((stop["subscription_id"].as_str(), stop["price_cents"].as_i64()), (Some("sub2"), Some(1200)));
    assert_eq!(stop["renewed_at_ms"].as_i64(), Some(at[2]));
    assert_eq!(doc["renewals"][2]["delayed_by_budget"], true);
    assert_eq!(doc["renewals"][2]["lapses_first"], true);
    let days = doc["days"].as_array().unwrap();
    let first = days.iter().position(|d| d["renewals"].as_u64() == Some(2)).expect("the day of the first cycle");
    assert_eq!(days[first]["fund_by_cents"], 2400);
    assert_eq!(days[first]["budget_stops"], 1);
    assert_eq!(days[first + 1]["renewals"], 1);
    assert_eq!(days[first + 1]["fund_by_cents"], 3600);
}

#[tokio::test]
async fn a_schedule_that_comes_after_the_expiry_is_a_lapse_and_exits_3() {
    // Cycles once a year (1 January): sub0 expires in 1 day and is renewed only then.
    let sim = sim_with(one_plan_world(&[DAY])).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&sim, dir.path(), "").with_file_name("c.toml");
    let text = std::fs::read_to_string(&cfg).unwrap().replace("* * * * * *", "0 0 0 1 1 *");
    std::fs::write(&cfg, text).unwrap();
    let (code, doc) = forecast_json(&cfg, &["--days", "366"]).await;
    assert_eq!(code, 3, "{doc}");
    assert_eq!(doc["renewals"][0]["lapses_first"], true);
    let mut cmd = bin();
    cmd.arg("--config").arg(&cfg).args(["forecast", "--days", "366"]);
    let ran = run(cmd).await;
    assert!(ran.stdout.contains("! 1 renewal comes after the expiry"), "{}", ran.stdout);
    assert!(ran.stdout.contains("offer !"), "{}", ran.stdout);
}

#[tokio::test]
async fn pricing_what_is_not_due_follows_the_rule_then_the_network() {
    // The sample's plans: k17 (12.00, NL-AMS), d3e5 (11.00, DE-BER), q2w4 (33.00, NL-AMS), …
    // sub0 (NL-AMS) is due now: offered k17. sub1 (NL-AMS, due in 6 days) is priced by what
    // is known on its network (k17 at 12.00), not by the cheaper DE-BER plan; sub2 names
    // q2w4 in its rule: its listed price; sub3 names a plan nobody lists: no price, exit 3.
    let mut state = world(&[DAY, 9 * DAY, 9 * DAY, 9 * DAY]);
    for sub in &mut state.subscriptions {
        sub.renewal_plan_ids.push("q2w4e6r8t0y2u4i6o8p0a2s4".into());
    }
    let sim = sim_with(state).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&sim, dir.path(), "");
    for (id, plan) in [("sub2", "q2w4e6r8t0y2u4i6o8p0a2s4"), ("sub3", "zzzzzzzzzzzzzzzzzzzzzzzz")] {
        let mut cmd = bin();
        cmd.arg("--config").arg(&cfg).args(["rules", "set", id, "--plan", plan]);
        // `rules set` refuses a plan the provider does not list; sub3's rule was set while
        // the provider could not be asked (so it was stored, with a warning).
        if id == "sub3" {
            cmd.env("PROXY_RENEWD_API__BASE_URL", "http://127.0.0.1:1").env("PROXY_RENEWD_API__MAX_ATTEMPTS", "1");
        }
        assert_eq!(run(cmd).await.code, 0);
    }
    let (code, doc) = forecast_json(&cfg, &["--days", "7"]).await;
    assert_eq!(code, 3, "sub3's price is not known: {doc}");
    let mut got = rows(&doc);
    got.sort();
    assert_eq!(
        got,
        vec![
            ("sub0".into(), K17.into(), 1200, "renewal-plans".into()),
            ("sub1".into(), K17.into(), 1200, "cheapest-known".into()),
            ("sub2".into(), "q2w4e6r8t0y2u4i6o8p0a2s4".into(), 3300, "rule-plan".into()),
            ("sub3".into(), "?".into(), -1, "?".into()),
        ]
    );
    assert_eq!(doc["totals"]["7d"]["unpriced"], 1);
}

#[tokio::test]
async fn dry_run_on_forecast_says_it_reads_only() {
    let mut cmd = bin();
    cmd.args(["--dry-run", "forecast"]);
    let ran = run(cmd).await;
    assert_eq!(ran.code, 2);
    assert!(ran.stderr.contains("`forecast` reads only"), "{}", ran.stderr);
}

#[test]
fn the_weekly_email_counts_only_the_7_days_it_names() {
    // One renewal on day 2, one on day 7 plus 6 hours: outside 7 × 24 h, in no line of it.
    let subs = vec![
        one(EpochMs(NOW.0 + 5 * DAY_MS), vec![plan("pa", 30 * DAY_MS, 1100)], rule_3d(), 0),
        one(EpochMs(NOW.0 + 10 * DAY_MS + 6 * HOUR), vec![plan("pa", 30 * DAY_MS, 1200)], rule_3d(), 1),
    ];
    let f = Fleet { subs, spent: vec![], budget: None, step: 10 * MIN }.forecast(30);
    let a = proxy_renewd::alerts::forecast_alert(&f, NOW);
    assert_eq!(a.happened, "the next 7 days: 1 renewal, 11.00; the next 24 h: 0 renewals, 0.00");
    let day2 = EpochMs(NOW.0 + 2 * DAY_MS).to_string()[..10].to_owned();
    assert_eq!(a.next, format!("renew as the rules say; by day: {day2}: 1 renewal, have 11.00"));
    assert!(!a.action.contains("need a person"), "{}", a.action);
    assert_eq!(a.amount, Some(Cents(1100)));
    assert_eq!(a.period, Some(proxy_renewd::alerts::forecast::week_start(NOW)));
    assert!(a.action.contains("(11.00 before "), "{}", a.action);
}

#[test]
fn the_window_ends_before_its_last_instant_and_a_renewal_at_its_expiry_does_not_lapse() {
    // Midnight, cycles every 10 minutes. sub0 is due exactly 24 h from now (expires in 4
    // days, renew_before 3 days): not in a 1-day forecast, in a 2-day one but not in its
    // first 24 h. sub1 (renew_before 0) is renewed at the very instant it expires: no lapse.
    let midnight = EpochMs(NOW.0.div_euclid(DAY_MS) * DAY_MS + 100 * DAY_MS);
    let subs = vec![
        one(EpochMs(midnight.0 + 4 * DAY_MS), vec![plan("pa", 30 * DAY_MS, 1200)], rule_3d(), 0),
        one(
            EpochMs(midnight.0 + 30 * MIN),
            vec![plan("pa", 30 * DAY_MS, 700)],
            Rule { renew_before_ms: 0, ..Rule::default() },
            1,
        ),
    ];
    let fleet = Fleet { subs, spent: vec![], budget: None, step: 10 * MIN };
    let one_day = fleet.forecast_at(midnight, 1);
    assert_eq!(one_day.renewals.iter().map(|r| r.subscription_id.clone()).collect::<Vec<_>>(), vec![sid(1)]);
    assert_eq!(one_day.days.len(), 1, "one day, not the next one's midnight");
    assert!(!one_day.renewals[0].lapses_first(), "renewed at its expiry, not after");
    let two = fleet.forecast_at(midnight, 2);
    assert_eq!(two.renewals.len(), 2);
    assert_eq!(two.renewals[1].at, EpochMs(midnight.0 + DAY_MS));
    assert_eq!(two.window("24h").map(|w| (w.renewals, w.spend)), Some((1, Cents(700))));
    assert_eq!(two.days.len(), 2);
    assert_eq!(two.days[1].spend, Cents(1200));
    let shown = format!(
        "{:?}",
        forecast::Input {
            subjects: vec![],
            spent: &[],
            max_spend_per_day: None,
            lapse_warning_ms: 0,
            balance_ok_since: None,
            now: midnight,
            until: midnight,
            next_cycle: &every(MIN),
        }
    );
    assert!(shown.contains("subjects: 0"), "{shown}");
}

#[tokio::test]
async fn a_provider_that_cannot_be_read_is_one_line_that_points_to_offline() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    let port = crate::helpers::free_port();
    std::fs::write(
        &cfg,
        format!("[api]\nbase_url = \"http://127.0.0.1:{port}\"\nkey = \"{KEY}\"\nmax_attempts = 1\n[database]\nurl = \"sqlite://{}\"\n", dir.path().join("r.db").display()),
    )
    .unwrap();
    let mut cmd = bin();
    cmd.arg("--config").arg(&cfg).arg("forecast");
    let ran = run(cmd).await;
    assert_eq!(ran.code, 1);
    let error: Vec<&str> = ran.stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(error.len(), 1, "{}", ran.stderr);
    assert!(error[0].starts_with("error: cannot read subscriptions: could not connect"), "{}", error[0]);
    assert!(error[0].contains("proxy-renewd forecast --offline"), "{}", error[0]);
    assert!(ran.stdout.is_empty());
}

fn at(rfc3339: &str) -> EpochMs {
    let t = humantime::parse_rfc3339(rfc3339).unwrap();
    EpochMs(t.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64)
}

#[test]
fn the_week_starts_on_monday_at_midnight_utc() {
    use proxy_renewd::alerts::forecast::week_start;
    let monday = at("2026-11-30T00:00:00Z");
    for t in ["2026-11-30T00:00:00Z", "2026-12-02T15:04:05Z", "2026-12-06T23:59:59Z"] {
        assert_eq!(week_start(at(t)), monday, "{t}");
    }
    assert_eq!(week_start(at("2026-12-07T00:00:00Z")), at("2026-12-07T00:00:00Z"));
    // 1 January 1970 was a Thursday: its week began on Monday 29 December 1969.
    assert_eq!(week_start(EpochMs(12 * HOUR)), EpochMs(-3 * DAY_MS));
}

#[test]
fn the_weekly_email_adds_up_each_day_and_says_what_stops_and_who_is_needed() {
    // Midnight, cycles every 10 minutes, a 25.00 budget. a and b (12.00) renew at once; c
    // (12.00) waits for the budget until a day and a cycle later; d is due on day 2 at a
    // price not known; e is due at the very end of the 7 days (outside them); f is disabled
    // and expires unmanaged from day 3.
    let m = at("2027-03-01T00:00:00Z");
    let p = |c| vec![plan("pa", 30 * DAY_MS, c)];
    let mut d = one(EpochMs(m.0 + 5 * DAY_MS), p(999), rule_3d(), 3);
    d.unpriced = true;
    let subs = vec![
        one(EpochMs(m.0 + DAY_MS), p(1200), rule_3d(), 0),
        one(EpochMs(m.0 + DAY_MS + 1), p(1200), rule_3d(), 1),
        one(EpochMs(m.0 + DAY_MS + 2), p(1200), rule_3d(), 2),
        d,
        one(EpochMs(m.0 + DAY_MS + 3), p(1200), rule_3d(), 8),
        one(EpochMs(m.0 + 7 * DAY_MS), p(1200), Rule { enabled: false, ..rule_3d() }, 9),
        // y is free and due with e: renewed at the very end, outside the 7 days.
        one(EpochMs(m.0 + 10 * DAY_MS), p(0), rule_3d(), 10),
        one(EpochMs(m.0 + 10 * DAY_MS), p(1200), rule_3d(), 4),
        one(EpochMs(m.0 + 6 * DAY_MS), p(1200), Rule { enabled: false, ..rule_3d() }, 5),
        // g expires unmanaged from the very end of the 7 days: not counted in them; x renews
        // at day 6.5 for 14.00, which stops e at that very end: not counted either.
        one(EpochMs(m.0 + 10 * DAY_MS), p(1200), Rule { enabled: false, ..rule_3d() }, 6),
        one(EpochMs(m.0 + 9 * DAY_MS + 12 * 3_600_000), p(1400), rule_3d(), 7),
    ];
    let f = Fleet { subs, spent: vec![], budget: Some(Cents(2500)), step: 10 * MIN }.forecast_at(m, 8);
    let end = EpochMs(m.0 + 7 * DAY_MS);
    assert!(f.budget_stops.iter().any(|s| s.subscription_id == sid(4) && s.at == end), "{:?}", f.budget_stops);
    assert!(f.attention.iter().any(|a| a.subscription_id == sid(6) && a.at == end), "{:?}", f.attention);
    assert!(f.renewals.iter().any(|r| r.subscription_id == sid(10) && r.at == end), "{:?}", f.renewals);
    let a = proxy_renewd::alerts::forecast_alert(&f, m);
    assert_eq!(
        a.happened,
        "the next 7 days: 6 renewals, 62.00 (+1 at a price not known); the next 24 h: 2 renewals, 24.00"
    );
    assert_eq!(
        a.next,
        "renew as the rules say; by day: 2027-03-01: 2 renewals, have 24.00; 2027-03-02: 2 renewals, have 48.00; \
         2027-03-03: 1 renewal, have 48.00; 2027-03-07: 1 renewal, have 62.00; the daily budget stops 2 renewals \
         for a while"
    );
    assert_eq!(
        a.action,
        "keep at least 62.00 on the account for the week (24.00 now); 2 subscription(s) will need a person; \
         `proxy-renewd forecast --days 7` lists every renewal"
    );
    assert_eq!(a.amount, Some(Cents(6200)));
    assert_eq!(a.period, Some(m), "1 March 2027 is a Monday");
    // A day earlier: the first renewal day is ahead, not now.
    let later = proxy_renewd::alerts::forecast_alert(&f, EpochMs(m.0 - DAY_MS));
    assert!(later.action.contains("(24.00 before 2027-03-01)"), "{}", later.action);
}

#[test]
fn a_past_renewal_gives_the_plan_it_paid_for_per_unit() {
    use proxy_renewd::forecast::plan_of;
    let id = sid(0);
    let period = EpochMs(NOW.0 + DAY_MS);
    let mut e = past(&id, period, LedgerState::Succeeded, Some(200), NOW);
    e.renewal.repeat_count = 2;
    e.renewal.price = Cents(2400);
    e.renewal.expected_end_at = EpochMs(period.0 + 60 * DAY_MS);
    let derived = plan_of(&e, &[]).unwrap();
    assert_eq!(
        (derived.id.as_str(), derived.duration_ms, derived.price_amount_cents),
        ("pa", 30 * DAY_MS, Cents(1200))
    );
    // The end it reached, when recorded, over the expected one; from the later of the period
    // and the attempt (a lapsed subscription renews from the attempt).
    e.actual_end_at = Some(EpochMs(period.0 + 20 * DAY_MS));
    assert_eq!(plan_of(&e, &[]).unwrap().duration_ms, 10 * DAY_MS);
    e.created_at = EpochMs(period.0 + 10 * DAY_MS);
    assert_eq!(plan_of(&e, &[]).unwrap().duration_ms, 5 * DAY_MS);
    // Nothing added: no plan to infer.
    e.actual_end_at = Some(e.created_at);
    assert_eq!(plan_of(&e, &[]), None);
    // Listed by op=plans: as listed now.
    let listed = vec![plan("zz", DAY_MS, 1), plan("pa", 7 * DAY_MS, 300)];
    assert_eq!(plan_of(&e, &listed), Some(plan("pa", 7 * DAY_MS, 300)));
}
