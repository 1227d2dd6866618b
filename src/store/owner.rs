//! A database keeps its owner: `proxy-renewd` run by root against the installed service's
//! database (in `/var/lib/proxy-renewd`, owned by the service user) must not leave files
//! there that only root can open, or the service fails at its next start with "unable to
//! open database file". After opening, any of the database, its `-wal`, `-shm` and `.lock`
//! files that root created is handed to the owner of the directory it lives in.

use std::path::Path;

/// When this process runs as root and `file`'s directory belongs to another user, hands
/// `file`, `file-wal`, `file-shm` and `file.lock` (those that exist and root owns) to that
/// directory's owner and group. A failure is logged, not returned: the command's own work
/// is done, and the log says what to fix.
pub(super) fn keep_owner(file: &Path) {
    use std::os::unix::fs::MetadataExt;
    if !rustix::process::geteuid().is_root() {
        return;
    }
    let Some(dir) = file.parent().map(|d| if d.as_os_str().is_empty() { Path::new(".") } else { d }) else {
        return;
    };
    let Ok(dir_meta) = std::fs::metadata(dir) else { return };
    if dir_meta.uid() == 0 {
        return;
    }
    let name = file.as_os_str().to_owned();
    for suffix in ["", "-wal", "-shm", ".lock"] {
        let mut path = name.clone();
        path.push(suffix);
        let path = Path::new(&path);
        if std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file() && m.uid() == 0)
            && let Err(e) = std::os::unix::fs::chown(path, Some(dir_meta.uid()), Some(dir_meta.gid()))
        {
            tracing::warn!(file = %path.display(), error = %e, "this root-owned database file could not be handed to its directory's owner: chown it, or the service may not open the database");
        }
    }
}
