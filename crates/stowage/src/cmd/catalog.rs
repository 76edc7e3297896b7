//! `stowage catalog`: list or search the files of a snapshot without reading archive data.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use anyhow::{Context, Result};
use serde_json::json;
use stowage_core::session::SnapshotReader;
use stowage_format::catalog::CatalogEntryKind;
use stowage_format::{CatalogError, CatalogReader};
use stowage_types::{ArchiveName, ErrorClass};

use crate::cli::GlobalOpts;
use crate::exit::{fail, OK};
use crate::output::print_json;
use crate::repo;

fn kind_letter(kind: &CatalogEntryKind) -> char {
    match kind {
        CatalogEntryKind::Directory { .. } => 'd',
        CatalogEntryKind::File { .. } => 'f',
        CatalogEntryKind::Symlink => 'l',
        CatalogEntryKind::Hardlink => 'h',
        CatalogEntryKind::BlockDevice => 'b',
        CatalogEntryKind::CharDevice => 'c',
        CatalogEntryKind::Fifo => 'p',
        CatalogEntryKind::Socket => 's',
    }
}

pub fn run(g: &GlobalOpts, snapshot: &str, find: Option<&OsStr>) -> Result<i32> {
    let store = repo::open(g)?;
    let reader = repo::open_snapshot(&store, snapshot)?;
    let snapshot = reader.snapshot().clone();
    let bytes = stowage_ops::catalog::load_catalog(&reader, g.worker_threads())?;
    let name = ArchiveName::parse(stowage_ops::catalog::CATALOG_NAME)?;
    let damaged = || format!("{} of {snapshot}", name.stored_name());
    let reader = CatalogReader::new(&bytes).with_context(damaged)?;
    let entries: Box<dyn Iterator<Item = _>> = match find {
        Some(pattern) => Box::new(reader.find(pattern.as_bytes()).map_err(|e| match e {
            CatalogError::BadPattern { pattern, reason } => fail(
                ErrorClass::Usage,
                format!("invalid --find pattern '{pattern}': {reason}"),
            ),
            other => other.into(),
        })?),
        None => Box::new(reader.walk()),
    };
    let json = g.output_format != crate::cli::OutputFormat::Text;
    let mut rows = Vec::new();
    let mut out = std::io::stdout().lock();
    for item in entries {
        let (path, entry) = item.with_context(damaged)?;
        let (size, mtime) = match entry.kind {
            CatalogEntryKind::File { size, mtime } => (Some(size), Some(mtime)),
            _ => (None, None),
        };
        if json {
            let path = String::from_utf8_lossy(&path);
            rows.push(json!({"path": path, "type": kind_letter(&entry.kind).to_string(), "size": size, "mtime": mtime}));
        } else {
            use std::io::Write;
            let size = size.map(|s| s.to_string()).unwrap_or_default();
            let path = crate::output::shell_quoted(&path);
            writeln!(out, "{} {size:>12} {path}", kind_letter(&entry.kind))?;
        }
    }
    print_json(g.output_format, &rows)?;
    Ok(OK)
}
