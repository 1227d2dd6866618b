//! Serde shapes of the provider API (`../shared/spec/gateway-api.md`), built from the plain
//! values of [`crate::values`] (validated ids, [`EpochMs`], [`Cents`]).
//!
//! Everything here is parse-only for the provider's responses: unknown fields are ignored,
//! optional fields are `Option` or defaulted, and secret fields (credentials, protocol URLs,
//! the rotation path, the VPN id) are [`SecretString`]s that redact themselves in `Debug` and
//! cannot be `Display`ed or serialized by accident. Request bodies are `Serialize` only.

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::values::{Cents, EpochMs, NetworkId, PlanId, SubscriptionId};

/// One purchasable plan from `op=plans`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// `id`.
    pub id: PlanId,
    /// `connectionType`, e.g. `private`.
    #[serde(default)]
    pub connection_type: Option<String>,
    /// `durationMs`: what one unit of the plan adds, in ms (2592000000 = 30 days).
    pub duration_ms: i64,
    /// `priceAmountCents`: the price of one unit.
    pub price_amount_cents: Cents,
    /// `popular`, `false` when absent.
    #[serde(default)]
    pub popular: bool,
    /// `network`, where the provider gives it.
    #[serde(default)]
    pub network: Option<PlanNetwork>,
}

/// `plans[].network`: where a plan's proxies are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanNetwork {
    /// `name`, e.g. `NL-AMS`.
    #[serde(default)]
    pub name: Option<String>,
    /// `city`, e.g. `Amsterdam`.
    #[serde(default)]
    pub city: Option<String>,
    /// `country`, e.g. `NL`.
    #[serde(default)]
    pub country: Option<String>,
    /// `networkType`, e.g. `mobile`.
    #[serde(default)]
    pub network_type: Option<String>,
}

/// One plan from `op=renewal-plans`: eligible to renew one given subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RenewalPlan {
    /// `id`, sent back as `planId` in `renew`.
    pub id: PlanId,
    /// `connectionType`.
    #[serde(default)]
    pub connection_type: Option<String>,
    /// `durationMs`: what one renewal with `repeatCount: 1` adds, in ms.
    pub duration_ms: i64,
    /// `priceAmountCents`: the price with `repeatCount: 1`.
    pub price_amount_cents: Cents,
}

/// One network from `op=available-networks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Network {
    /// `id`, usable as `targetNetwork` in `switch-network`.
    pub id: NetworkId,
    /// `networkLabel`, e.g. `DE-BER Berlin`.
    #[serde(default)]
    pub network_label: Option<String>,
    /// `country`, e.g. `DE`.
    #[serde(default)]
    pub country: Option<String>,
}

/// A subscription as `op=subscriptions`, `purchase` and `switch-network` return it.
///
/// Not `Serialize`: it carries secrets, and nothing should write it out whole.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    /// `subscriptionId`.
    pub subscription_id: SubscriptionId,
    /// `status`; only `active` is renewable.
    pub status: String,
    /// `activeUntil`: the expiry instant.
    pub active_until: EpochMs,
    /// `userNote`, free text set by the owner.
    #[serde(default)]
    pub user_note: Option<String>,
    /// `rotationPolicy`.
    #[serde(default)]
    pub rotation_policy: Option<i64>,
    /// `label`, e.g. `12001 - NL - Private`.
    #[serde(default)]
    pub label: Option<String>,
    /// `networkLabel`, e.g. `NL-AMS Amsterdam`.
    #[serde(default)]
    pub network_label: Option<String>,
    /// `credentials`: secret.
    #[serde(default)]
    pub credentials: Option<Credentials>,
    /// `protocols`: secret URLs (they embed the password).
    #[serde(default)]
    pub protocols: Option<Protocols>,
    /// `rotate`.
    #[serde(default)]
    pub rotate: Option<Rotate>,
}

impl Subscription {
    /// Drops the secret fields (credentials, protocol URLs, rotation), keeping the rest:
    /// for a holder that needs only the public fields, once the client has learned the
    /// secrets to redact. At 100,000 subscriptions they are most of the list's memory.
    pub fn forget_secrets(&mut self) {
        self.credentials = None;
        self.protocols = None;
        self.rotate = None;
    }
}

/// `subscriptions[].credentials`: the proxy login. Both fields are secret.
#[derive(Debug, Clone, Deserialize)]
pub struct Credentials {
    /// `username`.
    pub username: SecretString,
    /// `password`.
    pub password: SecretString,
}

/// `subscriptions[].protocols`: connection URLs, all secret (they embed the password).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Protocols {
    /// `http`.
    #[serde(default)]
    pub http: Option<SecretString>,
    /// `socks5`.
    #[serde(default)]
    pub socks5: Option<SecretString>,
    /// `vless`.
    #[serde(default)]
    pub vless: Option<SecretString>,
    /// `shadowsocks`.
    #[serde(default)]
    pub shadowsocks: Option<SecretString>,
}

/// `subscriptions[].rotate`: IP rotation. The path works without the API key, so it is secret.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rotate {
    /// `rotatePath`, e.g. `/r/abcd1234`: secret.
    #[serde(default)]
    pub rotate_path: Option<SecretString>,
    /// `available`.
    #[serde(default)]
    pub available: Option<bool>,
}

/// `op=subscriptions`, parsed entry by entry so that one bad entry cannot hide the others.
#[derive(Debug, Clone, Default)]
pub struct SubscriptionList {
    /// The entries that parsed.
    pub subscriptions: Vec<Subscription>,
    /// The entries that did not, with a secret-free reason each.
    pub malformed: Vec<MalformedEntry>,
    /// Entries that are not JSON objects at all (a number, a string, `null`…): counted, not
    /// listed one by one, since there is no subscription in them to name.
    pub not_objects: usize,
}

/// A `subscriptions[]` entry that did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MalformedEntry {
    /// Position in the provider's array.
    pub index: usize,
    /// `subscriptionId`, when that much could be read and is a valid id.
    pub subscription_id: Option<SubscriptionId>,
    /// What was wrong, e.g. ``activeUntil: invalid type: string "soon", expected i64``.
    pub reason: String,
}

/// Body of `op=purchase` (POST).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PurchaseRequest {
    /// `planId`.
    pub plan_id: PlanId,
    /// `couponCode`, omitted when `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coupon_code: Option<String>,
    /// `repeatCount` (≥ 1): multiplies duration and price of each subscription.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repeat_count: Option<u32>,
    /// `quantity` (≥ 1): how many subscriptions to create.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quantity: Option<u32>,
}

/// The answer to `op=purchase`, with `subscription` / `subscriptions` folded into one list.
#[derive(Debug, Clone)]
pub struct Purchase {
    /// `subscriptionId`: the first created.
    pub subscription_id: SubscriptionId,
    /// `subscriptionIds`: all created.
    pub subscription_ids: Vec<SubscriptionId>,
    /// `subscriptions`, or the single `subscription` as a list of one.
    pub subscriptions: Vec<Subscription>,
}

/// The wire shape of a purchase answer, before normalising.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RawPurchase {
    pub subscription_id: SubscriptionId,
    #[serde(default)]
    pub subscription_ids: Vec<SubscriptionId>,
    #[serde(default)]
    pub subscriptions: Option<Vec<Subscription>>,
    #[serde(default)]
    pub subscription: Option<Subscription>,
}

impl RawPurchase {
    pub(crate) fn normalise(self) -> Purchase {
        let mut subscriptions = self.subscriptions.unwrap_or_default();
        subscriptions.extend(self.subscription);
        let mut subscription_ids = self.subscription_ids;
        if subscription_ids.is_empty() {
            subscription_ids.push(self.subscription_id.clone());
        }
        Purchase { subscription_id: self.subscription_id, subscription_ids, subscriptions }
    }
}

/// Body of `op=renew` (POST).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RenewRequest {
    /// `subscriptionId`.
    pub subscription_id: SubscriptionId,
    /// `planId`: one of the subscription's `renewal-plans`.
    pub plan_id: PlanId,
    /// `couponCode`, omitted when `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coupon_code: Option<String>,
    /// `repeatCount` (≥ 1): multiplies duration and price.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repeat_count: Option<u32>,
}

/// The answer to `op=renew`: the provider renewed the subscription until `endAt`. (What we
/// plan and record before sending is [`crate::attempt::RenewalTerms`].)
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Renewed {
    /// `subscriptionId`.
    pub subscription_id: SubscriptionId,
    /// `endAt`: the new expiry.
    pub end_at: EpochMs,
}

/// The answer to `op=change-credentials`: both fields secret.
#[derive(Debug, Clone, Deserialize)]
pub struct NewCredentials {
    /// `password`: the new proxy password.
    pub password: SecretString,
    /// `vpn`: a UUID that logs in to the VPN protocols.
    pub vpn: SecretString,
}

#[derive(Deserialize)]
pub(crate) struct SubscriptionEnvelope {
    pub subscription: Subscription,
}
