//! File-tree (pxar) backups through the real binary: a tree with every kind of entry and
//! metadata survives backup and restore; unchanged trees reuse their chunks; exclude patterns
//! and `.pxarexclude` files; unreadable entries make a partial backup (exit 7); restore refuses
//! to overwrite, restores only what `--include` names; `cat` and `catalog`; corrupt chunks and
//! bad sources get their exit codes.
//!
//! Parts that need a capability this machine lacks (root for chown, mknod, `trusted.*` and file
//! capabilities; ACL support of the temporary file system; a way to run as another user) are
//! skipped with a note on stderr.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, FileExt};
use std::path::Path;
use std::process::Command;

use common::tree::*;
use common::*;

// ---------------------------------------------------------------------------------------------
// 1. Full fidelity
// ---------------------------------------------------------------------------------------------

/// The source tree really holds what the round trip claims to check.
fn check_source(src: &Walked, skipped: &Skipped) {
    let e = |p: &str| src.get(p.as_bytes());
    assert_eq!(e("file").mtime, (1_600_000_000, 123_456_789));
    assert_eq!(e("old").mtime, (-31_536_001, 500_000_000));
    assert_eq!(e("dangling").mtime, (1_000_000_000, 500_000_000));
    assert_eq!(e("dir").mtime, (1_234_567_890, 987_654_321));
    assert_eq!(e("").mode, 0o040751);
    assert_eq!(e("suid").mode, 0o104755);
    assert_eq!(e("sgid").mode, 0o102755);
    assert_eq!(e("sticky").mode, 0o041777);
    assert_eq!(e("sgiddir").mode, 0o042775);
    assert_eq!(e("empty").size, Some(0));
    assert_eq!(e("big").size, Some(5 * MIB as u64));
    assert_eq!(e("sparse").size, Some(SPARSE_SIZE));
    assert_eq!(e("sock").kind, Kind::Socket);
    assert_eq!(e("fifo").kind, Kind::Fifo);
    assert_eq!(e("abs").link_target.as_deref(), Some(&b"/etc/passwd"[..]));
    assert_eq!(e("dir/link2").nlink, 2);
    assert_eq!(e("emptydir").kind, Kind::Dir);
    assert_eq!(e("file").xattrs["user.a"], b"1");
    assert_eq!(e("file").xattrs["user.bin"], [0, 1, 2, 0xff, 0]);
    assert!(
        src.inodes[&b"sparse"[..]].allocated < 256 * 1024,
        "the source file is not sparse"
    );
    for name in odd_names() {
        assert_eq!(src.get(&name).size, Some(name.len() as u64));
    }
    let deepest = src.entries.keys().map(Vec::len).max().unwrap();
    assert!(deepest > 8000, "deepest path has only {deepest} bytes");
    if !skipped.has("chown") {
        for owned in ["owned", "suid", "sgiddir", "owned_link", "owned_fifo"] {
            assert_eq!((e(owned).uid, e(owned).gid), (1234, 5678), "{owned}");
        }
    }
    if !skipped.has("trusted xattrs") {
        assert!(e("file").xattrs.contains_key("trusted.t"));
        let names: Vec<&String> = e("rel").xattrs.keys().collect();
        assert_eq!(names, ["trusted.on-symlink"]);
        assert!(e("fifo").xattrs.contains_key("trusted.on-fifo"));
    }
    if !skipped.has("ACLs") {
        assert!(e("acl_file").xattrs.contains_key("system.posix_acl_access"));
        assert!(e("acl_dir").xattrs.contains_key("system.posix_acl_default"));
        assert!(e("acl_dir/inherited")
            .xattrs
            .contains_key("system.posix_acl_access"));
    }
    if !skipped.has("file capabilities") {
        assert!(e("cap_file").xattrs.contains_key("security.capability"));
    }
    if !skipped.has("char device") {
        assert_eq!(e("null").rdev, Some((1, 3)));
    }
}

/// The catalog letter of an entry kind.
fn letter(kind: Kind) -> &'static str {
    match kind {
        Kind::File => "f",
        Kind::Dir => "d",
        Kind::Symlink => "l",
        Kind::Fifo => "p",
        Kind::Socket => "s",
        Kind::Char => "c",
        Kind::Block => "b",
    }
}

#[test]
fn every_entry_and_attribute_survives_backup_and_restore() {
    let store = Store::new();
    let src = store.file("src");
    fs::create_dir(&src).unwrap();
    let skipped = build_full_tree(&src);
    let source = walk(&src);
    check_source(&source, &skipped);

    let report = store.backup_tree_ok(&src, "full", T1, &[]);
    let snapshot = host_snap("full", T1);
    assert_eq!(report["warnings"], 0, "{report}");
    let archive = &report["archives"][0];
    assert_eq!(archive["archive"], "root.pxar", "{report}");
    // What went in, counted from the source.
    let count = |k: Kind| source.entries.values().filter(|i| i.kind == k).count() as u64;
    let tree = &archive["tree"];
    assert_eq!(tree["directories"], count(Kind::Dir), "{tree}");
    assert_eq!(tree["files"], count(Kind::File) - 1, "{tree}");
    assert_eq!(tree["hardlinks"], 1, "{tree}");
    assert_eq!(tree["symlinks"], count(Kind::Symlink), "{tree}");
    let other = count(Kind::Fifo) + count(Kind::Socket) + count(Kind::Char);
    assert_eq!(tree["other"], other, "{tree}");
    let linked = source.get(b"link1").size.unwrap();
    let bytes: u64 = source.entries.values().filter_map(|i| i.size).sum::<u64>() - linked;
    assert_eq!(
        tree["bytes"], bytes,
        "{tree} (hardlinked content counts once)"
    );
    assert_eq!(tree["excluded"], 0, "{tree}");
    assert_eq!(tree["warnings"], 0, "{tree}");

    store.run(["verify", snapshot.as_str()]).ok();

    let dst = store.file("dst");
    let run = store.restore_tree(&snapshot, &dst, &["--output-format", "json"]);
    run.ok();
    let restored_report = run.json();
    assert_eq!(
        restored_report["entries"],
        source.entries.len() as u64 - 1,
        "every entry but the root: {restored_report}"
    );
    let restored = walk(&dst);
    assert_same_tree(&source, &restored);

    // A few values spelled out, beyond "same as the source".
    let r = |p: &str| restored.get(p.as_bytes());
    assert_eq!(r("file").mtime, (1_600_000_000, 123_456_789));
    assert_eq!(r("old").mtime, (-31_536_001, 500_000_000));
    assert_eq!(r("suid").mode, 0o104755);
    assert_eq!(r("").mode, 0o040751);
    assert_eq!(r("").mtime, (1_500_000_000, 42));
    assert_eq!(
        r("dangling").link_target.as_deref(),
        Some(&b"/nonexistent/target"[..])
    );
    assert_eq!(r("dir/up").link_target.as_deref(), Some(&b"../file"[..]));
    assert_eq!(r("file").xattrs["user.bin"], vec![0, 1, 2, 0xff, 0]);
    if !skipped.has("chown") {
        assert_eq!((r("owned_fifo").uid, r("owned_fifo").gid), (1234, 5678));
    }
    if !skipped.has("ACLs") {
        assert_eq!(r("acl_file").xattrs["system.posix_acl_access"], file_acl());
        assert_eq!(
            r("acl_dir").xattrs["system.posix_acl_default"],
            dir_default_acl()
        );
    }
    if !skipped.has("file capabilities") {
        assert_eq!(r("cap_file").xattrs["security.capability"], fcaps());
    }
    if !skipped.has("trusted xattrs") {
        assert_eq!(r("fifo").xattrs["trusted.on-fifo"], b"f");
    }
    if !skipped.has("char device") {
        assert_eq!(r("null").rdev, Some((1, 3)));
        assert_eq!(r("null").mode, 0o020666);
    }
    // Hardlinks share an inode; the sparse file keeps its hole.
    let ino = |p: &[u8]| restored.inodes[p].ino;
    assert_eq!(ino(b"link1"), ino(b"dir/link2"), "hardlinks share an inode");
    assert_ne!(ino(b"link1"), ino(b"file"));
    assert_eq!(r("link1").nlink, 2);
    let sparse = restored.inodes[&b"sparse"[..]].allocated;
    assert!(
        sparse < 256 * 1024,
        "restored sparse file of {SPARSE_SIZE} bytes has {sparse} bytes allocated"
    );

    // The catalog lists every entry with its type letter (and files with size and mtime).
    let rows = store.catalog_rows(&snapshot, None);
    let got: BTreeMap<String, (String, Option<u64>, Option<i64>)> = rows
        .into_iter()
        .map(|r| (r.path, (r.kind, r.size, r.mtime)))
        .collect();
    let want: BTreeMap<String, (String, Option<u64>, Option<i64>)> = source
        .entries
        .iter()
        .map(|(path, i)| {
            let path = cat_path(&String::from_utf8_lossy(path));
            let value = match i.kind {
                // "dir/link2" comes first in the walk ("dir" < "link1"): "link1" is the link.
                Kind::File if path.ends_with("/link1") => ("h".to_string(), None, None),
                Kind::File => ("f".to_string(), i.size, Some(i.mtime.0)),
                k => (letter(k).to_string(), None, None),
            };
            (path, value)
        })
        .collect();
    assert_eq!(got, want, "catalog");

    // `cat` finds files at the end of a path longer than PATH_MAX and with a newline.
    let deep = source.entries.keys().max_by_key(|p| p.len()).unwrap();
    let run = store.run([
        "cat".as_ref(),
        snapshot.as_ref(),
        "root.pxar".as_ref(),
        OsStr::from_bytes(deep),
    ]);
    run.ok();
    assert_eq!(run.stdout, b"at the bottom");
    let run = store.run(["cat", &snapshot, "root.pxar", "/new\nline"]);
    run.ok();
    assert_eq!(run.stdout, b"new\nline");
    eprintln!(
        "checked {} entries; skipped: {:?}",
        source.entries.len(),
        skipped.0
    );
}

#[test]
fn cat_prints_a_file_whose_name_is_not_utf8() {
    let store = Store::new();
    let src = store.file("src");
    put(
        &src.join(OsStr::from_bytes(b"bad\xff\xfe")),
        b"latin-1 name",
    );
    store.backup_tree_ok(&src, "names", T1, &[]);
    // Not through `run`: it passes arguments on as (lossy) text.
    let args = [
        OsStr::new("cat"),
        OsStr::new("host/names"),
        OsStr::new("root.pxar"),
        OsStr::from_bytes(b"/bad\xff\xfe"),
    ];
    let out = store.cmd().args(args).output().unwrap();
    let run = Run::from_output(vec!["cat host/names root.pxar /bad\\xff\\xfe".into()], out);
    run.ok();
    assert_eq!(run.stdout, b"latin-1 name");
}

// ---------------------------------------------------------------------------------------------
// 2. Deduplication
// ---------------------------------------------------------------------------------------------

/// Ten 1 MiB files of random data and a few small ones, all with fixed times.
fn build_dedup_tree(src: &Path) {
    for i in 0..10u64 {
        put(
            &src.join(format!("data/f{i:02}")),
            &random_bytes(100 + i, MIB),
        );
    }
    for i in 0..20 {
        put(
            &src.join(format!("small/s{i:02}.txt")),
            format!("small file {i}\n").as_bytes(),
        );
    }
    fix_times(src);
}

/// Sets the mtime of everything below `dir` (and `dir`) to a fixed value.
fn fix_times(dir: &Path) {
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            fix_times(&e.path());
        } else {
            set_mtime(&e.path(), 1_650_000_000, 0);
        }
    }
    set_mtime(dir, 1_650_000_000, 0);
}

#[test]
fn unchanged_tree_reuses_every_chunk_and_a_change_adds_few() {
    let store = Store::new();
    let src = store.file("src");
    build_dedup_tree(&src);

    let first = store.backup_tree_ok(&src, "dedup", T1, &[]);
    let a1 = &first["archives"][0];
    let chunks = a1["chunks"].as_u64().unwrap();
    assert!(
        chunks >= 2,
        "a 10 MiB tree should make several chunks: {a1}"
    );
    assert_eq!(a1["new_chunks"], chunks, "{a1}");
    let count1 = store.chunk_count();
    let dir = |epoch| store.snapshot_dir(&host_snap("dedup", epoch));
    let digests1 = didx_digests(&dir(T1).join("root.pxar.didx"));
    assert_eq!(digests1.len() as u64, chunks);

    // Unchanged: nothing new, not even a catalog chunk.
    let second = store.backup_tree_ok(&src, "dedup", T2, &[]);
    let a2 = &second["archives"][0];
    assert_eq!(a2["new_chunks"], 0, "{a2}");
    assert_eq!(a2["chunks"], chunks, "{a2}");
    assert_eq!(a2["new_bytes"], 0, "{a2}");
    assert_eq!(a2["reused_bytes"], a2["size"], "{a2}");
    assert_eq!(a2["size"], a1["size"], "{a2}");
    assert_eq!(second["new_bytes"], 0, "{second}");
    assert_eq!(
        store.chunk_count(),
        count1,
        "an unchanged tree wrote chunk files"
    );
    assert_eq!(didx_digests(&dir(T2).join("root.pxar.didx")), digests1);

    // 100 bytes changed in the middle of one file: one or two new chunks, the rest reused.
    let f05 = src.join("data/f05");
    fs::OpenOptions::new()
        .write(true)
        .open(&f05)
        .unwrap()
        .write_all_at(&[0xAB; 100], 500_000)
        .unwrap();
    set_mtime(&f05, 1_650_000_100, 0);
    let third = store.backup_tree_ok(&src, "dedup", T3, &[]);
    let a3 = &third["archives"][0];
    let new = a3["new_chunks"].as_u64().unwrap();
    assert!(
        (1..=2).contains(&new),
        "{new} new chunks for a 100-byte change: {a3}"
    );
    assert!(new < a3["chunks"].as_u64().unwrap(), "{a3}");
    let (reused, fresh) = (a3["reused_bytes"].as_u64(), a3["new_bytes"].as_u64());
    assert!(reused.unwrap() > 0, "{a3}");
    assert_eq!(
        reused.unwrap() + fresh.unwrap(),
        a3["size"].as_u64().unwrap(),
        "{a3}"
    );
    // New chunk files: the archive's new chunks and at most one of the (changed) catalog.
    let added = (store.chunk_count() - count1) as u64;
    assert!(
        (new..=new + 1).contains(&added),
        "{added} chunk files added for {new} new archive chunks"
    );
    let digests3 = didx_digests(&dir(T3).join("root.pxar.didx"));
    let shared = digests3.iter().filter(|d| digests1.contains(d)).count();
    assert_eq!(shared as u64, a3["chunks"].as_u64().unwrap() - new);

    let run = store.run(["cat", "host/dedup", "root.pxar", "/data/f05"]);
    run.ok();
    assert_eq!(run.stdout, fs::read(&f05).unwrap());
}

// ---------------------------------------------------------------------------------------------
// 3. Excludes
// ---------------------------------------------------------------------------------------------

#[test]
fn exclude_patterns_and_pxarexclude_files() {
    let store = Store::new();
    let src = store.file("src");
    let files = [
        "a.log",             // *.log
        "keep.log",          // !keep.log
        "notes.txt",         // kept
        "build/out.o",       // /build (anchored)
        "sub/build/x.o",     // kept: /build is anchored at the root
        "sub/deep/app.log",  // *.log at any depth
        "sub/deep/keep.log", // !keep.log at any depth
        "sub/deep/cache",    // kept: a file, **/cache/ is for directories
        "cache/c.bin",       // **/cache/
        "sub/cache/d.bin",   // **/cache/
        "proj/x.tmp",        // proj/.pxarexclude: *.tmp
        "proj/nested/y.tmp", // proj/.pxarexclude: *.tmp below proj
        "proj/out/o.bin",    // proj/.pxarexclude: /out (anchored to proj)
        "proj/nested/out/o.bin",
        "proj/src.c",
        "other/z.tmp", // the .pxarexclude of proj does not apply here
        "z.tmp",
    ];
    for f in files {
        put(&src.join(f), f.as_bytes());
    }
    put(
        &src.join("proj/.pxarexclude"),
        b"# per-directory rules\n*.tmp\n/out\n",
    );

    let excludes = [
        "--exclude",
        "*.log",
        "--exclude",
        "!keep.log",
        "--exclude",
        "/build",
        "--exclude",
        "**/cache/",
    ];
    let report = store.backup_tree_ok(&src, "ex", T1, &excludes);
    let want: BTreeSet<&str> = [
        "",
        "keep.log",
        "notes.txt",
        "other",
        "other/z.tmp",
        "proj",
        "proj/.pxarexclude",
        "proj/nested",
        "proj/nested/out",
        "proj/nested/out/o.bin",
        "proj/src.c",
        "sub",
        "sub/build",
        "sub/build/x.o",
        "sub/deep",
        "sub/deep/cache",
        "sub/deep/keep.log",
        "z.tmp",
    ]
    .into();
    // a.log, build, sub/deep/app.log, cache, sub/cache, proj/x.tmp, proj/nested/y.tmp, proj/out
    assert_eq!(report["archives"][0]["tree"]["excluded"], 8, "{report}");
    assert_eq!(report["archives"][0]["tree"]["files"], 10, "{report}");

    let rows = store.catalog_rows("host/ex", None);
    let listed: BTreeSet<String> = rows.iter().map(|r| r.path.clone()).collect();
    let want_listed: BTreeSet<String> = want.iter().map(|p| cat_path(p)).collect();
    assert_eq!(listed, want_listed, "catalog");
    let kind = |p: &str| {
        rows.iter()
            .find(|r| r.path == cat_path(p))
            .unwrap()
            .kind
            .clone()
    };
    assert_eq!(kind("sub/deep/cache"), "f");
    assert_eq!(kind("proj/nested/out"), "d");

    let dst = store.file("dst");
    store.restore_tree("host/ex", &dst, &[]).ok();
    let restored = walk(&dst);
    let got: BTreeSet<String> = restored.paths().into_iter().collect();
    let want_restored: BTreeSet<String> = want.iter().map(|p| p.to_string()).collect();
    assert_eq!(got, want_restored, "restored tree");
    for p in want
        .iter()
        .filter(|p| restored.get(p.as_bytes()).kind == Kind::File)
    {
        let content = fs::read(dst.join(p)).unwrap();
        let expected = fs::read(src.join(p)).unwrap();
        assert_eq!(content, expected, "{p}");
    }

    // Without --exclude only the rules of proj/.pxarexclude apply: x.tmp, nested/y.tmp, out.
    let all = store.backup_tree_ok(&src, "ex", T2, &[]);
    assert_eq!(all["archives"][0]["tree"]["excluded"], 3, "{all}");

    // An invalid pattern is a usage error before anything is written.
    let run = store.backup_tree(&src, "ex", T3, &["--exclude", "["]);
    run.expect_code(2);
    let line = run.single_error_line();
    assert!(line.contains("invalid exclude pattern"), "{line}");
    assert_eq!(
        store.snapshot_names(Some("host/ex")),
        vec![host_snap("ex", T1), host_snap("ex", T2)]
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Unreadable entries
// ---------------------------------------------------------------------------------------------

/// A command prefix that runs a program as user `nobody`, or `None` when this machine has no
/// way to (not root, no setpriv or runuser).
fn as_nobody_prefix() -> Option<Vec<&'static str>> {
    let candidates: [&[&str]; 3] = [
        &[
            "setpriv",
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "--",
        ],
        &[
            "setpriv",
            "--reuid=nobody",
            "--regid=nobody",
            "--clear-groups",
            "--",
        ],
        &["runuser", "-u", "nobody", "--"],
    ];
    candidates.into_iter().find_map(|c| {
        let out = Command::new(c[0])
            .args(&c[1..])
            .args(["id", "-u"])
            .output()
            .ok()?;
        let uid = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (out.status.success() && !uid.is_empty() && uid != "0").then(|| c.to_vec())
    })
}

#[test]
fn unreadable_file_makes_a_partial_backup() {
    let store = Store::new();
    let src = store.file("src");
    put(&src.join("a.txt"), b"alpha\n");
    put(&src.join("sub/ok.txt"), b"fine\n");
    put(&src.join("sub/secret"), b"you may not read this\n");
    put(&src.join("sub/z.txt"), b"zulu\n");
    symlink("ok.txt", src.join("sub/link")).unwrap();
    let source = walk(&src);
    chmod(&src.join("sub/secret"), 0o000);

    // As root permissions do not apply: run the backup as nobody, with a datastore it may write
    // and a source it may read (but for the one file).
    let cmd = if is_root() {
        let Some(prefix) = as_nobody_prefix() else {
            eprintln!("skipped: no way to run as user nobody (setpriv, runuser)");
            return;
        };
        let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
        chown_tree(&store.path, nobody.uid.as_raw(), nobody.gid.as_raw());
        chmod(store.path.parent().unwrap(), 0o755);
        let mut cmd = Command::new(prefix[0]);
        cmd.args(&prefix[1..]).arg(env!("CARGO_BIN_EXE_stowage"));
        let base = stowage();
        for (k, v) in base.get_envs() {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        cmd.arg("--repository").arg(&store.path);
        cmd
    } else {
        store.cmd()
    };
    let run = run_cmd(cmd, tree_backup_args(&src, "partial", T1, &[]), None);
    run.expect_code(7);

    let warnings: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .collect();
    let per_entry: Vec<&&str> = warnings.iter().filter(|l| !l.contains("partial")).collect();
    assert_eq!(
        per_entry.len(),
        1,
        "one warning per unreadable entry:\n{}",
        run.stderr
    );
    assert!(per_entry[0].contains("sub/secret"), "{}", per_entry[0]);
    assert!(!run.stderr.contains("error:"), "{}", run.stderr);
    let report = run.json();
    assert_eq!(report["warnings"], 1, "{report}");
    assert_eq!(report["archives"][0]["tree"]["warnings"], 1, "{report}");
    assert_eq!(report["archives"][0]["tree"]["files"], 3, "{report}");

    let snapshot = host_snap("partial", T1);
    assert_eq!(
        store.snapshot_names(Some("host/partial")),
        vec![snapshot.clone()]
    );
    store.run(["verify", snapshot.as_str()]).ok();
    let listed: Vec<String> = store
        .catalog_rows(&snapshot, None)
        .into_iter()
        .map(|r| r.path)
        .collect();
    assert!(!listed.contains(&cat_path("sub/secret")), "{listed:?}");
    assert!(listed.contains(&cat_path("sub/z.txt")), "{listed:?}");

    // Everything else restores as it was.
    let dst = store.file("dst");
    store.restore_tree(&snapshot, &dst, &[]).ok();
    let mut expected = source;
    expected.entries.remove(&b"sub/secret"[..]);
    let restored = walk(&dst);
    assert_same_tree(&expected, &restored);
    assert_eq!(fs::read(dst.join("sub/z.txt")).unwrap(), b"zulu\n");
}

// ---------------------------------------------------------------------------------------------
// 5. Restore safety and options, cat, catalog
// ---------------------------------------------------------------------------------------------

/// A tree for the restore options; returns what could not be built.
fn build_small_tree(src: &Path) -> Skipped {
    let mut skipped = Skipped::default();
    put(&src.join("big.bin"), &random_bytes(9, 5 * MIB));
    put(&src.join("empty"), b"");
    put(&src.join("etc/app.conf"), b"key=value\n");
    put(&src.join("etc/other.txt"), b"other\n");
    put(&src.join("main.conf"), b"main\n");
    put(&src.join("top.txt"), b"top\n");
    symlink("top.txt", src.join("link")).unwrap();
    put(&src.join("sub/x.conf"), b"x\n");
    put(&src.join("sub/dir/a.txt"), b"a\n");
    put(&src.join("sub/dir/inner/b.conf"), b"b\n");
    put(&src.join("sub/other/c.txt"), b"c\n");
    put(&src.join("hard1"), b"hard\n");
    fs::hard_link(src.join("hard1"), src.join("sub/hard2")).unwrap();
    mkfifo(&src.join("fifo"), 0o600);
    mksock(&src.join("sock"));
    if let Err(e) = mkdev(&src.join("null"), false, 1, 3) {
        skipped.note("char device", e);
    }
    if let Err(e) = mkdev(&src.join("loop"), true, 7, 0) {
        skipped.note("block device", e);
    }
    set_mtime(&src.join("top.txt"), 1_650_000_000, 5);
    chmod(&src.join("sub/dir"), 0o700);
    chmod(&src.join("sub"), 0o750);
    skipped
}

#[test]
fn restore_refuses_conflicts_unless_overwrite() {
    let store = Store::new();
    let src = store.file("src");
    build_small_tree(&src);
    store.backup_tree_ok(&src, "r", T1, &[]);
    let source = walk(&src);

    // A target holding another top.txt: refused, naming it; the file is left alone.
    let target = store.file("conflict");
    put(&target.join("top.txt"), b"mine\n");
    let run = store.restore_tree("host/r", &target, &[]);
    run.expect_code(5);
    let line = run.single_error_line();
    assert!(
        line.contains("top.txt") && line.contains("exists"),
        "{line}"
    );
    assert!(line.contains("--overwrite"), "{line}");
    assert_eq!(fs::read(target.join("top.txt")).unwrap(), b"mine\n");

    // With --overwrite it replaces that file and what the failed attempt left behind.
    store.restore_tree("host/r", &target, &["--overwrite"]).ok();
    assert_eq!(fs::read(target.join("top.txt")).unwrap(), b"top\n");
    assert_same_tree(&source, &walk(&target));

    // A non-empty target without conflicts: restored beside what is there.
    let beside = store.file("beside");
    put(&beside.join("unrelated.txt"), b"keep me\n");
    store.restore_tree("host/r", &beside, &[]).ok();
    assert_eq!(
        fs::read(beside.join("unrelated.txt")).unwrap(),
        b"keep me\n"
    );
    assert_eq!(fs::read(beside.join("sub/dir/a.txt")).unwrap(), b"a\n");

    // Restoring a file-tree archive to stdout is refused.
    let run = store.run(["restore", "host/r", "root.pxar", "-"]);
    run.expect_code(2);
    let line = run.single_error_line();
    assert!(line.contains("stowage cat"), "{line}");
}

#[test]
fn restore_include_restores_only_matches_and_their_parents() {
    let store = Store::new();
    let src = store.file("src");
    build_small_tree(&src);
    store.backup_tree_ok(&src, "inc", T1, &[]);
    let source = walk(&src);

    let restore_with = |name: &str, includes: &[&str]| -> Walked {
        let dst = store.file(name);
        let mut extra = Vec::new();
        for i in includes {
            extra.extend(["--include", i]);
        }
        store.restore_tree("host/inc", &dst, &extra).ok();
        walk(&dst)
    };
    let check = |restored: &Walked, want: &[&str]| {
        let got: Vec<String> = restored.paths();
        assert_eq!(got, want, "restored paths");
        for p in want.iter().filter(|p| !p.is_empty()) {
            // Parent directories too carry their archived metadata (their link count differs:
            // not all their subdirectories are restored).
            let mut expected = source.get(p.as_bytes()).clone();
            let got = restored.get(p.as_bytes());
            if expected.kind == Kind::Dir {
                expected.nlink = got.nlink;
            }
            assert_eq!(got, &expected, "{p}");
        }
    };

    let by_path = restore_with("by-path", &["/sub/dir"]);
    check(
        &by_path,
        &[
            "",
            "sub",
            "sub/dir",
            "sub/dir/a.txt",
            "sub/dir/inner",
            "sub/dir/inner/b.conf",
        ],
    );
    assert_eq!(by_path.get(b"sub").mode, 0o040750);
    assert_eq!(by_path.get(b"sub/dir").mode, 0o040700);

    let by_glob = restore_with("by-glob", &["**/*.conf"]);
    check(
        &by_glob,
        &[
            "",
            "etc",
            "etc/app.conf",
            "main.conf",
            "sub",
            "sub/dir",
            "sub/dir/inner",
            "sub/dir/inner/b.conf",
            "sub/x.conf",
        ],
    );

    let both = restore_with("both", &["/top.txt", "etc/*.txt"]);
    check(&both, &["", "etc", "etc/other.txt", "top.txt"]);
    assert_eq!(both.get(b"top.txt").mtime, (1_650_000_000, 5));

    // Patterns that match nothing: an error (exit 6), not an empty restore.
    let none = store.file("none");
    let run = store.restore_tree("host/inc", &none, &["--include", "/no/such/path"]);
    run.expect_code(6);
    let line = run.single_error_line();
    assert!(line.contains("'/no/such/path'"), "{line}");
    assert!(!none.exists());
}

#[test]
fn cat_prints_exact_bytes_and_classifies_errors() {
    let store = Store::new();
    let src = store.file("src");
    build_small_tree(&src);
    store.backup_tree_ok(&src, "cat", T1, &[]);
    let snapshot = host_snap("cat", T1);

    let cat = |path: &str| store.run(["cat", snapshot.as_str(), "root.pxar", path]);
    for (path, want) in [
        ("/top.txt", &b"top\n"[..]),
        ("top.txt", b"top\n"),
        ("/sub/dir/inner/b.conf", b"b\n"),
        ("/empty", b""),
        ("/hard1", b"hard\n"),
    ] {
        let run = cat(path);
        run.ok();
        assert_eq!(run.stdout, want, "{path}");
        assert!(!run.stderr.contains("error"), "{}", run.stderr);
    }
    let run = cat("/big.bin");
    run.ok();
    assert_eq!(run.stdout.len(), 5 * MIB);
    assert!(run.stdout == random_bytes(9, 5 * MIB), "big.bin differs");

    let run = cat("/no/such/file");
    run.expect_code(6);
    let line = run.single_error_line();
    assert!(line.contains("/no/such/file"), "{line}");
    assert!(run.stdout.is_empty());

    for not_a_file in ["/sub", "/fifo", "/link"] {
        let run = cat(not_a_file);
        run.expect_code(2);
        let line = run.single_error_line();
        assert!(line.contains("not a regular file"), "{line}");
        assert!(run.stdout.is_empty());
    }

    // Another archive or snapshot: not found.
    let run = store.run(["cat", snapshot.as_str(), "other.pxar", "/top.txt"]);
    run.expect_code(6);
    let line = run.single_error_line();
    assert!(line.contains("other.pxar"), "{line}");
    let run = store.run([
        "cat",
        "host/cat/2020-01-01T00:00:00Z",
        "root.pxar",
        "/top.txt",
    ]);
    run.expect_code(6);
    run.single_error_line();
}

#[test]
fn catalog_lists_every_entry_and_finds_by_glob() {
    let store = Store::new();
    let src = store.file("src");
    let skipped = build_small_tree(&src);
    store.backup_tree_ok(&src, "cat", T1, &[]);
    let snapshot = host_snap("cat", T1);

    let mut want: Vec<(&str, &str, Option<u64>)> = vec![
        ("", "d", None),
        ("big.bin", "f", Some(5 * MIB as u64)),
        ("empty", "f", Some(0)),
        ("etc", "d", None),
        ("etc/app.conf", "f", Some(10)),
        ("etc/other.txt", "f", Some(6)),
        ("fifo", "p", None),
        ("hard1", "f", Some(5)),
        ("link", "l", None),
        ("main.conf", "f", Some(5)),
        ("sock", "s", None),
        ("sub", "d", None),
        ("sub/dir", "d", None),
        ("sub/dir/a.txt", "f", Some(2)),
        ("sub/dir/inner", "d", None),
        ("sub/dir/inner/b.conf", "f", Some(2)),
        ("sub/hard2", "h", None),
        ("sub/other", "d", None),
        ("sub/other/c.txt", "f", Some(2)),
        ("sub/x.conf", "f", Some(2)),
        ("top.txt", "f", Some(4)),
    ];
    if !skipped.has("char device") {
        want.push(("null", "c", None));
    }
    if !skipped.has("block device") {
        want.push(("loop", "b", None));
    }
    let mut want: Vec<(String, String, Option<u64>)> = want
        .into_iter()
        .map(|(p, k, s)| (cat_path(p), k.to_string(), s))
        .collect();
    want.sort();
    let rows = store.catalog_rows(&snapshot, None);
    let mut got: Vec<(String, String, Option<u64>)> = rows
        .iter()
        .map(|r| (r.path.clone(), r.kind.clone(), r.size))
        .collect();
    got.sort();
    assert_eq!(got, want);
    let top = rows.iter().find(|r| r.path == cat_path("top.txt")).unwrap();
    assert_eq!(top.mtime, Some(1_650_000_000));

    // The text listing: type letter, size right-aligned in 12 columns, path.
    let run = store.run(["catalog", snapshot.as_str()]);
    run.ok();
    let text = run.stdout_text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), want.len(), "{text}");
    assert!(
        lines.contains(&"f            4 root.pxar.didx/top.txt"),
        "{text}"
    );
    assert!(
        lines.contains(&"f      5242880 root.pxar.didx/big.bin"),
        "{text}"
    );
    assert!(
        lines.contains(&"d              root.pxar.didx/sub/dir"),
        "{text}"
    );
    assert!(
        lines.contains(&"h              root.pxar.didx/sub/hard2"),
        "{text}"
    );

    let found = |glob: &str| -> Vec<String> {
        let mut paths: Vec<String> = store
            .catalog_rows(&snapshot, Some(glob))
            .into_iter()
            .map(|r| r.path)
            .collect();
        paths.sort();
        paths
    };
    let txt: Vec<String> = [
        "etc/other.txt",
        "sub/dir/a.txt",
        "sub/other/c.txt",
        "top.txt",
    ]
    .iter()
    .map(|p| cat_path(p))
    .collect();
    assert_eq!(found("**/*.txt"), txt);
    assert_eq!(
        found("root.pxar.didx/sub/dir/**"),
        ["sub/dir/a.txt", "sub/dir/inner", "sub/dir/inner/b.conf"]
            .iter()
            .map(|p| cat_path(p))
            .collect::<Vec<_>>()
    );
    assert!(found("**/*.nothing").is_empty());
}

// ---------------------------------------------------------------------------------------------
// 6. Corruption
// ---------------------------------------------------------------------------------------------

#[test]
fn corrupt_archive_chunk_fails_verify_restore_and_cat() {
    let store = Store::new();
    let src = store.file("src");
    put(&src.join("a.txt"), b"alpha\n");
    put(&src.join("data.bin"), &random_bytes(77, 300_000));
    store.backup_tree_ok(&src, "bad", T1, &[]);
    let snapshot = host_snap("bad", T1);
    let digests = didx_digests(&store.snapshot_dir(&snapshot).join("root.pxar.didx"));
    assert_eq!(digests.len(), 1, "a small tree is one chunk");
    let digest = &digests[0];
    let chunk = store.chunk_path(digest);
    let mut bytes = fs::read(&chunk).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    fs::write(&chunk, bytes).unwrap();

    let run = store.run(["--output-format", "json", "verify", snapshot.as_str()]);
    run.expect_code(8);
    let line = run.single_error_line();
    assert!(line.contains("verification failed"), "{line}");
    let report = run.json();
    let bad = report["bad_chunks"].as_array().unwrap();
    assert_eq!(bad.len(), 1, "{report}");
    assert_eq!(bad[0]["digest"], digest.as_str(), "{report}");
    let run = store.run(["verify", snapshot.as_str()]);
    run.expect_code(8);
    assert!(
        run.stdout_text().contains(digest.as_str()),
        "{}",
        run.stdout_text()
    );

    let run = store.restore_tree(&snapshot, &store.file("dst"), &[]);
    run.expect_code(8);
    let line = run.single_error_line();
    assert!(line.contains(digest.as_str()), "{line}");

    let run = store.run(["cat", snapshot.as_str(), "root.pxar", "/a.txt"]);
    run.expect_code(8);
    let line = run.single_error_line();
    assert!(line.contains(digest.as_str()), "{line}");
    assert!(run.stdout.is_empty(), "cat printed data from a bad chunk");

    // The catalog lives in other chunks and still lists the files.
    let rows = store.catalog_rows(&snapshot, None);
    assert!(rows.iter().any(|r| r.path == cat_path("data.bin")));
}

// ---------------------------------------------------------------------------------------------
// 7. Source errors
// ---------------------------------------------------------------------------------------------

#[test]
fn unreadable_sources_exit_4_without_a_snapshot() {
    let store = Store::new();
    let missing = store.file("no-such-dir");
    let run = store.backup_tree(&missing, "src", T1, &[]);
    run.expect_code(4);
    let line = run.single_error_line();
    assert!(line.contains("no-such-dir"), "{line}");

    let file = store.write_file("plain-file", b"not a directory\n");
    let run = store.backup_tree(&file, "src", T2, &[]);
    run.expect_code(4);
    let line = run.single_error_line();
    assert!(line.contains("plain-file"), "{line}");

    let all = store.run(["--output-format", "json", "snapshots"]);
    all.ok();
    assert_eq!(all.json(), serde_json::json!([]), "no snapshot was made");
    assert!(!store.path.join("host/src").join(time_name(T1)).exists());
    assert!(!store.path.join("host/src").join(time_name(T2)).exists());

    // Usage errors: a tree spec without a path, an unknown backup type.
    let mut spec = OsString::from("root.pxar:");
    let run = store.run([
        OsString::from("backup"),
        spec.clone(),
        "--backup-id".into(),
        "src".into(),
    ]);
    run.expect_code(2);
    run.single_error_line();
    spec.push(store.work.as_os_str());
    let run = store.run([
        OsString::from("backup"),
        spec,
        "--backup-type".into(),
        "nope".into(),
    ]);
    run.expect_code(2);
    run.single_error_line();
}
