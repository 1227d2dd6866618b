//! One cycle (`daemon.md`, *Ledger*; issue "The cycle"): read `subscriptions` → update the
//! snapshot → reconcile open ledger entries → decide with the policy → for each due
//! subscription fetch `renewal-plans`, choose, commit the ledger row, send `renew`, record the
//! outcome. Returns a [`CycleReport`] of every subscription's decision and outcome.
//!
//! A dry run does every read and none of the writes: no POST, no ledger or snapshot write,
//! and the database (if any) opened read-only; reconciliation and holds are applied in memory
//! so that the report shows what a real cycle would decide.
//!
//! Budget: subscriptions are decided most urgent first, and each renewal reserves its price,
//! so that concurrent renewals in one cycle cannot together exceed the daily budget.
//!
//! Read top to bottom: [`Cycle::run`] here; what is kept of the read in `read.rs`; what the
//! database knows (reconciled) in `known.rs`; then deciding and renewing, here again.

mod known;
mod read;

use std::collections::{HashMap, HashSet};

use futures_util::StreamExt;
use futures_util::stream;
use tokio_util::sync::CancellationToken;

use known::Known;

use crate::alert::Alert;
use crate::alerts;
use crate::alerts::email::Mailer;
use crate::api::{ApiError, Client, Refusal, RenewalPlan, Subscription};
use crate::attempt::{LedgerEntry, Origin, RenewOutcome, RenewalTerms};
use crate::config::{Config, Email};
use crate::policy::{self, Decision, Input};
use crate::renewer::Renewer;
use crate::report::{CycleObserver, CycleReport, Item, PlansError, RuleSource};
use crate::rule::Rule;
use crate::store::{SeenSubscription, Store, StoreError};
use crate::values::{Cents, Clock, EpochMs, SubscriptionId};

/// Why a cycle could not run at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CycleError {
    /// `op=subscriptions` failed: nothing can be decided. (Not a `source`: the message
    /// already carries it, and a chain would print it twice.)
    #[error("cannot read subscriptions: {0}")]
    Read(ApiError),
    /// The database failed before anything was sent.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A shutdown request arrived before any renewal started.
    #[error("stopped by a shutdown request")]
    Cancelled,
}

/// What a cycle runs with.
#[derive(Clone)]
pub struct Cycle<'a> {
    /// The provider client.
    pub client: &'a Client,
    /// The database; `None` only for a dry run without a database file.
    pub store: Option<&'a Store>,
    /// The configuration (rules' defaults, budget, reconcile window).
    pub config: &'a Config,
    /// Requests in flight at once (`api.max_concurrency`).
    pub max_concurrency: usize,
    /// Reads only.
    pub dry_run: bool,
    /// Stops starting renewals once cancelled; those under way finish.
    pub cancel: CancellationToken,
    /// Delivers the outbox at the end of the cycle; `None`: alerts are logged only.
    pub mailer: Option<(&'a Mailer, &'a Email)>,
    /// Told as the cycle starts, ends or fails (the metrics of `[server]`), if anyone.
    pub observer: Option<&'a dyn CycleObserver>,
    /// Where "now" comes from, for every decision and every time written.
    pub clock: &'a dyn Clock,
}

impl std::fmt::Debug for Cycle<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cycle")
            .field("client", self.client)
            .field("store", &self.store)
            .field("max_concurrency", &self.max_concurrency)
            .field("dry_run", &self.dry_run)
            .finish_non_exhaustive()
    }
}

impl Cycle<'_> {
    /// Runs one cycle.
    ///
    /// # Errors
    /// [`CycleError::Read`] when `subscriptions` cannot be read (after retries);
    /// [`CycleError::Store`] when the database fails before any renewal is sent.
    pub async fn run(&self) -> Result<CycleReport, CycleError> {
        let started = std::time::Instant::now();
        if let Some(m) = self.observer {
            m.cycle_started();
        }
        let result = self.run_inner().await;
        if let Some(m) = self.observer {
            match &result {
                Ok(report) => m.cycle_done(report),
                Err(_) => m.cycle_failed(started.elapsed()),
            }
        }
        result
    }

    async fn run_inner(&self) -> Result<CycleReport, CycleError> {
        let read_at = self.clock.now();
        let list = tokio::select! {
            r = self.client.subscriptions() => match r {
                Ok(list) => list,
                Err(e) => {
                    if e.refusal().is_some_and(Refusal::is_auth) {
                        self.raise(&[alerts::auth(&e.to_string())], read_at).await;
                    }
                    // What is queued goes out even while the provider cannot be read.
                    self.deliver().await;
                    return Err(CycleError::Read(e));
                }
            },
            () = self.cancel.cancelled() => return Err(CycleError::Cancelled),
        };
        let list = read::without_duplicates(list);
        tracing::info!(
            subscriptions = list.subscriptions.len(),
            malformed = list.malformed.len(),
            not_objects = list.not_objects,
            "subscriptions read"
        );
        let seen: Vec<SeenSubscription> = list.subscriptions.iter().map(read::seen).collect();
        if let (Some(store), false) = (self.store, self.dry_run) {
            store.record_poll(&seen, read_at).await?;
        }
        let known = self.load(&list.subscriptions, read_at).await?;
        let mut items = tokio::select! {
            items = self.decide_all(&list.subscriptions, &known, read_at) => items,
            () = self.cancel.cancelled() => return Err(CycleError::Cancelled),
        };
        let interrupted = if self.dry_run { false } else { self.renew_all(&mut items, &known.alerted).await };
        items.iter().filter(|i| i.needs_attention()).for_each(|i| {
            tracing::warn!(subscription_id = %i.subscription.subscription_id, reason = i.decision.reason(), outcome = i.outcome.as_ref().map(RenewOutcome::name), "needs attention");
        });
        let report = CycleReport {
            read_at,
            finished_at: self.clock.now(),
            dry_run: self.dry_run,
            items,
            malformed: list.malformed,
            not_objects: list.not_objects,
            reconciled: known.reconciled,
            unaccounted: known.unaccounted,
            interrupted,
        };
        self.raise(&alerts::for_cycle(&report, self.config.alerts.lapse_warning_ms), self.clock.now()).await;
        self.deliver().await;
        if let (Some(store), false) = (self.store, self.dry_run)
            && let Err(e) = store.record_cycle(report.finished_at).await
        {
            tracing::error!(error = %e, "cannot record the cycle's time (health checks will see it as old)");
        }
        Ok(report)
    }

    /// Sends what the outbox holds that is due (also what earlier cycles failed to send).
    async fn deliver(&self) {
        let (Some(store), false) = (self.store, self.dry_run) else { return };
        match alerts::deliver::deliver(store, self.mailer, self.clock.now()).await {
            Ok(d) => {
                if let Some(m) = self.observer {
                    let kinds: Vec<&str> = d.kinds.iter().map(|k| k.as_str()).collect();
                    let pending = store.pending_alerts().await.unwrap_or(0);
                    m.alerts_delivered(&kinds, if d.failed > 0 { 1 } else { 0 }, pending);
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot read or update the alert outbox"),
        }
    }

    /// Queues alerts (deduplicated); a dry run queues nothing. A failure is logged: the
    /// condition persists and the next cycle raises it again.
    async fn raise(&self, raised: &[Alert], now: EpochMs) {
        let (Some(store), false) = (self.store, self.dry_run) else { return };
        if raised.is_empty() {
            return;
        }
        match store.enqueue_alerts(raised, None, now, self.config.alerts.repeat_interval_ms).await {
            Ok(n) => tracing::debug!(raised = raised.len(), queued = n, "alerts queued"),
            Err(e) => tracing::error!(error = %e, "cannot queue alerts"),
        }
    }

    /// Decides every subscription, fetching renewal plans for the due ones.
    async fn decide_all(&self, subs: &[Subscription], known: &Known, now: EpochMs) -> Vec<Item> {
        let mut order: Vec<&Subscription> = subs.iter().collect();
        order.sort_by_key(|s| (s.active_until, s.subscription_id.clone()));
        let rule_of = |s: &Subscription| match known.rules.get(&s.subscription_id) {
            Some(r) => (RuleSource::Row, r.clone()),
            None => (RuleSource::Defaults, self.config.defaults.clone()),
        };
        let no_entries: Vec<LedgerEntry> = Vec::new();
        let input = |s: &'_ Subscription, rule: &'_ Rule, plans: Option<&'_ [RenewalPlan]>, spent: Cents| -> Decision {
            policy::decide(&Input {
                status: &s.status,
                active_until: s.active_until,
                rule,
                renewal_plans: plans,
                ledger: known.ledger.get(&s.subscription_id).unwrap_or(&no_entries),
                on_hold: known.held.contains(&s.subscription_id),
                paid_until: known.paid_until.get(&s.subscription_id).copied(),
                spent_last_24h: spent,
                max_spend_per_day: self.config.max_spend_per_day,
                now,
            })
        };
        // First pass without plans: which are due?
        let due: Vec<SubscriptionId> = order
            .iter()
            .filter(|s| input(s, &rule_of(s).1, None, known.spent) == Decision::FetchPlans)
            .map(|s| s.subscription_id.clone())
            .collect();
        let plans = self.fetch_plans(&due).await;
        // Second pass, most urgent first, each renewal reserving its price against the budget.
        let mut spent = known.spent;
        order
            .into_iter()
            .map(|s| {
                let (rule_source, rule) = rule_of(s);
                let (decision, plans_error) = match plans.get(&s.subscription_id) {
                    Some(Ok(p)) => (input(s, &rule, Some(p), spent), None),
                    Some(Err(e)) => (Decision::FetchPlans, Some(e.clone())),
                    None => (input(s, &rule, None, spent), None),
                };
                if let Decision::Renew(r) = &decision {
                    spent = Cents(spent.0.saturating_add(r.price.0));
                }
                Item { subscription: read::seen(s), rule_source, rule, decision, plans_error, outcome: None }
            })
            .collect()
    }

    async fn fetch_plans(&self, due: &[SubscriptionId]) -> HashMap<SubscriptionId, Result<Vec<RenewalPlan>, PlansError>> {
        stream::iter(due.iter().cloned())
            .map(|id| async move {
                let got = self.client.renewal_plans(&id).await.map_err(|e| {
                    tracing::warn!(subscription_id = %id, error = %e, "cannot read renewal plans");
                    PlansError { message: e.to_string(), status: e.refusal().map(|r| r.status) }
                });
                (id, got)
            })
            .buffer_unordered(self.max_concurrency.max(1))
            .collect()
            .await
    }

    /// Sends the renewals, `max_concurrency` at a time; returns true when a shutdown request
    /// left some unstarted.
    async fn renew_all(&self, items: &mut [Item], alerted: &HashSet<String>) -> bool {
        let Some(store) = self.store else { return false };
        let renewer = Renewer {
            client: self.client,
            store,
            origin: Origin::Daemon,
            repeat_interval_ms: self.config.alerts.repeat_interval_ms,
            clock: self.clock,
        };
        let jobs: Vec<(usize, Item, RenewalTerms)> = items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| match &item.decision {
                Decision::Renew(r) => Some((i, item.clone(), r.clone())),
                _ => None,
            })
            .collect();
        // Started most urgent first (`buffered` keeps the order); once the balance runs short
        // (a 402), the rest are not started: the next cycle tries again, most urgent first.
        let balance_short = std::sync::atomic::AtomicBool::new(false);
        let balance_short = &balance_short;
        let results: Vec<(usize, Option<RenewOutcome>)> = stream::iter(jobs)
            .map(|(i, item, r)| async move {
                if self.cancel.is_cancelled() {
                    return (i, None);
                }
                if balance_short.load(std::sync::atomic::Ordering::SeqCst) {
                    return (
                        i,
                        Some(RenewOutcome::NotAttempted {
                            reason: "the balance ran short in this cycle; tried again next cycle".into(),
                        }),
                    );
                }
                let id = item.subscription.subscription_id.clone();
                let had_alerted = alerted.contains(id.as_str());
                let raise = |o: &RenewOutcome| alerts::for_outcome(&item, o, had_alerted);
                let outcome = renewer.renew(&id, &r, item.rule.renew_before_ms, raise).await;
                if matches!(outcome, RenewOutcome::Refused { status: 402, .. }) {
                    balance_short.store(true, std::sync::atomic::Ordering::SeqCst);
                }
                (i, Some(outcome))
            })
            .buffered(self.max_concurrency.max(1))
            .collect()
            .await;
        let mut interrupted = false;
        for (i, outcome) in results {
            interrupted |= outcome.is_none();
            items[i].outcome = outcome;
        }
        interrupted
    }
}
