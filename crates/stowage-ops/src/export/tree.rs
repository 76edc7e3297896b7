//! A file-tree archive (`.pxar`, or a split `.mpxar` + `.ppxar`) as a tar stream.

use std::io::{self, Read, Write};

use stowage_archive::{check_payload_header, Decoder, PayloadRef};
use stowage_core::session::SnapshotReader;
use stowage_core::{with_stream, PipelineError, RandomReader, RestoreCounters};
use stowage_export::tar::{pxar_to_tar, PayloadSource, TarStats};

use crate::restore::TreeIndexes;
use crate::{Context, OpsError};

/// Chunks of the payload stream kept decoded while files are read from it.
const PAYLOAD_CACHE: usize = 4;

/// Writes the file-tree archive behind `indexes` (`name` for messages) to `out` as a tar
/// stream: the archive stream decoded on this thread, fetched ahead on `threads` workers; the
/// file contents of a split archive read from its payload stream where each file lies.
pub fn tree_to_tar(
    reader: &dyn SnapshotReader,
    indexes: &TreeIndexes,
    name: &str,
    out: &mut dyn Write,
    threads: usize,
) -> Result<TarStats, OpsError> {
    let counters = RestoreCounters::default();
    let mut payloads = indexes.payload.as_ref().map(|p| {
        let random = RandomReader::new(p, reader.chunks(), PAYLOAD_CACHE)
            .with_name(format!("{name} payload stream"));
        RandomPayloads(random)
    });
    let chunks = reader.chunks();
    with_stream(
        chunks,
        &indexes.archive,
        name,
        threads,
        &counters,
        |stream| {
            let source = payloads.as_mut().map(|p| p as &mut dyn PayloadSource);
            pxar_to_tar(Decoder::new(stream), source, &mut *out)
                .context(|| format!("archive {name}"))
        },
    )
}

/// A split archive's payload stream, read where each file's contents lie.
struct RandomPayloads<'a>(RandomReader<'a>);

struct PayloadRange<'r, 'a> {
    reader: &'r mut RandomReader<'a>,
    offset: u64,
    left: u64,
}

impl Read for PayloadRange<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = buf.len().min(self.left as usize);
        let n = self
            .reader
            .read_at(self.offset, &mut buf[..want])
            .map_err(io::Error::other)?;
        if n == 0 {
            return Err(beyond_end("the payload stream ends inside a file".into()));
        }
        self.offset += n as u64;
        self.left -= n as u64;
        Ok(n)
    }
}

/// The payload stream is shorter than a reference into it says: a damaged archive.
fn beyond_end(detail: String) -> io::Error {
    io::Error::other(PipelineError::OutOfRange {
        name: "payload stream".into(),
        source: io::Error::new(io::ErrorKind::UnexpectedEof, detail),
    })
}

impl PayloadSource for RandomPayloads<'_> {
    fn open(&mut self, r: PayloadRef) -> io::Result<Box<dyn Read + '_>> {
        let size = self.0.size();
        let end = r.offset.checked_add(16).and_then(|o| o.checked_add(r.size));
        if end.is_none_or(|end| end > size) {
            return Err(beyond_end(format!(
                "a file of {} bytes at offset {} goes beyond its end ({size} bytes)",
                r.size, r.offset
            )));
        }
        let mut header = [0u8; 16];
        let mut got = 0;
        while got < header.len() {
            let n = self
                .0
                .read_at(r.offset + got as u64, &mut header[got..])
                .map_err(io::Error::other)?;
            if n == 0 {
                break;
            }
            got += n;
        }
        check_payload_header(&header, r)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        Ok(Box::new(PayloadRange {
            reader: &mut self.0,
            offset: r.offset + 16,
            left: r.size,
        }))
    }
}
