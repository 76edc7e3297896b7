use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::sys::stat::{utimensat, UtimensatFlags};
use nix::sys::time::TimeSpec;
use stowage_core::{ChunkSink, ChunkSource, StoreError};
use stowage_types::Digest;

/// The `.chunks` directory: one DataBlob file per digest under a 4-hex-digit prefix directory.
pub struct ChunkStore {
    dir: PathBuf,
    tmp_counter: AtomicU64,
}

impl ChunkStore {
    pub(crate) fn new(dir: PathBuf) -> Self {
        ChunkStore {
            dir,
            tmp_counter: AtomicU64::new(0),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `.chunks/bb9f/bb9f8df6...`
    pub fn chunk_path(&self, digest: &Digest) -> PathBuf {
        let hex = digest.to_hex();
        self.dir.join(&hex[..4]).join(hex)
    }

    /// Whether the chunk file of `digest` exists (one `stat`). Errors other than "not found"
    /// count as present: the chunk is not written again over a file we cannot see.
    pub fn chunk_exists(&self, digest: &Digest) -> bool {
        match fs::symlink_metadata(self.chunk_path(digest)) {
            Ok(_) => true,
            Err(e) => e.kind() != io::ErrorKind::NotFound,
        }
    }

    /// Moves a corrupt chunk out of the way as PBS does: to `<hex>.<N>.bad` beside it, with N
    /// the first unused digit 0..9 (once `.0.bad` to `.8.bad` exist, `.9.bad` is overwritten).
    /// Returns the new path, or `None` when there is no chunk file to move.
    pub fn rename_corrupt_chunk(&self, digest: &Digest) -> io::Result<Option<PathBuf>> {
        let path = self.chunk_path(digest);
        let hex = digest.to_hex();
        let mut n = 0;
        let mut bad = path.with_file_name(format!("{hex}.{n}.bad"));
        while n < 9 && fs::symlink_metadata(&bad).is_ok() {
            n += 1;
            bad = path.with_file_name(format!("{hex}.{n}.bad"));
        }
        match fs::rename(&path, &bad) {
            Ok(()) => Ok(Some(bad)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn write_new(&self, digest: &Digest, path: &Path, encoded: &[u8]) -> io::Result<()> {
        let n = self.tmp_counter.fetch_add(1, Ordering::Relaxed);
        let tmp = path.with_file_name(format!(
            "{}.tmp_{}_{n}",
            digest.to_hex(),
            std::process::id()
        ));
        let result = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .and_then(|mut f| f.write_all(encoded))
            .and_then(|_| fs::rename(&tmp, path));
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }
}

impl ChunkSink for ChunkStore {
    fn touch_chunk(&self, digest: &Digest) -> Result<bool, StoreError> {
        let path = self.chunk_path(digest);
        let now = TimeSpec::UTIME_NOW;
        let omit = TimeSpec::UTIME_OMIT;
        match utimensat(
            nix::fcntl::AT_FDCWD,
            &path,
            &now,
            &omit,
            UtimensatFlags::NoFollowSymlink,
        ) {
            Ok(()) => Ok(true),
            Err(nix::errno::Errno::ENOENT) => Ok(false),
            Err(e) => Err(StoreError::Read {
                digest: *digest,
                path,
                source: e.into(),
            }),
        }
    }

    fn insert_chunk(&self, digest: &Digest, encoded: &[u8]) -> Result<(), StoreError> {
        let path = self.chunk_path(digest);
        self.write_new(digest, &path, encoded)
            .map_err(|source| StoreError::Write {
                digest: *digest,
                path,
                source,
            })
    }
}

impl ChunkSource for ChunkStore {
    fn read_chunk(&self, digest: &Digest, out: &mut Vec<u8>) -> Result<(), StoreError> {
        let path = self.chunk_path(digest);
        out.clear();
        let result = File::open(&path).and_then(|mut f| f.read_to_end(out));
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(StoreError::Missing {
                digest: *digest,
                path,
            }),
            Err(source) => Err(StoreError::Read {
                digest: *digest,
                path,
                source,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrupt_chunks_get_numbered_bad_names() {
        let dir = tempfile::tempdir().unwrap();
        let digest = Digest([0xab; 32]);
        let hex = digest.to_hex();
        let sub = dir.path().join(&hex[..4]);
        fs::create_dir(&sub).unwrap();
        let store = ChunkStore::new(dir.path().to_path_buf());
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
