//! Helpers shared by the integration tests: temporary directories, raw xattr calls, a
//! capture walk of a whole tree and a restore driver that replays it like an archive would.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::fcntl::{open, OFlag};
use nix::sys::stat::{fstat, Mode};
use stowage_archive::{Device, FileType, Metadata, Stat};
use stowage_fs::{capture, read_dir_sorted, Restorer};

/// A temporary directory on `/dev/shm` (tmpfs: fast, xattrs and ACLs), else the default.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("stowage-fs-")
        .tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .expect("a temporary directory")
}

pub fn open_dir(path: &Path) -> OwnedFd {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    open(path, flags, Mode::empty()).expect("open directory")
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Metadata of the given type and permissions, owned by the current user.
pub fn meta(ft: FileType, perms: u64) -> Metadata {
    let mut stat = Stat::new(ft, perms);
    stat.uid = nix::unistd::geteuid().as_raw();
    stat.gid = nix::unistd::getegid().as_raw();
    Metadata::new(stat)
}

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

/// `lsetxattr` on a (short) path.
pub fn lset(path: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    let name = CString::new(name).unwrap();
    // SAFETY: NUL-terminated strings and a valid buffer.
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

/// `lgetxattr` on a (short) path.
pub fn lget(path: &Path, name: &str) -> io::Result<Vec<u8>> {
    let name = CString::new(name).unwrap();
    let mut buf = vec![0u8; 65536];
    // SAFETY: as above.
    let r = unsafe {
        libc::lgetxattr(
            cpath(path).as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(r as usize);
    Ok(buf)
}

/// What the round-trip test compares about one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snap {
    pub file_type: FileType,
    pub metadata: Metadata,
    pub size: u64,
    pub content: Option<Vec<u8>>,
    pub symlink_target: Option<Vec<u8>>,
    pub device: Option<Device>,
    pub nlink: u64,
}

/// Identity and allocation of an entry, kept apart from [`Snap`] (they differ between trees).
#[derive(Debug, Clone, Copy)]
pub struct Inode {
    pub dev: u64,
    pub ino: u64,
    /// 512-byte blocks allocated (regular files).
    pub blocks: i64,
}

#[derive(Debug, Default)]
pub struct Tree {
    pub entries: BTreeMap<Vec<u8>, Snap>,
    pub inodes: BTreeMap<Vec<u8>, Inode>,
}

fn join(parent: &[u8], name: &OsStr) -> Vec<u8> {
    let mut p = parent.to_vec();
    if !p.is_empty() {
        p.push(b'/');
    }
    p.extend_from_slice(name.as_bytes());
    p
}

/// Captures every entry below `dir` (recursively), keyed by relative path bytes.
pub fn snapshot(dir: BorrowedFd<'_>) -> Tree {
    let mut tree = Tree::default();
    snapshot_into(dir, &[], &mut tree);
    tree
}

fn snapshot_into(dir: BorrowedFd<'_>, prefix: &[u8], tree: &mut Tree) {
    for (name, _) in read_dir_sorted(dir).unwrap() {
        let path = join(prefix, &name);
        let c = capture(dir, &name).unwrap_or_else(|e| panic!("capture: {e}"));
        let blocks = c.fd.as_ref().map_or(0, |fd| fstat(fd).unwrap().st_blocks);
        let mut content = None;
        if c.file_type == FileType::Directory {
            snapshot_into(c.fd.as_ref().unwrap().as_fd(), &path, tree);
        } else if let Some(fd) = c.fd {
            let mut buf = Vec::new();
            File::from(fd).read_to_end(&mut buf).unwrap();
            content = Some(buf);
        }
        let inode = Inode {
            dev: c.dev,
            ino: c.ino,
            blocks,
        };
        tree.inodes.insert(path.clone(), inode);
        let snap = Snap {
            file_type: c.file_type,
            metadata: c.metadata,
            size: c.size,
            content,
            symlink_target: c.symlink_target,
            device: c.device,
            nlink: c.nlink,
        };
        tree.entries.insert(path, snap);
    }
}

/// Replays the tree below `src` into `restorer` the way an archive restore walks it: sorted
/// children, directories entered and left, the second and later links of a file as hardlinks.
pub fn restore_tree(src: BorrowedFd<'_>, restorer: &mut Restorer) {
    let mut seen = HashMap::new();
    restore_dir(src, &[], restorer, &mut seen);
}

fn restore_dir(
    dir: BorrowedFd<'_>,
    prefix: &[u8],
    r: &mut Restorer,
    seen: &mut HashMap<(u64, u64), Vec<u8>>,
) {
    for (name, _) in read_dir_sorted(dir).unwrap() {
        let path = join(prefix, &name);
        let c = capture(dir, &name).unwrap_or_else(|e| panic!("capture: {e}"));
        let m = &c.metadata;
        let result = match c.file_type {
            FileType::Directory => {
                r.enter_dir(&name, m).unwrap();
                restore_dir(c.fd.as_ref().unwrap().as_fd(), &path, r, seen);
                r.leave_dir()
            }
            FileType::Regular if c.nlink > 1 && seen.contains_key(&(c.dev, c.ino)) => {
                r.hardlink(&name, &seen[&(c.dev, c.ino)])
            }
            FileType::Regular => {
                seen.insert((c.dev, c.ino), path.clone());
                let mut w = r.create_file(&name, m, c.size).unwrap();
                io::copy(&mut File::from(c.fd.unwrap()), &mut w).unwrap();
                w.finish()
            }
            FileType::Symlink => r.symlink(&name, m, c.symlink_target.as_ref().unwrap()),
            FileType::BlockDevice | FileType::CharDevice => {
                let d = c.device.unwrap();
                r.device(&name, m, d.major, d.minor)
            }
            FileType::Fifo => r.fifo(&name, m),
            FileType::Socket => r.socket(&name, m),
        };
        result.unwrap_or_else(|e| panic!("restore {}: {e}", String::from_utf8_lossy(&path)));
    }
}
