//! Reconciliation: settling attempts whose outcome is unknown by reading `activeUntil` back
//! (`daemon.md`, ledger rule 4, and *Refusals and liveness*). A pure function of the open
//! entries, the fresh read and the time of that read.
//!
//! - `activeUntil` moved to the expiry the attempt expected (within [`TOLERANCE_MS`]) →
//!   `succeeded` (the provider applied it);
//! - moved by any other amount (a goodwill credit, someone else's renewal) → `ambiguous`: not
//!   booked as our spend; the cycle holds the subscription and alerts with both figures;
//! - unchanged, and the read started at least `reconcile_after` after the attempt was last
//!   touched (which, for an attempt the client gave up on, is when it gave up: sent +
//!   `api.timeout`) → `failed` (a new attempt may be made): a request the client gave up on can
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

/// How far `activeUntil` may be from the expected new expiry and still count as this
/// attempt's doing: clocks differ, and a lapsed subscription is renewed from the provider's
/// "now", not ours. One hour.
pub const TOLERANCE_MS: i64 = 3_600_000;

/// Does `seen` show exactly this attempt applied? The expected expiry is max(`activeUntil`,
/// now at decision) + the plan's time; a provider that renews a lapsed subscription from its
/// old expiry instead lands at `activeUntil` + the plan's time. Either, within the tolerance.
#[must_use]
pub fn is_expected(e: &LedgerEntry, seen: EpochMs) -> bool {
    let before = e.renewal.active_until_before;
    let expected = e.renewal.expected_end_at;
    let added = expected.since(EpochMs(before.0.max(e.created_at.0)));
    let from_expiry = EpochMs(before.0.saturating_add(added.max(0)));
    let lowest = from_expiry.0.min(expected.0).saturating_sub(TOLERANCE_MS);
    (lowest..=expected.0.saturating_add(TOLERANCE_MS)).contains(&seen.0)
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
            let settle = |state, actual_end_at, error: String| Settlement {
                state,
                actual_end_at,
                http_status: None,
                error: Some(error),
                retry_at: None,
            };
            let settlement = if seen > e.renewal.active_until_before && is_expected(e, seen) {
                settle(LedgerState::Succeeded, Some(seen), format!("reconciled: activeUntil advanced to {seen}"))
            } else if seen > e.renewal.active_until_before {
                settle(
                    LedgerState::Ambiguous,
                    Some(seen),
                    format!(
                        "reconciled: activeUntil moved to {seen}, but this attempt expected {}; not booked as spend",
                        e.renewal.expected_end_at
                    ),
                )
            } else if read_at.since(e.updated_at) >= reconcile_after_ms {
                settle(
                    LedgerState::Failed,
                    None,
                    "reconciled: activeUntil unchanged after reconcile_after; not applied".into(),
                )
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attempt::{Origin, RenewalTerms};
    use crate::values::{Cents, PlanId};

    const BEFORE: EpochMs = EpochMs(1_800_000_000_000);
    const MIN: i64 = 60_000;

    /// An attempt `sending` since `BEFORE - 1 day` for the period `BEFORE`, expecting `+added`.
    fn sending(added_ms: i64) -> LedgerEntry {
        let at = EpochMs(BEFORE.0 - 86_400_000);
        LedgerEntry {
            id: 7,
            subscription_id: SubscriptionId::parse("sub1").unwrap(),
            renewal: RenewalTerms {
                active_until_before: BEFORE,
                attempt: 1,
                plan_id: PlanId::parse("p1").unwrap(),
                repeat_count: 1,
                price: Cents(100),
                coupon_code: None,
                expected_end_at: EpochMs(BEFORE.0 + added_ms),
            },
            origin: Origin::Daemon,
            state: LedgerState::Sending,
            actual_end_at: None,
            http_status: None,
            error: None,
            retry_at: None,
            created_at: at,
            updated_at: at,
        }
    }

    fn seen(at: EpochMs) -> HashMap<SubscriptionId, EpochMs> {
        HashMap::from([(SubscriptionId::parse("sub1").unwrap(), at)])
    }

    const DAY: i64 = 86_400_000;

    #[test]
    fn a_move_to_the_expected_expiry_succeeds_and_any_other_move_is_ambiguous() {
        let e = sending(30 * DAY);
        let read_at = EpochMs(e.updated_at.0 + 1_000);
        let state_after = |seen_at: i64| {
            let settled = reconcile(std::slice::from_ref(&e), &seen(EpochMs(seen_at)), read_at, 60_000);
            settled.first().map(|r| (r.settlement.state, r.settlement.actual_end_at))
        };
        let expected = BEFORE.0 + 30 * DAY;
        for seen_at in [expected, expected - TOLERANCE_MS, expected + TOLERANCE_MS] {
            assert_eq!(state_after(seen_at), Some((LedgerState::Succeeded, Some(EpochMs(seen_at)))), "{seen_at}");
        }
        for seen_at in [expected + TOLERANCE_MS + 1, BEFORE.0 + DAY, expected + 30 * DAY] {
            assert_eq!(state_after(seen_at), Some((LedgerState::Ambiguous, Some(EpochMs(seen_at)))), "{seen_at}");
        }
        assert_eq!(state_after(BEFORE.0 - DAY), None, "went back: not applied, and not yet failed");
        assert!(!is_expected(&e, EpochMs(expected + TOLERANCE_MS + 1)) && !is_expected(&e, EpochMs(BEFORE.0 + DAY)));
    }

    #[test]
    fn apply_changes_only_the_settled_entries() {
        let mut entries = [sending(30 * DAY), sending(30 * DAY)];
        entries[1].id = 8;
        let now = EpochMs(BEFORE.0 + 5);
        let settled = [Reconciled {
            ledger_id: 8,
            subscription_id: entries[1].subscription_id.clone(),
            settlement: Settlement {
                state: LedgerState::Succeeded,
                actual_end_at: Some(EpochMs(BEFORE.0 + 30 * DAY)),
                http_status: None,
                error: Some("reconciled".into()),
                retry_at: None,
            },
        }];
        apply(&mut entries, &settled, now);
        assert_eq!((entries[0].state, entries[0].updated_at), (LedgerState::Sending, EpochMs(BEFORE.0 - DAY)));
        assert_eq!((entries[1].state, entries[1].updated_at), (LedgerState::Succeeded, now));
        assert_eq!(entries[1].actual_end_at, Some(EpochMs(BEFORE.0 + 30 * DAY)));
        assert_eq!(entries[1].error.as_deref(), Some("reconciled"));
    }

    #[test]
    fn an_unchanged_expiry_is_never_success_even_for_a_plan_shorter_than_the_tolerance() {
        // 30 minutes of plan: the unchanged `activeUntil` lies within the tolerance of the
        // expected end, but it did not move, so nothing was applied (yet).
        let e = sending(30 * MIN);
        assert!(is_expected(&e, BEFORE), "within the tolerance, so only the `moved` guard can tell");
        let read_at = EpochMs(e.updated_at.0 + 1_000);
        assert_eq!(
            reconcile(std::slice::from_ref(&e), &seen(BEFORE), read_at, 60_000),
            vec![],
            "still open, not succeeded"
        );
        let later = EpochMs(e.updated_at.0 + 60_000);
        let settled = reconcile(&[e], &seen(BEFORE), later, 60_000);
        assert_eq!(settled.len(), 1);
        assert_eq!(settled[0].settlement.state, LedgerState::Failed, "unchanged after reconcile_after");
    }
}
