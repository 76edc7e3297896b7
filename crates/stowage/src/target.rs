//! Restore targets: a sparse regular file (written under a temporary name and renamed into place),
//! a block device, or a stream.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::path::{Path, PathBuf};

use anyhow::Result;
use stowage_core::{ImageTarget, PositionalWrite};
use stowage_types::ErrorClass;

use crate::exit::fail;

static ZEROES: [u8; 1 << 16] = [0u8; 1 << 16];

/// A new regular file: zero ranges stay holes.
pub struct SparseFile {
    file: File,
    tmp: PathBuf,
    path: PathBuf,
    done: bool,
    /// It replaces a file (`--overwrite`): once renamed over it, it stays even if the directory
    /// cannot be made durable (removing it would leave neither).
    replaces: bool,
}

/// A block device or an existing character device: zeros are written out.
pub struct Device {
    file: File,
}

/// Standard output or a pipe: strictly sequential, zeros written out.
pub struct Stream<W: Write> {
    out: W,
    pos: u64,
}

pub enum Target {
    Sparse(SparseFile),
    Device(Device),
    Stdout(Stream<io::StdoutLock<'static>>),
}

impl Target {
    pub fn as_image_target(&mut self) -> &mut dyn ImageTarget {
        match self {
            Target::Sparse(t) => t,
            Target::Device(t) => t,
            Target::Stdout(t) => t,
        }
    }

    /// Moves the finished file into place (regular files only).
    pub fn commit(self) -> io::Result<()> {
        match self {
            Target::Sparse(mut t) => {
                fs::rename(&t.tmp, &t.path)?;
                t.done = true;
                let dir = t.path.parent().filter(|p| !p.as_os_str().is_empty());
                // Not known to be durable: a new restored file does not stay.
                File::open(dir.unwrap_or(Path::new(".")))
                    .and_then(|d| d.sync_all())
                    .inspect_err(|_| {
                        if !t.replaces {
                            let _ = fs::remove_file(&t.path);
                        }
                    })
            }
            _ => Ok(()),
        }
    }
}

/// Opens `target` for an image of `size` bytes.
pub fn open(target: &str, size: u64, overwrite: bool) -> Result<Target> {
    if target == "-" {
        return Ok(Target::Stdout(Stream {
            out: io::stdout().lock(),
            pos: 0,
        }));
    }
    let path = PathBuf::from(target);
    let cannot = |e: io::Error| {
        fail(
            ErrorClass::of_write_error(&e, ErrorClass::Target),
            format!("cannot write restore target {target}: {e}"),
        )
    };
    match fs::metadata(&path) {
        Ok(meta) if meta.file_type().is_block_device() || meta.file_type().is_char_device() => {
            let file = OpenOptions::new().write(true).open(&path).map_err(cannot)?;
            if meta.file_type().is_block_device() {
                let dev_size = device_size(&file).map_err(cannot)?;
                if dev_size < size {
                    return Err(fail(
                        ErrorClass::Target,
                        format!(
                            "block device {target} holds {dev_size} bytes, the image needs {size}"
                        ),
                    ));
                }
            }
            return Ok(Target::Device(Device { file }));
        }
        Ok(meta) if meta.is_dir() => {
            return Err(fail(
                ErrorClass::Target,
                format!("restore target {target} is a directory; name a file"),
            ));
        }
        Ok(_) if !overwrite => {
            return Err(fail(
                ErrorClass::Target,
                format!("restore target {target} exists; pass --overwrite to replace it"),
            ));
        }
        // A symlink that points nowhere is still a name in the way.
        Err(_) if !overwrite && fs::symlink_metadata(&path).is_ok() => {
            return Err(fail(
                ErrorClass::Target,
                format!("restore target {target} exists (a symlink to nothing); pass --overwrite to replace it"),
            ));
        }
        _ => {}
    }
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("restore");
    let tmp = path.with_file_name(format!(".{name}.stowage-tmp-{}", std::process::id()));
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(cannot)?;
    let replaces = fs::symlink_metadata(&path).is_ok();
    Ok(Target::Sparse(SparseFile {
        file,
        tmp,
        path,
        done: false,
        replaces,
    }))
}

fn device_size(file: &File) -> io::Result<u64> {
    use std::io::Seek;
    let mut f = file;
    let end = f.seek(io::SeekFrom::End(0))?;
    f.seek(io::SeekFrom::Start(0))?;
    Ok(end)
}

impl ImageTarget for SparseFile {
    fn positional(&self) -> Option<std::sync::Arc<dyn PositionalWrite>> {
        let file = self.file.try_clone().ok()?;
        Some(std::sync::Arc::new(file))
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.file.write_all_at(data, offset)
    }

    fn write_zeroes(&mut self, _offset: u64, _len: u64) -> io::Result<()> {
        Ok(()) // a new file reads as zeros wherever nothing was written
    }

    fn finish(&mut self, size: u64) -> io::Result<()> {
        self.file.set_len(size)?;
        self.file.sync_all()
    }
}

impl Drop for SparseFile {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

pub(crate) fn write_zeroes_with(
    mut len: u64,
    mut write: impl FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<()> {
    while len > 0 {
        let n = len.min(ZEROES.len() as u64) as usize;
        write(&ZEROES[..n])?;
        len -= n as u64;
    }
    Ok(())
}

impl ImageTarget for Device {
    fn positional(&self) -> Option<std::sync::Arc<dyn PositionalWrite>> {
        let file = self.file.try_clone().ok()?;
        Some(std::sync::Arc::new(file))
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.file.write_all_at(data, offset)
    }

    fn write_zeroes(&mut self, mut offset: u64, len: u64) -> io::Result<()> {
        let file = &self.file;
        write_zeroes_with(len, |z| {
            file.write_all_at(z, offset)?;
            offset += z.len() as u64;
            Ok(())
        })
    }

    fn finish(&mut self, _size: u64) -> io::Result<()> {
        self.file.sync_all()
    }
}

impl<W: Write> ImageTarget for Stream<W> {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        debug_assert_eq!(offset, self.pos);
        self.out.write_all(data)?;
        self.pos += data.len() as u64;
        Ok(())
    }

    fn write_zeroes(&mut self, _offset: u64, len: u64) -> io::Result<()> {
        let out = &mut self.out;
        write_zeroes_with(len, |z| out.write_all(z))?;
        self.pos += len;
        Ok(())
    }

    fn finish(&mut self, _size: u64) -> io::Result<()> {
        self.out.flush()
    }
}
