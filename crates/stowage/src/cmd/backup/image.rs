//! One disk image (file, block device, pipe) into a fixed index.

use std::sync::Arc;

use anyhow::Result;
use stowage_core::session::IndexKind;
use stowage_core::BackupCounters;
use stowage_format::fixed_index::DEFAULT_CHUNK_SIZE;
use stowage_types::{ArchiveName, ErrorClass};

use super::summary::ArchiveSummary;
use super::Ctx;
use crate::exit::fail;
use crate::fast_hash_cache::Pairs;
use crate::source::Source;

/// The summary, and the (SHA-256, BLAKE3) pairs of its data chunks for the next backup's fast
/// hashes. The index grows with what is read (a file may change size while it is read; a pipe
/// has none).
pub(super) fn backup(
    ctx: &Ctx<'_>,
    name: &ArchiveName,
    src: Source,
) -> Result<(ArchiveSummary, Pairs)> {
    let counters = Arc::new(BackupCounters::default());
    let reporter = ctx.report(name.user_name(), src.size, &[&counters]);
    let kind = IndexKind::Fixed {
        size: None,
        chunk_size: DEFAULT_CHUNK_SIZE,
    };
    let (writer, image) = ctx.run_pipeline(
        name.user_name(),
        src.reader,
        &src.name,
        name,
        (kind, 0),
        Some(ctx.fast),
        &counters,
    )?;
    reporter.finish();
    if image.stats.size == 0 {
        return Err(fail(
            ErrorClass::Source,
            format!("source {} is empty; nothing to back up", src.name),
        ));
    }
    Ctx::close(writer, &image)?;
    let mut pairs: Pairs = image.fast_pairs;
    pairs.sort_unstable();
    pairs.dedup();
    let summary = ArchiveSummary::new(name.user_name(), &src.name, &image.stats);
    Ok((summary, pairs))
}
