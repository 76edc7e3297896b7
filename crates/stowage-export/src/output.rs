//! The output file of an archive: written under a temporary name beside `OUT`, hashed as it is
//! written, made durable and renamed into place only when complete, then `OUT.sha256` and
//! `OUT.manifest.json` beside it. A failed write (a full disk) removes the partial file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sha2::{Digest as _, Sha256};

use crate::ExportError;

/// SHA-256 and length of everything written through a [`HashingWriter`].
#[derive(Default)]
struct HashState {
    hasher: Sha256,
    len: u64,
}

/// Counts and hashes the bytes on their way to the inner writer.
pub struct HashingWriter<W> {
    inner: W,
    state: Arc<Mutex<HashState>>,
}

/// Reads the result of a [`HashingWriter`] after it was consumed.
#[derive(Clone)]
pub struct HashProbe(Arc<Mutex<HashState>>);

impl HashProbe {
    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.0.lock().map(|s| s.len).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Lower-case hex SHA-256 of everything written.
    pub fn hex_digest(&self) -> String {
        self.0
            .lock()
            .map(|s| hex::encode(s.hasher.clone().finalize()))
            .unwrap_or_default()
    }
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> (Self, HashProbe) {
        let state = Arc::new(Mutex::new(HashState::default()));
        (
            HashingWriter {
                inner,
                state: state.clone(),
            },
            HashProbe(state),
        )
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        if let Ok(mut s) = self.state.lock() {
            s.hasher.update(&buf[..n]);
            s.len += n as u64;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A file being written: `.<name>.partial-<pid>` beside the final path until [`commit`].
///
/// [`commit`]: OutputFile::commit
pub struct OutputFile {
    path: PathBuf,
    tmp: PathBuf,
    file: Option<File>,
    /// It replaces a file (`--overwrite`): once renamed over it, it stays even if the directory
    /// cannot be made durable (removing it would leave neither).
    replaces: bool,
}

impl OutputFile {
    /// Refuses to replace an existing `path` unless `overwrite`.
    pub fn create(path: &Path, overwrite: bool) -> Result<Self, ExportError> {
        let write_err = |source| ExportError::Write {
            path: path.to_path_buf(),
            source,
        };
        // A symlink, even one that points nowhere, is a name in the way.
        if !overwrite && path.symlink_metadata().is_ok() {
            return Err(ExportError::Exists {
                path: path.to_path_buf(),
            });
        }
        let name = path
            .file_name()
            .ok_or_else(|| ExportError::Usage(format!("{} is not a file name", path.display())))?;
        let tmp = path.with_file_name(format!(
            ".{}.partial-{}",
            name.to_string_lossy(),
            std::process::id()
        ));
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(write_err)?;
        Ok(OutputFile {
            path: path.to_path_buf(),
            tmp,
            file: Some(file),
            replaces: path.symlink_metadata().is_ok(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A handle to write through (the file stays owned here, so a failure can remove it).
    pub fn writer(&self) -> Result<File, ExportError> {
        self.file
            .as_ref()
            .ok_or_else(|| ExportError::Usage("output already committed".into()))?
            .try_clone()
            .map_err(|source| ExportError::Write {
                path: self.path.clone(),
                source,
            })
    }

    /// Makes the file durable and moves it into place.
    pub fn commit(mut self) -> Result<(), ExportError> {
        let write_err = |source| ExportError::Write {
            path: self.path.clone(),
            source,
        };
        let result = (|| {
            if let Some(file) = self.file.take() {
                file.sync_all()?;
            }
            fs::rename(&self.tmp, &self.path)?;
            // Not known to be durable: a new output does not stay.
            sync_parent(&self.path).inspect_err(|_| {
                if !self.replaces {
                    let _ = fs::remove_file(&self.path);
                }
            })
        })();
        if result.is_err() {
            let _ = fs::remove_file(&self.tmp);
        }
        result.map_err(write_err)
    }
}

impl Drop for OutputFile {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

fn sync_parent(path: &Path) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    File::open(dir)?.sync_all()
}

/// Writes `data` to `path` atomically (temporary file, fsync, rename, fsync the directory).
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), ExportError> {
    let out = OutputFile::create(path, true)?;
    out.writer()?
        .write_all(data)
        .map_err(|source| ExportError::Write {
            path: path.to_path_buf(),
            source,
        })?;
    out.commit()
}

/// `OUT.sha256`, in the form `sha256sum -c` checks: `<hex>  <file name>`.
pub fn checksum_path(out: &Path) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(".sha256");
    PathBuf::from(name)
}

/// `OUT.manifest.json`.
pub fn manifest_path(out: &Path) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(".manifest.json");
    PathBuf::from(name)
}

/// Writes `OUT.sha256` naming the file relative to its own directory, so `sha256sum -c` works
/// from there (and the pair can be moved together).
pub fn write_checksum(out: &Path, hex_digest: &str) -> Result<(), ExportError> {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    write_atomic(
        &checksum_path(out),
        format!("{hex_digest}  {name}\n").as_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_appears_only_on_commit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.img.gz");
        let out = OutputFile::create(&path, false).unwrap();
        let (mut w, probe) = HashingWriter::new(out.writer().unwrap());
        w.write_all(b"hello").unwrap();
        assert!(!path.exists());
        out.commit().unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"hello");
        assert_eq!(probe.len(), 5);
        assert_eq!(
            probe.hex_digest(),
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert!(matches!(
            OutputFile::create(&path, false),
            Err(ExportError::Exists { .. })
        ));
        // Dropped without commit: nothing is left.
        let other = dir.path().join("b.img.gz");
        let out = OutputFile::create(&other, false).unwrap();
        out.writer().unwrap().write_all(b"partial").unwrap();
        drop(out);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        write_checksum(&path, &probe.hex_digest()).unwrap();
        assert_eq!(
            fs::read_to_string(checksum_path(&path)).unwrap(),
            format!("{}  a.img.gz\n", probe.hex_digest())
        );
    }
}
