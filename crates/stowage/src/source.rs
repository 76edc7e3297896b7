//! Backup sources: image files, block devices, standard input.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use anyhow::Result;
use stowage_core::{ImageSource, StreamSource};
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
    let size = if ft.is_file() {
        Some(meta.len())
    } else if ft.is_block_device() {
        let end = file.seek(SeekFrom::End(0)).map_err(unreadable)?;
        file.seek(SeekFrom::Start(0)).map_err(unreadable)?;
        Some(end)
    } else {
        None
    };
    Ok(Source {
        name: path.to_string(),
        reader: Box::new(StreamSource(file)),
        size,
    })
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
