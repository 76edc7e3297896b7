//! `stowage cat`: print one file of a file-tree archive.

use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;

use anyhow::{Context, Result};
use stowage_archive::{Decoder, EntryKind, Event, Payload};
use stowage_core::RestoreCounters;
use stowage_types::{ArchiveKind, ArchiveName, ErrorClass};

use crate::cli::GlobalOpts;
use crate::exit::{fail, OK};
use crate::repo;

pub fn run(g: &GlobalOpts, snapshot: &str, archive: &str, path: &OsStr) -> Result<i32> {
    let archive = ArchiveName::parse(archive)?;
    if archive.kind() != ArchiveKind::Pxar {
        return Err(fail(
            ErrorClass::Usage,
            format!("{archive} is not a file-tree archive; use 'stowage restore' for it"),
        ));
    }
    let wanted: Vec<u8> = super::restore::trim_slashes(path.as_bytes()).to_vec();
    let path = path.to_string_lossy();
    let store = repo::open(g)?;
    let snapshot = store.resolve_snapshot(snapshot)?;
    let manifest = store.load_manifest(&snapshot)?;
    let (index, payload) = super::restore::tree_indexes(&store, &snapshot, &manifest, &archive)?;
    let mut payload_reader = payload.as_ref().map(|p| {
        stowage_core::RandomReader::new(p, store.chunk_store(), 4)
            .with_name(format!("{archive} payload stream"))
    });
    let counters = RestoreCounters::default();
    let threads = super::threads(g);
    let found = store.with_stream(&index, archive.user_name(), threads, &counters, |stream| {
        let mut decoder = Decoder::new(stream);
        while let Some(event) = decoder
            .next_event()
            .with_context(|| format!("archive {archive}"))?
        {
            let Event::Entry(entry) = event else { continue };
            if entry.path.join(&b'/') != wanted {
                continue;
            }
            return match entry.kind {
                EntryKind::File {
                    payload: Payload::Ref(r),
                    ..
                } => {
                    let Some(reader) = payload_reader.as_mut() else {
                        return Err(fail(
                            ErrorClass::Verification,
                            "the archive refers to a payload stream, but there is none",
                        ));
                    };
                    let mut out = std::io::stdout().lock();
                    super::restore::copy_payload(reader, r, &mut out)
                        .with_context(|| format!("archive {archive}, file {path}"))?;
                    out.flush()?;
                    Ok(true)
                }
                EntryKind::File { .. } => {
                    let mut out = std::io::stdout().lock();
                    let mut buf = vec![0u8; 1 << 20];
                    loop {
                        let n = decoder
                            .read_payload(&mut buf)
                            .with_context(|| format!("archive {archive}, file {path}"))?;
                        if n == 0 {
                            break;
                        }
                        out.write_all(&buf[..n]).map_err(|e| {
                            fail(ErrorClass::Target, format!("cannot write to stdout: {e}"))
                        })?;
                    }
                    out.flush()?;
                    Ok(true)
                }
                EntryKind::Hardlink { target_path, .. } => Err(fail(
                    ErrorClass::NotFound,
                    format!(
                        "{path} is a hardlink to {}; cat that path",
                        String::from_utf8_lossy(&target_path)
                    ),
                )),
                _ => Err(fail(
                    ErrorClass::Usage,
                    format!("{path} is not a regular file"),
                )),
            };
        }
        Ok(false)
    })?;
    if !found {
        return Err(fail(
            ErrorClass::NotFound,
            format!("{snapshot} {archive} has no file {path} (search with 'stowage catalog {snapshot} --find GLOB')"),
        ));
    }
    Ok(OK)
}
