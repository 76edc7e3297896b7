//! Cases 1 to 4: unified tree archives (`root.pxar`) whose content is hostile: names that are not
//! one plain path component, two entries of one name in a directory, hardlinks whose target path
//! is hostile, and item headers declaring huge sizes.

use stowage_archive::{format, AclUser, Xattr};

use super::build::{
    add_file, add_file_with, dir_meta, file_meta, filename_item, link_meta, patch, rename,
    resize_item, splice, tree_case, unified,
};
use super::{Case, HUGE};

// 1. Names that are not one plain path component.
pub(super) fn name_cases() -> Vec<Case> {
    let mut slash = unified(|e| {
        add_file(e, b"axb", b"a file named a/b\n");
    });
    rename(&mut slash, b"axb", b"a/b");
    let mut dot = unified(|e| {
        add_file(e, b"x", b"a file named .\n");
    });
    rename(&mut dot, b"x", b".");
    let mut dotdot = unified(|e| {
        e.create_directory(b"xy", &dir_meta()).unwrap();
        add_file(e, b"escape", b"written beside the target\n");
        e.finish_directory().unwrap();
    });
    rename(&mut dotdot, b"xy", b"..");
    let mut escape = unified(|e| {
        add_file(e, b"xx-escape", b"written beside the target\n");
    });
    rename(&mut escape, b"xx-escape", b"../escape");
    let mut absolute = unified(|e| {
        e.create_directory(b"xetc", &dir_meta()).unwrap();
        add_file(e, b"stowage-hostile-escape", b"written into /etc\n");
        e.finish_directory().unwrap();
    });
    rename(&mut absolute, b"xetc", b"/etc");
    let mut empty = unified(|e| {
        add_file(e, b"x", b"a file with an empty name\n");
    });
    splice(&mut empty, &filename_item(b"x"), &filename_item(b""));
    vec![
        tree_case(
            "name-slash",
            "A file named `a/b` (a FILENAME item containing `/`).",
            slash,
        ),
        tree_case("name-dot", "A file named `.`.", dot),
        tree_case(
            "name-dotdot",
            "A directory named `..` holding a file `escape`: followed, it would land beside the \
             restore target.",
            dotdot,
        ),
        tree_case(
            "name-escape",
            "A file named `../escape`: joined to the target path, it would land beside it.",
            escape,
        ),
        tree_case(
            "name-absolute",
            "A directory named `/etc` holding `stowage-hostile-escape`: joined to a path, it would \
             write into the real /etc.",
            absolute,
        ),
        tree_case(
            "name-empty",
            "A file with an empty name (a FILENAME item of just the NUL).",
            empty,
        ),
    ]
}

// 2. Two entries of the same name in one directory.
pub(super) fn duplicate_cases() -> Vec<Case> {
    let mut link_dir = unified(|e| {
        e.add_symlink(b"d", &link_meta(), b"..").unwrap();
        e.create_directory(b"e", &dir_meta()).unwrap();
        add_file(e, b"escaped", b"through the symlink, beside the target\n");
        e.finish_directory().unwrap();
    });
    rename(&mut link_dir, b"e", b"d");
    let mut dir_file = unified(|e| {
        e.create_directory(b"d", &dir_meta()).unwrap();
        add_file(e, b"inner", b"inside the directory\n");
        e.finish_directory().unwrap();
        add_file(e, b"e", b"a file over the directory\n");
    });
    rename(&mut dir_file, b"e", b"d");
    vec![
        tree_case(
            "dup-symlink-then-dir",
            "A symlink `d` -> `..` followed by a directory `d` holding a file: a restore that \
             reused the existing `d` would write through the symlink, beside the target.",
            link_dir,
        ),
        tree_case(
            "dup-dir-then-file",
            "A directory `d` followed by a regular file `d` in the same directory.",
            dir_file,
        ),
    ]
}

// 3. Hardlinks whose target path is hostile.
pub(super) fn hardlink_cases() -> Vec<Case> {
    let linked = |path: &[u8]| {
        let path = path.to_vec();
        unified(move |e| {
            let file = add_file(e, b"b-file", b"the file the link points at\n");
            e.add_hardlink(b"c-hard", &path, file).unwrap();
        })
    };
    let mut absolute = linked(b"xetc/passwd");
    patch(&mut absolute, b"xetc/passwd\0", b"/etc/passwd\0");
    let mut dotdot = linked(b"ab/escape");
    patch(&mut dotdot, b"ab/escape\0", b"../escape\0");
    let through = unified(|e| {
        e.add_symlink(b"a-link", &link_meta(), b"/etc").unwrap();
        let file = add_file(e, b"b-file", b"the file the link's offset points at\n");
        e.add_hardlink(b"c-hard", b"a-link/passwd", file).unwrap();
    });
    let missing = linked(b"nothere");
    vec![
        tree_case(
            "hardlink-absolute",
            "A hardlink `c-hard` whose target path is `/etc/passwd`.",
            absolute,
        ),
        tree_case(
            "hardlink-dotdot",
            "A hardlink `c-hard` whose target path is `../escape`.",
            dotdot,
        ),
        tree_case(
            "hardlink-through-symlink",
            "A symlink `a-link` -> `/etc` and a hardlink `c-hard` to `a-link/passwd`: resolved \
             naively, the link would be made to /etc/passwd.",
            through,
        ),
        tree_case(
            "hardlink-missing",
            "A hardlink `c-hard` to `nothere`, which is not in the archive (its offset points at \
             `b-file`).",
            missing,
        ),
    ]
}

// 4. Item headers declaring huge sizes.
pub(super) fn huge_item_cases() -> Vec<Case> {
    let content = b"0123456789";
    let mut payload = unified(|e| {
        add_file(e, b"big", content);
    });
    resize_item(
        &mut payload,
        format::PAYLOAD,
        content.len() as u64,
        HUGE + 16,
    );
    let xattr = Xattr::new(b"user.hostile".to_vec(), b"value".to_vec());
    let xattr_len = xattr.to_content().len() as u64;
    let mut with_xattr = file_meta();
    with_xattr.xattrs.push(xattr);
    let mut xattr_archive = unified(|e| {
        add_file_with(e, b"f", &with_xattr, b"xattr\n");
    });
    resize_item(&mut xattr_archive, format::XATTR, xattr_len, HUGE);
    let mut with_acl = file_meta();
    with_acl.acl.users.push(AclUser {
        uid: 1000,
        perms: 6,
    });
    let mut acl_archive = unified(|e| {
        add_file_with(e, b"f", &with_acl, b"acl\n");
    });
    resize_item(&mut acl_archive, format::ACL_USER, 16, HUGE);
    let mut filename = unified(|e| {
        add_file(e, b"f", b"name\n");
    });
    resize_item(&mut filename, format::FILENAME, 2, HUGE);
    let mut goodbye = unified(|e| {
        add_file(e, b"f", b"goodbye\n");
    });
    resize_item(&mut goodbye, format::GOODBYE, 48, HUGE);
    let mut goodbye_item = unified(|e| {
        add_file(e, b"f", b"goodbye item\n");
    });
    // The root's table: the child's item, then the tail; the child's size field.
    let at = goodbye_item.len() - 48 + 16;
    goodbye_item[at..at + 8].copy_from_slice(&HUGE.to_le_bytes());
    vec![
        tree_case(
            "pxar-payload-2p60",
            "A file `big` whose PAYLOAD header declares 2^60 bytes; the archive ends a few bytes \
             later.",
            payload,
        ),
        tree_case(
            "pxar-xattr-huge",
            "A file `f` whose XATTR item header declares 2^60 bytes of content.",
            xattr_archive,
        ),
        tree_case(
            "pxar-acl-huge",
            "A file `f` whose ACL_USER item header declares 2^60 bytes of content.",
            acl_archive,
        ),
        tree_case(
            "pxar-filename-huge",
            "A FILENAME item header declaring a name of 2^60 bytes.",
            filename,
        ),
        tree_case(
            "pxar-goodbye-huge",
            "The root's GOODBYE item header declares a table of 2^60 bytes.",
            goodbye,
        ),
        tree_case(
            "pxar-goodbye-item-huge",
            "The root's goodbye table says its child `f` spans 2^60 bytes.",
            goodbye_item,
        ),
    ]
}
