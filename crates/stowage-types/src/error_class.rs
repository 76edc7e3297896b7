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
    pub fn of_write_error(err: &std::io::Error, otherwise: ErrorClass) -> ErrorClass {
        // ENOSPC = 28, EDQUOT = 122 on Linux.
        match err.raw_os_error() {
            Some(28) | Some(122) => ErrorClass::NoSpace,
            _ => otherwise,
        }
    }
}
