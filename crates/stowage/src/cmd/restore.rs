//! `stowage restore`: an image to a file, block device or stdout; a blob to a file or stdout;
//! a file-tree archive into a directory.

use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::{Context, Result};
use serde_json::json;
use stowage_core::session::SnapshotReader;
use stowage_core::RestoreCounters;
use stowage_ops::restore::{restore_tree, tree_indexes, ImageRestore, TreeTarget};
use stowage_types::{ArchiveKind, ArchiveName, ErrorClass};

use crate::cli::{GlobalOpts, OutputFormat, RestoreArgs};
use crate::exit::{fail, OK};
use crate::output::{bytes, percent, rate};
use crate::progress::{Reporter, Sample};
use crate::{repo, target};

pub fn run(g: &GlobalOpts, args: RestoreArgs) -> Result<i32> {
    let archive = ArchiveName::parse(&args.archive)?;
    let store = repo::open(g)?;
    let reader = repo::open_snapshot(&store, &args.snapshot)?;
    let snapshot = reader.snapshot().clone();
    match archive.kind() {
        ArchiveKind::Blob => {
            let data = reader.blob(&archive)?;
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
            let indexes = tree_indexes(&reader, &archive)?;
            let index = &indexes.archive;
            // The archive stream and, for a split archive, the payload stream.
            let counters = Arc::new([RestoreCounters::default(), RestoreCounters::default()]);
            let total = indexes.size();
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
            let to = TreeTarget {
                target: &args.target,
                overwrite: args.overwrite,
                includes: &args.include,
            };
            let result = restore_tree(
                reader.chunks(),
                index,
                indexes.payload.as_ref(),
                archive.user_name(),
                to,
                g.worker_threads(),
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
            let image = ImageRestore::open(&reader, &archive)?;
            let mut t = target::open(&args.target, image.size(), args.overwrite)?;
            let to_stdout = args.target == "-";
            let counters = Arc::new(RestoreCounters::default());
            let probe = counters.clone();
            let size = image.size();
            let reporter = Reporter::start(
                format!("restore {archive}"),
                Box::new(move || Sample::bytes(probe.done.load(Ordering::Relaxed), Some(size))),
                !g.quiet,
            );
            let threads = g.worker_threads();
            let result = image.run(
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
