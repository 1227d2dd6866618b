//! Regressions from attacking the client, the CLI and the simulator with hostile input:
//! redirects, echoed secrets, escape sequences, closed pipes, bad files, and numbers at the
//! edges. Each asserts on what a user would see.

use std::process::Stdio;

use proxy_renewd::api::{ApiError, Failure};
use proxy_renewd::sim::{Fault, FaultKind, SimState};
use serde_json::json;

use crate::helpers::{KEY, bin, bin_for, canned, client, run, sim};

#[tokio::test]
async fn a_redirect_is_not_followed_and_the_key_stays_home() {
    let elsewhere = sim().await;
    let sim = sim().await;
    let target = format!("{}api/proxy?op=plans", elsewhere.base_url());
    sim.fault(
        "plans",
        FaultKind::Canned { status: 302, body: String::new(), headers: vec![("location".into(), target)] },
        1,
    );
    let e = client(&sim).plans().await.unwrap_err();
    assert!(matches!(e, ApiError::Failed(Failure::Server { status: 302, .. })), "{e:?}");
    assert!(e.to_string().contains("redirect"), "{e}");
    assert!(elsewhere.calls().is_empty(), "the request (and its key) went to the redirect target");
}

#[tokio::test]
async fn an_echoed_key_never_reaches_an_error() {
    let sim = sim().await;
    let c = client(&sim);
    for body in [
        format!(r#"{{"ok": true, "note": "{KEY}", "planz": []}}"#),
        format!(r#"{{"ok": true, "plans": [{{"id": "abc", "durationMs": "{KEY}", "priceAmountCents": 1}}]}}"#),
        r#"{"ok": true, "http://bob:SECRETPW@x": 1}"#.to_owned(),
    ] {
        sim.fault("plans", canned(200, body), 1);
        let e = c.plans().await.unwrap_err();
        let text = format!("{e} {e:?}");
        assert!(!text.contains(KEY) && !text.contains("SECRETPW"), "{text}");
    }
}

#[tokio::test]
async fn provider_text_is_cleaned_before_it_is_printed() {
    let sim = sim().await;
    sim.update(|s, _| {
        s.subscriptions[1].user_note =
            Some("see http://bob:SECRETPW@x.example\u{1b}]0;pwned\u{7}\nmalformed: fake".into());
    });
    for format in ["table", "json"] {
        let mut cmd = bin_for(&sim);
        cmd.args(["api", "subscriptions", "--format", format]);
        let out = run(cmd).await;
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert!(!out.stdout.contains("SECRETPW") && !out.stdout.contains('\u{1b}'), "{}", out.stdout);
        assert!(!out.stdout.lines().any(|l| l.starts_with("malformed:")), "a note forged a line: {}", out.stdout);
        // The note is still shown, cleaned: the login replaced, the escape and the newline
        // turned into spaces (serde's escaping alone would keep `\u001b` and `\n`).
        let cleaned = "see <redacted> ]0;pwned malformed: fake";
        if format == "json" {
            let list: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
            let notes: Vec<&str> =
                list["subscriptions"].as_array().unwrap().iter().filter_map(|s| s["userNote"].as_str()).collect();
            assert!(notes.contains(&cleaned), "{notes:?}");
        } else {
            assert!(out.stdout.lines().any(|l| l.contains("see <redacted> ]0;pwned")), "{}", out.stdout);
        }
    }
}

#[tokio::test]
async fn a_closed_stdout_ends_quietly() {
    let sim = sim().await;
    sim.fault("plans", FaultKind::Latency { ms: 300 }, 1);
    let mut cmd = bin_for(&sim);
    cmd.args(["api", "plans"]).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test]
async fn config_errors_never_quote_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        "[api]\nbase_url = \"http://127.0.0.1:9\"\nkey = \"rk_SECRETPW\n",
        "[api]\nbase_url = \"http://127.0.0.1:9\"\nkey = \"rk_SECRETPW\" extra = 1\n",
        "[api]\nbase_url = \"http://127.0.0.1:9\"\nkey = \"rk_SECRETPW\"\nkey = \"rk_SECRETPW\"\n",
        "[api]\nbase_url = \"http://127.0.0.1:9\"\nkey = [\"rk_SECRETPW\"]\n",
        "[api]\nbase_url = \"ftp://user:SECRETPW@127.0.0.1/\"\nkey = \"rk_1\"\n",
        "[api]\nbase_url = \"http://user:SECRETPW@127.0.0.1:99999\"\nkey = \"rk_1\"\n",
        "[alerts.email]\nsmtp_url = \"http://u:SECRETPW@mail\"\nfrom = \"a@b\"\nto = [\"c@d\"]\n",
    ];
    for toml in cases {
        let path = dir.path().join("c.toml");
        std::fs::write(&path, toml).unwrap();
        let mut cmd = bin();
        cmd.args(["api", "plans", "--config"]).arg(&path);
        let out = run(cmd).await;
        assert_eq!(out.code, 1, "{toml}: {}", out.stderr);
        assert!(out.stderr.lines().any(|l| l.starts_with("error: invalid configuration")), "{toml}: {}", out.stderr);
        assert!(!out.stderr.contains("SECRETPW"), "{toml} leaked: {}", out.stderr);
    }
}

#[tokio::test]
async fn an_all_digit_key_from_the_environment_is_a_key() {
    let sim = sim().await;
    let mut cmd = bin_for(&sim);
    cmd.args(["api", "plans"]).env("PROXY_RENEWD_API__KEY", "12345678");
    let out = run(cmd).await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("HTTP 401"), "read as a key and sent, not a type error: {}", out.stderr);
    assert!(!out.stderr.contains("12345678"), "{}", out.stderr);
}

#[tokio::test]
async fn special_files_are_refused_not_read() {
    let mut cmd = bin();
    cmd.args(["api", "plans", "--config", "/dev/zero"]);
    let out = run(cmd).await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("not a regular file"), "{}", out.stderr);
    let mut cmd = bin();
    cmd.args(["api", "plans"])
        .env("PROXY_RENEWD_API__BASE_URL", "http://127.0.0.1:9")
        .env("PROXY_RENEWD_API__KEY_FILE", "/dev/zero");
    let out = run(cmd).await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("api.key_file") && out.stderr.contains("not a regular file"), "{}", out.stderr);
}

#[tokio::test]
async fn a_wrong_base_path_says_so() {
    let sim = sim().await;
    let mut cmd = bin_for(&sim);
    cmd.args(["api", "plans"]).env("PROXY_RENEWD_API__BASE_URL", format!("{}gw/", sim.base_url()));
    let out = run(cmd).await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("endpoint was not found") && out.stderr.contains("base_url"), "{}", out.stderr);
    let mut cmd = bin_for(&sim);
    cmd.args(["api", "plans"]).env("PROXY_RENEWD_API__BASE_URL", format!("{}api/proxy", sim.base_url()));
    let out = run(cmd).await;
    assert!(out.stderr.contains("must not end in /api/proxy"), "{}", out.stderr);
}

#[tokio::test]
async fn the_simulator_survives_numbers_at_the_edges() {
    let sim = sim().await;
    let http = reqwest::Client::new();
    let clock = http.post(format!("{}__sim/clock", sim.base_url())).body(r#"{"offset_ms": 9223372036854775807}"#);
    assert_eq!(clock.send().await.unwrap().status().as_u16(), 204, "no content type needed");
    assert_eq!(client(&sim).plans().await.unwrap().len(), 4, "still answers with the clock at the end of time");
    sim.update(|s, _| {
        s.settings.clock_offset_ms = 0;
        s.subscriptions[1].port = u16::MAX;
        s.subscriptions[2].vpn = "€€€€€€€€€€".into();
        s.plans[0].price_cents = i64::MAX;
        s.balance_cents = i64::MAX;
    });
    assert_eq!(client(&sim).subscriptions().await.unwrap().subscriptions.len(), 10);
    let purchase = json!({"op": "purchase", "planId": "q2w4e6r8t0y2u4i6o8p0a2s4"});
    let renew = json!({"op": "renew", "subscriptionId": "s01b2f6m1k4n8p3r5t7v9x0z", "planId": "k17m3q5v7n9p1r2t4w6y8z0a", "couponCode": "MYCODE", "repeatCount": 4000000000u64});
    for body in [purchase, renew] {
        let r = http
            .post(format!("{}api/proxy", sim.base_url()))
            .header("x-api-key", KEY)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success() || r.status().as_u16() == 402, "{body}: {}", r.status());
    }
}

#[tokio::test]
async fn the_simulator_refuses_nonsense_state_and_faults() {
    let sim = sim().await;
    let http = reqwest::Client::new();
    let put = |state: SimState| http.put(format!("{}__sim/state", sim.base_url())).json(&state).send();
    let mut negative = sim.state();
    negative.plans[0].price_cents = -5;
    assert_eq!(put(negative).await.unwrap().status().as_u16(), 400);
    let mut dangling = sim.state();
    dangling.subscriptions[0].network_id = "nowhere".into();
    assert_eq!(put(dangling).await.unwrap().status().as_u16(), 400);
    let mut twice = sim.state();
    twice.subscriptions[1].id = twice.subscriptions[0].id.clone();
    assert_eq!(put(twice).await.unwrap().status().as_u16(), 400);
    for fault in [
        json!({"op": "plans", "kind": "status-before", "status": 100}),
        json!({"op": "plans", "kind": "canned", "status": 1000, "body": ""}),
        json!({"op": "plans", "kind": "html-502", "count": 0}),
        json!({"op": "teleport", "kind": "drop-after"}),
    ] {
        let r = http.post(format!("{}__sim/faults", sim.base_url())).json(&fault).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 400, "{fault}");
    }
    let ok = json!({"op": "plans", "kind": "html-502"});
    let r = http.post(format!("{}__sim/faults", sim.base_url())).json(&ok).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 204, "the README's spelling works");
    assert_eq!(sim.calls().len(), 0);
    let _: Vec<Fault> = http.get(format!("{}__sim/faults", sim.base_url())).send().await.unwrap().json().await.unwrap();
}

#[tokio::test]
async fn a_held_request_waits_for_its_release_through_the_admin_route() {
    let sim = sim().await;
    let http = reqwest::Client::new();
    let release = |body: &'static str| http.post(format!("{}__sim/release", sim.base_url())).body(body).send();
    for bad in [r#"{"count": -1}"#, r#"{"n": 1}"#, "once"] {
        let r = release(bad).await.unwrap();
        assert_eq!(r.status().as_u16(), 400, "{bad}");
        assert!(r.text().await.unwrap().contains("invalid release"), "{bad}");
    }
    sim.fault("plans", FaultKind::Hold, 1);
    let c = client(&sim);
    let held = tokio::spawn(async move { c.plans().await });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while sim.stats().held == 0 {
        assert!(std::time::Instant::now() < deadline, "the request never arrived");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(!held.is_finished() && sim.calls_of("plans").is_empty(), "held, not answered");
    assert_eq!(release("").await.unwrap().status().as_u16(), 204, "no body: one release");
    assert!(!held.await.unwrap().unwrap().is_empty(), "answered normally once released");
    assert_eq!((sim.stats().held, sim.calls_of("plans")[0].fault.as_deref()), (0, Some("hold")));
}

#[tokio::test]
async fn config_values_at_the_edges_are_refused_without_panics_or_echoes() {
    let cases = [
        ("PROXY_RENEWD_API__TIMEOUT", "200000000000y", "api.timeout"),
        ("PROXY_RENEWD_DEFAULTS__RENEW_BEFORE", "500000000y", "defaults.renew_before"),
        ("PROXY_RENEWD_API__MAX_ATTEMPTS", "4294967295", "api.max_attempts"),
        ("PROXY_RENEWD_API__MAX_CONCURRENCY", "0", "api.max_concurrency"),
        ("PROXY_RENEWD_SCHEDULE__CRON", "*/10 * * * *", "schedule.cron"),
        ("PROXY_RENEWD_SCHEDULE__CRON", "0 0 0 * * * 1999", "schedule.cron"),
        ("PROXY_RENEWD_SCHEDULE__CRON", "@yearly", "schedule.cron"),
        ("PROXY_RENEWD_SCHEDULE__CRON", "0 0 0 30 2 *", "schedule.cron"),
        ("PROXY_RENEWD_DATABASE__URL", "sqlite::memory:", "database.url"),
        ("PROXY_RENEWD_DATABASE__URL", "sqlite://", "database.url"),
        ("PROXY_RENEWD_DATABASE__URL", "sqlite://x.db?mode=memory", "database.url"),
        ("PROXY_RENEWD_ALERTS__REPEAT_INTERVAL", "0s", "alerts.repeat_interval"),
        ("PROXY_RENEWD_API", "rk_secret_abc", "api"),
        ("PROXY_RENEWD_ALERTS__EMAIL", "smtp://u:rk_secret_abc@h", "alerts.email"),
        ("PROXY_RENEWD_DATABASE__URL", "postgres://u:rk_secret_abc@/db", "database.url"),
    ];
    for (var, value, key) in cases {
        let mut cmd = bin();
        cmd.args(["rules", "list"]).env(var, value);
        let out = run(cmd).await;
        assert_eq!(out.code, 1, "{var}={value}: {}", out.stderr);
        let line = out.stderr.lines().find(|l| l.starts_with("error:")).unwrap_or_default();
        assert!(line.contains(key), "{var}={value} should name {key}: {}", out.stderr);
        assert!(!out.stderr.contains("rk_secret_abc") && !out.stderr.contains("panicked"), "{}", out.stderr);
    }
}

#[tokio::test]
async fn digits_from_the_environment_are_text_where_text_is_expected() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = bin();
    cmd.args(["rules", "list", "--format", "json"])
        .env("PROXY_RENEWD_DEFAULTS__PLAN", "12345")
        .env("PROXY_RENEWD_DEFAULTS__COUPON_CODE", "123456")
        .env("PROXY_RENEWD_DATABASE__URL", format!("sqlite://{}", dir.path().join("r.db").display()));
    let out = run(cmd).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        (doc["defaults"]["plan"].as_str(), doc["defaults"]["coupon_code"].as_str()),
        (Some("12345"), Some("123456"))
    );
}

#[tokio::test]
async fn an_email_header_cannot_be_injected_through_from_or_to() {
    let dir = tempfile::tempdir().unwrap();
    for (from, to) in [("a@b\nBcc: victim@x", "c@d"), ("@", "c@d"), ("a@b", "c@d\r\nBcc: v@x"), ("Ops <>", "c@d")] {
        let path = dir.path().join("c.toml");
        std::fs::write(&path, format!("[alerts.email]\nsmtp_url = \"smtp://h\"\nfrom = {from:?}\nto = [{to:?}]\n"))
            .unwrap();
        let err = proxy_renewd::config::Config::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("alerts.email.from") || err.contains("alerts.email.to"), "{from:?} {to:?}: {err}");
    }
}

#[tokio::test]
async fn concurrent_rule_changes_are_all_kept_even_on_a_new_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("r.db").display());
    let flags: [&[&str]; 6] = [
        &["--disable"],
        &["--note", "hello"],
        &["--max-price-cents", "42"],
        &["--repeat-count", "3"],
        &["--plan", "longest"],
        &["--coupon-code", "MYCODE"],
    ];
    let runs = flags.iter().map(|f| {
        let mut cmd = bin();
        cmd.args(["rules", "set", "race"]).args(*f).env("PROXY_RENEWD_DATABASE__URL", &db);
        run(cmd)
    });
    for out in futures_util::future::join_all(runs).await {
        assert_eq!(out.code, 0, "{}", out.stderr);
    }
    let mut cmd = bin();
    cmd.args(["rules", "list", "--format", "json"]).env("PROXY_RENEWD_DATABASE__URL", &db);
    let doc: serde_json::Value = serde_json::from_str(&run(cmd).await.stdout).unwrap();
    let r = &doc["rules"][0];
    assert_eq!(r["enabled"], false);
    assert_eq!(
        (r["note"].as_str(), r["max_price_cents"].as_i64(), r["repeat_count"].as_u64()),
        (Some("hello"), Some(42), Some(3))
    );
    assert_eq!((r["plan"].as_str(), r["coupon_code"].as_str()), (Some("longest"), Some("MYCODE")));
}

#[tokio::test]
async fn another_applications_database_is_left_untouched() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("foreign.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&format!("{url}?mode=rwc")).await.unwrap();
    sqlx::query("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)").execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();
    let before = std::fs::read(dir.path().join("foreign.db")).unwrap();
    let mut cmd = bin();
    cmd.args(["rules", "list"]).env("PROXY_RENEWD_DATABASE__URL", &url);
    let out = run(cmd).await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("belongs to another application") && out.stderr.contains("users"), "{}", out.stderr);
    assert_eq!(std::fs::read(dir.path().join("foreign.db")).unwrap(), before, "not a byte changed");
}

#[tokio::test]
async fn notes_are_stored_printable_and_short() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("r.db").display());
    let mut cmd = bin();
    let long = "x".repeat(5000);
    cmd.args(["rules", "set", "esc", "--note", &format!("a\nb\u{1b}]0;pwned\u{7}\u{1b}[31mRED\rX {long}")])
        .env("PROXY_RENEWD_DATABASE__URL", &db);
    assert_eq!(run(cmd).await.code, 0);
    let mut cmd = bin();
    cmd.args(["rules", "list"]).env("PROXY_RENEWD_DATABASE__URL", &db);
    let out = run(cmd).await;
    assert!(
        !out.stdout.contains('\u{1b}') && !out.stdout.contains('\u{7}') && !out.stdout.contains('\r'),
        "{:?}",
        &out.stdout[..200]
    );
    assert!(out.stdout.len() < 2000, "the note was cut short");
    assert_eq!(out.code, 0, "{}", out.stderr);
    // What is kept: the words, printable, the start of the long tail.
    assert!(out.stdout.contains("esc") && out.stdout.contains("a b") && out.stdout.contains("RED"), "{}", out.stdout);
    assert!(out.stdout.contains("xxxxxxxxxx"), "{}", out.stdout);
}
