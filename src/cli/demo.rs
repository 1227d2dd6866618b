//! `proxy-renewd demo`: the simulator and the client together, with no config.
//!
//! Starts the simulator on a free loopback port with the sample data, then lists plans and
//! subscriptions, finds the subscription closest to expiry, shows its renewal plans and
//! renews it with the cheapest one, and shows the new expiry. Leaves nothing behind.

use anyhow::Context;
use secrecy::SecretString;

use super::Exit;
use crate::api::{Client, ClientConfig, EpochMs, RenewRequest};
use crate::output::{self, OutputFormat};
use crate::sim::{SimConfig, Simulator};

pub(super) async fn run() -> anyhow::Result<Exit> {
    let cfg = SimConfig::sample();
    let key = SecretString::from(cfg.api_key.clone());
    let sim = Simulator::start(cfg).await.context("cannot start the simulator on loopback")?;
    let client = Client::new(ClientConfig::new(sim.base_url(), key))?;
    println!("Simulator with sample data at {}\n", sim.base_url());

    println!("== Plans (op=plans)");
    print!("{}", output::plans(&client.plans().await?, OutputFormat::Table));
    let now = EpochMs::now();
    let list = client.subscriptions().await?;
    println!("\n== Subscriptions (op=subscriptions; credentials redacted)");
    print!("{}", output::subscriptions(&list, OutputFormat::Table, false, now));

    let next = list
        .subscriptions
        .iter()
        .filter(|s| s.status == "active" && s.active_until > now)
        .min_by_key(|s| s.active_until)
        .context("the sample has no active subscription")?;
    let id = next.subscription_id.clone();
    let plans = client.renewal_plans(&id).await?;
    println!(
        "\n== Renewal plans for {id}, which expires {} (op=renewal-plans)",
        output::relative(next.active_until, now)
    );
    print!("{}", output::renewal_plans(&plans, OutputFormat::Table));
    let cheapest = plans
        .iter()
        .min_by_key(|p| (p.price_amount_cents, std::cmp::Reverse(p.duration_ms)))
        .context("no renewal plan")?;
    let renewal = client
        .renew(&RenewRequest {
            subscription_id: id.clone(),
            plan_id: cheapest.id.clone(),
            coupon_code: None,
            repeat_count: Some(1),
        })
        .await?;
    println!("\n== Renewed {id} with {} for {} (op=renew)", cheapest.id, cheapest.price_amount_cents);
    println!("   activeUntil {} -> {} ({})", next.active_until, renewal.end_at, output::relative(renewal.end_at, now));
    println!("\nThe daemon does this for every due subscription, with a ledger against double charges.");
    sim.stop();
    Ok(Exit::Ok)
}
