//! `proxy-renewd purchase PLAN_ID …` (buy, through the purchases ledger) and `purchase
//! reconcile [ID] [--applied|--not-applied]` (what a person needs to settle a purchase whose
//! answer was lost). A purchase is never retried, and never repeated blindly: while one of a
//! plan is open (sending or unknown), the next is refused unless `--force`.

use std::collections::HashSet;

use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::{Value, json};

use super::rules_cmd::{parse_coupon, parse_plan};
use super::{Exit, emit};
use crate::api::{Client, Plan};
use crate::app::{App, Mode};
use crate::config::Config;
use crate::output::{OutputFormat, duration_ms, pretty};
use crate::purchase::{PurchaseEntry, PurchaseOutcome, PurchaseState, PurchaseTerms, RuleOverrides};
use crate::purchaser::{Appeared, Purchaser, appeared, joined};
use crate::rule::{PlanChoice, parse_duration_ms};
use crate::store::{PurchaseSettlement, Store};
use crate::values::{EpochMs, PlanId, SubscriptionId};

/// The most subscriptions one purchase may ask for (the provider's own limit is lower or
/// equal; this only stops a typo such as `--quantity 10000`).
pub const MAX_QUANTITY: u32 = 1000;

/// `purchase` options.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct PurchaseArgs {
    /// What else to do.
    #[command(subcommand)]
    pub action: Option<PurchaseAction>,
    /// The plan to buy: an id from `proxy-renewd api plans`.
    #[arg(required = true, value_name = "PLAN_ID")]
    pub plan_id: Option<String>,
    /// How many subscriptions to buy (quantity).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_QUANTITY)))]
    pub quantity: u32,
    /// repeatCount: multiplies each subscription's duration and price.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub repeat_count: u32,
    /// couponCode sent with the purchase (the total shown is before the coupon).
    #[arg(long, value_name = "CODE", value_parser = parse_coupon)]
    pub coupon_code: Option<String>,
    /// Print what would be bought and what it costs; send nothing, write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation (needed when not on a terminal).
    #[arg(long)]
    pub yes: bool,
    /// Refuse, before sending, when the total (price × repeat count × quantity) exceeds this.
    #[arg(long, value_name = "CENTS", value_parser = clap::value_parser!(i64).range(0..))]
    pub max_price_cents: Option<i64>,
    /// Buy even though an earlier purchase of this plan has an unknown outcome (it may have
    /// been bought already: check with `purchase reconcile` first).
    #[arg(long)]
    pub force: bool,
    /// A disabled rule for each new subscription: the daemon reports them, never renews them.
    #[arg(long)]
    pub no_auto_renew: bool,
    /// The new subscriptions' renew_before, e.g. 5d (default: [defaults]).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_ms)]
    pub renew_before: Option<i64>,
    /// The new subscriptions' renewal plan: cheapest, best-value, longest or a plan id
    /// (default: [defaults]).
    #[arg(long, value_name = "PLAN", value_parser = parse_plan)]
    pub renew_plan: Option<PlanChoice>,
}

/// `purchase` actions.
#[derive(Debug, Subcommand)]
pub enum PurchaseAction {
    /// The purchases whose outcome is open (sending or unknown), each with the subscriptions
    /// that appeared since it was sent (compared with the ids listed just before it); with an
    /// id and --applied or --not-applied, settles it. Reads op=subscriptions; never buys.
    /// Exit 0 when nothing is open, 3 while something is.
    Reconcile(ReconcileArgs),
}

/// `purchase reconcile` options.
#[derive(Debug, clap::Args)]
pub struct ReconcileArgs {
    /// The purchase's number (as `purchase` and `purchase reconcile` print it).
    #[arg(value_name = "PURCHASE")]
    pub id: Option<i64>,
    /// The provider did create the subscriptions: record the ones that appeared and fit
    /// (or those named by --ids) as this purchase's, and their rules.
    #[arg(long, requires = "id", conflicts_with = "not_applied")]
    pub applied: bool,
    /// The provider did not create anything: the purchase no longer counts as spend and no
    /// longer blocks the next purchase of its plan.
    #[arg(long, requires = "id")]
    pub not_applied: bool,
    /// With --applied: exactly these subscription ids (comma-separated), from the list of
    /// those that appeared.
    #[arg(long, value_name = "ID,…", value_delimiter = ',', requires = "applied", conflicts_with = "not_applied")]
    pub ids: Vec<String>,
}

/// Runs `purchase` (or `purchase reconcile`).
pub(super) async fn run(cfg: Config, args: PurchaseArgs, format: OutputFormat, dry_run: bool) -> anyhow::Result<Exit> {
    if let Some(PurchaseAction::Reconcile(r)) = &args.action {
        if dry_run && (r.applied || r.not_applied) {
            eprintln_lossy(
                "error: --dry-run does not apply to settling a purchase (`purchase reconcile ID --applied|--not-applied` writes the ledger); without them, `purchase reconcile` only reads",
            );
            return Ok(Exit::Usage);
        }
        return reconcile(cfg, r, format).await;
    }
    let plan_id = PlanId::parse(args.plan_id.as_deref().unwrap_or_default())?;
    if args.dry_run || dry_run {
        let api = cfg.api()?;
        let client = Client::new(api.client).context("cannot set up the provider client")?;
        let plans = client.plans().await.context("cannot read the plans (op=plans)")?;
        let (plan, terms) = terms(&plans, &plan_id, &args)?;
        emit(&match format {
            OutputFormat::Json => pretty(
                &json!({ "dry_run": true, "would_buy": terms_json(&terms), "within_max_price": within_cap(&terms, &args) }),
            ),
            OutputFormat::Table => {
                format!("{}\n{}dry run: nothing sent\n", describe_terms(plan, &terms), cap_line(&terms, &args))
            }
        })?;
        return Ok(Exit::Ok);
    }
    let app = App::build(cfg, Mode::Manual).await?;
    let result = purchase(&app, &plan_id, &args).await;
    app.close().await;
    let (outcome, terms, unrecorded) = result?;
    let text = match format {
        OutputFormat::Json => pretty(&outcome_json(&outcome, &terms)),
        OutputFormat::Table => outcome_text(&outcome),
    };
    super::emit_after_acting(&text, &outcome_text(&outcome));
    if let Some(what) = unrecorded {
        bail!(
            "the database could not be written ({what}): the purchase stays open and blocks the next one of this plan; check it with `proxy-renewd purchase reconcile`"
        );
    }
    Ok(match outcome {
        PurchaseOutcome::Done { .. } => Exit::Ok,
        PurchaseOutcome::Unknown { .. } => Exit::Attention,
        PurchaseOutcome::Refused { .. } | PurchaseOutcome::Blocked { .. } | PurchaseOutcome::NotRecorded { .. } => {
            Exit::Error
        }
    })
}

/// The plan and the terms `args` ask for; an error listing the offered plans when the plan is
/// not among them.
fn terms<'p>(plans: &'p [Plan], plan_id: &PlanId, args: &PurchaseArgs) -> anyhow::Result<(&'p Plan, PurchaseTerms)> {
    let Some(plan) = plans.iter().find(|p| &p.id == plan_id) else {
        let offered: Vec<&str> = plans.iter().map(|p| p.id.as_str()).collect();
        bail!(
            "plan {plan_id} is not offered (op=plans lists the active plans: {}); see `proxy-renewd api plans`",
            if offered.is_empty() { "none".into() } else { offered.join(", ") }
        );
    };
    let terms = PurchaseTerms::of_plan(
        plan.id.clone(),
        plan.price_amount_cents,
        plan.duration_ms,
        args.quantity,
        args.repeat_count,
        args.coupon_code.clone(),
    )
    .with_context(|| {
        format!(
            "plan {plan_id}: {} × repeat count {} is too large (its total or duration does not fit)",
            args.quantity, args.repeat_count
        )
    })?;
    Ok((plan, terms))
}

fn within_cap(terms: &PurchaseTerms, args: &PurchaseArgs) -> bool {
    args.max_price_cents.is_none_or(|cap| terms.price.0 <= cap)
}

fn cap_line(terms: &PurchaseTerms, args: &PurchaseArgs) -> String {
    match args.max_price_cents {
        Some(cap) if !within_cap(terms, args) => {
            format!("over --max-price-cents {cap}: a real purchase would be refused before sending\n")
        }
        _ => String::new(),
    }
}

fn describe_terms(plan: &Plan, t: &PurchaseTerms) -> String {
    let place = plan.network.as_ref().map(|n| {
        [n.name.as_deref(), n.city.as_deref()]
            .into_iter()
            .flatten()
            .map(crate::values::text::clean_text)
            .collect::<Vec<_>>()
            .join(" ")
    });
    format!(
        "buy {} × plan {}{} ({}), repeat count {}: {} subscription(s) of {} each; total {} ({} × {} × {}, before any coupon{})",
        t.quantity,
        t.plan_id,
        place.filter(|p| !p.is_empty()).map(|p| format!(" in {p}")).unwrap_or_default(),
        plan.connection_type.as_deref().map(crate::values::text::clean_text).unwrap_or_else(|| "proxy".into()),
        t.repeat_count,
        t.quantity,
        duration_ms(t.duration_ms),
        t.price,
        plan.price_amount_cents,
        t.repeat_count,
        t.quantity,
        if t.coupon_code.is_some() { "; a coupon is sent" } else { "" },
    )
}

type Bought = (PurchaseOutcome, PurchaseTerms, Option<String>);

async fn purchase(app: &App, plan_id: &PlanId, args: &PurchaseArgs) -> anyhow::Result<Bought> {
    let (client, cfg) = (app.client(), app.config());
    let store = app.store().context("purchase needs the database")?;
    let plans = client.plans().await.context("cannot read the plans (op=plans)")?;
    let (plan, terms) = terms(&plans, plan_id, args)?;
    if !within_cap(&terms, args) {
        bail!(
            "{}: over --max-price-cents {}; nothing sent",
            describe_terms(plan, &terms),
            args.max_price_cents.unwrap_or_default()
        );
    }
    if !args.force
        && let Some(open) = store.purchases(true, u32::MAX).await?.into_iter().find(|p| &p.terms.plan_id == plan_id)
    {
        bail!(blocked_text(&open));
    }
    // The evidence a lost answer will need: every id listed just before the POST.
    let list = client
        .subscriptions()
        .await
        .context("cannot read subscriptions (needed to tell a purchase's new ones later)")?;
    let known: Vec<SubscriptionId> = list.subscriptions.iter().map(|s| s.subscription_id.clone()).collect();
    let rule = RuleOverrides {
        enabled: args.no_auto_renew.then_some(false),
        renew_before_ms: args.renew_before,
        plan: args.renew_plan.clone(),
    };
    let question = format!("{}. Spend {}?", describe_terms(plan, &terms), terms.price);
    if !args.yes && !super::confirm(&question, "purchase")? {
        bail!("not confirmed; nothing bought");
    }
    let purchaser = Purchaser { client, store, defaults: &cfg.defaults, clock: app.clock() };
    let (outcome, unrecorded) = purchaser.purchase(&terms, &rule, &known, args.force).await;
    if let PurchaseOutcome::Blocked { open } = &outcome {
        bail!(blocked_text(open));
    }
    if let PurchaseOutcome::NotRecorded { message } = &outcome {
        bail!("the purchase could not be recorded, so nothing was sent (no row, no request): {message}");
    }
    Ok((outcome, terms, unrecorded))
}

fn blocked_text(open: &PurchaseEntry) -> String {
    format!(
        "purchase {} of plan {} ({} × repeat count {}, {}, recorded {}) is {}: the provider may have made it. Nothing sent. Check with `proxy-renewd purchase reconcile`, or pass --force to buy anyway",
        open.id,
        open.terms.plan_id,
        open.terms.quantity,
        open.terms.repeat_count,
        open.terms.price,
        open.created_at,
        open.state
    )
}

fn outcome_text(o: &PurchaseOutcome) -> String {
    match o {
        PurchaseOutcome::Done { purchase_id, subscription_ids } => {
            format!(
                "purchase {purchase_id} done: {} new subscription(s): {}\n",
                subscription_ids.len(),
                joined(subscription_ids)
            )
        }
        PurchaseOutcome::Refused { purchase_id, message, .. } => {
            format!("purchase {purchase_id} refused, nothing bought: {message}\n")
        }
        PurchaseOutcome::Unknown { purchase_id, message } => format!(
            "purchase {purchase_id}: outcome unknown, the provider may have made it ({message}).\nDo not buy again now: run `proxy-renewd purchase reconcile` to see the subscriptions that appeared, then settle it with `proxy-renewd purchase reconcile {purchase_id} --applied` or `--not-applied`.\n"
        ),
        PurchaseOutcome::Blocked { open } => format!("{}\n", blocked_text(open)),
        PurchaseOutcome::NotRecorded { message } => {
            format!("not sent, the purchase could not be recorded: {message}\n")
        }
    }
}

fn terms_json(t: &PurchaseTerms) -> Value {
    json!({
        "plan_id": t.plan_id,
        "quantity": t.quantity,
        "repeat_count": t.repeat_count,
        "coupon": t.coupon_code.is_some(),
        "total_cents": t.price.0,
        "duration_ms": t.duration_ms,
    })
}

fn outcome_json(o: &PurchaseOutcome, terms: &PurchaseTerms) -> Value {
    let mut v = json!({ "result": o.name(), "terms": terms_json(terms) });
    match o {
        PurchaseOutcome::Done { purchase_id, subscription_ids } => {
            v["purchase_id"] = json!(purchase_id);
            v["subscription_ids"] = json!(subscription_ids);
        }
        PurchaseOutcome::Refused { purchase_id, status, message } => {
            v["purchase_id"] = json!(purchase_id);
            v["status"] = json!(status);
            v["message"] = json!(message);
        }
        PurchaseOutcome::Unknown { purchase_id, message } => {
            v["purchase_id"] = json!(purchase_id);
            v["message"] = json!(message);
            v["check"] = json!("proxy-renewd purchase reconcile");
        }
        PurchaseOutcome::Blocked { open } => v["open_purchase_id"] = json!(open.id),
        PurchaseOutcome::NotRecorded { message } => v["message"] = json!(message),
    }
    v
}

/// `purchase reconcile [ID] [--applied [--ids …] | --not-applied]`.
async fn reconcile(cfg: Config, args: &ReconcileArgs, format: OutputFormat) -> anyhow::Result<Exit> {
    let mut ids = args.ids.iter().map(|s| SubscriptionId::parse(s)).collect::<Result<Vec<_>, _>>()?;
    let mut once = HashSet::new();
    ids.retain(|id| once.insert(id.clone()));
    let app = App::build(cfg, Mode::Manual).await?;
    let result = reconcile_in(&app, args, &ids, format).await;
    app.close().await;
    result
}

async fn reconcile_in(
    app: &App,
    args: &ReconcileArgs,
    ids: &[SubscriptionId],
    format: OutputFormat,
) -> anyhow::Result<Exit> {
    let store = app.store().context("purchase reconcile needs the database")?;
    let targets: Vec<PurchaseEntry> = match args.id {
        Some(id) => vec![
            store
                .purchase(id)
                .await?
                .with_context(|| format!("no purchase {id}; `proxy-renewd purchase reconcile` lists the open ones"))?,
        ],
        None => store.purchases(true, u32::MAX).await?,
    };
    if targets.is_empty() {
        emit(&match format {
            OutputFormat::Json => pretty(&json!({ "open": [] })),
            OutputFormat::Table => "no purchase awaits a decision\n".into(),
        })?;
        return Ok(Exit::Ok);
    }
    let list = app.client().subscriptions().await.context("cannot read subscriptions")?;
    let now = app.clock().now();
    let purchased = store.purchased_ids().await?;
    let claimed: HashSet<&SubscriptionId> = purchased.iter().collect();
    let found: Vec<(&PurchaseEntry, Vec<Appeared>)> =
        targets.iter().map(|p| (p, appeared(p, &list.subscriptions, &claimed, now))).collect();
    if args.applied || args.not_applied {
        let (entry, seen) = &found[0];
        return settle(app, store, entry, seen, args.applied, ids, format).await;
    }
    emit(&match format {
        OutputFormat::Json => {
            pretty(&json!({ "open": found.iter().map(|(p, a)| entry_json(p, a)).collect::<Vec<_>>() }))
        }
        OutputFormat::Table => found.iter().map(|(p, a)| entry_text(p, a, now)).collect::<String>(),
    })?;
    Ok(if found.iter().any(|(p, _)| p.state.is_open()) { Exit::Attention } else { Exit::Ok })
}

async fn settle(
    app: &App,
    store: &Store,
    entry: &PurchaseEntry,
    seen: &[Appeared],
    applied: bool,
    ids: &[SubscriptionId],
    format: OutputFormat,
) -> anyhow::Result<Exit> {
    if !entry.state.is_open() {
        bail!("purchase {} is {}, not open: nothing to settle", entry.id, entry.state);
    }
    if entry.may_be_in_flight(app.clock().now()) {
        bail!(
            "purchase {} is being sent right now (recorded {}): wait for its answer; a row still `sending` after 5 minutes belongs to a process that died, and can be settled then",
            entry.id,
            entry.updated_at
        );
    }
    let chosen: Vec<SubscriptionId> = if !applied {
        Vec::new()
    } else if ids.is_empty() {
        let fitting: Vec<SubscriptionId> = seen.iter().filter(|a| a.fits).map(|a| a.subscription_id.clone()).collect();
        if fitting.len() != entry.terms.quantity as usize {
            bail!(
                "purchase {} asked for {} subscription(s) and {} that fit it appeared ({}): name them with --ids ID,…",
                entry.id,
                entry.terms.quantity,
                fitting.len(),
                if seen.is_empty() {
                    "none appeared".into()
                } else {
                    seen.iter().map(|a| a.subscription_id.as_str()).collect::<Vec<_>>().join(", ")
                }
            );
        }
        fitting
    } else {
        if let Some(stray) = ids.iter().find(|id| !seen.iter().any(|a| &a.subscription_id == *id)) {
            bail!(
                "{stray} did not appear after purchase {} (it was listed before, or another purchase has it)",
                entry.id
            );
        }
        ids.to_vec()
    };
    let settlement = PurchaseSettlement {
        state: if applied { PurchaseState::Done } else { PurchaseState::NotApplied },
        subscription_ids: chosen.clone(),
        http_status: None,
        error: None,
    };
    store.settle_purchase(entry.id, &settlement, &app.config().defaults, app.clock().now()).await?;
    tracing::info!(purchase_id = entry.id, state = %settlement.state, subscription_ids = %joined(&chosen), "purchase settled by a person");
    emit(&match format {
        OutputFormat::Json => {
            pretty(&json!({ "purchase_id": entry.id, "state": settlement.state.as_str(), "subscription_ids": chosen }))
        }
        OutputFormat::Table if applied => format!("purchase {} settled as done: {}\n", entry.id, joined(&chosen)),
        OutputFormat::Table => format!("purchase {} settled as not applied: it no longer counts as spend\n", entry.id),
    })?;
    Ok(Exit::Ok)
}

fn entry_text(p: &PurchaseEntry, seen: &[Appeared], now: EpochMs) -> String {
    let t = &p.terms;
    let mut out = format!(
        "purchase {}: plan {} × repeat count {}, quantity {}, {}, recorded {}: {}\n",
        p.id, t.plan_id, t.repeat_count, t.quantity, t.price, p.created_at, p.state
    );
    if let Some(e) = &p.error {
        out.push_str(&format!("  {e}\n"));
    }
    if !p.state.is_open() {
        let ids = if p.subscription_ids.is_empty() { "none".into() } else { joined(&p.subscription_ids) };
        out.push_str(&format!("  subscriptions: {ids}\n"));
        return out;
    }
    if p.may_be_in_flight(now) {
        out.push_str("  being sent right now: wait for its answer (it can be settled once 5 minutes old)\n");
        return out;
    }
    let fitting = seen.iter().filter(|a| a.fits).count();
    out.push_str(&format!(
        "  appeared since (not listed before it): {}, of which {fitting} fit this purchase\n",
        seen.len()
    ));
    for a in seen {
        out.push_str(&format!(
            "  {}  activeUntil {}  {}{}\n",
            a.subscription_id,
            a.active_until,
            a.label.as_deref().unwrap_or(""),
            if a.fits { "  (fits)" } else { "" }
        ));
    }
    out.push_str(&if fitting == t.quantity as usize {
        format!("  if these are it: `proxy-renewd purchase reconcile {} --applied`\n", p.id)
    } else if seen.is_empty() {
        format!(
            "  nothing appeared: if the provider's dashboard agrees, `proxy-renewd purchase reconcile {} --not-applied`\n",
            p.id
        )
    } else {
        format!("  decide: `proxy-renewd purchase reconcile {} --applied --ids ID,…` or `--not-applied`\n", p.id)
    });
    out
}

fn entry_json(p: &PurchaseEntry, seen: &[Appeared]) -> Value {
    json!({
        "purchase_id": p.id,
        "state": p.state.as_str(),
        "terms": terms_json(&p.terms),
        "created_at_ms": p.created_at.0,
        "error": p.error,
        "subscription_ids": p.subscription_ids,
        "appeared": seen.iter().map(|a| json!({
            "subscription_id": a.subscription_id,
            "active_until_ms": a.active_until.0,
            "label": a.label,
            "fits": a.fits,
        })).collect::<Vec<_>>(),
    })
}

fn eprintln_lossy(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{text}");
}
