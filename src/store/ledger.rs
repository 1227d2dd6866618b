//! The ledger table: attempts committed before `renew` is sent, and their outcomes.
//!
//! [`Store::begin_attempt`] is the "no row, no request" gate: it returns once the `sending`
//! row is committed (durably, in a group commit with the other renewals' writes: `group.rs`)
//! and fails with [`StoreError::Conflict`] when another process holds the same period key.

use sqlx::FromRow;

use super::db::{Query, Tx, query};
use super::{Store, StoreError};
use crate::attempt::{LedgerEntry, LedgerState, NewAttempt, RenewalTerms, Settlement};
use crate::purchase::PurchaseState;
use crate::values::{Cents, EpochMs, PlanId, SubscriptionId};

#[derive(FromRow)]
struct Raw {
    id: i64,
    subscription_id: String,
    active_until_before_ms: i64,
    attempt: i64,
    plan_id: String,
    repeat_count: i64,
    price_cents: i64,
    coupon_code: Option<String>,
    expected_end_at_ms: i64,
    actual_end_at_ms: Option<i64>,
    state: String,
    http_status: Option<i64>,
    error: Option<String>,
    origin: String,
    created_at_ms: i64,
    updated_at_ms: i64,
    retry_at_ms: Option<i64>,
}

macro_rules! select_ledger {
    () => {
        "SELECT id, subscription_id, active_until_before_ms, attempt, plan_id, repeat_count, price_cents, coupon_code,
                expected_end_at_ms, actual_end_at_ms, state, http_status, error, origin, created_at_ms, updated_at_ms,
                retry_at_ms
         FROM ledger"
    };
}

/// A committed `sending` row: the request may go now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sending {
    /// The ledger row's id.
    pub id: i64,
    /// On PostgreSQL, when the request must have ended (its timeout is cut to end by then):
    /// the lease the fence extended, less [`super::LEASE_MARGIN_MS`], so that no other node
    /// can lead while it may still be sent. `None` on SQLite.
    pub deadline: Option<std::time::Instant>,
}

impl Store {
    fn ledger_entry(&self, r: Raw) -> Result<LedgerEntry, StoreError> {
        let corrupt = |what: String| StoreError::Corrupt {
            path: self.path.clone(),
            detail: format!("ledger row {}: {what}", r.id),
        };
        let subscription_id = SubscriptionId::parse(&r.subscription_id).map_err(|e| corrupt(e.to_string()))?;
        let plan_id = PlanId::parse(&r.plan_id).map_err(|e| corrupt(e.to_string()))?;
        Ok(LedgerEntry {
            id: r.id,
            subscription_id,
            origin: r.origin.parse().map_err(corrupt)?,
            renewal: RenewalTerms {
                active_until_before: EpochMs(r.active_until_before_ms),
                attempt: u32::try_from(r.attempt).map_err(|_| corrupt(format!("attempt {}", r.attempt)))?,
                plan_id,
                repeat_count: u32::try_from(r.repeat_count)
                    .map_err(|_| corrupt(format!("repeat_count {}", r.repeat_count)))?,
                price: Cents(r.price_cents),
                coupon_code: r.coupon_code,
                expected_end_at: EpochMs(r.expected_end_at_ms),
            },
            state: r.state.parse().map_err(corrupt)?,
            actual_end_at: r.actual_end_at_ms.map(EpochMs),
            http_status: r.http_status.and_then(|s| u16::try_from(s).ok()),
            error: r.error,
            retry_at: r.retry_at_ms.map(EpochMs),
            created_at: EpochMs(r.created_at_ms),
            updated_at: EpochMs(r.updated_at_ms),
        })
    }

    fn ledger_entries(&self, rows: Vec<Raw>) -> Result<Vec<LedgerEntry>, StoreError> {
        rows.into_iter().map(|r| self.ledger_entry(r)).collect()
    }

    /// Commits a `sending` row for `a`; only after this returns may `renew` be sent.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the period key `(subscription, activeUntil, attempt)` is
    /// taken (another process is renewing it); any other [`StoreError`] means nothing was
    /// written and nothing may be sent; on PostgreSQL [`StoreError::LeaseLost`] when this node
    /// no longer leads (the fence, `lease.rs`).
    #[tracing::instrument(skip_all, fields(subscription_id = %a.subscription_id, attempt = a.renewal.attempt))]
    pub async fn begin_attempt(&self, a: &NewAttempt, now: EpochMs) -> Result<Sending, StoreError> {
        match self.grouped(super::group::Job::Begin { attempt: a.clone(), now }).await? {
            super::group::Done::Begin(id, deadline) => Ok(Sending { id, deadline }),
            super::group::Done::Outcome(_) => unreachable!("a Begin job answers Begin"),
        }
    }

    /// Inserts the `sending` row of `a` inside a transaction (the caller commits).
    pub(super) async fn insert_attempt(&self, conn: &mut Tx, a: &NewAttempt, now: EpochMs) -> Result<i64, StoreError> {
        let (id, r) = (&a.subscription_id, &a.renewal);
        let what = format!("ledger attempt ({id}, {}, {})", r.active_until_before.0, r.attempt);
        query(
            "INSERT INTO ledger (subscription_id, active_until_before_ms, attempt, plan_id, repeat_count, price_cents, coupon_code,
                                 expected_end_at_ms, state, origin, created_at_ms, updated_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'sending', $9, $10, $11) RETURNING id",
        )
        .bind(id.as_str())
        .bind(r.active_until_before.0)
        .bind(i64::from(r.attempt))
        .bind(r.plan_id.as_str())
        .bind(i64::from(r.repeat_count))
        .bind(r.price.0)
        .bind(r.coupon_code.as_deref())
        .bind(r.expected_end_at.0)
        .bind(a.origin.as_str())
        .bind(now.0)
        .bind(now.0)
        .scalar(&mut *conn)
        .await
        .map_err(|e| StoreError::from_sqlx(&self.path, &what, e))
    }

    /// Records how attempt `id` ended.
    ///
    /// # Errors
    /// [`StoreError`]: read-only, locked, …
    #[tracing::instrument(skip_all, fields(ledger_id = id, state = %s.state))]
    pub async fn settle(&self, id: i64, s: &Settlement, now: EpochMs) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        settle_in(&mut tx, id, s, now).await.map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))
    }

    /// Every entry for one subscription, oldest first.
    ///
    /// # Errors
    /// [`StoreError`] from the database, or `Corrupt` for an unreadable row.
    #[tracing::instrument(skip_all, fields(subscription_id = %id))]
    pub async fn ledger_for(&self, id: &SubscriptionId) -> Result<Vec<LedgerEntry>, StoreError> {
        let rows = query(concat!(select_ledger!(), " WHERE subscription_id = $1 ORDER BY id"))
            .bind(id.as_str())
            .fetch_all(self.pool())
            .await
            .map_err(|e| self.err(e))?;
        self.ledger_entries(rows)
    }

    /// Every entry of the given periods `(subscription, activeUntil)`, oldest first: one query
    /// for a whole cycle, however many subscriptions.
    ///
    /// # Errors
    /// As [`Store::ledger_for`].
    #[tracing::instrument(skip_all, fields(periods = periods.len()))]
    pub async fn ledger_for_periods(
        &self,
        periods: &[(SubscriptionId, EpochMs)],
    ) -> Result<Vec<LedgerEntry>, StoreError> {
        let keys: Vec<(&str, i64)> = periods.iter().map(|(id, t)| (id.as_str(), t.0)).collect();
        let json = self.to_json(&keys)?;
        let rows = Query::each(
            concat!(
                select_ledger!(),
                " WHERE (subscription_id, active_until_before_ms) IN
                   (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each($1)) ORDER BY id"
            ),
            concat!(
                select_ledger!(),
                " WHERE (subscription_id, active_until_before_ms) IN
                   (SELECT e->>0, (e->>1)::bigint FROM jsonb_array_elements($1::jsonb) AS e) ORDER BY id"
            ),
        )
        .bind(json)
        .fetch_all(self.pool())
        .await
        .map_err(|e| self.err(e))?;
        self.ledger_entries(rows)
    }

    /// When a renewal last succeeded (any subscription's), if ever: the balance covered it then.
    ///
    /// # Errors
    /// [`StoreError`] from the database.
    #[tracing::instrument(skip_all)]
    pub async fn last_success_at(&self) -> Result<Option<EpochMs>, StoreError> {
        let at: Option<i64> = query("SELECT max(updated_at_ms) FROM ledger WHERE state = 'succeeded'")
            .scalar(self.pool())
            .await
            .map_err(|e| self.err(e))?;
        Ok(at.map(EpochMs))
    }

    /// Per subscription, the latest expiry a succeeded renewal recorded.
    ///
    /// # Errors
    /// [`StoreError`] from the database.
    #[tracing::instrument(skip_all)]
    pub async fn paid_until(&self) -> Result<std::collections::HashMap<SubscriptionId, EpochMs>, StoreError> {
        let rows: Vec<(String, i64)> = query(
            "SELECT subscription_id, max(actual_end_at_ms) FROM ledger
             WHERE state = 'succeeded' AND actual_end_at_ms IS NOT NULL GROUP BY subscription_id",
        )
        .fetch_all(self.pool())
        .await
        .map_err(|e| self.err(e))?;
        Ok(rows.into_iter().filter_map(|(id, t)| Some((SubscriptionId::parse(&id).ok()?, EpochMs(t)))).collect())
    }

    /// Per subscription, its latest succeeded renewal (by id): the plan a forecast assumes
    /// when it has not read the subscription's renewal plans.
    ///
    /// # Errors
    /// As [`Store::ledger_for`].
    #[tracing::instrument(skip_all)]
    pub async fn last_renewals(&self) -> Result<Vec<LedgerEntry>, StoreError> {
        let rows = query(concat!(
            select_ledger!(),
            " WHERE id IN (SELECT max(id) FROM ledger WHERE state = 'succeeded' GROUP BY subscription_id) ORDER BY id"
        ))
        .fetch_all(self.pool())
        .await
        .map_err(|e| self.err(e))?;
        self.ledger_entries(rows)
    }

    /// Every `sending` or `unknown` entry, oldest first: what reconciliation must settle.
    ///
    /// # Errors
    /// As [`Store::ledger_for`].
    #[tracing::instrument(skip_all)]
    pub async fn open_entries(&self) -> Result<Vec<LedgerEntry>, StoreError> {
        let rows = query(concat!(select_ledger!(), " WHERE state IN ('sending', 'unknown') ORDER BY id"))
            .fetch_all(self.pool())
            .await
            .map_err(|e| self.err(e))?;
        self.ledger_entries(rows)
    }

    /// The newest entries first, optionally for one subscription, at most `limit`.
    ///
    /// # Errors
    /// As [`Store::ledger_for`].
    #[tracing::instrument(skip_all)]
    pub async fn history(&self, id: Option<&SubscriptionId>, limit: u32) -> Result<Vec<LedgerEntry>, StoreError> {
        let rows =
            query(concat!(select_ledger!(), " WHERE $1 IS NULL OR subscription_id = $1 ORDER BY id DESC LIMIT $2"))
                .bind(id.map(SubscriptionId::as_str))
                .bind(i64::from(limit))
                .fetch_all(self.pool())
                .await
                .map_err(|e| self.err(e))?;
        self.ledger_entries(rows)
    }

    /// Marks every `sending` row `unknown`: run at start-up, since a row left `sending` means
    /// a process stopped mid-request and the provider may have applied it. Returns how many.
    ///
    /// # Errors
    /// [`StoreError`]: read-only, locked, …
    #[tracing::instrument(skip_all)]
    pub async fn sending_to_unknown(&self, now: EpochMs) -> Result<u64, StoreError> {
        let mut tx = self.write_tx().await?;
        let done = query(
            "UPDATE ledger SET state = 'unknown', updated_at_ms = $1, error = coalesce(error, 'the process stopped while the request was in flight') WHERE state = 'sending'",
        )
        .bind(now.0)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok(done)
    }

    /// What counts against the budget since `since`: the expected price of every attempt
    /// that was or may have been charged ([`LedgerState::counts_as_spend`]: sending,
    /// succeeded, unknown), and the total of every purchase that was or may have been made
    /// ([`PurchaseState::counts_as_spend`]).
    ///
    /// # Errors
    /// [`StoreError`] from the database.
    #[tracing::instrument(skip_all)]
    pub async fn spend_since(&self, since: EpochMs) -> Result<Cents, StoreError> {
        // Summed per state, and the states chosen here, so that the rule lives in one place.
        let per_state: Vec<(String, i64)> = query(
            "SELECT 'ledger:' || state, CAST(coalesce(sum(price_cents), 0) AS BIGINT) FROM ledger WHERE created_at_ms >= $1 GROUP BY state
             UNION ALL
             SELECT 'purchase:' || state, CAST(coalesce(sum(price_cents), 0) AS BIGINT) FROM purchases WHERE created_at_ms >= $1 GROUP BY state",
        )
        .bind(since.0)
        .fetch_all(self.pool())
        .await
        .map_err(|e| self.err(e))?;
        let mut sum = 0_i64;
        for (state, cents) in per_state {
            if self.counts_as_spend(&state)? {
                sum = sum.saturating_add(cents);
            }
        }
        Ok(Cents(sum))
    }

    /// Whether a `ledger:STATE` or `purchase:STATE` row counts against the budget.
    fn counts_as_spend(&self, state: &str) -> Result<bool, StoreError> {
        let corrupt = |e: String| StoreError::Corrupt { path: self.path.clone(), detail: e };
        match state.split_once(':') {
            Some(("ledger", s)) => {
                s.parse::<LedgerState>().map(LedgerState::counts_as_spend).map_err(|e| corrupt(format!("ledger: {e}")))
            }
            Some(("purchase", s)) => s
                .parse::<PurchaseState>()
                .map(PurchaseState::counts_as_spend)
                .map_err(|e| corrupt(format!("purchases: {e}"))),
            _ => Err(corrupt(format!("spend row of unknown origin {state:?}"))),
        }
    }
}

impl Store {
    /// Every attempt and purchase created at or after `since` that counts against the budget
    /// (the rows [`Store::spend_since`] sums), as (created at, price in cents), oldest first: the
    /// forecast rolls the 24 h window forward with them.
    ///
    /// # Errors
    /// [`StoreError`] from the database, or `Corrupt` for an unknown state.
    #[tracing::instrument(skip_all)]
    pub async fn spend_rows_since(&self, since: EpochMs) -> Result<Vec<(EpochMs, Cents)>, StoreError> {
        let rows: Vec<(String, i64, i64)> = query(
            "SELECT 'ledger:' || state, created_at_ms, price_cents FROM ledger WHERE created_at_ms >= $1
             UNION ALL
             SELECT 'purchase:' || state, created_at_ms, price_cents FROM purchases WHERE created_at_ms >= $1
             ORDER BY 2",
        )
        .bind(since.0)
        .fetch_all(self.pool())
        .await
        .map_err(|e| self.err(e))?;
        let mut out = Vec::with_capacity(rows.len());
        for (state, at, cents) in rows {
            if self.counts_as_spend(&state)? {
                out.push((EpochMs(at), Cents(cents)));
            }
        }
        Ok(out)
    }
}

/// Records how attempt `id` ended, inside `tx`: only while its outcome is open (`sending` or
/// `unknown`), so that a late word from a leader that lost its lease meanwhile (it was paused)
/// cannot undo what the new leader settled.
pub(super) async fn settle_in(tx: &mut Tx, id: i64, s: &Settlement, now: EpochMs) -> Result<(), sqlx::Error> {
    query("UPDATE ledger SET state = $1, actual_end_at_ms = coalesce($2, actual_end_at_ms), http_status = coalesce($3, http_status), error = coalesce($4, error), retry_at_ms = coalesce($5, retry_at_ms), updated_at_ms = $6 WHERE id = $7 AND state IN ('sending', 'unknown')")
        .bind(s.state.as_str())
        .bind(s.actual_end_at.map(|t| t.0))
        .bind(s.http_status.map(i64::from))
        .bind(s.error.as_deref())
        .bind(s.retry_at.map(|t| t.0))
        .bind(now.0)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map(drop)
}
