//! Export of an image to `.zst` at level 1 without compressing anything: the datastore holds
//! each chunk as a zstd level-1 frame already, and a `.zst` file may be a series of frames. So
//! every chunk is read and verified (decompressed and hashed, on all cores) and its stored frame
//! is written as it is, in order. Chunks stored raw (incompressible) and all-zero chunks get a
//! frame of their own.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use anyhow::{anyhow, Result};
use crossbeam_channel::bounded;
use stowage_core::{decode_and_verify, zero_digest, ChunkLayout, ChunkSource};
use stowage_datastore::ChunkStore;
use stowage_format::blob::{open_blob, BlobKind, ZSTD_LEVEL};
use stowage_format::{BlobDecoder, FixedIndex};

/// The zstd level chunks are stored with: exports at this level can re-use them.
pub const STORED_LEVEL: i32 = ZSTD_LEVEL;

/// The frame for chunk `i`, verified.
fn frame(
    store: &ChunkStore,
    index: &FixedIndex,
    i: usize,
    decoder: &mut BlobDecoder,
    zero_frames: &Mutex<HashMap<usize, Vec<u8>>>,
    zeros: &HashMap<usize, stowage_types::Digest>,
) -> Result<Vec<u8>> {
    let (_, len, digest) = index.chunk(i);
    if zeros.get(&len) == Some(digest) {
        let mut frames = zero_frames
            .lock()
            .map_err(|_| anyhow!("zero frame cache"))?;
        if let Some(f) = frames.get(&len) {
            return Ok(f.clone());
        }
        let f = zstd::bulk::compress(&vec![0u8; len], STORED_LEVEL)?;
        frames.insert(len, f.clone());
        return Ok(f);
    }
    let mut encoded = Vec::new();
    store.read_chunk(digest, &mut encoded)?;
    let mut plain = Vec::new();
    decode_and_verify(decoder, digest, &encoded, len, &mut plain).map_err(|e| {
        crate::exit::fail(
            stowage_types::ErrorClass::Verification,
            format!("chunk {digest} of the image is bad: {e}; run 'stowage verify'"),
        )
    })?;
    let (kind, payload) = open_blob(&encoded)?;
    Ok(match kind {
        BlobKind::Compressed => payload.to_vec(),
        _ => zstd::bulk::compress(&plain, STORED_LEVEL)?,
    })
}

/// Writes the image of `index` to `out` as a series of zstd frames, `threads` chunks at a time.
pub fn splice_zstd(
    store: &ChunkStore,
    index: &FixedIndex,
    threads: usize,
    out: &mut dyn Write,
) -> Result<()> {
    let count = index.chunk_count();
    let window = (threads * 4).max(8);
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let zero_frames = Mutex::new(HashMap::new());
    let zeros: HashMap<usize, stowage_types::Digest> = index
        .zero_lengths()
        .into_iter()
        .map(|len| (len, zero_digest(len)))
        .collect();
    let (token_tx, token_rx) = bounded::<()>(window);
    for _ in 0..window {
        let _ = token_tx.send(());
    }
    let (done_tx, done_rx) = bounded::<(usize, Result<Vec<u8>>)>(window);
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            let (token_rx, done_tx) = (token_rx.clone(), done_tx.clone());
            let (next, stop, zero_frames, zeros) = (&next, &stop, &zero_frames, &zeros);
            s.spawn(move || {
                let Ok(mut decoder) = BlobDecoder::new() else {
                    return;
                };
                while token_rx.recv().is_ok() && !stop.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        break;
                    }
                    let result = frame(store, index, i, &mut decoder, zero_frames, zeros);
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
                let (i, frame) = done_rx
                    .recv()
                    .map_err(|_| anyhow!("the chunk readers stopped early"))?;
                pending.insert(i, frame?);
                while let Some(frame) = pending.remove(&written) {
                    out.write_all(&frame)?;
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
