//! Deciding every subscription of a read: a first pass of the policy without plans (which
//! are due?), `renewal-plans` for the due ones (`max_concurrency` at a time), then a second
//! pass, most urgent first, each renewal reserving its price against the daily budget.

use std::collections::HashMap;

use futures_util::StreamExt;
use futures_util::stream;

use super::Cycle;
use super::known::Known;
use crate::api::{RenewalPlan, Subscription};
use crate::attempt::LedgerEntry;
use crate::policy::{self, Blocked, Decision, Input};
use crate::report::{Item, PlansError, RuleSource};
use crate::rule::Rule;
use crate::store::SeenSubscription;
use crate::values::{Cents, EpochMs, SubscriptionId};

/// `renewal-plans` as read in this cycle, per due subscription.
pub(super) type Plans = HashMap<SubscriptionId, Result<Vec<RenewalPlan>, PlansError>>;

/// What the policy is asked about one subscription, beside what [`Known`] holds.
pub(super) struct Ask<'a> {
    pub(super) status: &'a str,
    pub(super) active_until: EpochMs,
    pub(super) id: &'a SubscriptionId,
    pub(super) rule: &'a Rule,
    pub(super) plans: Option<&'a [RenewalPlan]>,
    pub(super) ledger: &'a [LedgerEntry],
    pub(super) spent: Cents,
    pub(super) probe_balance: bool,
    pub(super) now: EpochMs,
}

impl Cycle<'_> {
    /// The effective rule of `id`, and where it came from.
    pub(super) fn rule_of(&self, known: &Known, id: &SubscriptionId) -> (RuleSource, Rule) {
        match known.rules.get(id) {
            Some(r) => (RuleSource::Row, r.clone()),
            None => (RuleSource::Defaults, self.config.defaults.clone()),
        }
    }

    /// The policy's decision for one subscription.
    pub(super) fn decision(&self, known: &Known, ask: &Ask<'_>) -> Decision {
        policy::decide(&Input {
            status: ask.status,
            active_until: ask.active_until,
            rule: ask.rule,
            renewal_plans: ask.plans,
            ledger: ask.ledger,
            on_hold: known.held.contains(ask.id),
            paid_until: known.paid_until.get(ask.id).copied(),
            spent_last_24h: ask.spent,
            max_spend_per_day: self.config.max_spend_per_day,
            lapse_warning_ms: self.config.alerts.lapse_warning_ms,
            probe_balance: ask.probe_balance,
            balance_ok_since: known.balance_ok_since,
            now: ask.now,
        })
    }

    /// Decides every subscription, fetching renewal plans for the due ones; also says which
    /// one is the balance probe, if any.
    pub(super) async fn decide_all(
        &self,
        subs: &[Subscription],
        seen: Vec<SeenSubscription>,
        known: &Known,
        now: EpochMs,
    ) -> (Vec<Item>, Plans, Option<SubscriptionId>) {
        // Most urgent first, each with its rule (looked up once) and what is kept of it.
        let mut order: Vec<(&Subscription, SeenSubscription, RuleSource, Rule)> = subs
            .iter()
            .zip(seen)
            .map(|(s, seen)| {
                let (source, rule) = self.rule_of(known, &s.subscription_id);
                (s, seen, source, rule)
            })
            .collect();
        order.sort_unstable_by(|(a, ..), (b, ..)| {
            a.active_until.cmp(&b.active_until).then_with(|| a.subscription_id.cmp(&b.subscription_id))
        });
        let no_entries: Vec<LedgerEntry> = Vec::new();
        let decide = |s: &Subscription, rule: &Rule, plans: Option<&[RenewalPlan]>, spent: Cents, probe_balance| {
            let id = &s.subscription_id;
            let ledger = known.ledger.get(id).unwrap_or(&no_entries);
            let ask = Ask {
                status: &s.status,
                active_until: s.active_until,
                id,
                rule,
                plans,
                ledger,
                spent,
                probe_balance,
                now,
            };
            self.decision(known, &ask)
        };
        // First pass without plans: which are due? The balance probe (the most urgent one
        // waiting after a 402) is tried anyway, so it is due too.
        let first: Vec<Decision> =
            order.iter().map(|(s, _, _, rule)| decide(s, rule, None, known.spent, false)).collect();
        let probe: Option<&SubscriptionId> = order
            .iter()
            .zip(&first)
            .find(|(_, d)| matches!(d, Decision::Blocked(Blocked::Backoff { status: Some(402), .. })))
            .map(|((s, ..), _)| &s.subscription_id);
        let is_probe = |s: &Subscription| probe == Some(&s.subscription_id);
        let due: Vec<SubscriptionId> = order
            .iter()
            .zip(&first)
            .filter(|((s, _, _, rule), d)| {
                **d == Decision::FetchPlans
                    || (is_probe(s) && decide(s, rule, None, known.spent, true) == Decision::FetchPlans)
            })
            .map(|((s, ..), _)| s.subscription_id.clone())
            .collect();
        let plans = self.fetch_plans(&due).await;
        // Second pass, most urgent first, each renewal reserving its price against the budget.
        let mut spent = known.spent;
        let items = order
            .into_iter()
            .map(|(s, seen, rule_source, rule)| {
                let (decision, plans_error) = match plans.get(&s.subscription_id) {
                    Some(Ok(p)) => (decide(s, &rule, Some(p), spent, is_probe(s)), None),
                    Some(Err(e)) => (Decision::FetchPlans, Some(e.clone())),
                    None => (decide(s, &rule, None, spent, is_probe(s)), None),
                };
                if let Decision::Renew(r) = &decision {
                    spent = Cents(spent.0.saturating_add(r.price.0));
                }
                let plans_offered = plans.get(&s.subscription_id).and_then(|p| p.as_ref().ok()).cloned();
                Item { subscription: seen, rule_source, rule, decision, plans_error, plans_offered, outcome: None }
            })
            .collect();
        (items, plans, probe.cloned())
    }

    /// `renewal-plans` for each of `due`, `max_concurrency` at a time; a failure is logged.
    pub(super) async fn fetch_plans(&self, due: &[SubscriptionId]) -> Plans {
        stream::iter(due.iter().cloned())
            .map(|id| async move {
                let got = self.client.renewal_plans(&id).await.map_err(|e| {
                    tracing::warn!(subscription_id = %id, error = %e, "cannot read renewal plans");
                    PlansError { message: e.to_string(), status: e.refusal().map(|r| r.status) }
                });
                (id, got)
            })
            .buffer_unordered(self.max_concurrency.max(1))
            .collect()
            .await
    }
}
