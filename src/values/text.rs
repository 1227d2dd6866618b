//! Text rules for everything the provider writes that we print, store or email: control
//! characters (terminal escapes, newlines) become spaces, whitespace is collapsed, and words
//! that look like a URL or a `user:pass@host` login are replaced by [`REDACTED`].

/// Shown instead of a secret.
pub const REDACTED: &str = "<redacted>";

/// Words after which (with `:` or `=`) a value is a secret: `password: x`, `token=x`.
const SECRET_KEYWORDS: [&str; 9] =
    ["password", "passwd", "pwd", "pass", "secret", "token", "apikey", "api_key", "authorization"];

/// `password:`, `"token"=`, `Passwd:` …: a secret keyword and its separator, nothing after.
fn is_secret_keyword(token: &str) -> bool {
    let t = token.trim_matches(['"', '\'', '(', '[', '{', ',']).to_ascii_lowercase();
    t.strip_suffix([':', '=']).is_some_and(|k| SECRET_KEYWORDS.contains(&k.trim_matches(['"', '\''])))
}

/// URL-like (`scheme://…`), login-like (`user:pass@host`, `ip:port:user:pass`, a pair of
/// words with digits around a colon such as `u_sim01:p_sim01x7`), rotation-path-like (`/r/…`,
/// which works without the API key), or a keyword with its value (`password=x`). A plain
/// email address (`ops@example.com`) or a time (`03:20`) is not.
#[must_use]
pub fn looks_secret(token: &str) -> bool {
    let bare = token.trim_start_matches(['"', '\'', '(', '[', '{', '=', ':']);
    let wordy = |s: &str| s.chars().any(|c| c.is_ascii_alphabetic()) && s.chars().any(|c| c.is_ascii_digit());
    let pair = token.trim_matches(['"', '\'', '(', ')', '[', ']', '{', '}', ',', '.', ';']);
    token.contains("://")
        || token.split_once('@').is_some_and(|(before, _)| before.contains(':'))
        || bare.starts_with("/r/")
        || (!pair.contains('/') && pair.split(':').collect::<Vec<_>>().windows(2).any(|w| wordy(w[0]) && wordy(w[1])))
        || token.split_once(['=', ':']).is_some_and(|(k, v)| {
            !v.is_empty()
                && SECRET_KEYWORDS.contains(&k.trim_matches(['"', '\'', '(', '[', '{']).to_ascii_lowercase().as_str())
        })
}

/// Provider text made safe to print: control characters (escape sequences, newlines) become
/// spaces, whitespace is collapsed, and URL- or login-like words are replaced, as is the word
/// after a secret keyword (`password: x`).
#[must_use]
pub fn clean_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut after_keyword = false;
    for tok in text.split(|c: char| c.is_whitespace() || c.is_control()).filter(|tok| !tok.is_empty()) {
        // Every secret form and every keyword has a `:`, `=` or `/`: a word without one is
        // plain (the common case, checked without allocating).
        let marked = tok.contains([':', '=', '/']);
        let secret = after_keyword || (marked && looks_secret(tok));
        after_keyword = marked && is_secret_keyword(tok);
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(if secret { REDACTED } else { tok });
    }
    out
}

/// Text safe for a terminal line: control characters (escapes, newlines, bells) become
/// spaces and whitespace is collapsed; nothing else changes.
#[must_use]
pub fn printable(text: &str) -> String {
    text.split(|c: char| c.is_whitespace() || c.is_control()).filter(|t| !t.is_empty()).collect::<Vec<_>>().join(" ")
}

/// Replaces every occurrence of each secret (at least 4 characters long) in `text`.
pub fn remove_secrets(text: &str, secrets: &[&str]) -> String {
    secrets.iter().filter(|s| s.len() >= 4).fold(text.to_owned(), |acc, s| acc.replace(s, REDACTED))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_text_removes_escapes_and_logins_but_keeps_emails() {
        assert_eq!(clean_text("a\u{1b}]0;pwned\u{7}\nb"), "a ]0;pwned b");
        assert_eq!(clean_text("see http://bob:pw@x now"), "see <redacted> now");
        assert_eq!(clean_text("bob:pw@x.example"), "<redacted>");
        assert_eq!(clean_text("mail ops@example.com"), "mail ops@example.com");
        assert_eq!(clean_text("rotatePath \"/r/abcd1234\" is invalid"), "rotatePath <redacted> is invalid");
    }

    #[test]
    fn clean_text_removes_keyword_values_and_bare_logins_but_keeps_times_and_prose() {
        assert_eq!(clean_text("bad password: p_sim01x7 given"), "bad password: <redacted> given");
        assert_eq!(clean_text("\"Password\"= hunter2"), "\"Password\"= <redacted>");
        assert_eq!(clean_text("token=abc123 rest"), "<redacted> rest");
        assert_eq!(clean_text("proxy 1.2.3.4:12002:u_sim01:p_sim01x7 is busy"), "proxy <redacted> is busy");
        assert_eq!(clean_text("login u_sim01:p_sim01x7."), "login <redacted>");
        assert_eq!(clean_text("at 03:20:00 error: Sold out (plan:k17)"), "at 03:20:00 error: Sold out (plan:k17)");
        assert_eq!(clean_text("renew: HTTP 402: insufficient balance"), "renew: HTTP 402: insufficient balance");
    }
}
