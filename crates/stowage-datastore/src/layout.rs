use std::fs::{self, DirBuilder, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use stowage_types::{BackupGroup, BackupNamespace, SnapshotRef};

use crate::storage::LocalStorage;
use crate::{fsutil, ChunkStore, DatastoreError};

/// An open local datastore, seen from one namespace (the root unless
/// [`in_namespace`](Datastore::in_namespace) chose another). Groups and snapshots are looked up
/// in that namespace; the chunk store is shared by all of them.
#[derive(Clone)]
pub struct Datastore {
    base: PathBuf,
    ns: BackupNamespace,
    chunks: Arc<ChunkStore>,
}

const CHUNK_DIR: &str = ".chunks";
const LOCK_FILE: &str = ".lock";

impl Datastore {
    /// Creates a datastore in `path`, which must not exist or be an empty directory. The 65536
    /// chunk directories are made under a temporary name and renamed into place, so an
    /// interrupted create leaves no half datastore behind.
    pub fn create(path: &Path) -> Result<Self, DatastoreError> {
        if path.exists() {
            let mut entries = fs::read_dir(path).map_err(DatastoreError::read(path))?;
            if entries.next().is_some() {
                if Self::open(path).is_ok() {
                    return Err(DatastoreError::NotEmpty { path: path.into() });
                }
                let only_leftover = fs::read_dir(path)
                    .map_err(DatastoreError::read(path))?
                    .all(|e| e.map(|e| e.file_name() == ".chunks.tmp").unwrap_or(false));
                if !only_leftover {
                    return Err(DatastoreError::NotEmpty { path: path.into() });
                }
            }
        }
        fs::create_dir_all(path).map_err(DatastoreError::write(path))?;
        let tmp = path.join(".chunks.tmp");
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(DatastoreError::write(&tmp))?;
        }
        let mut builder = DirBuilder::new();
        builder.mode(0o750);
        builder.create(&tmp).map_err(DatastoreError::write(&tmp))?;
        for prefix in 0..=0xffffu32 {
            let sub = tmp.join(format!("{prefix:04x}"));
            builder.create(&sub).map_err(DatastoreError::write(&sub))?;
        }
        let lock = path.join(LOCK_FILE);
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(&lock)
            .map_err(DatastoreError::write(&lock))?;
        let chunks = path.join(CHUNK_DIR);
        fs::rename(&tmp, &chunks).map_err(DatastoreError::write(&chunks))?;
        fsutil::fsync_dir(path).map_err(DatastoreError::write(path))?;
        Self::open(path)
    }

    /// Opens an existing datastore.
    pub fn open(path: &Path) -> Result<Self, DatastoreError> {
        let chunks = path.join(CHUNK_DIR);
        if !chunks.join("0000").is_dir()
            || !chunks.join("ffff").is_dir()
            || !path.join(LOCK_FILE).is_file()
        {
            return Err(DatastoreError::NotADatastore { path: path.into() });
        }
        Ok(Datastore {
            base: path.to_path_buf(),
            ns: BackupNamespace::root(),
            chunks: Arc::new(ChunkStore::new(Arc::new(LocalStorage::new(path)))),
        })
    }

    /// Opens the datastore at `path`, creating it first when the directory does not exist yet
    /// or is empty (the embedded default).
    pub fn open_or_create(path: &Path) -> Result<Self, DatastoreError> {
        match Self::open(path) {
            Ok(ds) => Ok(ds),
            Err(DatastoreError::NotADatastore { .. }) => Self::create(path),
            Err(e) => Err(e),
        }
    }

    pub fn base(&self) -> &Path {
        &self.base
    }

    /// The namespace groups and snapshots are looked up in.
    pub fn namespace(&self) -> &BackupNamespace {
        &self.ns
    }

    /// The same datastore seen from namespace `ns`, which must exist.
    pub fn in_namespace(&self, ns: &BackupNamespace) -> Result<Datastore, DatastoreError> {
        if !self.base.join(ns.relative_path()).is_dir() {
            return Err(DatastoreError::NamespaceNotFound(ns.to_string()));
        }
        Ok(Datastore {
            base: self.base.clone(),
            ns: ns.clone(),
            chunks: self.chunks.clone(),
        })
    }

    /// The directory of the current namespace: the base for the root, `<base>/ns/a/ns/b` below.
    pub fn ns_dir(&self) -> PathBuf {
        self.base.join(self.ns.relative_path())
    }

    pub fn chunk_store(&self) -> &ChunkStore {
        &self.chunks
    }

    pub(crate) fn lock_file(&self) -> PathBuf {
        self.base.join(LOCK_FILE)
    }

    pub fn group_dir(&self, group: &BackupGroup) -> PathBuf {
        self.ns_dir().join(group.ty.as_str()).join(group.id())
    }

    pub fn snapshot_dir(&self, snapshot: &SnapshotRef) -> PathBuf {
        self.group_dir(&snapshot.group)
            .join(snapshot.time.to_rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_then_open() {
        // tmpfs when there is one: 65536 directories are slow to make on a real disk.
        let dir = tempfile::Builder::new()
            .tempdir_in("/dev/shm")
            .or_else(|_| tempfile::tempdir())
            .unwrap();
        let path = dir.path().join("store");
        Datastore::create(&path).unwrap();
        assert_eq!(fs::read_dir(path.join(".chunks")).unwrap().count(), 65536);
        assert!(path.join(".lock").is_file());
        assert!(Datastore::open(&path).is_ok());
        assert!(matches!(
            Datastore::create(&path),
            Err(DatastoreError::NotEmpty { .. })
        ));
        let other = dir.path().join("other");
        fs::create_dir(&other).unwrap();
        fs::write(other.join("precious"), b"x").unwrap();
        assert!(matches!(
            Datastore::open(&other),
            Err(DatastoreError::NotADatastore { .. })
        ));
        assert!(matches!(
            Datastore::create(&other),
            Err(DatastoreError::NotEmpty { .. })
        ));
        assert!(other.join("precious").exists());
    }
}
