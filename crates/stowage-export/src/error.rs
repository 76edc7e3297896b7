use std::io;
use std::path::PathBuf;

use stowage_types::ErrorClass;

/// Failures while writing or checking a standard archive. Each names the object it concerns.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("cannot read {what}: {source}")]
    Read { what: String, source: io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("{format} compression failed: {detail}")]
    Compress { format: String, detail: String },
    #[error("invalid option: {0}")]
    Usage(String),
    #[error("{}: exists; pass --overwrite to replace it", path.display())]
    Exists { path: PathBuf },
    #[error("not enough space in {dir}: {detail}")]
    NoSpace { dir: PathBuf, detail: String },
    #[error("{path} is damaged: {detail}")]
    Damaged { path: PathBuf, detail: String },
    /// A pxar stream that cannot be decoded (or read).
    #[error(transparent)]
    Decode(#[from] stowage_archive::DecodeError),
    /// Walking a directory tree failed (unreadable entries are warnings, not this).
    #[error(transparent)]
    Walk(#[from] stowage_fs::CreateError),
    #[error("cannot write tar entry {entry}: {source}")]
    TarWrite { entry: String, source: io::Error },
}

impl ExportError {
    pub fn class(&self) -> ErrorClass {
        match self {
            ExportError::Read { source, .. } => read_class(source),
            ExportError::Write { source, .. } => {
                ErrorClass::of_write_error(source, ErrorClass::Target)
            }
            ExportError::Compress { .. } => ErrorClass::Compression,
            ExportError::Usage(_) => ErrorClass::Usage,
            ExportError::Exists { .. } => ErrorClass::Target,
            ExportError::Damaged { .. } => ErrorClass::Verification,
            ExportError::NoSpace { .. } => ErrorClass::NoSpace,
            ExportError::Decode(e) => e.class(),
            ExportError::Walk(e) => e.class(),
            ExportError::TarWrite { source, .. } => {
                ErrorClass::of_write_error(source, ErrorClass::Target)
            }
        }
    }
}

/// The class of a failed read: the source's (a file that cannot be read), unless the reader
/// found the data damaged (a pxar stream that does not decode, a bad or missing chunk).
fn read_class(e: &io::Error) -> ErrorClass {
    let inner = e.get_ref();
    if let Some(d) = inner.and_then(|i| i.downcast_ref::<stowage_archive::DecodeError>()) {
        return d.class();
    }
    if let Some(p) = inner.and_then(|i| i.downcast_ref::<stowage_core::PipelineError>()) {
        return p.class();
    }
    ErrorClass::Source
}
