//! The cycle's side of a provider that cannot be read: each failed `op=subscriptions` read is
//! counted in the database, and while the reads fail the alerts a person needs are raised from
//! the last good read (`alerts::outage`); the first good read after an outage says so.

use std::collections::HashMap;

use super::Cycle;
use crate::alert::Alert;
use crate::alerts::{self, outage};
use crate::api::{ApiError, Refusal};
use crate::config::PROVIDER_DOWN_CYCLES;
use crate::store::{ReadFailures, SeenSubscription, Store, StoreError};
use crate::values::{EpochMs, SubscriptionId};

impl Cycle<'_> {
    /// Has this run of failed reads lasted long enough to alert `unreachable`?
    fn is_down(&self, run: ReadFailures, now: EpochMs) -> bool {
        run.count >= PROVIDER_DOWN_CYCLES && now.since(run.since) >= self.config.alerts.provider_down_after_ms
    }

    /// The read failed with `e`: count it and raise what it calls for (a dry run does
    /// neither).
    pub(super) async fn on_read_failure(&self, e: &ApiError, now: EpochMs) {
        let (Some(store), false) = (self.store, self.dry_run) else { return };
        let mut raised: Vec<Alert> = Vec::new();
        if e.refusal().is_some_and(Refusal::is_auth) {
            raised.push(alerts::auth(&e.to_string()));
        }
        match store.record_read_failure(now).await {
            Ok(run) => {
                tracing::warn!(failed_reads = run.count, since = %run.since, "op=subscriptions cannot be read");
                if self.is_down(run, now) {
                    raised.push(outage::unreachable(run, &e.to_string(), now));
                }
            }
            Err(err) => tracing::error!(error = %err, "cannot record the failed read"),
        }
        match self.managed_as_last_read(store).await {
            Ok(managed) => raised.extend(outage::from_last_read(&managed, now, self.config.alerts.lapse_warning_ms)),
            Err(err) => tracing::error!(error = %err, "cannot read the last good read back from the database"),
        }
        self.raise(&raised, now).await;
    }

    /// The read succeeded: a run of failures, if any, ends; after an outage, `recovered`.
    pub(super) async fn on_read_success(&self, now: EpochMs) {
        let (Some(store), false) = (self.store, self.dry_run) else { return };
        match store.record_read_success().await {
            // Only an outage that was alerted (down at its last failed read) gets its all-clear.
            Ok(Some(run)) if self.is_down(run, run.last) => {
                tracing::info!(failed_reads = run.count, since = %run.since, "op=subscriptions answers again");
                self.raise(&[outage::provider_recovered(run, now)], now).await;
            }
            Ok(_) => {}
            Err(err) => tracing::error!(error = %err, "cannot record the successful read"),
        }
    }

    /// Managed subscriptions as the last good read listed them, each with the later of that
    /// expiry and what a recorded renewal paid for.
    async fn managed_as_last_read(&self, store: &Store) -> Result<Vec<(SeenSubscription, EpochMs)>, StoreError> {
        let rules: HashMap<SubscriptionId, bool> =
            store.rules().await?.into_iter().map(|r| (r.subscription_id, r.rule.enabled)).collect();
        let paid = store.paid_until().await?;
        let rows = store.snapshot().await?;
        Ok(rows
            .into_iter()
            .filter(|r| r.gone_since.is_none() && r.seen.status == "active")
            .filter(|r| rules.get(&r.seen.subscription_id).copied().unwrap_or(self.config.defaults.enabled))
            .map(|r| {
                let expiry =
                    paid.get(&r.seen.subscription_id).map_or(r.seen.active_until, |p| (*p).max(r.seen.active_until));
                (r.seen, expiry)
            })
            .collect())
    }
}
