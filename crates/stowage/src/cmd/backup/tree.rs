//! One directory tree into a pxar archive (a dynamic index) and its part of the catalog.
//!
//! A walker thread encodes the tree into a bounded pipe; the chunk pipeline reads the pipe, cuts
//! it with the content-defined chunker and stores the chunks.

use std::path::Path;

use anyhow::{Context, Result};
use stowage_archive::{Encoder, Format};
use stowage_chunker::{Buzhash, CATALOG_AVG, DEFAULT_AVG};
use stowage_core::{pipe, CdcSource, ImageBackup};
use stowage_format::{CatalogWriter, DynamicIndex};
use stowage_fs::{Captured, CreateOptions, Excludes};
use stowage_types::{BackupTime, ErrorClass};

use super::summary::ArchiveSummary;
use super::{Ctx, Spec};
use crate::cli::BackupArgs;
use crate::exit::fail;

/// Pieces of 1 MiB the walker may run ahead of the chunker.
const PIPE_PIECES: usize = 8;

/// Options from the command line shared by every tree of the backup.
pub(super) fn options(args: &BackupArgs) -> Result<CreateOptions> {
    let mut excludes = Excludes::new();
    for pattern in &args.exclude {
        excludes
            .add(b"", pattern.as_bytes())
            .map_err(|e| fail(ErrorClass::Usage, e.to_string()))?;
    }
    Ok(CreateOptions {
        one_file_system: args.one_file_system,
        excludes,
        selection: None,
    })
}

pub(super) fn open_root(path: &str) -> Result<Captured> {
    stowage_fs::open_root(Path::new(path)).map_err(|e| {
        fail(
            ErrorClass::Source,
            format!("cannot read source directory {path}: {e}"),
        )
    })
}

fn index_of(stream: ImageBackup) -> DynamicIndex {
    let mut end = 0u64;
    let entries = stream
        .lengths
        .iter()
        .zip(stream.digests)
        .map(|(len, digest)| {
            end += u64::from(*len);
            (end, digest)
        })
        .collect();
    DynamicIndex {
        uuid: *uuid::Uuid::new_v4().as_bytes(),
        ctime: BackupTime::now().epoch(),
        entries,
    }
}

pub(super) fn backup(
    ctx: &Ctx<'_>,
    spec: &Spec,
    root: Captured,
    mut catalog: Option<&mut CatalogWriter<Vec<u8>>>,
    options: &mut CreateOptions,
) -> Result<(DynamicIndex, ArchiveSummary)> {
    let rules = options.excludes.len();
    let whole = spec.selection.as_ref().is_none_or(|s| s.is_all());
    if Path::new(&spec.path) == Path::new("/") && whole {
        // The contents of these are made up by the kernel or lost at boot (a profile that selects
        // paths below them gets them).
        for pattern in ["/dev/*", "/run/*", "/proc/*", "/sys/*"] {
            let _ = options.excludes.add(b"", pattern.as_bytes());
        }
    }
    for pattern in &spec.excludes {
        if let Err(e) = options.excludes.add(b"", pattern.as_bytes()) {
            options.excludes.truncate(rules);
            return Err(fail(ErrorClass::Usage, e.to_string()));
        }
    }
    options.selection = spec.selection.clone();
    if let Some(cat) = catalog.as_deref_mut() {
        cat.start_directory(spec.name.stored_name().as_bytes())?;
    }
    let (writer, reader) = pipe(PIPE_PIECES);
    let (stream, walked) = std::thread::scope(|s| {
        let walker = s.spawn(|| {
            let mut encoder = Encoder::new(writer, Format::unified(), &root.metadata)?;
            // Each entry left out is reported, even with --quiet: it is data not backed up.
            let mut warn = |message: String| eprintln!("warning: {message}");
            let stats = stowage_fs::create_archive(
                root,
                &mut encoder,
                catalog.as_deref_mut(),
                options,
                &mut warn,
            )?;
            encoder.finish()?;
            Ok::<_, anyhow::Error>(stats)
        });
        let max = Buzhash::new(DEFAULT_AVG)
            .map(|b| b.max_size())
            .unwrap_or(16 << 20);
        let mut source = CdcSource::new(reader, Buzhash::new(DEFAULT_AVG).expect("valid average"));
        let stream = ctx.run_pipeline(spec.name.user_name(), None, &mut source, &spec.path, max);
        let walked = walker
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the file-tree walker panicked")));
        (stream, walked)
    });
    options.excludes.truncate(rules);
    options.selection = None;
    // A failed pipeline makes the walker fail too (its pipe closes): report the pipeline's error.
    let stream = stream?;
    let walked = walked.with_context(|| format!("backup of {} failed", spec.path))?;
    if let Some(cat) = catalog {
        cat.end_directory()?;
    }
    let mut summary = ArchiveSummary::new(spec.name.user_name(), &spec.path, &stream.stats);
    summary.tree = Some(walked);
    Ok((index_of(stream), summary))
}

/// Chunks and stores the catalog of every tree of the backup.
pub(super) fn store_catalog(
    ctx: &Ctx<'_>,
    catalog: CatalogWriter<Vec<u8>>,
) -> Result<DynamicIndex> {
    let bytes = catalog.finish()?;
    let chunker = Buzhash::new(CATALOG_AVG).expect("valid average");
    let max = chunker.max_size();
    let mut source = CdcSource::new(&bytes[..], chunker);
    let stream = ctx.run_pipeline(
        "catalog",
        Some(bytes.len() as u64),
        &mut source,
        "catalog",
        max,
    )?;
    Ok(index_of(stream))
}
