//! Renewing what the policy decided: `max_concurrency` at a time, started most urgent first,
//! none started after a 402 in this cycle, none after a shutdown request. A refusal a retry
//! can fix at once is retried within the cycle, as a new attempt in the ledger, decided by the
//! policy again: a 409 on a plan a strategy chose moves to the next eligible plan (at most
//! [`MAX_PLANS_AFTER_409`] plans), and a 429 whose `Retry-After` is short
//! ([`SHORT_RETRY_AFTER_MS`] or less) is waited out.

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
use crate::values::{Cents, EpochMs};

/// A 429 whose `Retry-After` is at most this (ms) is waited out within the cycle; a longer one
/// becomes the attempt's earliest next try.
pub const SHORT_RETRY_AFTER_MS: i64 = 10_000;

impl Cycle<'_> {
    /// Sends the renewals; returns true when a shutdown request left some unstarted.
    pub(super) async fn renew_all(&self, items: &mut [Item], known: &Known, plans: &Plans) -> bool {
        let Some(store) = self.store else { return false };
        let renewer = Renewer {
            client: self.client,
            store,
            origin: Origin::Daemon,
            repeat_interval_ms: self.config.alerts.repeat_interval_ms,
            clock: self.clock,
        };
        // What this cycle reserved already: a plan tried after a refusal must fit beside it.
        let reserved: i64 = items
            .iter()
            .filter_map(|i| if let Decision::Renew(r) = &i.decision { Some(r.price.0) } else { None })
            .sum();
        let spent = Cents(known.spent.0.saturating_add(reserved));
        let jobs: Vec<(usize, Item)> = items
            .iter()
            .enumerate()
            .filter(|(_, i)| matches!(i.decision, Decision::Renew(_)))
            .map(|(n, i)| (n, i.clone()))
            .collect();
        // Started most urgent first (`buffered` keeps the order); once the balance runs short
        // (a 402), the rest are not started: the next cycle tries again, most urgent first.
        let balance_short = AtomicBool::new(false);
        let balance_short = &balance_short;
        let renewer = &renewer;
        let results: Vec<(usize, Option<Item>)> = stream::iter(jobs)
            .map(|(n, item)| async move {
                if self.cancel.is_cancelled() {
                    return (n, None);
                }
                if balance_short.load(Ordering::SeqCst) {
                    let reason = "the balance ran short in this cycle; tried again next cycle".into();
                    return (n, Some(Item { outcome: Some(RenewOutcome::NotAttempted { reason }), ..item }));
                }
                let item = self.renew_item(renewer, item, known, plans, spent).await;
                if matches!(item.outcome, Some(RenewOutcome::Refused { status: 402, .. })) {
                    balance_short.store(true, Ordering::SeqCst);
                }
                (n, Some(item))
            })
            .buffered(self.max_concurrency.max(1))
            .collect()
            .await;
        let mut interrupted = false;
        for (n, item) in results {
            match item {
                Some(item) => items[n] = item,
                None => {
                    interrupted = true;
                    let reason = "not started: a shutdown was requested; the next cycle decides again".into();
                    items[n].outcome = Some(RenewOutcome::NotAttempted { reason });
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
        spent: Cents,
    ) -> Item {
        let id = item.subscription.subscription_id.clone();
        let had_alerted = known.alerted.contains(id.as_str());
        let mut ledger: Vec<LedgerEntry> = known.ledger.get(&id).cloned().unwrap_or_default();
        let offered = plans.get(&id).and_then(|p| p.as_ref().ok()).map(Vec::as_slice);
        for _ in 0..=MAX_PLANS_AFTER_409 {
            let Decision::Renew(terms) = item.decision.clone() else { break };
            // The policy's next step if this attempt is refused with 409: another plan now?
            let after_409 = self.redecide(
                &item,
                &with_refusal(&ledger, &id, &terms, 409, None, self.clock.now()),
                offered,
                known,
                spent,
            );
            // Only another plan is tried at once; the same plan waits for a later cycle.
            let retried_409 = matches!(&after_409, Decision::Renew(t) if t.plan_id != terms.plan_id);
            let raise = |o: &RenewOutcome| match o {
                // Handled within the cycle: no alert for the refusal itself.
                RenewOutcome::Refused { status: 409, .. } if retried_409 => Vec::new(),
                RenewOutcome::Refused { status: 429, retry_after_ms: Some(ms), .. } if *ms <= SHORT_RETRY_AFTER_MS => {
                    Vec::new()
                }
                o => alerts::for_outcome(&item, o, had_alerted),
            };
            let (outcome, unrecorded) = renewer.renew_recorded(&id, &terms, item.rule.renew_before_ms, raise).await;
            if let Some(u) = unrecorded {
                self.not_written(u.what, &u.alerts);
            }
            let (status, retry_after_ms) = match &outcome {
                RenewOutcome::Refused { status: 409, .. } if retried_409 => (409, None),
                RenewOutcome::Refused { status: 429, retry_after_ms: Some(ms), .. } if *ms <= SHORT_RETRY_AFTER_MS => {
                    (429, Some(*ms))
                }
                _ => {
                    item.outcome = Some(outcome);
                    break;
                }
            };
            if let Some(ms) = retry_after_ms {
                tracing::info!(subscription_id = %id, retry_after_ms = ms, "rate limited; waiting out Retry-After within the cycle");
                tokio::select! {
                    () = tokio::time::sleep(std::time::Duration::from_millis(ms.unsigned_abs())) => {}
                    () = self.cancel.cancelled() => {
                        item.outcome = Some(outcome);
                        break;
                    }
                }
            }
            let now = self.clock.now();
            // Retry-After has been waited out: the next attempt may go now.
            let retry_at = retry_after_ms.map(|_| now);
            ledger = with_refusal(&ledger, &id, &terms, status, retry_at, now);
            item.outcome = Some(outcome);
            match self.redecide(&item, &ledger, offered, known, spent) {
                Decision::Renew(next) if status == 409 && next.plan_id == terms.plan_id => break,
                Decision::Renew(next) => item.decision = Decision::Renew(next),
                other => {
                    item.decision = other;
                    break;
                }
            }
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
    id: &crate::values::SubscriptionId,
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
