//! The local datastore behind the session seams of `stowage_core::session`: the same traits a
//! remote server's client implements, checked by the same conformance suite.

use std::collections::HashSet;
use std::sync::{Mutex, MutexGuard};

use stowage_core::session::{
    BackupTarget, BuiltIndex, ChunkRegistry, FileBook, IndexBuilder, IndexChunk, IndexClose,
    IndexKind, IndexWriter, Repository, SessionError, SnapshotReader,
};
use stowage_core::{ChunkSink, ChunkSource, StoreError};
use stowage_format::manifest::MANIFEST_BLOB_NAME;
use stowage_format::Manifest;
use stowage_types::{ArchiveName, BackupGroup, BackupTime, Digest, SnapshotRef};

use crate::{Datastore, DatastoreError, SnapshotWriter};

impl From<DatastoreError> for SessionError {
    fn from(e: DatastoreError) -> Self {
        SessionError::Backend {
            class: e.class(),
            source: Box::new(e),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A datastore (in its namespace) as a [`Repository`]; new groups are owned by `owner`.
pub struct LocalRepository<'s> {
    store: &'s Datastore,
    owner: String,
}

impl<'s> LocalRepository<'s> {
    pub fn new(store: &'s Datastore, owner: &str) -> Self {
        LocalRepository {
            store,
            owner: owner.to_string(),
        }
    }

    pub fn store(&self) -> &'s Datastore {
        self.store
    }

    /// Starts a backup, with the concrete type (for callers that need the local writer's
    /// extras, such as its base's files).
    pub fn begin(
        &self,
        group: &BackupGroup,
        time: Option<BackupTime>,
    ) -> Result<LocalBackup<'s>, SessionError> {
        let writer = self.store.begin_backup(group, time, &self.owner)?;
        Ok(LocalBackup {
            store: self.store,
            snapshot: writer.snapshot().clone(),
            base: writer.base().cloned(),
            writer: Mutex::new(writer),
            registry: ChunkRegistry::default(),
            book: Mutex::default(),
        })
    }

    /// Opens a finished snapshot, with the concrete type.
    pub fn open(&self, snapshot: &SnapshotRef) -> Result<LocalReader<'s>, SessionError> {
        Ok(self.store.open_snapshot(snapshot)?)
    }
}

impl Repository for LocalRepository<'_> {
    fn begin_backup(
        &self,
        group: &BackupGroup,
        time: Option<BackupTime>,
    ) -> Result<Box<dyn BackupTarget + '_>, SessionError> {
        Ok(Box::new(self.begin(group, time)?))
    }

    fn open_snapshot(
        &self,
        snapshot: &SnapshotRef,
    ) -> Result<Box<dyn SnapshotReader + '_>, SessionError> {
        Ok(Box::new(self.open(snapshot)?))
    }

    fn finished_snapshots(&self, group: &BackupGroup) -> Result<Vec<SnapshotRef>, SessionError> {
        Ok(self.store.finished_snapshots(group)?)
    }
}

impl Datastore {
    /// Opens a finished snapshot for reading (its manifest is read and checked now).
    pub fn open_snapshot(&self, snapshot: &SnapshotRef) -> Result<LocalReader<'_>, DatastoreError> {
        Ok(LocalReader {
            store: self,
            snapshot: snapshot.clone(),
            manifest: self.load_manifest(snapshot)?,
        })
    }
}

/// A backup into the local datastore: the snapshot directory is removed again unless
/// `finish` succeeds.
pub struct LocalBackup<'s> {
    store: &'s Datastore,
    snapshot: SnapshotRef,
    base: Option<SnapshotRef>,
    writer: Mutex<SnapshotWriter<'s>>,
    registry: ChunkRegistry,
    book: Mutex<FileBook>,
}

impl BackupTarget for LocalBackup<'_> {
    fn snapshot(&self) -> &SnapshotRef {
        &self.snapshot
    }

    fn base(&self) -> Option<&SnapshotRef> {
        self.base.as_ref()
    }

    fn known_chunks(&self) -> Result<HashSet<Digest>, SessionError> {
        let known = lock(&self.writer).known_chunks();
        self.registry.register_all(known.iter().copied());
        Ok(known)
    }

    fn create_index(
        &self,
        name: &ArchiveName,
        kind: IndexKind,
    ) -> Result<Box<dyn IndexWriter + '_>, SessionError> {
        let builder = IndexBuilder::new(name, kind)?;
        lock(&self.book).claim(&self.snapshot, &name.stored_name(), true)?;
        Ok(Box::new(LocalIndexWriter {
            backup: self,
            name: name.clone(),
            builder: Mutex::new(Some(builder)),
        }))
    }

    fn add_blob(&self, name: &ArchiveName, data: &[u8]) -> Result<(), SessionError> {
        lock(&self.book).claim(&self.snapshot, &name.stored_name(), false)?;
        Ok(lock(&self.writer).add_blob(name, data)?)
    }

    fn finish(
        self: Box<Self>,
        unprotected: serde_json::Map<String, serde_json::Value>,
    ) -> Result<SnapshotRef, SessionError> {
        lock(&self.book).ready(&self.snapshot)?;
        let writer = self.writer.into_inner().unwrap_or_else(|p| p.into_inner());
        Ok(writer.finish(unprotected)?)
    }
}

/// One index of a local backup; it is written to the snapshot directory when it closes.
pub struct LocalIndexWriter<'b, 's> {
    backup: &'b LocalBackup<'s>,
    name: ArchiveName,
    /// `None` once closed.
    builder: Mutex<Option<IndexBuilder>>,
}

impl ChunkSink for LocalIndexWriter<'_, '_> {
    fn touch_chunk(&self, digest: &Digest) -> Result<bool, StoreError> {
        let present = self.backup.store.chunk_store().touch_chunk(digest)?;
        if present {
            self.backup.registry.register(*digest);
        }
        Ok(present)
    }

    fn insert_chunk(&self, digest: &Digest, encoded: &[u8]) -> Result<(), StoreError> {
        self.backup
            .store
            .chunk_store()
            .insert_chunk(digest, encoded)?;
        self.backup.registry.register(*digest);
        Ok(())
    }
}

impl IndexWriter for LocalIndexWriter<'_, '_> {
    fn name(&self) -> &ArchiveName {
        &self.name
    }

    fn append(&self, chunks: &[IndexChunk]) -> Result<(), SessionError> {
        let mut builder = lock(&self.builder);
        let builder = builder.as_mut().ok_or_else(|| SessionError::Refused {
            what: format!("index {}", self.name),
            detail: "already closed".into(),
        })?;
        builder.append(chunks, &self.backup.registry)
    }

    fn close(self: Box<Self>, expected: IndexClose) -> Result<(), SessionError> {
        let Some(builder) = lock(&self.builder).take() else {
            return Err(SessionError::Refused {
                what: format!("index {}", self.name),
                detail: "closed twice".into(),
            });
        };
        let stored = self.name.stored_name();
        let result = builder.close(expected).and_then(|built| {
            let mut writer = lock(&self.backup.writer);
            match built {
                BuiltIndex::Fixed(index) => writer.add_fixed_index(&self.name, &index),
                BuiltIndex::Dynamic(index) => writer.add_dynamic_index(&self.name, &index),
            }
            .map_err(SessionError::from)
        });
        lock(&self.backup.book).index_done(stored, result.is_ok());
        result
    }
}

impl Drop for LocalIndexWriter<'_, '_> {
    fn drop(&mut self) {
        if lock(&self.builder).take().is_some() {
            lock(&self.backup.book).index_done(self.name.stored_name(), false);
        }
    }
}

/// A finished snapshot of the local datastore, opened for reading.
pub struct LocalReader<'s> {
    store: &'s Datastore,
    snapshot: SnapshotRef,
    manifest: Manifest,
}

impl SnapshotReader for LocalReader<'_> {
    fn snapshot(&self) -> &SnapshotRef {
        &self.snapshot
    }

    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    fn download(&self, file_name: &str) -> Result<Vec<u8>, SessionError> {
        let listed = file_name == MANIFEST_BLOB_NAME || self.manifest.file(file_name).is_some();
        if !listed || file_name.contains('/') {
            return Err(SessionError::NotFound {
                what: format!("{file_name} in snapshot {}", self.snapshot),
                hint: format!(" (list its files with 'stowage files {}')", self.snapshot),
            });
        }
        let path = self.store.snapshot_dir(&self.snapshot).join(file_name);
        std::fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => DatastoreError::MissingFile {
                what: path.display().to_string(),
            }
            .into(),
            _ => DatastoreError::read(&path)(e).into(),
        })
    }

    fn chunks(&self) -> &dyn ChunkSource {
        self.store.chunk_store()
    }
}

#[cfg(test)]
mod conformance {
    struct Fixture {
        _dir: tempfile::TempDir,
        store: crate::Datastore,
    }

    fn fixture() -> Fixture {
        let (dir, store) = crate::test_store();
        Fixture { _dir: dir, store }
    }

    fn run(f: &Fixture, check: fn(&dyn stowage_core::session::Repository)) {
        check(&super::LocalRepository::new(&f.store, "root@pam"))
    }

    stowage_core::conformance_tests!(fixture, run);
}
