//! Layer 0 of stowage: the names every other crate speaks.
//!
//! Nothing here does I/O. Every value that a user can type (backup type, backup id, snapshot
//! time, archive name) is validated when it is parsed, so the rest of the code can trust it.

mod archive;
mod backup;
mod digest;
mod error_class;
mod namespace;

pub use archive::{ArchiveKind, ArchiveName};
pub use backup::{BackupGroup, BackupTime, BackupType, SnapshotRef};
pub use digest::Digest;
pub use error_class::ErrorClass;
pub use namespace::{BackupNamespace, MAX_NAMESPACE_DEPTH, MAX_NAMESPACE_LEN};

/// Errors raised while parsing user-supplied names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("invalid backup type '{0}': expected vm, ct or host")]
    BackupType(String),
    #[error("invalid backup id '{0}': use letters, digits, '_', '-' and '.', not starting with '.' or '-'")]
    BackupId(String),
    #[error("invalid snapshot time '{0}': expected UTC RFC 3339 like 2026-11-22T10:00:00Z")]
    BackupTime(String),
    #[error("backup time '{0}' is out of range: it must lie from 1970-01-01T00:00:01Z (Unix time 1, as in PBS) to 9999-12-31T23:59:59Z")]
    BackupTimeRange(String),
    #[error("invalid group '{0}': expected TYPE/ID like vm/100")]
    Group(String),
    #[error("invalid snapshot '{0}': expected TYPE/ID/TIME like vm/100/2026-11-22T10:00:00Z")]
    Snapshot(String),
    #[error("invalid archive name '{0}': {1}")]
    Archive(String, std::borrow::Cow<'static, str>),
    #[error("invalid namespace '{0}': {1}")]
    Namespace(String, &'static str),
    #[error("invalid digest '{0}': expected 64 hex digits")]
    Digest(String),
}

/// `[A-Za-z0-9_][A-Za-z0-9._\-]*`, the SAFE_ID rule used for backup ids and archive names.
pub(crate) fn is_safe_id(s: &str) -> bool {
    let mut bytes = s.bytes();
    match bytes.next() {
        Some(b) if b.is_ascii_alphanumeric() || b == b'_' => {}
        _ => return false,
    }
    bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

impl NameError {
    pub fn class(&self) -> ErrorClass {
        ErrorClass::Usage
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_id_rule() {
        assert!(is_safe_id("100"));
        assert!(is_safe_id("_a.b-c"));
        assert!(!is_safe_id(""));
        assert!(!is_safe_id(".hidden"));
        assert!(!is_safe_id("-x"));
        assert!(!is_safe_id("a/b"));
        assert!(!is_safe_id("a b"));
    }
}
