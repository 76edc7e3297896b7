//! Compression layer: one writer per standard format, all of them multi-threaded, and the
//! matching readers.
//!
//! * gzip is written the way pigz writes it: the input is cut into blocks that worker threads
//!   raw-deflate independently (each primed with the previous 32 KiB as dictionary and ended
//!   with a sync flush), and a writer thread puts them back in order behind a gzip header and
//!   before a trailer whose CRC-32 is combined from the blocks' CRCs ([`gzip`]).
//! * zstd uses libzstd's own worker threads (zstdmt), with the content checksum on ([`zst`]).
//! * xz uses liblzma's multi-threaded block encoder with a CRC64 check ([`xz`]).
//! * lz4 cuts the input into pieces compressed in parallel, each its own LZ4 frame; `lz4 -d`
//!   reads the concatenation ([`lz4`]).
//!
//! gzip and lz4 share the ordered parallel block machinery in [`pipeline`]. Memory stays
//! bounded whatever the input size: a bounded number of blocks is in flight at any time.

mod gzip;
mod lz4;
mod pipeline;
mod xz;
mod zst;

#[cfg(test)]
mod tests;

use std::fmt;
use std::io::{self, Read, Write};
use std::path::Path;
use std::str::FromStr;

use crate::ExportError;

pub use gzip::GZIP_BLOCK_SIZE;
pub use lz4::LZ4_PIECE_SIZE;

/// A compression format of the archives we write (and read back).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    None,
    Gzip,
    Zstd,
    Xz,
    Lz4,
}

impl Format {
    /// All formats, `None` first.
    pub const ALL: [Format; 5] = [
        Format::None,
        Format::Gzip,
        Format::Zstd,
        Format::Xz,
        Format::Lz4,
    ];

    /// The format a file name announces by its last extension (`.gz`, `.zst`, `.xz`, `.lz4`,
    /// compared without regard to case); `None` for anything else: the caller decides.
    pub fn from_path(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?;
        [Format::Gzip, Format::Zstd, Format::Xz, Format::Lz4]
            .into_iter()
            .find(|f| f.extension().eq_ignore_ascii_case(ext))
    }

    /// The file name extension, without the dot (empty for `None`).
    pub fn extension(&self) -> &'static str {
        match self {
            Format::None => "",
            Format::Gzip => "gz",
            Format::Zstd => "zst",
            Format::Xz => "xz",
            Format::Lz4 => "lz4",
        }
    }

    /// The short name used on the command line and in manifests.
    pub fn name(&self) -> &'static str {
        match self {
            Format::None => "none",
            other => other.extension(),
        }
    }

    /// The level used when none is given: gzip 6, zstd 3, xz 6, lz4 0 (its only level).
    pub fn default_level(&self) -> i32 {
        match self {
            Format::None | Format::Lz4 => 0,
            Format::Gzip | Format::Xz => 6,
            Format::Zstd => 3,
        }
    }

    /// The levels accepted: gzip 1..=9, zstd 1..=22 (19 and above are slow), xz 0..=9; lz4
    /// and none have the single level 0.
    pub fn check_level(&self, level: i32) -> Result<(), ExportError> {
        let range = match self {
            Format::None | Format::Lz4 => 0..=0,
            Format::Gzip => 1..=9,
            Format::Zstd => 1..=22,
            Format::Xz => 0..=9,
        };
        if range.contains(&level) {
            Ok(())
        } else if range.start() == range.end() {
            Err(ExportError::Usage(format!(
                "{} has no compression levels (only {}), got level {level}",
                self.name(),
                range.start()
            )))
        } else {
            Err(ExportError::Usage(format!(
                "{} compression level must be {}..={}, got {level}",
                self.name(),
                range.start(),
                range.end()
            )))
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = ExportError;

    /// Accepts the names `none`, `gz`, `gzip`, `zst`, `zstd`, `xz`, `lz4` (any case).
    fn from_str(s: &str) -> Result<Format, ExportError> {
        match s.to_ascii_lowercase().as_str() {
            "none" => Ok(Format::None),
            "gz" | "gzip" => Ok(Format::Gzip),
            "zst" | "zstd" => Ok(Format::Zstd),
            "xz" => Ok(Format::Xz),
            "lz4" => Ok(Format::Lz4),
            _ => Err(ExportError::Usage(format!(
                "unknown compression format {s:?} (expected none, gz, zst, xz or lz4)"
            ))),
        }
    }
}

/// How to compress. `level: None` takes the format's default level; `threads` is the number of
/// compression threads (0 means one per available core).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompressOptions {
    pub format: Format,
    pub level: Option<i32>,
    pub threads: usize,
}

impl CompressOptions {
    /// The level that will be used: the given one (checked) or the format's default.
    pub fn effective_level(&self) -> Result<i32, ExportError> {
        match self.level {
            Some(level) => {
                self.format.check_level(level)?;
                Ok(level)
            }
            None => Ok(self.format.default_level()),
        }
    }

    /// The number of threads that will be used (0 resolved to the number of cores).
    pub fn effective_threads(&self) -> usize {
        resolve_threads(self.threads)
    }
}

pub(crate) fn resolve_threads(threads: usize) -> usize {
    if threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        threads
    }
}

/// A compressing writer. Dropping it without [`finish`](CompressWriter::finish) abandons the
/// stream (no trailer; the output is incomplete).
pub trait CompressWriter: Write + Send {
    /// Compresses what is still buffered, writes the format's trailer into the inner writer and
    /// flushes it. Every error met on the way (also on earlier writes, in worker threads)
    /// comes out here at the latest.
    fn finish(self: Box<Self>) -> io::Result<()>;
}

/// A writer that compresses into `out` as `opts` says.
pub fn compress_writer(
    out: Box<dyn Write + Send>,
    opts: &CompressOptions,
) -> Result<Box<dyn CompressWriter>, ExportError> {
    let level = opts.effective_level()?;
    let threads = opts.effective_threads();
    match opts.format {
        Format::None => Ok(Box::new(PassThrough(out))),
        Format::Gzip => gzip::writer(out, level, threads, GZIP_BLOCK_SIZE),
        Format::Zstd => zst::writer(out, level, threads),
        Format::Xz => xz::writer(out, level, threads),
        Format::Lz4 => lz4::writer(out, threads, LZ4_PIECE_SIZE),
    }
}

/// A reader that decompresses `input` of the given format. gzip members, zstd frames, xz
/// streams and lz4 frames may each be concatenated. Damaged or truncated input makes `read`
/// fail with an `io::Error` (of kind `InvalidData` or `UnexpectedEof`).
pub fn decompress_reader(
    input: Box<dyn Read + Send>,
    format: Format,
) -> Result<Box<dyn Read + Send>, ExportError> {
    match format {
        Format::None => Ok(input),
        Format::Gzip => Ok(Box::new(flate2::read::MultiGzDecoder::new(input))),
        Format::Zstd => zst::reader(input),
        Format::Xz => xz::reader(input),
        Format::Lz4 => Ok(Box::new(lz4::Lz4Reader::new(input))),
    }
}

/// `Format::None`: writes straight through.
struct PassThrough(Box<dyn Write + Send>);

impl Write for PassThrough {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl CompressWriter for PassThrough {
    fn finish(mut self: Box<Self>) -> io::Result<()> {
        self.0.flush()
    }
}

pub(crate) fn compress_error(format: Format, detail: impl fmt::Display) -> ExportError {
    ExportError::Compress {
        format: format.name().to_string(),
        detail: detail.to_string(),
    }
}
