//! The ledger's vocabulary: one entry per renewal attempt, keyed by its period
//! `(subscription_id, active_until_before, attempt)`, moving through the states of
//! `daemon.md` (*Ledger and idempotency*). Pure data; the SQL is in `store/ledger.rs`.

use std::fmt;
use std::str::FromStr;

use crate::api::{Cents, EpochMs, PlanId, SubscriptionId};

/// Where an attempt stands.
///
/// ```text
///             renew sent                  200 + endAt
///  (no row) ──────────────▶ sending ─────────────────────▶ succeeded
///   row committed first        │  400/401/402/403/404/409/429
///                              ├──────────────────────────▶ refused
///                              │  timeout, drop, 5xx, bad 200, crash
///                              └──────────────────────────▶ unknown ──▶ succeeded (activeUntil advanced)
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
}

impl LedgerState {
    /// All states, in the diagram's order.
    pub const ALL: [LedgerState; 5] =
        [LedgerState::Sending, LedgerState::Succeeded, LedgerState::Refused, LedgerState::Unknown, LedgerState::Failed];

    /// The name stored and printed, e.g. `unknown`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            LedgerState::Sending => "sending",
            LedgerState::Succeeded => "succeeded",
            LedgerState::Refused => "refused",
            LedgerState::Unknown => "unknown",
            LedgerState::Failed => "failed",
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Renewal {
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
    pub renewal: Renewal,
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
    pub renewal: Renewal,
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
    /// When the row was committed.
    pub created_at: EpochMs,
    /// When it last changed.
    pub updated_at: EpochMs,
}
