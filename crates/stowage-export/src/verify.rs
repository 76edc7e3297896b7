//! `verify-archive`: the checksum, the whole compressed stream, and for a tar every entry.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sha2::{Digest as _, Sha256};

use crate::compress::{decompress_reader, Format};
use crate::manifest::ArchiveManifest;
use crate::output::checksum_path;
use crate::ExportError;

/// What a check of an archive found (it is only returned when everything was in order).
#[derive(Debug, Clone)]
pub struct ArchiveCheck {
    pub path: PathBuf,
    pub format: Format,
    /// The digest the `.sha256` file names and the file has; none without a `.sha256` file.
    pub sha256: Option<String>,
    pub compressed_bytes: u64,
    /// Bytes after decompression.
    pub bytes: u64,
    /// Entries, for a tar.
    pub tar_entries: Option<u64>,
}

/// Hashes and counts the raw file as the decompressor pulls it.
struct Tap {
    file: File,
    hasher: Arc<Mutex<Sha256>>,
    read: Arc<AtomicU64>,
}

impl Read for Tap {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read(buf)?;
        if let Ok(mut h) = self.hasher.lock() {
            h.update(&buf[..n]);
        }
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Whether `path` names a tar stream (`x.tar`, `x.tar.gz`, ...).
pub fn is_tar(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    name.ends_with(".tar") || name.contains(".tar.") || name.ends_with(".tgz")
}

fn expected_sha256(path: &Path) -> Result<Option<String>, ExportError> {
    let sums = checksum_path(path);
    let text = match std::fs::read_to_string(&sums) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(ExportError::Read {
                what: sums.display().to_string(),
                source,
            })
        }
    };
    let hex = text.split_whitespace().next().unwrap_or("");
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ExportError::Damaged {
            path: sums,
            detail: "it does not start with a 64-digit SHA-256".into(),
        });
    }
    Ok(Some(hex.to_ascii_lowercase()))
}

/// Checks `path`: decompresses all of it (walking every tar entry), compares its SHA-256 with
/// `path.sha256` and its size with `path.manifest.json` when they exist.
pub fn verify_archive(path: &Path) -> Result<ArchiveCheck, ExportError> {
    let format = Format::from_path(path).unwrap_or(Format::None);
    let expected = expected_sha256(path)?;
    let file = File::open(path).map_err(|source| ExportError::Read {
        what: path.display().to_string(),
        source,
    })?;
    let total = file.metadata().map(|m| m.len()).unwrap_or(0);
    let rest = file.try_clone().map_err(|source| ExportError::Read {
        what: path.display().to_string(),
        source,
    })?;
    let hasher = Arc::new(Mutex::new(Sha256::new()));
    let read = Arc::new(AtomicU64::new(0));
    let tap = Tap {
        file,
        hasher: hasher.clone(),
        read: read.clone(),
    };
    let damaged = |detail: String| ExportError::Damaged {
        path: path.to_path_buf(),
        detail,
    };
    let at = |e: io::Error| {
        damaged(format!(
            "{} stream broken at or before byte {} of {total}: {e}",
            format.name(),
            read.load(Ordering::Relaxed)
        ))
    };
    let mut plain = Counting {
        inner: decompress_reader(Box::new(tap), format)?,
        count: 0,
    };
    let tar_entries = if is_tar(path) {
        let mut entries = 0u64;
        {
            let mut archive = tar::Archive::new(&mut plain);
            for entry in archive.entries().map_err(at)? {
                let mut entry = entry.map_err(at)?;
                io::copy(&mut entry, &mut io::sink()).map_err(at)?;
                entries += 1;
            }
        }
        // The two zero blocks that end a tar, and whatever padding follows.
        io::copy(&mut plain, &mut io::sink()).map_err(at)?;
        Some(entries)
    } else {
        io::copy(&mut plain, &mut io::sink()).map_err(at)?;
        None
    };
    let bytes = plain.count;
    drop(plain);
    // Anything the decompressor did not need still belongs to the file's checksum.
    let mut rest = Tap {
        file: rest,
        hasher: hasher.clone(),
        read: read.clone(),
    };
    io::copy(&mut rest, &mut io::sink()).map_err(|source| ExportError::Read {
        what: path.display().to_string(),
        source,
    })?;
    let actual = hasher
        .lock()
        .map(|h| hex::encode(h.clone().finalize()))
        .unwrap_or_default();
    if let Some(want) = &expected {
        if *want != actual {
            return Err(damaged(format!(
                "its SHA-256 is {actual}, but {} says {want}",
                checksum_path(path).display()
            )));
        }
    }
    if let Some(m) = ArchiveManifest::read(path) {
        if m.size != bytes {
            return Err(damaged(format!(
                "it decompresses to {bytes} bytes, but its manifest says {}",
                m.size
            )));
        }
    }
    Ok(ArchiveCheck {
        path: path.to_path_buf(),
        format,
        sha256: expected.map(|_| actual),
        compressed_bytes: read.load(Ordering::Relaxed),
        bytes,
        tar_entries,
    })
}

struct Counting<R> {
    inner: R,
    count: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}
