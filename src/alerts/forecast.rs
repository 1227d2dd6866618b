//! The alerts made of a cycle's forecast (pure): the weekly email (`[alerts] forecast =
//! "weekly"`, kind `forecast`) and, after a 402, the top-up figure that covers the renewals
//! the short balance blocked and the rest of the next 24 h (an `insufficient-balance` alert
//! about the account, whose amount the digest's first line adds up).

use std::fmt::Write as _;

use crate::alert::{Alert, AlertKind};
use crate::attempt::RenewOutcome;
use crate::forecast::{DAY_MS, Forecast};
use crate::report::CycleReport;
use crate::values::{Cents, EpochMs};

/// Monday 00:00 UTC of the week of `t` (1970-01-01 was a Thursday).
#[must_use]
pub fn week_start(t: EpochMs) -> EpochMs {
    let day = t.0.div_euclid(DAY_MS);
    EpochMs((day - (day + 3).rem_euclid(7)) * DAY_MS)
}

fn renewals(n: usize) -> String {
    format!("{n} renewal{}", if n == 1 { "" } else { "s" })
}

/// The weekly forecast: the next 7 days of `f` (renewals and spend per day, fund-by amounts,
/// budget stops, what needs a person). Its period is the UTC week of `now`, so that it goes
/// out once per week.
#[must_use]
pub fn forecast_alert(f: &Forecast, now: EpochMs) -> Alert {
    let end = now.0.saturating_add(7 * DAY_MS);
    let rows: Vec<_> = f.renewals.iter().filter(|r| r.at.0 < end).collect();
    let week = f.totals_before("7d", 7 * DAY_MS, EpochMs(end));
    let spend = week.spend;
    let mut happened = format!("the next 7 days: {}, {spend}", renewals(week.renewals));
    if week.unpriced > 0 {
        let _ = write!(happened, " (+{} at a price not known)", week.unpriced);
    }
    if let Some(w) = f.window("24h") {
        let _ = write!(happened, "; the next 24 h: {}, {}", renewals(w.renewals), w.spend);
    }
    // Per UTC day, from the renewals inside the 7 × 24 h only.
    let mut days: Vec<(EpochMs, usize, i64)> = Vec::new();
    for r in &rows {
        let day = EpochMs(r.at.0.div_euclid(DAY_MS) * DAY_MS);
        match days.last_mut() {
            Some((d, n, cents)) if *d == day => {
                *n += 1;
                *cents += r.price().0;
            }
            _ => days.push((day, 1, r.price().0)),
        }
    }
    let date = |t: EpochMs| t.to_string().get(..10).unwrap_or_default().to_owned();
    let mut cumulative = 0;
    let by_day: Vec<String> = days
        .iter()
        .map(|(d, n, cents)| {
            cumulative += cents;
            format!("{}: {}, have {}", date(*d), renewals(*n), Cents(cumulative))
        })
        .collect();
    let stops = f.budget_stops.iter().filter(|s| s.at.0 < end).count();
    let people = f.attention.iter().filter(|a| a.at.0 < end).count();
    let mut next = if by_day.is_empty() {
        "nothing to renew in the next 7 days".to_owned()
    } else {
        format!("renew as the rules say; by day: {}", by_day.join("; "))
    };
    if stops > 0 {
        let _ = write!(next, "; the daily budget stops {} for a while", renewals(stops));
    }
    let mut action = format!("keep at least {spend} on the account for the week");
    if let Some((d, _, cents)) = days.first() {
        let when = if *d <= now { "now".to_owned() } else { format!("before {}", date(*d)) };
        let _ = write!(action, " ({} {when})", Cents(*cents));
    }
    if people > 0 {
        let _ = write!(action, "; {people} subscription(s) will need a person");
    }
    action.push_str("; `proxy-renewd forecast --days 7` lists every renewal");
    let mut a = Alert::account(AlertKind::Forecast, Some(week_start(now))).with(happened, next, action);
    a.amount = Some(spend);
    a
}

/// After a 402 in this cycle: what the next 24 h of the forecast need, the renewals the short
/// balance blocked included (the forecast, made after the cycle, has them still due). Its
/// period is the earliest blocked expiry, so it repeats as the per-subscription alerts do.
/// `None` without a 402 or a forecast.
#[must_use]
pub fn top_up(report: &CycleReport) -> Option<Alert> {
    let blocked: Vec<EpochMs> = report
        .items
        .iter()
        .filter(|i| i.outcome.as_ref().is_some_and(RenewOutcome::balance_short))
        .map(|i| i.subscription.active_until)
        .collect();
    let period = blocked.iter().min().copied()?;
    let day = report.forecast.as_ref()?.window("24h")?;
    let unpriced = if day.unpriced > 0 { format!(" (+{} at a price not known)", day.unpriced) } else { String::new() };
    let mut a = Alert::account(AlertKind::InsufficientBalance, Some(period)).with(
        format!(
            "the next 24 h need {}: {} by the forecast{unpriced}, the {} the short balance blocked now included",
            day.spend,
            renewals(day.renewals),
            renewals(blocked.len())
        ),
        "the blocked renewals are tried again each cycle, most urgent first",
        format!(
            "top up by at least {} ({} cents) to cover the next 24 h; `proxy-renewd forecast --days 1` lists the renewals",
            day.spend, day.spend.0
        ),
    );
    a.amount = Some(day.spend);
    Some(a)
}
