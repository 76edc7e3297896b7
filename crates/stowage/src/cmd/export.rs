//! `stowage export SNAPSHOT ARCHIVE OUT`: a snapshot's archive as a standard compressed file.

use std::io::Write;
use std::sync::Arc;

use anyhow::{Context, Result};
use stowage_core::session::SnapshotReader;
use stowage_core::RestoreCounters;
use stowage_export::compress::Format;
use stowage_ops::export::{chunk_samples, image_to_writer, tree_to_tar, zstd_frames};
use stowage_ops::restore::tree_indexes;
use stowage_types::{ArchiveKind, ArchiveName};

use crate::archive_out::{resolve_format, write_archive, Job};
use crate::cli::{ExportArgs, GlobalOpts};
use crate::repo;

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
                        zstd_frames(reader.chunks(), &index, level, threads, &progress, out)
                            .with_context(|| format!("export of {snapshot} {archive} failed"))?;
                        return Ok(0);
                    }
                    let counters = Arc::new(RestoreCounters::default());
                    image_to_writer(&reader, &index, out, &args.out, threads, &counters)
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
        ArchiveKind::Pxar => export_tree(g, &args, &reader, &archive, source),
    }
}

fn export_tree(
    g: &GlobalOpts,
    args: &ExportArgs,
    reader: &dyn SnapshotReader,
    archive: &ArchiveName,
    source: String,
) -> Result<i32> {
    let indexes = tree_indexes(reader, archive)?;
    let threads = g.worker_threads();
    // The tar is about as big as the archive's data; the exact size is unknown in advance.
    let job = Job {
        source,
        content: "tar",
        size: Some(indexes.size()),
        precompressed: false,
        progress: None,
    };
    let name = archive.to_string();
    write_archive(
        g,
        &args.output,
        &args.out,
        job,
        || {
            // The file contents: the payload stream of a split archive, else the archive itself.
            let data = indexes.payload.as_ref().unwrap_or(&indexes.archive);
            chunk_samples(reader.chunks(), data.entries.len(), |i| data.entries[i].1)
        },
        |out: &mut dyn Write| {
            let stats = tree_to_tar(reader, &indexes, &name, out, threads)?;
            if stats.skipped_sockets > 0 && !g.quiet {
                eprintln!(
                    "note: {} socket(s) left out: a tar cannot hold sockets",
                    stats.skipped_sockets
                );
            }
            Ok(stats.entries)
        },
    )
}
