//! Split archives and metadata change detection through the real binary: unchanged files are
//! re-referenced (not read, not stored again), changed ones are read, and everything restores
//! byte for byte from the split archive.

mod common;

use std::fs;
use std::path::Path;

use common::*;

const MODE: &str = "--change-detection-mode=metadata";

fn write_tree(root: &Path) {
    for d in 0..4 {
        let dir = root.join(format!("d{d}"));
        fs::create_dir_all(&dir).unwrap();
        for f in 0..40u64 {
            let size = 500 + (f * 997 + d * 31) % 20_000;
            let data: Vec<u8> = (0..size)
                .map(|i| ((i * 7 + f * 13 + d) % 251) as u8)
                .collect();
            fs::write(dir.join(format!("f{f:02}.dat")), data).unwrap();
        }
    }
    fs::write(root.join("big.bin"), random_bytes(77, 3 << 20)).unwrap();
}

fn backup(store: &Store, src: &Path, time: i64) -> serde_json::Value {
    let time = format!("--backup-time={time}");
    backup_json(store, src, "cd", &[time.as_str()])["archives"][0].clone()
}

/// A metadata-mode backup of `src` as `root.pxar` into group `host/<id>`: its JSON report.
fn backup_json(store: &Store, src: &Path, id: &str, extra: &[&str]) -> serde_json::Value {
    let spec = format!("root.pxar:{}", src.display());
    let id = format!("--backup-id={id}");
    let mut args = vec![
        "--output-format=json",
        "-q",
        "backup",
        spec.as_str(),
        "--backup-type=host",
        id.as_str(),
        MODE,
    ];
    args.extend_from_slice(extra);
    let run = store.run(args);
    run.ok();
    run.json()
}

#[test]
fn metadata_mode_reuses_unchanged_files_and_restores_identically() {
    let store = Store::new();
    let src = store.work.join("src");
    write_tree(&src);

    let first = backup(&store, &src, 1_000_000);
    assert_eq!(first["tree"]["reused"], 0);
    assert_eq!(first["tree"]["files"], 161);

    // Nothing changed: every file is re-referenced and nothing new is stored but metadata (the
    // metadata stream, and the 16-byte stream markers that now stand in chunks of their own).
    let chunks_before = store.chunk_count();
    let second = backup(&store, &src, 1_000_100);
    assert_eq!(second["tree"]["reused"], 161);
    assert!(
        second["written_bytes"].as_u64().unwrap() < 64 * 1024,
        "{second}"
    );
    assert!(store.chunk_count() <= chunks_before + 4, "{second}");

    // One small file changes: only it is read again.
    let changed = src.join("d2/f05.dat");
    let mut data = fs::read(&changed).unwrap();
    data[10] ^= 0xff;
    fs::write(&changed, &data).unwrap();
    let third = backup(&store, &src, 1_000_200);
    assert_eq!(third["tree"]["reused"], 160);
    assert!(
        third["written_bytes"].as_u64().unwrap() < 256 * 1024,
        "{third}"
    );

    // The snapshot holds a split archive, and it restores byte for byte.
    let files = store
        .run(["--output-format=json", "files", "host/cd"])
        .json();
    let names: Vec<&str> = files
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["filename"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"root.mpxar.didx") && names.contains(&"root.ppxar.didx"),
        "{names:?}"
    );
    let out = store.work.join("out");
    let run = store.run([
        "-q",
        "restore",
        "host/cd",
        "root.pxar",
        out.to_str().unwrap(),
    ]);
    run.ok();
    for d in 0..4 {
        for f in 0..40 {
            let rel = format!("d{d}/f{f:02}.dat");
            assert_eq!(
                fs::read(out.join(&rel)).unwrap(),
                fs::read(src.join(&rel)).unwrap(),
                "{rel}"
            );
        }
    }
    assert_eq!(
        fs::read(out.join("big.bin")).unwrap(),
        fs::read(src.join("big.bin")).unwrap()
    );

    // Single files come out of the payload stream too, old snapshots included.
    let run = store.run(["cat", "host/cd", "root.pxar", "/d2/f05.dat"]);
    run.ok();
    assert_eq!(run.stdout, data);
    let run = store.run([
        "cat",
        "host/cd/1970-01-12T13:46:40Z",
        "root.pxar",
        "/d2/f05.dat",
    ]);
    run.ok();
    assert_ne!(run.stdout, data);
    assert_eq!(run.stdout.len(), data.len());

    let run = store.run(["verify", "--all"]);
    run.ok();
}

#[test]
fn data_mode_writes_split_archives_without_reuse() {
    let store = Store::new();
    let src = store.work.join("src");
    write_tree(&src);
    let spec = format!("root.pxar:{}", src.display());
    for time in ["--backup-time=2000000", "--backup-time=2000100"] {
        let run = store.run([
            "--output-format=json",
            "-q",
            "backup",
            spec.as_str(),
            "--backup-type=host",
            "--backup-id=dm",
            "--change-detection-mode=data",
            time,
        ]);
        run.ok();
        assert_eq!(run.json()["archives"][0]["tree"]["reused"], 0);
    }
    let out = store.work.join("out");
    store
        .run([
            "-q",
            "restore",
            "host/dm",
            "root.pxar",
            out.to_str().unwrap(),
        ])
        .ok();
    assert_eq!(
        fs::read(out.join("big.bin")).unwrap(),
        fs::read(src.join("big.bin")).unwrap()
    );
}

/// With real backup times (the previous snapshot's time is when an unchanged file's status must
/// predate): an unchanged file is re-referenced whether or not it has extended attributes, and
/// an attribute set after the previous snapshot is seen (it moves the file's ctime on).
#[test]
fn attributes_of_unchanged_files_are_kept_and_new_ones_are_seen() {
    let store = Store::new();
    let src = store.work.join("xattr-src");
    fs::create_dir_all(&src).unwrap();
    for name in ["plain", "tagged", "later"] {
        fs::write(src.join(name), name.repeat(1000)).unwrap();
    }
    if common::tree::lset(&src.join("tagged"), "user.a", b"1").is_err() {
        eprintln!("skipped: this file system takes no user.* attributes");
        return;
    }
    let backup = || backup_json(&store, &src, "x", &[]);
    backup();
    let second = backup();
    assert_eq!(second["archives"][0]["tree"]["reused"], 3, "{second}");
    common::tree::lset(&src.join("later"), "user.b", b"2").unwrap();
    let third = backup();
    assert_eq!(third["archives"][0]["tree"]["reused"], 2, "{third}");
    let out = store.file("xattr-restored");
    let snapshot = third["snapshot"].as_str().unwrap();
    store
        .run(["restore", snapshot, "root.pxar", out.to_str().unwrap()])
        .ok();
    let attrs = |name: &str| common::tree::lxattrs(&out.join(name));
    assert_eq!(
        attrs("tagged").get("user.a").map(Vec::as_slice),
        Some(&b"1"[..])
    );
    assert_eq!(
        attrs("later").get("user.b").map(Vec::as_slice),
        Some(&b"2"[..])
    );
    assert!(attrs("plain").is_empty());
}

/// Unchanged directories and symlinks take what the previous snapshot recorded of them (their
/// attributes, a symlink's target); changed ones are read again.
#[test]
fn unchanged_directories_and_symlinks_keep_their_metadata_and_changes_are_seen() {
    use std::os::unix::fs::{symlink, PermissionsExt};
    let store = Store::new();
    let src = store.work.join("dir-src");
    fs::create_dir_all(src.join("d/inner")).unwrap();
    fs::write(src.join("a"), b"a").unwrap();
    fs::write(src.join("b"), b"b").unwrap();
    symlink("a", src.join("l")).unwrap();
    if common::tree::lset(&src.join("d"), "user.d", b"1").is_err() {
        eprintln!("skipped: this file system takes no user.* attributes");
        return;
    }
    let backup = || {
        backup_json(&store, &src, "dirs", &[])["snapshot"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let restored = |snapshot: &str, name: &str| {
        let out = store.file(name);
        store
            .run(["restore", snapshot, "root.pxar", out.to_str().unwrap()])
            .ok();
        out
    };
    backup();
    let unchanged = restored(&backup(), "unchanged");
    assert_eq!(
        common::tree::lxattrs(&unchanged.join("d"))
            .get("user.d")
            .map(Vec::as_slice),
        Some(&b"1"[..])
    );
    assert_eq!(fs::read_link(unchanged.join("l")).unwrap(), Path::new("a"));

    fs::set_permissions(src.join("d"), fs::Permissions::from_mode(0o700)).unwrap();
    common::tree::lset(&src.join("d/inner"), "user.i", b"2").unwrap();
    fs::remove_file(src.join("l")).unwrap();
    symlink("b", src.join("l")).unwrap();
    let changed = restored(&backup(), "changed");
    let mode = fs::metadata(changed.join("d"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
    assert_eq!(
        common::tree::lxattrs(&changed.join("d/inner"))
            .get("user.i")
            .map(Vec::as_slice),
        Some(&b"2"[..])
    );
    assert_eq!(fs::read_link(changed.join("l")).unwrap(), Path::new("b"));
}
