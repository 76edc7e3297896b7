use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use stowage_core::{ChunkSink, ChunkSource, StoreError};
use stowage_types::Digest;

use crate::storage::Storage;

/// The `.chunks` directory of the datastore's storage: one DataBlob per digest under a
/// 4-hex-digit prefix (`.chunks/bb9f/bb9f8df6…`).
pub struct ChunkStore {
    storage: Arc<dyn Storage>,
    /// Where `.chunks` is, for the file-system walks of garbage collection and for messages.
    dir: PathBuf,
}

const CHUNKS: &str = ".chunks";

/// `.chunks/bb9f/bb9f8df6…`
fn chunk_key(digest: &Digest) -> String {
    let hex = digest.to_hex();
    format!("{CHUNKS}/{}/{hex}", &hex[..4])
}

impl ChunkStore {
    pub(crate) fn new(storage: Arc<dyn Storage>) -> Self {
        let dir = storage.locate(CHUNKS);
        ChunkStore { storage, dir }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the chunk of `digest` is (a path of the local storage).
    pub fn chunk_path(&self, digest: &Digest) -> PathBuf {
        self.storage.locate(&chunk_key(digest))
    }

    /// Whether the chunk of `digest` exists. Errors other than "not found" count as present:
    /// the chunk is not written again over an object we cannot see.
    pub fn chunk_exists(&self, digest: &Digest) -> bool {
        self.storage.exists(&chunk_key(digest)).unwrap_or(true)
    }

    /// Moves a corrupt chunk out of the way as PBS does: to `<hex>.<N>.bad` beside it, with N
    /// the first unused digit 0..9 (once `.0.bad` to `.8.bad` exist, `.9.bad` is overwritten).
    /// Returns the new path, or `None` when there is no chunk file to move.
    pub fn rename_corrupt_chunk(&self, digest: &Digest) -> io::Result<Option<PathBuf>> {
        let key = chunk_key(digest);
        let bad = |n: u32| format!("{key}.{n}.bad");
        let mut n = 0;
        while n < 9 && self.storage.exists(&bad(n))? {
            n += 1;
        }
        match self.storage.rename(&key, &bad(n)) {
            Ok(()) => Ok(Some(self.storage.locate(&bad(n)))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl ChunkSink for ChunkStore {
    fn touch_chunk(&self, digest: &Digest) -> Result<bool, StoreError> {
        let key = chunk_key(digest);
        self.storage.mark(&key).map_err(|source| StoreError::Read {
            digest: *digest,
            path: self.storage.locate(&key),
            source,
        })
    }

    fn insert_chunk(&self, digest: &Digest, encoded: &[u8]) -> Result<(), StoreError> {
        let key = chunk_key(digest);
        self.storage
            .put_if_absent(&key, encoded)
            .map_err(|source| StoreError::Write {
                digest: *digest,
                path: self.storage.locate(&key),
                source,
            })
    }
}

impl ChunkSource for ChunkStore {
    fn read_chunk(&self, digest: &Digest, out: &mut Vec<u8>) -> Result<(), StoreError> {
        let key = chunk_key(digest);
        match self.storage.get(&key, out) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(StoreError::Missing {
                digest: *digest,
                path: self.storage.locate(&key),
            }),
            Err(source) => Err(StoreError::Read {
                digest: *digest,
                path: self.storage.locate(&key),
                source,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn corrupt_chunks_get_numbered_bad_names() {
        let dir = tempfile::tempdir().unwrap();
        let digest = Digest([0xab; 32]);
        let hex = digest.to_hex();
        let sub = dir.path().join(CHUNKS).join(&hex[..4]);
        fs::create_dir_all(&sub).unwrap();
        let storage = Arc::new(crate::storage::LocalStorage::new(dir.path()));
        let store = ChunkStore::new(storage);
        assert!(!store.chunk_exists(&digest));
        assert_eq!(store.rename_corrupt_chunk(&digest).unwrap(), None);
        for round in 0..12u8 {
            fs::write(store.chunk_path(&digest), [round]).unwrap();
            assert!(store.chunk_exists(&digest));
            let bad = store.rename_corrupt_chunk(&digest).unwrap().unwrap();
            let n = round.min(9);
            assert_eq!(bad, sub.join(format!("{hex}.{n}.bad")));
            assert!(!store.chunk_exists(&digest));
            // The last one wins once all ten names are taken.
            assert_eq!(fs::read(&bad).unwrap(), [round]);
        }
        // A gap is filled first.
        fs::remove_file(sub.join(format!("{hex}.3.bad"))).unwrap();
        fs::write(store.chunk_path(&digest), b"x").unwrap();
        let bad = store.rename_corrupt_chunk(&digest).unwrap().unwrap();
        assert_eq!(bad, sub.join(format!("{hex}.3.bad")));
        assert_eq!(fs::read_dir(&sub).unwrap().count(), 10);
    }
}
