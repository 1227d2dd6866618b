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
    let news = |k: AlertKind| matches!(k, AlertKind::Recovered | AlertKind::Forecast);
    let problems: Vec<&&Alert> = sorted.iter().filter(|a| !news(a.kind)).collect();
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
        None if sorted.iter().all(|a| a.kind == AlertKind::Forecast) => {
            let first = sorted[0].happened.split(';').next().unwrap_or_default();
            format!("[proxy-renewd] renewal forecast: {}", clean_text(first))
        }
        None => {
            let all: Vec<&&Alert> = sorted.iter().filter(|a| a.kind == AlertKind::Recovered).collect();
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
    // The account's figure: the next 24 h of the forecast, the blocked ones included.
    let next_day = sorted
        .iter()
        .filter(|a| a.kind == AlertKind::InsufficientBalance && a.subscription_id.is_none())
        .filter_map(|a| a.amount)
        .max();
    if !short.is_empty() {
        let total: i64 = short.iter().map(|(_, c)| c).sum();
        let _ = write!(
            body,
            "Top up the balance by at least {} ({total} cents) to cover the {} renewal{} the short balance blocked (refused with 402, or not tried after one), most urgent first.",
            crate::values::Cents(total),
            short.len(),
            plural(short.len())
        );
        if let Some(day) = next_day.filter(|d| d.0 > total) {
            let _ = write!(
                body,
                " To cover the next 24 h of renewals as well (the forecast, these included): at least {day} ({} cents).",
                day.0
            );
        }
        body.push_str("\n\n");
    }
    // One section per kind, most urgent first within it; the body stays under
    // MAX_DIGEST_BYTES however many alerts there are: past a kind's share, they are counted.
    let kinds: Vec<AlertKind> = {
        let mut k: Vec<AlertKind> = sorted.iter().map(|a| a.kind).collect();
        k.dedup();
        k
    };
    for (n, kind) in kinds.iter().enumerate() {
        let mut group: Vec<&Alert> = sorted.iter().copied().filter(|a| a.kind == *kind).collect();
        group.sort_by_key(|a| (a.active_until.is_none(), a.active_until, a.subscription_id.clone()));
        section_header(&mut body, *kind, &group);
        // What is left for this kind, keeping room for the other kinds' headers and the end.
        let budget = MAX_DIGEST_BYTES.saturating_sub(body.len() + (kinds.len() - n) * 300 + 500);
        let share = budget / (kinds.len() - n);
        let start = body.len();
        let mut shown = 0;
        for a in &group {
            let entry = render_entry(a, now);
            if shown >= DETAIL_PER_KIND || body.len() - start + entry.len() > share {
                break;
            }
            body.push_str(&entry);
            shown += 1;
        }
        if shown < group.len() {
            let _ = writeln!(
                body,
                "  … and {} more {}: `proxy-renewd alerts list` lists every alert\n",
                group.len() - shown,
                kind.as_str()
            );
        }
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

/// The most one digest's body holds, in bytes (100 kB): past it, alerts are counted, not
/// detailed (mail servers commonly refuse messages over a few MB; some far less).
pub const MAX_DIGEST_BYTES: usize = 100_000;

/// The most alerts of one kind a digest details; the rest are counted.
pub const DETAIL_PER_KIND: usize = 25;

/// `OVER THE DAILY BUDGET — 984 subscriptions, 11808.00 involved, earliest expiry …`.
fn section_header(body: &mut String, kind: AlertKind, group: &[&Alert]) {
    let mut ids: Vec<&str> = group.iter().filter_map(|a| a.subscription_id.as_ref().map(|s| s.as_str())).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut facts = Vec::new();
    if !ids.is_empty() {
        facts.push(format!("{} subscription{}", ids.len(), plural(ids.len())));
    }
    // Money of the subscriptions (an account's figure, such as the top-up, is its own entry).
    let money: i64 = group.iter().filter(|a| a.subscription_id.is_some()).filter_map(|a| a.amount.map(|c| c.0)).sum();
    if money > 0 {
        facts.push(format!("{} involved", crate::values::Cents(money)));
    }
    if let Some(t) = group.iter().filter_map(|a| a.active_until).min() {
        facts.push(format!("earliest expiry {t}"));
    }
    let facts = if facts.is_empty() { String::new() } else { format!(" — {}", facts.join(", ")) };
    let _ = writeln!(body, "== {}{facts} ==\n", kind.words().to_uppercase());
}

/// One alert, as the digest shows it.
fn render_entry(a: &Alert, now: EpochMs) -> String {
    let who = match (&a.subscription_id, &a.label, &a.network) {
        (Some(id), Some(l), Some(n)) => format!("{id} ({}, {})", clean_text(l), clean_text(n)),
        (Some(id), Some(l), None) => format!("{id} ({})", clean_text(l)),
        (Some(id), _, _) => id.to_string(),
        (None, _, _) => "the account".into(),
    };
    let mut out = format!("{}: {who}\n", a.kind.words().to_uppercase());
    if let Some(t) = a.active_until {
        let _ = writeln!(out, "  expires:       {t} ({})", relative(t, now));
    }
    let _ = writeln!(out, "  what happened: {}", clean_text(&a.happened));
    let _ = writeln!(out, "  next:          {}", a.next);
    let _ = writeln!(out, "  what to do:    {}", a.action);
    out.push('\n');
    out
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
        let builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(cfg.smtp_url.expose_secret())
            .map_err(|e| {
                format!("invalid [alerts.email] smtp_url ({}); the URL is not shown", secret_free(&e.to_string(), cfg))
            })?
            .timeout(Some(Duration::from_secs(30)));
        let builder = match &cfg.ca_pem {
            Some(pem) => builder.tls(tls_with_ca(cfg, pem)?),
            None => builder,
        };
        let transport = builder.build();
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
}

/// Why a message did not reach one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendError {
    /// The SMTP error, secret-free.
    pub text: String,
    /// The server refused for good (5xx): retrying the same address will not help.
    pub permanent: bool,
}

impl Mailer {
    /// The recipients, as configured (`[alerts.email] to`).
    #[must_use]
    pub fn recipients(&self) -> Vec<String> {
        self.to.iter().map(ToString::to_string).collect()
    }

    /// Sends one message to the recipient `to` (one of [`Mailer::recipients`]) alone.
    ///
    /// # Errors
    /// [`SendError`], saying whether the refusal is permanent.
    pub async fn send_to(&self, to: &str, subject: &str, body: &str, smtp: &Email) -> Result<String, SendError> {
        let fail = |text: String, permanent| SendError { text, permanent };
        let mailbox = self
            .to
            .iter()
            .find(|m| m.to_string() == to)
            .cloned()
            .ok_or_else(|| fail(format!("{to} is not a recipient"), true))?;
        let message = Message::builder()
            .message_id(None)
            .from(self.from.clone())
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .to(mailbox)
            .body(body.to_owned())
            .map_err(|e| fail(format!("cannot build the message: {e}"), true))?;
        // lettre's own timeout covers only the connection: a server that accepts and then says
        // nothing must not hold the cycle (and shutdown) forever.
        let response = tokio::time::timeout(self.send_timeout, self.transport.send(message))
            .await
            .map_err(|_| fail(format!("the SMTP server did not finish within {:?}", self.send_timeout), false))?
            .map_err(|e| fail(secret_free(&e.to_string(), smtp), e.is_permanent()))?;
        Ok(format!("{} {}", response.code(), response.message().collect::<Vec<_>>().join(" ")))
    }
}

/// The URL's TLS mode (`smtps://` wraps, `?tls=required` / `?tls=opportunistic` STARTTLS)
/// with `pem`'s certificate authorities trusted beside the system's.
fn tls_with_ca(cfg: &Email, pem: &[u8]) -> Result<lettre::transport::smtp::client::Tls, String> {
    use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
    let url = url::Url::parse(cfg.smtp_url.expose_secret())
        .map_err(|_| "invalid [alerts.email] smtp_url; the URL is not shown".to_owned())?;
    let host = url.host_str().unwrap_or_default().to_owned();
    let cert = Certificate::from_pem(pem).map_err(|e| format!("invalid [alerts.email] ca_file: {e}"))?;
    let params = TlsParameters::builder(host)
        .add_root_certificate(cert)
        .build_rustls()
        .map_err(|e| format!("cannot set up TLS with [alerts.email] ca_file: {e}"))?;
    let mode = url.query_pairs().find(|(k, _)| k == "tls").map(|(_, v)| v.into_owned());
    match (url.scheme(), mode.as_deref()) {
        ("smtps", _) => Ok(Tls::Wrapper(params)),
        (_, Some("required")) => Ok(Tls::Required(params)),
        (_, Some("opportunistic")) => Ok(Tls::Opportunistic(params)),
        _ => Err("[alerts.email] ca_file is set, but smtp_url asks for no TLS: use smtps:// or ?tls=required".into()),
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
    use crate::values::{Cents, SubscriptionId};
    use secrecy::SecretString;

    fn alert(kind: AlertKind, n: usize) -> Alert {
        Alert {
            kind,
            subscription_id: Some(SubscriptionId::parse(&format!("sub{n}")).unwrap()),
            period: Some(EpochMs(1_800_000_000_000 + n as i64)),
            label: Some(format!("{n} - NL - Private")),
            network: Some("NL-AMS Amsterdam".into()),
            active_until: Some(EpochMs(1_800_000_000_000 + n as i64 * 60_000)),
            happened: "plan k17 costs 12.00; 200.00 of the 200.00 daily budget is spent".into(),
            next: "renew it when the rolling 24 h allows".into(),
            action: "raise [budget] max_spend_cents_per_day, or renew by hand".into(),
            amount: Some(Cents(1200)),
        }
    }

    #[tokio::test]
    async fn a_ca_file_needs_a_tls_url_and_a_certificate() {
        let mut c = cfg("smtp://mail.example:25");
        c.ca_pem = Some(b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n".to_vec());
        let e = Mailer::new(&c).err().unwrap();
        assert!(e.contains("ca_file"), "{e}");
        let mut c = cfg("smtp://mail.example:25");
        c.ca_pem = None;
        assert!(Mailer::new(&c).is_ok());
    }

    #[test]
    fn a_digest_of_a_thousand_alerts_stays_small_and_keeps_the_totals() {
        let mut alerts: Vec<Alert> = (0..984).map(|n| alert(AlertKind::OverBudget, n)).collect();
        alerts.extend((0..354).map(|n| alert(AlertKind::LapseImminent, n)));
        let refs: Vec<&Alert> = alerts.iter().collect();
        let d = digest(&refs, EpochMs(1_799_000_000_000), None);
        assert!(d.body.len() <= MAX_DIGEST_BYTES, "{} bytes", d.body.len());
        assert!(
            d.body.contains("== OVER THE DAILY BUDGET — 984 subscriptions, 11808.00 involved"),
            "{}",
            &d.body[..400]
        );
        assert!(d.body.contains("and 959 more over-budget"), "{}", d.body);
        assert!(d.body.contains("== ABOUT TO LAPSE — 354 subscriptions"), "{}", d.body);
        // Most urgent first within a kind.
        let first = d.body.find("OVER THE DAILY BUDGET: sub0 ").unwrap();
        assert!(first < d.body.find("OVER THE DAILY BUDGET: sub1 ").unwrap());
        assert!(d.subject.len() < 100, "{}", d.subject);
    }

    fn cfg(url: &str) -> Email {
        Email {
            smtp_url: SecretString::from(url.to_owned()),
            from: "a@b".into(),
            to: vec!["c@d".into()],
            instance: None,
            ca_pem: None,
        }
    }

    #[test]
    fn smtp_logins_are_removed_as_written_and_decoded() {
        let c = cfg("smtp://alice:p%40ss%20w0rd%21@mail.example:587");
        let out = secret_free("535 bad password p@ss w0rd! for alice (p%40ss%20w0rd%21)", &c);
        assert!(!out.contains("p@ss") && !out.contains("p%40ss") && !out.contains("alice"), "{out}");
    }
}
