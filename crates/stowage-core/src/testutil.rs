//! Helpers shared by the unit tests.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use stowage_types::Digest;

use crate::{ChunkSink, StoreError};

/// A chunk store in memory that records what the pipeline asked of it.
#[derive(Default)]
pub struct MemStore {
    pub chunks: Mutex<HashMap<Digest, Vec<u8>>>,
    pub inserts: AtomicU64,
    /// Every digest passed to `touch_chunk`, in call order.
    pub touched: Mutex<Vec<Digest>>,
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
