//! `stowage backup`: one snapshot of one or more images and small files.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::json;
use stowage_core::{backup_image, BackupCounters, BackupSession, ImageBackupStats};
use stowage_format::fixed_index::DEFAULT_CHUNK_SIZE;
use stowage_format::FixedIndex;
use stowage_types::{ArchiveKind, ArchiveName, BackupGroup, BackupTime, ErrorClass};

use crate::cli::{BackupArgs, GlobalOpts, OutputFormat};
use crate::exit::{fail, OK};
use crate::output::{bytes, percent, print_json, rate};
use crate::progress::Reporter;
use crate::{repo, source};

/// Largest file stored whole as a blob.
const BLOB_LIMIT: u64 = 16 * 1024 * 1024;

struct Spec {
    name: ArchiveName,
    path: String,
}

fn parse_spec(spec: &str) -> Result<Spec> {
    let (name, path) = spec.split_once(':').ok_or_else(|| {
        fail(
            ErrorClass::Usage,
            format!("backup spec '{spec}' must look like NAME.img:PATH or NAME.conf:FILE"),
        )
    })?;
    let name = ArchiveName::parse(name)?;
    if name.kind() == ArchiveKind::Pxar {
        return Err(fail(
            ErrorClass::Usage,
            format!("{name}: file-tree (.pxar) backups are not supported yet"),
        ));
    }
    if path.is_empty() {
        return Err(fail(
            ErrorClass::Usage,
            format!("backup spec '{spec}' has no path"),
        ));
    }
    Ok(Spec {
        name,
        path: path.to_string(),
    })
}

fn parse_time(text: &str) -> Result<BackupTime> {
    match text.parse::<i64>() {
        Ok(epoch) => Ok(BackupTime::from_epoch(epoch)?),
        Err(_) => Ok(text.parse()?),
    }
}

#[derive(Serialize)]
struct ArchiveSummary {
    archive: String,
    source: String,
    size: u64,
    chunks: u64,
    zero_bytes: u64,
    reused_bytes: u64,
    new_bytes: u64,
    new_chunks: u64,
    written_bytes: u64,
    compression_ratio: f64,
    duration_s: f64,
    throughput_bps: f64,
}

impl ArchiveSummary {
    fn new(archive: &ArchiveName, source: &str, s: &ImageBackupStats) -> Self {
        let secs = s.duration.as_secs_f64();
        ArchiveSummary {
            archive: archive.to_string(),
            source: source.to_string(),
            size: s.size,
            chunks: s.chunks,
            zero_bytes: s.zero_bytes,
            reused_bytes: s.reused_bytes,
            new_bytes: s.new_bytes,
            new_chunks: s.new_chunks,
            written_bytes: s.written_bytes,
            compression_ratio: ratio(s.new_bytes, s.written_bytes),
            duration_s: secs,
            throughput_bps: if secs > 0.0 {
                s.size as f64 / secs
            } else {
                0.0
            },
        }
    }

    fn print_text(&self) {
        let a = &self.archive;
        println!(
            "{a}: {} in {:.2} s ({}), {} chunks",
            bytes(self.size),
            self.duration_s,
            rate(self.size, self.duration_s),
            self.chunks
        );
        println!(
            "{a}: sparse/zero data {} ({:.1}%)",
            bytes(self.zero_bytes),
            percent(self.zero_bytes, self.size)
        );
        println!(
            "{a}: reused {} ({:.1}%)",
            bytes(self.reused_bytes),
            percent(self.reused_bytes, self.size)
        );
        println!(
            "{a}: new data {} written as {} (compression {:.2}x)",
            bytes(self.new_bytes),
            bytes(self.written_bytes),
            self.compression_ratio
        );
    }
}

fn ratio(plain: u64, encoded: u64) -> f64 {
    if encoded == 0 {
        1.0
    } else {
        plain as f64 / encoded as f64
    }
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
}

pub fn run(g: &GlobalOpts, args: BackupArgs) -> Result<i32> {
    let started = Instant::now();
    let specs = args
        .specs
        .iter()
        .map(|s| parse_spec(s))
        .collect::<Result<Vec<_>>>()?;
    let id = args.backup_id.clone().unwrap_or_else(hostname);
    let group = BackupGroup::new(args.backup_type.parse()?, &id)?;
    let time = args.backup_time.as_deref().map(parse_time).transpose()?;
    // Open every source before anything is written, so a typo costs nothing.
    let mut sources = Vec::new();
    let mut blobs = Vec::new();
    for spec in &specs {
        match spec.name.kind() {
            ArchiveKind::Image => sources.push((spec, source::open(&spec.path)?)),
            _ => blobs.push((spec, source::read_small_file(&spec.path, BLOB_LIMIT)?)),
        }
    }

    let store = repo::open(g)?;
    let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
    let mut writer = store.begin_backup(&group, time, &format!("{user}@pam"))?;
    let talk = g.output_format == OutputFormat::Text;
    if !g.quiet {
        eprintln!("Starting backup: {}", writer.snapshot());
        match writer.base() {
            Some(b) => eprintln!("Incremental against {b}"),
            None => eprintln!("No previous snapshot: full backup"),
        }
    }
    let session = BackupSession::new(writer.known_chunks());
    if g.verbose {
        eprintln!(
            "{} chunks known from the previous snapshot",
            session.known_count()
        );
    }
    let threads = super::threads(g);
    let mut summaries = Vec::new();
    for (spec, mut src) in sources {
        let counters = Arc::new(BackupCounters::default());
        let probe_counters = counters.clone();
        let reporter = Reporter::start(
            spec.name.to_string(),
            src.size,
            Box::new(move || {
                (
                    probe_counters.read.load(Ordering::Relaxed),
                    probe_counters.written.load(Ordering::Relaxed),
                )
            }),
            !g.quiet,
        );
        let result = backup_image(
            &mut *src.reader,
            &src.name,
            store.chunk_store(),
            &session,
            DEFAULT_CHUNK_SIZE as usize,
            threads,
            &counters,
        );
        reporter.finish();
        let image = result.with_context(|| format!("backup of {} failed", spec.name))?;
        if image.size == 0 {
            return Err(fail(
                ErrorClass::Source,
                format!("source {} is empty; nothing to back up", src.name),
            ));
        }
        let index = FixedIndex {
            uuid: *uuid::Uuid::new_v4().as_bytes(),
            ctime: BackupTime::now().epoch(),
            size: image.size,
            chunk_size: image.chunk_size,
            digests: image.digests,
        };
        writer.add_fixed_index(&spec.name, &index)?;
        let summary = ArchiveSummary::new(&spec.name, &src.name, &image.stats);
        if talk {
            summary.print_text();
        }
        summaries.push(summary);
    }
    for (spec, data) in &blobs {
        writer.add_blob(&spec.name, data)?;
        if talk {
            println!(
                "{}: stored {} from {}",
                spec.name,
                bytes(data.len() as u64),
                spec.path
            );
        }
    }
    let totals = Totals::of(&summaries);
    let mut unprotected = serde_json::Map::new();
    unprotected.insert(
        "chunk_upload_stats".into(),
        json!({
            "count": totals.new_chunks,
            "size": totals.new_bytes,
            "compressed_size": totals.written_bytes,
            "duplicates": totals.chunks - totals.new_chunks,
        }),
    );
    let snapshot = writer.finish(unprotected)?;
    let secs = started.elapsed().as_secs_f64();
    let report = json!({
        "snapshot": snapshot.to_string(),
        "archives": summaries,
        "blobs": blobs.iter().map(|(s, d)| json!({"archive": s.name.to_string(), "size": d.len()})).collect::<Vec<_>>(),
        "size": totals.size,
        "zero_bytes": totals.zero_bytes,
        "reused_bytes": totals.reused_bytes,
        "new_bytes": totals.new_bytes,
        "written_bytes": totals.written_bytes,
        "compression_ratio": ratio(totals.new_bytes, totals.written_bytes),
        "duration_s": secs,
        "throughput_bps": if secs > 0.0 { totals.size as f64 / secs } else { 0.0 },
    });
    if !print_json(g.output_format, &report)? {
        println!("Snapshot: {snapshot}");
        println!(
            "Duration: {secs:.2} s, {} of images at {}",
            bytes(totals.size),
            rate(totals.size, secs)
        );
    }
    Ok(OK)
}

#[derive(Default)]
struct Totals {
    size: u64,
    chunks: u64,
    zero_bytes: u64,
    reused_bytes: u64,
    new_bytes: u64,
    new_chunks: u64,
    written_bytes: u64,
}

impl Totals {
    fn of(summaries: &[ArchiveSummary]) -> Totals {
        let mut t = Totals::default();
        for s in summaries {
            t.size += s.size;
            t.chunks += s.chunks;
            t.zero_bytes += s.zero_bytes;
            t.reused_bytes += s.reused_bytes;
            t.new_bytes += s.new_bytes;
            t.new_chunks += s.new_chunks;
            t.written_bytes += s.written_bytes;
        }
        t
    }
}
