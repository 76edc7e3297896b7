/// Cuts a stream into consecutive chunks of one size; only the last may be shorter.
///
/// The chunker is fed whatever slices a reader produces and reports how many bytes of each slice
/// still fit into the current chunk, so callers can fill chunk buffers without copying twice.
#[derive(Debug, Clone)]
pub struct FixedChunker {
    chunk_size: usize,
    filled: usize,
}

impl FixedChunker {
    pub fn new(chunk_size: usize) -> Self {
        assert!(chunk_size > 0, "chunk size must be positive");
        FixedChunker {
            chunk_size,
            filled: 0,
        }
    }

    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    /// Bytes still missing from the current chunk.
    pub fn room(&self) -> usize {
        self.chunk_size - self.filled
    }

    /// Accounts for `n` more bytes (at most [`room`](Self::room)); true when the chunk is complete.
    pub fn advance(&mut self, n: usize) -> bool {
        self.filled += n.min(self.room());
        if self.filled == self.chunk_size {
            self.filled = 0;
            true
        } else {
            false
        }
    }

    /// Chunk boundaries (exclusive ends) of a whole buffer: a convenience for tests and small data.
    pub fn boundaries(chunk_size: usize, len: usize) -> Vec<usize> {
        let mut out: Vec<usize> = (1..=len / chunk_size).map(|i| i * chunk_size).collect();
        if len % chunk_size != 0 {
            out.push(len);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Feeding a stream in arbitrary pieces gives the same cuts as chunking it whole.
        #[test]
        fn cuts_do_not_depend_on_read_sizes(pieces in proptest::collection::vec(1usize..50, 0..40), cs in 1usize..64) {
            let mut c = FixedChunker::new(cs);
            let mut pos = 0;
            let mut cuts = Vec::new();
            for mut p in pieces.iter().copied() {
                while p > 0 {
                    let n = p.min(c.room());
                    pos += n;
                    p -= n;
                    if c.advance(n) { cuts.push(pos); }
                }
            }
            if pos % cs != 0 { cuts.push(pos); }
            prop_assert_eq!(cuts, FixedChunker::boundaries(cs, pos));
        }
    }
}
