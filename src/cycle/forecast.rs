//! The forecast from what a cycle reads and knows: `proxy-renewd forecast` ([`Cycle::forecast`],
//! an audit's read, plus `renewal-plans` for the subscriptions due soon and `op=plans` once),
//! and the one a cycle makes of itself after its renewals ([`Cycle::forecast_after`]: the
//! `--dry-run` line, the metrics, the weekly email and the 402 top-up figure). Both give
//! [`crate::forecast::forecast`] the same inputs the policy gets in a cycle.

use std::collections::{HashMap, HashSet};

use super::known::Known;
use super::{Cycle, CycleError, read};
use crate::api::{RenewalPlan, Subscription};
use crate::attempt::{LedgerEntry, LedgerState};
use crate::forecast::{self, DAY_MS, Forecast, ForecastRun, PlanSource, Subject};
use crate::policy::choose_plan;
use crate::rule::Rule;
use crate::values::{Cents, EpochMs, SubscriptionId};

/// `forecast` reads `op=renewal-plans` for the subscriptions due within this of now (24 h);
/// the others are priced from the ledger or the cheapest known plan.
pub const PLANS_HORIZON_MS: i64 = DAY_MS;

/// The daemon's forecast (metrics, the weekly email) reads `op=plans` at most this often
/// (6 h), to price what is not due yet.
pub const CATALOG_MAX_AGE_MS: i64 = 6 * 3_600_000;

/// What the database adds for a forecast: the spend of the last 24 h row by row, and each
/// subscription's last renewal.
struct Extras {
    spent: Vec<(EpochMs, Cents)>,
    last_renewals: Vec<LedgerEntry>,
}

impl Cycle<'_> {
    /// `proxy-renewd forecast --days N [--offline]`: reads `subscriptions` (or, offline, the
    /// database's snapshot), loads what the database knows as an audit does (nothing written),
    /// reads `renewal-plans` for the subscriptions due within [`PLANS_HORIZON_MS`] and
    /// `op=plans` once (neither offline), and forecasts `days` days from now.
    ///
    /// # Errors
    /// [`CycleError::Read`] when `subscriptions` cannot be read; [`CycleError::Store`] when
    /// the database cannot be read, or holds no snapshot offline.
    pub async fn forecast(&self, days: u32, offline: bool) -> Result<ForecastRun, CycleError> {
        let now = self.clock.now();
        let (subs, read_at): (Vec<Subscription>, EpochMs) = if offline {
            self.snapshot_subscriptions().await?
        } else {
            let list = self.client.subscriptions().await.map_err(CycleError::Read)?;
            (read::without_duplicates(list).subscriptions, now)
        };
        let known = self.load(&subs, now).await?;
        let horizon = EpochMs(now.0.saturating_add(PLANS_HORIZON_MS));
        let soon: Vec<SubscriptionId> = if offline {
            vec![]
        } else {
            subs.iter()
                .filter(|s| {
                    let rule = self.rule_of(&known, &s.subscription_id).1;
                    rule.enabled
                        && s.status == "active"
                        && EpochMs(s.active_until.0.saturating_sub(rule.renew_before_ms)) <= horizon
                })
                .map(|s| s.subscription_id.clone())
                .collect()
        };
        let fetched = self.fetch_plans(&soon).await;
        let mut plans_errors: Vec<(SubscriptionId, String)> =
            fetched.iter().filter_map(|(id, r)| Some((id.clone(), r.as_ref().err()?.message.clone()))).collect();
        plans_errors.sort();
        let offered: HashMap<SubscriptionId, Vec<RenewalPlan>> =
            fetched.into_iter().filter_map(|(id, r)| Some((id, r.ok()?))).collect();
        let (catalog, catalog_error) = if offline {
            (vec![], None)
        } else {
            match self.client.plans().await {
                Ok(plans) => (plans.iter().map(as_listed).collect(), None),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read op=plans: the cheapest known plan comes from the ledger only");
                    (vec![], Some(e.to_string()))
                }
            }
        };
        let extras = self.extras(now).await?;
        let until = EpochMs(now.0.saturating_add(i64::from(days).saturating_mul(DAY_MS)));
        let forecast = self.forecast_of(&subs, &known, &offered, &catalog, &extras, now, until);
        Ok(ForecastRun {
            forecast,
            source: if offline { "snapshot" } else { "subscriptions" },
            read_at,
            subscriptions: subs.len(),
            plans_read: soon.len(),
            plans_errors,
            catalog_error,
            budget: self.config.max_spend_per_day,
        })
    }

    /// The forecast of the `days` days after this cycle's read, from what the database knows
    /// after its renewals and the renewal plans it read. When the cycle attempted a renewal,
    /// the database is loaded again as an audit (an attempt it left unknown is in flight, one
    /// it renewed has its new expiry); else `known`, what the cycle loaded, is still true.
    /// `None` when the database cannot be read (logged; the cycle goes on).
    pub(super) async fn forecast_after(
        &self,
        subs: &[Subscription],
        known: &Known,
        items: &[crate::report::Item],
        plans: &super::decide::Plans,
        read_at: EpochMs,
        days: u32,
    ) -> Option<Forecast> {
        let audit = self.as_audit();
        let attempted = items.iter().any(|i| i.outcome.is_some());
        let loaded = async {
            let reloaded = if attempted { Some(audit.load(subs, read_at).await?) } else { None };
            let extras = audit.extras(read_at).await?;
            Ok::<_, CycleError>((reloaded, extras))
        };
        let (reloaded, extras) = match loaded.await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "cannot forecast: the database cannot be read");
                return None;
            }
        };
        let known = reloaded.as_ref().unwrap_or(known);
        let offered: HashMap<SubscriptionId, Vec<RenewalPlan>> =
            plans.iter().filter_map(|(id, r)| Some((id.clone(), r.as_ref().ok()?.clone()))).collect();
        let catalog = self.catalog(read_at).await;
        let until = EpochMs(read_at.0.saturating_add(i64::from(days) * DAY_MS));
        Some(audit.forecast_of(subs, known, &offered, &catalog, &extras, read_at, until))
    }

    /// `op=plans` for a daemon's forecast (metrics or the weekly email), read at most every
    /// [`CATALOG_MAX_AGE_MS`]; none for an audit or a cycle that forecasts only for a 402
    /// (they make no request beyond their own). A failed read is logged and keeps the last.
    async fn catalog(&self, now: EpochMs) -> Vec<Listed> {
        let wanted = !self.dry_run && (self.observer.is_some() || self.config.alerts.forecast_weekly);
        let cached = self.plans_catalog.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        match cached {
            Some((at, plans)) if !wanted || now.since(at) < CATALOG_MAX_AGE_MS => return plans,
            None if !wanted => return vec![],
            _ => {}
        }
        match self.client.plans().await {
            Ok(plans) => {
                let plans: Vec<Listed> = plans.iter().map(as_listed).collect();
                *self.plans_catalog.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
                    Some((now, plans.clone()));
                plans
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read op=plans for the forecast: what is not due yet is priced from the ledger");
                cached.map(|(_, p)| p).unwrap_or_default()
            }
        }
    }

    /// A cycle forecasts when someone reads it: an audit (its line under the totals), the
    /// metrics, the weekly email, or a 402 (the top-up figure).
    pub(super) fn wants_forecast(&self, items: &[crate::report::Item]) -> bool {
        self.dry_run
            || self.observer.is_some()
            || self.config.alerts.forecast_weekly
            || items.iter().any(|i| i.outcome.as_ref().is_some_and(crate::attempt::RenewOutcome::balance_short))
    }

    /// `[alerts] forecast = "weekly"`: the 7-day forecast through the outbox, once per UTC
    /// week (Monday to Sunday), deduplicated like every alert.
    pub(super) async fn raise_weekly_forecast(&self, report: &crate::report::CycleReport) {
        let (Some(store), false, true) = (self.store, self.dry_run, self.config.alerts.forecast_weekly) else { return };
        let Some(f) = &report.forecast else { return };
        let alert = crate::alerts::forecast_alert(f, report.read_at);
        let week = 7 * DAY_MS;
        match store.enqueue_alerts(std::slice::from_ref(&alert), None, self.clock.now(), week).await {
            Ok(n) => tracing::debug!(queued = n, "weekly forecast"),
            Err(e) => tracing::warn!(error = %e, "cannot queue the weekly forecast; the next cycle tries again"),
        }
    }

    /// This cycle as an audit over the same client, database and clock: it writes, sends and
    /// reports nothing.
    fn as_audit(&self) -> Cycle<'_> {
        Cycle {
            client: self.client,
            store: self.store,
            config: self.config,
            max_concurrency: self.max_concurrency,
            dry_run: true,
            cancel: self.cancel.clone(),
            mailer: None,
            observer: None,
            clock: self.clock,
            unrecorded: std::sync::Mutex::default(),
            unqueued: std::sync::Mutex::default(),
            plans_catalog: std::sync::Mutex::default(),
        }
    }

    async fn extras(&self, now: EpochMs) -> Result<Extras, CycleError> {
        let Some(store) = self.store else { return Ok(Extras { spent: vec![], last_renewals: vec![] }) };
        Ok(Extras {
            spent: store.spend_rows_since(EpochMs(now.0 - DAY_MS)).await?,
            last_renewals: store.last_renewals().await?,
        })
    }

    /// The snapshot's subscriptions still listed at the last read, as subscriptions, and when
    /// that read was.
    async fn snapshot_subscriptions(&self) -> Result<(Vec<Subscription>, EpochMs), CycleError> {
        let none = || {
            CycleError::Store(crate::store::StoreError::Other {
                path: crate::store::redact_url(&self.config.database_url),
                detail: "no snapshot to forecast from offline yet (no cycle has read the subscriptions): run without --offline, or run a cycle first".into(),
            })
        };
        let Some(store) = self.store else { return Err(none()) };
        let rows = store.snapshot().await?;
        let read_at = rows.iter().map(|r| r.last_seen).max().ok_or_else(none)?;
        let subs = rows
            .into_iter()
            .filter(|r| r.gone_since.is_none())
            .map(|r| Subscription {
                subscription_id: r.seen.subscription_id,
                status: r.seen.status,
                active_until: r.seen.active_until,
                user_note: r.seen.user_note,
                rotation_policy: None,
                label: r.seen.label,
                network_label: r.seen.network_label,
                credentials: None,
                protocols: None,
                rotate: None,
            })
            .collect();
        Ok((subs, read_at))
    }

    /// The forecast's input from a read and what the database knows; see [`PlanSource`] for
    /// how each subscription is priced.
    #[allow(clippy::too_many_arguments)]
    fn forecast_of(
        &self,
        subs: &[Subscription],
        known: &Known,
        offered: &HashMap<SubscriptionId, Vec<RenewalPlan>>,
        catalog: &[Listed],
        extras: &Extras,
        now: EpochMs,
        until: EpochMs,
    ) -> Forecast {
        let plans_of_catalog: Vec<RenewalPlan> = catalog.iter().map(|(p, _)| p.clone()).collect();
        let last_plans: HashMap<SubscriptionId, Vec<RenewalPlan>> = extras
            .last_renewals
            .iter()
            .filter_map(|e| Some((e.subscription_id.clone(), vec![forecast::plan_of(e, &plans_of_catalog)?])))
            .collect();
        // Every plan this run knows (first seen first: op=plans, what was offered, past
        // renewals), and those known on each network: offered to, or last renewed by, a
        // subscription there, or listed by op=plans for it.
        let mut listed = PlanSet::of(plans_of_catalog.clone());
        let mut by_network: HashMap<&str, PlanSet> = HashMap::new();
        let mut in_id_order: Vec<&Subscription> = subs.iter().collect();
        in_id_order.sort_by(|a, b| a.subscription_id.cmp(&b.subscription_id));
        for s in &in_id_order {
            let own = offered.get(&s.subscription_id).into_iter().chain(last_plans.get(&s.subscription_id)).flatten();
            for p in own {
                listed.add(p);
                if let Some(net) = s.network_label.as_deref() {
                    by_network.entry(net).or_default().add(p);
                }
            }
        }
        for s in &in_id_order {
            let Some(net) = s.network_label.as_deref() else { continue };
            for (p, _) in catalog.iter().filter(|(_, plan_net)| plan_net.as_deref().is_some_and(|n| on_network(net, n)))
            {
                by_network.entry(net).or_default().add(p);
            }
        }
        let rules: Vec<Rule> = subs.iter().map(|s| self.rule_of(known, &s.subscription_id).1).collect();
        let no_entries: Vec<LedgerEntry> = Vec::new();
        let subjects: Vec<Subject<'_>> = subs
            .iter()
            .zip(&rules)
            .map(|(s, rule)| {
                let id = &s.subscription_id;
                let ledger = known.ledger.get(id).unwrap_or(&no_entries);
                let fits = |plans: &[RenewalPlan]| choose_plan(&rule.plan, plans, rule.repeat_count).is_some();
                let local = s.network_label.as_deref().and_then(|n| by_network.get(n)).map_or(&[][..], |k| &k.plans);
                let plans = if let Some(p) = offered.get(id) {
                    Some((PlanSource::RenewalPlans, p.as_slice()))
                } else if let Some(p) = last_plans.get(id).filter(|p| fits(p)) {
                    Some((PlanSource::LastRenewal, p.as_slice()))
                } else if matches!(rule.plan, crate::rule::PlanChoice::Plan(_)) && fits(&listed.plans) {
                    Some((PlanSource::RulePlan, listed.plans.as_slice()))
                } else if fits(local) {
                    Some((PlanSource::CheapestKnown, local))
                } else if fits(&listed.plans) {
                    Some((PlanSource::CheapestKnown, listed.plans.as_slice()))
                } else {
                    None
                };
                Subject {
                    subscription_id: id,
                    status: &s.status,
                    active_until: caught_up(s.active_until, ledger),
                    rule,
                    plans,
                    ledger,
                    on_hold: known.held.contains(id),
                    paid_until: known.paid_until.get(id).copied(),
                }
            })
            .collect();
        let cron = crate::config::parse_cron(&self.config.schedule.cron).ok();
        let next_cycle = |t: EpochMs| next_tick(cron.as_ref(), t);
        forecast::forecast(&forecast::Input {
            subjects,
            spent: &extras.spent,
            max_spend_per_day: self.config.max_spend_per_day,
            lapse_warning_ms: self.config.alerts.lapse_warning_ms,
            balance_ok_since: known.balance_ok_since,
            now,
            until,
            next_cycle: &next_cycle,
        })
    }
}

/// The expiry the provider will show once it catches up with a renewal the ledger recorded
/// for this period (the snapshot, or a read made before this cycle's renewals, is behind).
fn caught_up(active_until: EpochMs, ledger: &[LedgerEntry]) -> EpochMs {
    ledger
        .iter()
        .filter(|e| e.state == LedgerState::Succeeded && e.renewal.active_until_before == active_until)
        .filter_map(|e| e.actual_end_at)
        .max()
        .map_or(active_until, |end| end.max(active_until))
}

/// The first tick of `cron` at or after `t` (whole seconds, UTC); every instant when there is
/// no schedule.
fn next_tick(cron: Option<&croner::Cron>, t: EpochMs) -> Option<EpochMs> {
    let Some(cron) = cron else { return Some(t) };
    let secs = t.0.div_euclid(1000) + i64::from(t.0.rem_euclid(1000) != 0);
    let at = chrono::DateTime::from_timestamp(secs, 0)?;
    let next = cron.find_next_occurrence(&at, true).ok()?;
    Some(EpochMs(next.timestamp_millis()))
}

/// A plan of `op=plans` as a renewal plan (same id, duration and price), with the label of
/// its network (`NL-AMS Amsterdam`, or the name alone) when the provider gives one.
pub type Listed = (RenewalPlan, Option<String>);

fn as_listed(p: &crate::api::Plan) -> Listed {
    let plan = RenewalPlan {
        id: p.id.clone(),
        connection_type: p.connection_type.clone(),
        duration_ms: p.duration_ms,
        price_amount_cents: p.price_amount_cents,
    };
    let net = p.network.as_ref().and_then(|n| match (&n.name, &n.city) {
        (Some(name), Some(city)) => Some(format!("{name} {city}")),
        (Some(name), None) => Some(name.clone()),
        _ => None,
    });
    (plan, net)
}

/// A subscription's `networkLabel` (`NL-AMS Amsterdam`) is a plan's network: the same label,
/// or the plan's network name followed by a space.
fn on_network(subscription_label: &str, plan_network: &str) -> bool {
    subscription_label == plan_network
        || subscription_label.strip_prefix(plan_network).is_some_and(|rest| rest.starts_with(' '))
        || plan_network.strip_prefix(subscription_label).is_some_and(|rest| rest.starts_with(' '))
}

/// Plans, each id once, first seen first.
#[derive(Default)]
struct PlanSet {
    plans: Vec<RenewalPlan>,
    ids: HashSet<crate::values::PlanId>,
}

impl PlanSet {
    fn of(plans: Vec<RenewalPlan>) -> PlanSet {
        let mut k = PlanSet::default();
        plans.iter().for_each(|p| k.add(p));
        k
    }

    fn add(&mut self, p: &RenewalPlan) {
        if self.ids.insert(p.id.clone()) {
            self.plans.push(p.clone());
        }
    }
}
