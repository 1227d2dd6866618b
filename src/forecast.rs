//! The forecast (issue "Forecast"): every renewal the daemon will make in a window, found by
//! asking the policy itself at each cycle it would run, so that the forecast and the daemon
//! cannot disagree. A pure function like the policy: rules, what was read, plans, the ledger,
//! the budget and `now` in; rows, totals per day and window, fund-by amounts, the days the
//! budget stops renewals and what will need a person out. No I/O and no clock of its own.
//!
//! How: each subscription is asked [`policy::decide`] at the first cycle at or after
//! `activeUntil - renew_before`, most urgent first within a cycle (as a cycle does), with the
//! rolling 24 h spend of the ledger and of the renewals forecast before it. A renewal moves
//! the subscription's expiry to the expected new one and books a `succeeded` attempt, so that
//! a short plan is renewed again inside the window. A backoff or the budget asks again at the
//! first cycle it could pass; anything else the policy blocks needs a person. Assumed: every
//! renewal succeeds at its expected price, the balance covers it (no 402 probe), and no
//! person acts in between.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use crate::api::RenewalPlan;
use crate::attempt::{LedgerEntry, LedgerState, Origin, RenewalTerms};
use crate::policy::{self, Blocked, Decision, Skip};
use crate::rule::Rule;
use crate::values::{Cents, EpochMs, SubscriptionId};

/// One day, in ms.
pub const DAY_MS: i64 = 86_400_000;

/// Where a forecast renewal's plan and price come from, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PlanSource {
    /// `op=renewal-plans` read in this run: what the rule would choose now.
    RenewalPlans,
    /// The plan of the subscription's last successful renewal in the ledger.
    LastRenewal,
    /// The plan the rule names, at its `op=plans` price: exact unless the provider prices
    /// renewals otherwise.
    RulePlan,
    /// The rule's choice among the plans known on the subscription's network (offered to
    /// another subscription there, a past renewal there, `op=plans` for it), or else among
    /// every plan known: an estimate.
    CheapestKnown,
}

impl PlanSource {
    /// `renewal-plans`, `last-renewal`, `rule-plan` or `cheapest-known`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            PlanSource::RenewalPlans => "renewal-plans",
            PlanSource::LastRenewal => "last-renewal",
            PlanSource::RulePlan => "rule-plan",
            PlanSource::CheapestKnown => "cheapest-known",
        }
    }
}

/// One subscription, as the forecast starts from it.
#[derive(Debug, Clone)]
pub struct Subject<'a> {
    /// `subscriptionId`.
    pub subscription_id: &'a SubscriptionId,
    /// `status` as last read.
    pub status: &'a str,
    /// `activeUntil` as last read.
    pub active_until: EpochMs,
    /// Its effective rule.
    pub rule: &'a Rule,
    /// The plans the policy chooses from, and where they come from; `None`: no price known.
    pub plans: Option<(PlanSource, &'a [RenewalPlan])>,
    /// Its ledger entries (as a cycle loads them: the periods read and the open ones).
    pub ledger: &'a [LedgerEntry],
    /// On hold (ledger rule 8).
    pub on_hold: bool,
    /// The latest expiry a recorded renewal paid for.
    pub paid_until: Option<EpochMs>,
}

/// Everything the forecast looks at.
pub struct Input<'a> {
    /// Every subscription, any order.
    pub subjects: Vec<Subject<'a>>,
    /// Spend already in the ledger that counts against the budget: (created at, cents), the
    /// rows of the 24 h before `now` at least.
    pub spent: &'a [(EpochMs, Cents)],
    /// `[budget] max_spend_cents_per_day`.
    pub max_spend_per_day: Option<Cents>,
    /// `alerts.lapse_warning`, in ms.
    pub lapse_warning_ms: i64,
    /// When a renewal last succeeded (a 402 before it no longer holds anything back).
    pub balance_ok_since: Option<EpochMs>,
    /// The start of the forecast.
    pub now: EpochMs,
    /// The end of the window (exclusive).
    pub until: EpochMs,
    /// The first cycle at or after a time (the cron schedule, without jitter); `None` when
    /// there is none.
    pub next_cycle: &'a dyn Fn(EpochMs) -> Option<EpochMs>,
}

impl std::fmt::Debug for Input<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Input")
            .field("subjects", &self.subjects.len())
            .field("now", &self.now)
            .field("until", &self.until)
            .finish_non_exhaustive()
    }
}

/// One renewal the daemon will make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Renewal {
    /// The subscription.
    pub subscription_id: SubscriptionId,
    /// The cycle that renews it.
    pub at: EpochMs,
    /// Its `activeUntil` then (the period renewed).
    pub active_until_before: EpochMs,
    /// The plan, repeat count, price (cents, × repeat count) and expected new expiry; `None`
    /// when no plan is known for it (it is due, at a price this run cannot tell).
    pub terms: Option<RenewalTerms>,
    /// Where the plan comes from.
    pub plan_source: Option<PlanSource>,
    /// It waited for the daily budget: the first cycle it was due did not renew it.
    pub delayed_by_budget: bool,
}

impl Renewal {
    /// Its price in cents (0 when unknown).
    #[must_use]
    pub fn price(&self) -> Cents {
        self.terms.as_ref().map_or(Cents(0), |t| t.price)
    }

    /// It lapses before it is renewed (`at` past `activeUntil`).
    #[must_use]
    pub fn lapses_first(&self) -> bool {
        self.at > self.active_until_before
    }
}

/// A subscription the daemon will not renew by itself in the window: a person must act.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attention {
    /// The subscription.
    pub subscription_id: SubscriptionId,
    /// The policy's reason (`Decision::reason`, e.g. `over-price-cap`, `disabled`,
    /// `still-due-after-renewal`; `backoff` or `backoff-402`: refused in its period and
    /// retried after a wait, which the forecast assumes succeeds).
    pub reason: &'static str,
    /// Its expiry then.
    pub active_until: EpochMs,
    /// The cycle at which the policy says so.
    pub at: EpochMs,
}

/// A renewal the daily budget stops at a cycle where it is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetStop {
    /// The subscription.
    pub subscription_id: SubscriptionId,
    /// The first cycle the budget stopped it.
    pub at: EpochMs,
    /// The price it waits to spend, in cents.
    pub price: Cents,
    /// Its expiry.
    pub active_until: EpochMs,
    /// The cycle that renews it once the budget allows, if inside the window.
    pub renewed_at: Option<EpochMs>,
}

/// The renewals of one UTC day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Day {
    /// Its start, 00:00 UTC.
    pub start: EpochMs,
    /// Renewals in it.
    pub renewals: usize,
    /// Their cost, in cents.
    pub spend: Cents,
    /// Of them, how many have no known price.
    pub unpriced: usize,
    /// Fund-by: the spend of the window up to the end of this day, in cents. Have at least
    /// this on the account at the day's start and nothing the forecast shows fails for money.
    pub cumulative: Cents,
    /// Renewals the budget stops on this day (first stop).
    pub budget_stops: usize,
}

/// The totals of a window from `now`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// `24h`, `7d` or `30d`.
    pub name: &'static str,
    /// Its length, in ms.
    pub length_ms: i64,
    /// Renewals in it.
    pub renewals: usize,
    /// Their cost, in cents.
    pub spend: Cents,
    /// Of them, how many have no known price.
    pub unpriced: usize,
}

/// The windows every forecast totals, those inside its span.
pub const WINDOWS: [(&str, i64); 3] = [("24h", DAY_MS), ("7d", 7 * DAY_MS), ("30d", 30 * DAY_MS)];

/// What the daemon will renew between `now` and `until`, and what it will not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forecast {
    /// The start.
    pub now: EpochMs,
    /// The end (exclusive).
    pub until: EpochMs,
    /// Every renewal, in cycle order (most urgent first within a cycle).
    pub renewals: Vec<Renewal>,
    /// Per UTC day from `now`'s day to the last one before `until`, every day listed.
    pub days: Vec<Day>,
    /// The windows of [`WINDOWS`] that fit in the span.
    pub windows: Vec<Window>,
    /// Renewals the budget stops, by first stop.
    pub budget_stops: Vec<BudgetStop>,
    /// What needs a person, by when the policy says so.
    pub attention: Vec<Attention>,
}

impl Forecast {
    /// The total cost of every renewal, in cents.
    #[must_use]
    pub fn spend(&self) -> Cents {
        Cents(self.renewals.iter().map(|r| r.price().0).fold(0, i64::saturating_add))
    }

    /// The totals of the renewals before `end`, named `name`, `length_ms` long: a window of
    /// [`WINDOWS`], the whole span, or the week of the weekly email.
    #[must_use]
    pub fn totals_before(&self, name: &'static str, length_ms: i64, end: EpochMs) -> Window {
        let rows: Vec<&Renewal> = self.renewals.iter().filter(|r| r.at < end).collect();
        Window {
            name,
            length_ms,
            renewals: rows.len(),
            spend: Cents(rows.iter().map(|r| r.price().0).fold(0, i64::saturating_add)),
            unpriced: rows.iter().filter(|r| r.terms.is_none()).count(),
        }
    }

    /// The window named `name` (`24h`, `7d`, `30d`), if inside the span.
    #[must_use]
    pub fn window(&self, name: &str) -> Option<&Window> {
        self.windows.iter().find(|w| w.name == name)
    }
}

/// What `proxy-renewd forecast` ran on, beside the forecast.
#[derive(Debug, Clone)]
pub struct ForecastRun {
    /// The forecast.
    pub forecast: Forecast,
    /// `subscriptions` (a fresh read) or `snapshot` (`--offline`: the database's last read).
    pub source: &'static str,
    /// When the subscriptions were read: now, or the snapshot's last poll.
    pub read_at: EpochMs,
    /// How many subscriptions it covers.
    pub subscriptions: usize,
    /// `renewal-plans` reads made.
    pub plans_read: usize,
    /// `renewal-plans` reads that failed, as (subscription, error): priced another way.
    pub plans_errors: Vec<(SubscriptionId, String)>,
    /// `op=plans` failed: the cheapest known plan comes from the ledger only.
    pub catalog_error: Option<String>,
    /// `[budget] max_spend_cents_per_day`.
    pub budget: Option<Cents>,
}

/// A subscription as the forecast moves it forward.
struct Track<'a> {
    subject: Subject<'a>,
    active_until: EpochMs,
    ledger: Vec<LedgerEntry>,
    paid_until: Option<EpochMs>,
    /// Index in `budget_stops` of its current period's stop, if any.
    stopped: Option<usize>,
    /// Its current period waits after a refusal: listed once.
    backed_off: bool,
}

/// The forecast of `input`: see the module's doc for how.
#[must_use]
pub fn forecast(input: &Input<'_>) -> Forecast {
    let mut subjects = input.subjects.clone();
    // Index order is id order, so that the queue's ties go most urgent first, then by id.
    subjects.sort_by(|a, b| a.subscription_id.cmp(b.subscription_id));
    let mut tracks: Vec<Track<'_>> = subjects
        .into_iter()
        .map(|s| Track {
            active_until: s.active_until,
            ledger: s.ledger.to_vec(),
            paid_until: s.paid_until,
            stopped: None,
            backed_off: false,
            subject: s,
        })
        .collect();
    let mut out = Forecast {
        now: input.now,
        until: input.until,
        renewals: vec![],
        days: vec![],
        windows: vec![],
        budget_stops: vec![],
        attention: vec![],
    };
    let mut queue: BinaryHeap<Reverse<(EpochMs, EpochMs, usize)>> = BinaryHeap::new();
    let schedule = |queue: &mut BinaryHeap<_>, at: EpochMs, active_until: EpochMs, i: usize| {
        if let Some(t) = (input.next_cycle)(at.max(input.now)).filter(|t| *t < input.until) {
            queue.push(Reverse((t, active_until, i)));
        }
    };
    for (i, t) in tracks.iter().enumerate() {
        // What is not active is reported at the first cycle; the rest when due.
        let first = if t.subject.status == "active" { due_at(t.active_until, t.subject.rule) } else { input.now };
        schedule(&mut queue, first, t.active_until, i);
    }
    // The rolling 24 h of spend: rows in time order, summed.
    let mut spent: Vec<(EpochMs, Cents)> = input.spent.to_vec();
    spent.sort_by_key(|(at, _)| *at);
    let mut window: VecDeque<(EpochMs, Cents)> = spent.into();
    let mut window_sum: i64 = window.iter().map(|(_, c)| c.0).fold(0, i64::saturating_add);
    while let Some(Reverse((at, _, i))) = queue.pop() {
        // `spend_since(at - 24 h)` counts rows created at or after that instant.
        while window.front().is_some_and(|(t, _)| *t < EpochMs(at.0 - DAY_MS)) {
            let (_, c) = window.pop_front().unwrap_or((at, Cents(0)));
            window_sum = window_sum.saturating_sub(c.0);
        }
        let track = &mut tracks[i];
        // Asked again only at a later cycle, whatever the reason: the loop always ends.
        let later = |t: EpochMs| t.max(EpochMs(at.0.saturating_add(1)));
        let ask = |plans: Option<&[RenewalPlan]>| {
            policy::decide(&policy::Input {
                status: track.subject.status,
                active_until: track.active_until,
                rule: track.subject.rule,
                renewal_plans: plans,
                ledger: &track.ledger,
                on_hold: track.subject.on_hold,
                paid_until: track.paid_until,
                spent_last_24h: Cents(window_sum),
                max_spend_per_day: input.max_spend_per_day,
                lapse_warning_ms: input.lapse_warning_ms,
                probe_balance: false,
                balance_ok_since: input.balance_ok_since,
                now: at,
            })
        };
        let mut decision = ask(None);
        if decision == Decision::FetchPlans
            && let Some((_, plans)) = track.subject.plans
        {
            decision = ask(Some(plans));
        }
        let id = track.subject.subscription_id;
        let mut needs_person = |reason: &'static str, active_until: EpochMs| {
            out.attention.push(Attention { subscription_id: id.clone(), reason, active_until, at });
        };
        match decision {
            Decision::Ok { due_in_ms } => {
                schedule(&mut queue, later(EpochMs(at.0.saturating_add(due_in_ms))), track.active_until, i);
            }
            // Disabled and not active: skipped whenever it is asked. (Disabled and active, it
            // is first asked when due, and the policy says it expires unmanaged.)
            Decision::Skip(Skip::Disabled) => {}
            Decision::FetchPlans => {
                // Due, and no plan known: a renewal at a price this run cannot tell.
                out.renewals.push(Renewal {
                    subscription_id: id.clone(),
                    at,
                    active_until_before: track.active_until,
                    terms: None,
                    plan_source: None,
                    delayed_by_budget: track.stopped.is_some(),
                });
                if let Some(s) = track.stopped.take() {
                    out.budget_stops[s].renewed_at = Some(at);
                }
            }
            Decision::Renew(terms) => {
                window.push_back((at, terms.price));
                window_sum = window_sum.saturating_add(terms.price.0);
                let new_end = terms.expected_end_at;
                let period = track.active_until;
                track.ledger.push(booked(id, &terms, at));
                track.paid_until = Some(track.paid_until.map_or(new_end, |p| p.max(new_end)));
                track.active_until = new_end;
                track.backed_off = false;
                out.renewals.push(Renewal {
                    subscription_id: id.clone(),
                    at,
                    active_until_before: period,
                    terms: Some(terms),
                    plan_source: track.subject.plans.map(|(s, _)| s),
                    delayed_by_budget: track.stopped.is_some(),
                });
                if let Some(s) = track.stopped.take() {
                    out.budget_stops[s].renewed_at = Some(at);
                }
                // The renewer holds a renewal that leaves it still due: a person decides.
                if new_end.since(at) <= track.subject.rule.renew_before_ms {
                    needs_person("still-due-after-renewal", new_end);
                } else {
                    schedule(&mut queue, later(due_at(new_end, track.subject.rule)), new_end, i);
                }
            }
            Decision::Blocked(Blocked::Backoff { until, status }) => {
                // A refusal (402, 409, 429) a person may have to answer; the forecast assumes
                // the retry after the wait succeeds. Listed once per period.
                if !track.backed_off {
                    track.backed_off = true;
                    needs_person(if status == Some(402) { "backoff-402" } else { "backoff" }, track.active_until);
                }
                schedule(&mut queue, later(until), track.active_until, i);
            }
            Decision::Blocked(Blocked::OverBudget { price, budget, .. }) => {
                // The first cycle the spend already counted could have aged enough; what is
                // forecast before then only adds to it.
                let room = budget.0.saturating_sub(price.0);
                let mut left = window_sum;
                let retry = window.iter().find_map(|(t, c)| {
                    left = left.saturating_sub(c.0);
                    // At t + 24 h it still counts (`created_at >= now - 24 h`): asked then, it
                    // is stopped once more, and asked again at the cycle after.
                    (left <= room).then(|| EpochMs(t.0.saturating_add(DAY_MS)))
                });
                match retry.filter(|_| price.0 <= budget.0) {
                    None => needs_person("over-budget", track.active_until),
                    Some(retry) => {
                        if track.stopped.is_none() {
                            track.stopped = Some(out.budget_stops.len());
                            out.budget_stops.push(BudgetStop {
                                subscription_id: id.clone(),
                                at,
                                price,
                                active_until: track.active_until,
                                renewed_at: None,
                            });
                        }
                        schedule(&mut queue, later(retry), track.active_until, i);
                    }
                }
            }
            other => needs_person(other.reason(), track.active_until),
        }
    }
    out.days = days(&out);
    out.windows = WINDOWS
        .iter()
        .filter(|(_, len)| input.now.0.saturating_add(*len) <= input.until.0)
        .map(|(name, len)| out.totals_before(name, *len, EpochMs(input.now.0 + len)))
        .collect();
    out
}

/// When the rule makes a subscription due: `activeUntil - renew_before`.
fn due_at(active_until: EpochMs, rule: &Rule) -> EpochMs {
    EpochMs(active_until.0.saturating_sub(rule.renew_before_ms))
}

/// The ledger entry of a forecast renewal, as if it had succeeded at `at` with the expected
/// new expiry (id 0: it is never stored).
#[must_use]
pub fn booked(id: &SubscriptionId, terms: &RenewalTerms, at: EpochMs) -> LedgerEntry {
    LedgerEntry {
        id: 0,
        subscription_id: id.clone(),
        renewal: terms.clone(),
        origin: Origin::Daemon,
        state: LedgerState::Succeeded,
        actual_end_at: Some(terms.expected_end_at),
        http_status: Some(200),
        error: None,
        retry_at: None,
        created_at: at,
        updated_at: at,
    }
}

/// Every UTC day of the span with its totals and fund-by amount.
fn days(f: &Forecast) -> Vec<Day> {
    let first = f.now.0.div_euclid(DAY_MS) * DAY_MS;
    let mut days = Vec::new();
    let mut cumulative = 0_i64;
    let mut start = first;
    while start < f.until.0 {
        let end = start + DAY_MS;
        let rows: Vec<&Renewal> = f.renewals.iter().filter(|r| (start..end).contains(&r.at.0)).collect();
        let spend = rows.iter().map(|r| r.price().0).fold(0, i64::saturating_add);
        cumulative = cumulative.saturating_add(spend);
        days.push(Day {
            start: EpochMs(start),
            renewals: rows.len(),
            spend: Cents(spend),
            unpriced: rows.iter().filter(|r| r.terms.is_none()).count(),
            cumulative: Cents(cumulative),
            budget_stops: f.budget_stops.iter().filter(|s| (start..end).contains(&s.at.0)).count(),
        });
        start = end;
    }
    days
}

/// The plan of a past renewal, as a renewal plan: its id, the price of one unit, and what
/// one unit added (from `op=plans` when the plan is listed there, else from the ledger row).
#[must_use]
pub fn plan_of(entry: &LedgerEntry, listed: &[RenewalPlan]) -> Option<RenewalPlan> {
    let terms = &entry.renewal;
    if let Some(p) = listed.iter().find(|p| p.id == terms.plan_id) {
        return Some(p.clone());
    }
    let repeat = i64::from(terms.repeat_count.max(1));
    let end = entry.actual_end_at.unwrap_or(terms.expected_end_at);
    let added = end.0.saturating_sub(terms.active_until_before.0.max(entry.created_at.0));
    (added > 0).then(|| RenewalPlan {
        id: terms.plan_id.clone(),
        connection_type: None,
        duration_ms: added / repeat,
        price_amount_cents: Cents(terms.price.0 / repeat),
    })
}
