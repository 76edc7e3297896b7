//! Errors of capture and restore. Each names the entry (relative to the directory the walk or
//! the restore started from) and the operation that failed.

use std::io;
use std::path::{Path, PathBuf};

use stowage_archive::NameError;
use stowage_types::ErrorClass;

use crate::posix_acl::AclError;

/// Why an entry could not be captured from the source file system.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("{}: vanished while being read; skipped", path.display())]
    Vanished { path: PathBuf },
    #[error("{}: permission denied to {op}; run as root or exclude it", path.display())]
    PermissionDenied {
        path: PathBuf,
        op: &'static str,
        source: io::Error,
    },
    #[error("{}: replaced by another file while being read; skipped", path.display())]
    Changed { path: PathBuf },
    #[error("{}: unknown file type (mode {mode:o}); exclude it", path.display())]
    UnknownType { path: PathBuf, mode: u64 },
    #[error("{}: the file system returned a malformed POSIX ACL: {source}", path.display())]
    Acl { path: PathBuf, source: AclError },
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        path: PathBuf,
        op: &'static str,
        source: io::Error,
    },
}

impl CaptureError {
    /// Capture errors are all about the backup source.
    pub fn class(&self) -> ErrorClass {
        ErrorClass::Source
    }

    /// The entry the error is about.
    pub fn path(&self) -> &Path {
        use CaptureError::*;
        match self {
            Vanished { path }
            | PermissionDenied { path, .. }
            | Changed { path }
            | UnknownType { path, .. }
            | Acl { path, .. }
            | Io { path, .. } => path,
        }
    }

    /// The same error with `parent` put in front of its path (a walker knows where it is;
    /// [`capture`](crate::capture()) only knows the entry's name).
    pub fn with_parent(mut self, parent: &Path) -> CaptureError {
        use CaptureError::*;
        let path = match &mut self {
            Vanished { path }
            | PermissionDenied { path, .. }
            | Changed { path }
            | UnknownType { path, .. }
            | Acl { path, .. }
            | Io { path, .. } => path,
        };
        *path = parent.join(&*path);
        self
    }

    /// The entry disappeared between listing its directory and reading it.
    pub fn is_vanished(&self) -> bool {
        matches!(self, CaptureError::Vanished { .. })
    }

    /// The entry (or its directory) may not be read by this user.
    pub fn is_permission_denied(&self) -> bool {
        matches!(self, CaptureError::PermissionDenied { .. })
    }

    /// Whether a walker may report the error and go on with the next entry: the entry
    /// vanished, changed under us, or may not be read.
    pub fn is_skippable(&self) -> bool {
        matches!(
            self,
            CaptureError::Vanished { .. }
                | CaptureError::PermissionDenied { .. }
                | CaptureError::Changed { .. }
        )
    }

    /// Turns an errno of operation `op` on `path` into the matching variant.
    pub(crate) fn from_errno(path: &Path, op: &'static str, errno: nix::Error) -> CaptureError {
        let path = path.to_path_buf();
        match errno {
            nix::Error::ENOENT => CaptureError::Vanished { path },
            nix::Error::EACCES | nix::Error::EPERM => CaptureError::PermissionDenied {
                path,
                op,
                source: errno.into(),
            },
            _ => CaptureError::Io {
                path,
                op,
                source: errno.into(),
            },
        }
    }
}

/// Why an archive entry could not be restored.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("{}: the archive holds an invalid name ({source}); refusing to restore it", path.display())]
    BadName { path: PathBuf, source: NameError },
    #[error("{}: hardlink target '{target}' is not a path inside the restore target ({reason}); refusing to link it", path.display())]
    BadLinkTarget {
        path: PathBuf,
        target: String,
        reason: String,
    },
    #[error("{}: the archive holds an invalid {what}; refusing to restore it", path.display())]
    Invalid { path: PathBuf, what: &'static str },
    #[error("{}: exists; pass --overwrite to replace it", path.display())]
    Exists { path: PathBuf },
    #[error("{}: is a directory and will not be replaced by a {what}; remove it first", path.display())]
    IsDirectory { path: PathBuf, what: &'static str },
    #[error("{}: the archive announced {expected} bytes but holds {actual}", path.display())]
    SizeMismatch {
        path: PathBuf,
        expected: u64,
        actual: u64,
    },
    #[error("{}: {detail} (a bug in the caller)", path.display())]
    Unbalanced { path: PathBuf, detail: &'static str },
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        path: PathBuf,
        op: &'static str,
        source: io::Error,
    },
}

impl RestoreError {
    pub fn class(&self) -> ErrorClass {
        use RestoreError::*;
        match self {
            BadName { .. } | BadLinkTarget { .. } | Invalid { .. } | SizeMismatch { .. } => {
                ErrorClass::Verification
            }
            // The restore target cannot be written as asked (README: exit 5).
            Exists { .. } | IsDirectory { .. } => ErrorClass::Target,
            Unbalanced { .. } => ErrorClass::Internal,
            Io { source, .. } => ErrorClass::of_write_error(source, ErrorClass::Target),
        }
    }

    /// The entry the error is about, relative to the restore target.
    pub fn path(&self) -> &Path {
        use RestoreError::*;
        match self {
            BadName { path, .. }
            | BadLinkTarget { path, .. }
            | Invalid { path, .. }
            | Exists { path }
            | IsDirectory { path, .. }
            | SizeMismatch { path, .. }
            | Unbalanced { path, .. }
            | Io { path, .. } => path,
        }
    }

    /// A closure turning an errno of `op` on `path` into [`RestoreError::Io`].
    pub(crate) fn io(path: &Path, op: &'static str) -> impl FnOnce(nix::Error) -> RestoreError {
        let path = path.to_path_buf();
        move |errno| RestoreError::Io {
            path,
            op,
            source: errno.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_errors_are_classified_by_errno() {
        let p = Path::new("x");
        assert!(CaptureError::from_errno(p, "stat", nix::Error::ENOENT).is_vanished());
        assert!(CaptureError::from_errno(p, "open", nix::Error::EACCES).is_permission_denied());
        let other = CaptureError::from_errno(p, "read", nix::Error::EIO);
        assert!(!other.is_skippable());
        assert_eq!(other.class(), ErrorClass::Source);
        let nested = other.with_parent(Path::new("a/b"));
        assert_eq!(nested.path(), Path::new("a/b/x"));
        assert!(nested.to_string().contains("a/b/x"), "{nested}");
    }

    #[test]
    fn restore_errors_name_path_and_advice() {
        let e = RestoreError::Exists {
            path: PathBuf::from("d/f"),
        };
        assert_eq!(e.to_string(), "d/f: exists; pass --overwrite to replace it");
        assert_eq!(e.class(), ErrorClass::Target);
        let full = RestoreError::io(Path::new("f"), "write")(nix::Error::ENOSPC);
        assert_eq!(full.class(), ErrorClass::NoSpace);
        assert!(full.to_string().starts_with("cannot write f: "), "{full}");
    }
}

/// Why a file-tree archive could not be created (entries that cannot be read are warnings, not
/// errors: see [`create_archive`](crate::create_archive)).
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("cannot open the backup source {}: {why}", path.display())]
    Root { path: PathBuf, why: String },
    #[error(transparent)]
    Encode(#[from] stowage_archive::EncodeError),
    #[error("catalog: {0}")]
    Catalog(#[from] stowage_format::CatalogError),
    #[error("cannot write the archive stream: {0}")]
    Write(io::Error),
}

impl CreateError {
    pub fn class(&self) -> ErrorClass {
        match self {
            CreateError::Root { .. } => ErrorClass::Source,
            CreateError::Encode(e) => e.class(),
            CreateError::Catalog(e) => e.class(),
            CreateError::Write(e) => ErrorClass::of_write_error(e, ErrorClass::IndexWrite),
        }
    }
}
