use super::*;
use crate::chunk::zero_digest;
use crate::{
    backup_image, BackupCounters, BackupSession, CdcSource, ChunkCheckError, ImageSource,
    StoreError, StreamSource,
};
use proptest::prelude::*;
use std::collections::HashSet;
use std::sync::OnceLock;
use stowage_chunker::Buzhash;
use stowage_format::{DynamicIndex, FixedIndex};

use crate::testutil::MemStore;

const CHUNK: usize = 4096;

fn run_backup(
    source: &mut dyn ImageSource,
    store: &MemStore,
    chunk_size: usize,
) -> crate::ImageBackup {
    backup_image(
        source,
        "t",
        store,
        &BackupSession::new(HashSet::new()),
        chunk_size,
        2,
        &BackupCounters::default(),
    )
    .unwrap()
}

fn fixed(data: &[u8], store: &MemStore) -> FixedIndex {
    let b = run_backup(&mut StreamSource(data), store, CHUNK);
    FixedIndex {
        uuid: [0; 16],
        ctime: 0,
        size: b.size,
        chunk_size: b.chunk_size,
        digests: b.digests,
    }
}

fn dynamic(data: &[u8], store: &MemStore) -> DynamicIndex {
    let chunker = Buzhash::new(4096).unwrap();
    let max = chunker.max_size();
    let b = run_backup(&mut CdcSource::new(data, chunker), store, max);
    let mut end = 0u64;
    let entries = b
        .lengths
        .iter()
        .zip(b.digests)
        .map(|(&len, digest)| {
            end += len as u64;
            (end, digest)
        })
        .collect();
    DynamicIndex {
        uuid: [0; 16],
        ctime: 0,
        entries,
    }
}

/// Pseudo-random bytes, chunks 8..12 all zero, and a tail of 1000 zeros (a partial last
/// chunk of the fixed index that is all zero too).
fn sample() -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut data: Vec<u8> = (0..73 * CHUNK)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    data[8 * CHUNK..12 * CHUNK].fill(0);
    data.extend(std::iter::repeat_n(0u8, 1000));
    data
}

struct Fixture {
    data: Vec<u8>,
    store: MemStore,
    fixed: FixedIndex,
    dynamic: DynamicIndex,
}

/// Shared, never modified: tests that change or count the store make their own.
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let data = sample();
        let store = MemStore::default();
        let fixed = fixed(&data, &store);
        let dynamic = dynamic(&data, &store);
        Fixture {
            data,
            store,
            fixed,
            dynamic,
        }
    })
}

fn expected(data: &[u8], offset: u64, len: usize) -> &[u8] {
    let start = (offset.min(data.len() as u64)) as usize;
    let end = start + len.min(data.len() - start);
    &data[start..end]
}

fn read(r: &mut RandomReader, offset: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0xAA; len];
    let n = r.read_at(offset, &mut buf).unwrap();
    buf.truncate(n);
    buf
}

fn copy(r: &mut RandomReader, offset: u64, len: u64) -> Result<Vec<u8>, PipelineError> {
    let mut out = Vec::new();
    r.copy_range(offset, len, &mut out)?;
    Ok(out)
}

#[test]
fn the_fixture_has_many_chunks_of_varied_length() {
    let f = fixture();
    assert_eq!(f.fixed.chunk_count(), 74);
    assert_eq!(f.dynamic.total_size(), f.data.len() as u64);
    let lengths: HashSet<usize> = (0..f.dynamic.chunk_count())
        .map(|i| f.dynamic.chunk(i).1)
        .collect();
    assert!(f.dynamic.chunk_count() > 20, "{}", f.dynamic.chunk_count());
    assert!(lengths.len() > 10);
}

#[test]
fn ranges_across_several_chunks() {
    let f = fixture();
    let n = f.data.len() as u64;
    for layout in [&f.fixed as &dyn ChunkLayout, &f.dynamic] {
        for cache in [0, 1, 3] {
            let mut r = RandomReader::new(layout, &f.store, cache);
            assert_eq!(r.size(), n);
            for (offset, len) in [
                (0, n),
                (100, 5 * CHUNK as u64 + 17),
                (CHUNK as u64 - 1, 2),
                (7 * CHUNK as u64 + 5, 6 * CHUNK as u64),
                (n - 40_000, 40_000),
                (n, 0),
            ] {
                let want = &f.data[offset as usize..(offset + len) as usize];
                assert_eq!(copy(&mut r, offset, len).unwrap(), want);
                assert_eq!(read(&mut r, offset, len as usize), want);
            }
        }
    }
}

#[test]
fn reads_stop_at_the_end() {
    let f = fixture();
    let n = f.data.len() as u64;
    for layout in [&f.fixed as &dyn ChunkLayout, &f.dynamic] {
        let mut r = RandomReader::new(layout, &f.store, 2);
        assert_eq!(read(&mut r, n - 3, 10), &f.data[n as usize - 3..]);
        for offset in [n, n + 1, u64::MAX - 1, u64::MAX] {
            assert_eq!(read(&mut r, offset, 10), b"");
        }
        assert_eq!(r.read_at(0, &mut []).unwrap(), 0);
        for (offset, len) in [
            (n - 3, 4),
            (n, 1),
            (n + 1, 0),
            (0, n + 1),
            (1, u64::MAX),
            (u64::MAX, 1),
            (u64::MAX, 0),
        ] {
            let err = copy(&mut r, offset, len).unwrap_err();
            assert!(
                matches!(&err, PipelineError::OutOfRange { source, .. }
                    if source.kind() == io::ErrorKind::UnexpectedEof),
                "{err}"
            );
        }
    }
}

#[test]
fn an_empty_stream() {
    let index = DynamicIndex {
        uuid: [0; 16],
        ctime: 0,
        entries: Vec::new(),
    };
    let store = MemStore::default();
    let mut r = RandomReader::new(&index, &store, 1);
    assert_eq!(read(&mut r, 0, 10), b"");
    assert_eq!(copy(&mut r, 0, 0).unwrap(), b"");
    assert!(copy(&mut r, 0, 1).is_err());
}

/// With a feed filled by the restore pipeline, forward reads take every chunk from it; a
/// read behind the feed still works, by reading directly.
#[test]
fn a_feed_serves_forward_reads_and_direct_reads_cover_the_rest() {
    let data = sample();
    let store = MemStore::default();
    let index = dynamic(&data, &store);
    let before = store.reads();
    let (mut target, feed) = chunk_feed(2);
    std::thread::scope(|s| {
        let index = &index;
        let store_ref = &store;
        let fetcher = s.spawn(move || {
            crate::restore_image(
                index,
                store_ref,
                &mut target,
                "feed",
                2,
                4,
                &crate::RestoreCounters::default(),
            )
        });
        let mut r = RandomReader::new(index, &store, 2).with_feed(feed);
        let mut got = Vec::new();
        let mut pos = 0u64;
        while pos < data.len() as u64 {
            let piece = read(&mut r, pos, 3001);
            pos += piece.len() as u64;
            got.extend(piece);
        }
        assert_eq!(got, data);
        let fetched_by_pipeline = store.reads() - before;
        // A read behind the feed: chunk 0 was evicted long ago.
        assert_eq!(read(&mut r, 5, 10), expected(&data, 5, 10));
        assert_eq!(store.reads() - before, fetched_by_pipeline + 1);
        drop(r);
        fetcher.join().unwrap().unwrap();
    });
}

#[test]
fn small_reads_in_one_chunk_decode_it_once() {
    let data = sample();
    let store = MemStore::default();
    let index = fixed(&data, &store);
    let before = store.reads();
    let mut r = RandomReader::new(&index, &store, 1);
    for k in 0..1000u64 {
        let offset = 3 * CHUNK as u64 + 4 * k;
        assert_eq!(read(&mut r, offset, 4), expected(&data, offset, 4));
    }
    let mut out = Vec::new();
    for k in 0..1000u64 {
        r.copy_range(3 * CHUNK as u64 + 4 * k, 4, &mut out).unwrap();
    }
    assert_eq!(out, &data[3 * CHUNK..3 * CHUNK + 4000]);
    assert_eq!(store.reads() - before, 1);
}

#[test]
fn the_cache_evicts_the_least_recently_used() {
    let data = sample();
    let store = MemStore::default();
    let index = fixed(&data, &store);
    let before = store.reads();
    let mut r = RandomReader::new(&index, &store, 2);
    let at = |chunk: u64| chunk * CHUNK as u64 + 10;
    for (chunk, reads) in [(0, 1), (1, 2), (0, 2), (2, 3), (0, 3), (1, 4), (2, 5)] {
        assert_eq!(read(&mut r, at(chunk), 1), expected(&data, at(chunk), 1));
        assert_eq!(store.reads() - before, reads, "chunk {chunk}");
    }
    // A capacity of 0 keeps one chunk anyway.
    let mut r = RandomReader::new(&index, &store, 0);
    let before = store.reads();
    for _ in 0..10 {
        read(&mut r, at(5), 100);
    }
    assert_eq!(store.reads() - before, 1);
}

#[test]
fn zero_chunks_are_not_read() {
    let data = sample();
    let store = MemStore::default();
    let index = fixed(&data, &store);
    // Gone from the store: reading them would fail.
    store.remove(&zero_digest(CHUNK));
    store.remove(&zero_digest(1000));
    assert_eq!(index.digests[9], zero_digest(CHUNK));
    assert_eq!(index.digests[73], zero_digest(1000));
    let before = store.reads();
    let mut r = RandomReader::new(&index, &store, 1);
    let zeros = 8 * CHUNK as u64..12 * CHUNK as u64;
    assert_eq!(read(&mut r, zeros.start, 4 * CHUNK), vec![0; 4 * CHUNK]);
    assert_eq!(
        copy(&mut r, zeros.start + 1, 4 * CHUNK as u64 - 2).unwrap(),
        vec![0; 4 * CHUNK - 2]
    );
    assert_eq!(
        copy(&mut r, 73 * CHUNK as u64, 1000).unwrap(),
        vec![0; 1000]
    );
    assert_eq!(store.reads() - before, 0);
    // A range around the zeros reads only the chunks on either side.
    let (offset, len) = (zeros.start - 10, 4 * CHUNK as u64 + 20);
    assert_eq!(
        copy(&mut r, offset, len).unwrap(),
        &data[offset as usize..(offset + len) as usize]
    );
    assert_eq!(store.reads() - before, 2);
}

#[test]
fn a_corrupt_chunk_is_an_error_with_its_digest_and_offset() {
    let data = sample();
    let store = MemStore::default();
    let index = fixed(&data, &store);
    let victim = index.digests[5];
    let good = store.blob(&victim);
    store.put(&victim, store.blob(&index.digests[6]));
    let mut r = RandomReader::new(&index, &store, 4);
    let mut buf = vec![0; 100];
    let err = r.read_at(5 * CHUNK as u64 + 7, &mut buf).unwrap_err();
    assert!(
        matches!(&err, PipelineError::Corrupt { digest, offset: 20480, source: ChunkCheckError::Digest(_) }
            if *digest == victim),
        "{err}"
    );
    // Also when the range starts in an earlier, good chunk.
    let err = copy(&mut r, 4 * CHUNK as u64, 2 * CHUNK as u64).unwrap_err();
    assert!(
        matches!(&err, PipelineError::Corrupt { digest, offset: 20480, .. } if *digest == victim),
        "{err}"
    );
    // Garbage that is not a blob at all.
    store.put(&victim, b"not a blob".to_vec());
    let err = r.read_at(5 * CHUNK as u64, &mut buf).unwrap_err();
    assert!(
        matches!(&err, PipelineError::Corrupt { digest, source: ChunkCheckError::Blob(_), .. }
            if *digest == victim),
        "{err}"
    );
    // The reader still works, and kept nothing of the bad chunk.
    assert_eq!(read(&mut r, 100, 50), &data[100..150]);
    store.put(&victim, good);
    let offset = 5 * CHUNK as u64 + 7;
    assert_eq!(read(&mut r, offset, 100), expected(&data, offset, 100));
}

#[test]
fn a_chunk_of_the_wrong_length_is_corrupt() {
    let data = sample();
    let store = MemStore::default();
    let mut index = dynamic(&data, &store);
    // Move the boundary between chunks 2 and 3: both now have the wrong length.
    index.entries[2].0 += 1;
    let (start, _, digest) = index.chunk(2);
    let digest = *digest;
    let mut r = RandomReader::new(&index, &store, 1);
    let err = copy(&mut r, start, 1).unwrap_err();
    assert!(
        matches!(&err, PipelineError::Corrupt { digest: d, offset, .. }
            if *d == digest && *offset == start),
        "{err}"
    );
}

#[test]
fn a_missing_chunk_is_a_store_error() {
    let data = sample();
    let store = MemStore::default();
    let index = dynamic(&data, &store);
    let (start, len, digest) = index.chunk(3);
    let digest = *digest;
    store.remove(&digest);
    let mut r = RandomReader::new(&index, &store, 1);
    let mut buf = vec![0; 10];
    let err = r.read_at(start + len as u64 / 2, &mut buf).unwrap_err();
    assert!(
        matches!(&err, PipelineError::Store(StoreError::Missing { digest: d, .. }) if *d == digest),
        "{err}"
    );
    let err = copy(&mut r, 0, start + 1).unwrap_err();
    assert!(
        matches!(&err, PipelineError::Store(StoreError::Missing { .. })),
        "{err}"
    );
    assert_eq!(read(&mut r, 0, 10), &data[..10]);
}

#[test]
fn write_errors_are_target_errors() {
    struct Full;
    impl Write for Full {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::new(io::ErrorKind::StorageFull, "full"))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let f = fixture();
    let mut r = RandomReader::new(&f.fixed, &f.store, 1).with_name("x.ppxar");
    for offset in [0, 8 * CHUNK as u64] {
        let err = r.copy_range(offset, 10, &mut Full).unwrap_err();
        assert!(
            matches!(&err, PipelineError::TargetWrite { name, source }
                if source.kind() == io::ErrorKind::StorageFull && name.contains("x.ppxar")),
            "{err}"
        );
    }
}

#[test]
fn inconsistent_layouts_give_errors_not_panics() {
    let f = fixture();
    // Fewer digests than the size needs: the uncovered tail is an error.
    let short = FixedIndex {
        digests: f.fixed.digests[..10].to_vec(),
        ..f.fixed.clone()
    };
    let mut r = RandomReader::new(&short, &f.store, 1);
    let edge = 10 * CHUNK as u64;
    assert_eq!(
        read(&mut r, edge - 5, 5),
        &f.data[edge as usize - 5..edge as usize]
    );
    let mut buf = [0u8; 10];
    for offset in [edge - 5, edge, f.data.len() as u64 - 1] {
        let err = r.read_at(offset, &mut buf).unwrap_err();
        assert!(
            matches!(&err, PipelineError::OutOfRange { source, .. }
                if source.kind() == io::ErrorKind::InvalidData),
            "{err}"
        );
    }
    assert!(copy(&mut r, 0, edge + 1).is_err());
    assert_eq!(read(&mut r, f.data.len() as u64, 10), b"");

    // More digests than the size needs: the stream ends at the size.
    let long = FixedIndex {
        size: 3 * CHUNK as u64 + 5,
        ..f.fixed.clone()
    };
    let mut r = RandomReader::new(&long, &f.store, 1);
    assert_eq!(read(&mut r, 3 * CHUNK as u64 + 5, 100), b"");
    // (Its last chunk is now 5 bytes long, which the stored chunk is not.)
    let err = r.read_at(3 * CHUNK as u64, &mut buf).unwrap_err();
    assert!(matches!(&err, PipelineError::Corrupt { .. }), "{err}");
    assert_eq!(read(&mut r, 0, 10), &f.data[..10]);
    assert!(copy(&mut r, 0, 3 * CHUNK as u64 + 1).is_err());

    // A chunk ending at u64::MAX: lookups near the end of the offsets stay in range.
    let huge = DynamicIndex {
        uuid: [0; 16],
        ctime: 0,
        entries: vec![(10, Digest([1; 32])), (u64::MAX, Digest([2; 32]))],
    };
    let store = MemStore::default();
    let mut r = RandomReader::new(&huge, &store, 1);
    assert_eq!(r.size(), u64::MAX);
    for offset in [0, 10, u64::MAX - 2] {
        let err = r.read_at(offset, &mut buf).unwrap_err();
        assert!(
            matches!(&err, PipelineError::Store(StoreError::Missing { .. })),
            "{err}"
        );
    }
    assert_eq!(r.read_at(u64::MAX, &mut buf).unwrap(), 0);
    assert!(copy(&mut r, u64::MAX - 1, 2).is_err());
    assert!(matches!(
        copy(&mut r, u64::MAX - 1, 1),
        Err(PipelineError::Store(_))
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_ranges_match_the_data(
        dynamic in any::<bool>(),
        cache in 0usize..4,
        ops in prop::collection::vec((0u64..310_000, 0usize..20_000, any::<bool>()), 1..16),
    ) {
        let f = fixture();
        let layout: &dyn ChunkLayout = if dynamic { &f.dynamic } else { &f.fixed };
        let mut r = RandomReader::new(layout, &f.store, cache);
        let n = f.data.len() as u64;
        for (offset, len, use_copy) in ops {
            let want = expected(&f.data, offset, len);
            if use_copy {
                let got = copy(&mut r, offset, len as u64);
                if offset + len as u64 <= n {
                    prop_assert_eq!(got.unwrap(), want);
                } else {
                    prop_assert!(got.is_err());
                }
            } else {
                prop_assert_eq!(read(&mut r, offset, len), want);
            }
        }
    }
}
