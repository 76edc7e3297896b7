//! Fault injection: EIO, ENOSPC and short writes at the first, middle and last write, fsync and
//! rename of backup (image; tree, full and incremental), restore (image; tree, both archive
//! kinds), export, gc and sync, through the real binary (see `common/fault.rs`).
//!
//! Every struck run finishes within a deadline with the documented exit code and one error
//! line; a short write is absorbed and the result is right; nothing earlier is damaged (every
//! snapshot verifies and restores bit-exactly); the failed command leaves no temporary or
//! partial file behind.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::fault::{Fault, Injection, Op};
use common::tree::*;
use common::*;

const DEADLINE: Duration = Duration::from_secs(60);

/// Runs `args` against `store` (with `inj` when given), with a deadline.
fn run_with(store: &Store, args: &[String], inj: Option<&Injection>) -> Run {
    let mut cmd = store.cmd();
    cmd.arg("-q");
    if let Some(inj) = inj {
        inj.apply(&mut cmd);
    }
    run_cmd_timed(cmd, args, DEADLINE)
}

fn strs(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// Files below `dir` whose names mark them as temporary (`.tmp_`, `.new`, `stowage-tmp`).
fn temp_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(temp_files(&path));
        } else if name.contains(".tmp_") || name.ends_with(".new") || name.contains("stowage-tmp") {
            out.push(path);
        }
    }
    out
}

/// The first, middle and last of `calls`.
fn picks(calls: u64) -> Vec<u64> {
    let mut p = vec![1, calls.div_ceil(2), calls];
    p.retain(|&n| n >= 1);
    p.dedup();
    p
}

/// What one scenario does and expects.
struct Scenario<'a> {
    name: &'static str,
    /// Faults apply to files below this directory.
    below: PathBuf,
    /// Exit codes a failed write (EIO) may give.
    eio: &'a [i32],
    /// Runs the operation once.
    attempt: &'a dyn Fn(Option<&Injection>) -> Run,
    /// After each run: checks what must hold (the run succeeded or not) and puts the state
    /// back for the next run.
    after: &'a dyn Fn(&Run),
}

/// Strikes every kind of call at the first, middle and last place; returns the faults fired.
fn drive(s: &Scenario<'_>, scratch: &Path) -> u64 {
    let log = scratch.join(format!("{}.fault-log", s.name));
    let mut fired = 0;
    for op in Op::ALL {
        // A dry run counts the calls there are to strike.
        let counter = Injection {
            op,
            fault: Fault::Eio,
            nth: u64::MAX,
            below: s.below.clone(),
            log: log.clone(),
        };
        let run = (s.attempt)(Some(&counter));
        run.ok();
        (s.after)(&run);
        let calls = counter.calls();
        for &fault in Fault::for_op(op) {
            for nth in picks(calls) {
                let inj = Injection {
                    nth,
                    fault,
                    ..counter.clone()
                };
                let run = (s.attempt)(Some(&inj));
                let what = format!("{}: {op:?} #{nth} of {calls} -> {fault:?}", s.name);
                if !inj.fired() {
                    // Fewer calls this time (a timing-dependent path): the run must succeed.
                    assert_eq!(run.code, 0, "{what} (not fired): {}", run.stderr);
                } else {
                    fired += 1;
                    check_outcome(&what, s, fault, &run);
                }
                (s.after)(&run);
            }
        }
    }
    fired
}

fn check_outcome(what: &str, s: &Scenario<'_>, fault: Fault, run: &Run) {
    match fault {
        Fault::Short => assert_eq!(
            run.code, 0,
            "{what}: a short write must be absorbed: {}",
            run.stderr
        ),
        Fault::Enospc => {
            assert_eq!(run.code, 12, "{what}: {}", run.stderr);
            let line = run.single_error_line();
            assert!(line.to_lowercase().contains("space"), "{what}: {line}");
        }
        Fault::Eio => {
            assert!(
                s.eio.contains(&run.code),
                "{what}: exit {} ({})",
                run.code,
                run.stderr
            );
            let line = run.single_error_line();
            assert!(line.contains("Input/output error"), "{what}: {line}");
        }
    }
    if run.code != 0 {
        // The message names the object: a path below the faulty directory or an archive.
        let line = run.stderr.trim_end();
        assert!(
            line.contains(s.below.to_str().unwrap())
                || line.contains(".img")
                || line.contains(".pxar"),
            "{what}: the error names no object: {line}"
        );
    }
}

/// A store with an image snapshot and a tree snapshot (both kinds), the data they hold, and
/// the tree's source.
struct Fixture {
    store: Store,
    image: Vec<u8>,
    tree: PathBuf,
    walked: Walked,
}

fn fixture() -> Fixture {
    let store = Store::new();
    let image = make_image(&[Part::Random(1), Part::Zero, Part::Random(2)], 12345);
    store.backup_image(&image, "1", T1);
    let tree = store.file("tree");
    for i in 0..6u64 {
        put(
            &tree.join(format!("d{}/f{i}", i % 2)),
            &random_bytes(i, 300_000 + i as usize),
        );
    }
    put(&tree.join("small.txt"), b"small\n");
    std::os::unix::fs::symlink("small.txt", tree.join("link")).unwrap();
    store.backup_tree_ok(&tree, "legacy", T1, &[]);
    store.backup_tree_ok(&tree, "split", T1, &["--change-detection-mode", "metadata"]);
    let walked = walk(&tree);
    Fixture {
        store,
        image,
        tree,
        walked,
    }
}

impl Fixture {
    /// Everything stored before the faults is intact: verify passes and each snapshot
    /// restores bit-exactly.
    fn check_intact(&self) {
        self.store.run(["-q", "verify", "--all"]).ok();
        assert_eq!(
            self.store.restore_bytes(&snap("1", T1), "drive-scsi0.img"),
            self.image
        );
        for id in ["legacy", "split"] {
            let out = self.store.file(&format!("check-{id}"));
            self.store.restore_tree(&host_snap(id, T1), &out, &[]).ok();
            assert_same_tree(&self.walked, &walk(&out));
            fs::remove_dir_all(&out).unwrap();
        }
        assert_eq!(
            temp_files(&self.store.path),
            Vec::<PathBuf>::new(),
            "temporary files left"
        );
    }

    /// Forgets every snapshot but the fixture's and collects their chunks.
    fn reset_store(&self) {
        for name in self.store.snapshot_names(None) {
            let kept = [
                snap("1", T1),
                host_snap("legacy", T1),
                host_snap("split", T1),
            ];
            if !kept.contains(&name) {
                self.store.run(["forget", &name]).ok();
            }
        }
        self.store.run(["-q", "gc", "--cutoff", "0"]).ok();
    }
}

#[test]
fn faults_in_backups_leave_earlier_snapshots_intact() {
    let f = fixture();
    let scratch = tempdir();
    let image_path = f.store.write_file(
        "new.img",
        &make_image(&[Part::Random(7), Part::Random(8)], 99),
    );
    let new_image = fs::read(&image_path).unwrap();
    let mut fired = 0;
    let backups: [(&str, Vec<String>); 3] = [
        (
            "backup image",
            backup_args(&[img_spec("drive-scsi0", &image_path)], "new", T2),
        ),
        ("backup tree (legacy)", {
            let mut a: Vec<String> = tree_backup_args(&f.tree, "legacy", T2, &[])
                .into_iter()
                .map(|s| s.into_string().unwrap())
                .collect();
            a.retain(|x| x != "--output-format" && x != "json");
            a
        }),
        ("backup tree (metadata, incremental)", {
            let mut a: Vec<String> = tree_backup_args(
                &f.tree,
                "split",
                T2,
                &["--change-detection-mode", "metadata"],
            )
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect();
            a.retain(|x| x != "--output-format" && x != "json");
            a
        }),
    ];
    for (name, args) in &backups {
        let attempt = |inj: Option<&Injection>| run_with(&f.store, args, inj);
        let after = |run: &Run| {
            if run.code == 0 {
                // The new snapshot is whole.
                let new = f.store.snapshot_names(None);
                assert_eq!(new.len(), 4, "{name}: {new:?}");
                if name.starts_with("backup image") {
                    assert_eq!(
                        f.store.restore_bytes(&snap("new", T2), "drive-scsi0.img"),
                        new_image
                    );
                } else {
                    let id = if name.contains("legacy") {
                        "legacy"
                    } else {
                        "split"
                    };
                    let out = f.store.file("check-new");
                    f.store.restore_tree(&host_snap(id, T2), &out, &[]).ok();
                    assert_same_tree(&f.walked, &walk(&out));
                    fs::remove_dir_all(&out).unwrap();
                }
            } else {
                assert_eq!(
                    f.store.snapshot_names(None).len(),
                    3,
                    "{name}: a failed backup left a snapshot"
                );
            }
            f.check_intact();
            f.reset_store();
        };
        fired += drive(
            &Scenario {
                name,
                below: f.store.path.clone(),
                eio: &[10],
                attempt: &attempt,
                after: &after,
            },
            scratch.path(),
        );
    }
    common::suite::record(
        "fault_injection_backup",
        &[("faults", fired), ("damaged_snapshots", 0)],
    );
}

#[test]
fn faults_in_restores_and_exports_remove_what_they_wrote() {
    let f = fixture();
    let scratch = tempdir();
    let target_dir = scratch.path().join("targets");
    fs::create_dir(&target_dir).unwrap();
    let target = |name: &str| target_dir.join(name).to_str().unwrap().to_string();
    let mut fired = 0;
    let cases: Vec<(&str, Vec<String>, &[i32])> = vec![
        (
            "restore image",
            strs(&[
                "restore",
                &snap("1", T1),
                "drive-scsi0.img",
                &target("disk.raw"),
            ]),
            &[5],
        ),
        (
            "restore tree (legacy)",
            strs(&[
                "restore",
                &host_snap("legacy", T1),
                "root.pxar",
                &target("tree"),
            ]),
            &[5],
        ),
        (
            "restore tree (split)",
            strs(&[
                "restore",
                &host_snap("split", T1),
                "root.pxar",
                &target("tree"),
            ]),
            &[5],
        ),
        (
            "export image (gz)",
            strs(&[
                "export",
                &snap("1", T1),
                "drive-scsi0.img",
                &target("disk.img.gz"),
            ]),
            &[5],
        ),
        (
            "export tree (zst)",
            strs(&[
                "export",
                &host_snap("split", T1),
                "root.pxar",
                &target("tree.tar.zst"),
            ]),
            &[5],
        ),
    ];
    for (name, args, eio) in &cases {
        let attempt = |inj: Option<&Injection>| run_with(&f.store, args, inj);
        let after = |run: &Run| {
            let out = PathBuf::from(args.last().unwrap());
            if run.code == 0 {
                match *name {
                    "restore image" => assert_eq!(fs::read(&out).unwrap(), f.image),
                    n if n.starts_with("restore tree") => assert_same_tree(&f.walked, &walk(&out)),
                    "export image (gz)" => {
                        let raw = std::process::Command::new("gzip")
                            .arg("-dc")
                            .arg(&out)
                            .output()
                            .unwrap();
                        assert!(raw.stdout == f.image, "{name}: exported image differs");
                    }
                    _ => {
                        let ok = std::process::Command::new("zstd")
                            .args(["-t", "-q"])
                            .arg(&out)
                            .status()
                            .unwrap();
                        assert!(ok.success(), "{name}: the archive does not decompress");
                    }
                }
            } else if name.starts_with("restore tree") {
                // What a failed tree restore leaves is whole: no file with part of its content.
                if out.exists() {
                    for (path, info) in &walk(&out).entries {
                        if info.sha256.is_some() {
                            let want = f.walked.get(path);
                            assert_eq!(info.sha256, want.sha256, "{name}: a partial file was left");
                        }
                    }
                }
            } else {
                // No partial output, checksum or manifest beside it.
                assert_eq!(
                    dir_names(&target_dir),
                    Vec::<String>::new(),
                    "{name}: leftovers after {}",
                    run.stderr
                );
            }
            assert_eq!(
                temp_files(&target_dir),
                Vec::<PathBuf>::new(),
                "{name}: temporary files"
            );
            fs::remove_dir_all(&target_dir).unwrap();
            fs::create_dir(&target_dir).unwrap();
            f.check_intact();
        };
        fired += drive(
            &Scenario {
                name,
                below: target_dir.clone(),
                eio,
                attempt: &attempt,
                after: &after,
            },
            scratch.path(),
        );
    }
    common::suite::record(
        "fault_injection_restore",
        &[("faults", fired), ("damaged_snapshots", 0)],
    );
}

#[test]
fn faults_in_gc_and_sync_lose_nothing() {
    let f = fixture();
    let scratch = tempdir();
    let garbage = f.store.write_file(
        "garbage.img",
        &make_image(&[Part::Random(31), Part::Random(32)], 7),
    );
    let make_garbage = || {
        f.store
            .backup(&[img_spec("drive-scsi0", &garbage)], "garbage", T3);
        f.store.run(["forget", &snap("garbage", T3)]).ok();
    };
    make_garbage();
    let gc_args = strs(&["gc", "--cutoff", "0"]);
    let attempt = |inj: Option<&Injection>| run_with(&f.store, &gc_args, inj);
    let after = |_run: &Run| {
        f.check_intact();
        // A collection after the failed one collects what it left.
        f.store.run(["-q", "gc", "--cutoff", "0"]).ok();
        f.check_intact();
        make_garbage();
    };
    let mut fired = drive(
        &Scenario {
            name: "gc",
            below: f.store.path.clone(),
            eio: &[8, 10],
            attempt: &attempt,
            after: &after,
        },
        scratch.path(),
    );

    let targets = scratch.path().join("sync-targets");
    fs::create_dir(&targets).unwrap();
    let counter = std::cell::Cell::new(0u32);
    let current = std::cell::RefCell::new(None::<Store>);
    let attempt = |inj: Option<&Injection>| {
        counter.set(counter.get() + 1);
        let target = Store::at(targets.join(format!("t{}", counter.get())));
        let args = strs(&["sync", "--from", f.store.path.to_str().unwrap()]);
        let run = run_with(&target, &args, inj);
        *current.borrow_mut() = Some(target);
        run
    };
    let after = |run: &Run| {
        let target = current.borrow_mut().take().unwrap();
        let expected = f.store.snapshot_names(None);
        if run.code == 0 {
            assert_eq!(target.snapshot_names(None), expected);
        }
        // What arrived is whole, and a sync after the failed one completes the copy.
        target.run(["-q", "verify", "--all"]).ok();
        target
            .run(["-q", "sync", "--from", f.store.path.to_str().unwrap()])
            .ok();
        assert_eq!(target.snapshot_names(None), expected);
        target.run(["-q", "verify", "--all"]).ok();
        assert_eq!(temp_files(&target.path), Vec::<PathBuf>::new());
        f.check_intact();
        fs::remove_dir_all(&target.path).unwrap();
    };
    fired += drive(
        &Scenario {
            name: "sync",
            below: targets.clone(),
            eio: &[10],
            attempt: &attempt,
            after: &after,
        },
        scratch.path(),
    );
    common::suite::record(
        "fault_injection_maintenance",
        &[("faults", fired), ("damaged_snapshots", 0)],
    );
}
