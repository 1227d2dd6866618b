//! The two engines behind [`Store`](super::Store): a [`Pool`] and a write transaction
//! ([`Tx`]) on SQLite or PostgreSQL, and [`Query`], a statement with its arguments that runs
//! on either. The store's methods are written once against these; a statement whose SQL
//! differs between the engines (JSON functions) names both texts ([`Query::each`]).
//!
//! SQL is written with numbered parameters (`$1`, `$2`, …), which both engines accept. Values
//! are bound as one of three kinds (integer, text, boolean, each optional): the only kinds the
//! schema has, money and times being integers (cents, ms).

use sqlx::postgres::{PgPool, Postgres};
use sqlx::sqlite::{Sqlite, SqlitePool};
use sqlx::{Arguments, Database, Encode, Transaction, Type};

/// Runs `$make(sql, args).$fetch(executor)` on the engine `$on` is on, then `$map` on its
/// answer (each engine's own type, e.g. its query result).
macro_rules! dispatch {
    ($q:ident, $on:ident, $make:path, $fetch:ident) => {
        dispatch!($q, $on, $make, $fetch, |answer| answer)
    };
    ($q:ident, $on:ident, $make:path, $fetch:ident, $map:expr) => {{
        let Query { sqlite, postgres, args } = $q;
        match $on.into() {
            On::Pool(Pool::Sqlite(p)) => $make(sqlite, to_args::<Sqlite>(args)?).$fetch(p).await.map($map),
            On::Pool(Pool::Postgres(p)) => $make(postgres, to_args::<Postgres>(args)?).$fetch(p).await.map($map),
            On::Tx(Tx::Sqlite(t)) => $make(sqlite, to_args::<Sqlite>(args)?).$fetch(&mut **t).await.map($map),
            On::Tx(Tx::Postgres(t)) => $make(postgres, to_args::<Postgres>(args)?).$fetch(&mut **t).await.map($map),
        }
    }};
}

/// A connection pool on one engine.
#[derive(Debug, Clone)]
pub(crate) enum Pool {
    /// An SQLite file.
    Sqlite(SqlitePool),
    /// A PostgreSQL database.
    Postgres(PgPool),
}

impl Pool {
    /// Closes every connection.
    pub(crate) async fn close(&self) {
        match self {
            Pool::Sqlite(p) => p.close().await,
            Pool::Postgres(p) => p.close().await,
        }
    }

    /// A write transaction that holds the database's write lock from its first statement:
    /// SQLite's `BEGIN IMMEDIATE`; on PostgreSQL, a transaction-scoped advisory lock
    /// ([`WRITE_LOCK`]), which gives PostgreSQL the single-writer order SQLite has (a
    /// read-modify-write cannot interleave with another node's), and works through PgBouncer
    /// in transaction mode.
    pub(crate) async fn begin_write(&self) -> Result<Tx, sqlx::Error> {
        match self {
            Pool::Sqlite(p) => Ok(Tx::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?)),
            Pool::Postgres(p) => {
                let mut tx = p.begin().await?;
                sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(WRITE_LOCK).execute(&mut *tx).await?;
                Ok(Tx::Postgres(tx))
            }
        }
    }

    /// True on PostgreSQL.
    pub(crate) fn is_postgres(&self) -> bool {
        matches!(self, Pool::Postgres(_))
    }
}

/// The advisory lock key every PostgreSQL write transaction takes (an arbitrary constant:
/// `proxy-renewd` in ASCII, truncated to 8 bytes).
pub(crate) const WRITE_LOCK: i64 = 0x7072_6f78_792d_7265;

/// A transaction on one engine; rolled back when dropped uncommitted.
pub(crate) enum Tx {
    /// On SQLite.
    Sqlite(Transaction<'static, Sqlite>),
    /// On PostgreSQL.
    Postgres(Transaction<'static, Postgres>),
}

impl Tx {
    /// Commits.
    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Sqlite(t) => t.commit().await,
            Tx::Postgres(t) => t.commit().await,
        }
    }
}

/// Where a [`Query`] runs: on a pooled connection, or inside a transaction.
pub(crate) enum On<'a> {
    /// Any connection of the pool (autocommit).
    Pool(&'a Pool),
    /// Inside this transaction.
    Tx(&'a mut Tx),
}

impl<'a> From<&'a Pool> for On<'a> {
    fn from(p: &'a Pool) -> On<'a> {
        On::Pool(p)
    }
}

impl<'a> From<&'a mut Tx> for On<'a> {
    fn from(t: &'a mut Tx) -> On<'a> {
        On::Tx(t)
    }
}

/// One bound value.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    /// An integer column (ms, cents, counts, ids), or NULL.
    Int(Option<i64>),
    /// A text column, or NULL.
    Text(Option<String>),
    /// A boolean column, or NULL.
    Bool(Option<bool>),
}

/// A value that binds as an [`Arg`].
pub(crate) trait Bind {
    /// The value as an argument.
    fn arg(self) -> Arg;
}

/// `impl Bind for TYPE` turning a value `v` into the argument given.
macro_rules! bind_as {
    ($($t:ty => |$v:ident| $arg:expr),* $(,)?) => {$(
        impl Bind for $t {
            fn arg(self) -> Arg {
                let $v = self;
                $arg
            }
        }
    )*};
}

bind_as! {
    i64 => |v| Arg::Int(Some(v)),
    Option<i64> => |v| Arg::Int(v),
    &i64 => |v| Arg::Int(Some(*v)),
    bool => |v| Arg::Bool(Some(v)),
    Option<bool> => |v| Arg::Bool(v),
    &str => |v| Arg::Text(Some(v.to_owned())),
    Option<&str> => |v| Arg::Text(v.map(str::to_owned)),
    String => |v| Arg::Text(Some(v)),
    &String => |v| Arg::Text(Some(v.clone())),
    Option<String> => |v| Arg::Text(v),
}

/// A statement and its arguments, for either engine.
#[derive(Debug)]
#[must_use = "a query does nothing until it is run"]
pub(crate) struct Query {
    sqlite: &'static str,
    postgres: &'static str,
    args: Vec<Arg>,
}

/// A statement whose text is the same on both engines.
pub(crate) fn query(sql: &'static str) -> Query {
    Query { sqlite: sql, postgres: sql, args: Vec::new() }
}

impl Query {
    /// A statement written twice: for SQLite and for PostgreSQL.
    pub(crate) fn each(sqlite: &'static str, postgres: &'static str) -> Query {
        Query { sqlite, postgres, args: Vec::new() }
    }

    /// Binds the next parameter.
    pub(crate) fn bind(mut self, value: impl Bind) -> Query {
        self.args.push(value.arg());
        self
    }

    /// Runs it; the number of rows changed.
    pub(crate) async fn execute<'a>(self, on: impl Into<On<'a>>) -> Result<u64, sqlx::Error> {
        dispatch!(self, on, sqlx::query_with, execute, |done| done.rows_affected())
    }

    /// Every row, each as a `T` (a [`sqlx::FromRow`] struct or tuple).
    pub(crate) async fn fetch_all<'a, T: Row>(self, on: impl Into<On<'a>>) -> Result<Vec<T>, sqlx::Error> {
        dispatch!(self, on, sqlx::query_as_with, fetch_all)
    }

    /// The first row, if any.
    pub(crate) async fn fetch_optional<'a, T: Row>(self, on: impl Into<On<'a>>) -> Result<Option<T>, sqlx::Error> {
        dispatch!(self, on, sqlx::query_as_with, fetch_optional)
    }

    /// The first column of the one row there must be.
    pub(crate) async fn scalar<'a, T: Scalar>(self, on: impl Into<On<'a>>) -> Result<T, sqlx::Error> {
        dispatch!(self, on, sqlx::query_scalar_with, fetch_one)
    }

    /// The first column of every row.
    pub(crate) async fn scalars<'a, T: Scalar>(self, on: impl Into<On<'a>>) -> Result<Vec<T>, sqlx::Error> {
        dispatch!(self, on, sqlx::query_scalar_with, fetch_all)
    }

    /// The first column of the first row, if any.
    pub(crate) async fn scalar_optional<'a, T: Scalar>(self, on: impl Into<On<'a>>) -> Result<Option<T>, sqlx::Error> {
        dispatch!(self, on, sqlx::query_scalar_with, fetch_optional)
    }
}

/// A row type both engines can decode.
pub(crate) trait Row:
    for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow> + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin
{
}
impl<T> Row for T where
    T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
        + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
        + Send
        + Unpin
{
}

/// A column value both engines can decode.
pub(crate) trait Scalar:
    for<'r> sqlx::Decode<'r, Sqlite> + Type<Sqlite> + for<'r> sqlx::Decode<'r, Postgres> + Type<Postgres> + Send + Unpin
{
}
impl<T> Scalar for T where
    T: for<'r> sqlx::Decode<'r, Sqlite>
        + Type<Sqlite>
        + for<'r> sqlx::Decode<'r, Postgres>
        + Type<Postgres>
        + Send
        + Unpin
{
}

/// The arguments for engine `DB`.
fn to_args<DB: Database>(args: Vec<Arg>) -> Result<DB::Arguments, sqlx::Error>
where
    Option<i64>: for<'t> Encode<'t, DB> + Type<DB>,
    Option<String>: for<'t> Encode<'t, DB> + Type<DB>,
    Option<bool>: for<'t> Encode<'t, DB> + Type<DB>,
{
    let mut out = DB::Arguments::default();
    for a in args {
        match a {
            Arg::Int(v) => out.add(v),
            Arg::Text(v) => out.add(v),
            Arg::Bool(v) => out.add(v),
        }
        .map_err(sqlx::Error::Encode)?;
    }
    Ok(out)
}
