//! The digest email: one message for all alerts due at once, its subject naming the worst
//! kind and the count, its plain-text body saying per subscription what happened, what the
//! daemon will do next and what a person should do. Sent through lettre's async SMTP
//! transport (tokio + rustls), configured by lettre's URL form.

use std::fmt::Write as _;
use std::time::Duration;

use lettre::message::{Mailbox, header::ContentType};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;

use crate::alert::{Alert, AlertKind};
use crate::config::Email;
use crate::values::EpochMs;
use crate::values::relative;
use crate::values::text::clean_text;

/// The subject and body of a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    /// e.g. `[proxy-renewd] 3 subscriptions need attention: insufficient balance`.
    pub subject: String,
    /// Plain text.
    pub body: String,
}

/// Renders alerts (at least one) as one digest, most urgent first; `instance` (`[alerts]
/// instance`) is named with the host name at its end.
#[must_use]
pub fn digest(alerts: &[&Alert], now: EpochMs, instance: Option<&str>) -> Digest {
    let mut sorted: Vec<&Alert> = alerts.to_vec();
    sorted.sort_by_key(|a| (a.kind, a.subscription_id.clone()));
    let problems: Vec<&&Alert> = sorted.iter().filter(|a| a.kind != AlertKind::Recovered).collect();
    // Count subscriptions, not alerts (one may have a cause and its escalation); an alert about
    // the account as a whole counts as one.
    let count = |list: &[&&Alert]| {
        let mut ids: Vec<Option<&str>> = list.iter().map(|a| a.subscription_id.as_ref().map(|s| s.as_str())).collect();
        ids.sort_unstable();
        ids.dedup();
        ids.len()
    };
    let subject = match problems.first() {
        Some(worst) if problems.iter().all(|a| a.subscription_id.is_none()) => {
            format!("[proxy-renewd] the account needs attention: {}", worst.kind.words())
        }
        Some(worst) => {
            let subs: Vec<&&Alert> = problems.iter().copied().filter(|a| a.subscription_id.is_some()).collect();
            let n = count(&subs);
            format!(
                "[proxy-renewd] {n} subscription{} need{} attention: {}",
                plural(n),
                if n == 1 { "s" } else { "" },
                worst.kind.words()
            )
        }
        None => {
            let all: Vec<&&Alert> = sorted.iter().collect();
            let n = count(&all);
            format!("[proxy-renewd] {n} subscription{} recovered", plural(n))
        }
    };
    let mut body = String::new();
    let mut short: Vec<(&str, i64)> = sorted
        .iter()
        .filter(|a| a.kind == AlertKind::InsufficientBalance)
        .filter_map(|a| Some((a.subscription_id.as_ref()?.as_str(), a.amount?.0)))
        .collect();
    short.sort_unstable();
    short.dedup_by_key(|(id, _)| *id);
    if !short.is_empty() {
        let total: i64 = short.iter().map(|(_, c)| c).sum();
        let _ = writeln!(
            body,
            "Top up the balance by at least {} ({total} cents) to cover the {} renewal{} the short balance blocked (refused with 402, or not tried after one), most urgent first.\n",
            crate::values::Cents(total),
            short.len(),
            plural(short.len())
        );
    }
    for a in &sorted {
        let who = match (&a.subscription_id, &a.label, &a.network) {
            (Some(id), Some(l), Some(n)) => format!("{id} ({}, {})", clean_text(l), clean_text(n)),
            (Some(id), Some(l), None) => format!("{id} ({})", clean_text(l)),
            (Some(id), _, _) => id.to_string(),
            (None, _, _) => "the account".into(),
        };
        let _ = writeln!(body, "{}: {who}", a.kind.words().to_uppercase());
        if let Some(t) = a.active_until {
            let _ = writeln!(body, "  expires:       {t} ({})", relative(t, now));
        }
        let _ = writeln!(body, "  what happened: {}", clean_text(&a.happened));
        let _ = writeln!(body, "  next:          {}", a.next);
        let _ = writeln!(body, "  what to do:    {}", a.action);
        body.push('\n');
    }
    let host = match instance {
        Some(name) => format!("{} (instance {})", crate::lock::hostname(), clean_text(name)),
        None => crate::lock::hostname(),
    };
    if problems.is_empty() {
        let _ = writeln!(body, "-- \nproxy-renewd on {host}: all clear, nothing to do.");
    } else {
        let _ = writeln!(
            body,
            "-- \nproxy-renewd on {host}. The same alert repeats after [alerts] repeat_interval while the problem lasts."
        );
    }
    Digest { subject, body }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// An SMTP sender for `[alerts.email]`.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    send_timeout: Duration,
}

impl std::fmt::Debug for Mailer {
    /// The transport is left out: it holds the SMTP password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("from", &self.from.to_string())
            .field("to", &self.to.len())
            .finish_non_exhaustive()
    }
}

impl Mailer {
    /// Builds the transport from lettre's URL form (`smtp://user:pass@host:587?tls=required`,
    /// `smtps://…`, `smtp://host:25`). No connection is made.
    ///
    /// # Errors
    /// A sentence naming the bad setting, never the URL (it may hold a password).
    pub fn new(cfg: &Email) -> Result<Mailer, String> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(cfg.smtp_url.expose_secret())
            .map_err(|e| {
                format!("invalid [alerts.email] smtp_url ({}); the URL is not shown", secret_free(&e.to_string(), cfg))
            })?
            .timeout(Some(Duration::from_secs(30)))
            .build();
        let from: Mailbox = cfg.from.parse().map_err(|e| format!("invalid [alerts.email] from {:?}: {e}", cfg.from))?;
        let to = cfg
            .to
            .iter()
            .map(|t| t.parse::<Mailbox>().map_err(|e| format!("invalid [alerts.email] to {t:?}: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Mailer { transport, from, to, send_timeout: SEND_TIMEOUT })
    }

    /// Another limit on one send than [`SEND_TIMEOUT`].
    #[must_use]
    pub fn with_send_timeout(mut self, limit: Duration) -> Self {
        self.send_timeout = limit;
        self
    }

    /// Sends one message; returns the server's answer, e.g. `250 OK`.
    ///
    /// # Errors
    /// The SMTP error (connection, TLS, authentication, refusal), secret-free.
    pub async fn send(&self, subject: &str, body: &str, smtp: &Email) -> Result<String, String> {
        let mut builder = Message::builder()
            .message_id(None)
            .from(self.from.clone())
            .subject(subject)
            .header(ContentType::TEXT_PLAIN);
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        let message = builder.body(body.to_owned()).map_err(|e| format!("cannot build the message: {e}"))?;
        // lettre's own timeout covers only the connection: a server that accepts and then says
        // nothing must not hold the cycle (and shutdown) forever.
        let response = tokio::time::timeout(self.send_timeout, self.transport.send(message))
            .await
            .map_err(|_| format!("the SMTP server did not finish within {:?}", self.send_timeout))?
            .map_err(|e| secret_free(&e.to_string(), smtp))?;
        Ok(format!("{} {}", response.code(), response.message().collect::<Vec<_>>().join(" ")))
    }
}

/// The longest one message may take to send, connection included.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(60);

/// An SMTP error text with the URL's login removed (as written and percent-decoded), should
/// the library or the server ever quote it.
fn secret_free(text: &str, cfg: &Email) -> String {
    let url = cfg.smtp_url.expose_secret();
    let parsed = url::Url::parse(url).ok();
    let mut secrets: Vec<String> = Vec::new();
    if let Some(u) = &parsed {
        for raw in [u.password().unwrap_or(""), u.username()] {
            secrets.push(raw.to_owned());
            secrets.push(percent_encoding::percent_decode_str(raw).decode_utf8_lossy().into_owned());
        }
    }
    let mut out = clean_text(text).replace(url, "<smtp url>");
    for s in secrets.iter().filter(|s| s.len() >= 3) {
        out = out.replace(s.as_str(), "<redacted>");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn cfg(url: &str) -> Email {
        Email {
            smtp_url: SecretString::from(url.to_owned()),
            from: "a@b".into(),
            to: vec!["c@d".into()],
            instance: None,
        }
    }

    #[test]
    fn smtp_logins_are_removed_as_written_and_decoded() {
        let c = cfg("smtp://alice:p%40ss%20w0rd%21@mail.example:587");
        let out = secret_free("535 bad password p@ss w0rd! for alice (p%40ss%20w0rd%21)", &c);
        assert!(!out.contains("p@ss") && !out.contains("p%40ss") && !out.contains("alice"), "{out}");
    }
}
