//! The seams of a backup and of a restore, shaped like PBS's backup and reader protocols
//! (spec section 11), so that a local datastore, a remote server and a repository in memory
//! are three implementations of the same traits.
//!
//! Writing ([`BackupTarget`]): the previous snapshot and its known chunks, index writers that
//! take chunk uploads and appends in stream order and close with count, size and checksum,
//! blobs, and `finish`. A target dropped unfinished leaves nothing visible.
//!
//! Reading ([`SnapshotReader`]): the manifest, the snapshot's files (indexes and blobs, checked
//! against the manifest), and a chunk source.

mod build;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
mod memory;
mod reader;

use std::collections::HashSet;

use stowage_types::{ArchiveName, BackupGroup, BackupTime, Digest, ErrorClass, SnapshotRef};

use crate::{ChunkSink, StoreError};

pub use build::{BuiltIndex, ChunkRegistry, FileBook, IndexBuilder, IndexTally};
pub use memory::MemoryRepository;
pub use reader::SnapshotReader;

/// Failures of a backup or reader session, local or remote.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A step broke the session's rules: a digest neither uploaded nor known, a close whose
    /// count, size or checksum differs from what was appended, a second archive of one name.
    #[error("{what}: {detail}")]
    Refused { what: String, detail: String },
    #[error("{what} does not exist{hint}")]
    NotFound { what: String, hint: String },
    /// A file of a snapshot is not what its manifest says.
    #[error("{what} is damaged: {detail}")]
    Damaged { what: String, detail: String },
    /// An error of the implementation (a datastore, a connection), with its class.
    #[error("{source}")]
    Backend {
        class: ErrorClass,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl SessionError {
    pub fn class(&self) -> ErrorClass {
        match self {
            SessionError::Store(e) => e.class(),
            SessionError::Refused { .. } => ErrorClass::Internal,
            SessionError::NotFound { .. } => ErrorClass::NotFound,
            SessionError::Damaged { .. } => ErrorClass::Verification,
            SessionError::Backend { class, .. } => *class,
        }
    }

    pub(crate) fn refused(what: impl Into<String>, detail: impl Into<String>) -> Self {
        SessionError::Refused {
            what: what.into(),
            detail: detail.into(),
        }
    }
}

/// One chunk of an index, in stream order: its digest and its plain length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexChunk {
    pub digest: Digest,
    pub len: u32,
}

/// What kind of index a writer builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexKind {
    /// An image of `size` bytes cut into chunks of `chunk_size` (only the last may be shorter).
    /// Without a size (a pipe), the index grows with its appends, as in PBS 4.
    Fixed { size: Option<u64>, chunk_size: u64 },
    /// A stream cut by content (a pxar archive, a catalog).
    Dynamic,
}

/// What a writer's owner says it appended: the index is refused unless it agrees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexClose {
    pub count: u64,
    pub size: u64,
    pub csum: Digest,
}

/// A repository: where snapshots are written and read. A local datastore, a remote server,
/// a map in memory.
pub trait Repository: Sync {
    /// Starts a backup of `group`, named `time` (now, when `None`). Refused while another
    /// backup of the group runs.
    fn begin_backup(
        &self,
        group: &BackupGroup,
        time: Option<BackupTime>,
    ) -> Result<Box<dyn BackupTarget + '_>, SessionError>;

    /// Opens a finished snapshot for reading.
    fn open_snapshot(
        &self,
        snapshot: &SnapshotRef,
    ) -> Result<Box<dyn SnapshotReader + '_>, SessionError>;

    /// The group's finished snapshots, oldest first.
    fn finished_snapshots(&self, group: &BackupGroup) -> Result<Vec<SnapshotRef>, SessionError>;
}

/// A backup in progress (PBS's backup protocol). Every method takes `&self`: the chunk
/// pipelines upload through index writers from many threads at once.
pub trait BackupTarget: Sync {
    fn snapshot(&self) -> &SnapshotRef;

    /// The snapshot this backup is incremental against (`previous_backup_time`), if any.
    fn base(&self) -> Option<&SnapshotRef>;

    /// The chunks the base snapshot's indexes reference. From then on they may be appended
    /// without being uploaded (PBS registers them when the client downloads the indexes).
    fn known_chunks(&self) -> Result<HashSet<Digest>, SessionError>;

    /// Opens a writer for a new index named `name` (an `.img`, `.pxar`, `.mpxar`, `.ppxar`
    /// or the catalog). Refused for a name the snapshot already holds.
    fn create_index(
        &self,
        name: &ArchiveName,
        kind: IndexKind,
    ) -> Result<Box<dyn IndexWriter + '_>, SessionError>;

    /// Stores a small file (a configuration, a log) as a blob.
    fn add_blob(&self, name: &ArchiveName, data: &[u8]) -> Result<(), SessionError>;

    /// Writes the manifest, with `unprotected` as its unsigned part: from now on the snapshot
    /// exists. Refused if an index writer was dropped without closing, or nothing was stored.
    fn finish(
        self: Box<Self>,
        unprotected: serde_json::Map<String, serde_json::Value>,
    ) -> Result<SnapshotRef, SessionError>;
}

/// One index being written. Chunks are uploaded through it (it is the pipeline's
/// [`ChunkSink`]) and appended in stream order; a chunk may be appended once it was uploaded
/// in this session or is known from the base snapshot. Dropping a writer without
/// [`close`](IndexWriter::close) makes the backup's `finish` fail.
pub trait IndexWriter: ChunkSink + Send {
    fn name(&self) -> &ArchiveName;

    /// Appends chunks, in stream order.
    fn append(&self, chunks: &[IndexChunk]) -> Result<(), SessionError>;

    /// Closes the index; `expected` must match what was appended.
    fn close(self: Box<Self>, expected: IndexClose) -> Result<(), SessionError>;
}

/// A `StoreError` about an index writer used against the rules.
pub(crate) fn unknown_chunk(name: &ArchiveName, digest: &Digest) -> SessionError {
    SessionError::refused(
        format!("index {name}"),
        format!("chunk {digest} was neither uploaded in this backup nor known from its base"),
    )
}
