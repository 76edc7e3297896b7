//! `stowage verify`: every chunk once, in parallel; bad chunks are renamed to `<hex>.<N>.bad`
//! and each snapshot's result is stored in its manifest; exit 8 when anything is bad.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::Result;
use serde_json::json;
use stowage_datastore::{Datastore, VerifyOptions, VerifyProgress};
use stowage_types::{BackupGroup, BackupNamespace, ErrorClass, SnapshotRef};

use crate::cli::{GlobalOpts, VerifyArgs};
use crate::exit::{self, fail, OK};
use crate::output::{bytes, print_json, rate};
use crate::progress::{Reporter, Sample};
use crate::repo;

pub fn run(g: &GlobalOpts, args: VerifyArgs) -> Result<i32> {
    let store = repo::open(g)?;
    // Unfinished snapshots (no manifest) have nothing to verify yet; they are reported.
    let mut unfinished: Vec<String> = Vec::new();
    let mut of_group = |view: &Datastore, group: &BackupGroup| -> Result<Vec<SnapshotRef>> {
        let mut finished = Vec::new();
        for info in view.snapshots(group)? {
            match info.finished {
                true => finished.push(info.snapshot),
                false => unfinished.push(label(view.namespace(), &info.snapshot)),
            }
        }
        Ok(finished)
    };
    let snapshots: Vec<(Datastore, SnapshotRef)> = match (&args.target, args.all) {
        (Some(t), _) => match t.parse::<SnapshotRef>() {
            Ok(_) => vec![(store.clone(), store.resolve_snapshot(t)?)],
            Err(_) => {
                let group: BackupGroup = t.parse()?;
                let snaps = of_group(&store, &group)?;
                if snaps.is_empty() {
                    return Err(stowage_datastore::DatastoreError::GroupNotFound(
                        group.to_string(),
                    )
                    .into());
                }
                snaps.into_iter().map(|s| (store.clone(), s)).collect()
            }
        },
        (None, true) => {
            // The namespace and every namespace below it.
            let mut all = Vec::new();
            for ns in store.list_namespaces(store.namespace(), None)? {
                let view = store.in_namespace(&ns)?;
                for group in view.groups()? {
                    for s in of_group(&view, &group)? {
                        all.push((view.clone(), s));
                    }
                }
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
    if !g.quiet {
        for u in &unfinished {
            eprintln!("warning: {u}: unfinished (no manifest): a backup runs or was killed; gc removes it once it is older than its cutoff");
        }
    }
    let progress = Arc::new(VerifyProgress::default());
    let probe = progress.clone();
    let total = snapshots.len() as u64;
    let reporter = Reporter::start(
        "verify".into(),
        Box::new(move || {
            Sample::items(
                probe.snapshots.load(Ordering::Relaxed),
                Some(total),
                "snapshots",
            )
            .with("checked", probe.bytes.load(Ordering::Relaxed))
        }),
        !g.quiet,
    );
    let opts = VerifyOptions {
        threads: g.worker_threads(),
        ignore_verified: args.ignore_verified || args.outdated_after.is_some(),
        outdated_after: args.outdated_after,
        structure: !args.chunks_only,
    };
    let report = store.verify_across(&snapshots, &opts, &progress);
    reporter.finish();
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    let secs = report.duration.as_secs_f64();
    let json_report = json!({
        "ok": report.ok(),
        "snapshots": report.snapshots.iter().map(|s| json!({
            "snapshot": s.snapshot.to_string(),
            "ns": s.ns.to_string(),
            "ok": s.errors.is_empty(),
            "errors": s.errors,
            "upid": s.upid,
        })).collect::<Vec<_>>(),
        "skipped": report.skipped.iter().map(|(ns, s)| label(ns, s)).collect::<Vec<_>>(),
        "unfinished": unfinished,
        "chunks_checked": report.chunks_checked,
        "bytes_checked": report.bytes_checked,
        "bad_chunks": report.bad_chunks.iter().map(|b| json!({
            "digest": b.digest.to_hex(),
            "reason": b.reason,
            "snapshots": b.snapshots.iter().map(|(ns, s)| label(ns, s)).collect::<Vec<_>>(),
            "renamed_to": b.renamed_to,
        })).collect::<Vec<_>>(),
        "duration_s": secs,
    });
    if !print_json(g.output_format, &json_report)? {
        for b in &report.bad_chunks {
            let users: Vec<String> = b.snapshots.iter().map(|(ns, s)| label(ns, s)).collect();
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
        for (ns, s) in &report.skipped {
            println!("{}: skipped (verified before)", label(ns, s));
        }
        for s in &report.snapshots {
            if s.errors.is_empty() {
                println!("{}: ok", label(&s.ns, &s.snapshot));
            } else {
                let own: Vec<&String> = s
                    .errors
                    .iter()
                    .filter(|e| !e.starts_with("needs bad chunk"))
                    .collect();
                let bad = s.errors.len() - own.len();
                println!(
                    "{}: FAILED ({} bad chunks{})",
                    label(&s.ns, &s.snapshot),
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
            eprintln!("error: {}", failure_summary(&report));
        }
        Ok(exit::code(ErrorClass::Verification))
    }
}

/// `type/id/time`, or `[ns]:type/id/time` outside the root namespace (PBS's log form).
fn label(ns: &BackupNamespace, snapshot: &SnapshotRef) -> String {
    if ns.is_root() {
        snapshot.to_string()
    } else {
        format!("[{ns}]:{snapshot}")
    }
}

/// The last line of a failed verification: how much is bad, and the first problem itself (a
/// bad chunk, or a manifest, index or blob of a snapshot), so that the line names what failed.
fn failure_summary(report: &stowage_datastore::VerifyReport) -> String {
    let own: Vec<String> = report
        .snapshots
        .iter()
        .flat_map(|s| {
            s.errors
                .iter()
                .filter(|e| !e.starts_with("needs bad chunk"))
                .map(move |e| format!("{}: {e}", label(&s.ns, &s.snapshot)))
        })
        .collect();
    let chunks = report
        .bad_chunks
        .iter()
        .map(|b| format!("chunk {}: {}", b.digest, b.reason));
    let first = own.first().cloned().or_else(|| chunks.clone().next());
    let mut counts = vec![format!("{} bad chunks", report.bad_chunks.len())];
    if !own.is_empty() {
        counts.push(format!("{} damaged snapshot files", own.len()));
    }
    match first {
        Some(first) => format!(
            "verification failed: {} (first: {first})",
            counts.join(", ")
        ),
        None => format!("verification failed: {}", counts.join(", ")),
    }
}
