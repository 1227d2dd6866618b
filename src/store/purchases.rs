//! The purchases table: one row per `op=purchase`, committed before the POST (no row, no
//! request), settled by the answer or by a person (`purchase reconcile`). A new purchase of a
//! plan is refused in the same transaction that would insert it while another purchase of that
//! plan is open, so two concurrent `purchase` commands cannot both send.

use sqlx::FromRow;

use super::db::{Query, query};
use super::{Store, StoreError};
use crate::purchase::{PurchaseEntry, PurchaseState, PurchaseTerms, RuleOverrides};
use crate::rule::{PlanChoice, Rule};
use crate::values::{Cents, EpochMs, PlanId, SubscriptionId};

/// What [`Store::begin_purchase`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begun {
    /// The `sending` row is committed, with this id: the POST may go.
    Started(i64),
    /// Nothing written: this purchase of the same plan is open (sending or unknown).
    Blocked(Box<PurchaseEntry>),
}

/// How a purchase ended, as [`Store::settle_purchase`] records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurchaseSettlement {
    /// The new state.
    pub state: PurchaseState,
    /// The new subscriptions (`done` only).
    pub subscription_ids: Vec<SubscriptionId>,
    /// The HTTP status of a refusal or a failed answer.
    pub http_status: Option<u16>,
    /// What went wrong, secret-free.
    pub error: Option<String>,
}

#[derive(FromRow)]
struct Raw {
    id: i64,
    plan_id: String,
    quantity: i64,
    repeat_count: i64,
    coupon_code: Option<String>,
    price_cents: i64,
    duration_ms: i64,
    state: String,
    subscription_ids: String,
    known_before: String,
    rule_enabled: Option<bool>,
    rule_renew_before_ms: Option<i64>,
    rule_plan: Option<String>,
    http_status: Option<i64>,
    error: Option<String>,
    created_at_ms: i64,
    updated_at_ms: i64,
}

macro_rules! select_purchases {
    () => {
        "SELECT id, plan_id, quantity, repeat_count, coupon_code, price_cents, duration_ms, state, subscription_ids, known_before,
                rule_enabled, rule_renew_before_ms, rule_plan, http_status, error, created_at_ms, updated_at_ms FROM purchases"
    };
}

impl Store {
    /// Commits the `sending` row of a purchase of `terms`, unless another purchase of the same
    /// plan is open and `force` is false. `known_before` is every subscription id listed just
    /// before (what `purchase reconcile` compares with). One write transaction: the check and
    /// the insert cannot be split by a concurrent `purchase`.
    ///
    /// # Errors
    /// [`StoreError`]: nothing was written, and nothing may be sent.
    #[tracing::instrument(skip_all, fields(plan_id = %terms.plan_id, quantity = terms.quantity))]
    pub async fn begin_purchase(
        &self,
        terms: &PurchaseTerms,
        rule: &RuleOverrides,
        known_before: &[SubscriptionId],
        force: bool,
        now: EpochMs,
    ) -> Result<Begun, StoreError> {
        let known = self.to_json(known_before)?;
        let mut tx = self.write_tx().await?;
        if !force {
            let open: Option<Raw> = query(concat!(
                select_purchases!(),
                " WHERE plan_id = $1 AND state IN ('sending', 'unknown') ORDER BY id LIMIT 1"
            ))
            .bind(terms.plan_id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
            if let Some(open) = open {
                return Ok(Begun::Blocked(Box::new(self.purchase_row(open)?)));
            }
        }
        let id: i64 = query(
            "INSERT INTO purchases (plan_id, quantity, repeat_count, coupon_code, price_cents, duration_ms, state, known_before,
                                    rule_enabled, rule_renew_before_ms, rule_plan, created_at_ms, updated_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6, 'sending', $7, $8, $9, $10, $11, $12) RETURNING id",
        )
        .bind(terms.plan_id.as_str())
        .bind(i64::from(terms.quantity))
        .bind(i64::from(terms.repeat_count))
        .bind(terms.coupon_code.as_deref())
        .bind(terms.price.0)
        .bind(terms.duration_ms)
        .bind(known)
        .bind(rule.enabled)
        .bind(rule.renew_before_ms)
        .bind(rule.plan.as_ref().map(ToString::to_string))
        .bind(now.0)
        .bind(now.0)
        .scalar(&mut *tx)
        .await
        .map_err(|e| StoreError::from_sqlx(&self.path, "purchase row", e))?;
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok(Begun::Started(id))
    }

    /// Records how purchase `id` ended. A `done` settlement also writes the rule of each new
    /// subscription, in the same transaction, when the purchase overrides `[defaults]`
    /// (`defaults` with the row's overrides applied).
    ///
    /// # Errors
    /// [`StoreError`]: read-only, locked, or `BadRow` when no purchase has this id.
    #[tracing::instrument(skip_all, fields(purchase_id = id, state = %s.state))]
    pub async fn settle_purchase(
        &self,
        id: i64,
        s: &PurchaseSettlement,
        defaults: &Rule,
        now: EpochMs,
    ) -> Result<(), StoreError> {
        let ids = self.to_json(&s.subscription_ids)?;
        let mut tx = self.write_tx().await?;
        let row: Option<Raw> = query(concat!(select_purchases!(), " WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        let Some(row) = row else {
            return Err(StoreError::BadRow {
                path: self.path.clone(),
                detail: format!("no purchase {id}"),
                remedy: "see the purchases awaiting a decision with `proxy-renewd purchase reconcile`".into(),
            });
        };
        let entry = self.purchase_row(row)?;
        query(
            "UPDATE purchases SET state = $1, subscription_ids = $2, http_status = coalesce($3, http_status),
                                  error = coalesce($4, error), updated_at_ms = $5 WHERE id = $6",
        )
        .bind(s.state.as_str())
        .bind(ids)
        .bind(s.http_status.map(i64::from))
        .bind(s.error.as_deref())
        .bind(now.0)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.err(e))?;
        if s.state == PurchaseState::Done && !entry.rule.is_empty() {
            let rule = entry.rule.apply(defaults);
            for sub in &s.subscription_ids {
                super::rules::upsert(&mut tx, sub, &rule, now).await.map_err(|e| self.err(e))?;
            }
        }
        tx.commit().await.map_err(|e| self.err(e))
    }

    /// The purchases, newest first: all of them, or only the open ones (sending, unknown).
    ///
    /// # Errors
    /// [`StoreError`] from the database, or `Corrupt` for an unreadable row.
    #[tracing::instrument(skip_all)]
    pub async fn purchases(&self, open_only: bool, limit: u32) -> Result<Vec<PurchaseEntry>, StoreError> {
        let sql = if open_only {
            concat!(select_purchases!(), " WHERE state IN ('sending', 'unknown') ORDER BY id DESC LIMIT $1")
        } else {
            concat!(select_purchases!(), " ORDER BY id DESC LIMIT $1")
        };
        let rows: Vec<Raw> = query(sql).bind(i64::from(limit)).fetch_all(self.pool()).await.map_err(|e| self.err(e))?;
        rows.into_iter().map(|r| self.purchase_row(r)).collect()
    }

    /// The subscription ids every `done` purchase created: what no other purchase may claim.
    /// Reads only that column (a row's `known_before` can hold every id of a large fleet).
    ///
    /// # Errors
    /// [`StoreError`] from the database, or `Corrupt` for an id that does not parse.
    pub async fn purchased_ids(&self) -> Result<std::collections::HashSet<SubscriptionId>, StoreError> {
        let ids: Vec<String> = Query::each(
            "SELECT j.value FROM purchases p, json_each(p.subscription_ids) j WHERE p.state = 'done'",
            "SELECT j FROM purchases p, jsonb_array_elements_text(p.subscription_ids::jsonb) j WHERE p.state = 'done'",
        )
        .scalars(self.pool())
        .await
        .map_err(|e| self.err(e))?;
        ids.iter()
            .map(|s| {
                SubscriptionId::parse(s)
                    .map_err(|e| StoreError::Corrupt { path: self.path.clone(), detail: format!("purchases: {e}") })
            })
            .collect()
    }

    /// One purchase by id.
    ///
    /// # Errors
    /// [`StoreError`] from the database, or `Corrupt` for an unreadable row.
    pub async fn purchase(&self, id: i64) -> Result<Option<PurchaseEntry>, StoreError> {
        let row: Option<Raw> = query(concat!(select_purchases!(), " WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await
            .map_err(|e| self.err(e))?;
        row.map(|r| self.purchase_row(r)).transpose()
    }

    fn purchase_row(&self, r: Raw) -> Result<PurchaseEntry, StoreError> {
        let corrupt = |what: String| StoreError::Corrupt {
            path: self.path.clone(),
            detail: format!("purchase {}: {what}", r.id),
        };
        let plan_id = PlanId::parse(&r.plan_id).map_err(|e| corrupt(format!("plan_id: {e}")))?;
        let count = |n: i64, what: &str| {
            u32::try_from(n).ok().filter(|n| *n >= 1).ok_or_else(|| corrupt(format!("{what} {n}")))
        };
        let ids = |json: &str, what: &str| -> Result<Vec<SubscriptionId>, StoreError> {
            serde_json::from_str::<Vec<String>>(json)
                .map_err(|e| corrupt(format!("{what}: {e}")))?
                .iter()
                .map(|s| SubscriptionId::parse(s).map_err(|e| corrupt(format!("{what}: {e}"))))
                .collect()
        };
        let plan: Option<PlanChoice> =
            r.rule_plan.as_deref().map(str::parse).transpose().map_err(|e| corrupt(format!("rule_plan: {e}")))?;
        Ok(PurchaseEntry {
            id: r.id,
            terms: PurchaseTerms {
                plan_id,
                quantity: count(r.quantity, "quantity")?,
                repeat_count: count(r.repeat_count, "repeat_count")?,
                coupon_code: r.coupon_code,
                price: Cents(r.price_cents),
                duration_ms: r.duration_ms,
            },
            rule: RuleOverrides { enabled: r.rule_enabled, renew_before_ms: r.rule_renew_before_ms, plan },
            state: r.state.parse().map_err(corrupt)?,
            subscription_ids: ids(&r.subscription_ids, "subscription_ids")?,
            known_before: ids(&r.known_before, "known_before")?,
            http_status: r.http_status.and_then(|s| u16::try_from(s).ok()),
            error: r.error,
            created_at: EpochMs(r.created_at_ms),
            updated_at: EpochMs(r.updated_at_ms),
        })
    }
}
