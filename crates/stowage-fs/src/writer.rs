//! The content writer of a restored regular file: all-zero 4 KiB blocks (at 4 KiB-aligned file
//! offsets) are skipped instead of written, so they stay holes, and the length is set at the
//! end, so a file ending in zeros stays sparse too.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use stowage_archive::Metadata;

use crate::apply::{self, ApplyCtx, Node};
use crate::error::RestoreError;

/// Size of the blocks checked for zeros.
const BLOCK: usize = 4096;

/// Writes the content of a file being restored. Feed it with [`Write`] (or [`put`]) and call
/// [`finish`], which checks the size and applies the metadata; a writer dropped without
/// `finish` leaves the file with its content so far and no metadata.
///
/// [`put`]: FileWriter::put
/// [`finish`]: FileWriter::finish
#[derive(Debug)]
pub struct FileWriter<'a> {
    file: File,
    sparse: Sparse,
    expected: u64,
    metadata: Metadata,
    path: PathBuf,
    ctx: &'a mut ApplyCtx,
}

impl<'a> FileWriter<'a> {
    pub(crate) fn new(
        file: File,
        metadata: &Metadata,
        expected: u64,
        path: PathBuf,
        ctx: &'a mut ApplyCtx,
    ) -> FileWriter<'a> {
        FileWriter {
            file,
            sparse: Sparse::default(),
            expected,
            metadata: metadata.clone(),
            path,
            ctx,
        }
    }

    /// The file, relative to the restore target.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the next piece of content; errors name the file.
    pub fn put(&mut self, data: &[u8]) -> Result<(), RestoreError> {
        self.write_all(data)
            .map_err(|source| self.write_error(source))
    }

    /// Ends the content (the file must have exactly the size given to
    /// [`Restorer::create_file`](crate::Restorer::create_file)), then applies owner, mode,
    /// extended attributes, ACL, file capabilities and mtime.
    pub fn finish(mut self) -> Result<(), RestoreError> {
        let actual = self
            .sparse
            .finish(&self.file)
            .map_err(|source| self.write_error(source))?;
        if actual != self.expected {
            return Err(RestoreError::SizeMismatch {
                path: self.path,
                expected: self.expected,
                actual,
            });
        }
        let node = Node::Open(self.file.as_fd());
        apply::apply(node, &self.metadata, self.ctx, &self.path)
    }

    fn write_error(&self, source: io::Error) -> RestoreError {
        RestoreError::Io {
            path: self.path.clone(),
            op: "write",
            source,
        }
    }
}

impl Write for FileWriter<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let end = self.sparse.len() + data.len() as u64;
        if end > self.expected {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("more content than the {} bytes announced", self.expected),
            ));
        }
        self.sparse.write(&self.file, data)?;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Block-aligned zero skipping over positional writes.
#[derive(Debug, Default)]
struct Sparse {
    /// Bytes of the current, incomplete block.
    tail: Vec<u8>,
    /// File offset of `tail` (always a multiple of [`BLOCK`]).
    offset: u64,
}

fn is_zero(block: &[u8]) -> bool {
    block.iter().fold(0u8, |acc, &b| acc | b) == 0
}

impl Sparse {
    /// Bytes received so far.
    fn len(&self) -> u64 {
        self.offset + self.tail.len() as u64
    }

    fn write(&mut self, file: &File, mut data: &[u8]) -> io::Result<()> {
        if !self.tail.is_empty() {
            let take = (BLOCK - self.tail.len()).min(data.len());
            self.tail.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.tail.len() < BLOCK {
                return Ok(());
            }
            let block = std::mem::take(&mut self.tail);
            self.write_blocks(file, &block)?;
            self.tail = block;
            self.tail.clear();
        }
        let whole = data.len() / BLOCK * BLOCK;
        self.write_blocks(file, &data[..whole])?;
        self.tail.extend_from_slice(&data[whole..]);
        Ok(())
    }

    /// Writes whole blocks at `offset`: runs of non-zero blocks in one call each, zero blocks
    /// not at all.
    fn write_blocks(&mut self, file: &File, data: &[u8]) -> io::Result<()> {
        let mut run_start: Option<usize> = None;
        for (i, block) in data.chunks_exact(BLOCK).enumerate() {
            let at = i * BLOCK;
            match (is_zero(block), run_start) {
                (false, None) => run_start = Some(at),
                (true, Some(start)) => {
                    file.write_all_at(&data[start..at], self.offset + start as u64)?;
                    run_start = None;
                }
                _ => {}
            }
        }
        if let Some(start) = run_start {
            file.write_all_at(&data[start..], self.offset + start as u64)?;
        }
        self.offset += data.len() as u64;
        Ok(())
    }

    /// Writes the last partial block unless it is all zeros, sets the file length, and returns
    /// it.
    fn finish(&mut self, file: &File) -> io::Result<u64> {
        if !is_zero(&self.tail) {
            file.write_all_at(&self.tail, self.offset)?;
        }
        self.offset += self.tail.len() as u64;
        self.tail.clear();
        file.set_len(self.offset)?;
        Ok(self.offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn write_pieces(pieces: &[&[u8]]) -> (Vec<u8>, u64) {
        let dir = tempfile::tempdir_in("/dev/shm")
            .or_else(|_| tempfile::tempdir())
            .unwrap();
        let path = dir.path().join("f");
        let file = File::create(&path).unwrap();
        let mut s = Sparse::default();
        for p in pieces {
            s.write(&file, p).unwrap();
        }
        let len = s.finish(&file).unwrap();
        assert_eq!(len, file.metadata().unwrap().len());
        let blocks = file.metadata().unwrap().blocks();
        (std::fs::read(&path).unwrap(), blocks)
    }

    #[test]
    fn content_survives_any_split() {
        let mut data: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
        data[5000..20000].fill(0);
        for split in [1usize, 7, 4095, 4096, 4097, 10_000, 40_000] {
            let pieces: Vec<&[u8]> = data.chunks(split).collect();
            let (read, _) = write_pieces(&pieces);
            assert!(read == data, "split {split}");
        }
    }

    #[test]
    fn zero_runs_become_holes() {
        let mut data = vec![0u8; 1 << 20];
        data[0] = 1;
        data[(1 << 20) - 1] = 2;
        let (read, blocks) = write_pieces(&[&data[..100], &data[100..]]);
        assert!(read == data);
        // Two 4 KiB blocks written (16 sectors), not 2048 sectors.
        assert!(blocks <= 64, "{blocks} sectors allocated");
    }

    #[test]
    fn trailing_zeros_and_empty_files() {
        let (read, blocks) = write_pieces(&[&[0u8; 10_000]]);
        assert_eq!((read.len(), blocks), (10_000, 0));
        let (read, _) = write_pieces(&[]);
        assert!(read.is_empty());
    }
}
