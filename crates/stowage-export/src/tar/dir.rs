//! A live directory tree as a tar stream: the tree is walked into a pxar stream on a helper
//! thread (by stowage-fs, which captures all the metadata) and that stream is turned into tar
//! entries on this one, through a bounded in-memory pipe.

use std::io::{self, Write};
use std::path::Path;

use stowage_archive::{Decoder, Encoder, Format};
use stowage_core::pipe;
use stowage_fs::{create_archive, open_root, CreateError, CreateOptions, CreateStats};

use super::{pxar_to_tar, TarStats};
use crate::ExportError;

/// Pieces of 1 MiB in flight between the walk and the tar writer.
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
    let (writer, reader) = pipe(PIECES);
    let (tar, walk) = std::thread::scope(|s| {
        let walker = s.spawn(move || -> Result<CreateStats, CreateError> {
            let mut encoder = Encoder::new(writer, Format::unified(), &root.metadata)?;
            let stats = create_archive::<_, _, io::Sink>(root, &mut encoder, None, options, warn)?;
            let (mut writer, _) = encoder.finish()?;
            writer.flush().map_err(CreateError::Write)?;
            Ok(stats)
        });
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn pipe_carries_bytes_in_order_and_ends() {
        const PIECE: usize = 1 << 20;
        let (mut w, mut r) = pipe(2);
        let data: Vec<u8> = (0..3 * PIECE + 17).map(|i| (i % 251) as u8).collect();
        let sent = data.clone();
        let writer = std::thread::spawn(move || {
            for part in sent.chunks(4099) {
                w.write_all(part).unwrap();
            }
            w.flush().unwrap();
        });
        let mut got = Vec::new();
        r.read_to_end(&mut got).unwrap();
        writer.join().unwrap();
        assert_eq!(got, data);
    }

    #[test]
    fn a_dropped_reader_stops_the_writer() {
        let (mut w, r) = pipe(1);
        drop(r);
        let big = vec![0u8; 2 << 20];
        let err = w.write_all(&big).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }
}
