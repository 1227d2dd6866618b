//! `proxy-renewd history [--subscription ID] [--limit N]`: the ledger, newest first.

use serde_json::json;

use super::{Exit, emit};
use crate::api::refusal_summary;
use crate::attempt::{LedgerEntry, LedgerState};
use crate::config::Config;
use crate::output::{Columns, Fit, OutputFormat, pretty};
use crate::store::{self, Store};
use crate::values::SubscriptionId;

/// `history` options.
#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    /// Only this subscription.
    #[arg(long, value_name = "ID")]
    pub subscription: Option<String>,
    /// At most this many rows.
    #[arg(long, value_name = "N", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: u32,
}

pub(super) async fn run(cfg: &Config, args: HistoryArgs, format: OutputFormat) -> anyhow::Result<Exit> {
    let id = args.subscription.as_deref().map(SubscriptionId::parse).transpose()?;
    if !store::exists(&cfg.database_url).await? {
        let what = match store::database_file(&cfg.database_url)? {
            Some(file) => format!("{} does not exist", file.display()),
            None => format!("{} has no proxy-renewd schema yet", store::redact_url(&cfg.database_url)),
        };
        emit(&match format {
            OutputFormat::Json => pretty(&json!({ "ledger": [] })),
            OutputFormat::Table => format!("no ledger yet: {what}\n"),
        })?;
        return Ok(Exit::Ok);
    }
    let store = Store::open_read_only(&cfg.database_url).await?;
    let entries = store.history(id.as_ref(), args.limit).await;
    store.close().await;
    let entries = entries?;
    emit(&match format {
        OutputFormat::Json => pretty(&json!({ "ledger": entries.iter().map(entry_json).collect::<Vec<_>>() })),
        OutputFormat::Table => table(&entries),
    })?;
    Ok(Exit::Ok)
}

pub(super) fn entry_json(e: &LedgerEntry) -> serde_json::Value {
    let a = &e.renewal;
    json!({
        "id": e.id,
        "subscription_id": e.subscription_id,
        "active_until_before_ms": a.active_until_before.0,
        "attempt": a.attempt,
        "plan_id": a.plan_id,
        "repeat_count": a.repeat_count,
        "price_cents": a.price.0,
        "coupon_code": a.coupon_code,
        "expected_end_at_ms": a.expected_end_at.0,
        "actual_end_at_ms": e.actual_end_at.map(|t| t.0),
        "state": e.state.as_str(),
        "http_status": e.http_status,
        "error": readable(e),
        "origin": e.origin.as_str(),
        "created_at_ms": e.created_at.0,
        "updated_at_ms": e.updated_at.0,
    })
}

pub(super) fn table(entries: &[LedgerEntry]) -> String {
    // Narrow: the origin and the attempt go, the error wraps, then the period, the HTTP status,
    // the creation time and the plan go; the ids, state, price and new expiry stay.
    let mut t = Columns::new(&[
        ("ID", Fit::Whole),
        ("CREATED (UTC)", Fit::Optional { rank: 5 }),
        ("SUBSCRIPTION", Fit::Whole),
        ("PERIOD (activeUntil)", Fit::Optional { rank: 3 }),
        ("ATTEMPT", Fit::Optional { rank: 1 }),
        ("PLAN", Fit::Optional { rank: 6 }),
        ("PRICE", Fit::Whole),
        ("STATE", Fit::Whole),
        ("HTTP", Fit::Optional { rank: 4 }),
        ("NEW EXPIRY", Fit::Wrap { rank: 7, min: 10 }),
        ("ORIGIN", Fit::Optional { rank: 0 }),
        ("ERROR", Fit::Wrap { rank: 2, min: 20 }),
    ]);
    for e in entries {
        let a = &e.renewal;
        t.row(vec![
            e.id.to_string(),
            e.created_at.to_string(),
            e.subscription_id.to_string(),
            a.active_until_before.to_string(),
            a.attempt.to_string(),
            format!("{} × {}", a.plan_id, a.repeat_count),
            a.price.to_string(),
            e.state.to_string(),
            e.http_status.map(|s| s.to_string()).unwrap_or_default(),
            match (e.actual_end_at, e.state.is_open()) {
                (Some(t), _) => t.to_string(),
                (None, true) => format!("expected {}", a.expected_end_at),
                (None, false) => String::new(),
            },
            e.origin.as_str().into(),
            short_error(e),
        ]);
    }
    t.render()
}

/// The ledger's error for people and scripts: each thing said once. A refusal recorded by an
/// older version (`renew: HTTP 402: insufficient balance: top up … (provider said: …)`) reads
/// as the current ones do (`HTTP 402 insufficient balance`); other text is shown as stored.
fn readable(e: &LedgerEntry) -> Option<String> {
    let text = e.error.as_deref()?;
    let old = || {
        let (_, rest) = text.split_once(": HTTP ")?;
        let (status, rest) = rest.split_once(": ")?;
        let status: u16 = status.parse().ok()?;
        let (advice, said) = match rest.rsplit_once(" (provider said: ") {
            Some((advice, said)) => (advice, Some(said.strip_suffix(')').unwrap_or(said))),
            None => (rest, None),
        };
        Some(refusal_summary(status, advice, said))
    };
    Some(if e.state == LedgerState::Refused { old() } else { None }.unwrap_or_else(|| text.to_owned()))
}

/// [`readable`], cut for a table cell.
fn short_error(e: &LedgerEntry) -> String {
    let text = readable(e).unwrap_or_default();
    let cut: String = text.chars().take(120).collect();
    if cut.len() < text.len() { format!("{cut}…") } else { cut }
}
