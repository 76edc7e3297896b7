//! File catalog (`catalog.pcat1`, stored chunked as `catalog.pcat1.didx`): the directory tree of
//! a snapshot's pxar archives, for listing and searching without reading the archives (spec 7.7).
//!
//! Layout: the 8-byte [`MAGIC`], then one table per directory, written when the directory ends
//! (children before parents), the root table last, and the root table's start offset as u64 LE.
//! A table is `varint(L)` and `L` bytes: `varint(count)` and the entries. An entry is a type byte,
//! `varint(name length)`, the name, then for `d` the distance back from this table's start to
//! the child's table start, for `f` the size (varint) and mtime (signed varint, seconds); the
//! other kinds carry nothing. The root table holds one `d` entry per archive
//! (`root.pxar.didx`). Offsets are from the start of the catalog, magic included.
//!
//! [`CatalogWriter`] streams a catalog out as the archives are walked; [`CatalogReader`] lists,
//! looks up, walks and searches one held in memory.

mod reader;
mod writer;

pub mod glob;
pub mod varint;

pub use glob::Glob;
pub use reader::{CatalogReader, Find, Walk};
pub use varint::VarintError;
pub use writer::CatalogWriter;

use stowage_types::ErrorClass;

/// SHA-256("Proxmox Backup Catalog file v1.0")[..8]
pub const MAGIC: [u8; 8] = [145, 253, 96, 249, 196, 103, 88, 213];

/// Longest entry name PBS reads back (its reader refuses 4096 bytes or more).
pub const MAX_NAME_LEN: usize = 4095;

/// The largest catalog stowage reads (it is read into memory whole): 1 GiB, some 40 million
/// entries. An index declaring more is refused before anything is fetched.
pub const MAX_CATALOG_SIZE: u64 = 1 << 30;

/// What an entry is, with the data the catalog keeps for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogEntryKind {
    /// A directory (or, in the root table, an archive); `table` is where its table starts.
    Directory {
        table: u64,
    },
    /// A regular file: size in bytes, modification time in seconds since the epoch.
    File {
        size: u64,
        mtime: i64,
    },
    Symlink,
    Hardlink,
    BlockDevice,
    CharDevice,
    Fifo,
    Socket,
}

impl CatalogEntryKind {
    /// The entry's type byte: `d f l h b c p s`.
    pub fn type_byte(&self) -> u8 {
        match self {
            CatalogEntryKind::Directory { .. } => b'd',
            CatalogEntryKind::File { .. } => b'f',
            CatalogEntryKind::Symlink => b'l',
            CatalogEntryKind::Hardlink => b'h',
            CatalogEntryKind::BlockDevice => b'b',
            CatalogEntryKind::CharDevice => b'c',
            CatalogEntryKind::Fifo => b'p',
            CatalogEntryKind::Socket => b's',
        }
    }
}

/// One entry of a directory table; the name borrows from the catalog's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogEntry<'a> {
    /// The name within its directory (bytes, not necessarily UTF-8; never contains `/` when
    /// written by [`CatalogWriter`]).
    pub name: &'a [u8],
    pub kind: CatalogEntryKind,
}

impl CatalogEntry<'_> {
    /// The directory's table offset, if this is a directory.
    pub fn table(&self) -> Option<u64> {
        match self.kind {
            CatalogEntryKind::Directory { table } => Some(table),
            _ => None,
        }
    }
}

/// Errors of the catalog writer and reader. Offsets are from the start of the catalog.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("writing the catalog failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("invalid catalog entry name {name:?}: {reason}")]
    BadName { name: String, reason: &'static str },
    #[error("catalog entry {name:?} is outside any archive (the root table holds archives only)")]
    OutsideArchive { name: String },
    #[error("catalog end_directory without an open directory")]
    NoOpenDirectory,
    #[error("catalog finished with {depth} directories still open")]
    Unfinished { depth: usize },
    #[error("invalid pattern {pattern:?}: {reason}")]
    BadPattern {
        pattern: String,
        reason: &'static str,
    },
    #[error("catalog is too short ({len} bytes; magic and root offset alone are 16)")]
    TooShort { len: usize },
    #[error("bad magic: not a catalog")]
    BadMagic,
    #[error("catalog table offset {offset} lies outside the tables (8..{end})")]
    TableOffset { offset: u64, end: u64 },
    #[error(
        "catalog table at offset {offset}: length {len} is zero or exceeds the {room} bytes left"
    )]
    TableLength { offset: u64, len: u64, room: u64 },
    #[error("catalog: bad varint at offset {offset}: {source}")]
    Varint { offset: u64, source: VarintError },
    #[error("catalog table at offset {table} ends inside the entry at offset {offset}")]
    Truncated { table: u64, offset: u64 },
    #[error("catalog entry at offset {offset}: unknown type byte 0x{byte:02x}")]
    EntryType { offset: u64, byte: u8 },
    #[error("catalog entry at offset {offset}: name of {len} bytes (at most 4095)")]
    NameLength { offset: u64, len: u64 },
    #[error(
        "catalog directory entry at offset {offset}: distance {delta} from its table at {parent} \
         does not point back to a table after the magic"
    )]
    ChildOffset {
        offset: u64,
        delta: u64,
        parent: u64,
    },
    #[error(
        "catalog table at offset {table} has bytes after its last entry, from offset {offset}"
    )]
    TrailingBytes { table: u64, offset: u64 },
    #[error(
        "catalog directory table at offset {offset} overlaps another table or lies outside its \
         parent's (at {parent}): corrupt or cyclic catalog"
    )]
    Nesting { offset: u64, parent: u64 },
}

impl From<crate::pattern::PatternError> for CatalogError {
    fn from(e: crate::pattern::PatternError) -> Self {
        CatalogError::BadPattern {
            pattern: e.pattern,
            reason: e.reason,
        }
    }
}

impl CatalogError {
    pub fn class(&self) -> ErrorClass {
        match self {
            CatalogError::Io(e) => ErrorClass::of_write_error(e, ErrorClass::IndexWrite),
            CatalogError::BadName { .. } | CatalogError::BadPattern { .. } => ErrorClass::Usage,
            CatalogError::OutsideArchive { .. }
            | CatalogError::NoOpenDirectory
            | CatalogError::Unfinished { .. } => ErrorClass::Internal,
            _ => ErrorClass::Verification,
        }
    }
}

/// A name for an error message.
fn lossy(name: &[u8]) -> String {
    String::from_utf8_lossy(name).into_owned()
}

#[cfg(test)]
mod tests;
