use anyhow::Result;
use serde::Serialize;

use crate::cli::GlobalOpts;
use crate::exit::OK;
use crate::output::print_json;
use crate::repo;

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct GroupRow {
    backup_type: String,
    backup_id: String,
    backup_count: usize,
    last_backup: Option<i64>,
    last_snapshot: Option<String>,
    files: Vec<String>,
}

pub fn run(g: &GlobalOpts) -> Result<i32> {
    let store = repo::open(g)?;
    let mut rows = Vec::new();
    for group in store.groups()? {
        let snaps = store.finished_snapshots(&group)?;
        let Some(last) = snaps.last() else { continue };
        let files = store
            .load_manifest(last)
            .map(|m| m.files.into_iter().map(|f| f.filename).collect())
            .unwrap_or_default();
        rows.push(GroupRow {
            backup_type: group.ty.to_string(),
            backup_id: group.id().to_string(),
            backup_count: snaps.len(),
            last_backup: Some(last.time.epoch()),
            last_snapshot: Some(last.to_string()),
            files,
        });
    }
    if print_json(g.output_format, &rows)? {
        return Ok(OK);
    }
    if rows.is_empty() {
        println!("no backup groups in {}", store.base().display());
        return Ok(OK);
    }
    println!(
        "{:<24} {:>9}  {:<22}  files",
        "group", "snapshots", "last backup"
    );
    for r in rows {
        println!(
            "{:<24} {:>9}  {:<22}  {}",
            format!("{}/{}", r.backup_type, r.backup_id),
            r.backup_count,
            r.last_snapshot
                .as_deref()
                .and_then(|s| s.rsplit('/').next())
                .unwrap_or("-"),
            r.files.join(" ")
        );
    }
    Ok(OK)
}
