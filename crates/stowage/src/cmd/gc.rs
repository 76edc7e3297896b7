//! `stowage gc`: mark every chunk any snapshot needs, sweep the rest.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::Result;
use serde_json::json;
use stowage_datastore::{GcOptions, GcProgress, CHUNK_DIRECTORIES, DEFAULT_GC_CACHE};
use stowage_types::ErrorClass;

use crate::cli::{GcArgs, GlobalOpts};
use crate::exit::{self, fail, OK};
use crate::output::{bytes, print_json};
use crate::progress::{Reporter, Sample};
use crate::repo;

pub fn run(g: &GlobalOpts, args: GcArgs) -> Result<i32> {
    let store = repo::open_root(g)?;
    let options = GcOptions {
        cutoff: args.cutoff,
        threads: g.worker_threads(),
        dry_run: args.dry_run,
        cache_capacity: args.cache_capacity.unwrap_or(DEFAULT_GC_CACHE),
        upid: stowage_datastore::Upid::new(
            "garbage_collection",
            &store.base().display().to_string(),
        )
        .to_string(),
        progress: Arc::new(GcProgress::default()),
    };
    if !g.quiet && !args.dry_run {
        eprintln!("starting garbage collection on {}", store.base().display());
    }
    let probe = options.progress.clone();
    let reporter = Reporter::start(
        "gc".into(),
        Box::new(move || match probe.phase.load(Ordering::Relaxed) {
            GcProgress::SWEEP => Sample::items(
                probe.dirs_swept.load(Ordering::Relaxed),
                Some(CHUNK_DIRECTORIES),
                "chunk directories",
            )
            .stage("sweep"),
            GcProgress::MARK => Sample::items(
                probe.indexes_marked.load(Ordering::Relaxed),
                None,
                "index files",
            )
            .stage("mark"),
            _ => Sample::items(0, None, "snapshots").stage("cleanup"),
        }),
        !g.quiet,
    );
    let report = store.garbage_collect(&options)?;
    reporter.finish();
    let s = &report.status;
    let json_report = json!({
        "status": s,
        "dry-run": args.dry_run,
        "removal-skipped": report.removal_skipped,
        "missing-chunks": report.missing.iter().map(|(d, p)| json!({
            "digest": d.to_hex(), "index": p,
        })).collect::<Vec<_>>(),
        "errors": report.errors,
        "warnings": report.warnings,
        "foreign-entries": report.foreign,
        "removed-temp-files": report.removed_temp,
        "removed-unfinished-snapshots": report.removed_unfinished,
        "deduplication-factor": s.deduplication_factor(),
        "mark-seconds": report.mark_time.as_secs_f64(),
        "sweep-seconds": report.sweep_time.as_secs_f64(),
    });
    let text = !print_json(g.output_format, &json_report)?;
    if text && (report.removal_skipped || report.sweep_failed.is_some()) {
        // What went before the chunks were looked at (it needs no marking).
        print_leftovers(
            &report,
            if args.dry_run {
                "Would remove"
            } else {
                "Removed"
            },
        );
    }
    if report.removal_skipped {
        return Err(nothing_removed(&report.errors, text));
    }
    if let Some(class) = report.sweep_failed {
        let last = report.errors.last().cloned().unwrap_or_default();
        return Err(fail(
            class,
            format!("garbage collection {last}; nothing it still needs was removed, run it again once the datastore can be written"),
        ));
    }

    if text {
        print_text(&report, args.dry_run);
    }
    if !report.missing.is_empty() || !report.errors.is_empty() {
        if !g.quiet {
            eprintln!(
                "error: {} chunk(s) missing, {} error(s); run 'stowage verify --all' to see which snapshots are damaged",
                report.missing.len(),
                report.errors.len()
            );
        }
        return Ok(exit::code(ErrorClass::Verification));
    }
    Ok(OK)
}

/// The error of a collection that removed no chunk because something could not be read: each
/// problem once (the last in the error line itself).
fn nothing_removed(errors: &[String], text: bool) -> anyhow::Error {
    let advice = "no chunk is proven unused while an index cannot be read; repair or forget the snapshot, then run gc again";
    let shown = match errors {
        [only] => only.clone(),
        [earlier @ .., last] => {
            if text {
                for e in earlier {
                    eprintln!("error: {e}");
                }
            }
            format!("{last} (and {} more above)", earlier.len())
        }
        [] => "an index or directory could not be read".to_string(),
    };
    fail(
        ErrorClass::Verification,
        format!("garbage collection removed no chunks: {shown}; {advice}"),
    )
}

/// What killed processes had left and the collection removed.
fn print_leftovers(report: &stowage_datastore::GcReport, verb: &str) {
    for snapshot in &report.removed_unfinished {
        println!("{verb} unfinished snapshot {snapshot} (no manifest; its backup is gone)");
    }
    if report.removed_temp > 0 {
        println!(
            "{verb} temporary files of writers that died: {}",
            report.removed_temp
        );
    }
}

fn print_text(report: &stowage_datastore::GcReport, dry_run: bool) {
    let s = &report.status;
    for (digest, index) in &report.missing {
        eprintln!("missing chunk {digest} (needed by {})", index.display());
    }
    for e in &report.errors {
        eprintln!("error: {e}");
    }
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    let verb = if dry_run { "Would remove" } else { "Removed" };
    println!("{verb} garbage: {}", bytes(s.removed_bytes));
    println!("{verb} chunks: {}", s.removed_chunks);
    println!(
        "Pending removals: {} (in {} chunks)",
        bytes(s.pending_bytes),
        s.pending_chunks
    );
    if s.removed_bad > 0 {
        println!("{verb} bad chunks: {}", s.removed_bad);
    }
    if s.still_bad > 0 {
        println!("Leftover bad chunks: {}", s.still_bad);
    }
    print_leftovers(report, verb);
    if report.foreign > 0 {
        println!("Foreign entries left alone: {}", report.foreign);
    }
    println!("Original data usage: {}", bytes(s.index_data_bytes));
    let on_disk = s.disk_bytes;
    if s.index_data_bytes > 0 {
        println!(
            "On-Disk usage: {} ({:.2}%)",
            bytes(on_disk),
            on_disk as f64 * 100.0 / s.index_data_bytes as f64
        );
    } else {
        println!("On-Disk usage: {}", bytes(on_disk));
    }
    println!("On-Disk chunks: {}", s.disk_chunks);
    println!("Deduplication factor: {:.2}", s.deduplication_factor());
    if let Some(average) = on_disk.checked_div(s.disk_chunks) {
        println!("Average chunk size: {}", bytes(average));
    }
    println!(
        "Mark: {:.2} s ({} index files, {} chunk references, {} unique), sweep: {:.2} s",
        report.mark_time.as_secs_f64(),
        s.index_file_count,
        s.cache_stats.hits + s.cache_stats.misses,
        s.cache_stats.misses,
        report.sweep_time.as_secs_f64()
    );
}
