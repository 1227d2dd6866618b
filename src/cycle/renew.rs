//! Renewing what the policy decided: `max_concurrency` at a time, started most urgent first,
//! none started after a 402 in this cycle, none after a shutdown request. A refusal a retry
//! can fix at once is retried within the cycle, as a new attempt in the ledger, decided by the
//! policy again: a 409 on a plan a strategy chose moves to the next eligible plan (at most
//! [`MAX_PLANS_AFTER_409`] plans), and a 429 whose `Retry-After` is short
//! ([`SHORT_RETRY_AFTER_MS`] or less) is waited out.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::StreamExt;
use futures_util::stream;

use super::Cycle;
use super::decide::{Ask, Plans};
use super::known::Known;
use crate::alerts;
use crate::attempt::{LedgerEntry, LedgerState, Origin, RenewOutcome, RenewalTerms};
use crate::policy::{Decision, MAX_PLANS_AFTER_409};
use crate::renewer::Renewer;
use crate::report::Item;
use crate::values::{Cents, EpochMs, SubscriptionId};

/// A 429 whose `Retry-After` is at most this (ms) is waited out within the cycle; a longer one
/// becomes the attempt's earliest next try.
pub const SHORT_RETRY_AFTER_MS: i64 = 10_000;

impl Cycle<'_> {
    /// Sends the renewals; returns true when a shutdown request left some unstarted.
    /// `probe` (the cycle's balance probe, if any) is started last, after every other
    /// renewal: a subscription the short balance refused must not starve cheaper ones.
    pub(super) async fn renew_all(
        &self,
        items: &mut [Item],
        known: &Known,
        plans: &Plans,
        probe: Option<&SubscriptionId>,
    ) -> bool {
        let Some(store) = self.store else { return false };
        let renewer = Renewer {
            client: self.client,
            store,
            origin: Origin::Daemon,
            repeat_interval_ms: self.config.alerts.repeat_interval_ms,
            clock: self.clock,
        };
        // The rolling 24 h spend with every price this cycle plans: a refusal gives its price
        // back, a plan tried after it takes its own, one running total for all subscriptions.
        let reserved: i64 = items
            .iter()
            .filter_map(|i| if let Decision::Renew(r) = &i.decision { Some(r.price.0) } else { None })
            .sum();
        let committed = Mutex::new(Cents(known.spent.0.saturating_add(reserved)));
        let mut jobs: Vec<(usize, Item)> = items
            .iter()
            .enumerate()
            .filter(|(_, i)| matches!(i.decision, Decision::Renew(_)))
            .map(|(n, i)| (n, i.clone()))
            .collect();
        // A stable sort: the probe goes last, the rest keep their urgency order.
        jobs.sort_by_key(|(_, i)| probe == Some(&i.subscription.subscription_id));
        // Started most urgent first (the stream is pulled in order); once the balance runs
        // short (a 402), the rest are not started: the next cycle tries again. They finish in
        // any order (`buffer_unordered`): a slow one does not hold the finished ones' slots,
        // so `max_concurrency` stay in flight.
        let balance_short = AtomicBool::new(false);
        let (balance_short, renewer, committed) = (&balance_short, &renewer, &committed);
        let results: Vec<(usize, Option<Item>)> = stream::iter(jobs)
            .map(|(n, item)| async move {
                if self.cancel.is_cancelled() {
                    return (n, None);
                }
                if balance_short.load(Ordering::SeqCst) {
                    let outcome = RenewOutcome::NotAttempted {
                        reason: "the balance ran short in this cycle; tried again next cycle".into(),
                        balance_short: true,
                    };
                    let item = Item { outcome: Some(outcome), ..item };
                    let had_alerted = known.alerted.contains(item.subscription.subscription_id.as_str());
                    // Not sent, so not in the ledger: its alert (with its price) is raised here.
                    let raised = alerts::for_outcome(&item, item.outcome.as_ref().expect("set above"), had_alerted);
                    self.raise(&raised, self.clock.now()).await;
                    return (n, Some(item));
                }
                let item = self.renew_item(renewer, item, known, plans, committed).await;
                if matches!(item.outcome, Some(RenewOutcome::Refused { status: 402, .. })) {
                    balance_short.store(true, Ordering::SeqCst);
                }
                (n, Some(item))
            })
            .buffer_unordered(self.max_concurrency.max(1))
            .collect()
            .await;
        let mut interrupted = false;
        for (n, item) in results {
            match item {
                Some(item) => items[n] = item,
                None => {
                    interrupted = true;
                    let reason = "not started: a shutdown was requested; the next cycle decides again".into();
                    items[n].outcome = Some(RenewOutcome::NotAttempted { reason, balance_short: false });
                }
            }
        }
        interrupted
    }

    /// One subscription: renew as decided; after a refusal that a retry can fix at once,
    /// ask the policy again with that refusal in the ledger, and renew as it says.
    async fn renew_item(
        &self,
        renewer: &Renewer<'_>,
        mut item: Item,
        known: &Known,
        plans: &Plans,
        committed: &Mutex<Cents>,
    ) -> Item {
        let id = item.subscription.subscription_id.clone();
        let had_alerted = known.alerted.contains(id.as_str());
        let mut ledger: Vec<LedgerEntry> = known.ledger.get(&id).cloned().unwrap_or_default();
        let offered = plans.get(&id).and_then(|p| p.as_ref().ok()).map(Vec::as_slice);
        for round in 0..=MAX_PLANS_AFTER_409 {
            let Decision::Renew(terms) = item.decision.clone() else { break };
            let last_round = round == MAX_PLANS_AFTER_409;
            // The policy's next step if this attempt is refused with 409: another plan now?
            let hypothetical = with_refusal(&ledger, &id, &terms, 409, None, self.clock.now());
            let spent = *committed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let after_409 = self.redecide(&item, &hypothetical, offered, known, Cents(spent.0 - terms.price.0));
            // Only a plan not yet refused with 409 is tried at once; the others wait.
            let retried_409 = !last_round && matches!(&after_409, Decision::Renew(t) if !refused_409(&hypothetical, t));
            let retries = |o: &RenewOutcome| match o {
                RenewOutcome::Refused { status: 409, .. } => retried_409,
                RenewOutcome::Refused { status: 429, retry_after_ms: Some(ms), .. } => {
                    !last_round && *ms <= SHORT_RETRY_AFTER_MS
                }
                _ => false,
            };
            // A refusal about to be retried within the cycle raises no alert of its own.
            let settle_at = EpochMs(self.clock.now().0.saturating_add(self.config.reconcile_after_ms));
            let raise = |o: &RenewOutcome| {
                if retries(o) {
                    return Vec::new();
                }
                let mut raised = alerts::for_outcome(&item, o, had_alerted);
                // An unknown outcome: say when it will be settled, and how.
                if matches!(o, RenewOutcome::Unknown { .. } | RenewOutcome::ImplausibleEnd { .. }) {
                    for a in &mut raised {
                        a.next = format!(
                            "no new attempt; the first read after {settle_at} (ledger.reconcile_after) settles it: renewed if activeUntil moved as the attempt expected, tried again if it did not move"
                        );
                    }
                }
                raised
            };
            let (outcome, unrecorded) = renewer.renew_recorded(&id, &terms, item.rule.renew_before_ms, raise).await;
            let recorded = unrecorded.is_none();
            if let Some(u) = unrecorded {
                self.not_written(u.what, &u.alerts);
            }
            // Nothing more without the refusal in the database: its row may still say
            // `sending`, and the next cycle must reconcile it first.
            if !recorded || !retries(&outcome) {
                if !recorded && retries(&outcome) {
                    self.raise(&alerts::for_outcome(&item, &outcome, had_alerted), self.clock.now()).await;
                }
                item.outcome = Some(outcome);
                break;
            }
            let (status, retry_after_ms) = match &outcome {
                RenewOutcome::Refused { status, retry_after_ms, .. } => (*status, *retry_after_ms),
                _ => unreachable!("only refusals are retried"),
            };
            // Refused: nothing was charged, the price is free again (taken off the running
            // total as it is now: other subscriptions may have moved it since).
            {
                let mut total = committed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                *total = Cents(total.0.saturating_sub(terms.price.0));
            }
            if let Some(ms) = retry_after_ms {
                tracing::info!(subscription_id = %id, retry_after_ms = ms, "rate limited; waiting out Retry-After within the cycle");
                tokio::select! {
                    () = tokio::time::sleep(std::time::Duration::from_millis(ms.unsigned_abs())) => {}
                    () = self.cancel.cancelled() => {
                        // Not retried after all: the refusal's alert is due.
                        self.raise(&alerts::for_outcome(&item, &outcome, had_alerted), self.clock.now()).await;
                        item.outcome = Some(outcome);
                        break;
                    }
                }
            }
            let now = self.clock.now();
            // Retry-After has been waited out: the next attempt may go now.
            let retry_at = retry_after_ms.map(|_| now);
            ledger = with_refusal(&ledger, &id, &terms, status, retry_at, now);
            // Decided and reserved under one lock: concurrent retries cannot both fit into
            // the same room in the budget.
            let retry = {
                let mut total = committed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                match self.redecide(&item, &ledger, offered, known, *total) {
                    // A plan refused with 409 in this period waits for a later cycle.
                    Decision::Renew(next) if status == 409 && refused_409(&ledger, &next) => None,
                    Decision::Renew(next) => {
                        *total = Cents(total.0.saturating_add(next.price.0));
                        Some(next)
                    }
                    other => {
                        item.decision = other;
                        None
                    }
                }
            };
            let Some(next) = retry else {
                // Not retried after all: the refusal's alert is due.
                self.raise(&alerts::for_outcome(&item, &outcome, had_alerted), now).await;
                item.outcome = Some(outcome);
                break;
            };
            item.outcome = Some(outcome);
            item.decision = Decision::Renew(next);
            tracing::info!(subscription_id = %id, status, "refused; trying again within the cycle as the policy decides");
        }
        item
    }

    fn redecide(
        &self,
        item: &Item,
        ledger: &[LedgerEntry],
        plans: Option<&[crate::api::RenewalPlan]>,
        known: &Known,
        spent: Cents,
    ) -> Decision {
        let s = &item.subscription;
        let ask = Ask {
            status: &s.status,
            active_until: s.active_until,
            id: &s.subscription_id,
            rule: &item.rule,
            plans,
            ledger,
            spent,
            // Re-decided after a 409 or 429: a 402 is not in play here.
            probe_balance: false,
            now: self.clock.now(),
        };
        self.decision(known, &ask)
    }
}

/// `ledger` with one more entry: `terms` refused with `status` just now.
fn with_refusal(
    ledger: &[LedgerEntry],
    id: &SubscriptionId,
    terms: &RenewalTerms,
    status: u16,
    retry_at: Option<EpochMs>,
    now: EpochMs,
) -> Vec<LedgerEntry> {
    let mut out = ledger.to_vec();
    out.push(LedgerEntry {
        id: 0,
        subscription_id: id.clone(),
        renewal: terms.clone(),
        origin: Origin::Daemon,
        state: LedgerState::Refused,
        actual_end_at: None,
        http_status: Some(status),
        error: None,
        retry_at,
        created_at: now,
        updated_at: now,
    });
    out
}

/// Was `next`'s plan refused with 409 in `next`'s period already?
fn refused_409(ledger: &[LedgerEntry], next: &RenewalTerms) -> bool {
    crate::policy::refused_with_409(ledger, next.active_until_before).contains(&&next.plan_id)
}
