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

use std::collections::{HashMap, HashSet};

use futures_util::StreamExt;
use futures_util::stream;
use tokio_util::sync::CancellationToken;

use crate::alert::Alert;
use crate::alerts;
use crate::alerts::email::Mailer;
use crate::api::{ApiError, Client, MalformedEntry, Refusal, RenewalPlan, Subscription, SubscriptionList};
use crate::attempt::{LedgerEntry, Origin, RenewOutcome, RenewalTerms};
use crate::config::{Config, Email};
use crate::policy::{self, Decision, Input};
use crate::reconcile::{self, Reconciled};
use crate::renewer::Renewer;
use crate::report::{CycleObserver, CycleReport, Item, RuleSource};
use crate::rule::Rule;
use crate::store::{Hold, SeenSubscription, Store, StoreError};
use crate::values::text::{REDACTED, clean_text};
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

const DAY_MS: i64 = 86_400_000;

/// A subscription the provider lists more than once is not acted on: identical copies are one
/// subscription, differing copies (two expiries for one id) are set aside as malformed, since
/// each would look like a period of its own to the ledger.
fn without_duplicates(mut list: SubscriptionList) -> SubscriptionList {
    let mut seen: HashMap<SubscriptionId, usize> = HashMap::new();
    for s in &list.subscriptions {
        *seen.entry(s.subscription_id.clone()).or_default() += 1;
    }
    let mut kept: Vec<Subscription> = Vec::new();
    let mut conflicting: HashSet<SubscriptionId> = HashSet::new();
    for s in std::mem::take(&mut list.subscriptions) {
        if seen[&s.subscription_id] == 1 {
            kept.push(s);
            continue;
        }
        match kept.iter().find(|k| k.subscription_id == s.subscription_id) {
            Some(k) if k.active_until == s.active_until && k.status == s.status => {}
            Some(_) => {
                conflicting.insert(s.subscription_id.clone());
            }
            None if !conflicting.contains(&s.subscription_id) => kept.push(s),
            None => {}
        }
    }
    for id in &conflicting {
        kept.retain(|k| &k.subscription_id != id);
        list.malformed.push(MalformedEntry {
            index: 0,
            subscription_id: Some(id.clone()),
            reason: format!("listed {} times with different activeUntil or status; not acted on", seen[id]),
        });
    }
    list.subscriptions = kept;
    list
}

/// What the cycle keeps of a subscription it read: the public fields, cleaned of escapes and
/// login-like words; credentials, protocol URLs and rotation are left behind.
fn seen(s: &Subscription) -> SeenSubscription {
    use secrecy::ExposeSecret;
    // The subscription's own login, should the provider put it in a label or note.
    let own: Vec<&str> = s
        .credentials
        .iter()
        .flat_map(|c| [c.username.expose_secret(), c.password.expose_secret()])
        .filter(|x| x.len() >= 4)
        .collect();
    let text = |t: &Option<String>| {
        t.as_deref().map(|t| own.iter().fold(clean_text(t), |acc, secret| acc.replace(secret, REDACTED)))
    };
    SeenSubscription {
        subscription_id: s.subscription_id.clone(),
        status: clean_text(&s.status),
        active_until: s.active_until,
        label: text(&s.label),
        network_label: text(&s.network_label),
        user_note: text(&s.user_note),
    }
}

/// What the database knows that the policy needs, for this read.
struct Known {
    alerted: HashSet<String>,
    paid_until: HashMap<SubscriptionId, EpochMs>,
    rules: HashMap<SubscriptionId, Rule>,
    held: HashSet<SubscriptionId>,
    ledger: HashMap<SubscriptionId, Vec<LedgerEntry>>,
    spent: Cents,
    reconciled: Vec<Reconciled>,
    unaccounted: Vec<LedgerEntry>,
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
        let list = without_duplicates(list);
        tracing::info!(
            subscriptions = list.subscriptions.len(),
            malformed = list.malformed.len(),
            "subscriptions read"
        );
        let seen: Vec<SeenSubscription> = list.subscriptions.iter().map(seen).collect();
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

    /// Rules, holds, the relevant ledger (reconciled), and the last 24 h of spend.
    async fn load(&self, subs: &[Subscription], read_at: EpochMs) -> Result<Known, StoreError> {
        let Some(store) = self.store else {
            return Ok(Known {
                alerted: HashSet::new(),
                paid_until: HashMap::new(),
                rules: HashMap::new(),
                held: HashSet::new(),
                ledger: HashMap::new(),
                spent: Cents(0),
                reconciled: vec![],
                unaccounted: vec![],
            });
        };
        let rules: HashMap<SubscriptionId, Rule> =
            store.rules().await?.into_iter().map(|r| (r.subscription_id, r.rule)).collect();
        let periods: Vec<(SubscriptionId, EpochMs)> =
            subs.iter().map(|s| (s.subscription_id.clone(), s.active_until)).collect();
        let current: HashMap<&SubscriptionId, EpochMs> = periods.iter().map(|(id, t)| (id, *t)).collect();
        // A hold covers the expiry it was written for; once activeUntil moved past it (a
        // person renewed it elsewhere), it no longer applies.
        let mut held: HashSet<SubscriptionId> = store
            .holds()
            .await?
            .into_iter()
            .filter(|h| current.get(&h.subscription_id).is_none_or(|t| *t <= h.active_until))
            .map(|h| h.subscription_id)
            .collect();
        let mut entries = store.ledger_for_periods(&periods).await?;
        let known_ids: HashSet<i64> = entries.iter().map(|e| e.id).collect();
        entries.extend(store.open_entries().await?.into_iter().filter(|e| !known_ids.contains(&e.id)));
        let active_until: HashMap<SubscriptionId, EpochMs> = periods.iter().cloned().collect();
        let reconciled = reconcile::reconcile(&entries, &active_until, read_at, self.config.reconcile_after_ms);
        let now = self.clock.now();
        for r in &reconciled {
            tracing::info!(subscription_id = %r.subscription_id, ledger_id = r.ledger_id, state = %r.settlement.state, "reconciled");
            let rule = rules.get(&r.subscription_id).unwrap_or(&self.config.defaults);
            let still_due = r.settlement.actual_end_at.is_some_and(|t| t.since(now) <= rule.renew_before_ms);
            if still_due {
                held.insert(r.subscription_id.clone());
            }
            if !self.dry_run {
                store.settle(r.ledger_id, &r.settlement, now).await?;
                if still_due {
                    let hold = Hold {
                        subscription_id: r.subscription_id.clone(),
                        since: now,
                        active_until: r.settlement.actual_end_at.unwrap_or(now),
                        ledger_id: Some(r.ledger_id),
                        reason: "reconciled renewal left it still within renew_before: no automatic catch-up".into(),
                    };
                    store.put_hold(&hold).await?;
                }
            }
        }
        reconcile::apply(&mut entries, &reconciled, now);
        let unaccounted: Vec<LedgerEntry> = entries
            .iter()
            .filter(|e| e.state.is_open() && !active_until.contains_key(&e.subscription_id))
            .cloned()
            .collect();
        let mut ledger: HashMap<SubscriptionId, Vec<LedgerEntry>> = HashMap::new();
        for e in entries {
            ledger.entry(e.subscription_id.clone()).or_default().push(e);
        }
        let spent = store.spend_since(EpochMs(read_at.0 - DAY_MS)).await?;
        let alerted = store.alerted_subscriptions().await?;
        let paid_until = store.paid_until().await?;
        Ok(Known { alerted, paid_until, rules, held, ledger, spent, reconciled, unaccounted })
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
                Item { subscription: seen(s), rule_source, rule, decision, plans_error, outcome: None }
            })
            .collect()
    }

    async fn fetch_plans(&self, due: &[SubscriptionId]) -> HashMap<SubscriptionId, Result<Vec<RenewalPlan>, String>> {
        stream::iter(due.iter().cloned())
            .map(|id| async move {
                let got = self.client.renewal_plans(&id).await.map_err(|e| {
                    tracing::warn!(subscription_id = %id, error = %e, "cannot read renewal plans");
                    e.to_string()
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
