//! `proxy-renewd renew ID [--plan ID] [--repeat-count N] [--yes]`: one renewal now, by a
//! person, through the same ledger as the daemon (so it cannot double a renewal the daemon is
//! making). It ignores due dates, caps and the budget, which are the daemon's limits, not a
//! person's; it lifts a hold.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context, bail};

use super::{Exit, emit};
use crate::api::{Client, EpochMs, PlanId, SubscriptionId};
use crate::config::Config;
use crate::ledger::Origin;
use crate::output::{OutputFormat, pretty, relative};
use crate::policy::{self, Renewal};
use crate::renewer::{RenewOutcome, Renewer};
use crate::rule::PlanChoice;
use crate::store::Store;

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

pub(super) async fn run(cfg: &Config, args: RenewArgs, format: OutputFormat) -> anyhow::Result<Exit> {
    let id = SubscriptionId::parse(&args.id)?;
    let plan_id = args.plan.as_deref().map(PlanId::parse).transpose()?;
    let api = cfg.api()?;
    let client = Client::new(api.client).context("cannot set up the provider client")?;
    let store = Store::open(&cfg.database_url).await?;
    let result = renew(cfg, &client, &store, &id, plan_id, &args).await;
    store.close().await;
    let outcome = result?;
    let text = match (&outcome, format) {
        (Some(o), OutputFormat::Json) => {
            pretty(&serde_json::json!({ "subscription_id": id, "result": o.name(), "detail": format!("{o:?}") }))
        }
        (Some(o), OutputFormat::Table) => format!("{id}: {}\n", describe(o)),
        (None, _) => "not renewed\n".into(),
    };
    emit(&text)?;
    Ok(match outcome {
        Some(o) if o.is_clean_success() => Exit::Ok,
        Some(_) => Exit::Attention,
        None => Exit::Ok,
    })
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
        RenewOutcome::NotSent { message, .. } => format!("not sent: {message}"),
        RenewOutcome::Conflict => "another process is renewing this period; nothing sent".into(),
        RenewOutcome::NotRecorded { message } => format!("not sent, the ledger could not be written: {message}"),
        RenewOutcome::NotAttempted { reason } => format!("not attempted: {reason}"),
    }
}

async fn renew(
    cfg: &Config,
    client: &Client,
    store: &Store,
    id: &SubscriptionId,
    plan_id: Option<PlanId>,
    args: &RenewArgs,
) -> anyhow::Result<Option<RenewOutcome>> {
    let list = client.subscriptions().await.context("cannot read subscriptions")?;
    let Some(sub) = list.subscriptions.iter().find(|s| &s.subscription_id == id) else {
        bail!("subscription {id} is not listed by the provider (op=subscriptions): check the id");
    };
    if !(policy::MIN_PLAUSIBLE_MS..policy::MAX_PLAUSIBLE_MS).contains(&sub.active_until.0) {
        bail!(
            "{id}'s activeUntil {} is not a plausible expiry in ms: the new expiry cannot be predicted; check the subscription at the provider",
            sub.active_until.0
        );
    }
    let rule = store.rule(id).await?.map_or_else(|| cfg.defaults.clone(), |r| r.rule);
    let repeat = args.repeat_count.unwrap_or(rule.repeat_count);
    let plans = client.renewal_plans(id).await.context("cannot read renewal plans")?;
    let choice = plan_id.map_or(rule.plan.clone(), PlanChoice::Plan);
    let Some((plan, price, added_ms)) = policy::choose_plan(&choice, &plans, repeat) else {
        let offered: Vec<String> = plans.iter().map(|p| p.id.to_string()).collect();
        bail!(
            "no renewal plan matches {choice} for {id}; offered: {}",
            if offered.is_empty() { "none".into() } else { offered.join(", ") }
        );
    };
    let period = sub.active_until;
    let attempt = match policy::next_attempt(&store.ledger_for(id).await?, period) {
        Ok(n) => n,
        Err(policy::Blocked::InFlight { attempt, state, .. }) => bail!(
            "attempt {attempt} for {id} is {state} (the provider may have applied it): wait for the daemon to reconcile it, see `proxy-renewd history --subscription {id}`"
        ),
        Err(policy::Blocked::AlreadyRenewed { attempt, .. }) => bail!(
            "{id} was already renewed for this period (attempt {attempt}); the provider's activeUntil has not caught up yet"
        ),
        Err(other) => bail!("{id} cannot be renewed now: {other:?}"),
    };
    let now = EpochMs::now();
    let renewal = Renewal {
        active_until_before: period,
        attempt,
        plan_id: plan.id.clone(),
        repeat_count: repeat,
        price,
        coupon_code: rule.coupon_code.clone(),
        expected_end_at: EpochMs(period.0.max(now.0).saturating_add(added_ms)),
    };
    let question = format!(
        "Renew {id} ({}), expiring {period} ({}), with plan {} × {repeat} for {price}, to about {}?",
        sub.label.as_deref().map(crate::api::excerpt::clean_text).unwrap_or_default(),
        relative(period, now),
        plan.id,
        renewal.expected_end_at
    );
    if !args.yes && !confirm(&question)? {
        return Ok(None);
    }
    if store.clear_hold(id).await? {
        tracing::info!(subscription_id = %id, "hold lifted by a manual renewal");
    }
    let renewer = Renewer { client, store, origin: Origin::Manual, repeat_interval_ms: cfg.alerts.repeat_interval_ms };
    // The person sees the outcome right here: no alert is queued for it.
    Ok(Some(renewer.renew(id, &renewal, rule.renew_before_ms, |_| Vec::new()).await))
}

/// Asks on the terminal; without one, refuses and says to pass `--yes`.
fn confirm(question: &str) -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        bail!("{question} Not confirmed: no terminal to ask on; pass --yes to renew");
    }
    let mut err = std::io::stderr();
    write!(err, "{question} [y/N] ")?;
    err.flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}
