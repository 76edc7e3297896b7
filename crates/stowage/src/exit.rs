//! Exit codes: the one table that maps every error class to a process exit code. The README
//! shows the same table; keep them in step.

use stowage_core::session::SessionError;
use stowage_core::{PipelineError, StoreError};
use stowage_datastore::DatastoreError;
use stowage_format::{BlobError, CatalogError, ManifestError};
use stowage_types::{ErrorClass, NameError};

pub const OK: i32 = 0;
/// A file-tree backup completed, but some entries vanished or could not be read (each was
/// reported); the snapshot holds everything else.
pub const PARTIAL: i32 = 7;

pub fn code(class: ErrorClass) -> i32 {
    match class {
        ErrorClass::Internal => 1,
        ErrorClass::Usage => 2,
        ErrorClass::Datastore => 3,
        ErrorClass::Source => 4,
        ErrorClass::Target => 5,
        ErrorClass::NotFound => 6,
        ErrorClass::Verification => 8,
        ErrorClass::CriticalCommand => 9,
        ErrorClass::IndexWrite => 10,
        ErrorClass::Compression => 11,
        ErrorClass::NoSpace => 12,
    }
}

/// An error raised by the binary itself, with its class.
#[derive(Debug)]
pub struct CliError {
    pub class: ErrorClass,
    pub message: String,
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

pub fn fail(class: ErrorClass, message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(CliError {
        class,
        message: message.into(),
    })
}

/// The class of the first error in the chain that knows its class.
pub fn classify(err: &anyhow::Error) -> ErrorClass {
    err.chain()
        .find_map(class_of)
        .unwrap_or(ErrorClass::Internal)
}

fn class_of(cause: &(dyn std::error::Error + 'static)) -> Option<ErrorClass> {
    if let Some(e) = cause.downcast_ref::<CliError>() {
        return Some(e.class);
    }
    if let Some(e) = cause.downcast_ref::<DatastoreError>() {
        return Some(e.class());
    }
    if let Some(e) = cause.downcast_ref::<stowage_ops::OpsError>() {
        return Some(e.class());
    }
    if let Some(e) = cause.downcast_ref::<SessionError>() {
        return Some(e.class());
    }
    if let Some(e) = cause.downcast_ref::<PipelineError>() {
        return Some(e.class());
    }
    if let Some(e) = cause.downcast_ref::<StoreError>() {
        return Some(e.class());
    }
    if let Some(e) = cause.downcast_ref::<BlobError>() {
        return Some(e.class());
    }
    if let Some(e) = cause.downcast_ref::<ManifestError>() {
        return Some(e.class());
    }
    if let Some(e) = cause.downcast_ref::<NameError>() {
        return Some(e.class());
    }
    if let Some(e) = cause.downcast_ref::<CatalogError>() {
        return Some(e.class());
    }
    if let Some(e) = cause.downcast_ref::<stowage_fs::CreateError>() {
        return Some(e.class());
    }
    if let Some(e) = cause.downcast_ref::<stowage_fs::RestoreError>() {
        return Some(e.class());
    }
    if let Some(e) = cause.downcast_ref::<stowage_fs::CaptureError>() {
        return Some(e.class());
    }
    if let Some(e) = cause.downcast_ref::<stowage_archive::DecodeError>() {
        return Some(e.class());
    }
    if let Some(e) = cause.downcast_ref::<stowage_archive::EncodeError>() {
        return Some(e.class());
    }
    if let Some(e) = cause.downcast_ref::<stowage_export::ExportError>() {
        return Some(e.class());
    }
    cause
        .downcast_ref::<std::io::Error>()
        .map(|e| ErrorClass::of_write_error(e, ErrorClass::Internal))
}

/// The whole chain on one line: "outer: inner: root cause".
pub fn one_line(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ").replace('\n', " ")
}
