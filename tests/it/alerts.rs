//! Alerts through a real SMTP server (aiosmtpd): one digest per cycle, deduplicated within
//! the repeat interval, `recovered` once, queued while SMTP is down and delivered once it is
//! back (also across a restart), nothing from a dry run, and no secret in any email or log.

use proxy_renewd::policy::RETRY_BACKOFF_BASE_MS;
use proxy_renewd::sim::FaultKind;

use crate::helpers::{DAY, Setup, world};
use crate::helpers::{KEY, bin, run, sim_with};
use crate::smtp::{SmtpServer, subject};

fn email_toml(smtp: &SmtpServer) -> String {
    format!("[alerts]\nrepeat_interval = \"6h\"\n{}", email_to(smtp, &["ops@example.com"]))
}

/// `[alerts.email]` for `smtp`, to these recipients.
fn email_to(smtp: &SmtpServer, to: &[&str]) -> String {
    let to: Vec<String> = to.iter().map(|t| format!("{t:?}")).collect();
    format!(
        "[alerts.email]\nsmtp_url = \"{}\"\nfrom = \"proxy-renewd <renewd@example.com>\"\nto = [{}]\n",
        smtp.url(),
        to.join(", ")
    )
}

/// Secrets the simulator's subscriptions and the config carry.
fn assert_secret_free(what: &str, text: &str) {
    for s in [KEY, "p_sim01x7", "u_sim01", "socks5://", "vless://", "ss://", "@proxy.example.com"] {
        assert!(!text.contains(s), "{what} contains {s:?}:\n{text}");
    }
}

#[tokio::test]
async fn insufficient_balance_alerts_once_then_recovers_once() {
    let smtp = SmtpServer::start();
    let sim = sim_with(world(&[DAY, 20 * DAY])).await;
    sim.update(|s, _| s.balance_cents = 100);
    let s = Setup::new(&sim, &email_toml(&smtp)).await;
    s.cycle().await;
    let mails = smtp.messages();
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(subject(&mails[0]), "[proxy-renewd] 1 subscription needs attention: insufficient balance");
    assert!(mails[0].contains("sub0") && mails[0].contains("12.00") && mails[0].contains("top up"), "{}", mails[0]);
    assert!(mails[0].contains("Top up the balance by at least 12.00 (1200 cents)"), "{}", mails[0]);
    // Within repeat_interval: nothing more, even after the backoff lets it try again.
    s.cycle().await;
    s.clock.advance(RETRY_BACKOFF_BASE_MS);
    s.cycle().await;
    // The second 402 really happened (so the dedup, not a missing refusal, kept it quiet).
    let refused = sim.calls_of("renew").iter().filter(|c| c.status == Some(402)).count();
    assert!(refused >= 2, "a second 402: {refused}");
    assert_eq!(smtp.messages().len(), 1, "no repeat within repeat_interval");
    // Top up: the renewal goes through and one `recovered` follows.
    sim.update(|st, _| st.balance_cents = 1_000_000);
    s.clock.advance(4 * RETRY_BACKOFF_BASE_MS);
    s.cycle().await;
    s.cycle().await;
    let mails = smtp.messages();
    assert_eq!(mails.len(), 2, "{mails:?}");
    assert_eq!(subject(&mails[1]), "[proxy-renewd] 1 subscription recovered");
    assert_eq!(sim.calls_of("renew").iter().filter(|c| c.applied).count(), 1);
    mails.iter().for_each(|m| assert_secret_free("email", m));
}

#[tokio::test]
async fn sold_out_and_rejected_key_each_alert() {
    let smtp = SmtpServer::start();
    let sim = sim_with(world(&[DAY])).await;
    sim.fault("renew", FaultKind::StatusBefore { status: 409 }, 1);
    let s = Setup::new(&sim, &email_toml(&smtp)).await;
    s.cycle().await;
    sim.fault("subscriptions", FaultKind::StatusBefore { status: 401 }, 1);
    assert!(s.cycle_of(false).run().await.is_err());
    let subjects: Vec<String> = smtp.messages().iter().map(|m| subject(m)).collect();
    assert_eq!(
        subjects,
        [
            "[proxy-renewd] 1 subscription needs attention: plan unavailable",
            "[proxy-renewd] the account needs attention: API key rejected"
        ]
    );
    assert!(smtp.messages()[1].contains("check [api].key"));
}

#[tokio::test]
async fn twenty_failures_in_one_cycle_make_one_email() {
    let smtp = SmtpServer::start();
    let offsets: Vec<i64> = (0..20).map(|i| DAY + i).collect();
    let sim = sim_with(world(&offsets)).await;
    sim.update(|s, _| s.balance_cents = 0);
    let s = Setup::new(&sim, &email_toml(&smtp)).await;
    s.cycle().await;
    let mails = smtp.messages();
    assert_eq!(mails.len(), 1);
    assert_eq!(subject(&mails[0]), "[proxy-renewd] 20 subscriptions need attention: insufficient balance");
    assert!((0..20).all(|i| mails[0].contains(&format!("sub{i} "))), "{}", mails[0]);
}

/// A 402 alert queued by one cycle while the SMTP server is down.
async fn queued_while_smtp_is_down() -> (SmtpServer, proxy_renewd::sim::Simulator, Setup) {
    let mut smtp = SmtpServer::start();
    let sim = sim_with(world(&[DAY])).await;
    sim.update(|s, _| s.balance_cents = 0);
    smtp.pause();
    let s = Setup::new(&sim, &email_toml(&smtp)).await;
    s.cycle().await;
    (smtp, sim, s)
}

#[tokio::test]
async fn alerts_wait_out_an_smtp_outage_and_a_restart_then_arrive_once() {
    let (mut smtp, _sim, s) = queued_while_smtp_is_down().await;
    let pending = s.store.outbox(true, 10).await.unwrap();
    assert!(!pending.is_empty(), "queued while SMTP is down");
    assert!(pending.iter().all(|r| r.attempts == 1 && r.last_error.is_some()), "{pending:?}");
    // A restart, and SMTP is back; the retry waits for its backoff.
    let s = s.restart().await;
    smtp.resume();
    s.cycle().await;
    assert!(smtp.messages().is_empty(), "not before the delivery backoff");
    s.clock.advance(proxy_renewd::store::delivery_backoff_ms(1));
    s.cycle().await;
    s.cycle().await;
    let mails = smtp.messages();
    assert_eq!(mails.len(), 1, "delivered once: {mails:?}");
    assert!(subject(&mails[0]).contains("insufficient balance"));
    assert!(s.store.outbox(true, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_dry_run_sends_no_mail() {
    let smtp = SmtpServer::start();
    let sim = sim_with(world(&[DAY])).await;
    sim.update(|s, _| s.balance_cents = 0);
    let s = Setup::new(&sim, &email_toml(&smtp)).await;
    s.cycle_with(true).await;
    assert!(smtp.messages().is_empty());
    assert!(s.store.outbox(false, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn no_secret_reaches_an_email_or_a_log_line() {
    let smtp = SmtpServer::start();
    let sim = sim_with(world(&[DAY, 2 * DAY])).await;
    sim.update(|s, _| s.balance_cents = 1200);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    let write = |smtp_url: &str| {
        std::fs::write(
            &config,
            format!(
                "[api]\nbase_url = \"{}\"\nkey = \"{KEY}\"\n[database]\nurl = \"sqlite://{}\"\n[alerts.email]\nsmtp_url = \"{smtp_url}\"\nfrom = \"renewd@example.com\"\nto = [\"ops@example.com\"]\n",
                sim.base_url(),
                dir.path().join("r.db").display()
            ),
        )
        .unwrap();
    };
    // A login the test server does not support: delivery fails, and says so without the password.
    write(&format!("smtp://mailuser:smtp-secret-pw@127.0.0.1:{}", smtp.port));
    let mut cmd = bin();
    cmd.args(["once", "--config"]).arg(&config).env("RUST_LOG", "trace");
    let failed = run(cmd).await;
    assert!(failed.stderr.contains("alert email failed"), "{}", failed.stderr);
    // Without a login: delivered.
    write(&smtp.url());
    sim.update(|s, now| s.subscriptions[1].active_until_ms = now + DAY / 2);
    let mut cmd = bin();
    cmd.args(["once", "--config"]).arg(&config).env("RUST_LOG", "trace");
    let sent = run(cmd).await;
    assert!(sent.stderr.contains("alert email sent"), "{}", sent.stderr);
    let mails = smtp.messages();
    assert!(!mails.is_empty());
    for text in [failed.stdout, failed.stderr, sent.stdout, sent.stderr].iter().chain(mails.iter()) {
        assert_secret_free("output", text);
        assert!(!text.contains("smtp-secret-pw"), "the SMTP password leaked:\n{text}");
    }
}

#[tokio::test]
async fn without_email_alerts_are_logged_and_say_so() {
    let sim = sim_with(world(&[DAY])).await;
    sim.update(|s, _| s.balance_cents = 0);
    let s = Setup::new(&sim, "").await;
    s.cycle().await;
    let rows = s.store.outbox(false, 10).await.unwrap();
    assert!(!rows.is_empty());
    assert!(
        rows.iter().all(|r| r.sent_at.is_some() && r.last_error.as_deref() == Some(proxy_renewd::store::LOGGED_ONLY)),
        "{rows:?}"
    );
}

#[tokio::test]
async fn a_silent_smtp_server_cannot_hold_the_daemon() {
    // Accepts connections and never says a word.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let _keep = std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in silent.incoming().take(3) {
            held.push(c);
        }
        std::thread::sleep(std::time::Duration::from_secs(30));
    });
    let email = proxy_renewd::config::Email {
        smtp_url: secrecy::SecretString::from(format!("smtp://127.0.0.1:{port}")),
        from: "renewd@example.com".into(),
        to: vec!["ops@example.com".into()],
        instance: None,
        ca_pem: None,
    };
    let mailer = proxy_renewd::alerts::email::Mailer::new(&email)
        .unwrap()
        .with_send_timeout(std::time::Duration::from_millis(500));
    let started = std::time::Instant::now();
    let e = mailer.send_to("ops@example.com", "s", "b", &email).await.unwrap_err().text;
    assert!(e.contains("did not finish"), "{e}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

#[tokio::test]
async fn queued_alerts_go_out_even_while_the_provider_is_down() {
    let (mut smtp, sim, s) = queued_while_smtp_is_down().await;
    smtp.resume();
    s.clock.advance(proxy_renewd::store::delivery_backoff_ms(1));
    sim.fault("subscriptions", FaultKind::Html502, 10);
    assert!(s.cycle_of(false).run().await.is_err());
    assert_eq!(smtp.messages().len(), 1, "delivered although the read failed");
    // Repeated outages do not pile up copies: a pending alert is not queued again.
    assert!(s.store.outbox(true, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn unreadable_entries_without_ids_alert_separately() {
    let smtp = SmtpServer::start();
    let sim = sim_with(world(&[20 * DAY])).await;
    let body = r#"{"ok": true, "subscriptions": [{"status": "active", "activeUntil": 1}, {"subscriptionId": "BAD ID", "status": "active", "activeUntil": 1}]}"#;
    sim.fault("subscriptions", crate::helpers::canned(200, body), 1);
    let s = Setup::new(&sim, &email_toml(&smtp)).await;
    s.cycle().await;
    let mails = smtp.messages();
    assert_eq!(mails.len(), 1);
    assert!(mails[0].contains("subscriptions[0]") && mails[0].contains("subscriptions[1]"), "{}", mails[0]);
}

#[tokio::test]
async fn disabling_the_rule_of_a_subscription_that_is_not_renewable_clears_the_alarm() {
    let sim = sim_with(world(&[20 * DAY])).await;
    sim.update(|st, _| st.subscriptions[0].status = "suspended".into());
    let s = Setup::new(&sim, "").await;
    let report = s.cycle().await;
    assert!(report.needs_attention(), "not-renewable is reported");
    let action = s.store.outbox(false, 10).await.unwrap()[0].alert.action.clone();
    assert!(action.contains("disable its rule"), "{action}");
    // Do what the alert says.
    let rule = proxy_renewd::rule::Rule { enabled: false, ..s.config().defaults.clone() };
    let id = proxy_renewd::values::SubscriptionId::parse("sub0").unwrap();
    s.store.put_rule(&id, &rule, proxy_renewd::values::EpochMs::now()).await.unwrap();
    let report = s.cycle_with(true).await;
    assert!(!report.needs_attention(), "the next audit is clean: {report:?}");
}

#[tokio::test]
async fn an_unknown_outcome_later_reconciled_as_applied_sends_the_all_clear_with_the_new_expiry() {
    let smtp = SmtpServer::start();
    let sim = sim_with(world(&[DAY])).await;
    sim.fault("renew", FaultKind::DropAfter, 1);
    let s = Setup::new(&sim, &email_toml(&smtp)).await;
    s.cycle().await;
    s.cycle().await;
    let mails = smtp.messages();
    assert_eq!(mails.len(), 2, "unknown, then recovered");
    let last = &mails[1];
    assert!(subject(last).contains("recovered"), "{}", subject(last));
    let new_expiry = proxy_renewd::values::EpochMs(sim.state().subscriptions[0].active_until_ms);
    assert!(last.contains(&format!("expires:       {new_expiry}")), "the new expiry: {last}");
    assert!(last.contains("all clear") && !last.contains("while the problem lasts"), "{last}");
}

#[tokio::test]
async fn a_manual_renewal_after_a_402_queues_the_all_clear() {
    let sim = sim_with(world(&[DAY])).await;
    sim.update(|st, _| st.balance_cents = 0);
    let s = Setup::new(&sim, "").await;
    s.cycle().await;
    sim.update(|st, _| st.balance_cents = 100_000);
    let mut renew = bin();
    renew.arg("--config").arg(s.config_path()).args(["renew", "sub0", "--yes"]);
    let ran = run(renew).await;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let kinds: Vec<String> =
        s.store.outbox(false, 10).await.unwrap().iter().map(|r| r.alert.kind.as_str().to_owned()).collect();
    assert!(kinds.contains(&"recovered".to_owned()), "{kinds:?}");
}

#[tokio::test]
async fn a_409_alert_names_the_plans_on_offer_or_none() {
    // Only plan sold out: none on offer.
    let sim = sim_with(world(&[2 * DAY])).await;
    sim.fault("renew", FaultKind::StatusBefore { status: 409 }, 1);
    let s = Setup::new(&sim, "").await;
    s.cycle().await;
    let action = s.store.outbox(false, 10).await.unwrap()[0].alert.action.clone();
    assert!(action.contains("none on offer now") && action.contains("rules set sub0 --plan"), "{action}");
    // An explicit plan refused, another offered: named with its price.
    let mut state = world(&[2 * DAY]);
    state.subscriptions[0].renewal_plan_ids.push("q2w4e6r8t0y2u4i6o8p0a2s4".into());
    let sim = sim_with(state).await;
    sim.fault("renew", FaultKind::StatusBefore { status: 409 }, 1);
    let s = Setup::new(&sim, "[defaults]\nplan = \"k17m3q5v7n9p1r2t4w6y8z0a\"\n").await;
    s.cycle().await;
    let action = s.store.outbox(false, 10).await.unwrap()[0].alert.action.clone();
    assert!(action.contains("on offer now: q2w4e6r8t0y2u4i6o8p0a2s4 33.00 for 90d"), "{action}");
}

#[tokio::test]
async fn a_server_that_refuses_the_size_gets_the_digest_in_parts_and_every_alert_arrives() {
    // 60 subscriptions over a 1-cent budget: 60 alerts; the server takes 5 kB at most.
    let smtp = SmtpServer::with_size(Some(5_000));
    let offsets: Vec<i64> = (0..60).map(|i| DAY + i).collect();
    let sim = sim_with(world(&offsets)).await;
    let s = Setup::new(&sim, &format!("[budget]\nmax_spend_cents_per_day = 1\n{}", email_toml(&smtp))).await;
    s.cycle().await;
    assert_eq!(s.store.pending_alerts().await.unwrap(), 0, "every alert delivered");
    let mails = smtp.messages();
    assert!(mails.len() > 1, "split: {} messages", mails.len());
    for n in 0..60 {
        assert!(mails.iter().any(|m| m.contains(&format!("OVER THE DAILY BUDGET: sub{n} "))), "sub{n} arrived");
    }
}

#[tokio::test]
async fn one_rejected_recipient_does_not_keep_the_others_from_the_alert_and_is_dead_lettered() {
    let smtp = SmtpServer::rejecting_typos();
    let sim = sim_with(world(&[DAY])).await;
    sim.fault("renew", FaultKind::StatusBefore { status: 409 }, 10);
    let email =
        format!("[alerts]\nrepeat_interval = \"1m\"\n{}", email_to(&smtp, &["ops@example.com", "typo@example.com"]));
    let s = Setup::new(&sim, &email).await;
    s.cycle().await;
    let mails = smtp.messages();
    assert_eq!(mails.len(), 1, "ops@ got it although typo@ was refused");
    assert!(mails[0].contains("X-RcptTo: ops@example.com"), "{}", mails[0]);
    let rows = s.store.outbox(false, 10).await.unwrap();
    assert_eq!(rows[0].delivered_to, ["ops@example.com"], "tracked per recipient");
    // Refused for good three times (each retry only to typo@): dead-lettered.
    for _ in 0..3 {
        s.clock.advance(2 * 3_600_000);
        s.cycle().await;
    }
    let to_ops = smtp.messages().iter().filter(|m| m.contains("X-RcptTo: ops@example.com")).count();
    assert_eq!(to_ops, 1, "ops@ got the alert once; it stayed queued for typo@ alone");
    // Dead-lettered: the alert is done, and the next digest to ops@ says typo@ gets nothing.
    for _ in 0..2 {
        s.clock.advance(2 * 3_600_000);
        s.cycle().await;
    }
    assert_eq!(s.store.outbox(true, 10).await.unwrap().len(), 0, "not retried forever");
    let states = s.store.recipients().await.unwrap();
    let typo = states.iter().find(|r| r.address == "typo@example.com").expect("tracked");
    assert!(typo.dead_since.is_some(), "{typo:?}");
    let last = smtp.messages().pop().unwrap();
    assert!(last.contains("NOT DELIVERED to typo@example.com"), "{last}");
    let mut list = bin();
    list.arg("--config").arg(s.config_path()).args(["alerts", "list"]);
    let ran = run(list).await;
    assert!(ran.stdout.contains("typo@example.com") && ran.stdout.contains("dead-lettered"), "{}", ran.stdout);
}

#[tokio::test]
async fn an_unknown_outcome_alert_says_when_and_how_it_will_be_settled() {
    let sim = sim_with(world(&[DAY])).await;
    sim.fault("renew", FaultKind::DropAfter, 1);
    let s = Setup::new(&sim, "").await;
    s.cycle().await;
    let rows = s.store.outbox(false, 10).await.unwrap();
    let unknown = rows.iter().find(|r| r.alert.kind.as_str() == "unknown-outcome").expect("alerted");
    assert!(unknown.alert.next.contains("the first read after 20"), "a time: {}", unknown.alert.next);
    assert!(unknown.alert.action.contains("history --subscription sub0"), "{}", unknown.alert.action);
}

#[tokio::test]
async fn a_recipient_that_fails_for_now_gets_the_alert_on_the_retry_and_the_others_not_twice() {
    let smtp = SmtpServer::rejecting_typos();
    let sim = sim_with(world(&[DAY])).await;
    sim.fault("renew", FaultKind::StatusBefore { status: 409 }, 1);
    let email = email_to(&smtp, &["ops@example.com", "busy@example.com"]);
    let s = Setup::new(&sim, &email).await;
    s.cycle().await;
    let pending = s.store.outbox(true, 10).await.unwrap();
    assert!(
        !pending.is_empty() && pending.iter().all(|r| r.delivered_to == ["ops@example.com"]),
        "queued still, for busy@: {pending:?}"
    );
    s.clock.advance(2 * 60_000);
    s.cycle().await;
    let mails = smtp.messages();
    let to = |who: &str| {
        mails.iter().filter(|m| m.contains(&format!("X-RcptTo: {who}")) && m.contains("PLAN UNAVAILABLE: sub0")).count()
    };
    assert_eq!((to("ops@example.com"), to("busy@example.com")), (1, 1), "the 409 alert reached each once");
    assert!(s.store.outbox(true, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_thousand_over_budget_subscriptions_make_one_bounded_email_with_the_totals() {
    let smtp = SmtpServer::start();
    let offsets: Vec<i64> = (0..1000).map(|i| 2 * DAY + i).collect();
    let sim = sim_with(world(&offsets)).await;
    let s = Setup::new(&sim, &format!("[budget]\nmax_spend_cents_per_day = 1\n{}", email_toml(&smtp))).await;
    s.cycle().await;
    let mails = smtp.messages();
    let queued: Vec<_> =
        s.store.outbox(false, 5).await.unwrap().into_iter().map(|r| (r.attempts, r.last_error)).collect();
    assert_eq!(mails.len(), 1, "one email; still queued (attempts, last error): {queued:?}");
    let mail = &mails[0];
    assert!(mail.len() < 110_000, "bounded: {} bytes", mail.len());
    assert!(
        mail.contains("OVER THE DAILY BUDGET =E2=80=94 1000 subscriptions")
            || mail.contains("OVER THE DAILY BUDGET — 1000 subscriptions"),
        "the total: {}",
        &mail[..mail.len().min(2000)]
    );
    assert!(mail.contains("975 more over-budget"), "the rest counted");
}

#[tokio::test]
async fn a_server_that_refuses_every_recipient_dead_letters_none_of_them() {
    // Every address refused (as a bad SMTP login or a refused sender would): the server's
    // fault, not the addresses': they stay live, and the alerts stay queued.
    let smtp = SmtpServer::rejecting_typos();
    let sim = sim_with(world(&[DAY])).await;
    sim.fault("renew", FaultKind::StatusBefore { status: 409 }, 10);
    let email = email_to(&smtp, &["typo1@example.com", "typo2@example.com"]);
    let s = Setup::new(&sim, &email).await;
    for _ in 0..5 {
        s.cycle().await;
        s.clock.advance(2 * 3_600_000);
    }
    let states = s.store.recipients().await.unwrap();
    assert!(states.iter().all(|r| r.dead_since.is_none()), "{states:?}");
    assert!(!s.store.outbox(true, 10).await.unwrap().is_empty(), "still queued");
}
