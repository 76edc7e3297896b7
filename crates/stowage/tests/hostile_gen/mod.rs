//! The generator of the hostile-input corpus under `tests/hostile/`: crafted snapshots, one
//! directory per case, each holding the files of a snapshot directory (`index.json.blob`,
//! indexes, blobs) and a `chunks/` directory with the chunk files it needs.
//!
//! Everything is deterministic (fixed uuids, ctimes and backup time; uncompressed blobs, or zstd
//! frames written out here byte by byte), so regenerating gives the same bytes. The checked-in
//! files are the corpus; this code documents how they were made. Regenerate with
//! `STOWAGE_REGENERATE_HOSTILE=1 cargo test -p stowage --test hostile_input regenerate`.

mod archive_cases;
mod build;
mod snapshot_cases;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use stowage_format::blob::encode_uncompressed;
use stowage_format::{sha256, CryptMode, FileEntry};
use stowage_types::Digest;

use archive_cases::{duplicate_cases, hardlink_cases, huge_item_cases, name_cases};
use build::{add_file, didx, dir_meta, fidx, full_snapshot, split};
use snapshot_cases::{blob_cases, catalog_cases, index_cases, manifest_cases, split_cases};

/// Every case is the snapshot `host/1/2023-11-14T22:13:20Z`.
pub const BACKUP_TYPE: &str = "host";
pub const BACKUP_ID: &str = "1";
pub const BACKUP_TIME: i64 = 1_700_000_000;
pub const SNAPSHOT: &str = "host/1/2023-11-14T22:13:20Z";

const UUID: [u8; 16] = *b"stowage-hostile!";
const CTIME: i64 = BACKUP_TIME;
/// 2^60: the "huge" size declared by many cases.
pub const HUGE: u64 = 1 << 60;
const MIB: u64 = 1 << 20;

/// The snapshot files and chunks of one case.
pub struct Case {
    pub name: &'static str,
    pub about: &'static str,
    /// File name in the snapshot directory -> bytes.
    pub files: BTreeMap<String, Vec<u8>>,
    /// Chunk file name (64 hex digits) -> bytes.
    pub chunks: BTreeMap<String, Vec<u8>>,
    /// The manifest's file list, in order; `manifest_raw` replaces the whole manifest.
    entries: Vec<FileEntry>,
    manifest_raw: Option<Vec<u8>>,
}

impl Case {
    fn new(name: &'static str, about: &'static str) -> Case {
        Case {
            name,
            about,
            files: BTreeMap::new(),
            chunks: BTreeMap::new(),
            entries: Vec::new(),
            manifest_raw: None,
        }
    }

    /// Stores `data` as an uncompressed chunk; returns its digest.
    fn chunk(&mut self, data: &[u8]) -> Digest {
        let digest = sha256(data);
        self.chunks
            .insert(digest.to_hex(), encode_uncompressed(data));
        digest
    }

    /// Stores `blob` (any bytes) as the chunk file of `digest`.
    fn chunk_file(&mut self, digest: Digest, blob: Vec<u8>) {
        self.chunks.insert(digest.to_hex(), blob);
    }

    /// A snapshot file listed in the manifest as an honest writer would list these bytes.
    fn file(&mut self, name: &str, bytes: Vec<u8>) {
        self.entries.push(honest_entry(name, &bytes));
        self.files.insert(name.to_string(), bytes);
    }

    /// A dynamic index over `stream`, cut into chunks of at most `piece` bytes.
    fn stream(&mut self, name: &str, stream: &[u8], piece: usize) {
        let mut entries = Vec::new();
        let mut end = 0u64;
        for part in stream.chunks(piece) {
            end += part.len() as u64;
            entries.push((end, self.chunk(part)));
        }
        self.file(name, didx(entries));
    }

    /// A fixed index (4 MiB chunks) over a small image: one chunk.
    fn image(&mut self, name: &str, data: &[u8]) {
        let digest = self.chunk(data);
        self.file(name, fidx(data.len() as u64, 4 * MIB, &[digest]));
    }

    /// The whole manifest: `files` as listed, or the raw replacement.
    fn manifest(&self) -> Vec<u8> {
        if let Some(raw) = &self.manifest_raw {
            return raw.clone();
        }
        let json = serde_json::json!({
            "backup-type": BACKUP_TYPE,
            "backup-id": BACKUP_ID,
            "backup-time": BACKUP_TIME,
            "files": self.entries,
            "signature": null,
            "unprotected": {},
        });
        encode_uncompressed(&serde_json::to_vec_pretty(&json).unwrap())
    }

    /// Writes the case into `dir` (which must not exist yet).
    fn write(&self, dir: &Path) {
        fs::create_dir_all(dir.join("chunks")).unwrap();
        fs::write(dir.join("index.json.blob"), self.manifest()).unwrap();
        for (name, bytes) in &self.files {
            fs::write(dir.join(name), bytes).unwrap();
        }
        for (name, bytes) in &self.chunks {
            fs::write(dir.join("chunks").join(name), bytes).unwrap();
        }
    }
}

/// The manifest entry an honest writer makes for these bytes (also for hostile ones: what it
/// would compute from them), so that readers get past the manifest to the hostile part.
fn honest_entry(name: &str, bytes: &[u8]) -> FileEntry {
    let body = bytes.get(4096..).unwrap_or_default();
    let u64_at = |b: &[u8], at: usize| {
        b.get(at..at + 8)
            .map_or(0, |s| u64::from_le_bytes(s.try_into().unwrap()))
    };
    let (csum, size) = if name.ends_with(".didx") {
        let complete = body.len() / 40;
        let size = complete.checked_sub(1).map_or(0, |i| u64_at(body, i * 40));
        (sha256(body), size)
    } else if name.ends_with(".fidx") {
        (sha256(body), u64_at(bytes, 64))
    } else {
        (sha256(bytes), bytes.len() as u64)
    };
    FileEntry {
        crypt_mode: CryptMode::None,
        csum,
        filename: name.to_string(),
        size,
    }
}

/// All cases, in a fixed order.
pub fn cases() -> Vec<Case> {
    let mut all = vec![control()];
    all.extend(name_cases());
    all.extend(duplicate_cases());
    all.extend(hardlink_cases());
    all.extend(huge_item_cases());
    all.extend(index_cases());
    all.extend(blob_cases());
    all.extend(manifest_cases());
    all.extend(split_cases());
    all.extend(catalog_cases());
    all
}

fn control() -> Case {
    let mut case = full_snapshot(
        "control",
        "Not hostile: a good snapshot with a tree archive and its catalog, a split tree archive \
         (`split.pxar`), an image and a blob. Every command succeeds on it under the same limits.",
    );
    let (meta, payload) = split(|e| {
        add_file(e, b"a", b"first file of the split archive\n");
        e.create_directory(b"d", &dir_meta()).unwrap();
        add_file(e, b"b", b"second file\n");
        e.finish_directory().unwrap();
    });
    case.stream("split.mpxar.didx", &meta, 4096);
    case.stream("split.ppxar.didx", &payload, 4096);
    case
}

/// The README of the corpus directory.
pub fn readme(cases: &[Case]) -> String {
    let mut out = String::from(
        "# Hostile-input corpus\n\n\
         Crafted snapshots for `tests/hostile_input.rs`, which installs each as the snapshot \
         `host/1/2023-11-14T22:13:20Z` of a datastore, emptied between cases (the files of a directory into the \
         snapshot directory, `chunks/*` into `.chunks/<first 4 hex>/`) and runs restore, export, \
         cat, catalog and verify against it under an address-space limit and a deadline.\n\n\
         Generated by `tests/hostile_gen/mod.rs`; regenerate with\n\
         `STOWAGE_REGENERATE_HOSTILE=1 cargo test -p stowage --test hostile_input regenerate`.\n\
         Unless a case says otherwise, the manifest lists each file with the size and checksum an \
         honest writer computes from its bytes, so readers get past it to the hostile part, and \
         every chunk is an uncompressed blob matching its digest (or a zstd frame written out \
         byte by byte).\n\n\
         `verify` checks storage as PBS's does (chunks, indexes, blobs, manifest): the test expects \
         it to fail (exit 8) for the cases that damage those, and to pass for the cases whose \
         stored data is intact and only the content of an archive or catalog is hostile.\n\n\
         | case | what is hostile |\n|---|---|\n",
    );
    for c in cases {
        out.push_str(&format!("| `{}` | {} |\n", c.name, c.about));
    }
    out
}

/// Writes every case (and the README) into `root`, replacing what is there.
pub fn write_all(root: &Path) {
    let cases = cases();
    if root.exists() {
        fs::remove_dir_all(root).unwrap();
    }
    fs::create_dir_all(root).unwrap();
    for case in &cases {
        case.write(&root.join(case.name));
    }
    fs::write(root.join("README.md"), readme(&cases)).unwrap();
}
