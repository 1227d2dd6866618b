//! What a cycle saw and did, as plain data: one [`Item`] per subscription (what was read,
//! its rule and where it came from, the policy's decision, what the renewal came to) in a
//! [`CycleReport`] with its [`Totals`]. The cycle makes it; alerts, metrics, logs and the
//! printed report read it, so none of them needs the cycle itself. [`CycleObserver`] is how
//! the cycle reports as it goes (metrics implement it).

use std::time::Duration;

use crate::api::MalformedEntry;
use crate::attempt::{LedgerEntry, RenewOutcome};
use crate::policy::{Blocked, Decision};
use crate::reconcile::Reconciled;
use crate::rule::Rule;
use crate::store::SeenSubscription;
use crate::values::{Cents, EpochMs};

/// Whether a subscription follows its own rule or `[defaults]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleSource {
    /// A row in the rules table.
    Row,
    /// `[defaults]`.
    Defaults,
}

impl RuleSource {
    /// `row` or `defaults`, as the report prints it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            RuleSource::Row => "row",
            RuleSource::Defaults => "defaults",
        }
    }
}

/// One subscription in a cycle.
#[derive(Debug, Clone)]
pub struct Item {
    /// Its non-secret fields as read.
    pub subscription: SeenSubscription,
    /// Where its rule came from.
    pub rule_source: RuleSource,
    /// The effective rule.
    pub rule: Rule,
    /// What the policy decided.
    pub decision: Decision,
    /// `renewal-plans` could not be read (the decision is then `FetchPlans`).
    pub plans_error: Option<PlansError>,
    /// `renewal-plans` as read in this cycle (due subscriptions only): what alerts offer a
    /// person to choose from.
    pub plans_offered: Option<Vec<crate::api::RenewalPlan>>,
    /// What the renewal came to (real cycles only; `None` when not attempted).
    pub outcome: Option<RenewOutcome>,
}

impl Item {
    /// A person should look: a blocked or skipped-for-cause decision, unreadable plans, or a
    /// renewal that did not cleanly succeed.
    #[must_use]
    pub fn needs_attention(&self) -> bool {
        self.decision.needs_attention()
            || self.plans_error.is_some()
            || self.outcome.as_ref().is_some_and(|o| !o.is_clean_success() && *o != RenewOutcome::Conflict)
    }
}

/// Why `op=renewal-plans` could not be read for a subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlansError {
    /// The client's (redacted) error text.
    pub message: String,
    /// The refusal's HTTP status (401/403: the key; 404: not the owner's), if it was one.
    pub status: Option<u16>,
}

impl std::fmt::Display for PlansError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Everything one cycle saw and did.
#[derive(Debug, Clone)]
pub struct CycleReport {
    /// When the `subscriptions` read started.
    pub read_at: EpochMs,
    /// When the cycle ended.
    pub finished_at: EpochMs,
    /// A dry run: nothing was written or sent.
    pub dry_run: bool,
    /// Every subscription read, most urgent first.
    pub items: Vec<Item>,
    /// `subscriptions[]` entries that did not parse.
    pub malformed: Vec<MalformedEntry>,
    /// `subscriptions[]` entries that are not objects at all, counted.
    pub not_objects: usize,
    /// Managed subscriptions this read no longer lists (listed by the last one), as last
    /// seen. Real cycles only.
    pub vanished: Vec<SeenSubscription>,
    /// What could not be written to the database (an outcome, alerts, a hold): the command
    /// exits 1, since the ledger is the one guard against a double charge.
    pub unrecorded: Vec<String>,
    /// Ledger entries settled by reconciliation.
    pub reconciled: Vec<Reconciled>,
    /// Open attempts whose subscription the read did not list.
    pub unaccounted: Vec<LedgerEntry>,
    /// Stopped early by a shutdown request: some renewals were not started.
    pub interrupted: bool,
    /// The next [`FORECAST_DAYS`] days as they stand after this cycle (its renewals booked,
    /// those it could not make still due), when the cycle made one: an audit always; a real
    /// cycle for the metrics, the weekly forecast email and a 402's top-up figure.
    pub forecast: Option<crate::forecast::Forecast>,
}

/// How far ahead a cycle forecasts (the longest window of [`crate::forecast::WINDOWS`]).
pub const FORECAST_DAYS: u32 = 30;

impl CycleReport {
    /// Exit code 3 material: anything a person should act on.
    #[must_use]
    pub fn needs_attention(&self) -> bool {
        self.items.iter().any(Item::needs_attention)
            || !self.malformed.is_empty()
            || self.not_objects > 0
            || !self.vanished.is_empty()
            || !self.unaccounted.is_empty()
    }

    /// The renewals a dry run would make, or a real one attempted, and their total price.
    #[must_use]
    pub fn planned_spend(&self) -> (usize, Cents) {
        self.items
            .iter()
            .filter_map(|i| if let Decision::Renew(r) = &i.decision { Some(r.price) } else { None })
            .fold((0, Cents(0)), |(n, sum), p| (n + 1, Cents(sum.0 + p.0)))
    }
}

/// Counts for the totals line (and, serialized, the report's `totals` object).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Totals {
    /// Subscriptions read.
    pub subscriptions: usize,
    /// Due now (renewable or not).
    pub due: usize,
    /// Due and renewable.
    pub renewable: usize,
    /// Needing a person.
    #[serde(rename = "needs_attention")]
    pub attention: usize,
    /// Sum of the renewable ones' prices, in cents.
    pub spend_cents: i64,
    /// Renewals that succeeded (real cycles).
    pub renewed: usize,
    /// `renew` requests that left (whatever came back): real cycles.
    pub sent: usize,
    /// Renewals decided but not started: the balance ran short, or a shutdown came first.
    pub not_started: usize,
    /// What was or may have been charged (succeeded and unknown outcomes), in cents.
    pub spent_cents: i64,
}

impl CycleReport {
    /// The counts and sums of the totals line.
    #[must_use]
    pub fn totals(&self) -> Totals {
        let (renewable, spend) = self.planned_spend();
        let items = &self.items;
        Totals {
            subscriptions: items.len(),
            due: items.iter().filter(|i| i.is_due()).count(),
            renewable,
            attention: items.iter().filter(|i| i.needs_attention()).count()
                + self.malformed.len()
                + usize::from(self.not_objects > 0)
                + self.vanished.len(),
            spend_cents: spend.0,
            renewed: items.iter().filter(|i| matches!(i.outcome, Some(RenewOutcome::Succeeded { .. }))).count(),
            sent: items.iter().filter(|i| i.outcome.as_ref().is_some_and(RenewOutcome::was_sent)).count(),
            not_started: items.iter().filter(|i| matches!(i.outcome, Some(RenewOutcome::NotAttempted { .. }))).count(),
            spent_cents: items
                .iter()
                .filter(|i| {
                    matches!(
                        i.outcome,
                        Some(
                            RenewOutcome::Succeeded { .. }
                                | RenewOutcome::Unknown { .. }
                                | RenewOutcome::ImplausibleEnd { .. }
                        )
                    )
                })
                .filter_map(|i| if let Decision::Renew(r) = &i.decision { Some(r.price.0) } else { None })
                .sum(),
        }
    }
}

impl Item {
    /// Due now, renewable or not (a malformed expiry is not "due").
    #[must_use]
    pub fn is_due(&self) -> bool {
        match &self.decision {
            Decision::FetchPlans | Decision::Renew(_) => true,
            Decision::Blocked(b) => !matches!(b, Blocked::Malformed { .. }),
            Decision::Ok { .. } | Decision::Skip(_) => false,
        }
    }
}

/// Told what a cycle does as it happens; the metrics implement it, the way the client
/// reports its requests through [`crate::api::client::Observer`].
pub trait CycleObserver: Send + Sync {
    /// A cycle started.
    fn cycle_started(&self);
    /// A cycle ran to its end with this report.
    fn cycle_done(&self, report: &CycleReport);
    /// A cycle failed (or was stopped) after `elapsed`, before it could report, because of
    /// `reason` (secret-free, e.g. `cannot read subscriptions: …`).
    fn cycle_failed(&self, elapsed: Duration, reason: &str);
    /// Alert delivery ran: the kinds delivered (one per alert), failed deliveries, what is
    /// still queued, and how many recipients are dead-lettered.
    fn alerts_delivered(&self, sent_kinds: &[&str], failures: u64, pending: i64, dead_recipients: i64);
}
