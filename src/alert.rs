//! What an alert is: its [`AlertKind`] (`daemon.md`, *Alerts*) and the [`Alert`] itself, as
//! stored in the outbox and rendered in the email. Plain data over [`crate::values`]; the
//! alerts a cycle raises are made in `alerts/`, stored by `store/outbox.rs`.
//!
//! Every field of an alert is secret-free: ids, labels, amounts, statuses and the client's
//! own (redacted) error texts; never credentials, protocol URLs or the key.

use serde::{Deserialize, Serialize};

use crate::values::{Cents, EpochMs, SubscriptionId};

/// The kinds of `daemon.md`, in the order a digest's subject picks the worst: causes a person
/// can fix first (their subject says what to do), then the escalations that follow from them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlertKind {
    /// 401/403 on any call: the key is wrong or revoked.
    Auth,
    /// `op=subscriptions` has failed for `alerts.provider_down_after` (and 3 cycles).
    Unreachable,
    /// The database cannot be written, or its file was deleted or replaced: sent directly,
    /// since it cannot be queued.
    Database,
    /// 402: the balance does not cover a renewal.
    InsufficientBalance,
    /// 409: sold out, inactive plan or network, or invalid state.
    Unavailable,
    /// A renewal or a purchase may or may not have been applied.
    UnknownOutcome,
    /// An unknown outcome after which `activeUntil` moved, but not by what the attempt
    /// expected: held for a person.
    Ambiguous,
    /// No renewal plan fits the rule.
    NoEligiblePlan,
    /// The chosen plan costs more than the rule's cap.
    OverPriceCap,
    /// The renewal would break the daily budget.
    OverBudget,
    /// A managed subscription's status is not `active`, or the provider refused for good.
    NotRenewable,
    /// An implausible `activeUntil` or `endAt`, or an entry that does not parse.
    Malformed,
    /// Renewed, but still due: on hold until a person acts.
    StillDueAfterRenewal,
    /// A managed subscription lapsed.
    Expired,
    /// Due, not renewed, within `lapse_warning` of expiry.
    LapseImminent,
    /// A managed subscription is no longer listed by the provider.
    Vanished,
    /// A subscription that had alerted is renewed.
    Recovered,
    /// The weekly forecast (`[alerts] forecast = "weekly"`): news, not a problem.
    Forecast,
}

impl AlertKind {
    /// The name in `daemon.md`, e.g. `insufficient-balance`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Auth => "auth",
            AlertKind::Unreachable => "unreachable",
            AlertKind::Database => "database",
            AlertKind::Expired => "expired",
            AlertKind::InsufficientBalance => "insufficient-balance",
            AlertKind::LapseImminent => "lapse-imminent",
            AlertKind::UnknownOutcome => "unknown-outcome",
            AlertKind::Ambiguous => "ambiguous",
            AlertKind::Unavailable => "unavailable",
            AlertKind::NoEligiblePlan => "no-eligible-plan",
            AlertKind::OverPriceCap => "over-price-cap",
            AlertKind::OverBudget => "over-budget",
            AlertKind::NotRenewable => "not-renewable",
            AlertKind::Malformed => "malformed",
            AlertKind::StillDueAfterRenewal => "still-due-after-renewal",
            AlertKind::Vanished => "vanished",
            AlertKind::Recovered => "recovered",
            AlertKind::Forecast => "forecast",
        }
    }

    /// Words for a subject line, e.g. `insufficient balance`.
    #[must_use]
    pub fn words(self) -> &'static str {
        match self {
            AlertKind::Auth => "API key rejected",
            AlertKind::Unreachable => "provider unreachable",
            AlertKind::Database => "database unusable",
            AlertKind::Expired => "expired",
            AlertKind::InsufficientBalance => "insufficient balance",
            AlertKind::LapseImminent => "about to lapse",
            AlertKind::UnknownOutcome => "renewal outcome unknown",
            AlertKind::Ambiguous => "renewal outcome ambiguous",
            AlertKind::Unavailable => "plan unavailable",
            AlertKind::NoEligiblePlan => "no eligible plan",
            AlertKind::OverPriceCap => "over the price cap",
            AlertKind::OverBudget => "over the daily budget",
            AlertKind::NotRenewable => "not renewable",
            AlertKind::Malformed => "malformed data from the provider",
            AlertKind::StillDueAfterRenewal => "still due after renewal",
            AlertKind::Vanished => "no longer listed",
            AlertKind::Recovered => "recovered",
            AlertKind::Forecast => "renewal forecast",
        }
    }
}

/// One alert, as stored in the outbox and rendered in the email. Secret-free.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// What kind.
    pub kind: AlertKind,
    /// The subscription, when it is about one.
    pub subscription_id: Option<SubscriptionId>,
    /// Its period (`activeUntil` when it happened), for deduplication.
    pub period: Option<EpochMs>,
    /// Label, e.g. `12001 - NL - Private`.
    pub label: Option<String>,
    /// Network label, e.g. `NL-AMS Amsterdam`.
    pub network: Option<String>,
    /// The expiry it had.
    pub active_until: Option<EpochMs>,
    /// What happened, e.g. `renew: HTTP 402: insufficient balance …`.
    pub happened: String,
    /// What the daemon will do next.
    pub next: String,
    /// What a person should do.
    pub action: String,
    /// Money involved (the renewal's price), in cents.
    pub amount: Option<Cents>,
}

impl Alert {
    /// An alert about the account as a whole (no subscription), its texts still empty;
    /// `period` keeps the account's alerts of one kind apart for deduplication.
    #[must_use]
    pub fn account(kind: AlertKind, period: Option<EpochMs>) -> Alert {
        Alert {
            kind,
            subscription_id: None,
            period,
            label: None,
            network: None,
            active_until: None,
            happened: String::new(),
            next: String::new(),
            action: String::new(),
            amount: None,
        }
    }

    /// The same alert with what happened, what the daemon will do next and what a person
    /// should do.
    #[must_use]
    pub fn with(mut self, happened: impl Into<String>, next: impl Into<String>, action: impl Into<String>) -> Alert {
        self.happened = happened.into();
        self.next = next.into();
        self.action = action.into();
        self
    }
}
