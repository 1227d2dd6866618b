//! The alerts of a provider that cannot be read: `unreachable` once `op=subscriptions` has
//! failed long enough, `lapse-imminent` and `expired` from the last good read while it fails,
//! and `recovered` when it answers again. Pure: the cycle hands in what the database knows.

use crate::alert::{Alert, AlertKind};
use crate::store::{ReadFailures, SeenSubscription};
use crate::values::{EpochMs, relative};

/// An account alert whose period is the outage's start: one outage is one alert (repeated
/// per repeat_interval), a new outage alerts anew.
fn account(kind: AlertKind, period: EpochMs, happened: String, next: &str, action: &str) -> Alert {
    Alert::account(kind, Some(period)).with(happened, next, action)
}

/// `unreachable`: reads have failed since `run.since`, `run.count` times, the last with
/// `error`.
#[must_use]
pub fn unreachable(run: ReadFailures, error: &str, now: EpochMs) -> Alert {
    account(
        AlertKind::Unreachable,
        run.since,
        format!(
            "op=subscriptions has failed {} times in a row since {} ({}); the last: {error}",
            run.count,
            run.since,
            relative(run.since, now)
        ),
        "keep trying each cycle; nothing can be renewed while the list cannot be read",
        "check [api] base_url and the network from this host (`proxy-renewd api subscriptions`), and the provider's status",
    )
}

/// `recovered` for the account: reads succeed again after `run`.
#[must_use]
pub fn provider_recovered(run: ReadFailures, now: EpochMs) -> Alert {
    account(
        AlertKind::Recovered,
        run.since,
        format!("op=subscriptions answers again, after {} failed reads since {}", run.count, run.since),
        "nothing: back to normal; due subscriptions are renewed this cycle",
        &format!("nothing (the outage lasted {})", relative(run.since, now).trim_end_matches(" ago")),
    )
}

/// `expired` / `lapse-imminent` for managed subscriptions as the last good read left them
/// (`expiry` is the later of that read and what a recorded renewal paid for), while the
/// provider cannot be read.
#[must_use]
pub fn from_last_read(managed: &[(SeenSubscription, EpochMs)], now: EpochMs, lapse_warning_ms: i64) -> Vec<Alert> {
    managed
        .iter()
        .filter_map(|(s, expiry)| {
            let left = expiry.since(now);
            let (kind, happened) = if left < 0 {
                (AlertKind::Expired, format!("expired {expiry} (as last read), and the provider cannot be read"))
            } else if left <= lapse_warning_ms {
                (AlertKind::LapseImminent, format!("expires {expiry} (as last read), and the provider cannot be read"))
            } else {
                return None;
            };
            Some(super::raise::about_seen(kind, s, *expiry).with(
                happened,
                "renew it as soon as the provider answers again",
                format!(
                    "renew it at the provider's dashboard if the outage lasts (`proxy-renewd renew {}` once the API answers)",
                    s.subscription_id
                ),
            ))
        })
        .collect()
}
