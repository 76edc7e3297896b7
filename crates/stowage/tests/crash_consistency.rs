//! Crash consistency: backup (image; tree in legacy, data and metadata mode), gc, prune,
//! forget and sync are killed with SIGKILL at seeded random moments, at least
//! `STOWAGE_CRASH_KILLS` (default 20) times each while they run. After every kill: no half
//! snapshot is visible, every earlier snapshot verifies and restores bit-exactly, the next run
//! of the same operation succeeds, and a collection leaves no temporary file behind.
//!
//! `STOWAGE_CRASH_SEED` picks the moments (the seed of a failing run is printed).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

use common::tree::*;
use common::*;

fn kills_per_operation() -> u64 {
    std::env::var("STOWAGE_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
}

fn seed() -> u64 {
    std::env::var("STOWAGE_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_c4a5)
}

/// What a snapshot must restore to.
#[derive(Clone)]
enum Content {
    Image(Vec<u8>),
    Tree(Walked),
}

/// One attempt: the command, the snapshots it may remove, and the one it may add (with what
/// it holds) if the kill comes too late to stop it.
struct Plan {
    args: Vec<String>,
    may_vanish: Vec<String>,
    may_appear: Option<(String, Content)>,
}

impl Plan {
    fn new(args: Vec<String>) -> Plan {
        Plan {
            args,
            may_vanish: Vec::new(),
            may_appear: None,
        }
    }
}

/// A store, the sources it backs up, and what every snapshot in it holds.
struct Harness {
    store: Store,
    image_path: PathBuf,
    tree: PathBuf,
    /// Snapshot name → expected content.
    expected: BTreeMap<String, Content>,
    next_time: i64,
    kills: u64,
    /// The backups this harness keeps snapshots of.
    ops: Vec<&'static str>,
}

/// The group a backup goes to.
fn group_of(op: &str) -> &'static str {
    match op {
        "backup image" => "vm/img",
        "backup tree (legacy)" => "host/legacy",
        "backup tree (data)" => "host/data",
        _ => "host/metadata",
    }
}

/// The backups the harness runs: (group id, arguments after `backup`).
fn backup_args_for(h: &Harness, op: &str, time: i64) -> (String, Vec<String>) {
    let image = h.image_path.display().to_string();
    let tree = h.tree.display().to_string();
    let (ty, id, spec, mode) = match op {
        "backup image" => ("vm", "img", format!("drive-scsi0.img:{image}"), None),
        "backup tree (legacy)" => ("host", "legacy", format!("root.pxar:{tree}"), None),
        "backup tree (data)" => ("host", "data", format!("root.pxar:{tree}"), Some("data")),
        _ => (
            "host",
            "metadata",
            format!("root.pxar:{tree}"),
            Some("metadata"),
        ),
    };
    let mut args = vec![
        "-q".to_string(),
        "backup".into(),
        spec,
        "--backup-type".into(),
        ty.into(),
        "--backup-id".into(),
        id.into(),
        "--backup-time".into(),
        time.to_string(),
    ];
    if let Some(m) = mode {
        args.extend(["--change-detection-mode".into(), m.into()]);
    }
    (format!("{ty}/{id}/{}", time_name(time)), args)
}

impl Harness {
    fn new(ops: &[&'static str]) -> Harness {
        let store = Store::new();
        let image = make_image(
            &(0..3).map(|i| Part::Random(40 + i)).collect::<Vec<_>>(),
            4321,
        );
        let image_path = store.write_file("disk.img", &image);
        let tree = store.file("tree");
        for i in 0..40u64 {
            put(
                &tree.join(format!("d{}/sub{}/f{i}", i % 4, i % 3)),
                &random_bytes(i, 50_000 + (i as usize * 7919) % 200_000),
            );
        }
        std::os::unix::fs::symlink("d0", tree.join("link")).unwrap();
        std::fs::hard_link(tree.join("d1/sub1/f1"), tree.join("hard")).unwrap();
        let mut h = Harness {
            store,
            image_path,
            tree,
            expected: BTreeMap::new(),
            next_time: T1,
            kills: 0,
            ops: ops.to_vec(),
        };
        for op in ops {
            for _ in 0..2 {
                h.backup(op);
            }
        }
        h
    }

    fn content(&self, op: &str) -> Content {
        match op {
            "backup image" => Content::Image(std::fs::read(&self.image_path).unwrap()),
            _ => Content::Tree(walk(&self.tree)),
        }
    }

    fn time(&mut self) -> i64 {
        self.next_time += 60;
        self.next_time
    }

    /// An uninterrupted backup; records what it holds.
    fn backup(&mut self, op: &str) {
        let time = self.time();
        let (name, args) = backup_args_for(self, op, time);
        let run = self.store.run(&args);
        assert!(run.code == 0, "{op} after a kill failed: {}", run.stderr);
        let content = self.content(op);
        self.expected.insert(name, content);
    }

    /// The snapshots the store lists (`listed`) must be exactly those recorded, but for the
    /// ones `may_vanish` allows to have gone; each verifies, and those of groups starting with
    /// `only` restore to what they held (a backup touches its own group only; verify covers the
    /// chunks of all).
    fn check_some(&mut self, what: &str, listed: &[String], may_vanish: &[String], only: &str) {
        for name in listed {
            assert!(
                self.expected.contains_key(name),
                "{what}: unknown snapshot {name} listed"
            );
        }
        for name in self.expected.keys() {
            assert!(
                listed.contains(name) || may_vanish.contains(name),
                "{what}: {name} vanished"
            );
        }
        self.expected.retain(|name, _| listed.contains(name));
        let verify = self.store.run(["-q", "verify", "--all"]);
        assert_eq!(
            verify.code,
            0,
            "{what}: verify failed: {}",
            verify.stdout_text()
        );
        for (name, content) in &self.expected {
            if !name.starts_with(only) {
                continue;
            }
            match content {
                Content::Image(data) => {
                    let got = self.store.restore_bytes(name, "drive-scsi0.img");
                    assert!(&got == data, "{what}: {name} restores differently");
                }
                Content::Tree(walked) => {
                    let out = self.store.file("check");
                    self.store.restore_tree(name, &out, &[]).ok();
                    assert_same_tree(walked, &walk(&out));
                    std::fs::remove_dir_all(&out).unwrap();
                }
            }
        }
    }

    /// A collection leaves no temporary file and no unfinished snapshot behind.
    fn collect_and_check_leftovers(&self, what: &str) {
        let run = self.store.run(["-q", "gc", "--cutoff", "0"]);
        assert_eq!(run.code, 0, "{what}: gc failed: {}", run.stderr);
        let leftovers = leftovers(&self.store.path);
        assert!(leftovers.is_empty(), "{what}: gc left {leftovers:?}");
        let all = self
            .store
            .run(["--output-format", "json", "snapshots", "--all"]);
        let rows = all.json();
        let unfinished: Vec<_> = rows
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["finished"] == false)
            .collect();
        assert!(
            unfinished.is_empty(),
            "{what}: unfinished snapshots left: {unfinished:?}"
        );
    }

    /// Keeps at most two snapshots of each group with more, so the store and the checks
    /// stay small.
    fn trim(&mut self) {
        let listed = self.store.snapshot_names(None);
        for op in self.ops.clone() {
            let group = group_of(op);
            if listed
                .iter()
                .filter(|n| n.starts_with(&format!("{group}/")))
                .count()
                > 2
            {
                self.store
                    .run(["-q", "prune", group, "--keep-last", "2"])
                    .ok();
            }
        }
        self.forget_vanished();
    }

    /// Forgets what the store no longer lists (after an operation that removes snapshots).
    fn forget_vanished(&mut self) {
        let listed = self.store.snapshot_names(None);
        self.expected.retain(|name, _| listed.contains(name));
    }
}

/// Temporary files (`.tmp_`, `*.new`, tombstones) below `dir`.
fn leftovers(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(leftovers(&entry.path()));
        } else if name.contains(".tmp_") || name.ends_with(".new") || name.contains("tombstone") {
            out.push(entry.path());
        }
    }
    out
}

/// Starts `args`, kills it after `delay`; whether it was still running when killed.
fn kill_after(store: &Store, args: &[String], delay: Duration) -> bool {
    let mut child = store
        .cmd()
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    thread::sleep(delay);
    let running = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let _ = child.wait();
    running
}

/// How long `args` takes uninterrupted (the range the kill moments are drawn from).
fn duration_of(store: &Store, args: &[String]) -> Duration {
    let started = Instant::now();
    let run = store.run(args);
    assert!(run.code == 0, "{args:?}: {}", run.stderr);
    started.elapsed()
}

/// Kills the planned command at random moments within `span` until `kills` of them struck a
/// running process, checking the store after each; `prepare` plans each attempt; `finish` runs
/// the operation to completion afterwards.
fn hammer(
    h: &mut Harness,
    op: &str,
    only: &str,
    span: Duration,
    rng: &mut XorShift,
    mut prepare: impl FnMut(&mut Harness) -> Plan,
    mut finish: impl FnMut(&mut Harness, &[String]),
) {
    let kills = kills_per_operation();
    // The moments are drawn from [0, span); the span adapts so that about half the kills land
    // while the command still runs (a run may be shorter than the one measured).
    let mut span = span.max(Duration::from_millis(5));
    let mut struck = 0;
    let mut attempts = 0;
    while struck < kills {
        attempts += 1;
        assert!(
            attempts < kills * 20,
            "{op}: too few kills struck a running process"
        );
        let plan = prepare(h);
        let delay = Duration::from_micros(rng.next_u64() % (span.as_micros() as u64 + 1));
        if kill_after(&h.store, &plan.args, delay) {
            struck += 1;
            span = span.mul_f64(1.1);
        } else {
            span = span.mul_f64(0.7).max(Duration::from_millis(2));
        }
        let what = format!("{op}, kill {struck} after {delay:?} (seed {})", seed());
        let listed = h.store.snapshot_names(None);
        if let Some((name, content)) = plan.may_appear {
            if listed.contains(&name) {
                h.expected.insert(name, content);
            }
        }
        h.check_some(&what, &listed, &plan.may_vanish, only);
        finish(h, &plan.args);
        h.collect_and_check_leftovers(&what);
        h.trim();
    }
    h.kills += struck;
}

#[test]
fn killed_backups_never_damage_the_store() {
    let ops = [
        "backup image",
        "backup tree (legacy)",
        "backup tree (data)",
        "backup tree (metadata)",
    ];
    let mut h = Harness::new(&ops);
    let mut rng = XorShift::new(seed());
    for op in ops {
        // Measure an uninterrupted run of this backup.
        let time = h.time();
        let (name, args) = backup_args_for(&h, op, time);
        let span = duration_of(&h.store, &args);
        let content = h.content(op);
        h.expected.insert(name, content);
        hammer(
            &mut h,
            op,
            group_of(op),
            span,
            &mut rng,
            |h| {
                let time = h.time();
                let (name, args) = backup_args_for(h, op, time);
                Plan {
                    may_appear: Some((name, h.content(op))),
                    ..Plan::new(args)
                }
            },
            |h, _| h.backup(op),
        );
    }
    common::suite::record(
        "crash_backups",
        &[("kills", h.kills), ("damaged_snapshots", 0)],
    );
}

#[test]
fn killed_maintenance_never_damages_the_store() {
    let mut h = Harness::new(&[
        "backup image",
        "backup tree (legacy)",
        "backup tree (metadata)",
    ]);
    let mut rng = XorShift::new(seed() ^ 0xa5a5);
    let gc = vec!["-q".to_string(), "gc".into(), "--cutoff".into(), "0".into()];

    // gc, with garbage to sweep each time.
    let garbage = |h: &mut Harness| {
        h.backup("backup image");
        let newest = h.store.snapshot_names(Some("vm/img")).pop().unwrap();
        std::fs::write(&h.image_path, random_bytes(h.next_time as u64, 3 << 20)).unwrap();
        h.backup("backup image");
        h.store.run(["forget", &newest]).ok();
        h.expected.remove(&newest);
    };
    let span = duration_of(&h.store, &gc);
    hammer(
        &mut h,
        "gc",
        "",
        span,
        &mut rng,
        |h| {
            garbage(h);
            Plan::new(gc.clone())
        },
        |h, args| {
            h.store.run(args).ok();
        },
    );

    // prune and forget remove snapshots: those they were asked to may vanish.
    let prune = |group: &str| {
        vec![
            "-q".to_string(),
            "prune".into(),
            group.into(),
            "--keep-last".into(),
            "1".into(),
        ]
    };
    let span = duration_of(&h.store, &prune("host/metadata"));
    h.forget_vanished();
    hammer(
        &mut h,
        "prune",
        "",
        span,
        &mut rng,
        |h| {
            h.backup("backup tree (metadata)");
            h.backup("backup tree (metadata)");
            let names = h.store.snapshot_names(Some("host/metadata"));
            let keep = names.last().cloned();
            let vanish = names
                .into_iter()
                .filter(|n| Some(n) != keep.as_ref())
                .collect();
            Plan {
                may_vanish: vanish,
                ..Plan::new(prune("host/metadata"))
            }
        },
        |h, args| {
            h.store.run(args).ok();
        },
    );
    h.backup("backup tree (legacy)");
    let victim = h.store.snapshot_names(Some("host/legacy")).remove(0);
    let span = duration_of(&h.store, &["-q".to_string(), "forget".into(), victim]);
    h.forget_vanished();
    hammer(
        &mut h,
        "forget",
        "",
        span,
        &mut rng,
        |h| {
            h.backup("backup tree (legacy)");
            let victim = h.store.snapshot_names(Some("host/legacy")).remove(0);
            let args = vec!["-q".to_string(), "forget".into(), victim.clone()];
            Plan {
                may_vanish: vec![victim],
                ..Plan::new(args)
            }
        },
        |h, args| {
            // Forget again, unless the killed run managed it.
            let victim = args.last().unwrap();
            if h.store.snapshot_names(None).contains(victim) {
                h.store.run(args).ok();
            }
        },
    );

    // sync into a second store; the source must stay intact, the target whole.
    let target = Store::new();
    let sync = vec![
        "-q".to_string(),
        "sync".into(),
        "--from".into(),
        h.store.path.display().to_string(),
        "--to".into(),
        target.path.display().to_string(),
    ];
    let span = duration_of(&h.store, &sync);
    hammer(
        &mut h,
        "sync",
        "",
        span,
        &mut rng,
        |h| {
            h.backup("backup image");
            Plan::new(sync.clone())
        },
        |h, args| {
            h.store.run(args).ok();
            let run = target.run(["-q", "verify", "--all"]);
            assert_eq!(
                run.code,
                0,
                "the sync target does not verify: {}",
                run.stdout_text()
            );
            let source = h.store.snapshot_names(None);
            let copied = target.snapshot_names(None);
            assert!(
                source.iter().all(|s| copied.contains(s)),
                "sync left out snapshots"
            );
            target.run(["-q", "gc", "--cutoff", "0"]).ok();
            assert!(leftovers(&target.path).is_empty());
        },
    );
    common::suite::record(
        "crash_maintenance",
        &[("kills", h.kills), ("damaged_snapshots", 0)],
    );
}
