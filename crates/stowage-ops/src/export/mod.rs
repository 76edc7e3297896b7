//! A snapshot's archive as a standard stream: an image as raw bytes or zstd frames, a file tree
//! as tar. Compression and the output file are the caller's (`stowage_export`).

mod frames;
mod tree;

pub use frames::{zstd_frames, STORED_LEVEL};
pub use tree::tree_to_tar;

use std::io::{self, Write};

use stowage_core::session::SnapshotReader;
use stowage_core::{restore_image, ChunkSource, ImageTarget, RestoreCounters};
use stowage_format::blob::{decode_blob, MAX_BLOB_SIZE};
use stowage_format::FixedIndex;
use stowage_types::Digest;

use crate::OpsError;

/// Up to four of an archive's `count` chunks, spread over it and decoded: what a space check
/// compresses to estimate the output size.
pub fn chunk_samples(
    chunks: &dyn ChunkSource,
    count: usize,
    digest_at: impl Fn(usize) -> Digest,
) -> Vec<Vec<u8>> {
    let picks: Vec<usize> = if count <= 4 {
        (0..count).collect()
    } else {
        (0..4).map(|i| i * (count - 1) / 3).collect()
    };
    picks
        .into_iter()
        .filter_map(|i| {
            let mut raw = Vec::new();
            chunks.read_chunk(&digest_at(i), &mut raw).ok()?;
            decode_blob(&raw, MAX_BLOB_SIZE).ok()
        })
        .collect()
}

/// Writes the image of `index` to `out` as plain bytes (`out_name` for messages), fetched,
/// decoded and verified on `threads` workers.
pub fn image_to_writer(
    reader: &dyn SnapshotReader,
    index: &FixedIndex,
    out: &mut dyn Write,
    out_name: &str,
    threads: usize,
    counters: &RestoreCounters,
) -> Result<(), OpsError> {
    let window = (threads * 4).max(8);
    let mut target = WriteTarget { out };
    restore_image(
        index,
        reader.chunks(),
        &mut target,
        out_name,
        threads,
        window,
        counters,
    )?;
    Ok(())
}

/// A stream as an image target: every byte in order, zeros written out.
struct WriteTarget<'a> {
    out: &'a mut dyn Write,
}

static ZEROES: [u8; 64 << 10] = [0; 64 << 10];

impl ImageTarget for WriteTarget<'_> {
    fn write_at(&mut self, _offset: u64, data: &[u8]) -> io::Result<()> {
        self.out.write_all(data)
    }

    fn write_zeroes(&mut self, _offset: u64, mut len: u64) -> io::Result<()> {
        while len > 0 {
            let n = len.min(ZEROES.len() as u64) as usize;
            self.out.write_all(&ZEROES[..n])?;
            len -= n as u64;
        }
        Ok(())
    }

    fn finish(&mut self, _size: u64) -> io::Result<()> {
        self.out.flush()
    }
}
