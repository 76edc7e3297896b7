//! One disk image (file, block device, pipe) into a fixed index.

use std::sync::Arc;

use anyhow::Result;
use stowage_core::BackupCounters;
use stowage_format::fixed_index::DEFAULT_CHUNK_SIZE;
use stowage_format::FixedIndex;
use stowage_types::{ArchiveName, BackupTime, ErrorClass};

use super::summary::ArchiveSummary;
use super::Ctx;
use crate::exit::fail;
use crate::fast_hash_cache::Pairs;
use crate::source::Source;

/// The index, the summary, and the (SHA-256, BLAKE3) pairs of its data chunks for the next
/// backup's fast hashes.
pub(super) fn backup(
    ctx: &Ctx<'_>,
    name: &ArchiveName,
    src: Source,
) -> Result<(FixedIndex, ArchiveSummary, Pairs)> {
    let counters = Arc::new(BackupCounters::default());
    let reporter = ctx.report(name.user_name(), src.size, &[&counters]);
    let image = ctx.run_pipeline(
        name.user_name(),
        src.reader,
        &src.name,
        DEFAULT_CHUNK_SIZE as usize,
        Some(ctx.fast),
        &counters,
    )?;
    reporter.finish();
    if image.size == 0 {
        return Err(fail(
            ErrorClass::Source,
            format!("source {} is empty; nothing to back up", src.name),
        ));
    }
    let mut pairs: Pairs = image
        .digests
        .iter()
        .zip(&image.blake3)
        .filter_map(|(d, b)| b.map(|b| (*d, b)))
        .collect();
    pairs.sort_unstable();
    pairs.dedup();
    let index = FixedIndex {
        uuid: *uuid::Uuid::new_v4().as_bytes(),
        ctime: BackupTime::now().epoch(),
        size: image.size,
        chunk_size: image.chunk_size,
        digests: image.digests,
    };
    let summary = ArchiveSummary::new(name.user_name(), &src.name, &image.stats);
    Ok((index, summary, pairs))
}
