//! The client's errors, one enum per kind of call, each variant saying what the caller must do.
//!
//! Reads (`GET`) fail with [`ApiError`]. Writes (`POST`) fail with [`PostError`], whose three
//! variants keep apart what must never be confused when money is involved: the request was
//! never sent ([`PostError::NotSent`]), the provider definitely refused it and did nothing
//! ([`PostError::Refused`]), or nobody knows whether it was applied
//! ([`PostError::OutcomeUnknown`]). Every message is secret-free: bodies are quoted only as
//! redacted excerpts (see `excerpt.rs`).

use std::fmt;
use std::time::Duration;

use crate::values::IdError;

/// The provider operation a request belongs to (the API's `op`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// `GET op=plans`.
    Plans,
    /// `GET op=subscriptions`.
    Subscriptions,
    /// `GET op=renewal-plans`.
    RenewalPlans,
    /// `GET op=available-networks`.
    AvailableNetworks,
    /// `POST op=purchase`.
    Purchase,
    /// `POST op=renew`.
    Renew,
    /// `POST op=change-credentials`.
    ChangeCredentials,
    /// `POST op=switch-network`.
    SwitchNetwork,
}

impl Op {
    /// The API's own name, e.g. `renewal-plans`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Plans => "plans",
            Op::Subscriptions => "subscriptions",
            Op::RenewalPlans => "renewal-plans",
            Op::AvailableNetworks => "available-networks",
            Op::Purchase => "purchase",
            Op::Renew => "renew",
            Op::ChangeCredentials => "change-credentials",
            Op::SwitchNetwork => "switch-network",
        }
    }

    /// Every op, in the reference's order.
    pub const ALL: [Op; 8] = [
        Op::Plans,
        Op::Subscriptions,
        Op::RenewalPlans,
        Op::AvailableNetworks,
        Op::Purchase,
        Op::Renew,
        Op::ChangeCredentials,
        Op::SwitchNetwork,
    ];

    /// A read (`GET`), as opposed to a write (`POST`).
    #[must_use]
    pub fn is_read(self) -> bool {
        matches!(self, Op::Plans | Op::Subscriptions | Op::RenewalPlans | Op::AvailableNetworks)
    }

    /// Does the op carry a `subscriptionId`?
    #[must_use]
    pub fn takes_subscription_id(self) -> bool {
        !matches!(self, Op::Plans | Op::Subscriptions | Op::Purchase)
    }

    /// Parses the API's name of an op.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|op| op.as_str() == name)
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A definite refusal: the provider answered 400, 401, 402, 403, 404, 409 or 429 and did
/// nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Which op was refused.
    pub op: Op,
    /// The HTTP status.
    pub status: u16,
    /// The provider's message (`error` or `message` of a JSON body), redacted and cut short.
    pub message: Option<String>,
    /// `Retry-After` of a 429, when given.
    pub retry_after: Option<Duration>,
}

impl Refusal {
    /// 402: the balance does not cover the price. Retry after a top-up.
    #[must_use]
    pub fn is_insufficient_balance(&self) -> bool {
        self.status == 402
    }
    /// 409: sold out, inactive plan or network, or invalid subscription state.
    #[must_use]
    pub fn is_unavailable(&self) -> bool {
        self.status == 409
    }
    /// 401 or 403: the key is missing, wrong or revoked, or not the owner's.
    #[must_use]
    pub fn is_auth(&self) -> bool {
        matches!(self.status, 401 | 403)
    }
    /// 404: no such subscription.
    #[must_use]
    pub fn is_not_found(&self) -> bool {
        self.status == 404
    }
    /// 429: rate limited; see [`Refusal::retry_after`].
    #[must_use]
    pub fn is_rate_limited(&self) -> bool {
        self.status == 429
    }
    /// 400: the request itself was invalid (a bug or bad configuration).
    #[must_use]
    pub fn is_bad_request(&self) -> bool {
        self.status == 400
    }

    /// The refusal in a few words, each thing said once, as the ledger records it:
    /// `HTTP 402 insufficient balance`, then the provider's words when they add something
    /// (`HTTP 409 sold out, …: Plan is sold out`). See [`refusal_summary`].
    #[must_use]
    pub fn summary(&self) -> String {
        refusal_summary(self.status, &self.advice(), self.message.as_deref())
    }

    fn advice(&self) -> String {
        match self.status {
            400 => "the provider found the request invalid: check the ids, plan and counts (a bug or bad configuration)".into(),
            401 => "the provider rejected the API key: check [api].key or key_file (missing, wrong or revoked)".into(),
            402 => "insufficient balance: top up the account balance".into(),
            403 => "forbidden: the subscription does not belong to this API key's owner".into(),
            // The gateway's own 404 is "Subscription not found", for ops that name one; a 404
            // without its JSON, or for an op without an id, means the URL is wrong.
            404 if self.message.is_some() && self.op.takes_subscription_id() => "subscription not found: check the id".into(),
            404 => "the API endpoint was not found: check [api].base_url (requests go to BASE/api/proxy)".into(),
            409 => "sold out, inactive plan or network, or invalid subscription state: choose another plan or check the subscription".into(),
            429 => match self.retry_after {
                Some(d) if d.as_secs() > 86_400 => "rate limited: retry after more than a day".into(),
                Some(d) => format!("rate limited: retry after {}", humantime::format_duration(d)),
                None => "rate limited: retry later".into(),
            },
            other => format!("refused with HTTP {other}"),
        }
    }
}

/// Whether `said` (the provider's words) only repeats what `ours` already says: the same
/// words, ignoring case and a final full stop.
fn repeats(ours: &str, said: &str) -> bool {
    let plain = |s: &str| s.trim().trim_end_matches(['.', '!']).to_lowercase();
    plain(said).is_empty() || plain(ours).contains(&plain(said))
}

/// `HTTP {status} {what}` (`what`: `advice` up to its first `:`, e.g. `insufficient balance`),
/// then `: {said}` unless the provider's words `said` only repeat it. Also reads back what
/// older versions stored (`history`).
#[must_use]
pub fn refusal_summary(status: u16, advice: &str, said: Option<&str>) -> String {
    let what = advice.split(':').next().unwrap_or(advice).trim();
    let what = if what.starts_with("refused with HTTP") { "refused" } else { what };
    let mut text = format!("HTTP {status} {what}");
    if let Some(said) = said.map(str::trim).filter(|s| !repeats(what, s)) {
        text.push_str(": ");
        text.push_str(said);
    }
    text
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let advice = self.advice();
        write!(f, "{}: HTTP {}: {advice}", self.op, self.status)?;
        // The provider's words, unless they only repeat what the advice says.
        if let Some(msg) = self.message.as_deref().filter(|m| !repeats(&advice, m)) {
            write!(f, " (provider said: {msg})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Refusal {}

/// A request that failed without a definite answer: nothing reached the provider, nothing
/// came back, or what came back cannot be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Failure {
    /// No connection could be made (DNS, refused, TLS): nothing was sent.
    #[error("{op}: could not connect to the provider ({detail}): check [api].base_url and the network")]
    Connect {
        /// Which op.
        op: Op,
        /// The cause, without URL or secret.
        detail: String,
    },
    /// Sent, but no complete answer within [api].timeout.
    #[error("{op}: no answer within {}: the provider is slow or down", humantime::format_duration(*.timeout))]
    Timeout {
        /// Which op.
        op: Op,
        /// The total timeout that ran out.
        timeout: Duration,
    },
    /// The connection broke after the request went out.
    #[error("{op}: the connection broke before a full answer ({detail}): usually transient")]
    Transport {
        /// Which op.
        op: Op,
        /// The cause, without URL or secret.
        detail: String,
    },
    /// 5xx, or a status the reference does not list (1xx, 3xx, other 4xx).
    #[error("{op}: the provider answered HTTP {status}: {excerpt}: {}", status_advice(*status))]
    Server {
        /// Which op.
        op: Op,
        /// The HTTP status.
        status: u16,
        /// A short, redacted excerpt of the body.
        excerpt: String,
    },
    /// An answer that is not what the reference describes (not JSON, `ok` not true, a
    /// required field missing or of the wrong type).
    #[error("{op}: unexpected answer (HTTP {status}): {reason}; body begins {excerpt}")]
    Malformed {
        /// Which op.
        op: Op,
        /// The HTTP status.
        status: u16,
        /// What was wrong, e.g. `subscriptions[0].activeUntil: missing field`.
        reason: String,
        /// A short, redacted excerpt of the body.
        excerpt: String,
    },
    /// The body was larger than the configured cap and was not read whole.
    #[error("{op}: the answer (HTTP {status}) exceeds the {limit_bytes}-byte limit and was not read")]
    TooLarge {
        /// Which op.
        op: Op,
        /// The HTTP status.
        status: u16,
        /// The cap in bytes.
        limit_bytes: u64,
    },
}

fn status_advice(status: u16) -> &'static str {
    match status {
        500..=599 => "usually transient, retry later",
        300..=399 => "a redirect, which is not followed: check [api].base_url (http or https, host, path)",
        _ => "a status the provider's reference does not list: check [api].base_url",
    }
}

impl Failure {
    /// The HTTP status of an answer that was received but not usable (5xx, malformed, too
    /// large); `None` when no answer came (connect, timeout, broken transport).
    #[must_use]
    pub fn status(&self) -> Option<u16> {
        match self {
            Failure::Server { status, .. } | Failure::Malformed { status, .. } | Failure::TooLarge { status, .. } => {
                Some(*status)
            }
            Failure::Connect { .. } | Failure::Timeout { .. } | Failure::Transport { .. } => None,
        }
    }

    /// Worth retrying for a read: transport trouble and 5xx, not a malformed or huge answer.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        match self {
            Failure::Connect { .. } | Failure::Timeout { .. } | Failure::Transport { .. } => true,
            Failure::Server { status, .. } => *status >= 500,
            Failure::Malformed { .. } | Failure::TooLarge { .. } => false,
        }
    }
}

/// Why a read (`plans`, `subscriptions`, `renewal-plans`, `available-networks`) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// An argument was rejected locally; no request was made.
    #[error(transparent)]
    InvalidId(#[from] IdError),
    /// The provider refused (4xx), after any retries a 429 allowed.
    #[error(transparent)]
    Refused(Refusal),
    /// No usable answer, after the retries.
    #[error(transparent)]
    Failed(Failure),
}

impl ApiError {
    /// The refusal, if this is one.
    #[must_use]
    pub fn refusal(&self) -> Option<&Refusal> {
        match self {
            ApiError::Refused(r) => Some(r),
            _ => None,
        }
    }
}

/// Why a write (`purchase`, `renew`, `change-credentials`, `switch-network`) failed.
///
/// Match on it whole: the variants differ in what happened to the money.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
#[must_use]
pub enum PostError {
    /// Nothing was sent: a local check failed or no connection could be made.
    #[error("{op}: not sent: {reason}")]
    NotSent {
        /// Which op.
        op: Op,
        /// Why, in words.
        reason: String,
    },
    /// The provider answered with a definite refusal and did nothing. Safe to try again
    /// later for 402/409/429; the others need a person.
    #[error(transparent)]
    Refused(Refusal),
    /// The request may or may not have been applied (timeout, dropped connection, 5xx,
    /// unparseable 200). Never resend it blindly: read the state back first.
    #[error("outcome unknown, the provider may have applied it: {0}")]
    OutcomeUnknown(Failure),
}

impl PostError {
    /// True when the provider certainly did nothing (not sent, or refused).
    #[must_use]
    pub fn had_no_effect(&self) -> bool {
        !matches!(self, PostError::OutcomeUnknown(_))
    }

    /// The refusal, if this is one.
    #[must_use]
    pub fn refusal(&self) -> Option<&Refusal> {
        match self {
            PostError::Refused(r) => Some(r),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Op, Refusal, refusal_summary};

    #[test]
    fn the_providers_words_are_quoted_only_when_they_add_something() {
        let r = |m: &str| Refusal { op: Op::Renew, status: 402, message: Some(m.into()), retry_after: None };
        assert_eq!(
            r("Insufficient balance").to_string(),
            "renew: HTTP 402: insufficient balance: top up the account balance"
        );
        assert_eq!(
            r("Balance 1.00 is below 12.00").to_string(),
            "renew: HTTP 402: insufficient balance: top up the account balance (provider said: Balance 1.00 is below 12.00)"
        );
    }

    #[test]
    fn a_refusal_says_each_thing_once() {
        let advice = "insufficient balance: top up the account balance";
        assert_eq!(refusal_summary(402, advice, Some("Insufficient balance.")), "HTTP 402 insufficient balance");
        assert_eq!(refusal_summary(402, advice, None), "HTTP 402 insufficient balance");
        assert_eq!(
            refusal_summary(402, advice, Some("Balance 1.00 is below 12.00")),
            "HTTP 402 insufficient balance: Balance 1.00 is below 12.00"
        );
        assert_eq!(refusal_summary(418, "refused with HTTP 418", Some("teapot")), "HTTP 418 refused: teapot");
    }
}
