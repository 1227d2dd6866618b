//! No key, proxy login, password, VPN id, rotation path or protocol URL in any `Debug` or
//! `Display` of our types and errors, in the CLI's output unless asked, or in its logs.

use proxy_renewd::api::{Client, PostError};
use proxy_renewd::config::Config;

use crate::helpers::{KEY, bin_for, canned, client, config_for, fixture, renew_req, run, sample_id, sim};

/// Every secret the sample subscription 1 and the reference fixture carry, and the key.
fn secrets() -> Vec<&'static str> {
    vec![
        KEY,
        "u_sim01",
        "p_sim01x7",
        "7f3d9d4a-8b9f-4a93-9f55-2d5e3b7f1c01",
        "/r/7f3d9d4a",
        "u_6k8s9d",
        "p_2n4m6q",
        "q7N3x9Lp",
        "7f3d9d4a-8b9f-4a93-9f55-2d5e3b7f1c24",
        "socks5://",
        "vless://",
        "ss://",
        "@proxy.example.com",
    ]
}

fn assert_clean(what: &str, text: &str) {
    for s in secrets() {
        assert!(!text.contains(s), "{what} leaks {s:?}:\n{text}");
    }
}

#[tokio::test]
async fn debug_and_display_of_types_and_errors_show_no_secret() {
    let sim = sim().await;
    let c = client(&sim);
    assert_clean("Client", &format!("{c:?}"));
    assert_clean("ClientConfig", &format!("{:?}", config_for(&sim)));
    let list = c.subscriptions().await.unwrap();
    assert_clean("SubscriptionList", &format!("{list:?} {:#?}", list.subscriptions[1]));
    sim.fault("change-credentials", canned(200, fixture("change-credentials-response.json")), 1);
    let creds = c.change_credentials(&sample_id(1)).await.unwrap();
    assert_clean("NewCredentials", &format!("{creds:?}"));
    sim.fault("switch-network", canned(200, fixture("switch-network-response.json")), 1);
    let moved = c
        .switch_network(&sample_id(1), &proxy_renewd::values::NetworkId::parse("b1c2d3e4f5g6h7j8k9m0n1p2").unwrap())
        .await
        .unwrap();
    assert_clean("switched Subscription", &format!("{moved:?}"));

    // Errors whose bodies are full of secrets: a malformed subscriptions answer, an
    // HTML page echoing the key, a refusal whose message quotes credentials.
    let leaky = fixture("subscriptions.json")
        .replace("\"activeUntil\": 1762592000000", "\"activeUntil\": null")
        .replace("\"ok\": true", "\"ok\": false");
    sim.fault("subscriptions", canned(200, leaky), 1);
    let e = c.subscriptions().await.unwrap_err();
    assert_clean("malformed subscriptions error", &format!("{e} {e:?}"));
    sim.fault(
        "plans",
        canned(502, format!("<html>bad key {KEY} for http://u_6k8s9d:p_2n4m6q@proxy.example.com</html>")),
        5,
    );
    let e = c.plans().await.unwrap_err();
    assert_clean("HTML error", &format!("{e} {e:?}"));
    sim.fault(
        "renew",
        canned(409, format!(r#"{{"ok": false, "error": "state of socks5://u_6k8s9d:p_2n4m6q@h with {KEY}"}}"#)),
        1,
    );
    let req = renew_req(1, "k17m3q5v7n9p1r2t4w6y8z0a");
    let e = c.renew(&req).await.unwrap_err();
    assert!(matches!(e, PostError::Refused(_)));
    assert_clean("refusal", &format!("{e} {e:?}"));
    let bad_entry = r#"{"ok": true, "subscriptions": [{"subscriptionId": "a1", "status": "active", "activeUntil": 1, "credentials": {"username": "u_6k8s9d", "password": 7}}]}"#;
    sim.fault("subscriptions", canned(200, bad_entry), 1);
    let list = c.subscriptions().await.unwrap();
    assert_eq!(list.malformed.len(), 1);
    assert_clean("malformed entry", &format!("{:?} {}", list.malformed, list.malformed[0].reason));
}

#[test]
fn config_debug_shows_no_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, format!("[api]\nbase_url = \"http://127.0.0.1:9\"\nkey = \"{KEY}\"\n[alerts.email]\nsmtp_url = \"smtp://u:hunter2@mail:587\"\nfrom = \"a@b\"\nto = [\"c@d\"]\n")).unwrap();
    let cfg = Config::load(Some(&path)).unwrap();
    let api = cfg.api().unwrap();
    let text = format!("{cfg:?} {api:?} {:?}", Client::new(api.client.clone()).unwrap());
    assert_clean("Config", &text);
    assert!(!text.contains("hunter2"), "{text}");
}

#[tokio::test]
async fn the_cli_redacts_unless_asked_and_logs_nothing_secret() {
    let sim = sim().await;
    for format in ["table", "json"] {
        let mut cmd = bin_for(&sim);
        cmd.args(["api", "subscriptions", "--format", format]).env("RUST_LOG", "trace");
        let out = run(cmd).await;
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert!(out.stdout.contains("s01b2f6m1k4n8p3r5t7v9x0z"), "{}", out.stdout);
        assert_clean(&format!("api subscriptions --format {format} stdout"), &out.stdout);
        // The absence of secrets means something only if the logs are there: our client's
        // line for this answer, and the HTTP stack's own trace lines.
        let answered = out.stderr.lines().find(|l| l.contains("provider answered")).unwrap_or_default();
        assert!(answered.contains("subscriptions") && answered.contains("200"), "no trace of the read: {}", out.stderr);
        assert!(out.stderr.contains("hyper_util"), "RUST_LOG=trace gave no trace lines: {}", out.stderr);
        assert_clean("trace logs", &out.stderr);
    }
    let mut cmd = bin_for(&sim);
    cmd.args(["api", "subscriptions", "--show-secrets", "--format", "json"]);
    let out = run(cmd).await;
    assert!(
        out.stdout.contains("p_sim01x7") && out.stdout.contains("http://u_sim01:p_sim01x7@"),
        "--show-secrets shows them: {}",
        out.stdout
    );
}

#[tokio::test]
async fn proxy_logins_seen_in_subscriptions_are_kept_out_of_later_errors() {
    let sim = sim().await;
    let c = client(&sim);
    c.subscriptions().await.unwrap();
    sim.fault(
        "renew",
        crate::helpers::canned(409, r#"{"ok": false, "error": "proxy 1.2.3.4:12002:u_sim01:p_sim01x7 is busy"}"#),
        1,
    );
    let req = renew_req(1, "k17m3q5v7n9p1r2t4w6y8z0a");
    let e = c.renew(&req).await.unwrap_err();
    assert_clean("refusal quoting a proxy login", &format!("{e} {e:?}"));
    assert!(e.to_string().contains("is busy"), "{e}");
}

#[tokio::test]
async fn a_body_that_is_not_json_is_quoted_without_the_credentials_it_holds() {
    let sim = crate::helpers::sim_with(crate::helpers::world(&[20 * crate::helpers::DAY])).await;
    // A list cut short: not JSON, so no JSON redaction; the shape still gives the secrets away.
    let cut = r#"{"ok":true,"subscriptions":[{"subscriptionId":"abc","credentials":{"username":"u_9z8y7x","password":"p_w6v5u4"},"rotate":{"rotatePath":"/r/zz99yy88"},"status":"act"#;
    sim.fault("subscriptions", crate::helpers::canned(200, cut), 10);
    let mut cmd = crate::helpers::bin_for(&sim);
    cmd.args(["once"]).env("RUST_LOG", "trace").env("PROXY_RENEWD_API__MAX_ATTEMPTS", "1");
    let dir = tempfile::tempdir().unwrap();
    cmd.env("PROXY_RENEWD_DATABASE__URL", format!("sqlite://{}", dir.path().join("r.db").display()));
    let ran = crate::helpers::run(cmd).await;
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    assert!(ran.stderr.contains("the body is not JSON"), "{}", ran.stderr);
    for secret in ["u_9z8y7x", "p_w6v5u4", "zz99yy88"] {
        assert!(!ran.stderr.contains(secret) && !ran.stdout.contains(secret), "{secret} leaked:\n{}", ran.stderr);
    }
}

#[tokio::test]
async fn the_forecast_prints_and_logs_nothing_secret() {
    let sim = sim().await;
    for format in ["table", "json"] {
        let mut cmd = bin_for(&sim);
        cmd.args(["forecast", "--format", format]).env("RUST_LOG", "trace");
        let out = run(cmd).await;
        assert!(out.code == 0 || out.code == 3, "{}", out.stderr);
        assert!(out.stdout.contains("s01b2f6m1k4n8p3r5t7v9x0z"), "{}", out.stdout);
        assert!(out.stderr.contains("hyper_util"), "RUST_LOG=trace gave no trace lines: {}", out.stderr);
        assert_clean(&format!("forecast --format {format} stdout"), &out.stdout);
        assert_clean("forecast trace logs", &out.stderr);
    }
}

#[tokio::test]
async fn an_error_page_that_names_a_password_is_quoted_without_it_before_any_login_is_known() {
    // A fresh start: no subscriptions read yet, so the client knows no login to look for.
    let sim = sim().await;
    for body in
        ["upstream failed: password: p_sim01x7", "proxy 10.0.0.1:12001:u_sim01:p_sim01x7 down", "token=q7N3x9Lp"]
    {
        sim.fault("subscriptions", canned(502, body), 5);
        let mut cmd = bin_for(&sim);
        cmd.args(["forecast"]).env("RUST_LOG", "debug");
        let out = run(cmd).await;
        assert_eq!(out.code, 1, "{}", out.stderr);
        assert!(out.stderr.contains("502"), "{}", out.stderr);
        assert_clean("forecast error", &out.stderr);
        sim.clear_faults();
    }
}
