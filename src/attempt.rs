//! A renewal attempt as the ledger records it: its terms ([`RenewalTerms`]), one entry per
//! attempt keyed by its period `(subscription_id, active_until_before, attempt)`, the states it
//! moves through (`daemon.md`, *Ledger and idempotency*), how it was settled ([`Settlement`])
//! and what it came to ([`RenewOutcome`]). Plain data over [`crate::values`]; the SQL of the
//! ledger table is in `store/ledger.rs`, the code that makes attempts in `renewer.rs`.

use std::fmt;
use std::str::FromStr;

use crate::values::{Cents, EpochMs, PlanId, SubscriptionId};

/// Where an attempt stands.
///
/// ```text
///             renew sent                  200 + endAt
///  (no row) ──────────────▶ sending ─────────────────────▶ succeeded
///   row committed first        │  400/401/402/403/404/409/429
///                              ├──────────────────────────▶ refused
///                              │  timeout, drop, 5xx, bad 200, crash
///                              └──────────────────────────▶ unknown ──▶ succeeded (activeUntil reached the expected expiry)
///                                                                  ├──▶ ambiguous (activeUntil moved, by another amount)
///                                                                  └──▶ failed    (unchanged after reconcile_after)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LedgerState {
    /// Committed, request about to be or being sent.
    Sending,
    /// The provider answered 200 with `endAt`, or a later read showed `activeUntil` advanced.
    Succeeded,
    /// A definite refusal: the provider did nothing.
    Refused,
    /// No definite answer: the provider may have applied it.
    Unknown,
    /// Reconciliation found `activeUntil` unchanged long enough: it was not applied.
    Failed,
    /// Reconciliation found `activeUntil` moved, but not to the expiry this attempt expected
    /// (a goodwill credit, another renewal, a change at the provider): not booked as spend,
    /// and the subscription is held for a person, never followed by a blind new attempt.
    Ambiguous,
}

impl LedgerState {
    /// All states, in the diagram's order.
    pub const ALL: [LedgerState; 6] = [
        LedgerState::Sending,
        LedgerState::Succeeded,
        LedgerState::Refused,
        LedgerState::Unknown,
        LedgerState::Failed,
        LedgerState::Ambiguous,
    ];

    /// The name stored and printed, e.g. `unknown`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            LedgerState::Sending => "sending",
            LedgerState::Succeeded => "succeeded",
            LedgerState::Refused => "refused",
            LedgerState::Unknown => "unknown",
            LedgerState::Failed => "failed",
            LedgerState::Ambiguous => "ambiguous",
        }
    }

    /// Sending or unknown: the money may be in flight, so nothing else may be tried.
    #[must_use]
    pub fn is_open(self) -> bool {
        matches!(self, LedgerState::Sending | LedgerState::Unknown)
    }

    /// Counts against the daily budget: money that was or may have been spent.
    #[must_use]
    pub fn counts_as_spend(self) -> bool {
        matches!(self, LedgerState::Sending | LedgerState::Succeeded | LedgerState::Unknown)
    }
}

impl fmt::Display for LedgerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LedgerState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        LedgerState::ALL.into_iter().find(|st| st.as_str() == s).ok_or_else(|| format!("unknown ledger state {s:?}"))
    }
}

/// Who started an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// A `run` or `once` cycle.
    Daemon,
    /// `proxy-renewd renew`.
    Manual,
}

impl Origin {
    /// `daemon` or `manual`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Daemon => "daemon",
            Origin::Manual => "manual",
        }
    }
}

impl FromStr for Origin {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "daemon" => Ok(Origin::Daemon),
            "manual" => Ok(Origin::Manual),
            other => Err(format!("unknown origin {other:?}")),
        }
    }
}

/// The terms of one renewal: what the policy decides, the ledger records, and `renew` sends.
/// (The provider's answer to `renew` is [`crate::api::Renewed`].)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenewalTerms {
    /// The period: the `activeUntil` seen when deciding.
    pub active_until_before: EpochMs,
    /// 1 for the first attempt of the period, then 2, 3…
    pub attempt: u32,
    /// `planId`.
    pub plan_id: PlanId,
    /// `repeatCount`.
    pub repeat_count: u32,
    /// Expected price: plan price × repeat count, before any coupon (which can only lower it).
    pub price: Cents,
    /// `couponCode`.
    pub coupon_code: Option<String>,
    /// max(activeUntil, now) + durationMs × repeatCount.
    pub expected_end_at: EpochMs,
}

/// A renewal attempt about to be sent: what the renewer commits before `renew`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAttempt {
    /// The subscription.
    pub subscription_id: SubscriptionId,
    /// The terms.
    pub renewal: RenewalTerms,
    /// Daemon or manual.
    pub origin: Origin,
}

/// One row of the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    /// Row id.
    pub id: i64,
    /// The subscription.
    pub subscription_id: SubscriptionId,
    /// What was committed.
    pub renewal: RenewalTerms,
    /// Daemon or manual.
    pub origin: Origin,
    /// Where it stands.
    pub state: LedgerState,
    /// `endAt` from the provider, or the advanced `activeUntil` that reconciled it.
    pub actual_end_at: Option<EpochMs>,
    /// The HTTP status answered, if any.
    pub http_status: Option<u16>,
    /// A secret-free description of what went wrong.
    pub error: Option<String>,
    /// The earliest next attempt a refusal asked for (429 `Retry-After`).
    pub retry_at: Option<EpochMs>,
    /// When the row was committed.
    pub created_at: EpochMs,
    /// When it last changed.
    pub updated_at: EpochMs,
}

/// How an attempt ended: what `store.settle` writes to its ledger row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    /// The new state.
    pub state: LedgerState,
    /// `endAt`, or the advanced `activeUntil`.
    pub actual_end_at: Option<EpochMs>,
    /// The HTTP status, if one came back.
    pub http_status: Option<u16>,
    /// A secret-free description of what went wrong.
    pub error: Option<String>,
    /// The earliest next attempt a refusal asked for (429 `Retry-After`).
    pub retry_at: Option<EpochMs>,
}

/// What became of one renewal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenewOutcome {
    /// 200 with `endAt`.
    Succeeded {
        /// Ledger row.
        ledger_id: i64,
        /// The new expiry.
        end_at: EpochMs,
        /// The renewal left it still due: on hold until a person acts.
        held: bool,
    },
    /// 200, but `endAt` is not a plausible ms expiry (`malformed`): the provider applied
    /// something, but what cannot be told from the answer. Recorded `unknown`, settled by
    /// reading `activeUntil` back like any unknown outcome; never stored as paid-until.
    ImplausibleEnd {
        /// Ledger row.
        ledger_id: i64,
        /// The `endAt` answered.
        end_at: EpochMs,
    },
    /// A definite refusal; nothing was charged.
    Refused {
        /// Ledger row.
        ledger_id: i64,
        /// HTTP status (400, 401, 402, 403, 404, 409, 429).
        status: u16,
        /// What the provider said and what to do.
        message: String,
        /// `Retry-After` of a 429, in ms, when it said.
        retry_after_ms: Option<i64>,
    },
    /// No definite answer: the provider may have applied it; reconciliation will tell.
    Unknown {
        /// Ledger row.
        ledger_id: i64,
        /// The HTTP status, if one came back.
        status: Option<u16>,
        /// What went wrong.
        message: String,
    },
    /// The request never left (no connection): the row is `failed`, a later cycle may retry.
    NotSent {
        /// Ledger row.
        ledger_id: i64,
        /// Why.
        message: String,
    },
    /// Another process committed this period's attempt first; this one sent nothing.
    Conflict,
    /// The ledger row could not be written, so nothing was sent.
    NotRecorded {
        /// The database error.
        message: String,
    },
    /// Not tried in this cycle (no row, nothing sent), e.g. after the balance ran short.
    NotAttempted {
        /// Why.
        reason: String,
        /// Because a 402 in this cycle showed the balance short (not a shutdown).
        balance_short: bool,
    },
}

impl RenewOutcome {
    /// The balance was short: refused with 402, or not tried after a 402 in the same cycle.
    #[must_use]
    pub fn balance_short(&self) -> bool {
        matches!(
            self,
            RenewOutcome::Refused { status: 402, .. } | RenewOutcome::NotAttempted { balance_short: true, .. }
        )
    }

    /// Succeeded and not held: nothing for a person to do.
    #[must_use]
    pub fn is_clean_success(&self) -> bool {
        matches!(self, RenewOutcome::Succeeded { held: false, .. })
    }

    /// Did a `renew` request leave (whatever came back)?
    #[must_use]
    pub fn was_sent(&self) -> bool {
        matches!(
            self,
            RenewOutcome::Succeeded { .. }
                | RenewOutcome::Refused { .. }
                | RenewOutcome::Unknown { .. }
                | RenewOutcome::ImplausibleEnd { .. }
        )
    }

    /// A short name: `succeeded`, `held`, `refused`, `unknown`, `not-sent`, `conflict`,
    /// `not-recorded`, `not-attempted` (an implausible `endAt` is `unknown`).
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            RenewOutcome::Succeeded { held: true, .. } => "held",
            RenewOutcome::Succeeded { .. } => "succeeded",
            RenewOutcome::Refused { .. } => "refused",
            RenewOutcome::Unknown { .. } | RenewOutcome::ImplausibleEnd { .. } => "unknown",
            RenewOutcome::NotSent { .. } => "not-sent",
            RenewOutcome::Conflict => "conflict",
            RenewOutcome::NotRecorded { .. } => "not-recorded",
            RenewOutcome::NotAttempted { .. } => "not-attempted",
        }
    }
}
