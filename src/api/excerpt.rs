//! Secret-free excerpts of response bodies and provider messages, for errors and logs.
//!
//! A body quoted in an error may be a `subscriptions` answer full of credentials, or an HTML
//! page echoing anything. JSON is walked and every secret-bearing field (credentials,
//! protocols, rotation path, VPN id) and every URL is replaced before it is cut short; other
//! text has URL-like and `user@host`-like tokens and the API key replaced.

use serde_json::Value;

/// The most characters of a body quoted in an error.
pub const EXCERPT_CHARS: usize = 160;

const REDACTED: &str = "<redacted>";

/// JSON keys whose values are secret wherever they appear.
const SECRET_KEYS: &[&str] = &[
    "credentials",
    "protocols",
    "password",
    "username",
    "vpn",
    "rotate",
    "rotatePath",
    "http",
    "socks5",
    "vless",
    "shadowsocks",
    "apiKey",
    "key",
    "token",
];

/// A short, redacted excerpt of `body`, quoted, e.g. `"<html><head><title>502 Bad…"`.
/// `secrets` are strings (the API key) removed wherever they appear.
#[must_use]
pub fn excerpt(body: &[u8], secrets: &[&str]) -> String {
    if body.is_empty() {
        return "(empty)".to_owned();
    }
    let text = match serde_json::from_slice::<Value>(body) {
        Ok(mut v) => {
            redact_value(&mut v);
            v.to_string()
        }
        Err(_) => redact_text(&String::from_utf8_lossy(body)),
    };
    let text = remove_secrets(&text, secrets);
    let cut: String = text.chars().take(EXCERPT_CHARS).collect();
    let more = if cut.len() < text.len() { "…" } else { "" };
    format!("{:?}", format!("{cut}{more}"))
}

/// The provider's own message from an error body: `error` or `message` of a JSON object,
/// redacted and cut to 200 characters; `None` when there is none.
#[must_use]
pub fn provider_message(body: &[u8], secrets: &[&str]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let msg = v.get("error").or_else(|| v.get("message"))?;
    let text = match msg {
        Value::String(s) => s.clone(),
        Value::Object(o) => o.get("message")?.as_str()?.to_owned(),
        _ => return None,
    };
    let text = remove_secrets(&redact_text(&text), secrets);
    Some(text.chars().take(200).collect())
}

/// Replaces secret-bearing fields and URL strings in a JSON value, in place.
pub fn redact_value(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                if SECRET_KEYS.contains(&k.as_str()) {
                    *val = Value::String(REDACTED.to_owned());
                } else {
                    redact_value(val);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_value),
        Value::String(s) if looks_secret(s) => *s = REDACTED.to_owned(),
        _ => {}
    }
}

/// URL-like (`scheme://…`) or login-like (`user@host`, `user:pass@`) text.
fn looks_secret(token: &str) -> bool {
    token.contains("://") || token.contains('@')
}

/// Does a JSON path (`subscriptions[0].credentials.password`) run through a secret field?
pub(crate) fn is_secret_path(path: &str) -> bool {
    path.split(['.', '[', ']']).any(|seg| SECRET_KEYS.contains(&seg))
}

/// Collapses whitespace and replaces secret-looking tokens in free text.
pub(crate) fn redact_text(text: &str) -> String {
    text.split_whitespace().map(|tok| if looks_secret(tok) { REDACTED } else { tok }).collect::<Vec<_>>().join(" ")
}

fn remove_secrets(text: &str, secrets: &[&str]) -> String {
    secrets.iter().filter(|s| s.len() >= 4).fold(text.to_owned(), |acc, s| acc.replace(s, REDACTED))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_secrets_and_urls_are_replaced() {
        let body = br#"{"ok":true,"subscriptions":[{"subscriptionId":"abc","credentials":{"username":"u_6k8s9d","password":"p_2n4m6q"},"protocols":{"http":"http://u_6k8s9d:p_2n4m6q@proxy.example.com:12001"},"x":"see http://a:b@c"}]}"#;
        let e = excerpt(body, &[]);
        assert!(!e.contains("p_2n4m6q") && !e.contains("u_6k8s9d") && !e.contains("http://"), "{e}");
        assert!(e.contains("subscriptionId"), "{e}");
    }

    #[test]
    fn text_is_cut_and_the_key_removed() {
        let body = format!("<html> key rk_secret_1 at http://x:y@h {}</html>", "a".repeat(500));
        let e = excerpt(body.as_bytes(), &["rk_secret_1"]);
        assert!(!e.contains("rk_secret_1") && !e.contains("x:y"), "{e}");
        assert!(e.chars().count() <= EXCERPT_CHARS + 3, "{e}");
        assert!(e.ends_with("…\""), "{e}");
    }

    #[test]
    fn provider_message_reads_error_or_message() {
        assert_eq!(
            provider_message(br#"{"ok":false,"error":"Insufficient balance"}"#, &[]).as_deref(),
            Some("Insufficient balance")
        );
        assert_eq!(provider_message(br#"{"message":"nope"}"#, &[]).as_deref(), Some("nope"));
        assert_eq!(provider_message(b"<html>", &[]), None);
        assert_eq!(
            provider_message(br#"{"error":"bad key rk_live_123456"}"#, &["rk_live_123456"]).as_deref(),
            Some("bad key <redacted>")
        );
    }
}
