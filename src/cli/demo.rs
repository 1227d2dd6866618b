//! `proxy-renewd demo`: the simulator and the client together, with no config.
//!
//! Starts the simulator on a free loopback port with the sample data, then lists plans and
//! subscriptions, takes the active subscription that expires next, shows its renewal plans,
//! renews it with the cheapest one, and shows the new expiry. Leaves nothing behind.

use std::fmt::Write as _;

use anyhow::Context;
use secrecy::SecretString;

use super::{Exit, emit};
use crate::api::{Client, ClientConfig, EpochMs, RenewRequest};
use crate::output::{self, OutputFormat};
use crate::sim::{SimConfig, Simulator};

pub(super) async fn run() -> anyhow::Result<Exit> {
    let cfg = SimConfig::sample();
    let key = SecretString::from(cfg.api_key.clone());
    let sim = Simulator::start(cfg).await.context("cannot start the simulator on loopback")?;
    let client = Client::new(ClientConfig::new(sim.base_url(), key))?;
    let mut out = format!("Simulator with sample data at {}\n\n== Plans (op=plans)\n", sim.base_url());
    out += &output::plans(&client.plans().await?, OutputFormat::Table);
    let now = EpochMs::now();
    let list = client.subscriptions().await?;
    out += "\n== Subscriptions (op=subscriptions; credentials are not shown)\n";
    out += &output::subscriptions(&list, OutputFormat::Table, false, now);
    emit(&out)?;

    let next = list
        .subscriptions
        .iter()
        .filter(|s| s.status == "active" && s.active_until > now)
        .min_by_key(|s| s.active_until)
        .context("the sample has no active subscription")?;
    let id = next.subscription_id.clone();
    let plans = client.renewal_plans(&id).await?;
    let mut out = format!(
        "\n== Renewal plans for {id}, the next to expire ({}) (op=renewal-plans)\n",
        output::relative(next.active_until, now)
    );
    out += &output::renewal_plans(&plans, OutputFormat::Table);
    let cheapest = plans
        .iter()
        .min_by_key(|p| (p.price_amount_cents, std::cmp::Reverse(p.duration_ms)))
        .context("no renewal plan")?;
    let request = RenewRequest {
        subscription_id: id.clone(),
        plan_id: cheapest.id.clone(),
        coupon_code: None,
        repeat_count: Some(1),
    };
    let renewal = client.renew(&request).await?;
    let _ = write!(
        out,
        "\n== Renewed {id} with plan {} for {} (op=renew)\n   activeUntil {} -> {} ({})\n",
        cheapest.id,
        cheapest.price_amount_cents,
        next.active_until,
        renewal.end_at,
        output::relative(renewal.end_at, now)
    );
    out += "\nThis was one manual renewal through the client. The sample also holds a lapsed, a suspended\n\
            and a sold-out subscription: cases the renewal daemon's policy and alerts are for.\n";
    emit(&out)?;
    sim.stop();
    Ok(Exit::Ok)
}
