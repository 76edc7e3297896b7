//! GC phase 2: walk the 65 536 chunk directories in parallel and remove chunks whose atime is
//! older than the cutoff.
//!
//! A chunk is never unlinked under its own name. It is first renamed to `<hex>.gc-removing`, and
//! its atime is read again: a backup that touched it just before the rename made it recent again
//! and it is renamed back; a backup that looks for it just after the rename does not find it and
//! writes it anew. So a concurrent backup never counts on a chunk this sweep deletes.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use super::leftovers::{mtime_nanos, temp_pid, Liveness};
use crate::DatastoreError;

const TOMBSTONE: &str = "gc-removing";

/// Counts of one sweep, as `.gc-status` reports them.
#[derive(Debug, Default, Clone)]
pub(crate) struct SweepCounts {
    pub disk_bytes: u64,
    pub disk_chunks: u64,
    pub removed_bytes: u64,
    pub removed_chunks: u64,
    pub pending_bytes: u64,
    pub pending_chunks: u64,
    pub removed_bad: u64,
    pub still_bad: u64,
    /// Entries in chunk directories that are neither chunks nor bad copies.
    pub foreign: u64,
    /// Temporary chunk files left by writers that died.
    pub removed_temp: u64,
}

impl SweepCounts {
    fn add(&mut self, o: &SweepCounts) {
        self.disk_bytes += o.disk_bytes;
        self.disk_chunks += o.disk_chunks;
        self.removed_bytes += o.removed_bytes;
        self.removed_chunks += o.removed_chunks;
        self.pending_bytes += o.pending_bytes;
        self.pending_chunks += o.pending_chunks;
        self.removed_bad += o.removed_bad;
        self.still_bad += o.still_bad;
        self.foreign += o.foreign;
        self.removed_temp += o.removed_temp;
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Chunk,
    Bad,
    Tombstone,
    Other,
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn kind(name: &str) -> Kind {
    if is_hex64(name) {
        return Kind::Chunk;
    }
    // Byte-wise: a foreign name may have a multi-byte character anywhere.
    let (Some(head), Some(rest)) = (name.get(..64), name.get(64..)) else {
        return Kind::Other;
    };
    if !is_hex64(head) {
        return Kind::Other;
    }
    if rest == format!(".{TOMBSTONE}") {
        return Kind::Tombstone;
    }
    let b = rest.as_bytes();
    if b.len() == 6 && b[0] == b'.' && b[1].is_ascii_digit() && &b[2..] == b".bad" {
        return Kind::Bad;
    }
    Kind::Other
}

/// Sweep parameters: times in Unix nanoseconds.
pub(crate) struct Cutoff {
    /// Older atimes are garbage.
    pub min_atime: i128,
    /// Atimes older than this (but not garbage) count as pending.
    pub oldest_writer: i128,
    /// Count, but remove nothing.
    pub dry_run: bool,
    /// Which temporary chunk files belong to writers that died.
    pub liveness: Liveness,
}

fn atime_nanos(meta: &fs::Metadata) -> i128 {
    meta.atime() as i128 * 1_000_000_000 + meta.atime_nsec() as i128
}

/// Sweeps all 65 536 prefix directories with `threads` workers.
pub(crate) fn sweep(
    chunk_dir: &Path,
    cutoff: &Cutoff,
    threads: usize,
    swept: &AtomicU64,
) -> (SweepCounts, Option<DatastoreError>) {
    let next = AtomicUsize::new(0);
    let total = Mutex::new(SweepCounts::default());
    // The first failure stops the sweep: a full or failing disk would fail every directory.
    let failure: Mutex<Option<DatastoreError>> = Mutex::new(None);
    let failed = AtomicBool::new(false);
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| {
                let mut mine = SweepCounts::default();
                'work: loop {
                    let start = next.fetch_add(256, Ordering::Relaxed);
                    if start > 0xffff {
                        break;
                    }
                    for prefix in start..(start + 256).min(0x10000) {
                        if failed.load(Ordering::Relaxed) {
                            break 'work;
                        }
                        let dir = chunk_dir.join(format!("{prefix:04x}"));
                        if let Err(e) = sweep_dir(&dir, cutoff, &mut mine) {
                            failed.store(true, Ordering::Relaxed);
                            if let Ok(mut f) = failure.lock() {
                                f.get_or_insert(e);
                            }
                        }
                        swept.fetch_add(1, Ordering::Relaxed);
                    }
                }
                if let Ok(mut t) = total.lock() {
                    t.add(&mine);
                }
            });
        }
    });
    (
        total.into_inner().unwrap_or_default(),
        failure.into_inner().unwrap_or_default(),
    )
}

fn sweep_dir(dir: &Path, cutoff: &Cutoff, counts: &mut SweepCounts) -> Result<(), DatastoreError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(DatastoreError::read(dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(DatastoreError::read(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            counts.foreign += 1;
            continue;
        };
        let k = kind(name);
        if k == Kind::Other {
            if name.get(..64).is_some_and(is_hex64) && name.contains(".tmp_") {
                remove_stale_temp(&entry.path(), name, cutoff, counts);
            } else {
                counts.foreign += 1;
            }
            continue;
        }
        let path = entry.path();
        if k == Kind::Tombstone {
            // Left by a sweep that was interrupted: put the chunk back, the next run decides.
            let chunk = dir.join(name.get(..64).unwrap_or(name));
            if !cutoff.dry_run {
                restore_tombstone(&path, &chunk)?;
            }
            continue;
        }
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) if m.is_file() => m,
            Ok(_) => {
                counts.foreign += 1;
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(DatastoreError::read(&path)(e)),
        };
        let atime = atime_nanos(&meta);
        let size = meta.len();
        if atime < cutoff.min_atime {
            let removed = cutoff.dry_run || remove_if_still_old(&path, cutoff.min_atime)?;
            if removed {
                if k == Kind::Bad {
                    counts.removed_bad += 1;
                } else {
                    counts.removed_chunks += 1;
                }
                counts.removed_bytes += size;
                continue;
            }
        }
        // PBS's accounting: bad copies count as "still bad" only while pending, and add their
        // size (not their number) to the disk usage otherwise.
        if atime < cutoff.oldest_writer {
            if k == Kind::Bad {
                counts.still_bad += 1;
            } else {
                counts.pending_chunks += 1;
            }
            counts.pending_bytes += size;
        } else {
            if k != Kind::Bad {
                counts.disk_chunks += 1;
            }
            counts.disk_bytes += size;
        }
    }
    Ok(())
}

/// A chunk's temporary file (`<hex>.tmp_<pid>_<n>`) is a writer's chunk in flight, or the
/// leftover of a writer that died: it goes when its writer is gone (see [`Liveness`]).
fn remove_stale_temp(path: &Path, name: &str, cutoff: &Cutoff, counts: &mut SweepCounts) {
    let Some(pid) = temp_pid(name) else {
        counts.foreign += 1;
        return;
    };
    let Ok(meta) = fs::symlink_metadata(path) else {
        return;
    };
    let dead = cutoff.liveness.is_dead(pid, mtime_nanos(&meta));
    if meta.is_file() && dead && (cutoff.dry_run || fs::remove_file(path).is_ok()) {
        counts.removed_temp += 1;
        counts.removed_bytes += meta.len();
    }
}

/// Renames the file aside, reads its atime again, and deletes it only if it is still old;
/// otherwise puts it back. Returns whether it was removed.
fn remove_if_still_old(path: &Path, min_atime: i128) -> Result<bool, DatastoreError> {
    let mut tomb = path.as_os_str().to_owned();
    tomb.push(format!(".{TOMBSTONE}"));
    let tomb = Path::new(&tomb);
    match fs::rename(path, tomb) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(DatastoreError::write(path)(e)),
    }
    let still_old = fs::symlink_metadata(tomb)
        .map(|m| atime_nanos(&m) < min_atime)
        .unwrap_or(false);
    if still_old {
        fs::remove_file(tomb).map_err(DatastoreError::write(tomb))?;
        Ok(true)
    } else {
        restore_tombstone(tomb, path)?;
        Ok(false)
    }
}

/// Puts a renamed chunk back, unless a backup has written it anew meanwhile, and marks it as
/// used now: it was renamed aside because it looked unused, and someone touched it since (or a
/// collection died before deciding), so it is kept at least until the next collection.
fn restore_tombstone(tomb: &Path, chunk: &Path) -> Result<(), DatastoreError> {
    if chunk.exists() {
        return fs::remove_file(tomb).map_err(DatastoreError::write(tomb));
    }
    fs::rename(tomb, chunk).map_err(DatastoreError::write(chunk))?;
    let _ = super::mark::touch(chunk);
    Ok(())
}

/// For marking: a needed chunk that is missing may sit under its tombstone name, left by a
/// collection that died mid-removal. Puts it back; true if it was there.
pub(crate) fn recover_tombstone(chunk: &Path) -> bool {
    let mut tomb = chunk.as_os_str().to_owned();
    tomb.push(format!(".{TOMBSTONE}"));
    let tomb = Path::new(&tomb);
    tomb.exists() && restore_tombstone(tomb, chunk).is_ok() && chunk.exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let hex = "ab".repeat(32);
        assert!(kind(&hex) == Kind::Chunk);
        assert!(kind(&format!("{hex}.3.bad")) == Kind::Bad);
        assert!(kind(&format!("{hex}.gc-removing")) == Kind::Tombstone);
        assert!(kind(&format!("{hex}.tmp_1_2")) == Kind::Other);
        assert!(kind("README") == Kind::Other);
        assert!(kind(&format!("{hex}.10.bad")) == Kind::Other);
        assert!(kind(&hex.to_uppercase()) == Kind::Other);
        // A multi-byte character across byte 64 must not panic.
        assert!(kind(&format!("{}é-tail", "a".repeat(63))) == Kind::Other);
    }
}

#[cfg(test)]
mod removal_tests {
    use super::*;
    use nix::sys::stat::{utimensat, UtimensatFlags};
    use nix::sys::time::TimeSpec;

    fn set_atime(path: &Path, secs: i64) {
        utimensat(
            nix::fcntl::AT_FDCWD,
            path,
            &TimeSpec::new(secs, 0),
            &TimeSpec::UTIME_OMIT,
            UtimensatFlags::NoFollowSymlink,
        )
        .unwrap();
    }

    #[test]
    fn only_still_old_chunks_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("a".repeat(64));
        let recent = dir.path().join("b".repeat(64));
        fs::write(&old, b"x").unwrap();
        fs::write(&recent, b"y").unwrap();
        set_atime(&old, 1_000);
        set_atime(&recent, 3_000);
        let min_atime = 2_000 * 1_000_000_000;
        assert!(remove_if_still_old(&old, min_atime).unwrap());
        assert!(!old.exists());
        // Touched between the first look and the rename: it goes back under its name.
        assert!(!remove_if_still_old(&recent, min_atime).unwrap());
        assert!(recent.exists());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    fn liveness(started: i128) -> Liveness {
        let live = crate::writers::LiveWriters {
            oldest: None,
            pids: std::collections::HashSet::from([7]),
        };
        Liveness::new(&live, started)
    }

    #[test]
    fn only_temporary_chunk_files_of_gone_writers_go() {
        let dir = tempfile::tempdir().unwrap();
        let hex = "d".repeat(64);
        let gone = 0x7fff_fff0u32;
        let dead = dir.path().join(format!("{hex}.tmp_{gone}_0"));
        let registered = dir.path().join(format!("{hex}.tmp_7_0"));
        let mine = dir
            .path()
            .join(format!("{hex}.tmp_{}_0", std::process::id()));
        let newer = dir.path().join(format!("{hex}.tmp_{gone}_1"));
        let foreign = dir.path().join("notes.tmp_x");
        for p in [&dead, &registered, &mine, &newer, &foreign] {
            fs::write(p, b"t").unwrap();
        }
        let now = 10_000 * 1_000_000_000i128;
        for p in [&dead, &registered, &mine] {
            let a_minute_ago = TimeSpec::new(10_000 - 60, 0);
            utimensat(
                nix::fcntl::AT_FDCWD,
                p,
                &a_minute_ago,
                &a_minute_ago,
                UtimensatFlags::NoFollowSymlink,
            )
            .unwrap();
        }
        utimensat(
            nix::fcntl::AT_FDCWD,
            &newer,
            &TimeSpec::new(10_000, 0),
            &TimeSpec::new(10_000, 0),
            UtimensatFlags::NoFollowSymlink,
        )
        .unwrap();
        let cutoff = Cutoff {
            min_atime: now,
            oldest_writer: now,
            dry_run: false,
            liveness: liveness(now),
        };
        let mut counts = SweepCounts::default();
        sweep_dir(dir.path(), &cutoff, &mut counts).unwrap();
        assert!(!dead.exists(), "the file of a writer that is gone goes");
        assert!(registered.exists(), "a registered writer's stays");
        assert!(mine.exists(), "a running process's stays");
        assert!(
            newer.exists(),
            "one newer than the collection's start stays"
        );
        assert!(foreign.exists());
        assert_eq!((counts.removed_temp, counts.foreign), (1, 1));
    }

    #[test]
    fn interrupted_removal_is_undone() {
        let dir = tempfile::tempdir().unwrap();
        let chunk = dir.path().join("c".repeat(64));
        let tomb = dir.path().join(format!("{}.{TOMBSTONE}", "c".repeat(64)));
        fs::write(&tomb, b"z").unwrap();
        let cutoff = Cutoff {
            min_atime: 0,
            oldest_writer: 0,
            dry_run: false,
            liveness: liveness(0),
        };
        let mut counts = SweepCounts::default();
        sweep_dir(dir.path(), &cutoff, &mut counts).unwrap();
        assert!(chunk.exists() && !tomb.exists());
        assert_eq!(fs::read(&chunk).unwrap(), b"z");
    }
}
