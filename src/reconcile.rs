//! Reconciliation: settling attempts whose outcome is unknown by reading `activeUntil` back
//! (`daemon.md`, ledger rule 4). A pure function of the open entries, the fresh read and the
//! time of that read.
//!
//! - `activeUntil` moved past the attempt's period → `succeeded` (the provider applied it);
//! - unchanged, and the read started at least `reconcile_after` after the attempt was last
//!   touched → `failed` (a new attempt may be made): a request the client gave up on can
//!   still be applied late, hence the wait;
//! - otherwise, or when the subscription is not in the read at all, it stays open.

use std::collections::HashMap;

use crate::attempt::{LedgerEntry, LedgerState, Settlement};
use crate::values::{EpochMs, SubscriptionId};

/// What reconciliation concluded for one open entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconciled {
    /// The ledger row.
    pub ledger_id: i64,
    /// Its subscription.
    pub subscription_id: SubscriptionId,
    /// The new state and what was seen.
    pub settlement: Settlement,
}

/// Settles what can be settled among `open` (entries `sending` or `unknown`), given each
/// subscription's `activeUntil` as read at `read_at`.
#[must_use]
pub fn reconcile(
    open: &[LedgerEntry],
    active_until: &HashMap<SubscriptionId, EpochMs>,
    read_at: EpochMs,
    reconcile_after_ms: i64,
) -> Vec<Reconciled> {
    open.iter()
        .filter(|e| e.state.is_open())
        .filter_map(|e| {
            let seen = *active_until.get(&e.subscription_id)?;
            let settlement = if seen > e.renewal.active_until_before {
                Settlement {
                    state: LedgerState::Succeeded,
                    actual_end_at: Some(seen),
                    http_status: None,
                    error: Some(format!("reconciled: activeUntil advanced to {seen}")),
                }
            } else if read_at.since(e.updated_at) >= reconcile_after_ms {
                Settlement {
                    state: LedgerState::Failed,
                    actual_end_at: None,
                    http_status: None,
                    error: Some("reconciled: activeUntil unchanged after reconcile_after; not applied".into()),
                }
            } else {
                return None;
            };
            Some(Reconciled { ledger_id: e.id, subscription_id: e.subscription_id.clone(), settlement })
        })
        .collect()
}

/// Applies settlements to entries in memory (what the database will say once they are
/// written, or what a dry run would have written).
pub fn apply(entries: &mut [LedgerEntry], settled: &[Reconciled], now: EpochMs) {
    for r in settled {
        if let Some(e) = entries.iter_mut().find(|e| e.id == r.ledger_id) {
            e.state = r.settlement.state;
            e.actual_end_at = r.settlement.actual_end_at.or(e.actual_end_at);
            e.error = r.settlement.error.clone().or(e.error.take());
            e.updated_at = now;
        }
    }
}
