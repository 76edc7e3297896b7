use super::*;
use crate::testutil::MemStore;
use crate::{backup_image, BackupCounters, BackupSession, PipelineError};
use proptest::prelude::*;
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use stowage_format::sha256;

/// Average 4 KiB: min 1 KiB, max 16 KiB.
const AVG: usize = 4096;

fn chunker() -> Buzhash {
    Buzhash::new(AVG).unwrap()
}

fn min() -> usize {
    chunker().min_size()
}

/// Pseudo-random bytes (xorshift), so that natural cuts are spread as in real data.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn digest(n: u32) -> Digest {
    let mut d = [0xaau8; 32];
    d[..4].copy_from_slice(&n.to_le_bytes());
    Digest(d)
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Got {
    Data(Vec<u8>),
    Known(Digest, u32),
}

fn len_of(g: &Got) -> u64 {
    match g {
        Got::Data(d) => d.len() as u64,
        Got::Known(_, len) => u64::from(*len),
    }
}

fn drain(source: &mut PayloadSource) -> io::Result<Vec<Got>> {
    let mut buf = Vec::new();
    let mut out = Vec::new();
    loop {
        match source.next_chunk(0, &mut buf)? {
            Next::End => return Ok(out),
            Next::Data => {
                assert!(!buf.is_empty(), "empty data chunk");
                assert!(buf.len() <= source.max_chunk());
                out.push(Got::Data(buf.clone()));
            }
            Next::Known { digest, len } => out.push(Got::Known(digest, len)),
        }
    }
}

/// Runs `write` on a writer thread with a small pipe and drains the source on this one.
/// Returns the chunks and the writer's final position.
fn run(
    piece_size: usize,
    write: impl FnOnce(&mut PayloadWriter) -> io::Result<()> + Send,
) -> (Vec<Got>, u64) {
    let (mut w, mut source) = payload_pipe_sized(1, chunker(), piece_size);
    std::thread::scope(|s| {
        let writer = s.spawn(move || {
            write(&mut w).unwrap();
            w.position()
        });
        let got = drain(&mut source).unwrap();
        (got, writer.join().unwrap())
    })
}

fn data_lengths(got: &[Got]) -> Vec<usize> {
    got.iter()
        .map(|g| match g {
            Got::Data(d) => d.len(),
            Got::Known(..) => panic!("unexpected known chunk"),
        })
        .collect()
}

#[test]
fn plain_data_is_chunked_like_the_chunker() {
    let data = noise(200_000, 1);
    for piece in [PIECE, 1000, 7] {
        let (got, pos) = run(piece, |w| w.write_all(&data));
        assert_eq!(pos, data.len() as u64);
        assert_eq!(data_lengths(&got), Buzhash::chunk_lengths(AVG, &data));
        assert_eq!(
            got.concat_data(),
            data,
            "data chunks join to the stream (piece {piece})"
        );
    }
}

trait ConcatData {
    fn concat_data(&self) -> Vec<u8>;
}

impl ConcatData for Vec<Got> {
    fn concat_data(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for g in self {
            if let Got::Data(d) = g {
                out.extend_from_slice(d);
            }
        }
        out
    }
}

/// The first natural cut of `data` for a fresh chunker, if any.
fn first_cut(data: &[u8]) -> Option<usize> {
    chunker().scan(data)
}

#[test]
fn a_suggestion_at_least_min_is_honoured_and_resets_the_chunker() {
    let data = noise(100_000, 2);
    let natural = first_cut(&data).unwrap();
    assert!(
        natural > min() + 10,
        "pick another seed: first cut {natural}"
    );
    for at in [min(), natural - 1] {
        for piece in [PIECE, 1000, 7] {
            let (got, pos) = run(piece, |w| {
                w.write_all(&data[..at])?;
                w.suggest_boundary();
                w.write_all(&data[at..])
            });
            assert_eq!(pos, data.len() as u64);
            let mut expected = vec![at];
            expected.extend(Buzhash::chunk_lengths(AVG, &data[at..]));
            assert_eq!(data_lengths(&got), expected, "suggested at {at}");
            assert_eq!(got.concat_data(), data);
        }
    }
}

#[test]
fn a_suggestion_below_min_is_dropped() {
    let data = noise(100_000, 2);
    let natural = Buzhash::chunk_lengths(AVG, &data);
    for at in [0, 1, min() - 1] {
        let (got, _) = run(PIECE, |w| {
            w.write_all(&data[..at])?;
            w.suggest_boundary();
            w.write_all(&data[at..])
        });
        assert_eq!(data_lengths(&got), natural, "suggested at {at}");
    }
    // Right after a natural cut, the new chunk is empty: dropped too (no empty chunk).
    let (got, _) = run(PIECE, |w| {
        w.write_all(&data[..natural[0]])?;
        w.suggest_boundary();
        w.suggest_boundary();
        w.write_all(&data[natural[0]..])
    });
    assert_eq!(data_lengths(&got), natural);
    // At the end of the stream: nothing to cut.
    let (got, _) = run(PIECE, |w| {
        w.write_all(&data)?;
        w.suggest_boundary();
        w.flush()
    });
    assert_eq!(data_lengths(&got), natural);
}

#[test]
fn injections_force_cuts_and_restart_chunking() {
    let (a, b) = (noise(30_000, 3), noise(30_000, 4));
    let (got, pos) = run(PIECE, |w| {
        w.inject(&[(digest(1), 500)])?;
        w.write_all(&a)?;
        w.inject(&[(digest(2), 7000), (digest(3), 1)])?;
        w.inject(&[(digest(4), 20_000)])?;
        w.write_all(&b[..100])?;
        w.inject(&[(digest(5), 3)])?;
        w.write_all(&b)
    });
    let mut expected = vec![Got::Known(digest(1), 500)];
    let push_data = |data: &[u8], out: &mut Vec<Got>| {
        let mut rest = data;
        for len in Buzhash::chunk_lengths(AVG, data) {
            out.push(Got::Data(rest[..len].to_vec()));
            rest = &rest[len..];
        }
    };
    push_data(&a, &mut expected);
    expected.extend([
        Got::Known(digest(2), 7000),
        Got::Known(digest(3), 1),
        Got::Known(digest(4), 20_000),
        Got::Data(b[..100].to_vec()),
        Got::Known(digest(5), 3),
    ]);
    push_data(&b, &mut expected);
    assert_eq!(got, expected);
    assert_eq!(pos, got.iter().map(len_of).sum::<u64>());
    assert_eq!(pos, 500 + 30_000 + 7001 + 20_000 + 100 + 3 + 30_000);
}

#[test]
fn an_injection_at_the_end_leaves_no_empty_chunk() {
    let (got, pos) = run(PIECE, |w| {
        w.write_all(b"tail")?;
        w.suggest_boundary();
        w.inject(&[(digest(9), 10)])
    });
    assert_eq!(
        got,
        vec![Got::Data(b"tail".to_vec()), Got::Known(digest(9), 10)]
    );
    assert_eq!(pos, 14);
    let (got, pos) = run(PIECE, |_| Ok(()));
    assert!(got.is_empty());
    assert_eq!(pos, 0);
}

#[test]
fn large_injections_stay_in_order() {
    let chunks: Vec<_> = (0..10_000u32).map(|i| (digest(i), i % 97 + 1)).collect();
    let (got, pos) = run(PIECE, |w| {
        w.write_all(b"x")?;
        w.inject(&chunks)?;
        w.write_all(b"y")
    });
    let mut expected = vec![Got::Data(b"x".to_vec())];
    expected.extend(chunks.iter().map(|&(d, l)| Got::Known(d, l)));
    expected.push(Got::Data(b"y".to_vec()));
    assert_eq!(got, expected);
    assert_eq!(pos, got.iter().map(len_of).sum::<u64>());
}

#[test]
fn zero_length_injections_are_refused() {
    let (mut w, mut source) = payload_pipe(2, chunker());
    let err = w.inject(&[(digest(1), 5), (digest(2), 0)]).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert_eq!(w.position(), 0);
    w.inject(&[]).unwrap();
    drop(w);
    assert!(drain(&mut source).unwrap().is_empty());
}

#[test]
fn errors_reach_the_source() {
    let (mut w, mut source) = payload_pipe(1, chunker());
    let writer = std::thread::spawn(move || {
        w.write_all(&noise(50_000, 5)).unwrap();
        w.inject(&[(digest(1), 100)]).unwrap();
        w.fail(io::Error::other("walker failed"));
    });
    let err = drain(&mut source).unwrap_err();
    writer.join().unwrap();
    assert_eq!(err.to_string(), "walker failed");
    // The stream is over afterwards.
    assert_eq!(source.next_chunk(0, &mut Vec::new()).unwrap(), Next::End);
}

#[test]
fn the_writer_sees_a_closed_source() {
    let (mut w, source) = payload_pipe(1, chunker());
    drop(source);
    assert!(w.write_all(&vec![0u8; 4 * PIECE]).is_err());
    let err = w.inject(&[(digest(1), 1)]).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
}

/// Data, injections and suggestions through the whole backup pipeline.
#[test]
fn known_chunks_pass_through_the_backup_pipeline() {
    let parts = [noise(50_000, 6), noise(3000, 7), noise(40_000, 8)];
    let injected = [
        vec![(digest(1), 7000), (digest(2), 123)],
        vec![(digest(3), 999)],
    ];
    for threads in [1, 3] {
        let store = MemStore::default();
        let counters = BackupCounters::default();
        let (mut w, mut source) = payload_pipe(1, chunker());
        let max = source.max_chunk();
        let (parts, injected) = (&parts, &injected);
        let (backup, pos) = std::thread::scope(|s| {
            // The writer moves into its thread: dropping it there ends the stream.
            let writer = s.spawn(move || {
                w.write_all(&parts[0])?;
                w.suggest_boundary();
                w.inject(&injected[0])?;
                w.write_all(&parts[1])?;
                w.suggest_boundary();
                w.write_all(&parts[2])?;
                w.inject(&injected[1])?;
                Ok::<_, io::Error>(w.position())
            });
            let backup = backup_image(
                &mut source,
                "payload",
                &store,
                &BackupSession::new(HashSet::new()),
                max,
                threads,
                &counters,
            )
            .unwrap();
            (backup, writer.join().unwrap().unwrap())
        });
        let total_known: u64 = injected.iter().flatten().map(|&(_, l)| u64::from(l)).sum();
        let written: Vec<u8> = parts.concat();
        assert_eq!(pos, written.len() as u64 + total_known);
        assert_eq!(backup.size, pos);
        assert_eq!(
            backup.lengths.iter().map(|&l| u64::from(l)).sum::<u64>(),
            pos
        );
        assert_eq!(counters.read.load(Ordering::Relaxed), pos);

        // Walk the index: known chunks in place, data chunks hash to the written bytes.
        let known: Vec<_> = injected.iter().flatten().copied().collect();
        let mut next_known = 0;
        let mut offset = 0;
        let mut data_chunks = 0;
        for (d, &len) in backup.digests.iter().zip(&backup.lengths) {
            if next_known < known.len() && *d == known[next_known].0 {
                assert_eq!(len, known[next_known].1);
                next_known += 1;
            } else {
                let end = offset + len as usize;
                assert_eq!(*d, sha256(&written[offset..end]));
                offset = end;
                data_chunks += 1;
            }
        }
        assert_eq!(next_known, known.len());
        assert_eq!(offset, written.len());
        // The forced cuts: the data before each injection ends right before it.
        let first_known = backup.digests.iter().position(|d| *d == digest(1)).unwrap();
        let before: u64 = backup.lengths[..first_known]
            .iter()
            .map(|&l| u64::from(l))
            .sum();
        assert_eq!(before, parts[0].len() as u64);
        assert_eq!(backup.digests.last(), Some(&digest(3)));

        assert_eq!(backup.stats.reused_bytes, total_known);
        assert_eq!(backup.stats.new_bytes, written.len() as u64);
        assert_eq!(backup.stats.zero_bytes, 0);
        assert_eq!(backup.stats.new_chunks, data_chunks);
        assert_eq!(store.inserts(), data_chunks);
        for (d, _) in &known {
            assert!(!store.holds(d) && !store.was_touched(d));
        }
    }
}

#[test]
fn a_failing_writer_fails_the_backup() {
    let store = MemStore::default();
    let (mut w, mut source) = payload_pipe(1, chunker());
    let writer = std::thread::spawn(move || {
        w.write_all(&noise(30_000, 9)).unwrap();
        w.inject(&[(digest(1), 100)]).unwrap();
        w.fail(io::Error::other("walker failed"));
    });
    let err = backup_image(
        &mut source,
        "payload",
        &store,
        &BackupSession::new(HashSet::new()),
        AVG * 4,
        2,
        &BackupCounters::default(),
    )
    .unwrap_err();
    writer.join().unwrap();
    assert!(matches!(err, PipelineError::SourceRead { .. }), "{err}");
    assert!(err.to_string().contains("walker failed"), "{err}");
}

#[derive(Debug, Clone)]
enum Op {
    Write(Vec<u8>),
    Inject(Vec<u32>),
    Suggest,
    Flush,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..6000usize, any::<u64>()).prop_map(|(n, seed)| Op::Write(noise(n, seed))),
        1 => prop::collection::vec(1..20_000u32, 1..4).prop_map(Op::Inject),
        3 => Just(Op::Suggest),
        1 => Just(Op::Flush),
    ]
}

/// The expected data chunks of one stretch of data between injections, with suggestions at
/// `marks` (offsets in `data`): the chunker's natural cuts, plus a cut at every suggestion
/// that comes before the next natural cut and at least `min` after the previous cut.
fn model(data: &[u8], marks: &[usize], out: &mut Vec<Got>) {
    let mut start = 0;
    while start < data.len() {
        let natural = first_cut(&data[start..]).map_or(data.len(), |k| start + k);
        let cut = marks
            .iter()
            .copied()
            .find(|&m| m >= start + min() && m < natural)
            .unwrap_or(natural);
        out.push(Got::Data(data[start..cut].to_vec()));
        start = cut;
    }
}

proptest! {
    #[test]
    fn random_streams_match_the_model(
        ops in prop::collection::vec(op(), 0..40),
        piece in prop_oneof![Just(PIECE), Just(1000usize), Just(7usize)],
    ) {
        let mut next_digest = 0u32;
        let mut expected = Vec::new();
        let mut stretch = Vec::new();
        let mut marks = Vec::new();
        let mut written = Vec::new();
        let mut script = Vec::new();
        for op in &ops {
            match op {
                Op::Write(d) => {
                    stretch.extend_from_slice(d);
                    written.extend_from_slice(d);
                }
                Op::Suggest => marks.push(stretch.len()),
                Op::Flush => {}
                Op::Inject(lens) => {
                    model(&stretch, &marks, &mut expected);
                    stretch.clear();
                    marks.clear();
                    let chunks: Vec<_> = lens
                        .iter()
                        .map(|&l| {
                            next_digest += 1;
                            (digest(next_digest), l)
                        })
                        .collect();
                    expected.extend(chunks.iter().map(|&(d, l)| Got::Known(d, l)));
                    script.push(Some(chunks));
                    continue;
                }
            }
            script.push(None);
        }
        model(&stretch, &marks, &mut expected);

        let (got, pos) = run(piece, |w| {
            for (op, chunks) in ops.iter().zip(&script) {
                match op {
                    Op::Write(d) => w.write_all(d)?,
                    Op::Suggest => w.suggest_boundary(),
                    Op::Flush => w.flush()?,
                    Op::Inject(_) => w.inject(chunks.as_ref().unwrap())?,
                }
            }
            Ok(())
        });
        prop_assert_eq!(got.iter().map(len_of).sum::<u64>(), pos);
        prop_assert_eq!(got.concat_data(), written);
        prop_assert_eq!(got, expected);
    }
}
