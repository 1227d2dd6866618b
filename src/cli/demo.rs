//! `proxy-renewd demo [--keep DIR]`: the whole daemon against the built-in simulator, with
//! no config: the audit before, one real cycle (renewals with their ledger states), the
//! alerts that would have been emailed (rendered here instead of sent), and the audit after.
//!
//! The sample has subscriptions due (one lapsed two days ago), one whose only plan is sold
//! out, a suspended one, and a balance that covers only three renewals. Everything lives in a
//! temporary directory that is removed at the end, unless `--keep DIR`: then the database and
//! a ready config stay in DIR and the simulator keeps serving until Ctrl-C.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::{Exit, emit};
use crate::alert::Alert;
use crate::alerts::email::digest;
use crate::app::{App, Mode};
use crate::config::Config;
use crate::output::OutputFormat;
use crate::output::report;
use crate::shutdown;
use crate::sim::{SimConfig, SimState, Simulator};
use crate::values::{Cents, EpochMs};

/// `demo` options.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Keep the database and a ready config in DIR, and keep the simulator running until
    /// Ctrl-C, to explore further (`proxy-renewd --config DIR/config.toml …`).
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
}

/// Covers three 12.00 renewals of the five due: the fourth meets a sold-out plan (409), the
/// fifth a short balance (402).
const DEMO_BALANCE_CENTS: i64 = 3_700;

fn write_config(dir: &Path, sim: &Simulator) -> anyhow::Result<PathBuf> {
    let path = dir.join("config.toml");
    let toml = format!(
        "# Written by `proxy-renewd demo`: the built-in simulator, not a real provider.\n\
         [api]\nbase_url = \"{}\"\nkey = \"{}\"\n\n[database]\nurl = \"sqlite://{}\"\n\n\
         [defaults]\nrenew_before = \"3d\"\nplan = \"cheapest\"\nmax_price_cents = 5000\n\n\
         [budget]\nmax_spend_cents_per_day = 20000\n",
        sim.base_url(),
        crate::sim::DEFAULT_API_KEY,
        dir.join("demo.db").display()
    );
    std::fs::write(&path, toml).with_context(|| format!("cannot write {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(path)
}

pub(super) async fn run(args: DemoArgs, format: OutputFormat) -> anyhow::Result<Exit> {
    let mut state = SimState::sample(EpochMs::now().0);
    state.balance_cents = DEMO_BALANCE_CENTS;
    let sim = Simulator::start(SimConfig { state, ..SimConfig::sample() })
        .await
        .context("cannot start the simulator on loopback")?;
    let temp = tempfile::tempdir().context("cannot create a temporary directory")?;
    let dir = match &args.keep {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
            d.clone()
        }
        None => temp.path().to_path_buf(),
    };
    let config_path = write_config(&dir, &sim)?;
    let cfg = Config::load_file_only(&config_path)?;
    // One at a time, so that the demo shows the same thing every time.
    let app = App::build(cfg, Mode::Real).await?.with_max_concurrency(1);
    let store = app.store().context("the demo's database is not open")?;

    let reports = |r: &crate::report::CycleReport| -> anyhow::Result<serde_json::Value> {
        Ok(serde_json::from_str(&report::render(r, OutputFormat::Json))?)
    };
    let mut doc = serde_json::Map::new();
    let json = format == OutputFormat::Json;
    let say = |text: &str| if json { Ok(()) } else { emit(text) };
    say(&format!(
        "proxy-renewd demo: the simulator serves sample data at {}api/proxy (balance {}).\n\n\
         == 1. The audit (`proxy-renewd --dry-run`): what is due, and what needs a person\n",
        sim.base_url(),
        Cents(DEMO_BALANCE_CENTS)
    ))?;
    doc.insert("api_url".into(), json!(format!("{}api/proxy", sim.base_url())));
    doc.insert("balance_cents".into(), json!(DEMO_BALANCE_CENTS));
    let audit = app.audit_cycle(CancellationToken::new()).run().await?;
    say(&report::render(&audit, OutputFormat::Table))?;
    doc.insert("audit".into(), reports(&audit)?);

    say("\n== 2. One real cycle (`proxy-renewd once`): renewals, most urgent first\n")?;
    let once = app.once(CancellationToken::new()).await?;
    say(&report::render(&once, OutputFormat::Table))?;
    doc.insert("once".into(), reports(&once)?);
    say("\n== 3. The ledger (`proxy-renewd history`): every attempt, committed before it was sent\n")?;
    let ledger = store.history(None, 50).await?;
    say(&super::history_cmd::table(&ledger))?;
    doc.insert("ledger".into(), ledger.iter().map(super::history_cmd::entry_json).collect());

    say("\n== 4. The alert email this cycle would have sent (with [alerts.email] configured)\n")?;
    let queued = store.outbox(false, 100).await?;
    let alerts: Vec<&Alert> = queued.iter().map(|r| &r.alert).collect();
    if alerts.is_empty() {
        say("(no alerts)\n")?;
        doc.insert("email".into(), serde_json::Value::Null);
    } else {
        let d = digest(&alerts, EpochMs::now(), Some("demo"));
        say(&format!("Subject: {}\n\n{}", d.subject, d.body))?;
        doc.insert("email".into(), json!({ "subject": d.subject, "body": d.body }));
    }

    say("\n== 5. The audit after: renewed subscriptions are ok; the rest still need a person\n")?;
    let after = app.audit_cycle(CancellationToken::new()).run().await?;
    say(&report::render(&after, OutputFormat::Table))?;
    doc.insert("audit_after".into(), reports(&after)?);
    app.close().await;
    // The instance lock goes with the app: `once` in another terminal may run now.
    drop(app);
    if json {
        doc.insert("kept".into(), json!(args.keep.as_ref().map(|d| d.display().to_string())));
        emit(&crate::output::pretty(&doc.into()))?;
    }

    match &args.keep {
        None if json => {}
        None => {
            emit("\nDone; the temporary database is removed. `proxy-renewd demo --keep DIR` keeps it to explore.\n")?
        }
        Some(d) => {
            let bin = std::env::current_exe().map_or_else(|_| "proxy-renewd".into(), |p| p.display().to_string());
            let c = config_path.display();
            say(&format!(
                "\nKept in {}: the database and config.toml. The simulator keeps serving until Ctrl-C; in another\nterminal try\n  \
                 {bin} --config {c} history\n  {bin} --config {c} rules list\n  {bin} --config {c} once\n",
                d.display(),
            ))?;
            shutdown::signal().await;
        }
    }
    sim.stop();
    Ok(Exit::Ok)
}
