//! `stowage verify`: every chunk once, in parallel; bad chunks are renamed to `<hex>.<N>.bad`
//! and each snapshot's result is stored in its manifest; exit 8 when anything is bad.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Result;
use serde_json::json;
use stowage_datastore::VerifyOptions;
use stowage_types::{BackupGroup, ErrorClass, SnapshotRef};

use crate::cli::{GlobalOpts, VerifyArgs};
use crate::exit::{self, fail, OK};
use crate::output::{bytes, print_json, rate};
use crate::progress::Reporter;
use crate::repo;

pub fn run(g: &GlobalOpts, args: VerifyArgs) -> Result<i32> {
    let store = repo::open(g)?;
    let snapshots: Vec<SnapshotRef> = match (&args.target, args.all) {
        (Some(t), _) => match t.parse::<SnapshotRef>() {
            Ok(_) => vec![store.resolve_snapshot(t)?],
            Err(_) => {
                let group: BackupGroup = t.parse()?;
                let snaps = store.finished_snapshots(&group)?;
                if snaps.is_empty() {
                    return Err(stowage_datastore::DatastoreError::GroupNotFound(
                        group.to_string(),
                    )
                    .into());
                }
                snaps
            }
        },
        (None, true) => {
            let mut all = Vec::new();
            for group in store.groups()? {
                all.extend(store.finished_snapshots(&group)?);
            }
            all
        }
        (None, false) => {
            return Err(fail(
                ErrorClass::Usage,
                "name a snapshot or group to verify, or pass --all",
            ));
        }
    };
    let progress = Arc::new(AtomicU64::new(0));
    let probe = progress.clone();
    let reporter = Reporter::start(
        "verify (chunks)".into(),
        None,
        Box::new(move || (probe.load(Ordering::Relaxed), 0)),
        !g.quiet && g.verbose,
    );
    let opts = VerifyOptions {
        threads: super::threads(g),
        ignore_verified: args.ignore_verified || args.outdated_after.is_some(),
        outdated_after: args.outdated_after,
    };
    let report = store.verify_with(&snapshots, &opts, &progress);
    reporter.finish();
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    let secs = report.duration.as_secs_f64();
    let json_report = json!({
        "ok": report.ok(),
        "snapshots": report.snapshots.iter().map(|s| json!({
            "snapshot": s.snapshot.to_string(),
            "ok": s.errors.is_empty(),
            "errors": s.errors,
            "upid": s.upid,
        })).collect::<Vec<_>>(),
        "skipped": report.skipped.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        "chunks_checked": report.chunks_checked,
        "bytes_checked": report.bytes_checked,
        "bad_chunks": report.bad_chunks.iter().map(|b| json!({
            "digest": b.digest.to_hex(),
            "reason": b.reason,
            "snapshots": b.snapshots.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            "renamed_to": b.renamed_to,
        })).collect::<Vec<_>>(),
        "duration_s": secs,
    });
    if !print_json(g.output_format, &json_report)? {
        for b in &report.bad_chunks {
            let users: Vec<String> = b.snapshots.iter().map(|s| s.to_string()).collect();
            let renamed = match &b.renamed_to {
                Some(to) => format!("; renamed to {}", to.display()),
                None => String::new(),
            };
            println!(
                "bad chunk {}: {} (needed by {}){renamed}",
                b.digest,
                b.reason,
                users.join(", ")
            );
        }
        for s in &report.skipped {
            println!("{s}: skipped (verified before)");
        }
        for s in &report.snapshots {
            if s.errors.is_empty() {
                println!("{}: ok", s.snapshot);
            } else {
                let own: Vec<&String> = s
                    .errors
                    .iter()
                    .filter(|e| !e.starts_with("needs bad chunk"))
                    .collect();
                let bad = s.errors.len() - own.len();
                println!(
                    "{}: FAILED ({} bad chunks{})",
                    s.snapshot,
                    bad,
                    own.iter().map(|e| format!("; {e}")).collect::<String>()
                );
            }
        }
        let skipped = match report.skipped.len() {
            0 => String::new(),
            n => format!(" ({n} skipped)"),
        };
        println!(
            "verified {} snapshots{skipped}, {} chunks ({}) in {secs:.2} s ({})",
            report.snapshots.len(),
            report.chunks_checked,
            bytes(report.bytes_checked),
            rate(report.bytes_checked, secs)
        );
    }
    if report.ok() {
        Ok(OK)
    } else {
        if !g.quiet {
            eprintln!(
                "error: verification failed: {} bad chunks",
                report.bad_chunks.len()
            );
        }
        Ok(exit::code(ErrorClass::Verification))
    }
}
