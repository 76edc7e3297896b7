//! Running backups, as garbage collection sees them.
//!
//! Every process that adds chunks (a backup, a sync) registers itself with a file in
//! `<base>/.writers/` that it keeps `flock`ed while it runs. Garbage collection lists the
//! registrations to learn the start of the oldest running writer: chunks touched since then are
//! never swept. A registration whose lock is free belongs to a process that died and is removed.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use nix::fcntl::{Flock, FlockArg};

use crate::DatastoreError;

pub(crate) const WRITERS_DIR: &str = ".writers";
static SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// Held for as long as a writer runs; dropping it removes the registration.
pub struct WriterRegistration {
    path: PathBuf,
    _lock: Flock<File>,
}

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

impl WriterRegistration {
    /// Registers a writer starting now. The file is locked under a temporary name and only then
    /// renamed into place, so garbage collection never sees an unlocked live registration.
    pub fn register(base: &Path) -> Result<Self, DatastoreError> {
        let dir = base.join(WRITERS_DIR);
        fs::create_dir_all(&dir).map_err(DatastoreError::write(&dir))?;
        let start = now_nanos();
        let name = format!(
            "{start}-{}-{}",
            std::process::id(),
            SEQUENCE.fetch_add(1, Ordering::Relaxed)
        );
        let tmp = dir.join(format!("{name}.new"));
        let path = dir.join(&name);
        let register = || -> io::Result<Flock<File>> {
            let mut file = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
            writeln!(file, "{start}")?;
            let lock = Flock::lock(file, FlockArg::LockExclusiveNonblock)
                .map_err(|(_, e)| io::Error::from(e))?;
            fs::rename(&tmp, &path)?;
            Ok(lock)
        };
        match register() {
            Ok(lock) => Ok(WriterRegistration { path, _lock: lock }),
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                Err(DatastoreError::write(&path)(e))
            }
        }
    }
}

impl Drop for WriterRegistration {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// The writers running now, as their registrations show them.
#[derive(Debug, Default)]
pub struct LiveWriters {
    /// Start time (Unix nanoseconds) of the oldest one.
    pub oldest: Option<u128>,
    /// Their process ids: temporary files named with one of these are in use.
    pub pids: HashSet<u32>,
}

/// The writers running now; removes registrations of writers that died. Registrations still
/// being made (`*.new`) belong to writers that start after this call; one left by a process
/// that died between creating and renaming it is garbage collection's to remove.
pub fn live_writers(base: &Path) -> Result<LiveWriters, DatastoreError> {
    let dir = base.join(WRITERS_DIR);
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(LiveWriters::default()),
        Err(e) => return Err(DatastoreError::read(&dir)(e)),
    };
    let mut live = LiveWriters::default();
    for entry in entries {
        let entry = entry.map_err(DatastoreError::read(&dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some((start, pid)) = parse_registration(name) else {
            continue;
        };
        let Ok(file) = File::open(entry.path()) else {
            continue; // finished meanwhile
        };
        match Flock::lock(file, FlockArg::LockSharedNonblock) {
            Ok(_stale) => {
                let _ = fs::remove_file(entry.path());
            }
            Err(_) => {
                live.oldest = Some(live.oldest.map_or(start, |o| o.min(start)));
                live.pids.insert(pid);
            }
        }
    }
    Ok(live)
}

/// `<start>-<pid>-<sequence>`: start and pid; `None` for other names (`*.new` among them).
fn parse_registration(name: &str) -> Option<(u128, u32)> {
    let mut parts = name.split('-');
    let start = parts.next()?.parse().ok()?;
    let pid = parts.next()?.parse().ok()?;
    parts.next()?.parse::<u64>().ok()?;
    Some((start, pid))
}

/// The pid in the name of a registration being made (`<start>-<pid>-<sequence>.new`).
pub(crate) fn pending_registration_pid(name: &str) -> Option<u32> {
    parse_registration(name.strip_suffix(".new")?).map(|(_, pid)| pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_and_stale_registrations() {
        let dir = tempfile::tempdir().unwrap();
        let oldest_writer = |d: &Path| live_writers(d).unwrap().oldest;
        assert_eq!(oldest_writer(dir.path()), None);
        let before = now_nanos();
        let first = WriterRegistration::register(dir.path()).unwrap();
        let second = WriterRegistration::register(dir.path()).unwrap();
        let oldest = oldest_writer(dir.path()).unwrap();
        assert!(oldest >= before && oldest <= now_nanos());
        let live = live_writers(dir.path()).unwrap();
        assert_eq!(live.pids, HashSet::from([std::process::id()]));
        drop(first);
        assert!(oldest_writer(dir.path()).unwrap() >= oldest);
        drop(second);
        assert_eq!(oldest_writer(dir.path()), None);
        // A registration left by a dead process has no lock: it is ignored and removed.
        let stale = dir.path().join(WRITERS_DIR).join("5-999999-0");
        fs::write(&stale, "5\n").unwrap();
        assert_eq!(oldest_writer(dir.path()), None);
        assert!(!stale.exists());
        assert_eq!(pending_registration_pid("5-77-0.new"), Some(77));
        assert_eq!(pending_registration_pid("5-77-0"), None);
    }
}
