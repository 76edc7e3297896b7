//! `stowage restore`: an image to a file, block device or stdout; a blob to a file or stdout;
//! a file-tree archive into a directory.

mod tree;

pub use tree::{copy_payload, trim_slashes};

use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::{Context, Result};
use serde_json::json;
use stowage_core::{restore_image, RestoreCounters};
use stowage_types::{ArchiveKind, ArchiveName, ErrorClass};

use crate::cli::{GlobalOpts, OutputFormat, RestoreArgs};
use crate::exit::{fail, OK};
use crate::output::{bytes, percent, rate};
use crate::progress::{Reporter, Sample};
use crate::{repo, target};

/// The index of a file-tree archive, and of its payload stream when it is stored split
/// (`root.pxar` is then `root.mpxar` + `root.ppxar`).
pub fn tree_indexes(
    store: &stowage_datastore::Datastore,
    snapshot: &stowage_types::SnapshotRef,
    manifest: &stowage_format::Manifest,
    archive: &ArchiveName,
) -> Result<(
    stowage_format::DynamicIndex,
    Option<stowage_format::DynamicIndex>,
)> {
    if manifest.file(&archive.stored_name()).is_none() && archive.user_name().ends_with(".pxar") {
        let stem = archive.user_name().trim_end_matches(".pxar");
        let meta = ArchiveName::parse(&format!("{stem}.mpxar"))?;
        let payload = ArchiveName::parse(&format!("{stem}.ppxar"))?;
        if manifest.file(&meta.stored_name()).is_some() {
            let meta_index = store.read_dynamic_index(snapshot, manifest, &meta)?;
            let payload_index = store.read_dynamic_index(snapshot, manifest, &payload)?;
            return Ok((meta_index, Some(payload_index)));
        }
    }
    Ok((store.read_dynamic_index(snapshot, manifest, archive)?, None))
}

pub fn run(g: &GlobalOpts, args: RestoreArgs) -> Result<i32> {
    let archive = ArchiveName::parse(&args.archive)?;
    let store = repo::open(g)?;
    let snapshot = store.resolve_snapshot(&args.snapshot)?;
    let manifest = store.load_manifest(&snapshot)?;
    match archive.kind() {
        ArchiveKind::Blob => {
            let data = store.read_blob_file(&snapshot, &manifest, &archive)?;
            let mut t = target::open(&args.target, data.len() as u64, args.overwrite)?;
            let write_err = |e| {
                fail(
                    ErrorClass::Target,
                    format!("cannot write restore target {}: {e}", args.target),
                )
            };
            t.as_image_target().write_at(0, &data).map_err(write_err)?;
            t.as_image_target()
                .finish(data.len() as u64)
                .map_err(write_err)?;
            t.commit().map_err(write_err)?;
            Ok(OK)
        }
        ArchiveKind::Pxar => {
            let (index, payload) = tree_indexes(&store, &snapshot, &manifest, &archive)?;
            // The archive stream and, for a split archive, the payload stream.
            let counters = Arc::new([RestoreCounters::default(), RestoreCounters::default()]);
            let total = index.size() + payload.as_ref().map_or(0, |p| p.size());
            let probe = counters.clone();
            let reporter = Reporter::start(
                format!("restore {archive}"),
                Box::new(move || {
                    let done = probe.iter().map(|c| c.done.load(Ordering::Relaxed)).sum();
                    Sample::bytes(done, Some(total))
                }),
                !g.quiet,
            );
            let started = std::time::Instant::now();
            let to = tree::TreeTarget {
                target: &args.target,
                overwrite: args.overwrite,
                includes: &args.include,
            };
            let result = tree::restore(
                &store,
                &index,
                payload.as_ref(),
                archive.user_name(),
                to,
                super::threads(g),
                &counters,
            );
            reporter.finish();
            let entries = result.with_context(|| {
                format!(
                    "restore of {snapshot} {archive} into {} failed",
                    args.target
                )
            })?;
            let secs = started.elapsed().as_secs_f64();
            let report = json!({
                "snapshot": snapshot.to_string(),
                "archive": archive.to_string(),
                "target": args.target,
                "entries": entries,
                "size": index.size(),
                "duration_s": secs,
            });
            if !crate::output::print_json(g.output_format, &report)? {
                println!(
                    "restored {snapshot} {archive} to {}: {entries} entries, {} of archive in {secs:.2} s ({})",
                    args.target,
                    bytes(index.size()),
                    rate(index.size(), secs)
                );
            }
            Ok(OK)
        }
        ArchiveKind::Image => {
            let index = store.read_fixed_index(&snapshot, &manifest, &archive)?;
            let mut t = target::open(&args.target, index.size, args.overwrite)?;
            let to_stdout = args.target == "-";
            let counters = Arc::new(RestoreCounters::default());
            let probe = counters.clone();
            let size = index.size;
            let reporter = Reporter::start(
                format!("restore {archive}"),
                Box::new(move || Sample::bytes(probe.done.load(Ordering::Relaxed), Some(size))),
                !g.quiet,
            );
            let threads = super::threads(g);
            let result = restore_image(
                &index,
                store.chunk_store(),
                t.as_image_target(),
                &args.target,
                threads,
                (threads * 4).max(8),
                &counters,
            );
            let stats =
                result.with_context(|| format!("restore of {snapshot} {archive} failed"))?;
            reporter.finish();
            t.commit().map_err(|e| {
                fail(
                    ErrorClass::of_write_error(&e, ErrorClass::Target),
                    format!(
                        "cannot move restored image into place at {}: {e}",
                        args.target
                    ),
                )
            })?;
            let secs = stats.duration.as_secs_f64();
            let report = json!({
                "snapshot": snapshot.to_string(),
                "archive": archive.to_string(),
                "target": args.target,
                "size": stats.size,
                "zero_bytes": stats.zero_bytes,
                "read_bytes": stats.read_bytes,
                "duration_s": secs,
                "throughput_bps": if secs > 0.0 { stats.size as f64 / secs } else { 0.0 },
            });
            // With the image on stdout, the summary goes to stderr (unless quiet).
            if to_stdout && g.quiet {
                return Ok(OK);
            }
            let mut out: Box<dyn Write> = if to_stdout {
                Box::new(std::io::stderr())
            } else {
                Box::new(std::io::stdout())
            };
            match g.output_format {
                OutputFormat::Text => writeln!(
                    out,
                    "restored {snapshot} {archive} to {}: {} in {secs:.2} s ({}), {} zero ({:.1}%)",
                    args.target,
                    bytes(stats.size),
                    rate(stats.size, secs),
                    bytes(stats.zero_bytes),
                    percent(stats.zero_bytes, stats.size)
                )?,
                OutputFormat::Json => writeln!(out, "{report}")?,
                OutputFormat::JsonPretty => {
                    writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?
                }
            }
            Ok(OK)
        }
    }
}
