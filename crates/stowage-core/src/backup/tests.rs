use super::*;
use crate::chunk::zero_digest;
use crate::testutil::MemStore;
use crate::FastHashes;
use std::collections::{HashSet, VecDeque};
use stowage_format::sha256;

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

fn run_fast(
    data: &[u8],
    store: &MemStore,
    session: &BackupSession,
    fast: &FastHashes,
) -> ImageBackup {
    crate::backup_image_with(
        &mut StreamSource(data),
        "test",
        store,
        session,
        4096,
        2,
        &BackupCounters::default(),
        Some(fast),
    )
    .unwrap()
}

#[test]
fn fast_hashes_are_recorded_and_recognise_the_previous_chunks() {
    let data = image(&[1, 0, 5, 9, 1], 4096, 100);
    let store = MemStore::default();
    let first = run_fast(
        &data,
        &store,
        &BackupSession::new(HashSet::new()),
        &FastHashes::default(),
    );
    let plain = run(
        &data,
        &MemStore::default(),
        &BackupSession::new(HashSet::new()),
        2,
    );
    assert_eq!(first.digests, plain.digests, "recording changes no digest");
    assert!(plain.blake3.is_empty());
    assert_eq!(first.blake3.len(), first.digests.len());
    for (i, b3) in first.blake3.iter().enumerate() {
        let end = ((i + 1) * 4096).min(data.len());
        match i {
            1 => assert_eq!(*b3, None, "an all-zero chunk needs no BLAKE3"),
            _ => assert_eq!(*b3, Some(stowage_format::blake3(&data[i * 4096..end]))),
        }
    }
    let known: HashSet<Digest> = first.digests.iter().copied().collect();
    let pairs = first
        .digests
        .iter()
        .zip(&first.blake3)
        .filter_map(|(d, b)| b.map(|b| (*d, b)));
    let fast = FastHashes::new(pairs, &known);
    let second = run_fast(&data, &store, &BackupSession::new(known.clone()), &fast);
    assert_eq!(second.digests, first.digests);
    assert_eq!(second.blake3, first.blake3);

    // The lookup is what names a recognised chunk: a pair that maps chunk 0's BLAKE3 to chunk
    // 2's digest shows it (and only digests the previous snapshot has are ever taken).
    let b0 = first.blake3[0].unwrap();
    let misleading = FastHashes::new(
        [
            (first.digests[2], b0),
            (Digest([7; 32]), first.blake3[3].unwrap()),
        ],
        &known,
    );
    assert_eq!(
        misleading.len(),
        1,
        "a digest outside the previous snapshot is dropped"
    );
    let third = run_fast(&data, &store, &BackupSession::new(known), &misleading);
    assert_eq!(third.digests[0], first.digests[2]);
    assert_eq!(
        third.digests[3], first.digests[3],
        "unknown BLAKE3: SHA-256 as always"
    );
}

mod into_an_index {
    use super::*;
    use crate::session::{MemoryRepository, Repository};
    use stowage_format::BlobDecoder;
    use stowage_types::{ArchiveName, BackupGroup, BackupType};

    fn group() -> BackupGroup {
        BackupGroup::new(BackupType::Vm, "1").unwrap()
    }

    /// Backs `data` up into a fixed index of `declared` bytes in a repository in memory.
    fn back_up(
        repo: &MemoryRepository,
        data: &[u8],
        declared: Option<u64>,
    ) -> Result<stowage_types::SnapshotRef, PipelineError> {
        let target = repo.begin_backup(&group(), None)?;
        let name = ArchiveName::parse("disk.img").unwrap();
        let kind = IndexKind::Fixed {
            size: declared,
            chunk_size: 4096,
        };
        let writer = target.create_index(&name, kind)?;
        let session = BackupSession::new(HashSet::new());
        let counters = BackupCounters::default();
        let mut source = StreamSource(data);
        let out = backup_to_index(
            &mut source,
            "test",
            &*writer,
            kind,
            0,
            &session,
            4,
            &counters,
            None,
        )?;
        assert_eq!(out.stats.size, data.len() as u64);
        writer.close(out.close)?;
        Ok(target.finish(Default::default())?)
    }

    #[test]
    fn chunks_are_appended_in_stream_order() {
        // More chunks than one append batch, with zeros and repeats among them.
        let kinds: Vec<u8> = (0..200u32)
            .map(|i| [1, 0, 5, 1, 9][i as usize % 5])
            .collect();
        let data = image(&kinds, 4096, 1000);
        let repo = MemoryRepository::new();
        let snapshot = back_up(&repo, &data, Some(data.len() as u64)).unwrap();
        let reader = repo.open_snapshot(&snapshot).unwrap();
        let index = reader
            .fixed_index(&ArchiveName::parse("disk.img").unwrap())
            .unwrap();
        assert_eq!(index.digests.len(), 201);
        let mut decoder = BlobDecoder::new().unwrap();
        let (mut encoded, mut plain) = (Vec::new(), Vec::new());
        for (i, digest) in index.digests.iter().enumerate() {
            let (start, len) = index.chunk_range(i);
            reader.chunks().read_chunk(digest, &mut encoded).unwrap();
            decoder.decode_into(&encoded, &mut plain, len).unwrap();
            assert_eq!(
                plain,
                data[start as usize..start as usize + len],
                "chunk {i}"
            );
        }
    }

    #[test]
    fn a_refused_append_stops_the_pipeline() {
        // The index is declared one chunk short: the append of the last chunk is refused.
        let data = image(&[1; 40], 4096, 0);
        let repo = MemoryRepository::new();
        let err = back_up(&repo, &data, Some(data.len() as u64 - 4096)).unwrap_err();
        assert!(matches!(err, PipelineError::Session(_)), "{err}");
        assert!(repo.finished_snapshots(&group()).unwrap().is_empty());
    }

    #[test]
    fn an_image_of_unknown_size_grows() {
        let data = image(&[1, 5, 9], 4096, 10);
        let repo = MemoryRepository::new();
        let snapshot = back_up(&repo, &data, None).unwrap();
        let reader = repo.open_snapshot(&snapshot).unwrap();
        let index = reader
            .fixed_index(&ArchiveName::parse("disk.img").unwrap())
            .unwrap();
        assert_eq!((index.size, index.digests.len()), (data.len() as u64, 4));
        assert!(back_up(&repo, &[], None).is_err(), "an empty image");
    }
}

mod repeated_chunks {
    use super::*;
    use crate::session::{
        IndexChunk, IndexClose, IndexWriter, MemoryRepository, Repository, SessionError,
    };
    use crate::StoreError;
    use stowage_types::{ArchiveName, BackupGroup, BackupType};

    /// An index writer whose uploads are slow, so a repeated chunk's second occurrence is often
    /// done before its first one is stored.
    struct SlowUploads<'a>(Box<dyn IndexWriter + 'a>);

    impl ChunkSink for SlowUploads<'_> {
        fn touch_chunk(&self, digest: &Digest) -> Result<bool, StoreError> {
            self.0.touch_chunk(digest)
        }

        fn insert_chunk(&self, digest: &Digest, encoded: &[u8]) -> Result<(), StoreError> {
            let ms = 1 + u64::from(digest.0[0] % 16);
            std::thread::sleep(Duration::from_millis(ms));
            self.0.insert_chunk(digest, encoded)
        }
    }

    impl IndexWriter for SlowUploads<'_> {
        fn name(&self) -> &ArchiveName {
            self.0.name()
        }

        fn append(&self, chunks: &[IndexChunk]) -> Result<(), SessionError> {
            self.0.append(chunks)
        }

        fn close(self: Box<Self>, expected: IndexClose) -> Result<(), SessionError> {
            self.0.close(expected)
        }
    }

    /// A worker that meets a chunk another worker is still storing waits until it is stored:
    /// only then may its occurrence be appended (a server refuses the append of a chunk it has
    /// not received).
    #[test]
    fn a_worker_waits_for_the_claimer_of_its_chunk() {
        struct Gate {
            started: crossbeam_channel::Sender<()>,
            release: crossbeam_channel::Receiver<()>,
        }
        impl ChunkSink for Gate {
            fn touch_chunk(&self, _: &Digest) -> Result<bool, StoreError> {
                Ok(false)
            }
            fn insert_chunk(&self, _: &Digest, _: &[u8]) -> Result<(), StoreError> {
                let _ = self.started.send(());
                let _ = self.release.recv_timeout(Duration::from_secs(5));
                Ok(())
            }
        }
        let (started_tx, started) = crossbeam_channel::bounded(1);
        let (release, release_rx) = crossbeam_channel::bounded(1);
        let gate = Gate {
            started: started_tx,
            release: release_rx,
        };
        let session = BackupSession::new(HashSet::new());
        let counters = BackupCounters::default();
        let zero = zero_digest(4096);
        let data = vec![7u8; 4096];
        let digest = sha256(&data);
        let worker = || Worker::new(&gate, &session, &zero, 4096, &counters).unwrap();
        std::thread::scope(|s| {
            // The chunk's later occurrence (index 5) is claimed first and is being stored...
            let claimer = s.spawn(|| worker().store((5, &data, false, None), digest));
            started.recv().unwrap();
            // ... when a worker meets its earlier occurrence (index 2).
            let second = s.spawn(|| worker().store((2, &data, false, None), digest));
            std::thread::sleep(Duration::from_millis(50));
            assert!(!second.is_finished(), "it waits while the chunk is stored");
            release.send(()).unwrap();
            let first = claimer.join().unwrap().unwrap();
            assert!(matches!(first.outcome, Outcome::New { .. }));
            let second = second.join().unwrap().unwrap();
            assert!(matches!(second.outcome, Outcome::Reused));
        });
    }

    /// The repository refuses an append of a chunk it has not received: a repeated chunk is
    /// appended only after the worker that stores it is done.
    #[test]
    fn a_repeated_chunk_is_appended_only_once_stored() {
        // Forty distinct chunks repeated in a shuffled order, 300 chunks in all.
        let mut x = 12345u32;
        let kinds: Vec<u8> = (0..300)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                2 + (x >> 16) as u8 % 40
            })
            .collect();
        let data = image(&kinds, 4096, 0);
        for round in 0..3 {
            let repo = MemoryRepository::new();
            let group = BackupGroup::new(BackupType::Vm, "1").unwrap();
            let target = repo.begin_backup(&group, None).unwrap();
            let name = ArchiveName::parse("disk.img").unwrap();
            let kind = IndexKind::Fixed {
                size: Some(data.len() as u64),
                chunk_size: 4096,
            };
            let writer = SlowUploads(target.create_index(&name, kind).unwrap());
            let session = BackupSession::new(HashSet::new());
            let counters = BackupCounters::default();
            let out = backup_to_index(
                &mut StreamSource(&data[..]),
                "test",
                &writer,
                kind,
                0,
                &session,
                4,
                &counters,
                None,
            )
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
            assert_eq!(out.stats.new_chunks, 40);
            Box::new(writer).close(out.close).unwrap();
            target.finish(Default::default()).unwrap();
        }
    }
}
