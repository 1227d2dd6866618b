//! `proxy-renewd api …`: read-only views of the provider API.

use anyhow::Context;

use super::{ApiView, Exit, emit};
use crate::api::Client;
use crate::config::Config;
use crate::output::{self, OutputFormat};
use crate::values::{EpochMs, SubscriptionId};

/// Runs one view and prints it to stdout.
pub(super) async fn run(cfg: &Config, view: ApiView, format: OutputFormat, show_secrets: bool) -> anyhow::Result<Exit> {
    // Ids are checked before the config, so that a typo costs no request and no key.
    let id = match &view {
        ApiView::RenewalPlans { id } | ApiView::Networks { id } => Some(SubscriptionId::parse(id)?),
        ApiView::Plans | ApiView::Subscriptions => None,
    };
    let api = cfg.api()?;
    let client = Client::new(api.client).context("cannot set up the provider client")?;
    let text = match (view, id) {
        (ApiView::Plans, _) => output::plans(&client.plans().await?, format),
        (ApiView::Subscriptions, _) => {
            output::subscriptions(&client.subscriptions().await?, format, show_secrets, EpochMs::now())
        }
        (ApiView::RenewalPlans { .. }, Some(id)) => output::renewal_plans(&client.renewal_plans(&id).await?, format),
        (ApiView::Networks { .. }, Some(id)) => output::networks(&client.available_networks(&id).await?, format),
        _ => unreachable!("ids are parsed above for the views that take one"),
    };
    emit(&text)?;
    Ok(Exit::Ok)
}
