//! A repository in memory: the reference implementation of the session seams, for tests of
//! everything built on them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use stowage_format::manifest::MANIFEST_BLOB_NAME;
use stowage_format::{sha256, BlobEncoder, CryptMode, FileEntry, Manifest};
use stowage_types::{ArchiveKind, ArchiveName, BackupGroup, BackupTime, Digest, SnapshotRef};

use super::build::{BuiltIndex, ChunkRegistry, FileBook, IndexBuilder};
use super::{
    BackupTarget, IndexClose, IndexKind, IndexWriter, Repository, SessionError, SnapshotReader,
};
use crate::{ChunkSink, ChunkSource, StoreError};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A finished snapshot: its manifest and its files (the manifest blob among them).
struct Stored {
    manifest: Manifest,
    files: HashMap<String, Vec<u8>>,
}

/// Chunks and snapshots in maps; nothing survives the value.
#[derive(Default)]
pub struct MemoryRepository {
    chunks: Mutex<HashMap<Digest, Vec<u8>>>,
    snapshots: Mutex<BTreeMap<SnapshotRef, Arc<Stored>>>,
    running: Mutex<HashSet<BackupGroup>>,
}

impl MemoryRepository {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many chunks it holds.
    pub fn chunk_count(&self) -> usize {
        lock(&self.chunks).len()
    }

    fn base_of(&self, group: &BackupGroup) -> Option<SnapshotRef> {
        let snapshots = lock(&self.snapshots);
        let (snapshot, stored) = snapshots.iter().rev().find(|(s, _)| s.group == *group)?;
        let state = stored.manifest.unprotected.get("verify_state");
        let failed = state.and_then(|v| v.get("state")).and_then(|v| v.as_str()) == Some("failed");
        (!failed).then(|| snapshot.clone())
    }
}

impl ChunkSource for MemoryRepository {
    fn read_chunk(&self, digest: &Digest, out: &mut Vec<u8>) -> Result<(), StoreError> {
        let chunks = lock(&self.chunks);
        let chunk = chunks.get(digest).ok_or_else(|| StoreError::Missing {
            digest: *digest,
            path: PathBuf::from("memory"),
        })?;
        out.clear();
        out.extend_from_slice(chunk);
        Ok(())
    }
}

impl Repository for MemoryRepository {
    fn begin_backup(
        &self,
        group: &BackupGroup,
        time: Option<BackupTime>,
    ) -> Result<Box<dyn BackupTarget + '_>, SessionError> {
        let newest = self.finished_snapshots(group)?.pop().map(|s| s.time);
        let time = time.unwrap_or_else(|| {
            let now = BackupTime::now();
            match newest {
                Some(n) if n >= now => BackupTime::from_epoch(n.epoch() + 1).unwrap_or(now),
                _ => now,
            }
        });
        if newest.is_some_and(|n| n >= time) {
            return Err(SessionError::refused(
                format!("backup of {group}"),
                format!("{time} is not newer than the group's newest snapshot"),
            ));
        }
        if !lock(&self.running).insert(group.clone()) {
            return Err(SessionError::refused(
                format!("backup of {group}"),
                "another backup of the group is running",
            ));
        }
        let snapshot = SnapshotRef::new(group.clone(), time);
        Ok(Box::new(MemoryBackup {
            repo: self,
            manifest_start: Manifest::new(&snapshot),
            base: self.base_of(group),
            snapshot,
            registry: ChunkRegistry::default(),
            state: Mutex::default(),
        }))
    }

    fn open_snapshot(
        &self,
        snapshot: &SnapshotRef,
    ) -> Result<Box<dyn SnapshotReader + '_>, SessionError> {
        let stored = lock(&self.snapshots).get(snapshot).cloned();
        let stored = stored.ok_or_else(|| SessionError::NotFound {
            what: format!("snapshot {snapshot}"),
            hint: String::new(),
        })?;
        Ok(Box::new(MemoryReader {
            repo: self,
            snapshot: snapshot.clone(),
            stored,
        }))
    }

    fn finished_snapshots(&self, group: &BackupGroup) -> Result<Vec<SnapshotRef>, SessionError> {
        let snapshots = lock(&self.snapshots);
        Ok(snapshots
            .keys()
            .filter(|s| s.group == *group)
            .cloned()
            .collect())
    }
}

#[derive(Default)]
struct Pending {
    book: FileBook,
    files: Vec<(FileEntry, Vec<u8>)>,
}

struct MemoryBackup<'a> {
    repo: &'a MemoryRepository,
    snapshot: SnapshotRef,
    manifest_start: Manifest,
    base: Option<SnapshotRef>,
    registry: ChunkRegistry,
    state: Mutex<Pending>,
}

impl MemoryBackup<'_> {
    fn add_file(&self, filename: String, bytes: Vec<u8>, csum: Digest, size: u64) {
        let entry = FileEntry {
            crypt_mode: CryptMode::None,
            csum,
            filename,
            size,
        };
        lock(&self.state).files.push((entry, bytes));
    }
}

impl Drop for MemoryBackup<'_> {
    fn drop(&mut self) {
        lock(&self.repo.running).remove(&self.snapshot.group);
    }
}

impl BackupTarget for MemoryBackup<'_> {
    fn snapshot(&self) -> &SnapshotRef {
        &self.snapshot
    }

    fn base(&self) -> Option<&SnapshotRef> {
        self.base.as_ref()
    }

    fn known_chunks(&self) -> Result<HashSet<Digest>, SessionError> {
        let mut known = HashSet::new();
        let Some(base) = &self.base else {
            return Ok(known);
        };
        let reader = self.repo.open_snapshot(base)?;
        for entry in &reader.manifest().files {
            let Ok(name) = ArchiveName::parse(&entry.filename) else {
                continue;
            };
            match name.kind() {
                ArchiveKind::Image => known.extend(reader.fixed_index(&name)?.digests),
                ArchiveKind::Pxar => known.extend(
                    reader
                        .dynamic_index(&name)?
                        .entries
                        .into_iter()
                        .map(|e| e.1),
                ),
                ArchiveKind::Blob => {}
            }
        }
        self.registry.register_all(known.iter().copied());
        Ok(known)
    }

    fn create_index(
        &self,
        name: &ArchiveName,
        kind: IndexKind,
    ) -> Result<Box<dyn IndexWriter + '_>, SessionError> {
        let builder = IndexBuilder::new(name, kind)?;
        let mut pending = lock(&self.state);
        pending
            .book
            .claim(&self.snapshot, &name.stored_name(), true)?;
        Ok(Box::new(MemoryIndexWriter {
            backup: self,
            name: name.clone(),
            builder: Mutex::new(Some(builder)),
        }))
    }

    fn add_blob(&self, name: &ArchiveName, data: &[u8]) -> Result<(), SessionError> {
        let stored = name.stored_name();
        lock(&self.state)
            .book
            .claim(&self.snapshot, &stored, false)?;
        let encoded = BlobEncoder::new()
            .and_then(|mut e| e.encode(data))
            .map_err(|e| SessionError::refused(format!("blob {name}"), e.to_string()))?;
        let (csum, size) = (sha256(&encoded), encoded.len() as u64);
        self.add_file(stored, encoded, csum, size);
        Ok(())
    }

    fn finish(
        self: Box<Self>,
        unprotected: serde_json::Map<String, serde_json::Value>,
    ) -> Result<SnapshotRef, SessionError> {
        let pending = std::mem::take(&mut *lock(&self.state));
        let what = || format!("snapshot {}", self.snapshot);
        pending.book.ready(&self.snapshot)?;
        let mut manifest = self.manifest_start.clone();
        manifest.unprotected = unprotected;
        let mut files = HashMap::new();
        for (entry, bytes) in pending.files {
            files.insert(entry.filename.clone(), bytes);
            manifest.files.push(entry);
        }
        let blob = BlobEncoder::new()
            .and_then(|mut e| e.encode(&manifest.to_json()))
            .map_err(|e| SessionError::refused(what(), e.to_string()))?;
        files.insert(MANIFEST_BLOB_NAME.to_string(), blob);
        let stored = Arc::new(Stored { manifest, files });
        lock(&self.repo.snapshots).insert(self.snapshot.clone(), stored);
        Ok(self.snapshot.clone())
    }
}

struct MemoryIndexWriter<'a> {
    backup: &'a MemoryBackup<'a>,
    name: ArchiveName,
    /// `None` once closed.
    builder: Mutex<Option<IndexBuilder>>,
}

impl ChunkSink for MemoryIndexWriter<'_> {
    fn touch_chunk(&self, digest: &Digest) -> Result<bool, StoreError> {
        let present = lock(&self.backup.repo.chunks).contains_key(digest);
        if present {
            self.backup.registry.register(*digest);
        }
        Ok(present)
    }

    fn insert_chunk(&self, digest: &Digest, encoded: &[u8]) -> Result<(), StoreError> {
        lock(&self.backup.repo.chunks)
            .entry(*digest)
            .or_insert_with(|| encoded.to_vec());
        self.backup.registry.register(*digest);
        Ok(())
    }
}

impl IndexWriter for MemoryIndexWriter<'_> {
    fn name(&self) -> &ArchiveName {
        &self.name
    }

    fn append(&self, chunks: &[super::IndexChunk]) -> Result<(), SessionError> {
        let mut builder = lock(&self.builder);
        let builder = builder.as_mut().ok_or_else(|| {
            SessionError::refused(format!("index {}", self.name), "already closed")
        })?;
        builder.append(chunks, &self.backup.registry)
    }

    fn close(self: Box<Self>, expected: IndexClose) -> Result<(), SessionError> {
        let builder = lock(&self.builder).take();
        let builder = builder
            .ok_or_else(|| SessionError::refused(format!("index {}", self.name), "closed twice"))?;
        let stored = builder.name().stored_name();
        let built = builder.close(expected);
        lock(&self.backup.state)
            .book
            .index_done(stored.clone(), built.is_ok());
        let built = built?;
        let (bytes, csum, size) = match built {
            BuiltIndex::Fixed(index) => (index.encode(), index.csum(), index.size),
            BuiltIndex::Dynamic(index) => (index.encode(), index.csum(), index.size()),
        };
        let bytes =
            bytes.map_err(|e| SessionError::refused(format!("index {stored}"), e.to_string()))?;
        self.backup.add_file(stored, bytes, csum, size);
        Ok(())
    }
}

impl Drop for MemoryIndexWriter<'_> {
    fn drop(&mut self) {
        if let Some(builder) = lock(&self.builder).take() {
            let stored = builder.name().stored_name();
            lock(&self.backup.state).book.index_done(stored, false);
        }
    }
}

struct MemoryReader<'a> {
    repo: &'a MemoryRepository,
    snapshot: SnapshotRef,
    stored: Arc<Stored>,
}

impl SnapshotReader for MemoryReader<'_> {
    fn snapshot(&self) -> &SnapshotRef {
        &self.snapshot
    }

    fn manifest(&self) -> &Manifest {
        &self.stored.manifest
    }

    fn download(&self, file_name: &str) -> Result<Vec<u8>, SessionError> {
        self.stored
            .files
            .get(file_name)
            .cloned()
            .ok_or_else(|| SessionError::NotFound {
                what: format!("{file_name} of snapshot {}", self.snapshot),
                hint: String::new(),
            })
    }

    fn chunks(&self) -> &dyn ChunkSource {
        self.repo
    }
}
