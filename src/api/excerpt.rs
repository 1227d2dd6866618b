//! Secret-free excerpts of response bodies and provider messages, for errors and logs.
//!
//! A body quoted in an error may be a `subscriptions` answer full of credentials, or an HTML
//! page echoing anything. JSON is walked and every secret-bearing field (credentials,
//! protocols, rotation path, VPN id) and every URL is replaced before it is cut short; other
//! text has control characters removed, URL-like and `user:pass@host`-like words replaced,
//! and the API key removed. The text rules themselves are [`crate::values::text`]'s.

use serde_json::Value;

use crate::values::text::{REDACTED, clean_text, looks_secret, remove_secrets};

/// The most characters of a body quoted in an error.
pub const EXCERPT_CHARS: usize = 160;

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
        // Not JSON (cut short, an HTML page quoting it): secret fields are found by shape.
        Err(_) => clean_text(&redact_fields_in_text(&String::from_utf8_lossy(body))),
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
    let text = remove_secrets(&clean_text(&text), secrets);
    Some(text.chars().take(200).collect())
}

/// Replaces secret-bearing fields, URL strings and URL-like keys in a JSON value, in place.
pub fn redact_value(v: &mut Value) {
    match v {
        Value::Object(map) => {
            let entries = std::mem::take(map);
            for (k, mut val) in entries {
                if SECRET_KEYS.contains(&k.as_str()) {
                    val = Value::String(REDACTED.to_owned());
                } else {
                    redact_value(&mut val);
                }
                let key = if looks_secret(&k) { format!("{REDACTED}{}", map.len()) } else { k };
                map.insert(key, val);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_value),
        Value::String(s) if looks_secret(s) => *s = REDACTED.to_owned(),
        _ => {}
    }
}

/// In text that is not (or not all) JSON, replaces the value after every secret-bearing key
/// (`"password": "…"`, `"credentials": {…}`): a string up to its closing quote, an object or
/// array up to its closing bracket (or the end of the text, when it was cut short), anything
/// else up to the next `,` or `}`; and in `key=value` / `key: value` text (a form, a log
/// line), the word after a secret key.
#[must_use]
pub fn redact_fields_in_text(text: &str) -> String {
    let mut out = redact_key_value_words(text);
    for key in SECRET_KEYS {
        let needle = format!("\"{key}\"");
        let mut from = 0;
        while let Some(found) = out[from..].find(&needle) {
            let after_key = from + found + needle.len();
            let rest = &out[after_key..];
            let Some(colon) = rest.find(|c: char| !c.is_whitespace()).filter(|&i| rest[i..].starts_with(':')) else {
                from = after_key;
                continue;
            };
            let start = after_key + colon + 1;
            let start = start + out[start..].len() - out[start..].trim_start().len();
            let end = value_end_in_text(&out, start);
            out.replace_range(start..end, &format!("\"{REDACTED}\""));
            from = start + REDACTED.len() + 2;
        }
    }
    out
}

/// `password=hunter2`, `token: abc` → the word after a secret key (any case) is replaced.
fn redact_key_value_words(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut redact_next = false;
    for piece in text.split_inclusive(|c: char| c.is_whitespace() || c == '&' || c == ';' || c == ',') {
        if redact_next && !piece.trim().is_empty() {
            out.push_str(REDACTED);
            out.push_str(&piece[piece.trim_end().len()..]);
            redact_next = false;
            continue;
        }
        let word = piece.trim_end_matches(|c: char| c.is_whitespace() || c == '&' || c == ';' || c == ',');
        let secret_key = |k: &str| SECRET_KEYS.iter().any(|s| s.eq_ignore_ascii_case(k.trim_matches(['"', '\''])));
        match word.split_once(['=', ':']) {
            Some((k, v)) if secret_key(k) && !v.is_empty() && !v.starts_with('"') && !v.starts_with('{') => {
                out.push_str(&piece[..k.len() + 1]);
                out.push_str(REDACTED);
                out.push_str(&piece[word.len()..]);
            }
            Some((k, "")) if secret_key(k) => {
                out.push_str(piece);
                redact_next = true;
            }
            _ => out.push_str(piece),
        }
    }
    out
}

/// Where the value starting at `start` ends, as well as a possibly cut-short text allows.
fn value_end_in_text(text: &str, start: usize) -> usize {
    let b = text.as_bytes();
    match b.get(start) {
        Some(b'"') => {
            let mut i = start + 1;
            while i < b.len() {
                match b[i] {
                    b'\\' => i += 2,
                    b'"' => return i + 1,
                    _ => i += 1,
                }
            }
            b.len()
        }
        Some(b'{' | b'[') => {
            let (mut depth, mut i, mut in_str) = (0usize, start, false);
            while i < b.len() {
                match (b[i], in_str) {
                    (b'\\', true) => i += 1,
                    (b'"', _) => in_str = !in_str,
                    (b'{' | b'[', false) => depth += 1,
                    (b'}' | b']', false) => {
                        depth -= 1;
                        if depth == 0 {
                            return i + 1;
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            b.len()
        }
        _ => text[start..].find([',', '}']).map_or(text.len(), |i| start + i),
    }
}

/// Does a JSON path (`subscriptions[0].credentials.password`) run through a secret field?
pub(crate) fn is_secret_path(path: &str) -> bool {
    path.split(['.', '[', ']']).any(|seg| SECRET_KEYS.contains(&seg))
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
    fn secret_fields_are_found_by_shape_in_a_body_that_is_not_json() {
        // Cut short in the middle of a subscription: not JSON, but the credentials must go.
        let body = br#"{"ok":true,"subscriptions":[{"subscriptionId":"abc","credentials":{"username":"u_6k8s9d","password":"p_2n4m6q"},"rotate":{"rotatePath":"/r/abcd1234"},"status":"act"#;
        let e = excerpt(body, &[]);
        assert!(!e.contains("p_2n4m6q") && !e.contains("u_6k8s9d") && !e.contains("abcd1234"), "{e}");
        let cut = br#"<html>error near "password": "hunter22secret" and "#;
        let e = excerpt(cut, &[]);
        assert!(!e.contains("hunter22secret"), "{e}");
        let form = b"bad request: username=u_sim00&password=p_sim00x7 token: tk_123456 socks5://a:b@c";
        let e = excerpt(form, &[]);
        assert!(!e.contains("p_sim00x7") && !e.contains("u_sim00") && !e.contains("tk_123456"), "{e}");
    }

    #[test]
    fn url_like_json_keys_are_replaced() {
        let e = excerpt(br#"{"ok":true,"http://bob:SECRETPW@x":1}"#, &[]);
        assert!(!e.contains("SECRETPW"), "{e}");
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
