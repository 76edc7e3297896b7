//! `stowage archive SOURCE OUT`: a block device or image file (raw), or a directory (tar),
//! straight to a standard compressed file.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;

use anyhow::Result;
use stowage_types::ErrorClass;

mod tree;

use crate::archive_out::{write_archive, write_error, Job};
use crate::cli::{ArchiveArgs, GlobalOpts};
use crate::exit::fail;

const SAMPLE: usize = 4 << 20;
const READ_BLOCK: usize = 4 << 20;

pub fn run(g: &GlobalOpts, args: ArchiveArgs) -> Result<i32> {
    let path = &args.source;
    let unreadable = |e: io::Error| {
        fail(
            ErrorClass::Source,
            format!("cannot read source {}: {e}", path.display()),
        )
    };
    let meta = std::fs::metadata(path).map_err(unreadable)?;
    if meta.is_dir() {
        return tree::run(g, &args);
    }
    let mut file = File::open(path).map_err(unreadable)?;
    // The size of a block device is where its end is.
    let size = file.seek(SeekFrom::End(0)).map_err(unreadable)?;
    file.seek(SeekFrom::Start(0)).map_err(unreadable)?;
    let source = std::path::absolute(path)
        .unwrap_or_else(|_| path.clone())
        .display()
        .to_string();
    let job = Job {
        source,
        content: "image",
        size: Some(size),
        precompressed: false,
        progress: None,
    };
    let sample_file = file.try_clone().map_err(unreadable)?;
    write_archive(
        g,
        &args.output,
        &args.out,
        job,
        || samples(&sample_file, size),
        |out: &mut dyn Write| {
            copy_source(&mut file, out).map_err(|e| match e {
                CopyError::Read(e) => unreadable(e),
                CopyError::Write(e) => write_error(&args.out, e),
            })?;
            Ok(0)
        },
    )
}

enum CopyError {
    Read(io::Error),
    Write(io::Error),
}

/// Large sequential reads; the compressor's threads do the heavy work.
fn copy_source(file: &mut File, out: &mut dyn Write) -> Result<(), CopyError> {
    let mut buf = vec![0u8; READ_BLOCK];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        out.write_all(&buf[..n]).map_err(CopyError::Write)?;
    }
}

/// Four 4 MiB pieces spread over the source, for the space estimate.
fn samples(file: &File, size: u64) -> Vec<Vec<u8>> {
    let pieces = if size <= 4 * SAMPLE as u64 { 1 } else { 4 };
    (0..pieces)
        .filter_map(|i| {
            let offset = if pieces == 1 {
                0
            } else {
                i * (size - SAMPLE as u64) / (pieces - 1)
            };
            let mut buf = vec![0u8; SAMPLE.min(size as usize)];
            let n = file.read_at(&mut buf, offset).ok()?;
            buf.truncate(n);
            Some(buf)
        })
        .collect()
}
