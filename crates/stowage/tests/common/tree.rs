//! Helpers for file-tree (pxar) tests: building trees with every kind of entry and metadata,
//! walking a tree into a comparable description (without the product's own capture code), and
//! running the binary for tree backups, restores and catalogs.
//!
//! Paths longer than `PATH_MAX` are reached through `/proc/self/fd/<dir>/<name>`, so every
//! path handed to the kernel stays short.

use std::collections::BTreeMap;
use std::ffi::{CString, OsStr, OsString};
use std::fs::{self, File};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{symlink, FileExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::AT_FDCWD;
use nix::sys::stat::{makedev, mknod, utimensat, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use serde_json::Value;

use super::{random_bytes, sha256_hex, time_name, Run, Store};

pub const MIB: usize = 1 << 20;

/// `host/<id>/<time name of epoch>`.
pub fn host_snap(id: &str, epoch: i64) -> String {
    format!("host/{id}/{}", time_name(epoch))
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

// ---------------------------------------------------------------------------------------------
// Running the binary
// ---------------------------------------------------------------------------------------------

/// Arguments of `--output-format json backup root.pxar:DIR --backup-type host ...`.
pub fn tree_backup_args(dir: &Path, id: &str, epoch: i64, extra: &[&str]) -> Vec<OsString> {
    let mut spec = OsString::from("root.pxar:");
    spec.push(dir.as_os_str());
    let mut args: Vec<OsString> = ["--output-format", "json", "backup"]
        .iter()
        .map(OsString::from)
        .collect();
    args.push(spec);
    for a in [
        "--backup-type",
        "host",
        "--backup-id",
        id,
        "--backup-time",
        &epoch.to_string(),
    ] {
        args.push(a.into());
    }
    args.extend(extra.iter().map(OsString::from));
    args
}

impl Store {
    /// Backs up `dir` as `root.pxar` into `host/<id>` at `epoch` (JSON output); returns the run.
    pub fn backup_tree(&self, dir: &Path, id: &str, epoch: i64, extra: &[&str]) -> Run {
        self.run(tree_backup_args(dir, id, epoch, extra))
    }

    /// As [`Store::backup_tree`], asserting success; returns the JSON report.
    #[track_caller]
    pub fn backup_tree_ok(&self, dir: &Path, id: &str, epoch: i64, extra: &[&str]) -> Value {
        let run = self.backup_tree(dir, id, epoch, extra);
        run.ok();
        let report = run.json();
        assert_eq!(report["snapshot"], host_snap(id, epoch), "{report}");
        report
    }

    /// `restore SNAPSHOT root.pxar TARGET EXTRA...`.
    pub fn restore_tree(&self, snapshot: &str, target: &Path, extra: &[&str]) -> Run {
        let mut args: Vec<OsString> = vec!["restore".into(), snapshot.into(), "root.pxar".into()];
        args.push(target.into());
        args.extend(extra.iter().map(OsString::from));
        self.run(args)
    }

    /// `--output-format json catalog SNAPSHOT [--find GLOB]`, asserting success: the rows.
    #[track_caller]
    pub fn catalog_rows(&self, snapshot: &str, find: Option<&str>) -> Vec<CatalogRow> {
        let mut args = vec!["--output-format", "json", "catalog", snapshot];
        if let Some(glob) = find {
            args.extend(["--find", glob]);
        }
        let run = self.run(args);
        run.ok();
        let json = run.json();
        json.as_array()
            .unwrap_or_else(|| panic!("catalog prints an array: {json}"))
            .iter()
            .map(|row| CatalogRow {
                path: row["path"].as_str().unwrap().to_string(),
                kind: row["type"].as_str().unwrap().to_string(),
                size: row["size"].as_u64(),
                mtime: row["mtime"].as_i64(),
            })
            .collect()
    }
}

/// One row of `catalog --output-format json`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct CatalogRow {
    pub path: String,
    pub kind: String,
    pub size: Option<u64>,
    pub mtime: Option<i64>,
}

/// The catalog path of an archive-relative path.
pub fn cat_path(rel: &str) -> String {
    if rel.is_empty() {
        "root.pxar.didx".into()
    } else {
        format!("root.pxar.didx/{rel}")
    }
}

/// The digests of a dynamic index file (`.didx`: a 4096-byte header, then 40-byte entries of
/// end offset and digest), read without the product's code.
pub fn didx_digests(path: &Path) -> Vec<String> {
    let bytes = fs::read(path).unwrap();
    assert!(bytes.len() >= 4096, "{}: too short", path.display());
    let entries = bytes[4096..].chunks_exact(40);
    assert!(
        entries.remainder().is_empty(),
        "{}: partial entry",
        path.display()
    );
    entries
        .map(|e| e[8..].iter().map(|b| format!("{b:02x}")).collect())
        .collect()
}

/// Gives `path` and everything below it to `uid:gid` (not following symlinks).
pub fn chown_tree(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).unwrap();
    if fs::symlink_metadata(path).unwrap().is_dir() {
        for e in fs::read_dir(path).unwrap() {
            chown_tree(&e.unwrap().path(), uid, gid);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Raw file-system helpers
// ---------------------------------------------------------------------------------------------

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

/// `lsetxattr` on a (short) path.
pub fn lset(path: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    let name = CString::new(name).unwrap();
    // SAFETY: NUL-terminated strings and a valid buffer of the given length.
    let r = unsafe {
        libc::lsetxattr(
            cpath(path).as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Every extended attribute of a (short) path, not following a symlink: name → value.
pub fn lxattrs(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let c = cpath(path);
    let mut names = vec![0u8; 65536];
    // SAFETY: valid path and buffer.
    let n = unsafe { libc::llistxattr(c.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    assert!(
        n >= 0,
        "llistxattr {}: {}",
        path.display(),
        io::Error::last_os_error()
    );
    names.truncate(n as usize);
    let mut out = BTreeMap::new();
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let cname = CString::new(name).unwrap();
        let mut value = vec![0u8; 65536];
        // SAFETY: as above.
        let r = unsafe {
            libc::lgetxattr(
                c.as_ptr(),
                cname.as_ptr(),
                value.as_mut_ptr().cast(),
                value.len(),
            )
        };
        assert!(
            r >= 0,
            "lgetxattr {}: {}",
            path.display(),
            io::Error::last_os_error()
        );
        value.truncate(r as usize);
        out.insert(String::from_utf8_lossy(name).into_owned(), value);
    }
    out
}

pub fn set_mtime(path: &Path, secs: i64, nanos: i64) {
    let t = TimeSpec::new(secs, nanos);
    utimensat(AT_FDCWD, path, &t, &t, UtimensatFlags::NoFollowSymlink).unwrap();
}

pub fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Writes a file, creating its parent directories.
pub fn put(path: &Path, content: &[u8]) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(path, content).unwrap();
}

pub fn mkfifo(path: &Path, mode: u32) {
    nix::unistd::mkfifo(path, Mode::from_bits_truncate(mode)).unwrap();
    chmod(path, mode);
}

/// A unix socket bound at `path` (the listener is closed; the node stays).
pub fn mksock(path: &Path) {
    drop(std::os::unix::net::UnixListener::bind(path).unwrap());
}

/// A device node; an error when not permitted.
pub fn mkdev(path: &Path, block: bool, major: u64, minor: u64) -> nix::Result<()> {
    let kind = if block {
        SFlag::S_IFBLK
    } else {
        SFlag::S_IFCHR
    };
    mknod(
        path,
        kind,
        Mode::from_bits_truncate(0o660),
        makedev(major, minor),
    )?;
    chmod(path, 0o660);
    Ok(())
}

/// A kernel POSIX ACL xattr value from (tag, perms, id) entries.
pub fn acl_bytes(entries: &[(u16, u16, u32)]) -> Vec<u8> {
    let mut v = 2u32.to_le_bytes().to_vec();
    for &(tag, perms, id) in entries {
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&perms.to_le_bytes());
        v.extend_from_slice(&id.to_le_bytes());
    }
    v
}

pub const ACL_USER_OBJ: u16 = 0x01;
pub const ACL_USER: u16 = 0x02;
pub const ACL_GROUP_OBJ: u16 = 0x04;
pub const ACL_MASK: u16 = 0x10;
pub const ACL_OTHER: u16 = 0x20;
pub const NO_ID: u32 = u32::MAX;

/// A short path naming `name` in the open directory `dir`.
pub fn in_dir(dir: &File, name: &OsStr) -> PathBuf {
    Path::new(&format!("/proc/self/fd/{}", dir.as_raw_fd())).join(name)
}

// ---------------------------------------------------------------------------------------------
// Describing a tree
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Fifo,
    Socket,
    Char,
    Block,
}

/// What is compared about one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    pub kind: Kind,
    /// The whole `st_mode`, type bits included.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: (i64, i64),
    pub nlink: u64,
    /// Regular files: size and SHA-256 of the content.
    pub size: Option<u64>,
    pub sha256: Option<String>,
    pub link_target: Option<Vec<u8>>,
    /// Devices: (major, minor).
    pub rdev: Option<(u64, u64)>,
    /// Every extended attribute, ACLs (`system.posix_acl_*`) and file capabilities
    /// (`security.capability`) included, as raw bytes.
    pub xattrs: BTreeMap<String, Vec<u8>>,
}

/// Identity and allocation, which differ between source and restore.
#[derive(Debug, Clone, Copy)]
pub struct Inode {
    pub ino: u64,
    /// Bytes allocated (512 × `st_blocks`).
    pub allocated: u64,
}

#[derive(Debug, Default, Clone)]
pub struct Walked {
    /// Relative path bytes ("" for the root) → description.
    pub entries: BTreeMap<Vec<u8>, Info>,
    pub inodes: BTreeMap<Vec<u8>, Inode>,
}

impl Walked {
    #[track_caller]
    pub fn get(&self, path: &[u8]) -> &Info {
        self.entries
            .get(path)
            .unwrap_or_else(|| panic!("no entry {}", String::from_utf8_lossy(path)))
    }

    /// The relative paths, lossily as text.
    pub fn paths(&self) -> Vec<String> {
        self.entries
            .keys()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect()
    }
}

/// Describes the entry at a (short) path.
pub fn info(path: &Path) -> (Info, Inode) {
    let md = fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let ft = md.file_type();
    let kind = if ft.is_file() {
        Kind::File
    } else if ft.is_dir() {
        Kind::Dir
    } else if ft.is_symlink() {
        Kind::Symlink
    } else if ft.is_fifo() {
        Kind::Fifo
    } else if ft.is_socket() {
        Kind::Socket
    } else if ft.is_char_device() {
        Kind::Char
    } else {
        assert!(ft.is_block_device());
        Kind::Block
    };
    let (size, sha256) = match kind {
        Kind::File => (Some(md.size()), Some(sha256_hex(&fs::read(path).unwrap()))),
        _ => (None, None),
    };
    let link_target =
        (kind == Kind::Symlink).then(|| fs::read_link(path).unwrap().into_os_string().into_vec());
    let rdev = matches!(kind, Kind::Char | Kind::Block).then(|| {
        let r = md.rdev();
        (nix::sys::stat::major(r), nix::sys::stat::minor(r))
    });
    let info = Info {
        kind,
        mode: md.mode(),
        uid: md.uid(),
        gid: md.gid(),
        mtime: (md.mtime(), md.mtime_nsec()),
        nlink: md.nlink(),
        size,
        sha256,
        link_target,
        rdev,
        xattrs: lxattrs(path),
    };
    let inode = Inode {
        ino: md.ino(),
        allocated: md.blocks() * 512,
    };
    (info, inode)
}

/// Describes `root` and everything below it (any depth).
pub fn walk(root: &Path) -> Walked {
    let mut w = Walked::default();
    let (i, n) = info(root);
    w.entries.insert(Vec::new(), i);
    w.inodes.insert(Vec::new(), n);
    walk_dir(&File::open(root).unwrap(), &[], &mut w);
    w
}

fn walk_dir(dir: &File, prefix: &[u8], w: &mut Walked) {
    let base = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    let mut names: Vec<OsString> = fs::read_dir(&base)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    for name in names {
        let short = base.join(&name);
        let mut path = prefix.to_vec();
        if !path.is_empty() {
            path.push(b'/');
        }
        path.extend_from_slice(name.as_bytes());
        let (i, n) = info(&short);
        let is_dir = i.kind == Kind::Dir;
        w.entries.insert(path.clone(), i);
        w.inodes.insert(path.clone(), n);
        if is_dir {
            walk_dir(&File::open(&short).unwrap(), &path, w);
        }
    }
}

/// Asserts that two walks describe the same entries (paths and [`Info`]).
#[track_caller]
pub fn assert_same_tree(src: &Walked, dst: &Walked) {
    let missing: Vec<String> = src
        .entries
        .keys()
        .filter(|p| !dst.entries.contains_key(*p))
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    let extra: Vec<String> = dst
        .entries
        .keys()
        .filter(|p| !src.entries.contains_key(*p))
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "restored tree differs: missing {missing:?}, extra {extra:?}"
    );
    let mut diffs = Vec::new();
    for (path, s) in &src.entries {
        let d = &dst.entries[path];
        if s != d {
            diffs.push(format!(
                "{:?}:\n  source:   {s:?}\n  restored: {d:?}",
                String::from_utf8_lossy(path)
            ));
        }
    }
    assert!(
        diffs.is_empty(),
        "{} entries differ:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Building trees
// ---------------------------------------------------------------------------------------------

/// user::rw- user:1001:r-- group::r-- mask::r-- other::---
pub fn file_acl() -> Vec<u8> {
    acl_bytes(&[
        (ACL_USER_OBJ, 6, NO_ID),
        (ACL_USER, 4, 1001),
        (ACL_GROUP_OBJ, 4, NO_ID),
        (ACL_MASK, 4, NO_ID),
        (ACL_OTHER, 0, NO_ID),
    ])
}

/// user::rwx user:1001:r-x group::r-x mask::r-x other::---
pub fn dir_default_acl() -> Vec<u8> {
    acl_bytes(&[
        (ACL_USER_OBJ, 7, NO_ID),
        (ACL_USER, 5, 1001),
        (ACL_GROUP_OBJ, 5, NO_ID),
        (ACL_MASK, 5, NO_ID),
        (ACL_OTHER, 0, NO_ID),
    ])
}

/// `cap_net_raw+ep` as a `security.capability` value: revision 2 with the effective flag,
/// permitted bit 13 in the low word.
pub fn fcaps() -> Vec<u8> {
    let mut caps = 0x0200_0001u32.to_le_bytes().to_vec();
    for word in [1u32 << 13, 0, 0, 0] {
        caps.extend_from_slice(&word.to_le_bytes());
    }
    caps
}

/// What could not be built here (a missing capability), to relax the checks.
#[derive(Debug, Default)]
pub struct Skipped(pub Vec<String>);

impl Skipped {
    pub fn note(&mut self, what: &str, why: impl std::fmt::Display) {
        eprintln!("skipped: {what}: {why}");
        self.0.push(what.to_string());
    }

    pub fn has(&self, what: &str) -> bool {
        self.0.iter().any(|s| s == what)
    }
}

/// Levels and name length of the deep path: 40 × 201 bytes, over twice `PATH_MAX`.
pub const DEEP_LEVELS: usize = 40;
pub const SPARSE_SIZE: u64 = 2 * MIB as u64 + 3;

/// The names that are hard to carry: not UTF-8, with a newline, and 255 bytes long.
pub fn odd_names() -> Vec<Vec<u8>> {
    vec![
        b"bad\xff\xfe".to_vec(),
        b"new\nline".to_vec(),
        vec![b'x'; 255],
    ]
}

/// Deep directories with 200-byte names and a file at the bottom; returns its relative path.
pub fn build_deep(root: &Path) -> Vec<u8> {
    let mut dir = File::open(root).unwrap();
    let mut rel = Vec::new();
    for level in 0..DEEP_LEVELS {
        let name = OsString::from(format!("{level:03}{}", "d".repeat(197)));
        let path = in_dir(&dir, &name);
        fs::create_dir(&path).unwrap();
        dir = File::open(&path).unwrap();
        rel.extend_from_slice(name.as_bytes());
        rel.push(b'/');
    }
    fs::write(in_dir(&dir, OsStr::new("leaf")), b"at the bottom").unwrap();
    rel.extend_from_slice(b"leaf");
    rel
}

/// The full-fidelity tree of the round-trip test, built in `root` (an existing directory).
pub fn build_full_tree(root: &Path) -> Skipped {
    let mut skipped = Skipped::default();
    let p = |rel: &str| root.join(rel);

    // Regular files: small with xattrs, empty, 5 MiB, sparse, one from before 1970.
    put(&p("file"), b"hello\n");
    chmod(&p("file"), 0o644);
    lset(&p("file"), "user.a", b"1").unwrap();
    lset(&p("file"), "user.bin", &[0, 1, 2, 0xff, 0]).unwrap();
    if let Err(e) = lset(&p("file"), "trusted.t", b"x") {
        skipped.note("trusted xattrs", e);
    }
    set_mtime(&p("file"), 1_600_000_000, 123_456_789);
    put(&p("empty"), b"");
    put(&p("big"), &random_bytes(5, 5 * MIB));
    put(&p("old"), b"from the sixties");
    set_mtime(&p("old"), -31_536_001, 500_000_000);
    let sparse = File::create(p("sparse")).unwrap();
    sparse.write_all_at(b"start", 0).unwrap();
    sparse.write_all_at(b"end", SPARSE_SIZE - 3).unwrap();
    drop(sparse);
    for name in odd_names() {
        put(&root.join(OsStr::from_bytes(&name)), &name);
    }

    // Directories, links, special files.
    put(&p("dir/sub/deep.txt"), b"deep");
    fs::create_dir(p("emptydir")).unwrap();
    put(&p("link1"), b"shared content");
    fs::hard_link(p("link1"), p("dir/link2")).unwrap();
    symlink("/nonexistent/target", p("dangling")).unwrap();
    symlink("/etc/passwd", p("abs")).unwrap();
    symlink("file", p("rel")).unwrap();
    symlink("../file", p("dir/up")).unwrap();
    set_mtime(&p("dangling"), 1_000_000_000, 500_000_000);
    mkfifo(&p("fifo"), 0o640);
    mksock(&p("sock"));
    if !skipped.has("trusted xattrs") {
        lset(&p("rel"), "trusted.on-symlink", b"s").unwrap();
        lset(&p("fifo"), "trusted.on-fifo", b"f").unwrap();
    }

    // Owners and modes.
    put(&p("owned"), b"mine");
    put(&p("suid"), b"#!/bin/true\n");
    put(&p("sgid"), b"#!/bin/true\n");
    fs::create_dir(p("sticky")).unwrap();
    fs::create_dir(p("sgiddir")).unwrap();
    symlink("file", p("owned_link")).unwrap();
    mkfifo(&p("owned_fifo"), 0o620);
    for name in ["owned", "suid", "sgiddir", "owned_link", "owned_fifo"] {
        if let Err(e) = std::os::unix::fs::lchown(p(name), Some(1234), Some(5678)) {
            skipped.note("chown", e);
            break;
        }
    }
    chmod(&p("owned"), 0o600);
    chmod(&p("suid"), 0o4755);
    chmod(&p("sgid"), 0o2755);
    chmod(&p("sticky"), 0o1777);
    chmod(&p("sgiddir"), 0o2775);
    match mkdev(&p("null"), false, 1, 3) {
        Ok(()) => chmod(&p("null"), 0o666),
        Err(e) => skipped.note("char device", e),
    }

    // ACLs: an access ACL with a named user on a file, a default ACL on a directory (and a
    // file created below it inherits it).
    put(&p("acl_file"), b"acl");
    match lset(&p("acl_file"), "system.posix_acl_access", &file_acl()) {
        Err(e) => skipped.note("ACLs", e),
        Ok(()) => {
            fs::create_dir(p("acl_dir")).unwrap();
            lset(
                &p("acl_dir"),
                "system.posix_acl_default",
                &dir_default_acl(),
            )
            .unwrap();
            put(&p("acl_dir/inherited"), b"i");
        }
    }

    // File capabilities.
    put(&p("cap_file"), b"#!/bin/true\n");
    chmod(&p("cap_file"), 0o755);
    if let Err(e) = lset(&p("cap_file"), "security.capability", &fcaps()) {
        skipped.note("file capabilities", e);
    }

    build_deep(root);

    // Last, after their children: directory mtimes with nanoseconds and the root's mode.
    set_mtime(&p("dir"), 1_234_567_890, 987_654_321);
    chmod(root, 0o751);
    set_mtime(root, 1_500_000_000, 42);
    skipped
}
