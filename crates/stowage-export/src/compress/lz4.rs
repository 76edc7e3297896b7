//! lz4: one LZ4 frame (the format `lz4` writes and reads) whose blocks are independent, so
//! workers compress them in parallel (lz4_flex's block compressor); the frame header, the
//! block size words, the end mark and the content checksum (XXH32 of the whole input, computed
//! in order by the caller's thread) are written here. One frame rather than a frame per
//! piece: a stream cut at a piece boundary is then still detected as truncated.
//!
//! Reading: lz4_flex's `FrameDecoder` reports the end of every frame as the end of the input,
//! and takes input that stops at a block boundary for a clean end. So [`Lz4Reader`] walks the
//! frame structure itself (header, block sizes, end mark, checksum), hands exactly one frame
//! at a time to a decoder, goes on with the next frame (concatenated frames, as `lz4 -d`
//! reads them), skips skippable frames, and reports a truncated frame as an error.

use std::io::{self, Read, Write};

use lz4_flex::frame::FrameDecoder;

use super::pipeline::{BlockCodec, ParallelWriter};
use super::{compress_error, CompressWriter, Format};
use crate::ExportError;

/// Input per block (and per worker job): 1 MiB. (The ratio hardly depends on it: LZ4 matches
/// reach back 64 KiB at most.)
pub const LZ4_PIECE_SIZE: usize = 1024 * 1024;

/// The largest block the format allows.
const MAX_BLOCK: usize = 4 * 1024 * 1024;

const MAGIC: u32 = 0x184D_2204;
const LEGACY_MAGIC: u32 = 0x184C_2102;
const SKIPPABLE_MAGIC: u32 = 0x184D_2A50; // ..= 0x184D_2A5F

/// FLG: version 01, independent blocks, content checksum; no block checksums, no content
/// size, no dictionary.
const FLG: u8 = 0b0110_0100;

const UNCOMPRESSED: u32 = 0x8000_0000;

pub(super) fn writer(
    out: Box<dyn Write + Send>,
    threads: usize,
    piece_size: usize,
) -> Result<Box<dyn CompressWriter>, ExportError> {
    let piece_size = piece_size.clamp(1, MAX_BLOCK);
    // BD: the block maximum size code, 4 (64 KiB) ..= 7 (4 MiB), the smallest that fits.
    let bd_code = (4u8..=7)
        .find(|c| piece_size <= 1 << (8 + 2 * c))
        .unwrap_or(7);
    let codec = Lz4Codec { bd: bd_code << 4 };
    let w = ParallelWriter::new(codec, out, threads, piece_size)
        .map_err(|e| compress_error(Format::Lz4, e))?;
    Ok(Box::new(w))
}

pub(super) struct Lz4Codec {
    bd: u8,
}

impl BlockCodec for Lz4Codec {
    type Worker = ();
    type Seq = Xxh32;

    const NAME: &'static str = "lz4";
    const DICT: usize = 0;
    const CRC: bool = false;

    fn new_worker(&self) -> io::Result<()> {
        Ok(())
    }

    fn new_seq(&self) -> Xxh32 {
        Xxh32::new()
    }

    fn update_seq(&self, seq: &mut Xxh32, data: &[u8]) {
        seq.update(data);
    }

    fn compress(
        &self,
        _: &mut (),
        _dict: &[u8],
        data: &[u8],
        _last: bool,
        out: &mut Vec<u8>,
    ) -> io::Result<()> {
        if data.is_empty() {
            // (A zero size word would be the end mark.)
            return Ok(());
        }
        let bound = lz4_flex::block::get_maximum_output_size(data.len());
        let start = out.len();
        out.resize(start + 4 + bound, 0);
        let n = lz4_flex::block::compress_into(data, &mut out[start + 4..])
            .map_err(io::Error::other)?;
        if n < data.len() {
            out.truncate(start + 4 + n);
            out[start..start + 4].copy_from_slice(&(n as u32).to_le_bytes());
        } else {
            // Incompressible: stored as is.
            out.truncate(start);
            out.extend_from_slice(&(data.len() as u32 | UNCOMPRESSED).to_le_bytes());
            out.extend_from_slice(data);
        }
        Ok(())
    }

    fn header(&self) -> Vec<u8> {
        let mut h = MAGIC.to_le_bytes().to_vec();
        h.extend_from_slice(&[FLG, self.bd]);
        let mut hc = Xxh32::new();
        hc.update(&h[4..]);
        h.push((hc.finish() >> 8) as u8);
        h
    }

    fn trailer(&self, seq: Xxh32, _crc: u32, _len: u64) -> Vec<u8> {
        let mut t = 0u32.to_le_bytes().to_vec(); // end mark
        t.extend_from_slice(&seq.finish().to_le_bytes());
        t
    }
}

/// Streaming XXH32 with seed 0, the checksum of the LZ4 frame format.
pub(crate) struct Xxh32(twox_hash::XxHash32);

impl Xxh32 {
    pub(crate) fn new() -> Xxh32 {
        Xxh32(twox_hash::XxHash32::with_seed(0))
    }

    pub(crate) fn update(&mut self, data: &[u8]) {
        std::hash::Hasher::write(&mut self.0, data);
    }

    pub(crate) fn finish(&self) -> u32 {
        self.0.finish_32()
    }
}

fn truncated() -> io::Error {
    // Not UnexpectedEof: FrameDecoder takes that, met at a block boundary, for a clean end.
    io::Error::new(io::ErrorKind::InvalidData, "lz4 stream truncated")
}

fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn read_exact_or_truncated(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<()> {
    if read_full(r, buf)? == buf.len() {
        Ok(())
    } else {
        Err(truncated())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Next: a block size word (or the end mark).
    BlockSize,
    /// Passing `left` bytes through; then `BlockSize`, or `Done` if `end`.
    Data { left: u64, end: bool },
    /// The frame is complete.
    Done,
}

/// Gives the decoder the bytes of exactly one frame, then end of input.
struct OneFrame {
    inner: Box<dyn Read + Send>,
    pending: Vec<u8>,
    pos: usize,
    state: State,
    block_checksums: bool,
    content_checksum: bool,
}

impl OneFrame {
    fn complete(&self) -> bool {
        self.state == State::Done && self.pos == self.pending.len()
    }

    /// Starts the frame whose header (starting with the magic) is `header`.
    fn start(&mut self, header: Vec<u8>) {
        let flg = header[4];
        self.block_checksums = flg & 0x10 != 0;
        self.content_checksum = flg & 0x04 != 0;
        self.pending = header;
        self.pos = 0;
        self.state = State::BlockSize;
    }
}

impl Read for OneFrame {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.pos < self.pending.len() {
                let n = buf.len().min(self.pending.len() - self.pos);
                buf[..n].copy_from_slice(&self.pending[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            match self.state {
                State::Done => return Ok(0),
                State::BlockSize => {
                    let mut word = [0u8; 4];
                    read_exact_or_truncated(&mut self.inner, &mut word)?;
                    let v = u32::from_le_bytes(word);
                    self.pending.clear();
                    self.pending.extend_from_slice(&word);
                    self.pos = 0;
                    self.state = if v == 0 {
                        if self.content_checksum {
                            State::Data { left: 4, end: true }
                        } else {
                            State::Done
                        }
                    } else {
                        let size = u64::from(v & 0x7FFF_FFFF);
                        let check = if self.block_checksums { 4 } else { 0 };
                        match size + check {
                            0 => State::BlockSize,
                            left => State::Data { left, end: false },
                        }
                    };
                }
                State::Data { left, end } => {
                    let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    let n = loop {
                        match self.inner.read(&mut buf[..want]) {
                            Ok(n) => break n,
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(e) => return Err(e),
                        }
                    };
                    if n == 0 {
                        return Err(truncated());
                    }
                    let left = left - n as u64;
                    self.state = if left > 0 {
                        State::Data { left, end }
                    } else if end {
                        State::Done
                    } else {
                        State::BlockSize
                    };
                    return Ok(n);
                }
            }
        }
    }
}

/// Reads concatenated LZ4 frames (skippable frames are skipped; legacy frames are refused).
///
/// Each frame gets a decoder of its own (`FrameDecoder` sizes its buffers for the first frame
/// it sees and debug-asserts that they fit later ones).
pub(crate) struct Lz4Reader {
    /// Between frames: the input.
    idle: Option<OneFrame>,
    /// Inside a frame: its decoder.
    dec: Option<FrameDecoder<OneFrame>>,
    frames: u64,
}

impl Lz4Reader {
    pub(crate) fn new(inner: Box<dyn Read + Send>) -> Lz4Reader {
        let frame = OneFrame {
            inner,
            pending: Vec::new(),
            pos: 0,
            state: State::Done,
            block_checksums: false,
            content_checksum: false,
        };
        Lz4Reader {
            idle: Some(frame),
            dec: None,
            frames: 0,
        }
    }

    /// Reads the next frame's header into `frame`; false at the end of the input.
    fn next_frame(&mut self, frame: &mut OneFrame) -> io::Result<bool> {
        loop {
            let mut magic = [0u8; 4];
            match read_full(&mut frame.inner, &mut magic)? {
                0 if self.frames > 0 => return Ok(false),
                0 => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "empty input: not an lz4 stream",
                    ))
                }
                4 => {}
                _ => return Err(truncated()),
            }
            match u32::from_le_bytes(magic) {
                MAGIC => {
                    let mut header = magic.to_vec();
                    let mut flg_bd = [0u8; 2];
                    read_exact_or_truncated(&mut frame.inner, &mut flg_bd)?;
                    let flg = flg_bd[0];
                    if flg >> 6 != 1 {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "unsupported lz4 frame version",
                        ));
                    }
                    header.extend_from_slice(&flg_bd);
                    // Optional content size (8) and dictionary id (4), then the header checksum.
                    let rest = 1
                        + if flg & 0x08 != 0 { 8 } else { 0 }
                        + if flg & 0x01 != 0 { 4 } else { 0 };
                    let start = header.len();
                    header.resize(start + rest, 0);
                    read_exact_or_truncated(&mut frame.inner, &mut header[start..])?;
                    frame.start(header);
                    self.frames += 1;
                    return Ok(true);
                }
                m if m & 0xFFFF_FFF0 == SKIPPABLE_MAGIC => {
                    let mut size = [0u8; 4];
                    read_exact_or_truncated(&mut frame.inner, &mut size)?;
                    let size = u64::from(u32::from_le_bytes(size));
                    let skipped = io::copy(&mut (&mut frame.inner).take(size), &mut io::sink())?;
                    if skipped != size {
                        return Err(truncated());
                    }
                    self.frames += 1;
                }
                LEGACY_MAGIC => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "legacy lz4 format (lz4 -l) is not supported",
                    ))
                }
                _ => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "not an lz4 frame (bad magic number)",
                    ))
                }
            }
        }
    }
}

impl Read for Lz4Reader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.dec.is_none() {
                // Between frames (or at the end: neither is set).
                let Some(mut frame) = self.idle.take() else {
                    return Ok(0);
                };
                if !self.next_frame(&mut frame)? {
                    return Ok(0);
                }
                self.dec = Some(FrameDecoder::new(frame));
            }
            let dec = self.dec.as_mut().expect("set above");
            let n = dec.read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            let frame = dec.get_ref();
            if frame.complete() {
                let dec = self.dec.take().expect("set above");
                self.idle = Some(dec.into_inner());
            } else if !(frame.state == State::BlockSize && frame.pos == frame.pending.len()) {
                // (At a block boundary it was an empty block: go on.)
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "lz4 frame ended early",
                ));
            }
        }
    }
}
