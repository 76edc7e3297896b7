//! Capture a tree with every kind of entry and metadata pxar records, restore it with the
//! Restorer into a second directory, capture again and compare everything.
//!
//! Parts that need a capability this machine lacks (root for chown, mknod, `trusted.*` and
//! file capabilities; ACL or xattr support of the temporary file system) are skipped with a
//! note on stderr; the rest of the tree is still checked.

mod common;

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, FileExt, PermissionsExt};
use std::path::Path;

use nix::fcntl::{openat, AtFlags, OFlag, AT_FDCWD};
use nix::sys::stat::{makedev, mkdirat, mknod, utimensat, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchownat, Gid, Uid};
use stowage_archive::{FileType, Mtime};
use stowage_fs::{capture, RestoreOptions, RestoreStats, Restorer};

use common::{lget, lset, open_dir, restore_tree, snapshot, tempdir, Snap};

const MIB: u64 = 1 << 20;
const DEEP_LEVELS: usize = 40;

/// What could not be built here, for the report and to relax the checks.
#[derive(Debug, Default)]
struct Skipped(Vec<String>);

impl Skipped {
    fn note(&mut self, what: &str, why: impl std::fmt::Display) {
        eprintln!("skipped: {what}: {why}");
        self.0.push(what.to_string());
    }

    fn has(&self, what: &str) -> bool {
        self.0.iter().any(|s| s == what)
    }
}

fn set_mtime(path: &Path, secs: i64, nanos: i64) {
    let t = TimeSpec::new(secs, nanos);
    utimensat(AT_FDCWD, path, &t, &t, UtimensatFlags::NoFollowSymlink).unwrap();
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn write(path: &Path, content: &[u8]) {
    fs::write(path, content).unwrap();
}

/// A kernel POSIX ACL xattr value from (tag, perms, id) entries.
fn acl_bytes(entries: &[(u16, u16, u32)]) -> Vec<u8> {
    let mut v = 2u32.to_le_bytes().to_vec();
    for &(tag, perms, id) in entries {
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&perms.to_le_bytes());
        v.extend_from_slice(&id.to_le_bytes());
    }
    v
}

const NO_ID: u32 = u32::MAX;

fn build_files(root: &Path, skipped: &mut Skipped) {
    write(&root.join("file"), b"hello\n");
    chmod(&root.join("file"), 0o644);
    lset(&root.join("file"), "user.a", b"1").unwrap();
    lset(&root.join("file"), "user.bin", &[0, 1, 2, 0xff, 0]).unwrap();
    if let Err(e) = lset(&root.join("file"), "trusted.t", b"x") {
        skipped.note("trusted xattrs", e);
    }
    set_mtime(&root.join("file"), 1_600_000_000, 123_456_789);
    write(&root.join("empty"), b"");
    write(&root.join("old"), b"from the sixties");
    set_mtime(&root.join("old"), -31_536_001, 500_000_000);

    let sparse = File::create(root.join("sparse")).unwrap();
    sparse.write_all_at(b"start", 0).unwrap();
    sparse.write_all_at(b"end", MIB + 4096).unwrap();

    write(&root.join("link1"), b"shared content");
    for name in [&b"bad\xff\xfe"[..], b"new\nline", &[b'x'; 255]] {
        write(&root.join(OsStr::from_bytes(name)), name);
    }
}

fn build_dirs_and_links(root: &Path) {
    fs::create_dir_all(root.join("dir/sub")).unwrap();
    write(&root.join("dir/sub/deep.txt"), b"deep");
    fs::hard_link(root.join("link1"), root.join("dir/link2")).unwrap();
    fs::create_dir(root.join("emptydir")).unwrap();
    symlink("/nonexistent/target", root.join("dangling")).unwrap();
    symlink("/etc/passwd", root.join("abs")).unwrap();
    symlink("file", root.join("rel")).unwrap();
    set_mtime(&root.join("dangling"), 1_000_000_000, 500_000_000);
    let fifo = root.join("fifo");
    nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o640)).unwrap();
    chmod(&fifo, 0o640);
    drop(std::os::unix::net::UnixListener::bind(root.join("sock")).unwrap());
}

/// Attributes of symlinks and fifos go through the `O_PATH` + `/proc/self/fd` route.
fn build_special_xattrs(root: &Path, skipped: &mut Skipped) {
    if skipped.has("trusted xattrs") {
        return;
    }
    lset(&root.join("rel"), "trusted.on-symlink", b"s").unwrap();
    lset(&root.join("fifo"), "trusted.on-fifo", b"f").unwrap();
}

fn build_owners_and_modes(root: &Path, skipped: &mut Skipped) {
    write(&root.join("owned"), b"mine");
    write(&root.join("suid"), b"#!/bin/true\n");
    write(&root.join("sgid"), b"#!/bin/true\n");
    fs::create_dir(root.join("sticky")).unwrap();
    fs::create_dir(root.join("sgiddir")).unwrap();
    symlink("file", root.join("owned_link")).unwrap();
    nix::unistd::mkfifo(&root.join("owned_fifo"), Mode::from_bits_truncate(0o600)).unwrap();
    chmod(&root.join("owned_fifo"), 0o620);
    let (uid, gid) = (Some(Uid::from_raw(1234)), Some(Gid::from_raw(5678)));
    let nofollow = AtFlags::AT_SYMLINK_NOFOLLOW;
    for name in ["owned", "suid", "sgiddir", "owned_link", "owned_fifo"] {
        if let Err(e) = fchownat(AT_FDCWD, &root.join(name), uid, gid, nofollow) {
            skipped.note("chown", e);
            break;
        }
    }
    chmod(&root.join("owned"), 0o600);
    chmod(&root.join("suid"), 0o4755);
    chmod(&root.join("sgid"), 0o2755);
    chmod(&root.join("sticky"), 0o1777);
    chmod(&root.join("sgiddir"), 0o2775);
    let dev = makedev(1, 3);
    match mknod(
        &root.join("null"),
        SFlag::S_IFCHR,
        Mode::from_bits_truncate(0o666),
        dev,
    ) {
        Ok(()) => chmod(&root.join("null"), 0o666),
        Err(e) => skipped.note("char device", e),
    }
}

fn build_acls(root: &Path, skipped: &mut Skipped) {
    // user::rw- user:1001:r-- group::r-- mask::r-- other::---
    let access = acl_bytes(&[
        (0x01, 6, NO_ID),
        (0x02, 4, 1001),
        (0x04, 4, NO_ID),
        (0x10, 4, NO_ID),
        (0x20, 0, NO_ID),
    ]);
    write(&root.join("acl_file"), b"acl");
    if let Err(e) = lset(&root.join("acl_file"), "system.posix_acl_access", &access) {
        return skipped.note("ACLs", e);
    }
    // user::rwx user:1001:r-x group::r-x mask::r-x other::---
    let default = acl_bytes(&[
        (0x01, 7, NO_ID),
        (0x02, 5, 1001),
        (0x04, 5, NO_ID),
        (0x10, 5, NO_ID),
        (0x20, 0, NO_ID),
    ]);
    fs::create_dir(root.join("acl_dir")).unwrap();
    lset(&root.join("acl_dir"), "system.posix_acl_default", &default).unwrap();
    // Created after the default ACL: inherits an access ACL with the named user.
    write(&root.join("acl_dir/inherited"), b"i");
}

/// `cap_net_raw+ep` as `setcap` writes it, or built by hand: revision 2 with the effective
/// flag, permitted bit 13 in the low word.
fn build_fcaps(root: &Path, skipped: &mut Skipped) {
    let path = root.join("cap_file");
    write(&path, b"#!/bin/true\n");
    chmod(&path, 0o755);
    let by_tool = std::process::Command::new("setcap")
        .arg("cap_net_raw+ep")
        .arg(&path)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if by_tool {
        eprintln!(
            "fcaps set by setcap: {:02x?}",
            lget(&path, "security.capability").unwrap()
        );
        return;
    }
    let mut caps = 0x0200_0001u32.to_le_bytes().to_vec();
    for word in [1u32 << 13, 0, 0, 0] {
        caps.extend_from_slice(&word.to_le_bytes());
    }
    if let Err(e) = lset(&path, "security.capability", &caps) {
        skipped.note("file capabilities", e);
    }
}

/// 40 nested directories with 200-byte names and a file at the bottom: a path of over 8000
/// bytes, built with `mkdirat`/`openat` since path-based calls fail beyond `PATH_MAX`.
fn build_deep(root: BorrowedFd<'_>) {
    let dir_flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let mut dir = openat(root, ".", dir_flags, Mode::empty()).unwrap();
    for level in 0..DEEP_LEVELS {
        let name = format!("{level:03}{}", "d".repeat(197));
        mkdirat(&dir, name.as_str(), Mode::from_bits_truncate(0o755)).unwrap();
        dir = openat(&dir, name.as_str(), dir_flags, Mode::empty()).unwrap();
    }
    let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_CLOEXEC;
    let leaf = openat(&dir, "leaf", flags, Mode::from_bits_truncate(0o644)).unwrap();
    File::from(leaf).write_all(b"at the bottom").unwrap();
}

fn build_tree(root: &Path) -> Skipped {
    let mut skipped = Skipped::default();
    build_files(root, &mut skipped);
    build_dirs_and_links(root);
    build_special_xattrs(root, &mut skipped);
    build_owners_and_modes(root, &mut skipped);
    build_acls(root, &mut skipped);
    build_fcaps(root, &mut skipped);
    build_deep(open_dir(root).as_fd());
    // Last, after all its children: a directory mtime with nanoseconds.
    set_mtime(&root.join("dir"), 1_234_567_890, 987_654_321);
    skipped
}

/// The source tree really holds what the test claims to check.
fn check_source(src: &common::Tree, skipped: &Skipped) {
    let e = |p: &str| -> &Snap { &src.entries[p.as_bytes()] };
    assert_eq!(
        e("file").metadata.stat.mtime,
        Mtime {
            secs: 1_600_000_000,
            nanos: 123_456_789
        }
    );
    assert_eq!(
        e("old").metadata.stat.mtime,
        Mtime {
            secs: -31_536_001,
            nanos: 500_000_000
        }
    );
    assert_eq!(e("suid").metadata.stat.mode, 0o104755);
    assert_eq!(e("sticky").metadata.stat.mode, 0o041777);
    assert_eq!(e("sock").file_type, FileType::Socket);
    assert_eq!(e("dir/link2").nlink, 2);
    assert!(
        src.inodes[&b"sparse"[..]].blocks * 512 < 256 * 1024,
        "source is not sparse"
    );
    let deepest = src.entries.keys().map(Vec::len).max().unwrap();
    assert!(deepest > 4096, "deepest path has only {deepest} bytes");
    if !skipped.has("chown") {
        for owned in ["suid", "owned_link", "owned_fifo"] {
            let stat = e(owned).metadata.stat;
            assert_eq!((stat.uid, stat.gid), (1234, 5678), "{owned}");
        }
    }
    if !skipped.has("trusted xattrs") {
        let names: Vec<_> = e("rel")
            .metadata
            .xattrs
            .iter()
            .map(|x| x.name.clone())
            .collect();
        assert_eq!(names, vec![b"trusted.on-symlink".to_vec()]);
    }
    if !skipped.has("ACLs") {
        assert_eq!(e("acl_file").metadata.acl.users.len(), 1);
        assert!(e("acl_dir").metadata.acl.default.is_some());
        assert_eq!(e("acl_dir/inherited").metadata.acl.users.len(), 1);
    }
    if !skipped.has("file capabilities") {
        assert!(e("cap_file").metadata.fcaps.is_some());
    }
    if !skipped.has("char device") {
        let d = e("null").device.unwrap();
        assert_eq!((d.major, d.minor), (1, 3));
    }
}

fn compare(src: &common::Tree, dst: &common::Tree) {
    let src_paths: Vec<_> = src.entries.keys().collect();
    let dst_paths: Vec<_> = dst.entries.keys().collect();
    assert_eq!(src_paths, dst_paths, "restored tree has other entries");
    for (path, s) in &src.entries {
        let d = &dst.entries[path];
        assert_eq!(s, d, "entry {}", String::from_utf8_lossy(path));
    }
    let ino = |p: &[u8]| dst.inodes[p].ino;
    assert_eq!(ino(b"link1"), ino(b"dir/link2"), "hardlinks share an inode");
    assert_ne!(ino(b"link1"), ino(b"file"));
    let sparse = &dst.inodes[&b"sparse"[..]];
    let size = dst.entries[&b"sparse"[..]].size;
    assert_eq!(size, MIB + 4099);
    assert!(
        sparse.blocks * 512 < 256 * 1024,
        "{} blocks for {size} bytes",
        sparse.blocks
    );
}

#[test]
fn every_entry_survives_capture_and_restore() {
    let tmp = tempdir();
    let (src_path, dst_path) = (tmp.path().join("src"), tmp.path().join("dst"));
    fs::create_dir(&src_path).unwrap();
    fs::create_dir(&dst_path).unwrap();
    let skipped = build_tree(&src_path);

    let (src, top) = (open_dir(&src_path), open_dir(tmp.path()));
    let source = snapshot(src.as_fd());
    check_source(&source, &skipped);
    let root_meta = capture(top.as_fd(), OsStr::new("src")).unwrap().metadata;

    let mut restorer = Restorer::open(&dst_path, RestoreOptions::default()).unwrap();
    restore_tree(src.as_fd(), &mut restorer);
    let stats = restorer.finish(Some(&root_meta)).unwrap();
    if common::is_root() {
        assert_eq!(stats, RestoreStats::default(), "nothing skipped as root");
    }

    let restored = snapshot(open_dir(&dst_path).as_fd());
    compare(&source, &restored);
    let dst_root = capture(top.as_fd(), OsStr::new("dst")).unwrap().metadata;
    assert_eq!(dst_root, root_meta, "the root directory's metadata");
    eprintln!(
        "checked {} entries; skipped: {:?}",
        source.entries.len(),
        skipped.0
    );
}
