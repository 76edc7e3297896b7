//! A bounded in-memory pipe between two threads: an encoder writes, the backup pipeline reads.

use std::io::{self, Read, Write};

use crossbeam_channel::{bounded, Receiver, Sender};

use crate::ImageTarget;

/// Bytes per message between the two ends.
pub(crate) const PIECE: usize = 1 << 20;

/// The writing end. Dropping it ends the stream; [`PipeWriter::fail`] ends it with an error.
pub struct PipeWriter {
    tx: Sender<io::Result<Vec<u8>>>,
    piece: Vec<u8>,
}

/// The reading end.
pub struct PipeReader {
    rx: Receiver<io::Result<Vec<u8>>>,
    current: Vec<u8>,
    pos: usize,
}

/// A pipe holding at most `pieces` MiB in flight.
pub fn pipe(pieces: usize) -> (PipeWriter, PipeReader) {
    let (tx, rx) = bounded(pieces.max(1));
    (
        PipeWriter {
            tx,
            piece: Vec::with_capacity(PIECE),
        },
        PipeReader {
            rx,
            current: Vec::new(),
            pos: 0,
        },
    )
}

/// What a pipe's writing end reports once the reading end has gone away: the reader stopped
/// on purpose (it had what it wanted) or failed with an error of its own, which is the one to
/// report. Recognise it with [`is_closed`].
#[derive(Debug)]
struct PipeClosed;

impl std::fmt::Display for PipeClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the reading side stopped")
    }
}

impl std::error::Error for PipeClosed {}

pub(crate) fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, PipeClosed)
}

/// Whether `err` only says that the reading end of a pipe or feed went away.
pub fn is_closed(err: &io::Error) -> bool {
    err.get_ref().is_some_and(|inner| inner.is::<PipeClosed>())
}

impl PipeWriter {
    /// Ends the stream with an error the reader will see.
    pub fn fail(mut self, err: io::Error) {
        let _ = self.flush_piece();
        let _ = self.tx.send(Err(err));
    }

    fn flush_piece(&mut self) -> io::Result<()> {
        if self.piece.is_empty() {
            return Ok(());
        }
        let full = std::mem::replace(&mut self.piece, Vec::with_capacity(PIECE));
        self.tx.send(Ok(full)).map_err(|_| closed())
    }
}

impl Write for PipeWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(PIECE - self.piece.len());
        self.piece.extend_from_slice(&data[..n]);
        if self.piece.len() == PIECE {
            self.flush_piece()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flush_piece()
    }
}

impl Drop for PipeWriter {
    fn drop(&mut self) {
        let _ = self.flush_piece();
    }
}

/// A restored stream fed to a reader on another thread (an archive decoder): writes arrive in
/// order, zero ranges are written out.
impl ImageTarget for PipeWriter {
    fn write_at(&mut self, _offset: u64, data: &[u8]) -> io::Result<()> {
        self.write_all(data)
    }

    fn write_zeroes(&mut self, _offset: u64, mut len: u64) -> io::Result<()> {
        let zeros = [0u8; 64 * 1024];
        while len > 0 {
            let n = len.min(zeros.len() as u64) as usize;
            self.write_all(&zeros[..n])?;
            len -= n as u64;
        }
        Ok(())
    }

    fn finish(&mut self, _size: u64) -> io::Result<()> {
        self.flush_piece()
    }
}

impl Read for PipeReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.current.len() {
            match self.rx.recv() {
                Ok(Ok(piece)) => {
                    self.current = piece;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.current.len() - self.pos);
        out[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carries_bytes_and_errors() {
        let (mut w, mut r) = pipe(2);
        let writer = std::thread::spawn(move || {
            for i in 0..3000u32 {
                w.write_all(&i.to_le_bytes().repeat(100)).unwrap();
            }
            w.fail(io::Error::other("walker failed"));
        });
        let mut got = Vec::new();
        let err = r.read_to_end(&mut got).unwrap_err();
        writer.join().unwrap();
        assert_eq!(err.to_string(), "walker failed");
        assert_eq!(got.len(), 3000 * 400);
        assert_eq!(&got[400..404], &1u32.to_le_bytes());
    }

    #[test]
    fn writer_sees_a_closed_reader() {
        let (mut w, r) = pipe(1);
        drop(r);
        let big = vec![0u8; 4 * PIECE];
        assert!(w.write_all(&big).is_err());
    }
}
