//! Export of an image to `.zst` as one zstd frame per chunk (a `.zst` file may be a series of
//! frames, and `zstd -d` reads it as one stream). Every chunk is read, verified (decompressed
//! and hashed) and compressed by the same worker, on all cores, and written in order.
//! At level 1 nothing is compressed at all: the datastore holds each chunk as a zstd level-1
//! frame already, and that frame is the output. A chunk the image holds more than once (the
//! all-zero chunk, say) is verified and compressed once: its frame is kept for the repeats.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crossbeam_channel::bounded;
use stowage_core::{verify_chunk, ChunkDecoder, ChunkLayout, ChunkSource};
use stowage_format::blob::{BlobKind, HEADER_LEN, ZSTD_LEVEL};
use stowage_format::{CryptMode, FixedIndex};
use stowage_types::{Digest, ErrorClass};

use crate::OpsError;

type Result<T, E = OpsError> = std::result::Result<T, E>;

/// The zstd level chunks are stored with: exports at this level can re-use them.
pub const STORED_LEVEL: i32 = ZSTD_LEVEL;

/// What all workers share.
struct Job<'a> {
    store: &'a dyn ChunkSource,
    index: &'a FixedIndex,
    level: i32,
    /// The digest of an all-zero chunk, per chunk length.
    zeros: HashMap<usize, Digest>,
    /// Digests the image holds more than once.
    repeated: HashSet<Digest>,
    /// Frames of repeated chunks made so far, and their bytes (bounded by [`REPEAT_BYTES`]).
    repeats: Mutex<Kept>,
}

/// Frames kept for repeats, and their bytes in all.
type Kept = (HashMap<Digest, Arc<Vec<u8>>>, usize);

/// Memory for frames of repeated chunks.
const REPEAT_BYTES: usize = 128 << 20;

impl Job<'_> {
    fn cached(&self, digest: &Digest) -> Option<Arc<Vec<u8>>> {
        if !self.repeated.contains(digest) {
            return None;
        }
        self.repeats.lock().ok()?.0.get(digest).cloned()
    }

    fn keep(&self, digest: &Digest, frame: &Arc<Vec<u8>>) {
        if !self.repeated.contains(digest) {
            return;
        }
        if let Ok(mut r) = self.repeats.lock() {
            if r.1 + frame.len() <= REPEAT_BYTES && !r.0.contains_key(digest) {
                r.1 += frame.len();
                r.0.insert(*digest, frame.clone());
            }
        }
    }
}

/// The frame for chunk `i`: a kept one for a repeated chunk, else made and kept if repeated.
fn frame(
    job: &Job,
    i: usize,
    decoder: &mut dyn ChunkDecoder,
    compressor: &mut zstd::bulk::Compressor<'static>,
) -> Result<Arc<Vec<u8>>> {
    let (_, _, digest) = job.index.chunk(i);
    if let Some(f) = job.cached(digest) {
        return Ok(f);
    }
    let f = Arc::new(new_frame(job, i, decoder, compressor)?);
    job.keep(digest, &f);
    Ok(f)
}

/// The frame for chunk `i`, verified: the stored frame at the stored level, a new one otherwise.
fn new_frame(
    job: &Job,
    i: usize,
    decoder: &mut dyn ChunkDecoder,
    compressor: &mut zstd::bulk::Compressor<'static>,
) -> Result<Vec<u8>> {
    let (store, level) = (job.store, job.level);
    let (_, len, digest) = job.index.chunk(i);
    if job.zeros.get(&len) == Some(digest) {
        return Ok(compressor.compress(&vec![0u8; len])?);
    }
    let mut encoded = Vec::new();
    store.read_chunk(digest, &mut encoded)?;
    let mut plain = Vec::new();
    verify_chunk(store.codec(), decoder, digest, &encoded, len, &mut plain).map_err(|e| {
        OpsError::failed(
            ErrorClass::Verification,
            format!("chunk {digest} of the image is bad: {e}; run 'stowage verify'"),
        )
    })?;
    // Verified above (CRC included): the stored frame is what follows the header (of a plain
    // chunk; an encrypted one holds ciphertext).
    let plain_chunk = store.codec().crypt_mode() == CryptMode::None;
    let stored = plain_chunk
        && encoded.get(..8).and_then(BlobKind::from_magic) == Some(BlobKind::Compressed);
    match encoded.get(HEADER_LEN..) {
        Some(frame) if stored && level == STORED_LEVEL => Ok(frame.to_vec()),
        _ => Ok(compressor.compress(&plain)?),
    }
}

fn repeated_digests(index: &FixedIndex) -> HashSet<Digest> {
    let mut seen = HashSet::new();
    index
        .digests
        .iter()
        .filter(|d| !seen.insert(**d))
        .copied()
        .collect()
}

/// Writes the image of `index` to `out` as a series of zstd frames, `threads` chunks at a time.
pub fn zstd_frames(
    store: &dyn ChunkSource,
    index: &FixedIndex,
    level: i32,
    threads: usize,
    progress: &std::sync::atomic::AtomicU64,
    out: &mut dyn Write,
) -> Result<()> {
    let count = index.chunk_count();
    let window = (threads * 4).max(8);
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let job = Job {
        store,
        index,
        level,
        zeros: index
            .zero_lengths()
            .into_iter()
            .map(|len| (len, store.codec().zero_digest(len)))
            .collect(),
        repeated: repeated_digests(index),
        repeats: Mutex::new((HashMap::new(), 0)),
    };
    let (token_tx, token_rx) = bounded::<()>(window);
    for _ in 0..window {
        let _ = token_tx.send(());
    }
    let (done_tx, done_rx) = bounded::<(usize, Result<Arc<Vec<u8>>>)>(window);
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            let (token_rx, done_tx) = (token_rx.clone(), done_tx.clone());
            let (next, stop, job) = (&next, &stop, &job);
            s.spawn(move || {
                let Ok(mut decoder) = store.codec().decoder() else {
                    return;
                };
                let Ok(mut compressor) = zstd::bulk::Compressor::new(level) else {
                    return;
                };
                while token_rx.recv().is_ok() && !stop.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        break;
                    }
                    let result = frame(job, i, &mut *decoder, &mut compressor);
                    if done_tx.send((i, result)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(done_tx);
        let mut pending = BTreeMap::new();
        let mut written = 0usize;
        let result = (|| -> Result<()> {
            while written < count {
                let (i, frame) = done_rx.recv().map_err(|_| {
                    OpsError::failed(ErrorClass::Internal, "the chunk readers stopped early")
                })?;
                pending.insert(i, frame?);
                while let Some(frame) = pending.remove(&written) {
                    out.write_all(&frame)?;
                    progress.fetch_add(index.chunk(written).1 as u64, Ordering::Relaxed);
                    written += 1;
                    let _ = token_tx.send(());
                }
            }
            Ok(())
        })();
        if result.is_err() {
            stop.store(true, Ordering::Relaxed);
        }
        // Wake every worker so it sees the end.
        for _ in 0..threads.max(1) {
            let _ = token_tx.send(());
        }
        drop(done_rx);
        result
    })
}
