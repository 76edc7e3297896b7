//! Extended attributes read and written through file descriptors, never through paths that
//! could be swapped for a symlink.
//!
//! Files and directories are opened normally and use `flistxattr`/`fgetxattr`/`fsetxattr`.
//! Symlinks, devices, fifos and sockets cannot (or must not) be opened for I/O; they are opened
//! with `O_PATH | O_NOFOLLOW` and reached as `/proc/self/fd/N` with the *following* variants
//! (`listxattr`, `getxattr`, `setxattr`): following that magic link lands on the pinned inode
//! itself, even a symlink, and goes no further. (`lgetxattr` would instead read the attributes
//! of the `/proc` link.)

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use libc::{c_char, c_void, ssize_t};

/// Name of the file-capability attribute (pxar FCAPS).
pub const CAPABILITY_XATTR: &[u8] = b"security.capability";

/// How an inode's extended attributes are reached.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Handle<'a> {
    /// A file or directory opened for I/O.
    Fd(BorrowedFd<'a>),
    /// An `O_PATH` descriptor, reached as `/proc/self/fd/N`.
    Path(BorrowedFd<'a>),
}

/// Whether pxar archives an extended attribute of this name (as upstream does): `user.*`,
/// `trusted.*` and Samba's `security.NTACL`. ACLs and file capabilities have their own items;
/// other `security.*` (SELinux labels) and `system.*` attributes belong to the host.
pub fn is_archived_xattr(name: &[u8]) -> bool {
    (1..=255).contains(&name.len())
        && (name.starts_with(b"user.")
            || name.starts_with(b"trusted.")
            || name == b"security.NTACL")
}

/// Whether an error means "this file system (or this kind of inode) has no such attributes".
pub(crate) fn is_unsupported(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EOPNOTSUPP)
}

fn proc_path(fd: BorrowedFd<'_>) -> CString {
    CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).expect("no NUL in a number")
}

fn check(r: ssize_t) -> io::Result<usize> {
    usize::try_from(r).map_err(|_| io::Error::last_os_error())
}

fn raw_list(h: Handle<'_>, buf: &mut [u8]) -> io::Result<usize> {
    let (ptr, len) = (buf.as_mut_ptr().cast::<c_char>(), buf.len());
    // SAFETY: `buf` is valid for `len` bytes; the fd and path outlive the call.
    check(unsafe {
        match h {
            Handle::Fd(fd) => libc::flistxattr(fd.as_raw_fd(), ptr, len),
            Handle::Path(fd) => libc::listxattr(proc_path(fd).as_ptr(), ptr, len),
        }
    })
}

fn raw_get(h: Handle<'_>, name: &CStr, buf: &mut [u8]) -> io::Result<usize> {
    let (ptr, len) = (buf.as_mut_ptr().cast::<c_void>(), buf.len());
    // SAFETY: as in `raw_list`; `name` is NUL-terminated.
    check(unsafe {
        match h {
            Handle::Fd(fd) => libc::fgetxattr(fd.as_raw_fd(), name.as_ptr(), ptr, len),
            Handle::Path(fd) => libc::getxattr(proc_path(fd).as_ptr(), name.as_ptr(), ptr, len),
        }
    })
}

/// Bytes tried first: most attribute lists and values fit, so one call reads them.
const FIRST_TRY: usize = 1024;

/// Calls `read` with a buffer that fits the value: first a small one (one system call for the
/// common case), then, on ERANGE, one sized by a size query, growing until the value fits (it
/// may grow between the size query and the read).
fn read_growing(mut read: impl FnMut(&mut [u8]) -> io::Result<usize>) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; FIRST_TRY];
    match read(&mut buf) {
        Ok(n) => {
            buf.truncate(n);
            return Ok(buf);
        }
        Err(e) if e.raw_os_error() == Some(libc::ERANGE) => {}
        Err(e) => return Err(e),
    }
    loop {
        let size = read(&mut [])?;
        let mut buf = vec![0u8; size];
        match read(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(e) if e.raw_os_error() == Some(libc::ERANGE) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// The attribute names of an inode, in the order the kernel lists them.
pub(crate) fn list(h: Handle<'_>) -> io::Result<Vec<Vec<u8>>> {
    let raw = read_growing(|buf| raw_list(h, buf))?;
    Ok(raw
        .split(|&b| b == 0)
        .filter(|n| !n.is_empty())
        .map(<[u8]>::to_vec)
        .collect())
}

/// The value of one attribute, or `None` if it does not exist (any more).
pub(crate) fn get(h: Handle<'_>, name: &[u8]) -> io::Result<Option<Vec<u8>>> {
    let name = CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    match read_growing(|buf| raw_get(h, &name, buf)) {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.raw_os_error() == Some(libc::ENODATA) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Sets (creates or replaces) one attribute.
pub(crate) fn set(h: Handle<'_>, name: &[u8], value: &[u8]) -> io::Result<()> {
    let name = CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let (ptr, len) = (value.as_ptr().cast::<c_void>(), value.len());
    // SAFETY: `value` is valid for `len` bytes, `name` is NUL-terminated.
    let r = unsafe {
        match h {
            Handle::Fd(fd) => libc::fsetxattr(fd.as_raw_fd(), name.as_ptr(), ptr, len, 0),
            Handle::Path(fd) => libc::setxattr(proc_path(fd).as_ptr(), name.as_ptr(), ptr, len, 0),
        }
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    use nix::fcntl::{openat, OFlag};
    use nix::sys::stat::Mode;

    #[test]
    fn archived_names_follow_upstream() {
        assert!(is_archived_xattr(b"user.x"));
        assert!(is_archived_xattr(b"trusted.overlay.opaque"));
        assert!(is_archived_xattr(b"security.NTACL"));
        assert!(!is_archived_xattr(b"security.selinux"));
        assert!(!is_archived_xattr(b"security.capability"));
        assert!(!is_archived_xattr(b"system.posix_acl_access"));
        assert!(!is_archived_xattr(&[b'u'; 256]));
    }

    #[test]
    fn set_list_get_through_fd_and_o_path() {
        let dir = tempfile::tempdir_in("/dev/shm")
            .or_else(|_| tempfile::tempdir())
            .unwrap();
        let file = std::fs::File::create(dir.path().join("f")).unwrap();
        let h = Handle::Fd(file.as_fd());
        match set(h, b"user.a", b"1") {
            Err(e) if is_unsupported(&e) => return eprintln!("skipped: no user xattrs here"),
            r => r.unwrap(),
        }
        set(h, b"user.big", &[7u8; 3000]).unwrap();
        let names = list(h).unwrap();
        assert!(names.contains(&b"user.a".to_vec()) && names.contains(&b"user.big".to_vec()));
        assert_eq!(get(h, b"user.big").unwrap(), Some(vec![7u8; 3000]));
        assert_eq!(get(h, b"user.none").unwrap(), None);

        let root = std::fs::File::open(dir.path()).unwrap();
        let flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let opath = openat(root.as_fd(), "f", flags, Mode::empty()).unwrap();
        assert_eq!(
            get(Handle::Path(opath.as_fd()), b"user.a").unwrap(),
            Some(b"1".to_vec())
        );
    }
}
