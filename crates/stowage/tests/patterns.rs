//! Path patterns mean what they mean in Proxmox Backup Server (spec 13.7), through the real
//! binary: `catalog --find`, `backup --exclude`, `.pxarexclude` files and `restore --include`.
//! A pattern matches an entry's path (`/linux/arch/x86/Kbuild`) or any complete suffix of it,
//! unless it starts with `/`; a trailing `/` is for directories only; `!` inverts; the last
//! matching pattern wins.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use common::tree::*;
use common::*;

/// A small kernel source tree, with a directory named `hosts` and files named `hosts`.
const KERNEL: &[&str] = &[
    "linux/Kbuild",
    "linux/README",
    "linux/Documentation/README",
    "linux/arch/x86/Kbuild",
    "linux/arch/x86/setup.c",
    "linux/arch/arm/Makefile",
    "linux/arch/arm/boot/Kbuild",
    "linux/arch/arm/boot/dts.c",
    "linux/tools/arch/x86/lib.h",
    "linux/net/hosts",
    "linux/drivers/hosts/scsi.c",
    "etc/hosts",
    "hosts",
];

fn build_kernel_tree(src: &Path) {
    for f in KERNEL {
        put(&src.join(f), f.as_bytes());
    }
}

/// The paths below the root in a walked tree, without the root itself.
fn below_root(walked: &Walked) -> BTreeSet<String> {
    walked
        .paths()
        .into_iter()
        .filter(|p| !p.is_empty())
        .collect()
}

/// `paths` and every directory leading to them.
fn with_parents(paths: &[&str]) -> BTreeSet<String> {
    let mut all = BTreeSet::new();
    for p in paths {
        let mut at = String::new();
        for component in p.split('/') {
            if !at.is_empty() {
                at.push('/');
            }
            at.push_str(component);
            all.insert(at.clone());
        }
    }
    all
}

#[test]
fn catalog_find_matches_suffixes_like_pbs() {
    let store = Store::new();
    let src = store.file("src");
    build_kernel_tree(&src);
    store.backup_tree_ok(&src, "k", T1, &[]);
    let snapshot = host_snap("k", T1);
    let found = |pattern: &str| -> Vec<String> {
        let mut paths: Vec<String> = store
            .catalog_rows(&snapshot, Some(pattern))
            .into_iter()
            .map(|r| r.path)
            .collect();
        paths.sort();
        paths
    };
    let cat = |paths: &[&str]| -> Vec<String> {
        let mut all: Vec<String> = paths.iter().map(|p| cat_path(p)).collect();
        all.sort();
        all
    };
    let kbuilds = cat(&[
        "linux/Kbuild",
        "linux/arch/x86/Kbuild",
        "linux/arch/arm/boot/Kbuild",
    ]);
    // A name alone: at any depth.
    assert_eq!(found("Kbuild"), kbuilds);
    // One directory, any name, then Kbuild: a suffix of every path here (even linux/Kbuild,
    // whose catalog path is /root.pxar.didx/linux/Kbuild).
    assert_eq!(found("*/Kbuild"), kbuilds);
    assert_eq!(found("boot/Kbuild"), cat(&["linux/arch/arm/boot/Kbuild"]));
    assert_eq!(found("arch/*/Kbuild"), cat(&["linux/arch/x86/Kbuild"]));
    assert_eq!(
        found("arch/**/Kbuild"),
        cat(&["linux/arch/x86/Kbuild", "linux/arch/arm/boot/Kbuild"])
    );
    // A leading '/': the whole catalog path, which starts with the archive's stored name.
    assert_eq!(
        found("/root.pxar.didx/linux/Kbuild"),
        cat(&["linux/Kbuild"])
    );
    assert!(found("/linux/Kbuild").is_empty());
    // Only whole names, never a part of one.
    assert!(found("build").is_empty());
    assert!(found("arch/x").is_empty());
    // A trailing '/': directories only.
    assert_eq!(found("hosts/"), cat(&["linux/drivers/hosts"]));
    assert_eq!(
        found("hosts"),
        cat(&[
            "etc/hosts",
            "hosts",
            "linux/drivers/hosts",
            "linux/net/hosts"
        ])
    );
    assert_eq!(
        found("arch/x86"),
        cat(&["linux/arch/x86", "linux/tools/arch/x86"])
    );
    // '!' lists what the pattern does not match: the same rows, the other way round.
    let all = found("**");
    assert_eq!(all.len(), with_parents(KERNEL).len() + 1, "{all:?}");
    let not_c = found("!*.c");
    let c = found("*.c");
    assert_eq!(c.len(), 3);
    assert_eq!(not_c.len(), all.len() - c.len());
    assert!(not_c.iter().all(|p| !c.contains(p)));

    // The text listing takes the same patterns.
    let run = store.run(["catalog", snapshot.as_str(), "--find", "Kbuild"]);
    run.ok();
    assert_eq!(
        run.stdout_text().lines().count(),
        3,
        "{}",
        run.stdout_text()
    );

    // An invalid pattern is a usage error naming it.
    let run = store.run(["catalog", snapshot.as_str(), "--find", "arch/[x"]);
    run.expect_code(2);
    let line = run.single_error_line();
    assert!(line.contains("'arch/[x'"), "{line}");
}

#[test]
fn exclude_patterns_match_suffixes_and_pxarexclude_anchors_to_its_directory() {
    let store = Store::new();
    let src = store.file("src");
    build_kernel_tree(&src);
    for f in [
        "linux/build/out.bin",     // /build in linux/.pxarexclude
        "linux/drivers/build/x.c", // kept: /build is anchored to linux
        "linux/drivers/a.o",       // *.o below linux
        "linux/drivers/keep.o",    // !keep.o
        "linux/arch/arm/boot/b.o", // *.o at any depth below linux
        "build/top.bin",           // kept: outside linux
        "other/c.o",               // kept: linux's patterns stay in linux
    ] {
        put(&src.join(f), f.as_bytes());
    }
    put(
        &src.join("linux/.pxarexclude"),
        b"  # generated files\n/build\n*.o\n!keep.o\n",
    );
    let excludes = ["--exclude", "arch/x86", "--exclude", "/linux/README"];
    let report = store.backup_tree_ok(&src, "ex", T1, &excludes);
    // linux/arch/x86, linux/tools/arch/x86, linux/README, linux/build, a.o, b.o
    assert_eq!(report["archives"][0]["tree"]["excluded"], 6, "{report}");

    let mut want = with_parents(KERNEL);
    for gone in [
        "linux/arch/x86",
        "linux/arch/x86/Kbuild",
        "linux/arch/x86/setup.c",
        "linux/tools/arch/x86",
        "linux/tools/arch/x86/lib.h",
        "linux/README",
    ] {
        assert!(want.remove(gone), "{gone}");
    }
    want.extend(with_parents(&[
        "linux/.pxarexclude",
        "linux/drivers/build/x.c",
        "linux/drivers/keep.o",
        "build/top.bin",
        "other/c.o",
    ]));
    assert!(want.contains("linux/Documentation/README"));
    let dst = store.file("dst");
    store.restore_tree("host/ex", &dst, &[]).ok();
    assert_eq!(below_root(&walk(&dst)), want);
    let listed: BTreeSet<String> = store
        .catalog_rows("host/ex", None)
        .into_iter()
        .map(|r| r.path)
        .collect();
    let mut want_listed: BTreeSet<String> = want.iter().map(|p| cat_path(p)).collect();
    want_listed.insert(cat_path(""));
    assert_eq!(listed, want_listed);

    // An excluded directory is not entered: nothing below it comes back with '!'.
    store.backup_tree_ok(
        &src,
        "ex",
        T2,
        &["--exclude", "arch/", "--exclude", "!Kbuild"],
    );
    let kbuilds: Vec<String> = store
        .catalog_rows(&host_snap("ex", T2), Some("Kbuild"))
        .into_iter()
        .map(|r| r.path)
        .collect();
    assert_eq!(kbuilds, [cat_path("linux/Kbuild")]);
}

#[test]
fn a_bad_pxarexclude_line_is_a_warning_and_the_other_lines_apply() {
    let store = Store::new();
    let src = store.file("src");
    for f in ["d/a.tmp", "d/b.log", "d/c.txt"] {
        put(&src.join(f), f.as_bytes());
    }
    put(&src.join("d/.pxarexclude"), b"*.tmp\nbad[\n*.log\n");
    let run = store.backup_tree(&src, "bad", T1, &[]);
    run.expect_code(7);
    assert!(
        run.stderr.contains("d/.pxarexclude") && run.stderr.contains("'bad['"),
        "{}",
        run.stderr
    );
    let listed: BTreeSet<String> = store
        .catalog_rows("host/bad", None)
        .into_iter()
        .map(|r| r.path)
        .collect();
    let want: BTreeSet<String> = ["", "d", "d/.pxarexclude", "d/c.txt"]
        .iter()
        .map(|p| cat_path(p))
        .collect();
    assert_eq!(listed, want);
}

#[test]
fn restore_include_is_an_ordered_pattern_list() {
    let store = Store::new();
    let src = store.file("src");
    build_kernel_tree(&src);
    store.backup_tree_ok(&src, "r", T1, &[]);

    let restore_with = |name: &str, includes: &[&str]| -> BTreeSet<String> {
        let dst = store.file(name);
        let mut extra = Vec::new();
        for i in includes {
            extra.extend(["--include", i]);
        }
        store.restore_tree("host/r", &dst, &extra).ok();
        below_root(&walk(&dst))
    };

    // Every Kbuild, at any depth, with the directories leading to them.
    let kbuilds = [
        "linux/Kbuild",
        "linux/arch/x86/Kbuild",
        "linux/arch/arm/boot/Kbuild",
    ];
    assert_eq!(restore_with("kbuild", &["Kbuild"]), with_parents(&kbuilds));
    let dst = store.file("kbuild");
    assert_eq!(
        fs::read(dst.join("linux/arch/arm/boot/Kbuild")).unwrap(),
        b"linux/arch/arm/boot/Kbuild"
    );

    // A directory brings everything below it, unless a later '!' pattern leaves parts out.
    assert_eq!(
        restore_with("arch", &["/linux/arch", "!*/boot"]),
        with_parents(&[
            "linux/arch/x86/Kbuild",
            "linux/arch/x86/setup.c",
            "linux/arch/arm/Makefile",
        ])
    );
    // The last match wins: a later pattern brings one file back.
    assert_eq!(
        restore_with("back", &["/linux/arch", "!*/boot", "boot/*.c"]),
        with_parents(&[
            "linux/arch/x86/Kbuild",
            "linux/arch/x86/setup.c",
            "linux/arch/arm/Makefile",
            "linux/arch/arm/boot/dts.c",
        ])
    );
    // Order matters when several patterns match one entry.
    let c_files = ["linux/arch/x86/setup.c", "linux/drivers/hosts/scsi.c"];
    assert_eq!(
        restore_with("c", &["*.c", "!boot/*"]),
        with_parents(&c_files)
    );
    assert_eq!(
        restore_with("c-all", &["!boot/*", "*.c"]),
        with_parents(&[c_files[0], c_files[1], "linux/arch/arm/boot/dts.c"])
    );
    // A pattern decides only for the entries it matches, the others inherit from their
    // directory: '/linux/arch/arm' brings arm and its Makefile, but boot, which '!*/boot'
    // matches, stays out with everything below it.
    assert_eq!(
        restore_with("arm", &["!*/boot", "/linux/arch/arm"]),
        with_parents(&["linux/arch/arm/Makefile"])
    );
    // A trailing '/' selects directories only (and so everything below them).
    assert_eq!(
        restore_with("hosts-dir", &["hosts/"]),
        with_parents(&["linux/drivers/hosts/scsi.c"])
    );
    assert_eq!(
        restore_with("hosts", &["hosts"]),
        with_parents(&[
            "etc/hosts",
            "hosts",
            "linux/net/hosts",
            "linux/drivers/hosts/scsi.c"
        ])
    );
    // A '/' inside does not anchor; a leading '/' does.
    assert_eq!(
        restore_with("x86", &["arch/x86"]),
        with_parents(&[
            "linux/arch/x86/Kbuild",
            "linux/arch/x86/setup.c",
            "linux/tools/arch/x86/lib.h",
        ])
    );
    assert_eq!(
        restore_with("readme", &["/linux/README"]),
        with_parents(&["linux/README"])
    );
    // '/' is the archive root: everything.
    assert_eq!(restore_with("root", &["/"]), with_parents(KERNEL));
}

#[test]
fn restore_include_matching_nothing_is_not_found() {
    let store = Store::new();
    let src = store.file("src");
    build_kernel_tree(&src);
    store.backup_tree_ok(&src, "n", T1, &[]);

    // A target the restore would make: not left behind.
    let dst = store.file("new-target");
    let run = store.restore_tree("host/n", &dst, &["--include", "nomatch"]);
    run.expect_code(6);
    let line = run.single_error_line();
    assert!(line.contains("'nomatch'"), "{line}");
    assert!(!dst.exists(), "the target was left behind");

    // An existing target: nothing written into it. Every pattern is named.
    let dst = store.file("empty-target");
    fs::create_dir(&dst).unwrap();
    let run = store.restore_tree(
        "host/n",
        &dst,
        &["--include", "/Kbuild", "--include", "README/"],
    );
    run.expect_code(6);
    let line = run.single_error_line();
    assert!(
        line.contains("'/Kbuild'") && line.contains("'README/'"),
        "{line}"
    );
    assert_eq!(fs::read_dir(&dst).unwrap().count(), 0);

    // Only '!' patterns select nothing either: the root is not included by itself.
    let run = store.restore_tree("host/n", &dst, &["--include", "!*.c"]);
    run.expect_code(6);
    run.single_error_line();
    assert_eq!(fs::read_dir(&dst).unwrap().count(), 0);

    // An invalid pattern is a usage error naming it.
    let run = store.restore_tree("host/n", &dst, &["--include", "[x"]);
    run.expect_code(2);
    let line = run.single_error_line();
    assert!(line.contains("'[x'"), "{line}");
}
