//! From [`RawConfig`] to a checked [`Config`]: every value parsed into the small type that
//! cannot be wrong, every cross-key rule enforced, every error naming its key and origin.

use std::net::SocketAddr;
use std::path::PathBuf;

use figment::Figment;
use secrecy::{ExposeSecret, SecretString};

use super::{Alerts, Config, ConfigError, Email, RawConfig, Schedule, credential_path, invalid};
use crate::rule::{PlanChoice, Rule, check_coupon};
use crate::values::Cents;

// The longest duration any key accepts: the command line's limit too.
use crate::rule::MAX_DURATION;
/// The longest request timeout.
const MAX_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);
/// The most attempts a read may make.
const MAX_ATTEMPTS: u32 = 10;
/// The most requests in flight at once.
const MAX_CONCURRENCY: u32 = 64;

/// Six fields, seconds first, that fire at least once in the next five years.
fn check_cron(expr: &str) -> Result<(), String> {
    let example = "six fields, seconds first, e.g. \"0 */10 * * * *\"";
    if expr.split_whitespace().count() != 6 || expr.contains('@') {
        return Err(format!("{expr:?} is not {example}"));
    }
    let cron = super::parse_cron(expr).map_err(|e| format!("{expr:?} is not {example} ({e})"))?;
    let now = chrono::Utc::now();
    match cron.find_next_occurrence(&now, false) {
        Ok(next) if next < now + chrono::Duration::days(5 * 366) => Ok(()),
        _ => Err(format!("{expr:?} never fires (no such date in the next five years)")),
    }
}

/// `sqlite://PATH` or `sqlite:PATH` naming a file: no in-memory database (it would lose the
/// ledger) and no query parameters. Or `postgres://…` / `postgresql://…` naming a host and a
/// database (never quoted back: it may hold a password).
fn check_database_url(url: &str) -> Result<(), String> {
    if crate::store::is_postgres(url) {
        let shown = crate::store::redact_url(url);
        return match url::Url::parse(url) {
            Err(e) => Err(format!("is not a PostgreSQL URL like postgres://user@host:5432/db ({e})")),
            Ok(u) if u.host_str().is_none_or(str::is_empty) && !u.query_pairs().any(|(k, _)| k == "host") => {
                Err(format!("{shown}: names no host; give postgres://user@host:5432/db"))
            }
            Ok(u) if u.path().trim_start_matches('/').is_empty() => {
                Err(format!("{shown}: names no database; give postgres://user@host:5432/db"))
            }
            Ok(_) => Ok(()),
        };
    }
    let shown = crate::values::text::clean_text(url);
    let path = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"));
    match path {
        None => Err(format!(
            "{shown:?} must be a SQLite URL such as sqlite://proxy-renewd.db, or a PostgreSQL URL such as postgres://user@host/db"
        )),
        Some(p) if p.contains('?') => Err(format!("{shown:?}: query parameters are not supported; give sqlite://PATH")),
        Some(p) if p.trim().is_empty() || p.contains(":memory:") => {
            Err(format!("{shown:?} names no file: the ledger must survive restarts; give sqlite://PATH"))
        }
        Some(_) => Ok(()),
    }
}

/// The shortest and longest `[ha] lease`.
const MIN_LEASE: std::time::Duration = std::time::Duration::from_secs(2);
const MAX_LEASE: std::time::Duration = std::time::Duration::from_secs(600);

/// The database URL: `[database] url`, or the contents of `url_file`, or the default; and the
/// key to blame for a bad one.
fn database_url(
    raw: &RawConfig,
    file: Option<&std::path::Path>,
    bad: &impl Fn(&str, String) -> ConfigError,
) -> Result<(String, &'static str), ConfigError> {
    match (&raw.database.url, &raw.database.url_file) {
        // An empty url beside url_file is no url: a container's environment can clear the
        // image's default. Alone it is an error: silently falling back to a new SQLite file
        // would renew from an empty ledger.
        (Some(url), url_file) if url.trim().is_empty() => match url_file {
            Some(path) => read_url_file(path, file, bad),
            None => Err(bad(
                "database.url",
                "is empty: give sqlite://PATH or postgres://user@host/db, or leave the key out for the default".into(),
            )),
        },
        (Some(_), Some(_)) => Err(bad("database.url", "both url and url_file are set: keep one".into())),
        (Some(url), None) => Ok((url.trim().to_owned(), "database.url")),
        (None, Some(path)) => read_url_file(path, file, bad),
        (None, None) => Ok((super::raw::DEFAULT_DATABASE_URL.to_owned(), "database.url")),
    }
}

fn read_url_file(
    path: &std::path::Path,
    config_file: Option<&std::path::Path>,
    bad: &impl Fn(&str, String) -> ConfigError,
) -> Result<(String, &'static str), ConfigError> {
    let url = super::read_credential(path, config_file).map_err(|problem| bad("database.url_file", problem))?;
    Ok((url, "database.url_file"))
}

fn ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Checks every section but the presence of `[api]`'s key and URL (see [`Config::api`]).
pub(super) fn check(raw: RawConfig, file: Option<PathBuf>, figment: Figment) -> Result<Config, ConfigError> {
    let bad = |key: &str, problem: String| invalid(&figment, key, problem);
    check_cron(&raw.schedule.cron).map_err(|problem| bad("schedule.cron", problem))?;
    let (database_url, url_key) = database_url(&raw, file.as_deref(), &bad)?;
    check_database_url(&database_url).map_err(|problem| bad(url_key, problem))?;
    let ha = match (&raw.ha, crate::store::is_postgres(&database_url)) {
        (Some(_), false) => {
            return Err(bad(
                "ha.lease",
                "[ha] needs a PostgreSQL [database] url: one node on SQLite is kept single by its lock file; remove [ha]"
                    .into(),
            ));
        }
        (ha, true) => {
            let lease = ha.as_ref().map_or_else(|| super::raw::RawHa::default().lease, |h| h.lease);
            if !(MIN_LEASE..=MAX_LEASE).contains(&lease) {
                return Err(bad("ha.lease", "must be from 2s to 10m".into()));
            }
            Some(super::Ha { lease_ms: ms(lease) })
        }
        (None, false) => None,
    };
    for (key, d) in [
        ("api.timeout", raw.api.timeout),
        ("api.connect_timeout", raw.api.connect_timeout),
        ("schedule.jitter", raw.schedule.jitter),
        ("defaults.renew_before", raw.defaults.renew_before),
        ("ledger.reconcile_after", raw.ledger.reconcile_after),
        ("alerts.repeat_interval", raw.alerts.repeat_interval),
        ("alerts.lapse_warning", raw.alerts.lapse_warning),
        ("alerts.provider_down_after", raw.alerts.provider_down_after),
    ] {
        if d > MAX_DURATION {
            return Err(bad(key, format!("{} is longer than the 10 years allowed", humantime::format_duration(d))));
        }
    }
    for (key, d) in [("api.timeout", raw.api.timeout), ("api.connect_timeout", raw.api.connect_timeout)] {
        if d > MAX_TIMEOUT {
            return Err(bad(key, format!("{} is longer than the 10 minutes allowed", humantime::format_duration(d))));
        }
    }
    if !(1..=MAX_ATTEMPTS).contains(&raw.api.max_attempts) {
        return Err(bad("api.max_attempts", format!("must be from 1 to {MAX_ATTEMPTS}")));
    }
    if !(1..=MAX_CONCURRENCY).contains(&raw.api.max_concurrency) {
        return Err(bad("api.max_concurrency", format!("must be from 1 to {MAX_CONCURRENCY}")));
    }
    if raw.alerts.repeat_interval < std::time::Duration::from_secs(60) {
        return Err(bad("alerts.repeat_interval", "must be at least 1m: the same alert again sooner is spam".into()));
    }
    let defaults = check_defaults(&raw, &bad)?;
    let reconcile_after_ms = ms(raw.ledger.reconcile_after);
    let timeout_ms = ms(raw.api.timeout);
    if reconcile_after_ms < timeout_ms.saturating_mul(3) {
        return Err(bad(
            "ledger.reconcile_after",
            format!(
                "must be at least 3 × api.timeout ({}), since the provider may still apply a request the client gave up on",
                crate::rule::format_duration_ms(timeout_ms.saturating_mul(3))
            ),
        ));
    }
    let max_spend_per_day = match raw.budget.max_spend_cents_per_day {
        Some(c) if c < 0 => return Err(bad("budget.max_spend_cents_per_day", format!("{c} is negative"))),
        other => other.map(Cents),
    };
    if let Some(name) = &raw.alerts.instance
        && (name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control))
    {
        return Err(bad("alerts.instance", "is 1 to 64 characters without control characters, e.g. \"eu-1\"".into()));
    }
    let alerts = Alerts {
        repeat_interval_ms: ms(raw.alerts.repeat_interval),
        lapse_warning_ms: ms(raw.alerts.lapse_warning),
        provider_down_after_ms: ms(raw.alerts.provider_down_after),
        forecast_weekly: raw.alerts.forecast == super::raw::ForecastEmail::Weekly,
        email: raw
            .alerts
            .email
            .as_ref()
            .map(|e| {
                check_email(e, &bad, &figment, file.as_deref())
                    .map(|email| Email { instance: raw.alerts.instance.clone(), ..email })
            })
            .transpose()?,
    };
    let server_listen = match &raw.server {
        Some(s) => {
            let addr = s.listen.parse::<SocketAddr>().map_err(|e| {
                bad("server.listen", format!("{:?} is not an address like 127.0.0.1:10117 ({e})", s.listen))
            })?;
            if addr.port() == 0 {
                return Err(bad("server.listen", "needs a port: Prometheus must know where to scrape".into()));
            }
            Some(addr)
        }
        None => None,
    };
    Ok(Config {
        file,
        schedule: Schedule { cron: raw.schedule.cron.clone(), jitter_ms: ms(raw.schedule.jitter) },
        database_url,
        ha,
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
    file: Option<&std::path::Path>,
) -> Result<Email, ConfigError> {
    let smtp_url = match (&e.smtp_url, &e.smtp_url_file) {
        (Some(_), Some(_)) => {
            return Err(bad("alerts.email.smtp_url", "both smtp_url and smtp_url_file are set: keep one".into()));
        }
        (Some(u), None) => u.expose_secret().trim().to_owned(),
        (None, Some(path)) => {
            super::read_credential(path, file).map_err(|problem| bad("alerts.email.smtp_url_file", problem))?
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
    let mailbox = |s: &str| {
        // No control characters (a newline would inject headers); an address local@domain,
        // bare or in angle brackets after a display name.
        let addr = s.rsplit_once('<').map_or(s, |(_, a)| a.strip_suffix('>').unwrap_or("")).trim();
        !s.chars().any(char::is_control)
            && !addr.contains(char::is_whitespace)
            && addr.split_once('@').is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
    };
    if !mailbox(&e.from) {
        return Err(bad("alerts.email.from", format!("{:?} is not an email address", e.from)));
    }
    if e.to.is_empty() {
        return Err(bad("alerts.email.to", "needs at least one recipient".into()));
    }
    if let Some(addr) = e.to.iter().find(|a| !mailbox(a)) {
        return Err(bad("alerts.email.to", format!("{addr:?} is not an email address")));
    }
    let ca_pem = match &e.ca_file {
        Some(path) => {
            let path = credential_path(path, file);
            let pem = std::fs::read(&path)
                .map_err(|err| bad("alerts.email.ca_file", format!("cannot read {}: {err}", path.display())))?;
            if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
                return Err(bad("alerts.email.ca_file", format!("{} holds no PEM certificate", path.display())));
            }
            Some(pem)
        }
        None => None,
    };
    Ok(Email { smtp_url: SecretString::from(smtp_url), from: e.from.clone(), to: e.to.clone(), instance: None, ca_pem })
}
