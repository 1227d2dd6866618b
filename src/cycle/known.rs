//! What the database knows that the policy needs for one read: rules, holds, the ledger
//! entries of the periods read and every open one, reconciled against the read (and, for a
//! real cycle, settled and written back), the last 24 h of spend, and who has alerted.

use std::collections::{HashMap, HashSet};

use super::Cycle;
use crate::api::Subscription;
use crate::attempt::{LedgerEntry, LedgerState};
use crate::reconcile::{self, Reconciled};
use crate::rule::Rule;
use crate::store::{Hold, StoreError};
use crate::values::{Cents, EpochMs, SubscriptionId};

const DAY_MS: i64 = 86_400_000;

/// What the database knows that the policy needs, for this read.
pub(super) struct Known {
    pub(super) alerted: HashSet<String>,
    pub(super) paid_until: HashMap<SubscriptionId, EpochMs>,
    pub(super) rules: HashMap<SubscriptionId, Rule>,
    pub(super) held: HashSet<SubscriptionId>,
    pub(super) ledger: HashMap<SubscriptionId, Vec<LedgerEntry>>,
    pub(super) spent: Cents,
    pub(super) reconciled: Vec<Reconciled>,
    pub(super) unaccounted: Vec<LedgerEntry>,
    /// When a renewal last succeeded (any subscription): a 402 older than that is answered.
    pub(super) balance_ok_since: Option<EpochMs>,
}

impl Cycle<'_> {
    /// Rules, holds, the relevant ledger (reconciled), and the last 24 h of spend.
    pub(super) async fn load(&self, subs: &[Subscription], read_at: EpochMs) -> Result<Known, StoreError> {
        let Some(store) = self.store else {
            return Ok(Known {
                alerted: HashSet::new(),
                paid_until: HashMap::new(),
                rules: HashMap::new(),
                held: HashSet::new(),
                ledger: HashMap::new(),
                spent: Cents(0),
                reconciled: vec![],
                unaccounted: vec![],
                balance_ok_since: None,
            });
        };
        let rules: HashMap<SubscriptionId, Rule> =
            store.rules().await?.into_iter().map(|r| (r.subscription_id, r.rule)).collect();
        let periods: Vec<(SubscriptionId, EpochMs)> =
            subs.iter().map(|s| (s.subscription_id.clone(), s.active_until)).collect();
        let current: HashMap<&SubscriptionId, EpochMs> = periods.iter().map(|(id, t)| (id, *t)).collect();
        // A hold covers the expiry it was written for; once activeUntil moved past it (a
        // person renewed it elsewhere), it no longer applies.
        let mut held: HashSet<SubscriptionId> = store
            .holds()
            .await?
            .into_iter()
            .filter(|h| current.get(&h.subscription_id).is_none_or(|t| *t <= h.active_until))
            .map(|h| h.subscription_id)
            .collect();
        let mut entries = store.ledger_for_periods(&periods).await?;
        let known_ids: HashSet<i64> = entries.iter().map(|e| e.id).collect();
        entries.extend(store.open_entries().await?.into_iter().filter(|e| !known_ids.contains(&e.id)));
        let active_until: HashMap<SubscriptionId, EpochMs> = periods.iter().cloned().collect();
        let reconciled = reconcile::reconcile(&entries, &active_until, read_at, self.config.reconcile_after_ms);
        let now = self.clock.now();
        for r in &reconciled {
            tracing::info!(subscription_id = %r.subscription_id, ledger_id = r.ledger_id, state = %r.settlement.state, "reconciled");
            let rule = rules.get(&r.subscription_id).unwrap_or(&self.config.defaults);
            let still_due = r.settlement.actual_end_at.is_some_and(|t| t.since(now) <= rule.renew_before_ms);
            let hold_reason = if r.settlement.state == LedgerState::Ambiguous {
                Some("activeUntil moved by an amount the attempt did not expect: a person decides what was paid")
            } else if still_due {
                Some("reconciled renewal left it still within renew_before: no automatic catch-up")
            } else {
                None
            };
            if hold_reason.is_some() {
                held.insert(r.subscription_id.clone());
            }
            if !self.dry_run {
                store.settle(r.ledger_id, &r.settlement, now).await?;
                if let Some(reason) = hold_reason {
                    let hold = Hold {
                        subscription_id: r.subscription_id.clone(),
                        since: now,
                        active_until: r.settlement.actual_end_at.unwrap_or(now),
                        ledger_id: Some(r.ledger_id),
                        reason: reason.into(),
                    };
                    store.put_hold(&hold).await?;
                }
            }
        }
        reconcile::apply(&mut entries, &reconciled, now);
        let unaccounted: Vec<LedgerEntry> = entries
            .iter()
            .filter(|e| e.state.is_open() && !active_until.contains_key(&e.subscription_id))
            .cloned()
            .collect();
        let mut ledger: HashMap<SubscriptionId, Vec<LedgerEntry>> = HashMap::new();
        for e in entries {
            ledger.entry(e.subscription_id.clone()).or_default().push(e);
        }
        let spent = store.spend_since(EpochMs(read_at.0 - DAY_MS)).await?;
        let alerted = store.alerted_subscriptions().await?;
        let paid_until = store.paid_until().await?;
        let balance_ok_since = store.last_success_at().await?;
        Ok(Known { alerted, paid_until, rules, held, ledger, spent, reconciled, unaccounted, balance_ok_since })
    }
}
