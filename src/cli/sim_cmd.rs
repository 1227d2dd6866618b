//! `proxy-renewd sim`: serve the gateway simulator until Ctrl-C / SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use std::io::Write;

use anyhow::Context;

use super::{Exit, emit};
use crate::output::OutputFormat;
use crate::sim::{DEFAULT_API_KEY, SimConfig, SimState, Simulator};
use crate::values::EpochMs;

/// `sim` options.
#[derive(Debug, clap::Args)]
pub struct SimArgs {
    /// Address to listen on. The /__sim admin surface answers loopback peers only.
    #[arg(long, default_value = "127.0.0.1:8787", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// The API key the simulator accepts in x-api-key.
    #[arg(long, default_value = DEFAULT_API_KEY, value_name = "KEY")]
    pub api_key: String,
    /// Seed the simulator from this JSON file (see --dump-state for the format) instead of
    /// the built-in sample.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Print the built-in sample state as JSON and exit (a starting point for --state).
    #[arg(long)]
    pub dump_state: bool,
}

pub(super) async fn run(args: SimArgs, format: OutputFormat) -> anyhow::Result<Exit> {
    if args.dump_state {
        emit(&format!("{}\n", serde_json::to_string_pretty(&SimState::sample(EpochMs::now().0))?))?;
        return Ok(Exit::Ok);
    }
    let state = match &args.state {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read simulator state {}", path.display()))?;
            let state: SimState = serde_json::from_str(&text).with_context(|| {
                format!(
                    "invalid simulator state in {} (see `proxy-renewd sim --dump-state` for the format)",
                    path.display()
                )
            })?;
            state.validate().map_err(|e| anyhow::anyhow!("invalid simulator state in {}: {e}", path.display()))?;
            state
        }
        None => SimState::sample(EpochMs::now().0),
    };
    let sim = Simulator::start(SimConfig { listen: args.listen, api_key: args.api_key.clone(), state })
        .await
        .with_context(|| format!("cannot listen on {}: pick another address with --listen", args.listen))?;
    if !args.listen.ip().is_loopback() {
        tracing::warn!(listen = %args.listen, "the simulator is reachable from other hosts; its /__sim admin surface still answers loopback peers only");
    }
    // A closed stdout (`sim | head -1`) must not stop the simulator: write errors are ignored.
    let base = sim.base_url();
    let key = &args.api_key;
    let banner = match format {
        OutputFormat::Json => crate::output::pretty(&serde_json::json!({
            "api_url": format!("{base}api/proxy"),
            "api_key": key,
            "admin_url": format!("{base}__sim/"),
        })),
        OutputFormat::Table => format!(
            "proxy-renewd sim: serving the provider API at {base}api/proxy\n  API key: {key} (the simulator's own, not a real secret)\n  admin:   {base}__sim/state, /__sim/faults, /__sim/calls, /__sim/stats\n  try:     curl -sS -H 'x-api-key: {key}' '{base}api/proxy?op=subscriptions'\n"
        ),
    };
    let mut out = std::io::stdout();
    let _ = out.write_all(banner.as_bytes()).and_then(|()| out.flush());
    sim.run_until(crate::shutdown::signal()).await;
    Ok(Exit::Ok)
}
