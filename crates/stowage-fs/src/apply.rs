//! Applying an entry's [`Metadata`] on restore, in the order that keeps every part:
//! owner (chown clears setuid/setgid and file capabilities), then mode, then extended
//! attributes, ACLs (after the mode, which would rewrite their mask), file capabilities, the
//! modification time, and the inode flags last (an immutable or append-only inode takes no
//! other change).

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::sys::stat::{fchmod, fchmodat, futimens, utimensat, FchmodatFlags, Mode, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchown, fchownat, Gid, Uid};
use stowage_archive::{FileType, Metadata};

use crate::chattr;
use crate::error::RestoreError;
use crate::posix_acl::{self, ACCESS_XATTR, DEFAULT_XATTR};
use crate::xattr::{self, Handle, CAPABILITY_XATTR};

/// What could not be restored without failing the restore, counted per entry part.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RestoreStats {
    /// Entries whose owner was kept as the restoring user (not running as root).
    pub owners_skipped: u64,
    /// Extended attributes not set: not archived by pxar's rules, unsupported by the target
    /// file system or this kind of entry, or not permitted (`trusted.*` needs root).
    pub xattrs_skipped: u64,
    /// ACLs not set because the target file system does not support them.
    pub acls_skipped: u64,
    /// File capabilities not set: unsupported or not permitted (needs `CAP_SETFCAP`).
    pub fcaps_skipped: u64,
    /// Inode flags (chattr) not set: unsupported by the target file system, or not permitted
    /// (append-only and immutable need `CAP_LINUX_IMMUTABLE`).
    pub flags_skipped: u64,
}

impl RestoreStats {
    pub fn add(&mut self, other: &RestoreStats) {
        self.owners_skipped += other.owners_skipped;
        self.xattrs_skipped += other.xattrs_skipped;
        self.acls_skipped += other.acls_skipped;
        self.fcaps_skipped += other.fcaps_skipped;
        self.flags_skipped += other.flags_skipped;
    }
}

/// Whether the restore runs as root, and what it had to skip.
#[derive(Debug)]
pub(crate) struct ApplyCtx {
    pub is_root: bool,
    pub stats: RestoreStats,
    /// Regular files whose immutable or append-only flag waits for the end of the restore
    /// (a hardlink to them could not be made once it is set): path below the target, flags.
    pub deferred_flags: Vec<(std::path::PathBuf, u64)>,
}

impl ApplyCtx {
    pub fn new(is_root: bool) -> ApplyCtx {
        ApplyCtx {
            is_root,
            stats: RestoreStats::default(),
            deferred_flags: Vec::new(),
        }
    }
}

/// Who creates inodes, and with which umask: what a new file gets without `fchown`/`fchmod`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Creator {
    pub uid: u32,
    pub gid: u32,
    /// `None` if it could not be read: then every file gets its owner and mode set.
    pub umask: Option<u32>,
}

impl Creator {
    pub fn current() -> Creator {
        Creator {
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
            umask: read_umask(),
        }
    }

    /// The permission bits to create a regular file with so that it has `meta`'s owner and
    /// mode at once, or `None` if owner or mode must be set after (another owner, setuid,
    /// setgid or sticky bits, bits the umask would clear, an ACL, or a directory whose group
    /// new files take).
    pub fn created_as_wanted(&self, meta: &Metadata, plain_dir: bool) -> Option<u32> {
        let mode = (meta.stat.mode & 0o7777) as u32;
        let umask = self.umask?;
        let as_wanted = plain_dir
            && meta.stat.uid == self.uid
            && meta.stat.gid == self.gid
            && mode & 0o7000 == 0
            && mode & umask == 0
            && meta.acl.is_empty();
        as_wanted.then_some(mode)
    }
}

/// The process umask, from `/proc/self/status` (reading it with `umask(2)` would change it for
/// a moment, under the other threads' feet).
fn read_umask() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Umask:"))?;
    u32::from_str_radix(line["Umask:".len()..].trim(), 8).ok()
}

/// The restored inode metadata is applied to.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Node<'a> {
    /// A regular file or directory, open.
    Open(BorrowedFd<'a>),
    /// A symlink, device, fifo or socket: its directory, its name and an `O_PATH` descriptor
    /// pinning it.
    Special {
        dir: BorrowedFd<'a>,
        name: &'a OsStr,
        opath: BorrowedFd<'a>,
    },
}

impl Node<'_> {
    fn xattr_handle(&self) -> Handle<'_> {
        match *self {
            Node::Open(fd) => Handle::Fd(fd),
            Node::Special { opath, .. } => Handle::Path(opath),
        }
    }
}

/// Applies `meta` to `node` (named `path` in errors).
pub(crate) fn apply(
    node: Node<'_>,
    meta: &Metadata,
    ctx: &mut ApplyCtx,
    path: &Path,
) -> Result<(), RestoreError> {
    set_owner(node, meta, ctx, path)?;
    if meta.file_type() != Some(FileType::Symlink) {
        set_mode(node, meta, path)?;
    }
    apply_after_mode(node, meta, ctx, path)
}

/// As [`apply`], for an inode created with the owner and mode it is to have (see
/// [`created_as_wanted`]): extended attributes, ACL, file capabilities and mtime.
pub(crate) fn apply_after_mode(
    node: Node<'_>,
    meta: &Metadata,
    ctx: &mut ApplyCtx,
    path: &Path,
) -> Result<(), RestoreError> {
    let ft = meta.file_type();
    let is_symlink = ft == Some(FileType::Symlink);
    set_xattrs(node, meta, ctx, path)?;
    if !is_symlink {
        set_acl(node, meta, ft == Some(FileType::Directory), ctx, path)?;
        set_fcaps(node, meta, ctx, path)?;
    }
    set_mtime(node, meta, path)?;
    set_flags(node, meta, ctx, path)
}

fn set_owner(
    node: Node<'_>,
    meta: &Metadata,
    ctx: &mut ApplyCtx,
    path: &Path,
) -> Result<(), RestoreError> {
    let (uid, gid) = (Uid::from_raw(meta.stat.uid), Gid::from_raw(meta.stat.gid));
    let result = match node {
        Node::Open(fd) => fchown(fd, Some(uid), Some(gid)),
        Node::Special { opath, .. } => {
            fchownat(opath, "", Some(uid), Some(gid), AtFlags::AT_EMPTY_PATH)
        }
    };
    match result {
        Err(Errno::EPERM) if !ctx.is_root => {
            ctx.stats.owners_skipped += 1;
            Ok(())
        }
        other => other.map_err(RestoreError::io(path, "set the owner of")),
    }
}

fn set_mode(node: Node<'_>, meta: &Metadata, path: &Path) -> Result<(), RestoreError> {
    let mode = Mode::from_bits_truncate((meta.stat.mode & 0o7777) as libc::mode_t);
    let result = match node {
        Node::Open(fd) => fchmod(fd, mode),
        // chmod through the magic link reaches the pinned inode (fchmod refuses O_PATH); the
        // path is absolute, so the directory argument is ignored.
        Node::Special { opath, .. } => {
            let proc = CString::new(format!("/proc/self/fd/{}", opath.as_raw_fd()))
                .expect("no NUL in a number");
            fchmodat(opath, proc.as_c_str(), mode, FchmodatFlags::FollowSymlink)
        }
    };
    result.map_err(RestoreError::io(path, "set the mode of"))
}

/// Whether a failure to set an attribute means "cannot be set here" rather than a real error.
fn may_skip(e: &io::Error) -> bool {
    xattr::is_unsupported(e) || e.raw_os_error() == Some(libc::EPERM)
}

fn set_xattrs(
    node: Node<'_>,
    meta: &Metadata,
    ctx: &mut ApplyCtx,
    path: &Path,
) -> Result<(), RestoreError> {
    for x in &meta.xattrs {
        if !xattr::is_archived_xattr(&x.name) {
            ctx.stats.xattrs_skipped += 1;
            continue;
        }
        match xattr::set(node.xattr_handle(), &x.name, &x.value) {
            Ok(()) => {}
            Err(e) if may_skip(&e) => ctx.stats.xattrs_skipped += 1,
            Err(e) => return Err(io_error(path, "set extended attributes of", e)),
        }
    }
    Ok(())
}

fn set_acl(
    node: Node<'_>,
    meta: &Metadata,
    is_dir: bool,
    ctx: &mut ApplyCtx,
    path: &Path,
) -> Result<(), RestoreError> {
    let access = posix_acl::access_xattr(meta.stat.mode, &meta.acl);
    let default = posix_acl::default_xattr(&meta.acl).filter(|_| is_dir);
    let wanted = [(ACCESS_XATTR, access), (DEFAULT_XATTR, default)];
    for (name, value) in wanted {
        let Some(value) = value else { continue };
        match xattr::set(node.xattr_handle(), name, &value) {
            Ok(()) => {}
            Err(e) if xattr::is_unsupported(&e) => ctx.stats.acls_skipped += 1,
            Err(e) => return Err(io_error(path, "set the ACL of", e)),
        }
    }
    Ok(())
}

fn set_fcaps(
    node: Node<'_>,
    meta: &Metadata,
    ctx: &mut ApplyCtx,
    path: &Path,
) -> Result<(), RestoreError> {
    let Some(fcaps) = &meta.fcaps else {
        return Ok(());
    };
    match xattr::set(node.xattr_handle(), CAPABILITY_XATTR, fcaps) {
        Ok(()) => Ok(()),
        Err(e) if may_skip(&e) => {
            ctx.stats.fcaps_skipped += 1;
            Ok(())
        }
        Err(e) => Err(io_error(path, "set the file capabilities of", e)),
    }
}

fn set_mtime(node: Node<'_>, meta: &Metadata, path: &Path) -> Result<(), RestoreError> {
    let m = meta.stat.mtime;
    let mtime = TimeSpec::new(m.secs as libc::time_t, i64::from(m.nanos) as _);
    let atime = TimeSpec::UTIME_OMIT;
    let result = match node {
        Node::Open(fd) => futimens(fd, &atime, &mtime),
        Node::Special { dir, name, .. } => {
            utimensat(dir, name, &atime, &mtime, UtimensatFlags::NoFollowSymlink)
        }
    };
    result.map_err(RestoreError::io(path, "set the modification time of"))
}

fn set_flags(
    node: Node<'_>,
    meta: &Metadata,
    ctx: &mut ApplyCtx,
    path: &Path,
) -> Result<(), RestoreError> {
    let (Node::Open(fd), mut flags @ 1..) = (node, meta.stat.flags) else {
        return Ok(());
    };
    let last = flags & chattr::BLOCKS_LINKS;
    if last != 0 && meta.file_type() == Some(FileType::Regular) {
        ctx.deferred_flags.push((path.to_path_buf(), flags));
        flags &= !chattr::BLOCKS_LINKS;
        if flags == 0 {
            return Ok(());
        }
    }
    set_flags_on(fd, flags, ctx, path)
}

/// Sets the inode flags `flags` (pxar bits) on the open `fd`; what the file system or the
/// caller's privileges do not allow is counted, not an error.
pub(crate) fn set_flags_on(
    fd: std::os::fd::BorrowedFd<'_>,
    flags: u64,
    ctx: &mut ApplyCtx,
    path: &Path,
) -> Result<(), RestoreError> {
    match chattr::set(fd, flags) {
        Ok(()) => Ok(()),
        Err(e) if may_skip(&e) || is_unsupported_ioctl(&e) => {
            ctx.stats.flags_skipped += 1;
            Ok(())
        }
        Err(e) => Err(io_error(path, "set the inode flags of", e)),
    }
}

fn is_unsupported_ioctl(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOTTY | libc::EINVAL | libc::ENOSYS)
    )
}

fn io_error(path: &Path, op: &'static str, source: io::Error) -> RestoreError {
    RestoreError::Io {
        path: path.to_path_buf(),
        op,
        source,
    }
}
