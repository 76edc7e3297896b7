//! One file of a file-tree archive, written out whole.

use std::io::Write;

use stowage_archive::{Decoder, EntryKind, Event, Payload};
use stowage_core::session::SnapshotReader;
use stowage_core::{with_stream, RandomReader, RestoreCounters};
use stowage_types::{ArchiveKind, ArchiveName, ErrorClass};

use crate::restore::{copy_payload, tree_indexes, trim_slashes};
use crate::{Context, OpsError};

/// Writes the regular file at `path` (`etc/hosts`, slashes around it ignored) of the
/// file-tree archive `archive` to `out`. Refuses other kinds of entries, and names a
/// hardlink's target instead of following it.
pub fn cat_file(
    reader: &dyn SnapshotReader,
    archive: &ArchiveName,
    path: &[u8],
    out: &mut dyn Write,
    threads: usize,
) -> Result<(), OpsError> {
    if archive.kind() != ArchiveKind::Pxar {
        return Err(OpsError::failed(
            ErrorClass::Usage,
            format!("{archive} is not a file-tree archive; use 'stowage restore' for it"),
        ));
    }
    let wanted = trim_slashes(path).to_vec();
    let shown = String::from_utf8_lossy(path).into_owned();
    let indexes = tree_indexes(reader, archive)?;
    let mut payload_reader = indexes.payload.as_ref().map(|p| {
        RandomReader::new(p, reader.chunks(), 4).with_name(format!("{archive} payload stream"))
    });
    let counters = RestoreCounters::default();
    let stream_name = archive.user_name();
    let found = with_stream(
        reader.chunks(),
        &indexes.archive,
        stream_name,
        threads,
        &counters,
        |stream| {
            let mut decoder = Decoder::new(stream);
            let file = || format!("archive {archive}, file {shown}");
            while let Some(event) = decoder
                .next_event()
                .context(|| format!("archive {archive}"))?
            {
                let Event::Entry(entry) = event else { continue };
                if entry.path.join(&b'/') != wanted {
                    continue;
                }
                match entry.kind {
                    EntryKind::File {
                        payload: Payload::Ref(r),
                        ..
                    } => {
                        let Some(payload) = payload_reader.as_mut() else {
                            return Err(OpsError::failed(
                                ErrorClass::Verification,
                                "the archive refers to a payload stream, but there is none",
                            ));
                        };
                        copy_payload(payload, r, out).context(file)?;
                    }
                    EntryKind::File { .. } => {
                        let mut buf = vec![0u8; 1 << 20];
                        loop {
                            let n = decoder.read_payload(&mut buf).context(file)?;
                            if n == 0 {
                                break;
                            }
                            out.write_all(&buf[..n]).map_err(write_failed)?;
                        }
                    }
                    EntryKind::Hardlink { target_path, .. } => {
                        return Err(OpsError::failed(
                            ErrorClass::NotFound,
                            format!(
                                "{shown} is a hardlink to {}; cat that path",
                                String::from_utf8_lossy(&target_path)
                            ),
                        ))
                    }
                    _ => {
                        return Err(OpsError::failed(
                            ErrorClass::Usage,
                            format!("{shown} is not a regular file"),
                        ))
                    }
                }
                out.flush().map_err(write_failed)?;
                return Ok(true);
            }
            Ok(false)
        },
    )?;
    if !found {
        let snapshot = reader.snapshot();
        return Err(OpsError::failed(
            ErrorClass::NotFound,
            format!("{snapshot} {archive} has no file {shown} (search with 'stowage catalog {snapshot} --find GLOB')"),
        ));
    }
    Ok(())
}

fn write_failed(e: std::io::Error) -> OpsError {
    OpsError::failed(
        ErrorClass::of_write_error(&e, ErrorClass::Target),
        format!("cannot write the file out: {e}"),
    )
}
