//! Tar streams made from pxar entries, extracted by GNU tar (as root, with xattrs, numeric owners
//! and permissions) give back the original tree: every type, mode, owner, nanosecond mtime,
//! content, xattr, ACL, file capability, hardlink, symlink target and device number.
//!
//! Needs root (chown, mknod, trusted.* xattrs) and GNU tar; skipped with a note otherwise.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{CString, OsStr, OsString};
use std::fs;
use std::io::{Cursor, Seek, SeekFrom, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{lchown, symlink, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use stowage_archive::metadata::perms;
use stowage_archive::{
    Acl, AclDefault, AclGroup, AclGroupObj, AclUser, Decoder, Encoder, Format, Metadata,
};
use stowage_export::tar::{dir_to_tar, pxar_to_tar, PayloadSource, SeekPayloads, TarStats};
use stowage_export::ExportError;
use stowage_fs::{create_archive, open_root, posix_acl, CreateOptions};

fn can_run() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let tar = Command::new("tar")
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("GNU tar"));
    if !(root && tar) {
        eprintln!("skipped: needs root and GNU tar");
    }
    root && tar
}

fn scratch(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .unwrap()
}

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

fn check(r: libc::c_int, what: &str, p: &Path) {
    assert_eq!(
        r,
        0,
        "{what} {}: {}",
        p.display(),
        std::io::Error::last_os_error()
    );
}

fn set_xattr(p: &Path, name: &[u8], value: &[u8]) {
    let name = CString::new(name).unwrap();
    // SAFETY: valid NUL-terminated strings and a buffer of `value.len()` bytes.
    let r = unsafe {
        libc::lsetxattr(
            cpath(p).as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    check(r, "lsetxattr", p);
}

/// All xattrs of `p` (any namespace), not following a symlink.
fn xattrs(p: &Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let c = cpath(p);
    let mut list = vec![0u8; 65536];
    // SAFETY: the buffer holds `list.len()` bytes.
    let n = unsafe { libc::llistxattr(c.as_ptr(), list.as_mut_ptr().cast(), list.len()) };
    assert!(n >= 0, "llistxattr {}", p.display());
    let mut out = BTreeMap::new();
    for name in list[..n as usize]
        .split(|&b| b == 0)
        .filter(|n| !n.is_empty())
    {
        let cname = CString::new(name).unwrap();
        let mut value = vec![0u8; 65536];
        // SAFETY: as above.
        let m = unsafe {
            libc::lgetxattr(
                c.as_ptr(),
                cname.as_ptr(),
                value.as_mut_ptr().cast(),
                value.len(),
            )
        };
        assert!(m >= 0, "lgetxattr {}", p.display());
        value.truncate(m as usize);
        out.insert(name.to_vec(), value);
    }
    out
}

fn set_mtime(p: &Path, secs: i64, nanos: i64) {
    let t = libc::timespec {
        tv_sec: secs,
        tv_nsec: nanos,
    };
    // SAFETY: a valid path and two timespecs.
    let r = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            cpath(p).as_ptr(),
            [t, t].as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    check(r, "utimensat", p);
}

fn mknod(p: &Path, kind: libc::mode_t, perm: libc::mode_t, major: u32, minor: u32) {
    // SAFETY: a valid path.
    let r = unsafe { libc::mknod(cpath(p).as_ptr(), kind | perm, libc::makedev(major, minor)) };
    check(r, "mknod", p);
}

fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
}

fn name(bytes: &[u8]) -> OsString {
    OsString::from_vec(bytes.to_vec())
}

/// A tree with every kind of entry and every piece of metadata a tar can carry. Returns the
/// number of sockets in it.
fn build_tree(root: &Path) -> u64 {
    let j = |p: &[u8]| root.join(OsStr::from_bytes(p));
    let file = j(b"file");
    fs::write(&file, b"hello\n").unwrap();
    lchown(&file, Some(1234), Some(5678)).unwrap();
    chmod(&file, 0o640);
    set_xattr(&file, b"user.x", b"value");
    set_xattr(&file, b"user.a=b%c", b"bin\0\xff\x01");
    set_xattr(&file, b"trusted.t", b"t");

    for (n, mode) in [
        (&b"suid"[..], 0o4755),
        (b"sgid", 0o2711),
        (b"all_bits", 0o7777),
    ] {
        fs::write(j(n), n).unwrap();
        chmod(&j(n), mode);
    }
    fs::create_dir(j(b"sticky")).unwrap();
    chmod(&j(b"sticky"), 0o1777);
    fs::create_dir(j(b"empty")).unwrap();
    chmod(&j(b"empty"), 0o700);
    lchown(j(b"empty"), Some(42), Some(43)).unwrap();

    fs::write(j(b"hard1"), b"shared contents").unwrap();
    fs::hard_link(j(b"hard1"), j(b"sub_hard2")).unwrap();
    lchown(j(b"hard1"), Some(7), Some(8)).unwrap();

    symlink("file", j(b"link")).unwrap();
    lchown(j(b"link"), Some(1234), Some(5678)).unwrap();
    let long_target = format!("{}/x", "t".repeat(250));
    symlink(&long_target, j(b"long_link")).unwrap();
    symlink("../dangling/../../x//y", j(b"odd_link")).unwrap();

    nix::unistd::mkfifo(&j(b"fifo"), nix::sys::stat::Mode::from_bits_truncate(0o640)).unwrap();
    mknod(&j(b"blk"), libc::S_IFBLK, 0o660, 8, 1);
    mknod(&j(b"chr"), libc::S_IFCHR, 0o666, 1, 3);
    mknod(&j(b"chr_big"), libc::S_IFCHR, 0o600, 4095, 1_048_575);
    let _socket = std::os::unix::net::UnixListener::bind(j(b"socket")).unwrap();

    // Long and non-UTF-8 names, a path longer than 255 bytes, a hardlink to a long name.
    let n200 = vec![b'n'; 200];
    fs::write(j(&n200), b"two hundred").unwrap();
    fs::write(j(b"caf\xe9"), b"latin-1").unwrap();
    let mut long_latin = vec![b'\xe9'; 150];
    long_latin.extend_from_slice(b".txt");
    fs::write(j(&long_latin), b"long latin-1").unwrap();
    let deep: PathBuf = [&[b'a'; 100][..], &[b'b'; 100], &[b'c'; 100]]
        .iter()
        .map(|c| name(c))
        .collect();
    fs::create_dir_all(root.join(&deep)).unwrap();
    fs::write(root.join(&deep).join("deep_file"), b"deep").unwrap();
    fs::hard_link(root.join(&deep).join("deep_file"), j(b"z_link_to_deep")).unwrap();

    // A sparse file: holes, then data in the middle, then a hole to the end.
    let sparse = j(b"sparse");
    let mut f = fs::File::create(&sparse).unwrap();
    f.set_len(10 << 20).unwrap();
    f.seek(SeekFrom::Start(5 << 20)).unwrap();
    f.write_all(b"in the middle").unwrap();
    drop(f);

    // Owners past the octal header fields, ACLs, file capabilities.
    let big = j(b"big_owner");
    fs::write(&big, b"").unwrap();
    lchown(&big, Some(3_000_000), Some(4_000_000)).unwrap();
    let acl_file = j(b"acl_file");
    fs::write(&acl_file, b"acl").unwrap();
    chmod(&acl_file, 0o670);
    let acl = Acl {
        users: vec![AclUser {
            uid: 1234,
            perms: perms::READ,
        }],
        groups: vec![AclGroup {
            gid: 50,
            perms: perms::READ | perms::WRITE,
        }],
        group_obj: Some(AclGroupObj { perms: 5 }),
        ..Acl::default()
    };
    let access = posix_acl::access_xattr(0o100670, &acl).unwrap();
    set_xattr(&acl_file, posix_acl::ACCESS_XATTR, &access);
    let acl_dir = j(b"acl_dir");
    fs::create_dir(&acl_dir).unwrap();
    let default = Acl {
        default: Some(AclDefault {
            user_obj_perms: 7,
            group_obj_perms: 5,
            other_perms: 1,
            mask_perms: 5,
        }),
        default_users: vec![AclUser { uid: 33, perms: 5 }],
        ..Acl::default()
    };
    let default = posix_acl::default_xattr(&default).unwrap();
    set_xattr(&acl_dir, posix_acl::DEFAULT_XATTR, &default);
    let caps = j(b"caps");
    fs::write(&caps, b"#!/bin/true\n").unwrap();
    chmod(&caps, 0o755);
    // VFS_CAP_REVISION_2 with CAP_NET_BIND_SERVICE permitted and effective.
    let mut cap = 0x0200_0001u32.to_le_bytes().to_vec();
    for v in [1u32 << 10, 0, 0, 0] {
        cap.extend_from_slice(&v.to_le_bytes());
    }
    set_xattr(&caps, b"security.capability", &cap);

    // Odd times: before 1970 with a fraction, past the octal field, whole seconds.
    set_mtime(&j(b"suid"), -2, 500_000_000);
    set_mtime(&j(b"sgid"), 10_000_000_000, 1);
    set_mtime(&j(b"all_bits"), 1_000_000_000, 0);
    // Every other entry gets its own nanosecond mtime, deepest first so directories keep theirs.
    let mut paths = Vec::new();
    collect(root, Path::new(""), &mut paths);
    paths.reverse();
    for (i, rel) in paths.iter().enumerate() {
        let keep: [&[u8]; 3] = [b"suid", b"sgid", b"all_bits"];
        if keep.contains(&rel.as_os_str().as_bytes()) {
            continue;
        }
        set_mtime(
            &root.join(rel),
            1_700_000_000 + i as i64,
            123_456_789 + i as i64,
        );
    }
    chmod(root, 0o751);
    lchown(root, Some(11), Some(12)).unwrap();
    set_xattr(root, b"user.root", b"r");
    set_mtime(root, 1_600_000_000, 987_654_321);
    1
}

/// Paths below `dir` (relative to the tree root), depth first in byte order of names.
fn collect(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) {
    let mut names: Vec<OsString> = fs::read_dir(root.join(rel))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    for n in names {
        let p = rel.join(&n);
        out.push(p.clone());
        if fs::symlink_metadata(root.join(&p)).unwrap().is_dir() {
            collect(root, &p, out);
        }
    }
}

/// Everything that must survive, of one entry.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: (i64, i64),
    rdev: u64,
    content: Option<Vec<u8>>,
    target: Option<PathBuf>,
    xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
}

fn seen(p: &Path) -> (Seen, u64) {
    let m = fs::symlink_metadata(p).unwrap();
    let ft = m.file_type();
    let s = Seen {
        mode: m.mode(),
        uid: m.uid(),
        gid: m.gid(),
        mtime: (m.mtime(), m.mtime_nsec()),
        rdev: m.rdev(),
        content: ft.is_file().then(|| fs::read(p).unwrap()),
        target: ft.is_symlink().then(|| fs::read_link(p).unwrap()),
        xattrs: xattrs(p),
    };
    (s, m.ino())
}

/// Compares the tree `got` with `want` (sockets in `want` are expected to be missing).
fn compare_trees(want: &Path, got: &Path) {
    let (mut w, mut g) = (Vec::new(), Vec::new());
    collect(want, Path::new(""), &mut w);
    collect(got, Path::new(""), &mut g);
    w.retain(|p| {
        !fs::symlink_metadata(want.join(p))
            .unwrap()
            .file_type()
            .is_socket()
    });
    assert_eq!(w, g, "the same paths");
    let mut inodes: HashMap<u64, (PathBuf, u64)> = HashMap::new();
    for rel in std::iter::once(PathBuf::new()).chain(w) {
        let (ws, wino) = seen(&want.join(&rel));
        let (gs, gino) = seen(&got.join(&rel));
        assert_eq!(ws, gs, "{}", rel.display());
        // Hardlinks: names sharing an inode in the source share one in the copy, and only they.
        if ws.content.is_some() {
            match inodes.get(&wino) {
                Some((first, ino)) => {
                    assert_eq!(*ino, gino, "{} links {}", rel.display(), first.display())
                }
                None => {
                    assert!(
                        !inodes.values().any(|(_, i)| *i == gino),
                        "{}",
                        rel.display()
                    );
                    inodes.insert(wino, (rel.clone(), gino));
                }
            }
        }
    }
}

use std::os::unix::fs::FileTypeExt;

fn extract(tar_file: &Path, into: &Path) {
    extract_with(&["--xattrs", "--xattrs-include=*"], tar_file, into);
}

fn extract_with(options: &[&str], tar_file: &Path, into: &Path) {
    fs::create_dir_all(into).unwrap();
    let out = Command::new("tar")
        .arg("-x")
        .args(options)
        .args(["--numeric-owner", "-p", "-f"])
        .arg(tar_file)
        .arg("-C")
        .arg(into)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // GNU tar remarks on the deliberately odd times; anything else is a failure.
    let remarks = stderr
        .lines()
        .all(|l| l.contains("in the future") || l.contains("implausibly old time stamp"));
    assert!(out.status.success() && remarks, "tar -x: {stderr}");
}

/// Names as `tar -t` lists them, in archive order.
fn listing(tar_file: &Path) -> Vec<Vec<u8>> {
    let out = Command::new("tar")
        .args(["-t", "--quoting-style=literal", "-f"])
        .arg(tar_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

fn expected_listing(root: &Path) -> Vec<Vec<u8>> {
    let mut paths = Vec::new();
    collect(root, Path::new(""), &mut paths);
    let mut names = vec![b"./".to_vec()];
    for p in paths {
        let m = fs::symlink_metadata(root.join(&p)).unwrap();
        if m.file_type().is_socket() {
            continue;
        }
        let mut n = p.as_os_str().as_bytes().to_vec();
        if m.is_dir() {
            n.push(b'/');
        }
        names.push(n);
    }
    names
}

fn check_stats(stats: &TarStats, root: &Path, sockets: u64) {
    let listed = expected_listing(root).len() as u64;
    assert_eq!(stats.entries, listed);
    assert_eq!(stats.skipped_sockets, sockets);
    // Each file once; its further names are hardlinks.
    let mut paths = Vec::new();
    collect(root, Path::new(""), &mut paths);
    let mut inodes = std::collections::HashSet::new();
    let sizes: Vec<u64> = paths
        .iter()
        .map(|p| fs::symlink_metadata(root.join(p)).unwrap())
        .filter(|m| m.is_file() && inodes.insert(m.ino()))
        .map(|m| m.len())
        .collect();
    assert_eq!(stats.files, sizes.len() as u64);
    assert_eq!(stats.bytes, sizes.iter().sum::<u64>());
}

#[test]
fn dir_to_tar_round_trips_through_gnu_tar() {
    if !can_run() {
        return;
    }
    let tmp = scratch("stowage-tar-");
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    let sockets = build_tree(&src);
    let tar_file = tmp.path().join("out.tar");
    let mut warnings = Vec::new();
    let mut warn = |m: String| warnings.push(m);
    let stats = dir_to_tar(
        &src,
        &mut CreateOptions::default(),
        &mut warn,
        fs::File::create(&tar_file).unwrap(),
    )
    .unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(stats.walk.warnings, 0);
    check_stats(&stats.tar, &src, sockets);
    assert_eq!(listing(&tar_file), expected_listing(&src));
    let out = tmp.path().join("out");
    extract(&tar_file, &out);
    compare_trees(&src, &out);

    // `tar -x --acls` restores the ACLs from their text form alone.
    let acls = tmp.path().join("acls");
    extract_with(&["--acls"], &tar_file, &acls);
    for (name, xattr) in [
        ("acl_file", posix_acl::ACCESS_XATTR),
        ("acl_dir", posix_acl::DEFAULT_XATTR),
    ] {
        let want = xattrs(&src.join(name)).remove(xattr);
        assert!(want.is_some(), "{name}");
        assert_eq!(xattrs(&acls.join(name)).remove(xattr), want, "{name}");
    }
}

/// A legacy (unified) pxar stream of `root`, and a split one with its payload stream.
fn pxar_streams(root: &Path) -> (Vec<u8>, (Vec<u8>, Vec<u8>)) {
    let warn = &mut |m: String| panic!("{m}");
    let captured = open_root(root).unwrap();
    let mut enc = Encoder::new(Vec::new(), Format::unified(), &captured.metadata).unwrap();
    create_archive::<_, _, std::io::Sink>(
        captured,
        &mut enc,
        None,
        &mut CreateOptions::default(),
        warn,
    )
    .unwrap();
    let (legacy, _) = enc.finish().unwrap();
    let captured = open_root(root).unwrap();
    let meta: Metadata = captured.metadata.clone();
    let mut enc = Encoder::new(Vec::new(), Format::split(Vec::new(), None), &meta).unwrap();
    create_archive::<_, _, std::io::Sink>(
        captured,
        &mut enc,
        None,
        &mut CreateOptions::default(),
        warn,
    )
    .unwrap();
    let (meta_stream, payload) = enc.finish().unwrap();
    (legacy, (meta_stream, payload.unwrap()))
}

#[test]
fn pxar_to_tar_from_legacy_and_split_streams() {
    if !can_run() {
        return;
    }
    let tmp = scratch("stowage-tar-pxar-");
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    let sockets = build_tree(&src);
    let (legacy, (split, payload)) = pxar_streams(&src);

    let legacy_tar = tmp.path().join("legacy.tar");
    let stats = pxar_to_tar(
        Decoder::new(legacy.as_slice()),
        None,
        fs::File::create(&legacy_tar).unwrap(),
    )
    .unwrap();
    check_stats(&stats, &src, sockets);
    extract(&legacy_tar, &tmp.path().join("legacy"));
    compare_trees(&src, &tmp.path().join("legacy"));

    let mut payloads = SeekPayloads(Cursor::new(payload));
    let mut split_tar = Vec::new();
    let split_stats = pxar_to_tar(
        Decoder::new(split.as_slice()),
        Some(&mut payloads as &mut dyn PayloadSource),
        &mut split_tar,
    )
    .unwrap();
    assert_eq!(split_stats, stats);
    // Same entries, same bytes: the tar does not depend on where the contents were.
    assert_eq!(split_tar, fs::read(&legacy_tar).unwrap());

    // Without its payload stream, a split archive cannot be written.
    let err = pxar_to_tar(Decoder::new(split.as_slice()), None, std::io::sink()).unwrap_err();
    assert!(matches!(err, ExportError::Usage(_)), "{err}");
}

#[test]
fn a_damaged_stream_leaves_an_unfinished_tar() {
    if !can_run() {
        return;
    }
    let tmp = scratch("stowage-tar-damaged-");
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    build_tree(&src);
    let (legacy, _) = pxar_streams(&src);
    let mut out = Vec::new();
    let err = pxar_to_tar(Decoder::new(&legacy[..legacy.len() - 100]), None, &mut out).unwrap_err();
    assert!(matches!(err, ExportError::Decode(_)), "{err}");
    assert!(!out.is_empty());
    // No end-of-archive blocks after the last complete entry.
    assert!(out.len() >= 1024 && out[out.len() - 1024..] != [0u8; 1024][..]);
    assert_eq!(out.len() % 512, 0);
}

#[test]
fn unreadable_root_is_an_error() {
    let tmp = scratch("stowage-tar-missing-");
    let mut warn = |_: String| {};
    let err = dir_to_tar(
        &tmp.path().join("missing"),
        &mut CreateOptions::default(),
        &mut warn,
        std::io::sink(),
    )
    .unwrap_err();
    assert!(matches!(err, ExportError::Walk(_)), "{err}");
}

#[test]
fn a_failing_output_stops_the_walk() {
    struct Full;
    impl Write for Full {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::from_raw_os_error(libc::ENOSPC))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let tmp = scratch("stowage-tar-full-");
    for i in 0..200 {
        fs::write(tmp.path().join(format!("f{i}")), vec![1u8; 100_000]).unwrap();
    }
    let mut warn = |_: String| {};
    let err = dir_to_tar(tmp.path(), &mut CreateOptions::default(), &mut warn, Full).unwrap_err();
    assert!(matches!(err, ExportError::TarWrite { .. }), "{err}");
    assert_eq!(err.class(), stowage_types::ErrorClass::NoSpace);
}
