//! The single-node instance lock: one `run` or `once` per database, through an exclusive
//! `flock` on `DB.lock` held for the process's life. The kernel releases it when the process
//! dies, so a stale lock is simply taken over; a live holder is named (pid, host, since) in
//! the refusal.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::values::EpochMs;

/// Why the instance lock was not taken.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// Another live process holds it.
    #[error("another proxy-renewd is running on this database ({holder}; lock file {}): stop it first, or use another [database] url", .path.display())]
    Held {
        /// The lock file.
        path: PathBuf,
        /// `pid N on HOST since TIME`, as the holder wrote it.
        holder: String,
    },
    /// The lock file cannot be opened or locked.
    #[error("cannot lock {}: {source}", .path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// The held instance lock; released when dropped or when the process exits.
#[derive(Debug)]
pub struct InstanceLock {
    _file: File,
    path: PathBuf,
}

impl InstanceLock {
    /// Takes the lock for the database file `db`, at `db` + `.lock`.
    ///
    /// # Errors
    /// [`LockError::Held`] naming the holder; [`LockError::Io`] when the file cannot be
    /// opened or locked.
    pub fn acquire(db: &Path) -> Result<InstanceLock, LockError> {
        // One lock per file, however it is named: resolve links and relative paths.
        let db = std::fs::canonicalize(db).unwrap_or_else(|_| {
            let dir = db.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
            std::fs::canonicalize(dir).map_or_else(|_| db.to_path_buf(), |d| d.join(db.file_name().unwrap_or_default()))
        });
        let mut name = db.as_os_str().to_owned();
        name.push(".lock");
        let path = PathBuf::from(name);
        let io = |source| LockError::Io { path: path.clone(), source };
        let mut file = File::options().read(true).write(true).create(true).truncate(false).open(&path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim().to_owned();
                let holder = if holder.is_empty() { "holder unknown".into() } else { holder };
                return Err(LockError::Held { path, holder });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        let me = format!("pid {} on {} since {}", std::process::id(), hostname(), EpochMs::now());
        file.set_len(0).and_then(|()| file.rewind()).and_then(|()| file.write_all(me.as_bytes())).map_err(io)?;
        tracing::debug!(lock = %path.display(), "instance lock taken");
        Ok(InstanceLock { _file: file, path })
    }

    /// The lock file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// This machine's host name, for messages that say where they come from.
#[must_use]
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown host".into())
}
