//! A live directory tree as a tar stream: the tree is walked into a pxar stream on a helper
//! thread (by stowage-fs, which captures all the metadata) and that stream is turned into tar
//! entries on this one, through a bounded in-memory pipe.

use std::io::{self, Read, Write};
use std::path::Path;

use crossbeam_channel::{bounded, Receiver, Sender};
use stowage_archive::{Decoder, Encoder, Format};
use stowage_fs::{create_archive, open_root, CreateError, CreateOptions, CreateStats};

use super::{pxar_to_tar, TarStats};
use crate::ExportError;

/// Bytes per message between the walk and the tar writer.
const PIECE: usize = 1 << 20;
/// Messages in flight.
const PIECES: usize = 8;

/// What went into a tar stream made from a directory.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DirTarStats {
    pub tar: TarStats,
    /// The walk's counts; `walk.warnings` entries could not be read (each was passed to `warn`)
    /// and are missing from the tar or, for files that shrank or failed while being read, hold
    /// zeros for the rest of their size.
    pub walk: CreateStats,
}

/// Writes the tree below `dir` as a tar stream to `out` (see [`pxar_to_tar`]): `dir` itself is
/// the `./` entry. `options` are those of a backup (excludes, one file system, a selection);
/// `warn` receives one line per entry that could not be read.
pub fn dir_to_tar<W: Write>(
    dir: &Path,
    options: &mut CreateOptions,
    warn: &mut (dyn FnMut(String) + Send),
    out: W,
) -> Result<DirTarStats, ExportError> {
    let root = open_root(dir)?;
    let (tx, rx) = bounded(PIECES);
    let (tar, walk) = std::thread::scope(|s| {
        let walker = s.spawn(move || -> Result<CreateStats, CreateError> {
            let writer = PipeWriter {
                tx,
                piece: Vec::with_capacity(PIECE),
            };
            let mut encoder = Encoder::new(writer, Format::unified(), &root.metadata)?;
            let stats = create_archive::<_, _, io::Sink>(root, &mut encoder, None, options, warn)?;
            let (mut writer, _) = encoder.finish()?;
            writer.flush().map_err(CreateError::Write)?;
            Ok(stats)
        });
        let reader = PipeReader {
            rx,
            current: Vec::new(),
            pos: 0,
        };
        // Returning drops the reader: a walk still running stops at its next write.
        let tar = pxar_to_tar(Decoder::new(reader), None, out);
        let walk = walker.join();
        (tar, walk)
    });
    let walk = walk.map_err(|_| ExportError::Read {
        what: dir.display().to_string(),
        source: io::Error::other("the directory walk panicked"),
    })?;
    match (tar, walk) {
        (Ok(tar), Ok(walk)) => Ok(DirTarStats { tar, walk }),
        // The walk failed first and the decoder saw the stream end early.
        (Err(ExportError::Decode(_)), Err(e)) | (Ok(_), Err(e)) => Err(e.into()),
        // Writing the tar failed first; the walk found the pipe closed.
        (Err(e), _) => Err(e),
    }
}

/// The writing end of the pipe; dropping it ends the stream.
struct PipeWriter {
    tx: Sender<Vec<u8>>,
    piece: Vec<u8>,
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the tar writer stopped")
}

impl PipeWriter {
    fn send_piece(&mut self) -> io::Result<()> {
        if self.piece.is_empty() {
            return Ok(());
        }
        let full = std::mem::replace(&mut self.piece, Vec::with_capacity(PIECE));
        self.tx.send(full).map_err(|_| closed())
    }
}

impl Write for PipeWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(PIECE - self.piece.len());
        self.piece.extend_from_slice(&buf[..n]);
        if self.piece.len() == PIECE {
            self.send_piece()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send_piece()
    }
}

/// The reading end: end of stream once the writer is gone.
struct PipeReader {
    rx: Receiver<Vec<u8>>,
    current: Vec<u8>,
    pos: usize,
}

impl Read for PipeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.current.len() {
            match self.rx.recv() {
                Ok(piece) => {
                    self.current = piece;
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipe_carries_bytes_in_order_and_ends() {
        let (tx, rx) = bounded(2);
        let data: Vec<u8> = (0..3 * PIECE + 17).map(|i| (i % 251) as u8).collect();
        let sent = data.clone();
        let writer = std::thread::spawn(move || {
            let mut w = PipeWriter {
                tx,
                piece: Vec::new(),
            };
            for part in sent.chunks(4099) {
                w.write_all(part).unwrap();
            }
            w.flush().unwrap();
        });
        let mut r = PipeReader {
            rx,
            current: Vec::new(),
            pos: 0,
        };
        let mut got = Vec::new();
        r.read_to_end(&mut got).unwrap();
        writer.join().unwrap();
        assert_eq!(got, data);
    }

    #[test]
    fn a_dropped_reader_stops_the_writer() {
        let (tx, rx) = bounded(1);
        drop(rx);
        let mut w = PipeWriter {
            tx,
            piece: Vec::new(),
        };
        let big = vec![0u8; 2 * PIECE];
        let err = w.write_all(&big).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }
}
