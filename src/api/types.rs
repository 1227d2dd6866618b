//! Serde shapes of the provider API (`../shared/spec/gateway-api.md`) and the small value types
//! they are built from: validated ids, [`EpochMs`] and [`Cents`].
//!
//! Everything here is parse-only for the provider's responses: unknown fields are ignored,
//! optional fields are `Option` or defaulted, and secret fields (credentials, protocol URLs,
//! the rotation path, the VPN id) are [`SecretString`]s that redact themselves in `Debug` and
//! cannot be `Display`ed or serialized by accident. Request bodies are `Serialize` only.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// Why a string is not a valid provider id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {shown}: ids are lowercase letters and digits only (a-z, 0-9), 1 to 64 characters")]
pub struct IdError {
    /// Which kind of id was expected, e.g. `subscription id`.
    pub what: &'static str,
    /// The rejected input, quoted and cut to 40 characters.
    pub shown: String,
}

/// Checks the provider's id syntax `^[a-z0-9]+$` (with a 64-character cap of ours).
fn check_id(what: &'static str, value: &str) -> Result<(), IdError> {
    let ok =
        !value.is_empty() && value.len() <= 64 && value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if ok {
        return Ok(());
    }
    let cut: String = value.chars().take(40).collect();
    let shown = if cut.len() < value.len() { format!("{cut:?}…") } else { format!("{cut:?}") };
    Err(IdError { what, shown })
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Parses `value`, which must match `^[a-z0-9]+$` (at most 64 characters).
            ///
            /// # Errors
            /// [`IdError`] naming the bad input; nothing is sent to the provider.
            pub fn parse(value: &str) -> Result<Self, IdError> {
                check_id($what, value)?;
                Ok(Self(value.to_owned()))
            }

            /// The id as the provider spells it.
            #[must_use]
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, IdError> {
                check_id($what, &value)?;
                Ok(Self(value))
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// A subscription's id (`subscriptionId`), e.g. `j97b2f6m1k4n8p3r5t7v9x0z`.
    SubscriptionId,
    "subscription id"
);
id_type!(
    /// A plan's id (`planId`, `plans[].id`, `renewalPlans[].id`).
    PlanId,
    "plan id"
);
id_type!(
    /// A network's id (`networks[].id`, `targetNetwork`).
    NetworkId,
    "network id"
);

/// An instant as integer milliseconds since the Unix epoch, UTC (`activeUntil`, `endAt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EpochMs(pub i64);

impl EpochMs {
    /// The current wall-clock time.
    #[must_use]
    pub fn now() -> Self {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        Self(ms)
    }

    /// RFC 3339 in UTC to the second, e.g. `2025-11-08T08:53:20Z`; `None` before 1970 or
    /// beyond what `SystemTime` can hold.
    #[must_use]
    pub fn to_rfc3339(self) -> Option<String> {
        let ms = u64::try_from(self.0).ok()?;
        let t = UNIX_EPOCH.checked_add(Duration::from_millis(ms))?;
        // humantime formats only up to year 9999; it panics beyond.
        (self.0 < 253_402_300_800_000).then(|| humantime::format_rfc3339_seconds(t).to_string())
    }

    /// `self - other` in milliseconds, saturating.
    #[must_use]
    pub fn since(self, other: EpochMs) -> i64 {
        self.0.saturating_sub(other.0)
    }
}

impl fmt::Display for EpochMs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_rfc3339() {
            Some(s) => f.write_str(&s),
            None => write!(f, "{} ms", self.0),
        }
    }
}

/// An amount of money in integer cents (`priceAmountCents`). The API names no currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Cents(pub i64);

impl fmt::Display for Cents {
    /// `1200` shows as `12.00`, `-5` as `-0.05`; no currency symbol.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", abs / 100, abs % 100)
    }
}

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

/// The answer to `op=renew`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Renewal {
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
