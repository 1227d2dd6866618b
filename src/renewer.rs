//! Executes one renewal decision: the ledger row first, then the `renew` POST, then the
//! outcome recorded (`daemon.md`, *Ledger and idempotency*).
//!
//! No row, no request: if the `sending` row cannot be committed, nothing is sent. If another
//! process holds the period key, this one backs off. If the outcome cannot be recorded, the
//! row stays `sending`, which the next start treats as `unknown`: never a blind retry.

use crate::alert::Alert;
use crate::api::{Client, PostError, RenewRequest};
use crate::attempt::{LedgerState, NewAttempt, Origin, RenewOutcome, RenewalTerms, Settlement};
use crate::policy::{MAX_PLAUSIBLE_MS, MIN_PLAUSIBLE_MS};
use crate::store::{Hold, Store};
use crate::values::{Clock, EpochMs, SubscriptionId};

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
    /// Where "now" comes from: the times written to the ledger and the hold check.
    pub clock: &'a dyn Clock,
}

impl Renewer<'_> {
    /// Renews `id` as `r` says: commits the attempt, sends `renew` once, records the outcome
    /// together with the alerts `alerts` makes of it (one transaction), and puts the
    /// subscription on hold when the new expiry is still within `renew_before_ms`.
    pub async fn renew(
        &self,
        id: &SubscriptionId,
        r: &RenewalTerms,
        renew_before_ms: i64,
        alerts: impl FnOnce(&RenewOutcome) -> Vec<Alert>,
    ) -> RenewOutcome {
        renew(self, id, r, renew_before_ms, alerts).await.0
    }

    /// [`Renewer::renew`], also saying what could not be written to the database (and the
    /// alerts that therefore were not queued, for the caller to deliver directly).
    pub async fn renew_recorded(
        &self,
        id: &SubscriptionId,
        r: &RenewalTerms,
        renew_before_ms: i64,
        alerts: impl FnOnce(&RenewOutcome) -> Vec<Alert>,
    ) -> (RenewOutcome, Option<Unrecorded>) {
        renew(self, id, r, renew_before_ms, alerts).await
    }
}

/// What a renewal could not write to the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unrecorded {
    /// What was not written, and the database's error (secret-free).
    pub what: String,
    /// The alerts the outcome called for that are not in the outbox.
    pub alerts: Vec<Alert>,
}

#[tracing::instrument(skip_all, fields(subscription_id = %id, attempt = r.attempt, plan_id = %r.plan_id))]
async fn renew(
    w: &Renewer<'_>,
    id: &SubscriptionId,
    r: &RenewalTerms,
    renew_before_ms: i64,
    alerts: impl FnOnce(&RenewOutcome) -> Vec<Alert>,
) -> (RenewOutcome, Option<Unrecorded>) {
    let (client, store, origin) = (w.client, w.store, w.origin);
    let attempt = NewAttempt { subscription_id: id.clone(), renewal: r.clone(), origin };
    let sending = match store.begin_attempt(&attempt, w.clock.now()).await {
        Ok(row) => row,
        Err(e) if e.is_conflict() => {
            tracing::warn!("another process is renewing this period; backing off");
            return (RenewOutcome::Conflict, None);
        }
        Err(e) if e.is_lease_lost() => {
            // Another node leads now; it renews what is due (the store logged why).
            tracing::warn!(error = %e, "not the leader any more; nothing sent");
            return (RenewOutcome::Conflict, None);
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot record the attempt; nothing sent");
            let outcome = RenewOutcome::NotRecorded { message: e.to_string() };
            let raised = alerts(&outcome);
            let now = w.clock.now();
            let not_queued = match store.enqueue_alerts(&raised, None, now, w.repeat_interval_ms).await {
                Ok(_) => Vec::new(),
                Err(_) => raised,
            };
            let what = format!("the attempt for {id} (nothing was sent): {e}");
            return (outcome, Some(Unrecorded { what, alerts: not_queued }));
        }
    };
    let request = RenewRequest {
        subscription_id: id.clone(),
        plan_id: r.plan_id.clone(),
        coupon_code: r.coupon_code.clone(),
        repeat_count: Some(r.repeat_count),
    };
    let ledger_id = sending.id;
    let (outcome, settlement) = match client.renew_by(&request, sending.deadline).await {
        Ok(answer) if &answer.subscription_id == id => {
            succeeded(ledger_id, answer.end_at, w.clock.now(), renew_before_ms)
        }
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
                    retry_at: None,
                },
            )
        }
        Err(e) => failed(ledger_id, e, w.clock.now()),
    };
    let now = w.clock.now();
    let raised = alerts(&outcome);
    let mut unrecorded = None;
    if let Err(e) = store.enqueue_alerts(&raised, Some((ledger_id, &settlement)), now, w.repeat_interval_ms).await {
        // The row stays `sending`: the next start makes it `unknown` and reconciles it.
        tracing::error!(error = %e, ledger_id, outcome = outcome.name(), "cannot record the outcome; the attempt will be reconciled");
        let what = format!("the outcome ({}) of ledger row {ledger_id} for {id}: {e}", outcome.name());
        unrecorded = Some(Unrecorded { what, alerts: raised });
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
            let what = format!("the hold on {id}: {e}");
            unrecorded.get_or_insert(Unrecorded { what, alerts: Vec::new() });
        }
    }
    log_outcome(r, &outcome);
    (outcome, unrecorded)
}

fn succeeded(ledger_id: i64, end_at: EpochMs, now: EpochMs, renew_before_ms: i64) -> (RenewOutcome, Settlement) {
    if !(MIN_PLAUSIBLE_MS..MAX_PLAUSIBLE_MS).contains(&end_at.0) {
        let message = format!(
            "renew answered endAt {}, not a plausible expiry in ms: settled by reading activeUntil back",
            end_at.0
        );
        let settlement = Settlement {
            state: LedgerState::Unknown,
            actual_end_at: None,
            http_status: Some(200),
            error: Some(message),
            retry_at: None,
        };
        return (RenewOutcome::ImplausibleEnd { ledger_id, end_at }, settlement);
    }
    let held = end_at.since(now) <= renew_before_ms;
    let settlement = Settlement {
        state: LedgerState::Succeeded,
        actual_end_at: Some(end_at),
        http_status: Some(200),
        error: None,
        retry_at: None,
    };
    (RenewOutcome::Succeeded { ledger_id, end_at, held }, settlement)
}

fn failed(ledger_id: i64, e: PostError, now: EpochMs) -> (RenewOutcome, Settlement) {
    let message = e.to_string();
    match e {
        PostError::Refused(refusal) => {
            let retry_after_ms = refusal.retry_after.map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
            (
                RenewOutcome::Refused { ledger_id, status: refusal.status, message: message.clone(), retry_after_ms },
                Settlement {
                    state: LedgerState::Refused,
                    actual_end_at: None,
                    http_status: Some(refusal.status),
                    // The status, what it means and the provider's words, each once.
                    error: Some(refusal.summary()),
                    retry_at: retry_after_ms.map(|ms| EpochMs(now.0.saturating_add(ms))),
                },
            )
        }
        PostError::NotSent { .. } => (
            RenewOutcome::NotSent { ledger_id, message: message.clone() },
            Settlement {
                state: LedgerState::Failed,
                actual_end_at: None,
                http_status: None,
                error: Some(message),
                retry_at: None,
            },
        ),
        PostError::OutcomeUnknown(failure) => {
            let status = failure.status();
            (
                RenewOutcome::Unknown { ledger_id, status, message: message.clone() },
                Settlement {
                    state: LedgerState::Unknown,
                    actual_end_at: None,
                    http_status: status,
                    error: Some(message),
                    retry_at: None,
                },
            )
        }
    }
}

fn log_outcome(r: &RenewalTerms, outcome: &RenewOutcome) {
    match outcome {
        RenewOutcome::Succeeded { end_at, held, .. } => {
            tracing::info!(price_cents = r.price.0, end_at = %end_at, held, "renewed");
        }
        RenewOutcome::Refused { status, message, .. } => tracing::warn!(status, detail = %message, "renewal refused"),
        RenewOutcome::Unknown { message, .. } => {
            tracing::error!(detail = %message, "renewal outcome unknown; it will be reconciled")
        }
        RenewOutcome::ImplausibleEnd { end_at, .. } => {
            tracing::error!(end_at_ms = end_at.0, "renew answered an implausible endAt; it will be reconciled")
        }
        RenewOutcome::NotSent { message, .. } => tracing::warn!(detail = %message, "renewal not sent"),
        RenewOutcome::Conflict | RenewOutcome::NotRecorded { .. } | RenewOutcome::NotAttempted { .. } => {}
    }
}
