//! Backup sources: image files (memory-mapped, no copy), block devices and standard input (read).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use anyhow::Result;
use memmap2::MmapOptions;
use stowage_core::{ImageSource, SourceChunk, StreamSource};
use stowage_types::ErrorClass;

use crate::exit::fail;

/// An opened source with its size when known in advance.
pub struct Source {
    pub name: String,
    pub reader: Box<dyn ImageSource>,
    pub size: Option<u64>,
}

pub fn open(path: &str) -> Result<Source> {
    if path == "-" {
        return Ok(Source {
            name: "standard input".into(),
            reader: Box::new(StreamSource(io::stdin())),
            size: None,
        });
    }
    let unreadable = |e: io::Error| {
        fail(
            ErrorClass::Source,
            format!("cannot read source {path}: {e}"),
        )
    };
    let meta = std::fs::metadata(Path::new(path)).map_err(unreadable)?;
    let ft = meta.file_type();
    if ft.is_dir() {
        return Err(fail(
            ErrorClass::Source,
            format!(
                "source {path} is a directory; image archives (.img) need a file or block device"
            ),
        ));
    }
    let mut file = File::open(path).map_err(unreadable)?;
    let (reader, size): (Box<dyn ImageSource>, Option<u64>) = if ft.is_file() {
        install_sigbus_guard();
        let size = meta.len();
        (
            Box::new(MappedFile {
                file,
                offset: 0,
                size,
            }),
            Some(size),
        )
    } else if ft.is_block_device() {
        let end = file.seek(SeekFrom::End(0)).map_err(unreadable)?;
        file.seek(SeekFrom::Start(0)).map_err(unreadable)?;
        (Box::new(StreamSource(file)), Some(end))
    } else {
        (Box::new(StreamSource(file)), None)
    };
    Ok(Source {
        name: path.to_string(),
        reader,
        size,
    })
}

/// A regular file read through memory mappings of one chunk each: the pipeline hashes and
/// compresses straight from the page cache, without copying the image once more.
struct MappedFile {
    file: File,
    offset: u64,
    size: u64,
}

impl ImageSource for MappedFile {
    fn next_chunk(&mut self, len: usize, mut buf: Vec<u8>) -> io::Result<Option<SourceChunk>> {
        if self.offset >= self.size {
            return Ok(None);
        }
        let len = (self.size - self.offset).min(len as u64) as usize;
        // SAFETY: the mapping is read-only and private. If the file shrinks while mapped,
        // reading past its end raises SIGBUS, which the guard turns into a clean exit 4.
        let mapped = unsafe {
            MmapOptions::new()
                .offset(self.offset)
                .len(len)
                .populate()
                .map(&self.file)
        };
        let chunk = match mapped {
            Ok(map) => SourceChunk::Lent {
                data: Box::new(map),
                unused: buf,
            },
            Err(_) => {
                // Some files cannot be mapped (e.g. on some FUSE file systems): read instead.
                buf.clear();
                buf.resize(len, 0);
                std::os::unix::fs::FileExt::read_exact_at(&self.file, &mut buf, self.offset)?;
                SourceChunk::Filled(buf)
            }
        };
        self.offset += len as u64;
        Ok(Some(chunk))
    }
}

extern "C" fn on_sigbus(_: libc::c_int) {
    const MSG: &[u8] = b"error: the source file shrank or failed to read while it was being backed up (SIGBUS); no snapshot was written\n";
    // SAFETY: write(2) and _exit(2) are async-signal-safe.
    unsafe {
        libc::write(2, MSG.as_ptr().cast(), MSG.len());
        libc::_exit(4);
    }
}

fn install_sigbus_guard() {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let action = SigAction::new(
        SigHandler::Handler(on_sigbus),
        SaFlags::empty(),
        SigSet::empty(),
    );
    // SAFETY: the handler only calls async-signal-safe functions.
    let _ = unsafe { sigaction(Signal::SIGBUS, &action) };
}

/// Reads a small file stored whole as a blob.
pub fn read_small_file(path: &str, limit: u64) -> Result<Vec<u8>> {
    let unreadable = |e: io::Error| fail(ErrorClass::Source, format!("cannot read {path}: {e}"));
    let file = File::open(path).map_err(unreadable)?;
    let mut data = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut data)
        .map_err(unreadable)?;
    if data.len() as u64 > limit {
        return Err(fail(
            ErrorClass::Source,
            format!("{path} is larger than {limit} bytes; store big files as .img archives"),
        ));
    }
    Ok(data)
}
