//! Reading what pxar records about one directory entry from the live file system, strictly
//! relative to an open directory (so paths longer than `PATH_MAX` work and no symlink on the way
//! is followed).

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{openat, readlinkat, AtFlags, OFlag};
use nix::sys::stat::{fstat, fstatat, major, minor, FileStat, Mode};
use stowage_archive::{Device, FileType, Metadata, Mtime, Stat, Xattr};

use crate::chattr;
use crate::error::CaptureError;
use crate::posix_acl::{self, ACCESS_XATTR, DEFAULT_XATTR};
use crate::xattr::{self, Handle, CAPABILITY_XATTR};

/// One captured directory entry.
#[derive(Debug)]
pub struct Captured {
    /// Stat (full mode, chattr flags, uid, gid, mtime with nanoseconds), xattrs in kernel order,
    /// ACL, fcaps. `quota_project_id` is not captured.
    pub metadata: Metadata,
    pub file_type: FileType,
    /// Content size of a regular file; 0 for every other type.
    pub size: u64,
    /// Target bytes of a symlink.
    pub symlink_target: Option<Vec<u8>>,
    /// Device numbers of a block or character device.
    pub device: Option<Device>,
    /// Device of the file system holding the entry (one-file-system, hardlink detection).
    pub dev: u64,
    /// Inode number (hardlink detection).
    pub ino: u64,
    /// Link count (a regular file with more than one link may be a hardlink).
    pub nlink: u64,
    /// Status-change time (change detection), same normalisation as mtime.
    pub ctime: Mtime,
    /// The open entry, for regular files (to read the content) and directories (to list and
    /// capture the children); `None` for every other type.
    pub fd: Option<OwnedFd>,
}

/// Captures the entry `name` of the directory `dir` without following it if it is a symlink.
///
/// Regular files and directories are opened (`O_NOATIME` when permitted) and returned in
/// [`Captured::fd`]; their stat is taken from the open descriptor, so it describes what will be
/// read. An entry that vanished gives [`CaptureError::Vanished`], one that may not be read
/// [`CaptureError::PermissionDenied`]; a file system without extended attributes is not an
/// error.
pub fn capture(dir: BorrowedFd<'_>, name: &OsStr) -> Result<Captured, CaptureError> {
    let path = Path::new(name);
    let st = fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW)
        .map_err(|e| CaptureError::from_errno(path, "stat", e))?;
    let file_type = file_type_of(&st, path)?;
    let (fd, st) = match file_type {
        FileType::Regular | FileType::Directory => {
            let fd = open_entry(dir, name, file_type)?;
            let now = fstat(&fd).map_err(|e| CaptureError::from_errno(path, "stat", e))?;
            same_entry(&st, &now, path)?;
            (Some(fd), now)
        }
        _ => (None, st),
    };
    finish_capture(dir, name, file_type, fd, st)
}

/// As [`capture`], for an entry the directory listing says is a regular file or a directory:
/// it is opened straight away and its metadata read from the descriptor, one system call fewer
/// per entry. Anything unexpected (it changed type, vanished, cannot be opened) falls back to
/// [`capture`], which reports it.
pub fn capture_hinted(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    hint: Option<FileType>,
) -> Result<Captured, CaptureError> {
    let Some(expected @ (FileType::Regular | FileType::Directory)) = hint else {
        return capture(dir, name); // a symlink, or a type the listing did not tell
    };
    let Ok(fd) = open_entry(dir, name, expected) else {
        return capture(dir, name);
    };
    let Ok(st) = fstat(&fd) else {
        return capture(dir, name);
    };
    match file_type_of(&st, Path::new(name)) {
        Ok(t) if t == expected => finish_capture(dir, name, expected, Some(fd), st),
        _ => capture(dir, name),
    }
}

/// As [`capture_hinted`], for change detection: a regular file whose status has not changed
/// since `since` (the previous snapshot's time) is only stat'ed: one system call. Its extended
/// attributes, ACL and file capabilities are not read and come back empty: nothing of them can
/// have changed since the previous snapshot recorded them (setting any of them, like every
/// status change, moves `ctime` on), so the caller compares this metadata with the previous
/// entry's and, should that have had any, finds a difference and captures the file again,
/// opened, with [`capture_hinted`] (as for a file that turns out to need reading).
/// [`Captured::fd`] is then `None`. Anything else goes to [`capture_hinted`].
/// `done`: the `statx` of the entry when it was already taken (see `prestat.rs`).
pub(crate) fn capture_unopened_with(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    hint: Option<FileType>,
    since: Option<i64>,
    done: Option<crate::prestat::Stat>,
) -> Result<Captured, CaptureError> {
    if hint != Some(FileType::Regular) {
        return capture_hinted(dir, name, hint);
    }
    let stat = match done {
        Some(stat) => stat,
        None => match std::ffi::CString::new(name.as_bytes()) {
            Ok(cname) => statx_at(dir, &cname),
            Err(_) => None,
        },
    };
    let Some((st, flags)) = stat else {
        return capture_hinted(dir, name, hint);
    };
    if file_type_of(&st, Path::new(name)).ok() != Some(FileType::Regular) {
        return capture_hinted(dir, name, hint);
    }
    // Changed since the previous snapshot (chattr +A, say, which `statx` does not show): the
    // open descriptor tells everything.
    if since.is_none_or(|t| st.st_ctime >= t) {
        return capture_hinted(dir, name, hint);
    }
    let mut stat = stat_of(&st);
    stat.flags = flags;
    Ok(Captured {
        metadata: Metadata {
            stat,
            xattrs: Vec::new(),
            acl: Default::default(),
            fcaps: None,
            quota_project_id: None,
        },
        file_type: FileType::Regular,
        size: st.st_size as u64,
        symlink_target: None,
        device: None,
        dev: st.st_dev,
        ino: st.st_ino,
        nlink: st.st_nlink,
        ctime: time(st.st_ctime, st.st_ctime_nsec),
        fd: None,
    })
}

/// What the previous snapshot recorded of an entry, beyond its stat.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub metadata: Metadata,
    pub symlink_target: Option<Vec<u8>>,
}

/// For change detection: a directory or symlink whose status has not changed since `since`
/// (the previous snapshot's time) takes its extended attributes, ACL, inode flags and, for a
/// symlink, its target from what the previous snapshot recorded (`previous`, asked with the
/// stat it has now, answering only if that matches): none of them can have changed without
/// moving `ctime` on. A directory is opened and stat'ed (its entries are read next), a symlink
/// only stat'ed: the reads of its attributes and target are saved. Anything else, or an entry
/// the previous snapshot does not have as it is now, is captured the usual way.
pub fn capture_recorded(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    hint: Option<FileType>,
    since: i64,
    previous: &mut dyn FnMut(FileType, &Stat) -> Option<Recorded>,
) -> Result<Captured, CaptureError> {
    let (fd, st) = match hint {
        Some(FileType::Directory) => {
            let Ok(fd) = open_entry(dir, name, FileType::Directory) else {
                return capture(dir, name);
            };
            match fstat(&fd) {
                Ok(st) => (Some(fd), st),
                Err(_) => return capture(dir, name),
            }
        }
        Some(FileType::Symlink) => {
            let Ok(cname) = std::ffi::CString::new(name.as_bytes()) else {
                return capture(dir, name);
            };
            match statx_at(dir, &cname) {
                Some((st, _)) => (None, st),
                None => return capture(dir, name),
            }
        }
        _ => return capture_hinted(dir, name, hint),
    };
    let file_type = match file_type_of(&st, Path::new(name)) {
        Ok(t) if Some(t) == hint => t,
        _ => return capture(dir, name),
    };
    let recorded = match st.st_ctime < since {
        true => previous(file_type, &stat_of(&st)),
        false => None,
    };
    let Some(recorded) = recorded else {
        return finish_capture(dir, name, file_type, fd, st);
    };
    if file_type == FileType::Symlink && recorded.symlink_target.is_none() {
        return finish_capture(dir, name, file_type, fd, st);
    }
    Ok(Captured {
        metadata: recorded.metadata,
        file_type,
        size: 0,
        symlink_target: recorded.symlink_target,
        device: None,
        dev: st.st_dev,
        ino: st.st_ino,
        nlink: st.st_nlink,
        ctime: time(st.st_ctime, st.st_ctime_nsec),
        fd,
    })
}

/// `statx` of `name` in `dir` (not followed), as a stat, with the inode flags `statx` shows
/// (the others only the ioctl on an open file reads: a file with one of them looks changed to
/// change detection and is captured again, opened).
pub(crate) fn statx_at(dir: BorrowedFd<'_>, name: &std::ffi::CStr) -> Option<(FileStat, u64)> {
    use std::os::fd::AsRawFd;
    // SAFETY: an all-zero statx is a valid value to be overwritten.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    let flags = libc::AT_SYMLINK_NOFOLLOW | libc::AT_STATX_SYNC_AS_STAT;
    // SAFETY: `name` is NUL-terminated and `stx` is valid for writing.
    let r = unsafe {
        libc::statx(
            dir.as_raw_fd(),
            name.as_ptr(),
            flags,
            libc::STATX_BASIC_STATS,
            &mut stx,
        )
    };
    if r != 0 || stx.stx_mask & libc::STATX_BASIC_STATS != libc::STATX_BASIC_STATS {
        return None;
    }
    // SAFETY: an all-zero stat is a valid value; the fields used are filled in below.
    let mut st: FileStat = unsafe { std::mem::zeroed() };
    st.st_mode = libc::mode_t::from(stx.stx_mode);
    st.st_uid = stx.stx_uid;
    st.st_gid = stx.stx_gid;
    st.st_size = stx.stx_size as libc::off_t;
    st.st_dev = libc::makedev(stx.stx_dev_major, stx.stx_dev_minor);
    st.st_rdev = libc::makedev(stx.stx_rdev_major, stx.stx_rdev_minor);
    st.st_ino = stx.stx_ino;
    st.st_nlink = stx.stx_nlink.into();
    st.st_mtime = stx.stx_mtime.tv_sec;
    st.st_mtime_nsec = stx.stx_mtime.tv_nsec.into();
    st.st_ctime = stx.stx_ctime.tv_sec;
    st.st_ctime_nsec = stx.stx_ctime.tv_nsec.into();
    let visible = stx.stx_attributes & stx.stx_attributes_mask;
    let fs_flags = (visible as u32) & chattr::STATX_VISIBLE;
    Some((st, chattr::to_pxar(fs_flags)))
}

/// Extended attributes, ACLs, link target and the rest, once the entry's type and stat are known
/// (and, for files and directories, its descriptor is open).
fn finish_capture(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    file_type: FileType,
    fd: Option<OwnedFd>,
    st: FileStat,
) -> Result<Captured, CaptureError> {
    let path = Path::new(name);
    let raw = match &fd {
        Some(fd) => read_xattrs(Handle::Fd(fd.as_fd()), path)?,
        None => special_xattrs(dir, name, &st, path)?,
    };
    let acl = posix_acl::acl_from_xattrs(raw.acl_access.as_deref(), raw.acl_default.as_deref())
        .map_err(|source| CaptureError::Acl {
            path: path.to_path_buf(),
            source,
        })?;
    let symlink_target = match file_type {
        FileType::Symlink => Some(read_link(dir, name, path)?),
        _ => None,
    };
    let mut stat = stat_of(&st);
    if let Some(fd) = &fd {
        stat.flags = chattr::read(fd.as_fd()).map_err(|e| CaptureError::Io {
            path: path.to_path_buf(),
            op: "read the inode flags of",
            source: e,
        })?;
    }
    let metadata = Metadata {
        stat,
        xattrs: raw.xattrs,
        acl,
        fcaps: raw.fcaps,
        quota_project_id: None,
    };
    Ok(Captured {
        metadata,
        file_type,
        size: if file_type == FileType::Regular {
            st.st_size as u64
        } else {
            0
        },
        symlink_target,
        device: file_type.is_device().then(|| Device {
            major: major(st.st_rdev),
            minor: minor(st.st_rdev),
        }),
        dev: st.st_dev,
        ino: st.st_ino,
        nlink: st.st_nlink,
        ctime: time(st.st_ctime, st.st_ctime_nsec),
        fd,
    })
}

/// The entries of the directory open at `dir`, without `.` and `..`, sorted by their raw bytes
/// (the order pxar requires), each with the type the listing gives when it is a regular file, a
/// directory or a symlink (a hint for [`capture_hinted`]). Lists from the start, whatever was
/// read of `dir` before.
pub fn read_dir_sorted(
    dir: BorrowedFd<'_>,
) -> Result<Vec<(OsString, Option<FileType>)>, CaptureError> {
    nix::unistd::lseek(dir, 0, nix::unistd::Whence::SeekSet)
        .map_err(|e| CaptureError::from_errno(Path::new("."), "list directory", e))?;
    read_fresh_dir_sorted(dir)
}

/// [`read_dir_sorted`] of a descriptor nothing has read yet (the walker's, freshly opened): one
/// system call less per directory. It leaves `dir` at the end of the listing.
pub(crate) fn read_fresh_dir_sorted(
    dir: BorrowedFd<'_>,
) -> Result<Vec<(OsString, Option<FileType>)>, CaptureError> {
    let here = Path::new(".");
    let mut names = Vec::new();
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = getdents(dir, &mut buf)
            .map_err(|e| CaptureError::from_errno(here, "list directory", e))?;
        if n == 0 {
            break;
        }
        for (name, d_type) in DirentIter(&buf[..n]) {
            if name != b"." && name != b".." {
                let hint = match d_type {
                    libc::DT_REG => Some(FileType::Regular),
                    libc::DT_DIR => Some(FileType::Directory),
                    libc::DT_LNK => Some(FileType::Symlink),
                    _ => None,
                };
                names.push((OsString::from_vec(name.to_vec()), hint));
            }
        }
    }
    names.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    Ok(names)
}

/// `getdents64` on `dir` from its current position; the bytes filled.
fn getdents(dir: BorrowedFd<'_>, buf: &mut [u8]) -> nix::Result<usize> {
    use std::os::fd::AsRawFd;
    // SAFETY: the buffer is valid for writing `buf.len()` bytes.
    let n = unsafe {
        libc::syscall(
            libc::SYS_getdents64,
            dir.as_raw_fd(),
            buf.as_mut_ptr(),
            buf.len(),
        )
    };
    if n < 0 {
        return Err(nix::Error::last());
    }
    Ok(n as usize)
}

/// The (name, type) records of a `getdents64` buffer: `d_ino` (8 bytes), `d_off` (8),
/// `d_reclen` (2), `d_type` (1), then the name up to a NUL within `d_reclen`.
struct DirentIter<'a>(&'a [u8]);

impl<'a> Iterator for DirentIter<'a> {
    type Item = (&'a [u8], u8);

    fn next(&mut self) -> Option<Self::Item> {
        let reclen = u16::from_ne_bytes([*self.0.get(16)?, *self.0.get(17)?]) as usize;
        let record = self.0.get(..reclen).filter(|_| reclen > 19)?;
        self.0 = &self.0[reclen..];
        let d_type = record[18];
        let name = &record[19..];
        let len = name.iter().position(|&b| b == 0).unwrap_or(name.len());
        Some((&name[..len], d_type))
    }
}

fn time(secs: i64, nanos: i64) -> Mtime {
    Mtime::from_nanos(i128::from(secs) * 1_000_000_000 + i128::from(nanos))
}

fn stat_of(st: &FileStat) -> Stat {
    Stat {
        mode: u64::from(st.st_mode),
        flags: 0,
        uid: st.st_uid,
        gid: st.st_gid,
        mtime: time(st.st_mtime, st.st_mtime_nsec),
    }
}

fn file_type_of(st: &FileStat, path: &Path) -> Result<FileType, CaptureError> {
    let mode = u64::from(st.st_mode);
    FileType::from_mode(mode).ok_or_else(|| CaptureError::UnknownType {
        path: path.to_path_buf(),
        mode,
    })
}

/// Fails with [`CaptureError::Changed`] unless both stats describe the same inode and type.
fn same_entry(before: &FileStat, now: &FileStat, path: &Path) -> Result<(), CaptureError> {
    let same = before.st_dev == now.st_dev
        && before.st_ino == now.st_ino
        && (before.st_mode & libc::S_IFMT) == (now.st_mode & libc::S_IFMT);
    if same {
        Ok(())
    } else {
        Err(CaptureError::Changed {
            path: path.to_path_buf(),
        })
    }
}

/// Opens a regular file or directory for reading, without following a symlink, with
/// `O_NOATIME` when permitted (it is only for the owner or `CAP_FOWNER`).
fn open_entry(dir: BorrowedFd<'_>, name: &OsStr, ft: FileType) -> Result<OwnedFd, CaptureError> {
    let mut flags = OFlag::O_RDONLY
        | OFlag::O_NOFOLLOW
        | OFlag::O_CLOEXEC
        | OFlag::O_NOCTTY
        | OFlag::O_NONBLOCK;
    if ft == FileType::Directory {
        flags |= OFlag::O_DIRECTORY;
    }
    let result = match openat(dir, name, flags | OFlag::O_NOATIME, Mode::empty()) {
        Err(Errno::EPERM) => openat(dir, name, flags, Mode::empty()),
        other => other,
    };
    result.map_err(|e| match e {
        // Replaced by a symlink (O_NOFOLLOW) or by a non-directory since the stat.
        Errno::ELOOP | Errno::ENOTDIR => CaptureError::Changed {
            path: Path::new(name).to_path_buf(),
        },
        _ => CaptureError::from_errno(Path::new(name), "open", e),
    })
}

fn read_link(dir: BorrowedFd<'_>, name: &OsStr, path: &Path) -> Result<Vec<u8>, CaptureError> {
    match readlinkat(dir, name) {
        Ok(target) => Ok(target.into_vec()),
        // EINVAL: no longer a symlink.
        Err(Errno::EINVAL) => Err(CaptureError::Changed {
            path: path.to_path_buf(),
        }),
        Err(e) => Err(CaptureError::from_errno(path, "read symlink", e)),
    }
}

/// Extended attributes of one inode, split the way pxar stores them.
#[derive(Debug, Default)]
struct RawXattrs {
    xattrs: Vec<Xattr>,
    acl_access: Option<Vec<u8>>,
    acl_default: Option<Vec<u8>>,
    fcaps: Option<Vec<u8>>,
}

fn read_xattrs(h: Handle<'_>, path: &Path) -> Result<RawXattrs, CaptureError> {
    let io_err = |op, source| CaptureError::Io {
        path: path.to_path_buf(),
        op,
        source,
    };
    let names = match xattr::list(h) {
        Ok(names) => names,
        Err(e) if xattr::is_unsupported(&e) => return Ok(RawXattrs::default()),
        Err(e) => return Err(io_err("list extended attributes of", e)),
    };
    let mut raw = RawXattrs::default();
    for name in names {
        let archived = xattr::is_archived_xattr(&name);
        let wanted =
            archived || name == ACCESS_XATTR || name == DEFAULT_XATTR || name == CAPABILITY_XATTR;
        if !wanted {
            continue;
        }
        let value = match xattr::get(h, &name) {
            Ok(Some(v)) => v,
            Ok(None) => continue, // removed since it was listed
            Err(e) => return Err(io_err("read extended attributes of", e)),
        };
        match name.as_slice() {
            ACCESS_XATTR => raw.acl_access = Some(value),
            DEFAULT_XATTR => raw.acl_default = Some(value),
            CAPABILITY_XATTR => raw.fcaps = Some(value),
            _ => raw.xattrs.push(Xattr { name, value }),
        }
    }
    Ok(raw)
}

/// Extended attributes of an entry that is not opened for I/O, through an `O_PATH` descriptor
/// checked to be the inode that was stat-ed. Without `/proc` they are skipped.
fn special_xattrs(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    st: &FileStat,
    path: &Path,
) -> Result<RawXattrs, CaptureError> {
    let flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let fd = openat(dir, name, flags, Mode::empty())
        .map_err(|e| CaptureError::from_errno(path, "open", e))?;
    let now = fstat(&fd).map_err(|e| CaptureError::from_errno(path, "stat", e))?;
    same_entry(st, &now, path)?;
    match read_xattrs(Handle::Path(fd.as_fd()), path) {
        Err(CaptureError::Io { source, .. })
            if source.raw_os_error() == Some(libc::ENOENT)
                && !Path::new("/proc/self/fd").exists() =>
        {
            Ok(RawXattrs::default())
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn tempdir() -> tempfile::TempDir {
        tempfile::Builder::new()
            .tempdir_in("/dev/shm")
            .or_else(|_| tempfile::tempdir())
            .unwrap()
    }

    #[test]
    fn captures_a_file_and_returns_its_fd() {
        let t = tempdir();
        std::fs::write(t.path().join("f"), b"hello").unwrap();
        std::fs::set_permissions(t.path().join("f"), PermissionsExt::from_mode(0o640)).unwrap();
        let dir = File::open(t.path()).unwrap();
        let c = capture(dir.as_fd(), OsStr::new("f")).unwrap();
        assert_eq!(c.file_type, FileType::Regular);
        assert_eq!(c.size, 5);
        assert_eq!(c.metadata.stat.mode, 0o100640);
        assert_eq!(c.nlink, 1);
        let mut content = String::new();
        std::io::Read::read_to_string(&mut File::from(c.fd.unwrap()), &mut content).unwrap();
        assert_eq!(content, "hello");
    }

    /// A previous snapshot taken after every file of a test changed.
    const FUTURE: Option<i64> = Some(i64::MAX);

    #[test]
    fn an_unopened_capture_has_the_stat_of_a_full_one_and_no_attributes() {
        let t = tempdir();
        std::fs::write(t.path().join("plain"), b"hello").unwrap();
        std::fs::write(t.path().join("tagged"), b"hello").unwrap();
        let dir = File::open(t.path()).unwrap();
        let tagged = crate::xattr::set(
            crate::xattr::Handle::Fd(File::open(t.path().join("tagged")).unwrap().as_fd()),
            b"user.stowage-test",
            b"1",
        );
        for name in ["plain", "tagged"] {
            let name = OsStr::new(name);
            let full = capture(dir.as_fd(), name).unwrap();
            let lazy =
                capture_unopened_with(dir.as_fd(), name, Some(FileType::Regular), FUTURE, None)
                    .unwrap();
            assert!(lazy.fd.is_none(), "{name:?} was opened");
            assert_eq!(lazy.metadata.stat, full.metadata.stat, "{name:?}");
            assert!(lazy.metadata.xattrs.is_empty());
            assert_eq!(
                (lazy.size, lazy.ino, lazy.nlink),
                (full.size, full.ino, full.nlink)
            );
            // A file with attributes differs from its full capture, so change detection, which
            // compares with the previous snapshot's entry, reads it again.
            let differs = tagged.is_ok() && name == "tagged";
            assert_eq!(lazy.metadata != full.metadata, differs, "{name:?}");
        }
        // A file whose status changed since the previous snapshot is opened.
        let recent = capture_unopened_with(
            dir.as_fd(),
            OsStr::new("plain"),
            Some(FileType::Regular),
            Some(0),
            None,
        );
        assert!(recent.unwrap().fd.is_some());
        // Whatever the hint, a directory or a missing entry is captured the usual way.
        let missing = capture_unopened_with(
            dir.as_fd(),
            OsStr::new("gone"),
            Some(FileType::Regular),
            FUTURE,
            None,
        );
        assert!(missing.unwrap_err().is_vanished());
    }

    #[test]
    fn symlinks_are_not_followed() {
        let t = tempdir();
        symlink("/etc", t.path().join("l")).unwrap();
        let dir = File::open(t.path()).unwrap();
        let c = capture(dir.as_fd(), OsStr::new("l")).unwrap();
        assert_eq!(c.file_type, FileType::Symlink);
        assert_eq!(c.symlink_target.as_deref(), Some(&b"/etc"[..]));
        assert!(c.fd.is_none());
    }

    #[test]
    fn vanished_entries_are_told_apart() {
        let t = tempdir();
        let dir = File::open(t.path()).unwrap();
        let e = capture(dir.as_fd(), OsStr::new("gone")).unwrap_err();
        assert!(e.is_vanished() && e.is_skippable(), "{e}");
        assert_eq!(e.path(), Path::new("gone"));
    }

    #[test]
    fn unreadable_entries_are_permission_errors() {
        if nix::unistd::geteuid().is_root() {
            return eprintln!("skipped: root reads everything");
        }
        let t = tempdir();
        std::fs::write(t.path().join("secret"), b"x").unwrap();
        std::fs::set_permissions(t.path().join("secret"), PermissionsExt::from_mode(0o000))
            .unwrap();
        let dir = File::open(t.path()).unwrap();
        let e = capture(dir.as_fd(), OsStr::new("secret")).unwrap_err();
        assert!(e.is_permission_denied(), "{e}");
    }

    #[test]
    fn a_wrong_hint_falls_back_to_a_full_capture() {
        let t = tempdir();
        std::os::unix::fs::symlink("target", t.path().join("l")).unwrap();
        nix::unistd::mkfifo(&t.path().join("p"), Mode::from_bits_truncate(0o600)).unwrap();
        File::create(t.path().join("f")).unwrap();
        let dir = File::open(t.path()).unwrap();
        let hinted =
            |name: &str, hint| capture_hinted(dir.as_fd(), OsStr::new(name), Some(hint)).unwrap();
        let l = hinted("l", FileType::Regular);
        assert_eq!(l.file_type, FileType::Symlink);
        assert_eq!(l.symlink_target.as_deref(), Some(&b"target"[..]));
        let p = hinted("p", FileType::Regular);
        assert_eq!(p.file_type, FileType::Fifo);
        assert!(p.fd.is_none());
        assert_eq!(
            hinted("f", FileType::Directory).file_type,
            FileType::Regular
        );
        let f = hinted("f", FileType::Regular);
        assert_eq!(f.file_type, FileType::Regular);
        assert!(f.fd.is_some());
        assert!(
            capture_hinted(dir.as_fd(), OsStr::new("gone"), Some(FileType::Regular))
                .unwrap_err()
                .is_vanished()
        );
    }

    #[test]
    fn directory_listing_is_byte_sorted() {
        let t = tempdir();
        for n in ["b", "a", "B", "\u{e9}", "a.b", "_"] {
            File::create(t.path().join(n)).unwrap();
        }
        std::fs::create_dir(t.path().join("Z")).unwrap();
        let dir = File::open(t.path()).unwrap();
        let listed = read_dir_sorted(dir.as_fd()).unwrap();
        let names: Vec<OsString> = listed.iter().map(|(n, _)| n.clone()).collect();
        let expected = ["B", "Z", "_", "a", "a.b", "b", "\u{e9}"];
        assert_eq!(names, expected.map(OsString::from));
        // Where the file system says, the listing tells files and directories apart.
        for (name, hint) in &listed {
            if let Some(hint) = hint {
                let want = if name == "Z" {
                    FileType::Directory
                } else {
                    FileType::Regular
                };
                assert_eq!(*hint, want, "{name:?}");
            }
        }
        // A second listing through the same descriptor sees the same.
        assert_eq!(read_dir_sorted(dir.as_fd()).unwrap().len(), 7);
    }

    #[test]
    fn times_before_1970_keep_the_pxar_normalisation() {
        assert_eq!(
            time(-2, 500_000_000),
            Mtime {
                secs: -2,
                nanos: 500_000_000
            }
        );
        assert_eq!(time(5, 7), Mtime { secs: 5, nanos: 7 });
    }
}
