//! Backups into a [`BackupTarget`]: images into fixed indexes, directory trees into pxar
//! archives (whole, or split with change detection) and the catalog, each stream chunked by
//! the pipeline and appended to its index writer as it goes.

mod reuse;
mod tree;

pub use reuse::{capture_record, now_secs, split_names, Previous, CAPTURE_RECORD};
pub use tree::{TreeMode, TreeOutcome, TreeSpec};

use stowage_chunker::{Buzhash, CATALOG_AVG};
use stowage_core::session::{BackupTarget, IndexKind, IndexWriter};
use stowage_core::{
    backup_to_index, BackupCounters, BackupSession, Blake3, CdcSource, FastHashes,
    ImageBackupStats, ImageSource, IndexedStream,
};
use stowage_format::fixed_index::DEFAULT_CHUNK_SIZE;
use stowage_format::CatalogWriter;
use stowage_types::{ArchiveName, Digest, ErrorClass};

use crate::catalog::CATALOG_NAME;
use crate::{Context, OpsError};

/// Receives a warning about an entry left out, or a shortcut not taken.
pub type Warn<'a> = dyn Fn(String) + Sync + 'a;

/// What every archive of one backup shares.
pub struct BackupRun<'a> {
    pub target: &'a dyn BackupTarget,
    pub session: &'a BackupSession,
    pub threads: usize,
    /// The previous backups' BLAKE3 pairs, for image archives.
    pub fast: &'a FastHashes,
}

/// What an image backup did, and the (SHA-256, BLAKE3) pairs of its data chunks (sorted,
/// without repeats) for the next backup's fast hashes.
pub struct ImageOutcome {
    pub stats: ImageBackupStats,
    pub fast_pairs: Vec<(Digest, Blake3)>,
}

impl<'a> BackupRun<'a> {
    /// Runs the chunk pipeline over one source into a new index `name`, counting into
    /// `counters`. The source is taken by value and dropped as soon as the pipeline ends: a
    /// producer on another thread that feeds it through a pipe then sees the pipe closed instead
    /// of waiting forever on a full one. Close the returned writer with [`BackupRun::close`].
    pub(crate) fn stream<S: ImageSource>(
        &self,
        mut source: S,
        source_name: &str,
        name: &ArchiveName,
        (kind, max_chunk): (IndexKind, usize),
        fast: Option<&FastHashes>,
        counters: &BackupCounters,
    ) -> Result<(Box<dyn IndexWriter + 'a>, IndexedStream), OpsError> {
        let writer = self.target.create_index(name, kind)?;
        let result = backup_to_index(
            &mut source,
            source_name,
            &*writer,
            kind,
            max_chunk,
            self.session,
            self.threads,
            counters,
            fast,
        );
        drop(source);
        let out = result.context(|| format!("backup of {} failed", name.user_name()))?;
        Ok((writer, out))
    }

    /// Closes an index the pipeline filled.
    pub(crate) fn close(
        writer: Box<dyn IndexWriter + '_>,
        out: &IndexedStream,
    ) -> Result<(), OpsError> {
        let name = writer.name().clone();
        writer
            .close(out.close)
            .context(|| format!("cannot close the index of {name}"))
    }

    /// One disk image (a file, a block device, a pipe: `source_name` for messages) into the
    /// fixed index `name`. The index grows with what is read (a file may change size while it
    /// is read; a pipe has none). An empty source is refused.
    pub fn image(
        &self,
        name: &ArchiveName,
        source: Box<dyn ImageSource>,
        source_name: &str,
        counters: &BackupCounters,
    ) -> Result<ImageOutcome, OpsError> {
        let kind = IndexKind::Fixed {
            size: None,
            chunk_size: DEFAULT_CHUNK_SIZE,
        };
        let fast = Some(self.fast);
        let (writer, out) = self.stream(source, source_name, name, (kind, 0), fast, counters)?;
        if out.stats.size == 0 {
            return Err(OpsError::failed(
                ErrorClass::Source,
                format!("source {source_name} is empty; nothing to back up"),
            ));
        }
        Self::close(writer, &out)?;
        let mut fast_pairs = out.fast_pairs;
        fast_pairs.sort_unstable();
        fast_pairs.dedup();
        Ok(ImageOutcome {
            stats: out.stats,
            fast_pairs,
        })
    }

    /// Chunks and stores the catalog of every tree of the backup.
    pub fn catalog(&self, catalog: CatalogWriter<Vec<u8>>) -> Result<(), OpsError> {
        let bytes = catalog.finish()?;
        let chunker = Buzhash::new(CATALOG_AVG).expect("valid average");
        let max = chunker.max_size();
        let source = CdcSource::new(&bytes[..], chunker);
        let counters = BackupCounters::default();
        let name = ArchiveName::parse(CATALOG_NAME)?;
        let kind = (IndexKind::Dynamic, max);
        let (writer, out) = self.stream(source, "catalog", &name, kind, None, &counters)?;
        Self::close(writer, &out)
    }
}
