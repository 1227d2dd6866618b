//! `proxy-renewd rules list | set ID … | remove ID`: the per-subscription renewal rules.
//!
//! A row is a complete rule: `set` on a new id starts from `[defaults]` and applies the
//! flags; on an existing row it changes only what the flags name.

use anyhow::Context;
use clap::Subcommand;
use serde_json::{Value, json};

use super::{Exit, emit};
use crate::api::Client;
use crate::config::Config;
use crate::output::{Columns, Fit, OutputFormat};
use crate::rule::{PlanChoice, Rule, check_coupon, format_duration_ms, parse_duration_ms};
use crate::store::{RuleRow, Store};
use crate::values::text::printable;
use crate::values::{Cents, EpochMs, PlanId, SubscriptionId};

/// `rules` actions.
#[derive(Debug, Subcommand)]
pub enum RulesAction {
    /// Show [defaults] and every stored rule.
    List,
    /// Create or change the rule for one subscription (a new rule starts from [defaults]).
    Set(SetArgs),
    /// Delete the rule for one subscription; it falls back to [defaults].
    Remove {
        /// Subscription id.
        id: String,
    },
}

/// `rules set` flags; each changes one field.
#[derive(Debug, clap::Args)]
pub struct SetArgs {
    /// Subscription id (lowercase letters and digits); it need not be seen yet.
    pub id: String,
    /// Renew this subscription automatically.
    #[arg(long, conflicts_with = "disable")]
    pub enable: bool,
    /// Only report this subscription; never renew it automatically.
    #[arg(long)]
    pub disable: bool,
    /// Renew when expiry is this close, e.g. 5d, 36h.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_ms)]
    pub renew_before: Option<i64>,
    /// cheapest, best-value, longest, or a plan id.
    #[arg(long, value_name = "PLAN", value_parser = parse_plan)]
    pub plan: Option<PlanChoice>,
    /// repeatCount sent with renew (at least 1): multiplies duration and price.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub repeat_count: Option<u32>,
    /// The most one renewal may cost, in cents (price × repeat count).
    #[arg(long, value_name = "CENTS", conflicts_with = "no_price_cap", value_parser = clap::value_parser!(i64).range(0..))]
    pub max_price_cents: Option<i64>,
    /// No price cap for this subscription.
    #[arg(long)]
    pub no_price_cap: bool,
    /// couponCode sent with renew.
    #[arg(long, value_name = "CODE", conflicts_with = "no_coupon", value_parser = parse_coupon)]
    pub coupon_code: Option<String>,
    /// Send no coupon.
    #[arg(long)]
    pub no_coupon: bool,
    /// Free text for people ("" clears it).
    #[arg(long, value_name = "TEXT")]
    pub note: Option<String>,
}

/// Notes are cut to this many characters.
const MAX_NOTE_CHARS: usize = 500;

/// `--plan` / `--renew-plan`: a plan choice, with the keywords in the error.
pub(super) fn parse_plan(s: &str) -> Result<PlanChoice, String> {
    s.parse().map_err(|e| format!("{e}; or one of cheapest, best-value, longest"))
}

/// `--coupon-code`: a coupon [`check_coupon`] accepts.
pub(super) fn parse_coupon(s: &str) -> Result<String, String> {
    check_coupon(s).map(|()| s.to_owned())
}

impl SetArgs {
    /// `--enable` and no other change.
    fn only_enable(&self) -> bool {
        self.enable
            && self.renew_before.is_none()
            && self.plan.is_none()
            && self.repeat_count.is_none()
            && self.max_price_cents.is_none()
            && !self.no_price_cap
            && self.coupon_code.is_none()
            && !self.no_coupon
            && self.note.is_none()
    }

    fn apply(&self, rule: &mut Rule) {
        if self.enable || self.disable {
            rule.enabled = self.enable;
        }
        if let Some(ms) = self.renew_before {
            rule.renew_before_ms = ms;
        }
        if let Some(plan) = &self.plan {
            rule.plan = plan.clone();
        }
        if let Some(n) = self.repeat_count {
            rule.repeat_count = n;
        }
        if let Some(c) = self.max_price_cents {
            rule.max_price_cents = Some(Cents(c));
        }
        if self.no_price_cap {
            rule.max_price_cents = None;
        }
        if let Some(code) = &self.coupon_code {
            rule.coupon_code = Some(code.clone());
        }
        if self.no_coupon {
            rule.coupon_code = None;
        }
        if let Some(note) = &self.note {
            let note: String = printable(note).chars().take(MAX_NOTE_CHARS).collect();
            rule.note = Some(note).filter(|n| !n.is_empty());
        }
    }
}

/// Runs one `rules` action.
pub(super) async fn run(cfg: &Config, action: RulesAction, format: OutputFormat) -> anyhow::Result<Exit> {
    let id = match &action {
        RulesAction::Set(args) => Some(SubscriptionId::parse(&args.id)?),
        RulesAction::Remove { id } => Some(SubscriptionId::parse(id)?),
        RulesAction::List => None,
    };
    // A list never creates the database: none yet means no rules yet (a missing directory
    // is still the error that opening it gives).
    let not_yet =
        |f: &std::path::Path| !f.exists() && f.parent().is_none_or(|d| d.as_os_str().is_empty() || d.is_dir());
    if matches!(action, RulesAction::List)
        && match crate::store::database_file(&cfg.database_url)? {
            Some(f) => not_yet(&f),
            None => !crate::store::exists(&cfg.database_url).await?,
        }
    {
        return list_rows(Vec::new(), cfg, format);
    }
    let store = Store::open(&cfg.database_url).await?;
    let result = match (action, id) {
        (RulesAction::List, _) => list(&store, cfg, format).await,
        (RulesAction::Set(args), Some(id)) => set(&store, cfg, &id, &args, format).await,
        (RulesAction::Remove { .. }, Some(id)) => remove(&store, &id, format).await,
        _ => unreachable!("ids are parsed above for the actions that take one"),
    };
    store.close().await;
    result
}

async fn list(store: &Store, cfg: &Config, format: OutputFormat) -> anyhow::Result<Exit> {
    list_rows(store.rules().await?, cfg, format)
}

fn list_rows(rows: Vec<crate::store::RuleRow>, cfg: &Config, format: OutputFormat) -> anyhow::Result<Exit> {
    let text = match format {
        OutputFormat::Json => {
            let doc = json!({
                "defaults": rule_json(&cfg.defaults),
                "rules": rows.iter().map(row_json).collect::<Vec<_>>(),
            });
            crate::output::pretty(&doc)
        }
        OutputFormat::Table => {
            // Narrow: the note wraps first, then the update time and the coupon are left out.
            let mut t = Columns::new(&[
                ("SUBSCRIPTION", Fit::Whole),
                ("ENABLED", Fit::Whole),
                ("RENEW BEFORE", Fit::Wrap { rank: 3, min: 6 }),
                ("PLAN", Fit::Whole),
                ("REPEAT", Fit::Whole),
                ("MAX PRICE", Fit::Wrap { rank: 3, min: 5 }),
                ("COUPON", Fit::Optional { rank: 2 }),
                ("NOTE", Fit::Wrap { rank: 0, min: 10 }),
                ("UPDATED (UTC)", Fit::Optional { rank: 1 }),
            ]);
            t.row(rule_cells("(defaults)", &cfg.defaults, String::new()));
            for r in &rows {
                t.row(rule_cells(r.subscription_id.as_str(), &r.rule, r.updated_at.to_string()));
            }
            t.render()
        }
    };
    emit(&text)?;
    Ok(Exit::Ok)
}

async fn set(
    store: &Store,
    cfg: &Config,
    id: &SubscriptionId,
    args: &SetArgs,
    format: OutputFormat,
) -> anyhow::Result<Exit> {
    // `--enable` alone on a subscription that follows [defaults] (enabled there) only lifts a
    // hold: storing a row would stop [defaults] changes from reaching it.
    if args.only_enable() && cfg.defaults.enabled && store.rule(id).await?.is_none() {
        let lifted = store.clear_hold(id).await?;
        emit(&match format {
            OutputFormat::Json => crate::output::pretty(&json!({
                "action": if lifted { "hold-lifted" } else { "none" },
                "subscription_id": id,
                "follows": "defaults",
            })),
            OutputFormat::Table if lifted => {
                format!("hold lifted for {id}; it follows [defaults], which renew it automatically\n")
            }
            OutputFormat::Table => {
                format!("{id} follows [defaults], which renew it automatically; nothing to change\n")
            }
        })?;
        return Ok(Exit::Ok);
    }
    if let Some(PlanChoice::Plan(plan)) = &args.plan {
        check_plan(cfg, plan).await?;
    }
    let (row, existed) = store
        .update_rule(id, &cfg.defaults, EpochMs::now(), |rule| args.apply(rule))
        .await
        .with_context(|| format!("cannot store the rule for {id}"))?;
    if args.enable && store.clear_hold(id).await? {
        tracing::info!(subscription_id = %id, "hold lifted: the daemon may renew it again");
    }
    if !store.has_seen(id).await? {
        tracing::warn!(subscription_id = %id, "no poll has listed this subscription yet; the rule is stored and applies once it appears");
    }
    let verb = if existed { "updated" } else { "created" };
    let text = match format {
        OutputFormat::Json => crate::output::pretty(&json!({ "action": verb, "rule": row_json(&row) })),
        OutputFormat::Table => format!("rule {verb} for {id}: {}\n", summary(&row.rule)),
    };
    emit(&text)?;
    Ok(Exit::Ok)
}

/// An explicit `--plan` must be one the provider offers (`op=plans`): refused (nothing
/// stored) with the offered ids when it is not; stored with a warning when the provider cannot
/// be asked (no usable `[api]`, unreachable, an error).
async fn check_plan(cfg: &Config, plan: &PlanId) -> anyhow::Result<()> {
    let unchecked = |why: &str| {
        tracing::warn!(plan_id = %plan, "the plan could not be checked against op=plans ({why}); the rule is stored as given");
    };
    let client = match cfg.api().map_err(anyhow::Error::from).and_then(|api| Ok(Client::new(api.client)?)) {
        Ok(client) => client,
        Err(e) => {
            unchecked(&format!("no usable [api]: {e:#}"));
            return Ok(());
        }
    };
    match client.plans().await {
        Ok(plans) if plans.iter().any(|p| &p.id == plan) => Ok(()),
        Ok(plans) => {
            let offered: Vec<String> = plans.iter().map(|p| p.id.to_string()).collect();
            anyhow::bail!(
                "plan {plan} is not offered by the provider (op=plans); offered: {}; nothing changed (see `proxy-renewd api plans`)",
                if offered.is_empty() { "none".into() } else { offered.join(", ") }
            )
        }
        Err(e) => {
            unchecked(&e.to_string());
            Ok(())
        }
    }
}

async fn remove(store: &Store, id: &SubscriptionId, format: OutputFormat) -> anyhow::Result<Exit> {
    let removed = store.remove_rule(id).await?;
    emit(&match format {
        OutputFormat::Json => crate::output::pretty(&json!({
            "action": if removed { "removed" } else { "none" },
            "subscription_id": id,
            "follows": "defaults",
        })),
        OutputFormat::Table if removed => format!("rule removed for {id}; it now follows [defaults]\n"),
        OutputFormat::Table => format!("no rule for {id}; nothing removed\n"),
    })?;
    Ok(Exit::Ok)
}

fn price_cap(c: Option<Cents>) -> String {
    c.map_or_else(|| "none".into(), |c| c.to_string())
}

fn rule_cells(id: &str, r: &Rule, updated: String) -> Vec<String> {
    vec![
        id.to_owned(),
        if r.enabled { "yes" } else { "no" }.into(),
        format_duration_ms(r.renew_before_ms),
        r.plan.to_string(),
        r.repeat_count.to_string(),
        price_cap(r.max_price_cents),
        r.coupon_code.as_deref().map(printable).unwrap_or_default(),
        r.note.as_deref().map(printable).unwrap_or_default(),
        updated,
    ]
}

fn summary(r: &Rule) -> String {
    format!(
        "{}, renew {} before expiry with {} × {}, max price {}{}",
        if r.enabled { "enabled" } else { "disabled" },
        format_duration_ms(r.renew_before_ms),
        r.plan,
        r.repeat_count,
        price_cap(r.max_price_cents),
        r.coupon_code.as_ref().map_or(String::new(), |c| format!(", coupon {c}")),
    )
}

/// A rule as JSON: snake_case like the config keys, durations in ms and as text.
fn rule_json(r: &Rule) -> Value {
    json!({
        "enabled": r.enabled,
        "renew_before_ms": r.renew_before_ms,
        "renew_before": format_duration_ms(r.renew_before_ms),
        "plan": r.plan.to_string(),
        "repeat_count": r.repeat_count,
        "max_price_cents": r.max_price_cents.map(|c| c.0),
        "coupon_code": r.coupon_code,
        "note": r.note,
    })
}

fn row_json(r: &RuleRow) -> Value {
    let mut v = rule_json(&r.rule);
    v["subscription_id"] = json!(r.subscription_id);
    v["created_at_ms"] = json!(r.created_at.0);
    v["updated_at_ms"] = json!(r.updated_at.0);
    v
}
