//! `OUT.manifest.json`: what an archive holds and how it was made, for people and scripts.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::output::{manifest_path, write_atomic};
use crate::ExportError;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ArchiveManifest {
    /// What was archived: a path, or `SNAPSHOT ARCHIVE` for an export.
    pub source: String,
    /// `image` (a raw disk image) or `tar`.
    pub content: String,
    /// Bytes before compression (the image, or the tar stream).
    pub size: u64,
    /// Bytes of the output file.
    pub compressed_size: u64,
    /// `size / compressed_size`.
    pub ratio: f64,
    pub format: String,
    pub level: i32,
    pub threads: usize,
    pub sha256: String,
    pub host: String,
    /// RFC 3339, UTC.
    pub started: String,
    pub duration_s: f64,
    /// Bytes before compression per second, in MB/s (10^6).
    pub throughput_mbs: f64,
    /// Entries of a tar (0 for images).
    #[serde(default)]
    pub entries: u64,
    /// The tool and version that wrote it.
    pub writer: String,
}

impl ArchiveManifest {
    pub fn write(&self, out: &Path) -> Result<(), ExportError> {
        let mut json = serde_json::to_vec_pretty(self).map_err(|e| ExportError::Write {
            path: manifest_path(out),
            source: std::io::Error::other(e),
        })?;
        json.push(b'\n');
        write_atomic(&manifest_path(out), &json)
    }

    /// The manifest beside `out`, if there is a readable one.
    pub fn read(out: &Path) -> Option<ArchiveManifest> {
        let raw = std::fs::read(manifest_path(out)).ok()?;
        serde_json::from_slice(&raw).ok()
    }
}
