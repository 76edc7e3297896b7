//! Local sync: copy the snapshots a target datastore lacks from a source datastore, copying only
//! the chunks the target does not hold, each decoded and hashed before it is stored.
//!
//! A snapshot appears in the target only once all its chunks, indexes and blobs are in place:
//! its manifest is written last. An interrupted sync leaves chunks (kept) and at most one
//! unfinished snapshot directory (redone by the next run).

use std::collections::HashSet;
use std::fs;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use stowage_core::{for_each_chunk, ChunkFault, ChunkLayout, ChunkSink};
use stowage_format::manifest::MANIFEST_BLOB_NAME;
use stowage_format::{DynamicIndex, FixedIndex};
use stowage_types::{ArchiveKind, ArchiveName, BackupGroup, BackupNamespace, Digest, SnapshotRef};

use crate::lock::{GroupLock, StoreSharedLock};
use crate::writers::WriterRegistration;
use crate::{fsutil, Datastore, DatastoreError};

/// What copying one snapshot took.
#[derive(Debug, Clone, Default)]
pub struct SnapshotCopy {
    pub chunks_copied: u64,
    pub bytes_copied: u64,
    pub chunks_present: u64,
}

/// One snapshot's outcome in a sync run.
#[derive(Debug)]
pub enum SyncOutcome {
    Copied(SnapshotCopy),
    /// The target has it already.
    Present,
    Failed(DatastoreError),
}

/// Live counters of a running sync, for a progress display.
#[derive(Debug, Default)]
pub struct SyncProgress {
    pub snapshots_total: AtomicU64,
    /// Snapshots copied, found present, or failed.
    pub snapshots_done: AtomicU64,
    /// Encoded bytes of the chunks copied.
    pub bytes_copied: AtomicU64,
}

#[derive(Debug)]
pub struct SyncItem {
    pub ns: BackupNamespace,
    pub snapshot: SnapshotRef,
    pub outcome: SyncOutcome,
}

impl Datastore {
    /// Copies every finished snapshot of namespace `ns` (and the namespaces below it) that this
    /// datastore lacks from `source`, oldest first per group; `group` limits it to one group.
    /// Missing namespaces are created. A snapshot that cannot be read from `source` (a corrupt
    /// or missing chunk) fails alone and the sync goes on; a write that fails on this datastore
    /// (a full disk, an I/O error) ends the sync at once with that error, since every further
    /// snapshot would fail the same way.
    pub fn sync_from(
        &self,
        source: &Datastore,
        ns: &BackupNamespace,
        group: Option<&BackupGroup>,
        threads: usize,
        progress: &SyncProgress,
        mut on_item: impl FnMut(&SyncItem),
    ) -> Result<Vec<SyncItem>, DatastoreError> {
        // Listed first, so the progress knows how many there are.
        let mut plan = Vec::new();
        for child in source.list_namespaces(ns, None)? {
            let src = source.in_namespace(&child)?;
            let groups = match group {
                Some(g) => vec![g.clone()],
                None => src.groups()?,
            };
            for g in groups {
                for snapshot in src.finished_snapshots(&g)? {
                    plan.push((child.clone(), snapshot));
                }
            }
        }
        progress
            .snapshots_total
            .store(plan.len() as u64, Ordering::Relaxed);
        let mut items = Vec::new();
        for (child, snapshot) in plan {
            let src = source.in_namespace(&child)?;
            if !child.is_root() && self.in_namespace(&child).is_err() {
                self.create_namespace_path(&child)?;
            }
            let dst = self.in_namespace(&child)?;
            let outcome = match dst.pull_snapshot(&src, &snapshot, threads, progress) {
                Ok(Some(copy)) => SyncOutcome::Copied(copy),
                Ok(None) => SyncOutcome::Present,
                Err(e) if is_target_write(&e) => return Err(e),
                Err(e) => SyncOutcome::Failed(e),
            };
            progress.snapshots_done.fetch_add(1, Ordering::Relaxed);
            let item = SyncItem {
                ns: child,
                snapshot,
                outcome,
            };
            on_item(&item);
            items.push(item);
        }
        Ok(items)
    }

    /// Creates `ns` and any missing parents.
    fn create_namespace_path(&self, ns: &BackupNamespace) -> Result<(), DatastoreError> {
        let mut path = BackupNamespace::root();
        for c in ns.components() {
            path = path.child(c)?;
            match self.create_namespace(&path) {
                Ok(()) | Err(DatastoreError::NamespaceExists(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Copies one finished snapshot of `source` (same namespace view) into this datastore;
    /// `None` if it is here already.
    pub fn pull_snapshot(
        &self,
        source: &Datastore,
        snapshot: &SnapshotRef,
        threads: usize,
        progress: &SyncProgress,
    ) -> Result<Option<SnapshotCopy>, DatastoreError> {
        let dir = self.snapshot_dir(snapshot);
        if dir.join(MANIFEST_BLOB_NAME).is_file() {
            return Ok(None);
        }
        let _store_lock = StoreSharedLock::acquire(&self.lock_file())?;
        let _registration = WriterRegistration::register(self.base())?;
        let group_dir = self.group_dir(&snapshot.group);
        if !group_dir.is_dir() {
            let type_dir = self.ns_dir().join(snapshot.group.ty.as_str());
            fs::create_dir_all(&type_dir).map_err(DatastoreError::write(&type_dir))?;
            match fs::create_dir(&group_dir) {
                Ok(()) => copy_owner(source, self, &snapshot.group)?,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(DatastoreError::write(&group_dir)(e)),
            }
        }
        let _group_lock = GroupLock::acquire(&group_dir, &snapshot.group.to_string())?;
        if dir.join(MANIFEST_BLOB_NAME).is_file() {
            return Ok(None);
        }
        if dir.exists() {
            // Left by an interrupted sync (or a crashed backup): no one writes it, we hold the lock.
            fs::remove_dir_all(&dir).map_err(DatastoreError::write(&dir))?;
        }
        fs::create_dir(&dir).map_err(DatastoreError::write(&dir))?;
        let result = self.copy_snapshot_files(source, snapshot, threads, progress);
        if result.is_err() {
            let _ = fs::remove_dir_all(&dir);
        }
        result.map(Some)
    }

    fn copy_snapshot_files(
        &self,
        source: &Datastore,
        snapshot: &SnapshotRef,
        threads: usize,
        progress: &SyncProgress,
    ) -> Result<SnapshotCopy, DatastoreError> {
        // Each file is read once: checked against the manifest, and those bytes copied.
        let (manifest, manifest_raw) = source.load_manifest_raw(snapshot)?;
        let dir = self.snapshot_dir(snapshot);
        let mut copy = SnapshotCopy::default();
        for file in &manifest.files {
            let name = ArchiveName::parse(&file.filename)?;
            let raw = match name.kind() {
                ArchiveKind::Image => {
                    let (index, raw) = source.read_index_raw(
                        snapshot,
                        &manifest,
                        &name,
                        FixedIndex::decode,
                        |i| (i.csum(), i.size),
                    )?;
                    self.copy_chunks(source, &index, threads, progress, &mut copy)?;
                    raw
                }
                ArchiveKind::Pxar => {
                    let (index, raw) = source.read_index_raw(
                        snapshot,
                        &manifest,
                        &name,
                        DynamicIndex::decode,
                        |i| (i.csum(), i.size()),
                    )?;
                    self.copy_chunks(source, &index, threads, progress, &mut copy)?;
                    raw
                }
                ArchiveKind::Blob => source.read_blob_raw(snapshot, &manifest, &name)?.1,
            };
            let to = dir.join(&file.filename);
            fsutil::atomic_write(&to, &raw).map_err(DatastoreError::write(&to))?;
        }
        fsutil::sync_filesystem(self.base()).map_err(DatastoreError::write(self.base()))?;
        let to = dir.join(MANIFEST_BLOB_NAME);
        fsutil::atomic_write(&to, &manifest_raw).map_err(DatastoreError::write(&to))?;
        Ok(copy)
    }

    /// Copies the chunks of `index` this store lacks, `threads` at a time, each verified first.
    /// Chunks already here are touched, so a collection running meanwhile keeps them.
    fn copy_chunks(
        &self,
        source: &Datastore,
        index: &dyn ChunkLayout,
        threads: usize,
        progress: &SyncProgress,
        copy: &mut SnapshotCopy,
    ) -> Result<(), DatastoreError> {
        let mut seen = HashSet::new();
        let wanted: Vec<(Digest, usize)> = (0..index.chunk_count())
            .map(|i| index.chunk(i))
            .filter(|(_, _, d)| seen.insert(**d))
            .map(|(_, len, d)| (*d, len))
            .collect();
        let (copied, bytes, present) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
        let from = source.chunk_store();
        let to = self.chunk_store();
        for_each_chunk(from, &wanted, threads, |reader, digest, len| {
            if to.touch_chunk(digest)? {
                present.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            let encoded = reader.read(digest, len).map_err(|e| match e {
                ChunkFault::Store(e) => DatastoreError::Store(e),
                ChunkFault::Bad(e) => DatastoreError::Mismatch {
                    what: format!("chunk {} of the source", from.chunk_path(digest).display()),
                    detail: e.to_string(),
                },
            })?;
            to.insert_chunk(digest, encoded)?;
            copied.fetch_add(1, Ordering::Relaxed);
            bytes.fetch_add(encoded.len() as u64, Ordering::Relaxed);
            progress
                .bytes_copied
                .fetch_add(encoded.len() as u64, Ordering::Relaxed);
            Ok::<_, DatastoreError>(())
        })?;
        copy.chunks_copied += copied.into_inner();
        copy.bytes_copied += bytes.into_inner();
        copy.chunks_present += present.into_inner();
        Ok(())
    }
}

fn copy_owner(
    source: &Datastore,
    target: &Datastore,
    group: &BackupGroup,
) -> Result<(), DatastoreError> {
    let from = source.group_dir(group).join("owner");
    let owner = fs::read(&from).unwrap_or_else(|_| b"root@pam\n".to_vec());
    let to = target.group_dir(group).join("owner");
    fsutil::atomic_write(&to, &owner).map_err(DatastoreError::write(&to))
}

/// Whether a failed copy failed writing to the target (only the target is ever written).
fn is_target_write(err: &DatastoreError) -> bool {
    matches!(
        err.class(),
        stowage_types::ErrorClass::NoSpace | stowage_types::ErrorClass::IndexWrite
    )
}
