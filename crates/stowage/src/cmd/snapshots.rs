use anyhow::Result;
use serde::Serialize;
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
    /// Sum of the archive sizes (image bytes for images, encoded bytes for blobs).
    size: u64,
    files: Vec<String>,
    /// Why the manifest could not be read, if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

pub fn run(g: &GlobalOpts, group: Option<String>) -> Result<i32> {
    let store = repo::open(g)?;
    let groups: Vec<BackupGroup> = match group {
        Some(gr) => vec![gr.parse()?],
        None => store.groups()?,
    };
    let mut rows = Vec::new();
    for group in &groups {
        for info in store.snapshots(group)?.into_iter().filter(|s| s.finished) {
            // A damaged manifest is shown as such; the other snapshots are still listed.
            let (files, error) = match store.load_manifest(&info.snapshot) {
                Ok(m) => (m.files, None),
                Err(e) => {
                    eprintln!("warning: {e}; run 'stowage verify {}'", info.snapshot);
                    (Vec::new(), Some(e.to_string()))
                }
            };
            rows.push(SnapshotRow {
                snapshot: info.snapshot.to_string(),
                backup_type: group.ty.to_string(),
                backup_id: group.id().to_string(),
                backup_time: info.snapshot.time.epoch(),
                protected: info.protected,
                size: files.iter().map(|f| f.size).sum(),
                files: files.into_iter().map(|f| f.filename).collect(),
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
        let mark = match (&r.error, r.protected) {
            (Some(_), _) => " (manifest unreadable)",
            (None, true) => " (protected)",
            (None, false) => "",
        };
        println!(
            "{:<44} {:>12}  {}{mark}",
            r.snapshot,
            bytes(r.size),
            r.files.join(" ")
        );
    }
    Ok(OK)
}
