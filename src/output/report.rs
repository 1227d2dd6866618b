//! The cycle report for people (table) and scripts (JSON): the totals first, then per
//! subscription its id, label, network, status, expiry (UTC and relative), rule source,
//! decision and reason, plan and price if due, and what the renewal came to. `--dry-run`
//! prints it as the audit; `once` prints it after acting. `--only due|attention` keeps the
//! rows a person looks for in a large fleet ([`Only`]); the totals always count them all.
//!
//! The JSON document is written as it is serialized, row by row, with no tree of values in
//! between: at 100,000 subscriptions the report costs the output's bytes, not a copy of it.

use std::io::Write;

use serde::Serialize;
use serde::ser::Serializer;
use serde_json::{Value, json};

use super::OutputFormat;
use super::fit::{self, Columns, Fit};
use crate::attempt::RenewOutcome;
use crate::policy::{Blocked, Decision, Skip};
use crate::report::{CycleReport, Item, Totals};
use crate::rule::format_duration_ms;
use crate::values::text::clean_text;
use crate::values::{EpochMs, SubscriptionId, relative};

/// Which subscriptions the report lists (`--only`); the totals always count every one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Only {
    /// Every subscription read (the default, without `--only`).
    #[default]
    #[value(skip)]
    All,
    /// Those due now, renewable or not.
    Due,
    /// Those a person should look at (the `!` rows; exit code 3).
    Attention,
}

impl Only {
    fn keeps(self, i: &Item) -> bool {
        match self {
            Only::All => true,
            Only::Due => i.is_due(),
            Only::Attention => i.needs_attention(),
        }
    }

    fn name(self) -> Option<&'static str> {
        match self {
            Only::All => None,
            Only::Due => Some("due"),
            Only::Attention => Some("attention"),
        }
    }
}

/// The whole report in `format`, as one string (for the demo and tests; the commands
/// [`write`] it).
#[must_use]
pub fn render(report: &CycleReport, format: OutputFormat) -> String {
    let mut out = Vec::new();
    // Writing to a Vec cannot fail, and the JSON has only string keys.
    let _ = write(report, format, Only::All, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// Writes the report in `format` to `out`, listing the subscriptions `only` keeps.
///
/// # Errors
/// What writing to `out` fails with (a closed pipe, say).
pub fn write(report: &CycleReport, format: OutputFormat, only: Only, out: &mut dyn Write) -> std::io::Result<()> {
    match format {
        OutputFormat::Json => {
            serde_json::to_writer_pretty(&mut *out, &Doc::new(report, only)).map_err(std::io::Error::other)?;
            out.write_all(b"\n")
        }
        OutputFormat::Table => out.write_all(table(report, only).as_bytes()),
    }
}

/// What the decision means, in a few words.
#[must_use]
pub fn detail(i: &Item) -> String {
    if let Some(e) = &i.plans_error {
        return format!("renewal plans unreadable: {e}");
    }
    match &i.decision {
        Decision::Ok { due_in_ms } => format!("renews in {}", short(*due_in_ms)),
        Decision::Skip(Skip::NotRenewable { status }) => format!("status {:?} is not renewable", clean_text(status)),
        Decision::Skip(Skip::Disabled) => "rule disabled".into(),
        Decision::FetchPlans => "due".into(),
        Decision::Renew(r) => format!("plan {} × {}, {}, to {}", r.plan_id, r.repeat_count, r.price, r.expected_end_at),
        Decision::Blocked(b) => blocked(b, &i.subscription.subscription_id),
    }
}

/// Why a due subscription `id` cannot be renewed now, in a few words.
#[must_use]
pub fn blocked(b: &Blocked, id: &SubscriptionId) -> String {
    match b {
        Blocked::Malformed { active_until } => {
            format!("activeUntil {} is not a plausible ms expiry", active_until.0)
        }
        Blocked::ExpiringUnmanaged { expires_in_ms } => {
            format!("rule disabled, expires {}", rel_ms(*expires_in_ms))
        }
        Blocked::OnHold => {
            format!(
                "on hold: renewed but still due; `proxy-renewd renew {id}` or `proxy-renewd rules set {id} --enable`"
            )
        }
        Blocked::Regressed { paid_until } => {
            format!("activeUntil went back before {paid_until}, which a recorded renewal paid for; not renewing again")
        }
        Blocked::InFlight { attempt, state, .. } => {
            format!("attempt {attempt} is {state}; waiting for reconciliation")
        }
        Blocked::AlreadyRenewed { attempt, .. } => {
            format!("attempt {attempt} succeeded; waiting for activeUntil to move")
        }
        Blocked::Refused { status, .. } => {
            format!("last attempt refused (HTTP {})", status.map_or("?".into(), |s| s.to_string()))
        }
        Blocked::Backoff { status, until } => {
            format!("HTTP {} last time; next try after {until}", status.map_or("?".into(), |s| s.to_string()))
        }
        Blocked::NoEligiblePlan { plan, offered } => format!("no eligible plan for {plan} among {offered} offered"),
        Blocked::OverPriceCap { plan_id, price, cap } => {
            format!("plan {plan_id} costs {price}, over the cap {cap}")
        }
        Blocked::OverBudget { plan_id, price, spent, budget } => {
            format!("plan {plan_id} costs {price}; {spent} spent of {budget} in 24 h")
        }
    }
}

fn short(ms: i64) -> String {
    relative(EpochMs(ms), EpochMs(0)).trim_start_matches("in ").to_owned()
}

fn rel_ms(ms: i64) -> String {
    relative(EpochMs(ms), EpochMs(0))
}

fn outcome_text(o: &RenewOutcome) -> String {
    match o {
        RenewOutcome::Succeeded { end_at, held: false, .. } => format!("renewed to {end_at}"),
        RenewOutcome::Succeeded { end_at, held: true, .. } => format!("renewed to {end_at}, still due: on hold"),
        RenewOutcome::Refused { status, .. } => format!(
            "refused (HTTP {status}: {})",
            match status {
                402 => "top up the balance",
                409 => "sold out or invalid state; choose another plan",
                401 | 403 => "check the API key",
                429 => "rate limited; retried later",
                _ => "see `history`",
            }
        ),
        RenewOutcome::Unknown { status, .. } => {
            format!("outcome unknown{}", status.map_or(String::new(), |s| format!(" (HTTP {s})")))
        }
        RenewOutcome::ImplausibleEnd { end_at, .. } => {
            format!("outcome unknown (endAt {} is not a plausible expiry)", end_at.0)
        }
        RenewOutcome::NotSent { .. } => "not sent (no connection)".into(),
        RenewOutcome::Conflict => "another process is renewing it".into(),
        RenewOutcome::NotRecorded { .. } => "not sent: the ledger could not be written".into(),
        RenewOutcome::NotAttempted { reason, .. } => format!("not tried: {reason}"),
    }
}

fn table(report: &CycleReport, only: Only) -> String {
    let now = report.read_at;
    let mut out = totals_lines(report);
    let listed = report.items.iter().filter(|i| only.keeps(i)).count();
    if let Some(name) = only.name() {
        out.push_str(&format!("--only {name}: {listed} of {} subscriptions listed\n", report.items.len()));
    }
    // Narrow: the label and network go first, then the relative expiry and the rule; the
    // id, the decision and the plan ids in DETAIL stay whole.
    let mut header = vec![
        ("SUBSCRIPTION", Fit::Whole),
        ("LABEL", Fit::Optional { rank: 1 }),
        ("NETWORK", Fit::Optional { rank: 0 }),
        ("STATUS", Fit::Optional { rank: 5 }),
        ("EXPIRES (UTC)", Fit::Wrap { rank: 6, min: 10 }),
        ("EXPIRES", Fit::Optional { rank: 3 }),
        ("RULE", Fit::Optional { rank: 4 }),
        ("DECISION", Fit::Whole),
        ("DETAIL", Fit::Wrap { rank: 2, min: 24 }),
    ];
    if !report.dry_run {
        header.push(("OUTCOME", Fit::Wrap { rank: 2, min: 16 }));
    }
    let mut t = Columns::new(&header);
    for i in report.items.iter().filter(|i| only.keeps(i)) {
        let s = &i.subscription;
        let mut row = vec![
            s.subscription_id.to_string(),
            s.label.clone().unwrap_or_default(),
            s.network_label.clone().unwrap_or_default(),
            s.status.clone(),
            s.active_until.to_string(),
            relative(s.active_until, now),
            i.rule_source.as_str().into(),
            format!("{}{}", i.decision.reason(), if i.needs_attention() { " !" } else { "" }),
            detail(i),
        ];
        if !report.dry_run {
            row.push(i.outcome.as_ref().map(outcome_text).unwrap_or_default());
        }
        t.row(row);
    }
    // Prose is wrapped to the width; the table lays itself out.
    let mut out = fit::wrap(&out);
    if listed > 0 {
        out.push_str(&t.render());
    }
    let mut tail = String::new();
    if report.items.iter().filter(|i| only.keeps(i)).any(Item::needs_attention) {
        tail.push_str(if report.dry_run {
            "(!: needs a person; the DETAIL column says why)\n"
        } else {
            "(!: needs a person; the DETAIL and OUTCOME columns say what happened)\n"
        });
    }
    for m in &report.malformed {
        let id = m.subscription_id.as_ref().map_or_else(|| format!("entry {}", m.index), ToString::to_string);
        tail.push_str(&format!("malformed: {id}: {}\n", m.reason));
    }
    for u in &report.unrecorded {
        tail.push_str(&format!("not recorded: {u}\n"));
    }
    for v in &report.vanished {
        tail.push_str(&format!(
            "vanished: {} is no longer listed (last known expiry {})\n",
            v.subscription_id, v.active_until
        ));
    }
    if report.not_objects > 0 {
        tail.push_str(&format!("malformed: {} entries of subscriptions[] are not objects\n", report.not_objects));
    }
    for e in &report.unaccounted {
        tail.push_str(&format!(
            "unaccounted: attempt {} for {} is {} but the subscription was not listed\n",
            e.renewal.attempt, e.subscription_id, e.state
        ));
    }
    out.push_str(&fit::wrap(&tail));
    out
}

/// The totals line (and a dry run's forecast line), printed first.
fn totals_lines(report: &CycleReport) -> String {
    let mut out = String::new();
    let t = report.totals();
    let money = crate::values::Cents;
    if report.dry_run {
        out.push_str(&format!(
            "{} subscriptions: {} due, {} renewable (would spend {}), {} need attention; dry run: nothing was sent or written\n",
            t.subscriptions, t.due, t.renewable, money(t.spend_cents), t.attention
        ));
        if let Some(line) = report.forecast.as_ref().and_then(super::forecast::dry_run_line) {
            out.push_str(&line);
            out.push('\n');
        }
    } else {
        let not_started = match (t.not_started, report.interrupted) {
            (0, _) => String::new(),
            (n, true) => format!(", {n} not started (shutdown requested)"),
            (n, false) => format!(", {n} not started"),
        };
        out.push_str(&format!(
            "{} subscriptions: {} due, {} renewed of {} sent{not_started}, spent {}, {} need attention\n",
            t.subscriptions,
            t.due,
            t.renewed,
            t.sent,
            money(t.spent_cents),
            t.attention
        ));
    }
    out
}

/// The JSON document, in the order a reader wants it: what was run, the totals, then the rows.
#[derive(Serialize)]
struct Doc<'a> {
    dry_run: bool,
    read_at_ms: i64,
    read_at: String,
    totals: Totals,
    forecast: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    only: Option<&'static str>,
    subscriptions: Rows<'a>,
    malformed: Vec<Value>,
    not_objects: usize,
    unrecorded: &'a [String],
    vanished: Vec<Value>,
    reconciled: Vec<Value>,
    unaccounted: Vec<Value>,
    interrupted: bool,
}

impl<'a> Doc<'a> {
    fn new(report: &'a CycleReport, only: Only) -> Self {
        Doc {
            dry_run: report.dry_run,
            read_at_ms: report.read_at.0,
            read_at: report.read_at.to_string(),
            totals: report.totals(),
            forecast: report.forecast.as_ref().map(|f| super::forecast::windows_json(&f.windows)),
            only: only.name(),
            subscriptions: Rows { report, only },
            malformed: report.malformed.iter().map(|m| json!({ "index": m.index, "subscription_id": m.subscription_id, "reason": m.reason })).collect(),
            not_objects: report.not_objects,
            unrecorded: &report.unrecorded,
            vanished: report.vanished.iter().map(|v| json!({ "subscription_id": v.subscription_id, "active_until": v.active_until, "active_until_utc": v.active_until.to_rfc3339() })).collect(),
            reconciled: report.reconciled.iter().map(|r| json!({ "ledger_id": r.ledger_id, "subscription_id": r.subscription_id, "state": r.settlement.state.as_str() })).collect(),
            unaccounted: report.unaccounted.iter().map(|e| json!({ "ledger_id": e.id, "subscription_id": e.subscription_id, "state": e.state.as_str() })).collect(),
            interrupted: report.interrupted,
        }
    }
}

/// The rows `only` keeps, serialized one at a time.
struct Rows<'a> {
    report: &'a CycleReport,
    only: Only,
}

impl Serialize for Rows<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let now = self.report.read_at;
        serializer.collect_seq(self.report.items.iter().filter(|i| self.only.keeps(i)).map(|i| Row::new(i, now)))
    }
}

/// One subscription of `subscriptions[]`.
#[derive(Serialize)]
struct Row<'a> {
    subscription_id: &'a SubscriptionId,
    label: &'a Option<String>,
    network_label: &'a Option<String>,
    status: &'a str,
    active_until_ms: i64,
    active_until: Option<String>,
    expires_in_ms: i64,
    rule_source: &'static str,
    rule: RuleJson,
    decision: &'static str,
    detail: String,
    needs_attention: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    renewal: Option<RenewalJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    outcome: Option<OutcomeJson>,
}

#[derive(Serialize)]
struct RuleJson {
    enabled: bool,
    renew_before: String,
    plan: String,
    repeat_count: u32,
    max_price_cents: Option<i64>,
}

#[derive(Serialize)]
struct RenewalJson<'a> {
    plan_id: &'a crate::values::PlanId,
    repeat_count: u32,
    price_cents: i64,
    attempt: u32,
    expected_end_at_ms: i64,
}

#[derive(Serialize)]
struct OutcomeJson {
    result: &'static str,
    detail: String,
}

impl<'a> Row<'a> {
    fn new(i: &'a Item, now: EpochMs) -> Self {
        let s = &i.subscription;
        Row {
            subscription_id: &s.subscription_id,
            label: &s.label,
            network_label: &s.network_label,
            status: &s.status,
            active_until_ms: s.active_until.0,
            active_until: s.active_until.to_rfc3339(),
            expires_in_ms: s.active_until.since(now),
            rule_source: i.rule_source.as_str(),
            rule: RuleJson {
                enabled: i.rule.enabled,
                renew_before: format_duration_ms(i.rule.renew_before_ms),
                plan: i.rule.plan.to_string(),
                repeat_count: i.rule.repeat_count,
                max_price_cents: i.rule.max_price_cents.map(|c| c.0),
            },
            decision: i.decision.reason(),
            detail: detail(i),
            needs_attention: i.needs_attention(),
            renewal: match &i.decision {
                Decision::Renew(r) => Some(RenewalJson {
                    plan_id: &r.plan_id,
                    repeat_count: r.repeat_count,
                    price_cents: r.price.0,
                    attempt: r.attempt,
                    expected_end_at_ms: r.expected_end_at.0,
                }),
                _ => None,
            },
            outcome: i.outcome.as_ref().map(|o| OutcomeJson { result: o.name(), detail: outcome_text(o) }),
        }
    }
}
