//! `proxy-renewd forecast` as a table (fitted to the width by [`super::fit`]: totals, fund-by
//! days, what needs a person, budget stops, then the renewals, at most [`TABLE_RENEWALS`]) or
//! one JSON document (every row; README, *Forecast*, documents its shape).

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::fit::{self, Columns, Fit};
use super::pretty;
use crate::forecast::{Forecast, ForecastRun, PlanSource, Renewal, Window};
use crate::values::EpochMs;

/// The most renewals the table lists; JSON lists them all.
pub const TABLE_RENEWALS: usize = 50;

/// The day part of an instant, `2026-12-02`.
fn day(t: EpochMs) -> String {
    t.to_string().get(..10).unwrap_or_default().to_owned()
}

/// The minute part, `2026-12-02 03:10`.
fn minute(t: EpochMs) -> String {
    t.to_string().get(..16).map(|s| s.replace('T', " ")).unwrap_or_default()
}

/// `3 renewals, 12.00` (and `, 1 at a price not known` when some are unpriced).
#[must_use]
pub fn window_words(w: &Window) -> String {
    let unpriced = if w.unpriced > 0 { format!(" (+{} at a price not known)", w.unpriced) } else { String::new() };
    format!("{} renewal{}, {}{unpriced}", w.renewals, if w.renewals == 1 { "" } else { "s" }, w.spend)
}

/// The one line `--dry-run` prints under its totals, e.g.
/// `forecast, next 7 days: 12 renewals, 48.00 (proxy-renewd forecast)`.
#[must_use]
pub fn dry_run_line(f: &Forecast) -> Option<String> {
    let w = f.window("7d")?;
    Some(format!("forecast, next 7 days: about {} (details: proxy-renewd forecast)", window_words(w)))
}

/// The forecast in `format`.
#[must_use]
pub fn render(run: &ForecastRun, format: super::OutputFormat) -> String {
    match format {
        super::OutputFormat::Json => pretty(&json(run)),
        super::OutputFormat::Table => text(run).0,
    }
}

fn renewal_json(r: &Renewal) -> Value {
    let t = r.terms.as_ref();
    json!({
        "subscription_id": r.subscription_id,
        "at_ms": r.at.0,
        "at": r.at.to_rfc3339(),
        "active_until_ms": r.active_until_before.0,
        "plan_id": t.map(|t| &t.plan_id),
        "repeat_count": t.map(|t| t.repeat_count),
        "price_cents": t.map(|t| t.price.0),
        "expected_end_at_ms": t.map(|t| t.expected_end_at.0),
        "plan_source": r.plan_source.map(|s| s.as_str()),
        "delayed_by_budget": r.delayed_by_budget,
        "lapses_first": r.lapses_first(),
    })
}

/// The windows as `{"24h": {"renewals": N, "spend_cents": C, "unpriced": U}, …}`: the
/// forecast's `totals` and the `--dry-run` report's `forecast`.
#[must_use]
pub fn windows_json(windows: &[Window]) -> Value {
    windows
        .iter()
        .map(|w| {
            (w.name.to_owned(), json!({ "renewals": w.renewals, "spend_cents": w.spend.0, "unpriced": w.unpriced }))
        })
        .collect::<serde_json::Map<String, Value>>()
        .into()
}

/// The JSON document.
#[must_use]
pub fn json(run: &ForecastRun) -> Value {
    let f = &run.forecast;
    json!({
        "from_ms": f.now.0,
        "until_ms": f.until.0,
        "source": run.source,
        "read_at_ms": run.read_at.0,
        "subscriptions": run.subscriptions,
        "budget_cents_per_day": run.budget.map(|b| b.0),
        "totals": windows_json(&f.windows),
        "days": f.days.iter().map(|d| json!({
            "date": day(d.start),
            "start_ms": d.start.0,
            "renewals": d.renewals,
            "spend_cents": d.spend.0,
            "unpriced": d.unpriced,
            "fund_by_cents": d.cumulative.0,
            "budget_stops": d.budget_stops,
        })).collect::<Vec<_>>(),
        "renewals": f.renewals.iter().map(renewal_json).collect::<Vec<_>>(),
        "budget_stops": f.budget_stops.iter().map(|s| json!({
            "subscription_id": s.subscription_id,
            "at_ms": s.at.0,
            "price_cents": s.price.0,
            "active_until_ms": s.active_until.0,
            "renewed_at_ms": s.renewed_at.map(|t| t.0),
        })).collect::<Vec<_>>(),
        "attention": f.attention.iter().map(|a| json!({
            "subscription_id": a.subscription_id,
            "reason": a.reason,
            "active_until_ms": a.active_until.0,
            "at_ms": a.at.0,
        })).collect::<Vec<_>>(),
        "plans_read": run.plans_read,
        "plans_errors": run.plans_errors.iter().map(|(id, e)| json!({ "subscription_id": id, "error": e })).collect::<Vec<_>>(),
        "catalog_error": run.catalog_error,
    })
}

/// The text being written: what is done, and the prose not yet wrapped to the width (tables
/// lay themselves out and are never wrapped again).
#[derive(Default)]
struct Text(String, String);

impl Text {
    fn push_str(&mut self, s: &str) {
        self.1.push_str(s);
    }

    fn table(&mut self, t: Columns) {
        self.0.push_str(&fit::wrap(&self.1));
        self.1.clear();
        self.0.push_str(&t.render());
    }

    fn done(mut self) -> Self {
        self.0.push_str(&fit::wrap(&self.1));
        self.1.clear();
        self
    }
}

impl std::fmt::Write for Text {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.1.push_str(s);
        Ok(())
    }
}

/// At most `max` rows of a table, then how many more.
fn capped(out: &mut Text, t: Columns, total: usize, max: usize) {
    out.table(t);
    if total > max {
        let _ = writeln!(out, "… and {} more: --format json lists every one", total - max);
    }
}

fn text(run: &ForecastRun) -> Text {
    let f = &run.forecast;
    let mut out = Text::default();
    let days = (f.until.0 - f.now.0) / crate::forecast::DAY_MS;
    let from = if run.source == "snapshot" {
        format!("the snapshot of {} UTC, {}", minute(run.read_at), crate::values::relative(run.read_at, f.now))
    } else {
        "a fresh read".to_owned()
    };
    let _ = writeln!(
        out,
        "Forecast, {days} day{} from {} UTC, budget {}: {} subscriptions,",
        if days == 1 { "" } else { "s" },
        minute(f.now),
        run.budget.map_or("none".to_owned(), |b| format!("{b}/24 h")),
        run.subscriptions,
    );
    let _ = writeln!(out, "from {from}.");
    for w in &f.windows {
        let _ = writeln!(out, "  next {:>3}: {}", w.name, window_words(w));
    }
    if !matches!(days, 1 | 7 | 30) {
        let all = f.totals_before("all", f.until.0 - f.now.0, f.until);
        let _ = writeln!(out, "  all {days} days: {}", window_words(&all));
    }
    let lapsing: Vec<&Renewal> = f.renewals.iter().filter(|r| r.lapses_first()).collect();
    if !lapsing.is_empty() {
        let _ = writeln!(
            out,
            "  ! {} renewal{} come{} after the expiry (a lapse until then), e.g. {}",
            lapsing.len(),
            if lapsing.len() == 1 { "" } else { "s" },
            if lapsing.len() == 1 { "s" } else { "" },
            lapsing[0].subscription_id
        );
    }
    let busy: Vec<_> = f.days.iter().filter(|d| d.renewals > 0 || d.budget_stops > 0).collect();
    if !busy.is_empty() {
        out.push_str("\nFund by: have at least the amount on the account at the start of the day (UTC).\n");
        let mut t = Columns::new(&[
            ("DAY", Fit::Whole),
            ("RENEWALS", Fit::Whole),
            ("SPEND", Fit::Whole),
            ("HAVE AT LEAST", Fit::Whole),
            ("BUDGET STOPS", Fit::Wrap { rank: 0, min: 6 }),
        ]);
        for d in busy {
            let unpriced = if d.unpriced > 0 { format!(" (+{} unpriced)", d.unpriced) } else { String::new() };
            t.row(vec![
                day(d.start),
                format!("{}{unpriced}", d.renewals),
                d.spend.to_string(),
                d.cumulative.to_string(),
                if d.budget_stops > 0 { d.budget_stops.to_string() } else { String::new() },
            ]);
        }
        out.table(t);
    }
    if !f.attention.is_empty() {
        let _ = writeln!(
            out,
            "\nNeeds a person ({}): what the daemon will not renew by itself, and refusals",
            f.attention.len()
        );
        out.push_str("it waits out (backoff: the forecast assumes the retry succeeds).\n");
        let mut t = Columns::new(&[
            ("SUBSCRIPTION", Fit::Whole),
            ("REASON", Fit::Wrap { rank: 0, min: 12 }),
            ("EXPIRES (UTC)", Fit::Wrap { rank: 2, min: 10 }),
            ("SINCE (CYCLE)", Fit::Wrap { rank: 1, min: 10 }),
        ]);
        for a in f.attention.iter().take(TABLE_RENEWALS) {
            t.row(vec![a.subscription_id.to_string(), a.reason.into(), minute(a.active_until), minute(a.at)]);
        }
        capped(&mut out, t, f.attention.len(), TABLE_RENEWALS);
    }
    if !f.budget_stops.is_empty() {
        let _ = writeln!(
            out,
            "\nStopped by the daily budget ({}): due, renewed once the rolling 24 h spend allows.",
            f.budget_stops.len()
        );
        let mut t = Columns::new(&[
            ("SUBSCRIPTION", Fit::Whole),
            ("STOPPED", Fit::Wrap { rank: 1, min: 10 }),
            ("PRICE", Fit::Whole),
            ("EXPIRES (UTC)", Fit::Wrap { rank: 2, min: 10 }),
            ("RENEWED", Fit::Wrap { rank: 0, min: 10 }),
        ]);
        for s in f.budget_stops.iter().take(TABLE_RENEWALS) {
            let renewed = match s.renewed_at {
                Some(t) if t > s.active_until => format!("{} (lapsed)", minute(t)),
                Some(t) => minute(t),
                None => "not in the window".into(),
            };
            t.row(vec![
                s.subscription_id.to_string(),
                minute(s.at),
                s.price.to_string(),
                minute(s.active_until),
                renewed,
            ]);
        }
        capped(&mut out, t, f.budget_stops.len(), TABLE_RENEWALS);
    }
    if !f.renewals.is_empty() {
        let _ = writeln!(out, "\nRenewals ({}), in the order the cycles make them:", f.renewals.len());
        let mut t = Columns::new(&[
            ("CYCLE (UTC)", Fit::Wrap { rank: 1, min: 10 }),
            ("SUBSCRIPTION", Fit::Whole),
            ("PLAN", Fit::Whole),
            ("×", Fit::Whole),
            ("PRICE", Fit::Whole),
            ("PRICED BY", Fit::Wrap { rank: 0, min: 6 }),
        ]);
        for r in f.renewals.iter().take(TABLE_RENEWALS) {
            let (plan, n, price) = match &r.terms {
                Some(t) => (t.plan_id.to_string(), t.repeat_count.to_string(), t.price.to_string()),
                None => ("?".into(), String::new(), "?".into()),
            };
            let mut source = match r.plan_source {
                Some(PlanSource::RenewalPlans) => "offer",
                Some(PlanSource::LastRenewal) => "last",
                Some(PlanSource::RulePlan) => "rule",
                Some(PlanSource::CheapestKnown) => "cheapest",
                None => "unknown",
            }
            .to_owned();
            if r.delayed_by_budget {
                source.push_str(" *");
            }
            if r.lapses_first() {
                source.push_str(" !");
            }
            t.row(vec![minute(r.at), r.subscription_id.to_string(), plan, n, price, source]);
        }
        capped(&mut out, t, f.renewals.len(), TABLE_RENEWALS);
        out.push_str(
            "PRICED BY: offer = renewal-plans now; last = its last renewal; rule = the plan its rule\n\
             names, at its op=plans price; cheapest = the rule's choice among the plans known on its\n\
             network (else anywhere): an estimate; unknown = no plan known (check its rule's plan id).\n\
             * = waited for the daily budget; ! = after the expiry.\n",
        );
    }
    if let Some((id, e)) = run.plans_errors.first() {
        let _ = writeln!(
            out,
            "\nrenewal-plans failed for {} subscription(s), priced another way; e.g. {id}:\n  {e}",
            run.plans_errors.len()
        );
    }
    if let Some(e) = &run.catalog_error {
        let _ = writeln!(out, "\nop=plans could not be read, so what is not due is priced from the ledger:\n  {e}");
    }
    out.push_str("\nAssumes every renewal succeeds at its price and nobody acts in between.\n");
    out.done()
}
