//! Injected faults: what the simulated gateway does wrong, for which op, how many times.
//!
//! A fault is consumed by the first request of its op; "before" faults answer without
//! touching state, "after" faults apply the op and then lose or spoil the answer, which is
//! exactly the case where a client cannot know whether a charge happened.

use serde::{Deserialize, Serialize};

/// One fault, for `count` requests of `op` (`"*"` for any op).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    /// The API's op name, e.g. `renew`, or `*`.
    pub op: String,
    /// What goes wrong.
    #[serde(flatten)]
    pub kind: FaultKind,
    /// How many matching requests it hits; 1 when absent.
    #[serde(default = "one")]
    pub count: u32,
}

fn one() -> u32 {
    1
}

/// What goes wrong. JSON: `{"op": "renew", "kind": "status-after", "status": 500}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum FaultKind {
    /// Wait `ms` first, then answer normally.
    Latency {
        /// Delay in ms.
        ms: u64,
    },
    /// Answer `status` with a JSON error body, without applying.
    StatusBefore {
        /// HTTP status.
        status: u16,
    },
    /// Apply, then answer `status` with a JSON error body.
    StatusAfter {
        /// HTTP status.
        status: u16,
    },
    /// Close the connection without applying or answering.
    DropBefore,
    /// Apply, then close the connection without answering.
    DropAfter,
    /// Apply, then hold the answer for `ms` (default one hour): the client times out.
    StallAfter {
        /// How long the answer is held, in ms.
        #[serde(default = "an_hour")]
        ms: u64,
    },
    /// Answer 502 with an HTML page (a proxy in front of the gateway), without applying.
    #[serde(rename = "html-502")]
    Html502,
    /// Answer 200 `{"ok": false, "error": "Internal error"}`, without applying.
    OkFalse,
    /// Apply, then answer 200 with a body that is not JSON.
    GarbageAfter,
    /// Answer exactly `body` with `status` (`application/json`), without applying: for
    /// testing a client against any payload.
    Canned {
        /// HTTP status.
        status: u16,
        /// The body, verbatim.
        body: String,
        /// Extra response headers, e.g. `[["location", "http://…"]]`.
        #[serde(default)]
        headers: Vec<(String, String)>,
    },
    /// Apply (a read), then answer with the real `subscriptions` list and these raw entries
    /// appended to it, each given as hex bytes: for entries no `String` can hold (invalid
    /// UTF-8) or that serde cannot read (`1e400`, deep nesting).
    RawEntries {
        /// Each entry's bytes in hex, e.g. `"7b7d"` for `{}`.
        entries_hex: Vec<String>,
    },
    /// Hold the request without applying it; apply it `ms` later, whether or not the client
    /// is still there (a gateway that queues): the client times out, the charge lands later.
    ApplyLate {
        /// Delay before applying, in ms.
        ms: u64,
    },
    /// Answer 429 with `Retry-After: retry_after_secs`, without applying.
    RateLimit {
        /// Seconds in `Retry-After`.
        retry_after_secs: u64,
    },
    /// Hold the request, unapplied, until [`Simulator::release`](super::Simulator::release)
    /// (or `POST /__sim/release`) lets it go, then answer normally: for tests that must act
    /// while a request is in flight, without a sleep as the synchronisation.
    Hold,
}

fn an_hour() -> u64 {
    3_600_000
}

impl FaultKind {
    /// Does this fault apply the op before misbehaving?
    #[must_use]
    pub fn applies_first(&self) -> bool {
        matches!(
            self,
            FaultKind::StatusAfter { .. }
                | FaultKind::DropAfter
                | FaultKind::StallAfter { .. }
                | FaultKind::GarbageAfter
                | FaultKind::RawEntries { .. }
        )
    }

    /// A short name for the call log, e.g. `status-after 500`.
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            FaultKind::Latency { ms } => format!("latency {ms}ms"),
            FaultKind::StatusBefore { status } => format!("status-before {status}"),
            FaultKind::StatusAfter { status } => format!("status-after {status}"),
            FaultKind::DropBefore => "drop-before".into(),
            FaultKind::DropAfter => "drop-after".into(),
            FaultKind::StallAfter { ms } => format!("stall-after {ms}ms"),
            FaultKind::Html502 => "html-502".into(),
            FaultKind::OkFalse => "ok-false".into(),
            FaultKind::GarbageAfter => "garbage-after".into(),
            FaultKind::RateLimit { retry_after_secs } => format!("rate-limit {retry_after_secs}s"),
            FaultKind::Canned { status, .. } => format!("canned {status}"),
            FaultKind::RawEntries { entries_hex } => format!("raw-entries {}", entries_hex.len()),
            FaultKind::ApplyLate { ms } => format!("apply-late {ms}ms"),
            FaultKind::Hold => "hold".into(),
        }
    }
}

impl Fault {
    /// Checks what a fault can mean: a known op or `*`, a count of at least 1, and statuses
    /// from 200 to 599 (a 1xx or out-of-range status cannot be sent as a final answer).
    ///
    /// # Errors
    /// A sentence naming the bad field.
    pub fn validate(&self) -> Result<(), String> {
        if self.op != "*" && super::ops::op_method(&self.op).is_none() {
            return Err(format!("unknown op {:?}: use an op of the API (plans, renew, …) or \"*\"", self.op));
        }
        if self.count == 0 {
            return Err("count must be at least 1".into());
        }
        match &self.kind {
            FaultKind::StatusBefore { status }
            | FaultKind::StatusAfter { status }
            | FaultKind::Canned { status, .. }
                if !(200..=599).contains(status) =>
            {
                Err(format!("status {status} cannot be answered: use 200 to 599"))
            }
            _ => Ok(()),
        }
    }
}

/// Takes one use of the first fault for `op`, dropping it when used up.
pub(crate) fn take(faults: &mut Vec<Fault>, op: &str) -> Option<FaultKind> {
    let i = faults.iter().position(|f| f.count > 0 && (f.op == op || f.op == "*"))?;
    let kind = faults[i].kind.clone();
    faults[i].count -= 1;
    if faults[i].count == 0 {
        faults.remove(i);
    }
    Some(kind)
}
