//! The plain values the whole program is built from, and nothing else of ours: validated
//! provider ids ([`SubscriptionId`], [`PlanId`], [`NetworkId`]), instants as integer ms UTC
//! ([`EpochMs`]), money as integer cents ([`Cents`]), the text cleaning every printed or
//! stored provider string goes through ([`text`]), and the clock ([`clock`]).
//!
//! This module imports no other module of the crate: the client, the store, the policy and
//! the alerts all build on it, so it must never reach back up to any of them.

pub mod clock;
pub mod text;

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

pub use clock::{Clock, ManualClock, SystemClock};

/// Why a string is not a valid provider id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {shown}: ids are lowercase letters and digits only (a-z, 0-9), 1 to 64 characters")]
pub struct IdError {
    /// Which kind of id was expected, e.g. `subscription id`.
    pub what: &'static str,
    /// The rejected input, quoted and cut to 40 characters.
    pub shown: String,
}

/// Checks the provider's id syntax `^[a-z0-9]+$` (with a 64-character cap of ours).
fn check_id(what: &'static str, value: &str) -> Result<(), IdError> {
    let ok =
        !value.is_empty() && value.len() <= 64 && value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if ok {
        return Ok(());
    }
    let cut: String = value.chars().take(40).collect();
    let shown = if cut.len() < value.len() { format!("{cut:?}…") } else { format!("{cut:?}") };
    Err(IdError { what, shown })
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Parses `value`, which must match `^[a-z0-9]+$` (at most 64 characters).
            ///
            /// # Errors
            /// [`IdError`] naming the bad input; nothing is sent to the provider.
            pub fn parse(value: &str) -> Result<Self, IdError> {
                check_id($what, value)?;
                Ok(Self(value.to_owned()))
            }

            /// The id as the provider spells it.
            #[must_use]
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, IdError> {
                check_id($what, &value)?;
                Ok(Self(value))
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// A subscription's id (`subscriptionId`), e.g. `j97b2f6m1k4n8p3r5t7v9x0z`.
    SubscriptionId,
    "subscription id"
);
id_type!(
    /// A plan's id (`planId`, `plans[].id`, `renewalPlans[].id`).
    PlanId,
    "plan id"
);
id_type!(
    /// A network's id (`networks[].id`, `targetNetwork`).
    NetworkId,
    "network id"
);

/// An instant as integer milliseconds since the Unix epoch, UTC (`activeUntil`, `endAt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EpochMs(pub i64);

impl EpochMs {
    /// The current wall-clock time.
    #[must_use]
    pub fn now() -> Self {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        Self(ms)
    }

    /// RFC 3339 in UTC to the second, e.g. `2025-11-08T08:53:20Z`; `None` before 1970 or
    /// beyond what `SystemTime` can hold.
    #[must_use]
    pub fn to_rfc3339(self) -> Option<String> {
        let ms = u64::try_from(self.0).ok()?;
        let t = UNIX_EPOCH.checked_add(Duration::from_millis(ms))?;
        // humantime formats only up to year 9999; it panics beyond.
        (self.0 < 253_402_300_800_000).then(|| humantime::format_rfc3339_seconds(t).to_string())
    }

    /// `self - other` in milliseconds, saturating.
    #[must_use]
    pub fn since(self, other: EpochMs) -> i64 {
        self.0.saturating_sub(other.0)
    }
}

impl fmt::Display for EpochMs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_rfc3339() {
            Some(s) => f.write_str(&s),
            None => write!(f, "{} ms", self.0),
        }
    }
}

/// An amount of money in integer cents (`priceAmountCents`). The API names no currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Cents(pub i64);

impl fmt::Display for Cents {
    /// `1200` shows as `12.00`, `-5` as `-0.05`; no currency symbol.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", abs / 100, abs % 100)
    }
}

/// `3d 4h`, `in 19h`-style distance of `at` from `now`: `in 2d 3h` or `5h 10m ago`.
#[must_use]
pub fn relative(at: EpochMs, now: EpochMs) -> String {
    let delta = at.since(now);
    let abs = delta.unsigned_abs() / 1000;
    let (d, h, m) = (abs / 86_400, abs % 86_400 / 3600, abs % 3600 / 60);
    let text = match (d, h, m) {
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    };
    if delta >= 0 { format!("in {text}") } else { format!("{text} ago") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_reads_naturally() {
        let now = EpochMs(1_000_000_000_000);
        assert_eq!(relative(EpochMs(now.0 + 19 * 3_600_000), now), "in 19h 0m");
        assert_eq!(relative(EpochMs(now.0 + 2 * 86_400_000 + 3 * 3_600_000), now), "in 2d 3h");
        assert_eq!(relative(EpochMs(now.0 - 5 * 60_000), now), "5m ago");
    }
}
