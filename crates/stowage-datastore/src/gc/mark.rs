//! GC phase 1: set the atime of every chunk any index references, each chunk once.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use nix::sys::stat::{utimensat, UtimensatFlags};
use nix::sys::time::TimeSpec;
use stowage_format::{DynamicIndex, FixedIndex};
use stowage_types::{BackupGroup, Digest};

use crate::{Datastore, DatastoreError};

const SHARDS: usize = 64;

/// What marking found, beyond the touched chunks.
#[derive(Default)]
pub(crate) struct MarkResult {
    pub index_files: u64,
    pub index_data_bytes: u64,
    pub cache_hits: u64,
    pub cache_misses: u64,
    /// Chunks an index needs that are not in the store: digest and the index file.
    pub missing: Vec<(Digest, PathBuf)>,
    /// Indexes or directories that could not be read: while there are any, nothing is proven
    /// unused and nothing may be removed.
    pub errors: Vec<String>,
    /// Index files found outside the expected layout (marked all the same).
    pub warnings: Vec<String>,
}

/// The digests touched so far, sharded to keep lock contention low. Bounded: a shard that grows
/// past its share of the capacity is emptied, which costs repeated touches, never a lost mark.
struct TouchedSet {
    shards: Vec<Mutex<HashSet<Digest>>>,
    per_shard: usize,
}

impl TouchedSet {
    fn new(capacity: usize) -> Self {
        TouchedSet {
            shards: (0..SHARDS).map(|_| Mutex::new(HashSet::new())).collect(),
            per_shard: capacity / SHARDS,
        }
    }

    /// True if the digest was not marked yet in this run (as far as the cache remembers).
    fn first_time(&self, digest: &Digest) -> bool {
        if self.per_shard == 0 {
            return true;
        }
        let shard = digest.as_bytes()[0] as usize % SHARDS;
        let Ok(mut set) = self.shards[shard].lock() else {
            return true;
        };
        if set.contains(digest) {
            return false;
        }
        if set.len() >= self.per_shard {
            set.clear();
        }
        set.insert(*digest);
        true
    }
}

/// A group as seen at one moment: its snapshot directories (name, finished) newest first.
type GroupState = Vec<(String, bool)>;

fn group_state(store: &Datastore, group: &BackupGroup) -> Result<GroupState, DatastoreError> {
    // Newest first: a backup that finished while we scan reuses chunks of the snapshot before it.
    Ok(store
        .snapshots(group)?
        .into_iter()
        .rev()
        .map(|s| (s.snapshot.time.to_rfc3339(), s.finished))
        .collect())
}

/// The index files of the snapshots in `state`; the flag tells whether a snapshot directory
/// vanished meanwhile.
fn group_indexes(
    store: &Datastore,
    group: &BackupGroup,
    state: &GroupState,
) -> Result<(Vec<PathBuf>, bool), DatastoreError> {
    let dir = store.group_dir(group);
    let mut out = Vec::new();
    let mut vanished = false;
    for (name, _) in state {
        let snap_dir = dir.join(name);
        let entries = match fs::read_dir(&snap_dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                vanished = true;
                continue;
            }
            Err(e) => return Err(DatastoreError::read(&snap_dir)(e)),
        };
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry.map_err(DatastoreError::read(&snap_dir))?;
            if is_index_name(&entry.file_name().to_string_lossy()) {
                files.push(entry.path());
            }
        }
        files.sort();
        out.extend(files);
    }
    Ok((out, vanished))
}

fn is_index_name(name: &str) -> bool {
    name.ends_with(".fidx") || name.ends_with(".didx")
}

/// Whether the group changed in a way that may hide references: a snapshot finished (it may
/// re-use chunks of one we could no longer read) or vanished.
fn changed(before: &GroupState, after: &GroupState) -> bool {
    after
        .iter()
        .any(|(name, finished)| *finished && !before.iter().any(|(n, f)| n == name && *f))
        || before
            .iter()
            .any(|(name, _)| !after.iter().any(|(n, _)| n == name))
}

/// Every index file below `dir` (hidden entries and `.chunks` skipped), for the left-overs
/// outside the expected layout.
fn walk_indexes(dir: &Path, out: &mut Vec<PathBuf>, errors: &mut Vec<String>) {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return,
        Err(e) => return errors.push(format!("cannot read {}: {e}", dir.display())),
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || (name == "lost+found") {
            continue;
        }
        match entry.file_type() {
            Ok(t) if t.is_dir() => walk_indexes(&entry.path(), out, errors),
            Ok(t) if t.is_file() && is_index_name(&name) => out.push(entry.path()),
            _ => {}
        }
    }
}

/// Digests and data size of one index file; `None` if it vanished (a concurrent forget).
fn read_index(path: &Path) -> Result<Option<(Vec<Digest>, u64)>, String> {
    let raw = match fs::read(path) {
        Ok(raw) => raw,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read index {}: {e}", path.display())),
    };
    let fixed = path.extension().is_some_and(|e| e == "fidx");
    let decoded = if fixed {
        FixedIndex::decode(&raw).map(|i| (i.size, i.digests))
    } else {
        DynamicIndex::decode(&raw).map(|i| (i.size(), i.entries.into_iter().map(|e| e.1).collect()))
    };
    match decoded {
        Ok((size, digests)) => Ok(Some((digests, size))),
        Err(e) => Err(format!("corrupt index {}: {e}", path.display())),
    }
}

#[cfg(test)]
pub(crate) type GroupHook<'a> = Box<dyn Fn(&BackupGroup) + Sync + 'a>;

pub(crate) struct Marker<'a> {
    store: &'a Datastore,
    touched: TouchedSet,
    index_files: AtomicU64,
    index_data_bytes: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    missing: Mutex<Vec<(Digest, PathBuf)>>,
    errors: Mutex<Vec<String>>,
    /// Index files seen so far, readable or not (each is counted and reported once, however
    /// often its group is rescanned).
    processed: Mutex<HashSet<PathBuf>>,
    /// Index files marked so far, for a progress display.
    progress: &'a AtomicU64,
    /// Test hook: runs after a group was listed, before its indexes are read.
    #[cfg(test)]
    pub after_list: Option<GroupHook<'a>>,
}

impl<'a> Marker<'a> {
    pub fn new(store: &'a Datastore, cache_capacity: usize, progress: &'a AtomicU64) -> Self {
        Marker {
            store,
            progress,
            touched: TouchedSet::new(cache_capacity),
            index_files: AtomicU64::new(0),
            index_data_bytes: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            missing: Mutex::new(Vec::new()),
            errors: Mutex::new(Vec::new()),
            processed: Mutex::new(HashSet::new()),
            #[cfg(test)]
            after_list: None,
        }
    }

    fn error(&self, message: String) {
        if let Ok(mut e) = self.errors.lock() {
            e.push(message);
        }
    }

    /// Marks every group of every namespace, `threads` groups at a time.
    pub fn run(self, threads: usize) -> MarkResult {
        let mut groups = Vec::new();
        match self.store.all_namespaces() {
            Ok(namespaces) => {
                for ns in namespaces {
                    match self.store.in_namespace(&ns).and_then(|v| {
                        let g = v.groups()?;
                        Ok((v, g))
                    }) {
                        Ok((view, gs)) => groups.extend(gs.into_iter().map(|g| (view.clone(), g))),
                        Err(e) => self.error(format!("namespace '{ns}': {e}")),
                    }
                }
            }
            Err(e) => self.error(e.to_string()),
        }
        let next = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..threads.max(1) {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((view, group)) = groups.get(i) else {
                        break;
                    };
                    self.mark_group(view, group);
                });
            }
        });
        let warnings = self.mark_leftovers();
        MarkResult {
            warnings,
            index_files: self.index_files.into_inner(),
            index_data_bytes: self.index_data_bytes.into_inner(),
            cache_hits: self.hits.into_inner(),
            cache_misses: self.misses.into_inner(),
            missing: self.missing.into_inner().unwrap_or_default(),
            errors: self.errors.into_inner().unwrap_or_default(),
        }
    }

    /// Marks one group, newest snapshot first. When the group changed meanwhile (a backup
    /// finished, a snapshot was forgotten or pruned), it is scanned again: the finished backup
    /// may hold chunks that only the vanished snapshot had referenced so far.
    fn mark_group(&self, view: &Datastore, group: &BackupGroup) {
        let fail = |e: DatastoreError| self.error(format!("group {group}: {e}"));
        let mut state = match group_state(view, group) {
            Ok(s) => s,
            Err(e) => return fail(e),
        };
        for _attempt in 0..10 {
            #[cfg(test)]
            if let Some(hook) = &self.after_list {
                hook(group);
            }
            let (indexes, mut vanished) = match group_indexes(view, group, &state) {
                Ok(i) => i,
                Err(e) => return fail(e),
            };
            for path in &indexes {
                vanished |= !self.mark_index(path);
            }
            let after = match group_state(view, group) {
                Ok(s) => s,
                Err(e) => return fail(e),
            };
            if !vanished && !changed(&state, &after) {
                return;
            }
            state = after;
        }
        self.error(format!(
            "group {group} kept changing while it was marked; run the collection again"
        ));
    }

    /// Marks every chunk of one index; false if the index vanished.
    fn mark_index(&self, path: &Path) -> bool {
        // Remembered whether it can be read or not: the search for indexes outside the layout
        // must neither read it again nor take it for one of those.
        let first = self
            .processed
            .lock()
            .map(|mut p| p.insert(path.to_path_buf()))
            .unwrap_or(true);
        match read_index(path) {
            Ok(Some((digests, size))) => {
                if first {
                    self.index_files.fetch_add(1, Ordering::Relaxed);
                    self.progress.fetch_add(1, Ordering::Relaxed);
                    self.index_data_bytes.fetch_add(size, Ordering::Relaxed);
                }
                for digest in &digests {
                    self.mark(digest, path);
                }
                true
            }
            Ok(None) => false,
            Err(e) => {
                if first {
                    self.error(e);
                }
                true
            }
        }
    }

    /// Index files outside the namespace/group/snapshot layout (a renamed snapshot directory,
    /// say) are marked too, with a warning: their chunks are not proven unused.
    fn mark_leftovers(&self) -> Vec<String> {
        let (mut found, mut errors) = (Vec::new(), Vec::new());
        walk_indexes(self.store.base(), &mut found, &mut errors);
        for e in errors {
            self.error(e);
        }
        let mut warnings = Vec::new();
        for path in found {
            let known = self
                .processed
                .lock()
                .map(|p| p.contains(&path))
                .unwrap_or(false);
            if !known && self.mark_index(&path) {
                warnings.push(format!(
                    "index {} lies outside the expected layout; its chunks were kept",
                    path.display()
                ));
            }
        }
        warnings
    }

    fn mark(&self, digest: &Digest, index: &Path) {
        if !self.touched.first_time(digest) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let path = self.store.chunk_store().chunk_path(digest);
        match touch(&path) {
            Ok(()) => {}
            Err(nix::errno::Errno::ENOENT) if super::sweep::recover_tombstone(&path) => {}
            Err(nix::errno::Errno::ENOENT) => {
                // Keep the evidence: bad copies of a needed chunk survive while it is missing.
                for n in 0..10 {
                    let _ = touch(&path.with_extension(format!("{n}.bad")));
                }
                if let Ok(mut m) = self.missing.lock() {
                    m.push((*digest, index.to_path_buf()));
                }
            }
            Err(e) => self.error(format!("cannot mark chunk {}: {e}", path.display())),
        }
    }
}

/// Sets a file's atime to now, leaving its mtime.
pub(crate) fn touch(path: &Path) -> nix::Result<()> {
    utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        &TimeSpec::UTIME_NOW,
        &TimeSpec::UTIME_OMIT,
        UtimensatFlags::NoFollowSymlink,
    )
}
