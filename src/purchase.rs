//! A purchase as the purchases ledger records it: its terms ([`PurchaseTerms`]: plan,
//! quantity, repeat count, the total shown), the states it moves through, the rule the new
//! subscriptions get ([`RuleOverrides`]), and what a purchase came to ([`PurchaseOutcome`]).
//! Plain data over [`crate::values`] and [`crate::rule`]; the SQL is in `store/purchases.rs`,
//! the code that buys in `purchaser.rs`.
//!
//! `op=purchase` has no idempotency key and nothing like `activeUntil` to read back: the only
//! evidence of a purchase is new subscription ids. So a purchase is recorded before it is sent
//! (no row, no request), is never retried, and one whose answer was lost stays `unknown`
//! until a person settles it (`proxy-renewd purchase reconcile`).

use std::fmt;
use std::str::FromStr;

use crate::rule::{PlanChoice, Rule};
use crate::values::{Cents, EpochMs, PlanId, SubscriptionId};

/// Where a purchase stands.
///
/// ```text
///             purchase sent               200 + subscriptionIds
///  (no row) ──────────────▶ sending ─────────────────────────▶ done
///   row committed first        │  400/401/402/403/409/429, or not sent
///                              ├────────────────────────────▶ refused
///                              │  timeout, drop, 5xx, bad 200, crash
///                              └────────────────────────────▶ unknown ──▶ done        (a person: `purchase reconcile ID --applied`)
///                                                                    └──▶ not-applied (a person: `purchase reconcile ID --not-applied`)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PurchaseState {
    /// Committed, request about to be or being sent (or the process died while it was).
    Sending,
    /// The provider created the subscriptions (its answer, or a person's reconciliation).
    Done,
    /// A definite refusal, or the request never left: the provider did nothing.
    Refused,
    /// No definite answer: the provider may have created the subscriptions.
    Unknown,
    /// A person found that an unknown purchase was not applied.
    NotApplied,
}

impl PurchaseState {
    /// All states, in the diagram's order.
    pub const ALL: [PurchaseState; 5] = [
        PurchaseState::Sending,
        PurchaseState::Done,
        PurchaseState::Refused,
        PurchaseState::Unknown,
        PurchaseState::NotApplied,
    ];

    /// The name stored and printed, e.g. `not-applied`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            PurchaseState::Sending => "sending",
            PurchaseState::Done => "done",
            PurchaseState::Refused => "refused",
            PurchaseState::Unknown => "unknown",
            PurchaseState::NotApplied => "not-applied",
        }
    }

    /// Sending or unknown: the money may have been spent, and nobody knows yet. A new
    /// purchase of the same plan is refused while one is open (unless forced).
    #[must_use]
    pub fn is_open(self) -> bool {
        matches!(self, PurchaseState::Sending | PurchaseState::Unknown)
    }

    /// Counts against the daily budget: money that was or may have been spent.
    #[must_use]
    pub fn counts_as_spend(self) -> bool {
        matches!(self, PurchaseState::Sending | PurchaseState::Done | PurchaseState::Unknown)
    }
}

impl fmt::Display for PurchaseState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PurchaseState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        PurchaseState::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("unknown purchase state {s:?}"))
    }
}

/// What one purchase buys and what it costs, as shown to the person, recorded, and sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurchaseTerms {
    /// `planId`: one of `op=plans`.
    pub plan_id: PlanId,
    /// `quantity` (≥ 1): how many subscriptions.
    pub quantity: u32,
    /// `repeatCount` (≥ 1): multiplies each subscription's duration and price.
    pub repeat_count: u32,
    /// `couponCode`, if any.
    pub coupon_code: Option<String>,
    /// The total: the plan's `priceAmountCents` × repeat count × quantity, before any coupon.
    pub price: Cents,
    /// What each new subscription gets, in ms: the plan's `durationMs` × repeat count.
    pub duration_ms: i64,
}

impl PurchaseTerms {
    /// The terms for `quantity` × `repeat_count` of a plan that costs `unit` for `unit_ms`.
    /// `None` when the total does not fit in an `i64` of cents (or of ms).
    #[must_use]
    pub fn of_plan(
        plan_id: PlanId,
        unit: Cents,
        unit_ms: i64,
        quantity: u32,
        repeat_count: u32,
        coupon_code: Option<String>,
    ) -> Option<PurchaseTerms> {
        let price = unit.0.checked_mul(i64::from(repeat_count))?.checked_mul(i64::from(quantity))?;
        let duration_ms = unit_ms.checked_mul(i64::from(repeat_count))?;
        Some(PurchaseTerms { plan_id, quantity, repeat_count, coupon_code, price: Cents(price), duration_ms })
    }
}

/// The rule a purchase's new subscriptions get: each field set replaces `[defaults]`'s; all
/// `None` means they simply follow `[defaults]` (no rule row is written).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleOverrides {
    /// `Some(false)`: `--no-auto-renew`, a disabled rule per new id.
    pub enabled: Option<bool>,
    /// `--renew-before`, in ms.
    pub renew_before_ms: Option<i64>,
    /// `--renew-plan`.
    pub plan: Option<PlanChoice>,
}

impl RuleOverrides {
    /// True when nothing is overridden.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.enabled.is_none() && self.renew_before_ms.is_none() && self.plan.is_none()
    }

    /// `defaults` with these overrides applied.
    #[must_use]
    pub fn apply(&self, defaults: &Rule) -> Rule {
        let mut rule = defaults.clone();
        if let Some(enabled) = self.enabled {
            rule.enabled = enabled;
        }
        if let Some(ms) = self.renew_before_ms {
            rule.renew_before_ms = ms;
        }
        if let Some(plan) = &self.plan {
            rule.plan = plan.clone();
        }
        rule
    }
}

/// A `sending` purchase row younger than this (5 minutes, in ms) may be a `purchase`
/// command sending right now; an older one belongs to a process that died mid-request.
pub const STALE_SENDING_MS: i64 = 5 * 60_000;

/// One row of the purchases ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurchaseEntry {
    /// Row id, shown as the purchase's number (`purchase reconcile 7`).
    pub id: i64,
    /// What was bought.
    pub terms: PurchaseTerms,
    /// The rule for the new subscriptions.
    pub rule: RuleOverrides,
    /// Where it stands.
    pub state: PurchaseState,
    /// The new subscriptions, once known (the answer, or a person's reconciliation).
    pub subscription_ids: Vec<SubscriptionId>,
    /// Every subscription id listed just before the POST: what `purchase reconcile`
    /// compares a fresh `op=subscriptions` with.
    pub known_before: Vec<SubscriptionId>,
    /// The HTTP status of a refusal or a failed answer.
    pub http_status: Option<u16>,
    /// What went wrong, secret-free.
    pub error: Option<String>,
    /// When the row was committed (before the POST).
    pub created_at: EpochMs,
    /// When it last changed.
    pub updated_at: EpochMs,
}

/// What a purchase came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PurchaseOutcome {
    /// The provider created these subscriptions.
    Done {
        /// The purchase's row.
        purchase_id: i64,
        /// `subscriptionIds`.
        subscription_ids: Vec<SubscriptionId>,
    },
    /// The provider refused (or the request never left): nothing was bought.
    Refused {
        /// The purchase's row.
        purchase_id: i64,
        /// The HTTP status, `None` when not sent.
        status: Option<u16>,
        /// The provider's message (or why it was not sent), secret-free.
        message: String,
    },
    /// No definite answer: the provider may have created the subscriptions. Never retried.
    Unknown {
        /// The purchase's row.
        purchase_id: i64,
        /// What happened, secret-free.
        message: String,
    },
    /// Not sent: another purchase of this plan is open (sending or unknown) and `--force`
    /// was not given.
    Blocked {
        /// The open purchase.
        open: Box<PurchaseEntry>,
    },
    /// Not sent: the purchase could not be recorded (no row, no request).
    NotRecorded {
        /// The database's error.
        message: String,
    },
}

impl PurchaseOutcome {
    /// `done`, `refused`, `unknown`, `blocked` or `not-recorded`: the `result` of
    /// `purchase --format json`.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            PurchaseOutcome::Done { .. } => "done",
            PurchaseOutcome::Refused { .. } => "refused",
            PurchaseOutcome::Unknown { .. } => "unknown",
            PurchaseOutcome::Blocked { .. } => "blocked",
            PurchaseOutcome::NotRecorded { .. } => "not-recorded",
        }
    }
}

impl PurchaseEntry {
    /// Sending, and recently: a `purchase` command may be waiting for its answer right now,
    /// so nobody may settle it yet ([`STALE_SENDING_MS`]).
    #[must_use]
    pub fn may_be_in_flight(&self, now: EpochMs) -> bool {
        self.state == PurchaseState::Sending && now.0.saturating_sub(self.updated_at.0) <= STALE_SENDING_MS
    }
}
