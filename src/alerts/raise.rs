//! Which alerts an event calls for: a renewal's outcome ([`for_outcome`], written in the same
//! transaction as the ledger change), a cycle's decisions and escalations ([`for_cycle`]), and
//! a rejected key ([`auth`]). Pure: reads the [`CycleReport`], returns [`Alert`]s.

use crate::alert::{Alert, AlertKind};
use crate::attempt::{LedgerState, RenewOutcome};
use crate::policy::{Blocked, Decision, Skip};
use crate::report::{CycleReport, Item};
use crate::store::SeenSubscription;
use crate::values::{Cents, EpochMs};

/// The renewal plans on offer now, with their prices, e.g. `on offer now: q2w… 33.00 for 90d`,
/// or `none on offer`; `refused` (the plan a 409 just turned down) is left out.
fn on_offer(item: &Item, refused: Option<&crate::values::PlanId>) -> String {
    let plans: Vec<String> = item
        .plans_offered
        .iter()
        .flatten()
        .filter(|p| Some(&p.id) != refused && p.duration_ms > 0)
        .map(|p| format!("{} {} for {}d", p.id, p.price_amount_cents, p.duration_ms / 86_400_000))
        .collect();
    match (plans.is_empty(), &item.plans_offered) {
        (_, None) => format!("see `proxy-renewd api renewal-plans {}`", item.subscription.subscription_id),
        (true, Some(_)) => "none on offer now".into(),
        (false, Some(_)) => format!("on offer now: {}", plans.join(", ")),
    }
}

/// An alert about `item`'s subscription, its texts still empty.
fn about(kind: AlertKind, item: &Item) -> Alert {
    about_seen(kind, &item.subscription, item.subscription.active_until)
}

/// An alert about a subscription as last seen, for the period (and expiry) `expiry`, its
/// texts still empty.
#[must_use]
pub fn about_seen(kind: AlertKind, s: &SeenSubscription, expiry: EpochMs) -> Alert {
    Alert {
        kind,
        subscription_id: Some(s.subscription_id.clone()),
        period: Some(expiry),
        label: s.label.clone(),
        network: s.network_label.clone(),
        active_until: Some(expiry),
        happened: String::new(),
        next: String::new(),
        action: String::new(),
        amount: None,
    }
}

const RETRY_LATER: &str = "retry in a later cycle (after 10 min, doubling up to 2 h; every cycle within alerts.lapse_warning of expiry; after a 402 the most urgent is probed each cycle)";

/// The alert for a refusal with `status`; `price` is the refused renewal's, when this is the
/// outcome of one (its plan is then the one refused, and not offered again).
fn by_status(item: &Item, status: u16, happened: &str, price: Option<Cents>) -> Alert {
    let refused_plan = match (&item.decision, price) {
        (Decision::Renew(r), Some(_)) => Some(&r.plan_id),
        _ => None,
    };
    let base = |k| about(k, item);
    let mut a = match status {
        402 => base(AlertKind::InsufficientBalance).with(
            happened,
            RETRY_LATER,
            match price {
                Some(p) => format!("top up the account balance by at least {p} ({} cents), the renewal's price", p.0),
                None => "top up the account balance".into(),
            },
        ),
        409 => base(AlertKind::Unavailable).with(
            happened,
            RETRY_LATER,
            format!(
                "choose another plan ({}; `proxy-renewd rules set {id} --plan PLAN`), or check the subscription",
                on_offer(item, refused_plan),
                id = item.subscription.subscription_id
            ),
        ),
        401 | 403 => base(AlertKind::Auth).with(
            happened,
            "nothing until the key works",
            "check [api].key / key_file: the provider rejects it",
        ),
        429 => base(AlertKind::Unavailable).with(
            happened,
            RETRY_LATER,
            "nothing, unless it keeps happening: the provider is rate limiting",
        ),
        _ => base(AlertKind::NotRenewable).with(
            happened,
            "nothing more for this period",
            format!(
                "check the subscription and its rule; then `proxy-renewd renew {id}`",
                id = item.subscription.subscription_id
            ),
        ),
    };
    a.amount = price;
    a
}

/// The alerts a renewal's outcome calls for: written in the same transaction as the ledger
/// change. `had_alerted`: the subscription has an earlier alert not yet followed by
/// `recovered`.
#[must_use]
pub fn for_outcome(item: &Item, outcome: &RenewOutcome, had_alerted: bool) -> Vec<Alert> {
    let mut out: Vec<Alert> = outcome_alert(item, outcome).into_iter().collect();
    if let (RenewOutcome::Succeeded { end_at, held: false, .. }, true) = (outcome, had_alerted) {
        out.push(recovered(&item.subscription, *end_at, "renewed after earlier alerts"));
    }
    out
}

/// `recovered` for one subscription: the problem is over; `active_until` is its new expiry.
#[must_use]
pub fn recovered(s: &SeenSubscription, active_until: EpochMs, happened: &str) -> Alert {
    // The new expiry is the period: a later problem with this subscription is a new one.
    about_seen(AlertKind::Recovered, s, active_until).with(
        format!("{happened}; it now runs until {active_until}"),
        "nothing: the problem is over, back to normal",
        "nothing",
    )
}

/// The alerts a cycle's decisions call for (those without a renewal outcome), the
/// escalations (`lapse-imminent`, `expired`), and unreadable entries; before deduplication.
#[must_use]
pub fn for_cycle(
    report: &CycleReport,
    lapse_warning_ms: i64,
    alerted: &std::collections::HashSet<String>,
) -> Vec<Alert> {
    let now = report.read_at;
    let mut out = Vec::new();
    // An unknown outcome that a read settled as applied: the all-clear, for one that alerted.
    for r in report.reconciled.iter().filter(|r| r.settlement.state == LedgerState::Succeeded) {
        let item = report.items.iter().find(|i| i.subscription.subscription_id == r.subscription_id);
        if let (Some(item), Some(end)) = (item, r.settlement.actual_end_at)
            && alerted.contains(r.subscription_id.as_str())
        {
            out.push(recovered(&item.subscription, end, "the renewal whose outcome was unknown was applied"));
        }
    }
    for item in &report.items {
        if item.outcome.is_none() {
            out.extend(decision_alert(item, now));
        }
        let s = &item.subscription;
        let renewed = matches!(item.outcome, Some(RenewOutcome::Succeeded { .. }));
        let managed = item.rule.enabled && s.status == "active";
        let due = !matches!(
            item.decision,
            Decision::Ok { .. } | Decision::Skip(_) | Decision::Blocked(Blocked::Malformed { .. })
        );
        let left = s.active_until.since(now);
        if managed && due && !renewed {
            if left < 0 {
                out.push(about(AlertKind::Expired, item).with(
                    format!("expired {} and was not renewed", s.active_until),
                    "keep trying each cycle while the reason in the other alerts allows",
                    format!(
                        "renew it now (`proxy-renewd renew {id}`) or fix what blocks it",
                        id = item.subscription.subscription_id
                    ),
                ));
            } else if left <= lapse_warning_ms {
                out.push(about(AlertKind::LapseImminent, item).with(
                    format!("expires {} and is not renewed yet", s.active_until),
                    "keep trying each cycle while the reason in the other alerts allows",
                    "act before it lapses: see the other alerts for this subscription",
                ));
            }
        }
    }
    out.extend(ambiguous_alerts(report));
    out.extend(report.vanished.iter().map(|s| {
        let id = &s.subscription_id;
        about_seen(AlertKind::Vanished, s, s.active_until).with(
            format!("no longer listed by the provider (op=subscriptions); last known expiry {}", s.active_until),
            "nothing: it cannot be renewed while it is not listed; back to normal if it reappears",
            format!(
                "check {id} at the provider (cancelled, moved to another account?); `proxy-renewd rules set {id} --disable` if it is gone for good"
            ),
        )
    }));
    out.extend(malformed_alerts(report));
    out.extend(super::forecast::top_up(report));
    out
}

/// One alert per attempt reconciliation found ambiguous, with both figures.
fn ambiguous_alerts(report: &CycleReport) -> Vec<Alert> {
    let ambiguous = report.reconciled.iter().filter(|r| r.settlement.state == LedgerState::Ambiguous);
    ambiguous
        .filter_map(|r| {
            let item = report.items.iter().find(|i| i.subscription.subscription_id == r.subscription_id)?;
            let id = &r.subscription_id;
            Some(about(AlertKind::Ambiguous, item).with(
                r.settlement.error.clone().unwrap_or_default(),
                "no further automatic renewal of it until a person acts (it is on hold)",
                format!(
                    "check at the provider what was charged (`proxy-renewd history --subscription {id}`); \
                     then `proxy-renewd rules set {id} --enable` to let the daemon go on, or `proxy-renewd renew {id}`"
                ),
            ))
        })
        .collect()
}

/// Entries without an id alerted one by one, at most; the rest are counted in one alert.
pub const MALFORMED_WITHOUT_ID_ALERTS: usize = 10;

/// One alert per unreadable entry with an id; the first [`MALFORMED_WITHOUT_ID_ALERTS`]
/// without one, then one for the rest; one for the entries that are not objects. However
/// large a broken list, the outbox grows by its ids plus a dozen rows.
fn malformed_alerts(report: &CycleReport) -> Vec<Alert> {
    let mut out = Vec::new();
    // Account-level: the "period" only keeps the two summaries apart for deduplication
    // (entry positions, the periods of entries without an id, are never negative).
    let account = |period: i64, happened: String| {
        Alert::account(AlertKind::Malformed, Some(EpochMs(period))).with(
            happened,
            "skip them each cycle until the provider's data is readable",
            "check the account's subscriptions at the provider",
        )
    };
    let (with_id, without_id): (Vec<_>, Vec<_>) = report.malformed.iter().partition(|m| m.subscription_id.is_some());
    for m in with_id.into_iter().chain(without_id.iter().copied().take(MALFORMED_WITHOUT_ID_ALERTS)) {
        out.push(Alert {
            kind: AlertKind::Malformed,
            subscription_id: m.subscription_id.clone(),
            // Without an id, the position tells unreadable entries apart for deduplication.
            period: if m.subscription_id.is_none() { Some(EpochMs(i64::try_from(m.index).unwrap_or(0))) } else { None },
            label: None,
            network: None,
            active_until: None,
            happened: format!("subscriptions[{}] cannot be read: {}", m.index, m.reason),
            next: "skip it each cycle until the provider's data is readable".into(),
            action: "check the subscription at the provider".into(),
            amount: None,
        });
    }
    if let Some(rest) = without_id.len().checked_sub(MALFORMED_WITHOUT_ID_ALERTS).filter(|n| *n > 0) {
        out.push(account(-1, format!("{rest} more entries of subscriptions[] without a readable id cannot be read")));
    }
    if report.not_objects > 0 {
        out.push(account(-2, format!("{} entries of subscriptions[] are not objects", report.not_objects)));
    }
    out
}

/// The alert for a rejected key on any call (`auth`), not about one subscription.
#[must_use]
pub fn auth(happened: &str) -> Alert {
    Alert::account(AlertKind::Auth, None).with(
        happened,
        "try again each cycle; nothing can be renewed meanwhile",
        "check [api].key / key_file: the provider rejects the key (missing, wrong or revoked)",
    )
}

/// The alert a renewal outcome calls for, if any.
fn outcome_alert(item: &Item, outcome: &RenewOutcome) -> Option<Alert> {
    let a = |k| about(k, item);
    let price = if let Decision::Renew(r) = &item.decision { Some(r.price) } else { None };
    match outcome {
        RenewOutcome::Refused { status, message, .. } => Some(by_status(item, *status, message, price)),
        RenewOutcome::Unknown { message, .. } => Some(a(AlertKind::UnknownOutcome).with(
            message.clone(),
            "no new attempt until a later read shows whether it was applied (after ledger.reconcile_after)",
            format!(
                "nothing yet; `proxy-renewd history --subscription {id}` shows the attempt; if it persists, check {id} at the provider",
                id = item.subscription.subscription_id
            ),
        )),
        RenewOutcome::Succeeded { held: true, end_at, .. } => Some(a(AlertKind::StillDueAfterRenewal).with(
            format!("renewed to {end_at}, which is still within renew_before"),
            "no further automatic renewal (no catch-up spending)",
            format!("renew by hand (`proxy-renewd renew {id}`) or allow it (`proxy-renewd rules set {id} --enable`)", id = item.subscription.subscription_id),
        )),
        RenewOutcome::ImplausibleEnd { end_at, .. } => Some(a(AlertKind::Malformed).with(
            format!("renew answered 200, but endAt {} is not a plausible expiry", end_at.0),
            "no new attempt; settle it by reading activeUntil back (after ledger.reconcile_after)",
            format!("check the subscription at the provider; `proxy-renewd history --subscription {id}`", id = item.subscription.subscription_id),
        )),
        RenewOutcome::NotRecorded { message } => Some(a(AlertKind::UnknownOutcome).with(
            format!("not renewed: the ledger could not be written ({message})"),
            "try again next cycle",
            "check the database (disk, permissions)",
        )),
        RenewOutcome::NotAttempted { balance_short: true, .. } => {
            let mut x = by_status(
                item,
                402,
                "not tried: a renewal before it in this cycle was refused with 402 (insufficient balance)",
                price,
            );
            x.next = "try again next cycle, most urgent first".into();
            Some(x)
        }
        _ => None,
    }
}

/// The alert a decision calls for (no renewal was attempted), if any.
fn decision_alert(item: &Item, now: EpochMs) -> Option<Alert> {
    let a = |k| about(k, item);
    if let Some(e) = &item.plans_error {
        if let Some(status @ (401 | 403)) = e.status {
            // The key, not the subscription: the same alert as a rejected key anywhere.
            return Some(by_status(item, status, &format!("renewal plans refused: {e}"), None));
        }
        return Some(a(AlertKind::NoEligiblePlan).with(
            format!("renewal plans unreadable: {e}"),
            "try again next cycle",
            "check the subscription at the provider",
        ));
    }
    match &item.decision {
        Decision::Skip(Skip::NotRenewable { status }) if item.rule.enabled => Some(a(AlertKind::NotRenewable).with(
            format!("status is {status:?}, not active"),
            "skip it until it is active again",
            "check the subscription at the provider, or disable its rule",
        )),
        Decision::Blocked(b) => match b {
            Blocked::Malformed { active_until } => Some(a(AlertKind::Malformed).with(
                format!("activeUntil {} is not a plausible ms expiry", active_until.0),
                "never act on it",
                "check the subscription at the provider",
            )),
            Blocked::OnHold => Some(a(AlertKind::StillDueAfterRenewal).with(
                "on hold: a renewal left it still due",
                "no further automatic renewal",
                format!(
                    "renew by hand (`proxy-renewd renew {id}`) or allow it (`proxy-renewd rules set {id} --enable`)",
                    id = item.subscription.subscription_id
                ),
            )),
            Blocked::Regressed { paid_until } => Some(a(AlertKind::Malformed).with(
                format!(
                    "activeUntil {} is before {paid_until}, which a recorded renewal paid for",
                    item.subscription.active_until
                ),
                "not renew it again automatically (it could pay twice for the same time)",
                "check the subscription at the provider; renew by hand if it really needs it",
            )),
            // A provider's read may lag a renewal briefly; an hour is not brief.
            Blocked::AlreadyRenewed { attempt, at } if now.since(*at) > 3_600_000 => {
                Some(a(AlertKind::UnknownOutcome).with(
                    format!("attempt {attempt} was answered as renewed, but activeUntil has not moved"),
                    "no new attempt for this period while the ledger says it is paid",
                    format!(
                        "check the subscription at the provider; `proxy-renewd history --subscription {id}`",
                        id = item.subscription.subscription_id
                    ),
                ))
            }
            Blocked::InFlight { state, attempt, .. } => Some(a(AlertKind::UnknownOutcome).with(
                format!("attempt {attempt} is {state}"),
                "wait for reconciliation",
                format!(
                    "nothing yet; `proxy-renewd history --subscription {id}` shows the attempt",
                    id = item.subscription.subscription_id
                ),
            )),
            Blocked::Refused { status: Some(s), .. } | Blocked::Backoff { status: Some(s), .. } => {
                Some(by_status(item, *s, &format!("the last renewal attempt was refused with HTTP {s}"), None))
            }
            Blocked::NoEligiblePlan { plan, offered } => Some(a(AlertKind::NoEligiblePlan).with(
                format!("no renewal plan fits {plan} among the {offered} offered"),
                "try again each cycle",
                format!(
                    "choose another plan ({}; `proxy-renewd rules set {id} --plan PLAN`)",
                    on_offer(item, None),
                    id = item.subscription.subscription_id
                ),
            )),
            Blocked::OverPriceCap { plan_id, price, cap } => {
                let mut x = a(AlertKind::OverPriceCap).with(
                    format!("plan {plan_id} costs {price}, over the cap {cap}"),
                    "not renew it while the price is over the cap",
                    format!(
                        "raise the cap (`rules set {id} --max-price-cents …`) or choose a cheaper plan",
                        id = item.subscription.subscription_id
                    ),
                );
                x.amount = Some(*price);
                Some(x)
            }
            Blocked::OverBudget { plan_id, price, spent, budget } => {
                let mut x = a(AlertKind::OverBudget).with(
                    format!("plan {plan_id} costs {price}; {spent} of the {budget} daily budget is spent"),
                    "renew it when the rolling 24 h allows",
                    "raise [budget] max_spend_cents_per_day, or renew by hand",
                );
                x.amount = Some(*price);
                Some(x)
            }
            _ => None,
        },
        _ => None,
    }
}
