//! What the command line prints: tables (kubectl-style columns) and JSON documents for the
//! provider's plans, subscriptions, renewal plans and networks, and the cycle report
//! ([`report`]). This is the only place that formats for a terminal or a script; the data it
//! prints is made elsewhere.
//!
//! Subscriptions are printed in the API's own shape and names; credentials, protocol URLs,
//! the rotation path and VPN ids are replaced by `<redacted>` unless `--show-secrets`.

pub mod fit;
pub mod forecast;
pub mod report;

pub use fit::{Columns, Fit};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use crate::api::{Network, Plan, RenewalPlan, Subscription, SubscriptionList};
use crate::values::text::clean_text;
use crate::values::{Cents, EpochMs, relative};

/// Table or JSON (`--format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns for people.
    #[default]
    Table,
    /// One JSON document for scripts.
    Json,
}

pub use crate::values::text::REDACTED;

/// A column that wraps (rank, minimum width in characters).
const fn wrap(rank: u8, min: u16) -> Fit {
    Fit::Wrap { rank, min }
}

/// Days, e.g. `30d`, or hours for durations shorter than a day.
#[must_use]
pub fn duration_ms(ms: i64) -> String {
    if ms % 86_400_000 == 0 { format!("{}d", ms / 86_400_000) } else { format!("{:.1}h", ms as f64 / 3_600_000.0) }
}

/// Provider text for a JSON document: cleaned of escapes and login-like words.
fn text(s: Option<&String>) -> Value {
    s.map_or(Value::Null, |s| Value::String(clean_text(s)))
}

/// Provider text for a table cell.
fn cell(s: Option<&String>) -> String {
    s.map(|s| clean_text(s)).unwrap_or_default()
}

fn secret(s: Option<&SecretString>, show: bool) -> Value {
    match (s, show) {
        (None, _) => Value::Null,
        (Some(s), true) => Value::String(s.expose_secret().to_owned()),
        (Some(_), false) => Value::String(REDACTED.into()),
    }
}

/// A subscription in the API's shape, secrets redacted unless `show_secrets`.
#[must_use]
pub fn subscription_json(s: &Subscription, show_secrets: bool) -> Value {
    let mut v = json!({
        "subscriptionId": s.subscription_id,
        "status": clean_text(&s.status),
        "activeUntil": s.active_until,
        "activeUntilUtc": s.active_until.to_rfc3339(),
        "userNote": text(s.user_note.as_ref()),
        "rotationPolicy": s.rotation_policy,
        "label": text(s.label.as_ref()),
        "networkLabel": text(s.network_label.as_ref()),
    });
    if let Some(c) = &s.credentials {
        v["credentials"] = json!({ "username": secret(Some(&c.username), show_secrets), "password": secret(Some(&c.password), show_secrets) });
    }
    if let Some(p) = &s.protocols {
        v["protocols"] = json!({
            "http": secret(p.http.as_ref(), show_secrets),
            "socks5": secret(p.socks5.as_ref(), show_secrets),
            "vless": secret(p.vless.as_ref(), show_secrets),
            "shadowsocks": secret(p.shadowsocks.as_ref(), show_secrets),
        });
    }
    if let Some(r) = &s.rotate {
        v["rotate"] = json!({ "rotatePath": secret(r.rotate_path.as_ref(), show_secrets), "available": r.available });
    }
    v
}

/// `api subscriptions` output.
#[must_use]
pub fn subscriptions(list: &SubscriptionList, format: OutputFormat, show_secrets: bool, now: EpochMs) -> String {
    if format == OutputFormat::Json {
        let malformed: Vec<Value> = list
            .malformed
            .iter()
            .map(|m| json!({ "index": m.index, "subscriptionId": m.subscription_id, "reason": m.reason }))
            .collect();
        let doc = json!({ "subscriptions": list.subscriptions.iter().map(|s| subscription_json(s, show_secrets)).collect::<Vec<_>>(), "malformed": malformed });
        return pretty(&doc);
    }
    let mut header = vec![
        ("SUBSCRIPTION", Fit::Whole),
        ("STATUS", wrap(6, 9)),
        ("ACTIVE UNTIL (UTC)", wrap(5, 10)),
        ("EXPIRES", wrap(4, 7)),
        ("LABEL", wrap(1, 8)),
        ("NETWORK", wrap(2, 8)),
        ("NOTE", Fit::Optional { rank: 0 }),
    ];
    if show_secrets {
        // Secrets are asked for: whole, so that they can be copied.
        header.extend([("USERNAME", Fit::Whole), ("PASSWORD", Fit::Whole), ("HTTP", Fit::Whole)]);
    }
    let mut t = Columns::new(&header);
    for s in &list.subscriptions {
        let mut row = vec![
            s.subscription_id.to_string(),
            clean_text(&s.status),
            s.active_until.to_string(),
            relative(s.active_until, now),
            cell(s.label.as_ref()),
            cell(s.network_label.as_ref()),
            cell(s.user_note.as_ref()),
        ];
        if show_secrets {
            let c = s.credentials.as_ref();
            row.push(c.map(|c| c.username.expose_secret().to_owned()).unwrap_or_default());
            row.push(c.map(|c| c.password.expose_secret().to_owned()).unwrap_or_default());
            row.push(
                s.protocols
                    .as_ref()
                    .and_then(|p| p.http.as_ref())
                    .map(|u| u.expose_secret().to_owned())
                    .unwrap_or_default(),
            );
        }
        t.row(row);
    }
    let mut out = t.render();
    for m in &list.malformed {
        let id = m.subscription_id.as_ref().map_or_else(|| format!("entry {}", m.index), ToString::to_string);
        out.push_str(&fit::wrap(&format!("malformed: {id}: {}\n", m.reason)));
    }
    out
}

/// `api plans` output.
#[must_use]
pub fn plans(plans: &[Plan], format: OutputFormat) -> String {
    if format == OutputFormat::Json {
        return pretty(&json!({ "plans": plans }));
    }
    let mut t = Columns::new(&[
        ("PLAN", Fit::Whole),
        ("TYPE", wrap(2, 8)),
        ("DURATION", Fit::Whole),
        ("PRICE", Fit::Whole),
        ("NETWORK", wrap(1, 10)),
        ("COUNTRY", wrap(0, 7)),
        ("POPULAR", Fit::Optional { rank: 3 }),
    ]);
    for p in plans {
        let net = p.network.as_ref();
        t.row(vec![
            p.id.to_string(),
            cell(p.connection_type.as_ref()),
            duration_ms(p.duration_ms),
            p.price_amount_cents.to_string(),
            cell(net.and_then(|n| n.name.as_ref())),
            cell(net.and_then(|n| n.country.as_ref())),
            if p.popular { "yes".into() } else { String::new() },
        ]);
    }
    t.render()
}

/// `api renewal-plans ID` output.
#[must_use]
pub fn renewal_plans(plans: &[RenewalPlan], format: OutputFormat) -> String {
    if format == OutputFormat::Json {
        return pretty(&json!({ "renewalPlans": plans }));
    }
    let mut t = Columns::new(&[
        ("PLAN", Fit::Whole),
        ("TYPE", wrap(0, 8)),
        ("DURATION", Fit::Whole),
        ("PRICE", Fit::Whole),
        ("PRICE PER 30 DAYS", wrap(1, 9)),
    ]);
    for p in plans {
        let per30 = if p.duration_ms > 0 {
            Cents(p.price_amount_cents.0.saturating_mul(2_592_000_000) / p.duration_ms).to_string()
        } else {
            "-".into()
        };
        t.row(vec![
            p.id.to_string(),
            cell(p.connection_type.as_ref()),
            duration_ms(p.duration_ms),
            p.price_amount_cents.to_string(),
            per30,
        ]);
    }
    t.render()
}

/// `api networks ID` output.
#[must_use]
pub fn networks(nets: &[Network], format: OutputFormat) -> String {
    if format == OutputFormat::Json {
        return pretty(&json!({ "networks": nets }));
    }
    let mut t = Columns::new(&[("NETWORK", Fit::Whole), ("LABEL", wrap(1, 10)), ("COUNTRY", wrap(0, 7))]);
    for n in nets {
        t.row(vec![n.id.to_string(), cell(n.network_label.as_ref()), cell(n.country.as_ref())]);
    }
    t.render()
}

/// Pretty JSON with a trailing newline.
#[must_use]
pub fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_else(|_| "null".into());
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_days_or_hours() {
        assert_eq!(duration_ms(2_592_000_000), "30d");
        assert_eq!(duration_ms(5_400_000), "1.5h");
    }
}
