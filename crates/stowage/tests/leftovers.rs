//! What killed processes leave in a datastore: snapshot directories without a manifest and
//! temporary files. `snapshots --all` and verify report unfinished snapshots; gc removes them
//! once they are older than its cutoff and no backup of the group runs, and removes the
//! temporary files of writers that are gone, never those of running ones.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;

/// A pid no process can have (above the kernel's limit).
const GONE: u32 = 0x7fff_fff0;

/// Turns a finished snapshot into what a backup killed before its manifest leaves: the
/// indexes, a half-written index, and a temporary manifest.
fn unfinish(store: &Store, snapshot: &str) -> PathBuf {
    let dir = store.snapshot_dir(snapshot);
    fs::remove_file(dir.join("index.json.blob")).unwrap();
    fs::write(dir.join("drive-scsi1.img.tmp_fidx"), b"half").unwrap();
    fs::write(dir.join(format!(".index.json.blob.tmp_{GONE}")), b"x").unwrap();
    dir
}

fn temp_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.file_type().unwrap().is_dir() {
                stack.push(path);
            } else if name.contains(".tmp_") || name.ends_with(".new") {
                out.push(path);
            }
        }
    }
    out
}

#[test]
fn unfinished_snapshots_are_listed_reported_and_collected() {
    let store = Store::new();
    let image = standard_image();
    store.backup_image(&image, "1", T1);
    store.backup_image(&make_image(&[Part::Random(50)], 0), "1", T2);
    let dir = unfinish(&store, &snap("1", T2));

    // Not among the snapshots, but listed with --all.
    assert_eq!(store.snapshot_names(None), vec![snap("1", T1)]);
    let run = store.run(["--output-format", "json", "snapshots", "--all"]);
    run.ok();
    let rows = run.json();
    let unfinished: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["finished"] == false)
        .map(|r| r["snapshot"].as_str().unwrap())
        .collect();
    assert_eq!(unfinished, vec![snap("1", T2)]);
    let text = store.run(["snapshots", "--all"]);
    assert!(
        text.stdout_text().contains("unfinished"),
        "{}",
        text.stdout_text()
    );

    // verify reports it and checks the rest.
    let run = store.run(["verify", "--all"]);
    run.ok();
    assert!(
        run.stderr.contains(&snap("1", T2)) && run.stderr.contains("unfinished"),
        "{}",
        run.stderr
    );

    // Younger than the default cutoff: kept.
    store.run(["gc"]).ok();
    assert!(dir.exists());

    // While a backup of the group runs (its lock is held), kept even with no cutoff.
    let group_dir = store.path.join("vm/1");
    // --no-fork: the lock holder is the process killed below.
    let mut holder = Command::new("flock")
        .arg("--no-fork")
        .arg(&group_dir)
        .args(["sleep", "30"])
        .stdout(Stdio::null())
        .spawn()
        .expect("flock(1) from util-linux");
    assert!(wait_for(std::time::Duration::from_secs(5), || {
        Command::new("flock")
            .args(["-n"])
            .arg(&group_dir)
            .arg("true")
            .status()
            .is_ok_and(|s| !s.success())
    }));
    store.run(["gc", "--cutoff", "0"]).ok();
    assert!(dir.exists(), "removed while its group was locked");
    holder.kill().unwrap();
    holder.wait().unwrap();

    // Its backup gone: removed, with every temporary file, and its chunks collected.
    let before = store.chunk_count();
    let run = store.run(["gc", "--cutoff", "0"]);
    run.ok();
    assert!(!dir.exists());
    assert!(
        run.stdout_text().contains("unfinished snapshot"),
        "{}",
        run.stdout_text()
    );
    assert!(store.chunk_count() < before);
    assert_eq!(temp_files(&store.path), Vec::<PathBuf>::new());
    assert_eq!(
        store.restore_bytes(&snap("1", T1), "drive-scsi0.img"),
        image
    );
    store.run(["verify", "--all"]).ok();
}

#[test]
fn temporary_files_of_dead_writers_go_and_those_of_live_ones_stay() {
    let store = Store::new();
    store.backup_image(&standard_image(), "1", T1);
    let snapshot_dir = store.snapshot_dir(&snap("1", T1));
    let chunk_dir = store.chunk_dir().join("0a0a");
    let hex = "0a".repeat(32);
    let me = std::process::id();
    let dead = [
        chunk_dir.join(format!("{hex}.tmp_{GONE}_3")),
        snapshot_dir.join(format!(".index.json.blob.tmp_{GONE}")),
        store.path.join("vm/1").join(format!(".owner.tmp_{GONE}")),
        store.path.join(format!(".gc-status.tmp_{GONE}")),
        store.path.join(format!(".writers/5-{GONE}-0.new")),
    ];
    let live = [
        chunk_dir.join(format!("{hex}.tmp_{me}_3")),
        snapshot_dir.join(format!(".index.json.blob.tmp_{me}")),
    ];
    fs::create_dir_all(store.path.join(".writers")).unwrap();
    for p in dead.iter().chain(&live) {
        fs::write(p, b"t").unwrap();
    }
    // Make every file older than the collection for certain (file system clock ticks).
    std::thread::sleep(std::time::Duration::from_millis(20));
    let dry = store.run(["gc", "--cutoff", "0", "--dry-run"]);
    dry.ok();
    assert!(dead.iter().all(|p| p.exists()), "a dry run removes nothing");
    store.run(["gc", "--cutoff", "0"]).ok();
    for p in &dead {
        assert!(!p.exists(), "{} stayed", p.display());
    }
    for p in &live {
        assert!(p.exists(), "{} of a running process went", p.display());
    }
    for p in &live {
        fs::remove_file(p).unwrap();
    }
    store.run(["verify", "--all"]).ok();
}

#[test]
fn gc_over_a_corrupt_index_says_once_what_is_wrong_and_removes_nothing() {
    let store = Store::new();
    store.backup_image(&standard_image(), "1", T1);
    store.backup_image(&make_image(&[Part::Random(9)], 0), "2", T1);
    store.run(["forget", &snap("2", T1)]).ok();
    let index = store
        .snapshot_dir(&snap("1", T1))
        .join("drive-scsi0.img.fidx");
    let mut raw = fs::read(&index).unwrap();
    raw[..8].copy_from_slice(b"garbage!");
    fs::write(&index, raw).unwrap();
    let chunks = store.chunk_count();
    let run = store.run(["-q", "gc", "--cutoff", "0"]);
    run.expect_code(8);
    let line = run.single_error_line();
    assert!(line.contains("drive-scsi0.img.fidx"), "{line}");
    assert!(line.contains("removed no chunks"), "{line}");
    assert!(
        !run.stdout_text().contains("emove"),
        "{}",
        run.stdout_text()
    );
    assert_eq!(store.chunk_count(), chunks);
}
