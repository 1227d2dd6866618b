//! Text rules for everything the provider writes that we print, store or email: control
//! characters (terminal escapes, newlines) become spaces, whitespace is collapsed, and words
//! that look like a URL or a `user:pass@host` login are replaced by [`REDACTED`].

/// Shown instead of a secret.
pub const REDACTED: &str = "<redacted>";

/// URL-like (`scheme://…`), login-like (`user:pass@host`) or rotation-path-like (`/r/…`, which
/// works without the API key) text. A plain email address (`ops@example.com`) is not.
#[must_use]
pub fn looks_secret(token: &str) -> bool {
    let bare = token.trim_start_matches(['"', '\'', '(', '[', '{', '=', ':']);
    token.contains("://")
        || token.split_once('@').is_some_and(|(before, _)| before.contains(':'))
        || bare.starts_with("/r/")
}

/// Provider text made safe to print: control characters (escape sequences, newlines) become
/// spaces, whitespace is collapsed, and URL- or login-like words are replaced.
#[must_use]
pub fn clean_text(text: &str) -> String {
    text.split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|tok| !tok.is_empty())
        .map(|tok| if looks_secret(tok) { REDACTED } else { tok })
        .collect::<Vec<_>>()
        .join(" ")
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
}
