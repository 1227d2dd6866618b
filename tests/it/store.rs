//! The store, on a temp file and (the conformance suite: the tests in `on_both_engines!`) on
//! a private PostgreSQL database: rules round-trip, the ledger survives reopening and refuses a
//! second writer for the same period, the snapshot notices a vanished subscription, the
//! schema upgrades from every earlier version, and a read-only, locked or foreign database
//! gives a clear error instead of a panic.

use std::time::{Duration, Instant};

use proxy_renewd::attempt::{LedgerState, NewAttempt, Origin, RenewalTerms, Settlement};
use proxy_renewd::rule::{PlanChoice, Rule};
use proxy_renewd::store::{Fence, MIGRATOR, SeenSubscription, Store, StoreError};
use proxy_renewd::values::{Cents, EpochMs, PlanId, SubscriptionId};
use sqlx::Connection;

fn url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("renewd.db").display())
}

/// A database for one test: an SQLite file in a temp directory, or a fresh PostgreSQL
/// database ([`crate::pg::database`]).
struct Db {
    url: String,
    _dir: Option<tempfile::TempDir>,
}

impl Db {
    fn sqlite() -> Db {
        let dir = tempfile::tempdir().unwrap();
        Db { url: url(&dir), _dir: Some(dir) }
    }

    async fn postgres() -> Db {
        Db { url: crate::pg::database().await, _dir: None }
    }

    /// The store, holding the lease on PostgreSQL (no `sending` row is committed without it).
    async fn open(&self) -> Store {
        let store = Store::open(&self.url).await.unwrap();
        if store.is_postgres() {
            lead(&store, "test pid 1").await;
        }
        store
    }
}

/// Takes the lease for `holder` for 10 minutes and commits under it.
async fn lead(store: &Store, holder: &str) -> i64 {
    let epoch = store.take_lease(holder, 600_000).await.unwrap().expect("the lease is free");
    store.set_fence(Some(Fence { holder: holder.into(), epoch, lease_ms: 600_000 }));
    epoch
}

/// Each test named runs twice: `NAME::sqlite` and `NAME::postgres`, the same body on each
/// engine.
macro_rules! on_both_engines {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name(super::Db::sqlite()).await;
            }
            #[tokio::test]
            async fn postgres() {
                super::$name(super::Db::postgres().await).await;
            }
        }
    )*};
}

on_both_engines!(
    rules_round_trip,
    ledger_rows_survive_reopening_and_a_period_key_is_taken_once,
    start_up_recovery_marks_only_the_sending_rows_unknown,
    enqueue_counts_what_it_queued_and_skips_a_repeat,
    the_last_success_and_a_recipients_state_are_read_back,
    spend_and_history_count_the_right_rows,
    the_snapshot_notices_a_subscription_that_vanished,
    outbox_delivery_and_purchases_round_trip,
);

fn id(s: &str) -> SubscriptionId {
    SubscriptionId::parse(s).unwrap()
}

fn attempt(sub: &str, period: i64, n: u32) -> NewAttempt {
    NewAttempt {
        subscription_id: id(sub),
        origin: Origin::Daemon,
        renewal: RenewalTerms {
            active_until_before: EpochMs(period),
            attempt: n,
            plan_id: PlanId::parse("k17m3q5v7n9p1r2t4w6y8z0a").unwrap(),
            repeat_count: 1,
            price: Cents(1200),
            coupon_code: Some("MYCODE".into()),
            expected_end_at: EpochMs(period + 2_592_000_000),
        },
    }
}

#[tokio::test]
async fn the_file_is_created_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    Store::open(&url(&dir)).await.unwrap().close().await;
    assert!(dir.path().join("renewd.db").exists());
    let mut conn = sqlx::SqliteConnection::connect(&url(&dir)).await.unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&mut conn).await.unwrap();
    assert_eq!(mode, "wal");
}

async fn rules_round_trip(db: Db) {
    let store = db.open().await;
    let rule = Rule {
        enabled: false,
        renew_before_ms: 432_000_000,
        plan: PlanChoice::Plan(PlanId::parse("k17m3q5v7n9p1r2t4w6y8z0a").unwrap()),
        repeat_count: 3,
        max_price_cents: Some(Cents(1500)),
        coupon_code: Some("MYCODE".into()),
        note: Some("Client A".into()),
    };
    store.put_rule(&id("abc"), &rule, EpochMs(1000)).await.unwrap();
    store.put_rule(&id("xyz"), &Rule::default(), EpochMs(1000)).await.unwrap();
    let got = store.rule(&id("abc")).await.unwrap().unwrap();
    assert_eq!((got.rule, got.created_at, got.updated_at), (rule.clone(), EpochMs(1000), EpochMs(1000)));
    let changed = Rule { plan: PlanChoice::BestValue, max_price_cents: None, ..rule };
    store.put_rule(&id("abc"), &changed, EpochMs(2000)).await.unwrap();
    let got = store.rule(&id("abc")).await.unwrap().unwrap();
    assert_eq!((got.rule, got.created_at, got.updated_at), (changed, EpochMs(1000), EpochMs(2000)));
    assert_eq!(
        store.rules().await.unwrap().iter().map(|r| r.subscription_id.to_string()).collect::<Vec<_>>(),
        ["abc", "xyz"]
    );
    assert!(store.remove_rule(&id("abc")).await.unwrap());
    assert!(!store.remove_rule(&id("abc")).await.unwrap());
    assert!(store.rule(&id("abc")).await.unwrap().is_none());
}

async fn ledger_rows_survive_reopening_and_a_period_key_is_taken_once(db: Db) {
    let store = db.open().await;
    let a = attempt("abc", 1_762_592_000_000, 1);
    let row = store.begin_attempt(&a, EpochMs(10)).await.unwrap().id;
    let again = store.begin_attempt(&a, EpochMs(11)).await.unwrap_err();
    assert!(again.is_conflict(), "{again}");
    assert!(again.to_string().contains("abc, 1762592000000, 1"), "{again}");
    store.close().await;

    let store = db.open().await;
    let entries = store.ledger_for(&id("abc")).await.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(
        (entries[0].id, entries[0].state, &entries[0].renewal, entries[0].origin),
        (row, LedgerState::Sending, &a.renewal, a.origin)
    );
    assert_eq!(store.open_entries().await.unwrap().len(), 1);
    let done = Settlement {
        state: LedgerState::Succeeded,
        actual_end_at: Some(EpochMs(1_765_184_000_000)),
        http_status: Some(200),
        error: None,
        retry_at: None,
    };
    store.settle(row, &done, EpochMs(20)).await.unwrap();
    store.close().await;

    let store = db.open().await;
    let e = &store.ledger_for(&id("abc")).await.unwrap()[0];
    assert_eq!(
        (e.state, e.actual_end_at, e.http_status, e.updated_at),
        (LedgerState::Succeeded, Some(EpochMs(1_765_184_000_000)), Some(200), EpochMs(20))
    );
    assert!(store.open_entries().await.unwrap().is_empty());
}

async fn start_up_recovery_marks_only_the_sending_rows_unknown(db: Db) {
    let store = db.open().await;
    let sending = [
        store.begin_attempt(&attempt("abc", 1_762_592_000_000, 1), EpochMs(10)).await.unwrap().id,
        store.begin_attempt(&attempt("xyz", 1_762_592_000_000, 1), EpochMs(10)).await.unwrap().id,
    ];
    let done = store.begin_attempt(&attempt("def", 1_762_592_000_000, 1), EpochMs(10)).await.unwrap().id;
    let refused = Settlement {
        state: LedgerState::Refused,
        actual_end_at: None,
        http_status: Some(409),
        error: None,
        retry_at: None,
    };
    store.settle(done, &refused, EpochMs(20)).await.unwrap();
    assert_eq!(store.sending_to_unknown(EpochMs(30)).await.unwrap(), 2);
    for (sub, row) in [("abc", sending[0]), ("xyz", sending[1])] {
        let e = &store.ledger_for(&id(sub)).await.unwrap()[0];
        assert_eq!((e.id, e.state, e.updated_at), (row, LedgerState::Unknown, EpochMs(30)));
        assert_eq!(e.error.as_deref(), Some("the process stopped while the request was in flight"));
    }
    assert_eq!(store.ledger_for(&id("def")).await.unwrap()[0].state, LedgerState::Refused, "settled rows stay");
    assert_eq!(store.sending_to_unknown(EpochMs(40)).await.unwrap(), 0, "nothing left sending");
}

async fn enqueue_counts_what_it_queued_and_skips_a_repeat(db: Db) {
    use proxy_renewd::alert::{Alert, AlertKind};
    let store = db.open().await;
    let alerts = [
        Alert::account(AlertKind::Auth, None).with("401", "nothing", "fix the key"),
        Alert::account(AlertKind::Unreachable, Some(EpochMs(5))).with("down", "retry", "look"),
    ];
    assert_eq!(store.enqueue_alerts(&alerts, None, EpochMs(1_000), 60_000).await.unwrap(), 2);
    assert_eq!(store.enqueue_alerts(&alerts, None, EpochMs(2_000), 60_000).await.unwrap(), 0, "unsent: not again");
    assert_eq!(store.outbox(false, 10).await.unwrap().len(), 2);
}

async fn the_last_success_and_a_recipients_state_are_read_back(db: Db) {
    let store = db.open().await;
    assert_eq!(store.last_success_at().await.unwrap(), None);
    let ok = Settlement {
        state: LedgerState::Succeeded,
        actual_end_at: None,
        http_status: Some(200),
        error: None,
        retry_at: None,
    };
    for (sub, at) in [("abc", 70), ("xyz", 50)] {
        let row = store.begin_attempt(&attempt(sub, 1_762_592_000_000, 1), EpochMs(10)).await.unwrap().id;
        store.settle(row, &ok, EpochMs(at)).await.unwrap();
    }
    assert_eq!(store.last_success_at().await.unwrap(), Some(EpochMs(70)), "the latest of all subscriptions");
    store.record_recipient("a@example.com", Some(("550 no such user", true)), EpochMs(1)).await.unwrap();
    let b = store.record_recipient("b@example.com", Some(("452 full", false)), EpochMs(2)).await.unwrap().unwrap();
    assert_eq!((b.address.as_str(), b.failures), ("b@example.com", 0), "its own row, a temporary failure not counted");
    assert_eq!(store.record_recipient("b@example.com", None, EpochMs(3)).await.unwrap(), None, "delivered: forgotten");
}

async fn spend_and_history_count_the_right_rows(db: Db) {
    let store = db.open().await;
    let states =
        [LedgerState::Succeeded, LedgerState::Unknown, LedgerState::Refused, LedgerState::Failed, LedgerState::Sending];
    for (i, state) in states.into_iter().enumerate() {
        let n = u32::try_from(i).unwrap() + 1;
        let row =
            store.begin_attempt(&attempt("abc", 1_762_592_000_000, n), EpochMs(1000 + i64::from(n))).await.unwrap().id;
        if state != LedgerState::Sending {
            let s =
                Settlement { state, actual_end_at: None, http_status: None, error: Some("x".into()), retry_at: None };
            store.settle(row, &s, EpochMs(2000)).await.unwrap();
        }
    }
    store.begin_attempt(&attempt("other", 1_762_592_000_000, 1), EpochMs(5)).await.unwrap();
    assert_eq!(store.spend_since(EpochMs(1000)).await.unwrap(), Cents(3 * 1200), "succeeded + unknown + sending");
    assert_eq!(store.spend_since(EpochMs(0)).await.unwrap(), Cents(4 * 1200));
    let newest = store.history(None, 2).await.unwrap();
    assert_eq!(newest.iter().map(|e| e.subscription_id.to_string()).collect::<Vec<_>>(), ["other", "abc"]);
    assert_eq!(store.history(Some(&id("abc")), 100).await.unwrap().len(), 5);
}

async fn the_snapshot_notices_a_subscription_that_vanished(db: Db) {
    let store = db.open().await;
    let seen = |sid: &str, until: i64| SeenSubscription {
        subscription_id: id(sid),
        status: "active".into(),
        active_until: EpochMs(until),
        label: Some("12001 - NL - Private".into()),
        network_label: Some("NL-AMS Amsterdam".into()),
        user_note: None,
    };
    store.record_poll(&[seen("aaa", 1), seen("bbb", 2)], EpochMs(100)).await.unwrap();
    store.record_poll(&[seen("aaa", 5)], EpochMs(200)).await.unwrap();
    let rows = store.snapshot().await.unwrap();
    assert_eq!(
        (rows[0].seen.active_until, rows[0].first_seen, rows[0].last_seen, rows[0].gone_since),
        (EpochMs(5), EpochMs(100), EpochMs(200), None)
    );
    assert_eq!((rows[1].last_seen, rows[1].gone_since), (EpochMs(100), Some(EpochMs(200))));
    store.record_poll(&[seen("aaa", 5), seen("bbb", 2)], EpochMs(300)).await.unwrap();
    assert_eq!(store.snapshot().await.unwrap()[1].gone_since, None, "back again");
    assert!(store.has_seen(&id("bbb")).await.unwrap() && !store.has_seen(&id("ccc")).await.unwrap());
}

#[tokio::test]
async fn the_schema_upgrades_from_every_earlier_version() {
    let versions: Vec<i64> = MIGRATOR.iter().map(|m| m.version).collect();
    // Start from an empty file, then from each version but the last.
    for k in 0..versions.len() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("renewd.db");
        std::fs::File::create(&path).unwrap();
        if k > 0 {
            let mut conn = sqlx::SqliteConnection::connect(&url(&dir)).await.unwrap();
            MIGRATOR.run_to(versions[k - 1], &mut conn).await.unwrap();
            // Rows at the old version (the tables of the first schema), which the upgrade
            // must keep.
            sqlx::query(
                "INSERT INTO rules (subscription_id, enabled, renew_before_ms, plan, repeat_count, created_at_ms, updated_at_ms)
                 VALUES ('old', 0, 86400000, 'longest', 2, 1, 1)",
            )
            .execute(&mut conn)
            .await
            .unwrap();
            sqlx::query(
                "INSERT INTO outbox (kind, subscription_id, period_ms, payload, created_at_ms, next_attempt_at_ms)
                 VALUES ('auth', NULL, NULL, '{\"kind\":\"auth\",\"subscription_id\":null,\"period\":null,\"label\":null,\"network\":null,\"active_until\":null,\"happened\":\"x\",\"next\":\"y\",\"action\":\"z\",\"amount\":null}', 5, 5)",
            )
            .execute(&mut conn)
            .await
            .unwrap();
            conn.close().await.unwrap();
        }
        let store = Store::open(&url(&dir)).await.unwrap_or_else(|e| panic!("from version index {k}: {e}"));
        if k > 0 {
            let old =
                store.rule(&id("old")).await.unwrap().unwrap_or_else(|| panic!("version index {k}: the rule is lost"));
            assert!(!old.rule.enabled && old.rule.repeat_count == 2 && old.rule.plan == PlanChoice::Longest);
            let queued = store.outbox(false, 10).await.unwrap();
            assert_eq!(queued.len(), 1, "version index {k}: the outbox row is kept");
            assert!(queued[0].delivered_to.is_empty());
        }
        store.put_rule(&id("abc"), &Rule::default(), EpochMs(1)).await.unwrap();
        store.close().await;
        let ro = Store::open_read_only(&url(&dir)).await.unwrap();
        assert_eq!(ro.rules().await.unwrap().len(), if k > 0 { 2 } else { 1 });
    }
}

#[tokio::test]
async fn a_schema_newer_than_the_program_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    Store::open(&url(&dir)).await.unwrap().close().await;
    let mut conn = sqlx::SqliteConnection::connect(&url(&dir)).await.unwrap();
    sqlx::query("INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (9999, 'future', 1, x'00', 0)")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let e = Store::open(&url(&dir)).await.unwrap_err();
    assert!(e.to_string().contains("newer than this program"), "{e}");
    let e = Store::open_read_only(&url(&dir)).await.unwrap_err();
    assert!(e.to_string().contains("newer than this program"), "{e}");
}

#[tokio::test]
async fn a_read_only_database_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    Store::open(&url(&dir)).await.unwrap().close().await;
    let ro = Store::open_read_only(&url(&dir)).await.unwrap();
    let e = ro.put_rule(&id("abc"), &Rule::default(), EpochMs(1)).await.unwrap_err();
    assert!(matches!(e, StoreError::ReadOnly { .. }), "{e:?}");
    assert!(e.to_string().contains("read-only") && e.to_string().contains("renewd.db"), "{e}");
    let e = ro.begin_attempt(&attempt("abc", 1, 1), EpochMs(1)).await.unwrap_err();
    assert!(matches!(e, StoreError::ReadOnly { .. }), "no row, no request: {e:?}");
    // A database that SQLite opens read-only (as for a read-only file or mount): the
    // up-to-date schema needs no write, the first write fails clearly.
    let store = Store::open(&format!("{}?mode=ro", url(&dir))).await.unwrap();
    let e = store.put_rule(&id("abc"), &Rule::default(), EpochMs(1)).await.unwrap_err();
    assert!(matches!(e, StoreError::ReadOnly { .. }), "{e:?}");
}

#[tokio::test]
async fn a_locked_database_is_a_clear_error_after_the_busy_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(&url(&dir), Duration::from_millis(300)).await.unwrap();
    let mut holder = sqlx::SqliteConnection::connect(&url(&dir)).await.unwrap();
    sqlx::query("BEGIN EXCLUSIVE").execute(&mut holder).await.unwrap();
    let started = Instant::now();
    let e = store.put_rule(&id("abc"), &Rule::default(), EpochMs(1)).await.unwrap_err();
    assert!(matches!(e, StoreError::Locked { .. }), "{e:?}");
    assert!(e.to_string().contains("locked") && e.to_string().contains("another process"), "{e}");
    assert!(started.elapsed() >= Duration::from_millis(300), "it waited for the lock first");
    sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();
    store.put_rule(&id("abc"), &Rule::default(), EpochMs(1)).await.unwrap();
}

#[tokio::test]
async fn a_missing_directory_or_a_foreign_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let e = Store::open(&format!("sqlite://{}/no/such/dir/renewd.db", dir.path().display())).await.unwrap_err();
    assert!(matches!(e, StoreError::CannotOpen { .. }), "{e:?}");
    assert!(e.to_string().contains("directory exists"), "{e}");
    std::fs::write(dir.path().join("renewd.db"), vec![b'x'; 4096]).unwrap();
    let e = Store::open(&url(&dir)).await.unwrap_err();
    assert!(matches!(e, StoreError::Corrupt { .. }), "{e:?}");
    let e = Store::open_read_only(&format!("sqlite://{}/absent.db", dir.path().display())).await.unwrap_err();
    assert!(matches!(e, StoreError::CannotOpen { .. }), "read-only never creates: {e:?}");
    let e = Store::open("ftp://x").await.unwrap_err();
    assert!(e.to_string().contains("sqlite://") && e.to_string().contains("postgres://"), "{e}");
}

#[tokio::test]
async fn the_ledger_rebuild_of_migration_4_keeps_every_row() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::File::create(dir.path().join("renewd.db")).unwrap();
    let mut conn = sqlx::SqliteConnection::connect(&url(&dir)).await.unwrap();
    MIGRATOR.run_to(3, &mut conn).await.unwrap();
    sqlx::query(
        "INSERT INTO ledger (subscription_id, active_until_before_ms, attempt, plan_id, repeat_count, price_cents,
                             expected_end_at_ms, state, http_status, error, origin, created_at_ms, updated_at_ms)
         VALUES ('abc', 1765184000000, 2, 'p30', 1, 1200, 1767776000000, 'refused', 402, 'short', 'manual', 10, 20)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    let store = Store::open(&url(&dir)).await.unwrap();
    let rows = store.ledger_for(&id("abc")).await.unwrap();
    assert_eq!(rows.len(), 1);
    let e = &rows[0];
    assert_eq!(
        (e.renewal.attempt, e.renewal.price.0, e.state, e.http_status),
        (2, 1200, LedgerState::Refused, Some(402))
    );
    assert_eq!((e.origin, e.error.as_deref(), e.created_at.0, e.updated_at.0), (Origin::Manual, Some("short"), 10, 20));
    assert_eq!(e.retry_at, None);
}

#[tokio::test]
async fn renewals_written_at_once_commit_together_and_a_taken_period_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&url(&dir)).await.unwrap();
    let period = 1_762_592_000_000;
    store.begin_attempt(&attempt("taken", period, 1), EpochMs(1)).await.unwrap();
    // Another process holds the write lock for a moment: every write below queues meanwhile.
    let mut holder = sqlx::SqliteConnection::connect(&url(&dir)).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE").execute(&mut holder).await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let store = store.clone();
        let sub = if i == 7 { "taken".to_owned() } else { format!("sub{i}") };
        tasks.spawn(async move { (sub.clone(), store.begin_attempt(&attempt(&sub, period, 1), EpochMs(2)).await) });
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();
    let mut ids = std::collections::HashSet::new();
    while let Some(joined) = tasks.join_next().await {
        let (sub, result) = joined.unwrap();
        if sub == "taken" {
            assert!(result.as_ref().is_err_and(StoreError::is_conflict), "{result:?}");
            continue;
        }
        let row = result.unwrap().id;
        // Answered only once committed: another connection sees the row at once.
        let state: String =
            sqlx::query_scalar("SELECT state FROM ledger WHERE id = ?").bind(row).fetch_one(&mut holder).await.unwrap();
        assert_eq!(state, "sending", "{sub}");
        ids.insert(row);
    }
    assert_eq!(ids.len(), 19, "one row each, the taken period's neighbours unharmed");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM ledger").fetch_one(&mut holder).await.unwrap();
    assert_eq!(rows, 20);
}

#[tokio::test]
async fn a_lock_held_past_the_busy_timeout_fails_every_queued_renewal_write() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(&url(&dir), Duration::from_millis(300)).await.unwrap();
    let mut holder = sqlx::SqliteConnection::connect(&url(&dir)).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE").execute(&mut holder).await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..5 {
        let store = store.clone();
        tasks.spawn(async move { store.begin_attempt(&attempt(&format!("sub{i}"), 1, 1), EpochMs(2)).await });
    }
    while let Some(joined) = tasks.join_next().await {
        let e = joined.unwrap().unwrap_err();
        assert!(matches!(e, StoreError::Locked { .. }), "{e:?}");
    }
    sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM ledger").fetch_one(&mut holder).await.unwrap();
    assert_eq!(rows, 0, "nothing was written, so nothing may be sent");
    store.begin_attempt(&attempt("sub0", 1, 1), EpochMs(3)).await.unwrap();
}

/// The statements each engine writes its own way: JSON arrays (the outbox's recipients, a
/// purchase's new ids, a cycle's periods), upserts (holds, daemon state, recipients).
async fn outbox_delivery_and_purchases_round_trip(db: Db) {
    use proxy_renewd::alert::{Alert, AlertKind};
    use proxy_renewd::purchase::{PurchaseState, PurchaseTerms, RuleOverrides};
    use proxy_renewd::store::{Begun, Hold, PurchaseSettlement};
    let store = db.open().await;
    let alert = Alert::account(AlertKind::Auth, None).with("401", "nothing", "fix the key");
    store.enqueue_alerts(&[alert], None, EpochMs(1_000), 60_000).await.unwrap();
    let due = store.due_alerts(EpochMs(10_000_000)).await.unwrap();
    let ids: Vec<i64> = due.iter().map(|r| r.id).collect();
    assert_eq!(ids.len(), 1);
    store.mark_delivered_to(&ids, "a@example.com").await.unwrap();
    store.mark_delivered_to(&ids, "a@example.com").await.unwrap();
    store.mark_delivered_to(&ids, "b@example.com").await.unwrap();
    let row = &store.outbox(false, 10).await.unwrap()[0];
    assert_eq!(row.delivered_to, ["a@example.com", "b@example.com"], "each recipient once, in order");
    store.mark_failed(&ids, "421 try later", EpochMs(2_000)).await.unwrap();
    assert_eq!(store.outbox(true, 10).await.unwrap()[0].attempts, 1);
    store.mark_sent(&ids, EpochMs(3_000)).await.unwrap();
    assert_eq!(store.pending_alerts().await.unwrap(), 0);

    for (label, until) in [("first", 10), ("second", 20)] {
        let hold = Hold {
            subscription_id: id("abc"),
            since: EpochMs(until),
            active_until: EpochMs(until + 1),
            ledger_id: None,
            reason: label.into(),
        };
        store.put_hold(&hold).await.unwrap();
    }
    let holds = store.holds().await.unwrap();
    assert_eq!((holds.len(), holds[0].reason.as_str(), holds[0].since), (1, "second", EpochMs(20)), "replaced");

    for _ in 0..2 {
        store.record_read_failure(EpochMs(50)).await.unwrap();
    }
    assert!(store.read_failures().await.unwrap().is_some());
    store.record_cycle(EpochMs(77)).await.unwrap();
    store.record_cycle(EpochMs(88)).await.unwrap();
    assert_eq!(store.last_cycle().await.unwrap(), Some(EpochMs(88)));

    let a = attempt("abc", 1_762_592_000_000, 1);
    store.begin_attempt(&a, EpochMs(10)).await.unwrap();
    store.begin_attempt(&attempt("xyz", 5, 1), EpochMs(10)).await.unwrap();
    let found =
        store.ledger_for_periods(&[(id("abc"), EpochMs(1_762_592_000_000)), (id("xyz"), EpochMs(6))]).await.unwrap();
    assert_eq!(found.iter().map(|e| e.subscription_id.to_string()).collect::<Vec<_>>(), ["abc"], "by period key");

    let plan = PlanId::parse("k17m3q5v7n9p1r2t4w6y8z0a").unwrap();
    let terms = PurchaseTerms::of_plan(plan, Cents(1200), 2_592_000_000, 2, 1, None).unwrap();
    let Begun::Started(p) =
        store.begin_purchase(&terms, &RuleOverrides::default(), &[id("abc")], false, EpochMs(100)).await.unwrap()
    else {
        panic!("nothing open yet")
    };
    assert!(matches!(
        store.begin_purchase(&terms, &RuleOverrides::default(), &[], false, EpochMs(101)).await.unwrap(),
        Begun::Blocked(_)
    ));
    let done = PurchaseSettlement {
        state: PurchaseState::Done,
        subscription_ids: vec![id("new1"), id("new2")],
        http_status: Some(200),
        error: None,
    };
    store.settle_purchase(p, &done, &Rule::default(), EpochMs(200)).await.unwrap();
    let mut bought: Vec<String> = store.purchased_ids().await.unwrap().iter().map(ToString::to_string).collect();
    bought.sort();
    assert_eq!(bought, ["new1", "new2"]);
    assert_eq!(store.spend_since(EpochMs(0)).await.unwrap(), Cents(2 * 1200 + 2 * 1200), "two attempts and a purchase");
}

/// PostgreSQL's lease: one holder at a time by the database's clock; a new epoch at every
/// change of hands; a `sending` row only under the current epoch.
#[tokio::test]
async fn the_lease_has_one_holder_and_a_stale_epoch_commits_nothing() {
    let url = crate::pg::database().await;
    let (a, b) = (Store::open(&url).await.unwrap(), Store::open(&url).await.unwrap());
    assert_eq!(a.take_lease("node-a pid 1", 60_000).await.unwrap(), Some(1));
    assert_eq!(a.take_lease("node-a pid 1", 60_000).await.unwrap(), Some(1), "kept, same epoch");
    assert_eq!(b.take_lease("node-b pid 2", 60_000).await.unwrap(), None, "held by a");
    let held = b.lease().await.unwrap().unwrap();
    assert_eq!((held.holder.as_str(), held.epoch), ("node-a pid 1", 1));
    assert!(held.remaining_ms > 50_000 && held.remaining_ms <= 60_000, "{held:?}");
    assert!(a.renew_lease("node-a pid 1", 1, 60_000).await.unwrap());
    assert!(!b.renew_lease("node-b pid 2", 1, 60_000).await.unwrap(), "not b's to renew");

    // a's lease lapses (a 1 ms lease, renewed by a): b takes it at the next epoch.
    assert!(a.renew_lease("node-a pid 1", 1, 1).await.unwrap());
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!a.renew_lease("node-a pid 1", 1, 60_000).await.unwrap(), "expired: never extended again");
    assert_eq!(lead(&b, "node-b pid 2").await, 2);

    // a, paused past its lease, wakes with its old fence: its renewal is refused, no row.
    a.set_fence(Some(Fence { holder: "node-a pid 1".into(), epoch: 1, lease_ms: 60_000 }));
    let e = a.begin_attempt(&attempt("abc", 1, 1), EpochMs(1)).await.unwrap_err();
    assert!(e.is_lease_lost(), "{e}");
    assert!(e.to_string().contains("node-b pid 2 leads at epoch 2"), "{e}");
    assert_eq!(a.fence(), None, "the stale fence is cleared");
    assert!(a.ledger_for(&id("abc")).await.unwrap().is_empty(), "nothing written");
    let sending = b.begin_attempt(&attempt("abc", 1, 1), EpochMs(2)).await.unwrap();
    assert!(sending.deadline.is_some_and(|d| d > Instant::now() + Duration::from_secs(50)), "{sending:?}");
    // Without any fence, nothing either.
    let e = a.begin_attempt(&attempt("def", 1, 1), EpochMs(1)).await.unwrap_err();
    assert!(e.is_lease_lost(), "{e}");

    // Given up, it is free at once, and the epoch keeps growing.
    b.resign_lease("node-b pid 2", 2).await.unwrap();
    assert_eq!(a.take_lease("node-a pid 1", 60_000).await.unwrap(), Some(3));
}

/// A read-only PostgreSQL store writes nothing, and a wrong password or database is a clear
/// error that does not show the password.
#[tokio::test]
async fn postgres_errors_are_clear_and_keep_the_password() {
    let url = crate::pg::database().await;
    Store::open(&url).await.unwrap().close().await;
    let ro = Store::open_read_only(&url).await.unwrap();
    let e = ro.put_rule(&id("abc"), &Rule::default(), EpochMs(1)).await.unwrap_err();
    assert!(matches!(e, StoreError::ReadOnly { .. }), "{e:?}");
    let mut wrong = url::Url::parse(&url).unwrap();
    wrong.set_path("/no_such_database");
    wrong.set_password(Some("hunter2-secret")).unwrap();
    let e = Store::open(wrong.as_str()).await.unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, StoreError::Unavailable { .. }), "{e:?}");
    assert!(text.contains("no_such_database") && !text.contains("hunter2"), "{text}");
    let e = Store::open("postgres://127.0.0.1:1/db").await.unwrap_err();
    assert!(matches!(e, StoreError::Unavailable { .. }), "{e:?}");
    assert!(e.to_string().contains("check that PostgreSQL is running"), "{e}");
}
