//! Garbage collection: removes exactly the chunks no snapshot needs, reports like PBS, refuses
//! to remove anything when it cannot read every index, and never removes a chunk that a running
//! or finished backup needs, even with backups, forgets and collections running at once.

mod common;

use std::fs;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;

use common::*;

fn image(seeds: &[u64]) -> Vec<u8> {
    let mut out = Vec::new();
    for &s in seeds {
        out.extend(random_bytes(s, CHUNK));
    }
    out
}

fn gc_json(store: &Store, extra: &[&str]) -> (i32, serde_json::Value) {
    let mut args = vec!["--output-format", "json", "gc"];
    args.extend_from_slice(extra);
    let run = store.run(&args);
    (run.code, run.json())
}

#[test]
fn removes_exactly_the_unreferenced_chunks() {
    let store = Store::new();
    store.backup_image(&image(&[1, 2, 3]), "1", T1);
    store.backup_image(&image(&[3, 4, 5]), "2", T1);
    let only_b: Vec<String> = image_digests(&image(&[4, 5]));
    store.run(["forget", &snap("2", T1)]).ok();
    let before = store.chunk_count();
    assert_eq!(before, 5);

    // The default cutoff (24 h 5 min) keeps chunks touched today.
    let (code, report) = gc_json(&store, &[]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["status"]["removed-chunks"], 0);
    assert_eq!(store.chunk_count(), 5);

    let (code, report) = gc_json(&store, &["--cutoff", "0", "--dry-run"]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["status"]["removed-chunks"], 2);
    assert_eq!(store.chunk_count(), 5, "a dry run removes nothing");

    let (code, report) = gc_json(&store, &["--cutoff", "0"]);
    assert_eq!(code, 0, "{report}");
    let status = &report["status"];
    assert_eq!(status["removed-chunks"], 2);
    assert_eq!(status["disk-chunks"], 3);
    assert_eq!(status["index-file-count"], 1);
    assert_eq!(status["index-data-bytes"], 3 * CHUNK as u64);
    assert!(status["removed-bytes"].as_u64().unwrap() > 0);
    assert!(status["upid"].as_str().unwrap().starts_with("UPID:"));
    for d in &only_b {
        assert!(!store.chunk_path(d).exists(), "chunk {d} should be gone");
    }
    assert_eq!(store.chunk_count(), 3);
    let saved: serde_json::Value =
        serde_json::from_slice(&fs::read(store.path.join(".gc-status")).unwrap()).unwrap();
    assert_eq!(saved["removed-chunks"], 2);
    assert_eq!(saved["disk-chunks"], 3);
    store.run(["verify", "--all"]).ok();
    assert_eq!(
        store.restore_bytes(&snap("1", T1), "drive-scsi0.img"),
        image(&[1, 2, 3])
    );

    // Text output reads like PBS's task log.
    let text = store.run(["gc", "--cutoff", "0"]);
    text.ok();
    let out = text.stdout_text();
    for line in [
        "Removed chunks: 0",
        "On-Disk chunks: 3",
        "Deduplication factor:",
    ] {
        assert!(out.contains(line), "missing '{line}' in:\n{out}");
    }
}

#[test]
fn namespaces_are_marked_too() {
    let store = Store::new();
    store.run(["namespace", "create", "a"]).ok();
    store.run(["namespace", "create", "a/b"]).ok();
    let path = store.write_file("ns.img", &image(&[7, 8]));
    let spec = img_spec("drive-scsi0", &path);
    let mut args = backup_args(&[spec], "9", T1);
    args.extend(["--ns".into(), "a/b".into()]);
    store.run(&args).ok();
    assert!(store.path.join("ns/a/ns/b/vm/9").is_dir());
    let (code, report) = gc_json(&store, &["--cutoff", "0"]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["status"]["removed-chunks"], 0);
    assert_eq!(report["status"]["disk-chunks"], 2);
    store.run(["--ns", "a/b", "verify", "vm/9"]).ok();
}

#[test]
fn unreadable_index_blocks_removal_and_missing_chunks_are_reported() {
    let store = Store::new();
    store.backup_image(&image(&[11, 12]), "1", T1);
    store.backup_image(&image(&[13, 14]), "2", T1);
    store.backup_image(&image(&[15]), "3", T1);
    store.run(["forget", &snap("3", T1)]).ok();
    let foreign = store.chunk_dir().join("0000/README");
    fs::write(&foreign, b"not a chunk").unwrap();

    // A corrupt index: any chunk might be the one it needs, so nothing goes.
    let index = store
        .snapshot_dir(&snap("2", T1))
        .join("drive-scsi0.img.fidx");
    let good = fs::read(&index).unwrap();
    fs::write(&index, &good[..100]).unwrap();
    let before = store.chunk_count();
    let run = store.run(["-q", "gc", "--cutoff", "0"]);
    run.expect_code(8);
    let line = run.single_error_line();
    assert!(line.contains("drive-scsi0.img.fidx"), "{line}");
    assert!(line.contains("removed no chunks"), "{line}");
    assert_eq!(store.chunk_count(), before);
    fs::write(&index, &good).unwrap();

    // A missing chunk is reported with the index that needs it; garbage still goes.
    let missing = image_digests(&image(&[11]))[0].clone();
    fs::remove_file(store.chunk_path(&missing)).unwrap();
    let (code, report) = gc_json(&store, &["--cutoff", "0"]);
    assert_eq!(code, 8, "{report}");
    assert_eq!(report["missing-chunks"][0]["digest"], missing.as_str());
    assert!(report["missing-chunks"][0]["index"]
        .as_str()
        .unwrap()
        .contains("vm/1/"));
    assert_eq!(report["status"]["removed-chunks"], 1);
    assert_eq!(report["foreign-entries"], 1);
    assert!(foreign.exists(), "foreign files are left alone");
}

/// Backups of three groups, forgets of old snapshots and collections with no cutoff margin
/// run at the same time; afterwards every snapshot verifies and restores.
#[test]
fn concurrent_backups_forgets_and_collections_lose_nothing() {
    let store = Store::new();
    let done = AtomicBool::new(false);
    let removed = AtomicU64::new(0);
    let collections = AtomicU64::new(0);
    const ROUNDS: u64 = 12;
    thread::scope(|s| {
        let mut backups = Vec::new();
        for group in 1..=3u64 {
            let store = &store;
            backups.push(s.spawn(move || {
                for round in 0..ROUNDS {
                    // A chunk of the group, one shared by all groups, one that changes every
                    // round and one that changes every other round.
                    let data = image(&[group, 999, group * 1000 + round, group * 100 + round / 2]);
                    let path = store.write_file(&format!("g{group}.img"), &data);
                    let spec = img_spec("drive-scsi0", &path);
                    let id = group.to_string();
                    store.run(backup_args(&[spec], &id, T1 + round as i64)).ok();
                    if round >= 2 {
                        // Forget an old one; refused (exit 3) only while another writer of the
                        // group holds the lock, which this loop never does.
                        store
                            .run(["forget", &snap(&id, T1 + round as i64 - 2)])
                            .ok();
                    }
                }
            }));
        }
        let gc = s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                let (code, report) = gc_json(&store, &["--cutoff", "0"]);
                assert_eq!(code, 0, "{report}");
                removed.fetch_add(
                    report["status"]["removed-chunks"].as_u64().unwrap(),
                    Ordering::Relaxed,
                );
                collections.fetch_add(1, Ordering::Relaxed);
            }
        });
        for b in backups {
            b.join().unwrap();
        }
        done.store(true, Ordering::Relaxed);
        gc.join().unwrap();
    });
    let (code, report) = gc_json(&store, &["--cutoff", "0"]);
    assert_eq!(code, 0, "{report}");
    removed.fetch_add(
        report["status"]["removed-chunks"].as_u64().unwrap(),
        Ordering::Relaxed,
    );
    assert!(collections.load(Ordering::Relaxed) >= 2);
    assert!(
        removed.load(Ordering::Relaxed) > 0,
        "the collections removed nothing at all"
    );
    store.run(["verify", "--all"]).ok();
    for group in 1..=3u64 {
        let last = ROUNDS - 1;
        for round in [last - 1, last] {
            let want = image(&[group, 999, group * 1000 + round, group * 100 + round / 2]);
            let got = store.restore_bytes(
                &snap(&group.to_string(), T1 + round as i64),
                "drive-scsi0.img",
            );
            assert!(
                got == want,
                "group {group} round {round} restored different bytes"
            );
        }
    }
    // Left: per group its own chunk, two per-round chunks and one per-two-rounds chunk; and
    // the chunk all groups share.
    assert_eq!(store.chunk_count(), 3 * 4 + 1);
    let runs = 3 * ROUNDS + 3 * (ROUNDS - 2) + collections.load(Ordering::Relaxed);
    common::suite::record(
        "concurrency",
        &[("concurrent_runs", runs), ("damaged_snapshots", 0)],
    );
}
