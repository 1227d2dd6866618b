//! The subscriptions table: the last-seen non-secret fields of every subscription, for
//! reports, and `gone_since` for one that a poll no longer lists.

use sqlx::FromRow;

use super::db::{Query, Tx, query};
use super::{Store, StoreError};
use crate::values::{EpochMs, SubscriptionId};

/// The non-secret fields of a subscription, as stored (already cleaned: the cycle keeps
/// these of what it read, and nothing secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenSubscription {
    /// `subscriptionId`.
    pub subscription_id: SubscriptionId,
    /// `status`.
    pub status: String,
    /// `activeUntil`.
    pub active_until: EpochMs,
    /// `label`.
    pub label: Option<String>,
    /// `networkLabel`.
    pub network_label: Option<String>,
    /// `userNote`.
    pub user_note: Option<String>,
}

/// A row of the snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRow {
    /// The fields last seen.
    pub seen: SeenSubscription,
    /// First poll that listed it.
    pub first_seen: EpochMs,
    /// Last poll that listed it.
    pub last_seen: EpochMs,
    /// First poll that no longer listed it, if it has disappeared.
    pub gone_since: Option<EpochMs>,
}

/// A run of cycles whose `op=subscriptions` read failed, one after the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadFailures {
    /// The first failed read of the run.
    pub since: EpochMs,
    /// The last failed read of the run.
    pub last: EpochMs,
    /// How many in a row.
    pub count: i64,
}

#[derive(FromRow)]
struct Raw {
    subscription_id: String,
    status: String,
    active_until_ms: i64,
    label: Option<String>,
    network_label: Option<String>,
    user_note: Option<String>,
    first_seen_ms: i64,
    last_seen_ms: i64,
    gone_since_ms: Option<i64>,
}

/// One row of [`Store::record_poll`]'s JSON: id, status, activeUntil, label, networkLabel,
/// userNote.
type SnapshotJsonRow<'a> = (&'a str, &'a str, i64, Option<&'a str>, Option<&'a str>, Option<&'a str>);

impl Store {
    /// Records one complete poll: upserts every listed subscription and marks the ones no
    /// longer listed as gone (once). One transaction. Returns the subscriptions this poll
    /// found gone (listed before, not now), as last seen.
    ///
    /// # Errors
    /// [`StoreError`]: read-only, locked, …
    #[tracing::instrument(skip_all, fields(count = seen.len()))]
    pub async fn record_poll(
        &self,
        seen: &[SeenSubscription],
        now: EpochMs,
    ) -> Result<Vec<SeenSubscription>, StoreError> {
        // All rows in one statement, as one JSON array (`[id, status, activeUntil, label,
        // networkLabel, userNote]` each): one round trip to SQLite instead of one per row.
        let rows: Vec<SnapshotJsonRow<'_>> = seen
            .iter()
            .map(|s| {
                let id = s.subscription_id.as_str();
                let (label, network, note) = (s.label.as_deref(), s.network_label.as_deref(), s.user_note.as_deref());
                (id, s.status.as_str(), s.active_until.0, label, network, note)
            })
            .collect();
        let json = self.to_json(&rows)?;
        let mut tx = self.write_tx().await?;
        upsert_seen(&mut tx, json, now).await.map_err(|e| self.err(e))?;
        let gone: Vec<Raw> = query(
            "UPDATE subscriptions SET gone_since_ms = $1 WHERE last_seen_ms < $2 AND gone_since_ms IS NULL
             RETURNING subscription_id, status, active_until_ms, label, network_label, user_note, first_seen_ms, last_seen_ms, gone_since_ms",
        )
        .bind(now.0)
        .bind(now.0)
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))?;
        gone.into_iter().map(|r| self.snapshot_row(r).map(|row| row.seen)).collect()
    }

    /// Records one subscription as just seen (after `switch-network` answered with it),
    /// without a whole poll: nothing is marked gone.
    ///
    /// # Errors
    /// [`StoreError`]: read-only, locked, …
    #[tracing::instrument(skip_all, fields(subscription_id = %s.subscription_id))]
    pub async fn record_seen(&self, s: &SeenSubscription, now: EpochMs) -> Result<(), StoreError> {
        let (label, network, note) = (s.label.as_deref(), s.network_label.as_deref(), s.user_note.as_deref());
        let row: SnapshotJsonRow<'_> =
            (s.subscription_id.as_str(), s.status.as_str(), s.active_until.0, label, network, note);
        let json = self.to_json(&[row])?;
        let mut tx = self.write_tx().await?;
        upsert_seen(&mut tx, json, now).await.map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))
    }

    /// Every subscription ever seen, by id.
    ///
    /// # Errors
    /// [`StoreError`] from the database, or `Corrupt` for an unreadable row.
    #[tracing::instrument(skip_all)]
    pub async fn snapshot(&self) -> Result<Vec<SnapshotRow>, StoreError> {
        let rows: Vec<Raw> = query(
            "SELECT subscription_id, status, active_until_ms, label, network_label, user_note, first_seen_ms, last_seen_ms, gone_since_ms
             FROM subscriptions ORDER BY subscription_id",
        )
        .fetch_all(self.pool())
        .await
        .map_err(|e| self.err(e))?;
        rows.into_iter().map(|r| self.snapshot_row(r)).collect()
    }

    fn snapshot_row(&self, r: Raw) -> Result<SnapshotRow, StoreError> {
        let subscription_id = SubscriptionId::parse(&r.subscription_id)
            .map_err(|e| StoreError::Corrupt { path: self.path.clone(), detail: format!("subscriptions row: {e}") })?;
        Ok(SnapshotRow {
            seen: SeenSubscription {
                subscription_id,
                status: r.status,
                active_until: EpochMs(r.active_until_ms),
                label: r.label,
                network_label: r.network_label,
                user_note: r.user_note,
            },
            first_seen: EpochMs(r.first_seen_ms),
            last_seen: EpochMs(r.last_seen_ms),
            gone_since: r.gone_since_ms.map(EpochMs),
        })
    }

    /// Records that a real cycle finished at `at`.
    ///
    /// # Errors
    /// [`StoreError`]: read-only, locked, …
    pub async fn record_cycle(&self, at: EpochMs) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        query("INSERT INTO daemon_state (key, value) VALUES ('last_cycle_ms', $1) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
            .bind(at.0)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))
    }

    /// When the last real cycle finished, if any has.
    ///
    /// # Errors
    /// [`StoreError`] from the database.
    pub async fn last_cycle(&self) -> Result<Option<EpochMs>, StoreError> {
        let v: Option<i64> = query("SELECT value FROM daemon_state WHERE key = 'last_cycle_ms'")
            .scalar_optional(self.pool())
            .await
            .map_err(|e| self.err(e))?;
        Ok(v.map(EpochMs))
    }

    /// Records a cycle whose `op=subscriptions` read failed at `now`; returns the run of
    /// failures it extends (since when, how many in a row).
    ///
    /// # Errors
    /// [`StoreError`]: read-only, locked, …
    pub async fn record_read_failure(&self, now: EpochMs) -> Result<ReadFailures, StoreError> {
        let mut tx = self.write_tx().await?;
        query(
            "INSERT INTO daemon_state (key, value) VALUES ('reads_failing_since_ms', $1) ON CONFLICT (key) DO NOTHING",
        )
        .bind(now.0)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.err(e))?;
        query(
            "INSERT INTO daemon_state (key, value) VALUES ('reads_last_failed_ms', $1) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(now.0)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.err(e))?;
        query(
            "INSERT INTO daemon_state (key, value) VALUES ('reads_failed', 1) ON CONFLICT (key) DO UPDATE SET value = daemon_state.value + 1",
        )
        .execute(&mut *tx)
        .await
        .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok(self.read_failures().await?.unwrap_or(ReadFailures { since: now, last: now, count: 1 }))
    }

    /// Records a successful read: the run of failures (if any) ends; returns it.
    ///
    /// # Errors
    /// [`StoreError`]: read-only, locked, …
    pub async fn record_read_success(&self) -> Result<Option<ReadFailures>, StoreError> {
        let Some(run) = self.read_failures().await? else { return Ok(None) };
        let mut tx = self.write_tx().await?;
        query(
            "DELETE FROM daemon_state WHERE key IN ('reads_failing_since_ms', 'reads_last_failed_ms', 'reads_failed')",
        )
        .execute(&mut *tx)
        .await
        .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok(Some(run))
    }

    /// The current run of failed `op=subscriptions` reads, if the last read failed.
    ///
    /// # Errors
    /// [`StoreError`] from the database.
    pub async fn read_failures(&self) -> Result<Option<ReadFailures>, StoreError> {
        let rows: Vec<(String, i64)> = query(
            "SELECT key, value FROM daemon_state WHERE key IN ('reads_failing_since_ms', 'reads_last_failed_ms', 'reads_failed')",
        )
        .fetch_all(self.pool())
        .await
        .map_err(|e| self.err(e))?;
        let get = |k: &str| rows.iter().find(|(key, _)| key == k).map(|(_, v)| *v);
        Ok(get("reads_failing_since_ms").map(|since| ReadFailures {
            since: EpochMs(since),
            last: EpochMs(get("reads_last_failed_ms").unwrap_or(since)),
            count: get("reads_failed").unwrap_or(1),
        }))
    }

    /// Has a poll ever listed `id`?
    ///
    /// # Errors
    /// [`StoreError`] from the database.
    pub async fn has_seen(&self, id: &SubscriptionId) -> Result<bool, StoreError> {
        let n: i64 = query("SELECT count(*) FROM subscriptions WHERE subscription_id = $1")
            .bind(id.as_str())
            .scalar(self.pool())
            .await
            .map_err(|e| self.err(e))?;
        Ok(n > 0)
    }
}

/// Upserts the rows of `json` (an array of [`SnapshotJsonRow`]s) as seen at `now`, inside `tx`.
async fn upsert_seen(tx: &mut Tx, json: String, now: EpochMs) -> Result<(), sqlx::Error> {
    Query::each(
        "INSERT INTO subscriptions (subscription_id, status, active_until_ms, label, network_label, user_note, first_seen_ms, last_seen_ms)
             SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'),
                    json_extract(value, '$[3]'), json_extract(value, '$[4]'), json_extract(value, '$[5]'), $2, $2
             FROM json_each($1) WHERE true
             ON CONFLICT (subscription_id) DO UPDATE SET status = excluded.status, active_until_ms = excluded.active_until_ms,
               label = excluded.label, network_label = excluded.network_label, user_note = excluded.user_note,
               last_seen_ms = excluded.last_seen_ms, gone_since_ms = NULL",
        "INSERT INTO subscriptions (subscription_id, status, active_until_ms, label, network_label, user_note, first_seen_ms, last_seen_ms)
             SELECT e->>0, e->>1, (e->>2)::bigint, e->>3, e->>4, e->>5, $2, $2
             FROM jsonb_array_elements($1::jsonb) AS e
             ON CONFLICT (subscription_id) DO UPDATE SET status = excluded.status, active_until_ms = excluded.active_until_ms,
               label = excluded.label, network_label = excluded.network_label, user_note = excluded.user_note,
               last_seen_ms = excluded.last_seen_ms, gone_since_ms = NULL",
    )
    .bind(json)
    .bind(now.0)
    .execute(&mut *tx)
    .await
    .map(drop)
}
