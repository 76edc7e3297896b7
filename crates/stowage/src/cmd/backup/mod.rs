//! `stowage backup`: one snapshot of images, directory trees and small files.

mod profile;
mod summary;

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use serde_json::json;
use stowage_core::session::{BackupTarget, SnapshotReader};
use stowage_core::{BackupCounters, BackupSession, FastHashes};
use stowage_datastore::{Datastore, LocalRepository};
use stowage_format::CatalogWriter;
use stowage_fs::{CreateOptions, Excludes};
use stowage_ops::backup::{
    capture_record, now_secs, BackupRun, Previous, TreeMode, TreeSpec, CAPTURE_RECORD,
};
use stowage_types::{
    ArchiveKind, ArchiveName, BackupGroup, BackupTime, Digest, ErrorClass, SnapshotRef,
};

use crate::cli::{BackupArgs, ChangeDetection, GlobalOpts, OutputFormat};
use crate::exit::{fail, OK, PARTIAL};
use crate::output::{bytes, print_json, rate};
use crate::progress::{Reporter, Sample};
use crate::{fast_hash_cache, repo, source};
use summary::{ratio, totals, ArchiveSummary};

/// Largest file stored whole as a blob.
const BLOB_LIMIT: u64 = 16 * 1024 * 1024;

struct Spec {
    name: ArchiveName,
    path: String,
    /// File-tree archives of a profile: only these paths below `path`.
    selection: Option<stowage_fs::Selection>,
    /// File-tree archives of a profile: its exclude patterns, besides `--exclude`.
    excludes: Vec<String>,
}

fn parse_spec(spec: &str) -> Result<Spec> {
    let (name, path) = spec.split_once(':').ok_or_else(|| {
        fail(
            ErrorClass::Usage,
            format!("backup spec '{spec}' must look like NAME.img:PATH, NAME.pxar:DIR or NAME.conf:FILE"),
        )
    })?;
    let name = ArchiveName::for_backup(name)?;
    if name.kind() == ArchiveKind::Pxar && !name.user_name().ends_with(".pxar") {
        return Err(fail(
            ErrorClass::Usage,
            format!("{name}: name a file-tree archive NAME.pxar"),
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
        selection: None,
        excludes: Vec::new(),
    })
}

/// Refuses two archives of one name (from specs and the profile) before anything runs.
fn check_unique(specs: &[Spec], profile: Option<&profile::Prepared>) -> Result<()> {
    let mut names: Vec<&ArchiveName> = specs.iter().map(|s| &s.name).collect();
    if let Some(p) = profile {
        names.extend(p.profile.commands.iter().map(|c| &c.log));
    }
    for (i, name) in names.iter().enumerate() {
        if names[..i]
            .iter()
            .any(|n| n.stored_name() == name.stored_name())
        {
            return Err(fail(
                ErrorClass::Usage,
                format!("two archives named {name}: rename one"),
            ));
        }
    }
    Ok(())
}

fn parse_time(text: &str) -> Result<BackupTime> {
    match text.parse::<i64>() {
        Ok(epoch) => Ok(BackupTime::from_epoch(epoch)?),
        Err(_) => Ok(text.parse()?),
    }
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
}

/// A source opened before the snapshot is started, so a typo costs nothing.
enum Planned<'a> {
    Image(&'a Spec, source::Source),
    Tree(&'a Spec, Box<stowage_fs::Captured>),
    Blob(&'a Spec, Vec<u8>),
}

fn plan(specs: &[Spec]) -> Result<Vec<Planned<'_>>> {
    specs
        .iter()
        .map(|spec| {
            Ok(match spec.name.kind() {
                ArchiveKind::Image => Planned::Image(spec, source::open(&spec.path)?),
                ArchiveKind::Pxar => Planned::Tree(spec, Box::new(open_root(&spec.path)?)),
                ArchiveKind::Blob => {
                    Planned::Blob(spec, source::read_small_file(&spec.path, BLOB_LIMIT)?)
                }
            })
        })
        .collect()
}

/// Progress of one archive: the bytes its pipelines (one, or two for a split archive) have read
/// and written to the store.
fn report(
    g: &GlobalOpts,
    label: &str,
    total: Option<u64>,
    counters: &[&Arc<BackupCounters>],
) -> Reporter {
    let counters: Vec<Arc<BackupCounters>> = counters.iter().map(|c| Arc::clone(c)).collect();
    let sum = move |f: fn(&BackupCounters) -> u64| counters.iter().map(|c| f(c)).sum::<u64>();
    Reporter::start(
        label.to_string(),
        Box::new(move || {
            Sample::bytes(sum(|c| c.read.load(Ordering::Relaxed)), total)
                .with("written", sum(|c| c.written.load(Ordering::Relaxed)))
        }),
        !g.quiet,
    )
}

/// Options from the command line shared by every tree of the backup.
fn tree_options(args: &BackupArgs) -> Result<CreateOptions> {
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

fn open_root(path: &str) -> Result<stowage_fs::Captured> {
    stowage_fs::open_root(std::path::Path::new(path)).map_err(|e| {
        fail(
            ErrorClass::Source,
            format!("cannot read source directory {path}: {e}"),
        )
    })
}

/// An entry left out of a tree: reported even with --quiet, it is data not backed up.
fn warn(message: String) {
    eprintln!("warning: {message}");
}

/// How a tree is stored: `legacy` one stream; `data` split; `metadata` split, re-using the
/// unchanged files of the previous snapshot's (`base`) split archive of the same name.
fn tree_mode<'r>(
    g: &GlobalOpts,
    mode: ChangeDetection,
    base: Option<&'r dyn SnapshotReader>,
    spec: &Spec,
) -> Result<TreeMode<'r>> {
    Ok(match (mode, base) {
        (ChangeDetection::Legacy, _) => TreeMode::Legacy,
        (ChangeDetection::Data, _) | (ChangeDetection::Metadata, None) => TreeMode::Split(None),
        (ChangeDetection::Metadata, Some(reader)) => {
            let previous = Previous::open(reader, (&spec.name, &spec.path))?;
            let base = reader.snapshot();
            if !g.quiet {
                match &previous {
                    Some(_) => eprintln!(
                        "{}: re-using unchanged files of {base} (its metadata is read alongside the walk)",
                        spec.name
                    ),
                    None => eprintln!(
                        "{}: {base} has no split archive of this name: every file is read",
                        spec.name
                    ),
                }
            }
            TreeMode::Split(previous)
        }
    })
}

pub fn run(g: &GlobalOpts, args: BackupArgs) -> Result<i32> {
    let started = Instant::now();
    // Before any file is read: change detection trusts what a later backup finds unchanged
    // since this moment (see `stowage_ops::backup::capture_record`).
    let capture_started = now_secs();
    let mut specs = args
        .specs
        .iter()
        .map(|s| parse_spec(s))
        .collect::<Result<Vec<_>>>()?;
    let id = args.backup_id.clone().unwrap_or_else(hostname);
    let group = BackupGroup::new(args.backup_type.parse()?, &id)?;
    let time = args.backup_time.as_deref().map(parse_time).transpose()?;
    let mut tree_options = tree_options(&args)?;
    let mut prepared = args
        .profile
        .as_deref()
        .map(|arg| profile::prepare(g, arg))
        .transpose()?;
    if let Some(spec) = prepared.as_mut().and_then(|p| p.spec.take()) {
        specs.push(spec);
    }
    check_unique(&specs, prepared.as_ref())?;
    let planned = plan(&specs)?;

    let store = repo::open(g)?;
    // Before the snapshot starts: a critical command that fails leaves nothing behind.
    let ran = match &prepared {
        Some(p) => profile::run_commands(g, &p.profile)?,
        None => Vec::new(),
    };
    let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
    let repository = LocalRepository::new(&store, &format!("{user}@pam"));
    let target = repository.begin(&group, time)?;
    let talk = g.output_format == OutputFormat::Text;
    if !g.quiet {
        eprintln!("Starting backup: {}", target.snapshot());
        match target.base() {
            Some(b) => eprintln!("Incremental against {b}"),
            None => eprintln!("No previous snapshot: full backup"),
        }
    }
    let session = BackupSession::new(target.known_chunks()?);
    if g.verbose {
        eprintln!(
            "{} chunks known from the previous snapshot",
            session.known_count()
        );
    }
    let fast = load_fast_hashes(&store, &group, target.base(), &planned, session.known());
    if g.verbose {
        eprintln!(
            "{} fast hashes (BLAKE3) from the previous backup",
            fast.len()
        );
    }
    let run = BackupRun {
        target: &target,
        session: &session,
        threads: g.worker_threads(),
        fast: &fast,
    };
    // The previous snapshot, read for metadata change detection.
    let base_reader = match (args.change_detection_mode, target.base()) {
        (ChangeDetection::Metadata, Some(base)) => Some(store.open_snapshot(base)?),
        _ => None,
    };
    let has_tree = planned.iter().any(|p| matches!(p, Planned::Tree(..)));
    let mut catalog = match has_tree {
        true => Some(CatalogWriter::new(Vec::new())?),
        false => None,
    };
    let mut summaries = Vec::new();
    let mut fast_pairs = Vec::new();
    let mut blobs = Vec::new();
    let mut warnings = 0;
    for item in planned {
        let summary = match item {
            Planned::Image(spec, src) => {
                let counters = Arc::new(BackupCounters::default());
                let reporter = report(g, spec.name.user_name(), src.size, &[&counters]);
                let image = run.image(&spec.name, src.reader, &src.name, &counters)?;
                reporter.finish();
                fast_pairs.push((spec.name.clone(), image.fast_pairs));
                ArchiveSummary::new(spec.name.user_name(), &src.name, &image.stats)
            }
            Planned::Tree(spec, root) => {
                let base = base_reader.as_ref().map(|r| r as &dyn SnapshotReader);
                let mode = tree_mode(g, args.change_detection_mode, base, spec)?;
                let counters = [Arc::default(), Arc::default()];
                let reporter = report(
                    g,
                    spec.name.user_name(),
                    None,
                    &[&counters[0], &counters[1]],
                );
                let tree = TreeSpec {
                    name: &spec.name,
                    path: &spec.path,
                    selection: spec.selection.as_ref(),
                    excludes: &spec.excludes,
                };
                let outcome = run.tree(
                    &tree,
                    *root,
                    catalog.as_mut(),
                    &mut tree_options,
                    mode,
                    [&counters[0], &counters[1]],
                    &warn,
                )?;
                reporter.finish();
                warnings += outcome.walked.warnings;
                let mut summary =
                    ArchiveSummary::new(spec.name.user_name(), &spec.path, &outcome.stats);
                summary.tree = Some(outcome.walked);
                summary
            }
            Planned::Blob(spec, data) => {
                target.add_blob(&spec.name, &data)?;
                if talk {
                    let size = bytes(data.len() as u64);
                    println!("{}: stored {size} from {}", spec.name, spec.path);
                }
                blobs.push(json!({"archive": spec.name.to_string(), "size": data.len()}));
                continue;
            }
        };
        if talk {
            summary.print_text();
        }
        summaries.push(summary);
    }
    blobs.extend(profile::store_logs(&target, &ran, talk)?);
    if let Some(catalog) = catalog {
        run.catalog(catalog)?;
    }
    let totals = totals(&summaries);
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
    let trees = specs.iter().filter(|s| s.name.kind() == ArchiveKind::Pxar);
    unprotected.insert(
        CAPTURE_RECORD.into(),
        capture_record(capture_started, trees.map(|s| (&s.name, s.path.as_str()))),
    );
    let snapshot = BackupTarget::finish(Box::new(target), unprotected)?;
    save_fast_hashes(g, &store, &snapshot, &fast_pairs);
    let secs = started.elapsed().as_secs_f64();
    let mut report = json!({
        "snapshot": snapshot.to_string(),
        "archives": summaries,
        "blobs": blobs,
        "size": totals.size,
        "zero_bytes": totals.zero_bytes,
        "reused_bytes": totals.reused_bytes,
        "new_bytes": totals.new_bytes,
        "written_bytes": totals.written_bytes,
        "compression_ratio": ratio(totals.new_bytes, totals.written_bytes),
        "warnings": warnings,
        "duration_s": secs,
        "throughput_bps": if secs > 0.0 { totals.size as f64 / secs } else { 0.0 },
    });
    if let Some(p) = &prepared {
        report["profile"] = profile::report(p, &ran);
    }
    if !print_json(g.output_format, &report)? {
        println!("Snapshot: {snapshot}");
        println!(
            "Duration: {secs:.2} s, {} of archives at {}",
            bytes(totals.size),
            rate(totals.size, secs)
        );
    }
    if warnings > 0 {
        if !g.quiet {
            eprintln!("warning: {warnings} entries could not be backed up (see above); the snapshot is partial");
        }
        return Ok(PARTIAL);
    }
    Ok(OK)
}

/// The BLAKE3 pairs the previous backups of this group's image archives left in the cache.
fn load_fast_hashes(
    store: &Datastore,
    group: &BackupGroup,
    base: Option<&SnapshotRef>,
    planned: &[Planned],
    known: &HashSet<Digest>,
) -> FastHashes {
    let Some(base) = base else {
        return FastHashes::default();
    };
    let pairs = planned
        .iter()
        .filter_map(|p| match p {
            Planned::Image(spec, _) => fast_hash_cache::dir(store, group, &spec.name),
            _ => None,
        })
        .flat_map(|dir| fast_hash_cache::load(&dir, base.time.epoch()));
    FastHashes::new(pairs, known)
}

/// Records this backup's BLAKE3 pairs for the next one; a cache that cannot be written only
/// costs the next backup its speed-up.
fn save_fast_hashes(
    g: &GlobalOpts,
    store: &Datastore,
    snapshot: &SnapshotRef,
    archives: &[(ArchiveName, fast_hash_cache::Pairs)],
) {
    let times: Vec<i64> = match store.snapshots(&snapshot.group) {
        Ok(list) => list.iter().map(|s| s.snapshot.time.epoch()).collect(),
        Err(_) => return,
    };
    for (name, pairs) in archives {
        let Some(path) = fast_hash_cache::dir(store, &snapshot.group, name) else {
            continue;
        };
        let exists = |t: i64| times.contains(&t);
        if let Err(e) = fast_hash_cache::save(&path, snapshot.time.epoch(), pairs, exists) {
            if g.verbose {
                eprintln!(
                    "warning: cannot write the fast-hash cache {}: {e}",
                    path.display()
                );
            }
        }
    }
}
