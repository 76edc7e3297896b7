//! One disk image (file, block device, pipe) into a fixed index.

use anyhow::Result;
use stowage_format::fixed_index::DEFAULT_CHUNK_SIZE;
use stowage_format::FixedIndex;
use stowage_types::{ArchiveName, BackupTime, ErrorClass};

use super::summary::ArchiveSummary;
use super::Ctx;
use crate::exit::fail;
use crate::source::Source;

pub(super) fn backup(
    ctx: &Ctx<'_>,
    name: &ArchiveName,
    mut src: Source,
) -> Result<(FixedIndex, ArchiveSummary)> {
    let image = ctx.run_pipeline(
        name.user_name(),
        src.size,
        &mut *src.reader,
        &src.name,
        DEFAULT_CHUNK_SIZE as usize,
    )?;
    if image.size == 0 {
        return Err(fail(
            ErrorClass::Source,
            format!("source {} is empty; nothing to back up", src.name),
        ));
    }
    let index = FixedIndex {
        uuid: *uuid::Uuid::new_v4().as_bytes(),
        ctime: BackupTime::now().epoch(),
        size: image.size,
        chunk_size: image.chunk_size,
        digests: image.digests,
    };
    let summary = ArchiveSummary::new(name.user_name(), &src.name, &image.stats);
    Ok((index, summary))
}
