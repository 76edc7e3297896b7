//! Verification: every manifest entry against its file, then every referenced chunk exactly once,
//! in parallel, decoded and hashed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use stowage_core::{decode_and_verify, ChunkLayout, ChunkSource, StoreError};
use stowage_format::BlobDecoder;
use stowage_types::{ArchiveKind, ArchiveName, Digest, SnapshotRef};

use crate::Datastore;

#[derive(Debug, Clone)]
pub struct SnapshotVerify {
    pub snapshot: SnapshotRef,
    /// Problems with the manifest, an index or a blob, and the number of bad chunks it needs.
    pub errors: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct BadChunk {
    pub digest: Digest,
    pub reason: String,
    /// Snapshots whose archives need this chunk.
    pub snapshots: Vec<SnapshotRef>,
}

#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    pub snapshots: Vec<SnapshotVerify>,
    pub chunks_checked: u64,
    /// Plain bytes of the chunks checked.
    pub bytes_checked: u64,
    pub bad_chunks: Vec<BadChunk>,
    pub duration: Duration,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.bad_chunks.is_empty() && self.snapshots.iter().all(|s| s.errors.is_empty())
    }
}

/// Each unique digest, the length its index expects, and which snapshots need it.
type ChunkRefs = HashMap<Digest, (usize, Vec<usize>)>;

impl Datastore {
    /// Verifies `snapshots` with `threads` workers. `progress` counts chunks checked.
    pub fn verify(
        &self,
        snapshots: &[SnapshotRef],
        threads: usize,
        progress: &AtomicU64,
    ) -> VerifyReport {
        let started = Instant::now();
        let mut report = VerifyReport::default();
        let mut refs: ChunkRefs = HashMap::new();
        for (i, snapshot) in snapshots.iter().enumerate() {
            let errors = self.check_snapshot_files(snapshot, i, &mut refs);
            report.snapshots.push(SnapshotVerify {
                snapshot: snapshot.clone(),
                errors,
            });
        }
        let mut digests: Vec<Digest> = refs.keys().copied().collect();
        digests.sort_unstable();
        let bad = self.check_chunks(&digests, &refs, threads, progress);
        report.chunks_checked = digests.len() as u64;
        report.bytes_checked = refs.values().map(|(len, _)| *len as u64).sum();
        for (digest, reason) in bad {
            let users = &refs[&digest].1;
            for &u in users {
                report.snapshots[u]
                    .errors
                    .push(format!("needs bad chunk {digest}"));
            }
            report.bad_chunks.push(BadChunk {
                digest,
                reason,
                snapshots: users.iter().map(|&u| snapshots[u].clone()).collect(),
            });
        }
        report.bad_chunks.sort_by_key(|b| b.digest);
        report.duration = started.elapsed();
        report
    }

    /// Checks manifest, indexes and blobs of one snapshot; collects the chunks it needs.
    fn check_snapshot_files(
        &self,
        snapshot: &SnapshotRef,
        id: usize,
        refs: &mut ChunkRefs,
    ) -> Vec<String> {
        let manifest = match self.load_manifest(snapshot) {
            Ok(m) => m,
            Err(e) => return vec![e.to_string()],
        };
        let mut errors = Vec::new();
        for file in &manifest.files {
            let name = match ArchiveName::parse(&file.filename) {
                Ok(n) => n,
                Err(_) => continue, // not an archive we know how to check (yet)
            };
            let index: Result<Box<dyn ChunkLayout>, _> = match name.kind() {
                ArchiveKind::Image => self
                    .read_fixed_index(snapshot, &manifest, &name)
                    .map(|i| Box::new(i) as Box<dyn ChunkLayout>),
                ArchiveKind::Pxar => self
                    .read_dynamic_index(snapshot, &manifest, &name)
                    .map(|i| Box::new(i) as Box<dyn ChunkLayout>),
                ArchiveKind::Blob => {
                    if let Err(e) = self.read_blob_file(snapshot, &manifest, &name) {
                        errors.push(e.to_string());
                    }
                    continue;
                }
            };
            match index {
                Ok(index) => {
                    for i in 0..index.chunk_count() {
                        let (_, len, digest) = index.chunk(i);
                        let entry = refs.entry(*digest).or_insert((len, Vec::new()));
                        if entry.1.last() != Some(&id) {
                            entry.1.push(id);
                        }
                    }
                }
                Err(e) => errors.push(e.to_string()),
            }
        }
        errors
    }

    /// Decodes and hashes every digest once, `threads` at a time; returns the bad ones.
    fn check_chunks(
        &self,
        digests: &[Digest],
        refs: &ChunkRefs,
        threads: usize,
        progress: &AtomicU64,
    ) -> Vec<(Digest, String)> {
        let next = AtomicUsize::new(0);
        let bad = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..threads.max(1) {
                s.spawn(|| {
                    let Ok(mut decoder) = BlobDecoder::new() else {
                        return;
                    };
                    let (mut encoded, mut plain) = (Vec::new(), Vec::new());
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(digest) = digests.get(i) else { break };
                        let len = refs[digest].0;
                        let result = match self.chunk_store().read_chunk(digest, &mut encoded) {
                            Ok(()) => {
                                decode_and_verify(&mut decoder, digest, &encoded, len, &mut plain)
                                    .map_err(|e| e.to_string())
                            }
                            Err(StoreError::Missing { .. }) => Err("missing".to_string()),
                            Err(e) => Err(e.to_string()),
                        };
                        if let Err(reason) = result {
                            if let Ok(mut b) = bad.lock() {
                                b.push((*digest, reason));
                            }
                        }
                        progress.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        });
        bad.into_inner().unwrap_or_default()
    }
}
