//! Names a user gives and the targets a restore writes to: archive names a snapshot keeps for
//! itself are refused, backup times outside PBS's range get a clear error, a symlink (even a
//! dangling one) is never replaced without `--overwrite`, and names with control characters
//! print on one line.

mod common;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;

use common::tree::*;
use common::*;

#[test]
fn reserved_archive_names_are_refused_before_anything_is_written() {
    let store = Store::new();
    let file = store.write_file("hostname", b"pve1\n");
    let dir = store.file("tree");
    put(&dir.join("a"), b"a");
    let path = |p: &std::path::Path| p.display().to_string();
    for spec in [
        format!("index.json.blob:{}", path(&file)),
        format!("index.json:{}", path(&file)),
        format!("catalog.pcat1:{}", path(&dir)),
        format!("catalog.pcat1.didx:{}", path(&dir)),
        format!("client.log:{}", path(&file)),
        format!("client.log.blob:{}", path(&file)),
        format!("rsa-encrypted.key:{}", path(&file)),
        format!("root.mpxar:{}", path(&dir)),
        format!("root.ppxar:{}", path(&dir)),
        format!("disk.img.fidx:{}", path(&file)),
        format!("owner:{}", path(&file)),
        format!(".lock:{}", path(&file)),
        format!("disk.img.tmp_fidx:{}", path(&file)),
    ] {
        let run = store.run([
            "backup",
            spec.as_str(),
            "--backup-type",
            "vm",
            "--backup-id",
            "1",
        ]);
        run.expect_code(2);
        let line = run.single_error_line();
        assert!(line.contains("archive name"), "{spec}: {line}");
    }
    let run = store.run([
        "backup",
        &format!("index.json.blob:{}", path(&file)),
        "--backup-type",
        "vm",
        "--backup-id",
        "1",
    ]);
    assert!(run.stderr.contains("reserved"), "{}", run.stderr);
    assert_eq!(store.snapshot_names(None), Vec::<String>::new());
    assert!(!store.path.join("vm").exists(), "nothing was written");
}

#[test]
fn backup_times_outside_the_range_are_explained() {
    let store = Store::new();
    let file = store.write_file("f.conf", b"x\n");
    let spec = img_or_conf(&file);
    for time in ["0", "1970-01-01T00:00:00Z", "253402300800"] {
        let run = store.run([
            "backup",
            spec.as_str(),
            "--backup-id",
            "t",
            "--backup-time",
            time,
        ]);
        run.expect_code(2);
        let line = run.single_error_line();
        assert!(
            line.contains("out of range") && line.contains("1970-01-01T00:00:01Z"),
            "{line}"
        );
    }
    let run = store.run([
        "backup",
        spec.as_str(),
        "--backup-id",
        "t",
        "--backup-time",
        "yesterday",
    ]);
    run.expect_code(2);
    assert!(run.single_error_line().contains("RFC 3339"));
    store
        .run([
            "-q",
            "backup",
            spec.as_str(),
            "--backup-id",
            "t",
            "--backup-time",
            "1",
        ])
        .ok();
    store
        .run([
            "-q",
            "backup",
            spec.as_str(),
            "--backup-id",
            "u",
            "--backup-time",
            "1970-01-01T00:00:01Z",
        ])
        .ok();
}

fn img_or_conf(file: &std::path::Path) -> String {
    format!("f.conf:{}", file.display())
}

#[test]
fn a_dangling_symlink_in_the_way_is_not_replaced_without_overwrite() {
    let store = Store::new();
    let image = standard_image();
    store.backup_image(&image, "1", T1);
    let conf = store.write_file("vm.conf", b"cores: 2\n");
    store.backup(&[conf_spec("qemu-server", &conf)], "2", T1);
    let cases = [
        ("restore", snap("1", T1), "drive-scsi0.img", "disk.raw"),
        ("restore", snap("2", T1), "qemu-server.conf", "vm.conf.out"),
        ("export", snap("1", T1), "drive-scsi0.img", "disk.img.zst"),
    ];
    for (verb, snapshot, archive, name) in cases {
        let link = store.file(name);
        symlink("/nonexistent/target", &link).unwrap();
        let run = store.run([verb, snapshot.as_str(), archive, link.to_str().unwrap()]);
        run.expect_code(5);
        let line = run.single_error_line();
        assert!(
            line.contains("exists") && line.contains("--overwrite"),
            "{line}"
        );
        assert_eq!(
            fs::read_link(&link).unwrap().as_os_str(),
            "/nonexistent/target",
            "{verb} {archive}: the symlink was touched"
        );
        let run = store.run([
            verb,
            snapshot.as_str(),
            archive,
            link.to_str().unwrap(),
            "--overwrite",
        ]);
        run.ok();
        assert!(!fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
    }
    assert_eq!(fs::read(store.file("disk.raw")).unwrap(), image);
}

#[test]
fn catalog_names_with_control_characters_print_on_one_line() {
    let store = Store::new();
    let src = store.file("src");
    put(&src.join(OsStr::from_bytes(b"two\nlines")), b"x");
    put(&src.join(OsStr::from_bytes(b"bad\xffbyte")), b"y");
    put(&src.join("plain.txt"), b"z");
    store.backup_tree_ok(&src, "cat", T1, &[]);
    let run = store.run(["catalog", &host_snap("cat", T1)]);
    run.ok();
    let text = run.stdout_text();
    assert_eq!(text.lines().count(), 4, "{text}");
    assert!(
        text.contains(" 'root.pxar.didx/two'$'\\n''lines'\n"),
        "{text}"
    );
    assert!(
        text.contains(" 'root.pxar.didx/bad'$'\\377''byte'\n"),
        "{text}"
    );
    assert!(text.contains(" root.pxar.didx/plain.txt\n"), "{text}");
}
