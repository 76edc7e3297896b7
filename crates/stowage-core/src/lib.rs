//! Layer 3: the backup and restore pipelines, generic over small traits.
//!
//! The pipelines run on OS threads joined by bounded channels, so memory stays flat whatever the
//! size of the data and the slowest stage sets the pace. A local datastore and (later) a remote
//! session are just different implementations of [`ChunkSink`] and [`ChunkSource`], and of the
//! [`session`] seams that mirror PBS's backup and reader protocols.

mod backup;
mod cdc;
mod chunk;
mod codec;
mod error;
mod fast_hash;
mod layout;
mod payload;
mod pipe;
mod random;
mod restore;
pub mod session;
mod stream;
#[cfg(test)]
mod testutil;
mod traits;

#[cfg(test)]
pub(crate) use backup::{backup_image, backup_image_with, ImageBackup};
pub use backup::{
    backup_to_index, BackupCounters, BackupSession, ImageBackupStats, ImageSource, IndexedStream,
    Next, StreamSource,
};
pub use cdc::CdcSource;
pub use chunk::{zero_digest, ChunkCheckError};
pub use codec::{verify_chunk, ChunkCodec, ChunkDecoder, ChunkEncoder, PlainCodec, PLAIN};
pub use error::{PipelineError, StoreError};
pub use fast_hash::{Blake3, FastHashes};
pub use layout::ChunkLayout;
pub use payload::{payload_pipe, PayloadSource, PayloadWriter};
pub use pipe::{is_closed, pipe, PipeReader, PipeWriter};
pub use random::{chunk_feed, ChunkFeed, FeedTarget, RandomReader};
pub use restore::{
    for_each_chunk, restore_image, ChunkFault, RestoreCounters, RestoreStats, VerifiedReader,
};
pub use stream::{read_stream, with_stream};
pub use traits::{ChunkSink, ChunkSource, ImageTarget, PositionalWrite};

/// Threads to use when the user did not say: every core.
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

#[cfg(test)]
mod memory_conformance {
    use crate::session::{MemoryRepository, Repository};

    fn run(repo: &MemoryRepository, check: fn(&dyn Repository)) {
        check(repo)
    }

    crate::conformance_tests!(MemoryRepository::new, run);
}
