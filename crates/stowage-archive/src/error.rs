//! Errors of the pxar encoder and decoder.
//!
//! Policy: a decoder error always names the byte offset in the stream where the offending item
//! starts, so that a damaged archive can be inspected with a hex dump; an encoder error names the
//! entry it concerns. Every error maps to one [`ErrorClass`].

use stowage_types::ErrorClass;

use crate::format::NameError;
use crate::goodbye::GoodbyeError;

/// An error while decoding a pxar stream, at byte `offset` of that stream.
#[derive(Debug, thiserror::Error)]
#[error("pxar archive, byte {offset}: {kind}")]
pub struct DecodeError {
    /// Stream offset of the item (or byte) where the problem was found.
    pub offset: u64,
    /// What is wrong.
    pub kind: DecodeErrorKind,
}

impl DecodeError {
    pub(crate) fn new(offset: u64, kind: DecodeErrorKind) -> Self {
        DecodeError { offset, kind }
    }

    /// The class of this error: damaged or hostile input is a verification failure.
    pub fn class(&self) -> ErrorClass {
        match &self.kind {
            DecodeErrorKind::Io(_) => ErrorClass::Internal,
            _ => ErrorClass::Verification,
        }
    }
}

/// What is wrong with a pxar stream.
#[derive(Debug, thiserror::Error)]
pub enum DecodeErrorKind {
    #[error("reading failed: {0}")]
    Io(#[source] std::io::Error),
    #[error("the archive ends early (truncated)")]
    Truncated,
    #[error("data follows the end of the archive")]
    TrailingData,
    #[error("item header of {item} has an invalid size {full_size}")]
    BadHeaderSize { item: &'static str, full_size: u64 },
    #[error("{item} content is {len} bytes, the limit is {max}")]
    TooLarge {
        item: &'static str,
        len: u64,
        max: u64,
    },
    #[error("{item} content is {len} bytes, expected {expected}")]
    WrongSize {
        item: &'static str,
        len: u64,
        expected: u64,
    },
    #[error("unexpected {found} item here, expected {expected}")]
    Unexpected {
        found: &'static str,
        expected: &'static str,
    },
    #[error("unknown item type {0:#018x}")]
    UnknownItem(u64),
    #[error("unsupported format version {0}")]
    BadVersion(u64),
    #[error("{0} content is not terminated by a NUL byte")]
    MissingNul(&'static str),
    #[error("invalid file name: {0}")]
    InvalidName(#[source] NameError),
    #[error("file names of a directory are not in strictly increasing byte order")]
    NameOrder,
    #[error("invalid extended attribute: {0}")]
    InvalidXattr(&'static str),
    #[error("invalid symlink target (empty or contains NUL)")]
    InvalidSymlink,
    #[error("invalid hardlink target path: {0}")]
    InvalidHardlinkPath(#[source] NameError),
    #[error("hardlink offset {0} does not point back into the archive")]
    HardlinkOffset(u64),
    #[error("timestamp nanoseconds {0} are not below 1e9")]
    BadTimestamp(u32),
    #[error("unknown file type in mode {0:#o}")]
    UnknownFileType(u64),
    #[error("the archive root is not a directory")]
    RootNotDirectory,
    #[error("payload reference offset {offset} (size {size}) cannot be in a payload stream")]
    PayloadRef { offset: u64, size: u64 },
    #[error(
        "payload reference offset {offset} (size {size}) overlaps the payload of an earlier file"
    )]
    PayloadOverlap { offset: u64, size: u64 },
    #[error("payload stream has no PAYLOAD header of size {size} here")]
    PayloadHeader { size: u64 },
    #[error("payload stream does not start with PAYLOAD_START_MARKER")]
    PayloadStartMarker,
    #[error("payload stream does not end with PAYLOAD_TAIL_MARKER")]
    PayloadTailMarker,
    #[error("goodbye table: {0}")]
    Goodbye(#[source] GoodbyeError),
    #[error("the payload of the current file was not read completely")]
    PayloadPending,
}

/// An error while encoding a pxar archive.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("writing the {stream} stream at byte {offset} failed: {source}")]
    Io {
        stream: &'static str,
        offset: u64,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid file name {name:?}: {reason}")]
    InvalidName { name: String, reason: NameError },
    #[error("file name {name:?} does not sort after the previous name {previous:?}")]
    NameOrder { name: String, previous: String },
    #[error("entry {name:?}: {what} needs a mode of that type, got {mode:#o}")]
    WrongType {
        name: String,
        what: &'static str,
        mode: u64,
    },
    #[error("the previous file got {written} of its {size} bytes")]
    IncompleteFile { written: u64, size: u64 },
    #[error("entry {name:?}: {what} is {len} bytes, the limit is {max}")]
    TooLarge {
        name: String,
        what: &'static str,
        len: u64,
        max: u64,
    },
    #[error("entry {name:?}: invalid extended attribute name {xattr:?}")]
    InvalidXattrName { name: String, xattr: String },
    #[error("entry {name:?}: mtime nanoseconds {nanos} are not below 1e9")]
    InvalidTimestamp { name: String, nanos: u32 },
    #[error("entry {name:?}: invalid symlink target (empty or contains NUL)")]
    InvalidSymlink { name: String },
    #[error("hardlink {name:?}: invalid target path {target:?}: {reason}")]
    InvalidHardlinkPath {
        name: String,
        target: String,
        reason: NameError,
    },
    #[error("hardlink {name:?}: target offset {target} is not before the link at {position}")]
    HardlinkOffset {
        name: String,
        target: u64,
        position: u64,
    },
    #[error("entry {name:?}: payload references need a split (v2) archive")]
    NotSplit { name: String },
    #[error(
        "entry {name:?}: payload offset {offset} (size {size}) is not inside a payload stream"
    )]
    PayloadOffset {
        name: String,
        offset: u64,
        size: u64,
    },
    #[error("finish_directory called with no open sub-directory")]
    NoOpenDirectory,
    #[error("finish called with {0} sub-directories still open")]
    UnfinishedDirectories(usize),
    #[error("the encoder failed earlier; the archive is incomplete")]
    Poisoned,
}

impl EncodeError {
    /// The class of this error: a failed write is an index-write failure (or a full disk);
    /// anything else is a caller bug.
    pub fn class(&self) -> ErrorClass {
        match self {
            EncodeError::Io { source, .. } => {
                ErrorClass::of_write_error(source, ErrorClass::IndexWrite)
            }
            _ => ErrorClass::Internal,
        }
    }
}

/// Shows a possibly non-UTF-8 name in an error message.
pub(crate) fn lossy(name: &[u8]) -> String {
    String::from_utf8_lossy(name).into_owned()
}
