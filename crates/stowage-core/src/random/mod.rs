//! Random access to the byte stream behind a chunk index: an image, or an archive's stream such
//! as the `.ppxar` payload stream of a split pxar archive, whose files are referenced by offset.
//!
//! Each chunk is read from the [`ChunkSource`], decoded and verified (digest and length) before
//! any of its bytes are used. A small LRU cache of decoded chunks makes reading many small
//! consecutive files out of one chunk decode it once. All-zero chunks are recognised by digest, as
//! the restore pipeline does, and never read.

use std::io::{self, Write};

use stowage_types::Digest;

use crate::codec::ChunkDecoder;
use crate::restore::fetch_one;
use crate::{ChunkLayout, ChunkSource, PipelineError};

/// Zeros written out for all-zero chunks, a slice at a time.
static ZEROS: [u8; 64 << 10] = [0; 64 << 10];

/// Reads any byte range of the stream behind a chunk index.
///
/// Memory: up to `cache_chunks + 1` decoded chunks and one encoded chunk.
pub struct RandomReader<'a> {
    layout: &'a dyn ChunkLayout,
    source: &'a dyn ChunkSource,
    name: String,
    /// Length of the stream, as the index says.
    size: u64,
    /// Start offset of each chunk of the contiguous run of chunks from offset 0.
    starts: Vec<u64>,
    /// Where that run ends (at most `size`): bytes from here to `size` have no chunk.
    covered: u64,
    /// Lengths whose all-zero digest is recognised, with the digest once computed.
    zero_digests: Vec<(usize, Option<Digest>)>,
    decoder: Option<Box<dyn ChunkDecoder>>,
    encoded: Vec<u8>,
    /// Verified chunks, least recently used first.
    cache: Vec<Cached>,
    capacity: usize,
    /// A buffer to decode the next chunk into (the last evicted one, or one a failure left).
    spare: Vec<u8>,
    /// Chunks fetched and verified ahead, in stream order (see [`chunk_feed`]).
    feed: Option<ChunkFeed>,
    /// A chunk taken from the feed that lies beyond the one asked for.
    pending: Option<(u64, Vec<u8>)>,
}

/// The restore pipeline's end of a [`ChunkFeed`]: pass it to [`restore_image`](crate::restore_image)
/// as the target. All-zero chunks are not sent (the reader knows them by digest). Chunks move
/// to the reader without a copy, and the buffers the reader is done with come back to be
/// decoded into again.
pub struct FeedTarget {
    chunks: crossbeam_channel::Sender<(u64, Vec<u8>)>,
    spare: crossbeam_channel::Receiver<Vec<u8>>,
}

/// Chunks fetched, decoded and verified ahead of a [`RandomReader`], in stream order, as (start
/// offset, data): the restore pipeline fills it on other threads while the reader's owner works.
pub struct ChunkFeed {
    chunks: crossbeam_channel::Receiver<(u64, Vec<u8>)>,
    /// Buffers going back to the pipeline.
    spare: crossbeam_channel::Sender<Vec<u8>>,
}

/// A feed holding at most `chunks` chunks ahead of the reader.
pub fn chunk_feed(chunks: usize) -> (FeedTarget, ChunkFeed) {
    let (tx, rx) = crossbeam_channel::bounded(chunks.max(1));
    let (spare_tx, spare_rx) = crossbeam_channel::bounded(2);
    (
        FeedTarget {
            chunks: tx,
            spare: spare_rx,
        },
        ChunkFeed {
            chunks: rx,
            spare: spare_tx,
        },
    )
}

impl crate::ImageTarget for FeedTarget {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.write_owned(offset, data.to_vec()).map(drop)
    }

    fn write_owned(&mut self, offset: u64, data: Vec<u8>) -> io::Result<Vec<u8>> {
        self.chunks
            .send((offset, data))
            .map_err(|_| crate::pipe::closed())?;
        Ok(self.spare.try_recv().unwrap_or_default())
    }

    fn write_zeroes(&mut self, _offset: u64, _len: u64) -> io::Result<()> {
        Ok(())
    }

    fn finish(&mut self, _size: u64) -> io::Result<()> {
        Ok(())
    }
}

struct Cached {
    index: usize,
    data: Vec<u8>,
}

/// The bytes of one chunk from some offset on.
enum Piece<'b> {
    Data(&'b [u8]),
    Zeros(usize),
}

impl<'a> RandomReader<'a> {
    /// A reader of the stream `layout` describes, with chunks from `source`, keeping at most
    /// `cache_chunks` (at least 1) decoded chunks.
    pub fn new(
        layout: &'a dyn ChunkLayout,
        source: &'a dyn ChunkSource,
        cache_chunks: usize,
    ) -> Self {
        let size = layout.total_size();
        let mut starts = Vec::with_capacity(layout.chunk_count());
        let mut end = 0u64;
        for i in 0..layout.chunk_count() {
            if end >= size {
                break;
            }
            let (start, len, _) = layout.chunk(i);
            let next = match start.checked_add(len as u64) {
                Some(next) if start == end => next,
                _ => break,
            };
            starts.push(start);
            end = next;
        }
        let mut lengths = layout.zero_lengths();
        lengths.sort_unstable();
        lengths.dedup();
        RandomReader {
            layout,
            source,
            name: "chunk stream".to_string(),
            size,
            starts,
            covered: end.min(size),
            zero_digests: lengths.into_iter().map(|len| (len, None)).collect(),
            decoder: None,
            encoded: Vec::new(),
            cache: Vec::new(),
            capacity: cache_chunks.max(1),
            spare: Vec::new(),
            feed: None,
            pending: None,
        }
    }

    /// Takes chunks from `feed` (filled in stream order by the restore pipeline) instead of
    /// reading them one at a time: reads that move forward through the stream then find their
    /// chunks decoded already. A chunk the feed has passed is read directly.
    pub fn with_feed(mut self, feed: ChunkFeed) -> Self {
        self.feed = Some(feed);
        self
    }

    /// The chunk starting at `start` from the feed, if it still comes.
    fn take_fed(&mut self, start: u64) -> Option<Vec<u8>> {
        loop {
            let item = match self.pending.take() {
                Some(item) => item,
                None => match self.feed.as_ref()?.chunks.recv() {
                    Ok(item) => item,
                    Err(_) => {
                        self.feed = None;
                        return None;
                    }
                },
            };
            match item.0.cmp(&start) {
                std::cmp::Ordering::Equal => return Some(item.1),
                std::cmp::Ordering::Greater => {
                    self.pending = Some(item);
                    return None;
                }
                std::cmp::Ordering::Less => self.recycle(item.1), // not needed
            }
        }
    }

    /// A decoded chunk no longer needed: back to the feeding pipeline if there is one and it
    /// has room, else kept for the next direct read.
    fn recycle(&mut self, buf: Vec<u8>) {
        let back = match &self.feed {
            Some(feed) => feed.spare.try_send(buf).err().map(|e| e.into_inner()),
            None => Some(buf),
        };
        if let Some(buf) = back {
            self.spare = buf;
        }
    }

    /// Names the stream (an archive name, say) in error messages.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Length of the stream.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Reads up to `buf.len()` bytes at `offset` into `buf`, across chunk boundaries. Fewer bytes
    /// only at the end of the stream: 0 at or beyond it. After an error the contents of `buf` are
    /// unspecified.
    pub fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<usize, PipelineError> {
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset.saturating_add(done as u64);
            if pos >= self.size {
                break;
            }
            let out = &mut buf[done..];
            let n = match self.piece(pos, out.len() as u64)? {
                Piece::Data(data) => {
                    out[..data.len()].copy_from_slice(data);
                    data.len()
                }
                Piece::Zeros(n) => {
                    out[..n].fill(0);
                    n
                }
            };
            done += n;
        }
        Ok(done)
    }

    /// Writes the `len` bytes at `offset` to `out`. The range must lie within the stream.
    ///
    /// A failed write is a [`PipelineError::TargetWrite`] naming the range, not `out` (which this
    /// reader cannot name): callers that know a better name can put it in.
    pub fn copy_range(
        &mut self,
        offset: u64,
        len: u64,
        out: &mut dyn Write,
    ) -> Result<(), PipelineError> {
        let end = match offset.checked_add(len) {
            Some(end) if end <= self.size => end,
            _ => {
                return Err(self.range_error(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "{len} bytes at offset {offset} go beyond the end of the stream \
                         ({} bytes)",
                        self.size
                    ),
                ))
            }
        };
        let mut pos = offset;
        while pos < end {
            let (n, written) = match self.piece(pos, end - pos)? {
                Piece::Data(data) => (data.len(), out.write_all(data)),
                Piece::Zeros(n) => (n, write_zeros(out, n)),
            };
            written.map_err(|source| PipelineError::TargetWrite {
                name: format!("(copy of bytes {offset}..{end} of {})", self.name),
                source,
            })?;
            pos += n as u64;
        }
        Ok(())
    }

    /// Up to `max` (> 0) bytes from `pos` (< `size`) on, all from the chunk that holds `pos`.
    fn piece(&mut self, pos: u64, max: u64) -> Result<Piece<'_>, PipelineError> {
        if pos >= self.covered {
            return Err(self.uncovered(pos));
        }
        // starts[0] == 0 <= pos, so the partition point is at least 1.
        let i = self.starts.partition_point(|&s| s <= pos) - 1;
        let layout = self.layout;
        let (start, len, digest) = layout.chunk(i);
        let Some(within) = pos.checked_sub(start).filter(|&w| w < len as u64) else {
            return Err(self.uncovered(pos));
        };
        let n = (len as u64 - within).min(max).min(self.covered - pos) as usize;
        if self.is_zero_chunk(len, digest) {
            return Ok(Piece::Zeros(n));
        }
        let data = self.chunk_data(i, start, len, digest)?;
        let within = within as usize;
        Ok(Piece::Data(&data[within..within + n]))
    }

    fn is_zero_chunk(&mut self, len: usize, digest: &Digest) -> bool {
        self.zero_digests
            .iter_mut()
            .find(|(l, _)| *l == len)
            .is_some_and(|(_, zero)| {
                *zero.get_or_insert_with(|| self.source.codec().zero_digest(len)) == *digest
            })
    }

    /// The verified data of chunk `i`, from the cache or the source.
    fn chunk_data(
        &mut self,
        i: usize,
        start: u64,
        len: usize,
        digest: &Digest,
    ) -> Result<&[u8], PipelineError> {
        if let Some(at) = self.cache.iter().position(|c| c.index == i) {
            let hit = self.cache.remove(at);
            self.cache.push(hit);
        } else if let Some(data) = self.take_fed(start).filter(|d| d.len() == len) {
            if self.cache.len() >= self.capacity {
                let old = self.cache.remove(0).data;
                self.recycle(old);
            }
            self.cache.push(Cached { index: i, data });
        } else {
            let decoder = match &mut self.decoder {
                Some(decoder) => decoder,
                None => self.decoder.insert(
                    self.source
                        .codec()
                        .decoder()
                        .map_err(|e| PipelineError::Thread(e.to_string()))?,
                ),
            };
            let mut buf = std::mem::take(&mut self.spare);
            let fetched = fetch_one(
                self.source,
                &mut **decoder,
                digest,
                start,
                len,
                &mut self.encoded,
                &mut buf,
            );
            if let Err(e) = fetched {
                self.spare = buf;
                return Err(e);
            }
            if self.cache.len() >= self.capacity {
                self.spare = self.cache.remove(0).data;
            }
            self.cache.push(Cached {
                index: i,
                data: buf,
            });
        }
        let last = self.cache.len() - 1;
        Ok(&self.cache[last].data)
    }

    fn uncovered(&self, pos: u64) -> PipelineError {
        self.range_error(
            io::ErrorKind::InvalidData,
            format!(
                "the index has chunks for the first {} of the {} bytes of the stream, \
                 none for byte {pos}",
                self.covered, self.size
            ),
        )
    }

    fn range_error(&self, kind: io::ErrorKind, message: String) -> PipelineError {
        PipelineError::OutOfRange {
            name: self.name.clone(),
            source: io::Error::new(kind, message),
        }
    }
}

fn write_zeros(out: &mut dyn Write, mut n: usize) -> io::Result<()> {
    while n > 0 {
        let k = n.min(ZEROS.len());
        out.write_all(&ZEROS[..k])?;
        n -= k;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
