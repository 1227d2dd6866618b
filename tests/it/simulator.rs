//! The simulator's own fidelity: renewals extend from max(activeUntil, now) by
//! durationMs × repeatCount and debit price × repeatCount after the coupon; purchases honour
//! quantity and repeatCount; switch-network and change-credentials change state; the admin
//! surface, the concurrency gauge and `--state FILE` work.

use proxy_renewd::api::{PurchaseRequest, RenewRequest};
use proxy_renewd::sim::{FaultKind, SimState};
use proxy_renewd::values::{EpochMs, NetworkId, PlanId};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::helpers::{bin, client, run, sample_id, sim, sim_with};

const DAY_MS: i64 = 86_400_000;
const NL_30D: &str = "k17m3q5v7n9p1r2t4w6y8z0a";
const NL_90D: &str = "q2w4e6r8t0y2u4i6o8p0a2s4";

fn renew_req(i: usize, plan: &str, coupon: Option<&str>, repeat: Option<u32>) -> RenewRequest {
    RenewRequest {
        subscription_id: sample_id(i),
        plan_id: PlanId::parse(plan).unwrap(),
        coupon_code: coupon.map(Into::into),
        repeat_count: repeat,
    }
}

#[tokio::test]
async fn renew_extends_from_the_later_of_expiry_and_now_and_debits_the_price() {
    let sim = sim().await;
    sim.update(|s, _| s.balance_cents = 50_000);
    let c = client(&sim);
    let before = sim.state();
    // Sample 5 expires in 5 days: extended from its expiry, 3 × 90 days, 3 × 33.00 less 10 %.
    let r = c.renew(&renew_req(5, NL_90D, Some("MYCODE"), Some(3))).await.unwrap();
    assert_eq!(r.end_at.0, before.subscriptions[5].active_until_ms + 3 * 90 * DAY_MS);
    let after = sim.state();
    assert_eq!(after.balance_cents, before.balance_cents - 8910);
    // Sample 0 lapsed two days ago: extended from now.
    let t0 = EpochMs::now().0;
    let r = c.renew(&renew_req(0, NL_30D, None, None)).await.unwrap();
    let t1 = EpochMs::now().0;
    assert!((t0 + 30 * DAY_MS..=t1 + 30 * DAY_MS).contains(&r.end_at.0), "renewed from now");
    assert_eq!(sim.state().balance_cents, after.balance_cents - 1200);
    // The read-back agrees.
    let list = c.subscriptions().await.unwrap();
    assert_eq!(list.subscriptions[0].active_until, r.end_at);
}

#[tokio::test]
async fn renew_from_expiry_setting_keeps_a_lapsed_subscription_in_the_past() {
    let sim = sim().await;
    sim.update(|s, _| s.settings.renew_from_expiry = true);
    let old = sim.state().subscriptions[0].active_until_ms;
    let r = client(&sim).renew(&renew_req(0, NL_30D, None, None)).await.unwrap();
    assert_eq!(r.end_at.0, old + 30 * DAY_MS);
}

#[tokio::test]
async fn coupons_must_be_valid() {
    let sim = sim().await;
    let c = client(&sim);
    for code in ["NOPE", "OLDCODE"] {
        let e = c.renew(&renew_req(1, NL_30D, Some(code), None)).await.unwrap_err();
        assert_eq!(e.refusal().map(|r| r.status), Some(400), "{code}");
    }
}

#[tokio::test]
async fn purchase_honours_quantity_repeat_count_and_both_shapes() {
    let sim = sim().await;
    let c = client(&sim);
    let before = sim.state();
    let req = PurchaseRequest {
        plan_id: PlanId::parse(NL_30D).unwrap(),
        coupon_code: None,
        repeat_count: Some(2),
        quantity: Some(3),
    };
    let t0 = EpochMs::now().0;
    let p = c.purchase(&req).await.unwrap();
    assert_eq!((p.subscription_ids.len(), p.subscriptions.len()), (3, 3));
    assert!(p.subscriptions.iter().all(|s| s.active_until.0 >= t0 + 60 * DAY_MS && s.status == "active"));
    let after = sim.state();
    assert_eq!(after.balance_cents, before.balance_cents - 3 * 2 * 1200);
    assert_eq!(after.subscriptions.len(), before.subscriptions.len() + 3);
    // One subscription, with the single-object shape switched on.
    sim.update(|s, _| s.settings.single_purchase_shape = true);
    let one = PurchaseRequest { quantity: None, repeat_count: None, ..req.clone() };
    c.purchase(&one).await.unwrap();
    let raw = sim.calls_of("purchase");
    assert_eq!(raw.len(), 2);
    // Sold out and short of money.
    let sold_out = PurchaseRequest { plan_id: PlanId::parse("s0l4d0u7n1y2c3p4l5a6n7x8").unwrap(), ..one.clone() };
    assert_eq!(c.purchase(&sold_out).await.unwrap_err().refusal().map(|r| r.status), Some(409));
    sim.update(|s, _| s.balance_cents = 100);
    assert_eq!(c.purchase(&one).await.unwrap_err().refusal().map(|r| r.status), Some(402));
}

#[tokio::test]
async fn switch_network_and_change_credentials_change_state() {
    let sim = sim().await;
    let c = client(&sim);
    let moved = c.switch_network(&sample_id(1), &NetworkId::parse("b1c2d3e4f5g6h7j8k9m0n1p2").unwrap()).await.unwrap();
    assert_eq!(moved.network_label.as_deref(), Some("DE-BER Berlin"));
    assert_eq!(moved.label.as_deref(), Some("12002 - DE - Private"));
    let creds = c.change_credentials(&sample_id(1)).await.unwrap();
    let list = c.subscriptions().await.unwrap();
    let s = &list.subscriptions[1];
    assert_eq!(s.network_label.as_deref(), Some("DE-BER Berlin"));
    assert_eq!(s.credentials.as_ref().unwrap().password.expose_secret(), creds.password.expose_secret());
    assert_ne!(creds.password.expose_secret(), "p_sim01x7");
    let nets = c.available_networks(&sample_id(1)).await.unwrap();
    assert!(!nets.iter().any(|n| n.id.as_str() == "b1c2d3e4f5g6h7j8k9m0n1p2"), "the current network is not offered");
}

#[tokio::test]
async fn peak_concurrency_is_measured() {
    let sim = sim().await;
    sim.fault("plans", FaultKind::Latency { ms: 300 }, 3);
    let c = client(&sim);
    let (a, b, d) = tokio::join!(c.plans(), c.plans(), c.plans());
    assert!(a.is_ok() && b.is_ok() && d.is_ok());
    assert_eq!(sim.stats().peak_in_flight, 3);
    assert_eq!(sim.stats().in_flight, 0);
}

#[tokio::test]
async fn the_admin_surface_sets_faults_and_shows_calls() {
    let sim = sim().await;
    let http = reqwest::Client::new();
    let admin = |p: &str| format!("{}__sim/{p}", sim.base_url());
    let r = http
        .post(admin("faults"))
        .json(&json!({"op": "plans", "kind": "status-before", "status": 503, "count": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    assert_eq!(http.get(admin("faults")).send().await.unwrap().json::<Value>().await.unwrap()[0]["count"], 2);
    assert_eq!(client(&sim).plans().await.unwrap().len(), 4);
    let calls: Value = http.get(admin("calls")).send().await.unwrap().json().await.unwrap();
    let statuses: Vec<&Value> = calls.as_array().unwrap().iter().map(|c| &c["status"]).collect();
    assert_eq!(statuses, [&json!(503), &json!(503), &json!(200)]);
    assert_eq!(
        http.post(admin("balance")).json(&json!({"balance_cents": 7})).send().await.unwrap().status().as_u16(),
        204
    );
    assert_eq!(sim.state().balance_cents, 7);
    let bad = http.post(admin("faults")).json(&json!({"op": "plans", "kind": "meteor"})).send().await.unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    let stats: Value = http.get(admin("stats")).send().await.unwrap().json().await.unwrap();
    assert_eq!(stats["calls"], 3);
    assert_eq!(http.delete(admin("calls")).send().await.unwrap().status().as_u16(), 204);
    assert!(sim.calls().is_empty());
    let state: SimState = http.get(admin("state")).send().await.unwrap().json().await.unwrap();
    assert_eq!(state.subscriptions.len(), 10);
}

#[tokio::test]
async fn the_clock_offset_moves_now() {
    let sim = sim_with(SimState::sample(EpochMs::now().0)).await;
    sim.update(|s, _| s.settings.clock_offset_ms = 100 * DAY_MS);
    let r = client(&sim).renew(&renew_req(1, NL_30D, None, None)).await.unwrap();
    assert!(r.end_at.0 >= EpochMs::now().0 + 130 * DAY_MS - 60_000, "renewed from the simulator's now");
}

#[tokio::test]
async fn a_bad_state_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    std::fs::write(&path, r#"{"balance_cents": 5, "plans": [{"id": "p1"}]}"#).unwrap();
    let mut cmd = bin();
    cmd.args(["sim", "--listen", "127.0.0.1:0", "--state"]).arg(&path);
    let out = run(cmd).await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("invalid simulator state") && out.stderr.contains("duration_ms"), "{}", out.stderr);
    let mut cmd = bin();
    cmd.args(["sim", "--dump-state"]);
    let out = run(cmd).await;
    let state: SimState = serde_json::from_str(&out.stdout).expect("--dump-state prints a loadable state");
    assert_eq!(state.subscriptions.len(), 10);
}
