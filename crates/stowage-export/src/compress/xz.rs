//! xz: liblzma's multi-threaded encoder (independent blocks, sizes in the block headers, so
//! `xz -T0 -d` decodes in parallel too), preset level, CRC64 check. Reading uses liblzma's
//! multi-threaded decoder, one stream after the other (concatenated streams and stream
//! padding are accepted, as `xz -d` does).

use std::io::{self, BufRead, BufReader, Read, Write};

use liblzma::bufread::XzDecoder;
use liblzma::stream::{Check, MtStreamBuilder, Stream};
use liblzma::write::XzEncoder;

use super::{compress_error, resolve_threads, CompressWriter, Format};
use crate::ExportError;

/// Memory the decoder may use for threading; above that it decodes in one thread.
const DECODER_MEMLIMIT_THREADING: u64 = 512 << 20;

pub(super) fn writer(
    out: Box<dyn Write + Send>,
    level: i32,
    threads: usize,
) -> Result<Box<dyn CompressWriter>, ExportError> {
    Format::Xz.check_level(level)?;
    let stream = MtStreamBuilder::new()
        .threads(u32::try_from(threads.max(1)).unwrap_or(u32::MAX))
        .preset(level as u32)
        .check(Check::Crc64)
        .encoder()
        .map_err(|e| compress_error(Format::Xz, e))?;
    let gate = Gate { out, open: true };
    Ok(Box::new(XzWriter(Some(XzEncoder::new_stream(
        gate, stream,
    )))))
}

/// The inner writer, closed when the writer is dropped unfinished: liblzma's `XzEncoder`
/// finishes the stream when dropped, which would turn abandoned output into a valid-looking
/// shorter archive.
struct Gate {
    out: Box<dyn Write + Send>,
    open: bool,
}

impl Write for Gate {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.open {
            self.out.write(buf)
        } else {
            Err(io::Error::other("xz stream abandoned"))
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// `None` once finished.
struct XzWriter(Option<XzEncoder<Gate>>);

impl XzWriter {
    fn encoder(&mut self) -> io::Result<&mut XzEncoder<Gate>> {
        self.0
            .as_mut()
            .ok_or_else(|| io::Error::other("xz stream already finished"))
    }
}

impl Write for XzWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.encoder()?.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.encoder()?.flush()
    }
}

impl CompressWriter for XzWriter {
    fn finish(mut self: Box<Self>) -> io::Result<()> {
        let enc = self.0.take().expect("finish is called once");
        let mut gate = enc.finish()?;
        gate.out.flush()
    }
}

impl Drop for XzWriter {
    fn drop(&mut self) {
        if let Some(enc) = self.0.as_mut() {
            enc.get_mut().open = false;
        }
    }
}

fn decoder_stream() -> io::Result<Stream> {
    let threads = resolve_threads(0);
    MtStreamBuilder::new()
        .threads(u32::try_from(threads).unwrap_or(u32::MAX))
        .memlimit_threading(DECODER_MEMLIMIT_THREADING)
        .memlimit_stop(u64::MAX)
        .decoder()
        .map_err(io::Error::other)
}

pub(super) fn reader(input: Box<dyn Read + Send>) -> Result<Box<dyn Read + Send>, ExportError> {
    let stream = decoder_stream().map_err(|e| compress_error(Format::Xz, e))?;
    Ok(Box::new(XzReader {
        dec: Some(XzDecoder::new_stream(BufReader::new(input), stream)),
    }))
}

type Inner = BufReader<Box<dyn Read + Send>>;

struct XzReader {
    /// `None` once the input is exhausted.
    dec: Option<XzDecoder<Inner>>,
}

impl Read for XzReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let Some(dec) = self.dec.as_mut() else {
                return Ok(0);
            };
            // The decoder returns 0 only at the end of its stream (a premature end of the
            // input is an error).
            let n = dec.read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            // After a stream: stream padding (zero bytes, a multiple of four), then either the
            // end of the input or another stream.
            let input = dec.get_mut();
            let mut padding = 0usize;
            let more = loop {
                let avail = input.fill_buf()?;
                if avail.is_empty() {
                    break false;
                }
                let zeros = avail.iter().take_while(|&&b| b == 0).count();
                let all = zeros == avail.len();
                input.consume(zeros);
                padding += zeros;
                if !all {
                    break true;
                }
            };
            if padding & 3 != 0 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "xz stream padding is not a multiple of four bytes",
                ));
            }
            let dec = self.dec.take().expect("checked above");
            if !more {
                return Ok(0);
            }
            self.dec = Some(XzDecoder::new_stream(dec.into_inner(), decoder_stream()?));
        }
    }
}
