//! Each curl command of the provider's reference, run with the real `curl` against
//! `proxy-renewd sim` (the binary), gets an answer of the documented shape: every key the
//! reference shows, with the same JSON type, at every depth.

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;

use crate::helpers::{bin, fixture};

/// Starts `proxy-renewd sim` on a free port with a large balance; returns it and its base URL.
async fn start_sim_binary(dir: &std::path::Path) -> (Child, String) {
    let mut state = proxy_renewd::sim::SimState::sample(proxy_renewd::values::EpochMs::now().0);
    state.balance_cents = 1_000_000;
    let path = dir.join("state.json");
    std::fs::write(&path, serde_json::to_string(&state).unwrap()).unwrap();
    let mut cmd = bin();
    cmd.args(["sim", "--listen", "127.0.0.1:0", "--api-key", "rk_your_long_lived_api_key", "--state"]).arg(&path);
    cmd.stdout(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next_line().await.unwrap().expect("the simulator prints its address");
    let url = first.split_whitespace().last().unwrap().trim_end_matches("api/proxy").trim_end_matches('/').to_owned();
    // Keep reading, so that the simulator never writes to a closed pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, url)
}

/// `actual` has every key of `expected`, with the same JSON type, recursively.
fn assert_shape(path: &str, expected: &Value, actual: &Value) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, ev) in e {
                let av = a.get(k).unwrap_or_else(|| panic!("{path}.{k} is missing in {actual}"));
                assert_shape(&format!("{path}.{k}"), ev, av);
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            if let Some(first) = e.first() {
                assert!(!a.is_empty(), "{path} is empty");
                a.iter().enumerate().for_each(|(i, item)| assert_shape(&format!("{path}[{i}]"), first, item));
            }
        }
        (Value::Number(_), Value::Number(_))
        | (Value::String(_), Value::String(_))
        | (Value::Bool(_), Value::Bool(_)) => {}
        _ => panic!("{path}: expected something like {expected}, got {actual}"),
    }
}

async fn curl(args: &[&str]) -> Value {
    let out = tokio::process::Command::new("curl")
        .args(args)
        .output()
        .await
        .expect("curl is installed (.ci/run installs it)");
    assert!(out.status.success(), "curl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("curl {args:?} gave non-JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

#[tokio::test]
async fn the_references_curl_commands_get_the_documented_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let (_child, base) = start_sim_binary(dir.path()).await;
    let key = "x-api-key: rk_your_long_lived_api_key";
    let sub = "j97b2f6m1k4n8p3r5t7v9x0z";
    let gets = [
        (format!("{base}/api/proxy?op=plans"), "plans.json"),
        (format!("{base}/api/proxy?op=subscriptions"), "subscriptions.json"),
        (format!("{base}/api/proxy?op=renewal-plans&subscriptionId={sub}"), "renewal-plans.json"),
        (format!("{base}/api/proxy?op=available-networks&subscriptionId={sub}"), "available-networks.json"),
    ];
    for (url, shape) in &gets {
        let got = curl(&["-sS", "-H", key, url]).await;
        assert_shape(shape, &serde_json::from_str(&fixture(shape)).unwrap(), &got);
    }
    // The POST bodies exactly as the reference's curl commands send them.
    let posts = [
        (
            r#"{"op":"purchase","planId":"k17m3q5v7n9p1r2t4w6y8z0a","repeatCount":3,"quantity":2}"#,
            "purchase-response.json",
        ),
        (
            r#"{"op":"renew","subscriptionId":"j97b2f6m1k4n8p3r5t7v9x0z","planId":"q2w4e6r8t0y2u4i6o8p0a2s4","repeatCount":3}"#,
            "renew-response.json",
        ),
        (
            r#"{"op":"change-credentials","subscriptionId":"j97b2f6m1k4n8p3r5t7v9x0z"}"#,
            "change-credentials-response.json",
        ),
        (
            r#"{"op":"switch-network","subscriptionId":"j97b2f6m1k4n8p3r5t7v9x0z","targetNetwork":"b1c2d3e4f5g6h7j8k9m0n1p2"}"#,
            "switch-network-response.json",
        ),
    ];
    let url = format!("{base}/api/proxy");
    for (body, shape) in posts {
        let got =
            curl(&["-sS", "-X", "POST", "-H", key, "-H", "Content-Type: application/json", "-d", body, &url]).await;
        assert_shape(shape, &serde_json::from_str(&fixture(shape)).unwrap(), &got);
    }
    // And without the key: the documented 401.
    let got = curl(&["-sS", &gets[0].0]).await;
    assert_eq!(got, serde_json::json!({"ok": false, "error": "Unauthorized"}));
}
