//! `proxy-renewd health [--max-age DURATION]`: is the daemon cycling? Exit 0 when the last real
//! cycle finished within `--max-age`, 1 otherwise, with the reason. For container
//! HEALTHCHECKs and monitoring scripts; it reads the database only.

use serde_json::json;

use super::{Exit, emit};
use crate::config::Config;
use crate::output::{OutputFormat, pretty};
use crate::rule::{format_duration_ms, parse_duration_ms};
use crate::store::{self, Store};
use crate::values::EpochMs;

/// `health` options.
#[derive(Debug, clap::Args)]
pub struct HealthArgs {
    /// The oldest a last cycle may be, e.g. 30m (3 cycles of the default schedule).
    #[arg(long, value_name = "DURATION", default_value = "30m", value_parser = parse_duration_ms)]
    pub max_age: i64,
}

pub(super) async fn run(cfg: &Config, args: HealthArgs, format: OutputFormat) -> anyhow::Result<Exit> {
    let health = check(cfg).await?;
    let now = health.now;
    // Why, when the provider is the reason: the reads of the last cycles failed.
    let why = match &health.failing {
        Some(run) => format!(
            "; op=subscriptions has failed {} times in a row since {since} ({} ago)",
            run.count,
            format_duration_ms(now.since(run.since)),
            since = run.since
        ),
        None => String::new(),
    };
    let (healthy, text) = match health.last {
        None if !health.database => (
            false,
            format!("unhealthy: no database yet at {}: the daemon has not run", store::redact_url(&cfg.database_url)),
        ),
        Some(t) if now.since(t) <= args.max_age => {
            (true, format!("healthy: last cycle finished {} ago ({t}){why}", format_duration_ms(now.since(t))))
        }
        Some(t) => (
            false,
            format!(
                "unhealthy: the last cycle finished {} ago ({t}), more than {}{why}",
                format_duration_ms(now.since(t)),
                format_duration_ms(args.max_age)
            ),
        ),
        None => (false, format!("unhealthy: no cycle has finished yet{why}")),
    };
    match format {
        OutputFormat::Json => emit(&pretty(&json!({
            "healthy": healthy,
            "reason": text,
            "last_cycle_at_ms": health.last.map(|t| t.0),
            "last_cycle_at": health.last.and_then(EpochMs::to_rfc3339),
            "age_ms": health.last.map(|t| now.since(t)),
            "max_age_ms": args.max_age,
            "read_failures": health.failing.as_ref().map(|r| json!({ "count": r.count, "since_ms": r.since.0 })),
        })))?,
        OutputFormat::Table if healthy => emit(&format!("{text}\n"))?,
        OutputFormat::Table => {}
    }
    // Unhealthy is an error (exit 1, the reason on stderr), whatever the format.
    if !healthy {
        anyhow::bail!(text);
    }
    Ok(Exit::Ok)
}

/// What the database says about the daemon's cycles.
struct Health {
    /// Whether the database exists.
    database: bool,
    /// When the last real cycle finished.
    last: Option<EpochMs>,
    /// The failed reads of the last cycles, if any.
    failing: Option<crate::store::ReadFailures>,
    now: EpochMs,
}

async fn check(cfg: &Config) -> anyhow::Result<Health> {
    let now = EpochMs::now();
    if !store::exists(&cfg.database_url).await? {
        return Ok(Health { database: false, last: None, failing: None, now });
    }
    let store = Store::open_read_only(&cfg.database_url).await?;
    let last = store.last_cycle().await;
    let failing = store.read_failures().await;
    store.close().await;
    Ok(Health { database: true, last: last?, failing: failing?, now })
}
