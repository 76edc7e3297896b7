//! One directory tree into a pxar archive (a dynamic index) and its part of the catalog.
//!
//! A walker thread encodes the tree into a bounded pipe; the chunk pipeline reads the pipe, cuts
//! it with the content-defined chunker and stores the chunks.

use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;

use anyhow::{Context, Result};
use stowage_archive::{Encoder, Format};
use stowage_chunker::{Buzhash, CATALOG_AVG, DEFAULT_AVG};
use stowage_core::session::IndexKind;
use stowage_core::{payload_pipe, pipe, BackupCounters, CdcSource, ImageBackupStats};
use stowage_format::CatalogWriter;
use stowage_fs::{Captured, CreateOptions, CreateStats, Excludes, PayloadReuse};
use stowage_types::{ArchiveName, ErrorClass};

use super::reuse::{split_names, PreviousArchive, Reuser, SharedPayload};
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
            .add(pattern.as_bytes())
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

/// How a tree is stored.
pub(super) enum Mode {
    /// One `.pxar` stream.
    Legacy,
    /// A `.mpxar` metadata and a `.ppxar` payload stream; with the previous snapshot's split
    /// archive, unchanged files are re-referenced instead of read.
    Split(Option<PreviousArchive>),
}

/// What a tree's encoding produced (its indexes are closed).
type Encoded = (ImageBackupStats, CreateStats);

pub(super) fn backup(
    ctx: &Ctx<'_>,
    spec: &Spec,
    root: Captured,
    mut catalog: Option<&mut CatalogWriter<Vec<u8>>>,
    options: &mut CreateOptions,
    mode: Mode,
) -> Result<ArchiveSummary> {
    let rules = options.excludes.len();
    let whole = spec.selection.as_ref().is_none_or(|s| s.is_all());
    if Path::new(&spec.path) == Path::new("/") && whole {
        // The contents of these are made up by the kernel or lost at boot (a profile that selects
        // paths below them gets them).
        for pattern in ["/dev/*", "/run/*", "/proc/*", "/sys/*"] {
            let _ = options.excludes.add(pattern.as_bytes());
        }
    }
    for pattern in &spec.excludes {
        if let Err(e) = options.excludes.add(pattern.as_bytes()) {
            options.excludes.truncate(rules);
            return Err(fail(ErrorClass::Usage, e.to_string()));
        }
    }
    options.selection = spec.selection.clone();
    if let Some(cat) = catalog.as_deref_mut() {
        cat.start_directory(spec.name.stored_name().as_bytes())?;
    }
    let encoded = match mode {
        Mode::Legacy => encode_unified(ctx, spec, root, catalog.as_deref_mut(), options),
        Mode::Split(previous) => {
            encode_split(ctx, spec, root, catalog.as_deref_mut(), options, previous)
        }
    };
    options.excludes.truncate(rules);
    options.selection = None;
    let (stats, walked) = encoded?;
    if let Some(cat) = catalog {
        cat.end_directory()?;
    }
    let mut summary = ArchiveSummary::new(spec.name.user_name(), &spec.path, &stats);
    summary.tree = Some(walked);
    Ok(summary)
}

fn max_chunk() -> usize {
    Buzhash::new(DEFAULT_AVG)
        .map(|b| b.max_size())
        .unwrap_or(16 << 20)
}

fn archive_chunker() -> Buzhash {
    Buzhash::new(DEFAULT_AVG).expect("the default average is a valid chunk size")
}

fn warn(message: String) {
    // Each entry left out is reported, even with --quiet: it is data not backed up.
    eprintln!("warning: {message}");
}

/// One `.pxar` stream: a walker thread encodes into a pipe, the pipeline chunks it.
fn encode_unified(
    ctx: &Ctx<'_>,
    spec: &Spec,
    root: Captured,
    catalog: Option<&mut CatalogWriter<Vec<u8>>>,
    options: &mut CreateOptions,
) -> Result<Encoded> {
    let (writer, reader) = pipe(PIPE_PIECES);
    let counters = Arc::new(BackupCounters::default());
    let reporter = ctx.report(spec.name.user_name(), None, &[&counters]);
    let (stream, walked) = std::thread::scope(|s| {
        let walker = s.spawn(|| {
            let mut encoder = Encoder::new(writer, Format::unified(), &root.metadata)?;
            let stats =
                stowage_fs::create_archive(root, &mut encoder, catalog, options, &mut warn)?;
            encoder.finish()?;
            Ok::<_, anyhow::Error>(stats)
        });
        let source = CdcSource::new(reader, archive_chunker());
        let stream = ctx.run_pipeline(
            spec.name.user_name(),
            source,
            &spec.path,
            &spec.name,
            (IndexKind::Dynamic, max_chunk()),
            None,
            &counters,
        );
        let walked = walker
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the file-tree walker panicked")));
        (stream, walked)
    });
    // A failed pipeline makes the walker fail too (its pipe closes): report the pipeline's error.
    let (writer, stream) = stream?;
    let walked = walked.with_context(|| format!("backup of {} failed", spec.path))?;
    reporter.finish();
    Ctx::close(writer, &stream)?;
    Ok((stream.stats, walked))
}

/// A `.mpxar` and a `.ppxar` stream, each chunked by its own pipeline.
fn encode_split(
    ctx: &Ctx<'_>,
    spec: &Spec,
    root: Captured,
    catalog: Option<&mut CatalogWriter<Vec<u8>>>,
    options: &mut CreateOptions,
    previous: Option<PreviousArchive>,
) -> Result<Encoded> {
    let (meta_name, payload_name) = split_names(&spec.name)?;
    let (meta_writer, meta_reader) = pipe(PIPE_PIECES);
    let (payload_writer, payload_source) = payload_pipe(PIPE_PIECES, archive_chunker());
    let (meta_counters, payload_counters) = (
        Arc::new(BackupCounters::default()),
        Arc::new(BackupCounters::default()),
    );
    let reporter = ctx.report(
        spec.name.user_name(),
        None,
        &[&meta_counters, &payload_counters],
    );
    let (meta, payload, walked) = std::thread::scope(|s| {
        let walker = s.spawn(|| {
            let shared = SharedPayload(Rc::new(RefCell::new(payload_writer)));
            let format = Format::split(shared.clone(), None);
            let mut encoder = Encoder::new(meta_writer, format, &root.metadata)?;
            let mut reuser = previous.map(|p| Reuser::new(p, shared.clone()));
            let reuse = reuser.as_mut().map(|r| r as &mut dyn PayloadReuse);
            let stats = stowage_fs::create_split_archive(
                root,
                &mut encoder,
                catalog,
                options,
                &mut warn,
                reuse,
            )?;
            encoder.finish()?;
            Ok::<_, anyhow::Error>(stats)
        });
        let payload = s.spawn(|| {
            ctx.run_pipeline(
                payload_name.user_name(),
                payload_source,
                &spec.path,
                &payload_name,
                (IndexKind::Dynamic, max_chunk()),
                None,
                &payload_counters,
            )
        });
        let source = CdcSource::new(meta_reader, archive_chunker());
        let meta = ctx.run_pipeline(
            meta_name.user_name(),
            source,
            &spec.path,
            &meta_name,
            (IndexKind::Dynamic, max_chunk()),
            None,
            &meta_counters,
        );
        let payload = payload
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the payload pipeline panicked")));
        let walked = walker
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the file-tree walker panicked")));
        (meta, payload, walked)
    });
    let (payload_writer, payload) = payload?;
    let (meta_writer, meta) = meta?;
    let walked = walked.with_context(|| format!("backup of {} failed", spec.path))?;
    reporter.finish();
    Ctx::close(meta_writer, &meta)?;
    Ctx::close(payload_writer, &payload)?;
    let mut stats = meta.stats;
    stats.add(&payload.stats);
    Ok((stats, walked))
}

/// Chunks and stores the catalog of every tree of the backup.
pub(super) fn store_catalog(ctx: &Ctx<'_>, catalog: CatalogWriter<Vec<u8>>) -> Result<()> {
    let bytes = catalog.finish()?;
    let chunker = Buzhash::new(CATALOG_AVG).expect("valid average");
    let max = chunker.max_size();
    let source = CdcSource::new(&bytes[..], chunker);
    let counters = BackupCounters::default();
    let name = ArchiveName::parse("catalog.pcat1")?;
    let (writer, stream) = ctx.run_pipeline(
        "catalog",
        source,
        "catalog",
        &name,
        (IndexKind::Dynamic, max),
        None,
        &counters,
    )?;
    Ctx::close(writer, &stream)
}
