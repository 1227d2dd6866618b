//! The cycle's look at open purchases: a purchase whose outcome is unknown (or whose
//! `sending` row outlived its process) is never retried, so each cycle says so, with the
//! subscriptions that appeared since it was sent, until a person settles it with `proxy-renewd
//! purchase reconcile`: a log warning and an `unknown-outcome` alert (repeated per
//! `alerts.repeat_interval`).

use std::collections::HashSet;

use super::Cycle;
use crate::alert::{Alert, AlertKind};
use crate::api::Subscription;
use crate::purchaser::appeared;
use crate::values::{EpochMs, SubscriptionId};

impl Cycle<'_> {
    /// Warns about, and raises an alert for, every open purchase, with what appeared in
    /// `listed` since it was sent.
    pub(super) async fn raise_open_purchases(&self, listed: &[Subscription], now: EpochMs) {
        let Some(store) = self.store else { return };
        let read = async {
            Ok::<_, crate::store::StoreError>((store.purchases(true, u32::MAX).await?, store.purchased_ids().await?))
        };
        let (open, claimed) = match read.await {
            Ok(read) => read,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the purchases ledger");
                return;
            }
        };
        let claimed: HashSet<&SubscriptionId> = claimed.iter().collect();
        let open = open.iter().filter(|p| p.state.is_open() && !p.may_be_in_flight(now));
        let mut raised = Vec::new();
        for p in open {
            let seen = appeared(p, listed, &claimed, now);
            let fits = seen.iter().filter(|a| a.fits).count();
            tracing::warn!(
                purchase_id = p.id,
                plan_id = %p.terms.plan_id,
                appeared = seen.len(),
                fits,
                "a purchase's outcome is unknown and it will not be retried: run `proxy-renewd purchase reconcile`"
            );
            let mut alert = Alert::account(AlertKind::UnknownOutcome, Some(p.created_at)).with(
                format!(
                    "purchase {} ({} × plan {}, repeat count {}, {}) got no definite answer; since it was sent, {} subscription(s) appeared, {fits} of which fit it",
                    p.id, p.terms.quantity, p.terms.plan_id, p.terms.repeat_count, p.terms.price, seen.len()
                ),
                format!("it is never retried, and the next purchase of plan {} is refused until it is settled", p.terms.plan_id),
                format!(
                    "run `proxy-renewd purchase reconcile`, then `proxy-renewd purchase reconcile {} --applied` or `--not-applied`",
                    p.id
                ),
            );
            alert.amount = Some(p.terms.price);
            raised.push(alert);
        }
        self.raise(&raised, now).await;
    }
}
