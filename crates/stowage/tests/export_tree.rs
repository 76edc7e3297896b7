//! File-tree archives as tars: `export` of a snapshot's `.pxar` (legacy and split) and
//! `archive DIR`, extracted by GNU tar into exactly the original tree.

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;

use common::tree::*;
use common::*;

/// Files, directories, a symlink, a hardlink pair, a fifo, setuid and sticky modes, owners,
/// nanosecond times, xattrs, an ACL.
fn build_tree(root: &Path) {
    fs::create_dir_all(root.join("etc/empty")).unwrap();
    fs::create_dir_all(root.join("var/lib")).unwrap();
    put(&root.join("etc/hostname"), b"pve1\n");
    put(
        &root.join("var/lib/big.bin"),
        &random_bytes(3, 3 * MIB + 17),
    );
    put(&root.join("etc/suid"), b"#!/bin/sh\n");
    chmod(&root.join("etc/suid"), 0o4755);
    chmod(&root.join("var"), 0o1777);
    symlink("../etc/hostname", root.join("var/link")).unwrap();
    fs::hard_link(root.join("etc/hostname"), root.join("var/hard")).unwrap();
    mkfifo(&root.join("var/fifo"), 0o640);
    lset(&root.join("etc/hostname"), "user.origin", b"node one").unwrap();
    if is_root() {
        lset(
            &root.join("var/lib/big.bin"),
            "system.posix_acl_access",
            &file_acl(),
        )
        .unwrap();
        chown_tree(&root.join("var/lib"), 1234, 5678);
    }
    for (i, p) in [
        "etc/hostname",
        "etc/suid",
        "var/lib/big.bin",
        "etc/empty",
        "etc",
        "var/lib",
    ]
    .iter()
    .enumerate()
    {
        set_mtime(
            &root.join(p),
            1_600_000_000 + i as i64,
            123_456_789 + i as i64,
        );
    }
    set_mtime(&root.join("var"), 1_600_000_100, 5);
    set_mtime(root, 1_600_000_200, 7);
}

fn extract(archive: &Path, into: &Path) {
    fs::create_dir_all(into).unwrap();
    let out = Command::new("tar")
        .args([
            "-x",
            "--xattrs",
            "--xattrs-include=*",
            "--numeric-owner",
            "-p",
            "-f",
        ])
        .arg(archive)
        .arg("-C")
        .arg(into)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tar -x: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn exported_file_archives_extract_with_gnu_tar() {
    let store = Store::new();
    let src = store.work.join("src");
    build_tree(&src);
    let want = walk(&src);
    store.backup_tree_ok(&src, "h", T1, &[]);
    store.backup_tree_ok(&src, "h", T2, &["--change-detection-mode", "metadata"]);
    for (epoch, ext, tool) in [(T1, "zst", "zstd"), (T2, "gz", "pigz")] {
        let out = store.file(&format!("root-{epoch}.tar.{ext}"));
        let run = store.run([
            "export".as_ref(),
            host_snap("h", epoch).as_ref(),
            "root.pxar".as_ref(),
            out.as_os_str(),
        ]);
        run.ok();
        let plain = store.file(&format!("root-{epoch}.tar"));
        let data = Command::new(tool).arg("-dc").arg(&out).output().unwrap();
        assert!(data.status.success());
        fs::write(&plain, &data.stdout).unwrap();
        let dst = store.work.join(format!("x-{epoch}"));
        extract(&plain, &dst);
        assert_same_tree(&want, &walk(&dst));
        let check = store.run(["verify-archive".as_ref(), out.as_os_str()]);
        check.ok();
        assert!(
            check.stdout_text().contains("tar entries"),
            "{}",
            check.stdout_text()
        );
    }
}

#[test]
fn archive_of_a_directory_extracts_with_gnu_tar() {
    let store = Store::new();
    let src = store.work.join("src");
    build_tree(&src);
    let want = walk(&src);
    let out = store.file("src.tar.xz");
    let run = store.run([
        "--output-format".as_ref(),
        "json".as_ref(),
        "archive".as_ref(),
        src.as_os_str(),
        out.as_os_str(),
    ]);
    run.ok();
    assert_eq!(run.json()["manifest"]["content"], "tar");
    let list = Command::new("tar").arg("-tJf").arg(&out).output().unwrap();
    assert!(list.status.success());
    let names = String::from_utf8_lossy(&list.stdout);
    assert!(
        names.contains("etc/hostname") && names.contains("var/lib/big.bin"),
        "{names}"
    );
    let plain = store.file("src.tar");
    let data = Command::new("xz").arg("-dc").arg(&out).output().unwrap();
    fs::write(&plain, &data.stdout).unwrap();
    let dst = store.work.join("x");
    extract(&plain, &dst);
    assert_same_tree(&want, &walk(&dst));
    store.run(["verify-archive".as_ref(), out.as_os_str()]).ok();
}
