//! Running backups, as garbage collection sees them.
//!
//! Every process that adds chunks (a backup, a sync) registers itself with a file in
//! `<base>/.writers/` that it keeps `flock`ed while it runs. Garbage collection lists the
//! registrations to learn the start of the oldest running writer: chunks touched since then are
//! never swept. A registration whose lock is free belongs to a process that died and is removed.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use nix::fcntl::{Flock, FlockArg};

use crate::DatastoreError;

const WRITERS_DIR: &str = ".writers";
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

/// Start time (Unix nanoseconds) of the oldest live writer, if any; removes registrations of
/// writers that died.
pub fn oldest_writer(base: &Path) -> Result<Option<u128>, DatastoreError> {
    let dir = base.join(WRITERS_DIR);
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(DatastoreError::read(&dir)(e)),
    };
    let mut oldest: Option<u128> = None;
    for entry in entries {
        let entry = entry.map_err(DatastoreError::read(&dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(".new") {
            // Being registered: that writer starts after us. One left by a process that died
            // between creating and renaming it is removed once it is an hour old.
            let stale = entry
                .metadata()
                .ok()
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age.as_secs() > 3600);
            if stale {
                let _ = fs::remove_file(entry.path());
            }
            continue;
        }
        let Some(start) = name.split('-').next().and_then(|s| s.parse::<u128>().ok()) else {
            continue;
        };
        let Ok(file) = File::open(entry.path()) else {
            continue; // finished meanwhile
        };
        match Flock::lock(file, FlockArg::LockSharedNonblock) {
            Ok(_stale) => {
                let _ = fs::remove_file(entry.path());
            }
            Err(_) => oldest = Some(oldest.map_or(start, |o| o.min(start))),
        }
    }
    Ok(oldest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_and_stale_registrations() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(oldest_writer(dir.path()).unwrap(), None);
        let before = now_nanos();
        let first = WriterRegistration::register(dir.path()).unwrap();
        let second = WriterRegistration::register(dir.path()).unwrap();
        let oldest = oldest_writer(dir.path()).unwrap().unwrap();
        assert!(oldest >= before && oldest <= now_nanos());
        drop(first);
        assert!(oldest_writer(dir.path()).unwrap().unwrap() >= oldest);
        drop(second);
        assert_eq!(oldest_writer(dir.path()).unwrap(), None);
        // A registration left by a dead process has no lock: it is ignored and removed.
        let stale = dir.path().join(WRITERS_DIR).join("5-999999-0");
        fs::write(&stale, "5\n").unwrap();
        assert_eq!(oldest_writer(dir.path()).unwrap(), None);
        assert!(!stale.exists());
    }
}
