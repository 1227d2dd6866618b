//! Reads retry transient failures with backoff and honour `Retry-After`; they give up after
//! the configured attempts and never retry what will not change (4xx, malformed answers).

use std::time::{Duration, Instant};

use proxy_renewd::api::{ApiError, Client, Failure};
use proxy_renewd::sim::FaultKind;

use crate::helpers::{canned, client, config_for, sim};

#[tokio::test]
async fn a_read_after_429_waits_for_retry_after_and_succeeds() {
    let sim = sim().await;
    sim.fault("subscriptions", FaultKind::RateLimit { retry_after_secs: 1 }, 1);
    let started = Instant::now();
    let list = client(&sim).subscriptions().await.unwrap();
    assert_eq!(list.subscriptions.len(), 10);
    assert!(started.elapsed() >= Duration::from_secs(1), "Retry-After: 1 was not honoured");
    let calls = sim.calls_of("subscriptions");
    assert_eq!(calls.iter().map(|c| c.status).collect::<Vec<_>>(), [Some(429), Some(200)]);
    assert!(calls[1].at_ms - calls[0].at_ms >= 1000);
}

#[tokio::test]
async fn a_retry_after_beyond_the_cap_is_returned_not_waited_on() {
    let sim = sim().await;
    sim.fault("plans", FaultKind::RateLimit { retry_after_secs: 3600 }, 1);
    let e = client(&sim).plans().await.unwrap_err();
    let r = e.refusal().expect("a refusal");
    assert_eq!((r.status, r.retry_after), (429, Some(Duration::from_secs(3600))));
    assert_eq!(sim.calls_of("plans").len(), 1);
}

#[tokio::test]
async fn transient_read_failures_are_retried_until_success() {
    let sim = sim().await;
    sim.fault("plans", FaultKind::Html502, 1);
    sim.fault("plans", FaultKind::DropBefore, 1);
    assert_eq!(client(&sim).plans().await.unwrap().len(), 4);
    assert_eq!(sim.calls_of("plans").len(), 3);
}

#[tokio::test]
async fn a_read_gives_up_after_max_attempts_with_the_last_failure() {
    let sim = sim().await;
    sim.fault("plans", FaultKind::Html502, 10);
    let e = client(&sim).plans().await.unwrap_err();
    match &e {
        ApiError::Failed(Failure::Server { status: 502, excerpt, .. }) => {
            assert!(excerpt.contains("502 Bad Gateway"), "{excerpt}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(sim.calls_of("plans").len(), 3, "max_attempts is 3 in the tests");
}

#[tokio::test]
async fn malformed_answers_and_refusals_are_not_retried() {
    let sim = sim().await;
    sim.fault("plans", FaultKind::OkFalse, 1);
    let e = client(&sim).plans().await.unwrap_err();
    assert!(matches!(e, ApiError::Failed(Failure::Malformed { .. })), "{e:?}");
    sim.fault("plans", canned(200, "<html>maintenance</html>"), 1);
    let e = client(&sim).plans().await.unwrap_err();
    assert!(e.to_string().contains("not JSON"), "{e}");
    sim.fault("plans", canned(200, r#"{"ok": true}"#), 1);
    let e = client(&sim).plans().await.unwrap_err();
    assert!(e.to_string().contains("missing field `plans`"), "{e}");
    sim.fault("plans", FaultKind::StatusBefore { status: 404 }, 1);
    assert!(client(&sim).plans().await.unwrap_err().refusal().is_some());
    assert_eq!(sim.calls_of("plans").len(), 4, "each failure above took one call");
}

#[tokio::test]
async fn a_stalled_read_times_out_then_is_retried() {
    let sim = sim().await;
    let mut cfg = config_for(&sim);
    cfg.timeout = Duration::from_millis(500);
    sim.fault("subscriptions", FaultKind::StallAfter { ms: 3_000 }, 1);
    let list = Client::new(cfg).unwrap().subscriptions().await.unwrap();
    assert_eq!(list.subscriptions.len(), 10);
    assert_eq!(sim.calls_of("subscriptions").len(), 2);
}

#[tokio::test]
async fn an_answer_over_the_size_cap_is_refused() {
    let sim = sim().await;
    let mut cfg = config_for(&sim);
    cfg.max_response_bytes = 1024;
    let e = Client::new(cfg).unwrap().subscriptions().await.unwrap_err();
    assert!(matches!(e, ApiError::Failed(Failure::TooLarge { limit_bytes: 1024, .. })), "{e:?}");
    assert!(e.to_string().contains("1024-byte limit"), "{e}");
}
