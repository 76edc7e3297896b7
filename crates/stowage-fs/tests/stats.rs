//! What the Restorer skips without failing, and counts: owners when not root, attributes the
//! target or the entry type cannot hold, attributes pxar does not archive.

mod common;

use std::ffi::OsStr;
use std::os::unix::fs::MetadataExt;

use stowage_archive::{FileType, Xattr};
use stowage_fs::{RestoreOptions, Restorer};

use common::{is_root, meta, tempdir};

#[test]
fn owner_is_set_as_root_and_counted_otherwise() {
    let tmp = tempdir();
    let mut r = Restorer::open(tmp.path(), RestoreOptions::default()).unwrap();
    let mut m = meta(FileType::Regular, 0o644);
    (m.stat.uid, m.stat.gid) = (1234, 5678);
    r.create_file(OsStr::new("f"), &m, 0)
        .unwrap()
        .finish()
        .unwrap();
    let stats = r.finish(None).unwrap();
    let owner = std::fs::metadata(tmp.path().join("f")).unwrap();
    if is_root() {
        assert_eq!((owner.uid(), owner.gid()), (1234, 5678));
        assert_eq!(stats.owners_skipped, 0);
    } else {
        assert_eq!(owner.uid(), nix::unistd::geteuid().as_raw());
        assert_eq!(stats.owners_skipped, 1);
    }
}

#[test]
fn attributes_that_cannot_be_set_are_counted() {
    let tmp = tempdir();
    let mut r = Restorer::open(tmp.path(), RestoreOptions::default()).unwrap();
    let mut file = meta(FileType::Regular, 0o644);
    file.xattrs
        .push(Xattr::new("security.selinux", "system_u:object_r:etc_t:s0"));
    let mut link = meta(FileType::Symlink, 0o777);
    // user.* attributes are not allowed on symlinks.
    link.xattrs.push(Xattr::new("user.on-symlink", "x"));
    r.create_file(OsStr::new("f"), &file, 0)
        .unwrap()
        .finish()
        .unwrap();
    r.symlink(OsStr::new("l"), &link, b"f").unwrap();
    let stats = r.finish(None).unwrap();
    assert_eq!(stats.xattrs_skipped, 2, "{stats:?}");
}
