//! The command line (`daemon.md`, *Command line*): clap definitions, the exit-code enum, and
//! one small function per command that calls into the library.
//!
//! Commands print data to stdout and diagnostics to stderr; an error is one line,
//! `error: …`, that says what to fix.

mod account_cmd;
mod alerts_cmd;
mod api_cmd;
mod cycle_cmd;
mod demo;
mod forecast_cmd;
mod health_cmd;
mod history_cmd;
mod manual_cmd;
mod purchase_cmd;
mod renew_cmd;
mod rules_cmd;
mod sim_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, LogFormat};
use crate::output::OutputFormat;
use crate::output::report::Only;

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

/// Keeps prepaid proxy subscriptions from lapsing: polls the provider, renews what is due by
/// each subscription's rule, and keeps a ledger so that nothing is ever renewed twice.
#[derive(Debug, Parser)]
#[command(name = "proxy-renewd", version, about, long_about = None)]
#[command(
    after_help = "Without a command: `run` (the daemon); with only --dry-run: one audit cycle.\nConfiguration: --config PATH, else $PROXY_RENEWD_CONFIG, else ./proxy-renewd.toml, else /etc/proxy-renewd/config.toml;\nany key can be set in the environment, e.g. PROXY_RENEWD_API__KEY, PROXY_RENEWD_API__BASE_URL (see config.example.toml).\nExit codes: 0 done, 1 error (config, API, database), 2 usage, 3 done but something needs a human.\nNo double charge: every renew is recorded before it is sent and settled by reading activeUntil back; the one\nexception is a provider that applies a request later than [ledger] reconcile_after (set it above the provider's\nworst queueing delay)."
)]
pub struct Cli {
    /// Config file (TOML); else $PROXY_RENEWD_CONFIG, ./proxy-renewd.toml, /etc/proxy-renewd/config.toml.
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Output of listings and reports.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    /// Audit only: every read as usual, no renewal, no ledger write, no email; prints the report.
    /// Alone: one audit cycle (like `once --dry-run`).
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run: list only the subscriptions due now, or only those that need a
    /// person (the totals still count every one). For large fleets.
    #[arg(long, value_enum, value_name = "WHICH")]
    pub only: Option<Only>,
    /// What to do.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The daemon (the default): one cycle at start-up, then on the cron schedule, until
    /// SIGTERM/SIGINT.
    Run {
        /// The daemon loop in audit mode: reads only, logs what it would do.
        #[arg(long)]
        dry_run: bool,
    },
    /// Exactly one cycle, then exit: 0 all well, 3 something needs a person, 1 error.
    Once {
        /// An audit cycle: every read as usual, no renewal, no ledger write, no email.
        #[arg(long)]
        dry_run: bool,
        /// List only the subscriptions due now, or only those that need a person (the
        /// totals still count every one).
        #[arg(long, value_enum, value_name = "WHICH")]
        only: Option<Only>,
    },
    /// Renew one subscription now, by hand, through the same ledger as the daemon: it ignores
    /// due dates, caps and the budget, refuses while an attempt may be in flight, lifts a
    /// hold, and asks for confirmation on a terminal (else pass --yes).
    Renew(renew_cmd::RenewArgs),
    /// Buy subscriptions of a plan (op=purchase): SPENDS MONEY, the plan's price × repeat count ×
    /// quantity (shown before, and asked on a terminal; elsewhere pass --yes).
    ///
    /// Preview it first, sending nothing: `proxy-renewd purchase PLAN_ID --quantity N
    /// --repeat-count N --dry-run` (plans and prices: `proxy-renewd api plans`). The purchase
    /// is recorded before it is sent and sent once, never retried; it counts against the daily
    /// budget. When its answer is lost, its outcome is unknown: the next purchase of the same
    /// plan is refused (unless --force) until `proxy-renewd purchase reconcile` has shown the
    /// subscriptions that appeared and a person settled it. The new subscriptions follow
    /// [defaults] unless --no-auto-renew, --renew-before or --renew-plan say otherwise.
    /// Exit 0 bought, 1 nothing bought (refused, not confirmed, over --max-price-cents),
    /// 3 outcome unknown.
    Purchase(purchase_cmd::PurchaseArgs),
    /// Move one subscription to another network (op=switch-network; costs nothing). The
    /// network must be one of `proxy-renewd api networks SUB_ID`; asks on a terminal (else
    /// --yes); sent once. Exit 0 moved, 1 refused, 3 outcome unknown.
    SwitchNetwork(account_cmd::SwitchNetworkArgs),
    /// New proxy password and VPN id for one subscription (op=change-credentials; costs
    /// nothing, but every client using the old password stops working). Printed once, to
    /// standard output only: never logged, stored or emailed. Asks on a terminal (else --yes);
    /// sent once. Exit 0 changed, 1 refused, 3 outcome unknown.
    ChangeCredentials(account_cmd::ChangeCredentialsArgs),
    /// What the next renewals will cost, and by when: the money to have on the account.
    ///
    /// Every renewal the rules will make in the next N days (30 by default), as the daemon's
    /// own policy decides it at each cycle: when, which plan, what price (from renewal-plans
    /// for what is due within 24 h, else the last renewal's plan, else the cheapest plan
    /// known); totals per day and for the next 24 h, 7 and 30 days; fund-by amounts (have at
    /// least X on the account at the start of day D); the days the daily budget stops
    /// renewals; what will need a person. Reads only: no renewal, no write, no email. Exit 0,
    /// or 3 when something in the window needs a person.
    Forecast(forecast_cmd::ForecastArgs),
    /// The renewal ledger, newest first.
    History(history_cmd::HistoryArgs),
    /// Is the daemon cycling? Exit 0 if the last cycle finished within --max-age, else 1.
    Health(health_cmd::HealthArgs),
    /// Read-only views of the provider API (secrets redacted unless --show-secrets).
    Api {
        /// Which view.
        #[command(subcommand)]
        view: ApiView,
        /// Print proxy credentials and protocol URLs instead of <redacted>.
        #[arg(long, global = true)]
        show_secrets: bool,
    },
    /// Alerts: send a test email, or show the outbox.
    Alerts {
        /// What to do.
        #[command(subcommand)]
        action: alerts_cmd::AlertsAction,
    },
    /// Manage per-subscription renewal rules (the rest follow [defaults]).
    Rules {
        /// What to do.
        #[command(subcommand)]
        action: rules_cmd::RulesAction,
    },
    /// Serve the built-in gateway simulator (the provider API, in memory, with fault injection).
    Sim(sim_cmd::SimArgs),
    /// The daemon against the built-in simulator, no config needed: audit, one real cycle,
    /// the ledger, the alert email it would send, and the audit after.
    Demo(demo::DemoArgs),
    /// Shell completions on standard output, generated from these very options, e.g.
    /// `proxy-renewd completions bash > /usr/share/bash-completion/completions/proxy-renewd`
    /// (the Debian package installs them for bash, zsh and fish).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// The manual page (roff) on standard output (`proxy-renewd manpage | man -l -`), or with
    /// --dir one page per command (proxy-renewd.1, proxy-renewd-rules-set.1, …) into DIR.
    Manpage {
        /// Write one page per command into this existing directory instead.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
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
    let config = cli.config.as_deref();
    let (format, dry_run, only) = (cli.format, cli.dry_run, cli.only);
    if dry_run && !matches!(cli.command, None | Some(Command::Run { .. } | Command::Once { .. } | Command::Purchase(_)))
    {
        use std::io::Write;
        let why = if matches!(cli.command, Some(Command::Forecast(_))) {
            "`forecast` reads only and needs no --dry-run"
        } else {
            "this command would act for real"
        };
        let _ = writeln!(
            std::io::stderr(),
            "error: --dry-run applies to `run`, `once` (or no command) and `purchase` only; {why}"
        );
        return Exit::Usage;
    }
    if only.is_some() && !(matches!(cli.command, Some(Command::Once { .. })) || (dry_run && cli.command.is_none())) {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "error: --only lists the rows of a cycle's report: use it with --dry-run alone or with `once` (`proxy-renewd --dry-run --only attention`, `proxy-renewd once --only due`)"
        );
        return Exit::Usage;
    }
    let result = match cli.command {
        None if dry_run => {
            with_config(config, Access::Reads, async |cfg| {
                cycle_cmd::once(cfg, format, true, only.unwrap_or_default()).await
            })
            .await
        }
        None => with_config(config, Access::Acts, async |cfg| cycle_cmd::daemon(cfg, false).await).await,
        Some(Command::Run { dry_run: d }) => {
            with_config(config, Access::acts_unless(dry_run || d), async |cfg| {
                cycle_cmd::daemon(cfg, dry_run || d).await
            })
            .await
        }
        Some(Command::Once { dry_run: d, only: o }) => {
            let only = o.or(only).unwrap_or_default();
            with_config(config, Access::acts_unless(dry_run || d), async |cfg| {
                cycle_cmd::once(cfg, format, dry_run || d, only).await
            })
            .await
        }
        Some(Command::Renew(args)) => {
            with_config(config, Access::Acts, async |cfg| renew_cmd::run(cfg, args, format).await).await
        }
        Some(Command::Purchase(args)) => {
            with_config(config, Access::acts_unless(dry_run || args.dry_run), async |cfg| {
                purchase_cmd::run(cfg, args, format, dry_run).await
            })
            .await
        }
        Some(Command::SwitchNetwork(args)) => {
            with_config(config, Access::Acts, async |cfg| account_cmd::switch_network(cfg, args, format).await).await
        }
        Some(Command::ChangeCredentials(args)) => {
            with_config(config, Access::Acts, async |cfg| account_cmd::change_credentials(cfg, args, format).await)
                .await
        }
        Some(Command::Forecast(args)) => {
            with_config(config, Access::Reads, async |cfg| forecast_cmd::run(cfg, args, format).await).await
        }
        Some(Command::Health(args)) => {
            with_config(config, Access::Reads, async |cfg| health_cmd::run(&cfg, args, format).await).await
        }
        Some(Command::History(args)) => {
            with_config(config, Access::Reads, async |cfg| history_cmd::run(&cfg, args, format).await).await
        }
        Some(Command::Api { view, show_secrets }) => {
            with_config(config, Access::Reads, async |cfg| api_cmd::run(&cfg, view, format, show_secrets).await).await
        }
        Some(Command::Alerts { action }) => {
            let access = Access::acts_unless(matches!(action, alerts_cmd::AlertsAction::List { .. }));
            with_config(config, access, async |cfg| alerts_cmd::run(&cfg, action, format).await).await
        }
        Some(Command::Rules { action }) => {
            let access = Access::acts_unless(matches!(action, rules_cmd::RulesAction::List));
            with_config(config, access, async |cfg| rules_cmd::run(&cfg, action, format).await).await
        }
        Some(Command::Sim(args)) => {
            init_tracing(LogFormat::Auto);
            sim_cmd::run(args, format).await
        }
        Some(Command::Completions { shell }) => manual_cmd::completions(shell),
        Some(Command::Manpage { dir }) => manual_cmd::manpage(dir.as_deref()),
        Some(Command::Demo(args)) => {
            // The demo prints what matters; its warnings would only repeat it.
            init_tracing_with("error", LogFormat::Auto);
            demo::run(args, format).await
        }
    };
    result.unwrap_or_else(|e| {
        use std::io::Write;
        // A closed stderr must not turn an error into a panic.
        let _ = writeln!(std::io::stderr(), "error: {}", one_line(&e));
        Exit::Error
    })
}

/// What a command does with the configuration it is given: on a first run (no config file,
/// no `PROXY_RENEWD_*` variable) a command that would create or change state refuses, and a
/// read-only view says so on stderr and goes on with the built-in defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Creates or changes state: a database row, a renewal, a purchase, an email.
    Acts,
    /// Reads only.
    Reads,
}

impl Access {
    /// [`Access::Reads`] when `reads_only`, else [`Access::Acts`].
    fn acts_unless(reads_only: bool) -> Access {
        if reads_only { Access::Reads } else { Access::Acts }
    }
}

/// Loads the config, sets up logging as `[log] format` says, checks a first run against
/// `access`, and runs `f` with it.
async fn with_config(
    path: Option<&std::path::Path>,
    access: Access,
    f: impl AsyncFnOnce(Config) -> anyhow::Result<Exit>,
) -> anyhow::Result<Exit> {
    let cfg = Config::load(path)?;
    init_tracing(cfg.log_format);
    if cfg.is_unconfigured() {
        let help = Config::first_run_help();
        if access == Access::Acts {
            anyhow::bail!(
                "{help}. This command would create or change state with the built-in defaults only, so it did nothing"
            );
        }
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "note: {help}. Showing what the built-in defaults give.");
    }
    cfg.warn_if_secret_readable();
    f(cfg).await
}

/// Writes to stdout through a buffer with `write`. A closed pipe (`| head`) ends the output
/// quietly; any other write error (a full disk) is an error.
pub(crate) fn emit_with(write: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    match write(&mut out).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.map_err(|e| anyhow::anyhow!("cannot write to standard output: {e}")),
    }
}

/// Writes `text` to stdout, as [`emit_with`] does.
pub(crate) fn emit(text: &str) -> anyhow::Result<()> {
    emit_with(|out| out.write_all(text.as_bytes()))
}

/// Prints what a POST did, after it was sent: a failure to write stdout must not turn "done"
/// into an error exit (a script would act again), so it is reported on stderr with `summary`
/// (which holds no secret) and the command keeps the outcome's exit code.
pub(crate) fn emit_after_acting(text: &str, summary: &str) {
    if let Err(e) = emit(text) {
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "warning: {e}; what happened: {}", summary.trim_end());
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
    init_tracing_with("info,tokio_cron_scheduler=warn,sqlx::postgres::notice=warn", format);
}

/// [`init_tracing`] with another default filter (when `RUST_LOG` is unset).
fn init_tracing_with(default_filter: &str, format: LogFormat) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    // lettre logs the SMTP dialogue, AUTH included, at debug: never below warn, whatever
    // RUST_LOG says.
    let filter = match "lettre=warn".parse() {
        Ok(d) => filter.add_directive(d),
        Err(_) => filter,
    };
    // Under systemd, journald stamps each line itself: no second timestamp, no colours.
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !journald && !std::io::stderr().is_terminal(),
    };
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(|| LossyStderr);
    let _ = if json {
        // One flat object per line: timestamp, level, target, message and the fields.
        builder.json().flatten_event(true).finish().with(no_smtp_dialogue()).try_init()
    } else if journald {
        builder.compact().without_time().with_ansi(false).finish().with(no_smtp_dialogue()).try_init()
    } else {
        builder.compact().finish().with(no_smtp_dialogue()).try_init()
    };
}

/// A filter above `RUST_LOG`: lettre's events below `warn` (the SMTP dialogue, `AUTH`
/// included) never reach the log, whatever directive asks for them (a more specific one such
/// as `lettre::transport::smtp=trace` would otherwise win over `lettre=warn`).
fn no_smtp_dialogue() -> tracing_subscriber::filter::FilterFn<impl Fn(&tracing::Metadata<'_>) -> bool> {
    tracing_subscriber::filter::filter_fn(|meta| {
        !(meta.target().starts_with("lettre") && *meta.level() > tracing::Level::WARN)
    })
}

/// stderr that drops what it cannot write (a closed pipe) instead of failing.
struct LossyStderr;

impl std::io::Write for LossyStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}

/// Asks `question` on the terminal (y/N); without one, refuses and says to pass `--yes` to
/// `verb`.
pub(crate) fn confirm(question: &str, verb: &str) -> anyhow::Result<bool> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        anyhow::bail!("{question} Not confirmed: no terminal to ask on; pass --yes to {verb}");
    }
    let mut err = std::io::stderr();
    write!(err, "{question} [y/N] ")?;
    err.flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}
