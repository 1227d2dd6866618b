//! The policy: a pure function from what is known about one subscription to a [`Decision`]
//! that names its reason (`daemon.md`, *Policy* and *Ledger*). No I/O and no clock of its
//! own: `now` is an input, so the same inputs always give the same decision.
//!
//! It is called twice for a due subscription: first without renewal plans (answer
//! [`Decision::FetchPlans`]), then with the plans `op=renewal-plans` returned. A person's
//! `renew` is decided by [`decide_manual`] (`manual.rs`), through the same ledger gate
//! ([`next_attempt`]); how a plan is chosen is [`choose_plan`] (`plan.rs`).

mod manual;
mod plan;

pub use manual::{ManualDecision, ManualInput, ManualRefusal, decide_manual};
pub use plan::choose_plan;

use crate::api::RenewalPlan;
use crate::attempt::{LedgerEntry, LedgerState, RenewalTerms};
use crate::rule::{PlanChoice, Rule};
use crate::values::{Cents, EpochMs, PlanId};

/// Earliest plausible `activeUntil`: 2001-01-01T00:00:00Z in ms (a value in seconds is below).
pub const MIN_PLAUSIBLE_MS: i64 = 978_307_200_000;
/// First implausible `activeUntil`: 2200-01-01T00:00:00Z in ms.
pub const MAX_PLAUSIBLE_MS: i64 = 7_258_118_400_000;
/// After a 402/409/429, the next attempt for the period waits this long, doubled per refusal…
pub const RETRY_BACKOFF_BASE_MS: i64 = 10 * 60_000;
/// …up to this.
pub const RETRY_BACKOFF_CAP_MS: i64 = 2 * 3_600_000;
/// After a 409 on a plan a strategy chose, the next eligible plan is tried at once; at most
/// this many plans per period are tried that way before the period backs off.
pub const MAX_PLANS_AFTER_409: usize = 3;

/// Everything the policy looks at for one subscription.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// `status` from `op=subscriptions`.
    pub status: &'a str,
    /// `activeUntil` from `op=subscriptions`: the current period.
    pub active_until: EpochMs,
    /// The effective rule (its row, or `[defaults]`).
    pub rule: &'a Rule,
    /// `op=renewal-plans` for this subscription, once fetched.
    pub renewal_plans: Option<&'a [RenewalPlan]>,
    /// This subscription's ledger entries, any order.
    pub ledger: &'a [LedgerEntry],
    /// On hold: a renewal left it still due, and a person must act (ledger rule 8).
    pub on_hold: bool,
    /// The latest expiry a recorded renewal paid for (`endAt`, or the reconciled
    /// `activeUntil`): an `activeUntil` below it means the provider's data went backwards.
    pub paid_until: Option<EpochMs>,
    /// Spend that counts against the budget in the 24 h before `now`.
    pub spent_last_24h: Cents,
    /// `[budget] max_spend_cents_per_day`.
    pub max_spend_per_day: Option<Cents>,
    /// `alerts.lapse_warning`, in ms: inside it before expiry, no backoff holds a due
    /// subscription back.
    pub lapse_warning_ms: i64,
    /// This subscription is the cycle's balance probe: the most urgent one waiting after a
    /// 402, tried once per cycle whatever its backoff, so that a top-up is noticed.
    pub probe_balance: bool,
    /// When a renewal (of any subscription) last succeeded: a 402 older than that has been
    /// answered by a top-up, and no longer holds anything back.
    pub balance_ok_since: Option<EpochMs>,
    /// The time of the decision.
    pub now: EpochMs,
}

/// What to do with one subscription, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Decision {
    /// Not due; due in `due_in_ms`.
    Ok {
        /// Until `activeUntil - renew_before`, in ms.
        due_in_ms: i64,
    },
    /// Not acted on, by design.
    Skip(Skip),
    /// Due: call again with the subscription's renewal plans.
    FetchPlans,
    /// Renew with this.
    Renew(RenewalTerms),
    /// Due (or broken) but cannot be renewed automatically: a person should look.
    Blocked(Blocked),
}

/// Why a subscription is skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// `status` is not `active` (`not-renewable`): reported, needs a person.
    NotRenewable {
        /// The provider's status.
        status: String,
    },
    /// The rule is disabled and expiry is not near.
    Disabled,
}

/// Why a due subscription cannot be renewed now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blocked {
    /// `activeUntil` is not a plausible ms expiry (`malformed`): never acted on.
    Malformed {
        /// The value seen.
        active_until: EpochMs,
    },
    /// Disabled, and within `renew_before` of expiry (`expiring-unmanaged`).
    ExpiringUnmanaged {
        /// Until `activeUntil`, in ms (negative once lapsed).
        expires_in_ms: i64,
    },
    /// A renewal left it still due; no automatic catch-up spending until a person acts
    /// (`still-due-after-renewal`).
    OnHold,
    /// `activeUntil` is earlier than what a recorded renewal paid for: the provider's data
    /// went backwards, and renewing again could pay twice for the same time (`malformed`).
    Regressed {
        /// The expiry already paid for.
        paid_until: EpochMs,
    },
    /// An attempt is `sending` or `unknown`: nothing more until reconciliation settles it.
    InFlight {
        /// Its period.
        active_until_before: EpochMs,
        /// Its attempt number.
        attempt: u32,
        /// Its state.
        state: LedgerState,
    },
    /// This period was already renewed; the provider's `activeUntil` has not caught up.
    AlreadyRenewed {
        /// The attempt that succeeded.
        attempt: u32,
        /// When it was recorded.
        at: EpochMs,
    },
    /// The last attempt for this period was refused with a status that a retry will not fix
    /// (400, 401, 403, 404): a person must act.
    Refused {
        /// That attempt.
        attempt: u32,
        /// Its HTTP status.
        status: Option<u16>,
    },
    /// The last attempt was refused with 402, 409 or 429; the next waits until `until`.
    Backoff {
        /// That attempt's status.
        status: Option<u16>,
        /// Earliest next attempt.
        until: EpochMs,
    },
    /// No renewal plan fits the rule (`no-eligible-plan`).
    NoEligiblePlan {
        /// The rule's plan choice.
        plan: PlanChoice,
        /// How many plans the provider offered.
        offered: usize,
    },
    /// The chosen plan costs more than the rule's cap (`over-price-cap`).
    OverPriceCap {
        /// The plan.
        plan_id: PlanId,
        /// Its price × repeat count.
        price: Cents,
        /// The cap.
        cap: Cents,
    },
    /// The renewal would take the last 24 h of spend over the budget (`over-budget`).
    OverBudget {
        /// The plan.
        plan_id: PlanId,
        /// Its price × repeat count.
        price: Cents,
        /// Already spent in the last 24 h.
        spent: Cents,
        /// The budget.
        budget: Cents,
    },
}

impl Decision {
    /// True when a person should look (exit code 3, an alert).
    #[must_use]
    pub fn needs_attention(&self) -> bool {
        matches!(self, Decision::Blocked(_) | Decision::Skip(Skip::NotRenewable { .. }))
    }

    /// A short, stable name for reports and metrics, e.g. `over-price-cap`.
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            Decision::Ok { .. } => "ok",
            Decision::Skip(Skip::NotRenewable { .. }) => "not-renewable",
            Decision::Skip(Skip::Disabled) => "disabled",
            Decision::FetchPlans => "due",
            Decision::Renew(_) => "renew",
            Decision::Blocked(b) => match b {
                Blocked::Malformed { .. } => "malformed",
                Blocked::ExpiringUnmanaged { .. } => "expiring-unmanaged",
                Blocked::OnHold => "on-hold",
                Blocked::Regressed { .. } => "regressed",
                Blocked::InFlight { .. } => "in-flight",
                Blocked::AlreadyRenewed { .. } => "already-renewed",
                Blocked::Refused { .. } => "refused",
                Blocked::Backoff { .. } => "backoff",
                Blocked::NoEligiblePlan { .. } => "no-eligible-plan",
                Blocked::OverPriceCap { .. } => "over-price-cap",
                Blocked::OverBudget { .. } => "over-budget",
            },
        }
    }
}

/// Decides for one subscription, in `daemon.md`'s order: plausibility, status, rule enabled,
/// due, hold, the ledger, then the plan, the price cap and the budget.
pub fn decide(input: &Input<'_>) -> Decision {
    let Input { status, active_until, rule, now, .. } = *input;
    if !(MIN_PLAUSIBLE_MS..MAX_PLAUSIBLE_MS).contains(&active_until.0) {
        return Decision::Blocked(Blocked::Malformed { active_until });
    }
    if status != "active" {
        // A person who disabled its rule has seen to it: no alarm (`not-renewable` advises it).
        return if rule.enabled {
            Decision::Skip(Skip::NotRenewable { status: status.to_owned() })
        } else {
            Decision::Skip(Skip::Disabled)
        };
    }
    let expires_in_ms = active_until.since(now);
    let due = expires_in_ms <= rule.renew_before_ms;
    if !rule.enabled {
        return if due {
            Decision::Blocked(Blocked::ExpiringUnmanaged { expires_in_ms })
        } else {
            Decision::Skip(Skip::Disabled)
        };
    }
    if !due {
        return Decision::Ok { due_in_ms: expires_in_ms - rule.renew_before_ms };
    }
    if input.on_hold {
        return Decision::Blocked(Blocked::OnHold);
    }
    if let Some(paid_until) = input.paid_until.filter(|paid| active_until < *paid) {
        return Decision::Blocked(Blocked::Regressed { paid_until });
    }
    let (attempt, wait_for_sold_out) = match ledger_gate(input) {
        Ok(gate) => gate,
        Err(blocked) => return Decision::Blocked(blocked),
    };
    let Some(offered) = input.renewal_plans else { return Decision::FetchPlans };
    // A strategy does not choose again a plan the provider refused with 409 in this period.
    // (An explicit plan so refused is not among `others`; it comes back through the last arm
    // below, since the gate gives an explicit plan no sold-out wait of its own.)
    let sold_out = sold_out_plans(input);
    let others: Vec<RenewalPlan> = offered.iter().filter(|p| !sold_out.contains(&&p.id)).cloned().collect();
    // No other plan: the sold-out one again, after the 409 backoff.
    let plans = match (choose_plan(&rule.plan, &others, rule.repeat_count), wait_for_sold_out) {
        (Some(_), _) => others,
        (None, Some(until)) if now < until => {
            return Decision::Blocked(Blocked::Backoff { status: Some(409), until });
        }
        (None, _) => offered.to_vec(),
    };
    let Some((plan, price, added_ms)) = choose_plan(&rule.plan, &plans, rule.repeat_count) else {
        return Decision::Blocked(Blocked::NoEligiblePlan { plan: rule.plan.clone(), offered: offered.len() });
    };
    if let Some(cap) = rule.max_price_cents.filter(|cap| price > *cap) {
        return Decision::Blocked(Blocked::OverPriceCap { plan_id: plan.id.clone(), price, cap });
    }
    if let Some(budget) = input.max_spend_per_day {
        let spent = input.spent_last_24h;
        if spent.0.saturating_add(price.0) > budget.0 {
            return Decision::Blocked(Blocked::OverBudget { plan_id: plan.id.clone(), price, spent, budget });
        }
    }
    Decision::Renew(terms(active_until, now, attempt, (plan, price, added_ms), rule.repeat_count, rule))
}

/// The terms for renewing the period `active_until` with `plan` at `price`, adding
/// `added_ms`: the new expiry is expected at max(`activeUntil`, now) + `added_ms`.
fn terms(
    active_until: EpochMs,
    now: EpochMs,
    attempt: u32,
    (plan, price, added_ms): (&RenewalPlan, Cents, i64),
    repeat_count: u32,
    rule: &Rule,
) -> RenewalTerms {
    RenewalTerms {
        active_until_before: active_until,
        attempt,
        plan_id: plan.id.clone(),
        repeat_count,
        price,
        coupon_code: rule.coupon_code.clone(),
        expected_end_at: EpochMs(active_until.0.max(now.0).saturating_add(added_ms)),
    }
}

/// What the ledger allows: the next attempt number, or why not.
/// The gate every renewal, automatic or manual, passes: nothing while an attempt for the
/// subscription may be in flight, nothing twice for a period already renewed; else the next
/// attempt number for `period`.
///
/// # Errors
/// [`Blocked::InFlight`] or [`Blocked::AlreadyRenewed`].
pub fn next_attempt(ledger: &[LedgerEntry], period: EpochMs) -> Result<u32, Blocked> {
    // Money possibly in flight for any period blocks everything.
    if let Some(open) = ledger.iter().find(|e| e.state.is_open()) {
        return Err(Blocked::InFlight {
            active_until_before: open.renewal.active_until_before,
            attempt: open.renewal.attempt,
            state: open.state,
        });
    }
    let period_entries = ledger.iter().filter(|e| e.renewal.active_until_before == period);
    if let Some(done) = period_entries.clone().find(|e| e.state == LedgerState::Succeeded) {
        return Err(Blocked::AlreadyRenewed { attempt: done.renewal.attempt, at: done.updated_at });
    }
    // An ambiguous attempt (activeUntil moved, not as expected) is a person's to settle.
    if let Some(a) = period_entries.clone().find(|e| e.state == LedgerState::Ambiguous) {
        return Err(Blocked::InFlight { active_until_before: period, attempt: a.renewal.attempt, state: a.state });
    }
    Ok(period_entries.map(|e| e.renewal.attempt).max().unwrap_or(0) + 1)
}

/// The plans refused with 409 in the current period.
fn sold_out_plans<'a>(input: &Input<'a>) -> Vec<&'a PlanId> {
    refused_with_409(input.ledger, input.active_until)
}

/// The plans `ledger` says were refused with 409 (sold out, inactive) in the period `period`,
/// each once.
#[must_use]
pub fn refused_with_409(ledger: &[LedgerEntry], period: EpochMs) -> Vec<&PlanId> {
    let period = ledger.iter().filter(|e| e.renewal.active_until_before == period);
    let mut ids: Vec<&PlanId> = period
        .filter(|e| e.state == LedgerState::Refused && e.http_status == Some(409))
        .map(|e| &e.renewal.plan_id)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// The automatic gate: [`next_attempt`], then no retry after a refusal a retry cannot fix,
/// and the wait after a refusal that a retry may fix (`daemon.md`, *Refusals and liveness*):
/// - 402: 10 min doubling per refusal, at most 2 h; but the cycle's balance probe (the most
///   urgent one waiting after a 402) is tried every cycle, and once any renewal succeeded
///   after a 402 (a top-up), that 402 holds nothing back;
/// - 409: none for an explicit plan not yet refused in the period (a person chose another
///   plan, as the alert advises); none while a strategy has another eligible plan to try (at most
///   [`MAX_PLANS_AFTER_409`]): the gate passes with the backoff the sold-out plan itself
///   waits, which [`decide`] applies when no other plan is left; else 10 min doubling per
///   refusal, at most 2 h;
/// - 429: until the time `Retry-After` gave, else as 409;
/// - and no wait at all inside the last `lapse_warning` before expiry, nor one that would
///   end inside it: there every cycle tries.
fn ledger_gate(input: &Input<'_>) -> Result<(u32, Option<EpochMs>), Blocked> {
    let next = next_attempt(input.ledger, input.active_until)?;
    let period: Vec<&LedgerEntry> =
        input.ledger.iter().filter(|e| e.renewal.active_until_before == input.active_until).collect();
    let Some(last) = period.iter().max_by_key(|e| (e.renewal.attempt, e.created_at)) else { return Ok((next, None)) };
    if last.state != LedgerState::Refused {
        return Ok((next, None)); // failed: a new attempt is allowed
    }
    let backoff = || {
        let refusals = period.iter().filter(|e| e.state == LedgerState::Refused).count() as u32;
        let wait =
            RETRY_BACKOFF_BASE_MS.saturating_mul(1 << refusals.saturating_sub(1).min(20)).min(RETRY_BACKOFF_CAP_MS);
        // Never wait into the last lapse_warning before expiry.
        let until = EpochMs(last.updated_at.0.saturating_add(wait));
        until.min(EpochMs(input.active_until.0.saturating_sub(input.lapse_warning_ms)))
    };
    let until = match last.http_status {
        Some(402) if input.probe_balance || input.balance_ok_since.is_some_and(|t| t > last.updated_at) => {
            return Ok((next, None));
        }
        Some(402) => backoff(),
        Some(409)
            if !matches!(input.rule.plan, PlanChoice::Plan(_)) && sold_out_plans(input).len() < MAX_PLANS_AFTER_409 =>
        {
            return Ok((next, Some(backoff())));
        }
        // A person chose another plan after the 409 (what the alert advises): try it now.
        Some(409) if matches!(&input.rule.plan, PlanChoice::Plan(p) if !sold_out_plans(input).contains(&p)) => {
            return Ok((next, None));
        }
        Some(429) if last.retry_at.is_some() => last
            .retry_at
            .unwrap_or(last.updated_at)
            .min(EpochMs(input.active_until.0.saturating_sub(input.lapse_warning_ms))),
        Some(409 | 429) => backoff(),
        _ => return Err(Blocked::Refused { attempt: last.renewal.attempt, status: last.http_status }),
    };
    if input.now < until {
        return Err(Blocked::Backoff { status: last.http_status, until });
    }
    Ok((next, None))
}
