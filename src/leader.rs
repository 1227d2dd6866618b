//! Leadership among several nodes on one PostgreSQL database: [`Leadership`] is this process
//! holding the lease (`store::lease`), kept by a task that renews it every third of
//! `[ha] lease` and, the moment a renewal fails, clears the store's fence and cancels
//! [`Leadership::lost`] so that no renewal starts. [`Leadership::take`] is for the one-shot
//! commands (`once`, `renew`): the lease now, or an error naming its holder;
//! [`Leadership::campaign`] is the daemon's: wait as a follower until the lease is free.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::store::{Fence, LeaseRow, Store, StoreError};
use crate::values::EpochMs;

/// Why the lease was not taken.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LeaderError {
    /// Another node holds it.
    #[error(
        "another proxy-renewd leads on this database ({holder}, epoch {epoch}, lease until {until}): stop it, or let it do the work"
    )]
    Held {
        /// `HOST pid PID`.
        holder: String,
        /// Its epoch.
        epoch: i64,
        /// When its lease ends unless renewed (the database's clock).
        until: EpochMs,
    },
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// This process's name in the lease: `HOST pid PID`.
#[must_use]
pub fn holder() -> String {
    format!("{} pid {}", crate::lock::hostname(), std::process::id())
}

/// The lease, held: renewed in the background until dropped or [`Leadership::resign`]ed.
#[derive(Debug)]
pub struct Leadership {
    store: Store,
    fence: Fence,
    lost: CancellationToken,
    keeper: tokio::task::JoinHandle<()>,
}

impl Drop for Leadership {
    fn drop(&mut self) {
        self.keeper.abort();
        self.store.set_fence(None);
    }
}

impl Leadership {
    /// Takes the lease now for `lease_ms`, or fails naming who holds it.
    ///
    /// # Errors
    /// [`LeaderError::Held`]; [`LeaderError::Store`] when the database fails.
    pub async fn take(store: &Store, lease_ms: i64) -> Result<Leadership, LeaderError> {
        let holder = holder();
        match store.take_lease(&holder, lease_ms).await? {
            Some(epoch) => Ok(Leadership::start(store, Fence { holder, epoch, lease_ms }, None)),
            None => Err(match store.lease().await? {
                Some(l) => LeaderError::Held { holder: l.holder, epoch: l.epoch, until: EpochMs(l.expires_at_ms) },
                None => LeaderError::Store(StoreError::Other {
                    path: store.path().to_owned(),
                    detail: "the lease was refused, yet there is no lease row".into(),
                }),
            }),
        }
    }

    /// Follows until the lease is free, then takes it: polls every third of `lease_ms`, logs
    /// who leads when that changes, and on a follower keeps `/healthz` fed with the leader's
    /// cycles. `None` when `cancel` ends the wait.
    pub async fn campaign(
        store: &Store,
        lease_ms: i64,
        cancel: &CancellationToken,
        metrics: Option<&std::sync::Arc<Metrics>>,
    ) -> Option<Leadership> {
        let holder = holder();
        let mut seen: Option<(String, i64)> = None;
        let mut announced = false;
        loop {
            let mut wait = period(lease_ms);
            match store.take_lease(&holder, lease_ms).await {
                Ok(Some(epoch)) => {
                    let fence = Fence { holder: holder.clone(), epoch, lease_ms };
                    tracing::info!(epoch, holder = %holder, "became leader (epoch {epoch}, lease {})", show(lease_ms));
                    warn_of_skew(store).await;
                    return Some(Leadership::start(store, fence, metrics.cloned()));
                }
                Ok(None) => match store.lease().await {
                    Ok(Some(LeaseRow { holder: leader, epoch, remaining_ms, .. })) => {
                        // Try again as the lease ends, not up to a third of it later.
                        wait = wait.min(Duration::from_millis(remaining_ms.max(0).unsigned_abs() + 50));
                        if !announced {
                            // A follower is up and doing its part: systemd and /readyz may say so.
                            announced = true;
                            let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
                            if let Some(m) = metrics {
                                m.set_following();
                            }
                        }
                        if seen.as_ref() != Some(&(leader.clone(), epoch)) {
                            tracing::info!(leader = %leader, epoch, "following: {leader} leads (epoch {epoch})");
                            seen = Some((leader, epoch));
                        }
                        if let Some(m) = metrics {
                            m.set_leader(false, epoch);
                            if let Ok(Some(at)) = store.last_cycle().await {
                                m.saw_leader_cycle(at);
                            }
                        }
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!(error = %e, "cannot read the lease; trying again"),
                },
                Err(e) => tracing::warn!(error = %e, "cannot take the lease; trying again"),
            }
            tokio::select! {
                () = cancel.cancelled() => return None,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    fn start(store: &Store, fence: Fence, metrics: Option<std::sync::Arc<Metrics>>) -> Leadership {
        store.set_fence(Some(fence.clone()));
        if let Some(m) = &metrics {
            m.set_leader(true, fence.epoch);
        }
        let lost = CancellationToken::new();
        let keeper = tokio::spawn(keep(store.clone(), fence.clone(), lost.clone(), metrics));
        Leadership { store: store.clone(), fence, lost, keeper }
    }

    /// Cancelled when the lease is lost (a renewal failed or found it another's): stop
    /// starting renewals.
    #[must_use]
    pub fn lost(&self) -> &CancellationToken {
        &self.lost
    }

    /// The epoch held.
    #[must_use]
    pub fn epoch(&self) -> i64 {
        self.fence.epoch
    }

    /// Gives the lease up at once (a clean stop), so another node need not wait it out.
    pub async fn resign(&self) {
        self.keeper.abort();
        self.store.set_fence(None);
        if !self.lost.is_cancelled() {
            match self.store.resign_lease(&self.fence.holder, self.fence.epoch).await {
                Ok(()) => tracing::info!(epoch = self.fence.epoch, "gave up the lease"),
                Err(e) => tracing::warn!(error = %e, "cannot give up the lease; it expires on its own"),
            }
        }
    }
}

/// Renews the lease every third of it; on the first failure, stops everything.
async fn keep(store: Store, fence: Fence, lost: CancellationToken, metrics: Option<std::sync::Arc<Metrics>>) {
    loop {
        tokio::time::sleep(period(fence.lease_ms)).await;
        // A renewal that hangs (a dead network) fails once a third of the lease has passed.
        let renewed =
            tokio::time::timeout(period(fence.lease_ms), store.renew_lease(&fence.holder, fence.epoch, fence.lease_ms))
                .await;
        let why = match renewed {
            Err(_) => "it could not be renewed in time".to_owned(),
            Ok(Ok(true)) => continue,
            Ok(Err(e)) => format!("it could not be renewed: {e}"),
            Ok(Ok(false)) => store.why_lost(&fence).await,
        };
        store.set_fence(None);
        if let Some(m) = &metrics {
            m.set_leader(false, fence.epoch);
        }
        tracing::warn!(epoch = fence.epoch, "lost the lease ({why}); this node sends nothing more and follows");
        lost.cancel();
        return;
    }
}

/// How often the lease is renewed, or polled by a follower: a third of it.
fn period(lease_ms: i64) -> Duration {
    Duration::from_millis((lease_ms / 3).max(100).unsigned_abs())
}

fn show(ms: i64) -> String {
    crate::rule::format_duration_ms(ms)
}

/// Warns when this node's clock is more than a second from the database's: the lease does
/// not depend on it, but the ledger's times and the policy's `now` do.
async fn warn_of_skew(store: &Store) {
    let before = EpochMs::now();
    if let Ok(db) = store.database_now().await {
        let after = EpochMs::now();
        let local = EpochMs(before.0 + (after.0 - before.0) / 2);
        let skew = local.0 - db.0;
        if skew.abs() > 1000 {
            tracing::warn!(
                skew_ms = skew,
                "this node's clock is {} from the database's: fix its time sync (NTP); leases use the database's clock, but renewal decisions use this node's",
                show(skew.abs())
            );
        }
    }
}
