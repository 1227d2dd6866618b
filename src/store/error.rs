//! The store's one error type: driver errors mapped, at this edge, to what an operator must do.

use std::fmt;

/// What went wrong with the database, and what to do about it.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The file cannot be opened or created (missing directory, permissions).
    #[error("cannot open database {path} ({detail}): {}", open_remedy(.path))]
    CannotOpen {
        /// The database file.
        path: String,
        /// The driver's words.
        detail: String,
    },
    /// Writes are refused (read-only file, directory or mount).
    #[error("database {path} is read-only ({detail}): {}; nothing was written", read_only_remedy(.path))]
    ReadOnly {
        /// The database file.
        path: String,
        /// The driver's words.
        detail: String,
    },
    /// Another connection held the lock past the busy timeout.
    #[error("database {path} is locked ({detail}): another process holds it; retry, or stop the other proxy-renewd")]
    Locked {
        /// The database file.
        path: String,
        /// The driver's words.
        detail: String,
    },
    /// Not a database, or damaged.
    #[error(
        "database {path} is not a proxy-renewd database or is damaged ({detail}): restore it from a backup or move it away"
    )]
    Corrupt {
        /// The database file.
        path: String,
        /// What was wrong.
        detail: String,
    },
    /// The file at the database's path is no longer the one this process opened (deleted,
    /// moved or replaced while it ran): nothing more is written, lest the ledger go into a
    /// deleted file or a new empty one.
    #[error(
        "database {path} was {what} while proxy-renewd ran: nothing more is written to it; restore the file (or restart on purpose to start an empty one)"
    )]
    Replaced {
        /// The database file.
        path: String,
        /// `deleted` or `replaced by another file`.
        what: &'static str,
    },
    /// One row cannot be read (edited by hand past the schema's checks); the rest is fine.
    #[error("database {path}: {detail}: {remedy}")]
    BadRow {
        /// The database file.
        path: String,
        /// Which row and what is wrong.
        detail: String,
        /// What to do.
        remedy: String,
    },
    /// Another application's SQLite database: not touched.
    #[error(
        "{path} belongs to another application (it has tables {tables} and no proxy-renewd schema): nothing was changed; use another [database] url"
    )]
    Foreign {
        /// The database file.
        path: String,
        /// Some of its tables.
        tables: String,
    },
    /// The schema could not be brought up to date.
    #[error("database {path} could not be migrated ({detail})")]
    Migrate {
        /// The database file.
        path: String,
        /// The migrator's words, with advice.
        detail: String,
    },
    /// A row with the same unique key exists: another process got there first.
    #[error("{what} already exists (another process inserted it first)")]
    Conflict {
        /// What collided, e.g. `ledger attempt (abc, 1762592000000, 1)`.
        what: String,
    },
    /// The PostgreSQL server cannot be reached, refused the login, or has no such database.
    #[error(
        "database {path} is unreachable ({detail}): check that PostgreSQL is running and that the URL's host, port, user, password and database are right"
    )]
    Unavailable {
        /// The URL without its password.
        path: String,
        /// The driver's words.
        detail: String,
    },
    /// On PostgreSQL, this process no longer holds the leader lease (another node took it, or
    /// it expired while the process was paused): nothing was written, nothing may be sent.
    #[error("this node no longer holds the leader lease ({detail}): nothing was written and nothing is sent")]
    LeaseLost {
        /// Why: whose the lease is now.
        detail: String,
    },
    /// Anything else the driver reported.
    #[error("database {path}: {detail}")]
    Other {
        /// The database file.
        path: String,
        /// The driver's words.
        detail: String,
    },
}

impl StoreError {
    /// Maps a sqlx error for the database at `path`; `what` names the row for conflicts.
    pub(crate) fn from_sqlx(path: &str, what: impl fmt::Display, e: sqlx::Error) -> StoreError {
        let path = path.to_owned();
        match e {
            sqlx::Error::Database(db) if db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>().is_some() => {
                let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
                let detail = db.message().to_owned();
                match code.as_str() {
                    "23505" => StoreError::Conflict { what: what.to_string() },
                    "25006" | "42501" => StoreError::ReadOnly { path, detail },
                    "55P03" | "40P01" | "40001" => StoreError::Locked { path, detail },
                    "3D000" | "28000" | "28P01" | "57P01" | "57P02" | "57P03" | "53300" => {
                        StoreError::Unavailable { path, detail }
                    }
                    _ => StoreError::Other { path, detail: format!("{detail} (SQLSTATE {code})") },
                }
            }
            sqlx::Error::Database(db) => {
                let code = db.code().and_then(|c| c.parse::<i32>().ok()).unwrap_or(0);
                let detail = db.message().to_owned();
                match code & 0xff {
                    5 | 6 => StoreError::Locked { path, detail },
                    8 => StoreError::ReadOnly { path, detail },
                    14 => StoreError::CannotOpen { path, detail },
                    11 | 26 => StoreError::Corrupt { path, detail },
                    19 if code == 2067 || code == 1555 => StoreError::Conflict { what: what.to_string() },
                    _ => StoreError::Other { path, detail: format!("{detail} (SQLite code {code})") },
                }
            }
            sqlx::Error::PoolTimedOut if super::is_postgres(&path) => {
                StoreError::Unavailable { path, detail: "timed out waiting for a connection".into() }
            }
            sqlx::Error::PoolTimedOut => {
                StoreError::Locked { path, detail: "timed out waiting for a connection".into() }
            }
            sqlx::Error::Io(io) if super::is_postgres(&path) => {
                StoreError::Unavailable { path, detail: io.to_string() }
            }
            sqlx::Error::Tls(e) => StoreError::Unavailable { path, detail: format!("TLS: {e}") },
            sqlx::Error::Protocol(e) if super::is_postgres(&path) => StoreError::Unavailable { path, detail: e },
            sqlx::Error::PoolClosed if super::is_postgres(&path) => {
                StoreError::Unavailable { path, detail: "the connection pool is closed".into() }
            }
            sqlx::Error::Io(io) => StoreError::CannotOpen { path, detail: io.to_string() },
            other => StoreError::Other { path, detail: other.to_string() },
        }
    }

    /// True for [`StoreError::LeaseLost`].
    #[must_use]
    pub fn is_lease_lost(&self) -> bool {
        matches!(self, StoreError::LeaseLost { .. })
    }

    /// True for [`StoreError::Conflict`].
    #[must_use]
    pub fn is_conflict(&self) -> bool {
        matches!(self, StoreError::Conflict { .. })
    }
}

fn open_remedy(path: &str) -> &'static str {
    if super::is_postgres(path) {
        "check the URL's form and its parameters (sslmode, sslrootcert, ...)"
    } else {
        "check that its directory exists and is writable by this user"
    }
}

fn read_only_remedy(path: &str) -> &'static str {
    if super::is_postgres(path) {
        "grant the URL's role the right to write (GRANT ALL ON ALL TABLES IN SCHEMA public, and CREATE on it for the migrations), or use a role that has it"
    } else {
        "check the permissions of the file and its directory"
    }
}
