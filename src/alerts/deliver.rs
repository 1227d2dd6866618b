//! Delivery: every due outbox row goes out in one digest; rows are marked sent only after the
//! SMTP server accepted the message, and a failure schedules a retry with backoff (across
//! cycles and restarts, since the outbox is in the database). Without email, alerts are
//! logged at `warn` and marked delivered.

use super::email::{Mailer, digest};
use crate::alert::{Alert, AlertKind};
use crate::config::Email;
use crate::store::{Store, StoreError};
use crate::values::EpochMs;

/// After this many failed deliveries an alert is logged at `error` on every further try.
pub const LOUD_AFTER_ATTEMPTS: u32 = 3;

/// What one delivery round did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Delivered {
    /// Alerts delivered (emailed, or logged without email).
    pub sent: usize,
    /// Alerts whose delivery failed and stays queued.
    pub failed: usize,
    /// The SMTP server's answer or the error.
    pub answer: Option<String>,
    /// The kinds of the alerts delivered, one per alert.
    pub kinds: Vec<AlertKind>,
}

/// Delivers every due alert: one email for all of them, or log lines without email.
///
/// # Errors
/// [`StoreError`] when the outbox cannot be read or updated.
pub async fn deliver(store: &Store, email: Option<(&Mailer, &Email)>, now: EpochMs) -> Result<Delivered, StoreError> {
    let due = store.due_alerts(now).await?;
    if due.is_empty() {
        return Ok(Delivered::default());
    }
    let ids: Vec<i64> = due.iter().map(|r| r.id).collect();
    let Some((mailer, cfg)) = email else {
        for r in &due {
            let a = &r.alert;
            let id = a.subscription_id.as_ref().map_or_else(|| "(account)".to_owned(), ToString::to_string);
            tracing::warn!(kind = a.kind.as_str(), subscription_id = %id, happened = %a.happened, action = %a.action, "alert (no [alerts.email]: logged only)");
        }
        store.mark_logged(&ids, now).await?;
        let kinds = due.iter().map(|r| r.alert.kind).collect();
        return Ok(Delivered { sent: ids.len(), failed: 0, answer: None, kinds });
    };
    let mut done = Delivered::default();
    // A server that refuses the size (552) gets the digest in halves, down to one alert.
    let mut batches: Vec<&[crate::store::OutboxRow]> = vec![&due[..]];
    while let Some(batch) = batches.pop() {
        let alerts: Vec<&Alert> = batch.iter().map(|r| &r.alert).collect();
        let ids: Vec<i64> = batch.iter().map(|r| r.id).collect();
        let d = digest(&alerts, now, cfg.instance.as_deref());
        match mailer.send(&d.subject, &d.body, cfg).await {
            Ok(answer) => {
                store.mark_sent(&ids, now).await?;
                tracing::info!(alerts = ids.len(), %answer, subject = %d.subject, "alert email sent");
                done.sent += ids.len();
                done.kinds.extend(batch.iter().map(|r| r.alert.kind));
                done.answer = Some(answer);
            }
            Err(e) if is_too_large(&e) && batch.len() > 1 => {
                tracing::warn!(alerts = ids.len(), error = %e, "the mail server refused the digest's size; sending it in halves");
                let (first, second) = batch.split_at(batch.len() / 2);
                batches.push(second);
                batches.push(first);
            }
            Err(e) => {
                store.mark_failed(&ids, &e, now).await?;
                let attempts = batch.iter().map(|r| r.attempts + 1).max().unwrap_or(1);
                if attempts >= LOUD_AFTER_ATTEMPTS {
                    tracing::error!(alerts = ids.len(), attempts, error = %e, "alert email still failing; the alerts stay queued (see `proxy-renewd alerts list --pending`)");
                } else {
                    tracing::warn!(alerts = ids.len(), attempts, error = %e, "alert email failed; will retry");
                }
                done.failed += ids.len();
                done.answer = Some(e);
            }
        }
    }
    Ok(done)
}

/// Is this SMTP error a refusal of the message's size (552, "message size exceeds")?
fn is_too_large(error: &str) -> bool {
    error.contains("552") || error.to_ascii_lowercase().contains("size")
}

/// Delivers `alerts` at once, without the outbox: for alerts that could not be queued
/// because the database is unwritable (full disk, deleted file). Each is logged at `error`
/// whatever happens, and emailed when email is configured; nothing is retried (there is no
/// row to retry from), so the caller must also fail loudly (exit 1).
pub async fn deliver_direct(alerts: &[Alert], email: Option<(&Mailer, &Email)>, now: EpochMs) {
    if alerts.is_empty() {
        return;
    }
    for a in alerts {
        let id = a.subscription_id.as_ref().map_or_else(|| "(account)".to_owned(), ToString::to_string);
        tracing::error!(kind = a.kind.as_str(), subscription_id = %id, happened = %a.happened, action = %a.action, "alert not queued (the database cannot be written): sent directly");
    }
    let Some((mailer, cfg)) = email else { return };
    let refs: Vec<&Alert> = alerts.iter().collect();
    let d = digest(&refs, now, cfg.instance.as_deref());
    match mailer.send(&d.subject, &d.body, cfg).await {
        Ok(answer) => tracing::info!(alerts = alerts.len(), %answer, "alert email sent directly"),
        Err(e) => tracing::error!(alerts = alerts.len(), error = %e, "alert email could not be sent either"),
    }
}
