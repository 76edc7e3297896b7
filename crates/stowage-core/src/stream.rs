//! The byte stream behind a dynamic index (a file-tree archive, a catalog), fetched,
//! decompressed and verified on helper threads: handed to a decoder on the calling thread
//! through a bounded pipe, or read whole into memory.

use stowage_format::DynamicIndex;

use crate::{pipe, restore_image, ChunkSource, PipeReader, PipelineError, RestoreCounters};

/// Pieces of 1 MiB the fetch may run ahead of the consumer.
const PIPE_PIECES: usize = 16;

/// Runs `consume` on the stream of `index` read from `source` (`name` for messages). `consume`
/// may stop early (reading one file): the fetch then stops too. A failed fetch is the error
/// returned (the consumer saw a failed stream); otherwise the consumer's own.
pub fn with_stream<T, E: From<PipelineError>>(
    source: &dyn ChunkSource,
    index: &DynamicIndex,
    name: &str,
    threads: usize,
    counters: &RestoreCounters,
    consume: impl FnOnce(&mut PipeReader) -> Result<T, E>,
) -> Result<T, E> {
    let (mut writer, mut reader) = pipe(PIPE_PIECES);
    std::thread::scope(|s| {
        let fetcher = s.spawn(move || {
            let window = (threads * 4).max(8);
            let result = restore_image(index, source, &mut writer, name, threads, window, counters);
            if let Err(e) = &result {
                // The consumer sees the failure instead of a truncated stream.
                writer.fail(std::io::Error::other(e.to_string()));
            }
            result
        });
        let consumed = consume(&mut reader);
        drop(reader);
        let fetched = fetcher
            .join()
            .map_err(|_| PipelineError::Thread("the chunk fetcher panicked".into()))?;
        match (consumed, fetched) {
            // The consumer stopped, early on purpose or with an error of its own (a restore
            // target that is full, a file that exists): the fetcher only found the pipe
            // closed.
            (consumed, Err(e)) if e.is_closed_target() => consumed,
            (_, Err(e)) => Err(e.into()),
            (consumed, Ok(_)) => consumed,
        }
    })
}

/// The whole stream of `index` in memory (a catalog, which is small: callers bound it).
pub fn read_stream(
    source: &dyn ChunkSource,
    index: &DynamicIndex,
    name: &str,
    threads: usize,
) -> Result<Vec<u8>, PipelineError> {
    let mut out = Vec::with_capacity(usize::try_from(index.size()).unwrap_or(0));
    restore_image(
        index,
        source,
        &mut out,
        name,
        threads,
        (threads * 4).max(8),
        &RestoreCounters::default(),
    )?;
    Ok(out)
}
