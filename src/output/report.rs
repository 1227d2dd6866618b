//! The cycle report for people (table) and scripts (JSON): per subscription its id, label,
//! network, status, expiry (UTC and relative), rule source, decision and reason, plan and
//! price if due, and what the renewal came to; then the totals. `--dry-run` prints it as the
//! audit; `once` prints it after acting.

use comfy_table::{Table, presets};
use serde_json::{Value, json};

use super::{OutputFormat, pretty};
use crate::attempt::RenewOutcome;
use crate::policy::{Blocked, Decision, Skip};
use crate::report::{CycleReport, Item, RuleSource};
use crate::rule::format_duration_ms;
use crate::values::text::clean_text;
use crate::values::{EpochMs, relative};

/// The report in `format`.
#[must_use]
pub fn render(report: &CycleReport, format: OutputFormat) -> String {
    match format {
        OutputFormat::Json => pretty(&json_doc(report)),
        OutputFormat::Table => table(report),
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
        Decision::Blocked(b) => match b {
            Blocked::Malformed { active_until } => {
                format!("activeUntil {} is not a plausible ms expiry", active_until.0)
            }
            Blocked::ExpiringUnmanaged { expires_in_ms } => {
                format!("rule disabled, expires {}", rel_ms(*expires_in_ms))
            }
            Blocked::OnHold => {
                let id = &i.subscription.subscription_id;
                format!(
                    "on hold: renewed but still due; `proxy-renewd renew {id}` or `proxy-renewd rules set {id} --enable`"
                )
            }
            Blocked::Regressed { paid_until } => {
                format!(
                    "activeUntil went back before {paid_until}, which a recorded renewal paid for; not renewing again"
                )
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
        },
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

fn table(report: &CycleReport) -> String {
    let now = report.read_at;
    let mut t = Table::new();
    t.load_style(presets::NOTHING);
    let mut header =
        vec!["SUBSCRIPTION", "LABEL", "NETWORK", "STATUS", "EXPIRES (UTC)", "EXPIRES", "RULE", "DECISION", "DETAIL"];
    if !report.dry_run {
        header.push("OUTCOME");
    }
    t.set_header(header);
    for i in &report.items {
        let s = &i.subscription;
        let mut row = vec![
            s.subscription_id.to_string(),
            s.label.clone().unwrap_or_default(),
            s.network_label.clone().unwrap_or_default(),
            s.status.clone(),
            s.active_until.to_string(),
            relative(s.active_until, now),
            match i.rule_source {
                RuleSource::Row => "row".into(),
                RuleSource::Defaults => "defaults".into(),
            },
            format!("{}{}", i.decision.reason(), if i.needs_attention() { " !" } else { "" }),
            detail(i),
        ];
        if !report.dry_run {
            row.push(i.outcome.as_ref().map(outcome_text).unwrap_or_default());
        }
        t.add_row(row);
    }
    let mut out = format!("{t}\n");
    if report.items.iter().any(Item::needs_attention) {
        out.push_str("(!: needs a person; the DETAIL and OUTCOME columns say what happened)\n");
    }
    for m in &report.malformed {
        let id = m.subscription_id.as_ref().map_or_else(|| format!("entry {}", m.index), ToString::to_string);
        out.push_str(&format!("malformed: {id}: {}\n", m.reason));
    }
    for u in &report.unrecorded {
        out.push_str(&format!("not recorded: {u}\n"));
    }
    for v in &report.vanished {
        out.push_str(&format!(
            "vanished: {} is no longer listed (last known expiry {})\n",
            v.subscription_id, v.active_until
        ));
    }
    if report.not_objects > 0 {
        out.push_str(&format!("malformed: {} entries of subscriptions[] are not objects\n", report.not_objects));
    }
    for e in &report.unaccounted {
        out.push_str(&format!(
            "unaccounted: attempt {} for {} is {} but the subscription was not listed\n",
            e.renewal.attempt, e.subscription_id, e.state
        ));
    }
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

fn json_doc(report: &CycleReport) -> Value {
    let t = report.totals();
    let items: Vec<Value> = report.items.iter().map(|i| item_json(i, report.read_at)).collect();
    json!({
        "dry_run": report.dry_run,
        "read_at_ms": report.read_at.0,
        "read_at": report.read_at.to_string(),
        "subscriptions": items,
        "malformed": report.malformed.iter().map(|m| json!({ "index": m.index, "subscription_id": m.subscription_id, "reason": m.reason })).collect::<Vec<_>>(),
        "not_objects": report.not_objects,
        "unrecorded": report.unrecorded,
        "vanished": report.vanished.iter().map(|v| json!({ "subscription_id": v.subscription_id, "active_until": v.active_until, "active_until_utc": v.active_until.to_rfc3339() })).collect::<Vec<_>>(),
        "reconciled": report.reconciled.iter().map(|r| json!({ "ledger_id": r.ledger_id, "subscription_id": r.subscription_id, "state": r.settlement.state.as_str() })).collect::<Vec<_>>(),
        "unaccounted": report.unaccounted.iter().map(|e| json!({ "ledger_id": e.id, "subscription_id": e.subscription_id, "state": e.state.as_str() })).collect::<Vec<_>>(),
        "interrupted": report.interrupted,
        "totals": {
            "subscriptions": t.subscriptions,
            "due": t.due,
            "renewable": t.renewable,
            "needs_attention": t.attention,
            "spend_cents": t.spend_cents,
            "spent_cents": t.spent_cents,
            "renewed": t.renewed,
            "sent": t.sent,
            "not_started": t.not_started,
        },
        "forecast": report.forecast.as_ref().map(|f| super::forecast::windows_json(&f.windows)),
    })
}

fn item_json(i: &Item, now: EpochMs) -> Value {
    let s = &i.subscription;
    let mut v = json!({
        "subscription_id": s.subscription_id,
        "label": s.label,
        "network_label": s.network_label,
        "status": s.status,
        "active_until_ms": s.active_until.0,
        "active_until": s.active_until.to_rfc3339(),
        "expires_in_ms": s.active_until.since(now),
        "rule_source": match i.rule_source { RuleSource::Row => "row", RuleSource::Defaults => "defaults" },
        "rule": { "enabled": i.rule.enabled, "renew_before": format_duration_ms(i.rule.renew_before_ms), "plan": i.rule.plan.to_string(), "repeat_count": i.rule.repeat_count, "max_price_cents": i.rule.max_price_cents.map(|c| c.0) },
        "decision": i.decision.reason(),
        "detail": detail(i),
        "needs_attention": i.needs_attention(),
    });
    if let Decision::Renew(r) = &i.decision {
        v["renewal"] = json!({ "plan_id": r.plan_id, "repeat_count": r.repeat_count, "price_cents": r.price.0, "attempt": r.attempt, "expected_end_at_ms": r.expected_end_at.0 });
    }
    if let Some(o) = &i.outcome {
        v["outcome"] = json!({ "result": o.name(), "detail": outcome_text(o) });
    }
    v
}
