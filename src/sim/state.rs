//! The simulator's world: plans, networks, subscriptions, coupons and a balance in cents,
//! as one serde document (the `--state FILE` format, snake_case) plus the built-in sample.
//!
//! Everything is plain data; the rules that change it live in `ops.rs`.

use serde::{Deserialize, Serialize};

/// The whole simulated provider account. `proxy-renewd sim --dump-state` prints the sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimState {
    /// The account balance in cents; purchases and renewals debit it, 402 when short.
    pub balance_cents: i64,
    /// Every plan, purchasable or not.
    #[serde(default)]
    pub plans: Vec<SimPlan>,
    /// Every network.
    #[serde(default)]
    pub networks: Vec<SimNetwork>,
    /// Every subscription, the key owner's and (with `foreign`) other people's.
    #[serde(default)]
    pub subscriptions: Vec<SimSubscription>,
    /// Coupon codes.
    #[serde(default)]
    pub coupons: Vec<SimCoupon>,
    /// Switches that change how the gateway answers.
    #[serde(default)]
    pub settings: SimSettings,
}

/// A plan. Listed by `plans` while `active`; renewals and purchases of a `sold_out` or
/// inactive plan get 409.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimPlan {
    /// `id`.
    pub id: String,
    /// `connectionType`, e.g. `private`.
    #[serde(default = "private")]
    pub connection_type: String,
    /// `durationMs` of one unit.
    pub duration_ms: i64,
    /// `priceAmountCents` of one unit.
    pub price_cents: i64,
    /// `popular`.
    #[serde(default)]
    pub popular: bool,
    /// The network's `id`.
    pub network_id: String,
    /// Listed and usable.
    #[serde(default = "yes")]
    pub active: bool,
    /// Listed, but purchase and renew answer 409.
    #[serde(default)]
    pub sold_out: bool,
}

/// A network (location) proxies run in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimNetwork {
    /// `id`.
    pub id: String,
    /// Short name, e.g. `NL-AMS`.
    pub name: String,
    /// City, e.g. `Amsterdam`.
    pub city: String,
    /// Country code, e.g. `NL`.
    pub country: String,
    /// `networkType`, e.g. `mobile`.
    #[serde(default = "mobile")]
    pub network_type: String,
    /// Offered by `available-networks`; switching to an inactive one answers 409.
    #[serde(default = "yes")]
    pub active: bool,
}

/// A subscription, with the secrets a real provider would hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimSubscription {
    /// `subscriptionId`.
    pub id: String,
    /// `status`; only `active` can be renewed, switched or given new credentials (else 409).
    #[serde(default = "active")]
    pub status: String,
    /// `activeUntil`, ms since the epoch.
    pub active_until_ms: i64,
    /// `userNote`.
    #[serde(default)]
    pub user_note: Option<String>,
    /// `rotationPolicy`.
    #[serde(default)]
    pub rotation_policy: Option<i64>,
    /// The proxy port, shown in `label`.
    pub port: u16,
    /// `connectionType`, shown in `label`.
    #[serde(default = "private")]
    pub connection_type: String,
    /// The network's `id`.
    pub network_id: String,
    /// Plan ids `renewal-plans` offers (inactive ones are left out).
    #[serde(default)]
    pub renewal_plan_ids: Vec<String>,
    /// Proxy login.
    pub username: String,
    /// Proxy password.
    pub password: String,
    /// VPN UUID.
    pub vpn: String,
    /// Belongs to another account: every op on it answers 403 and `subscriptions` hides it.
    #[serde(default)]
    pub foreign: bool,
}

/// A coupon code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimCoupon {
    /// The code, e.g. `MYCODE`.
    pub code: String,
    /// Whole percent off the price (0 to 100).
    pub percent_off: u32,
    /// An inactive code answers 400.
    #[serde(default = "yes")]
    pub active: bool,
}

/// Switches for gateway behaviours the reference allows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimSettings {
    /// Answer a one-subscription purchase with `subscription` instead of `subscriptions`.
    pub single_purchase_shape: bool,
    /// Renew from the old `activeUntil` even when it has passed (a long-lapsed subscription
    /// then stays in the past), instead of from max(activeUntil, now).
    pub renew_from_expiry: bool,
    /// Added to the wall clock, in ms: moves the simulator's "now" for tests.
    pub clock_offset_ms: i64,
    /// Every `/api/proxy` request waits this long before it is handled, in ms (a slow
    /// gateway, for benchmarks).
    pub latency_ms: u64,
}

fn yes() -> bool {
    true
}
fn private() -> String {
    "private".into()
}
fn mobile() -> String {
    "mobile".into()
}
fn active() -> String {
    "active".into()
}

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;

impl SimState {
    /// The built-in sample: four networks (one inactive), five plans (one sold out, one
    /// inactive), ten subscriptions expiring from two days ago to 45 days ahead of `now_ms`
    /// (one suspended, one, due in two days, whose only renewal plan is sold out), a 100.00 balance and a
    /// 10 % coupon `MYCODE`.
    #[must_use]
    pub fn sample(now_ms: i64) -> Self {
        let net = |id: &str, name: &str, city: &str, country: &str, active: bool| SimNetwork {
            id: id.into(),
            name: name.into(),
            city: city.into(),
            country: country.into(),
            network_type: "mobile".into(),
            active,
        };
        let plan = |id: &str, network_id: &str, days: i64, price_cents: i64| SimPlan {
            id: id.into(),
            connection_type: "private".into(),
            duration_ms: days * DAY_MS,
            price_cents,
            popular: false,
            network_id: network_id.into(),
            active: true,
            sold_out: false,
        };
        let networks = vec![
            net("b1c2d3e4f5g6h7j8k9m0n1p2", "DE-BER", "Berlin", "DE", true),
            net("n1l2a3m4s5t6e7r8d9a0m1n2", "NL-AMS", "Amsterdam", "NL", true),
            net("u1s2n3y4c5n6e7w8y9o0r1k2", "US-NYC", "New York", "US", true),
            net("f1r2p3a4r5i6s7x8x9x0x1x2", "FR-PAR", "Paris", "FR", false),
        ];
        let nl = "n1l2a3m4s5t6e7r8d9a0m1n2";
        let plans = vec![
            SimPlan { popular: true, ..plan("k17m3q5v7n9p1r2t4w6y8z0a", nl, 30, 1200) },
            plan("q2w4e6r8t0y2u4i6o8p0a2s4", nl, 90, 3300),
            plan("d3e5b7e9r1l3i5n7p9l0a2n4", "b1c2d3e4f5g6h7j8k9m0n1p2", 30, 1100),
            SimPlan { sold_out: true, ..plan("s0l4d0u7n1y2c3p4l5a6n7x8", "u1s2n3y4c5n6e7w8y9o0r1k2", 30, 1500) },
            SimPlan { active: false, ..plan("p4r1s0l4d1n2a3c4t5i6v7e8", "f1r2p3a4r5i6s7x8x9x0x1x2", 30, 900) },
        ];
        let nl_plans = vec!["k17m3q5v7n9p1r2t4w6y8z0a".to_string(), "q2w4e6r8t0y2u4i6o8p0a2s4".to_string()];
        let offsets = [
            -2 * DAY_MS,
            6 * HOUR_MS,
            DAY_MS,
            2 * DAY_MS,
            70 * HOUR_MS,
            5 * DAY_MS,
            10 * DAY_MS,
            20 * DAY_MS,
            29 * DAY_MS,
            45 * DAY_MS,
        ];
        let subscriptions = offsets
            .iter()
            .enumerate()
            .map(|(i, off)| {
                let n = i as u16;
                let id = if i == 0 {
                    "j97b2f6m1k4n8p3r5t7v9x0z".to_string()
                } else {
                    format!("s{:02}b2f6m1k4n8p3r5t7v9x0z", i)
                };
                let (network_id, renewal_plan_ids) = match i {
                    3 => ("u1s2n3y4c5n6e7w8y9o0r1k2".to_string(), vec!["s0l4d0u7n1y2c3p4l5a6n7x8".to_string()]),
                    7 => ("b1c2d3e4f5g6h7j8k9m0n1p2".to_string(), vec!["d3e5b7e9r1l3i5n7p9l0a2n4".to_string()]),
                    _ => (nl.to_string(), nl_plans.clone()),
                };
                SimSubscription {
                    id,
                    status: if i == 6 { "suspended".into() } else { "active".into() },
                    active_until_ms: now_ms + off,
                    user_note: Some(format!("Client {}", (b'A' + (i % 3) as u8) as char)),
                    rotation_policy: Some(10),
                    port: 12001 + n,
                    connection_type: "private".into(),
                    network_id,
                    renewal_plan_ids,
                    username: format!("u_sim{i:02}"),
                    password: format!("p_sim{i:02}x7"),
                    vpn: format!("7f3d9d4a-8b9f-4a93-9f55-2d5e3b7f1c{i:02}"),
                    foreign: false,
                }
            })
            .collect();
        SimState {
            balance_cents: 10_000,
            plans,
            networks,
            subscriptions,
            coupons: vec![
                SimCoupon { code: "MYCODE".into(), percent_off: 10, active: true },
                SimCoupon { code: "OLDCODE".into(), percent_off: 50, active: false },
            ],
            settings: SimSettings::default(),
        }
    }

    /// Checks what the gateway relies on: ids of `[a-z0-9]+`, unique; non-negative prices
    /// and positive durations; coupons of at most 100 %; network and plan references that
    /// exist.
    ///
    /// # Errors
    /// A sentence naming the first bad entry.
    pub fn validate(&self) -> Result<(), String> {
        fn ids<'a>(what: &str, ids: impl Iterator<Item = &'a str>) -> Result<(), String> {
            let mut seen = std::collections::HashSet::new();
            for id in ids {
                if id.is_empty() || !id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) {
                    return Err(format!("{what} id {id:?}: ids are lowercase letters and digits only"));
                }
                if !seen.insert(id) {
                    return Err(format!("{what} id {id:?} appears twice"));
                }
            }
            Ok(())
        }
        ids("plan", self.plans.iter().map(|p| p.id.as_str()))?;
        ids("network", self.networks.iter().map(|n| n.id.as_str()))?;
        ids("subscription", self.subscriptions.iter().map(|s| s.id.as_str()))?;
        let network = |id: &str| self.networks.iter().any(|n| n.id == id);
        for p in &self.plans {
            if p.price_cents < 0 || p.duration_ms <= 0 {
                return Err(format!("plan {}: price_cents must be >= 0 and duration_ms > 0", p.id));
            }
            if !network(&p.network_id) {
                return Err(format!("plan {}: network {:?} does not exist", p.id, p.network_id));
            }
        }
        for s in &self.subscriptions {
            if !network(&s.network_id) {
                return Err(format!("subscription {}: network {:?} does not exist", s.id, s.network_id));
            }
            if let Some(p) = s.renewal_plan_ids.iter().find(|p| !self.plans.iter().any(|plan| &plan.id == *p)) {
                return Err(format!("subscription {}: renewal plan {p:?} does not exist", s.id));
            }
        }
        if let Some(c) = self.coupons.iter().find(|c| c.percent_off > 100) {
            return Err(format!("coupon {}: percent_off must be 0 to 100", c.code));
        }
        Ok(())
    }

    /// An account with nothing in it but `balance_cents`.
    #[must_use]
    pub fn empty(balance_cents: i64) -> Self {
        SimState {
            balance_cents,
            plans: vec![],
            networks: vec![],
            subscriptions: vec![],
            coupons: vec![],
            settings: SimSettings::default(),
        }
    }
}
