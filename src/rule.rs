//! A renewal rule: whether, when, with which plan and at what price a subscription is renewed.
//! One comes from `[defaults]`; a row in the rules table replaces it for one subscription.
//!
//! Durations are integer milliseconds; humantime strings (`3d`) are parsed and printed at the
//! edges (config, command line, reports) only.

use std::fmt;
use std::str::FromStr;

use crate::values::{Cents, IdError, PlanId};

/// How a renewal plan is chosen among the subscription's `renewal-plans` (`daemon.md`, *Policy*).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PlanChoice {
    /// Lowest `price × repeat_count`; ties go to the longer plan.
    Cheapest,
    /// Lowest price per day; ties go to the longer plan, then the cheaper.
    BestValue,
    /// Longest `durationMs`; ties go to the cheaper plan.
    Longest,
    /// Exactly this plan, which must be among the renewal plans.
    Plan(PlanId),
}

impl FromStr for PlanChoice {
    type Err = IdError;

    /// `cheapest`, `best-value`, `longest`, or a plan id (the keywords win over ids).
    fn from_str(s: &str) -> Result<Self, IdError> {
        Ok(match s {
            "cheapest" => PlanChoice::Cheapest,
            "best-value" => PlanChoice::BestValue,
            "longest" => PlanChoice::Longest,
            id => PlanChoice::Plan(PlanId::parse(id)?),
        })
    }
}

impl fmt::Display for PlanChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanChoice::Cheapest => f.write_str("cheapest"),
            PlanChoice::BestValue => f.write_str("best-value"),
            PlanChoice::Longest => f.write_str("longest"),
            PlanChoice::Plan(id) => f.write_str(id.as_str()),
        }
    }
}

/// A complete renewal rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Renew automatically; a disabled subscription is only reported.
    pub enabled: bool,
    /// Renew when `activeUntil - now <= renew_before_ms`.
    pub renew_before_ms: i64,
    /// Which renewal plan.
    pub plan: PlanChoice,
    /// `repeatCount` sent with `renew` (≥ 1): multiplies duration and price.
    pub repeat_count: u32,
    /// The most one renewal may cost (price × repeat count, before any coupon); `None` for no cap.
    pub max_price_cents: Option<Cents>,
    /// `couponCode` sent with `renew`.
    pub coupon_code: Option<String>,
    /// Free text for people.
    pub note: Option<String>,
}

impl Default for Rule {
    /// `daemon.md`'s defaults: enabled, 3 days ahead, cheapest, repeat count 1, no cap.
    fn default() -> Self {
        Rule {
            enabled: true,
            renew_before_ms: 3 * 86_400_000,
            plan: PlanChoice::Cheapest,
            repeat_count: 1,
            max_price_cents: None,
            coupon_code: None,
            note: None,
        }
    }
}

/// Checks a coupon code: 1 to 64 printable ASCII characters, no spaces.
///
/// # Errors
/// A sentence saying what is wrong.
pub fn check_coupon(code: &str) -> Result<(), String> {
    if code.is_empty() || code.len() > 64 || !code.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("a coupon code is 1 to 64 printable ASCII characters without spaces".into());
    }
    Ok(())
}

/// The longest duration a config key or a command-line flag takes: 10 years (365-day).
pub const MAX_DURATION: std::time::Duration = std::time::Duration::from_secs(10 * 365 * 86_400);

/// Parses a humantime duration (`90s`, `10m`, `3d`) into milliseconds, at most
/// [`MAX_DURATION`] (as the config allows).
///
/// # Errors
/// humantime's message, e.g. `unknown time unit "x"`; a duration over 10 years.
pub fn parse_duration_ms(s: &str) -> Result<i64, String> {
    let d =
        humantime::parse_duration(s.trim()).map_err(|e| format!("{s:?} is not a duration like 90s, 10m, 3d ({e})"))?;
    if d > MAX_DURATION {
        return Err(format!("{s:?} is longer than the 10 years allowed"));
    }
    i64::try_from(d.as_millis()).map_err(|_| format!("{s:?} is too long"))
}

/// Formats milliseconds in the units people write them in: `3d`, `60d`, `1d 12h`, `1h 30m`,
/// `90s` (what `parse_duration_ms` reads back); down to whole seconds.
#[must_use]
pub fn format_duration_ms(ms: i64) -> String {
    let secs = ms.max(0) / 1000;
    let parts = [(secs / 86_400, "d"), (secs % 86_400 / 3600, "h"), (secs % 3600 / 60, "m"), (secs % 60, "s")];
    let text: Vec<String> = parts.iter().filter(|(n, _)| *n > 0).map(|(n, u)| format!("{n}{u}")).collect();
    if text.is_empty() { "0s".into() } else { text.join(" ") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_choice_round_trips_and_keywords_win() {
        for s in ["cheapest", "best-value", "longest", "k17m3q5v7n9p1r2t4w6y8z0a"] {
            assert_eq!(s.parse::<PlanChoice>().unwrap().to_string(), s);
        }
        assert_eq!("cheapest".parse::<PlanChoice>().unwrap(), PlanChoice::Cheapest);
        assert!("Cheapest".parse::<PlanChoice>().is_err());
        assert!("best_value".parse::<PlanChoice>().is_err());
    }

    #[test]
    fn durations_parse_to_ms() {
        assert_eq!(parse_duration_ms("3d"), Ok(259_200_000));
        assert_eq!(parse_duration_ms("90s"), Ok(90_000));
        assert!(parse_duration_ms("3 fortnights").is_err());
        assert_eq!(parse_duration_ms("3650d"), Ok(3650 * 86_400_000));
        let err = parse_duration_ms("20y").unwrap_err();
        assert!(err.contains("longer than the 10 years allowed"), "{err}");
        assert!(parse_duration_ms("1000000d").is_err());
        assert_eq!(format_duration_ms(259_200_000), "3d");
        assert_eq!(format_duration_ms(60 * 86_400_000), "60d");
        assert_eq!(format_duration_ms(5_400_000), "1h 30m");
        assert_eq!(parse_duration_ms(&format_duration_ms(129_600_000)), Ok(129_600_000));
    }

    #[test]
    fn coupons_are_checked() {
        assert!(check_coupon("MYCODE").is_ok());
        assert!(check_coupon("").is_err());
        assert!(check_coupon("MY CODE").is_err());
    }
}
