//! `proxy-renewd forecast [--days N] [--offline]`: the renewals the rules will make, their
//! cost per day and the fund-by amounts, from an audit's read (nothing is written or sent).

use super::{Exit, emit};
use crate::app::{App, Mode};
use crate::config::Config;
use crate::output::OutputFormat;
use crate::output::forecast as render;
use crate::shutdown;

/// `forecast` options.
#[derive(Debug, clap::Args)]
pub struct ForecastArgs {
    /// How many days ahead (1-366).
    #[arg(long, value_name = "N", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=366))]
    pub days: u32,
    /// No request to the provider: the subscriptions of the database's last read (the
    /// snapshot), priced from the ledger; else one `subscriptions` read, `renewal-plans` for
    /// those due within 24 h and `plans` once.
    #[arg(long)]
    pub offline: bool,
}

/// Forecasts and prints: exit 0, or 3 when something in the window needs a person (a
/// subscription the daemon will not renew, or one the budget keeps until after it lapses).
pub(super) async fn run(cfg: Config, args: ForecastArgs, format: OutputFormat) -> anyhow::Result<Exit> {
    let app = App::build(cfg, Mode::DryRun).await?;
    let result = app.cycle(shutdown::token_on_signal()).forecast(args.days, args.offline).await;
    app.close().await;
    let run = result?;
    emit(&render::render(&run, format))?;
    let f = &run.forecast;
    let lapses = f.budget_stops.iter().any(|s| s.renewed_at.is_none_or(|t| t > s.active_until));
    Ok(if f.attention.is_empty() && !lapses { Exit::Ok } else { Exit::Attention })
}
