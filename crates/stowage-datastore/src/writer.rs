//! Writing one snapshot: indexes and blobs first, the manifest last, atomically.

use std::collections::HashSet;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;

use stowage_format::blob::encode_uncompressed;
use stowage_format::manifest::MANIFEST_BLOB_NAME;
use stowage_format::{
    sha256, BlobEncoder, CryptMode, DynamicIndex, FileEntry, FixedIndex, IndexError, Manifest,
};
use stowage_types::{ArchiveKind, ArchiveName, BackupGroup, BackupTime, Digest, SnapshotRef};

use crate::lock::{GroupLock, StoreSharedLock};
use crate::writers::WriterRegistration;
use crate::{fsutil, Datastore, DatastoreError};

/// A snapshot being written. Until [`finish`](SnapshotWriter::finish) it is invisible; if the
/// writer is dropped unfinished (an error, a panic), its directory is removed again.
pub struct SnapshotWriter<'a> {
    store: &'a Datastore,
    snapshot: SnapshotRef,
    dir: PathBuf,
    manifest: Manifest,
    base: Option<SnapshotRef>,
    finished: bool,
    _group_lock: GroupLock,
    _store_lock: StoreSharedLock,
    _registration: WriterRegistration,
}

impl Datastore {
    /// Starts a backup of `group`. Takes the store's shared lock and the group's exclusive lock,
    /// so a second backup of the same group is refused while different groups run concurrently.
    /// Without `time`, the snapshot is named by the current time (waiting up to a second if the
    /// group's newest snapshot has the same second).
    pub fn begin_backup(
        &self,
        group: &BackupGroup,
        time: Option<BackupTime>,
        owner: &str,
    ) -> Result<SnapshotWriter<'_>, DatastoreError> {
        let store_lock = StoreSharedLock::acquire(&self.lock_file())?;
        let registration = WriterRegistration::register(self.base())?;
        let group_dir = self.group_dir(group);
        let type_dir = self.ns_dir().join(group.ty.as_str());
        fs::create_dir_all(&type_dir).map_err(DatastoreError::write(&type_dir))?;
        match fs::create_dir(&group_dir) {
            Ok(()) => write_owner(&group_dir, owner)?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(DatastoreError::write(&group_dir)(e)),
        }
        let group_lock = GroupLock::acquire(&group_dir, &group.to_string())?;

        let existing = self.snapshots(group)?;
        let newest = existing.iter().map(|s| s.snapshot.time).max();
        let newest_finished = existing
            .iter()
            .filter(|s| s.finished)
            .map(|s| s.snapshot.time)
            .max();
        let time = match time {
            Some(t) => {
                if newest_finished.is_some_and(|n| n >= t) {
                    return Err(DatastoreError::SnapshotExists(format!(
                        "{group}/{t} (or a newer one; a new snapshot must be the newest of its group)"
                    )));
                }
                t
            }
            None => next_time(newest),
        };
        let snapshot = SnapshotRef::new(group.clone(), time);
        let dir = self.snapshot_dir(&snapshot);
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(DatastoreError::SnapshotExists(format!(
                    "{snapshot} (an unfinished leftover of an interrupted backup; remove it with 'stowage forget {snapshot}')"
                )))
            }
            Err(e) => return Err(DatastoreError::write(&dir)(e)),
        }
        let base = self.incremental_base(&existing);
        Ok(SnapshotWriter {
            store: self,
            manifest: Manifest::new(&snapshot),
            snapshot,
            dir,
            base,
            finished: false,
            _group_lock: group_lock,
            _store_lock: store_lock,
            _registration: registration,
        })
    }

    /// The newest finished snapshot, unless its verification failed (or its manifest cannot be
    /// read): then, as in PBS, there is no base and the backup is a full one.
    fn incremental_base(&self, existing: &[crate::SnapshotInfo]) -> Option<SnapshotRef> {
        existing.iter().rev().find(|s| s.finished).and_then(|s| {
            let manifest = self.load_manifest(&s.snapshot).ok()?;
            let failed = manifest
                .unprotected
                .get("verify_state")
                .and_then(|v| v.get("state"))
                .and_then(|v| v.as_str())
                == Some("failed");
            (!failed).then(|| s.snapshot.clone())
        })
    }
}

fn write_owner(group_dir: &std::path::Path, owner: &str) -> Result<(), DatastoreError> {
    let path = group_dir.join("owner");
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .and_then(|mut f| f.write_all(format!("{owner}\n").as_bytes()))
        .map_err(DatastoreError::write(&path))
}

/// Now, or one second past the newest snapshot if that is not in the past yet.
fn next_time(newest: Option<BackupTime>) -> BackupTime {
    loop {
        let now = BackupTime::now();
        match newest {
            Some(n) if n >= now => {
                let wait = (n.epoch() - now.epoch()).clamp(0, 1) as u64;
                std::thread::sleep(std::time::Duration::from_millis(200 + wait * 800));
            }
            _ => return now,
        }
    }
}

impl SnapshotWriter<'_> {
    pub fn snapshot(&self) -> &SnapshotRef {
        &self.snapshot
    }

    /// The snapshot this backup is incremental against, if any.
    pub fn base(&self) -> Option<&SnapshotRef> {
        self.base.as_ref()
    }

    /// Digests that the base snapshot's indexes reference and whose chunk file exists: the store
    /// holds them already. A chunk that verify found bad was renamed away; leaving it out here
    /// makes this backup write it again.
    pub fn known_chunks(&self) -> HashSet<Digest> {
        let mut known = HashSet::new();
        let Some(base) = &self.base else {
            return known;
        };
        let Ok(manifest) = self.store.load_manifest(base) else {
            return known;
        };
        for file in &manifest.files {
            let Ok(name) = ArchiveName::parse(&file.filename) else {
                continue;
            };
            match name.kind() {
                ArchiveKind::Image => {
                    if let Ok(index) = self.store.read_fixed_index(base, &manifest, &name) {
                        known.extend(index.digests);
                    }
                }
                ArchiveKind::Pxar => {
                    if let Ok(index) = self.store.read_dynamic_index(base, &manifest, &name) {
                        known.extend(index.entries.into_iter().map(|(_, d)| d));
                    }
                }
                ArchiveKind::Blob => {}
            }
        }
        self.existing_chunks(known)
    }

    /// The digests of `known` whose chunk file exists: one `stat` each, on several threads.
    fn existing_chunks(&self, known: HashSet<Digest>) -> HashSet<Digest> {
        let digests: Vec<Digest> = known.into_iter().collect();
        let store = self.store.chunk_store();
        let threads = stowage_core::default_threads().clamp(1, 8);
        let per_thread = digests.len().div_ceil(threads).max(1024);
        std::thread::scope(|s| {
            let parts: Vec<_> = digests
                .chunks(per_thread)
                .map(|part| {
                    s.spawn(move || {
                        part.iter()
                            .filter(|d| store.chunk_exists(d))
                            .copied()
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            parts
                .into_iter()
                .flat_map(|p| p.join().unwrap_or_default())
                .collect()
        })
    }

    fn check_new_name(&self, name: &ArchiveName) -> Result<String, DatastoreError> {
        let stored = name.stored_name();
        if self.manifest.file(&stored).is_some() {
            return Err(DatastoreError::SnapshotExists(format!(
                "{} already holds an archive named {}",
                self.snapshot, name
            )));
        }
        Ok(stored)
    }

    /// Writes a fixed index (`<name>.tmp_fidx`, then renamed) and records it in the manifest.
    pub fn add_fixed_index(
        &mut self,
        name: &ArchiveName,
        index: &FixedIndex,
    ) -> Result<(), DatastoreError> {
        let bytes = index.encode();
        self.add_index(name, bytes, index.csum(), index.size)
    }

    /// Writes a dynamic index (`<name>.tmp_didx`, then renamed) and records it in the manifest.
    pub fn add_dynamic_index(
        &mut self,
        name: &ArchiveName,
        index: &DynamicIndex,
    ) -> Result<(), DatastoreError> {
        let bytes = index.encode();
        self.add_index(name, bytes, index.csum(), index.size())
    }

    fn add_index(
        &mut self,
        name: &ArchiveName,
        bytes: Result<Vec<u8>, IndexError>,
        csum: Digest,
        size: u64,
    ) -> Result<(), DatastoreError> {
        let stored = self.check_new_name(name)?;
        let bytes = bytes.map_err(|source| DatastoreError::Index {
            what: format!("index {stored}"),
            source,
        })?;
        let path = self.dir.join(&stored);
        // `.img.fidx` is written as `.img.tmp_fidx`, `.pxar.didx` as `.pxar.tmp_didx`.
        let (stem, ext) = stored.rsplit_once('.').unwrap_or((&stored, "idx"));
        let tmp = self.dir.join(format!("{stem}.tmp_{ext}"));
        let write = || -> io::Result<()> {
            let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, &path)
        };
        if let Err(e) = write() {
            let _ = fs::remove_file(&tmp);
            return Err(DatastoreError::write(&path)(e));
        }
        self.manifest.files.push(FileEntry {
            crypt_mode: CryptMode::None,
            csum,
            filename: stored,
            size,
        });
        Ok(())
    }

    /// Stores a small file (a VM config, a log) as a compressed `.blob`.
    pub fn add_blob(&mut self, name: &ArchiveName, data: &[u8]) -> Result<(), DatastoreError> {
        let stored = self.check_new_name(name)?;
        let path = self.dir.join(&stored);
        let encoded = BlobEncoder::new()
            .and_then(|mut e| e.encode(data))
            .map_err(|source| DatastoreError::Blob {
                what: format!("blob {stored}"),
                source,
            })?;
        fsutil::atomic_write(&path, &encoded).map_err(DatastoreError::write(&path))?;
        self.manifest.files.push(FileEntry {
            crypt_mode: CryptMode::None,
            csum: sha256(&encoded),
            filename: stored,
            size: encoded.len() as u64,
        });
        Ok(())
    }

    /// Makes every chunk durable, then writes the manifest atomically: from this moment the
    /// snapshot exists.
    pub fn finish(
        mut self,
        unprotected: serde_json::Map<String, serde_json::Value>,
    ) -> Result<SnapshotRef, DatastoreError> {
        let base = self.store.base();
        fsutil::sync_filesystem(base).map_err(DatastoreError::write(base))?;
        self.manifest.unprotected = unprotected;
        let encoded = BlobEncoder::new()
            .and_then(|mut e| e.encode(&self.manifest.to_json()))
            .unwrap_or_else(|_| encode_uncompressed(&self.manifest.to_json()));
        let path = self.dir.join(MANIFEST_BLOB_NAME);
        fsutil::atomic_write(&path, &encoded).map_err(DatastoreError::write(&path))?;
        let group_dir = self.store.group_dir(&self.snapshot.group);
        fsutil::fsync_dir(&group_dir).map_err(DatastoreError::write(&group_dir))?;
        self.finished = true;
        Ok(self.snapshot.clone())
    }
}

impl Drop for SnapshotWriter<'_> {
    fn drop(&mut self) {
        if !self.finished {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}
