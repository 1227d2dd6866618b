//! `[server]`: `run` serves Prometheus metrics that parse and match the provider's data, and
//! health endpoints that turn 503 when the provider has failed for longer than the window.

use std::process::Stdio;
use std::time::{Duration, Instant};

use proxy_renewd::sim::FaultKind;

use crate::helpers::{DAY, world};
use crate::helpers::{KEY, bin, sim_with};

/// Every line is a comment or `name{labels} value`, as the text exposition format says; and
/// `promtool check metrics` accepts it when promtool is installed (`.ci/run` installs it).
fn assert_parses(text: &str) {
    for line in text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value: {line}"));
        assert!(value.parse::<f64>().is_ok() || ["+Inf", "-Inf", "NaN"].contains(&value), "bad value in {line}");
        let name_end = series.find('{').unwrap_or(series.len());
        assert!(
            series[..name_end].chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad name in {line}"
        );
    }
    assert!(text.trim_end().ends_with("# EOF"), "OpenMetrics ends with # EOF");
    if let Ok(mut child) = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        use std::io::Write;
        // promtool reads the classic text format: drop the OpenMetrics end marker.
        child.stdin.take().unwrap().write_all(text.replace("# EOF\n", "").as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        let report = String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
        assert!(!report.contains("error"), "promtool check metrics: {report}");
    } else {
        // .ci/run installs promtool: there the check must run, not be skipped.
        assert!(std::env::var_os("CI").is_none(), "promtool is missing, but CI must check the metrics with it");
    }
}

fn value(text: &str, prefix: &str) -> Option<f64> {
    text.lines().find(|l| l.starts_with(prefix)).and_then(|l| l.rsplit_once(' ')).and_then(|(_, v)| v.parse().ok())
}

async fn get(url: &str) -> (u16, String) {
    match reqwest::get(url).await {
        Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
        Err(_) => (0, String::new()),
    }
}

async fn wait_until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn run_serves_metrics_that_match_the_provider_and_health_that_notices_failure() {
    let sim = sim_with(world(&[DAY, 20 * DAY])).await;
    let dir = tempfile::tempdir().unwrap();
    let port = crate::helpers::free_port();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!(
            "[api]\nbase_url = \"{}\"\nkey = \"{KEY}\"\ntimeout = \"1s\"\nmax_attempts = 1\n[ledger]\nreconcile_after = \"3s\"\n[database]\nurl = \"sqlite://{}\"\n[schedule]\ncron = \"* * * * * *\"\njitter = \"0s\"\n[server]\nlisten = \"127.0.0.1:{port}\"\n",
            sim.base_url(),
            dir.path().join("r.db").display()
        ),
    )
    .unwrap();
    let mut cmd = bin();
    cmd.args(["run", "--config"]).arg(&config).stdout(Stdio::null()).stderr(Stdio::null());
    let mut daemon = cmd.spawn().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    wait_until("ready", async || get(&format!("{base}/readyz")).await.0 == 200).await;
    wait_until("a renewal to be counted", async || {
        get(&format!("{base}/metrics")).await.1.contains("proxy_renewd_renewals_total{outcome=\"succeeded\"} 1")
    })
    .await;
    let (status, text) = get(&format!("{base}/metrics")).await;
    assert_eq!(status, 200);
    assert_parses(&text);
    let sub1 = sim.state().subscriptions[1].active_until_ms;
    let gauge = value(&text, "proxy_renewd_subscription_expiry_timestamp_seconds{subscription_id=\"sub1\"")
        .expect("sub1's expiry gauge");
    assert!((gauge - sub1 as f64 / 1000.0).abs() < 1e-3, "{gauge} vs {sub1}");
    assert_eq!(value(&text, "proxy_renewd_renewal_spend_cents_total"), Some(1200.0));
    assert!(text.contains("proxy_renewd_api_requests_total{op=\"renew\",status=\"200\"} 1"), "{text}");
    assert!(text.contains("proxy_renewd_build_info{version="), "{text}");
    // The forecast after the renewal: sub1 due in 17 days, priced by the plan known on its
    // network (NL-AMS: 12.00; op=plans has a cheaper one elsewhere), and sub0 again in 28,
    // by the plan it was just renewed with (12.00); none within 7.
    assert_eq!(value(&text, "proxy_renewd_forecast_spend_cents{window=\"30d\"}"), Some(2400.0), "{text}");
    assert_eq!(value(&text, "proxy_renewd_forecast_renewals{window=\"30d\"}"), Some(2.0));
    assert_eq!(value(&text, "proxy_renewd_forecast_renewals{window=\"7d\"}"), Some(0.0));
    assert_eq!(value(&text, "proxy_renewd_forecast_spend_cents{window=\"24h\"}"), Some(0.0));
    assert!(!text.contains("p_sim") && !text.contains(KEY), "no secrets in metrics");
    assert_eq!(get(&format!("{base}/healthz")).await.0, 200);

    // Every read fails from now on: after three schedule intervals, unhealthy.
    sim.fault("subscriptions", FaultKind::StatusBefore { status: 503 }, u32::MAX);
    wait_until("/healthz to turn 503", async || get(&format!("{base}/healthz")).await.0 == 503).await;
    let (_, reason) = get(&format!("{base}/healthz")).await;
    assert!(reason.starts_with("no successful cycle since"), "{reason}");
    daemon.kill().await.unwrap();
}
