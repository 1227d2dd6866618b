//! Reading the provider's answers: the success envelope (`{"ok": true, …}`), the op's fields
//! with the JSON path of any error, and `subscriptions[]` entry by entry from the raw bytes
//! (`split.rs` finds the entries), so that one bad entry cannot hide the others.
//!
//! Error reasons name the path and serde's complaint, never a secret: a complaint about a
//! field under `credentials`, `protocols` or the like is withheld, URL- and login-like words
//! are replaced, and the API key is removed wherever the provider echoed it.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::error::{Failure, Op};
use super::excerpt::{excerpt, is_secret_path, provider_message};
use super::split::{array_elements, object_members};
use super::types::{MalformedEntry, Subscription, SubscriptionList};
use crate::values::SubscriptionId;
use crate::values::text::{clean_text, remove_secrets};

/// A 2xx answer's body, before it is read: what the op's reader gets.
pub(super) struct Body<'a> {
    /// The op answered.
    pub(super) op: Op,
    /// The HTTP status (2xx).
    pub(super) status: u16,
    /// The raw bytes.
    pub(super) bytes: &'a [u8],
    /// Strings to keep out of every error text (the key, learned proxy logins).
    pub(super) secrets: &'a [&'a str],
}

impl<'a> Body<'a> {
    /// The whole body as a success envelope.
    pub(super) fn envelope(&self) -> Result<Envelope<'a>, Failure> {
        Envelope::parse(self.op, self.status, self.bytes, self.secrets)
    }

    fn malformed(&self, reason: &str) -> Failure {
        Failure::Malformed {
            op: self.op,
            status: self.status,
            reason: reason.to_owned(),
            excerpt: excerpt(self.bytes, self.secrets),
        }
    }

    /// `subscriptions[]`, entry by entry from the raw bytes: an entry that does not parse
    /// (whatever it holds: invalid UTF-8, out-of-range numbers, deep nesting) is set aside
    /// with its reason, non-object entries are counted, the others are kept. Only an unusable
    /// envelope (not an object, `ok` not `true`, no `subscriptions` array) fails the read.
    pub(super) fn subscription_list(&self) -> Result<SubscriptionList, Failure> {
        // The common case first: a well-formed answer, typed in one pass. Anything it refuses
        // (one bad entry, a non-object, a duplicate key, trailing bytes) is read again below,
        // entry by entry, and gets exactly that reading's result.
        if let Ok(whole) = serde_json::from_slice::<WholeList>(self.bytes)
            && whole.ok
        {
            return Ok(SubscriptionList { subscriptions: whole.subscriptions, malformed: Vec::new(), not_objects: 0 });
        }
        let b = self.bytes;
        let members = match object_members(b) {
            Ok(m) => m,
            Err(_) if serde_json::from_slice::<serde::de::IgnoredAny>(b).is_ok() => {
                return Err(self.malformed("the body is not a JSON object"));
            }
            Err(_) => return Err(self.malformed("the body is not JSON")),
        };
        let member = |name: &str| {
            let quoted = format!("\"{name}\"");
            members.iter().find(|(k, _)| &b[k.clone()] == quoted.as_bytes()).map(|(_, v)| v.clone())
        };
        match member("ok").map(|v| &b[v]) {
            Some(b"true") => {}
            Some(b"false") => {
                let msg = provider_message(b, self.secrets).unwrap_or_else(|| "no message".into());
                return Err(self.malformed(&format!("\"ok\": false ({msg})")));
            }
            _ => return Err(self.malformed("\"ok\": true is missing")),
        }
        let not_array = || self.malformed("`subscriptions` is missing or not an array");
        let items = member("subscriptions").ok_or_else(not_array)?;
        let items = array_elements(b, items).map_err(|_| not_array())?;
        let mut list = SubscriptionList::default();
        for (index, range) in items.into_iter().enumerate() {
            let item = &b[range];
            if item.first() != Some(&b'{') {
                list.not_objects += 1;
                continue;
            }
            match decode_slice::<Subscription>(item, &format!("subscriptions[{index}]"), self.secrets) {
                Ok(s) => list.subscriptions.push(s),
                Err(reason) => {
                    let subscription_id = id_of(item);
                    list.malformed.push(MalformedEntry { index, subscription_id, reason });
                }
            }
        }
        Ok(list)
    }
}

/// A `subscriptions` answer in which every entry parses (the fast path of
/// [`Body::subscription_list`]); other members are ignored, as on the slow path.
#[derive(serde::Deserialize)]
struct WholeList {
    ok: bool,
    subscriptions: Vec<Subscription>,
}

/// The `subscriptionId` of an entry that did not parse, when it is a valid id.
fn id_of(item: &[u8]) -> Option<SubscriptionId> {
    let members = object_members(item).ok()?;
    let (_, v) = members.into_iter().find(|(k, _)| &item[k.clone()] == b"\"subscriptionId\"")?;
    let text: String = serde_json::from_slice(&item[v]).ok()?;
    SubscriptionId::parse(&text).ok()
}

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
}

/// [`decode`] straight from bytes: no generic tree is built, and a complaint (invalid UTF-8,
/// a number out of range, nesting past serde's recursion limit) is this value's alone.
fn decode_slice<T: DeserializeOwned>(bytes: &[u8], prefix: &str, secrets: &[&str]) -> Result<T, String> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| path_error(&e, prefix, secrets))?;
    de.end().map_err(|e| format!("{prefix}: {}", remove_secrets(&clean_text(&e.to_string()), secrets)))?;
    Ok(value)
}

/// serde with the failing path, e.g. `subscriptions[3].activeUntil: invalid type: …`; the
/// message is withheld when the path runs through a secret field.
fn decode<T: DeserializeOwned>(v: Value, prefix: &str, secrets: &[&str]) -> Result<T, String> {
    serde_path_to_error::deserialize(v).map_err(|e| path_error(&e, prefix, secrets))
}

/// The reason for a serde error at a path: `path: message`, the message withheld under a
/// secret field, cleaned, the secrets removed.
fn path_error<E: std::fmt::Display>(e: &serde_path_to_error::Error<E>, prefix: &str, secrets: &[&str]) -> String {
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
