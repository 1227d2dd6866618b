//! `proxy-renewd health [--max-age DURATION]`: is the daemon cycling? Exit 0 when the last real
//! cycle finished within `--max-age`, 1 otherwise, with the reason. For container
//! HEALTHCHECKs and monitoring scripts; it reads the database only.

use super::{Exit, emit};
use crate::config::Config;
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

pub(super) async fn run(cfg: &Config, args: HealthArgs) -> anyhow::Result<Exit> {
    if store::database_file(&cfg.database_url)?.is_some_and(|f| !f.exists()) {
        anyhow::bail!("unhealthy: no database yet at {}: the daemon has not run", cfg.database_url);
    }
    let store = Store::open_read_only(&cfg.database_url).await?;
    let last = store.last_cycle().await;
    let failing = store.read_failures().await;
    store.close().await;
    let now = EpochMs::now();
    // Why, when the provider is the reason: the reads of the last cycles failed.
    let why = match failing? {
        Some(run) => format!(
            "; op=subscriptions has failed {} times in a row since {run} ({} ago)",
            run.count,
            format_duration_ms(now.since(run.since)),
            run = run.since
        ),
        None => String::new(),
    };
    match last? {
        Some(t) if now.since(t) <= args.max_age => {
            emit(&format!("healthy: last cycle finished {} ago ({t}){why}\n", format_duration_ms(now.since(t))))?;
            Ok(Exit::Ok)
        }
        Some(t) => anyhow::bail!(
            "unhealthy: the last cycle finished {} ago ({t}), more than {}{why}",
            format_duration_ms(now.since(t)),
            format_duration_ms(args.max_age)
        ),
        None => anyhow::bail!("unhealthy: no cycle has finished yet{why}"),
    }
}
