use std::io;
use std::path::PathBuf;

use stowage_format::BlobError;
use stowage_types::{Digest, ErrorClass};

use crate::ChunkCheckError;

/// Failures of a chunk store, local or remote.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("chunk {digest} is missing from the datastore ({path})")]
    Missing { digest: Digest, path: PathBuf },
    #[error("cannot read chunk {digest} ({path}): {source}")]
    Read {
        digest: Digest,
        path: PathBuf,
        source: io::Error,
    },
    #[error("cannot write chunk {digest} ({path}): {source}")]
    Write {
        digest: Digest,
        path: PathBuf,
        source: io::Error,
    },
}

impl StoreError {
    pub fn class(&self) -> ErrorClass {
        match self {
            StoreError::Missing { .. } | StoreError::Read { .. } => ErrorClass::Verification,
            StoreError::Write { source, .. } => {
                ErrorClass::of_write_error(source, ErrorClass::IndexWrite)
            }
        }
    }
}

/// Failures of the backup and restore pipelines.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("cannot read source {name}: {source}")]
    SourceRead { name: String, source: io::Error },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Session(#[from] crate::session::SessionError),
    #[error("cannot compress chunk {digest}: {source}")]
    Compress { digest: Digest, source: BlobError },
    #[error("chunk {digest} at offset {offset}: {source}; run 'stowage verify' to find every snapshot that needs it")]
    Corrupt {
        digest: Digest,
        offset: u64,
        source: ChunkCheckError,
    },
    #[error("cannot write restore target {name}: {source}")]
    TargetWrite { name: String, source: io::Error },
    #[error("a pipeline thread failed: {0}")]
    Thread(String),
    /// A read of a stream (at random positions, say a split archive's payload stream) that its
    /// index does not cover: whatever asked for it (an archive's payload reference) is damaged.
    #[error("{name}: {source}")]
    OutOfRange { name: String, source: io::Error },
}

impl PipelineError {
    /// The pipeline stopped because the reader of its target went away (see
    /// [`is_closed`](crate::is_closed)): not a failure of its own.
    pub fn is_closed_target(&self) -> bool {
        matches!(self, PipelineError::TargetWrite { source, .. } if crate::pipe::is_closed(source))
    }

    pub fn class(&self) -> ErrorClass {
        match self {
            PipelineError::SourceRead { .. } => ErrorClass::Source,
            PipelineError::Store(e) => e.class(),
            PipelineError::Session(e) => e.class(),
            PipelineError::Compress { .. } => ErrorClass::Compression,
            PipelineError::Corrupt { .. } => ErrorClass::Verification,
            PipelineError::TargetWrite { source, .. } => {
                ErrorClass::of_write_error(source, ErrorClass::Target)
            }
            PipelineError::Thread(_) => ErrorClass::Internal,
            PipelineError::OutOfRange { .. } => ErrorClass::Verification,
        }
    }
}
