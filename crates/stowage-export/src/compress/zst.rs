//! zstd: libzstd's streaming encoder with its own worker threads (zstdmt) and the content
//! checksum on; reading with the streaming decoder (concatenated frames included).

use std::io::{self, Read, Write};

use zstd::stream::read::Decoder;
use zstd::stream::write::Encoder;

use super::{compress_error, CompressWriter, Format};
use crate::ExportError;

pub(super) fn writer(
    out: Box<dyn Write + Send>,
    level: i32,
    threads: usize,
) -> Result<Box<dyn CompressWriter>, ExportError> {
    Format::Zstd.check_level(level)?;
    let err = |e: io::Error| compress_error(Format::Zstd, e);
    let mut enc = Encoder::new(out, level).map_err(err)?;
    enc.include_checksum(true).map_err(err)?;
    // Even one worker helps: compression then runs beside the caller's I/O.
    let workers = u32::try_from(threads.max(1)).unwrap_or(u32::MAX);
    enc.multithread(workers).map_err(err)?;
    Ok(Box::new(ZstdWriter(enc)))
}

struct ZstdWriter(Encoder<'static, Box<dyn Write + Send>>);

impl Write for ZstdWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl CompressWriter for ZstdWriter {
    fn finish(self: Box<Self>) -> io::Result<()> {
        let mut inner = self.0.finish()?;
        inner.flush()
    }
}

pub(super) fn reader(input: Box<dyn Read + Send>) -> Result<Box<dyn Read + Send>, ExportError> {
    let dec = Decoder::new(input).map_err(|e| compress_error(Format::Zstd, e))?;
    Ok(Box::new(dec))
}
