//! Buys: one `op=purchase` through the purchases ledger, and the evidence a person weighs when
//! its answer was lost (`purchase reconcile`).
//!
//! No row, no request: the `sending` row is committed before the POST, in the transaction
//! that checks no other purchase of the plan is open. The POST is sent once and never retried;
//! an unknown outcome stays unknown until a person settles it, because a purchase has no
//! `activeUntil` to read back: the only evidence is subscription ids that were not listed
//! before ([`appeared`]).

use std::collections::HashSet;

use crate::api::{Client, PostError, PurchaseRequest, Subscription};
use crate::purchase::{PurchaseEntry, PurchaseOutcome, PurchaseState, PurchaseTerms, RuleOverrides};
use crate::rule::Rule;
use crate::store::{Begun, PurchaseSettlement, Store};
use crate::values::text::clean_text;
use crate::values::{Clock, EpochMs, SubscriptionId};

/// How far the provider's clock and ours may disagree when [`appeared`] judges whether a new
/// subscription's `activeUntil` fits a purchase: 10 minutes, in ms.
pub const CLOCK_SKEW_MS: i64 = 10 * 60_000;

/// Who buys, and where the purchase is recorded.
#[derive(Debug, Clone, Copy)]
pub struct Purchaser<'a> {
    /// The provider.
    pub client: &'a Client,
    /// The purchases ledger (and the rules of the new subscriptions).
    pub store: &'a Store,
    /// `[defaults]`: what the new subscriptions' rules start from.
    pub defaults: &'a Rule,
    /// Where "now" comes from.
    pub clock: &'a dyn Clock,
}

impl Purchaser<'_> {
    /// Buys as `terms` say: commits the purchase (refused while another purchase of the plan
    /// is open, unless `force`), sends `op=purchase` once, records the outcome and, when it is
    /// done and `rule` overrides `[defaults]`, a rule per new subscription. `known_before` is
    /// every subscription id listed just before.
    ///
    /// Returns the outcome, and what could not be written to the database after the POST
    /// (the row then stays `sending`, which blocks the next purchase of the plan like an
    /// unknown one: never a blind second purchase).
    #[tracing::instrument(skip_all, fields(plan_id = %terms.plan_id, quantity = terms.quantity, repeat_count = terms.repeat_count))]
    pub async fn purchase(
        &self,
        terms: &PurchaseTerms,
        rule: &RuleOverrides,
        known_before: &[SubscriptionId],
        force: bool,
    ) -> (PurchaseOutcome, Option<String>) {
        let id = match self.store.begin_purchase(terms, rule, known_before, force, self.clock.now()).await {
            Ok(Begun::Started(id)) => id,
            Ok(Begun::Blocked(open)) => return (PurchaseOutcome::Blocked { open }, None),
            Err(e) => {
                tracing::error!(error = %e, "the purchase could not be recorded; nothing sent");
                return (PurchaseOutcome::NotRecorded { message: e.to_string() }, None);
            }
        };
        let req = PurchaseRequest {
            plan_id: terms.plan_id.clone(),
            coupon_code: terms.coupon_code.clone(),
            repeat_count: Some(terms.repeat_count),
            quantity: Some(terms.quantity),
        };
        let (outcome, settlement) = match self.client.purchase(&req).await {
            Ok(p) => {
                tracing::info!(purchase_id = id, subscription_ids = %joined(&p.subscription_ids), "purchase done");
                let s = settled(PurchaseState::Done, p.subscription_ids.clone(), None, None);
                (PurchaseOutcome::Done { purchase_id: id, subscription_ids: p.subscription_ids }, s)
            }
            Err(PostError::Refused(r)) => {
                let message = r.to_string();
                tracing::warn!(purchase_id = id, status = r.status, %message, "purchase refused; nothing bought");
                let s = settled(PurchaseState::Refused, Vec::new(), Some(r.status), Some(message.clone()));
                (PurchaseOutcome::Refused { purchase_id: id, status: Some(r.status), message }, s)
            }
            Err(e @ PostError::NotSent { .. }) => {
                tracing::warn!(purchase_id = id, error = %e, "purchase not sent; nothing bought");
                let s = settled(PurchaseState::Refused, Vec::new(), None, Some(e.to_string()));
                (PurchaseOutcome::Refused { purchase_id: id, status: None, message: e.to_string() }, s)
            }
            Err(e) => {
                // The failure itself: "outcome unknown" is what the outcome already says.
                let (status, message) = match &e {
                    PostError::OutcomeUnknown(f) => (f.status(), f.to_string()),
                    other => (None, other.to_string()),
                };
                tracing::warn!(purchase_id = id, error = %message, "purchase outcome unknown; it will not be retried");
                let s = settled(PurchaseState::Unknown, Vec::new(), status, Some(message.clone()));
                (PurchaseOutcome::Unknown { purchase_id: id, message }, s)
            }
        };
        let unrecorded = match self.store.settle_purchase(id, &settlement, self.defaults, self.clock.now()).await {
            Ok(()) => None,
            Err(e) => {
                tracing::error!(purchase_id = id, error = %e, "the purchase's outcome could not be recorded; it stays open");
                Some(format!("purchase {id}: {e}"))
            }
        };
        (outcome, unrecorded)
    }
}

/// `a, b, c`: ids for a log line.
#[must_use]
pub fn joined(ids: &[SubscriptionId]) -> String {
    ids.iter().map(SubscriptionId::as_str).collect::<Vec<_>>().join(", ")
}

fn settled(
    state: PurchaseState,
    subscription_ids: Vec<SubscriptionId>,
    http_status: Option<u16>,
    error: Option<String>,
) -> PurchaseSettlement {
    PurchaseSettlement { state, subscription_ids, http_status, error }
}

/// A subscription listed now that was not listed just before a purchase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appeared {
    /// Its id.
    pub subscription_id: SubscriptionId,
    /// Its `activeUntil`.
    pub active_until: EpochMs,
    /// Its `label`, cleaned.
    pub label: Option<String>,
    /// Whether its `activeUntil` fits the purchase: between the moment the purchase was
    /// recorded and now, plus the terms' duration (± [`CLOCK_SKEW_MS`]).
    pub fits: bool,
}

/// The subscriptions in `listed` that `entry` did not know before its POST and that no other
/// done purchase in `claimed` accounts for, oldest-expiring first. What a person weighs to
/// settle an unknown purchase; nothing here decides it.
#[must_use]
pub fn appeared(
    entry: &PurchaseEntry,
    listed: &[Subscription],
    claimed: &HashSet<&SubscriptionId>,
    now: EpochMs,
) -> Vec<Appeared> {
    let before: HashSet<&SubscriptionId> = entry.known_before.iter().collect();
    let earliest = entry.created_at.0.saturating_add(entry.terms.duration_ms).saturating_sub(CLOCK_SKEW_MS);
    let latest = now.0.saturating_add(entry.terms.duration_ms).saturating_add(CLOCK_SKEW_MS);
    let mut out: Vec<Appeared> = listed
        .iter()
        .filter(|s| !before.contains(&s.subscription_id) && !claimed.contains(&s.subscription_id))
        .map(|s| Appeared {
            subscription_id: s.subscription_id.clone(),
            active_until: s.active_until,
            label: s.label.as_deref().map(clean_text),
            fits: (earliest..=latest).contains(&s.active_until.0),
        })
        .collect();
    out.sort_by(|a, b| (a.active_until, &a.subscription_id).cmp(&(b.active_until, &b.subscription_id)));
    out
}
