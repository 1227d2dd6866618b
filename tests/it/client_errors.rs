//! Every row of the reference's error table, reached through the simulator's real state
//! (not faults), with the client's error kind and the simulator's call log checked.

use proxy_renewd::api::{ApiError, PostError, RenewRequest};
use proxy_renewd::sim::FaultKind;
use proxy_renewd::values::{NetworkId, PlanId, SubscriptionId};
use serde_json::{Value, json};

use crate::helpers::{KEY, client, client_with_key, sample_id, sim};

fn renew_req(sub: SubscriptionId, plan: &str) -> RenewRequest {
    RenewRequest { subscription_id: sub, plan_id: PlanId::parse(plan).unwrap(), coupon_code: None, repeat_count: None }
}

const NL_30D: &str = "k17m3q5v7n9p1r2t4w6y8z0a";

fn refused_post(r: Result<impl std::fmt::Debug, PostError>, status: u16) -> proxy_renewd::api::Refusal {
    match r {
        Err(PostError::Refused(refusal)) if refusal.status == status => refusal,
        other => panic!("expected a {status} refusal, got {other:?}"),
    }
}

fn refused_get(r: Result<impl std::fmt::Debug, ApiError>, status: u16) -> proxy_renewd::api::Refusal {
    match r {
        Err(ApiError::Refused(refusal)) if refusal.status == status => refusal,
        other => panic!("expected a {status} refusal, got {other:?}"),
    }
}

/// Posts a raw body with the right key; returns status and JSON body.
async fn raw_post(sim: &proxy_renewd::sim::Simulator, body: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{}api/proxy", sim.base_url()))
        .header("x-api-key", KEY)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn row_400_invalid_json_non_object_and_unknown_op() {
    let sim = sim().await;
    assert_eq!(raw_post(&sim, "{not json").await, (400, json!({"ok": false, "error": "Invalid JSON body"})));
    assert_eq!(raw_post(&sim, "[1, 2]").await, (400, json!({"ok": false, "error": "Body must be an object"})));
    assert_eq!(
        raw_post(&sim, r#"{"subscriptionId": "abc"}"#).await,
        (400, json!({"ok": false, "error": "Missing or unknown op"}))
    );
    assert_eq!(raw_post(&sim, r#"{"op": "plans"}"#).await.0, 400, "a GET op by POST is unknown");
    let get = reqwest::Client::new()
        .get(format!("{}api/proxy?op=teleport", sim.base_url()))
        .header("x-api-key", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(get.status().as_u16(), 400);
}

#[tokio::test]
async fn row_400_missing_or_invalid_ids_and_counts() {
    let sim = sim().await;
    let j = "j97b2f6m1k4n8p3r5t7v9x0z";
    let cases = [
        (json!({"op": "renew", "subscriptionId": j}), "Missing or invalid planId"),
        (json!({"op": "renew", "subscriptionId": "J97B", "planId": NL_30D}), "Missing or invalid subscriptionId"),
        (json!({"op": "renew", "planId": NL_30D}), "Missing or invalid subscriptionId"),
        (json!({"op": "switch-network", "subscriptionId": j}), "Missing or invalid targetNetwork"),
        (
            json!({"op": "renew", "subscriptionId": j, "planId": NL_30D, "repeatCount": 0}),
            "Invalid repeatCount or quantity",
        ),
        (
            json!({"op": "renew", "subscriptionId": j, "planId": NL_30D, "repeatCount": "3"}),
            "Invalid repeatCount or quantity",
        ),
        (json!({"op": "purchase", "planId": NL_30D, "quantity": -1}), "Invalid repeatCount or quantity"),
        (json!({"op": "purchase", "planId": NL_30D, "repeatCount": 1.5}), "Invalid repeatCount or quantity"),
    ];
    for (body, message) in cases {
        assert_eq!(raw_post(&sim, &body.to_string()).await, (400, json!({"ok": false, "error": message})), "{body}");
    }
    // Through the client: a plan the subscription cannot renew with, an unknown network.
    let c = client(&sim);
    let r = refused_post(c.renew(&renew_req(sample_id(1), "d3e5b7e9r1l3i5n7p9l0a2n4")).await, 400);
    assert!(r.is_bad_request() && r.message.as_deref() == Some("Missing or invalid planId"));
    refused_post(c.switch_network(&sample_id(1), &NetworkId::parse("nosuchnetwork").unwrap()).await, 400);
    let mut zero = renew_req(sample_id(1), NL_30D);
    zero.repeat_count = Some(0);
    refused_post(c.renew(&zero).await, 400);
    assert!(sim.calls().iter().all(|c| !c.applied), "nothing refused may change state");
}

#[tokio::test]
async fn row_401_wrong_key_on_reads_and_writes() {
    let sim = sim().await;
    let c = client_with_key(&sim, "rk_wrong_key_123");
    let r = refused_get(c.subscriptions().await, 401);
    assert!(r.is_auth());
    assert!(r.to_string().contains("check [api].key"), "{r}");
    refused_post(c.renew(&renew_req(sample_id(1), NL_30D)).await, 401);
    let calls = sim.calls();
    assert_eq!(calls.len(), 2, "a 401 is not retried: {calls:?}");
    assert!(calls.iter().all(|c| !c.key_ok && !c.applied));
}

#[tokio::test]
async fn row_402_insufficient_balance_changes_nothing() {
    let sim = sim().await;
    sim.update(|s, _| s.balance_cents = 1199);
    let before = sim.state();
    let r = refused_post(client(&sim).renew(&renew_req(sample_id(1), NL_30D)).await, 402);
    assert!(r.is_insufficient_balance());
    assert_eq!(r.message.as_deref(), Some("Insufficient balance"));
    assert_eq!(sim.state(), before);
    assert_eq!(sim.calls_of("renew").len(), 1);
}

#[tokio::test]
async fn row_403_someone_elses_subscription() {
    let sim = sim().await;
    sim.update(|s, _| s.subscriptions[4].foreign = true);
    let c = client(&sim);
    assert!(refused_get(c.renewal_plans(&sample_id(4)).await, 403).is_auth());
    refused_post(c.renew(&renew_req(sample_id(4), NL_30D)).await, 403);
    let list = c.subscriptions().await.unwrap();
    assert!(
        !list.subscriptions.iter().any(|s| s.subscription_id == sample_id(4)),
        "another owner's subscription is not listed"
    );
}

#[tokio::test]
async fn row_404_unknown_subscription() {
    let sim = sim().await;
    let c = client(&sim);
    let ghost = SubscriptionId::parse("nosuchsubscription0").unwrap();
    assert!(refused_get(c.renewal_plans(&ghost).await, 404).is_not_found());
    assert!(refused_get(c.available_networks(&ghost).await, 404).is_not_found());
    refused_post(c.renew(&renew_req(ghost.clone(), NL_30D)).await, 404);
    refused_post(c.change_credentials(&ghost).await, 404);
}

#[tokio::test]
async fn row_409_sold_out_inactive_and_invalid_state() {
    let sim = sim().await;
    let c = client(&sim);
    // Sample 3 renews only with a sold-out plan; sample 6 is suspended.
    let plans = c.renewal_plans(&sample_id(3)).await.unwrap();
    let r = refused_post(c.renew(&renew_req(sample_id(3), plans[0].id.as_str())).await, 409);
    assert!(r.is_unavailable() && r.message.as_deref() == Some("Sold out"));
    let r = refused_post(c.renew(&renew_req(sample_id(6), NL_30D)).await, 409);
    assert_eq!(r.message.as_deref(), Some("Invalid subscription state"));
    let r = refused_post(
        c.switch_network(&sample_id(1), &NetworkId::parse("f1r2p3a4r5i6s7x8x9x0x1x2").unwrap()).await,
        409,
    );
    assert_eq!(r.message.as_deref(), Some("Inactive network"));
    sim.update(|s, _| s.plans[0].active = false);
    let r = refused_post(c.renew(&renew_req(sample_id(1), NL_30D)).await, 409);
    assert_eq!(r.message.as_deref(), Some("Inactive plan"));
    assert!(sim.calls().iter().filter(|c| c.method == "POST").all(|c| !c.applied));
}

#[tokio::test]
async fn row_500_internal_error_read_retried_write_unknown() {
    let sim = sim().await;
    sim.fault("*", FaultKind::StatusBefore { status: 500 }, 1);
    let c = client(&sim);
    assert_eq!(c.plans().await.unwrap().len(), 4, "a 500 on a read is retried");
    assert_eq!(sim.calls_of("plans").len(), 2);
    sim.fault("renew", FaultKind::StatusBefore { status: 500 }, 1);
    match c.renew(&renew_req(sample_id(1), NL_30D)).await {
        Err(PostError::OutcomeUnknown(f)) => assert!(f.to_string().contains("HTTP 500"), "{f}"),
        other => panic!("a 500 on a write is an unknown outcome, got {other:?}"),
    }
}

#[tokio::test]
async fn errors_name_the_op_and_the_remedy() {
    let sim = sim().await;
    sim.update(|s, _| s.balance_cents = 0);
    let e = client(&sim).renew(&renew_req(sample_id(1), NL_30D)).await.unwrap_err();
    let text = e.to_string();
    assert!(text.starts_with("renew: HTTP 402") && text.contains("top up"), "{text}");
    assert!(e.had_no_effect());
    let v: Value = serde_json::to_value(sim.calls_of("renew")[0].status).unwrap();
    assert_eq!(v, json!(402));
}
