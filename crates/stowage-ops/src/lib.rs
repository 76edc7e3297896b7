//! Layer 5: the operations a user runs (backup, restore, cat, catalog, export),
//! written against the session seams of `stowage_core::session`, so each works the same on a
//! local datastore, a remote server or a repository in memory. The binary keeps the
//! arguments, progress, output and exit codes.

pub mod backup;
pub mod cat;
pub mod catalog;
mod error;
pub mod export;
pub mod restore;

pub use error::{Context, OpsError};
