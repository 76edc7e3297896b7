//! Damaged datastores and bad input: corrupt, missing and truncated files are found by verify
//! and refused by restore (exit 8); unknown names, foreign directories, unreadable sources and
//! malformed arguments get their own exit codes, each with one "error:" line on stderr.

mod common;

use std::fs;
use std::path::Path;

use common::*;
use serde_json::Value;

/// A store with vm/100 at T1 (the standard image) and vm/200 at T2 (an unrelated image).
/// Returns the store, the vm/100 image, and the digest of its random first chunk (needed by
/// vm/100 only).
fn two_groups() -> (Store, Vec<u8>, String) {
    let store = Store::new();
    let data = standard_image();
    store.backup_image(&data, "100", T1);
    store.backup_image(&make_image(&[Part::Pattern(77)], 0), "200", T2);
    let digest = sha256_hex(&data[..CHUNK]);
    assert!(store.chunk_path(&digest).is_file());
    (store, data, digest)
}

fn flip_byte(path: &Path, offset: usize) {
    let mut bytes = fs::read(path).unwrap();
    let at = offset.min(bytes.len() - 1);
    bytes[at] ^= 0x01;
    fs::write(path, bytes).unwrap();
}

fn verify_all_json(store: &Store) -> Value {
    let run = store.run(["--output-format", "json", "verify", "--all"]);
    run.expect_code(8);
    let line = run.single_error_line();
    assert!(line.contains("verification failed"), "{line}");
    let report = run.json();
    assert_eq!(report["ok"], false);
    report
}

/// Restores `archive` of `snapshot` to a new file; asserts exit 8, one error line and that
/// neither the target nor a temporary file is left behind. Returns the error line.
fn restore_fails_cleanly(store: &Store, snapshot: &str, archive: &str) -> String {
    let dir = store.file(&format!("restore-{}", unique()));
    fs::create_dir(&dir).unwrap();
    let target = dir.join("target.img");
    let run = store.run([
        "restore".as_ref(),
        snapshot.as_ref(),
        archive.as_ref(),
        target.as_os_str(),
    ]);
    run.expect_code(8);
    let line = run.single_error_line();
    assert!(!target.exists(), "a failed restore left its target behind");
    assert!(
        dir_names(&dir).is_empty(),
        "a failed restore left files behind: {:?}",
        dir_names(&dir)
    );
    line
}

#[test]
fn flipped_byte_in_chunk_fails_verify_and_restore() {
    let (store, _, digest) = two_groups();
    flip_byte(&store.chunk_path(&digest), 2 * 1024 * 1024);

    let report = verify_all_json(&store);
    let bad = report["bad_chunks"].as_array().unwrap();
    assert_eq!(bad.len(), 1, "{report}");
    assert_eq!(bad[0]["digest"], digest.as_str());
    assert_eq!(bad[0]["snapshots"], serde_json::json!([snap("100", T1)]));
    let snaps = report["snapshots"].as_array().unwrap();
    assert_eq!(snaps.len(), 2);
    assert_eq!(snaps[0]["snapshot"], snap("100", T1));
    assert_eq!(snaps[0]["ok"], false);
    assert!(snaps[0]["errors"][0].as_str().unwrap().contains(&digest));
    assert_eq!(snaps[1]["snapshot"], snap("200", T2));
    assert_eq!(snaps[1]["ok"], true);

    // Verifying only what does not need the chunk passes; the damaged group fails.
    store.run(["verify", "vm/200"]).ok();
    let run = store.run(["verify", "vm/100"]);
    run.expect_code(8);
    assert!(run.stdout_text().contains(&digest), "{}", run.stdout_text());

    let line = restore_fails_cleanly(&store, "vm/100", "drive-scsi0.img");
    assert!(line.contains(&digest), "{line}");
    // To stdout as well: exit 8 and one error line.
    let run = store.run(["restore", "vm/100", "drive-scsi0.img", "-"]);
    run.expect_code(8);
    run.single_error_line();
}

#[test]
fn chunk_with_wrong_content_fails_verify() {
    let (store, data, digest) = two_groups();
    // A valid chunk blob of other data under this digest's name: CRC fine, digest wrong.
    let pattern_digest = sha256_hex(&data[2 * CHUNK..3 * CHUNK]);
    fs::copy(store.chunk_path(&pattern_digest), store.chunk_path(&digest)).unwrap();
    let report = verify_all_json(&store);
    let bad = report["bad_chunks"].as_array().unwrap();
    assert_eq!(bad.len(), 1, "{report}");
    assert_eq!(bad[0]["digest"], digest.as_str());
    assert!(
        bad[0]["reason"]
            .as_str()
            .unwrap()
            .contains("digest mismatch"),
        "{report}"
    );
    restore_fails_cleanly(&store, &snap("100", T1), "drive-scsi0.img");
}

#[test]
fn deleted_chunk_is_reported_missing() {
    let (store, _, digest) = two_groups();
    fs::remove_file(store.chunk_path(&digest)).unwrap();

    let report = verify_all_json(&store);
    let bad = report["bad_chunks"].as_array().unwrap();
    assert_eq!(bad.len(), 1, "{report}");
    assert_eq!(bad[0]["digest"], digest.as_str());
    assert_eq!(bad[0]["reason"], "missing");
    assert_eq!(bad[0]["snapshots"], serde_json::json!([snap("100", T1)]));

    let line = restore_fails_cleanly(&store, "vm/100", "drive-scsi0.img");
    assert!(line.contains("missing") && line.contains(&digest), "{line}");
}

#[test]
fn truncated_index_fails_restore_and_verify() {
    let (store, _, _) = two_groups();
    let fidx = store
        .snapshot_dir(&snap("100", T1))
        .join("drive-scsi0.img.fidx");
    let len = fs::metadata(&fidx).unwrap().len();
    assert_eq!(len, 4096 + 5 * 32);

    // One digest short.
    let file = fs::OpenOptions::new().write(true).open(&fidx).unwrap();
    file.set_len(len - 32).unwrap();
    drop(file);
    restore_fails_cleanly(&store, "vm/100", "drive-scsi0.img");
    let report = verify_all_json(&store);
    assert_eq!(report["snapshots"][0]["ok"], false);
    assert!(report["snapshots"][0]["errors"][0]
        .as_str()
        .unwrap()
        .contains("drive-scsi0.img.fidx"));
    assert_eq!(report["snapshots"][1]["ok"], true);

    // Shorter than the header.
    let file = fs::OpenOptions::new().write(true).open(&fidx).unwrap();
    file.set_len(100).unwrap();
    drop(file);
    restore_fails_cleanly(&store, "vm/100", "drive-scsi0.img");
    verify_all_json(&store);
}

#[test]
fn corrupt_manifest_fails_restore_and_verify() {
    let (store, _, _) = two_groups();
    let manifest = store.snapshot_dir(&snap("100", T1)).join("index.json.blob");
    let len = fs::metadata(&manifest).unwrap().len() as usize;
    flip_byte(&manifest, len / 2);

    restore_fails_cleanly(&store, &snap("100", T1), "drive-scsi0.img");
    restore_fails_cleanly(&store, "vm/100", "drive-scsi0.img");
    let run = store.run(["files", &snap("100", T1)]);
    run.expect_code(8);
    run.single_error_line();

    let report = verify_all_json(&store);
    assert_eq!(report["snapshots"][0]["snapshot"], snap("100", T1));
    assert_eq!(report["snapshots"][0]["ok"], false);
    assert!(report["snapshots"][0]["errors"][0]
        .as_str()
        .unwrap()
        .contains("index.json.blob"));
    assert_eq!(report["snapshots"][1]["ok"], true);
}

#[test]
fn corrupt_conf_blob_fails_restore_and_verify() {
    let store = Store::new();
    let img = store.write_file("disk.img", &make_image(&[Part::Random(5)], 0));
    let conf = store.write_file("vm.conf", &b"memory: 1024\n".repeat(50));
    store.backup(
        &[
            img_spec("drive-scsi0", &img),
            conf_spec("qemu-server", &conf),
        ],
        "100",
        T1,
    );
    let blob = store
        .snapshot_dir(&snap("100", T1))
        .join("qemu-server.conf.blob");
    let len = fs::metadata(&blob).unwrap().len() as usize;
    flip_byte(&blob, len - 2);

    restore_fails_cleanly(&store, "vm/100", "qemu-server.conf");
    let report = verify_all_json(&store);
    assert!(report["snapshots"][0]["errors"][0]
        .as_str()
        .unwrap()
        .contains("qemu-server.conf.blob"));
    // The image of the same snapshot is unaffected.
    assert!(
        store.restore_bytes(&snap("100", T1), "drive-scsi0.img")
            == make_image(&[Part::Random(5)], 0)
    );
}

#[test]
fn unknown_names_are_not_found() {
    let (store, _, _) = two_groups();
    let missing = snap("100", T2); // vm/100 has T1 only
    let target = store.file("never.img");
    for args in [
        vec![
            "restore",
            &missing,
            "drive-scsi0.img",
            target.to_str().unwrap(),
        ],
        vec![
            "restore",
            "vm/999",
            "drive-scsi0.img",
            target.to_str().unwrap(),
        ],
        vec!["restore", "vm/100", "nope.img", target.to_str().unwrap()],
        vec!["restore", "vm/100", "nope.conf", "-"],
        vec!["files", &missing],
        vec!["files", "ct/100"],
        vec!["forget", &missing],
        vec!["verify", &missing],
        vec!["verify", "vm/999"],
    ] {
        let run = store.run(&args);
        run.expect_code(6);
        run.single_error_line();
        assert!(run.stdout.is_empty(), "{args:?} printed {:?}", run.stdout);
    }
    assert!(!target.exists());
    assert_eq!(
        store.snapshot_names(None),
        vec![snap("100", T1), snap("200", T2)]
    );
}

#[test]
fn non_datastore_repository_is_refused_and_untouched() {
    let tmp = tempdir();
    let foreign = tmp.path().join("foreign");
    fs::create_dir(&foreign).unwrap();
    fs::write(foreign.join("precious.txt"), b"do not touch").unwrap();
    fs::create_dir(foreign.join("vm")).unwrap();
    let image = tmp.path().join("disk.img");
    fs::write(&image, make_image(&[Part::Random(3)], 10)).unwrap();
    let absent = tmp.path().join("absent");
    let target = tmp.path().join("restored.img");

    for repo in [&foreign, &absent] {
        let mut cases: Vec<Vec<String>> = vec![
            vec!["groups".into()],
            vec!["snapshots".into()],
            vec!["files".into(), "vm/100".into()],
            vec!["verify".into(), "--all".into()],
            vec!["forget".into(), snap("100", T1)],
            vec![
                "restore".into(),
                "vm/100".into(),
                "drive-scsi0.img".into(),
                target.to_string_lossy().into_owned(),
            ],
        ];
        cases.push(backup_args(&[img_spec("drive-scsi0", &image)], "100", T1));
        for case in cases {
            let mut args = vec!["--repository".to_string(), repo.to_string_lossy().into()];
            args.extend(case);
            let run = run(&args);
            run.expect_code(3);
            let line = run.single_error_line();
            assert!(line.contains("not a stowage/PBS datastore"), "{line}");
        }
    }
    assert_eq!(dir_names(&foreign), vec!["precious.txt", "vm"]);
    assert!(dir_names(&foreign.join("vm")).is_empty());
    assert_eq!(
        fs::read(foreign.join("precious.txt")).unwrap(),
        b"do not touch"
    );
    assert!(!absent.exists(), "a missing --repository was created");
    assert!(!target.exists());

    // Creating a datastore in a non-empty directory is refused too.
    let run = run(["datastore".as_ref(), "create".as_ref(), foreign.as_os_str()]);
    run.expect_code(3);
    run.single_error_line();
    assert_eq!(dir_names(&foreign), vec!["precious.txt", "vm"]);
}

#[test]
fn missing_source_fails_without_snapshot() {
    let store = Store::new();
    let missing = store.file("does-not-exist.img");
    let run = store.run(backup_args(&[img_spec("drive-scsi0", &missing)], "100", T1));
    run.expect_code(4);
    let line = run.single_error_line();
    assert!(line.contains("does-not-exist.img"), "{line}");
    assert!(run.stdout.is_empty());

    // A readable image with a missing config file: nothing is written either.
    let img = store.write_file("disk.img", &make_image(&[Part::Random(8)], 0));
    let run = store.run(backup_args(
        &[
            img_spec("drive-scsi0", &img),
            conf_spec("qemu-server", &store.file("missing.conf")),
        ],
        "100",
        T1,
    ));
    run.expect_code(4);
    run.single_error_line();

    assert!(store.snapshot_names(None).is_empty());
    assert!(!store.path.join("vm").exists(), "a group was created");
    assert_eq!(store.chunk_count(), 0);

    // An empty image is refused and leaves no snapshot behind.
    let empty = store.write_file("empty.img", b"");
    let run = store.run(backup_args(&[img_spec("drive-scsi0", &empty)], "100", T1));
    run.expect_code(4);
    assert!(run.stderr.contains("empty"), "{}", run.stderr);
    assert!(store.snapshot_names(None).is_empty());
    assert!(!store.snapshot_dir(&snap("100", T1)).exists());
}

#[test]
fn directory_source_is_unreadable() {
    let store = Store::new();
    let dir = store.file("a-dir");
    fs::create_dir(&dir).unwrap();
    let run = store.run(backup_args(&[img_spec("drive-scsi0", &dir)], "100", T1));
    run.expect_code(4);
    let line = run.single_error_line();
    assert!(line.contains("directory"), "{line}");
    assert!(store.snapshot_names(None).is_empty());
    assert!(!store.path.join("vm").exists());
}

#[test]
fn malformed_arguments_are_usage_errors() {
    let store = Store::new();
    let img = store.write_file("disk.img", &make_image(&[Part::Pattern(1)], 0));
    let img = img.to_str().unwrap();
    let spec = format!("drive-scsi0.img:{img}");
    let bad_backups: Vec<Vec<String>> = vec![
        // Archive specs: no colon, unknown extension, no name, no path, unsafe name, pxar.
        vec![img.into()],
        vec![format!("drive-scsi0.iso:{img}")],
        vec![format!(".img:{img}")],
        vec!["drive-scsi0.img:".into()],
        vec![format!("../x.img:{img}")],
        // Backup ids and types, and times.
        vec![spec.clone(), "--backup-id=a/b".into()],
        vec![spec.clone(), "--backup-id=.hidden".into()],
        vec![spec.clone(), "--backup-id=".into()],
        vec![spec.clone(), "--backup-type=disk".into()],
        vec![spec.clone(), "--backup-type=VM".into()],
        vec![spec.clone(), "--backup-time=yesterday".into()],
        vec![spec.clone(), "--backup-time=0".into()],
    ];
    for case in bad_backups {
        let mut args = vec!["backup".to_string()];
        args.extend(case);
        if !args.iter().any(|a| a.starts_with("--backup-type")) {
            args.push("--backup-type=vm".into());
        }
        if !args.iter().any(|a| a.starts_with("--backup-id")) {
            args.push("--backup-id=100".into());
        }
        if !args.iter().any(|a| a.starts_with("--backup-time")) {
            args.push(format!("--backup-time={T1}"));
        }
        let run = store.run(&args);
        run.expect_code(2);
        run.single_error_line();
    }
    // A file-tree archive needs a directory: a file is an unreadable source.
    let run = store.run([
        "backup".to_string(),
        format!("root.pxar:{img}"),
        "--backup-type=host".into(),
        "--backup-id=h".into(),
    ]);
    run.expect_code(4);
    run.single_error_line();
    assert!(store.snapshot_names(None).is_empty());
    assert_eq!(store.chunk_count(), 0);

    // The same snapshot time twice, or an older one, is refused.
    store.backup(std::slice::from_ref(&spec), "100", T2);
    for time in [T2, T1] {
        let run = store.run(backup_args(std::slice::from_ref(&spec), "100", time));
        run.expect_code(2);
        run.single_error_line();
    }
    assert_eq!(store.snapshot_names(None), vec![snap("100", T2)]);

    for args in [
        vec!["restore", "vm/100", "noextension", "-"],
        vec!["snapshots", "disk/100"],
        vec!["verify"],
        vec!["forget", "vm/100"],
    ] {
        let run = store.run(&args);
        run.expect_code(2);
        run.single_error_line();
    }
    assert_eq!(store.snapshot_names(None), vec![snap("100", T2)]);
}

/// A malformed snapshot name is a usage error (exit 2) for every verb, as it already is for
/// `forget` and `verify`; `restore` and `files` should not call it "not found".
#[test]
fn malformed_snapshot_name_is_usage_error_everywhere() {
    let store = Store::new();
    store.backup_image(&make_image(&[Part::Pattern(2)], 0), "100", T1);
    let mut wrong = Vec::new();
    for name in ["vm/100/yesterday", "vm", "disk/100"] {
        for args in [
            vec!["forget", name],
            vec!["verify", name],
            vec!["files", name],
            vec!["restore", name, "drive-scsi0.img", "-"],
        ] {
            let run = store.run(&args);
            run.single_error_line();
            if run.code != 2 {
                wrong.push(format!(
                    "{args:?} exits {}: {}",
                    run.code,
                    run.stderr.trim()
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "malformed names not treated as usage errors:\n{}",
        wrong.join("\n")
    );
}

/// `-q` prints "only results and errors": a failed restore must still say why on stderr.
#[test]
fn quiet_restore_failure_still_prints_its_error() {
    let (store, _, digest) = two_groups();
    fs::remove_file(store.chunk_path(&digest)).unwrap();
    let target = store.file("quiet.img");
    let run = store.run([
        "-q".as_ref(),
        "restore".as_ref(),
        "vm/100".as_ref(),
        "drive-scsi0.img".as_ref(),
        target.as_os_str(),
    ]);
    run.expect_code(8);
    assert!(!target.exists());
    let line = run.single_error_line();
    assert!(line.contains(&digest), "{line}");
}

/// One snapshot with a damaged manifest must not hide every other snapshot of the datastore:
/// `groups` copes with it, `snapshots` should too.
#[test]
fn snapshots_lists_healthy_snapshots_despite_a_corrupt_manifest() {
    let (store, _, _) = two_groups();
    let manifest = store.snapshot_dir(&snap("100", T1)).join("index.json.blob");
    let len = fs::metadata(&manifest).unwrap().len() as usize;
    flip_byte(&manifest, len / 2);

    let run = store.run(["--output-format", "json", "groups"]);
    run.ok();
    assert_eq!(run.json().as_array().unwrap().len(), 2);

    let run = store.run(["--output-format", "json", "snapshots"]);
    let listed: Vec<String> = serde_json::from_slice::<Value>(&run.stdout)
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|row| row["snapshot"].as_str().map(String::from))
        .collect();
    assert!(
        listed.contains(&snap("200", T2)),
        "snapshots (exit {}) lists {listed:?}; stderr: {}",
        run.code,
        run.stderr
    );
}
