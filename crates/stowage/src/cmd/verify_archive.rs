//! `stowage verify-archive OUT`: checksum, whole stream, every tar entry; exit 8 if damaged.

use std::path::Path;

use anyhow::Result;
use serde_json::json;
use stowage_export::verify::verify_archive;

use crate::cli::GlobalOpts;
use crate::exit::OK;
use crate::output::{bytes, print_json};

pub fn run(g: &GlobalOpts, path: &Path) -> Result<i32> {
    let check = verify_archive(path)?;
    let report = json!({
        "path": check.path,
        "ok": true,
        "format": check.format.name(),
        "sha256": check.sha256,
        "compressed_bytes": check.compressed_bytes,
        "bytes": check.bytes,
        "tar_entries": check.tar_entries,
    });
    if !print_json(g.output_format, &report)? && !g.quiet {
        let sum = match &check.sha256 {
            Some(s) => format!("SHA-256 {s} matches"),
            None => "no .sha256 file beside it, checksum not checked".into(),
        };
        let entries = check
            .tar_entries
            .map(|n| format!(", {n} tar entries"))
            .unwrap_or_default();
        println!(
            "{}: ok ({} {} -> {}{entries}; {sum})",
            path.display(),
            check.format.name(),
            bytes(check.compressed_bytes),
            bytes(check.bytes)
        );
    }
    Ok(OK)
}
