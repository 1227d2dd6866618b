//! The rules table: one complete [`Rule`] per subscription id.

use sqlx::FromRow;

use super::db::{Tx, query};
use super::{Store, StoreError};
use crate::rule::{PlanChoice, Rule};
use crate::values::{Cents, EpochMs, SubscriptionId};

/// A stored rule with its subscription and timestamps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleRow {
    /// The subscription it governs.
    pub subscription_id: SubscriptionId,
    /// The rule.
    pub rule: Rule,
    /// When it was first set.
    pub created_at: EpochMs,
    /// When it last changed.
    pub updated_at: EpochMs,
}

#[derive(FromRow)]
struct Raw {
    subscription_id: String,
    enabled: bool,
    renew_before_ms: i64,
    plan: String,
    repeat_count: i64,
    max_price_cents: Option<i64>,
    coupon_code: Option<String>,
    note: Option<String>,
    created_at_ms: i64,
    updated_at_ms: i64,
}

macro_rules! select_rules {
    () => {
        "SELECT subscription_id, enabled, renew_before_ms, plan, repeat_count, max_price_cents, coupon_code, note, created_at_ms, updated_at_ms FROM rules"
    };
}

impl Store {
    fn rule_row(&self, r: Raw) -> Result<RuleRow, StoreError> {
        let corrupt = |what: String| StoreError::BadRow {
            path: self.path.clone(),
            detail: what,
            remedy: "fix the row, or remove it with `proxy-renewd rules remove ID` and set it again".into(),
        };
        let subscription_id =
            SubscriptionId::parse(&r.subscription_id).map_err(|e| corrupt(format!("rules row: {e}")))?;
        let plan: PlanChoice =
            r.plan.parse().map_err(|e| corrupt(format!("rule for {subscription_id}: plan {:?}: {e}", r.plan)))?;
        let repeat_count = u32::try_from(r.repeat_count)
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| corrupt(format!("rule for {subscription_id}: repeat_count {}", r.repeat_count)))?;
        if r.renew_before_ms < 0 || r.max_price_cents.is_some_and(|c| c < 0) {
            return Err(corrupt(format!("rule for {subscription_id}: a negative renew_before_ms or max_price_cents")));
        }
        Ok(RuleRow {
            subscription_id,
            rule: Rule {
                enabled: r.enabled,
                renew_before_ms: r.renew_before_ms,
                plan,
                repeat_count,
                max_price_cents: r.max_price_cents.map(Cents),
                coupon_code: r.coupon_code,
                note: r.note,
            },
            created_at: EpochMs(r.created_at_ms),
            updated_at: EpochMs(r.updated_at_ms),
        })
    }

    /// Every stored rule, by subscription id.
    ///
    /// # Errors
    /// [`StoreError`] from the database, or `Corrupt` for a row this program cannot read.
    #[tracing::instrument(skip_all)]
    pub async fn rules(&self) -> Result<Vec<RuleRow>, StoreError> {
        let rows: Vec<Raw> = query(concat!(select_rules!(), " ORDER BY subscription_id"))
            .fetch_all(self.pool())
            .await
            .map_err(|e| self.err(e))?;
        rows.into_iter().map(|r| self.rule_row(r)).collect()
    }

    /// The rule stored for `id`, if any.
    ///
    /// # Errors
    /// As [`Store::rules`].
    #[tracing::instrument(skip_all, fields(subscription_id = %id))]
    pub async fn rule(&self, id: &SubscriptionId) -> Result<Option<RuleRow>, StoreError> {
        let row: Option<Raw> = query(concat!(select_rules!(), " WHERE subscription_id = $1"))
            .bind(id.as_str())
            .fetch_optional(self.pool())
            .await
            .map_err(|e| self.err(e))?;
        row.map(|r| self.rule_row(r)).transpose()
    }

    /// Stores `rule` for `id`, replacing any earlier one.
    ///
    /// # Errors
    /// [`StoreError`]: read-only, locked, …
    #[tracing::instrument(skip_all, fields(subscription_id = %id))]
    pub async fn put_rule(&self, id: &SubscriptionId, rule: &Rule, now: EpochMs) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        upsert(&mut tx, id, rule, now).await.map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))
    }

    /// Changes the rule for `id` in one write transaction: reads the stored rule (or starts
    /// from `defaults`), applies `change`, stores it. Concurrent updates of the same id are
    /// serialized, so none is lost. Returns the stored row and whether it existed before.
    ///
    /// # Errors
    /// [`StoreError`]: read-only, locked, or a stored row that cannot be read.
    #[tracing::instrument(skip_all, fields(subscription_id = %id))]
    pub async fn update_rule(
        &self,
        id: &SubscriptionId,
        defaults: &Rule,
        now: EpochMs,
        change: impl FnOnce(&mut Rule),
    ) -> Result<(RuleRow, bool), StoreError> {
        let mut tx = self.write_tx().await?;
        let existing: Option<Raw> = query(concat!(select_rules!(), " WHERE subscription_id = $1"))
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        let existing = existing.map(|r| self.rule_row(r)).transpose()?;
        let existed = existing.is_some();
        let mut row = existing.unwrap_or_else(|| RuleRow {
            subscription_id: id.clone(),
            rule: defaults.clone(),
            created_at: now,
            updated_at: now,
        });
        change(&mut row.rule);
        row.updated_at = now;
        upsert(&mut tx, id, &row.rule, now).await.map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok((row, existed))
    }

    /// Removes the rule for `id`; `false` when there was none.
    ///
    /// # Errors
    /// [`StoreError`]: read-only, locked, …
    #[tracing::instrument(skip_all, fields(subscription_id = %id))]
    pub async fn remove_rule(&self, id: &SubscriptionId) -> Result<bool, StoreError> {
        self.delete_for("DELETE FROM rules WHERE subscription_id = $1", id).await
    }
}

/// Stores `rule` for `id` inside `tx`, replacing any earlier one.
pub(super) async fn upsert(tx: &mut Tx, id: &SubscriptionId, rule: &Rule, now: EpochMs) -> Result<(), sqlx::Error> {
    query(
        "INSERT INTO rules (subscription_id, enabled, renew_before_ms, plan, repeat_count, max_price_cents, coupon_code, note, created_at_ms, updated_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (subscription_id) DO UPDATE SET enabled = excluded.enabled, renew_before_ms = excluded.renew_before_ms,
           plan = excluded.plan, repeat_count = excluded.repeat_count, max_price_cents = excluded.max_price_cents,
           coupon_code = excluded.coupon_code, note = excluded.note, updated_at_ms = excluded.updated_at_ms",
    )
    .bind(id.as_str())
    .bind(rule.enabled)
    .bind(rule.renew_before_ms)
    .bind(rule.plan.to_string())
    .bind(i64::from(rule.repeat_count))
    .bind(rule.max_price_cents.map(|c| c.0))
    .bind(rule.coupon_code.as_deref())
    .bind(rule.note.as_deref())
    .bind(now.0)
    .bind(now.0)
    .execute(&mut *tx)
    .await
    .map(drop)
}
