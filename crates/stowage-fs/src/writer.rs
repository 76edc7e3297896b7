//! The content writer of a restored regular file: all-zero 4 KiB blocks (at 4 KiB-aligned file
//! offsets) are skipped instead of written, so they stay holes, and the length is set at the
//! end when the file ends in such a hole, so a file ending in zeros stays sparse too.
//!
//! With a [`Pool`], the content is cut into pieces of [`PIECE`] bytes that the pool's threads
//! write at their offsets in parallel (several files, and several pieces of one file, at once);
//! whoever finishes last with a file sets its length and applies its metadata.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use stowage_archive::Metadata;

use crate::apply::{self, ApplyCtx, Node};
use crate::error::RestoreError;
use crate::parallel::{Piece, Pool, PIECE};

/// Size of the blocks checked for zeros.
const BLOCK: usize = 4096;

/// Files whose content did not all arrive (paths relative to the restore target): a failed
/// restore removes them, so every file it leaves is whole.
pub(crate) type Incomplete = Arc<Mutex<Vec<PathBuf>>>;

/// A file being restored, shared by the pieces of its content in flight.
#[derive(Debug)]
pub(crate) struct Target {
    pub file: File,
    pub path: PathBuf,
    pub metadata: Metadata,
    pub size: u64,
    /// The file ends in a hole: its length must be set.
    pub needs_len: AtomicBool,
    /// Created with the owner and mode it is to have: neither is set again (after a check).
    pub preset: bool,
    /// All content was handed over, of the announced size.
    pub complete: AtomicBool,
    /// Writing a piece failed.
    pub failed: AtomicBool,
    /// Where the file goes if it is dropped before all of it was written.
    pub incomplete: Incomplete,
}

impl Drop for Target {
    fn drop(&mut self) {
        let whole = self.complete.load(Ordering::Acquire) && !self.failed.load(Ordering::Acquire);
        if !whole {
            if let Ok(mut list) = self.incomplete.lock() {
                list.push(std::mem::take(&mut self.path));
            }
        }
    }
}

impl Target {
    /// A new file of `size` bytes at `path` (relative to the restore target), to get
    /// `metadata`; `preset`: created with its final owner and mode. Listed in `incomplete` if
    /// it goes before all its content was written.
    pub fn new(
        file: File,
        path: PathBuf,
        metadata: &Metadata,
        size: u64,
        preset: bool,
        incomplete: &Incomplete,
    ) -> Target {
        Target {
            file,
            path,
            metadata: metadata.clone(),
            size,
            needs_len: AtomicBool::new(false),
            preset,
            complete: AtomicBool::new(false),
            failed: AtomicBool::new(false),
            incomplete: incomplete.clone(),
        }
    }

    /// Sets the length if needed and applies the metadata: the last step, after all content.
    /// A file whose content did not all arrive gets none (the error is reported elsewhere).
    pub fn finish(self, ctx: &mut ApplyCtx) -> Result<(), RestoreError> {
        if !self.complete.load(Ordering::Acquire) || self.failed.load(Ordering::Acquire) {
            return Ok(());
        }
        if self.needs_len.load(Ordering::Acquire) {
            self.file
                .set_len(self.size)
                .map_err(|source| write_error(&self.path, source))?;
        }
        let node = Node::Open(self.file.as_fd());
        match self.preset && self.came_out_right() {
            true => apply::apply_after_mode(node, &self.metadata, ctx, &self.path),
            false => apply::apply(node, &self.metadata, ctx, &self.path),
        }
    }

    /// Whether the new file has the owner and mode it is to have: the umask and the setgid bit
    /// are accounted for at creation, but a default ACL or a `grpid` mount can still decide
    /// otherwise.
    fn came_out_right(&self) -> bool {
        let Ok(st) = nix::sys::stat::fstat(&self.file) else {
            return false;
        };
        let want = &self.metadata.stat;
        u64::from(st.st_mode) & 0o7777 == want.mode & 0o7777
            && st.st_uid == want.uid
            && st.st_gid == want.gid
    }

    /// Writes one piece of content at `offset` (a multiple of [`PIECE`]).
    pub fn write_piece(&self, offset: u64, data: &[u8]) -> Result<(), RestoreError> {
        let mut sparse = Sparse::at(offset);
        let result = sparse.write(&self.file, data).and_then(|()| {
            if offset + data.len() as u64 == self.size {
                let total = sparse.finish_tail(&self.file)?;
                if sparse.written_end < total {
                    self.needs_len.store(true, Ordering::Release);
                }
            }
            Ok(())
        });
        debug_assert!(sparse.tail.is_empty() || offset + data.len() as u64 == self.size);
        if result.is_err() {
            self.failed.store(true, Ordering::Release);
        }
        result.map_err(|source| write_error(&self.path, source))
    }
}

fn write_error(path: &Path, source: io::Error) -> RestoreError {
    RestoreError::Io {
        path: path.to_path_buf(),
        op: "write",
        source,
    }
}

/// Where a [`FileWriter`] puts the content.
#[derive(Debug)]
enum Sink<'a> {
    /// Written by the calling thread as it comes.
    Inline(Sparse),
    /// Collected into pieces for the pool's threads; `sent` bytes went out before `buf`.
    Pooled {
        pool: &'a Pool,
        buf: Vec<u8>,
        sent: u64,
    },
}

/// Writes the content of a file being restored. Feed it with [`Write`] (or [`put`]) and call
/// [`finish`], which checks the size and has the metadata applied after the content; a writer
/// dropped without `finish` leaves the file with (some of) its content and no metadata.
///
/// [`put`]: FileWriter::put
/// [`finish`]: FileWriter::finish
#[derive(Debug)]
pub struct FileWriter<'a> {
    target: Arc<Target>,
    sink: Sink<'a>,
    received: u64,
    ctx: &'a mut ApplyCtx,
}

impl<'a> FileWriter<'a> {
    /// Writes the content of the new file `target` (see [`Target::new`]).
    pub(crate) fn new(target: Target, ctx: &'a mut ApplyCtx, pool: Option<&'a Pool>) -> Self {
        let sink = match pool {
            // The buffer is taken at the first byte: an empty file needs none.
            Some(pool) => Sink::Pooled {
                pool,
                buf: Vec::new(),
                sent: 0,
            },
            None => Sink::Inline(Sparse::default()),
        };
        FileWriter {
            target: Arc::new(target),
            sink,
            received: 0,
            ctx,
        }
    }

    /// The file, relative to the restore target.
    pub fn path(&self) -> &Path {
        &self.target.path
    }

    /// Writes the next piece of content; errors name the file.
    pub fn put(&mut self, data: &[u8]) -> Result<(), RestoreError> {
        self.write_all(data).map_err(|source| {
            // A pool thread's error names the file it was writing, which may be an earlier one.
            match source.downcast::<RestoreError>() {
                Ok(pool_error) => pool_error,
                Err(source) => write_error(&self.target.path, source),
            }
        })
    }

    /// Ends the content (the file must have exactly the size given to
    /// [`Restorer::create_file`](crate::Restorer::create_file)), then applies owner, mode,
    /// extended attributes, ACL, file capabilities and mtime: right here, or, with a pool, by
    /// whichever thread writes the file's last piece.
    pub fn finish(self) -> Result<(), RestoreError> {
        let FileWriter {
            target,
            sink,
            received,
            ctx,
        } = self;
        if received != target.size {
            return Err(RestoreError::SizeMismatch {
                path: target.path.clone(),
                expected: target.size,
                actual: received,
            });
        }
        match sink {
            Sink::Inline(mut sparse) => {
                let total = sparse
                    .finish_tail(&target.file)
                    .map_err(|source| write_error(&target.path, source))?;
                if sparse.written_end < total {
                    target.needs_len.store(true, Ordering::Release);
                }
            }
            Sink::Pooled { pool, buf, sent } => {
                if !buf.is_empty() {
                    pool.send(Piece {
                        target: target.clone(),
                        offset: sent,
                        data: buf,
                    })?;
                }
            }
        }
        // All of it is handed over (only now: a piece that could not be queued leaves the file
        // incomplete, and it is removed). The last holder finishes the file: here, unless
        // pieces are still being written.
        target.complete.store(true, Ordering::Release);
        match Arc::into_inner(target) {
            Some(target) => target.finish(ctx),
            None => Ok(()),
        }
    }
}

impl Write for FileWriter<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let end = self.received + data.len() as u64;
        if end > self.target.size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("more content than the {} bytes announced", self.target.size),
            ));
        }
        match &mut self.sink {
            Sink::Inline(sparse) => sparse.write(&self.target.file, data)?,
            Sink::Pooled { pool, buf, sent } => {
                let mut rest = data;
                if buf.capacity() == 0 && !rest.is_empty() {
                    *buf = pool.buffer();
                }
                while !rest.is_empty() {
                    let take = (PIECE - buf.len()).min(rest.len());
                    buf.extend_from_slice(&rest[..take]);
                    rest = &rest[take..];
                    if buf.len() == PIECE {
                        let next = match rest.is_empty() {
                            true => Vec::new(),
                            false => pool.buffer(),
                        };
                        let piece = Piece {
                            target: self.target.clone(),
                            offset: *sent,
                            data: std::mem::replace(buf, next),
                        };
                        *sent += PIECE as u64;
                        pool.send(piece).map_err(io::Error::other)?;
                    }
                }
            }
        }
        self.received = end;
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
    /// End of the last byte range actually written.
    written_end: u64,
}

fn is_zero(block: &[u8]) -> bool {
    block.iter().fold(0u8, |acc, &b| acc | b) == 0
}

impl Sparse {
    /// Writing from `offset` (a multiple of [`BLOCK`]) on.
    fn at(offset: u64) -> Sparse {
        Sparse {
            offset,
            ..Sparse::default()
        }
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
                    self.write_run(file, &data[start..at], start)?;
                    run_start = None;
                }
                _ => {}
            }
        }
        if let Some(start) = run_start {
            self.write_run(file, &data[start..], start)?;
        }
        self.offset += data.len() as u64;
        Ok(())
    }

    fn write_run(&mut self, file: &File, run: &[u8], start: usize) -> io::Result<()> {
        let at = self.offset + start as u64;
        file.write_all_at(run, at)?;
        self.written_end = self.written_end.max(at + run.len() as u64);
        Ok(())
    }

    /// Writes the last partial block unless it is all zeros; returns the bytes received in
    /// all. The file needs its length set when `written_end` is short of that.
    fn finish_tail(&mut self, file: &File) -> io::Result<u64> {
        if !is_zero(&self.tail) {
            let tail = std::mem::take(&mut self.tail);
            self.write_run(file, &tail, 0)?;
            self.tail = tail;
        }
        self.offset += self.tail.len() as u64;
        self.tail.clear();
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
        let len = s.finish_tail(&file).unwrap();
        if s.written_end < len {
            file.set_len(len).unwrap();
        }
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
