//! One directory tree into a pxar archive (a dynamic index, or a split pair) and its part of
//! the catalog.
//!
//! A walker thread encodes the tree into a bounded pipe; the chunk pipeline reads the pipe, cuts
//! it with the content-defined chunker and stores the chunks.

use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;

use stowage_archive::{Encoder, Format};
use stowage_chunker::{Buzhash, DEFAULT_AVG};
use stowage_core::session::IndexKind;
use stowage_core::{payload_pipe, pipe, BackupCounters, CdcSource, ImageBackupStats};
use stowage_format::CatalogWriter;
use stowage_fs::{Captured, CreateOptions, CreateStats, PayloadReuse, Selection};
use stowage_types::{ArchiveName, ErrorClass};

use super::reuse::{split_names, Previous, Reuser, SharedPayload};
use super::{BackupRun, Warn};
use crate::{Context, OpsError};

/// Pieces of 1 MiB the walker may run ahead of the chunker.
const PIPE_PIECES: usize = 8;

/// Which tree goes into which archive.
pub struct TreeSpec<'a> {
    pub name: &'a ArchiveName,
    /// The source directory, as the user named it.
    pub path: &'a str,
    /// Only these paths below `path` (a profile's selection); all without one.
    pub selection: Option<&'a Selection>,
    /// Exclude patterns of this tree, besides the options' own.
    pub excludes: &'a [String],
}

/// How a tree is stored.
pub enum TreeMode<'r> {
    /// One `.pxar` stream.
    Legacy,
    /// A `.mpxar` metadata and a `.ppxar` payload stream; with the previous snapshot's split
    /// archive, unchanged files are re-referenced instead of read.
    Split(Option<Previous<'r>>),
}

/// What a tree's backup did: the chunk figures of its streams, and what the walk found.
pub struct TreeOutcome {
    pub stats: ImageBackupStats,
    pub walked: CreateStats,
}

fn max_chunk() -> usize {
    Buzhash::new(DEFAULT_AVG)
        .map(|b| b.max_size())
        .unwrap_or(16 << 20)
}

fn archive_chunker() -> Buzhash {
    Buzhash::new(DEFAULT_AVG).expect("the default average is a valid chunk size")
}

fn walker_failed(path: &str) -> impl FnOnce() -> String + '_ {
    move || format!("backup of {path} failed")
}

fn panicked(what: &str) -> OpsError {
    OpsError::failed(ErrorClass::Internal, format!("the {what} panicked"))
}

impl BackupRun<'_> {
    /// Backs up the tree below `root` (opened from `spec.path`) as `spec.name`, adding its
    /// entries to `catalog`. `counters` count the archive stream and, for a split archive, the
    /// payload stream. Entries that cannot be read are left out and reported through `warn`.
    #[allow(clippy::too_many_arguments)]
    pub fn tree(
        &self,
        spec: &TreeSpec<'_>,
        root: Captured,
        mut catalog: Option<&mut CatalogWriter<Vec<u8>>>,
        options: &mut CreateOptions,
        mode: TreeMode<'_>,
        counters: [&BackupCounters; 2],
        warn: &Warn<'_>,
    ) -> Result<TreeOutcome, OpsError> {
        let rules = options.excludes.len();
        let whole = spec.selection.is_none_or(|s| s.is_all());
        if Path::new(spec.path) == Path::new("/") && whole {
            // The contents of these are made up by the kernel or lost at boot (a profile that
            // selects paths below them gets them).
            for pattern in ["/dev/*", "/run/*", "/proc/*", "/sys/*"] {
                let _ = options.excludes.add(pattern.as_bytes());
            }
        }
        for pattern in spec.excludes {
            if let Err(e) = options.excludes.add(pattern.as_bytes()) {
                options.excludes.truncate(rules);
                return Err(OpsError::failed(ErrorClass::Usage, e.to_string()));
            }
        }
        options.selection = spec.selection.cloned();
        if let Some(cat) = catalog.as_deref_mut() {
            cat.start_directory(spec.name.stored_name().as_bytes())?;
        }
        let encoded = match mode {
            TreeMode::Legacy => self.encode_unified(
                spec,
                root,
                catalog.as_deref_mut(),
                options,
                counters[0],
                warn,
            ),
            TreeMode::Split(previous) => self.encode_split(
                spec,
                root,
                catalog.as_deref_mut(),
                options,
                previous,
                counters,
                warn,
            ),
        };
        options.excludes.truncate(rules);
        options.selection = None;
        let outcome = encoded?;
        if let Some(cat) = catalog {
            cat.end_directory()?;
        }
        Ok(outcome)
    }

    /// One `.pxar` stream: a walker thread encodes into a pipe, the pipeline chunks it.
    fn encode_unified(
        &self,
        spec: &TreeSpec<'_>,
        root: Captured,
        catalog: Option<&mut CatalogWriter<Vec<u8>>>,
        options: &mut CreateOptions,
        counters: &BackupCounters,
        warn: &Warn<'_>,
    ) -> Result<TreeOutcome, OpsError> {
        let (writer, reader) = pipe(PIPE_PIECES);
        let (stream, walked) = std::thread::scope(|s| {
            let walker = s.spawn(|| {
                let mut encoder = Encoder::new(writer, Format::unified(), &root.metadata)?;
                let mut warn = |m: String| warn(m);
                let stats =
                    stowage_fs::create_archive(root, &mut encoder, catalog, options, &mut warn)?;
                encoder.finish()?;
                Ok::<_, OpsError>(stats)
            });
            let source = CdcSource::new(reader, archive_chunker());
            let kind = (IndexKind::Dynamic, max_chunk());
            let stream = self.stream(source, spec.path, spec.name, kind, None, counters);
            let walked = walker
                .join()
                .unwrap_or_else(|_| Err(panicked("file-tree walker")));
            (stream, walked)
        });
        // A failed pipeline makes the walker fail too (its pipe closes): report the pipeline's
        // error.
        let (writer, stream) = stream?;
        let walked = walked.context(walker_failed(spec.path))?;
        Self::close(writer, &stream)?;
        Ok(TreeOutcome {
            stats: stream.stats,
            walked,
        })
    }

    /// A `.mpxar` and a `.ppxar` stream, each chunked by its own pipeline.
    #[allow(clippy::too_many_arguments)]
    fn encode_split(
        &self,
        spec: &TreeSpec<'_>,
        root: Captured,
        catalog: Option<&mut CatalogWriter<Vec<u8>>>,
        options: &mut CreateOptions,
        previous: Option<Previous<'_>>,
        [meta_counters, payload_counters]: [&BackupCounters; 2],
        warn: &Warn<'_>,
    ) -> Result<TreeOutcome, OpsError> {
        let (meta_name, payload_name) = split_names(spec.name)?;
        let (meta_writer, meta_reader) = pipe(PIPE_PIECES);
        let (payload_writer, payload_source) = payload_pipe(PIPE_PIECES, archive_chunker());
        let kind = (IndexKind::Dynamic, max_chunk());
        let (meta, payload, walked) = std::thread::scope(|s| {
            let previous = previous.map(|p| p.start(s, self.threads, warn));
            let walker = s.spawn(|| {
                let shared = SharedPayload(Rc::new(RefCell::new(payload_writer)));
                let format = Format::split(shared.clone(), None);
                let mut encoder = Encoder::new(meta_writer, format, &root.metadata)?;
                let mut reuser = previous.map(|p| Reuser::new(p, shared.clone()));
                let reuse = reuser.as_mut().map(|r| r as &mut dyn PayloadReuse);
                let mut warn = |m: String| warn(m);
                let stats = stowage_fs::create_split_archive(
                    root,
                    &mut encoder,
                    catalog,
                    options,
                    &mut warn,
                    reuse,
                )?;
                encoder.finish()?;
                Ok::<_, OpsError>(stats)
            });
            let payload = s.spawn(|| {
                let (name, path) = (&payload_name, spec.path);
                self.stream(payload_source, path, name, kind, None, payload_counters)
            });
            let source = CdcSource::new(meta_reader, archive_chunker());
            let meta = self.stream(source, spec.path, &meta_name, kind, None, meta_counters);
            let payload = payload
                .join()
                .unwrap_or_else(|_| Err(panicked("payload pipeline")));
            let walked = walker
                .join()
                .unwrap_or_else(|_| Err(panicked("file-tree walker")));
            (meta, payload, walked)
        });
        let (payload_writer, payload) = payload?;
        let (meta_writer, meta) = meta?;
        let walked = walked.context(walker_failed(spec.path))?;
        Self::close(meta_writer, &meta)?;
        Self::close(payload_writer, &payload)?;
        let mut stats = meta.stats;
        stats.add(&payload.stats);
        Ok(TreeOutcome { stats, walked })
    }
}
