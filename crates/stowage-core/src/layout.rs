//! Where each chunk of a stream lies: the common view of fixed (image) and dynamic (archive)
//! indexes that restore and verify work from.

use std::collections::BTreeSet;

use stowage_format::{DynamicIndex, FixedIndex};
use stowage_types::Digest;

/// The largest chunk the content-defined chunker makes with its default average (4 × 4 MiB).
const DYNAMIC_MAX_CHUNK: usize = 16 << 20;

pub trait ChunkLayout: Sync {
    fn chunk_count(&self) -> usize;
    /// Offset in the stream, length and digest of chunk `i` (`i < chunk_count()`).
    fn chunk(&self, i: usize) -> (u64, usize, &Digest);
    /// Length of the whole stream.
    fn total_size(&self) -> u64;
    /// Chunk lengths whose all-zero digest is worth recognising, so such chunks are never read.
    fn zero_lengths(&self) -> Vec<usize>;
}

impl ChunkLayout for FixedIndex {
    fn chunk_count(&self) -> usize {
        self.digests.len()
    }

    fn chunk(&self, i: usize) -> (u64, usize, &Digest) {
        let (offset, len) = self.chunk_range(i);
        (offset, len, &self.digests[i])
    }

    fn total_size(&self) -> u64 {
        self.size
    }

    fn zero_lengths(&self) -> Vec<usize> {
        let mut lengths = BTreeSet::from([self.chunk_size as usize]);
        if let Some(last) = self.digests.len().checked_sub(1) {
            lengths.insert(self.chunk_range(last).1);
        }
        lengths.into_iter().collect()
    }
}

impl ChunkLayout for DynamicIndex {
    fn chunk_count(&self) -> usize {
        self.entries.len()
    }

    fn chunk(&self, i: usize) -> (u64, usize, &Digest) {
        let start = i.checked_sub(1).map(|p| self.entries[p].0).unwrap_or(0);
        let (end, ref digest) = self.entries[i];
        (start, (end - start) as usize, digest)
    }

    fn total_size(&self) -> u64 {
        self.size()
    }

    fn zero_lengths(&self) -> Vec<usize> {
        vec![DYNAMIC_MAX_CHUNK]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_chunks_follow_the_end_offsets() {
        let idx = DynamicIndex {
            uuid: [0; 16],
            ctime: 0,
            entries: vec![(10, Digest([1; 32])), (25, Digest([2; 32]))],
        };
        assert_eq!(idx.chunk(0), (0, 10, &Digest([1; 32])));
        assert_eq!(idx.chunk(1), (10, 15, &Digest([2; 32])));
        assert_eq!(idx.total_size(), 25);
    }

    #[test]
    fn fixed_zero_lengths_include_the_tail() {
        let idx = FixedIndex {
            uuid: [0; 16],
            ctime: 0,
            size: 4096 * 2 + 100,
            chunk_size: 4096,
            digests: vec![Digest::default(); 3],
        };
        assert_eq!(idx.zero_lengths(), vec![100, 4096]);
    }
}
