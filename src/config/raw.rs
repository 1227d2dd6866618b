//! The configuration as written: every key of `daemon.md` with its built-in default, one
//! struct per section, unknown keys refused. Values are typed (durations via humantime) but
//! not yet checked against each other; `check.rs` does that.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::api::RetryPolicy;
use crate::api::client::DEFAULT_MAX_RESPONSE_BYTES;

/// `[api]` as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApi {
    /// The provider's base URL, e.g. `https://your-domain.com`.
    pub base_url: Option<String>,
    /// The API key (`rk_...`).
    #[serde(skip_serializing, deserialize_with = "secret_scalar", default)]
    pub key: Option<SecretString>,
    /// A file holding the API key (relative paths are read from `$CREDENTIALS_DIRECTORY`
    /// when systemd sets it).
    pub key_file: Option<PathBuf>,
    /// Whole-request timeout.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// TCP + TLS connect timeout.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Renewals in flight at once.
    pub max_concurrency: u32,
    /// Attempts per read (first included) before giving up.
    pub max_attempts: u32,
    /// The largest response body accepted, in bytes.
    pub max_response_bytes: u64,
}

impl Default for RawApi {
    fn default() -> Self {
        Self {
            base_url: None,
            key: None,
            key_file: None,
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_concurrency: 4,
            max_attempts: RetryPolicy::default().max_attempts,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }
}

/// `[schedule]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSchedule {
    /// Six-field cron (seconds first), UTC.
    pub cron: String,
    /// Random delay added to each scheduled cycle.
    #[serde(with = "humantime_serde")]
    pub jitter: Duration,
}

impl Default for RawSchedule {
    fn default() -> Self {
        Self { cron: "0 */10 * * * *".into(), jitter: Duration::from_secs(30) }
    }
}

/// `[database]`.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawDatabase {
    /// `sqlite://PATH` or `postgres://…`; `sqlite://proxy-renewd.db` when neither this nor
    /// `url_file` is set. Secret when it holds a password.
    pub url: Option<String>,
    /// A file holding only the URL (a PostgreSQL URL with a password).
    pub url_file: Option<PathBuf>,
}

impl std::fmt::Debug for RawDatabase {
    /// A PostgreSQL URL is shown without its password and parameters.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawDatabase")
            .field("url", &self.url.as_deref().map(crate::store::redact_url))
            .field("url_file", &self.url_file)
            .finish()
    }
}

/// The database when `[database]` names none.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://proxy-renewd.db";

/// `[ha]`: several nodes on one PostgreSQL database.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawHa {
    /// How long the leader's lease lasts unrenewed; renewed every third of it.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
}

impl Default for RawHa {
    fn default() -> Self {
        Self { lease: Duration::from_secs(30) }
    }
}

/// `[defaults]`: the rule for subscriptions with no row in the rules table.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDefaults {
    /// Renew automatically.
    pub enabled: bool,
    /// Renew when `activeUntil - now <= renew_before`.
    #[serde(with = "humantime_serde")]
    pub renew_before: Duration,
    /// `cheapest`, `best-value`, `longest` or a plan id.
    #[serde(deserialize_with = "text_scalar")]
    pub plan: String,
    /// `repeatCount` sent with `renew`.
    pub repeat_count: u32,
    /// Cap per renewal in cents, after `repeat_count`; none when absent.
    pub max_price_cents: Option<i64>,
    /// Coupon sent with `renew`; empty for none.
    #[serde(deserialize_with = "text_scalar")]
    pub coupon_code: String,
}

impl Default for RawDefaults {
    fn default() -> Self {
        Self {
            enabled: true,
            renew_before: Duration::from_secs(3 * 86_400),
            plan: "cheapest".into(),
            repeat_count: 1,
            max_price_cents: None,
            coupon_code: String::new(),
        }
    }
}

/// `[ledger]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLedger {
    /// How long an unknown outcome waits, `activeUntil` unchanged, before it counts as failed.
    #[serde(with = "humantime_serde")]
    pub reconcile_after: Duration,
}

impl Default for RawLedger {
    fn default() -> Self {
        Self { reconcile_after: Duration::from_secs(600) }
    }
}

/// `[budget]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawBudget {
    /// Rolling 24 h cap on spend in cents; none when absent.
    pub max_spend_cents_per_day: Option<i64>,
}

/// `[alerts.email]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEmail {
    /// lettre's SMTP URL (may hold a password).
    #[serde(skip_serializing, deserialize_with = "secret_scalar", default)]
    pub smtp_url: Option<SecretString>,
    /// A file holding the SMTP URL.
    pub smtp_url_file: Option<PathBuf>,
    /// `From:` mailbox.
    pub from: String,
    /// Recipients.
    pub to: Vec<String>,
    /// A PEM file of certificate authorities to trust for the SMTP server's TLS, beside the
    /// system's (a server with a private or self-signed certificate).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

/// `[alerts]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlerts {
    /// The same alert is not re-sent sooner.
    #[serde(with = "humantime_serde")]
    pub repeat_interval: Duration,
    /// Escalate when a due subscription is this close to expiry.
    #[serde(with = "humantime_serde")]
    pub lapse_warning: Duration,
    /// Alert `unreachable` once `op=subscriptions` has failed this long (and 3 cycles).
    #[serde(with = "humantime_serde")]
    pub provider_down_after: Duration,
    /// A name for this installation, shown in every email beside the host name.
    #[serde(default)]
    pub instance: Option<String>,
    /// `off` (the default) or `weekly`: the 7-day forecast by email once a week.
    #[serde(default)]
    pub forecast: ForecastEmail,
    /// Email delivery; alerts are only logged without it.
    pub email: Option<RawEmail>,
}

/// `[alerts] forecast`: how often the forecast is emailed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ForecastEmail {
    /// Never (the default).
    #[default]
    Off,
    /// The 7-day forecast once per UTC week (Monday to Sunday), through the outbox.
    Weekly,
}

impl Default for RawAlerts {
    fn default() -> Self {
        Self {
            repeat_interval: Duration::from_secs(6 * 3600),
            lapse_warning: Duration::from_secs(86_400),
            provider_down_after: Duration::from_secs(30 * 60),
            instance: None,
            forecast: ForecastEmail::Off,
            email: None,
        }
    }
}

/// `[server]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    /// `ADDR:PORT` for `/metrics`, `/healthz`, `/readyz`.
    pub listen: String,
}

/// `[log]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    /// Log line format.
    pub format: LogFormat,
}

/// How log lines look.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Pretty on a terminal, JSON otherwise.
    #[default]
    Auto,
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Every key of `daemon.md`, as written (defaults filled in).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    /// `[api]`.
    pub api: RawApi,
    /// `[schedule]`.
    pub schedule: RawSchedule,
    /// `[database]`.
    pub database: RawDatabase,
    /// `[defaults]`.
    pub defaults: RawDefaults,
    /// `[ledger]`.
    pub ledger: RawLedger,
    /// `[budget]`.
    pub budget: RawBudget,
    /// `[alerts]`.
    pub alerts: RawAlerts,
    /// `[server]`.
    pub server: Option<RawServer>,
    /// `[ha]`.
    pub ha: Option<RawHa>,
    /// `[log]`.
    pub log: RawLog,
}

/// Text given as any scalar: environment values are read as TOML, so an all-digit plan id or
/// coupon code arrives as an integer.
fn text_scalar<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(secret_scalar(d)?.map(|s| secrecy::ExposeSecret::expose_secret(&s).to_owned()).unwrap_or_default())
}

/// A secret given as any scalar: environment values are read as TOML, so an all-digit key
/// arrives as an integer. Errors never quote the value.
fn secret_scalar<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<SecretString>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        Text(String),
        Signed(i64),
        Unsigned(u64),
        Float(f64),
        Bool(bool),
    }
    let text = match Option::<Scalar>::deserialize(d)? {
        None => return Ok(None),
        Some(Scalar::Text(s)) => s,
        Some(Scalar::Signed(n)) => n.to_string(),
        Some(Scalar::Unsigned(n)) => n.to_string(),
        Some(Scalar::Float(n)) => n.to_string(),
        Some(Scalar::Bool(b)) => b.to_string(),
    };
    Ok(Some(SecretString::from(text)))
}
