//! The image backup pipeline:
//! reader -> [bounded] -> workers (zero check, SHA-256, known?, zstd, store) -> [bounded] -> collector.
//!
//! A source may also hand over chunks that are already in the store by reference
//! ([`Next::Known`]): they take their place in the digest list and cost no hashing, compression
//! or store access.

use std::collections::HashSet;
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender};
use stowage_chunker::is_zero;
use stowage_format::{sha256, sha256_pair, BlobEncoder};
use stowage_types::Digest;

use crate::chunk::zero_digest;
use crate::{ChunkSink, PipelineError};

/// Bytes of chunk buffers a backup aims to stay within (more only with very many threads).
const MAX_BUFFER_BYTES: usize = 192 << 20;

/// Chunk bookkeeping shared by all archives of one backup: what the previous snapshot already
/// references, and which digests this backup has already handled.
pub struct BackupSession {
    known: HashSet<Digest>,
    claimed: Mutex<HashSet<Digest>>,
}

impl BackupSession {
    /// `known`: digests referenced by the previous snapshot of the group, which the store is
    /// trusted to hold. They cost a hash and nothing more.
    pub fn new(known: HashSet<Digest>) -> Self {
        BackupSession {
            known,
            claimed: Mutex::new(HashSet::new()),
        }
    }

    pub fn known_count(&self) -> usize {
        self.known.len()
    }

    /// True for the first caller with this digest in this backup: that caller stores it.
    fn claim(&self, digest: &Digest) -> bool {
        match self.claimed.lock() {
            Ok(mut set) => set.insert(*digest),
            Err(poisoned) => poisoned.into_inner().insert(*digest),
        }
    }
}

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

/// The result of an image backup: the digest list of a fixed index.
#[derive(Debug, Clone)]
pub struct ImageBackup {
    pub digests: Vec<Digest>,
    /// Length of each chunk, in order (all `chunk_size` but the last for fixed chunking).
    pub lengths: Vec<u32>,
    pub size: u64,
    pub chunk_size: u64,
    pub stats: ImageBackupStats,
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
}

/// Backs up one stream read sequentially from `source` in chunks of at most `chunk_size` bytes
/// (exactly that for images; content-defined for archives, see [`CdcSource`]), with `threads`
/// workers. Memory: at most `2 * threads + 2` chunk buffers, fewer for big chunk sizes; known
/// chunks ([`Next::Known`]) take no buffer.
pub fn backup_image(
    source: &mut dyn ImageSource,
    source_name: &str,
    sink: &dyn ChunkSink,
    session: &BackupSession,
    chunk_size: usize,
    threads: usize,
    counters: &BackupCounters,
) -> Result<ImageBackup, PipelineError> {
    let started = Instant::now();
    let threads = threads.max(1);
    // Buffers grow to the chunk size; keep the worst case bounded for big chunk sizes.
    // Three per worker (a pair being hashed and one waiting) and two for the reader.
    let buffers = (3 * threads + 2).min((MAX_BUFFER_BYTES / chunk_size).max(threads + 2));
    let zero = zero_digest(chunk_size);
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
                    Ok(mut worker) => worker.run(&job_rx, &pool_tx, &done_tx),
                    Err(e) => {
                        let _ = done_tx.send(Err(e));
                    }
                },
            );
        }
        drop((job_rx, pool_tx, done_tx));

        let collected = collect(&done_rx);
        if collected.is_err() {
            cancel.store(true, Ordering::Relaxed);
        }
        drop(done_rx);
        let read_result = reader
            .join()
            .map_err(|_| PipelineError::Thread("reader panicked".into()))?;
        read_result?;
        let (digests, lengths, mut stats) = collected?;
        stats.duration = started.elapsed();
        Ok(ImageBackup {
            size: stats.size,
            digests,
            lengths,
            chunk_size: chunk_size as u64,
            stats,
        })
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
    encoder: BlobEncoder,
    encoded: Vec<u8>,
}

impl<'a> Worker<'a> {
    fn new(
        sink: &'a dyn ChunkSink,
        session: &'a BackupSession,
        zero: &'a Digest,
        chunk_size: usize,
        counters: &'a BackupCounters,
    ) -> Result<Self, PipelineError> {
        let encoder = BlobEncoder::new().map_err(|source| PipelineError::Compress {
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
        })
    }

    /// Takes jobs until the queue closes or the collector hangs up. Data chunks that need
    /// hashing are hashed two at a time ([`sha256_pair`]: about 1.4× the speed of one at a
    /// time): one is held until the next such chunk arrives, or the queue closes.
    fn run(
        &mut self,
        jobs: &Receiver<Job>,
        pool: &Sender<Vec<u8>>,
        done: &Sender<Result<Done, PipelineError>>,
    ) {
        let mut held: Option<(usize, Vec<u8>, bool)> = None;
        for job in jobs {
            let results = match job.work {
                Work::Known { digest, len } => vec![Ok(Done {
                    index: job.index,
                    digest,
                    len: u64::from(len),
                    zero: false,
                    outcome: Outcome::Reused,
                })],
                Work::Data(buf) => match (self.zero_check(&buf), held.take()) {
                    ((zero, Some(digest)), kept) => {
                        held = kept;
                        let result = self.store(job.index, &buf, zero, digest);
                        let _ = pool.send(buf);
                        vec![result]
                    }
                    ((zero, None), None) => {
                        held = Some((job.index, buf, zero));
                        continue;
                    }
                    ((zero, None), Some((i, other, other_zero))) => {
                        let (da, db) = sha256_pair(&other, &buf);
                        let results = vec![
                            self.store(i, &other, other_zero, da),
                            self.store(job.index, &buf, zero, db),
                        ];
                        let _ = pool.send(other);
                        let _ = pool.send(buf);
                        results
                    }
                },
            };
            for result in results {
                if done.send(result).is_err() {
                    return;
                }
            }
        }
        if let Some((i, buf, zero)) = held {
            let result = self.store(i, &buf, zero, sha256(&buf));
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
        index: usize,
        data: &[u8],
        zero: bool,
        digest: Digest,
    ) -> Result<Done, PipelineError> {
        let outcome = if self.session.known.contains(&digest)
            || !self.session.claim(&digest)
            || self.sink.touch_chunk(&digest)?
        {
            Outcome::Reused
        } else {
            self.encoder
                .encode_into(data, &mut self.encoded)
                .map_err(|source| PipelineError::Compress { digest, source })?;
            self.sink.insert_chunk(&digest, &self.encoded)?;
            let encoded = self.encoded.len() as u64;
            self.counters.written.fetch_add(encoded, Ordering::Relaxed);
            Outcome::New { encoded }
        };
        Ok(Done {
            index,
            digest,
            len: data.len() as u64,
            zero,
            outcome,
        })
    }
}

/// Puts the digests in order and adds up the statistics.
type Collected = (Vec<Digest>, Vec<u32>, ImageBackupStats);

fn collect(done: &Receiver<Result<Done, PipelineError>>) -> Result<Collected, PipelineError> {
    let mut digests: Vec<Digest> = Vec::new();
    let mut lengths: Vec<u32> = Vec::new();
    let mut filled: Vec<bool> = Vec::new();
    let mut stats = ImageBackupStats::default();
    for result in done {
        let d = result?;
        if digests.len() <= d.index {
            digests.resize(d.index + 1, Digest::default());
            lengths.resize(d.index + 1, 0);
            filled.resize(d.index + 1, false);
        }
        digests[d.index] = d.digest;
        lengths[d.index] = d.len as u32;
        filled[d.index] = true;
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
    if filled.iter().any(|f| !f) {
        return Err(PipelineError::Thread(
            "a chunk went missing in the pipeline".into(),
        ));
    }
    Ok((digests, lengths, stats))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::MemStore;
    use std::collections::VecDeque;

    fn image(chunks: &[u8], cs: usize, tail: usize) -> Vec<u8> {
        let mut v = Vec::new();
        for (i, kind) in chunks.iter().enumerate() {
            match kind {
                0 => v.extend(std::iter::repeat_n(0u8, cs)),
                1 => v.extend((0..cs).map(|j| (j * 7 + i) as u8)),
                _ => v.extend(std::iter::repeat_n(*kind, cs)),
            }
        }
        v.extend((0..tail).map(|j| j as u8));
        v
    }

    fn run(data: &[u8], store: &MemStore, session: &BackupSession, threads: usize) -> ImageBackup {
        let counters = BackupCounters::default();
        backup_image(
            &mut StreamSource(data),
            "test",
            store,
            session,
            4096,
            threads,
            &counters,
        )
        .unwrap()
    }

    #[test]
    fn digests_are_in_order_and_duplicates_stored_once() {
        let data = image(&[1, 0, 5, 0, 5, 1, 9], 4096, 100);
        let store = MemStore::default();
        let b = run(&data, &store, &BackupSession::new(HashSet::new()), 3);
        assert_eq!(b.size, data.len() as u64);
        assert_eq!(b.digests.len(), 8);
        for (i, d) in b.digests.iter().enumerate() {
            let end = ((i + 1) * 4096).min(data.len());
            assert_eq!(*d, sha256(&data[i * 4096..end]));
        }
        // Two zero chunks and two chunks of fives: each stored once.
        let unique: HashSet<_> = b.digests.iter().collect();
        assert_eq!(store.inserts() as usize, unique.len());
        assert_eq!(b.stats.zero_bytes, 2 * 4096);
        assert_eq!(b.stats.new_chunks as usize, unique.len());
        assert_eq!(
            b.stats.zero_bytes + b.stats.reused_bytes + b.stats.new_bytes,
            data.len() as u64
        );
    }

    #[test]
    fn a_worker_hashes_waiting_chunks_in_pairs_with_the_same_results() {
        // Jobs queued before the worker starts: it takes them two at a time. Data chunks of
        // different lengths, a zero chunk, a short zero tail and a known chunk in between.
        let chunks: Vec<Vec<u8>> = vec![
            (0..4096).map(|j| (j * 7) as u8).collect(),
            vec![0; 4096],
            (0..4096).map(|j| (j * 3 + 1) as u8).collect(),
            (0..1000).map(|j| j as u8).collect(),
            vec![0; 100],
        ];
        let (job_tx, job_rx) = bounded(16);
        let (pool_tx, pool_rx) = bounded(16);
        let (done_tx, done_rx) = bounded(16);
        let known = known_digest(9);
        let mut index = 0;
        for (i, c) in chunks.iter().enumerate() {
            if i == 3 {
                let work = Work::Known {
                    digest: known,
                    len: 77,
                };
                job_tx.send(Job { index, work }).unwrap();
                index += 1;
            }
            job_tx
                .send(Job {
                    index,
                    work: Work::Data(c.clone()),
                })
                .unwrap();
            index += 1;
        }
        drop(job_tx);
        let (store, session, counters) = (
            MemStore::default(),
            BackupSession::new(HashSet::new()),
            BackupCounters::default(),
        );
        let zero = zero_digest(4096);
        let mut worker = Worker::new(&store, &session, &zero, 4096, &counters).unwrap();
        worker.run(&job_rx, &pool_tx, &done_tx);
        drop(done_tx);
        let mut done: Vec<Done> = done_rx.iter().map(Result::unwrap).collect();
        done.sort_by_key(|d| d.index);
        let digests: Vec<Digest> = done.iter().map(|d| d.digest).collect();
        let mut expected: Vec<Digest> = chunks.iter().map(|c| sha256(c)).collect();
        expected.insert(3, known);
        assert_eq!(digests, expected);
        assert_eq!(done.iter().filter(|d| d.zero).count(), 2);
        assert_eq!(
            pool_rx.len(),
            chunks.len(),
            "every buffer goes back to the pool"
        );
        // The zero chunk, the zero tail and the three others: five stored, the known one not.
        assert_eq!(store.inserts(), 5);
    }

    #[test]
    fn known_chunks_cost_nothing_but_a_hash() {
        let data = image(&[1, 2, 3, 4], 4096, 0);
        let store = MemStore::default();
        let first = run(&data, &store, &BackupSession::new(HashSet::new()), 2);
        let known = first.digests.iter().copied().collect();
        let second = run(&data, &store, &BackupSession::new(known), 2);
        assert_eq!(second.digests, first.digests);
        assert_eq!(second.stats.new_chunks, 0);
        assert_eq!(second.stats.reused_bytes, data.len() as u64);
        assert_eq!(store.inserts(), 4);
    }

    #[test]
    fn empty_source_gives_no_chunks() {
        let store = MemStore::default();
        let b = run(&[], &store, &BackupSession::new(HashSet::new()), 2);
        assert!(b.digests.is_empty());
        assert_eq!(b.size, 0);
    }

    #[test]
    fn read_errors_are_reported() {
        struct Failing(usize);
        impl Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::other("disk on fire"));
                }
                let n = buf.len().min(self.0);
                self.0 -= n;
                buf[..n].fill(1);
                Ok(n)
            }
        }
        let store = MemStore::default();
        let counters = BackupCounters::default();
        let err = backup_image(
            &mut StreamSource(Failing(10_000)),
            "failing",
            &store,
            &BackupSession::new(HashSet::new()),
            4096,
            2,
            &counters,
        )
        .unwrap_err();
        assert!(matches!(err, PipelineError::SourceRead { .. }), "{err}");
        assert!(err.to_string().contains("failing"));
    }

    /// A source that plays back a list of data and known chunks.
    struct Scripted(VecDeque<Step>);

    #[derive(Clone)]
    enum Step {
        Data(Vec<u8>),
        Known(Digest, u32),
    }

    impl ImageSource for Scripted {
        fn next_chunk(&mut self, _len: usize, buf: &mut Vec<u8>) -> io::Result<Next> {
            Ok(match self.0.pop_front() {
                None => Next::End,
                Some(Step::Data(d)) => {
                    buf.clear();
                    buf.extend_from_slice(&d);
                    Next::Data
                }
                Some(Step::Known(digest, len)) => Next::Known { digest, len },
            })
        }
    }

    fn known_digest(n: u8) -> Digest {
        Digest([n; 32])
    }

    fn run_scripted(
        steps: &[Step],
        store: &MemStore,
        threads: usize,
    ) -> Result<(ImageBackup, u64), PipelineError> {
        let counters = BackupCounters::default();
        let b = backup_image(
            &mut Scripted(steps.iter().cloned().collect()),
            "scripted",
            store,
            &BackupSession::new(HashSet::new()),
            4096,
            threads,
            &counters,
        )?;
        Ok((b, counters.read.load(Ordering::Relaxed)))
    }

    #[test]
    fn known_chunks_take_their_place_without_store_access() {
        let a: Vec<u8> = (0..4096u32).map(|i| (i * 7) as u8).collect();
        let b = vec![3u8; 100];
        let zeros = vec![0u8; 4096];
        let zero = zero_digest(4096);
        let steps = [
            Step::Data(a.clone()),
            Step::Known(known_digest(1), 5000),
            Step::Known(known_digest(2), 3),
            Step::Data(b.clone()),
            Step::Data(zeros.clone()),
            // A known chunk that happens to be all zeros still counts as reused.
            Step::Known(zero, 4096),
            Step::Data(a.clone()),
            Step::Known(known_digest(1), 5000),
        ];
        for threads in [1, 2, 5] {
            let store = MemStore::default();
            let (backup, read) = run_scripted(&steps, &store, threads).unwrap();
            assert_eq!(
                backup.digests,
                [
                    sha256(&a),
                    known_digest(1),
                    known_digest(2),
                    sha256(&b),
                    zero,
                    zero,
                    sha256(&a),
                    known_digest(1)
                ]
            );
            assert_eq!(backup.lengths, [4096, 5000, 3, 100, 4096, 4096, 4096, 5000]);
            let size = 4096 * 4 + 5000 * 2 + 3 + 100;
            assert_eq!(backup.size, size);
            assert_eq!(read, size, "known chunks move the progress counter");
            let s = &backup.stats;
            assert_eq!(s.chunks, 8);
            assert_eq!(s.zero_bytes, 4096);
            assert_eq!(s.new_bytes, 4096 + 100);
            assert_eq!(s.new_chunks, 3);
            assert_eq!(s.reused_bytes, 5000 + 3 + 4096 + 4096 + 5000);
            assert_eq!(s.zero_bytes + s.reused_bytes + s.new_bytes, size);
            // Stored: a, b and the zero chunk, once each; known chunks never reach the store.
            assert_eq!(store.inserts(), 3);
            for d in [known_digest(1), known_digest(2)] {
                assert!(!store.holds(&d) && !store.was_touched(&d));
            }
            assert_eq!(store.touched.lock().unwrap().len(), 3);
        }
    }

    #[test]
    fn long_runs_of_known_chunks_keep_order() {
        // Far more known chunks in a row than there are buffers or queue slots.
        let mut steps = Vec::new();
        for i in 0..300u32 {
            if i % 50 == 0 {
                steps.push(Step::Data(vec![i as u8 + 1; 4096]));
            }
            steps.push(Step::Known(known_digest((i % 200) as u8), i + 1));
        }
        for threads in [1, 3] {
            let store = MemStore::default();
            let (backup, read) = run_scripted(&steps, &store, threads).unwrap();
            let expected: Vec<Digest> = steps
                .iter()
                .map(|s| match s {
                    Step::Data(d) => sha256(d),
                    Step::Known(d, _) => *d,
                })
                .collect();
            assert_eq!(backup.digests, expected);
            let known: u64 = (1..=300).sum();
            assert_eq!(backup.stats.reused_bytes, known);
            assert_eq!(backup.stats.new_bytes, 6 * 4096);
            assert_eq!(read, known + 6 * 4096);
            assert_eq!(store.inserts(), 6);
        }
    }

    #[test]
    fn empty_chunks_from_a_source_are_errors() {
        for step in [Step::Known(known_digest(1), 0), Step::Data(Vec::new())] {
            let store = MemStore::default();
            let err = run_scripted(&[Step::Data(vec![1; 10]), step], &store, 2).unwrap_err();
            assert!(matches!(err, PipelineError::SourceRead { .. }), "{err}");
        }
    }
}
