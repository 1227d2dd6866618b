//! The large-fleet paths a person meets: the totals before the rows, and `--only due|attention`
//! to list the few that matter out of many.

use crate::helpers::*;

/// Three subscriptions: `sub0` due and renewable, `sub1` due with no plan offered (needs a
/// person), `sub2` due in 20 days.
async fn three() -> proxy_renewd::sim::Simulator {
    let mut state = world(&[DAY, DAY, 20 * DAY]);
    state.subscriptions[1].renewal_plan_ids.clear();
    sim_with(state).await
}

#[tokio::test]
async fn the_audit_prints_its_totals_first_and_lists_only_what_is_asked() {
    let sim = three().await;
    let mut cmd = bin_for(&sim);
    cmd.args(["--dry-run", "--only", "due"]);
    let ran = run(cmd).await;
    assert_eq!(ran.code, 3, "sub1 needs a person: {}{}", ran.stdout, ran.stderr);
    let lines: Vec<&str> = ran.stdout.lines().collect();
    assert!(lines[0].starts_with("3 subscriptions: 2 due, 1 renewable"), "{}", ran.stdout);
    assert!(ran.stdout.contains("--only due: 2 of 3 subscriptions listed"), "{}", ran.stdout);
    assert!(ran.stdout.contains("sub0") && ran.stdout.contains("sub1"), "{}", ran.stdout);
    assert!(!ran.stdout.contains("sub2"), "sub2 is not due: {}", ran.stdout);
    assert!(ran.stdout.contains("(!: needs a person; the DETAIL column says why)"), "an audit has no OUTCOME column");

    let mut cmd = bin_for(&sim);
    cmd.args(["--dry-run", "--only", "attention", "--format", "json"]);
    let ran = run(cmd).await;
    assert_eq!(ran.code, 3, "{}", ran.stderr);
    let doc: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap();
    let ids: Vec<&str> =
        doc["subscriptions"].as_array().unwrap().iter().map(|s| s["subscription_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["sub1"]);
    assert_eq!(doc["only"], "attention");
    assert_eq!(doc["totals"]["subscriptions"], 3, "the totals count every one");
    assert_eq!(doc["totals"]["needs_attention"], 1);
    let (totals, rows) = (ran.stdout.find("\"totals\"").unwrap(), ran.stdout.find("\"subscriptions\": [").unwrap());
    assert!(totals < rows, "the totals come before the rows");

    let mut cmd = bin_for(&sim);
    cmd.args(["once", "--dry-run", "--only", "due", "--format", "json"]);
    let doc: serde_json::Value = serde_json::from_str(&run(cmd).await.stdout).unwrap();
    assert_eq!(doc["subscriptions"].as_array().unwrap().len(), 2);
    assert!(sim.calls_of("renew").is_empty(), "an audit sends nothing");
}

#[tokio::test]
async fn without_only_every_row_is_listed_and_only_needs_a_dry_run_or_once() {
    let sim = three().await;
    let mut cmd = bin_for(&sim);
    cmd.args(["--dry-run", "--format", "json"]);
    let doc: serde_json::Value = serde_json::from_str(&run(cmd).await.stdout).unwrap();
    assert_eq!(doc["subscriptions"].as_array().unwrap().len(), 3);
    assert!(doc.get("only").is_none());
    sim.clear_calls();

    for args in [
        vec!["--only", "due"],
        vec!["--only", "due", "history"],
        vec!["--only", "due", "run"],
        vec!["--dry-run", "--only", "everything"],
    ] {
        let mut cmd = bin_for(&sim);
        cmd.args(&args);
        let ran = run(cmd).await;
        assert_eq!(ran.code, 2, "{args:?}: {}{}", ran.stdout, ran.stderr);
        assert!(ran.stderr.contains("--only"), "{args:?}: {}", ran.stderr);
    }
    assert!(sim.calls().is_empty(), "a usage error reads nothing");
    // `--dry-run --only due once` is `once --dry-run --only due`, as `--dry-run once` is.
    let mut cmd = bin_for(&sim);
    cmd.args(["--dry-run", "--only", "due", "--format", "json", "once"]);
    let doc: serde_json::Value = serde_json::from_str(&run(cmd).await.stdout).unwrap();
    assert_eq!(doc["only"], "due");
    assert_eq!(doc["subscriptions"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn the_default_answer_cap_takes_250000_subscriptions_of_the_references_size() {
    // What one entry of the simulator's list (the reference's shape, credentials and
    // protocol URLs included) weighs, from a real answer.
    let sim = sim_with(world(&[DAY; 100])).await;
    let body = reqwest::Client::new()
        .get(format!("{}api/proxy?op=subscriptions", sim.base_url()))
        .header("x-api-key", KEY)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let per_entry = body.len() as u64 / 100;
    let cap = proxy_renewd::api::client::DEFAULT_MAX_RESPONSE_BYTES;
    assert!(cap >= 250_000 * per_entry * 2, "{cap} bytes for 250,000 entries of {per_entry} bytes, with room");
    // And the configuration's default is that cap.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, format!("[api]\nbase_url = \"{}\"\nkey = \"{KEY}\"\n", sim.base_url())).unwrap();
    let cfg = proxy_renewd::config::Config::load(Some(&path)).unwrap();
    assert_eq!(cfg.api().unwrap().client.max_response_bytes, cap);
}
