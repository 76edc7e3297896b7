//! Layer 4: the local datastore, laid out exactly as Proxmox Backup Server lays out its own.
//!
//! ```text
//! <base>/.lock                      shared by backups, exclusive for garbage collection
//! <base>/.chunks/0000 ... ffff      65536 directories, created up front
//! <base>/.chunks/bb9f/bb9f8df6...   one DataBlob per chunk, named by the SHA-256 of its data
//! <base>/vm/100/owner               the group's owner
//! <base>/vm/100/2026-11-22T10:00:00Z/{drive-scsi0.img.fidx, qemu-server.conf.blob, index.json.blob}
//! ```
//! A snapshot exists once its `index.json.blob` is in place; that file is written last.

mod chunk_store;
mod error;
mod fsutil;
mod gc;
mod layout;
mod lock;
mod manifest_update;
mod namespaces;
mod prune;
mod session;
mod snapshots;
mod storage;
mod sync;
mod upid;
mod verify;
mod verify_structure;
mod writer;
mod writers;

pub use chunk_store::ChunkStore;
pub use error::DatastoreError;
pub use gc::{
    CacheStats, GcOptions, GcProgress, GcReport, GcStatus, CHUNK_DIRECTORIES, DEFAULT_GC_CACHE,
    DEFAULT_GC_CUTOFF,
};
pub use layout::Datastore;
pub use manifest_update::MANIFEST_LOCK_NAME;
pub use prune::{select_prune, PruneCandidate, PruneItem, PruneMark, PruneOptions, PruneRule};
pub use session::{LocalBackup, LocalIndexWriter, LocalReader, LocalRepository};
pub use snapshots::SnapshotInfo;
pub use storage::{LocalStorage, Storage};
pub use sync::{SnapshotCopy, SyncItem, SyncOutcome, SyncProgress};
pub use upid::{upid_start_time, Upid};
pub use verify::{
    BadChunk, SnapshotVerify, SnapshotVerifyState, VerifyOptions, VerifyProgress, VerifyReport,
    VerifyState,
};
pub use writer::SnapshotWriter;

/// A new datastore in a temporary directory, on tmpfs when there is one (a datastore is 65 536
/// directories, slow to make on a disk). For tests.
#[cfg(test)]
pub(crate) fn test_store() -> (tempfile::TempDir, Datastore) {
    let dir = tempfile::Builder::new()
        .tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .expect("a temporary directory");
    let store = Datastore::create(&dir.path().join("store")).expect("create a datastore");
    (dir, store)
}
