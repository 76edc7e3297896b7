//! Layer 1: cutting data into chunks. Pure functions over byte slices.
//!
//! Images are cut at fixed 4 MiB offsets by the sources themselves (each read asks for one
//! chunk); file-tree archives and catalogs are cut by the content-defined [`Buzhash`] chunker.

mod buzhash;
mod zero;

pub use buzhash::{Buzhash, CATALOG_AVG, DEFAULT_AVG};
pub use zero::is_zero;
