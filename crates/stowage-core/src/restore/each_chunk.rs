//! Reading many chunks in no particular order, each verified: what verify and sync need (the
//! restore pipeline proper writes a stream in order).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use stowage_types::Digest;

use crate::codec::{verify_chunk, ChunkDecoder};
use crate::{ChunkCheckError, ChunkSource, StoreError};

/// Why a chunk could not be read as good.
#[derive(Debug, thiserror::Error)]
pub enum ChunkFault {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Bad(#[from] ChunkCheckError),
}

/// One worker's reader: reads a chunk and checks it (digest and length; an encrypted chunk,
/// which cannot be decoded without its key, counts as good once its CRC is right).
pub struct VerifiedReader<'a> {
    source: &'a dyn ChunkSource,
    decoder: Box<dyn ChunkDecoder>,
    encoded: Vec<u8>,
    plain: Vec<u8>,
}

impl VerifiedReader<'_> {
    /// The chunk as stored, once verified.
    pub fn read(&mut self, digest: &Digest, len: usize) -> Result<&[u8], ChunkFault> {
        self.source.read_chunk(digest, &mut self.encoded)?;
        let codec = self.source.codec();
        match verify_chunk(
            codec,
            &mut *self.decoder,
            digest,
            &self.encoded,
            len,
            &mut self.plain,
        ) {
            Ok(()) => Ok(&self.encoded),
            Err(e) if e.is_encrypted_intact() => Ok(&self.encoded),
            Err(e) => Err(e.into()),
        }
    }
}

/// Runs `each` for every `(digest, length)` of `chunks` on `threads` workers, each with its own
/// [`VerifiedReader`] of `source`. The first error `each` returns stops every worker and is
/// returned.
pub fn for_each_chunk<E>(
    source: &dyn ChunkSource,
    chunks: &[(Digest, usize)],
    threads: usize,
    each: impl Fn(&mut VerifiedReader<'_>, &Digest, usize) -> Result<(), E> + Sync,
) -> Result<(), E>
where
    E: From<ChunkFault> + Send,
{
    if chunks.is_empty() {
        return Ok(());
    }
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let failure = Mutex::new(None);
    let fail = |e: E| {
        stop.store(true, Ordering::Relaxed);
        if let Ok(mut f) = failure.lock() {
            f.get_or_insert(e);
        }
    };
    std::thread::scope(|s| {
        for _ in 0..threads.clamp(1, chunks.len()) {
            s.spawn(|| {
                let decoder = match source.codec().decoder() {
                    Ok(d) => d,
                    Err(e) => return fail(E::from(ChunkFault::Bad(e.into()))),
                };
                let mut reader = VerifiedReader {
                    source,
                    decoder,
                    encoded: Vec::new(),
                    plain: Vec::new(),
                };
                while !stop.load(Ordering::Relaxed) {
                    let Some((digest, len)) = chunks.get(next.fetch_add(1, Ordering::Relaxed))
                    else {
                        break;
                    };
                    if let Err(e) = each(&mut reader, digest, *len) {
                        return fail(e);
                    }
                }
            });
        }
    });
    match failure.into_inner().ok().flatten() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::MemStore;
    use crate::{ChunkCodec, PLAIN};

    #[test]
    fn every_chunk_is_read_and_verified_and_the_first_error_stops_all() {
        let store = MemStore::default();
        let mut chunks = Vec::new();
        for i in 0..50u8 {
            let data = vec![i; 1000 + usize::from(i)];
            let mut encoded = Vec::new();
            PLAIN
                .encoder()
                .unwrap()
                .encode(&data, &mut encoded)
                .unwrap();
            let digest = PLAIN.digest(&data);
            store.put(&digest, encoded);
            chunks.push((digest, data.len()));
        }
        let seen = AtomicUsize::new(0);
        let result: Result<(), ChunkFault> = for_each_chunk(&store, &chunks, 3, |r, d, len| {
            r.read(d, len)?;
            seen.fetch_add(1, Ordering::Relaxed);
            Ok(())
        });
        result.unwrap();
        assert_eq!(seen.into_inner(), 50);

        // A chunk of the wrong length, and one missing: errors, and the walk stops early.
        let mut bad = chunks.clone();
        bad[10].1 += 1;
        store.remove(&chunks[40].0);
        let err = for_each_chunk(&store, &bad, 1, |r, d, len| r.read(d, len).map(|_| ()));
        assert!(matches!(
            err,
            Err(ChunkFault::Bad(ChunkCheckError::Length { .. }))
        ));
        let err = for_each_chunk(&store, &chunks[30..], 2, |r, d, len| {
            r.read(d, len).map(|_| ())
        });
        assert!(matches!(
            err,
            Err(ChunkFault::Store(StoreError::Missing { .. }))
        ));
    }
}
