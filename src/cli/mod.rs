//! The command line (`daemon.md`, *Command line*): clap definitions, the exit-code enum, and
//! one small function per command that calls into the library.
//!
//! Commands print data to stdout and diagnostics to stderr; an error is one line,
//! `error: …`, that says what to fix.

mod api_cmd;
mod demo;
mod rules_cmd;
mod sim_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, LogFormat};
use crate::output::OutputFormat;

/// Exit codes of the one-shot commands (`daemon.md`, *Exit codes*).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: done; nothing needs attention.
    Ok,
    /// 1: config invalid, API unreachable or rejected the key, database unusable.
    Error,
    /// 2: usage error (clap's own).
    Usage,
    /// 3: done, but something needs a human.
    Attention,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(match e {
            Exit::Ok => 0,
            Exit::Error => 1,
            Exit::Usage => 2,
            Exit::Attention => 3,
        })
    }
}

/// Keeps prepaid proxy subscriptions from lapsing. This build has the provider client, the
/// simulator, the renewal rules and the read-only API views; the renewal daemon is coming.
#[derive(Debug, Parser)]
#[command(name = "proxy-renewd", version, about, long_about = None, arg_required_else_help = true)]
#[command(
    after_help = "Configuration: --config PATH, else $PROXY_RENEWD_CONFIG, else ./proxy-renewd.toml, else /etc/proxy-renewd/config.toml;\nany key can be set in the environment, e.g. PROXY_RENEWD_API__KEY, PROXY_RENEWD_API__BASE_URL.\nExit codes: 0 done, 1 error (config, API, database), 2 usage, 3 done but something needs a human."
)]
pub struct Cli {
    /// Config file (TOML); else $PROXY_RENEWD_CONFIG, ./proxy-renewd.toml, /etc/proxy-renewd/config.toml.
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Output of listings and reports.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read-only views of the provider API (secrets redacted unless --show-secrets).
    Api {
        /// Which view.
        #[command(subcommand)]
        view: ApiView,
        /// Print proxy credentials and protocol URLs instead of <redacted>.
        #[arg(long, global = true)]
        show_secrets: bool,
    },
    /// Manage per-subscription renewal rules (the rest follow [defaults]).
    Rules {
        /// What to do.
        #[command(subcommand)]
        action: rules_cmd::RulesAction,
    },
    /// Serve the built-in gateway simulator (the provider API, in memory, with fault injection).
    Sim(sim_cmd::SimArgs),
    /// Start the simulator on loopback with sample data and show the client at work against it.
    Demo,
}

/// `api` views.
#[derive(Debug, Subcommand)]
pub enum ApiView {
    /// The plans the key's owner can buy (op=plans).
    Plans,
    /// Every subscription with its expiry (op=subscriptions).
    Subscriptions,
    /// The plans that can renew one subscription (op=renewal-plans).
    RenewalPlans {
        /// Subscription id (lowercase letters and digits).
        id: String,
    },
    /// The networks one subscription can switch to (op=available-networks).
    Networks {
        /// Subscription id (lowercase letters and digits).
        id: String,
    },
}

/// Runs the parsed command line to its exit code.
pub async fn run(cli: Cli) -> Exit {
    let result = match cli.command {
        Some(Command::Api { view, show_secrets }) => match load_config(cli.config.as_deref()) {
            Ok(cfg) => api_cmd::run(&cfg, view, cli.format, show_secrets).await,
            Err(e) => Err(e),
        },
        Some(Command::Rules { action }) => match load_config(cli.config.as_deref()) {
            Ok(cfg) => rules_cmd::run(&cfg, action, cli.format).await,
            Err(e) => Err(e),
        },
        Some(Command::Sim(args)) => {
            init_tracing(LogFormat::Auto);
            sim_cmd::run(args).await
        }
        Some(Command::Demo) => {
            init_tracing(LogFormat::Auto);
            demo::run().await
        }
        None => Ok(Exit::Usage),
    };
    result.unwrap_or_else(|e| {
        eprintln!("error: {}", one_line(&e));
        Exit::Error
    })
}

fn load_config(path: Option<&std::path::Path>) -> anyhow::Result<Config> {
    // Logging first, so that warnings raised while loading are seen.
    let format = std::env::var("PROXY_RENEWD_LOG__FORMAT")
        .ok()
        .and_then(|f| <LogFormat as clap::ValueEnum>::from_str(&f, true).ok())
        .unwrap_or_default();
    init_tracing(format);
    Ok(Config::load(path)?)
}

/// Writes `text` to stdout. A closed pipe (`| head`) ends the output quietly; any other
/// write error (a full disk) is an error.
pub(crate) fn emit(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.map_err(|e| anyhow::anyhow!("cannot write to standard output: {e}")),
    }
}

/// The error and its causes on one line, `a: b: c`.
fn one_line(e: &anyhow::Error) -> String {
    let text = format!("{e:#}");
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Logs to stderr: `RUST_LOG` filters (default `info`); pretty on a terminal, JSON otherwise
/// unless `format` says which.
pub fn init_tracing(format: LogFormat) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if json { builder.json().try_init() } else { builder.compact().try_init() };
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
