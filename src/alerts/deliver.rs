//! Delivery: every due outbox row goes out in one digest; rows are marked sent only after the
//! SMTP server accepted the message, and a failure schedules a retry with backoff (across
//! cycles and restarts, since the outbox is in the database). Without email, alerts are
//! logged at `warn` and marked delivered.

use std::collections::HashMap;

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
            tracing::warn!(kind = a.kind.as_str(), subscription_id = %about(a), happened = %a.happened, action = %a.action, "alert (no [alerts.email]: logged only)");
        }
        store.mark_logged(&ids, now).await?;
        let kinds = due.iter().map(|r| r.alert.kind).collect();
        return Ok(Delivered { sent: ids.len(), failed: 0, answer: None, kinds });
    };
    let mut done = Delivered::default();
    // Only the configured addresses count: one removed from `to` is forgotten.
    let configured = mailer.recipients();
    let states: Vec<crate::store::RecipientState> =
        store.recipients().await?.into_iter().filter(|r| configured.contains(&r.address)).collect();
    let is_dead = |a: &str| states.iter().any(|r| r.address == a && r.dead_since.is_some());
    let live: Vec<String> = configured.iter().filter(|a| !is_dead(a)).cloned().collect();
    let notice = dead_notice(&states);
    // A refusal counts against an address only once a round, and only when the server took
    // mail for another address (this round, or these alerts earlier): a refusal of every
    // address (a bad SMTP login, a refused sender) is the server's, not theirs, and must not
    // dead-letter them all.
    let mut refused_this_round: Vec<(String, String, bool)> = Vec::new();
    let mut accepted_this_round = false;
    if live.is_empty() {
        let e = "every [alerts.email] recipient is dead-lettered (refused for good): fix `to`".to_owned();
        tracing::error!(alerts = ids.len(), error = %e, "alert email cannot be delivered");
        store.mark_failed(&ids, &e, now).await?;
        return Ok(Delivered { sent: 0, failed: ids.len(), answer: Some(e), kinds: Vec::new() });
    }
    // Who got which alert in this round, beside what the rows say of earlier rounds.
    let mut newly: HashMap<i64, Vec<String>> = HashMap::new();
    let has = |r: &crate::store::OutboxRow, to: &str, newly: &HashMap<i64, Vec<String>>| {
        r.delivered_to.iter().any(|d| d == to) || newly.get(&r.id).is_some_and(|n| n.iter().any(|d| d == to))
    };
    // A server that refuses the size (552) gets the digest in halves, down to one alert.
    let mut batches: Vec<&[crate::store::OutboxRow]> = vec![&due[..]];
    while let Some(batch) = batches.pop() {
        let (mut errors, mut too_large) = (Vec::new(), false);
        // Each recipient on its own, with what it does not have yet: one refused address does
        // not keep the others from it, and a retry goes only where it is missing.
        for to in &live {
            let rows: Vec<&crate::store::OutboxRow> = batch.iter().filter(|r| !has(r, to, &newly)).collect();
            if rows.is_empty() {
                continue;
            }
            let alerts: Vec<&Alert> = rows.iter().map(|r| &r.alert).collect();
            let row_ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
            let d = digest(&alerts, now, cfg.instance.as_deref());
            let body = format!("{notice}{}", d.body);
            match mailer.send_to(to, &d.subject, &body, cfg).await {
                Ok(answer) => {
                    accepted_this_round = true;
                    store.mark_delivered_to(&row_ids, to).await?;
                    store.record_recipient(to, None, now).await?;
                    tracing::info!(alerts = row_ids.len(), recipient = %to, %answer, subject = %d.subject, "alert email sent");
                    for id in row_ids {
                        newly.entry(id).or_default().push(to.clone());
                    }
                    done.answer = Some(answer);
                }
                Err(e) if is_too_large(&e.text) && rows.len() > 1 => {
                    too_large = true;
                    break;
                }
                Err(e) => {
                    if e.permanent && !refused_this_round.iter().any(|(a, ..)| a == to) {
                        // The server took these very alerts for someone else already.
                        let others_have_it = rows.iter().any(|r| r.delivered_to.iter().any(|d| d != to));
                        refused_this_round.push((to.clone(), e.text.clone(), others_have_it));
                    }
                    errors.push(format!("{to}: {}", e.text));
                }
            }
        }
        if too_large {
            tracing::warn!(alerts = batch.len(), "the mail server refused the digest's size; sending it in halves");
            let (first, second) = batch.split_at(batch.len() / 2);
            batches.push(second);
            batches.push(first);
            continue;
        }
        // Sent once every live recipient has it; the rest wait for a retry to those missing.
        let (complete, missing): (Vec<&crate::store::OutboxRow>, Vec<&crate::store::OutboxRow>) =
            batch.iter().partition(|r| live.iter().all(|to| has(r, to, &newly)));
        if !complete.is_empty() {
            let ids: Vec<i64> = complete.iter().map(|r| r.id).collect();
            store.mark_sent(&ids, now).await?;
            done.sent += ids.len();
            done.kinds.extend(complete.iter().map(|r| r.alert.kind));
        }
        if !missing.is_empty() {
            let ids: Vec<i64> = missing.iter().map(|r| r.id).collect();
            let e = errors.join("; ");
            store.mark_failed(&ids, &e, now).await?;
            let attempts = missing.iter().map(|r| r.attempts + 1).max().unwrap_or(1);
            if attempts >= LOUD_AFTER_ATTEMPTS {
                tracing::error!(alerts = ids.len(), attempts, error = %e, "alert email still failing for some recipients; the alerts stay queued for them (see `proxy-renewd alerts list --pending`)");
            } else {
                tracing::warn!(alerts = ids.len(), attempts, error = %e, "alert email failed for some recipients; will retry them");
            }
            done.failed += ids.len();
            done.answer = Some(e);
        }
    }
    // Count the permanent refusals now, once each, if the server worked for someone.
    for (to, text, _) in refused_this_round.iter().filter(|(.., others)| *others || accepted_this_round) {
        let state = store.record_recipient(to, Some((text, true)), now).await?;
        if state.is_some_and(|s| s.dead_since == Some(now)) {
            tracing::error!(recipient = %to, "alert recipient refused for good: dead-lettered; the other recipients are told in every digest (`proxy-renewd alerts test` revives it once it accepts mail)");
        }
    }
    Ok(done)
}

/// Whom an alert is about, for a log line: its subscription, or `(account)`.
fn about(a: &Alert) -> String {
    a.subscription_id.as_ref().map_or_else(|| "(account)".to_owned(), ToString::to_string)
}

/// What every digest says of dead-lettered recipients, so that the others can fix it.
fn dead_notice(states: &[crate::store::RecipientState]) -> String {
    let dead: Vec<String> = states
        .iter()
        .filter_map(|r| {
            let since = r.dead_since?;
            let why: String = r.last_error.as_deref().unwrap_or("refused").chars().take(160).collect();
            Some(format!(
                "NOT DELIVERED to {} since {since} ({why}): it gets no alerts; fix [alerts.email] to.\n",
                r.address
            ))
        })
        .collect();
    if dead.is_empty() { String::new() } else { format!("{}\n", dead.concat()) }
}

/// Is this SMTP error a refusal of the message's size (not a full mailbox, which is 552 too)?
fn is_too_large(error: &str) -> bool {
    let e = error.to_ascii_lowercase();
    e.contains("5.3.4")
        || e.contains("size")
        || e.contains("too much mail data")
        || e.contains("too large")
        || e.contains("too big")
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
        tracing::error!(kind = a.kind.as_str(), subscription_id = %about(a), happened = %a.happened, action = %a.action, "alert not queued (the database cannot be written): sent directly");
    }
    let Some((mailer, cfg)) = email else { return };
    let refs: Vec<&Alert> = alerts.iter().collect();
    let d = digest(&refs, now, cfg.instance.as_deref());
    // Each address on its own: one refused address must not keep this one from the others.
    for to in mailer.recipients() {
        match mailer.send_to(&to, &d.subject, &d.body, cfg).await {
            Ok(answer) => tracing::info!(alerts = alerts.len(), recipient = %to, %answer, "alert email sent directly"),
            Err(e) => {
                tracing::error!(alerts = alerts.len(), recipient = %to, error = %e.text, "alert email could not be sent either")
            }
        }
    }
}
