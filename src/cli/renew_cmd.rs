//! `proxy-renewd renew ID [--plan ID] [--repeat-count N] [--yes]`: one renewal now, by a
//! person, through the same ledger as the daemon (so it cannot double a renewal the daemon is
//! making). It ignores due dates, caps and the budget, which are the daemon's limits, not a
//! person's; it lifts a hold.

use anyhow::{Context, bail};
use serde_json::{Value, json};

use super::{Exit, emit};
use crate::api::RenewalPlan;
use crate::app::{App, Mode};
use crate::attempt::{Origin, RenewOutcome};
use crate::config::Config;
use crate::output::{OutputFormat, pretty};
use crate::policy::{self, Blocked, ManualDecision, ManualInput, ManualRefusal};
use crate::values::text::clean_text;
use crate::values::{EpochMs, PlanId, SubscriptionId, relative};

/// `renew` options.
#[derive(Debug, clap::Args)]
pub struct RenewArgs {
    /// Subscription id.
    pub id: String,
    /// Renewal plan id (default: the subscription's rule, e.g. cheapest).
    #[arg(long, value_name = "ID")]
    pub plan: Option<String>,
    /// repeatCount (default: the rule's).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub repeat_count: Option<u32>,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub yes: bool,
}

pub(super) async fn run(cfg: Config, args: RenewArgs, format: OutputFormat) -> anyhow::Result<Exit> {
    let id = SubscriptionId::parse(&args.id)?;
    let plan_id = args.plan.as_deref().map(PlanId::parse).transpose()?;
    let app = App::build(cfg, Mode::Manual).await?;
    let result = renew(&app, &id, plan_id.as_ref(), &args).await;
    app.close().await;
    let renewed = result?;
    let unrecorded = renewed.as_ref().and_then(|(_, u)| u.clone());
    let outcome = renewed.map(|(o, _)| o);
    let text = match (&outcome, format) {
        (Some(o), OutputFormat::Json) => pretty(&outcome_json(&id, o)),
        (Some(o), OutputFormat::Table) => format!("{id}: {}\n", describe(o)),
        (None, OutputFormat::Json) => pretty(&json!({ "subscription_id": id, "result": "not-confirmed" })),
        (None, OutputFormat::Table) => "not renewed\n".into(),
    };
    match &outcome {
        // Sent: a failure to print must not turn the outcome into exit 1 ("not sent"), or a
        // script would renew again; the outcome goes to stderr and keeps its exit code.
        Some(o) => super::emit_after_acting(&text, &format!("{id}: {}", describe(o))),
        None => emit(&text)?,
    }
    if let Some(what) = unrecorded {
        anyhow::bail!("the database could not be written ({what}): the daemon reconciles the attempt once it can");
    }
    Ok(match outcome {
        Some(o) if o.is_clean_success() => Exit::Ok,
        Some(_) => Exit::Attention,
        None => Exit::Ok,
    })
}

/// What a renewal came to, for scripts: `result` (`succeeded`, `held`, `refused`, `unknown`,
/// `not-sent`, `conflict`, `not-recorded`, `not-attempted`), the ledger row, the new expiry in
/// ms and UTC, the HTTP status and the provider's words where there are some, and `detail`,
/// the sentence the table prints.
fn outcome_json(id: &SubscriptionId, o: &RenewOutcome) -> Value {
    let mut v = json!({ "subscription_id": id, "result": o.name(), "detail": describe(o) });
    let end = |v: &mut Value, t: EpochMs| {
        v["end_at_ms"] = json!(t.0);
        v["end_at"] = json!(t.to_rfc3339());
    };
    match o {
        RenewOutcome::Succeeded { ledger_id, end_at, held } => {
            v["ledger_id"] = json!(ledger_id);
            end(&mut v, *end_at);
            v["held"] = json!(held);
        }
        RenewOutcome::ImplausibleEnd { ledger_id, end_at } => {
            v["ledger_id"] = json!(ledger_id);
            v["end_at_ms"] = json!(end_at.0);
        }
        RenewOutcome::Refused { ledger_id, status, message, retry_after_ms } => {
            v["ledger_id"] = json!(ledger_id);
            v["http_status"] = json!(status);
            v["message"] = json!(message);
            v["retry_after_ms"] = json!(retry_after_ms);
        }
        RenewOutcome::Unknown { ledger_id, status, message } => {
            v["ledger_id"] = json!(ledger_id);
            v["http_status"] = json!(status);
            v["message"] = json!(message);
        }
        RenewOutcome::NotSent { ledger_id, message } => {
            v["ledger_id"] = json!(ledger_id);
            v["message"] = json!(message);
        }
        RenewOutcome::NotRecorded { message } => v["message"] = json!(message),
        RenewOutcome::NotAttempted { reason, .. } => v["message"] = json!(reason),
        RenewOutcome::Conflict => {}
    }
    v
}

fn describe(o: &RenewOutcome) -> String {
    match o {
        RenewOutcome::Succeeded { end_at, held, .. } => {
            format!("renewed; activeUntil is now {end_at}{}", if *held { " (still due: on hold)" } else { "" })
        }
        RenewOutcome::Refused { message, .. } => format!("refused: {message}"),
        RenewOutcome::Unknown { message, .. } => {
            format!("outcome unknown, do not retry now ({message}); the daemon reconciles it")
        }
        RenewOutcome::ImplausibleEnd { end_at, .. } => format!(
            "outcome unknown, do not retry now (renew answered endAt {}, not a plausible expiry); the daemon reconciles it",
            end_at.0
        ),
        RenewOutcome::NotSent { message, .. } => format!("not sent: {message}"),
        RenewOutcome::Conflict => "another process is renewing this period; nothing sent".into(),
        RenewOutcome::NotRecorded { message } => format!("not sent, the ledger could not be written: {message}"),
        RenewOutcome::NotAttempted { reason, .. } => format!("not attempted: {reason}"),
    }
}

/// Reads the subscription, asks the policy ([`policy::decide_manual`]), confirms, renews.
/// What a manual renewal came to, and what of it could not be written to the database.
type Renewed = (RenewOutcome, Option<String>);

async fn renew(
    app: &App,
    id: &SubscriptionId,
    plan_id: Option<&PlanId>,
    args: &RenewArgs,
) -> anyhow::Result<Option<Renewed>> {
    let (client, cfg) = (app.client(), app.config());
    let store = app.store().context("renew needs the database")?;
    let list = client.subscriptions().await.context("cannot read subscriptions")?;
    let Some(sub) = list.subscriptions.iter().find(|s| &s.subscription_id == id) else {
        bail!("subscription {id} is not listed by the provider (op=subscriptions): check the id");
    };
    let rule = store.rule(id).await?.map_or_else(|| cfg.defaults.clone(), |r| r.rule);
    let ledger = store.ledger_for(id).await?;
    let ask = |plans: Option<&[RenewalPlan]>| {
        policy::decide_manual(&ManualInput {
            active_until: sub.active_until,
            rule: &rule,
            plan: plan_id,
            repeat_count: args.repeat_count,
            renewal_plans: plans,
            ledger: &ledger,
            now: app.clock().now(),
        })
    };
    let mut decision = ask(None);
    if decision == ManualDecision::FetchPlans {
        let plans = client.renewal_plans(id).await.context("cannot read renewal plans")?;
        decision = ask(Some(&plans));
    }
    let terms = match decision {
        ManualDecision::Renew(terms) => terms,
        ManualDecision::Refused(why) => bail!(refusal_text(id, &why)),
        ManualDecision::FetchPlans => bail!("{id}: the renewal plans were read, yet the policy asks for them again"),
    };
    let period = sub.active_until;
    let question = format!(
        "Renew {id} ({}), expiring {period} ({}), with plan {} × {} for {}, to about {}?",
        sub.label.as_deref().map(clean_text).unwrap_or_default(),
        relative(period, app.clock().now()),
        terms.plan_id,
        terms.repeat_count,
        terms.price,
        terms.expected_end_at
    );
    if !args.yes && !super::confirm(&question, "renew")? {
        return Ok(None);
    }
    if store.clear_hold(id).await? {
        tracing::info!(subscription_id = %id, "hold lifted by a manual renewal");
    }
    let renewer = app.renewer(Origin::Manual).context("renew needs the database")?;
    // The person sees the outcome right here: no alert is queued for it, but an incident it
    // ends gets its all-clear (`recovered`).
    let had_alerted = store.alerted_subscriptions().await?.contains(id.as_str());
    let seen = crate::cycle::seen(sub);
    let raise = |o: &RenewOutcome| match o {
        RenewOutcome::Succeeded { end_at, held: false, .. } if had_alerted => {
            vec![crate::alerts::raise::recovered(
                &seen,
                *end_at,
                "renewed by hand (`proxy-renewd renew`) after earlier alerts",
            )]
        }
        _ => Vec::new(),
    };
    let (outcome, unrecorded) = renewer.renew_recorded(id, &terms, rule.renew_before_ms, raise).await;
    Ok(Some((outcome, unrecorded.map(|u| u.what))))
}

/// What to tell the person whose `renew` the policy refused.
fn refusal_text(id: &SubscriptionId, why: &ManualRefusal) -> String {
    match why {
        ManualRefusal::Malformed { active_until } => format!(
            "{id}'s activeUntil {} is not a plausible expiry in ms: the new expiry cannot be predicted; check the subscription at the provider",
            active_until.0
        ),
        ManualRefusal::NoPlan { choice, offered } => {
            let offered: Vec<String> = offered.iter().map(ToString::to_string).collect();
            format!(
                "no renewal plan matches {choice} for {id}; offered: {}",
                if offered.is_empty() { "none".into() } else { offered.join(", ") }
            )
        }
        ManualRefusal::Ledger(Blocked::InFlight { attempt, state, .. }) => format!(
            "attempt {attempt} for {id} is {state} (the provider may have applied it): wait for the daemon to reconcile it, see `proxy-renewd history --subscription {id}`"
        ),
        ManualRefusal::Ledger(Blocked::AlreadyRenewed { attempt, .. }) => format!(
            "{id} was already renewed for this period (attempt {attempt}); the provider's activeUntil has not caught up yet"
        ),
        ManualRefusal::Ledger(other) => {
            format!("{id} cannot be renewed now: {}", crate::output::report::blocked(other, id))
        }
    }
}
