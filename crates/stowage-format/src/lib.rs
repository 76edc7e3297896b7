//! Layer 1: the on-disk formats of a PBS-compatible datastore, encoded and decoded over bytes.
//!
//! Nothing here opens a file or starts a thread. Decoders check every length and offset of their
//! input and return an error, never panic: the bytes may come from a damaged disk or a hostile peer.

pub mod blob;
pub mod catalog;
pub mod dynamic_index;
pub mod fixed_index;
pub mod manifest;
pub mod pattern;
mod sha256_pair;

pub use blob::{BlobDecoder, BlobEncoder, BlobError, BlobKind};
pub use catalog::{CatalogEntry, CatalogEntryKind, CatalogError, CatalogReader, CatalogWriter};
pub use dynamic_index::DynamicIndex;
pub use fixed_index::FixedIndex;
pub use manifest::{CryptMode, FileEntry, Manifest, ManifestError};
pub use pattern::{MatchType, Pattern, PatternError, PatternList};
pub use sha256_pair::sha256_pair;

use stowage_types::Digest;

/// SHA-256 of a byte slice, as a [`Digest`].
pub fn sha256(data: &[u8]) -> Digest {
    use sha2::Digest as _;
    Digest(sha2::Sha256::digest(data).into())
}

/// BLAKE3 of a byte slice: not a chunk's name (that is its SHA-256), only a fast way for a client
/// to recognise data it has seen before (see `stowage_core::FastHashes`).
pub fn blake3(data: &[u8]) -> [u8; 32] {
    *::blake3::hash(data).as_bytes()
}

/// SHA-256 of `len` zero bytes, hashed from a small buffer (no `len`-byte allocation).
pub fn sha256_of_zeros(len: usize) -> Digest {
    use sha2::Digest as _;
    let block = [0u8; 64 * 1024];
    let mut hasher = sha2::Sha256::new();
    let mut left = len;
    while left > 0 {
        let n = left.min(block.len());
        hasher.update(&block[..n]);
        left -= n;
    }
    Digest(hasher.finalize().into())
}

/// Errors of the index decoders.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IndexError {
    #[error("index is too short ({len} bytes, a header alone is 4096)")]
    TooShort { len: usize },
    #[error("bad magic: not a {expected} index")]
    BadMagic { expected: &'static str },
    #[error("invalid chunk size {0} in the index header")]
    ChunkSize(u64),
    #[error(
        "index body is {actual} bytes, expected {expected} for the size in its header (truncated?)"
    )]
    BodyLength { expected: u64, actual: u64 },
    #[error("index body is {0} bytes, not a whole number of 40-byte entries (truncated?)")]
    Ragged(u64),
    #[error("index entry {entry}: end offset {end} does not grow past the previous one")]
    NotIncreasing { entry: usize, end: u64 },
    #[error(
        "index entry {entry}: a chunk of {len} bytes, larger than any chunker makes \
         ({MAX_DYNAMIC_CHUNK} bytes at most)"
    )]
    ChunkTooLarge { entry: usize, len: u64 },
    #[error("an index needs at least one chunk")]
    Empty,
}

/// The largest chunk of a dynamic index: 4 × the largest average chunk size (4 MiB) PBS's and
/// stowage's content-defined chunkers accept. A longer one can only come from a damaged or
/// hostile index, and would have a reader allocate for it.
pub const MAX_DYNAMIC_CHUNK: u64 = 16 << 20;

/// Index headers share this 4096-byte prefix layout: magic, uuid, ctime, checksum.
pub(crate) const INDEX_HEADER_SIZE: usize = 4096;

pub(crate) fn read_u64(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    if let Some(src) = bytes.get(at..at + 8) {
        b.copy_from_slice(src);
    }
    u64::from_le_bytes(b)
}
