//! From [`RawConfig`] to a checked [`Config`]: every value parsed into the small type that
//! cannot be wrong, every cross-key rule enforced, every error naming its key and origin.

use std::net::SocketAddr;
use std::path::PathBuf;

use figment::Figment;
use secrecy::{ExposeSecret, SecretString};

use super::{Alerts, Config, ConfigError, Email, RawConfig, Schedule, credential_path, invalid};
use crate::api::Cents;
use crate::rule::{PlanChoice, Rule, check_coupon};

fn ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Checks every section but the presence of `[api]`'s key and URL (see [`Config::api`]).
pub(super) fn check(raw: RawConfig, file: Option<PathBuf>, figment: Figment) -> Result<Config, ConfigError> {
    let bad = |key: &str, problem: String| invalid(&figment, key, problem);
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .build()
        .parse(&raw.schedule.cron)
        .map_err(|e| {
            bad(
                "schedule.cron",
                format!(
                    "{:?} is not a six-field cron expression, seconds first, e.g. \"0 */10 * * * *\" ({e})",
                    raw.schedule.cron
                ),
            )
        })?;
    if !raw.database.url.starts_with("sqlite:") {
        return Err(bad(
            "database.url",
            format!("{:?} must be a SQLite URL such as sqlite://proxy-renewd.db", raw.database.url),
        ));
    }
    let defaults = check_defaults(&raw, &bad)?;
    let reconcile_after_ms = ms(raw.ledger.reconcile_after);
    let timeout_ms = ms(raw.api.timeout);
    if reconcile_after_ms < timeout_ms.saturating_mul(3) {
        return Err(bad(
            "ledger.reconcile_after",
            format!(
                "must be at least 3 × api.timeout ({}), since the provider may still apply a request the client gave up on",
                humantime::format_duration(raw.api.timeout * 3)
            ),
        ));
    }
    let max_spend_per_day = match raw.budget.max_spend_cents_per_day {
        Some(c) if c < 0 => return Err(bad("budget.max_spend_cents_per_day", format!("{c} is negative"))),
        other => other.map(Cents),
    };
    let alerts = Alerts {
        repeat_interval_ms: ms(raw.alerts.repeat_interval),
        lapse_warning_ms: ms(raw.alerts.lapse_warning),
        email: raw.alerts.email.as_ref().map(|e| check_email(e, &bad, &figment)).transpose()?,
    };
    let server_listen = match &raw.server {
        Some(s) => Some(s.listen.parse::<SocketAddr>().map_err(|e| {
            bad("server.listen", format!("{:?} is not an address like 127.0.0.1:9187 ({e})", s.listen))
        })?),
        None => None,
    };
    Ok(Config {
        file,
        schedule: Schedule { cron: raw.schedule.cron.clone(), jitter_ms: ms(raw.schedule.jitter) },
        database_url: raw.database.url.clone(),
        defaults,
        reconcile_after_ms,
        max_spend_per_day,
        alerts,
        server_listen,
        log_format: raw.log.format,
        raw,
        figment,
    })
}

fn check_defaults(raw: &RawConfig, bad: &impl Fn(&str, String) -> ConfigError) -> Result<Rule, ConfigError> {
    let d = &raw.defaults;
    let plan: PlanChoice =
        d.plan.parse().map_err(|e| bad("defaults.plan", format!("{e}; or one of cheapest, best-value, longest")))?;
    if d.repeat_count == 0 {
        return Err(bad("defaults.repeat_count", "must be at least 1".into()));
    }
    if let Some(c) = d.max_price_cents.filter(|c| *c < 0) {
        return Err(bad("defaults.max_price_cents", format!("{c} is negative; omit the key for no cap")));
    }
    let coupon_code = match d.coupon_code.trim() {
        "" => None,
        code => {
            check_coupon(code).map_err(|e| bad("defaults.coupon_code", e))?;
            Some(code.to_owned())
        }
    };
    Ok(Rule {
        enabled: d.enabled,
        renew_before_ms: ms(d.renew_before),
        plan,
        repeat_count: d.repeat_count,
        max_price_cents: d.max_price_cents.map(Cents),
        coupon_code,
        note: None,
    })
}

fn check_email(
    e: &super::RawEmail,
    bad: &impl Fn(&str, String) -> ConfigError,
    figment: &Figment,
) -> Result<Email, ConfigError> {
    let smtp_url = match (&e.smtp_url, &e.smtp_url_file) {
        (Some(_), Some(_)) => {
            return Err(bad("alerts.email.smtp_url", "both smtp_url and smtp_url_file are set: keep one".into()));
        }
        (Some(u), None) => u.expose_secret().trim().to_owned(),
        (None, Some(path)) => {
            let path = credential_path(path);
            super::read_secret_file(&path).map_err(|problem| bad("alerts.email.smtp_url_file", problem))?
        }
        (None, None) => {
            return Err(ConfigError::Invalid {
                key: "alerts.email.smtp_url".into(),
                origin: super::origin(figment, "alerts.email"),
                problem: "not set: give smtp_url or smtp_url_file in [alerts.email], or remove the section".into(),
            });
        }
    };
    if !smtp_url.starts_with("smtp://") && !smtp_url.starts_with("smtps://") {
        return Err(bad(
            "alerts.email.smtp_url",
            "must start with smtp:// or smtps:// (the URL is not shown: it may hold a password)".into(),
        ));
    }
    let mailbox = |s: &str| s.contains('@') && !s.trim().is_empty();
    if !mailbox(&e.from) {
        return Err(bad("alerts.email.from", format!("{:?} is not an email address", e.from)));
    }
    if e.to.is_empty() {
        return Err(bad("alerts.email.to", "needs at least one recipient".into()));
    }
    if let Some(addr) = e.to.iter().find(|a| !mailbox(a)) {
        return Err(bad("alerts.email.to", format!("{addr:?} is not an email address")));
    }
    Ok(Email { smtp_url: SecretString::from(smtp_url), from: e.from.clone(), to: e.to.clone() })
}
