//! The image restore pipeline:
//! dispatcher (window of N chunks) -> workers (read, decompress, verify) -> in-order writer.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender};
use stowage_types::Digest;

mod each_chunk;
mod repeat_cache;

pub use each_chunk::{for_each_chunk, ChunkFault, VerifiedReader};

use repeat_cache::{Lookup, RepeatCache};

use crate::chunk::ChunkCheckError;
use crate::codec::{verify_chunk, ChunkDecoder};
use crate::traits::PositionalWrite;
use crate::{ChunkLayout, ChunkSource, ImageTarget, PipelineError};

/// Live counters for a progress display.
#[derive(Default)]
pub struct RestoreCounters {
    /// Image bytes written to the target (holes included).
    pub done: AtomicU64,
    /// Encoded bytes read from the store.
    pub read: AtomicU64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreStats {
    pub size: u64,
    pub chunks: u64,
    /// Bytes restored as holes (or explicit zeros) without reading a chunk.
    pub zero_bytes: u64,
    /// Encoded bytes read from the store.
    pub read_bytes: u64,
    pub duration: Duration,
}

enum Piece {
    Zero,
    Data {
        buf: Vec<u8>,
        encoded: u64,
    },
    /// Written to the target by the worker already (see [`ImageTarget::positional`]).
    Written {
        buf: Vec<u8>,
        encoded: u64,
    },
}

struct Fetched {
    index: usize,
    piece: Piece,
}

/// How many repeated chunks a restore keeps decoded.
const REPEAT_CACHE_CHUNKS: usize = 8;

/// Restores a stream (an image, or an archive's byte stream) into `target` with `threads` workers and at most `window` chunks
/// in flight (memory: about `window * chunk_size`).
pub fn restore_image(
    index: &dyn ChunkLayout,
    source: &dyn ChunkSource,
    target: &mut dyn ImageTarget,
    target_name: &str,
    threads: usize,
    window: usize,
    counters: &RestoreCounters,
) -> Result<RestoreStats, PipelineError> {
    let started = Instant::now();
    let threads = threads.max(1);
    let window = window.max(threads);
    let zero_digests: HashMap<usize, Digest> = index
        .zero_lengths()
        .into_iter()
        .map(|len| (len, source.codec().zero_digest(len)))
        .collect();
    let is_zero_chunk = |len: usize, d: &Digest| zero_digests.get(&len) == Some(d);

    let cache = RepeatCache::new(index, REPEAT_CACHE_CHUNKS);
    let (token_tx, token_rx) = bounded::<Vec<u8>>(window);
    for _ in 0..window {
        let _ = token_tx.send(Vec::new());
    }
    let (job_tx, job_rx) = bounded::<(usize, Vec<u8>)>(window);
    let (done_tx, done_rx) = bounded::<Result<Fetched, PipelineError>>(window);

    let positional = target.positional();
    std::thread::scope(|s| {
        s.spawn(move || {
            for i in 0..index.chunk_count() {
                let Ok(buf) = token_rx.recv() else { return };
                if job_tx.send((i, buf)).is_err() {
                    return;
                }
            }
        });
        let cache = &cache;
        let direct = positional.as_deref().map(|d| (d, target_name));
        for _ in 0..threads {
            let (job_rx, done_tx) = (job_rx.clone(), done_tx.clone());
            let is_zero_chunk = &is_zero_chunk;
            s.spawn(move || {
                match FetchWorker::new(index, source, cache, is_zero_chunk, counters, direct) {
                    Ok(worker) => fetch_worker(worker, job_rx, done_tx),
                    Err(e) => {
                        let _ = done_tx.send(Err(e));
                    }
                }
            });
        }
        drop((job_rx, done_tx));
        let result = write_in_order(index, target, target_name, &done_rx, &token_tx, counters);
        // Unblock the dispatcher and workers whether or not the writer succeeded.
        drop(done_rx);
        drop(token_tx);
        let mut stats = result?;
        stats.duration = started.elapsed();
        Ok(stats)
    })
}

/// What a worker does with one chunk of the index.
enum Step {
    /// Done without reading: a zero chunk, or a repeated chunk already decoded.
    Ready(Piece),
    /// Read, decode and verify it.
    Fetch,
}

struct FetchWorker<'a> {
    index: &'a dyn ChunkLayout,
    source: &'a dyn ChunkSource,
    cache: &'a RepeatCache,
    is_zero_chunk: &'a (dyn Fn(usize, &Digest) -> bool + Sync),
    counters: &'a RestoreCounters,
    decoder: Box<dyn ChunkDecoder>,
    encoded: [Vec<u8>; 2],
    /// Repeated chunks this worker claimed and has not put into the cache yet.
    claims: Vec<Digest>,
    /// The target, when workers write to it themselves, and its name for errors.
    direct: Option<(&'a dyn PositionalWrite, &'a str)>,
}

impl Drop for FetchWorker<'_> {
    /// Gives up what it claimed, so no other worker waits for it forever (a panic, say).
    fn drop(&mut self) {
        for digest in &self.claims {
            self.cache.abandon(digest);
        }
    }
}

impl FetchWorker<'_> {
    /// What chunk `i` needs. `wait`: whether to wait for a chunk another worker is fetching
    /// (`None` comes back if not; a worker holding a claim must not wait).
    fn step(&mut self, i: usize, mut buf: Vec<u8>, wait: bool) -> (Option<Step>, Vec<u8>) {
        let (_, len, digest) = self.index.chunk(i);
        if (self.is_zero_chunk)(len, digest) {
            return (Some(Step::Ready(Piece::Zero)), buf);
        }
        let lookup = match wait {
            true => self.cache.lookup(digest),
            false => self.cache.try_lookup(digest),
        };
        match lookup {
            Lookup::Hit(data) => {
                buf.clear();
                buf.extend_from_slice(&data);
                (
                    Some(Step::Ready(Piece::Data { buf, encoded: 0 })),
                    Vec::new(),
                )
            }
            Lookup::Single => (Some(Step::Fetch), buf),
            Lookup::Claimed => {
                self.claims.push(*digest);
                (Some(Step::Fetch), buf)
            }
            Lookup::Busy => (None, buf),
        }
    }

    fn fetch(&mut self, i: usize, mut buf: Vec<u8>) -> Result<Fetched, PipelineError> {
        let (offset, len, digest) = self.index.chunk(i);
        let n = fetch_one(
            self.source,
            &mut *self.decoder,
            digest,
            offset,
            len,
            &mut self.encoded[0],
            &mut buf,
        );
        self.finish(i, buf, n)
    }

    /// Two chunks read and decoded one after the other, then hashed together
    /// ([`sha256_pair`]).
    fn fetch_pair(
        &mut self,
        (i, mut a): (usize, Vec<u8>),
        (j, mut b): (usize, Vec<u8>),
    ) -> [Result<Fetched, PipelineError>; 2] {
        let ea = self.read_decoded(i, 0, &mut a);
        let eb = self.read_decoded(j, 1, &mut b);
        let (ea, eb) = match (ea, eb) {
            (Ok(na), Ok(nb)) => {
                let (da, db) = self.source.codec().digest_pair(&a, &b);
                (
                    self.check(i, &da).map(|()| na),
                    self.check(j, &db).map(|()| nb),
                )
            }
            (ea, eb) => (
                ea.and_then(|n| self.check(i, &self.source.codec().digest(&a)).map(|()| n)),
                eb.and_then(|n| self.check(j, &self.source.codec().digest(&b)).map(|()| n)),
            ),
        };
        let first = self.finish(i, a, ea);
        [first, self.finish(j, b, eb)]
    }

    /// A fetched chunk, or the claim on it given up.
    fn finish(
        &mut self,
        i: usize,
        buf: Vec<u8>,
        result: Result<u64, PipelineError>,
    ) -> Result<Fetched, PipelineError> {
        match result {
            Ok(n) => Ok(self.fetched(i, buf, n)),
            Err(e) => {
                let digest = self.index.chunk(i).2;
                self.claims.retain(|d| d != digest);
                self.cache.abandon(digest);
                Err(e)
            }
        }
    }

    /// Reads chunk `i` into `self.encoded[slot]` and decodes it into `out` (length checked, the
    /// digest not yet); returns its encoded size.
    fn read_decoded(
        &mut self,
        i: usize,
        slot: usize,
        out: &mut Vec<u8>,
    ) -> Result<u64, PipelineError> {
        let (offset, len, digest) = self.index.chunk(i);
        let encoded = &mut self.encoded[slot];
        self.source.read_chunk(digest, encoded)?;
        self.decoder
            .decode(encoded, len, out)
            .map_err(|source| PipelineError::Corrupt {
                digest: *digest,
                offset,
                source,
            })?;
        Ok(encoded.len() as u64)
    }

    fn check(&self, i: usize, actual: &Digest) -> Result<(), PipelineError> {
        let (offset, _, digest) = self.index.chunk(i);
        match actual == digest {
            true => Ok(()),
            false => Err(PipelineError::Corrupt {
                digest: *digest,
                offset,
                source: ChunkCheckError::Digest(*actual),
            }),
        }
    }

    /// With a positional target, writes a verified chunk at its offset right here.
    fn write_direct(&self, fetched: Fetched) -> Result<Fetched, PipelineError> {
        let (Some((target, name)), Piece::Data { buf, encoded }) = (self.direct, &fetched.piece)
        else {
            return Ok(fetched);
        };
        let offset = self.index.chunk(fetched.index).0;
        target
            .write_at(offset, buf)
            .map_err(|source| PipelineError::TargetWrite {
                name: name.to_string(),
                source,
            })?;
        let (index, encoded) = (fetched.index, *encoded);
        let Piece::Data { buf, .. } = fetched.piece else {
            unreachable!("matched above")
        };
        Ok(Fetched {
            index,
            piece: Piece::Written { buf, encoded },
        })
    }

    fn fetched(&mut self, i: usize, buf: Vec<u8>, encoded: u64) -> Fetched {
        let digest = self.index.chunk(i).2;
        self.claims.retain(|d| d != digest);
        self.cache.put(digest, &buf);
        self.counters.read.fetch_add(encoded, Ordering::Relaxed);
        Fetched {
            index: i,
            piece: Piece::Data { buf, encoded },
        }
    }
}

impl<'a> FetchWorker<'a> {
    fn new(
        index: &'a dyn ChunkLayout,
        source: &'a dyn ChunkSource,
        cache: &'a RepeatCache,
        is_zero_chunk: &'a (dyn Fn(usize, &Digest) -> bool + Sync),
        counters: &'a RestoreCounters,
        direct: Option<(&'a dyn PositionalWrite, &'a str)>,
    ) -> Result<Self, PipelineError> {
        let decoder = source
            .codec()
            .decoder()
            .map_err(|e| PipelineError::Thread(e.to_string()))?;
        Ok(FetchWorker {
            index,
            source,
            cache,
            is_zero_chunk,
            counters,
            decoder,
            encoded: [Vec::new(), Vec::new()],
            claims: Vec::new(),
            direct,
        })
    }
}

/// A worker's loop: takes chunk positions until the queue closes or the writer hangs up.
fn fetch_worker(
    mut worker: FetchWorker<'_>,
    jobs: Receiver<(usize, Vec<u8>)>,
    done: Sender<Result<Fetched, PipelineError>>,
) {
    let index = worker.index;
    // A chunk taken from the queue to pair with, but not fetched with the one before.
    let mut waiting: Option<(usize, Vec<u8>)> = None;
    while let Some((i, buf)) = waiting.take().or_else(|| jobs.recv().ok()) {
        let results = match worker.step(i, buf, true) {
            (Some(Step::Ready(piece)), _) => vec![Ok(Fetched { index: i, piece })],
            (_, buf) => match jobs.try_recv() {
                // The same chunk again: it comes from the repeat cache once fetched.
                Ok((j, other)) if index.chunk(j).2 == index.chunk(i).2 => {
                    waiting = Some((j, other));
                    vec![worker.fetch(i, buf)]
                }
                Ok((j, other)) => match worker.step(j, other, false) {
                    (Some(Step::Fetch), other) => worker.fetch_pair((i, buf), (j, other)).into(),
                    (Some(Step::Ready(piece)), _) => {
                        vec![worker.fetch(i, buf), Ok(Fetched { index: j, piece })]
                    }
                    (None, other) => {
                        waiting = Some((j, other));
                        vec![worker.fetch(i, buf)]
                    }
                },
                Err(_) => vec![worker.fetch(i, buf)],
            },
        };
        for result in results {
            let result = result.and_then(|fetched| worker.write_direct(fetched));
            if done.send(result).is_err() {
                return;
            }
        }
    }
}

/// Reads, decodes and verifies one chunk into `out`; returns its encoded size.
pub(crate) fn fetch_one(
    source: &dyn ChunkSource,
    decoder: &mut dyn ChunkDecoder,
    digest: &Digest,
    offset: u64,
    len: usize,
    encoded: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> Result<u64, PipelineError> {
    source.read_chunk(digest, encoded)?;
    verify_chunk(source.codec(), decoder, digest, encoded, len, out).map_err(|source| {
        PipelineError::Corrupt {
            digest: *digest,
            offset,
            source,
        }
    })?;
    Ok(encoded.len() as u64)
}

fn write_in_order(
    index: &dyn ChunkLayout,
    target: &mut dyn ImageTarget,
    target_name: &str,
    done: &Receiver<Result<Fetched, PipelineError>>,
    tokens: &Sender<Vec<u8>>,
    counters: &RestoreCounters,
) -> Result<RestoreStats, PipelineError> {
    let write_err = |source| PipelineError::TargetWrite {
        name: target_name.to_string(),
        source,
    };
    let mut stats = RestoreStats::default();
    let mut pending: BTreeMap<usize, Piece> = BTreeMap::new();
    let mut next = 0usize;
    while next < index.chunk_count() {
        let fetched = done
            .recv()
            .map_err(|_| PipelineError::Thread("restore workers stopped early".into()))??;
        pending.insert(fetched.index, fetched.piece);
        while let Some(piece) = pending.remove(&next) {
            let (offset, len, _) = index.chunk(next);
            let buf = match piece {
                Piece::Zero => {
                    target.write_zeroes(offset, len as u64).map_err(write_err)?;
                    stats.zero_bytes += len as u64;
                    Vec::new()
                }
                Piece::Data { buf, encoded } => {
                    stats.read_bytes += encoded;
                    target.write_owned(offset, buf).map_err(write_err)?
                }
                Piece::Written { buf, encoded } => {
                    stats.read_bytes += encoded;
                    buf
                }
            };
            counters.done.fetch_add(len as u64, Ordering::Relaxed);
            stats.chunks += 1;
            next += 1;
            let _ = tokens.send(buf);
        }
    }
    target.finish(index.total_size()).map_err(write_err)?;
    stats.size = index.total_size();
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::MemStore;
    use crate::{backup_image, BackupCounters, BackupSession, StoreError};
    use std::collections::HashSet;
    use std::io;
    use stowage_format::FixedIndex;

    #[derive(Default)]
    struct VecTarget {
        data: Vec<u8>,
        holes: u64,
        last_offset: Option<u64>,
    }

    impl ImageTarget for VecTarget {
        fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
            assert!(
                self.last_offset.is_none_or(|l| l < offset),
                "writes out of order"
            );
            self.last_offset = Some(offset);
            let end = offset as usize + data.len();
            if self.data.len() < end {
                self.data.resize(end, 0);
            }
            self.data[offset as usize..end].copy_from_slice(data);
            Ok(())
        }
        fn write_zeroes(&mut self, offset: u64, len: u64) -> io::Result<()> {
            self.last_offset = Some(offset);
            self.holes += len;
            Ok(())
        }
        fn finish(&mut self, size: u64) -> io::Result<()> {
            self.data.resize(size as usize, 0);
            Ok(())
        }
    }

    fn backup(data: &[u8], store: &MemStore) -> FixedIndex {
        let b = backup_image(
            &mut crate::StreamSource(data),
            "t",
            store,
            &BackupSession::new(HashSet::new()),
            4096,
            2,
            &BackupCounters::default(),
        )
        .unwrap();
        FixedIndex {
            uuid: [0; 16],
            ctime: 0,
            size: b.size,
            chunk_size: b.chunk_size,
            digests: b.digests,
        }
    }

    fn sample() -> Vec<u8> {
        let mut data: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
        data[8192..16384].fill(0);
        data.extend(std::iter::repeat_n(0u8, 777));
        data
    }

    #[test]
    fn restores_byte_identical_with_holes() {
        let data = sample();
        let store = MemStore::default();
        let index = backup(&data, &store);
        for (threads, window) in [(1, 1), (3, 4), (4, 64)] {
            let mut target = VecTarget::default();
            let stats = restore_image(
                &index,
                &store,
                &mut target,
                "vec",
                threads,
                window,
                &RestoreCounters::default(),
            )
            .unwrap();
            assert_eq!(target.data, data);
            assert_eq!(target.holes, 8192);
            assert_eq!(stats.zero_bytes, 8192);
        }
    }

    #[test]
    fn repeated_chunks_are_read_once() {
        let block: Vec<u8> = (0..4096u32).map(|i| (i * 13 % 256) as u8).collect();
        let mut data = block.repeat(6);
        data.extend((0..4096u32).map(|i| (i % 7) as u8));
        let store = MemStore::default();
        let index = backup(&data, &store);
        let mut target = VecTarget::default();
        restore_image(
            &index,
            &store,
            &mut target,
            "vec",
            1,
            2,
            &RestoreCounters::default(),
        )
        .unwrap();
        assert_eq!(target.data, data);
        assert_eq!(store.reads(), 2);
    }

    #[test]
    fn a_pair_of_chunks_is_verified_each_on_its_own() {
        let data = sample();
        let store = MemStore::default();
        let index = backup(&data, &store);
        let cache = RepeatCache::new(&index, 0);
        let never_zero = |_: usize, _: &Digest| false;
        let counters = RestoreCounters::default();
        let mut worker =
            FetchWorker::new(&index, &store, &cache, &never_zero, &counters, None).unwrap();
        let [a, b] = worker.fetch_pair((1, Vec::new()), (2, Vec::new()));
        for (i, fetched) in [(1, a), (2, b)] {
            let Piece::Data { buf, .. } = fetched.unwrap().piece else {
                panic!("chunk {i} is data")
            };
            assert!(buf == data[i * 4096..(i + 1) * 4096], "chunk {i}");
        }
        // The second of a pair holds another chunk's data: only it fails, at its own offset.
        store.put(&index.digests[6], store.blob(&index.digests[1]));
        let [a, b] = worker.fetch_pair((5, Vec::new()), (6, Vec::new()));
        assert!(a.is_ok());
        let err = b.err().expect("chunk 6 is corrupt");
        assert!(
            matches!(err, PipelineError::Corrupt { offset: 24576, .. }),
            "{err}"
        );
    }

    #[test]
    fn a_worker_that_goes_away_gives_up_its_claims() {
        let data = [vec![3u8; 4096], vec![3u8; 4096]].concat();
        let store = MemStore::default();
        let index = backup(&data, &store);
        let cache = RepeatCache::new(&index, 8);
        let never_zero = |_: usize, _: &Digest| false;
        let counters = RestoreCounters::default();
        let mut worker =
            FetchWorker::new(&index, &store, &cache, &never_zero, &counters, None).unwrap();
        assert!(matches!(
            worker.step(0, Vec::new(), true).0,
            Some(Step::Fetch)
        ));
        drop(worker); // as a panic would, before the chunk was fetched
        assert!(matches!(
            cache.try_lookup(&index.digests[1]),
            repeat_cache::Lookup::Claimed
        ));
    }

    #[test]
    fn corrupt_and_missing_chunks_fail() {
        let data = sample();
        let store = MemStore::default();
        let index = backup(&data, &store);
        let victim = index.digests[5];
        let good = store.blob(&victim);
        let other = store.blob(&index.digests[6]);
        store.put(&victim, other);
        let err = restore_image(
            &index,
            &store,
            &mut VecTarget::default(),
            "vec",
            2,
            4,
            &RestoreCounters::default(),
        )
        .unwrap_err();
        assert!(
            matches!(err, PipelineError::Corrupt { offset: 20480, .. }),
            "{err}"
        );
        store.put(&victim, good);
        store.remove(&index.digests[0]);
        let err = restore_image(
            &index,
            &store,
            &mut VecTarget::default(),
            "vec",
            2,
            4,
            &RestoreCounters::default(),
        )
        .unwrap_err();
        assert!(
            matches!(err, PipelineError::Store(StoreError::Missing { .. })),
            "{err}"
        );
    }
}
