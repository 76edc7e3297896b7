//! Layer 1: cutting data into chunks. Pure functions over byte slices.
//!
//! Images are cut at fixed 4 MiB offsets by the sources themselves (each read asks for one
//! chunk); this crate holds zero detection and, with file-tree archives, the content-defined
//! chunker.

mod zero;

pub use zero::is_zero;
