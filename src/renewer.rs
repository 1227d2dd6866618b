//! Executes one renewal decision: the ledger row first, then the `renew` POST, then the
//! outcome recorded (`daemon.md`, *Ledger and idempotency*).
//!
//! No row, no request: if the `sending` row cannot be committed, nothing is sent. If another
//! process holds the period key, this one backs off. If the outcome cannot be recorded, the
//! row stays `sending`, which the next start treats as `unknown`: never a blind retry.

use crate::alerts::Alert;
use crate::api::{Client, EpochMs, Failure, PostError, RenewRequest, SubscriptionId};
use crate::ledger::{LedgerState, NewAttempt, Origin};
use crate::policy::{MAX_PLAUSIBLE_MS, MIN_PLAUSIBLE_MS, Renewal};
use crate::store::{Hold, Settlement, Store};

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
        /// `endAt` is not a plausible ms expiry (`malformed`).
        implausible_end: bool,
    },
    /// A definite refusal; nothing was charged.
    Refused {
        /// Ledger row.
        ledger_id: i64,
        /// HTTP status (400, 401, 402, 403, 404, 409, 429).
        status: u16,
        /// What the provider said and what to do.
        message: String,
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
    },
}

impl RenewOutcome {
    /// Succeeded and not held: nothing for a person to do.
    #[must_use]
    pub fn is_clean_success(&self) -> bool {
        matches!(self, RenewOutcome::Succeeded { held: false, implausible_end: false, .. })
    }

    /// A short name: `succeeded`, `held`, `refused`, `unknown`, `not-sent`, `conflict`,
    /// `not-recorded`.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            RenewOutcome::Succeeded { held: true, .. } => "held",
            RenewOutcome::Succeeded { .. } => "succeeded",
            RenewOutcome::Refused { .. } => "refused",
            RenewOutcome::Unknown { .. } => "unknown",
            RenewOutcome::NotSent { .. } => "not-sent",
            RenewOutcome::Conflict => "conflict",
            RenewOutcome::NotRecorded { .. } => "not-recorded",
            RenewOutcome::NotAttempted { .. } => "not-attempted",
        }
    }
}

/// Who renews, and where the outcome and its alerts go.
#[derive(Debug, Clone, Copy)]
pub struct Renewer<'a> {
    /// The provider.
    pub client: &'a Client,
    /// The ledger and outbox.
    pub store: &'a Store,
    /// Daemon or manual.
    pub origin: Origin,
    /// `alerts.repeat_interval`, in ms, for deduplicating the outcome's alerts.
    pub repeat_interval_ms: i64,
}

impl Renewer<'_> {
    /// Renews `id` as `r` says: commits the attempt, sends `renew` once, records the outcome
    /// together with the alerts `alerts` makes of it (one transaction), and puts the
    /// subscription on hold when the new expiry is still within `renew_before_ms`.
    pub async fn renew(
        &self,
        id: &SubscriptionId,
        r: &Renewal,
        renew_before_ms: i64,
        alerts: impl FnOnce(&RenewOutcome) -> Vec<Alert>,
    ) -> RenewOutcome {
        renew(self, id, r, renew_before_ms, alerts).await
    }
}

#[tracing::instrument(skip_all, fields(subscription_id = %id, attempt = r.attempt, plan_id = %r.plan_id))]
async fn renew(
    w: &Renewer<'_>,
    id: &SubscriptionId,
    r: &Renewal,
    renew_before_ms: i64,
    alerts: impl FnOnce(&RenewOutcome) -> Vec<Alert>,
) -> RenewOutcome {
    let (client, store, origin) = (w.client, w.store, w.origin);
    let attempt = NewAttempt { subscription_id: id.clone(), renewal: r.clone(), origin };
    let ledger_id = match store.begin_attempt(&attempt, EpochMs::now()).await {
        Ok(row) => row,
        Err(e) if e.is_conflict() => {
            tracing::warn!("another process is renewing this period; backing off");
            return RenewOutcome::Conflict;
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot record the attempt; nothing sent");
            return RenewOutcome::NotRecorded { message: e.to_string() };
        }
    };
    let request = RenewRequest {
        subscription_id: id.clone(),
        plan_id: r.plan_id.clone(),
        coupon_code: r.coupon_code.clone(),
        repeat_count: Some(r.repeat_count),
    };
    let (outcome, settlement) = match client.renew(&request).await {
        Ok(answer) if &answer.subscription_id == id => succeeded(ledger_id, answer.end_at, renew_before_ms),
        Ok(answer) => {
            // An answer about another subscription says nothing reliable about this one.
            let message =
                format!("renew: the answer names subscription {} instead; treated as unknown", answer.subscription_id);
            (
                RenewOutcome::Unknown { ledger_id, status: Some(200), message: message.clone() },
                Settlement {
                    state: LedgerState::Unknown,
                    actual_end_at: None,
                    http_status: Some(200),
                    error: Some(message),
                },
            )
        }
        Err(e) => failed(ledger_id, e),
    };
    let now = EpochMs::now();
    let raised = alerts(&outcome);
    if let Err(e) = store.enqueue_alerts(&raised, Some((ledger_id, &settlement)), now, w.repeat_interval_ms).await {
        // The row stays `sending`: the next start makes it `unknown` and reconciles it.
        tracing::error!(error = %e, ledger_id, outcome = outcome.name(), "cannot record the outcome; the attempt will be reconciled");
    }
    if let RenewOutcome::Succeeded { end_at, held: true, .. } = &outcome {
        let hold = Hold {
            subscription_id: id.clone(),
            since: now,
            active_until: *end_at,
            ledger_id: Some(ledger_id),
            reason: "renewed, but the new expiry is still within renew_before: no automatic catch-up".into(),
        };
        if let Err(e) = store.put_hold(&hold).await {
            tracing::error!(error = %e, "cannot record the hold");
        }
    }
    log_outcome(r, &outcome);
    outcome
}

fn succeeded(ledger_id: i64, end_at: EpochMs, renew_before_ms: i64) -> (RenewOutcome, Settlement) {
    let implausible_end = !(MIN_PLAUSIBLE_MS..MAX_PLAUSIBLE_MS).contains(&end_at.0);
    let held = !implausible_end && end_at.since(EpochMs::now()) <= renew_before_ms;
    let settlement = Settlement {
        state: LedgerState::Succeeded,
        actual_end_at: Some(end_at),
        http_status: Some(200),
        error: implausible_end.then(|| format!("endAt {} is not a plausible expiry", end_at.0)),
    };
    (RenewOutcome::Succeeded { ledger_id, end_at, held, implausible_end }, settlement)
}

fn failed(ledger_id: i64, e: PostError) -> (RenewOutcome, Settlement) {
    let message = e.to_string();
    match e {
        PostError::Refused(refusal) => (
            RenewOutcome::Refused { ledger_id, status: refusal.status, message: message.clone() },
            Settlement {
                state: LedgerState::Refused,
                actual_end_at: None,
                http_status: Some(refusal.status),
                error: Some(message),
            },
        ),
        PostError::NotSent { .. } => (
            RenewOutcome::NotSent { ledger_id, message: message.clone() },
            Settlement { state: LedgerState::Failed, actual_end_at: None, http_status: None, error: Some(message) },
        ),
        PostError::OutcomeUnknown(failure) => {
            let status = match failure {
                Failure::Server { status, .. }
                | Failure::Malformed { status, .. }
                | Failure::TooLarge { status, .. } => Some(status),
                _ => None,
            };
            (
                RenewOutcome::Unknown { ledger_id, status, message: message.clone() },
                Settlement {
                    state: LedgerState::Unknown,
                    actual_end_at: None,
                    http_status: status,
                    error: Some(message),
                },
            )
        }
    }
}

fn log_outcome(r: &Renewal, outcome: &RenewOutcome) {
    match outcome {
        RenewOutcome::Succeeded { end_at, held, .. } => {
            tracing::info!(price_cents = r.price.0, end_at = %end_at, held, "renewed");
        }
        RenewOutcome::Refused { status, message, .. } => tracing::warn!(status, detail = %message, "renewal refused"),
        RenewOutcome::Unknown { message, .. } => {
            tracing::error!(detail = %message, "renewal outcome unknown; it will be reconciled")
        }
        RenewOutcome::NotSent { message, .. } => tracing::warn!(detail = %message, "renewal not sent"),
        RenewOutcome::Conflict | RenewOutcome::NotRecorded { .. } | RenewOutcome::NotAttempted { .. } => {}
    }
}
