//! Helpers shared by the unit tests.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use stowage_types::Digest;

use crate::{ChunkSink, ChunkSource, StoreError};

/// A chunk store in memory that records what the pipeline asked of it.
#[derive(Default)]
pub struct MemStore {
    pub chunks: Mutex<HashMap<Digest, Vec<u8>>>,
    pub inserts: AtomicU64,
    /// Every digest passed to `touch_chunk`, in call order.
    pub touched: Mutex<Vec<Digest>>,
    /// Calls of `read_chunk`.
    pub reads: AtomicU64,
}

impl MemStore {
    pub fn inserts(&self) -> u64 {
        self.inserts.load(Ordering::Relaxed)
    }

    pub fn holds(&self, digest: &Digest) -> bool {
        self.chunks.lock().unwrap().contains_key(digest)
    }

    pub fn was_touched(&self, digest: &Digest) -> bool {
        self.touched.lock().unwrap().contains(digest)
    }

    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    /// The stored (encoded) chunk.
    pub fn blob(&self, digest: &Digest) -> Vec<u8> {
        self.chunks.lock().unwrap()[digest].clone()
    }

    /// Replaces a stored chunk, for corruption tests.
    pub fn put(&self, digest: &Digest, blob: Vec<u8>) {
        self.chunks.lock().unwrap().insert(*digest, blob);
    }

    pub fn remove(&self, digest: &Digest) {
        self.chunks.lock().unwrap().remove(digest);
    }
}

impl ChunkSource for MemStore {
    fn read_chunk(&self, digest: &Digest, out: &mut Vec<u8>) -> Result<(), StoreError> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        let chunks = self.chunks.lock().unwrap();
        let chunk = chunks.get(digest).ok_or(StoreError::Missing {
            digest: *digest,
            path: "mem".into(),
        })?;
        out.clear();
        out.extend_from_slice(chunk);
        Ok(())
    }
}

impl ChunkSink for MemStore {
    fn touch_chunk(&self, digest: &Digest) -> Result<bool, StoreError> {
        self.touched.lock().unwrap().push(*digest);
        Ok(self.holds(digest))
    }

    fn insert_chunk(&self, digest: &Digest, encoded: &[u8]) -> Result<(), StoreError> {
        self.inserts.fetch_add(1, Ordering::Relaxed);
        self.chunks
            .lock()
            .unwrap()
            .insert(*digest, encoded.to_vec());
        Ok(())
    }
}
