//! What killed processes leave behind, and garbage collection removes: snapshot directories
//! without a manifest whose backup is gone, and temporary files of writers that died.
//!
//! A temporary file is dead when it changed before this collection started (a file newer than
//! that may belong to a writer that started after we listed the running ones) and the process
//! named in it neither is a registered writer nor exists on this machine. Names carry the pid:
//! chunks `<hex>.tmp_<pid>_<n>`, every atomically written file `.<name>.tmp_<pid>`, writer
//! registrations being made `<start>-<pid>-<n>.new`. An index being written (`<name>.tmp_fidx`)
//! lives only in an unfinished snapshot directory, which goes as a whole, under the group's lock.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use stowage_format::manifest::MANIFEST_BLOB_NAME;

use crate::lock::GroupLock;
use crate::writers::{pending_registration_pid, LiveWriters, WRITERS_DIR};
use crate::{Datastore, DatastoreError};

const HOUR: i128 = 3600 * 1_000_000_000;

/// Decides whether a temporary file's writer is gone.
pub(crate) struct Liveness {
    pids: HashSet<u32>,
    /// The collection's start on the file system's clock (Unix nanoseconds).
    started: i128,
}

impl Liveness {
    pub fn new(live: &LiveWriters, started: i128) -> Liveness {
        Liveness {
            pids: live.pids.clone(),
            started,
        }
    }

    /// Whether a temporary file of process `pid`, last changed at `mtime`, was left by a
    /// writer that died.
    pub fn is_dead(&self, pid: u32, mtime: i128) -> bool {
        mtime < self.started
            && !self.pids.contains(&pid)
            && (!process_exists(pid) || mtime < self.started - HOUR)
    }
}

/// Whether a process with this id runs on this machine (a pid taken over by an unrelated
/// process keeps a dead writer's file for an hour, no more).
fn process_exists(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    !matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
        Err(nix::errno::Errno::ESRCH)
    )
}

/// The writer's pid in a temporary file name of ours: `.<name>.tmp_<pid>` or
/// `<hex>.tmp_<pid>_<n>`.
pub(crate) fn temp_pid(name: &str) -> Option<u32> {
    let (stem, tail) = name.rsplit_once(".tmp_")?;
    if stem.is_empty() {
        return None;
    }
    let pid = match tail.split_once('_') {
        Some((pid, n)) if n.bytes().all(|b| b.is_ascii_digit()) && !n.is_empty() => pid,
        Some(_) => return None,
        None if stem.starts_with('.') => tail,
        None => return None,
    };
    pid.parse().ok()
}

pub(crate) fn mtime_nanos(meta: &fs::Metadata) -> i128 {
    meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128
}

/// What the cleanup removed (or, in a dry run, would remove).
#[derive(Debug, Default)]
pub(crate) struct Cleaned {
    /// Snapshot directories without a manifest, as `[ns:]type/id/time`.
    pub unfinished: Vec<String>,
    pub temp_files: u64,
    pub bytes: u64,
    /// Directories that could not be read or entries that could not be removed.
    pub errors: Vec<String>,
}

pub(crate) struct Cleanup<'a> {
    pub store: &'a Datastore,
    pub liveness: &'a Liveness,
    /// Unfinished snapshot directories whose newest entry changed before this go.
    pub unfinished_before: i128,
    pub dry_run: bool,
}

impl Cleanup<'_> {
    pub fn run(&self) -> Cleaned {
        let mut out = Cleaned::default();
        let base = self.store.base();
        self.temp_files_in(base, &mut out);
        self.writer_registrations(&base.join(WRITERS_DIR), &mut out);
        let namespaces = match self.store.all_namespaces() {
            Ok(n) => n,
            Err(e) => {
                out.errors.push(e.to_string());
                return out;
            }
        };
        for ns in namespaces {
            let view = match self.store.in_namespace(&ns) {
                Ok(v) => v,
                Err(e) => {
                    out.errors.push(format!("namespace '{ns}': {e}"));
                    continue;
                }
            };
            match view.groups() {
                Ok(groups) => {
                    for group in groups {
                        self.group(&view, &group, &mut out);
                    }
                }
                Err(e) => out.errors.push(format!("namespace '{ns}': {e}")),
            }
        }
        out
    }

    fn group(&self, view: &Datastore, group: &stowage_types::BackupGroup, out: &mut Cleaned) {
        let group_dir = view.group_dir(group);
        self.temp_files_in(&group_dir, out);
        let snapshots = match view.snapshots(group) {
            Ok(s) => s,
            Err(e) => return out.errors.push(format!("group {group}: {e}")),
        };
        for info in snapshots {
            let dir = view.snapshot_dir(&info.snapshot);
            if info.finished {
                self.temp_files_in(&dir, out);
                continue;
            }
            let shown = match view.namespace().is_root() {
                true => info.snapshot.to_string(),
                false => format!("[{}]:{}", view.namespace(), info.snapshot),
            };
            match self.remove_unfinished(&group_dir, &group.to_string(), &dir) {
                Ok(Some(bytes)) => {
                    out.unfinished.push(shown);
                    out.bytes += bytes;
                }
                Ok(None) => {}
                Err(e) => out.errors.push(format!("{shown}: {e}")),
            }
        }
    }

    /// Removes an unfinished snapshot directory when nothing in it changed since the cutoff
    /// and no backup of the group runs (its lock is free); its size if it went.
    fn remove_unfinished(
        &self,
        group_dir: &Path,
        group: &str,
        dir: &Path,
    ) -> Result<Option<u64>, DatastoreError> {
        let Some((newest, bytes)) = newest_entry(dir)? else {
            return Ok(None);
        };
        if newest >= self.unfinished_before {
            return Ok(None);
        }
        if self.dry_run {
            // Reported without taking the group's lock: a backup starting now must not find it
            // held by a collection that removes nothing.
            return Ok(Some(bytes));
        }
        let Ok(_lock) = GroupLock::acquire(group_dir, group) else {
            return Ok(None); // a backup, sync or forget of the group runs
        };
        if dir.join(MANIFEST_BLOB_NAME).exists() {
            return Ok(None); // it finished after all
        }
        match fs::remove_dir_all(dir) {
            Ok(()) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(DatastoreError::write(dir)(e)),
        }
    }

    /// Dead `.<name>.tmp_<pid>` files of atomic writes in `dir`.
    fn temp_files_in(&self, dir: &Path, out: &mut Cleaned) {
        self.remove_dead(dir, out, |name| {
            name.starts_with('.').then(|| temp_pid(name)).flatten()
        });
    }

    /// Registrations left half made by writers that died.
    fn writer_registrations(&self, dir: &Path, out: &mut Cleaned) {
        self.remove_dead(dir, out, pending_registration_pid);
    }

    fn remove_dead(&self, dir: &Path, out: &mut Cleaned, pid_of: impl Fn(&str) -> Option<u32>) {
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return,
            Err(e) => {
                return out
                    .errors
                    .push(format!("cannot read {}: {e}", dir.display()))
            }
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(&pid_of) else {
                continue;
            };
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_file() || !self.liveness.is_dead(pid, mtime_nanos(&meta)) {
                continue;
            }
            if self.dry_run || fs::remove_file(entry.path()).is_ok() {
                out.temp_files += 1;
                out.bytes += meta.len();
            }
        }
    }
}

/// The newest change time (mtime, Unix nanoseconds) of a directory and its entries, and their
/// total size; `None` if the directory is gone.
fn newest_entry(dir: &Path) -> Result<Option<(i128, u64)>, DatastoreError> {
    let meta = match fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(DatastoreError::read(dir)(e)),
    };
    let mut newest = mtime_nanos(&meta);
    let mut bytes = 0;
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(DatastoreError::read(dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(DatastoreError::read(dir))?;
        let path: PathBuf = entry.path();
        if let Ok(m) = fs::symlink_metadata(&path) {
            newest = newest.max(mtime_nanos(&m));
            bytes += m.len();
        }
    }
    Ok(Some((newest, bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names_carry_their_writers_pid() {
        let hex = "ab".repeat(32);
        assert_eq!(temp_pid(&format!("{hex}.tmp_123_4")), Some(123));
        assert_eq!(temp_pid(".index.json.blob.tmp_77"), Some(77));
        assert_eq!(temp_pid(".owner.tmp_9"), Some(9));
        assert_eq!(temp_pid("drive.img.tmp_fidx"), None);
        assert_eq!(temp_pid("notes.tmp_x"), None);
        assert_eq!(temp_pid(".tmp_5"), None);
        assert_eq!(temp_pid(&format!("{hex}.tmp_1_x")), None);
        assert_eq!(temp_pid(&hex), None);
    }

    #[test]
    fn only_files_of_gone_writers_from_before_the_start_are_dead() {
        let me = std::process::id();
        let live = LiveWriters {
            oldest: Some(1),
            pids: HashSet::from([42]),
        };
        let started = 10 * HOUR;
        let l = Liveness::new(&live, started);
        // A pid that cannot exist (above pid_max), not registered: dead once older than start.
        let gone = 0x7fff_fff0;
        assert!(l.is_dead(gone, started - 1));
        assert!(
            !l.is_dead(gone, started),
            "may be a writer that started after us"
        );
        assert!(!l.is_dead(42, 0), "a registered writer's file");
        assert!(!l.is_dead(me, started - 1), "this process exists");
        assert!(
            l.is_dead(me, started - 2 * HOUR),
            "an hour is the limit for a reused pid"
        );
    }
}
