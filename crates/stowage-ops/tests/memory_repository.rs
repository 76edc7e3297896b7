//! The operations run against the repository in memory: what works there works on any
//! implementation of the session seams.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use stowage_core::session::{BackupTarget, MemoryRepository, Repository};
use stowage_core::{BackupCounters, BackupSession, FastHashes, RestoreCounters, StreamSource};
use stowage_format::{CatalogReader, CatalogWriter};
use stowage_fs::{CreateOptions, Excludes};
use stowage_ops::backup::{BackupRun, Previous, TreeMode, TreeSpec};
use stowage_ops::restore::{restore_tree, tree_indexes, ImageRestore, TreeTarget};
use stowage_types::{ArchiveName, BackupGroup, BackupType, SnapshotRef};

fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A small tree with what restores get wrong: nesting, an empty file, a symlink, a hardlink and
/// a file big enough for several chunks.
fn make_tree(root: &Path) {
    fs::create_dir_all(root.join("etc/deep/er")).unwrap();
    fs::write(root.join("etc/hosts"), b"127.0.0.1 localhost\n").unwrap();
    fs::write(root.join("etc/empty"), b"").unwrap();
    fs::write(root.join("etc/deep/er/big.bin"), pseudo_random(1, 9 << 20)).unwrap();
    std::os::unix::fs::symlink("../hosts", root.join("etc/deep/link")).unwrap();
    fs::hard_link(root.join("etc/hosts"), root.join("hosts.hard")).unwrap();
}

/// Every entry below `root`: file contents, symlink targets, directories.
fn listing(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let meta = fs::symlink_metadata(&path).unwrap();
            let value = if meta.is_dir() {
                stack.push(path.clone());
                b"<dir>".to_vec()
            } else if meta.file_type().is_symlink() {
                fs::read_link(&path)
                    .unwrap()
                    .into_os_string()
                    .into_encoded_bytes()
            } else {
                fs::read(&path).unwrap()
            };
            out.insert(rel, value);
        }
    }
    out
}

fn options() -> CreateOptions {
    CreateOptions {
        one_file_system: false,
        excludes: Excludes::new(),
        selection: None,
    }
}

fn on_two_threads<'a>(
    target: &'a dyn BackupTarget,
    session: &'a BackupSession,
    fast: &'a FastHashes,
) -> BackupRun<'a> {
    BackupRun {
        target,
        session,
        threads: 2,
        fast,
    }
}

fn group() -> BackupGroup {
    BackupGroup::new(BackupType::Host, "ops").unwrap()
}

fn warn(message: String) {
    panic!("unexpected warning: {message}");
}

/// Backs up `source` as `root.pxar` (and a catalog) in `mode`; returns the snapshot and the
/// bytes the backup read and re-used.
fn back_up_tree(
    repo: &MemoryRepository,
    source: &Path,
    split: bool,
    metadata_reuse: bool,
) -> (SnapshotRef, u64) {
    let target = repo.begin_backup(&group(), None).unwrap();
    let session = BackupSession::new(target.known_chunks().unwrap());
    let fast = FastHashes::default();
    let run = on_two_threads(&*target, &session, &fast);
    let base = match (metadata_reuse, target.base()) {
        (true, Some(base)) => Some(repo.open_snapshot(base).unwrap()),
        _ => None,
    };
    let name = ArchiveName::parse("root.pxar").unwrap();
    let path = source.to_str().unwrap();
    let mode = match (split, base.as_deref()) {
        (false, _) => TreeMode::Legacy,
        (true, None) => TreeMode::Split(None),
        (true, Some(reader)) => TreeMode::Split(Some(
            Previous::open(reader, (&name, path))
                .unwrap()
                .expect("a split archive"),
        )),
    };
    let mut catalog = CatalogWriter::new(Vec::new()).unwrap();
    let spec = TreeSpec {
        name: &name,
        path,
        selection: None,
        excludes: &[],
    };
    let counters = [BackupCounters::default(), BackupCounters::default()];
    let root = stowage_fs::open_root(source).unwrap();
    let outcome = run
        .tree(
            &spec,
            root,
            Some(&mut catalog),
            &mut options(),
            mode,
            [&counters[0], &counters[1]],
            &warn,
        )
        .unwrap();
    run.catalog(catalog).unwrap();
    drop(base);
    let snapshot = target.finish(Default::default()).unwrap();
    (snapshot, outcome.stats.reused_bytes)
}

fn restore_and_compare(repo: &MemoryRepository, snapshot: &SnapshotRef, source: &Path) {
    let reader = repo.open_snapshot(snapshot).unwrap();
    let name = ArchiveName::parse("root.pxar").unwrap();
    let indexes = tree_indexes(&*reader, &name).unwrap();
    let out = tempfile::tempdir().unwrap();
    let into = out.path().join("restored");
    let counters = [RestoreCounters::default(), RestoreCounters::default()];
    let to = TreeTarget {
        target: into.to_str().unwrap(),
        overwrite: false,
        includes: &[] as &[OsString],
    };
    let entries = restore_tree(
        reader.chunks(),
        &indexes.archive,
        indexes.payload.as_ref(),
        "root.pxar",
        to,
        2,
        &counters,
    )
    .unwrap();
    assert_eq!(entries, 8);
    assert_eq!(listing(&into), listing(source));
    let (a, b) = (
        fs::metadata(into.join("etc/hosts")).unwrap(),
        fs::metadata(into.join("hosts.hard")).unwrap(),
    );
    assert_eq!(a.ino(), b.ino(), "the hardlink is restored as one");

    let mut out = Vec::new();
    stowage_ops::cat::cat_file(&*reader, &name, b"/etc/deep/er/big.bin", &mut out, 2).unwrap();
    assert_eq!(out, fs::read(source.join("etc/deep/er/big.bin")).unwrap());
    let err = stowage_ops::cat::cat_file(&*reader, &name, b"etc/deep/link", &mut out, 2)
        .expect_err("a symlink is not a regular file");
    assert!(err.to_string().contains("not a regular file"), "{err}");

    let catalog = stowage_ops::catalog::load_catalog(&*reader, 2).unwrap();
    let paths: Vec<String> = CatalogReader::new(&catalog)
        .unwrap()
        .walk()
        .map(|item| String::from_utf8_lossy(&item.unwrap().0).into_owned())
        .collect();
    assert!(
        paths.iter().any(|p| p.ends_with("etc/deep/er/big.bin")),
        "{paths:?}"
    );
}

#[test]
fn a_legacy_tree_round_trips() {
    let src = tempfile::tempdir().unwrap();
    make_tree(src.path());
    let repo = MemoryRepository::new();
    let (snapshot, _) = back_up_tree(&repo, src.path(), false, false);
    restore_and_compare(&repo, &snapshot, src.path());
    export_and_compare(&repo, &snapshot, src.path());
}

/// The tree exported as tar holds every file with its content, and the symlink.
fn export_and_compare(repo: &MemoryRepository, snapshot: &SnapshotRef, source: &Path) {
    let reader = repo.open_snapshot(snapshot).unwrap();
    let indexes = tree_indexes(&*reader, &ArchiveName::parse("root.pxar").unwrap()).unwrap();
    let mut tar = Vec::new();
    stowage_ops::export::tree_to_tar(&*reader, &indexes, "root.pxar", &mut tar, 2).unwrap();
    let mut found = BTreeMap::new();
    for entry in tar::Archive::new(&tar[..]).entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry
            .path()
            .unwrap()
            .to_string_lossy()
            .trim_end_matches('/')
            .to_string();
        let value = match entry.header().entry_type() {
            tar::EntryType::Directory => b"<dir>".to_vec(),
            tar::EntryType::Symlink => entry.link_name_bytes().unwrap().into_owned(),
            tar::EntryType::Link => {
                fs::read(source.join(entry.link_name().unwrap().unwrap())).unwrap()
            }
            _ => {
                let mut content = Vec::new();
                std::io::Read::read_to_end(&mut entry, &mut content).unwrap();
                content
            }
        };
        found.insert(path, value);
    }
    found.retain(|path, _| !path.is_empty() && path != ".");
    let found: BTreeMap<String, Vec<u8>> = found
        .into_iter()
        .map(|(p, v)| (p.trim_start_matches("./").to_string(), v))
        .collect();
    assert_eq!(found, listing(source));
}

#[test]
fn a_split_tree_round_trips_and_its_next_backup_reuses_unchanged_files() {
    let src = tempfile::tempdir().unwrap();
    make_tree(src.path());
    let repo = MemoryRepository::new();
    let (first, reused) = back_up_tree(&repo, src.path(), true, false);
    assert_eq!(reused, 0);
    restore_and_compare(&repo, &first, src.path());
    let chunks = repo.chunk_count();
    fs::write(src.path().join("etc/hosts.new"), b"changed").unwrap();
    let (second, reused) = back_up_tree(&repo, src.path(), true, true);
    assert_ne!(first, second);
    assert!(
        reused >= 9 << 20,
        "the big file is re-referenced: {reused} bytes reused"
    );
    assert!(repo.chunk_count() <= chunks + 4, "few new chunks");
    fs::remove_file(src.path().join("etc/hosts.new")).unwrap();
    // The second snapshot holds the new file too.
    let reader = repo.open_snapshot(&second).unwrap();
    let mut out = Vec::new();
    let name = ArchiveName::parse("root.pxar").unwrap();
    stowage_ops::cat::cat_file(&*reader, &name, b"etc/hosts.new", &mut out, 2).unwrap();
    assert_eq!(out, b"changed");
}

#[test]
fn an_image_round_trips() {
    let data = [
        pseudo_random(2, 4 << 20),
        vec![0; 4 << 20],
        pseudo_random(3, 1000),
    ]
    .concat();
    let repo = MemoryRepository::new();
    let target = repo.begin_backup(&group(), None).unwrap();
    let session = BackupSession::new(Default::default());
    let fast = FastHashes::default();
    let run = on_two_threads(&*target, &session, &fast);
    let name = ArchiveName::parse("disk.img").unwrap();
    let counters = BackupCounters::default();
    let source = Box::new(StreamSource(std::io::Cursor::new(data.clone())));
    let outcome = run.image(&name, source, "memory", &counters).unwrap();
    assert_eq!(outcome.stats.zero_bytes, 4 << 20);
    assert_eq!(outcome.fast_pairs.len(), 2, "one pair per data chunk");
    let empty = Box::new(StreamSource(std::io::empty()));
    let other = ArchiveName::parse("empty.img").unwrap();
    assert!(run.image(&other, empty, "nothing", &counters).is_err());
    // The refused empty image left an abandoned index: the snapshot cannot be finished.
    assert!(target.finish(Default::default()).is_err());

    let target = repo.begin_backup(&group(), None).unwrap();
    let session = BackupSession::new(Default::default());
    let run = on_two_threads(&*target, &session, &fast);
    let source = Box::new(StreamSource(std::io::Cursor::new(data.clone())));
    run.image(&name, source, "memory", &counters).unwrap();
    let snapshot = target.finish(Default::default()).unwrap();
    let reader = repo.open_snapshot(&snapshot).unwrap();
    let image = ImageRestore::open(&*reader, &name).unwrap();
    assert_eq!(image.size(), data.len() as u64);
    let mut restored = Vec::new();
    image
        .run(&mut restored, "memory", 2, 8, &RestoreCounters::default())
        .unwrap();
    assert_eq!(restored, data);

    let index = reader.fixed_index(&name).unwrap();
    let mut plain = Vec::new();
    let counters = RestoreCounters::default();
    stowage_ops::export::image_to_writer(&*reader, &index, &mut plain, "out", 2, &counters)
        .unwrap();
    assert_eq!(plain, data);
    let mut frames = Vec::new();
    let progress = std::sync::atomic::AtomicU64::new(0);
    let level = stowage_ops::export::STORED_LEVEL;
    stowage_ops::export::zstd_frames(reader.chunks(), &index, level, 2, &progress, &mut frames)
        .unwrap();
    assert_eq!(zstd::stream::decode_all(&frames[..]).unwrap(), data);
    assert_eq!(progress.into_inner(), data.len() as u64);
}
