//! Exporting a file-tree archive (`.pxar`, or a split `.mpxar` + `.ppxar`) as a tar stream.

use std::io::{self, Read, Write};

use anyhow::{Context, Result};
use stowage_archive::Decoder;
use stowage_archive::{check_payload_header, PayloadRef};
use stowage_core::session::SnapshotReader;
use stowage_core::{with_stream, PipelineError, RandomReader, RestoreCounters};
use stowage_export::tar::{pxar_to_tar, PayloadSource};
use stowage_types::ArchiveName;

use crate::archive_out::{write_archive, Job};
use crate::cli::{ExportArgs, GlobalOpts};

/// Chunks of the payload stream kept decoded while files are read from it.
const PAYLOAD_CACHE: usize = 4;

pub fn export_tree(
    g: &GlobalOpts,
    args: &ExportArgs,
    reader: &dyn SnapshotReader,
    archive: &ArchiveName,
    source: String,
) -> Result<i32> {
    let indexes = stowage_ops::restore::tree_indexes(reader, archive)?;
    let (index, payload) = (indexes.archive, indexes.payload);
    let threads = g.worker_threads();
    // The tar is about as big as the archive's data; the exact size is unknown in advance.
    let size = index.size() + payload.as_ref().map_or(0, |p| p.size());
    let job = Job {
        source,
        content: "tar",
        size: Some(size),
        precompressed: false,
        progress: None,
    };
    let name = archive.to_string();
    write_archive(
        g,
        &args.output,
        &args.out,
        job,
        || {
            // The file contents: the payload stream of a split archive, else the archive itself.
            let data = payload.as_ref().unwrap_or(&index);
            super::chunk_samples(reader.chunks(), data.entries.len(), |i| data.entries[i].1)
        },
        |out: &mut dyn Write| {
            let counters = RestoreCounters::default();
            let mut payloads = payload.as_ref().map(|p| {
                let random = RandomReader::new(p, reader.chunks(), PAYLOAD_CACHE)
                    .with_name(format!("{name} payload stream"));
                RandomPayloads(random)
            });
            let chunks = reader.chunks();
            let stats = with_stream(chunks, &index, &name, threads, &counters, |stream| {
                let source = payloads.as_mut().map(|p| p as &mut dyn PayloadSource);
                pxar_to_tar(Decoder::new(stream), source, &mut *out)
                    .with_context(|| format!("archive {name}"))
            })?;
            if stats.skipped_sockets > 0 && !g.quiet {
                eprintln!(
                    "note: {} socket(s) left out: a tar cannot hold sockets",
                    stats.skipped_sockets
                );
            }
            Ok(stats.entries)
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
