//! The Restorer's safety rules: hostile names and hardlink targets are refused, existing
//! entries are never followed or written through, nothing lands outside the target.

mod common;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, FileTypeExt, MetadataExt};
use std::path::Path;

use stowage_archive::FileType;
use stowage_fs::{RestoreError, RestoreOptions, Restorer};
use stowage_types::ErrorClass;

use common::{meta, tempdir};

fn restorer(target: &Path, overwrite: bool) -> Restorer {
    Restorer::open(target, RestoreOptions { overwrite }).unwrap()
}

fn write_file(r: &mut Restorer, name: &str, content: &[u8]) -> Result<(), RestoreError> {
    let m = meta(FileType::Regular, 0o644);
    let mut w = r.create_file(OsStr::new(name), &m, content.len() as u64)?;
    w.put(content)?;
    w.finish()
}

/// Every file below `dir`, as relative paths.
fn listing(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        out.push(e.file_name().to_string_lossy().into_owned());
        if e.file_type().unwrap().is_dir() {
            let sub = listing(&e.path());
            out.extend(
                sub.into_iter()
                    .map(|s| format!("{}/{s}", e.file_name().to_string_lossy())),
            );
        }
    }
    out.sort();
    out
}

#[test]
fn bad_names_are_refused_by_every_creator() {
    let tmp = tempdir();
    let mut r = restorer(tmp.path(), true);
    let file = meta(FileType::Regular, 0o644);
    let dir = meta(FileType::Directory, 0o755);
    let link = meta(FileType::Symlink, 0o777);
    let fifo = meta(FileType::Fifo, 0o644);
    for name in [&b".."[..], b".", b"a/b", b"", b"/abs", b"a\0b"] {
        let name = OsStr::from_bytes(name);
        let errors = [
            r.enter_dir(name, &dir).unwrap_err(),
            r.create_file(name, &file, 0).map(drop).unwrap_err(),
            r.symlink(name, &link, b"x").unwrap_err(),
            r.fifo(name, &fifo).unwrap_err(),
            r.hardlink(name, b"x").unwrap_err(),
        ];
        for e in errors {
            assert!(matches!(e, RestoreError::BadName { .. }), "{name:?}: {e}");
            assert_eq!(e.class(), ErrorClass::Verification);
        }
    }
    assert!(listing(tmp.path()).is_empty(), "{:?}", listing(tmp.path()));
}

#[test]
fn hardlink_targets_cannot_escape() {
    let tmp = tempdir();
    let (target, outside) = (tmp.path().join("t"), tmp.path().join("outside"));
    fs::create_dir_all(target.join("d")).unwrap();
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("secret"), b"s").unwrap();
    symlink(&outside, target.join("esc")).unwrap();
    let mut r = restorer(&target, false);
    for bad in [
        &b"../../etc/passwd"[..],
        b"/etc/passwd",
        b"d/../../outside/secret",
        b"./d",
        b"",
        b"d//x",
        b"esc/secret",
    ] {
        let e = r.hardlink(OsStr::new("l"), bad).unwrap_err();
        assert!(
            matches!(e, RestoreError::BadLinkTarget { .. }),
            "{bad:?}: {e}"
        );
        assert!(e.to_string().starts_with("l: hardlink target"), "{e}");
    }
    assert!(!target.join("l").exists());
    assert_eq!(fs::metadata(outside.join("secret")).unwrap().nlink(), 1);
}

#[test]
fn hardlinks_resolve_inside_the_target() {
    let tmp = tempdir();
    let mut r = restorer(tmp.path(), false);
    let dir = meta(FileType::Directory, 0o755);
    r.enter_dir(OsStr::new("a"), &dir).unwrap();
    write_file(&mut r, "f", b"data").unwrap();
    r.leave_dir().unwrap();
    r.enter_dir(OsStr::new("b"), &dir).unwrap();
    r.hardlink(OsStr::new("g"), b"a/f").unwrap();
    r.leave_dir().unwrap();
    r.finish(None).unwrap();
    let (f, g) = (tmp.path().join("a/f"), tmp.path().join("b/g"));
    assert_eq!(
        fs::metadata(f).unwrap().ino(),
        fs::metadata(g).unwrap().ino()
    );
}

#[test]
fn overwrite_never_follows_a_symlink_at_the_target() {
    let tmp = tempdir();
    let (target, outside) = (tmp.path().join("t"), tmp.path().join("outside"));
    fs::create_dir(&target).unwrap();
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("victim"), b"original").unwrap();
    symlink(outside.join("victim"), target.join("evil")).unwrap();
    symlink(outside.join("new"), target.join("dangling")).unwrap();
    symlink(&outside, target.join("evil_dir")).unwrap();

    let mut r = restorer(&target, true);
    write_file(&mut r, "evil", b"pwned").unwrap();
    write_file(&mut r, "dangling", b"pwned").unwrap();
    r.enter_dir(OsStr::new("evil_dir"), &meta(FileType::Directory, 0o755))
        .unwrap();
    write_file(&mut r, "victim", b"pwned").unwrap();
    r.leave_dir().unwrap();
    r.finish(None).unwrap();

    assert_eq!(fs::read(target.join("evil")).unwrap(), b"pwned");
    assert!(fs::symlink_metadata(target.join("evil")).unwrap().is_file());
    assert!(fs::symlink_metadata(target.join("evil_dir"))
        .unwrap()
        .is_dir());
    assert_eq!(fs::read(outside.join("victim")).unwrap(), b"original");
    assert_eq!(listing(&outside), ["victim"], "nothing written outside");
}

#[test]
fn special_entries_replace_symlinks_without_following_them() {
    let tmp = tempdir();
    let (target, outside) = (tmp.path().join("t"), tmp.path().join("outside"));
    fs::create_dir(&target).unwrap();
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("victim"), b"original").unwrap();
    for name in ["s", "p", "l"] {
        symlink(outside.join("victim"), target.join(name)).unwrap();
    }
    let mut r = restorer(&target, true);
    r.symlink(
        OsStr::new("s"),
        &meta(FileType::Symlink, 0o777),
        b"elsewhere",
    )
    .unwrap();
    r.fifo(OsStr::new("p"), &meta(FileType::Fifo, 0o600))
        .unwrap();
    write_file(&mut r, "f", b"x").unwrap();
    r.hardlink(OsStr::new("l"), b"f").unwrap();
    r.finish(None).unwrap();
    assert_eq!(
        fs::read_link(target.join("s")).unwrap(),
        Path::new("elsewhere")
    );
    assert!(fs::symlink_metadata(target.join("p"))
        .unwrap()
        .file_type()
        .is_fifo());
    assert_eq!(fs::read(target.join("l")).unwrap(), b"x");
    let victim = fs::metadata(outside.join("victim")).unwrap();
    assert_eq!((victim.nlink(), victim.mode() & 0o7777), (1, 0o644));
    assert_eq!(fs::read(outside.join("victim")).unwrap(), b"original");
}

#[test]
fn existing_entries_need_overwrite() {
    let tmp = tempdir();
    fs::write(tmp.path().join("f"), b"old").unwrap();
    fs::create_dir(tmp.path().join("d")).unwrap();
    let mut r = restorer(tmp.path(), false);
    let e = write_file(&mut r, "f", b"new").unwrap_err();
    assert_eq!(e.to_string(), "f: exists; pass --overwrite to replace it");
    assert_eq!(e.class(), ErrorClass::Target);
    let e = r
        .enter_dir(OsStr::new("d"), &meta(FileType::Directory, 0o755))
        .unwrap_err();
    assert!(matches!(e, RestoreError::Exists { .. }), "{e}");
    assert_eq!(fs::read(tmp.path().join("f")).unwrap(), b"old");

    // With overwrite a directory is merged into, but never replaced by a file.
    let mut r = restorer(tmp.path(), true);
    let e = write_file(&mut r, "d", b"new").unwrap_err();
    assert!(matches!(e, RestoreError::IsDirectory { .. }), "{e}");
    r.enter_dir(OsStr::new("d"), &meta(FileType::Directory, 0o755))
        .unwrap();
    write_file(&mut r, "inner", b"1").unwrap();
    let e = write_file(&mut r, "inner", b"2").map(drop);
    assert!(
        e.is_ok(),
        "overwrite replaces a file written earlier: {e:?}"
    );
    r.leave_dir().unwrap();
    assert_eq!(fs::read(tmp.path().join("d/inner")).unwrap(), b"2");
}

#[test]
fn overwriting_a_hardlinked_file_leaves_its_other_link_alone() {
    let tmp = tempdir();
    fs::write(tmp.path().join("a"), b"old").unwrap();
    fs::hard_link(tmp.path().join("a"), tmp.path().join("b")).unwrap();
    let mut r = restorer(tmp.path(), true);
    write_file(&mut r, "a", b"new").unwrap();
    assert_eq!(fs::read(tmp.path().join("a")).unwrap(), b"new");
    assert_eq!(fs::read(tmp.path().join("b")).unwrap(), b"old");
}

#[test]
fn size_and_nesting_mistakes_are_errors() {
    let tmp = tempdir();
    let mut r = restorer(tmp.path(), false);
    let m = meta(FileType::Regular, 0o644);
    let mut w = r.create_file(OsStr::new("short"), &m, 10).unwrap();
    w.put(b"abc").unwrap();
    let e = w.finish().unwrap_err();
    assert!(
        matches!(
            e,
            RestoreError::SizeMismatch {
                expected: 10,
                actual: 3,
                ..
            }
        ),
        "{e}"
    );
    let mut w = r.create_file(OsStr::new("long"), &m, 2).unwrap();
    assert!(w.put(b"abc").is_err(), "more content than announced");
    drop(w);
    let e = r.device(OsStr::new("dev"), &m, 1, 3).unwrap_err();
    assert!(matches!(e, RestoreError::Invalid { .. }), "{e}");
    assert!(matches!(
        r.leave_dir(),
        Err(RestoreError::Unbalanced { .. })
    ));
    r.enter_dir(OsStr::new("d"), &meta(FileType::Directory, 0o755))
        .unwrap();
    assert_eq!(r.current_path(), Path::new("d"));
    let e = r.finish(None).unwrap_err();
    assert!(matches!(e, RestoreError::Unbalanced { .. }), "{e}");
}

#[test]
fn errors_name_the_path_below_the_target() {
    let tmp = tempdir();
    let mut r = restorer(tmp.path(), false);
    r.enter_dir(OsStr::new("a"), &meta(FileType::Directory, 0o755))
        .unwrap();
    write_file(&mut r, "f", b"1").unwrap();
    let e = write_file(&mut r, "f", b"1").unwrap_err();
    assert_eq!(e.path(), Path::new("a/f"));
    let e = r
        .enter_dir(OsStr::new(".."), &meta(FileType::Directory, 0o755))
        .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("a/..: the archive holds an invalid name"),
        "{e}"
    );
}
