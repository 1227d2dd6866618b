//! Prometheus metrics and the health state behind `/metrics`, `/healthz` and `/readyz`
//! (`[server]`). Names follow Prometheus conventions, base units (seconds); labels carry no
//! secret and nothing of higher cardinality than the subscription id.
//!
//! The cycle reports into [`Metrics`] through [`CycleObserver`]; the client reports every
//! request through [`crate::api::client::Observer`]. Neither knows this module. Counters get their `_total` suffix from the
//! encoder.

use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::api::Op;
use crate::attempt::{LedgerState, RenewOutcome};
use crate::policy::Decision;
use crate::report::{CycleObserver, CycleReport};
use crate::values::EpochMs;

type Labels = Vec<(String, String)>;
type FloatGauge = Gauge<f64, AtomicU64>;

/// Every metric, and the health state.
pub struct Metrics {
    registry: Registry,
    expiry: Family<Labels, FloatGauge>,
    subscriptions: Family<Labels, Gauge>,
    attention: Gauge,
    renewals: Family<Labels, Counter>,
    spend: Counter,
    api_requests: Family<Labels, Counter>,
    api_duration: Family<Labels, Histogram>,
    cycle_duration: Histogram,
    last_cycle: FloatGauge,
    last_success: FloatGauge,
    alerts_pending: Gauge,
    alerts_sent: Family<Labels, Counter>,
    alert_failures: Counter,
    dead_recipients: Gauge,
    forecast_spend: Family<Labels, Gauge>,
    forecast_renewals: Family<Labels, Gauge>,
    leader: Gauge,
    leader_epoch: Gauge,
    health: Mutex<Health>,
    /// Why the last cycle failed, until one succeeds: `/healthz` says it.
    last_failure: Mutex<Option<String>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// What `/healthz` and `/readyz` answer from.
#[derive(Debug, Clone, Copy, Default)]
struct Health {
    ready: bool,
    first_cycle_started: bool,
    last_success: Option<EpochMs>,
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn seconds(t: EpochMs) -> f64 {
    t.0 as f64 / 1000.0
}

impl Metrics {
    /// A registry with every metric and `proxy_renewd_build_info{version}` set to 1.
    #[must_use]
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let m = Metrics {
            expiry: Family::default(),
            subscriptions: Family::default(),
            attention: Gauge::default(),
            renewals: Family::default(),
            spend: Counter::default(),
            api_requests: Family::default(),
            api_duration: Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.01, 2.0, 12))),
            cycle_duration: Histogram::new(exponential_buckets(0.1, 2.0, 14)),
            last_cycle: FloatGauge::default(),
            last_success: FloatGauge::default(),
            alerts_pending: Gauge::default(),
            alerts_sent: Family::default(),
            alert_failures: Counter::default(),
            dead_recipients: Gauge::default(),
            forecast_spend: Family::default(),
            forecast_renewals: Family::default(),
            leader: Gauge::default(),
            leader_epoch: Gauge::default(),
            health: Mutex::new(Health::default()),
            last_failure: Mutex::new(None),
            registry: Registry::default(),
        };
        registry.register(
            "proxy_renewd_subscription_expiry_timestamp_seconds",
            "activeUntil of each subscription, Unix seconds",
            m.expiry.clone(),
        );
        registry.register(
            "proxy_renewd_subscriptions",
            "Subscriptions by status and the last cycle's decision",
            m.subscriptions.clone(),
        );
        registry.register(
            "proxy_renewd_subscriptions_needing_attention",
            "What needs a person after the last cycle: the --dry-run totals' needing attention (exit code 3)",
            m.attention.clone(),
        );
        registry.register(
            "proxy_renewd_renewals",
            "Renewal attempts by outcome (reconciled: settled later by reading activeUntil)",
            m.renewals.clone(),
        );
        registry.register(
            "proxy_renewd_renewal_spend_cents",
            "Money charged by renewals that succeeded, in cents",
            m.spend.clone(),
        );
        registry.register(
            "proxy_renewd_api_requests",
            "Provider API requests by op and HTTP status (none: no answer)",
            m.api_requests.clone(),
        );
        registry.register(
            "proxy_renewd_api_request_duration_seconds",
            "Provider API request duration by op",
            m.api_duration.clone(),
        );
        registry.register("proxy_renewd_cycle_duration_seconds", "Duration of cycles", m.cycle_duration.clone());
        registry.register(
            "proxy_renewd_last_cycle_timestamp_seconds",
            "When the last cycle ended, Unix seconds",
            m.last_cycle.clone(),
        );
        registry.register(
            "proxy_renewd_last_successful_cycle_timestamp_seconds",
            "When the last cycle that read the subscriptions ended, Unix seconds",
            m.last_success.clone(),
        );
        registry.register(
            "proxy_renewd_alerts_pending",
            "Alerts queued and not yet delivered",
            m.alerts_pending.clone(),
        );
        registry.register("proxy_renewd_alerts_sent", "Alerts delivered, by kind", m.alerts_sent.clone());
        registry.register(
            "proxy_renewd_alert_send_failures",
            "Failed attempts to deliver the alert email",
            m.alert_failures.clone(),
        );
        registry.register(
            "proxy_renewd_alert_recipients_dead",
            "Alert recipients dead-lettered (refused for good): they get no alerts",
            m.dead_recipients.clone(),
        );
        registry.register(
            "proxy_renewd_forecast_spend_cents",
            "What the renewals forecast for the next 24h, 7d, 30d will cost, in cents (renewals at a price not known count 0)",
            m.forecast_spend.clone(),
        );
        registry.register(
            "proxy_renewd_forecast_renewals",
            "Renewals forecast for the next 24h, 7d, 30d",
            m.forecast_renewals.clone(),
        );
        registry.register(
            "proxy_renewd_leader",
            "1 while this process leads (holds the lease on PostgreSQL; always on SQLite), else 0",
            m.leader.clone(),
        );
        registry.register(
            "proxy_renewd_leader_epoch",
            "The epoch of the lease this process holds or last saw held (0 on SQLite)",
            m.leader_epoch.clone(),
        );
        let build: Family<Labels, Gauge> = Family::default();
        build.get_or_create(&labels(&[("version", env!("CARGO_PKG_VERSION"))])).set(1);
        registry.register("proxy_renewd_build_info", "The running version", build);
        for outcome in ["succeeded", "refused", "unknown", "reconciled", "ambiguous", "failed"] {
            let _ = m.renewals.get_or_create(&labels(&[("outcome", outcome)]));
        }
        // The refusals `contrib/prometheus-rules.yml` alerts on, at 0 from the start: a series
        // born at 1 has no increase() for Prometheus, and the first 402 would go unnoticed.
        for status in ["402", "409"] {
            let _ = m.api_requests.get_or_create(&labels(&[("op", Op::Renew.as_str()), ("status", status)]));
        }
        // One process on SQLite leads; on PostgreSQL the leadership loop says otherwise.
        m.leader.set(1);
        Metrics { registry, ..m }
    }

    /// Whether this process leads, and the epoch of the lease it holds or saw held.
    pub fn set_leader(&self, leading: bool, epoch: i64) {
        self.leader.set(i64::from(leading));
        self.leader_epoch.set(epoch);
    }

    /// A follower has read the lease: `/readyz` answers ready (it does its part by standing
    /// by), and `/healthz` follows the leader's cycles ([`Metrics::saw_leader_cycle`]).
    pub fn set_following(&self) {
        self.health_mut(|h| h.first_cycle_started = true);
    }

    /// On a follower: the leader's last finished cycle, read from the shared database. It
    /// stands for this process's own in `/healthz` and `/readyz`: the work is being done.
    pub fn saw_leader_cycle(&self, at: EpochMs) {
        self.health_mut(|h| {
            h.first_cycle_started = true;
            if h.last_success.is_none_or(|t| t < at) {
                h.last_success = Some(at);
            }
        });
    }

    /// The Prometheus text exposition of every metric.
    #[must_use]
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// The database is open and migrated: `/readyz` may answer once a cycle starts.
    pub fn set_ready(&self) {
        self.health_mut(|h| h.ready = true);
    }

    fn health_mut(&self, f: impl FnOnce(&mut Health)) {
        let mut h = self.health.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut h);
    }

    /// `/healthz`: healthy while the last successful cycle is younger than `window`, or the
    /// first cycle is still running; else the reason.
    ///
    /// # Errors
    /// One line saying why not.
    pub fn healthy(&self, now: EpochMs, window: Duration) -> Result<String, String> {
        let h = *self.health.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let failure = self.last_failure.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let why = failure.map_or_else(String::new, |f| format!("; the last cycle failed: {f}"));
        let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
        match h.last_success {
            Some(t) if now.since(t) <= window_ms => Ok(format!("ok: last successful cycle {t}{why}")),
            Some(t) => Err(format!(
                "no successful cycle since {t} (window {}){why}",
                crate::rule::format_duration_ms(window_ms)
            )),
            // A daemon whose first reads fail is not healthy for long: not at all.
            None if !why.is_empty() => Err(format!("no successful cycle yet{why}")),
            None if h.first_cycle_started => Ok("ok: the first cycle is running".into()),
            None => Err("no cycle has started".into()),
        }
    }

    /// `/readyz`: the database is migrated and the first cycle has started.
    #[must_use]
    pub fn ready(&self) -> bool {
        let h = *self.health.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        h.ready && h.first_cycle_started
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl CycleObserver for Metrics {
    /// A cycle started.
    fn cycle_started(&self) {
        self.health_mut(|h| h.first_cycle_started = true);
    }

    /// A cycle failed before it could read the subscriptions.
    fn cycle_failed(&self, elapsed: Duration, reason: &str) {
        self.cycle_duration.observe(elapsed.as_secs_f64());
        self.last_cycle.set(seconds(EpochMs::now()));
        *self.last_failure.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(reason.to_owned());
    }

    /// A cycle ran: expiry gauges, decisions, renewals, spend, timings.
    fn cycle_done(&self, report: &CycleReport) {
        self.expiry.clear();
        self.subscriptions.clear();
        for item in &report.items {
            let s = &item.subscription;
            let l = labels(&[
                ("subscription_id", s.subscription_id.as_str()),
                ("label", s.label.as_deref().unwrap_or("")),
                ("network", s.network_label.as_deref().unwrap_or("")),
            ]);
            self.expiry.get_or_create(&l).set(seconds(s.active_until));
            self.subscriptions
                .get_or_create(&labels(&[("status", &s.status), ("decision", item.decision.reason())]))
                .inc();
            if let Some(o) = &item.outcome {
                let outcome = match o {
                    RenewOutcome::Succeeded { .. } => "succeeded",
                    RenewOutcome::Refused { .. } => "refused",
                    RenewOutcome::Unknown { .. } | RenewOutcome::ImplausibleEnd { .. } => "unknown",
                    RenewOutcome::NotSent { .. } | RenewOutcome::NotRecorded { .. } => "failed",
                    RenewOutcome::Conflict | RenewOutcome::NotAttempted { .. } => continue,
                };
                self.renewals.get_or_create(&labels(&[("outcome", outcome)])).inc();
                if let (RenewOutcome::Succeeded { .. }, Decision::Renew(r)) = (o, &item.decision) {
                    self.spend.inc_by(u64::try_from(r.price.0).unwrap_or(0));
                }
            }
        }
        for r in &report.reconciled {
            let outcome = match r.settlement.state {
                LedgerState::Succeeded => "reconciled",
                LedgerState::Ambiguous => "ambiguous",
                _ => "failed",
            };
            self.renewals.get_or_create(&labels(&[("outcome", outcome)])).inc();
        }
        if let Some(f) = &report.forecast {
            for w in &f.windows {
                let l = labels(&[("window", w.name)]);
                self.forecast_spend.get_or_create(&l).set(w.spend.0);
                self.forecast_renewals.get_or_create(&l).set(i64::try_from(w.renewals).unwrap_or(i64::MAX));
            }
        }
        self.attention.set(i64::try_from(report.totals().attention).unwrap_or(i64::MAX));
        let elapsed = report.finished_at.since(report.read_at).max(0);
        self.cycle_duration.observe(elapsed as f64 / 1000.0);
        self.last_cycle.set(seconds(report.finished_at));
        self.last_success.set(seconds(report.finished_at));
        self.health_mut(|h| h.last_success = Some(report.finished_at));
        *self.last_failure.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }

    /// After delivering alerts: what went, what failed, what is left.
    fn alerts_delivered(&self, sent_kinds: &[&str], failures: u64, pending: i64, dead_recipients: i64) {
        self.dead_recipients.set(dead_recipients);
        for kind in sent_kinds {
            self.alerts_sent.get_or_create(&labels(&[("kind", kind)])).inc();
        }
        self.alert_failures.inc_by(failures);
        self.alerts_pending.set(pending);
    }
}

impl crate::api::client::Observer for Metrics {
    fn request(&self, op: Op, status: Option<u16>, elapsed: Duration) {
        let status = status.map_or_else(|| "none".to_owned(), |s| s.to_string());
        self.api_requests.get_or_create(&labels(&[("op", op.as_str()), ("status", &status)])).inc();
        self.api_duration.get_or_create(&labels(&[("op", op.as_str())])).observe(elapsed.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_alerted_refusals_and_attention_are_exported_at_zero_before_any_cycle() {
        let text = Metrics::new().encode();
        for series in [
            "proxy_renewd_api_requests_total{op=\"renew\",status=\"402\"} 0",
            "proxy_renewd_api_requests_total{op=\"renew\",status=\"409\"} 0",
            "proxy_renewd_subscriptions_needing_attention 0",
        ] {
            assert!(text.lines().any(|l| l == series), "{series} missing from\n{text}");
        }
    }

    #[test]
    fn healthz_says_why_the_last_cycle_failed() {
        let m = Metrics::new();
        m.cycle_started();
        m.cycle_failed(Duration::from_secs(1), "cannot read subscriptions: HTTP 503");
        let now = EpochMs::now();
        let said = m.healthy(now, Duration::from_secs(600)).unwrap_or_else(|e| e);
        assert!(said.contains("the last cycle failed: cannot read subscriptions: HTTP 503"), "{said}");
    }
}
