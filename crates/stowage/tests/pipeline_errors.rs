//! Every pipeline ends promptly on the first error of any stage, with that stage's error and
//! exit code: a full datastore during a file-tree backup (every change-detection mode), a full
//! restore target (both archive kinds), a file that exists, a full export target, a full sync
//! target. Each run has a deadline: a hang fails the test instead of stalling the suite.
//!
//! Tests that need a small tmpfs (root) say they were skipped where it cannot be mounted.

mod common;

use std::ffi::OsString;
use std::fs;
use std::path::Path;
use std::time::Duration;

use common::tree::*;
use common::*;

/// Longest any failing command may take here (they fail within a second when they work).
const DEADLINE: Duration = Duration::from_secs(60);

const MODES: [&str; 3] = ["legacy", "data", "metadata"];

/// A tree of `mib` MiB of incompressible files, 1 MiB each, and a few small ones.
fn random_tree(dir: &Path, mib: usize, seed: u64) {
    for i in 0..mib {
        put(
            &dir.join(format!("d{}/f{i}", i % 4)),
            &random_bytes(seed + i as u64, MIB),
        );
    }
    put(&dir.join("a.txt"), b"a\n");
    put(&dir.join("sub/b.txt"), b"b\n");
}

/// The one error line of a failed run, checked for exit code `code` and for `words`.
#[track_caller]
fn expect_error(run: &Run, code: i32, words: &[&str]) -> String {
    run.expect_code(code);
    let line = run.single_error_line();
    for w in words {
        assert!(
            line.to_lowercase().contains(&w.to_lowercase()),
            "'{w}' missing: {line}"
        );
    }
    line
}

#[test]
fn tree_backup_into_a_full_datastore_exits_12_in_every_mode() {
    let tmp = tempdir();
    let Some(small) = SmallTmpfs::mount(tmp.path(), "small", "30m") else {
        return;
    };
    let src = tmp.path().join("src");
    random_tree(&src, 60, 100);
    let small_src = tmp.path().join("small-src");
    put(&small_src.join("keep.txt"), b"keep me\n");
    let store = Store::at(small.path.join("store"));
    for (i, mode) in MODES.iter().enumerate() {
        let id = format!("full-{mode}");
        let epoch = T1 + i as i64 * 10;
        let kept = store.backup_tree_ok(&small_src, &id, epoch, &["--change-detection-mode", mode]);
        let args = tree_backup_args(
            &src,
            &id,
            epoch + 1,
            &["-q", "--change-detection-mode", mode],
        );
        let run = store.run_timed(args, DEADLINE);
        expect_error(&run, 12, &["space"]);
        assert_eq!(
            store.snapshot_names(Some(&format!("host/{id}"))),
            vec![kept["snapshot"].as_str().unwrap().to_string()],
            "{mode}: the failed backup left a snapshot"
        );
        // GC frees what the failed backup wrote; the group's lock was released: the group
        // backs up again at once.
        store.run(["gc", "--cutoff", "0"]).ok();
        store.backup_tree_ok(
            &small_src,
            &id,
            epoch + 2,
            &["--change-detection-mode", mode],
        );
    }
    store.run(["verify", "--all"]).ok();
}

/// A stored tree of `mib` MiB in both archive kinds: snapshot names `host/legacy` and
/// `host/split`.
fn store_with_both_kinds(mib: usize) -> (Store, std::path::PathBuf) {
    let store = Store::new();
    let src = store.file("src");
    random_tree(&src, mib, 7);
    store.backup_tree_ok(&src, "legacy", T1, &[]);
    store.backup_tree_ok(&src, "split", T1, &["--change-detection-mode", "data"]);
    (store, src)
}

#[test]
fn tree_restore_into_a_full_target_exits_12_in_both_archive_kinds() {
    let (store, _src) = store_with_both_kinds(24);
    for kind in ["legacy", "split"] {
        let Some(small) = SmallTmpfs::mount(&store.work, &format!("t-{kind}"), "8m") else {
            return;
        };
        let run = store.run_timed(
            [
                OsString::from("restore"),
                format!("host/{kind}").into(),
                "root.pxar".into(),
                small.path.join("out").into(),
            ],
            DEADLINE,
        );
        let line = expect_error(&run, 12, &["space"]);
        assert!(!line.contains("reading side"), "{kind}: {line}");
    }
}

#[test]
fn a_file_in_the_way_gets_the_same_error_in_both_archive_kinds() {
    let (store, _src) = store_with_both_kinds(2);
    let mut lines = Vec::new();
    for kind in ["legacy", "split"] {
        let target = store.file(&format!("conflict-{kind}"));
        put(&target.join("a.txt"), b"mine\n");
        let run = store.restore_tree(&format!("host/{kind}"), &target, &[]);
        let line = expect_error(&run, 5, &["a.txt", "exists", "--overwrite"]);
        assert_eq!(fs::read(target.join("a.txt")).unwrap(), b"mine\n");
        lines.push(line.split_once(" failed: ").unwrap().1.to_string());
        store
            .restore_tree(&format!("host/{kind}"), &target, &["--overwrite"])
            .ok();
        assert_eq!(fs::read(target.join("a.txt")).unwrap(), b"a\n");
    }
    assert_eq!(lines[0], lines[1], "both kinds say the same");
}

#[test]
fn cat_of_anything_but_a_regular_file_says_so_in_both_archive_kinds() {
    let store = Store::new();
    let src = store.file("src");
    put(&src.join("a.txt"), b"a\n");
    symlink_to(&src, "link", "a.txt");
    mkfifo(&src.join("fifo"), 0o600);
    fs::create_dir(src.join("dir")).unwrap();
    store.backup_tree_ok(&src, "legacy", T1, &[]);
    store.backup_tree_ok(&src, "split", T1, &["--change-detection-mode", "data"]);
    for kind in ["legacy", "split"] {
        let snapshot = format!("host/{kind}");
        for path in ["/link", "/fifo", "/dir"] {
            let run = store.run(["cat", snapshot.as_str(), "root.pxar", path]);
            expect_error(
                &run,
                2,
                &["not a regular file", path.trim_start_matches('/')],
            );
            assert!(run.stdout.is_empty());
        }
        let run = store.run(["cat", snapshot.as_str(), "root.pxar", "/a.txt"]);
        run.ok();
        assert_eq!(run.stdout, b"a\n");
    }
}

fn symlink_to(dir: &Path, name: &str, target: &str) {
    std::os::unix::fs::symlink(target, dir.join(name)).unwrap();
}

#[test]
fn export_into_a_full_target_exits_12_and_removes_its_partial_file() {
    let (store, _src) = store_with_both_kinds(16);
    let image = random_bytes(3, 16 * MIB);
    store.backup_image(&image, "img", T1);
    let Some(small) = SmallTmpfs::mount(&store.work, "small", "6m") else {
        return;
    };
    let cases = [
        ("host/legacy", "root.pxar", "tree.tar"),
        ("host/split", "root.pxar", "tree.tar.gz"),
        ("host/legacy", "root.pxar", "tree.tar.zst"),
        ("vm/img", "drive-scsi0.img", "disk.img"),
        ("vm/img", "drive-scsi0.img", "disk.img.gz"),
        ("vm/img", "drive-scsi0.img", "disk.img.zst"),
    ];
    for (snapshot, archive, out) in cases {
        let target = small.path.join(out);
        let run = store.run_timed(
            [
                OsString::from("export"),
                snapshot.into(),
                archive.into(),
                target.clone().into(),
                "--force".into(),
            ],
            DEADLINE,
        );
        expect_error(&run, 12, &["space"]);
        assert_eq!(
            dir_names(&small.path),
            Vec::<String>::new(),
            "{out}: leftovers"
        );
    }
}

#[test]
fn sync_into_a_full_datastore_exits_12_and_keeps_what_it_had() {
    let source = Store::new();
    let src = source.file("src");
    random_tree(&src, 40, 900);
    source.backup_tree_ok(&src, "big", T1, &[]);
    source.backup_image(&random_bytes(5, 40 * MIB), "img", T1);
    let tmp = tempdir();
    let Some(small) = SmallTmpfs::mount(tmp.path(), "small", "30m") else {
        return;
    };
    let target = Store::at(small.path.join("store"));
    let small_src = tmp.path().join("small-src");
    put(&small_src.join("keep.txt"), b"keep me\n");
    target.backup_tree_ok(&small_src, "kept", T1, &[]);
    let run = target.run_timed(
        [
            OsString::from("sync"),
            "--from".into(),
            source.path.clone().into(),
            "--to".into(),
            target.path.clone().into(),
        ],
        DEADLINE,
    );
    expect_error(&run, 12, &["space"]);
    target.run(["verify", "--all"]).ok();
    assert!(target.snapshot_names(None).contains(&host_snap("kept", T1)));
}
