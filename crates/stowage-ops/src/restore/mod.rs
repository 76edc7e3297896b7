//! Restores: an image into an [`ImageTarget`], a file-tree archive into a directory.

mod includes;
mod tree;

pub use includes::{trim_slashes, Includes};
pub use tree::{copy_payload, restore_tree, TreeRestore, TreeTarget};

use stowage_core::session::SnapshotReader;
use stowage_core::{ImageTarget, RestoreCounters, RestoreStats};
use stowage_format::{DynamicIndex, FixedIndex};
use stowage_types::ArchiveName;

use crate::OpsError;

/// The indexes of a file-tree archive: its archive stream and, when it is stored split
/// (`root.pxar` as `root.mpxar` + `root.ppxar`), its payload stream.
pub struct TreeIndexes {
    pub archive: DynamicIndex,
    pub payload: Option<DynamicIndex>,
}

impl TreeIndexes {
    /// Bytes of both streams.
    pub fn size(&self) -> u64 {
        self.archive.size() + self.payload.as_ref().map_or(0, |p| p.size())
    }
}

/// The indexes of the file-tree archive `archive` (`root.pxar`, stored whole or split).
pub fn tree_indexes(
    reader: &dyn SnapshotReader,
    archive: &ArchiveName,
) -> Result<TreeIndexes, OpsError> {
    let manifest = reader.manifest();
    if manifest.file(&archive.stored_name()).is_none() && archive.user_name().ends_with(".pxar") {
        let stem = archive.user_name().trim_end_matches(".pxar");
        let meta = ArchiveName::parse(&format!("{stem}.mpxar"))?;
        let payload = ArchiveName::parse(&format!("{stem}.ppxar"))?;
        if manifest.file(&meta.stored_name()).is_some() {
            return Ok(TreeIndexes {
                archive: reader.dynamic_index(&meta)?,
                payload: Some(reader.dynamic_index(&payload)?),
            });
        }
    }
    Ok(TreeIndexes {
        archive: reader.dynamic_index(archive)?,
        payload: None,
    })
}

/// An image archive of a snapshot, ready to be restored.
pub struct ImageRestore<'r> {
    reader: &'r dyn SnapshotReader,
    index: FixedIndex,
}

impl<'r> ImageRestore<'r> {
    pub fn open(reader: &'r dyn SnapshotReader, archive: &ArchiveName) -> Result<Self, OpsError> {
        Ok(ImageRestore {
            reader,
            index: reader.fixed_index(archive)?,
        })
    }

    /// The image's size in bytes.
    pub fn size(&self) -> u64 {
        self.index.size
    }

    /// Fetches, decodes and verifies the chunks on `threads` workers (`window` of them in
    /// flight) and writes them in order into `target` (`target_name` for messages).
    pub fn run(
        &self,
        target: &mut dyn ImageTarget,
        target_name: &str,
        threads: usize,
        window: usize,
        counters: &RestoreCounters,
    ) -> Result<RestoreStats, OpsError> {
        Ok(stowage_core::restore_image(
            &self.index,
            self.reader.chunks(),
            target,
            target_name,
            threads,
            window,
            counters,
        )?)
    }
}
