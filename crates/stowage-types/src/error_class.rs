/// What kind of failure an error is. Every library error reports one; the binary maps each
/// class to exactly one exit code in one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Bad command line or configuration.
    Usage,
    /// The datastore is missing, not a datastore, or locked.
    Datastore,
    /// The backup source cannot be read.
    Source,
    /// The restore target cannot be written.
    Target,
    /// A snapshot, group or archive does not exist.
    NotFound,
    /// A command of a host profile marked critical failed: the backup was not made.
    CriticalCommand,
    /// Stored data is corrupt or missing: a digest, checksum or CRC does not match.
    Verification,
    /// Writing an archive, index or manifest failed.
    IndexWrite,
    /// Compressing or decompressing failed.
    Compression,
    /// The file system is full.
    NoSpace,
    /// Anything else: a bug or an unexpected operating-system failure.
    Internal,
}

impl ErrorClass {
    /// The class of an I/O error that happened while writing: a full disk is told apart.
    ///
    /// The OS error may sit below layers that wrapped it on its way (an error of a writer
    /// thread handed on as `io::Error::other(error)`): the first one found counts.
    pub fn of_write_error(err: &std::io::Error, otherwise: ErrorClass) -> ErrorClass {
        // ENOSPC = 28, EDQUOT = 122 on Linux.
        match root_os_error(err) {
            Some(28) | Some(122) => ErrorClass::NoSpace,
            _ => otherwise,
        }
    }
}

/// The OS error code of `err`, or of the first I/O error below it (through wrapped errors and
/// their sources).
fn root_os_error(err: &std::io::Error) -> Option<i32> {
    if let Some(code) = err.raw_os_error() {
        return Some(code);
    }
    let mut next: Option<&(dyn std::error::Error + 'static)> = err.get_ref().map(|e| e as _);
    // Chains are short; the bound only guards against a cycle.
    for _ in 0..16 {
        let cause = next?;
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            if let Some(code) = io.raw_os_error() {
                return Some(code);
            }
            next = io.get_ref().map(|e| e as _);
        } else {
            next = cause.source();
        }
    }
    None
}

#[cfg(test)]
mod write_error_tests {
    use super::ErrorClass;

    #[derive(Debug)]
    struct Wrapper(std::io::Error);

    impl std::fmt::Display for Wrapper {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "cannot write x: {}", self.0)
        }
    }

    impl std::error::Error for Wrapper {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn a_full_disk_is_found_below_wrappers() {
        let full = || std::io::Error::from_raw_os_error(28);
        let other = ErrorClass::Target;
        assert_eq!(
            ErrorClass::of_write_error(&full(), other),
            ErrorClass::NoSpace
        );
        let wrapped = std::io::Error::other(Wrapper(full()));
        assert_eq!(
            ErrorClass::of_write_error(&wrapped, other),
            ErrorClass::NoSpace
        );
        let twice = std::io::Error::other(Wrapper(wrapped));
        assert_eq!(
            ErrorClass::of_write_error(&twice, other),
            ErrorClass::NoSpace
        );
        let eio = std::io::Error::other(Wrapper(std::io::Error::from_raw_os_error(5)));
        assert_eq!(ErrorClass::of_write_error(&eio, other), other);
        assert_eq!(
            ErrorClass::of_write_error(&std::io::Error::other("x"), other),
            other
        );
    }
}
