//! Reading the provider's answers: the success envelope (`{"ok": true, …}`), the op's fields
//! with the JSON path of any error, and `subscriptions[]` entry by entry.
//!
//! Error reasons name the path and serde's complaint, never a secret: a complaint about a
//! field under `credentials`, `protocols` or the like is withheld, and URL- or login-like
//! words are replaced.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::error::{Failure, Op};
use super::excerpt::{excerpt, is_secret_path, provider_message, redact_text};
use super::types::{MalformedEntry, Subscription, SubscriptionId, SubscriptionList};

/// Checks the success envelope: a JSON object with `"ok": true`.
pub(super) fn parse_envelope(
    op: Op,
    status: u16,
    body: &[u8],
    secrets: &[&str],
) -> Result<Map<String, Value>, Failure> {
    let malformed =
        |reason: &str| Failure::Malformed { op, status, reason: reason.to_owned(), excerpt: excerpt(body, secrets) };
    let value: Value = serde_json::from_slice(body).map_err(|_| malformed("the body is not JSON"))?;
    let Value::Object(map) = value else {
        return Err(malformed("the body is not a JSON object"));
    };
    match map.get("ok") {
        Some(Value::Bool(true)) => Ok(map),
        Some(Value::Bool(false)) => {
            let msg = provider_message(body, secrets).unwrap_or_else(|| "no message".into());
            Err(malformed(&format!("\"ok\": false ({msg})")))
        }
        _ => Err(malformed("\"ok\": true is missing")),
    }
}

/// Deserializes `map[name]` into `T`, naming the path of any error.
pub(super) fn field<T: DeserializeOwned>(op: Op, map: &Map<String, Value>, name: &str) -> Result<T, Failure> {
    let v = map.get(name).cloned().ok_or_else(|| Failure::Malformed {
        op,
        status: 200,
        reason: format!("missing field `{name}`"),
        excerpt: excerpt(Value::Object(map.clone()).to_string().as_bytes(), &[]),
    })?;
    decode(v, name).map_err(|reason| Failure::Malformed {
        op,
        status: 200,
        reason,
        excerpt: String::from("(not shown)"),
    })
}

/// Deserializes the whole envelope into `T`.
pub(super) fn from_map<T: DeserializeOwned>(op: Op, map: &Map<String, Value>) -> Result<T, Failure> {
    decode(Value::Object(map.clone()), "").map_err(|reason| Failure::Malformed {
        op,
        status: 200,
        reason,
        excerpt: excerpt(Value::Object(map.clone()).to_string().as_bytes(), &[]),
    })
}

/// serde with the failing path, e.g. `subscriptions[3].activeUntil: invalid type: …`; the
/// message is withheld when the path runs through a secret field.
pub(crate) fn decode<T: DeserializeOwned>(v: Value, prefix: &str) -> Result<T, String> {
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
            redact_text(&e.inner().to_string())
        };
        if path.is_empty() { msg } else { format!("{path}: {msg}") }
    })
}

/// `subscriptions[]`, entry by entry.
pub(super) fn parse_subscription_list(map: &Map<String, Value>) -> Result<SubscriptionList, Failure> {
    let Some(Value::Array(items)) = map.get("subscriptions") else {
        return Err(Failure::Malformed {
            op: Op::Subscriptions,
            status: 200,
            reason: "`subscriptions` is missing or not an array".into(),
            excerpt: excerpt(Value::Object(map.clone()).to_string().as_bytes(), &[]),
        });
    };
    let mut list = SubscriptionList::default();
    for (index, item) in items.iter().enumerate() {
        match decode::<Subscription>(item.clone(), &format!("subscriptions[{index}]")) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_path_hides_the_value() {
        let v = serde_json::json!({"subscriptionId": "abc", "status": "active", "activeUntil": 1, "credentials": {"username": 5, "password": 123456}});
        let err = decode::<Subscription>(v, "subscriptions[0]").unwrap_err();
        assert!(err.starts_with("subscriptions[0].credentials"), "{err}");
        assert!(!err.contains("123456") && !err.contains('5'), "{err}");
    }
}
