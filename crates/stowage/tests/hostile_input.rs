//! Hostile input: the crafted snapshots of `tests/hostile/` (see its README) are installed one by
//! one into a datastore (emptied again after each) and put through restore, export, cat, catalog
//! and verify. Each
//! command must refuse bad input with a documented exit code and one last `error:` line naming
//! what is at fault, create nothing outside its target, finish within a deadline, never die by
//! a signal, and never allocate in proportion to a size the data declares: every command runs
//! with its address space limited to 2 GiB, far below the 2^60 bytes the cases declare.

mod common;
mod hostile_gen;

use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use hostile_gen::SNAPSHOT;

/// The corpus, as checked in.
fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hostile")
}

/// Address-space limit of every command run.
const ADDRESS_SPACE: u64 = 2 << 30;
/// Deadline of every command run.
const DEADLINE: Duration = Duration::from_secs(60);
/// Where a name that escapes through an absolute path would write (see `name-absolute`).
const ABSOLUTE_ESCAPE: &str = "/etc/stowage-hostile-escape";

/// A command to run against a case's snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    /// `restore SNAP ARCHIVE <scratch>/target` into a new directory.
    RestoreTree(&'static str),
    /// The same with `--include PATH`: a partial restore.
    RestoreInclude(&'static str, &'static str),
    /// `restore SNAP ARCHIVE <scratch>/target` of an image or blob into a new file.
    RestoreFile(&'static str),
    /// `export SNAP ARCHIVE <scratch>/out.tar`.
    ExportTree(&'static str),
    /// `export SNAP ARCHIVE <scratch>/out.img`.
    ExportImage(&'static str),
    /// `cat SNAP ARCHIVE PATH`.
    Cat(&'static str, &'static str),
    /// `catalog SNAP`.
    Catalog,
    /// `catalog SNAP --find GLOB`.
    CatalogFind(&'static str),
    /// `verify SNAP`.
    Verify,
}

impl Cmd {
    fn args(&self, scratch: &Path) -> Vec<String> {
        let target = scratch.join("target").display().to_string();
        let s = SNAPSHOT.to_string();
        let v = |items: &[&str]| items.iter().map(|i| i.to_string()).collect::<Vec<_>>();
        match *self {
            Cmd::RestoreTree(a) | Cmd::RestoreFile(a) => v(&["restore", &s, a, &target]),
            Cmd::RestoreInclude(a, p) => v(&["restore", &s, a, &target, "--include", p]),
            Cmd::ExportTree(a) => {
                let out = scratch.join("out.tar").display().to_string();
                v(&["export", &s, a, &out])
            }
            Cmd::ExportImage(a) => {
                let out = scratch.join("out.img").display().to_string();
                v(&["export", &s, a, &out])
            }
            Cmd::Cat(a, p) => v(&["cat", &s, a, p]),
            Cmd::Catalog => v(&["catalog", &s]),
            Cmd::CatalogFind(g) => v(&["catalog", &s, "--find", g]),
            Cmd::Verify => v(&["verify", &s]),
        }
    }

    /// The archive the command is about (`None` for verify: the whole snapshot).
    fn archive(&self) -> Option<&'static str> {
        match *self {
            Cmd::RestoreTree(a)
            | Cmd::RestoreInclude(a, _)
            | Cmd::RestoreFile(a)
            | Cmd::ExportTree(a)
            | Cmd::ExportImage(a)
            | Cmd::Cat(a, _) => Some(a),
            Cmd::Catalog | Cmd::CatalogFind(_) => Some("catalog.pcat1"),
            Cmd::Verify => None,
        }
    }

    /// What a successful run may leave in its scratch directory.
    fn outputs(&self) -> &'static [&'static str] {
        match self {
            Cmd::RestoreTree(_) | Cmd::RestoreInclude(..) | Cmd::RestoreFile(_) => &["target"],
            Cmd::ExportTree(_) => &["out.tar", "out.tar.manifest.json", "out.tar.sha256"],
            Cmd::ExportImage(_) => &["out.img", "out.img.manifest.json", "out.img.sha256"],
            _ => &[],
        }
    }
}

/// Whether `verify` can see what is wrong with a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Damage {
    /// Nothing: the control case.
    None,
    /// A chunk, index, blob or the manifest is damaged: verify fails (exit 8).
    Storage,
    /// What is stored is intact (every chunk matches its digest, every file its manifest entry);
    /// the content of an archive or catalog is hostile. Verify decodes every file-tree archive
    /// and catalog of a snapshot whose chunks are whole, and fails it (exit 8).
    Content,
    /// Only the 16-byte header before a payload in a split archive's payload stream is wrong.
    /// Verify does not read payloads again (their chunks are verified, their references
    /// checked against the stream): it passes; restore, export and cat refuse.
    PayloadHeader,
}

struct Spec {
    name: &'static str,
    damage: Damage,
    /// Commands with the exit code each must give.
    commands: Vec<(Cmd, i32)>,
    /// The last error line of every failing command names one of these: `$CHUNK` stands for
    /// any chunk of the case (by its digest), `$ARCHIVE` for the archive the command is about
    /// (for verify: that of any command of the case, or the manifest).
    names: &'static [&'static str],
}

const TREE: &str = "root.pxar";
const IMAGE: &str = "disk.img";
const BLOB: &str = "qemu-server.conf";

/// Restore, export and cat of `root.pxar` (cat of `cat_path`), each expected to exit `code`.
fn tree_cmds(cat_path: &'static str, code: i32) -> Vec<(Cmd, i32)> {
    vec![
        (Cmd::RestoreTree(TREE), code),
        (Cmd::ExportTree(TREE), code),
        (Cmd::Cat(TREE, cat_path), code),
    ]
}

fn image_cmds(code: i32) -> Vec<(Cmd, i32)> {
    vec![
        (Cmd::RestoreFile(IMAGE), code),
        (Cmd::ExportImage(IMAGE), code),
    ]
}

fn catalog_cmds(code: i32) -> Vec<(Cmd, i32)> {
    vec![(Cmd::Catalog, code), (Cmd::CatalogFind("**/x"), code)]
}

/// Every command of a snapshot with all kinds of archives.
fn all_cmds(code: i32) -> Vec<(Cmd, i32)> {
    let mut cmds = tree_cmds("/dir/file", code);
    cmds.extend(image_cmds(code));
    cmds.push((Cmd::RestoreFile(BLOB), code));
    cmds.extend(catalog_cmds(code));
    cmds
}

fn with_verify(mut cmds: Vec<(Cmd, i32)>, damage: Damage) -> Vec<(Cmd, i32)> {
    // Verify renames bad chunks away: it runs last.
    let code = match damage {
        Damage::Storage | Damage::Content => 8,
        Damage::None | Damage::PayloadHeader => 0,
    };
    cmds.push((Cmd::Verify, code));
    cmds
}

fn spec(
    name: &'static str,
    damage: Damage,
    commands: Vec<(Cmd, i32)>,
    names: &'static [&'static str],
) -> Spec {
    Spec {
        name,
        damage,
        commands: with_verify(commands, damage),
        names,
    }
}

/// What each case must give; the cases themselves are in `tests/hostile/` (made by
/// `hostile_gen`).
fn specs() -> Vec<Spec> {
    use Damage::{Content, Storage};
    let tree = |cat| tree_cmds(cat, 8);
    let hardlink = |full: i32| {
        vec![
            (Cmd::RestoreTree(TREE), full),
            (Cmd::RestoreInclude(TREE, "/c-hard"), full),
            (Cmd::ExportTree(TREE), full),
        ]
    };
    let mut control = all_cmds(0);
    control.extend([
        (Cmd::RestoreTree("split.pxar"), 0),
        (Cmd::ExportTree("split.pxar"), 0),
        (Cmd::Cat("split.pxar", "/d/b"), 0),
        (Cmd::RestoreInclude(TREE, "/hard"), 0),
    ]);
    let mut hardlink_through = hardlink(8);
    hardlink_through.push((Cmd::Cat(TREE, "/c-hard"), 6));
    let mut hardlink_missing = hardlink(8);
    hardlink_missing.push((Cmd::Cat(TREE, "/c-hard"), 6));
    let mut split_overlap = tree("/g");
    split_overlap.push((Cmd::RestoreInclude(TREE, "/g"), 8));
    vec![
        spec("control", Damage::None, control, &[]),
        // 1. names
        spec("name-slash", Content, tree("/zzz"), &[TREE]),
        spec("name-dot", Content, tree("/zzz"), &[TREE]),
        spec("name-dotdot", Content, tree("/zzz"), &[TREE]),
        spec("name-escape", Content, tree("/zzz"), &[TREE]),
        spec("name-absolute", Content, tree("/zzz"), &[TREE]),
        spec("name-empty", Content, tree("/zzz"), &[TREE]),
        // 2. two entries of one name
        spec("dup-symlink-then-dir", Content, tree("/zzz"), &[TREE]),
        spec("dup-dir-then-file", Content, tree("/zzz"), &[TREE]),
        // 3. hardlinks
        spec("hardlink-absolute", Content, tree("/c-hard"), &[TREE]),
        spec("hardlink-dotdot", Content, tree("/c-hard"), &[TREE]),
        spec(
            "hardlink-through-symlink",
            Content,
            hardlink_through,
            &["c-hard"],
        ),
        spec("hardlink-missing", Content, hardlink_missing, &["c-hard"]),
        // 4. huge sizes inside the archive
        spec("pxar-payload-2p60", Content, tree("/big"), &["big"]),
        spec("pxar-xattr-huge", Content, tree("/zzz"), &[TREE]),
        spec("pxar-acl-huge", Content, tree("/zzz"), &[TREE]),
        spec("pxar-filename-huge", Content, tree("/zzz"), &[TREE]),
        spec("pxar-goodbye-huge", Content, tree("/zzz"), &[TREE]),
        spec("pxar-goodbye-item-huge", Content, tree("/zzz"), &[TREE]),
        // 5. indexes
        spec(
            "didx-not-increasing",
            Storage,
            tree("/zzz"),
            &["root.pxar.didx"],
        ),
        spec(
            "didx-chunk-2p60",
            Storage,
            tree("/zzz"),
            &["root.pxar.didx"],
        ),
        spec("didx-bad-magic", Storage, tree("/zzz"), &["root.pxar.didx"]),
        spec("didx-truncated", Storage, tree("/zzz"), &["root.pxar.didx"]),
        spec(
            "didx-short-header",
            Storage,
            tree("/zzz"),
            &["root.pxar.didx"],
        ),
        spec("fidx-size-2p60", Storage, image_cmds(8), &["disk.img.fidx"]),
        spec(
            "fidx-count-mismatch",
            Storage,
            image_cmds(8),
            &["disk.img.fidx"],
        ),
        // 6. blobs
        spec("chunk-zstd-size-2p60", Storage, image_cmds(8), &["$CHUNK"]),
        spec("chunk-bad-crc", Storage, image_cmds(8), &["$CHUNK"]),
        spec("chunk-digest-mismatch", Storage, image_cmds(8), &["$CHUNK"]),
        spec("chunk-zip-bomb", Storage, tree("/zzz"), &["$CHUNK"]),
        spec(
            "blob-zstd-size-2p60",
            Storage,
            vec![(Cmd::RestoreFile(BLOB), 8)],
            &[BLOB],
        ),
        spec(
            "blob-zip-bomb",
            Storage,
            vec![(Cmd::RestoreFile(BLOB), 8)],
            &[BLOB],
        ),
        spec(
            "blob-bad-crc",
            Storage,
            vec![(Cmd::RestoreFile(BLOB), 8)],
            &[BLOB],
        ),
        // 7. manifests
        spec(
            "manifest-missing-files",
            Storage,
            all_cmds(8),
            &["$ARCHIVE"],
        ),
        spec(
            "manifest-index-mismatch",
            Storage,
            all_cmds(8),
            &["$ARCHIVE"],
        ),
        spec(
            "manifest-not-json",
            Storage,
            all_cmds(8),
            &["index.json.blob"],
        ),
        spec("manifest-huge-size", Storage, all_cmds(8), &["$ARCHIVE"]),
        // 8. split archives
        spec("split-ref-beyond-stream", Content, tree("/g"), &[TREE]),
        spec("split-ref-size-2p60", Content, tree("/g"), &[TREE]),
        spec("split-ref-overlap", Content, split_overlap, &[TREE]),
        spec(
            "split-payload-header-mismatch",
            Damage::PayloadHeader,
            tree("/g"),
            &[TREE],
        ),
        spec("split-payload-2p60", Content, tree("/g"), &[TREE]),
        // 9. catalogs
        spec("catalog-self-cycle", Content, catalog_cmds(8), &["catalog"]),
        spec(
            "catalog-shared-tables",
            Content,
            catalog_cmds(8),
            &["catalog"],
        ),
        spec(
            "catalog-offset-beyond-end",
            Content,
            catalog_cmds(8),
            &["catalog"],
        ),
        spec(
            "catalog-delta-beyond-start",
            Content,
            catalog_cmds(8),
            &["catalog"],
        ),
        spec("catalog-huge-count", Content, catalog_cmds(8), &["catalog"]),
        spec(
            "catalog-huge-table-length",
            Content,
            catalog_cmds(8),
            &["catalog"],
        ),
        spec(
            "catalog-zero-chunks",
            Content,
            catalog_cmds(8),
            &["catalog"],
        ),
        spec(
            "catalog-didx-chunk-2p60",
            Storage,
            catalog_cmds(8),
            &["catalog.pcat1.didx"],
        ),
    ]
}

/// Writes the corpus from the generator, only when `STOWAGE_REGENERATE_HOSTILE=1`.
#[test]
fn regenerate() {
    if std::env::var("STOWAGE_REGENERATE_HOSTILE").as_deref() == Ok("1") {
        hostile_gen::write_all(&corpus());
        eprintln!("wrote {}", corpus().display());
    }
}

/// Every file of a directory tree, relative, with its bytes.
fn tree_files(root: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else {
                let rel = path.strip_prefix(root).unwrap().to_path_buf();
                out.insert(rel, fs::read(&path).unwrap());
            }
        }
    }
    out
}

/// The checked-in corpus is what the generator makes (it is deterministic), and small.
#[test]
fn corpus_is_what_the_generator_makes() {
    if std::env::var("STOWAGE_REGENERATE_HOSTILE").as_deref() == Ok("1") {
        return; // `regenerate` is writing it
    }
    let tmp = tempdir();
    hostile_gen::write_all(&tmp.path().join("hostile"));
    let made = tree_files(&tmp.path().join("hostile"));
    let stored = tree_files(&corpus());
    let names =
        |m: &std::collections::BTreeMap<PathBuf, Vec<u8>>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        names(&stored),
        names(&made),
        "the corpus differs from the generator's: regenerate it (STOWAGE_REGENERATE_HOSTILE=1)"
    );
    for (path, bytes) in &made {
        assert!(
            stored[path] == *bytes,
            "{} differs from the generator's: regenerate the corpus",
            path.display()
        );
        assert!(bytes.len() <= 16 << 10, "{} is large", path.display());
    }
    let specs: BTreeSet<&str> = specs().iter().map(|s| s.name).collect();
    let cases: BTreeSet<&str> = hostile_gen::cases().iter().map(|c| c.name).collect();
    assert_eq!(specs, cases, "every case has its expectations");
}

/// Copies a case into the snapshot directory and chunk store of `store`; returns the names of
/// its chunk files.
fn install(store: &Store, case: &Path) -> Vec<String> {
    let group = store.path.join("host/1");
    let snap = store.path.join(SNAPSHOT);
    fs::create_dir_all(&snap).unwrap();
    fs::write(group.join("owner"), "root@pam\n").unwrap();
    for entry in fs::read_dir(case).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            fs::copy(entry.path(), snap.join(entry.file_name())).unwrap();
        }
    }
    let chunks: Vec<String> = listing(&case.join("chunks")).into_iter().collect();
    for name in &chunks {
        fs::copy(case.join("chunks").join(name), store.chunk_path(name)).unwrap();
    }
    chunks
}

/// Takes a case out of `store` again: its group and its chunk files (renamed to `.bad` or not),
/// so that the next case finds the datastore as `datastore create` made it (creating one per
/// case costs a second: 65536 directories to make and remove).
fn uninstall(store: &Store, chunks: &[String], top: &BTreeSet<String>) {
    fs::remove_dir_all(store.path.join("host")).unwrap();
    for name in chunks {
        let dir = store.chunk_dir().join(&name[..4]);
        for file in listing(&dir) {
            fs::remove_file(dir.join(file)).unwrap();
        }
    }
    assert_eq!(
        &listing(&store.path),
        top,
        "a case left files in the datastore"
    );
}

/// What one limited run did.
struct Limited {
    code: Option<i32>,
    signal: Option<i32>,
    stdout: Vec<u8>,
    stderr: String,
    elapsed: Duration,
}

/// Reads a pipe to its end on a thread, keeping at most 1 MiB.
fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut buf = [0u8; 64 << 10];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            let room = (1usize << 20).saturating_sub(kept.len());
            kept.extend_from_slice(&buf[..n.min(room)]);
        }
        kept
    })
}

/// Runs the binary against `store` with the address-space limit and the deadline; the pipes
/// are drained while it runs, so a command printing much cannot stall.
fn run_limited(store: &Store, args: &[String], what: &str) -> Limited {
    let mut cmd: Command = store.cmd();
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    // SAFETY: setrlimit is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: ADDRESS_SPACE,
                rlim_max: ADDRESS_SPACE,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let started = Instant::now();
    let mut child = cmd.spawn().expect("spawn stowage");
    let out = drain(child.stdout.take().unwrap());
    let err = drain(child.stderr.take().unwrap());
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll stowage") {
            break status;
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: did not finish within {DEADLINE:?} (a hang)");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Limited {
        code: status.code(),
        signal: status.signal(),
        stdout: out.join().unwrap(),
        stderr: String::from_utf8_lossy(&err.join().unwrap()).into_owned(),
        elapsed: started.elapsed(),
    }
}

/// Names of the entries of `dir` (none if it does not exist).
fn listing(dir: &Path) -> BTreeSet<String> {
    match fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => BTreeSet::new(),
    }
}

/// Runs every command of `spec` against its case in a fresh datastore; returns the runs made and
/// what went wrong.
fn run_case(store: &Store, spec: &Spec) -> (u64, Vec<String>) {
    let case_dir = corpus().join(spec.name);
    assert!(
        case_dir.is_dir(),
        "{}: no such case in the corpus",
        spec.name
    );
    let top = listing(&store.path);
    let chunk_names = install(store, &case_dir);
    // What verify may name: the archives the case's commands are about, or the manifest.
    let snapshot_files: Vec<String> = spec
        .commands
        .iter()
        .filter_map(|(c, _)| c.archive())
        .chain(["index.json.blob"])
        .map(str::to_string)
        .collect();
    let outside = store.path.parent().unwrap().to_path_buf();
    let outside_before = listing(&outside);
    let mut runs = 0;
    let mut failures = Vec::new();
    for (i, (cmd, expected)) in spec.commands.iter().enumerate() {
        let scratch = store.work.join(format!("{}-{i}", spec.name));
        fs::create_dir(&scratch).unwrap();
        let work_before = listing(&store.work);
        let args = cmd.args(&scratch);
        let what = format!("case {}: stowage {}", spec.name, args.join(" "));
        let run = run_limited(store, &args, &what);
        runs += 1;
        let detail = format!(
            "{what}\n  exit code {:?}, signal {:?}, {:?}\n  stdout: {}\n  stderr: {}",
            run.code,
            run.signal,
            run.elapsed,
            String::from_utf8_lossy(&run.stdout[..run.stdout.len().min(2000)]).trim_end(),
            run.stderr.trim_end()
        );
        if std::env::var_os("STOWAGE_HOSTILE_VERBOSE").is_some() {
            let last = run.stderr.lines().last().unwrap_or_default();
            eprintln!("{what}\n  -> {:?} {last}", run.code);
        }
        let mut fail = |why: String| failures.push(format!("{why}\n  {detail}"));
        if run.signal.is_some() {
            fail("died by a signal".into());
        } else if run.code == Some(1) {
            fail("internal error (exit 1)".into());
        } else if run.code != Some(*expected) {
            fail(format!("exit code {:?}, expected {expected}", run.code));
        }

        // Nothing beside the target: in the scratch directory only what the command makes,
        // nothing new in the directories above it.
        let left = listing(&scratch);
        let allowed: BTreeSet<String> = match (run.code, cmd) {
            (Some(0), _) | (_, Cmd::RestoreTree(_) | Cmd::RestoreInclude(..)) => {
                cmd.outputs().iter().map(|s| s.to_string()).collect()
            }
            _ => BTreeSet::new(),
        };
        if !left.is_subset(&allowed) {
            fail(format!(
                "left {left:?} in its scratch directory (allowed: {allowed:?})"
            ));
        }
        if listing(&store.work) != work_before {
            fail("wrote beside the scratch directory".into());
        }
        if listing(&outside) != outside_before {
            fail("wrote beside the datastore".into());
        }
        if Path::new(ABSOLUTE_ESCAPE).exists() {
            fail(format!("wrote {ABSOLUTE_ESCAPE}"));
        }

        if *expected == 0 || run.code == Some(0) {
            continue;
        }
        let last = run.stderr.lines().last().unwrap_or_default();
        if !last.starts_with("error: ") {
            fail("the last line of stderr is not an error line".into());
            continue;
        }
        let named = spec.names.iter().any(|n| match (*n, cmd.archive()) {
            ("$CHUNK", _) => chunk_names.iter().any(|c| last.contains(c.as_str())),
            ("$ARCHIVE", Some(archive)) => last.contains(archive),
            ("$ARCHIVE", None) => snapshot_files.iter().any(|f| last.contains(f.as_str())),
            (n, _) => last.contains(n),
        });
        if !named {
            fail(format!(
                "the error line names none of {:?} (chunks {chunk_names:?})",
                spec.names
            ));
        }
    }
    uninstall(store, &chunk_names, &top);
    (runs, failures)
}

#[test]
fn hostile_snapshots_are_refused_safely() {
    assert!(
        !Path::new(ABSOLUTE_ESCAPE).exists(),
        "{ABSOLUTE_ESCAPE} exists before the test"
    );
    let started = Instant::now();
    let (mut runs, mut hostile_runs) = (0, 0);
    let mut failures = Vec::new();
    let store = Store::new();
    for spec in specs() {
        let (n, failed) = run_case(&store, &spec);
        runs += n;
        if spec.damage != Damage::None {
            hostile_runs += n;
        }
        failures.extend(failed);
    }
    eprintln!(
        "{runs} (case, command) runs in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{} of {runs} runs failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    suite::record(
        "hostile_input",
        &[("hostile_cases", hostile_runs), ("damaged_snapshots", 0)],
    );
}

/// `verify --chunks-only` checks what PBS's verify checks (chunks, indexes, blobs), so an archive
/// whose content is hostile passes it; the default verify decodes the archive and fails.
#[test]
fn chunks_only_verify_leaves_archive_content_alone() {
    let store = Store::new();
    let top = listing(&store.path);
    let chunks = install(&store, &corpus().join("name-slash"));
    let snapshot = "host/1/2023-11-14T22:13:20Z";
    store.run(["-q", "verify", "--chunks-only", snapshot]).ok();
    let run = store.run(["-q", "verify", snapshot]);
    run.expect_code(8);
    assert!(
        run.stdout_text().contains("root.pxar"),
        "{}",
        run.stdout_text()
    );
    uninstall(&store, &chunks, &top);
}
