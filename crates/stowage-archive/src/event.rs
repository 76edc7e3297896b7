//! What a decoder yields: entries and directory ends, in archive order.

use crate::format::{LinkOffset, PayloadRef};
use crate::metadata::{Device, Metadata};

/// Something the decoder found, in archive order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// An entry (the root directory comes first, with an empty path).
    Entry(Box<Entry>),
    /// The end of a directory, after its goodbye table was verified.
    DirectoryEnd(DirectoryEnd),
}

/// An entry of the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path components relative to the root (empty for the root itself).
    pub path: Vec<Vec<u8>>,
    /// Offset of the entry's FILENAME header (`None` for the root); hardlinks refer to files
    /// by this offset.
    pub filename_offset: Option<LinkOffset>,
    /// Offset of the entry's ENTRY header (of the HARDLINK header for a hardlink).
    pub entry_offset: u64,
    /// Metadata (default for hardlinks, which carry none).
    pub metadata: Metadata,
    pub kind: EntryKind,
}

impl Entry {
    /// The entry's own name (`None` for the root).
    pub fn name(&self) -> Option<&[u8]> {
        self.path.last().map(|n| n.as_slice())
    }

    /// The path joined with `/` (empty for the root).
    pub fn path_bytes(&self) -> Vec<u8> {
        self.path.join(&b'/')
    }
}

/// What kind of entry, with its type-specific data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    Directory,
    /// A regular file of `size` bytes.
    File {
        size: u64,
        payload: Payload,
    },
    Symlink {
        target: Vec<u8>,
    },
    /// A block or character device (see the stat's file type).
    Device(Device),
    Fifo,
    Socket,
    /// A further name of an earlier file: its path relative to the root and the offset of
    /// its FILENAME header.
    Hardlink {
        target_path: Vec<u8>,
        target: LinkOffset,
    },
}

/// Where a file's contents are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload {
    /// In the archive right after the entry (v1): read them with [`Decoder::read_payload`](crate::Decoder::read_payload)
    /// before the next event, or they are skipped.
    Inline,
    /// In the payload stream of a split archive (v2).
    Ref(PayloadRef),
}

/// The end of a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryEnd {
    /// Path of the directory (empty for the root).
    pub path: Vec<Vec<u8>>,
    /// Offset of its GOODBYE header.
    pub goodbye_offset: u64,
    /// Number of children (= goodbye items, tail not counted).
    pub children: usize,
}
