//! `proxy-renewd switch-network SUB_ID NETWORK_ID` and `change-credentials SUB_ID`: the
//! provider's other two writes, each checked first, confirmed, and sent at most once. Neither
//! costs money, so neither has a ledger; a lost answer is reported as unknown with the
//! command that shows the truth.

use anyhow::{Context, bail};
use secrecy::ExposeSecret;
use serde_json::json;

use super::{Exit, emit};
use crate::api::{Client, PostError};
use crate::app::{App, Mode};
use crate::config::Config;
use crate::output::{OutputFormat, pretty};
use crate::values::text::clean_text;
use crate::values::{NetworkId, SubscriptionId};

/// `switch-network` options.
#[derive(Debug, clap::Args)]
pub struct SwitchNetworkArgs {
    /// Subscription id.
    pub id: String,
    /// The network to move it to: an id from `proxy-renewd api networks SUB_ID`.
    pub network: String,
    /// Do not ask for confirmation (needed when not on a terminal).
    #[arg(long)]
    pub yes: bool,
}

/// `change-credentials` options.
#[derive(Debug, clap::Args)]
pub struct ChangeCredentialsArgs {
    /// Subscription id.
    pub id: String,
    /// Do not ask for confirmation (needed when not on a terminal).
    #[arg(long)]
    pub yes: bool,
    /// Needed with --format json, which then includes the new password and VPN id (the table
    /// always shows them).
    #[arg(long)]
    pub show_secrets: bool,
}

/// What a POST's failure means for the person, and the exit code: refused (nothing changed)
/// is 1, unknown is 3.
fn failed(id: &SubscriptionId, e: &PostError, check: &str, format: OutputFormat) -> anyhow::Result<Exit> {
    let (result, text, exit) = if e.had_no_effect() {
        ("refused", format!("{id}: refused, nothing changed: {e}"), Exit::Error)
    } else {
        let failure = match e {
            PostError::OutcomeUnknown(f) => f.to_string(),
            other => other.to_string(),
        };
        (
            "unknown",
            format!(
                "{id}: outcome unknown, the provider may have applied it ({failure}); do not repeat it now: check with `{check}`"
            ),
            Exit::Attention,
        )
    };
    emit(&match format {
        OutputFormat::Json => pretty(&json!({
            "subscription_id": id,
            "result": result,
            "status": e.refusal().map(|r| r.status),
            "message": e.to_string(),
            "check": check,
        })),
        OutputFormat::Table => format!("{text}\n"),
    })?;
    Ok(exit)
}

/// Runs `switch-network`.
pub(super) async fn switch_network(cfg: Config, args: SwitchNetworkArgs, format: OutputFormat) -> anyhow::Result<Exit> {
    let id = SubscriptionId::parse(&args.id)?;
    let target = NetworkId::parse(&args.network)?;
    let app = App::build(cfg, Mode::Manual).await?;
    let result = switch(&app, &id, &target, &args, format).await;
    app.close().await;
    result
}

async fn switch(
    app: &App,
    id: &SubscriptionId,
    target: &NetworkId,
    args: &SwitchNetworkArgs,
    format: OutputFormat,
) -> anyhow::Result<Exit> {
    let client = app.client();
    let sub = listed(client, id).await?;
    let old = sub.network_label.as_deref().map(clean_text).unwrap_or_else(|| "an unnamed network".into());
    let networks = client.available_networks(id).await.context("cannot read the available networks")?;
    let Some(net) = networks.iter().find(|n| &n.id == target) else {
        let offered: Vec<String> = networks
            .iter()
            .map(|n| format!("{} ({})", n.id, n.network_label.as_deref().map(clean_text).unwrap_or_default()))
            .collect();
        bail!(
            "network {target} is not available to {id} (op=available-networks); available: {}",
            if offered.is_empty() { "none".into() } else { offered.join(", ") }
        );
    };
    let new = net.network_label.as_deref().map(clean_text).unwrap_or_else(|| target.to_string());
    if !args.yes && !super::confirm(&format!("Move {id} from {old} to {new}?"), "switch-network")? {
        bail!("not confirmed; nothing sent");
    }
    let moved = match client.switch_network(id, target).await {
        Ok(s) => s,
        Err(e) => return failed(id, &e, "proxy-renewd api subscriptions", format),
    };
    let now_label = moved.network_label.as_deref().map(clean_text).unwrap_or(new);
    tracing::info!(subscription_id = %id, network = %target, "network switched");
    // The snapshot shows the new network at once, not at the next cycle.
    let unrecorded = match app.store() {
        Some(store) => store.record_seen(&crate::cycle::seen(&moved), app.clock().now()).await.err(),
        None => None,
    };
    let summary = format!("{id}: moved from {old} to {now_label}\n");
    let text = match format {
        OutputFormat::Json => pretty(&json!({
            "subscription_id": id, "result": "done", "old_network_label": old, "new_network_label": now_label,
        })),
        OutputFormat::Table => summary.clone(),
    };
    super::emit_after_acting(&text, &summary);
    if let Some(e) = unrecorded {
        tracing::warn!(error = %e, "the snapshot could not be updated; the next cycle will");
    }
    Ok(Exit::Ok)
}

/// The subscription `id` as `op=subscriptions` lists it (which also teaches the client's
/// redaction its current credentials).
async fn listed(client: &Client, id: &SubscriptionId) -> anyhow::Result<crate::api::Subscription> {
    let list = client.subscriptions().await.context("cannot read subscriptions")?;
    list.subscriptions
        .into_iter()
        .find(|s| &s.subscription_id == id)
        .with_context(|| format!("subscription {id} is not listed by the provider (op=subscriptions): check the id"))
}

/// Runs `change-credentials`.
pub(super) async fn change_credentials(
    cfg: Config,
    args: ChangeCredentialsArgs,
    format: OutputFormat,
) -> anyhow::Result<Exit> {
    let id = SubscriptionId::parse(&args.id)?;
    if format == OutputFormat::Json && !args.show_secrets {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "error: `--format json change-credentials` would change the password without showing it: add --show-secrets (or use the table output)"
        );
        return Ok(Exit::Usage);
    }
    // No database: a password is never written to one, and nothing else needs it.
    let api = cfg.api()?;
    let client = Client::new(api.client).context("cannot set up the provider client")?;
    rotate(&client, &id, &args, format).await
}

async fn rotate(
    client: &Client,
    id: &SubscriptionId,
    args: &ChangeCredentialsArgs,
    format: OutputFormat,
) -> anyhow::Result<Exit> {
    let sub = listed(client, id).await?;
    let label = sub.label.as_deref().map(clean_text).unwrap_or_default();
    let question =
        format!("Replace the proxy password of {id} ({label})? Every client using the old one stops working.");
    if !args.yes && !super::confirm(&question, "change-credentials")? {
        bail!("not confirmed; nothing sent");
    }
    let new = match client.change_credentials(id).await {
        Ok(n) => n,
        Err(e) => return failed(id, &e, "proxy-renewd api subscriptions --show-secrets", format),
    };
    tracing::info!(subscription_id = %id, "credentials changed");
    let text = match format {
        OutputFormat::Json => pretty(&json!({
            "subscription_id": id, "result": "done",
            "password": new.password.expose_secret(), "vpn": new.vpn.expose_secret(),
        })),
        OutputFormat::Table => format!(
            "{id}: credentials changed\npassword: {}\nvpn: {}\n",
            new.password.expose_secret(),
            new.vpn.expose_secret()
        ),
    };
    if let Err(e) = emit(&text) {
        // Changed and not shown: never to stderr (a log), so say where to read them.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "warning: {e}; the credentials of {id} WERE changed: read the new ones with `proxy-renewd api subscriptions --show-secrets`"
        );
        return Ok(Exit::Attention);
    }
    Ok(Exit::Ok)
}
