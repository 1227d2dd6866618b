//! `proxy-renewd once`, `run` and `--dry-run`: one cycle or the daemon, for real or as an
//! audit. Parse, build ([`crate::app::App`]), run, print.

use super::{Exit, emit_with};
use crate::app::{App, Mode};
use crate::config::Config;
use crate::output::OutputFormat;
use crate::output::report::{self, Only};
use crate::shutdown;

fn mode(dry_run: bool) -> Mode {
    if dry_run { Mode::DryRun } else { Mode::Real }
}

/// One cycle, printed as the report: exit 0, or 3 when something needs a person.
pub(super) async fn once(cfg: Config, format: OutputFormat, dry_run: bool, only: Only) -> anyhow::Result<Exit> {
    let app = App::build(cfg, mode(dry_run)).await?;
    let result = app.once(shutdown::token_on_signal()).await;
    app.close().await;
    let report = result?;
    emit_with(|out| report::write(&report, format, only, out))?;
    if !report.unrecorded.is_empty() {
        // The ledger is the one guard against a double charge: a gap in it is an error.
        anyhow::bail!(
            "the database could not be written ({}): see the log; the alerts that could not be queued were sent directly",
            report.unrecorded.join("; ")
        );
    }
    Ok(if report.needs_attention() { Exit::Attention } else { Exit::Ok })
}

/// The daemon until SIGTERM/SIGINT; exit 0 after a clean stop.
pub(super) async fn daemon(cfg: Config, dry_run: bool) -> anyhow::Result<Exit> {
    let app = App::build(cfg, if dry_run { Mode::DryRun } else { Mode::Daemon }).await?;
    app.run_until_stopped(shutdown::token_on_signal()).await?;
    tracing::info!("stopped");
    Ok(Exit::Ok)
}
