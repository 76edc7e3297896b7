//! Layer 1: cutting data into chunks. Pure functions over byte slices.

mod fixed;
mod zero;

pub use fixed::FixedChunker;
pub use zero::is_zero;
