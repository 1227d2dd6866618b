//! The real binary: bad input gives one line that says what to fix and a non-zero exit, and
//! the `api` views print what the provider holds.

use serde_json::Value;

use crate::helpers::{bin, bin_for, run, sim};

fn one_line_error(stderr: &str) -> &str {
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "expected one error line, got:\n{stderr}");
    lines[0]
}

#[tokio::test]
async fn a_bad_id_is_refused_before_any_request() {
    let sim = sim().await;
    let mut cmd = bin_for(&sim);
    cmd.args(["api", "renewal-plans", "J97B-2F6M"]);
    let out = run(cmd).await;
    assert_eq!(out.code, 1);
    let line = one_line_error(&out.stderr);
    assert!(
        line.contains("invalid subscription id \"J97B-2F6M\"") && line.contains("lowercase letters and digits"),
        "{line}"
    );
    assert!(sim.calls().is_empty(), "no request may be made: {:?}", sim.calls());
}

#[tokio::test]
async fn an_unreachable_base_url_says_to_check_it() {
    let mut cmd = bin();
    cmd.args(["api", "plans"])
        .env("PROXY_RENEWD_API__BASE_URL", "http://127.0.0.1:1")
        .env("PROXY_RENEWD_API__KEY", "rk_x")
        .env("PROXY_RENEWD_API__MAX_ATTEMPTS", "1");
    let out = run(cmd).await;
    assert_eq!(out.code, 1);
    let line = one_line_error(&out.stderr);
    assert!(line.contains("could not connect") && line.contains("[api].base_url"), "{line}");
}

#[tokio::test]
async fn a_wrong_key_says_to_check_the_key() {
    let sim = sim().await;
    let mut cmd = bin_for(&sim);
    cmd.args(["api", "subscriptions"]).env("PROXY_RENEWD_API__KEY", "rk_wrong");
    let out = run(cmd).await;
    assert_eq!(out.code, 1);
    let line = one_line_error(&out.stderr);
    assert!(line.contains("HTTP 401") && line.contains("check [api].key"), "{line}");
    assert!(!out.stderr.contains("rk_wrong"), "the key is never shown: {}", out.stderr);
}

#[tokio::test]
async fn config_problems_name_the_key_and_where_it_came_from() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("[api]\nbase_url = \"http://127.0.0.1:9\"\n", "api.key"),
        ("[api]\nkey = \"rk_1\"\n", "api.base_url"),
        ("[api]\nbase_url = \"not a url\"\nkey = \"rk_1\"\n", "api.base_url"),
        ("[api]\nbase_url = \"http://h\"\nkey = \"rk_1\"\ntimeout = \"half a minute\"\n", "timeout"),
        ("[api]\nbase_url = \"http://h\"\nkey = \"rk_1\"\nbase_ulr = \"x\"\n", "base_ulr"),
        ("[api\nbase_url = ", "c.toml"),
    ];
    for (toml, named) in cases {
        let path = dir.path().join("c.toml");
        std::fs::write(&path, toml).unwrap();
        let mut cmd = bin();
        cmd.args(["api", "plans", "--config"]).arg(&path);
        let out = run(cmd).await;
        assert_eq!(out.code, 1, "{toml}: {}", out.stderr);
        let line = one_line_error(&out.stderr);
        assert!(line.contains(named), "{toml:?} should name {named}: {line}");
    }
    let mut cmd = bin();
    cmd.args(["api", "plans", "--config", "/nonexistent/proxy-renewd.toml"]);
    let out = run(cmd).await;
    assert_eq!(out.code, 1);
    assert!(one_line_error(&out.stderr).contains("does not exist"), "{}", out.stderr);
    let mut cmd = bin();
    cmd.args(["api", "plans"])
        .env("PROXY_RENEWD_API__BASE_URL", "http://h")
        .env("PROXY_RENEWD_API__KEY", "rk_1")
        .env("PROXY_RENEWD_API__TIMEOUT", "never");
    let out = run(cmd).await;
    assert!(
        one_line_error(&out.stderr).contains("PROXY_RENEWD_API__TIMEOUT") || out.stderr.contains("environment"),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn usage_errors_exit_2() {
    let mut cmd = bin();
    cmd.args(["api", "renewal-plans"]);
    assert_eq!(run(cmd).await.code, 2);
    let mut cmd = bin();
    cmd.args(["--format", "yaml", "api", "plans"]);
    assert_eq!(run(cmd).await.code, 2);
}

#[tokio::test]
async fn api_views_print_the_providers_data() {
    let sim = sim().await;
    let mut cmd = bin_for(&sim);
    cmd.args(["--format", "json", "api", "subscriptions"]);
    let out = run(cmd).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["subscriptions"].as_array().unwrap().len(), 10);
    assert_eq!(doc["subscriptions"][1]["credentials"]["password"], "<redacted>");

    let mut cmd = bin_for(&sim);
    cmd.args(["api", "renewal-plans", "s01b2f6m1k4n8p3r5t7v9x0z"]);
    let out = run(cmd).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("k17m3q5v7n9p1r2t4w6y8z0a") && out.stdout.contains("12.00"), "{}", out.stdout);

    let mut cmd = bin_for(&sim);
    cmd.args(["api", "networks", "s01b2f6m1k4n8p3r5t7v9x0z", "--format", "json"]);
    let out = run(cmd).await;
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    let labels: Vec<&str> =
        doc["networks"].as_array().unwrap().iter().map(|n| n["networkLabel"].as_str().unwrap()).collect();
    assert_eq!(labels, ["DE-BER Berlin", "US-NYC New York"]);

    let mut cmd = bin_for(&sim);
    cmd.args(["api", "plans"]);
    let out = run(cmd).await;
    assert_eq!(out.stdout.lines().count(), 5, "a header and the four active plans: {}", out.stdout);
}

#[tokio::test]
async fn a_key_file_is_read() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("api-key"), format!("{}\n", crate::helpers::KEY)).unwrap();
    let mut cmd = bin();
    cmd.args(["api", "plans"])
        .env("PROXY_RENEWD_API__BASE_URL", sim.base_url().as_str())
        .env("PROXY_RENEWD_API__KEY_FILE", "api-key")
        .env("CREDENTIALS_DIRECTORY", dir.path());
    let out = run(cmd).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
}

#[tokio::test]
async fn dry_run_is_refused_where_it_would_be_ignored() {
    for args in [
        vec!["renew", "abc", "--yes", "--dry-run"],
        vec!["--dry-run", "rules", "set", "abc"],
        vec!["history", "--dry-run"],
    ] {
        let mut cmd = bin();
        cmd.args(&args);
        let out = run(cmd).await;
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains("--dry-run applies to") || out.stderr.contains("unexpected argument '--dry-run'"),
            "{}",
            out.stderr
        );
    }
}
