//! The payload stream of a split pxar archive (`.ppxar`) on its way to the backup pipeline.
//!
//! The archive encoder writes file payloads into a [`PayloadWriter`]; the pipeline reads chunks
//! from the matching [`PayloadSource`]. Two things set this pipe apart from [`crate::pipe`]:
//!
//! * unchanged files re-use the previous snapshot's payload: the caller appends the previous
//!   `.ppxar` chunks holding it with [`PayloadWriter::inject`]. They reach the pipeline by
//!   reference ([`Next::Known`]), in order; the data written before them ends in a chunk of its
//!   own (a forced cut) and chunking starts afresh after them;
//! * the start of every file's payload is a suggested boundary
//!   ([`PayloadWriter::suggest_boundary`]): the chunker cuts there when the chunk so far is at
//!   least its minimum size, as PBS's PayloadChunker does (spec 6.1), so that unchanged files
//!   tend to sit in chunks of their own and can be re-used next time.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::mem;

use crossbeam_channel::{bounded, Receiver, Sender};
use stowage_chunker::Buzhash;
use stowage_types::Digest;

use crate::pipe::{closed, PIECE};
use crate::{ImageSource, Next};

/// Known chunks per message, whatever the caller injects at once: keeps messages small.
const KNOWN_BATCH: usize = 4096;

enum Msg {
    /// Stream bytes. `marks`: ascending offsets in `bytes` (`bytes.len()` included) where a
    /// boundary is suggested.
    Data { bytes: Vec<u8>, marks: Vec<usize> },
    /// Chunks already in the store, next in the stream.
    Known(Vec<(Digest, u32)>),
    /// The writer failed: the stream ends with this error.
    Fail(io::Error),
}

/// The writing end. Dropping it ends the stream; [`PayloadWriter::fail`] ends it with an error.
pub struct PayloadWriter {
    tx: Sender<Msg>,
    piece: Vec<u8>,
    /// Suggested boundaries in `piece`, ascending, without repeats.
    marks: Vec<usize>,
    piece_size: usize,
    position: u64,
}

/// The reading end, an [`ImageSource`] for the backup pipeline: data cut by a buzhash chunker,
/// injected chunks as [`Next::Known`].
pub struct PayloadSource {
    rx: Receiver<Msg>,
    chunker: Buzhash,
    /// The piece being chunked, up to `pos`.
    current: Vec<u8>,
    pos: usize,
    marks: Vec<usize>,
    /// The next mark of `marks` still ahead.
    mark: usize,
    known: VecDeque<(Digest, u32)>,
    ended: bool,
}

/// A payload pipe holding at most `pieces` messages in flight (each at most 1 MiB of data or a
/// few thousand injected chunk references). `chunker` cuts the data; the source resets it at
/// every forced or honoured suggested cut.
pub fn payload_pipe(pieces: usize, chunker: Buzhash) -> (PayloadWriter, PayloadSource) {
    payload_pipe_sized(pieces, chunker, PIECE)
}

fn payload_pipe_sized(
    pieces: usize,
    mut chunker: Buzhash,
    piece_size: usize,
) -> (PayloadWriter, PayloadSource) {
    let (tx, rx) = bounded(pieces.max(1));
    chunker.reset();
    (
        PayloadWriter {
            tx,
            piece: Vec::with_capacity(piece_size),
            marks: Vec::new(),
            piece_size,
            position: 0,
        },
        PayloadSource {
            rx,
            chunker,
            current: Vec::new(),
            pos: 0,
            marks: Vec::new(),
            mark: 0,
            known: VecDeque::new(),
            ended: false,
        },
    )
}

impl PayloadWriter {
    /// Bytes of the stream so far: written plus injected.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Suggests a chunk boundary at the current position (the start of a file's payload). The
    /// source cuts there if the chunk so far is at least the chunker's minimum size, and
    /// ignores the suggestion otherwise.
    pub fn suggest_boundary(&mut self) {
        let at = self.piece.len();
        if self.marks.last() != Some(&at) {
            self.marks.push(at);
        }
    }

    /// Appends chunks the store already holds (chunks of the previous snapshot), by reference
    /// and in order. Whatever was written before ends in a chunk right before them; chunking
    /// starts afresh after them. Nothing happens for an empty list; a chunk of length 0 is
    /// refused (`InvalidInput`) and nothing of the list is appended.
    pub fn inject(&mut self, chunks: &[(Digest, u32)]) -> io::Result<()> {
        if chunks.iter().any(|&(_, len)| len == 0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot inject a chunk of length 0",
            ));
        }
        if chunks.is_empty() {
            return Ok(());
        }
        self.flush_piece()?;
        // Suggestions left at this point are moot: the injection cuts here anyway.
        self.marks.clear();
        for batch in chunks.chunks(KNOWN_BATCH) {
            self.tx
                .send(Msg::Known(batch.to_vec()))
                .map_err(|_| closed())?;
            self.position += batch.iter().map(|&(_, len)| u64::from(len)).sum::<u64>();
        }
        Ok(())
    }

    /// Ends the stream with an error the source will report.
    pub fn fail(mut self, err: io::Error) {
        let _ = self.flush_piece();
        let _ = self.tx.send(Msg::Fail(err));
    }

    fn flush_piece(&mut self) -> io::Result<()> {
        if self.piece.is_empty() {
            // Suggestions at offset 0 stay: they belong to the next byte written.
            return Ok(());
        }
        let bytes = mem::replace(&mut self.piece, Vec::with_capacity(self.piece_size));
        let marks = mem::take(&mut self.marks);
        self.tx
            .send(Msg::Data { bytes, marks })
            .map_err(|_| closed())
    }
}

impl Write for PayloadWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(self.piece_size - self.piece.len());
        self.piece.extend_from_slice(&data[..n]);
        self.position += n as u64;
        if self.piece.len() == self.piece_size {
            self.flush_piece()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flush_piece()
    }
}

impl Drop for PayloadWriter {
    fn drop(&mut self) {
        let _ = self.flush_piece();
    }
}

impl PayloadSource {
    /// The largest data chunk this source yields (injected chunks are as long as they are).
    pub fn max_chunk(&self) -> usize {
        self.chunker.max_size()
    }
}

impl ImageSource for PayloadSource {
    /// `len` is ignored: the content, the suggestions and the injections decide where chunks end.
    fn next_chunk(&mut self, _len: usize, buf: &mut Vec<u8>) -> io::Result<Next> {
        if let Some((digest, len)) = self.known.pop_front() {
            return Ok(Next::Known { digest, len });
        }
        if self.ended {
            return Ok(Next::End);
        }
        // Bytes of the current chunk, in `buf` (which is cleared only once data comes, so that
        // it stays untouched when a known chunk comes first).
        let mut chunk = 0usize;
        loop {
            // Suggested boundaries at the current position.
            while self.marks.get(self.mark).is_some_and(|&m| m <= self.pos) {
                self.mark += 1;
                if chunk >= self.chunker.min_size() {
                    self.chunker.reset();
                    return Ok(Next::Data);
                }
            }
            if self.pos == self.current.len() {
                match self.rx.recv() {
                    Ok(Msg::Data { bytes, marks }) => {
                        self.current = bytes;
                        self.pos = 0;
                        self.marks = marks;
                        self.mark = 0;
                    }
                    Ok(Msg::Known(chunks)) => {
                        self.known.extend(chunks);
                        // A forced cut: the data so far is a chunk, the next one starts afresh.
                        self.chunker.reset();
                        if chunk > 0 {
                            return Ok(Next::Data);
                        }
                        if let Some((digest, len)) = self.known.pop_front() {
                            return Ok(Next::Known { digest, len });
                        }
                    }
                    Ok(Msg::Fail(err)) => {
                        self.ended = true;
                        return Err(err);
                    }
                    Err(_) => {
                        self.ended = true;
                        return Ok(if chunk > 0 { Next::Data } else { Next::End });
                    }
                }
                continue;
            }
            let end = self
                .marks
                .get(self.mark)
                .map_or(self.current.len(), |&m| m.min(self.current.len()));
            let available = &self.current[self.pos..end];
            if chunk == 0 {
                buf.clear();
            }
            match self.chunker.scan(available) {
                Some(k) => {
                    buf.extend_from_slice(&available[..k]);
                    self.pos += k;
                    return Ok(Next::Data);
                }
                None => {
                    buf.extend_from_slice(available);
                    chunk += available.len();
                    self.pos = end;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
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
}
