//! The leader lease of several nodes on one PostgreSQL database: one row of the `lease` table
//! (name `leader`: holder, epoch, expires_at, taken_at), taken, renewed and given up by single
//! statements on the database's clock, so node clocks do not matter and no session state is
//! needed (PgBouncer in transaction mode works).
//!
//! The epoch grows by one whenever the lease passes to another holder (or back to the same one
//! after it lapsed). The fence ([`Fence`]) is what makes it safe: every group commit that
//! inserts `sending` rows first extends the lease, in the same transaction, only if this holder
//! still has it at this epoch and it has not expired; the row lock that takes is held until the
//! commit, so a takeover waits for it and then finds the lease extended. A node paused past its
//! lease (SIGSTOP, a frozen VM) wakes to a fence that fails: it sends nothing.

use std::sync::{Arc, Mutex, PoisonError};

use super::db::{Tx, query};
use super::{Store, StoreError};
use crate::values::EpochMs;

/// The one lease row's name.
const LEADER: &str = "leader";

/// The lease this process holds, that every `sending` row is committed under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// Who holds it: `HOST pid PID`.
    pub holder: String,
    /// The epoch it was taken at.
    pub epoch: i64,
    /// How long each extension lasts, in ms.
    pub lease_ms: i64,
}

/// A store's fence, shared by its clones; `None` while it holds no lease.
pub(crate) type FenceSlot = Arc<Mutex<Option<Fence>>>;

/// The lease row as the database has it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct LeaseRow {
    /// Who holds (or last held) it: `HOST pid PID`.
    pub holder: String,
    /// Its epoch: 1 for the first holder, one more at every change of hands.
    pub epoch: i64,
    /// When it expires (the database's clock), ms since the epoch.
    pub expires_at_ms: i64,
    /// How long it remains, in ms (negative once expired), by the database's clock.
    pub remaining_ms: i64,
    /// The database's clock when read, ms since the epoch.
    pub now_ms: i64,
}

impl Store {
    /// Takes the lease for `holder` for `lease_ms`, or keeps it if `holder` has it still: its
    /// epoch, or `None` when another holder's lease has not expired. One statement, on the
    /// database's clock; a lease taken from another holder (or lapsed) gets the next epoch.
    ///
    /// # Errors
    /// [`StoreError`] from the database; [`StoreError::Other`] on SQLite (no lease there).
    pub async fn take_lease(&self, holder: &str, lease_ms: i64) -> Result<Option<i64>, StoreError> {
        self.postgres_only("the leader lease")?;
        query(
            "INSERT INTO lease AS l (name, holder, epoch, expires_at, taken_at)
             VALUES ($1, $2, 1, clock_timestamp() + make_interval(secs => $3::bigint / 1000.0), clock_timestamp())
             ON CONFLICT (name) DO UPDATE SET
               holder = excluded.holder,
               epoch = CASE WHEN l.holder = excluded.holder AND l.expires_at > clock_timestamp() THEN l.epoch ELSE l.epoch + 1 END,
               taken_at = CASE WHEN l.holder = excluded.holder AND l.expires_at > clock_timestamp() THEN l.taken_at ELSE clock_timestamp() END,
               expires_at = excluded.expires_at
             WHERE l.holder = excluded.holder OR l.expires_at <= clock_timestamp()
             RETURNING epoch",
        )
        .bind(LEADER)
        .bind(holder)
        .bind(lease_ms)
        .scalar_optional(self.pool())
        .await
        .map_err(|e| self.err(e))
    }

    /// Extends the lease `holder` took at `epoch` by `lease_ms` from now; false when it is no
    /// longer theirs at that epoch, or has expired (then it must not be extended: another
    /// node may have taken it, or may be about to).
    ///
    /// # Errors
    /// [`StoreError`] from the database.
    pub async fn renew_lease(&self, holder: &str, epoch: i64, lease_ms: i64) -> Result<bool, StoreError> {
        self.postgres_only("the leader lease")?;
        extend(holder, epoch, lease_ms).execute(self.pool()).await.map(|n| n == 1).map_err(|e| self.err(e))
    }

    /// Gives the lease up (a clean stop), so that another node takes over at once. The row
    /// stays, expired, so that the epoch keeps growing.
    ///
    /// # Errors
    /// [`StoreError`] from the database.
    pub async fn resign_lease(&self, holder: &str, epoch: i64) -> Result<(), StoreError> {
        self.postgres_only("the leader lease")?;
        query("UPDATE lease SET expires_at = clock_timestamp() WHERE name = $1 AND holder = $2 AND epoch = $3")
            .bind(LEADER)
            .bind(holder)
            .bind(epoch)
            .execute(self.pool())
            .await
            .map_err(|e| self.err(e))
            .map(drop)
    }

    /// The lease row, if any node ever took it.
    ///
    /// # Errors
    /// [`StoreError`] from the database.
    pub async fn lease(&self) -> Result<Option<LeaseRow>, StoreError> {
        self.postgres_only("the leader lease")?;
        query(
            "SELECT holder, epoch,
                    (extract(epoch FROM expires_at) * 1000)::bigint AS expires_at_ms,
                    (extract(epoch FROM expires_at - clock_timestamp()) * 1000)::bigint AS remaining_ms,
                    (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS now_ms
             FROM lease WHERE name = $1",
        )
        .bind(LEADER)
        .fetch_optional(self.pool())
        .await
        .map_err(|e| self.err(e))
    }

    /// The database's clock, ms since the epoch: to warn of a node clock far from it.
    ///
    /// # Errors
    /// [`StoreError`] from the database.
    pub async fn database_now(&self) -> Result<EpochMs, StoreError> {
        self.postgres_only("the database clock")?;
        query("SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint")
            .scalar(self.pool())
            .await
            .map(EpochMs)
            .map_err(|e| self.err(e))
    }

    /// Commits every later `sending` row under `fence` (or, with `None`, stops: no
    /// `sending` row is committed on PostgreSQL without a fence).
    pub fn set_fence(&self, fence: Option<Fence>) {
        *self.fence.lock().unwrap_or_else(PoisonError::into_inner) = fence;
    }

    /// The fence in force, if any.
    #[must_use]
    pub fn fence(&self) -> Option<Fence> {
        self.fence.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Inside a group commit that inserts `sending` rows, on PostgreSQL: extends the lease if
    /// it is still the fence's, locking its row until the commit. `Ok(())` on SQLite (one
    /// process, the instance lock).
    ///
    /// # Errors
    /// [`StoreError::LeaseLost`] when no fence is set, or the lease is another's, at another
    /// epoch, or expired (the fence is cleared then); another [`StoreError`] from the database.
    pub(super) async fn check_fence(&self, tx: &mut Tx) -> Result<(), StoreError> {
        if !self.is_postgres() {
            return Ok(());
        }
        let Some(fence) = self.fence() else {
            return Err(StoreError::LeaseLost { detail: "this process holds no lease".into() });
        };
        let held =
            extend(&fence.holder, fence.epoch, fence.lease_ms).execute(&mut *tx).await.map_err(|e| self.err(e))?;
        if held == 1 {
            return Ok(());
        }
        // Cleared only if no one set another fence meanwhile.
        {
            let mut slot = self.fence.lock().unwrap_or_else(PoisonError::into_inner);
            if slot.as_ref() == Some(&fence) {
                *slot = None;
            }
        }
        let why = self.why_lost(&fence).await;
        tracing::warn!(epoch = fence.epoch, "lost the lease ({why}); this node sends nothing more and follows");
        Err(StoreError::LeaseLost { detail: why })
    }

    /// Why `fence`'s lease no longer holds, from the lease row as it is now: `epoch N is
    /// stale: HOLDER leads at epoch M`, or that it expired (or is gone).
    pub async fn why_lost(&self, fence: &Fence) -> String {
        let epoch = fence.epoch;
        match self.lease().await {
            Ok(Some(l)) if (l.holder.as_str(), l.epoch) != (fence.holder.as_str(), epoch) => {
                format!("epoch {epoch} is stale: {} leads at epoch {}", l.holder, l.epoch)
            }
            Ok(Some(_)) => format!("epoch {epoch} is stale: it expired before it was renewed"),
            _ => format!("epoch {epoch} is stale: the lease row is gone"),
        }
    }

    fn postgres_only(&self, what: &str) -> Result<(), StoreError> {
        if self.is_postgres() {
            Ok(())
        } else {
            Err(StoreError::Other { path: self.path.clone(), detail: format!("{what} needs a PostgreSQL database") })
        }
    }
}

/// The statement that extends the lease `holder` took at `epoch` by `lease_ms` from now, if it
/// is still theirs and unexpired: one row changed, or none.
fn extend(holder: &str, epoch: i64, lease_ms: i64) -> super::db::Query {
    query(
        "UPDATE lease SET expires_at = clock_timestamp() + make_interval(secs => $4::bigint / 1000.0)
         WHERE name = $1 AND holder = $2 AND epoch = $3 AND expires_at > clock_timestamp()",
    )
    .bind(LEADER)
    .bind(holder)
    .bind(epoch)
    .bind(lease_ms)
}
