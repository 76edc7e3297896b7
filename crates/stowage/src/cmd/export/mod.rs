//! `stowage export SNAPSHOT ARCHIVE OUT`: a snapshot's archive as a standard compressed file.

use std::io::Write;
use std::sync::Arc;

use anyhow::{Context, Result};
use stowage_core::session::SnapshotReader;
use stowage_core::{restore_image, ChunkSource, RestoreCounters};
use stowage_format::blob::{decode_blob, MAX_BLOB_SIZE};
use stowage_types::{ArchiveKind, ArchiveName};

mod frames;
mod tree;

use crate::archive_out::{resolve_format, write_archive, Job};
use crate::cli::{ExportArgs, GlobalOpts};
use crate::repo;
use crate::target::WriteTarget;
use stowage_export::compress::Format;

/// Up to four of an archive's `count` chunks, spread over it and decoded: what the space check
/// compresses to estimate the output size.
fn chunk_samples(
    chunks: &dyn ChunkSource,
    count: usize,
    digest_at: impl Fn(usize) -> stowage_types::Digest,
) -> Vec<Vec<u8>> {
    let picks: Vec<usize> = if count <= 4 {
        (0..count).collect()
    } else {
        (0..4).map(|i| i * (count - 1) / 3).collect()
    };
    picks
        .into_iter()
        .filter_map(|i| {
            let mut raw = Vec::new();
            chunks.read_chunk(&digest_at(i), &mut raw).ok()?;
            decode_blob(&raw, MAX_BLOB_SIZE).ok()
        })
        .collect()
}

pub fn run(g: &GlobalOpts, args: ExportArgs) -> Result<i32> {
    let archive = ArchiveName::parse(&args.archive)?;
    let store = repo::open(g)?;
    let reader = repo::open_snapshot(&store, &args.snapshot)?;
    let snapshot = reader.snapshot().clone();
    let ns = store.namespace();
    let source = if ns.is_root() {
        format!("{snapshot} {archive}")
    } else {
        format!("[{ns}]:{snapshot} {archive}")
    };
    let threads = g.worker_threads();
    match archive.kind() {
        ArchiveKind::Image => {
            let index = reader.fixed_index(&archive)?;
            let format = resolve_format(&args.output, &args.out)?;
            let level = args.output.level.unwrap_or(format.default_level());
            // zstd: a frame per chunk, verified and compressed by the same worker (at level 1
            // the stored frames themselves), instead of a separate compressor behind a restore.
            let frames = format == Format::Zstd;
            let progress = Arc::new(std::sync::atomic::AtomicU64::new(0));
            let job = Job {
                source,
                content: "image",
                size: Some(index.size),
                precompressed: frames,
                progress: frames.then(|| progress.clone()),
            };
            write_archive(
                g,
                &args.output,
                &args.out,
                job,
                || chunk_samples(reader.chunks(), index.digests.len(), |i| index.digests[i]),
                |out: &mut dyn Write| {
                    if frames {
                        frames::zstd_frames(
                            reader.chunks(),
                            &index,
                            level,
                            threads,
                            &progress,
                            out,
                        )
                        .with_context(|| format!("export of {snapshot} {archive} failed"))?;
                        return Ok(0);
                    }
                    let counters = Arc::new(RestoreCounters::default());
                    restore_image(
                        &index,
                        reader.chunks(),
                        &mut WriteTarget { out },
                        &args.out,
                        threads,
                        (threads * 4).max(8),
                        &counters,
                    )
                    .with_context(|| format!("export of {snapshot} {archive} failed"))?;
                    Ok(0)
                },
            )
        }
        ArchiveKind::Blob => {
            let data = reader.blob(&archive)?;
            let job = Job {
                source,
                content: "file",
                size: Some(data.len() as u64),
                precompressed: false,
                progress: None,
            };
            write_archive(
                g,
                &args.output,
                &args.out,
                job,
                || vec![data.clone()],
                |out: &mut dyn Write| {
                    out.write_all(&data)?;
                    Ok(0)
                },
            )
        }
        ArchiveKind::Pxar => tree::export_tree(g, &args, &reader, &archive, source),
    }
}
