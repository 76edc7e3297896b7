//! Garbage collection, PBS's way: mark every chunk an index references by setting its atime,
//! then sweep the chunks whose atime is older than the cutoff. Safe next to running backups:
//! the cutoff never reaches past the start of the oldest running writer (see `writers.rs`), and
//! the sweep never deletes a chunk a backup has just been told exists (see `sweep.rs`).

mod leftovers;
mod mark;
mod sweep;

use std::fs::{File, OpenOptions};
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use stowage_types::Digest;

use crate::writers::live_writers;
use crate::{fsutil, Datastore, DatastoreError};

/// PBS's default: 24 h 5 min, because `relatime` may skip atime updates within 24 h.
pub const DEFAULT_GC_CUTOFF: Duration = Duration::from_secs(24 * 3600 + 5 * 60);
/// Digests remembered as already marked in one run (about 70 bytes each).
pub const DEFAULT_GC_CACHE: usize = 4 << 20;
const GC_LOCK: &str = ".gc.lck";
const GC_STATUS: &str = ".gc-status";

#[derive(Debug, Clone)]
pub struct GcOptions {
    /// How long a chunk must have gone untouched before it is removed.
    pub cutoff: Duration,
    pub threads: usize,
    /// Mark and count, but remove nothing.
    pub dry_run: bool,
    /// How many digests to remember as marked (0: touch every reference).
    pub cache_capacity: usize,
    /// The task id recorded in `.gc-status`.
    pub upid: String,
    /// Live counters for a progress display.
    pub progress: std::sync::Arc<GcProgress>,
}

/// Where a running collection is: its phase, index files marked, chunk directories swept.
#[derive(Debug, Default)]
pub struct GcProgress {
    /// 0 cleaning up after dead writers, 1 marking, 2 sweeping.
    pub phase: AtomicU8,
    pub indexes_marked: AtomicU64,
    /// Of [`CHUNK_DIRECTORIES`].
    pub dirs_swept: AtomicU64,
}

/// The number of chunk directories (`.chunks/0000` to `.chunks/ffff`).
pub const CHUNK_DIRECTORIES: u64 = 0x10000;

impl GcProgress {
    pub const CLEANUP: u8 = 0;
    pub const MARK: u8 = 1;
    pub const SWEEP: u8 = 2;
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
}

/// The result, stored in `<base>/.gc-status` with PBS's field names.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct GcStatus {
    pub upid: String,
    pub index_file_count: u64,
    pub index_data_bytes: u64,
    pub disk_bytes: u64,
    pub disk_chunks: u64,
    pub removed_bytes: u64,
    pub removed_chunks: u64,
    pub pending_bytes: u64,
    pub pending_chunks: u64,
    pub removed_bad: u64,
    pub still_bad: u64,
    pub cache_stats: CacheStats,
}

impl GcStatus {
    /// Plain data referenced per byte stored (PBS: index data over disk bytes).
    pub fn deduplication_factor(&self) -> f64 {
        if self.disk_bytes == 0 {
            1.0
        } else {
            self.index_data_bytes as f64 / self.disk_bytes as f64
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct GcReport {
    pub status: GcStatus,
    /// Chunks an index needs that the store lacks, with the index that needs them.
    pub missing: Vec<(Digest, std::path::PathBuf)>,
    /// Unreadable indexes or directories. While there are any, nothing was removed.
    pub errors: Vec<String>,
    /// Entries in chunk directories that are not chunks, left alone.
    pub foreign: u64,
    /// Temporary files of writers that died (chunks, atomic writes, registrations), removed.
    pub removed_temp: u64,
    /// Snapshot directories without a manifest whose backup is gone, removed once nothing in
    /// them changed for the cutoff.
    pub removed_unfinished: Vec<String>,
    /// Index files found outside the expected layout, marked all the same.
    pub warnings: Vec<String>,
    /// Removal was skipped because marking was incomplete.
    pub removal_skipped: bool,
    /// The sweep stopped at a failure (a full or failing disk): its class. What was removed
    /// until then is gone; the rest waits for the next collection.
    pub sweep_failed: Option<stowage_types::ErrorClass>,
    pub mark_time: Duration,
    pub sweep_time: Duration,
}

fn now_nanos() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

impl Datastore {
    /// Collects garbage in the whole datastore (every namespace). One collection at a time.
    pub fn garbage_collect(&self, options: &GcOptions) -> Result<GcReport, DatastoreError> {
        let _lock = self.gc_lock()?;
        // Phase 1 starts at the file system's own clock (atimes come from a coarse kernel clock
        // that may lag the system time by a tick).
        let phase1_start = check_atime_works(self.base())?.min(now_nanos());
        let live = live_writers(self.base())?;
        let oldest = live.oldest.map(|n| n as i128);
        let liveness = leftovers::Liveness::new(&live, phase1_start);
        // What killed processes left: gone before marking, so their chunks are not kept.
        let cleaned = leftovers::Cleanup {
            store: self,
            liveness: &liveness,
            unfinished_before: phase1_start - options.cutoff.as_nanos() as i128,
            dry_run: options.dry_run,
        }
        .run();
        let started = Instant::now();
        let progress = &options.progress;
        progress.phase.store(GcProgress::MARK, Ordering::Relaxed);
        let marked = mark::Marker::new(self, options.cache_capacity, &progress.indexes_marked)
            .run(options.threads);
        let mark_time = started.elapsed();

        let mut min_atime = phase1_start - options.cutoff.as_nanos() as i128;
        let oldest_writer = oldest.unwrap_or(phase1_start);
        if oldest_writer < min_atime {
            min_atime = oldest_writer - 300 * 1_000_000_000;
        }
        let removal_skipped = !marked.errors.is_empty();
        let cutoff = sweep::Cutoff {
            min_atime,
            oldest_writer,
            dry_run: options.dry_run || removal_skipped,
            liveness,
        };
        let started = Instant::now();
        progress.phase.store(GcProgress::SWEEP, Ordering::Relaxed);
        let (counts, sweep_failure) = sweep::sweep(
            self.chunk_store().dir(),
            &cutoff,
            options.threads,
            &progress.dirs_swept,
        );
        let sweep_time = started.elapsed();
        let mut status = GcStatus {
            upid: options.upid.clone(),
            index_file_count: marked.index_files,
            index_data_bytes: marked.index_data_bytes,
            disk_bytes: counts.disk_bytes,
            disk_chunks: counts.disk_chunks,
            removed_bytes: counts.removed_bytes,
            removed_chunks: counts.removed_chunks,
            pending_bytes: counts.pending_bytes,
            pending_chunks: counts.pending_chunks,
            removed_bad: counts.removed_bad,
            still_bad: counts.still_bad,
            cache_stats: CacheStats {
                hits: marked.cache_hits,
                misses: marked.cache_misses,
            },
        };
        if cutoff.dry_run {
            // Nothing was removed: what would have gone is still on disk.
            status.disk_bytes += status.removed_bytes;
            status.disk_chunks += status.removed_chunks;
        }
        let mut errors = marked.errors;
        errors.extend(cleaned.errors);
        let sweep_failed = sweep_failure.as_ref().map(DatastoreError::class);
        errors.extend(sweep_failure.map(|e| format!("sweep stopped: {e}")));
        if !options.dry_run && sweep_failed.is_none() {
            let json = serde_json::to_vec_pretty(&status).unwrap_or_default();
            let path = self.base().join(GC_STATUS);
            fsutil::atomic_write(&path, &json).map_err(DatastoreError::write(&path))?;
        }
        Ok(GcReport {
            status,
            missing: marked.missing,
            errors,
            foreign: counts.foreign,
            // A sweep that only counted (marking was incomplete) removed no temporary file.
            removed_temp: match cutoff.dry_run && !options.dry_run {
                true => cleaned.temp_files,
                false => counts.removed_temp + cleaned.temp_files,
            },
            removed_unfinished: cleaned.unfinished,
            warnings: marked.warnings,
            removal_skipped,
            sweep_failed,
            mark_time,
            sweep_time,
        })
    }

    /// The last collection's result, if one ran.
    pub fn gc_status(&self) -> Option<GcStatus> {
        let raw = std::fs::read(self.base().join(GC_STATUS)).ok()?;
        serde_json::from_slice(&raw).ok()
    }

    fn gc_lock(&self) -> Result<Flock<File>, DatastoreError> {
        let path = self.base().join(GC_LOCK);
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(DatastoreError::write(&path))?;
        Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|_| DatastoreError::Locked {
            what: format!("garbage collection of {}", self.base().display()),
            why: "another garbage collection is running; wait for it to finish".into(),
        })
    }
}

/// Marking relies on atimes: refuse to sweep on a file system that does not keep them. Returns
/// the atime (Unix nanoseconds) a touch sets now.
fn check_atime_works(base: &Path) -> Result<i128, DatastoreError> {
    use nix::sys::stat::{utimensat, UtimensatFlags};
    use nix::sys::time::TimeSpec;
    use std::os::unix::fs::MetadataExt;
    let probe = base.join(".gc-atime-probe");
    let result = (|| -> std::io::Result<Option<i128>> {
        std::fs::write(&probe, b"")?;
        let past = TimeSpec::new(1_000_000_000, 0);
        utimensat(
            nix::fcntl::AT_FDCWD,
            &probe,
            &past,
            &TimeSpec::UTIME_OMIT,
            UtimensatFlags::NoFollowSymlink,
        )?;
        let before = std::fs::metadata(&probe)?.atime();
        mark::touch(&probe)?;
        let after = std::fs::metadata(&probe)?;
        let now = after.atime() as i128 * 1_000_000_000 + after.atime_nsec() as i128;
        Ok((before == 1_000_000_000 && after.atime() > before).then_some(now))
    })();
    let _ = std::fs::remove_file(&probe);
    match result {
        Ok(Some(now)) => Ok(now),
        Ok(None) => Err(DatastoreError::Locked {
            what: format!("garbage collection of {}", base.display()),
            why: "the file system does not record access times, which marking needs".into(),
        }),
        Err(e) => Err(DatastoreError::write(&probe)(e)),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    use nix::sys::stat::{utimensat, UtimensatFlags};
    use nix::sys::time::TimeSpec;
    use stowage_core::ChunkSink;
    use stowage_format::blob::encode_uncompressed;
    use stowage_format::{sha256, FixedIndex};
    use stowage_types::{ArchiveName, BackupGroup, BackupTime};

    use super::*;

    fn index_of(digest: stowage_types::Digest) -> FixedIndex {
        FixedIndex {
            uuid: [1; 16],
            ctime: 0,
            size: 4,
            chunk_size: 4 << 20,
            digests: vec![digest],
        }
    }

    /// A backup that finishes while its group is being marked, re-using a chunk of the snapshot
    /// before it without touching it, and that earlier snapshot forgotten right after: the
    /// chunk must still be marked (the group is scanned again).
    #[test]
    fn a_backup_finishing_during_marking_keeps_its_reused_chunks() {
        let (_dir, ds) = crate::test_store();
        let group: BackupGroup = "vm/1".parse().unwrap();
        let name = ArchiveName::parse("drive-scsi0.img").unwrap();
        let data = b"data";
        let digest = sha256(data);
        ds.chunk_store()
            .insert_chunk(&digest, &encode_uncompressed(data))
            .unwrap();
        let chunk = ds.chunk_store().chunk_path(&digest);
        let old = TimeSpec::new(1_000_000_000, 0);
        utimensat(
            nix::fcntl::AT_FDCWD,
            &chunk,
            &old,
            &old,
            UtimensatFlags::NoFollowSymlink,
        )
        .unwrap();
        let first = {
            let mut w = ds
                .begin_backup(&group, Some(BackupTime::from_epoch(1000).unwrap()), "t")
                .unwrap();
            w.add_fixed_index(&name, &index_of(digest)).unwrap();
            w.finish(Default::default()).unwrap()
        };
        let fired = AtomicBool::new(false);
        let marked = AtomicU64::new(0);
        let mut marker = mark::Marker::new(&ds, 1000, &marked);
        marker.after_list = Some(Box::new(|_| {
            if fired.swap(true, Ordering::SeqCst) {
                return;
            }
            let mut w = ds
                .begin_backup(&group, Some(BackupTime::from_epoch(2000).unwrap()), "t")
                .unwrap();
            w.add_fixed_index(&name, &index_of(digest)).unwrap();
            w.finish(Default::default()).unwrap();
            ds.forget(&first).unwrap();
        }));
        let result = marker.run(1);
        assert!(result.errors.is_empty(), "{:?}", result.errors);
        assert!(fired.load(Ordering::SeqCst));
        let atime = std::fs::metadata(&chunk).unwrap().atime();
        assert!(atime > 1_000_000_000, "the re-used chunk was not marked");
        assert_eq!(result.index_files, 1, "each index counted once");
    }
}
