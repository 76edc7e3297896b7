use std::io;

use stowage_core::session::SessionError;
use stowage_core::PipelineError;
use stowage_types::{ErrorClass, NameError};

/// Failures of an operation. Each knows its class (and so the command's exit code) and names
/// the object it concerns.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// A failure this layer finds itself: bad input, nothing selected, a damaged archive.
    #[error("{message}")]
    Failed { class: ErrorClass, message: String },
    /// `source`, in the context of `context` ("archive root.pxar"): shown as "context: source".
    #[error("{context}")]
    Context {
        context: String,
        #[source]
        source: Box<OpsError>,
    },
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error(transparent)]
    Store(#[from] stowage_core::StoreError),
    #[error(transparent)]
    Export(#[from] stowage_export::ExportError),
    #[error(transparent)]
    Decode(#[from] stowage_archive::DecodeError),
    #[error(transparent)]
    Restore(#[from] stowage_fs::RestoreError),
    #[error(transparent)]
    Catalog(#[from] stowage_format::CatalogError),
    #[error(transparent)]
    Create(#[from] stowage_fs::CreateError),
    #[error(transparent)]
    Encode(#[from] stowage_archive::EncodeError),
    #[error(transparent)]
    Name(#[from] NameError),
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl OpsError {
    pub fn failed(class: ErrorClass, message: impl Into<String>) -> Self {
        OpsError::Failed {
            class,
            message: message.into(),
        }
    }

    pub fn class(&self) -> ErrorClass {
        match self {
            OpsError::Failed { class, .. } => *class,
            OpsError::Context { source, .. } => source.class(),
            OpsError::Session(e) => e.class(),
            OpsError::Pipeline(e) => e.class(),
            OpsError::Store(e) => e.class(),
            OpsError::Export(e) => e.class(),
            OpsError::Decode(e) => e.class(),
            OpsError::Restore(e) => e.class(),
            OpsError::Catalog(e) => e.class(),
            OpsError::Create(e) => e.class(),
            OpsError::Encode(e) => e.class(),
            OpsError::Name(e) => e.class(),
            OpsError::Io(e) => ErrorClass::of_write_error(e, ErrorClass::Internal),
        }
    }

    /// The restore error inside, if that is what this is (a file that failed to take bytes
    /// names itself; no context is added to it).
    pub fn is_restore_error(&self) -> bool {
        match self {
            OpsError::Restore(_) => true,
            OpsError::Context { source, .. } => source.is_restore_error(),
            _ => false,
        }
    }
}

/// Adds context to an error, as "context: error".
pub trait Context<T> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T, OpsError>;
}

impl<T, E: Into<OpsError>> Context<T> for Result<T, E> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T, OpsError> {
        self.map_err(|e| OpsError::Context {
            context: context(),
            source: Box::new(e.into()),
        })
    }
}

/// An error and its causes on one line: "outer: inner: root cause".
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cause = c.source();
    }
    parts.join(": ")
}
