//! Reading the provider's answers: the success envelope (`{"ok": true, …}`), the op's fields
//! with the JSON path of any error, and `subscriptions[]` entry by entry.
//!
//! Error reasons name the path and serde's complaint, never a secret: a complaint about a
//! field under `credentials`, `protocols` or the like is withheld, URL- and login-like words
//! are replaced, and the API key is removed wherever the provider echoed it.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::error::{Failure, Op};
use super::excerpt::{excerpt, is_secret_path, provider_message};
use super::types::{MalformedEntry, Subscription, SubscriptionList};
use crate::values::SubscriptionId;
use crate::values::text::{clean_text, remove_secrets};

/// A success envelope (`{"ok": true, …}`) of one op, with the secrets to keep out of errors.
pub(super) struct Envelope<'a> {
    op: Op,
    map: Map<String, Value>,
    secrets: &'a [&'a str],
}

impl<'a> Envelope<'a> {
    /// Checks that `body` is a JSON object with `"ok": true`.
    pub(super) fn parse(op: Op, status: u16, body: &[u8], secrets: &'a [&'a str]) -> Result<Self, Failure> {
        let malformed = |reason: &str| Failure::Malformed {
            op,
            status,
            reason: reason.to_owned(),
            excerpt: excerpt(body, secrets),
        };
        let value: Value = serde_json::from_slice(body).map_err(|_| malformed("the body is not JSON"))?;
        let Value::Object(map) = value else {
            return Err(malformed("the body is not a JSON object"));
        };
        match map.get("ok") {
            Some(Value::Bool(true)) => Ok(Envelope { op, map, secrets }),
            Some(Value::Bool(false)) => {
                let msg = provider_message(body, secrets).unwrap_or_else(|| "no message".into());
                Err(malformed(&format!("\"ok\": false ({msg})")))
            }
            _ => Err(malformed("\"ok\": true is missing")),
        }
    }

    fn malformed(&self, reason: String) -> Failure {
        let excerpt = excerpt(Value::Object(self.map.clone()).to_string().as_bytes(), self.secrets);
        Failure::Malformed { op: self.op, status: 200, reason, excerpt }
    }

    /// Deserializes the field `name` into `T`.
    pub(super) fn field<T: DeserializeOwned>(&self, name: &str) -> Result<T, Failure> {
        let v = self.map.get(name).cloned().ok_or_else(|| self.malformed(format!("missing field `{name}`")))?;
        decode(v, name, self.secrets).map_err(|reason| self.malformed(reason))
    }

    /// Deserializes the whole envelope into `T`.
    pub(super) fn whole<T: DeserializeOwned>(&self) -> Result<T, Failure> {
        decode(Value::Object(self.map.clone()), "", self.secrets).map_err(|reason| self.malformed(reason))
    }

    /// `subscriptions[]`, entry by entry: an entry that does not parse is set aside with its
    /// reason, the others are kept.
    pub(super) fn subscription_list(&self) -> Result<SubscriptionList, Failure> {
        let Some(Value::Array(items)) = self.map.get("subscriptions") else {
            return Err(self.malformed("`subscriptions` is missing or not an array".into()));
        };
        let mut list = SubscriptionList::default();
        for (index, item) in items.iter().enumerate() {
            match decode::<Subscription>(item.clone(), &format!("subscriptions[{index}]"), self.secrets) {
                Ok(s) => list.subscriptions.push(s),
                Err(reason) => {
                    let subscription_id =
                        item.get("subscriptionId").and_then(Value::as_str).and_then(|s| SubscriptionId::parse(s).ok());
                    list.malformed.push(MalformedEntry { index, subscription_id, reason });
                }
            }
        }
        Ok(list)
    }
}

/// serde with the failing path, e.g. `subscriptions[3].activeUntil: invalid type: …`; the
/// message is withheld when the path runs through a secret field.
fn decode<T: DeserializeOwned>(v: Value, prefix: &str, secrets: &[&str]) -> Result<T, String> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let path = match (prefix, path.as_str()) {
            (p, ".") => p.to_owned(),
            ("", q) => q.to_owned(),
            (p, q) if q.starts_with('[') => format!("{p}{q}"),
            (p, q) => format!("{p}.{q}"),
        };
        let msg = if is_secret_path(&path) {
            "invalid value (not shown: secret field)".to_owned()
        } else {
            remove_secrets(&clean_text(&e.inner().to_string()), secrets)
        };
        let path = remove_secrets(&clean_text(&path), secrets);
        if path.is_empty() { msg } else { format!("{path}: {msg}") }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_path_hides_the_value() {
        let v = serde_json::json!({"subscriptionId": "abc", "status": "active", "activeUntil": 1, "credentials": {"username": 5, "password": 123456}});
        let err = decode::<Subscription>(v, "subscriptions[0]", &[]).unwrap_err();
        assert!(err.starts_with("subscriptions[0].credentials"), "{err}");
        assert!(!err.contains("123456") && !err.contains('5'), "{err}");
    }

    #[test]
    fn an_echoed_key_is_removed_from_reasons() {
        let v = serde_json::json!({"subscriptionId": "abc", "status": "active", "activeUntil": "rk_live_secret1"});
        let err = decode::<Subscription>(v, "subscriptions[0]", &["rk_live_secret1"]).unwrap_err();
        assert!(!err.contains("rk_live_secret1") && err.contains("activeUntil"), "{err}");
    }
}
