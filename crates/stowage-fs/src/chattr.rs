//! Inode flags (`chattr`/`lsattr`: append-only, immutable, no-dump, no-CoW, ...) as pxar keeps
//! them: the kernel's `FS_*_FL` bits mapped to pxar's own flag bits in the ENTRY item.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// `FS_IOC_GETFLAGS` and `FS_IOC_SETFLAGS` (`_IOR`/`_IOW('f', 1, long)`; the kernel reads and
/// writes an int whatever the size in the number).
const FS_IOC_GETFLAGS: libc::c_ulong = 0x8008_6601;
const FS_IOC_SETFLAGS: libc::c_ulong = 0x4008_6602;

/// (kernel `FS_*_FL` bit, pxar flag bit).
const MAP: [(u32, u64); 10] = [
    (0x0000_0020, 0x0001_0000), // FS_APPEND_FL       -> APPEND
    (0x0000_0080, 0x0002_0000), // FS_NOATIME_FL      -> NOATIME
    (0x0000_0004, 0x0004_0000), // FS_COMPR_FL        -> COMPR
    (0x0080_0000, 0x0008_0000), // FS_NOCOW_FL        -> NOCOW
    (0x0000_0040, 0x0010_0000), // FS_NODUMP_FL       -> NODUMP
    (0x0001_0000, 0x0020_0000), // FS_DIRSYNC_FL      -> DIRSYNC
    (0x0000_0010, 0x0040_0000), // FS_IMMUTABLE_FL    -> IMMUTABLE
    (0x0000_0008, 0x0080_0000), // FS_SYNC_FL         -> SYNC
    (0x0000_0400, 0x0100_0000), // FS_NOCOMP_FL       -> NOCOMP
    (0x2000_0000, 0x0200_0000), // FS_PROJINHERIT_FL  -> PROJINHERIT
];

/// The pxar bits of the kernel flags `fs` (bits pxar has no place for are left out).
pub fn to_pxar(fs: u32) -> u64 {
    MAP.iter()
        .filter(|(k, _)| fs & k != 0)
        .fold(0, |acc, (_, p)| acc | p)
}

/// The kernel flags of the pxar bits `pxar`.
pub fn from_pxar(pxar: u64) -> u32 {
    MAP.iter()
        .filter(|(_, p)| pxar & p != 0)
        .fold(0, |acc, (k, _)| acc | k)
}

/// The pxar bits of the flags after which no hardlink to the file can be made (immutable,
/// append-only): a restore sets them last of all.
pub const BLOCKS_LINKS: u64 = 0x0040_0000 | 0x0001_0000;

/// The pxar bits of the flags a file system only takes on an empty file (no copy-on-write,
/// compression on or off): a restore sets them right after creating the file.
pub const ON_EMPTY_FILE: u64 = 0x0008_0000 | 0x0004_0000 | 0x0100_0000;

/// The kernel flags `statx` reports for every file system (`STATX_ATTR_COMPRESSED`,
/// `_IMMUTABLE`, `_APPEND`, `_NODUMP` share the `FS_*_FL` values); the others need the ioctl.
pub const STATX_VISIBLE: u32 = 0x04 | 0x10 | 0x20 | 0x40;

/// The flags of an open regular file or directory, in pxar bits; 0 where the file system has
/// none.
pub fn read(fd: BorrowedFd<'_>) -> io::Result<u64> {
    let mut flags: libc::c_int = 0;
    // SAFETY: the ioctl writes one int to the pointer, which is valid.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), FS_IOC_GETFLAGS, &mut flags) };
    if r < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENOTTY | libc::EOPNOTSUPP | libc::EINVAL | libc::ENOSYS) => Ok(0),
            _ => Err(e),
        };
    }
    Ok(to_pxar(flags as u32))
}

/// Sets the pxar flags `pxar` on an open regular file or directory: the flags pxar knows are
/// made exactly those, others the inode has are kept.
pub fn set(fd: BorrowedFd<'_>, pxar: u64) -> io::Result<()> {
    let mut flags: libc::c_int = 0;
    // SAFETY: as in `read`.
    if unsafe { libc::ioctl(fd.as_raw_fd(), FS_IOC_GETFLAGS, &mut flags) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let known = from_pxar(u64::MAX) as libc::c_int;
    let wanted = (flags & !known) | from_pxar(pxar) as libc::c_int;
    if wanted == flags {
        return Ok(());
    }
    // SAFETY: the ioctl reads one int from the pointer, which is valid.
    if unsafe { libc::ioctl(fd.as_raw_fd(), FS_IOC_SETFLAGS, &wanted) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_flag_maps_both_ways() {
        for (k, p) in MAP {
            assert_eq!(to_pxar(k), p);
            assert_eq!(from_pxar(p), k);
        }
        let all_k = MAP.iter().fold(0, |a, (k, _)| a | k);
        let all_p = MAP.iter().fold(0, |a, (_, p)| a | p);
        assert_eq!(
            to_pxar(all_k | 0x0008_0000),
            all_p,
            "FS_EXTENT_FL has no pxar bit"
        );
        assert_eq!(
            from_pxar(all_p | 0x2000),
            all_k,
            "FAT bits are not chattr flags"
        );
    }
}
