//! Whatever goes wrong, a write is sent exactly once, and its error says truthfully whether
//! the provider may have acted: the fault matrix on `renew` (and one on `purchase`).

use std::time::Duration;

use proxy_renewd::api::{Client, Failure, PostError, PurchaseRequest};
use proxy_renewd::sim::FaultKind;
use proxy_renewd::values::PlanId;

use crate::helpers::{config_for, renew_req, sim};

const NL_30D: &str = "k17m3q5v7n9p1r2t4w6y8z0a";
const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    Renewed,
    Refused(u16),
    Unknown,
}

fn kinds() -> Vec<(FaultKind, Expect, bool)> {
    // (fault, what the client must report, whether the simulator applied the renewal)
    vec![
        (FaultKind::Latency { ms: 50 }, Expect::Renewed, true),
        (FaultKind::StatusBefore { status: 402 }, Expect::Refused(402), false),
        (FaultKind::StatusBefore { status: 409 }, Expect::Refused(409), false),
        (FaultKind::StatusBefore { status: 500 }, Expect::Unknown, false),
        (FaultKind::StatusBefore { status: 503 }, Expect::Unknown, false),
        (FaultKind::StatusAfter { status: 500 }, Expect::Unknown, true),
        (FaultKind::StatusAfter { status: 504 }, Expect::Unknown, true),
        (FaultKind::DropBefore, Expect::Unknown, false),
        (FaultKind::DropAfter, Expect::Unknown, true),
        (FaultKind::StallAfter { ms: 5_000 }, Expect::Unknown, true),
        (FaultKind::Html502, Expect::Unknown, false),
        (FaultKind::OkFalse, Expect::Unknown, false),
        (FaultKind::GarbageAfter, Expect::Unknown, true),
        (FaultKind::RateLimit { retry_after_secs: 1 }, Expect::Refused(429), false),
    ]
}

#[tokio::test]
async fn renew_is_sent_exactly_once_whatever_the_fault() {
    for (kind, expect, applied) in kinds() {
        let sim = sim().await;
        let mut cfg = config_for(&sim);
        cfg.timeout = Duration::from_millis(700);
        let client = Client::new(cfg).unwrap();
        let before = sim.state().subscriptions[1].active_until_ms;
        sim.fault("renew", kind.clone(), 1);
        let req = renew_req(1, NL_30D);
        let got = match client.renew(&req).await {
            Ok(r) => {
                assert_eq!(r.end_at.0, before + 30 * DAY_MS, "{kind:?}");
                Expect::Renewed
            }
            Err(PostError::Refused(r)) => {
                if r.status == 429 {
                    assert_eq!(r.retry_after, Some(Duration::from_secs(1)), "{kind:?}");
                }
                Expect::Refused(r.status)
            }
            Err(PostError::OutcomeUnknown(f)) => {
                if matches!(kind, FaultKind::StallAfter { .. }) {
                    assert!(matches!(f, Failure::Timeout { .. }), "{kind:?}: {f:?}");
                }
                Expect::Unknown
            }
            Err(e) => panic!("{kind:?}: {e:?}"),
        };
        assert_eq!(got, expect, "{kind:?}");
        let renews = sim.calls_of("renew");
        assert_eq!(renews.len(), 1, "{kind:?}: a write must be sent once: {renews:?}");
        assert_eq!(renews[0].applied, applied, "{kind:?}");
        let after = sim.state().subscriptions[1].active_until_ms;
        assert_eq!(after != before, applied, "{kind:?}: state change must match the call log");
    }
}

#[tokio::test]
async fn a_write_that_cannot_connect_was_not_sent() {
    let sim = sim().await;
    let mut cfg = config_for(&sim);
    sim.stop();
    drop(sim);
    // Nothing listens there any more.
    cfg.base_url.set_port(Some(1)).unwrap();
    let client = Client::new(cfg).unwrap();
    let req = renew_req(1, NL_30D);
    let e = client.renew(&req).await.unwrap_err();
    assert!(matches!(e, PostError::NotSent { .. }), "{e:?}");
    assert!(e.had_no_effect());
    assert!(e.to_string().contains("base_url"), "{e}");
}

#[tokio::test]
async fn purchase_after_a_dropped_answer_is_unknown_and_not_resent() {
    let sim = sim().await;
    let client = Client::new(config_for(&sim)).unwrap();
    let subs_before = sim.state().subscriptions.len();
    sim.fault("purchase", FaultKind::DropAfter, 1);
    let req = PurchaseRequest {
        plan_id: PlanId::parse(NL_30D).unwrap(),
        coupon_code: None,
        repeat_count: None,
        quantity: Some(2),
    };
    let e = client.purchase(&req).await.unwrap_err();
    assert!(matches!(e, PostError::OutcomeUnknown(Failure::Transport { .. })), "{e:?}");
    assert_eq!(sim.calls_of("purchase").len(), 1);
    assert_eq!(sim.state().subscriptions.len(), subs_before + 2, "the provider did apply it");
}
