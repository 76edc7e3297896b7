//! Layer 4: standard archives that standard tools read: raw images and tar streams, compressed
//! on all cores (gzip the way pigz does it, zstd and xz multi-threaded, lz4 in parallel frames),
//! with a SHA-256 checksum file and a JSON manifest beside each.

pub mod compress;
mod error;
pub mod manifest;
pub mod output;
pub mod space;
pub mod tar;
pub mod verify;

pub use error::ExportError;
