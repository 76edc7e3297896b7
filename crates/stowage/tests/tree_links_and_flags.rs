//! File-tree archives: hardlinks in a partial restore, and inode flags (chattr) through backup,
//! change detection and restore.

mod common;

use std::fs;
use std::path::Path;

use common::tree::*;
use common::*;

#[test]
fn restore_include_of_a_hardlink_restores_its_content() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    for (id, mode) in [
        ("hl", &[][..]),
        ("hls", &["--change-detection-mode", "data"][..]),
    ] {
        let store = Store::new();
        let src = store.file("src");
        put(&src.join("hard1"), b"hard\n");
        fs::set_permissions(src.join("hard1"), fs::Permissions::from_mode(0o640)).unwrap();
        fs::create_dir(src.join("sub")).unwrap();
        fs::hard_link(src.join("hard1"), src.join("sub/hard2")).unwrap();
        fs::hard_link(src.join("hard1"), src.join("sub/hard3")).unwrap();
        let mtime = fs::metadata(src.join("hard1")).unwrap().mtime();
        store.backup_tree_ok(&src, id, T1, mode);
        let dst = store.file("dst");
        store
            .restore_tree(&format!("host/{id}"), &dst, &["--include", "/sub/hard*"])
            .ok();
        assert!(
            !dst.join("hard1").exists(),
            "{id}: the first name was not asked for"
        );
        assert_eq!(fs::read(dst.join("sub/hard2")).unwrap(), b"hard\n", "{id}");
        let (two, three) = (
            fs::metadata(dst.join("sub/hard2")).unwrap(),
            fs::metadata(dst.join("sub/hard3")).unwrap(),
        );
        assert_eq!(
            two.ino(),
            three.ino(),
            "{id}: the later names link to the restored one"
        );
        assert_eq!((two.mode() & 0o7777, two.mtime()), (0o640, mtime), "{id}");
    }
}

/// FS_IOC_GETFLAGS / FS_IOC_SETFLAGS on a path; `None` where the file system has no flags.
fn inode_flags(path: &Path, set: Option<i32>) -> Option<i32> {
    use std::os::fd::AsRawFd;
    let file = fs::File::open(path).unwrap();
    let mut flags: i32 = 0;
    // SAFETY: the ioctls read or write one int through a valid pointer.
    unsafe {
        if libc::ioctl(file.as_raw_fd(), 0x8008_6601, &mut flags) < 0 {
            return None;
        }
        if let Some(bits) = set {
            let wanted = flags | bits;
            if libc::ioctl(file.as_raw_fd(), 0x4008_6602, &wanted) < 0 {
                return None;
            }
            flags = wanted;
        }
    }
    Some(flags)
}

#[test]
fn chattr_flags_survive_backup_and_restore() {
    const APPEND: i32 = 0x20;
    const NODUMP: i32 = 0x40;
    const NOATIME: i32 = 0x80;
    let store = Store::new();
    let src = store.file("src");
    for name in ["nodump", "noatime", "append", "plain"] {
        put(&src.join(name), name.as_bytes());
    }
    if inode_flags(&src.join("nodump"), Some(NODUMP)).is_none() {
        return eprintln!("skipped: this file system keeps no inode flags");
    }
    inode_flags(&src.join("noatime"), Some(NOATIME)).unwrap();
    let mut wanted = vec![("nodump", NODUMP), ("noatime", NOATIME), ("plain", 0)];
    if is_root() {
        // A second name too: no link can be made once the flag is set, so it comes last.
        fs::hard_link(src.join("append"), src.join("append-link")).unwrap();
        inode_flags(&src.join("append"), Some(APPEND)).unwrap();
        wanted.push(("append", APPEND));
        wanted.push(("append-link", APPEND));
    }
    // Legacy, then metadata mode twice: the re-backup only stats the files, and the flag that
    // statx does not show (noatime) makes it open the file, find it unchanged and reuse it.
    let runs = [
        ("fl", T1, &[][..]),
        ("flm", T1, &["--change-detection-mode", "metadata"][..]),
    ];
    for (id, time, mode) in runs {
        store.backup_tree_ok(&src, id, time, mode);
    }
    let again = store.backup_tree_ok(&src, "flm", T2, &["--change-detection-mode", "metadata"]);
    // The four files (a hardlink's second name is no file of its own).
    assert_eq!(again["archives"][0]["tree"]["reused"], 4, "{again}");
    for snapshot in [host_snap("fl", T1), host_snap("flm", T2)] {
        let dst = store.file(&format!("dst-{}", unique()));
        store.restore_tree(&snapshot, &dst, &[]).ok();
        for (name, bits) in &wanted {
            let got = inode_flags(&dst.join(name), None).unwrap();
            assert_eq!(
                got & (APPEND | NODUMP | NOATIME),
                *bits,
                "{snapshot} {name}"
            );
        }
        if is_root() {
            clear_append(&dst.join("append"));
        }
    }
    if is_root() {
        clear_append(&src.join("append"));
    }
}

fn clear_append(path: &Path) {
    use std::os::fd::AsRawFd;
    let file = fs::File::open(path).unwrap();
    let none: i32 = 0;
    // SAFETY: the ioctl reads one int through a valid pointer.
    unsafe { libc::ioctl(file.as_raw_fd(), 0x4008_6602, &none) };
}
