//! `proxy-renewd alerts test | list [--pending]`: try the email transport, or show the outbox.

use clap::Subcommand;
use serde_json::json;

use super::{Exit, emit};
use crate::alerts::email::Mailer;
use crate::config::Config;
use crate::output::{Columns, Fit, OutputFormat, fit, pretty};
use crate::store::{self, OutboxRow, Store};

/// `alerts` actions.
#[derive(Debug, Subcommand)]
pub enum AlertsAction {
    /// Send one test email through [alerts.email] and print the SMTP server's answer.
    Test,
    /// Show the outbox, newest first.
    List {
        /// Only alerts not delivered yet.
        #[arg(long)]
        pending: bool,
        /// At most this many rows.
        #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
        limit: u32,
    },
}

pub(super) async fn run(cfg: &Config, action: AlertsAction, format: OutputFormat) -> anyhow::Result<Exit> {
    match action {
        AlertsAction::Test => test(cfg, format).await,
        AlertsAction::List { pending, limit } => list(cfg, pending, limit, format).await,
    }
}

async fn test(cfg: &Config, format: OutputFormat) -> anyhow::Result<Exit> {
    let Some(email) = &cfg.alerts.email else {
        anyhow::bail!("no [alerts.email] in the configuration: add smtp_url, from and to (see config.example.toml)");
    };
    let mailer = Mailer::new(email).map_err(anyhow::Error::msg)?;
    let body = "This is a test message from proxy-renewd.\n\nIf you can read it, alerts (402 insufficient balance, 409 sold out, rejected keys, lapsing subscriptions) will reach you here.\n";
    // Each recipient on its own, as the daemon sends: the answer for each.
    let mut accepted = Vec::new();
    let mut refused = Vec::new();
    for to in mailer.recipients() {
        match mailer.send_to(&to, "[proxy-renewd] test message", body, email).await {
            Ok(answer) => {
                if format == OutputFormat::Table {
                    emit(&format!("sent to {to}: the SMTP server answered {answer}\n"))?;
                }
                accepted.push((to, answer.to_string()));
            }
            Err(e) => refused.push((to, e.text)),
        }
    }
    if format == OutputFormat::Json {
        emit(&pretty(&json!({
            "accepted": accepted.iter().map(|(to, answer)| json!({ "to": to, "answer": answer })).collect::<Vec<_>>(),
            "refused": refused.iter().map(|(to, error)| json!({ "to": to, "error": error })).collect::<Vec<_>>(),
        })))?;
    }
    // An address that takes the test message is alive again (revives a dead-lettered one).
    if !accepted.is_empty() && store::exists(&cfg.database_url).await? {
        let store = Store::open(&cfg.database_url).await?;
        for (to, _) in &accepted {
            store.record_recipient(to, None, crate::values::EpochMs::now()).await?;
        }
        store.close().await;
    }
    if !refused.is_empty() {
        let refused: Vec<String> = refused.iter().map(|(to, e)| format!("{to}: {e}")).collect();
        anyhow::bail!("the test message was not accepted: {}", refused.join("; "));
    }
    Ok(Exit::Ok)
}

async fn list(cfg: &Config, pending: bool, limit: u32, format: OutputFormat) -> anyhow::Result<Exit> {
    if !store::exists(&cfg.database_url).await? {
        emit(&match format {
            OutputFormat::Json => pretty(&json!({ "alerts": [] })),
            OutputFormat::Table => "no alerts yet: the database does not exist\n".into(),
        })?;
        return Ok(Exit::Ok);
    }
    let store = Store::open_read_only(&cfg.database_url).await?;
    let rows = store.outbox(pending, limit).await;
    let recipients = store.recipients().await;
    store.close().await;
    let (rows, recipients) = (rows?, recipients?);
    emit(&match format {
        OutputFormat::Json => pretty(&json!({
            "alerts": rows.iter().map(row_json).collect::<Vec<_>>(),
            "recipients": recipients.iter().map(|r| json!({
                "address": r.address,
                "refusals": r.failures,
                "dead_since_ms": r.dead_since.map(|t| t.0),
                "last_error": r.last_error,
            })).collect::<Vec<_>>(),
        })),
        OutputFormat::Table => {
            let mut out = table(&rows);
            for r in &recipients {
                let state = match r.dead_since {
                    Some(t) => format!("dead-lettered since {t}: it gets no alerts; fix [alerts.email] to"),
                    None => format!("refused {} time{}", r.failures, if r.failures == 1 { "" } else { "s" }),
                };
                out.push_str(&fit::wrap(&format!(
                    "recipient {}: {state} (last: {})\n",
                    r.address,
                    r.last_error.as_deref().unwrap_or("-")
                )));
            }
            out
        }
    })?;
    Ok(Exit::Ok)
}

fn state(r: &OutboxRow) -> String {
    match (r.sent_at, r.attempts) {
        (Some(t), _) if r.last_error.as_deref() == Some(crate::store::LOGGED_ONLY) => format!("logged {t} (no email)"),
        (Some(t), _) => format!("sent {t}"),
        (None, 0) => "pending".into(),
        (None, n) => format!("failed ×{n}, next try {}", r.next_attempt_at),
    }
}

fn row_json(r: &OutboxRow) -> serde_json::Value {
    json!({
        "id": r.id,
        "kind": r.alert.kind.as_str(),
        "subscription_id": r.alert.subscription_id,
        "happened": r.alert.happened,
        "action": r.alert.action,
        "created_at_ms": r.created_at.0,
        "sent_at_ms": r.sent_at.map(|t| t.0),
        "delivery": if r.sent_at.is_none() { "pending" } else if r.last_error.as_deref() == Some(crate::store::LOGGED_ONLY) { "logged" } else { "emailed" },
        "attempts": r.attempts,
        "next_attempt_at_ms": r.next_attempt_at.0,
        "last_error": r.last_error,
    })
}

fn table(rows: &[OutboxRow]) -> String {
    // Narrow: the last error goes first, then what happened wraps, then the creation time;
    // the ids and the kind stay whole.
    let mut t = Columns::new(&[
        ("ID", Fit::Whole),
        ("CREATED (UTC)", Fit::Optional { rank: 2 }),
        ("KIND", Fit::Whole),
        ("SUBSCRIPTION", Fit::Whole),
        ("STATE", Fit::Wrap { rank: 3, min: 10 }),
        ("WHAT HAPPENED", Fit::Wrap { rank: 1, min: 16 }),
        ("LAST ERROR", Fit::Optional { rank: 0 }),
    ]);
    for r in rows {
        t.row(vec![
            r.id.to_string(),
            r.created_at.to_string(),
            r.alert.kind.as_str().into(),
            r.alert.subscription_id.as_ref().map(ToString::to_string).unwrap_or_default(),
            state(r),
            r.alert.happened.chars().take(70).collect(),
            r.last_error.as_deref().map(|e| e.chars().take(60).collect()).unwrap_or_default(),
        ]);
    }
    t.render()
}
