//! `stowage sync --from REPO [--to REPO]`: copy the snapshots the target lacks.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::Result;
use serde_json::json;
use stowage_datastore::{Datastore, SyncOutcome, SyncProgress};
use stowage_types::{BackupGroup, ErrorClass};

use crate::cli::{GlobalOpts, SyncArgs};
use crate::exit::{self, OK};
use crate::output::{bytes, print_json};
use crate::progress::{Reporter, Sample};
use crate::repo;

pub fn run(g: &GlobalOpts, args: SyncArgs) -> Result<i32> {
    let source = Datastore::open(&args.from)?;
    let target = match &args.to {
        Some(path) => Datastore::open(path)?,
        None => repo::open_root(g)?,
    };
    if source.base().canonicalize().ok() == target.base().canonicalize().ok() {
        return Err(exit::fail(
            ErrorClass::Usage,
            "--from and --to name the same datastore",
        ));
    }
    let ns = repo::namespace(g)?;
    let group: Option<BackupGroup> = args.group.as_deref().map(str::parse).transpose()?;
    let text = matches!(g.output_format, crate::cli::OutputFormat::Text);
    let progress = Arc::new(SyncProgress::default());
    let probe = progress.clone();
    let reporter = Reporter::start(
        "sync".into(),
        Box::new(move || {
            let total = probe.snapshots_total.load(Ordering::Relaxed);
            Sample::items(
                probe.snapshots_done.load(Ordering::Relaxed),
                (total > 0).then_some(total),
                "snapshots",
            )
            .with("copied", probe.bytes_copied.load(Ordering::Relaxed))
        }),
        !g.quiet,
    );
    let threads = g.worker_threads();
    let items = target.sync_from(&source, &ns, group.as_ref(), threads, &progress, |item| {
        if !text || g.quiet {
            return;
        }
        let prefix = if item.ns.is_root() {
            String::new()
        } else {
            format!("[{}]:", item.ns)
        };
        match &item.outcome {
            SyncOutcome::Copied(c) => println!(
                "{prefix}{}: copied ({} new chunks, {}; {} already present)",
                item.snapshot,
                c.chunks_copied,
                bytes(c.bytes_copied),
                c.chunks_present
            ),
            SyncOutcome::Present => {
                if g.verbose {
                    println!("{prefix}{}: present", item.snapshot)
                }
            }
            SyncOutcome::Failed(e) => eprintln!("{prefix}{}: FAILED: {e}", item.snapshot),
        }
    })?;
    reporter.finish();
    let copied: Vec<_> = items
        .iter()
        .filter_map(|i| match &i.outcome {
            SyncOutcome::Copied(c) => Some(c),
            _ => None,
        })
        .collect();
    let failed: Vec<_> = items
        .iter()
        .filter_map(|i| match &i.outcome {
            SyncOutcome::Failed(e) => Some((i, e)),
            _ => None,
        })
        .collect();
    let present = items.len() - copied.len() - failed.len();
    let chunks: u64 = copied.iter().map(|c| c.chunks_copied).sum();
    let data: u64 = copied.iter().map(|c| c.bytes_copied).sum();
    let report = json!({
        "snapshots": items.iter().map(|i| json!({
            "ns": i.ns.to_string(),
            "snapshot": i.snapshot.to_string(),
            "result": match &i.outcome {
                SyncOutcome::Copied(_) => "copied",
                SyncOutcome::Present => "present",
                SyncOutcome::Failed(_) => "failed",
            },
            "chunks-copied": match &i.outcome { SyncOutcome::Copied(c) => c.chunks_copied, _ => 0 },
            "error": match &i.outcome { SyncOutcome::Failed(e) => Some(e.to_string()), _ => None },
        })).collect::<Vec<_>>(),
        "copied": copied.len(),
        "present": present,
        "failed": failed.len(),
        "chunks-copied": chunks,
        "bytes-copied": data,
    });
    if !print_json(g.output_format, &report)? && !g.quiet {
        println!(
            "sync: {} snapshots copied ({} chunks, {}), {} already present, {} failed",
            copied.len(),
            chunks,
            bytes(data),
            present,
            failed.len()
        );
    }
    match failed.first() {
        None => Ok(OK),
        Some((_, e)) => Ok(exit::code(e.class())),
    }
}
