//! Verification as PBS does it (spec section 10): snapshot by snapshot, every manifest entry
//! against its file, then every referenced chunk, decoded and hashed in parallel and at most once
//! per run however many snapshots share it. A corrupt chunk is renamed to `<hex>.<N>.bad`, so
//! the next backup writes it again; each snapshot's result is stored in its manifest as
//! `unprotected.verify_state`.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use stowage_core::{for_each_chunk, ChunkFault, ChunkLayout, StoreError};
use stowage_format::Manifest;
use stowage_types::{ArchiveKind, ArchiveName, BackupNamespace, Digest, SnapshotRef};

use crate::upid::{unix_now, upid_start_time, Upid};

use crate::Datastore;

/// The manifest key of the verify state.
const VERIFY_STATE_KEY: &str = "verify_state";

#[derive(Debug, Clone)]
pub struct SnapshotVerify {
    pub ns: BackupNamespace,
    pub snapshot: SnapshotRef,
    /// Problems with the manifest, an index or a blob, and one "needs bad chunk" per bad chunk.
    pub errors: Vec<String>,
    /// The UPID of the verify state stored in the manifest; `None` when it could not be stored.
    pub upid: Option<String>,
}

#[derive(Debug, Clone)]
pub struct BadChunk {
    pub digest: Digest,
    pub reason: String,
    /// Snapshots whose archives need this chunk, with their namespaces.
    pub snapshots: Vec<(BackupNamespace, SnapshotRef)>,
    /// Where the corrupt chunk file was moved (`<hex>.<N>.bad`); `None` when it was missing.
    pub renamed_to: Option<PathBuf>,
}

#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    /// The snapshots verified, in the order given.
    pub snapshots: Vec<SnapshotVerify>,
    /// Snapshots left out because they have a verify state that is not outdated.
    pub skipped: Vec<(BackupNamespace, SnapshotRef)>,
    pub chunks_checked: u64,
    /// Plain bytes of the chunks checked.
    pub bytes_checked: u64,
    pub bad_chunks: Vec<BadChunk>,
    /// Things that did not make the data bad: a verify state that could not be stored, a bad
    /// chunk that could not be renamed.
    pub warnings: Vec<String>,
    pub duration: Duration,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.bad_chunks.is_empty() && self.snapshots.iter().all(|s| s.errors.is_empty())
    }
}

#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// Chunks checked in parallel.
    pub threads: usize,
    /// Skip snapshots that already have a verify state, ok or failed, unless it is outdated.
    pub ignore_verified: bool,
    /// With `ignore_verified`: a verify state counts as outdated when the verification started
    /// more than this many whole days ago (`(now - start) / 86400 > days`).
    pub outdated_after: Option<u64>,
    /// Also decode every file-tree archive and catalog of a snapshot whose chunks are whole
    /// (see `verify_structure.rs`); off: chunks, indexes and blobs only, as PBS verifies.
    pub structure: bool,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            threads: stowage_core::default_threads(),
            ignore_verified: false,
            outdated_after: None,
            structure: true,
        }
    }
}

/// The outcome stored in a manifest's verify state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerifyState {
    Ok,
    Failed,
}

/// `unprotected.verify_state` of a manifest: `{"upid": "UPID:...", "state": "ok"|"failed"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotVerifyState {
    pub upid: String,
    pub state: VerifyState,
}

impl SnapshotVerifyState {
    /// The verify state of `manifest`; `None` when it has none or one of another shape.
    pub fn of(manifest: &Manifest) -> Option<Self> {
        serde_json::from_value(manifest.unprotected.get(VERIFY_STATE_KEY)?.clone()).ok()
    }

    /// When the verification started (Unix seconds), from its UPID.
    pub fn start_time(&self) -> Option<i64> {
        upid_start_time(&self.upid)
    }

    fn store(&self, manifest: &mut Manifest) {
        if let Ok(value) = serde_json::to_value(self) {
            manifest
                .unprotected
                .insert(VERIFY_STATE_KEY.to_string(), value);
        }
    }
}

/// Whether a snapshot with `manifest` is to be verified under `opts` at `now`.
fn needs_verify(manifest: &Manifest, opts: &VerifyOptions, now: i64) -> bool {
    if !opts.ignore_verified {
        return true;
    }
    let Some(state) = SnapshotVerifyState::of(manifest) else {
        return true;
    };
    match (opts.outdated_after, state.start_time()) {
        (None, _) => false,
        (Some(days), Some(start)) => {
            (now - start) / 86_400 > i64::try_from(days).unwrap_or(i64::MAX)
        }
        (Some(_), None) => true,
    }
}

/// The digests one snapshot needs, each with the length its index expects.
type ChunkRefs = HashMap<Digest, usize>;

/// Live counters of a running verification, for a progress display.
#[derive(Debug, Default)]
pub struct VerifyProgress {
    /// Snapshots done (checked or skipped as verified before).
    pub snapshots: AtomicU64,
    /// Chunks checked, and their plain bytes.
    pub chunks: AtomicU64,
    pub bytes: AtomicU64,
}

impl Datastore {
    /// Verifies `snapshots` one after the other; chunks already checked in this run (good or
    /// bad) are not checked again. Corrupt chunks are renamed to `<hex>.<N>.bad`; each verified
    /// snapshot gets `unprotected.verify_state` in its manifest.
    /// Each snapshot is given with the namespace view it lives in.
    pub fn verify_across(
        &self,
        snapshots: &[(Datastore, SnapshotRef)],
        opts: &VerifyOptions,
        progress: &VerifyProgress,
    ) -> VerifyReport {
        let started = Instant::now();
        let start_time = unix_now();
        let mut report = VerifyReport::default();
        let mut good: HashSet<Digest> = HashSet::new();
        // Checksums of the archives whose structure was checked (and found sound) this run.
        let mut decoded: HashSet<(Digest, Option<Digest>)> = HashSet::new();
        // Bad digests, with their place in `report.bad_chunks`.
        let mut bad: HashMap<Digest, usize> = HashMap::new();
        for (view, snapshot) in snapshots {
            let ns = view.namespace().clone();
            let manifest = view.load_manifest(snapshot);
            if let Ok(m) = &manifest {
                if !needs_verify(m, opts, start_time) {
                    report.skipped.push((ns, snapshot.clone()));
                    progress.snapshots.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            }
            let mut refs = ChunkRefs::new();
            let mut errors = match &manifest {
                Ok(m) => view.check_snapshot_files(snapshot, m, &mut refs),
                Err(e) => vec![e.to_string()],
            };

            let mut todo: Vec<(Digest, usize)> = refs
                .iter()
                .filter(|(d, _)| !good.contains(*d) && !bad.contains_key(*d))
                .map(|(d, len)| (*d, *len))
                .collect();
            self.order_by_inode(&mut todo);
            let found = match self.check_chunks(&todo, opts.threads, progress) {
                Ok(found) => found,
                Err(e) => {
                    // Nothing was judged: no chunk counts as checked, good or bad.
                    errors.push(format!("cannot check chunks: {e}"));
                    todo.clear();
                    Vec::new()
                }
            };
            report.chunks_checked += todo.len() as u64;
            report.bytes_checked += todo.iter().map(|(_, len)| *len as u64).sum::<u64>();
            let mut found: HashMap<Digest, (String, bool)> = found
                .into_iter()
                .map(|(d, reason, missing)| (d, (reason, missing)))
                .collect();
            for (digest, _) in &todo {
                let Some((reason, missing)) = found.remove(digest) else {
                    good.insert(*digest);
                    continue;
                };
                // A corrupt or unreadable chunk is moved away; a missing one has nothing to move.
                let renamed_to = if missing {
                    None
                } else {
                    match self.chunk_store().rename_corrupt_chunk(digest) {
                        Ok(to) => to,
                        Err(e) => {
                            report
                                .warnings
                                .push(format!("cannot rename bad chunk {digest}: {e}"));
                            None
                        }
                    }
                };
                bad.insert(*digest, report.bad_chunks.len());
                report.bad_chunks.push(BadChunk {
                    digest: *digest,
                    reason,
                    snapshots: Vec::new(),
                    renamed_to,
                });
            }

            let mut needed: Vec<Digest> = refs
                .keys()
                .filter(|d| bad.contains_key(*d))
                .copied()
                .collect();
            needed.sort_unstable();
            for digest in needed {
                errors.push(format!("needs bad chunk {digest}"));
                report.bad_chunks[bad[&digest]]
                    .snapshots
                    .push((ns.clone(), snapshot.clone()));
            }
            // Whole chunks can still hold a broken or crafted archive: decode it too (an archive
            // identical to one checked in this run, by its checksum, only once).
            if let (true, true, Ok(m)) = (opts.structure, errors.is_empty(), &manifest) {
                errors.extend(view.check_structure(snapshot, m, opts.threads, &mut decoded));
            }

            let upid = manifest
                .is_ok()
                .then(|| view.store_verify_state(snapshot, start_time, errors.is_empty()))
                .and_then(|stored| stored.map_err(|e| report.warnings.push(e)).ok());
            report.snapshots.push(SnapshotVerify {
                ns,
                snapshot: snapshot.clone(),
                errors,
                upid,
            });
            progress.snapshots.fetch_add(1, Ordering::Relaxed);
        }
        report.bad_chunks.sort_by_key(|b| b.digest);
        report.duration = started.elapsed();
        report
    }

    /// Writes `verify_state` into the manifest of `snapshot`; returns the UPID stored.
    fn store_verify_state(
        &self,
        snapshot: &SnapshotRef,
        start_time: i64,
        ok: bool,
    ) -> Result<String, String> {
        let dir = self.snapshot_dir(snapshot);
        let worker_id = dir.strip_prefix(self.base()).unwrap_or(&dir);
        let state = SnapshotVerifyState {
            upid: Upid::verify(&worker_id.to_string_lossy(), start_time).to_string(),
            state: if ok {
                VerifyState::Ok
            } else {
                VerifyState::Failed
            },
        };
        self.update_manifest(snapshot, |m| state.store(m))
            .map(|()| state.upid)
            .map_err(|e| format!("cannot store the verify state of {snapshot}: {e}"))
    }

    /// Sorts chunks by the inode number of their file (one `stat` each), so a disk reads them
    /// in a friendlier order; missing chunks go first.
    fn order_by_inode(&self, todo: &mut [(Digest, usize)]) {
        if todo.len() < 2 {
            return;
        }
        let store = self.chunk_store();
        todo.sort_by_cached_key(|(digest, _)| {
            std::fs::symlink_metadata(store.chunk_path(digest))
                .map(|m| m.ino())
                .unwrap_or(0)
        });
    }

    /// Checks manifest entries, indexes and blobs of one snapshot; collects the chunks it needs.
    fn check_snapshot_files(
        &self,
        snapshot: &SnapshotRef,
        manifest: &Manifest,
        refs: &mut ChunkRefs,
    ) -> Vec<String> {
        let mut errors = Vec::new();
        for file in &manifest.files {
            let name = match ArchiveName::parse(&file.filename) {
                Ok(n) => n,
                Err(_) => continue, // not an archive we know how to check (yet)
            };
            let index: Result<Box<dyn ChunkLayout>, _> = match name.kind() {
                ArchiveKind::Image => self
                    .read_fixed_index(snapshot, manifest, &name)
                    .map(|i| Box::new(i) as Box<dyn ChunkLayout>),
                ArchiveKind::Pxar => self
                    .read_dynamic_index(snapshot, manifest, &name)
                    .map(|i| Box::new(i) as Box<dyn ChunkLayout>),
                ArchiveKind::Blob => {
                    if let Err(e) = self.read_blob_file(snapshot, manifest, &name) {
                        errors.push(e.to_string());
                    }
                    continue;
                }
            };
            match index {
                Ok(index) => {
                    for i in 0..index.chunk_count() {
                        let (_, len, digest) = index.chunk(i);
                        refs.entry(*digest).or_insert(len);
                    }
                }
                Err(e) => errors.push(e.to_string()),
            }
        }
        errors
    }

    /// Decodes and hashes every chunk of `todo`, `threads` at a time; returns the bad ones with
    /// why, and whether the chunk file was missing. An error means no chunk was judged.
    fn check_chunks(
        &self,
        todo: &[(Digest, usize)],
        threads: usize,
        progress: &VerifyProgress,
    ) -> Result<Vec<(Digest, String, bool)>, ChunkFault> {
        let bad = Mutex::new(Vec::new());
        for_each_chunk(self.chunk_store(), todo, threads, |reader, digest, len| {
            let fault = match reader.read(digest, len) {
                Ok(_) => None,
                Err(ChunkFault::Store(StoreError::Missing { .. })) => {
                    Some(("missing".to_string(), true))
                }
                Err(e) => Some((e.to_string(), false)),
            };
            if let Some((reason, missing)) = fault {
                if let Ok(mut b) = bad.lock() {
                    b.push((*digest, reason, missing));
                }
            }
            progress.chunks.fetch_add(1, Ordering::Relaxed);
            progress.bytes.fetch_add(len as u64, Ordering::Relaxed);
            Ok::<(), ChunkFault>(())
        })?;
        Ok(bad.into_inner().unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outdated_after_counts_whole_days() {
        let snap: SnapshotRef = "vm/100/2023-11-14T22:13:20Z".parse().unwrap();
        let mut m = Manifest::new(&snap);
        let now = 1_700_000_000 + 3 * 86_400 + 10;
        let opts = |ignore, outdated_after| VerifyOptions {
            threads: 1,
            ignore_verified: ignore,
            outdated_after,
            structure: true,
        };
        assert!(needs_verify(&m, &opts(true, None), now));
        SnapshotVerifyState {
            upid: Upid::verify("x", 1_700_000_000).to_string(),
            state: VerifyState::Failed,
        }
        .store(&mut m);
        assert_eq!(
            SnapshotVerifyState::of(&m).unwrap().state,
            VerifyState::Failed
        );
        assert_eq!(m.unprotected["verify_state"]["state"], "failed");
        assert!(needs_verify(&m, &opts(false, None), now));
        assert!(!needs_verify(&m, &opts(true, None), now));
        assert!(needs_verify(&m, &opts(true, Some(2)), now));
        assert!(!needs_verify(&m, &opts(true, Some(3)), now));
        // A state whose UPID cannot be read is verified again once an age matters.
        m.unprotected.insert(
            "verify_state".into(),
            serde_json::json!({"upid": "junk", "state": "ok"}),
        );
        assert!(!needs_verify(&m, &opts(true, None), now));
        assert!(needs_verify(&m, &opts(true, Some(100)), now));
    }
}
