//! No silent lapse (issue 11): one bad byte, an outage, a refusal or a vanished entry never
//! stops renewals quietly. Each test names the fault it is about; each runs the real library
//! against the simulator.

use proxy_renewd::attempt::RenewOutcome;
use proxy_renewd::sim::FaultKind;

use crate::helpers::{DAY, spawn};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An entry for `id`, not due, whose field `field` holds `raw` verbatim.
fn entry_with(id: &str, field: &str, raw: &[u8]) -> String {
    let until = proxy_renewd::values::EpochMs::now().0 + 20 * DAY;
    let mut e = format!(r#"{{"subscriptionId": "{id}", "status": "active", "activeUntil": {until}, "#).into_bytes();
    e = [e, format!(r#""{field}": "#).into_bytes(), raw.to_vec(), b"}".to_vec()].concat();
    hex(&e)
}

#[tokio::test]
async fn one_unreadable_entry_does_not_hide_the_due_ones() {
    let (sim, s) = spawn(&[DAY], "").await;
    let deep = [vec![b'['; 300], vec![b']'; 300]].concat();
    let entries = vec![
        entry_with("badutf8", "label", b"\"\xff\xfe\""),
        entry_with("hugenumber", "rotationPolicy", b"1e400"),
        // Unknown fields are ignored, however odd: this entry is read and used.
        entry_with("deepnesting", "x", &deep),
        entry_with("unknownbytes", "y", b"\"\xff\""),
    ];
    sim.fault("subscriptions", FaultKind::RawEntries { entries_hex: entries }, 1);
    let report = s.cycle().await;
    assert!(matches!(report.items[0].outcome, Some(RenewOutcome::Succeeded { .. })), "{report:?}");
    assert_eq!(sim.calls_of("renew").len(), 1, "the due subscription is renewed");
    let named: Vec<String> = report
        .malformed
        .iter()
        .map(|m| m.subscription_id.as_ref().map(ToString::to_string).unwrap_or_default())
        .collect();
    assert_eq!(named, ["badutf8", "hugenumber"], "{:?}", report.malformed);
    let read: Vec<&str> = report.items.iter().map(|i| i.subscription.subscription_id.as_str()).collect();
    assert!(read.contains(&"deepnesting") && read.contains(&"unknownbytes"), "{read:?}");
    assert!(report.needs_attention());
    let kinds: Vec<String> =
        s.store.outbox(false, 100).await.unwrap().iter().map(|r| r.alert.kind.as_str().to_owned()).collect();
    assert_eq!(kinds.iter().filter(|k| *k == "malformed").count(), 2, "{kinds:?}");
}

#[tokio::test]
async fn a_list_of_non_objects_is_counted_once_not_alerted_one_by_one() {
    let (sim, s) = spawn(&[DAY], "").await;
    let mut entries: Vec<String> = vec![hex(b"1"); 300_000];
    // And some objects without a readable id: alerted ten at a time, the rest counted.
    entries.extend(std::iter::repeat_n(hex(b"{\"status\": 5}"), 50));
    sim.fault("subscriptions", FaultKind::RawEntries { entries_hex: entries }, 1);
    let report = s.cycle().await;
    assert_eq!(report.not_objects, 300_000);
    assert_eq!(report.malformed.len(), 50);
    assert_eq!(sim.calls_of("renew").len(), 1, "the due subscription is still renewed");
    let rows = s.store.outbox(false, 1_000).await.unwrap();
    let malformed: Vec<&str> =
        rows.iter().filter(|r| r.alert.kind.as_str() == "malformed").map(|r| r.alert.happened.as_str()).collect();
    assert_eq!(malformed.len(), 12, "ten entries, one for the other 40, one for the non-objects: {malformed:?}");
    assert!(malformed.iter().any(|h| h.contains("300000 entries of subscriptions[] are not objects")), "{malformed:?}");
    assert!(malformed.iter().any(|h| h.contains("40 more entries")), "{malformed:?}");
}

#[tokio::test]
async fn a_403_on_renewal_plans_is_an_auth_alert_not_no_eligible_plan() {
    let (sim, s) = spawn(&[DAY], "").await;
    sim.fault("renewal-plans", FaultKind::StatusBefore { status: 403 }, 1);
    let report = s.cycle().await;
    assert!(report.needs_attention());
    let kinds: Vec<String> =
        s.store.outbox(false, 100).await.unwrap().iter().map(|r| r.alert.kind.as_str().to_owned()).collect();
    assert!(kinds.contains(&"auth".to_owned()), "{kinds:?}");
    assert!(!kinds.contains(&"no-eligible-plan".to_owned()), "{kinds:?}");
    assert!(sim.calls_of("renew").is_empty());
}
