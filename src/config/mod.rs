//! Configuration: figment layers (built-in defaults < TOML file < `PROXY_RENEWD_` environment,
//! `__` between levels) deserialized into a [`RawConfig`] that knows every key of
//! `daemon.md`, then checked into a [`Config`] of values that cannot be wrong.
//!
//! Errors name the key and where it came from (the file's path or the environment variable).
//! Secrets (`api.key`, the SMTP URL) stay in `SecretString` from the moment they are read.
//! `check.rs` checks every section and the cross-key rules (e.g. `ledger.reconcile_after` ≥
//! 3 × `api.timeout`); `[api]` is checked again on demand ([`Config::api`]), so that commands
//! that never call the provider need no key.

mod check;
mod raw;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

pub use raw::*;

use crate::api::ClientConfig;
use crate::rule::Rule;
use crate::values::Cents;

/// The environment variable prefix; `PROXY_RENEWD_API__KEY` sets `[api] key`.
pub const ENV_PREFIX: &str = "PROXY_RENEWD_";

/// What follows [`ENV_PREFIX`] in the test suite's own variables (`PROXY_RENEWD_TEST_ENGINE`,
/// `PROXY_RENEWD_TEST_PG_URL`): no key, so the environment layer passes over them, and the
/// tests that load a config in their own process are not refused for an unknown key.
const TEST_VARS: &str = "TEST_";

/// Where a config file is looked for when `--config` / `$PROXY_RENEWD_CONFIG` is not given.
pub const DEFAULT_PATHS: [&str; 2] = ["proxy-renewd.toml", "/etc/proxy-renewd/config.toml"];

/// A configuration problem, with the key and its origin in the message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file named by `--config` or `$PROXY_RENEWD_CONFIG` does not exist.
    #[error("config file {0} does not exist (given by --config or PROXY_RENEWD_CONFIG)")]
    Missing(PathBuf),
    /// The file cannot be read, is not TOML, a value has the wrong type, or a key is unknown;
    /// the message names the key and where it was set, never a secret's value.
    #[error("invalid configuration: {0}")]
    Parse(String),
    /// A value parsed but is not acceptable.
    #[error("invalid configuration: {key}{origin}: {problem}")]
    Invalid {
        /// The dotted key, e.g. `api.base_url`.
        key: String,
        /// ` in FILE`, ` from PROXY_RENEWD_…`, ` (default)`, or empty when not set.
        origin: String,
        /// What is wrong and what to do.
        problem: String,
    },
}

/// The checked configuration. `[api]` is checked on demand by [`Config::api`], so that
/// commands that never call the provider (`rules`) need no key.
pub struct Config {
    /// The file read, if any.
    pub file: Option<PathBuf>,
    /// `[schedule]`.
    pub schedule: Schedule,
    /// `[database] url` (or the contents of `url_file`), e.g. `sqlite://proxy-renewd.db` or
    /// `postgres://renewd@db.internal/renewd`. Secret when it holds a password: show it with
    /// [`crate::store::redact_url`].
    pub database_url: String,
    /// `[ha]`, set whenever the database is PostgreSQL (the defaults without the section).
    pub ha: Option<Ha>,
    /// `[defaults]`: the rule for subscriptions without a row.
    pub defaults: Rule,
    /// `[ledger] reconcile_after`, in ms (at least 3 × `api.timeout`).
    pub reconcile_after_ms: i64,
    /// `[budget] max_spend_cents_per_day`.
    pub max_spend_per_day: Option<Cents>,
    /// `[alerts]`.
    pub alerts: Alerts,
    /// `[server] listen`.
    pub server_listen: Option<SocketAddr>,
    /// `[log] format`.
    pub log_format: LogFormat,
    /// Every key as written, defaults filled in.
    pub raw: RawConfig,
    figment: Figment,
}

impl std::fmt::Debug for Config {
    /// The figment itself is left out: it holds every value as written, secrets included.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("file", &self.file)
            .field("schedule", &self.schedule)
            .field("database_url", &crate::store::redact_url(&self.database_url))
            .field("ha", &self.ha)
            .field("defaults", &self.defaults)
            .field("reconcile_after_ms", &self.reconcile_after_ms)
            .field("max_spend_per_day", &self.max_spend_per_day)
            .field("alerts", &self.alerts)
            .field("server_listen", &self.server_listen)
            .field("log_format", &self.log_format)
            .field("raw", &self.raw)
            .finish_non_exhaustive()
    }
}

/// A checked `[ha]`: several nodes on one PostgreSQL database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ha {
    /// How long the leader's lease lasts unrenewed, in ms; renewed every third of it.
    pub lease_ms: i64,
}

/// A checked `[schedule]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// Six-field cron expression, seconds first, UTC; parsed at load.
    pub cron: String,
    /// Random delay added to each scheduled cycle, in ms.
    pub jitter_ms: i64,
}

/// Parses a `[schedule] cron` expression as the scheduler reads it: six fields, seconds
/// first, UTC. The one parser of the config check, the health window and the forecast.
///
/// # Errors
/// croner's error for an expression it cannot read.
pub fn parse_cron(expr: &str) -> Result<croner::Cron, croner::errors::CronError> {
    croner::parser::CronParser::builder().seconds(croner::parser::Seconds::Required).build().parse(expr)
}

/// `unreachable` needs at least this many failed reads in a row, however long they took.
pub const PROVIDER_DOWN_CYCLES: i64 = 3;

/// A checked `[alerts]`.
#[derive(Debug, Clone)]
pub struct Alerts {
    /// The same (kind, subscription, period) is not re-sent sooner, in ms.
    pub repeat_interval_ms: i64,
    /// Escalate when a due subscription is this close to expiry, in ms.
    pub lapse_warning_ms: i64,
    /// Alert `unreachable` when `op=subscriptions` has failed this long, in ms, and for at
    /// least [`crate::config::PROVIDER_DOWN_CYCLES`] cycles.
    pub provider_down_after_ms: i64,
    /// `[alerts] forecast = "weekly"`: the 7-day forecast by email once a week.
    pub forecast_weekly: bool,
    /// Email delivery; `None` means alerts are logged only.
    pub email: Option<Email>,
}

/// A checked `[alerts.email]`.
#[derive(Debug, Clone)]
pub struct Email {
    /// lettre's SMTP URL, read from `smtp_url` or `smtp_url_file`; secret (may hold a password).
    pub smtp_url: SecretString,
    /// `From:`.
    pub from: String,
    /// Recipients (at least one).
    pub to: Vec<String>,
    /// `[alerts] instance`: this installation's name, shown in every email.
    pub instance: Option<String>,
    /// `ca_file`: extra certificate authorities (PEM) the SMTP server's certificate may chain
    /// to, read at start.
    pub ca_pem: Option<Vec<u8>>,
}

/// A checked `[api]`: everything a [`crate::api::Client`] needs.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// The client settings.
    pub client: ClientConfig,
    /// Renewals in flight at once (≥ 1).
    pub max_concurrency: u32,
}

impl Config {
    /// Finds the file (explicit path, else `./proxy-renewd.toml`, else
    /// `/etc/proxy-renewd/config.toml`, else none) and layers defaults, file and environment.
    ///
    /// # Errors
    /// [`ConfigError::Missing`] for an explicit path that does not exist;
    /// [`ConfigError::Parse`] for a bad value or an unknown key, naming key and origin.
    pub fn load(explicit: Option<&Path>) -> Result<Config, ConfigError> {
        let from_env = std::env::var_os("PROXY_RENEWD_CONFIG").filter(|v| !v.is_empty()).map(PathBuf::from);
        let file = match explicit.map(Path::to_path_buf).or(from_env) {
            Some(p) => match std::fs::metadata(&p) {
                Ok(_) => Some(p),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ConfigError::Missing(p)),
                Err(e) => return Err(ConfigError::Parse(format!("cannot read config file {}: {e}", p.display()))),
            },
            None => DEFAULT_PATHS.iter().map(PathBuf::from).find(|p| p.exists()),
        };
        let env = Env::prefixed(ENV_PREFIX).ignore(&["config"]).filter(|key| !key.starts_with(TEST_VARS));
        Self::from_layers(file, env.split("__"))
    }

    /// Defaults and `path` only, ignoring the environment: for `demo`, which must never pick
    /// up a real provider's URL or key from `PROXY_RENEWD_*`.
    ///
    /// # Errors
    /// As [`Config::load`].
    pub fn load_file_only(path: &Path) -> Result<Config, ConfigError> {
        Self::from_layers(Some(path.to_path_buf()), None)
    }

    fn from_layers(file: Option<PathBuf>, env: impl Into<Option<Env>>) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(RawConfig::default()));
        if let Some(f) = &file {
            check_toml_file(f)?;
            figment = figment.merge(Toml::file_exact(f));
        }
        if let Some(env) = env.into() {
            figment = figment.merge(env);
        }
        let raw: RawConfig = figment.extract().map_err(describe_figment_error)?;
        check::check(raw, file, figment)
    }

    /// No config file was found or named, and no `PROXY_RENEWD_*` variable (other than
    /// `PROXY_RENEWD_CONFIG` and `PROXY_RENEWD_LOG__*`) sets a key: every value is a built-in
    /// default, which is a first run, not a configuration.
    #[must_use]
    pub fn is_unconfigured(&self) -> bool {
        self.file.is_none() && !environment_configures()
    }

    /// What a first run is told: where the config file was looked for, and how to start.
    #[must_use]
    pub fn first_run_help() -> String {
        let cwd = std::env::current_dir().ok();
        let looked: Vec<String> = DEFAULT_PATHS
            .iter()
            .map(|p| match (&cwd, Path::new(p).is_relative()) {
                (Some(dir), true) => dir.join(p).display().to_string(),
                _ => (*p).to_owned(),
            })
            .collect();
        format!(
            "no config file found: none named by --config or ${ENV_PREFIX}CONFIG, none at {}, and no {ENV_PREFIX}* variable set. To start: `proxy-renewd demo` shows it at work against a built-in simulator (no config needed); then copy config.example.toml (in the source tree, or /usr/share/doc/proxy-renewd/ from the Debian package) to /etc/proxy-renewd/config.toml or ./proxy-renewd.toml, set [api] base_url and key_file, or pass --config PATH",
            looked.join(" or ")
        )
    }

    /// ` in FILE` / ` from PROXY_RENEWD_X__Y` / ` (default)`, or empty when not set.
    #[must_use]
    pub fn origin(&self, key: &str) -> String {
        origin(&self.figment, key)
    }

    fn invalid(&self, key: &str, problem: impl Into<String>) -> ConfigError {
        invalid(&self.figment, key, problem)
    }

    /// Checks `[api]` and reads the key (from `key` or `key_file`).
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the key: no or bad `base_url`, no key, both `key` and
    /// `key_file`, an unreadable or empty key file, zero timeouts or counts.
    pub fn api(&self) -> Result<ApiConfig, ConfigError> {
        let a = &self.raw.api;
        let base = a.base_url.as_deref().ok_or_else(|| not_set("api.base_url", format!("not set: add base_url = \"https://…\" under [api] in the config file, or set {ENV_PREFIX}API__BASE_URL")))?;
        // A URL with a login is never echoed: the login may be a password.
        let shown = if base.contains('@') {
            "the URL (not shown: it contains a login)".to_owned()
        } else {
            format!("{base:?}")
        };
        let base_url =
            Url::parse(base.trim()).map_err(|e| self.invalid("api.base_url", format!("{shown} is not a URL ({e})")))?;
        if !matches!(base_url.scheme(), "http" | "https") || base_url.host_str().is_none() {
            return Err(self.invalid("api.base_url", format!("{shown} must be an http:// or https:// URL with a host")));
        }
        if base_url.path().trim_end_matches('/').ends_with("/api/proxy") {
            return Err(
                self.invalid("api.base_url", format!("{shown} must not end in /api/proxy: that part is appended"))
            );
        }
        if !base_url.username().is_empty() || base_url.password().is_some() {
            return Err(
                self.invalid("api.base_url", "must not contain a user name or password; the key goes in [api].key")
            );
        }
        let key = self.api_key()?;
        if a.timeout.is_zero() {
            return Err(self.invalid("api.timeout", "must be greater than zero"));
        }
        if a.connect_timeout.is_zero() {
            return Err(self.invalid("api.connect_timeout", "must be greater than zero"));
        }
        if a.max_response_bytes < 1024 {
            return Err(self.invalid("api.max_response_bytes", "must be at least 1024"));
        }
        if a.max_concurrency == 0 {
            return Err(self.invalid("api.max_concurrency", "must be at least 1"));
        }
        if a.max_attempts == 0 {
            return Err(self.invalid("api.max_attempts", "must be at least 1"));
        }
        let mut client = ClientConfig::new(base_url, key);
        client.timeout = a.timeout;
        client.connect_timeout = a.connect_timeout.min(a.timeout);
        client.retry.max_attempts = a.max_attempts;
        client.max_response_bytes = a.max_response_bytes;
        Ok(ApiConfig { client, max_concurrency: a.max_concurrency })
    }

    fn api_key(&self) -> Result<SecretString, ConfigError> {
        let a = &self.raw.api;
        let key = match (&a.key, &a.key_file) {
            (Some(_), Some(_)) => return Err(self.invalid("api.key", "both key and key_file are set: keep one")),
            (Some(k), None) => k.expose_secret().trim().to_owned(),
            (None, Some(path)) => {
                read_credential(path, self.file.as_deref()).map_err(|problem| self.invalid("api.key_file", problem))?
            }
            (None, None) => {
                return Err(not_set(
                    "api.key",
                    format!("no API key: set key or key_file under [api], or {ENV_PREFIX}API__KEY"),
                ));
            }
        };
        if key.is_empty() {
            return Err(self.invalid(if a.key.is_some() { "api.key" } else { "api.key_file" }, "the API key is empty"));
        }
        Ok(SecretString::from(key))
    }

    /// Warns (log, `warn`) when the config file holds a secret and others can read it. Call
    /// once logging is set up.
    pub fn warn_if_secret_readable(&self) {
        self.warn_if_secret_file_world_readable();
        let Some(file) = &self.file else { return };
        // An SMTP or PostgreSQL URL is a secret only when it holds a password
        // (`smtp://user:pass@host`); one that cannot be parsed is treated as one.
        let holds_password = |u: &str| Url::parse(u.trim()).map_or(true, |u| u.password().is_some());
        let api_key = self.origin("api.key").starts_with(" in ");
        let smtp = self
            .raw
            .alerts
            .email
            .as_ref()
            .and_then(|e| e.smtp_url.as_ref())
            .is_some_and(|u| holds_password(u.expose_secret()))
            && self.origin("alerts.email.smtp_url").starts_with(" in ");
        let database =
            self.raw.database.url.as_deref().is_some_and(|u| crate::store::is_postgres(u) && holds_password(u))
                && self.origin("database.url").starts_with(" in ");
        let mut moves = Vec::new();
        if api_key {
            moves.push(format!("the key to key_file / {ENV_PREFIX}API__KEY"));
        }
        if smtp {
            moves.push("the SMTP URL (it holds a password) to smtp_url_file".to_owned());
        }
        if database {
            moves.push("the database URL (it holds a password) to [database] url_file".to_owned());
        }
        if moves.is_empty() {
            return;
        }
        let advice = format!("move {}", moves.join(" and "));
        if readable_by(file, GROUP_OR_OTHERS) {
            tracing::warn!(file = %file.display(), "the config file holds a secret and other users can read it: chmod 600 it, or {advice}");
        }
    }
}

impl Config {
    /// Warns when `key_file`, `smtp_url_file` or `[database] url_file` is readable by every user. Group-readable is
    /// fine: the README's `install -m 640 -g proxy-renewd` lets the service user read it by hand.
    fn warn_if_secret_file_world_readable(&self) {
        let files = [
            ("api.key_file", self.raw.api.key_file.as_deref()),
            ("alerts.email.smtp_url_file", self.raw.alerts.email.as_ref().and_then(|e| e.smtp_url_file.as_deref())),
            ("database.url_file", self.raw.database.url_file.as_deref()),
        ];
        for (key, path) in files {
            let Some(path) = path.filter(|p| !p.as_os_str().is_empty()) else { continue };
            let found = credential_path(path, self.file.as_deref());
            if found.is_file() && readable_by(&found, OTHERS) {
                tracing::warn!(key, file = %found.display(), "this secret file is readable by every user: chmod 600 it, or 640 with the service's group (install -m 640 -g proxy-renewd)");
            }
        }
    }
}

/// Does a non-empty `PROXY_RENEWD_*` variable set a key (a container configured by its
/// environment alone)? `PROXY_RENEWD_CONFIG` names a file, `[log]` changes nothing that
/// matters, and `PROXY_RENEWD_TEST_*` are the test suite's, so none of them counts.
fn environment_configures() -> bool {
    std::env::vars_os().any(|(name, value)| {
        let name = name.to_string_lossy();
        name.strip_prefix(ENV_PREFIX).is_some_and(|key| {
            key != "CONFIG" && !key.starts_with("LOG__") && !key.starts_with(TEST_VARS) && !value.is_empty()
        })
    })
}

/// The most bytes a config file may hold.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// Checks that `path` is a readable regular file of TOML, with an error that gives line and
/// column but never quotes the file (a line may hold a secret).
fn check_toml_file(path: &Path) -> Result<(), ConfigError> {
    use std::io::Read;
    let shown = path.display();
    let meta =
        std::fs::metadata(path).map_err(|e| ConfigError::Parse(format!("cannot read config file {shown}: {e}")))?;
    if !meta.is_file() {
        return Err(ConfigError::Parse(format!("config file {shown} is not a regular file")));
    }
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_CONFIG_BYTES + 1).read_to_string(&mut text))
        .map_err(|e| ConfigError::Parse(format!("cannot read config file {shown}: {e}")))?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(ConfigError::Parse(format!("config file {shown} is larger than {MAX_CONFIG_BYTES} bytes")));
    }
    toml::from_str::<toml::Table>(&text).map(drop).map_err(|e| {
        let at = e.span().map_or(String::new(), |span| {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!(" at line {line}, column {column}")
        });
        ConfigError::Parse(format!("{shown} is not valid TOML{at}: {}", e.message()))
    })
}

/// May an error quote the value given for `key`? Only for the known, non-secret leaf keys: a
/// value given for a secret key, a section name or a misspelt key might be a secret.
fn echo_allowed(key: &str) -> bool {
    const OPTIONAL: [&str; 8] = [
        "api.base_url",
        "api.key_file",
        "database.url_file",
        "ha.lease",
        "defaults.max_price_cents",
        "budget.max_spend_cents_per_day",
        "alerts.email.from",
        "server.listen",
    ];
    static KNOWN: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let known = KNOWN.get_or_init(|| {
        let mut out = Vec::new();
        leaf_keys("", &serde_json::to_value(RawConfig::default()).unwrap_or_default(), false, &mut out);
        out
    });
    // A database URL may hold a password.
    key != "database.url" && (OPTIONAL.contains(&key) || known.iter().any(|k| k == key))
}

/// The dotted keys of the leaves of `v` (a config as JSON) into `out`; unset (`null`) leaves
/// too when `with_unset`.
fn leaf_keys(prefix: &str, v: &serde_json::Value, with_unset: bool, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                leaf_keys(&key, v, with_unset, out);
            }
        }
        serde_json::Value::Null if !with_unset => {}
        _ if !prefix.is_empty() => out.push(prefix.to_owned()),
        _ => {}
    }
}

/// figment's errors in our words: `KEY ORIGIN: problem`, one per error, values of secret keys
/// never shown.
fn describe_figment_error(err: figment::Error) -> ConfigError {
    use figment::error::Kind;
    let described: Vec<String> = err
        .into_iter()
        .map(|e| {
            let mut key = e.path.join(".");
            let problem = match &e.kind {
                Kind::UnknownField(field, expected) => {
                    if !key.ends_with(field.as_str()) {
                        key = if key.is_empty() { field.clone() } else { format!("{key}.{field}") };
                    }
                    format!("unknown key; expected one of: {}", expected.join(", "))
                }
                Kind::MissingField(field) => {
                    key = if key.is_empty() { field.to_string() } else { format!("{key}.{field}") };
                    "not set: this section needs it".to_owned()
                }
                Kind::UnknownVariant(found, expected) if echo_allowed(&key) => format!(
                    "{} is not one of {}",
                    crate::values::text::clean_text(&format!("{found:?}")),
                    expected.iter().map(|v| format!("{v:?}")).collect::<Vec<_>>().join(", ")
                ),
                kind if echo_allowed(&key) => crate::values::text::clean_text(&kind.to_string()),
                Kind::InvalidType(_, expected) => format!("invalid type, expected {expected} (the value is not shown)"),
                _ => "invalid value (not shown)".to_owned(),
            };
            let from_env = e.metadata.as_ref().is_some_and(|md| md.name.contains("environment"));
            let problem = match (&e.kind, example(&key)) {
                (Kind::UnknownField(..), _) | (_, None) => problem,
                (_, Some((_, line))) if from_env => {
                    // The environment's form: the value without TOML's quotes.
                    let value = line.split_once(" = ").map_or("", |(_, v)| v).trim_matches('"');
                    format!("{problem}; the right form, e.g. {}={value}", env_name(&key))
                }
                (_, Some((section, line))) => format!("{problem}; the right form, e.g. `{line}` under [{section}]"),
            };
            let origin = e.metadata.as_ref().map_or(String::new(), |md| format!(" {}", origin_of(md, &key)));
            format!("{key}{origin}: {problem}")
        })
        .collect();
    ConfigError::Parse(described.join("; "))
}

/// `config.example.toml`, the documented example of every key; the source of the examples
/// that config errors quote.
const EXAMPLE_TOML: &str = include_str!("../../config.example.toml");

/// The example line for the dotted `key` in `config.example.toml` (commented out or not), with
/// its section: `("defaults", "renew_before = \"3d\"")`.
fn example(key: &str) -> Option<(&'static str, &'static str)> {
    let (section, leaf) = key.rsplit_once('.')?;
    let mut current = "";
    for line in EXAMPLE_TOML.lines() {
        let line = line.trim();
        // A section shown commented out (`# [ha]`: an error unless wanted) counts too.
        let header = line.strip_prefix("# ").unwrap_or(line);
        if let Some(name) = header.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name;
            continue;
        }
        let assignment = line.strip_prefix("# ").unwrap_or(line);
        if current == section
            && let Some((k, _)) = assignment.split_once(" = ")
            && k == leaf
        {
            return Some((current, assignment));
        }
    }
    None
}

/// Where `key` was set, for messages.
fn origin(figment: &Figment, key: &str) -> String {
    if figment.find_value(key).is_err() {
        return String::new();
    }
    figment.find_metadata(key).map_or_else(String::new, |md| format!(" {}", origin_of(md, key)))
}

/// The environment variable that sets the dotted `key`: `PROXY_RENEWD_API__KEY` for `api.key`.
fn env_name(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.replace('.', "__").to_uppercase())
}

/// `in FILE`, `from PROXY_RENEWD_KEY`, or `(default)`.
fn origin_of(md: &figment::Metadata, key: &str) -> String {
    match &md.source {
        Some(figment::Source::File(p)) => format!("in {}", p.display()),
        _ if md.name.contains("environment") => format!("from {}", env_name(key)),
        _ => "(default)".into(),
    }
}

/// A [`ConfigError::Invalid`] for a key that has no value anywhere.
fn not_set(key: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key: key.into(), origin: String::new(), problem: problem.into() }
}

/// A [`ConfigError::Invalid`] naming `key` and where it was set.
fn invalid(figment: &Figment, key: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key: key.into(), origin: origin(figment, key), problem: problem.into() }
}

/// Group and others may read (`0o044`), or others (`0o004`).
const GROUP_OR_OTHERS: u32 = 0o044;
/// Every user may read.
const OTHERS: u32 = 0o004;

/// Does `path`'s mode grant any of the read bits in `who` ([`GROUP_OR_OTHERS`], [`OTHERS`])?
#[cfg(unix)]
fn readable_by(path: &Path, who: u32) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & who != 0)
}

#[cfg(not(unix))]
fn readable_by(_: &Path, _: u32) -> bool {
    false
}

/// The most bytes a key or SMTP URL file may hold.
const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// Reads a small secret file, trimmed; refuses directories, devices, FIFOs and big files.
fn read_secret_file(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{shown} is not a regular file"));
    }
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_SECRET_FILE_BYTES + 1).read_to_string(&mut text))
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    if text.len() as u64 > MAX_SECRET_FILE_BYTES {
        return Err(format!("{shown} is larger than {MAX_SECRET_FILE_BYTES} bytes: is it the right file?"));
    }
    Ok(text.trim().to_owned())
}

/// Where a credential file (`key_file`, `smtp_url_file`, `ca_file`) is read from. A relative
/// path is looked up in `$CREDENTIALS_DIRECTORY` when systemd's `LoadCredential=` sets it,
/// else beside the config file: so `proxy-renewd` run by hand against the installed service's
/// `/etc/proxy-renewd/config.toml` reads `/etc/proxy-renewd/api-key`, the very file the unit
/// hands over. Without a config file, relative to the working directory.
fn credential_path(path: &Path, config_file: Option<&Path>) -> PathBuf {
    if path.is_absolute() {
        return path.to_path_buf();
    }
    match std::env::var_os("CREDENTIALS_DIRECTORY").filter(|d| !d.is_empty()) {
        Some(dir) => Path::new(&dir).join(path),
        None => match config_file.and_then(Path::parent).filter(|d| !d.as_os_str().is_empty()) {
            Some(dir) => dir.join(path),
            None => path.to_path_buf(),
        },
    }
}

/// Reads the credential file `path` (as [`credential_path`] finds it); a failure says where a
/// relative path was looked for.
fn read_credential(path: &Path, config_file: Option<&Path>) -> Result<String, String> {
    if path.as_os_str().is_empty() {
        return Err("is empty: name the file that holds the secret, or remove the key".to_owned());
    }
    let found = credential_path(path, config_file);
    read_secret_file(&found).map_err(|problem| {
        if path.is_relative() {
            format!(
                "{problem} (a relative path is read from $CREDENTIALS_DIRECTORY when systemd sets it, else from the config file's directory)"
            )
        } else {
            problem
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(toml: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, toml).unwrap();
        Config::from_layers(Some(path), Env::prefixed("PROXY_RENEWD_TEST_UNSET_"))
    }

    #[test]
    fn unknown_key_is_named() {
        let err = load_str("[api]\nbase_url = \"http://x\"\nkye = \"a\"\n").unwrap_err().to_string();
        assert!(err.contains("kye"), "{err}");
    }

    #[test]
    fn bad_duration_names_key_and_file() {
        let err = load_str("[api]\ntimeout = \"soon\"\n").unwrap_err().to_string();
        assert!(err.contains("timeout") && err.contains("c.toml"), "{err}");
    }

    #[test]
    fn api_needs_url_and_key() {
        let err = load_str("[api]\nkey = \"rk_1\"\n").unwrap().api().unwrap_err().to_string();
        assert!(err.contains("api.base_url") && err.contains("not set"), "{err}");
        let err = load_str("[api]\nbase_url = \"http://127.0.0.1:1\"\n").unwrap().api().unwrap_err().to_string();
        assert!(err.contains("api.key") && err.contains("no API key"), "{err}");
        let err = load_str("[api]\nbase_url = \"nope\"\nkey = \"rk_1\"\n").unwrap().api().unwrap_err().to_string();
        assert!(err.contains("api.base_url") && err.contains("c.toml"), "{err}");
        let err = load_str("[api]\nbase_url = \"http://h\"\nkey = \"rk_1\"\nkey_file = \"/x\"\n")
            .unwrap()
            .api()
            .unwrap_err()
            .to_string();
        assert!(err.contains("both"), "{err}");
    }

    #[test]
    fn a_type_error_quotes_the_right_form() {
        let err = load_str("[defaults]\nrenew_before = 3\n").unwrap_err().to_string();
        assert!(
            err.contains("defaults.renew_before") && err.contains("`renew_before = \"3d\"` under [defaults]"),
            "{err}"
        );
        let err = load_str("[api]\ntimeout = \"soon\"\n").unwrap_err().to_string();
        assert!(err.contains("`timeout = \"30s\"` under [api]"), "{err}");
        let err = load_str("[defaults]\nrepeat_count = \"two\"\n").unwrap_err().to_string();
        assert!(err.contains("`repeat_count = 1` under [defaults]"), "{err}");
        // Unknown keys list the known ones instead.
        let err = load_str("[defaults]\nrenew_befor = \"3d\"\n").unwrap_err().to_string();
        assert!(!err.contains("the right form"), "{err}");
    }

    #[test]
    fn an_empty_key_file_path_is_named() {
        let err = load_str("[api]\nbase_url = \"http://h\"\nkey_file = \"\"\n").unwrap().api().unwrap_err().to_string();
        assert!(err.contains("api.key_file") && err.contains("is empty"), "{err}");
    }

    #[test]
    fn a_missing_required_key_is_named() {
        let err = load_str("[alerts.email]\nsmtp_url = \"smtp://127.0.0.1:25\"\nto = [\"a@example.com\"]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("alerts.email.from") && err.contains("not set"), "{err}");
    }

    #[test]
    fn every_key_has_an_example() {
        let mut keys = Vec::new();
        let mut full = toml::from_str::<RawConfig>(EXAMPLE_TOML).expect("config.example.toml parses");
        // Shown commented out: an error with the example's SQLite url.
        full.ha.get_or_insert_with(Default::default);
        leaf_keys("", &serde_json::to_value(full).unwrap(), true, &mut keys);
        let missing: Vec<_> = keys.iter().filter(|k| example(k).is_none()).collect();
        assert!(missing.is_empty(), "keys without an example line in config.example.toml: {missing:?}");
        assert_eq!(example("nope.nothing"), None);
    }

    #[test]
    fn key_file_is_read_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key");
        std::fs::write(&key, "rk_from_file\n").unwrap();
        let cfg =
            load_str(&format!("[api]\nbase_url = \"http://h\"\nkey_file = {:?}\n", key.display().to_string())).unwrap();
        assert_eq!(cfg.api().unwrap().client.key.expose_secret(), "rk_from_file");
    }
}
