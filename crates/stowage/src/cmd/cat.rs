//! `stowage cat`: print one file of a file-tree archive.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use anyhow::Result;
use stowage_types::ArchiveName;

use crate::cli::GlobalOpts;
use crate::exit::OK;
use crate::repo;

pub fn run(g: &GlobalOpts, snapshot: &str, archive: &str, path: &OsStr) -> Result<i32> {
    let archive = ArchiveName::parse(archive)?;
    let store = repo::open(g)?;
    let reader = repo::open_snapshot(&store, snapshot)?;
    let mut out = std::io::stdout().lock();
    let threads = g.worker_threads();
    stowage_ops::cat::cat_file(&reader, &archive, path.as_bytes(), &mut out, threads)?;
    Ok(OK)
}
