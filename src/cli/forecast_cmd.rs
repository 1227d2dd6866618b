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

/// Forecasts and prints: exit 0, or 3 when something in the window needs a person: a
/// subscription the daemon will not renew or waits on after a refusal, a renewal that comes
/// after the expiry (the budget, a sparse schedule), one the budget keeps out of the window,
/// or one whose price is not known.
pub(super) async fn run(cfg: Config, args: ForecastArgs, format: OutputFormat) -> anyhow::Result<Exit> {
    let app = App::build(cfg, Mode::DryRun).await?;
    let result = app.cycle(shutdown::token_on_signal()).forecast(args.days, args.offline).await;
    app.close().await;
    let run = match result {
        Err(e @ crate::cycle::CycleError::Read(_)) if !args.offline => {
            return Err(anyhow::anyhow!(
                "{e} (`proxy-renewd forecast --offline` forecasts from the database's last read)"
            ));
        }
        other => other?,
    };
    emit(&render::render(&run, format))?;
    let f = &run.forecast;
    let unrenewed = f.budget_stops.iter().any(|s| s.renewed_at.is_none());
    let lapses = f.renewals.iter().any(crate::forecast::Renewal::lapses_first);
    let unpriced = f.renewals.iter().any(|r| r.terms.is_none());
    Ok(if f.attention.is_empty() && !unrenewed && !lapses && !unpriced { Exit::Ok } else { Exit::Attention })
}
