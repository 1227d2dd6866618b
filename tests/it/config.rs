//! Configuration: the example loads with every key, the environment wins over the file,
//! and each kind of bad value gives an error naming the key and where it was set.

use proxy_renewd::config::Config;
use proxy_renewd::rule::PlanChoice;
use proxy_renewd::values::Cents;
use secrecy::ExposeSecret;
use serde_json::Value;

use crate::helpers::{bin, run};

fn example() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml")
}

#[test]
fn the_example_loads_with_every_section() {
    let cfg = Config::load(Some(&example())).unwrap();
    let api = cfg.api().unwrap();
    assert_eq!(api.client.base_url.as_str(), "https://your-domain.com/");
    assert_eq!(api.client.key.expose_secret(), "rk_your_long_lived_api_key");
    assert_eq!((api.client.timeout.as_secs(), api.max_concurrency, api.client.retry.max_attempts), (30, 4, 4));
    assert_eq!((cfg.schedule.cron.as_str(), cfg.schedule.jitter_ms), ("0 */10 * * * *", 30_000));
    assert_eq!(cfg.database_url, "sqlite://proxy-renewd.db");
    assert_eq!(
        (cfg.defaults.plan.clone(), cfg.defaults.renew_before_ms, cfg.defaults.max_price_cents),
        (PlanChoice::Cheapest, 259_200_000, Some(Cents(5000)))
    );
    assert_eq!(cfg.defaults.coupon_code, None, "an empty coupon is none");
    assert_eq!((cfg.reconcile_after_ms, cfg.max_spend_per_day), (600_000, Some(Cents(20_000))));
    let email = cfg.alerts.email.as_ref().unwrap();
    assert_eq!((email.from.as_str(), email.to.len()), ("proxy-renewd <renewd@example.com>", 1));
    assert_eq!(cfg.server_listen.unwrap().port(), 10117);
    let debug = format!("{cfg:?} {api:?}");
    assert!(!debug.contains("rk_your_long_lived_api_key") && !debug.contains("user:pass"), "{debug}");
}

#[test]
fn the_packages_conffile_loads_and_holds_no_secret() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("debian/config.toml");
    let cfg = Config::load(Some(&path)).unwrap();
    assert_eq!(cfg.raw.api.key_file.as_deref(), Some(std::path::Path::new("api-key")));
    assert!(cfg.raw.api.key.is_none() && cfg.alerts.email.is_none());
    assert_eq!(cfg.database_url, "sqlite:///var/lib/proxy-renewd/proxy-renewd.db");
    // Until base_url is set, the service says which key to set.
    let err = cfg.api().expect_err("no base_url yet").to_string();
    assert!(err.contains("api.base_url"), "{err}");
    // The units hand over the key file the conffile names, from where postinst says to put it.
    let unit =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/proxy-renewd.service"))
            .unwrap();
    assert!(unit.contains("LoadCredential=api-key:/etc/proxy-renewd/api-key"), "{unit}");
    assert!(unit.contains("ExecStart=/usr/bin/proxy-renewd --config /etc/proxy-renewd/config.toml run"), "{unit}");
}

#[test]
fn omitted_caps_mean_no_cap() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, "[defaults]\nplan = \"longest\"\n").unwrap();
    let cfg = Config::load(Some(&path)).unwrap();
    assert_eq!((cfg.defaults.max_price_cents, cfg.max_spend_per_day), (None, None));
    assert!(cfg.alerts.email.is_none() && cfg.server_listen.is_none());
}

#[test]
fn each_bad_value_names_its_key_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("[schedule]\ncron = \"*/10 * * * *\"\n", "schedule.cron"),
        ("[schedule]\njitter = \"soon\"\n", "schedule.jitter"),
        ("[database]\nurl = \"postgres://db\"\n", "database.url"),
        ("[database]\nurl = \"\"\n", "database.url"),
        ("[database]\nurl = \"sqlite://a.db\"\nurl_file = \"u\"\n", "database.url"),
        ("[database]\nurl_file = \"/nonexistent/database-url\"\n", "database.url_file"),
        ("[ha]\nlease = \"30s\"\n", "ha.lease"),
        ("[database]\nurl = \"postgres://h/db\"\n[ha]\nlease = \"1s\"\n", "ha.lease"),
        ("[database]\nurl = \"postgres://h/db\"\n[ha]\nlease = \"11m\"\n", "ha.lease"),
        ("[database]\nurl = \"postgres://h/db\"\n[ha]\nleese = \"3s\"\n", "ha.leese"),
        ("[defaults]\nplan = \"Cheapest\"\n", "defaults.plan"),
        ("[defaults]\nrepeat_count = 0\n", "defaults.repeat_count"),
        ("[defaults]\nrepeat_count = -1\n", "defaults.repeat_count"),
        ("[defaults]\nmax_price_cents = -5\n", "defaults.max_price_cents"),
        ("[defaults]\nrenew_before = \"3 fortnights\"\n", "defaults.renew_before"),
        ("[defaults]\ncoupon_code = \"MY CODE\"\n", "defaults.coupon_code"),
        ("[defaults]\nenabled = \"yes\"\n", "defaults.enabled"),
        ("[ledger]\nreconcile_after = \"1m\"\n", "ledger.reconcile_after"),
        ("[budget]\nmax_spend_cents_per_day = -1\n", "budget.max_spend_cents_per_day"),
        ("[alerts]\nrepeat_interval = 6\n", "alerts.repeat_interval"),
        ("[alerts.email]\nfrom = \"a@b\"\nto = [\"c@d\"]\n", "alerts.email.smtp_url"),
        (
            "[alerts.email]\nsmtp_url = \"smtp://h\"\nsmtp_url_file = \"/x\"\nfrom = \"a@b\"\nto = [\"c@d\"]\n",
            "alerts.email.smtp_url",
        ),
        ("[alerts.email]\nsmtp_url = \"smtp://h\"\nfrom = \"nobody\"\nto = [\"c@d\"]\n", "alerts.email.from"),
        ("[alerts.email]\nsmtp_url = \"smtp://h\"\nfrom = \"a@b\"\nto = []\n", "alerts.email.to"),
        (
            "[alerts.email]\nsmtp_url = \"smtp://h?tls=required\"\nfrom = \"a@b\"\nto = [\"c@d\"]\nca_file = \"/nonexistent/ca.pem\"\n",
            "alerts.email.ca_file",
        ),
        ("[alerts]\ninstance = \"\"\n", "alerts.instance"),
        ("[alerts]\nprovider_down_after = \"soon\"\n", "alerts.provider_down_after"),
        ("[server]\nlisten = \"localhost\"\n", "server.listen"),
        ("[log]\nformat = \"xml\"\n", "log.format"),
        ("[sheduler]\ncron = \"0 * * * * *\"\n", "sheduler"),
        ("[defaults]\nrenew_befor = \"3d\"\n", "defaults.renew_befor"),
    ];
    for (toml, key) in cases {
        let path = dir.path().join("c.toml");
        std::fs::write(&path, toml).unwrap();
        let err = Config::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains(key), "{toml:?} should name {key}: {err}");
        assert!(err.contains("c.toml"), "{toml:?} should name the file: {err}");
    }
}

#[tokio::test]
async fn the_test_suites_own_variables_are_no_keys() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = bin();
    cmd.args(["rules", "set", "abc", "--disable"])
        .env("PROXY_RENEWD_TEST_ENGINE", "postgres")
        .env("PROXY_RENEWD_TEST_PG_URL", "postgres://postgres@127.0.0.1:9/postgres")
        .env("PROXY_RENEWD_DATABASE__URL", format!("sqlite://{}", dir.path().join("r.db").display()));
    let out = run(cmd).await;
    assert_eq!(out.code, 0, "PROXY_RENEWD_TEST_* is not an unknown key: {}", out.stderr);
    assert!(dir.path().join("r.db").exists(), "the rule went where [database] url says");
}

#[tokio::test]
async fn the_environment_wins_over_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, "[defaults]\nplan = \"best-value\"\nrenew_before = \"5d\"\n").unwrap();
    let mut cmd = bin();
    cmd.args(["rules", "list", "--format", "json", "--config"])
        .arg(&path)
        .env("PROXY_RENEWD_DEFAULTS__PLAN", "longest")
        .env("PROXY_RENEWD_DATABASE__URL", format!("sqlite://{}", dir.path().join("r.db").display()));
    let out = run(cmd).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["defaults"]["plan"], "longest", "env beats file");
    assert_eq!(doc["defaults"]["renew_before_ms"], 432_000_000, "file beats defaults");
    let mut cmd = bin();
    cmd.args(["rules", "list"]).env("PROXY_RENEWD_DEFAULTS__REPEAT_COUNT", "0");
    let out = run(cmd).await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("defaults.repeat_count from PROXY_RENEWD_DEFAULTS__REPEAT_COUNT"), "{}", out.stderr);
    // A type error from the environment quotes the environment's form.
    let mut cmd = bin();
    cmd.args(["rules", "list"]).env("PROXY_RENEWD_DEFAULTS__RENEW_BEFORE", "3");
    let out = run(cmd).await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("the right form, e.g. PROXY_RENEWD_DEFAULTS__RENEW_BEFORE=3d"), "{}", out.stderr);
}

#[tokio::test]
async fn a_key_file_every_user_can_read_draws_a_warning() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, "[api]\nbase_url = \"http://127.0.0.1:9\"\nkey_file = \"api-key\"\n").unwrap();
    std::fs::write(dir.path().join("api-key"), "rk_1234567\n").unwrap();
    let db = format!("sqlite://{}", dir.path().join("r.db").display());
    for (mode, warned) in [(0o644, true), (0o640, false), (0o600, false)] {
        std::fs::set_permissions(dir.path().join("api-key"), std::fs::Permissions::from_mode(mode)).unwrap();
        let mut cmd = bin();
        cmd.args(["rules", "list", "--config"]).arg(&path).env("PROXY_RENEWD_DATABASE__URL", &db);
        let out = run(cmd).await;
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert_eq!(
            out.stderr.contains("this secret file is readable by every user"),
            warned,
            "mode {mode:o}: {}",
            out.stderr
        );
        assert!(!out.stderr.contains("rk_1234567"));
    }
}

#[tokio::test]
async fn a_secret_in_a_file_others_can_read_draws_a_warning() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, "[api]\nbase_url = \"http://127.0.0.1:9\"\nkey = \"rk_1234567\"\n").unwrap();
    let db = format!("sqlite://{}", dir.path().join("r.db").display());
    for (mode, warned) in [(0o644, true), (0o600, false)] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        let mut cmd = bin();
        cmd.args(["rules", "list", "--config"]).arg(&path).env("PROXY_RENEWD_DATABASE__URL", &db);
        let out = run(cmd).await;
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert_eq!(out.stderr.contains("other users can read it"), warned, "mode {mode:o}: {}", out.stderr);
        assert!(!out.stderr.contains("rk_1234567"));
    }
    // An SMTP URL is a secret only when it holds a password.
    let email = "[alerts.email]\nfrom = \"r@example.com\"\nto = [\"ops@example.com\"]\n";
    for (url, warned) in [("smtp://relay.example.com:25", false), ("smtp://u:hunter2pass@relay.example.com:587", true)]
    {
        std::fs::write(&path, format!("{email}smtp_url = \"{url}\"\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut cmd = bin();
        cmd.args(["rules", "list", "--config"]).arg(&path).env("PROXY_RENEWD_DATABASE__URL", &db);
        let out = run(cmd).await;
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert_eq!(out.stderr.contains("other users can read it"), warned, "{url}: {}", out.stderr);
        assert_eq!(out.stderr.contains("to smtp_url_file"), warned, "the advice fits the secret: {}", out.stderr);
        assert!(!out.stderr.contains("hunter2pass"));
    }
}

#[tokio::test]
async fn a_postgres_url_file_is_read_beside_the_config_and_its_password_stays_secret() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let mut url = url::Url::parse(&crate::pg::database().await).unwrap();
    url.set_password(Some("pw_SECRET123")).unwrap();
    std::fs::write(dir.path().join("database-url"), format!("{url}\n")).unwrap();
    let path = dir.path().join("c.toml");
    // An empty url beside url_file: the container's way to clear the image's default.
    std::fs::write(&path, "[database]\nurl = \"\"\nurl_file = \"database-url\"\n").unwrap();
    let cfg = Config::load(Some(&path)).unwrap();
    assert_eq!(cfg.database_url, url.as_str());
    assert_eq!(cfg.ha.map(|h| h.lease_ms), Some(30_000), "the defaults of [ha] on PostgreSQL");
    assert!(!format!("{cfg:?}").contains("pw_SECRET123"), "{cfg:?}");
    // A world-readable url_file, then the URL in a config file others can read: warned.
    std::fs::set_permissions(dir.path().join("database-url"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut cmd = bin();
    cmd.args(["rules", "list", "--config"]).arg(&path);
    let out = run(cmd).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("readable by every user") && out.stderr.contains("database.url_file"),
        "{}",
        out.stderr
    );
    std::fs::write(&path, format!("[database]\nurl = \"{url}\"\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut cmd = bin();
    cmd.args(["rules", "list", "--config"]).arg(&path);
    let out = run(cmd).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("move the database URL (it holds a password) to [database] url_file"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("pw_SECRET123") && !out.stdout.contains("pw_SECRET123"), "{}", out.stderr);
}
