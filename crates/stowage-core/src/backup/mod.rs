//! The image backup pipeline:
//! reader -> [bounded] -> workers (zero check, SHA-256, known?, zstd, store) -> [bounded] -> collector.
//!
//! A source may also hand over chunks that are already in the store by reference
//! ([`Next::Known`]): they take their place in the digest list and cost no hashing, compression
//! or store access.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender};
use stowage_chunker::is_zero;
use stowage_format::{blake3, MAX_DYNAMIC_CHUNK};
use stowage_types::Digest;

use crate::codec::ChunkEncoder;
use crate::fast_hash::{Blake3, FastHashes};
mod session;

pub use session::BackupSession;
use session::Claim;

use crate::session::{IndexChunk, IndexClose, IndexKind, IndexTally, IndexWriter};
use crate::{ChunkSink, PipelineError};

/// Bytes of chunk buffers a backup aims to stay within (more only with very many threads).
const MAX_BUFFER_BYTES: usize = 192 << 20;

/// Live counters for a progress display, updated by the pipeline as it goes.
#[derive(Default)]
pub struct BackupCounters {
    /// Bytes of source read so far.
    pub read: AtomicU64,
    /// Encoded bytes written to the store so far.
    pub written: AtomicU64,
}

/// What one image backup did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageBackupStats {
    pub size: u64,
    pub chunks: u64,
    /// Bytes in chunks that are all zero.
    pub zero_bytes: u64,
    /// Bytes in non-zero chunks the store already had (previous snapshot, store, or this backup),
    /// and in known chunks the source re-referenced ([`Next::Known`], never counted as zero).
    pub reused_bytes: u64,
    /// Plain bytes of the chunks this backup stored.
    pub new_bytes: u64,
    pub new_chunks: u64,
    /// Encoded bytes of the chunks this backup stored.
    pub written_bytes: u64,
    pub duration: Duration,
}

impl ImageBackupStats {
    /// Adds another stream's figures (durations overlap: the longer one counts).
    pub fn add(&mut self, other: &ImageBackupStats) {
        self.size += other.size;
        self.chunks += other.chunks;
        self.zero_bytes += other.zero_bytes;
        self.reused_bytes += other.reused_bytes;
        self.new_bytes += other.new_bytes;
        self.new_chunks += other.new_chunks;
        self.written_bytes += other.written_bytes;
        self.duration = self.duration.max(other.duration);
    }
}

/// The result of an image backup collected in memory (tests): the digest list of a fixed index.
#[cfg(test)]
#[derive(Debug, Clone)]
pub(crate) struct ImageBackup {
    pub digests: Vec<Digest>,
    /// Length of each chunk, in order (all `chunk_size` but the last for fixed chunking).
    pub lengths: Vec<u32>,
    pub size: u64,
    pub chunk_size: u64,
    pub stats: ImageBackupStats,
    /// With fast hashes ([`backup_image_fast`]): each chunk's BLAKE3, `None` for all-zero and
    /// known chunks; empty otherwise.
    pub blake3: Vec<Option<Blake3>>,
}

/// What [`ImageSource::next_chunk`] produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// The stream is over.
    End,
    /// The next chunk is in `buf` (at least one byte).
    Data,
    /// The next chunk is one the store already holds (a chunk of the previous snapshot,
    /// re-referenced): `len` bytes (at least one) with this digest. `buf` is untouched. The
    /// pipeline neither hashes, compresses, nor stores it; it counts as reused.
    Known { digest: Digest, len: u32 },
}

/// Image data, read sequentially one chunk at a time.
pub trait ImageSource: Send {
    /// Produces the next chunk. Data chunks are read into `buf` (cleared first), at most `len`
    /// bytes (fewer only at the end) for fixed-size sources; content-defined sources ignore
    /// `len`.
    fn next_chunk(&mut self, len: usize, buf: &mut Vec<u8>) -> io::Result<Next>;
}

impl<S: ImageSource + ?Sized> ImageSource for Box<S> {
    fn next_chunk(&mut self, len: usize, buf: &mut Vec<u8>) -> io::Result<Next> {
        (**self).next_chunk(len, buf)
    }
}

/// Any [`Read`] (a file, a block device, a pipe, standard input) as an [`ImageSource`].
pub struct StreamSource<R>(pub R);

impl<R: Read + Send> ImageSource for StreamSource<R> {
    fn next_chunk(&mut self, len: usize, buf: &mut Vec<u8>) -> io::Result<Next> {
        buf.clear();
        (&mut self.0).take(len as u64).read_to_end(buf)?;
        Ok(if buf.is_empty() {
            Next::End
        } else {
            Next::Data
        })
    }
}

struct Job {
    index: usize,
    work: Work,
}

enum Work {
    /// Data to hash and maybe store; the buffer goes back to the pool afterwards.
    Data(Vec<u8>),
    /// A chunk the store already holds.
    Known { digest: Digest, len: u32 },
}

enum Outcome {
    New { encoded: u64 },
    Reused,
}

struct Done {
    index: usize,
    digest: Digest,
    len: u64,
    zero: bool,
    outcome: Outcome,
    b3: Option<Blake3>,
}

/// A data chunk a worker hashes: where it goes, its data, whether it is all zeros, its BLAKE3.
type Pending = (usize, Vec<u8>, bool, Option<Blake3>);

/// Backs up one stream read sequentially from `source` in chunks of at most `chunk_size` bytes
/// (exactly that for images; content-defined for archives, see [`CdcSource`]), with `threads`
/// workers. Memory: at most `3 * threads + 2` chunk buffers, fewer for big chunk sizes; known
/// chunks ([`Next::Known`]) take no buffer. The index is collected in memory: for tests; a
/// backup appends to an index writer with [`backup_to_index`].
#[cfg(test)]
pub(crate) fn backup_image(
    source: &mut dyn ImageSource,
    source_name: &str,
    sink: &dyn ChunkSink,
    session: &BackupSession,
    chunk_size: usize,
    threads: usize,
    counters: &BackupCounters,
) -> Result<ImageBackup, PipelineError> {
    backup_image_with(
        source,
        source_name,
        sink,
        session,
        chunk_size,
        threads,
        counters,
        None,
    )
}

/// As [`backup_image`]; with `fast`, recognising the previous backup's chunks by BLAKE3 where
/// it knows them (see [`FastHashes`]) and recording every data chunk's BLAKE3 in
/// [`ImageBackup::blake3`] for the next backup.
#[cfg(test)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn backup_image_with(
    source: &mut dyn ImageSource,
    source_name: &str,
    sink: &dyn ChunkSink,
    session: &BackupSession,
    chunk_size: usize,
    threads: usize,
    counters: &BackupCounters,
    fast: Option<&FastHashes>,
) -> Result<ImageBackup, PipelineError> {
    let (mut digests, mut lengths, mut blake3) = (Vec::new(), Vec::new(), Vec::new());
    let mut keep = |chunks: &[IndexChunk], b3: &[Option<Blake3>]| {
        digests.extend(chunks.iter().map(|c| c.digest));
        lengths.extend(chunks.iter().map(|c| c.len));
        if fast.is_some() {
            blake3.extend_from_slice(b3);
        }
        Ok(())
    };
    let plan = Plan {
        source_name,
        sink,
        session,
        chunk_size,
        threads,
        counters,
        fast,
    };
    let stats = run(source, &plan, &mut keep)?;
    Ok(ImageBackup {
        size: stats.size,
        digests,
        lengths,
        chunk_size: chunk_size as u64,
        stats,
        blake3,
    })
}

/// What [`backup_to_index`] did: the figures, what to close the index with, and the
/// (SHA-256, BLAKE3) pairs of the data chunks when fast hashes were on.
#[derive(Debug, Clone)]
pub struct IndexedStream {
    pub stats: ImageBackupStats,
    pub close: IndexClose,
    pub fast_pairs: Vec<(Digest, Blake3)>,
}

/// Backs up one stream into an index writer: the workers upload through it and the collector
/// appends each chunk in stream order as soon as it and all before it are stored. The caller
/// closes the writer with [`IndexedStream::close`] (or drops it, failing the backup).
/// `max_chunk`: the largest chunk a content-defined source cuts (buffers are sized by it); a
/// fixed index's chunk size takes its place.
#[allow(clippy::too_many_arguments)]
pub fn backup_to_index(
    source: &mut dyn ImageSource,
    source_name: &str,
    writer: &dyn IndexWriter,
    kind: IndexKind,
    max_chunk: usize,
    session: &BackupSession,
    threads: usize,
    counters: &BackupCounters,
    fast: Option<&FastHashes>,
) -> Result<IndexedStream, PipelineError> {
    let chunk_size = match kind {
        IndexKind::Fixed { chunk_size, .. } => chunk_size as usize,
        IndexKind::Dynamic => max_chunk.clamp(1, MAX_DYNAMIC_CHUNK as usize),
    };
    let mut tally = IndexTally::new(kind);
    let mut fast_pairs = Vec::new();
    let mut append = |chunks: &[IndexChunk], b3: &[Option<Blake3>]| {
        writer.append(chunks)?;
        chunks.iter().for_each(|c| tally.add(c));
        let pairs = chunks
            .iter()
            .zip(b3)
            .filter_map(|(c, b)| b.map(|b| (c.digest, b)));
        fast_pairs.extend(pairs);
        Ok(())
    };
    let plan = Plan {
        source_name,
        sink: writer,
        session,
        chunk_size,
        threads,
        counters,
        fast,
    };
    let stats = run(source, &plan, &mut append)?;
    Ok(IndexedStream {
        stats,
        close: tally.close(),
        fast_pairs,
    })
}

/// Everything one pipeline run needs besides its source and where its chunks go in order.
struct Plan<'a> {
    source_name: &'a str,
    sink: &'a dyn ChunkSink,
    session: &'a BackupSession,
    chunk_size: usize,
    threads: usize,
    counters: &'a BackupCounters,
    fast: Option<&'a FastHashes>,
}

/// Receives the chunks in stream order, in batches, with their BLAKE3 where computed.
type Emit<'e> = dyn FnMut(&[IndexChunk], &[Option<Blake3>]) -> Result<(), PipelineError> + 'e;

fn run(
    source: &mut dyn ImageSource,
    plan: &Plan<'_>,
    emit: &mut Emit<'_>,
) -> Result<ImageBackupStats, PipelineError> {
    let started = Instant::now();
    let Plan {
        source_name,
        sink,
        session,
        chunk_size,
        counters,
        fast,
        ..
    } = *plan;
    let threads = plan.threads.max(1);
    // Buffers grow to the chunk size; keep the worst case bounded for big chunk sizes.
    // Three per worker (a pair being hashed and one waiting) and two for the reader.
    let buffers = (3 * threads + 2).min((MAX_BUFFER_BYTES / chunk_size).max(threads + 2));
    let zero = session.codec().zero_digest(chunk_size);
    let cancel = AtomicBool::new(false);

    let (pool_tx, pool_rx) = bounded::<Vec<u8>>(buffers);
    for _ in 0..buffers {
        let _ = pool_tx.send(Vec::with_capacity(chunk_size));
    }
    let (job_tx, job_rx) = bounded::<Job>(2 * threads);
    let (done_tx, done_rx) = bounded::<Result<Done, PipelineError>>(buffers);

    std::thread::scope(|s| {
        let reader = s.spawn(|| {
            read_chunks(
                source,
                source_name,
                chunk_size,
                pool_rx,
                job_tx,
                &cancel,
                counters,
            )
        });
        for _ in 0..threads {
            let (job_rx, pool_tx, done_tx) = (job_rx.clone(), pool_tx.clone(), done_tx.clone());
            let zero = &zero;
            s.spawn(
                move || match Worker::new(sink, session, zero, chunk_size, counters) {
                    Ok(mut worker) => {
                        worker.fast = fast;
                        worker.run(&job_rx, &pool_tx, &done_tx)
                    }
                    Err(e) => {
                        let _ = done_tx.send(Err(e));
                    }
                },
            );
        }
        drop((job_rx, pool_tx, done_tx));

        let collected = collect(&done_rx, emit);
        if collected.is_err() {
            cancel.store(true, Ordering::Relaxed);
        }
        drop(done_rx);
        let read_result = reader
            .join()
            .map_err(|_| PipelineError::Thread("reader panicked".into()))?;
        read_result?;
        let mut stats = collected?;
        stats.duration = started.elapsed();
        Ok(stats)
    })
}

fn read_chunks(
    source: &mut dyn ImageSource,
    name: &str,
    chunk_size: usize,
    pool: Receiver<Vec<u8>>,
    jobs: Sender<Job>,
    cancel: &AtomicBool,
    counters: &BackupCounters,
) -> Result<(), PipelineError> {
    let source_error = |source: io::Error| PipelineError::SourceRead {
        name: name.to_string(),
        source,
    };
    let invalid = |what: &str| source_error(io::Error::new(io::ErrorKind::InvalidData, what));
    // A buffer the source left untouched (it produced a known chunk): used for the next call.
    let mut spare: Option<Vec<u8>> = None;
    for index in 0.. {
        if cancel.load(Ordering::Relaxed) {
            return Ok(());
        }
        let mut buf = match spare.take() {
            Some(buf) => buf,
            None => match pool.recv() {
                Ok(buf) => buf,
                Err(_) => return Ok(()),
            },
        };
        let work = match source
            .next_chunk(chunk_size, &mut buf)
            .map_err(source_error)?
        {
            Next::End => return Ok(()),
            Next::Data => {
                if buf.is_empty() {
                    return Err(invalid("the source produced an empty chunk"));
                }
                counters.read.fetch_add(buf.len() as u64, Ordering::Relaxed);
                Work::Data(buf)
            }
            Next::Known { digest, len } => {
                if len == 0 {
                    return Err(invalid("the source produced an empty known chunk"));
                }
                counters.read.fetch_add(u64::from(len), Ordering::Relaxed);
                spare = Some(buf);
                Work::Known { digest, len }
            }
        };
        if jobs.send(Job { index, work }).is_err() {
            return Ok(());
        }
    }
    Ok(())
}

struct Worker<'a> {
    sink: &'a dyn ChunkSink,
    session: &'a BackupSession,
    zero: &'a Digest,
    chunk_size: usize,
    counters: &'a BackupCounters,
    encoder: Box<dyn ChunkEncoder>,
    encoded: Vec<u8>,
    /// BLAKE3 recognition and recording, if on.
    fast: Option<&'a FastHashes>,
}

impl<'a> Worker<'a> {
    fn new(
        sink: &'a dyn ChunkSink,
        session: &'a BackupSession,
        zero: &'a Digest,
        chunk_size: usize,
        counters: &'a BackupCounters,
    ) -> Result<Self, PipelineError> {
        let encoder = session
            .codec()
            .encoder()
            .map_err(|source| PipelineError::Compress {
                digest: *zero,
                source,
            })?;
        Ok(Worker {
            sink,
            session,
            zero,
            chunk_size,
            counters,
            encoder,
            encoded: Vec::with_capacity(chunk_size + 64),
            fast: None,
        })
    }

    /// Takes jobs until the queue closes or the collector hangs up. Data chunks that need
    /// SHA-256 are hashed two at a time (`sha256_pair`: about 1.4× the speed of one at a
    /// time): one is held until the next such chunk arrives, or the queue closes. With fast
    /// hashes on, a chunk whose BLAKE3 the previous backup recorded needs no SHA-256 at all.
    fn run(
        &mut self,
        jobs: &Receiver<Job>,
        pool: &Sender<Vec<u8>>,
        done: &Sender<Result<Done, PipelineError>>,
    ) {
        let mut held: Option<Pending> = None;
        for job in jobs {
            let results = match job.work {
                Work::Known { digest, len } => vec![Ok(Done {
                    index: job.index,
                    digest,
                    len: u64::from(len),
                    zero: false,
                    outcome: Outcome::Reused,
                    b3: None,
                })],
                Work::Data(buf) => {
                    let (zero, digest) = self.zero_check(&buf);
                    let b3 = match (digest, self.fast) {
                        (None, Some(_)) => Some(blake3(&buf)),
                        _ => None,
                    };
                    let recognised = b3.and_then(|b| self.fast.and_then(|f| f.lookup(&b)));
                    match (digest.or(recognised), held.take()) {
                        (Some(digest), kept) => {
                            held = kept;
                            let result = self.store((job.index, &buf, zero, b3), digest);
                            let _ = pool.send(buf);
                            vec![result]
                        }
                        (None, None) => {
                            held = Some((job.index, buf, zero, b3));
                            continue;
                        }
                        (None, Some((i, other, other_zero, other_b3))) => {
                            let (da, db) = self.session.codec().digest_pair(&other, &buf);
                            let results = vec![
                                self.store((i, &other, other_zero, other_b3), da),
                                self.store((job.index, &buf, zero, b3), db),
                            ];
                            let _ = pool.send(other);
                            let _ = pool.send(buf);
                            results
                        }
                    }
                }
            };
            for result in results {
                if done.send(result).is_err() {
                    return;
                }
            }
        }
        if let Some((i, buf, zero, b3)) = held {
            let result = self.store((i, &buf, zero, b3), self.session.codec().digest(&buf));
            let _ = done.send(result);
        }
    }

    /// Whether `data` is a whole chunk of zeros, and, if so, its (constant) digest.
    fn zero_check(&self, data: &[u8]) -> (bool, Option<Digest>) {
        let zero = is_zero(data);
        let digest = (zero && data.len() == self.chunk_size).then_some(*self.zero);
        (zero, digest)
    }

    /// Stores the chunk unless the previous snapshot, this backup or the store has it already.
    fn store(
        &mut self,
        (index, data, zero, b3): (usize, &[u8], bool, Option<Blake3>),
        digest: Digest,
    ) -> Result<Done, PipelineError> {
        let outcome = if self.session.known().contains(&digest) {
            Outcome::Reused
        } else {
            match self.session.claim(&digest) {
                Claim::Stored => Outcome::Reused,
                Claim::Pending => {
                    // Another worker stores it: the chunk may be appended only once it did.
                    self.session.wait_stored(&digest)?;
                    Outcome::Reused
                }
                Claim::Mine => {
                    let stored = self.store_new(&digest, data);
                    self.session.settle(&digest, stored.is_ok());
                    stored?
                }
            }
        };
        Ok(Done {
            index,
            digest,
            len: data.len() as u64,
            zero,
            outcome,
            b3,
        })
    }

    /// Stores a chunk this worker claimed, unless the store has it already.
    fn store_new(&mut self, digest: &Digest, data: &[u8]) -> Result<Outcome, PipelineError> {
        if self.sink.touch_chunk(digest)? {
            return Ok(Outcome::Reused);
        }
        self.encoder
            .encode(data, &mut self.encoded)
            .map_err(|source| PipelineError::Compress {
                digest: *digest,
                source,
            })?;
        self.sink.insert_chunk(digest, &self.encoded)?;
        let encoded = self.encoded.len() as u64;
        self.counters.written.fetch_add(encoded, Ordering::Relaxed);
        Ok(Outcome::New { encoded })
    }
}

/// Chunks handed on in stream order at a time (PBS's client merges about 64 per append).
const APPEND_BATCH: usize = 64;

/// Puts the chunks in order, hands them to `emit` in batches as soon as every chunk before
/// them is done, and adds up the statistics.
fn collect(
    done: &Receiver<Result<Done, PipelineError>>,
    emit: &mut Emit<'_>,
) -> Result<ImageBackupStats, PipelineError> {
    let mut stats = ImageBackupStats::default();
    // Results that arrived ahead of their turn: slot i holds chunk `next + i`.
    let mut waiting: VecDeque<Option<Done>> = VecDeque::new();
    let mut next = 0usize;
    let mut batch: Vec<IndexChunk> = Vec::with_capacity(APPEND_BATCH);
    let mut batch_b3: Vec<Option<Blake3>> = Vec::with_capacity(APPEND_BATCH);
    for result in done {
        let d = result?;
        add_to_stats(&mut stats, &d);
        let slot = d
            .index
            .checked_sub(next)
            .ok_or_else(|| PipelineError::Thread(format!("chunk {} came back twice", d.index)))?;
        if waiting.len() <= slot {
            waiting.resize_with(slot + 1, || None);
        }
        waiting[slot] = Some(d);
        while let Some(Some(_)) = waiting.front() {
            let Some(Some(d)) = waiting.pop_front() else {
                break;
            };
            next += 1;
            batch.push(IndexChunk {
                digest: d.digest,
                len: d.len as u32,
            });
            batch_b3.push(d.b3);
            if batch.len() == APPEND_BATCH {
                emit(&batch, &batch_b3)?;
                batch.clear();
                batch_b3.clear();
            }
        }
    }
    if !waiting.is_empty() {
        return Err(PipelineError::Thread(
            "a chunk went missing in the pipeline".into(),
        ));
    }
    if !batch.is_empty() {
        emit(&batch, &batch_b3)?;
    }
    Ok(stats)
}

fn add_to_stats(stats: &mut ImageBackupStats, d: &Done) {
    stats.size += d.len;
    stats.chunks += 1;
    if d.zero {
        stats.zero_bytes += d.len;
    }
    match d.outcome {
        Outcome::New { encoded } => {
            stats.new_chunks += 1;
            stats.written_bytes += encoded;
            if !d.zero {
                stats.new_bytes += d.len;
            }
        }
        Outcome::Reused if !d.zero => stats.reused_bytes += d.len,
        Outcome::Reused => {}
    }
}

#[cfg(test)]
mod tests;
