//! All SQL lives here: [`Store`] opens the database, an SQLite file or a PostgreSQL database
//! (`db.rs`: one pool type, one query type, for either engine), creating its schema and running
//! the embedded migrations on first use (`migrations/sqlite/`, `migrations/postgres/`), and its methods read and write rules (`rules.rs`), the
//! renewal ledger (`ledger.rs`), the purchases ledger (`purchases.rs`), the alert outbox
//! (`outbox.rs`), holds (`holds.rs`) and the subscription snapshot (`snapshot.rs`). It speaks
//! in the plain types of [`crate::values`], [`crate::rule`], [`crate::attempt`],
//! [`crate::purchase`] and [`crate::alert`], and knows nothing of HTTP or the provider client.
//!
//! The leader lease of several nodes on one PostgreSQL database is `lease.rs`.
//!
//! Settings chosen for a ledger that guards money: on SQLite WAL, `synchronous=FULL`, foreign keys on, a
//! busy timeout, and write transactions that take the write lock up front (`BEGIN
//! IMMEDIATE`), since a plain `BEGIN` that upgrades later fails with `database is locked`; on
//! PostgreSQL a transaction-scoped advisory lock gives writes the same one-at-a-time order.
//! Within one process those transactions take turns ([`Store::write_tx`] queues), and the
//! writes of renewals in flight share one commit (`group.rs`).
//! Queries are checked at run time (`query_as` + `FromRow`), so a build needs no database.
//! Driver errors become [`StoreError`]s that say what to do.

mod db;
mod error;
mod group;
mod holds;
mod lease;
mod ledger;
mod outbox;
mod owner;
mod purchases;
mod rules;
mod snapshot;

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use db::{Pool, Tx, query};

pub use error::StoreError;
pub use group::LEASE_MARGIN_MS;
pub use holds::Hold;
pub use lease::{Fence, LeaseRow};
pub use ledger::Sending;
pub use outbox::{DEAD_AFTER_REFUSALS, LOGGED_ONLY, OutboxRow, RecipientState, delivery_backoff_ms};
pub use purchases::{Begun, PurchaseSettlement};
pub use rules::RuleRow;
pub use snapshot::{ReadFailures, SeenSubscription, SnapshotRow};

/// The SQLite schema, embedded from `migrations/sqlite/` at build time.
pub static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

/// The PostgreSQL schema, embedded from `migrations/postgres/` at build time: the same tables,
/// versions and meaning as [`MIGRATOR`]'s.
pub static MIGRATOR_POSTGRES: Migrator = sqlx::migrate!("migrations/postgres");

/// How long a connection waits for a lock before [`StoreError::Locked`].
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The database: a small pool of SQLite or PostgreSQL connections.
#[derive(Debug, Clone)]
pub struct Store {
    pool: Pool,
    /// The SQLite file, or the PostgreSQL URL without its password and parameters: for
    /// messages.
    path: String,
    /// The file's identity when it was opened (device, inode): see [`Store::check_file`].
    file_id: Option<(u64, u64)>,
    /// One write transaction at a time in this process (shared by clones): writers queue
    /// here, in order, instead of contending for SQLite's write lock, whose busy handler
    /// sleeps 1, 2, 5 … 100 ms between tries. Another process's lock is still waited for
    /// by the busy timeout.
    writer: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// The renewals' writes waiting for the next group commit (`group.rs`).
    queue: group::Queue,
    /// On PostgreSQL with several nodes, the lease this process holds: every `sending` row is
    /// committed only with it (`lease.rs`).
    fence: lease::FenceSlot,
}

/// A write transaction ([`Store::write_tx`]) with this process's writer turn: used as the
/// connection (`&mut *tx`), ended by [`WriteTx::commit`] or, rolled back, by dropping it.
pub(crate) struct WriteTx {
    // Dropped first: the rollback of an uncommitted transaction happens inside the turn.
    tx: Tx,
    _turn: tokio::sync::OwnedMutexGuard<()>,
}

impl WriteTx {
    /// Commits, then gives the turn to the next writer.
    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}

impl std::ops::Deref for WriteTx {
    type Target = Tx;
    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}

impl Store {
    /// Opens `url` (`sqlite://PATH` or `sqlite:PATH`; `postgres://…` or `postgresql://…`) for
    /// reading and writing, creating the SQLite file if missing and bringing the schema up to
    /// date.
    ///
    /// # Errors
    /// [`StoreError`]: cannot open or create, unreachable (PostgreSQL), read-only, locked, not a
    /// database, or a schema newer than this program.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        Store::open_with(url, BUSY_TIMEOUT).await
    }

    /// [`Store::open`] with another busy timeout: how long a write waits for another
    /// process's lock before [`StoreError::Locked`].
    ///
    /// # Errors
    /// As [`Store::open`].
    pub async fn open_with(url: &str, busy_timeout: Duration) -> Result<Store, StoreError> {
        if is_postgres(url) {
            let store = Store::connect_postgres(url, false, busy_timeout).await?;
            store.migrate().await?;
            return Ok(store);
        }
        let opts = base_options(url, busy_timeout)?.create_if_missing(true);
        if let Some(file) = database_file(url)? {
            create_private(&file);
        }
        refuse_foreign(&opts).await?;
        // The file exists now. The pool's own connections never create one: a file deleted
        // under a running process must not come back empty (writes fail instead).
        let opts =
            opts.create_if_missing(false).journal_mode(SqliteJournalMode::Wal).synchronous(SqliteSynchronous::Full);
        let store = Store::connect(opts, 4, busy_timeout).await?;
        store.migrate().await?;
        // The schema goes into the main file now, not only into the WAL.
        query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&store.pool).await.map_err(|e| store.err(e))?;
        owner::keep_owner(std::path::Path::new(&store.path));
        Ok(store)
    }

    /// Brings the schema up to date. Processes starting together on a new file race to
    /// create it; SQLite runs each migration in a transaction, so the loser's rolls back and
    /// a retry finds the work done.
    async fn migrate(&self) -> Result<(), StoreError> {
        use sqlx::migrate::MigrateError;
        let mut tries = 0u64;
        loop {
            let run = match &self.pool {
                Pool::Sqlite(p) => MIGRATOR.run(p).await,
                Pool::Postgres(p) => MIGRATOR_POSTGRES.run(p).await,
            };
            match run {
                Ok(()) => return Ok(()),
                Err(MigrateError::Execute(_) | MigrateError::ExecuteMigration(..)) if tries < 5 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(50 * tries)).await;
                }
                Err(e) => return Err(self.migrate_error(e)),
            }
        }
    }

    /// Opens an existing database read-only (for `--dry-run`): nothing is created, migrated
    /// or written.
    ///
    /// # Errors
    /// [`StoreError::CannotOpen`] when the file does not exist; [`StoreError::Migrate`] when
    /// its schema is older or newer than this program's.
    pub async fn open_read_only(url: &str) -> Result<Store, StoreError> {
        if is_postgres(url) {
            let store = Store::connect_postgres(url, true, BUSY_TIMEOUT).await?;
            store.check_schema_current().await?;
            return Ok(store);
        }
        let opts = base_options(url, BUSY_TIMEOUT)?.read_only(true).create_if_missing(false);
        let store = Store::connect(opts, 2, BUSY_TIMEOUT).await?;
        owner::keep_owner(std::path::Path::new(&store.path));
        store.check_schema_current().await?;
        Ok(store)
    }

    async fn connect(opts: SqliteConnectOptions, max: u32, busy_timeout: Duration) -> Result<Store, StoreError> {
        let path = opts.get_filename().display().to_string();
        let pool = SqlitePoolOptions::new()
            .max_connections(max)
            // A connection whose commit failed (an I/O error) can come back still counted as
            // inside a transaction, and every later `begin` on it would fail: close it.
            .after_release(|conn, _| {
                use sqlx::Connection;
                let keep = !conn.is_in_transaction();
                Box::pin(async move { Ok(keep) })
            })
            .acquire_timeout(busy_timeout * 2 + Duration::from_secs(1))
            .connect_with(opts)
            .await
            .map_err(|e| StoreError::from_sqlx(&path, "", e))?;
        let file_id = file_id(std::path::Path::new(&path));
        let store = Store::new(Pool::Sqlite(pool), path, file_id);
        // Make "not a database" show up now, not at the first query.
        query("SELECT count(*) FROM sqlite_schema").execute(&store.pool).await.map_err(|e| store.err(e))?;
        Ok(store)
    }

    fn new(pool: Pool, path: String, file_id: Option<(u64, u64)>) -> Store {
        Store {
            pool,
            path,
            file_id,
            writer: std::sync::Arc::default(),
            queue: group::Queue::default(),
            fence: lease::FenceSlot::default(),
        }
    }

    /// Connects to the PostgreSQL database at `url`; `read_only` makes every transaction of
    /// the pool read-only (`--dry-run`, views).
    async fn connect_postgres(url: &str, read_only: bool, busy_timeout: Duration) -> Result<Store, StoreError> {
        let (opts, path) = postgres_options(url)?;
        // Lock waits end as SQLite's do.
        let mut opts = opts.options([
            ("lock_timeout", format!("{}ms", busy_timeout.as_millis())),
            ("idle_in_transaction_session_timeout", "60s".to_owned()),
        ]);
        if read_only {
            opts = opts.options([("default_transaction_read_only", "on")]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(if read_only { 2 } else { 8 })
            .acquire_timeout(busy_timeout * 2 + Duration::from_secs(1))
            .connect_with(opts)
            .await
            .map_err(|e| StoreError::from_sqlx(&path, "", e))?;
        Ok(Store::new(Pool::Postgres(pool), path, None))
    }

    async fn check_schema_current(&self) -> Result<(), StoreError> {
        let latest = self.migrator().iter().map(|m| m.version).max().unwrap_or(0);
        let applied: Option<i64> = query("SELECT max(version) FROM _sqlx_migrations WHERE success")
            .scalar(&self.pool)
            .await
            .map_err(|e| StoreError::Migrate {
                path: self.path.clone(),
                detail: format!(
                    "it has no proxy-renewd schema ({e}); run `proxy-renewd once` or `rules list` to create it"
                ),
            })?;
        match applied {
            Some(v) if v == latest => Ok(()),
            Some(v) if v > latest => Err(self.newer_schema(v, latest)),
            v => Err(StoreError::Migrate {
                path: self.path.clone(),
                detail: format!(
                    "its schema is at version {} of {latest}; open it once read-write (e.g. `proxy-renewd rules list`) to upgrade it",
                    v.unwrap_or(0)
                ),
            }),
        }
    }

    fn migrator(&self) -> &'static Migrator {
        match self.pool {
            Pool::Sqlite(_) => &MIGRATOR,
            Pool::Postgres(_) => &MIGRATOR_POSTGRES,
        }
    }

    fn newer_schema(&self, found: i64, latest: i64) -> StoreError {
        StoreError::Migrate {
            path: self.path.clone(),
            detail: format!("its schema version {found} is newer than this program's {latest}: upgrade proxy-renewd"),
        }
    }

    fn migrate_error(&self, e: sqlx::migrate::MigrateError) -> StoreError {
        use sqlx::migrate::MigrateError;
        match e {
            MigrateError::VersionMissing(v) => {
                self.newer_schema(v, self.migrator().iter().map(|m| m.version).max().unwrap_or(0))
            }
            MigrateError::Execute(inner) | MigrateError::ExecuteMigration(inner, _) => self.err(inner),
            other => StoreError::Migrate { path: self.path.clone(), detail: other.to_string() },
        }
    }

    /// Checks that the file at the database's path is still the one opened: a file deleted
    /// or replaced under a running process would take the ledger's writes into a deleted
    /// inode, or into a new empty database.
    ///
    /// # Errors
    /// [`StoreError::Replaced`].
    pub fn check_file(&self) -> Result<(), StoreError> {
        let Some(opened) = self.file_id else { return Ok(()) };
        match file_id(std::path::Path::new(&self.path)) {
            Some(now) if now == opened => Ok(()),
            Some(_) => Err(StoreError::Replaced { path: self.path.clone(), what: "replaced by another file" }),
            None => Err(StoreError::Replaced { path: self.path.clone(), what: "deleted" }),
        }
    }

    /// The database file's path, or the PostgreSQL URL without its password: for messages.
    #[must_use]
    pub fn path(&self) -> &str {
        &self.path
    }

    /// A write transaction holding the write lock from its first statement.
    pub(crate) async fn write_tx(&self) -> Result<WriteTx, StoreError> {
        let turn = self.writer.clone().lock_owned().await;
        let tx = self.pool.begin_write().await.map_err(|e| self.err(e))?;
        Ok(WriteTx { tx, _turn: turn })
    }

    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }

    /// True when the database is PostgreSQL (several nodes may share it).
    #[must_use]
    pub fn is_postgres(&self) -> bool {
        self.pool.is_postgres()
    }

    /// `value` as JSON text, for a JSON column or a `json_each` parameter.
    pub(crate) fn to_json<T: serde::Serialize + ?Sized>(&self, value: &T) -> Result<String, StoreError> {
        serde_json::to_string(value).map_err(|e| StoreError::Other { path: self.path.clone(), detail: e.to_string() })
    }

    pub(crate) fn err(&self, e: sqlx::Error) -> StoreError {
        StoreError::from_sqlx(&self.path, "", e)
    }

    /// Runs a `DELETE … WHERE subscription_id = ?` in a write transaction; true when a row went.
    pub(crate) async fn delete_for(
        &self,
        sql: &'static str,
        id: &crate::values::SubscriptionId,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write_tx().await?;
        let done = query(sql).bind(id.as_str()).execute(&mut *tx).await.map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok(done > 0)
    }

    /// Closes every connection (checkpointing an SQLite WAL).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// A file's (device, inode), or `None` when it does not exist (or off Unix).
fn file_id(path: &std::path::Path) -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// Refuses a SQLite file that holds tables but no proxy-renewd schema (another
/// application's), before anything is written to it, journal mode included.
/// A new database file is made readable by its owner only (mode 600, whatever the umask of a
/// command run by hand): the ledger and spend are the business's own. SQLite gives its `-wal`
/// and `-shm` files the database file's mode. An existing file or a failure here is left to
/// SQLite (which then creates the file as usual, or says why not).
fn create_private(file: &std::path::Path) {
    use std::os::unix::fs::OpenOptionsExt;
    if !file.exists() {
        let _ = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(file);
    }
}

async fn refuse_foreign(opts: &SqliteConnectOptions) -> Result<(), StoreError> {
    use sqlx::{ConnectOptions, Connection};
    let path = opts.get_filename().display().to_string();
    let mut conn = opts.connect().await.map_err(|e| StoreError::from_sqlx(&path, "", e))?;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )
    .fetch_all(&mut conn)
    .await
    .map_err(|e| StoreError::from_sqlx(&path, "", e))?;
    let _ = conn.close().await;
    if tables.is_empty() || tables.iter().any(|t| t == "_sqlx_migrations") {
        return Ok(());
    }
    let shown: Vec<&str> = tables.iter().take(5).map(String::as_str).collect();
    Err(StoreError::Foreign { path, tables: shown.join(", ") })
}

/// Whether the database at `url` exists yet: the SQLite file, or on PostgreSQL the schema
/// (a database no node has opened yet is as empty as a file not yet created). Nothing is
/// created; read-only views answer "nothing yet" when false.
///
/// # Errors
/// [`StoreError`]: not a database URL; PostgreSQL unreachable.
pub async fn exists(url: &str) -> Result<bool, StoreError> {
    if !is_postgres(url) {
        return Ok(database_file(url)?.is_none_or(|f| f.exists()));
    }
    use sqlx::{ConnectOptions, Connection};
    let (opts, path) = postgres_options(url)?;
    let mut conn = opts.connect().await.map_err(|e| StoreError::from_sqlx(&path, "", e))?;
    let found: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(&mut conn)
        .await
        .map_err(|e| StoreError::from_sqlx(&path, "", e))?;
    let _ = conn.close().await;
    Ok(found)
}

/// The connect options of a PostgreSQL URL, with the name other nodes and `pg_stat_activity`
/// see (`proxy-renewd`), and the URL as messages show it.
fn postgres_options(url: &str) -> Result<(PgConnectOptions, String), StoreError> {
    let path = redact_url(url);
    match PgConnectOptions::from_str(url) {
        Ok(opts) => Ok((opts.application_name("proxy-renewd"), path)),
        Err(e) => Err(StoreError::CannotOpen {
            path,
            detail: format!("a PostgreSQL URL like postgres://user@host:5432/db?sslmode=verify-full was expected: {e}"),
        }),
    }
}

/// True for a `postgres://` or `postgresql://` URL.
#[must_use]
pub fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// A database URL fit for messages: an SQLite URL as it is; of a PostgreSQL URL the scheme,
/// user, host, port and database, without the password and the parameters.
#[must_use]
pub fn redact_url(url: &str) -> String {
    if !is_postgres(url) {
        return url.to_owned();
    }
    match url::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => "the PostgreSQL URL in [database] url".to_owned(),
    }
}

/// The file behind a database URL; `None` for an in-memory SQLite database or PostgreSQL.
///
/// # Errors
/// [`StoreError::CannotOpen`] for a URL that is neither `sqlite:…` nor `postgres://…`.
pub fn database_file(url: &str) -> Result<Option<std::path::PathBuf>, StoreError> {
    if is_postgres(url) {
        return Ok(None);
    }
    let opts = base_options(url, BUSY_TIMEOUT)?;
    let file = opts.get_filename();
    let memory = file.as_os_str().is_empty() || file.as_os_str() == ":memory:" || url.contains("mode=memory");
    Ok((!memory).then(|| file.to_path_buf()))
}

fn base_options(url: &str, busy_timeout: Duration) -> Result<SqliteConnectOptions, StoreError> {
    if !url.starts_with("sqlite:") {
        return Err(StoreError::CannotOpen {
            path: url.to_owned(),
            detail: "not a database URL: use sqlite://PATH, e.g. sqlite://proxy-renewd.db, or postgres://user@host/db"
                .into(),
        });
    }
    let opts = SqliteConnectOptions::from_str(url).map_err(|e| StoreError::CannotOpen {
        path: url.to_owned(),
        detail: format!("not a SQLite URL like sqlite://proxy-renewd.db ({e})"),
    })?;
    Ok(opts.busy_timeout(busy_timeout).foreign_keys(true))
}
