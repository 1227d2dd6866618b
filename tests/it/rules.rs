//! `proxy-renewd rules`: set, list and remove through the real binary on a temp database,
//! with every flag validated.

use serde_json::Value;

use crate::helpers::{Ran, bin, run};

/// A test's database (where `helpers::database_url` says) and the temp dir it may live in.
struct Db {
    _dir: tempfile::TempDir,
    url: String,
}

impl Db {
    fn new() -> Db {
        let dir = tempfile::tempdir().unwrap();
        let url = crate::helpers::database_url(&dir.path().join("r.db"));
        Db { _dir: dir, url }
    }

    async fn rules(&self, args: &[&str]) -> Ran {
        let mut cmd = bin();
        cmd.arg("rules").args(args).env("PROXY_RENEWD_DATABASE__URL", &self.url);
        run(cmd).await
    }

    async fn list(&self) -> Value {
        let out = self.rules(&["list", "--format", "json"]).await;
        assert_eq!(out.code, 0, "{}", out.stderr);
        serde_json::from_str(&out.stdout).unwrap()
    }
}

const SUB: &str = "j97b2f6m1k4n8p3r5t7v9x0z";

#[tokio::test]
async fn set_list_and_remove_as_daemon_md_shows() {
    let db = Db::new();
    let out = db
        .rules(&["set", SUB, "--renew-before", "5d", "--plan", "k17m3q5v7n9p1r2t4w6y8z0a", "--max-price-cents", "1500"])
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("rule created") && out.stderr.contains("no poll has listed this subscription"),
        "{out:?}",
        out = (&out.stdout, &out.stderr)
    );
    let out = db.rules(&["set", SUB, "--disable"]).await;
    assert!(out.stdout.contains("rule updated"), "{}", out.stdout);
    let doc = db.list().await;
    let rule = &doc["rules"][0];
    assert_eq!(rule["subscription_id"], SUB);
    assert_eq!((rule["enabled"].as_bool(), rule["renew_before_ms"].as_i64()), (Some(false), Some(432_000_000)));
    assert_eq!(
        (rule["plan"].as_str(), rule["max_price_cents"].as_i64()),
        (Some("k17m3q5v7n9p1r2t4w6y8z0a"), Some(1500)),
        "--disable kept the rest"
    );
    assert_eq!(doc["defaults"]["plan"], "cheapest");
    let table = db.rules(&["list"]).await.stdout;
    assert!(table.contains("(defaults)") && table.contains(SUB), "{table}");
    let out = db.rules(&["remove", SUB]).await;
    assert!(out.stdout.contains("rule removed"), "{}", out.stdout);
    assert_eq!(db.list().await["rules"].as_array().unwrap().len(), 0);
    let out = db.rules(&["remove", SUB]).await;
    assert!(out.stdout.contains("nothing removed") && out.code == 0, "{}", out.stdout);
}

#[tokio::test]
async fn a_new_rule_starts_from_defaults_and_flags_clear_fields() {
    let db = Db::new();
    let out =
        db.rules(&["set", "abc", "--coupon-code", "MYCODE", "--max-price-cents", "100", "--note", "Client A"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let rule = &db.list().await["rules"][0];
    assert_eq!((rule["coupon_code"].as_str(), rule["max_price_cents"].as_i64()), (Some("MYCODE"), Some(100)));
    assert_eq!((rule["repeat_count"].as_u64(), rule["plan"].as_str()), (Some(1), Some("cheapest")), "from [defaults]");
    let out =
        db.rules(&["set", "abc", "--no-coupon", "--no-price-cap", "--repeat-count", "3", "--plan", "best-value"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let rule = &db.list().await["rules"][0];
    assert_eq!(rule["coupon_code"], Value::Null);
    assert_eq!(rule["max_price_cents"], Value::Null);
    assert_eq!(
        (rule["repeat_count"].as_u64(), rule["plan"].as_str(), rule["note"].as_str()),
        (Some(3), Some("best-value"), Some("Client A"))
    );
    assert_eq!(rule["renew_before_ms"], 259_200_000, "from [defaults]");
}

#[tokio::test]
async fn every_flag_is_validated() {
    let db = Db::new();
    // Exit 2 is also clap's answer to a misspelt flag, so each case names what it refused.
    for (args, refusal) in [
        (vec!["set", "abc", "--plan", "best_value"], "invalid plan id \"best_value\""),
        (vec!["set", "abc", "--repeat-count", "0"], "0 is not in 1.."),
        (vec!["set", "abc", "--renew-before", "soon"], "\"soon\" is not a duration"),
        (vec!["set", "abc", "--max-price-cents=-1"], "-1 is not in 0.."),
        (vec!["set", "abc", "--max-price-cents", "1.5"], "invalid value '1.5' for '--max-price-cents"),
        (vec!["set", "abc", "--coupon-code", "MY CODE"], "a coupon code is 1 to 64 printable ASCII characters"),
        (vec!["set", "abc", "--enable", "--disable"], "'--enable' cannot be used with '--disable'"),
        (vec!["set", "abc", "--max-price-cents", "5", "--no-price-cap"], "cannot be used with '--no-price-cap'"),
        (vec!["set"], "required arguments were not provided"),
    ] {
        let out = db.rules(&args).await;
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(refusal), "{args:?} should be refused with {refusal:?}: {}", out.stderr);
    }
    let out = db.rules(&["set", "ABC-1"]).await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("invalid subscription id"), "{}", out.stderr);
    assert_eq!(db.list().await["rules"].as_array().unwrap().len(), 0, "nothing stored");
}

#[tokio::test]
async fn an_unwritable_database_is_a_clear_error() {
    let mut cmd = bin();
    cmd.args(["rules", "list"]).env("PROXY_RENEWD_DATABASE__URL", "sqlite:///nonexistent-dir/x/r.db");
    let out = run(cmd).await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("cannot open database") && out.stderr.contains("directory"), "{}", out.stderr);
}

#[tokio::test]
async fn enable_alone_on_a_defaults_subscription_stores_no_row() {
    let db = Db::new();
    let out = db.rules(&["set", "abc", "--enable"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("follows [defaults]"), "{}", out.stdout);
    assert_eq!(db.list().await["rules"].as_array().unwrap().len(), 0);
}

/// `rules set` through the binary with `db`'s database and the provider at `base_url`.
async fn set_with_api(db: &Db, base_url: &str, args: &[&str]) -> Ran {
    let mut cmd = bin();
    cmd.args(["rules", "set"])
        .args(args)
        .env("PROXY_RENEWD_DATABASE__URL", &db.url)
        .env("PROXY_RENEWD_API__BASE_URL", base_url)
        .env("PROXY_RENEWD_API__KEY", crate::helpers::KEY)
        .env("PROXY_RENEWD_API__MAX_ATTEMPTS", "1");
    run(cmd).await
}

#[tokio::test]
async fn an_explicit_plan_is_checked_against_the_plans_on_offer() {
    let sim = crate::helpers::sim().await;
    let db = Db::new();
    let base = sim.base_url().to_string();
    // Offered: stored, no warning.
    let out = set_with_api(&db, &base, &[SUB, "--plan", "k17m3q5v7n9p1r2t4w6y8z0a"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!out.stderr.contains("could not be checked"), "{}", out.stderr);
    assert_eq!(db.list().await["rules"][0]["plan"], "k17m3q5v7n9p1r2t4w6y8z0a");
    // Not offered: refused, the offered ids listed, nothing written (nor a new row).
    for id in [SUB, "s01b2f6m1k4n8p3r5t7v9x0z"] {
        let out = set_with_api(&db, &base, &[id, "--plan", "nonexistentplan", "--note", "x"]).await;
        assert_eq!(out.code, 1, "{}", out.stderr);
        assert!(out.stderr.contains("plan nonexistentplan is not offered"), "{}", out.stderr);
        assert!(
            out.stderr.contains("k17m3q5v7n9p1r2t4w6y8z0a, ") && out.stderr.contains("q2w4e6r8t0y2u4i6o8p0a2s4"),
            "{}",
            out.stderr
        );
        let list = db.list().await;
        assert_eq!(list["rules"].as_array().unwrap().len(), 1, "{list:#}");
        assert_eq!(list["rules"][0]["plan"], "k17m3q5v7n9p1r2t4w6y8z0a", "{list:#}");
        assert_eq!(list["rules"][0]["note"], Value::Null, "{list:#}");
    }
    assert_eq!(sim.calls().iter().filter(|c| c.op == "plans").count(), 3, "one op=plans per set");
}

#[tokio::test]
async fn a_plan_that_cannot_be_checked_is_stored_with_a_warning() {
    let db = Db::new();
    // The provider down (nothing listens on port 1).
    let out = set_with_api(&db, "http://127.0.0.1:1", &[SUB, "--plan", "nonexistentplan"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("could not be checked against op=plans"), "{}", out.stderr);
    assert_eq!(db.list().await["rules"][0]["plan"], "nonexistentplan");
    // No [api] at all.
    let out = db.rules(&["set", SUB, "--plan", "otherplan"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("could not be checked") && out.stderr.contains("no usable [api]"), "{}", out.stderr);
    assert_eq!(db.list().await["rules"][0]["plan"], "otherplan");
}
