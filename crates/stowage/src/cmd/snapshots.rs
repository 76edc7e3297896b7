use anyhow::Result;
use serde::Serialize;
use stowage_datastore::{SnapshotVerifyState, VerifyState};
use stowage_types::BackupGroup;

use crate::cli::GlobalOpts;
use crate::exit::OK;
use crate::output::{bytes, print_json};
use crate::repo;

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct SnapshotRow {
    snapshot: String,
    backup_type: String,
    backup_id: String,
    backup_time: i64,
    protected: bool,
    /// False for a snapshot without a manifest (listed with `--all` only).
    finished: bool,
    /// Sum of the archive sizes (image bytes for images, encoded bytes for blobs).
    size: u64,
    files: Vec<String>,
    /// The last verification (`unprotected.verify_state`), as PBS lists it.
    #[serde(skip_serializing_if = "Option::is_none")]
    verification: Option<SnapshotVerifyState>,
    /// `unprotected.notes`.
    #[serde(skip_serializing_if = "Option::is_none")]
    notes: Option<String>,
    /// Why the manifest could not be read, if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

pub fn run(g: &GlobalOpts, group: Option<String>, all: bool) -> Result<i32> {
    let store = repo::open(g)?;
    let groups: Vec<BackupGroup> = match group {
        Some(gr) => vec![gr.parse()?],
        None => store.groups()?,
    };
    let mut rows = Vec::new();
    for group in &groups {
        for info in store.snapshots(group)?.into_iter() {
            if !info.finished && !all {
                continue;
            }
            // A damaged manifest is shown as such; the other snapshots are still listed.
            let (manifest, error) = match info.finished {
                false => (None, None),
                true => match store.load_manifest(&info.snapshot) {
                    Ok(m) => (Some(m), None),
                    Err(e) => {
                        eprintln!("warning: {e}; run 'stowage verify {}'", info.snapshot);
                        (None, Some(e.to_string()))
                    }
                },
            };
            let verification = manifest.as_ref().and_then(SnapshotVerifyState::of);
            let notes = manifest
                .as_ref()
                .and_then(|m| m.unprotected.get("notes")?.as_str().map(String::from));
            let files = manifest.map(|m| m.files).unwrap_or_default();
            rows.push(SnapshotRow {
                snapshot: info.snapshot.to_string(),
                backup_type: group.ty.to_string(),
                backup_id: group.id().to_string(),
                backup_time: info.snapshot.time.epoch(),
                protected: info.protected,
                finished: info.finished,
                size: files.iter().map(|f| f.size).sum(),
                files: files.into_iter().map(|f| f.filename).collect(),
                verification,
                notes,
                error,
            });
        }
    }
    if print_json(g.output_format, &rows)? {
        return Ok(OK);
    }
    if rows.is_empty() {
        println!("no snapshots");
        return Ok(OK);
    }
    println!("{:<44} {:>12}  files", "snapshot", "size");
    for r in rows {
        let mut mark = match (&r.error, r.protected, r.finished) {
            (_, _, false) => " (unfinished: no manifest; a backup runs or was killed)",
            (Some(_), _, _) => " (manifest unreadable)",
            (None, true, _) => " (protected)",
            (None, false, _) => "",
        }
        .to_string();
        match r.verification.as_ref().map(|v| v.state) {
            Some(VerifyState::Ok) => mark.push_str(" (verified)"),
            Some(VerifyState::Failed) => mark.push_str(" (verify failed)"),
            None => {}
        }
        println!(
            "{:<44} {:>12}  {}{mark}",
            r.snapshot,
            bytes(r.size),
            r.files.join(" ")
        );
    }
    Ok(OK)
}
