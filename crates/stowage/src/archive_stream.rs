//! The byte stream of a file-tree archive or catalog, fetched and verified in parallel on a
//! helper thread and handed to a decoder on this one through a bounded pipe.

use anyhow::Result;
use stowage_core::{pipe, restore_image, PipeReader, RestoreCounters};
use stowage_datastore::Datastore;
use stowage_format::DynamicIndex;

/// Pieces of 1 MiB the fetcher may run ahead of the decoder.
const PIPE_PIECES: usize = 16;

/// Runs `consume` on the stream of `index`. `consume` may stop early (reading one file).
pub fn with_stream<T>(
    store: &Datastore,
    index: &DynamicIndex,
    name: &str,
    threads: usize,
    counters: &RestoreCounters,
    consume: impl FnOnce(&mut PipeReader) -> Result<T>,
) -> Result<T> {
    let (mut writer, mut reader) = pipe(PIPE_PIECES);
    std::thread::scope(|s| {
        let fetcher = s.spawn(move || {
            let window = (threads * 4).max(8);
            let result = restore_image(
                index,
                store.chunk_store(),
                &mut writer,
                name,
                threads,
                window,
                counters,
            );
            if let Err(e) = &result {
                // The decoder sees the failure instead of a truncated stream.
                writer.fail(std::io::Error::other(e.to_string()));
            }
            result
        });
        let consumed = consume(&mut reader);
        drop(reader);
        let fetched = fetcher
            .join()
            .map_err(|_| anyhow::anyhow!("the chunk fetcher panicked"))?;
        match (consumed, fetched) {
            // The consumer stopped, early on purpose or with an error of its own (a restore
            // target that is full, a file that exists): the fetcher only found the pipe closed.
            (consumed, Err(e)) if e.is_closed_target() => consumed,
            // The fetch failed: the consumer saw a failed stream, the fetcher knows why.
            (_, Err(e)) => Err(e.into()),
            (consumed, Ok(_)) => consumed,
        }
    })
}

/// The whole stream in memory: for catalogs, which are small (the caller bounds the size).
pub fn read_all(
    store: &Datastore,
    index: &DynamicIndex,
    name: &str,
    threads: usize,
) -> Result<Vec<u8>> {
    // Written in order: one allocation of the size the index gives (callers bound it).
    let mut out = Vec::with_capacity(usize::try_from(index.size()).unwrap_or(0));
    restore_image(
        index,
        store.chunk_store(),
        &mut out,
        name,
        threads,
        (threads * 4).max(8),
        &RestoreCounters::default(),
    )?;
    Ok(out)
}
