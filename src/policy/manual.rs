//! A person's `proxy-renewd renew ID`, decided like the daemon's renewals but without the
//! daemon's limits (due date, price cap, budget): plausibility, the plan asked for or the
//! rule's, then the same ledger gate ([`super::next_attempt`]). Pure.

use super::plan::choose_plan;
use super::{Blocked, MAX_PLAUSIBLE_MS, MIN_PLAUSIBLE_MS, next_attempt, terms};
use crate::api::RenewalPlan;
use crate::attempt::{LedgerEntry, RenewalTerms};
use crate::rule::{PlanChoice, Rule};
use crate::values::{EpochMs, PlanId};

/// What a person asked for with `proxy-renewd renew ID`, and what is known about the
/// subscription. Due dates, price caps and the budget are the daemon's limits, not a person's:
/// they are not inputs.
#[derive(Debug, Clone, Copy)]
pub struct ManualInput<'a> {
    /// `activeUntil` from `op=subscriptions`: the period to renew.
    pub active_until: EpochMs,
    /// The effective rule (its row, or `[defaults]`): plan choice, repeat count, coupon.
    pub rule: &'a Rule,
    /// `--plan ID`, instead of the rule's choice.
    pub plan: Option<&'a PlanId>,
    /// `--repeat-count N`, instead of the rule's.
    pub repeat_count: Option<u32>,
    /// `op=renewal-plans` for this subscription, once fetched.
    pub renewal_plans: Option<&'a [RenewalPlan]>,
    /// This subscription's ledger entries, any order.
    pub ledger: &'a [LedgerEntry],
    /// The time of the decision.
    pub now: EpochMs,
}

/// What the policy answers a person's `renew`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum ManualDecision {
    /// Plausible so far: call again with the subscription's renewal plans.
    FetchPlans,
    /// Renew with these terms (after the person confirms).
    Renew(RenewalTerms),
    /// Not now, and why.
    Refused(ManualRefusal),
}

/// Why a person's `renew` is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManualRefusal {
    /// `activeUntil` is not a plausible ms expiry: the new expiry cannot be predicted.
    Malformed {
        /// The value seen.
        active_until: EpochMs,
    },
    /// No renewal plan matches the choice.
    NoPlan {
        /// The plan asked for, or the rule's choice.
        choice: PlanChoice,
        /// The plans on offer.
        offered: Vec<PlanId>,
    },
    /// The ledger's gate ([`next_attempt`]): an attempt may be in flight, or the period is
    /// already renewed.
    Ledger(Blocked),
}

/// Decides a person's `renew` for one subscription: plausibility, then (with the plans) the
/// plan asked for or the rule's, then the same ledger gate as the daemon ([`next_attempt`]).
pub fn decide_manual(input: &ManualInput<'_>) -> ManualDecision {
    let ManualInput { active_until, rule, now, .. } = *input;
    if !(MIN_PLAUSIBLE_MS..MAX_PLAUSIBLE_MS).contains(&active_until.0) {
        return ManualDecision::Refused(ManualRefusal::Malformed { active_until });
    }
    let Some(plans) = input.renewal_plans else { return ManualDecision::FetchPlans };
    let repeat = input.repeat_count.unwrap_or(rule.repeat_count);
    let choice = input.plan.map_or_else(|| rule.plan.clone(), |id| PlanChoice::Plan(id.clone()));
    let Some((plan, price, added_ms)) = choose_plan(&choice, plans, repeat) else {
        let offered = plans.iter().map(|p| p.id.clone()).collect();
        return ManualDecision::Refused(ManualRefusal::NoPlan { choice, offered });
    };
    let attempt = match next_attempt(input.ledger, active_until) {
        Ok(n) => n,
        Err(blocked) => return ManualDecision::Refused(ManualRefusal::Ledger(blocked)),
    };
    ManualDecision::Renew(terms(active_until, now, attempt, (plan, price, added_ms), repeat, rule))
}
