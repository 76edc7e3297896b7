//! gzip the way pigz writes it: one gzip member (RFC 1952) whose deflate stream is the
//! concatenation of independently compressed blocks.
//!
//! Each block is raw-deflated by a worker with the last 32 KiB of the input before it set as
//! dictionary (so matches may reach back across the block boundary, as in pigz), and ended
//! with a sync flush, which ends it on a byte boundary with an empty stored block and no final
//! bit; the last block is finished instead (final bit set). The header and the trailer
//! (CRC-32 combined from the blocks' CRCs, length mod 2^32) are written here.

use std::io::{self, Write};

use flate2::{Compress, Compression, FlushCompress, Status};

use super::pipeline::{BlockCodec, ParallelWriter};
use super::{compress_error, CompressWriter, Format};
use crate::ExportError;

/// Input block size per worker job, as pigz's default (`-b 128`).
pub const GZIP_BLOCK_SIZE: usize = 128 * 1024;

/// The deflate window: the most a match may reach back, so the dictionary size.
const WINDOW: usize = 32 * 1024;

pub(super) fn writer(
    out: Box<dyn Write + Send>,
    level: i32,
    threads: usize,
    block_size: usize,
) -> Result<Box<dyn CompressWriter>, ExportError> {
    Format::Gzip.check_level(level)?;
    let codec = GzipCodec {
        level: level as u32,
    };
    let w = ParallelWriter::new(codec, out, threads, block_size)
        .map_err(|e| compress_error(Format::Gzip, e))?;
    Ok(Box::new(w))
}

pub(super) struct GzipCodec {
    pub(super) level: u32,
}

impl BlockCodec for GzipCodec {
    type Worker = ();
    type Seq = ();

    const NAME: &'static str = "gzip";
    const DICT: usize = WINDOW;
    const CRC: bool = true;

    fn new_worker(&self) -> io::Result<()> {
        Ok(())
    }

    fn new_seq(&self) {}

    fn update_seq(&self, _: &mut (), _: &[u8]) {}

    fn compress(
        &self,
        _: &mut (),
        dict: &[u8],
        data: &[u8],
        last: bool,
        out: &mut Vec<u8>,
    ) -> io::Result<()> {
        // A fresh compressor for every block, not a reset one: zlib-rs' match finder may look
        // at stale window bytes past the input's end (harmlessly for correctness, but the
        // choice between equal matches then depends on what the worker compressed before), and
        // the output should not depend on which worker got which block.
        // Raw deflate: no zlib header, the gzip framing is ours.
        let mut c = Compress::new(Compression::new(deflate_level(self.level)), false);
        if !dict.is_empty() {
            c.set_dictionary(dict).map_err(io::Error::other)?;
        }
        let flush = if last {
            FlushCompress::Finish
        } else {
            FlushCompress::Sync
        };
        // Roughly zlib's deflateBound, plus the flush marker.
        out.reserve(data.len() + (data.len() >> 12) + (data.len() >> 14) + 64);
        let mut pos = 0;
        loop {
            let before = c.total_in();
            let status = c
                .compress_vec(&data[pos..], out, flush)
                .map_err(io::Error::other)?;
            pos += (c.total_in() - before) as usize;
            let room = out.capacity() - out.len();
            let done = if last {
                status == Status::StreamEnd
            } else {
                // zlib's rule: a flush is complete when it returns with output space left.
                pos == data.len() && room > 0
            };
            if done {
                return Ok(());
            }
            out.reserve(out.capacity().max(4096));
        }
    }

    fn header(&self) -> Vec<u8> {
        // XFL: 2 = maximum compression, 4 = fastest, as gzip sets it.
        let xfl = match self.level {
            9 => 2,
            1 => 4,
            _ => 0,
        };
        vec![
            0x1f, 0x8b, // magic
            8,    // CM: deflate
            0,    // FLG: no name, no comment, no extra field, no header CRC
            0, 0, 0, 0, // MTIME: none (reproducible output)
            xfl, 3, // OS: Unix
        ]
    }

    fn trailer(&self, _: (), crc: u32, len: u64) -> Vec<u8> {
        let mut t = Vec::with_capacity(8);
        t.extend_from_slice(&crc.to_le_bytes());
        t.extend_from_slice(&(len as u32).to_le_bytes());
        t
    }
}

/// The deflate level used for gzip level `level`. zlib-rs answers level 1 with a different,
/// much weaker method (output about 20% larger than `pigz -1`); its level 2 is as fast and
/// compresses as well as pigz's level 1, so level 1 means that here.
fn deflate_level(level: u32) -> u32 {
    if level == 1 {
        2
    } else {
        level
    }
}
