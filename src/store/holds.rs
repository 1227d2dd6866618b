//! The holds table: subscriptions the daemon will not renew again until a person acts.

use sqlx::FromRow;

use super::db::query;
use super::{Store, StoreError};
use crate::values::{EpochMs, SubscriptionId};

/// A subscription on hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    /// The subscription.
    pub subscription_id: SubscriptionId,
    /// When the hold began.
    pub since: EpochMs,
    /// The expiry the renewal left it with.
    pub active_until: EpochMs,
    /// The ledger row of that renewal.
    pub ledger_id: Option<i64>,
    /// Why, in words.
    pub reason: String,
}

#[derive(FromRow)]
struct Raw {
    subscription_id: String,
    since_ms: i64,
    active_until_ms: i64,
    ledger_id: Option<i64>,
    reason: String,
}

impl Store {
    /// Puts `hold.subscription_id` on hold (replacing an earlier hold).
    ///
    /// # Errors
    /// [`StoreError`]: read-only, locked, …
    #[tracing::instrument(skip_all, fields(subscription_id = %hold.subscription_id))]
    pub async fn put_hold(&self, hold: &Hold) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        query("INSERT INTO holds (subscription_id, since_ms, active_until_ms, ledger_id, reason) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (subscription_id) DO UPDATE SET since_ms = excluded.since_ms, active_until_ms = excluded.active_until_ms,
               ledger_id = excluded.ledger_id, reason = excluded.reason")
            .bind(hold.subscription_id.as_str())
            .bind(hold.since.0)
            .bind(hold.active_until.0)
            .bind(hold.ledger_id)
            .bind(&hold.reason)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))
    }

    /// Lifts the hold on `id`; `false` when there was none.
    ///
    /// # Errors
    /// [`StoreError`]: read-only, locked, …
    #[tracing::instrument(skip_all, fields(subscription_id = %id))]
    pub async fn clear_hold(&self, id: &SubscriptionId) -> Result<bool, StoreError> {
        self.delete_for("DELETE FROM holds WHERE subscription_id = $1", id).await
    }

    /// Every hold, by subscription id.
    ///
    /// # Errors
    /// [`StoreError`] from the database, or `Corrupt` for an unreadable row.
    #[tracing::instrument(skip_all)]
    pub async fn holds(&self) -> Result<Vec<Hold>, StoreError> {
        let rows: Vec<Raw> = query(
            "SELECT subscription_id, since_ms, active_until_ms, ledger_id, reason FROM holds ORDER BY subscription_id",
        )
        .fetch_all(self.pool())
        .await
        .map_err(|e| self.err(e))?;
        rows.into_iter()
            .map(|r| {
                Ok(Hold {
                    subscription_id: SubscriptionId::parse(&r.subscription_id).map_err(|e| StoreError::Corrupt {
                        path: self.path.clone(),
                        detail: format!("holds row: {e}"),
                    })?,
                    since: EpochMs(r.since_ms),
                    active_until: EpochMs(r.active_until_ms),
                    ledger_id: r.ledger_id,
                    reason: r.reason,
                })
            })
            .collect()
    }
}
