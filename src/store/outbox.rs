//! The alert outbox: alerts written with the event that caused them, deduplicated by
//! `(kind, subscription, period)` within the repeat interval, and marked sent only after the
//! SMTP server accepted them. Failed deliveries are retried with backoff; nothing is dropped.

use sqlx::FromRow;

use super::db::{Query, Tx, query};
use super::{Store, StoreError};
use crate::alert::Alert;
use crate::attempt::Settlement;
use crate::values::EpochMs;

/// A stored alert and its delivery state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    /// Row id.
    pub id: i64,
    /// The alert.
    pub alert: Alert,
    /// When it was queued.
    pub created_at: EpochMs,
    /// When the SMTP server accepted it (or it was logged, without email).
    pub sent_at: Option<EpochMs>,
    /// Delivery attempts that failed.
    pub attempts: u32,
    /// Not before this.
    pub next_attempt_at: EpochMs,
    /// The last delivery error.
    pub last_error: Option<String>,
    /// The recipients that already have it.
    pub delivered_to: Vec<String>,
}

#[derive(FromRow)]
struct Raw {
    id: i64,
    payload: String,
    created_at_ms: i64,
    sent_at_ms: Option<i64>,
    attempts: i64,
    next_attempt_at_ms: i64,
    last_error: Option<String>,
    delivered_to: String,
}

macro_rules! select_outbox {
    () => {
        "SELECT id, payload, created_at_ms, sent_at_ms, attempts, next_attempt_at_ms, last_error, delivered_to FROM outbox"
    };
}

/// The note on alerts delivered to the log only.
pub const LOGGED_ONLY: &str = "logged only: no [alerts.email]";

/// Delivery backoff after `attempts` failures: 1 min, doubling, at most 1 h.
#[must_use]
pub fn delivery_backoff_ms(attempts: u32) -> i64 {
    (60_000i64 << attempts.saturating_sub(1).min(6)).min(3_600_000)
}

impl Store {
    fn outbox_row(&self, r: Raw) -> Result<OutboxRow, StoreError> {
        let alert: Alert = serde_json::from_str(&r.payload).map_err(|e| StoreError::BadRow {
            path: self.path.clone(),
            detail: format!("outbox row {}: {e}", r.id),
            remedy: "delete that row from the outbox table".into(),
        })?;
        Ok(OutboxRow {
            id: r.id,
            alert,
            created_at: EpochMs(r.created_at_ms),
            sent_at: r.sent_at_ms.map(EpochMs),
            attempts: u32::try_from(r.attempts).unwrap_or(u32::MAX),
            next_attempt_at: EpochMs(r.next_attempt_at_ms),
            last_error: r.last_error,
            delivered_to: serde_json::from_str(&r.delivered_to).unwrap_or_default(),
        })
    }

    /// Queues `alerts`, skipping any whose `(kind, subscription, period)` was queued within
    /// `repeat_interval_ms` or still waits for delivery; with `settle`, records a ledger outcome in the same transaction.
    /// Returns how many were queued.
    ///
    /// # Errors
    /// [`StoreError`]: read-only, locked, …; then nothing was written.
    #[tracing::instrument(skip_all, fields(alerts = alerts.len()))]
    pub async fn enqueue_alerts(
        &self,
        alerts: &[Alert],
        settle: Option<(i64, &Settlement)>,
        now: EpochMs,
        repeat_interval_ms: i64,
    ) -> Result<usize, StoreError> {
        let job = super::group::Job::Outcome {
            alerts: alerts.to_vec(),
            settle: settle.map(|(id, s)| (id, s.clone())),
            now,
            repeat_interval_ms,
        };
        match self.grouped(job).await? {
            super::group::Done::Outcome(n) => Ok(n),
            super::group::Done::Begin(..) => unreachable!("an Outcome job answers Outcome"),
        }
    }

    /// [`Store::enqueue_alerts`] inside a transaction (the caller commits).
    pub(super) async fn enqueue_in(
        &self,
        tx: &mut Tx,
        alerts: &[Alert],
        settle: Option<(i64, &Settlement)>,
        now: EpochMs,
        repeat_interval_ms: i64,
    ) -> Result<usize, StoreError> {
        if let Some((id, s)) = settle {
            super::ledger::settle_in(tx, id, s, now).await.map_err(|e| self.err(e))?;
        }
        let mut queued = 0;
        for a in alerts {
            let (kind, sub, period) =
                (a.kind.as_str(), a.subscription_id.as_ref().map(|s| s.as_str()), a.period.map(|p| p.0));
            let recent: i64 = query(
                "SELECT count(*) FROM outbox WHERE kind = $1 AND subscription_id IS NOT DISTINCT FROM $2 AND period_ms IS NOT DISTINCT FROM $3 AND (created_at_ms > $4 OR sent_at_ms IS NULL)",
            )
            .bind(kind)
            .bind(sub)
            .bind(period)
            .bind(now.0.saturating_sub(repeat_interval_ms))
            .scalar(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
            if recent > 0 {
                continue;
            }
            let payload = self.to_json(a)?;
            query(
                "INSERT INTO outbox (kind, subscription_id, period_ms, payload, created_at_ms, next_attempt_at_ms) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(kind)
            .bind(sub)
            .bind(period)
            .bind(payload)
            .bind(now.0)
            .bind(now.0)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
            queued += 1;
        }
        Ok(queued)
    }

    /// Unsent alerts due for delivery at `now`, oldest first.
    ///
    /// # Errors
    /// [`StoreError`] from the database, or `BadRow` for an unreadable row.
    pub async fn due_alerts(&self, now: EpochMs) -> Result<Vec<OutboxRow>, StoreError> {
        let rows: Vec<Raw> =
            query(concat!(select_outbox!(), " WHERE sent_at_ms IS NULL AND next_attempt_at_ms <= $1 ORDER BY id"))
                .bind(now.0)
                .fetch_all(self.pool())
                .await
                .map_err(|e| self.err(e))?;
        rows.into_iter().map(|r| self.outbox_row(r)).collect()
    }

    /// The outbox, newest first: every row, or only the unsent ones.
    ///
    /// # Errors
    /// As [`Store::due_alerts`].
    pub async fn outbox(&self, pending_only: bool, limit: u32) -> Result<Vec<OutboxRow>, StoreError> {
        let rows: Vec<Raw> =
            query(concat!(select_outbox!(), " WHERE ($1 = 0 OR sent_at_ms IS NULL) ORDER BY id DESC LIMIT $2"))
                .bind(i64::from(pending_only))
                .bind(i64::from(limit))
                .fetch_all(self.pool())
                .await
                .map_err(|e| self.err(e))?;
        rows.into_iter().map(|r| self.outbox_row(r)).collect()
    }

    /// How many alerts wait for delivery.
    ///
    /// # Errors
    /// [`StoreError`] from the database.
    pub async fn pending_alerts(&self) -> Result<i64, StoreError> {
        query("SELECT count(*) FROM outbox WHERE sent_at_ms IS NULL").scalar(self.pool()).await.map_err(|e| self.err(e))
    }

    /// Marks rows delivered.
    ///
    /// # Errors
    /// [`StoreError`]: read-only, locked, …
    pub async fn mark_sent(&self, ids: &[i64], now: EpochMs) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        for id in ids {
            query("UPDATE outbox SET sent_at_ms = $1, last_error = NULL WHERE id = $2")
                .bind(now.0)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err(e))?;
        }
        tx.commit().await.map_err(|e| self.err(e))
    }

    /// Marks rows delivered to the log only (no `[alerts.email]`): done, with a note saying so.
    ///
    /// # Errors
    /// [`StoreError`]: read-only, locked, …
    pub async fn mark_logged(&self, ids: &[i64], now: EpochMs) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        for id in ids {
            query("UPDATE outbox SET sent_at_ms = $1, last_error = $2 WHERE id = $3")
                .bind(now.0)
                .bind(LOGGED_ONLY)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err(e))?;
        }
        tx.commit().await.map_err(|e| self.err(e))
    }

    /// Records that `recipient` has the alerts `ids` (a retry leaves it out).
    ///
    /// # Errors
    /// [`StoreError`]: read-only, locked, …
    pub async fn mark_delivered_to(&self, ids: &[i64], recipient: &str) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        for id in ids {
            Query::each(
                "UPDATE outbox SET delivered_to = json_insert(delivered_to, '$[#]', $1)
                 WHERE id = $2 AND NOT EXISTS (SELECT 1 FROM json_each(delivered_to) WHERE value = $1)",
                "UPDATE outbox SET delivered_to = (delivered_to::jsonb || jsonb_build_array($1::text))::text
                 WHERE id = $2 AND NOT delivered_to::jsonb @> jsonb_build_array($1::text)",
            )
            .bind(recipient)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        }
        tx.commit().await.map_err(|e| self.err(e))
    }

    /// Records a failed delivery of rows: one more attempt, the next after a backoff.
    ///
    /// # Errors
    /// [`StoreError`]: read-only, locked, …
    pub async fn mark_failed(&self, ids: &[i64], error: &str, now: EpochMs) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        for id in ids {
            let attempts: i64 =
                query("UPDATE outbox SET attempts = attempts + 1, last_error = $1 WHERE id = $2 RETURNING attempts")
                    .bind(error)
                    .bind(id)
                    .scalar(&mut *tx)
                    .await
                    .map_err(|e| self.err(e))?;
            let next = now.0.saturating_add(delivery_backoff_ms(u32::try_from(attempts).unwrap_or(u32::MAX)));
            query("UPDATE outbox SET next_attempt_at_ms = $1 WHERE id = $2")
                .bind(next)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err(e))?;
        }
        tx.commit().await.map_err(|e| self.err(e))
    }

    /// Subscriptions whose latest alert is not `recovered`: those a successful renewal
    /// should send a `recovered` note for.
    ///
    /// # Errors
    /// [`StoreError`] from the database.
    pub async fn alerted_subscriptions(&self) -> Result<std::collections::HashSet<String>, StoreError> {
        let ids: Vec<String> = query(
            "SELECT o.subscription_id FROM outbox o
             WHERE o.subscription_id IS NOT NULL
               AND o.id = (SELECT max(id) FROM outbox WHERE subscription_id = o.subscription_id)
               AND o.kind != 'recovered'",
        )
        .scalars(self.pool())
        .await
        .map_err(|e| self.err(e))?;
        Ok(ids.into_iter().collect())
    }
}

/// One alert recipient's delivery state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientState {
    /// The address, as configured.
    pub address: String,
    /// Permanent refusals in a row.
    pub failures: i64,
    /// Dead-lettered since then: no more digests go to it.
    pub dead_since: Option<EpochMs>,
    /// The last refusal, secret-free.
    pub last_error: Option<String>,
}

/// A recipient is dead-lettered after this many permanent refusals in a row.
pub const DEAD_AFTER_REFUSALS: i64 = 3;

impl Store {
    /// Every recipient that has had a refusal, or is dead-lettered.
    ///
    /// # Errors
    /// [`StoreError`] from the database.
    pub async fn recipients(&self) -> Result<Vec<RecipientState>, StoreError> {
        let rows: Vec<(String, i64, Option<i64>, Option<String>)> =
            query("SELECT address, failures, dead_since_ms, last_error FROM recipients ORDER BY address")
                .fetch_all(self.pool())
                .await
                .map_err(|e| self.err(e))?;
        Ok(rows
            .into_iter()
            .map(|(address, failures, dead, last_error)| RecipientState {
                address,
                failures,
                dead_since: dead.map(EpochMs),
                last_error,
            })
            .collect())
    }

    /// Records how a delivery to `address` went: accepted (clears its record), or refused
    /// (`permanent`: counts towards dead-lettering). Returns its state after.
    ///
    /// # Errors
    /// [`StoreError`]: read-only, locked, …
    pub async fn record_recipient(
        &self,
        address: &str,
        refusal: Option<(&str, bool)>,
        now: EpochMs,
    ) -> Result<Option<RecipientState>, StoreError> {
        let mut tx = self.write_tx().await?;
        match refusal {
            None => {
                query("DELETE FROM recipients WHERE address = $1")
                    .bind(address)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| self.err(e))?;
            }
            Some((error, permanent)) => {
                query(
                    "INSERT INTO recipients (address, failures, last_error) VALUES ($1, $2, $3)
                     ON CONFLICT (address) DO UPDATE SET failures = recipients.failures + excluded.failures, last_error = excluded.last_error",
                )
                .bind(address)
                .bind(i64::from(permanent))
                .bind(error)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err(e))?;
                query("UPDATE recipients SET dead_since_ms = $1 WHERE address = $2 AND failures >= $3 AND dead_since_ms IS NULL")
                    .bind(now.0)
                    .bind(address)
                    .bind(DEAD_AFTER_REFUSALS)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| self.err(e))?;
            }
        }
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok(self.recipients().await?.into_iter().find(|r| r.address == address))
    }
}

#[cfg(test)]
mod tests {
    use super::delivery_backoff_ms;

    #[test]
    fn delivery_backs_off_from_a_minute_doubling_to_an_hour() {
        let waits: Vec<i64> = (0..=8).map(delivery_backoff_ms).collect();
        let min = 60_000;
        assert_eq!(waits, [min, min, 2 * min, 4 * min, 8 * min, 16 * min, 32 * min, 60 * min, 60 * min]);
        assert_eq!(delivery_backoff_ms(u32::MAX), 60 * min);
    }
}
