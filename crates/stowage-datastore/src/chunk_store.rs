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
