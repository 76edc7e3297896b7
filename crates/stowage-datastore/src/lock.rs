//! Locks. Both are released by the kernel when the process dies, so a killed backup never
//! leaves a stale lock behind.

use std::fs::{File, OpenOptions};
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};

use crate::DatastoreError;

/// A shared POSIX record lock on `<base>/.lock`, held by every backup writer, as PBS's writers
/// hold it: PBS's garbage collection takes it exclusively and so never runs beside a stowage
/// backup. stowage's own collection does not take it (it runs beside backups, knowing them from
/// their registrations in `.writers/`, see `writers.rs`).
pub struct StoreSharedLock {
    _file: File,
}

impl StoreSharedLock {
    pub fn acquire(lock_file: &Path) -> Result<Self, DatastoreError> {
        let file = OpenOptions::new()
            .read(true)
            .open(lock_file)
            .map_err(DatastoreError::read(lock_file))?;
        // SAFETY: a zeroed flock is a valid value; every field we need is set below.
        let mut fl: libc::flock = unsafe { std::mem::zeroed() };
        fl.l_type = libc::F_RDLCK as libc::c_short;
        fl.l_whence = libc::SEEK_SET as libc::c_short;
        fl.l_start = 0;
        fl.l_len = 0;
        nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_SETLK(&fl)).map_err(|e| {
            DatastoreError::Locked {
                what: format!(
                    "datastore {}",
                    lock_file.parent().unwrap_or(lock_file).display()
                ),
                why: format!("garbage collection holds it ({e}); try again when it has finished"),
            }
        })?;
        Ok(StoreSharedLock { _file: file })
    }
}

/// An exclusive `flock` on a group directory: one writer per group at a time.
pub struct GroupLock {
    _lock: Flock<File>,
}

impl GroupLock {
    pub fn acquire(group_dir: &Path, group: &str) -> Result<Self, DatastoreError> {
        let file = File::open(group_dir).map_err(DatastoreError::read(group_dir))?;
        let lock = Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|_| {
            DatastoreError::Locked {
                what: format!("backup group {group}"),
                why: "another backup, sync, forget or prune of this group is running (or garbage collection is removing an unfinished snapshot of it for a moment); wait for it to finish".into(),
            }
        })?;
        Ok(GroupLock { _lock: lock })
    }
}
