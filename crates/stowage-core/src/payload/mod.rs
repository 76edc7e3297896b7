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
mod tests;
