use std::io;
use std::path::PathBuf;

use stowage_core::StoreError;
use stowage_format::{BlobError, IndexError, ManifestError};
use stowage_types::ErrorClass;

/// Failures of datastore operations. Each names the object it concerns.
#[derive(Debug, thiserror::Error)]
pub enum DatastoreError {
    #[error("{path} is not a stowage/PBS datastore (no .chunks directory or .lock file); create one with 'stowage datastore create {path}'")]
    NotADatastore { path: PathBuf },
    #[error("{path} already exists and is not empty; choose a new directory for the datastore")]
    NotEmpty { path: PathBuf },
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("{what} is locked: {why}")]
    Locked { what: String, why: String },
    #[error("snapshot {0} does not exist (list them with 'stowage snapshots')")]
    SnapshotNotFound(String),
    #[error("group {0} has no finished snapshot (list groups with 'stowage groups')")]
    GroupNotFound(String),
    #[error("snapshot {snapshot} has no archive '{archive}' (list them with 'stowage files {snapshot}')")]
    ArchiveNotFound { snapshot: String, archive: String },
    #[error("namespace '{0}' does not exist (list them with 'stowage namespace list', create it with 'stowage namespace create {0}')")]
    NamespaceNotFound(String),
    #[error("namespace '{0}' already exists")]
    NamespaceExists(String),
    #[error("namespace '{ns}' is not empty: {detail}")]
    NamespaceNotEmpty { ns: String, detail: String },
    #[error("snapshot {0} already exists")]
    SnapshotExists(String),
    #[error("snapshot {0} is protected; unprotect it first")]
    Protected(String),
    #[error("{what}: {source}")]
    Blob { what: String, source: BlobError },
    #[error("{what}: {source}")]
    Index { what: String, source: IndexError },
    #[error("{what}: {source}")]
    Manifest { what: String, source: ManifestError },
    #[error("{what} does not match the manifest: {detail}")]
    Mismatch { what: String, detail: String },
    #[error("{what} is listed in the manifest but missing")]
    MissingFile { what: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Name(#[from] stowage_types::NameError),
}

impl DatastoreError {
    pub fn class(&self) -> ErrorClass {
        use DatastoreError::*;
        match self {
            NotADatastore { .. } | NotEmpty { .. } | Locked { .. } | Read { .. } => {
                ErrorClass::Datastore
            }
            Write { source, .. } => ErrorClass::of_write_error(source, ErrorClass::IndexWrite),
            SnapshotNotFound(_)
            | GroupNotFound(_)
            | ArchiveNotFound { .. }
            | NamespaceNotFound(_) => ErrorClass::NotFound,
            SnapshotExists(_) | Protected(_) | NamespaceExists(_) | NamespaceNotEmpty { .. } => {
                ErrorClass::Usage
            }
            Blob { source, .. } => source.class(),
            Index { .. } | Manifest { .. } | Mismatch { .. } | MissingFile { .. } => {
                ErrorClass::Verification
            }
            Store(e) => e.class(),
            Name(e) => e.class(),
        }
    }

    pub(crate) fn read(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| DatastoreError::Read { path, source }
    }

    pub(crate) fn write(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| DatastoreError::Write { path, source }
    }
}

impl From<stowage_core::ChunkFault> for DatastoreError {
    fn from(e: stowage_core::ChunkFault) -> Self {
        match e {
            stowage_core::ChunkFault::Store(e) => DatastoreError::Store(e),
            stowage_core::ChunkFault::Bad(e) => DatastoreError::Mismatch {
                what: "a chunk".into(),
                detail: e.to_string(),
            },
        }
    }
}
