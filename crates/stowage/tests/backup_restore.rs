//! Backup and restore through the binary: byte-identical round trips, sparse restores,
//! deduplication, blobs, listings, forget and the overwrite guard.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::MetadataExt;

use common::*;

const MIB: u64 = 1024 * 1024;

#[test]
fn restore_to_file_is_byte_identical_and_sparse() {
    let store = Store::new();
    let data = standard_image();
    let report = store.backup_image(&data, "100", T1);
    assert_eq!(report["snapshot"], format!("vm/100/{T1_NAME}"));
    assert_eq!(report["size"], data.len() as u64);
    assert_eq!(report["zero_bytes"], 8 * MIB);

    let target = store.file("restored.img");
    let run = store.run([
        "--output-format".as_ref(),
        "json".as_ref(),
        "restore".as_ref(),
        format!("vm/100/{T1_NAME}").as_ref(),
        "drive-scsi0.img".as_ref(),
        target.as_os_str(),
    ]);
    run.ok();
    let summary = run.json();
    assert_eq!(summary["size"], data.len() as u64);
    assert_eq!(summary["zero_bytes"], 8 * MIB);
    assert_eq!(summary["snapshot"], format!("vm/100/{T1_NAME}"));
    assert_eq!(summary["archive"], "drive-scsi0.img");

    let restored = fs::read(&target).unwrap();
    assert_eq!(restored.len(), data.len());
    assert!(restored == data, "restored image differs from the source");

    // The two zero chunks are holes: allocated space is about the 8 MiB + 1000 bytes of data.
    let meta = fs::metadata(&target).unwrap();
    let allocated = meta.blocks() * 512;
    let non_zero = data.len() as u64 - 8 * MIB;
    assert_eq!(meta.len(), data.len() as u64);
    assert!(
        allocated <= non_zero + 64 * 1024,
        "restored file allocates {allocated} bytes for {non_zero} bytes of non-zero data"
    );
    assert!(
        allocated < meta.len() * 6 / 10,
        "restored file is not sparse: {allocated} of {} bytes allocated",
        meta.len()
    );
    // Nothing but the target is left in the work directory (no temporary restore file).
    let names = dir_names(&store.work);
    assert_eq!(
        names,
        vec!["restored.img".to_string(), format!("src-100-{T1}.img")]
    );
}

#[test]
fn restore_to_stdout_is_byte_identical() {
    let store = Store::new();
    let data = standard_image();
    store.backup_image(&data, "100", T1);
    // `vm/100` names the newest snapshot of the group.
    let run = store.run(["restore", "vm/100", "drive-scsi0.img", "-"]);
    run.ok();
    assert_eq!(run.stdout.len(), data.len());
    assert!(
        run.stdout == data,
        "image on stdout differs from the source"
    );
    // The summary goes to stderr when the image is on stdout.
    assert!(
        run.stderr
            .contains(&format!("restored vm/100/{T1_NAME} drive-scsi0.img to -")),
        "stderr: {}",
        run.stderr
    );
}

#[test]
fn backup_from_stdin_restores_identical() {
    let store = Store::new();
    let data = make_image(&[Part::Pattern(9), Part::Zero, Part::Random(4)], 4321);
    let mut args = backup_args(&["disk.img:-".to_string()], "100", T1);
    args.insert(0, "--threads".into());
    args.insert(1, "2".into());
    let run = store.run_stdin(args, &data);
    run.ok();
    let report = run.json();
    assert_eq!(report["size"], data.len() as u64);
    assert_eq!(report["zero_bytes"], 4 * MIB);
    assert_eq!(report["archives"][0]["archive"], "disk.img");
    assert_eq!(report["archives"][0]["source"], "standard input");
    assert_eq!(report["archives"][0]["chunks"], 4);
    assert_eq!(report["archives"][0]["new_chunks"], 4);

    let expected: BTreeSet<String> = image_digests(&data).into_iter().collect();
    assert_eq!(store.chunk_digests(), expected);

    let restored = store.restore_bytes(&snap("100", T1), "disk.img");
    assert!(restored == data, "stdin backup does not restore identical");
}

#[test]
fn second_backup_reuses_everything_and_writes_no_chunk() {
    let store = Store::new();
    let data = standard_image();
    let first = store.backup_image(&data, "100", T1);
    let size = data.len() as u64;
    // Unique chunks: random, zero, pattern, tail.
    assert_eq!(first["archives"][0]["chunks"], 5);
    assert_eq!(first["archives"][0]["new_chunks"], 4);
    assert_eq!(first["reused_bytes"], 0);
    assert_eq!(first["new_bytes"], size - 8 * MIB);
    assert!(first["written_bytes"].as_u64().unwrap() > 0);
    assert_eq!(store.chunk_count(), 4);
    let files_before = store.all_chunk_dir_files();

    let path = store.write_file("same.img", &data);
    let run = store.run(backup_args(&[img_spec("drive-scsi0", &path)], "100", T2));
    run.ok();
    assert!(
        run.stderr
            .contains(&format!("Incremental against vm/100/{T1_NAME}")),
        "stderr: {}",
        run.stderr
    );
    let second = run.json();
    assert_eq!(second["size"], size);
    assert_eq!(second["zero_bytes"], 8 * MIB);
    assert_eq!(second["reused_bytes"], size - 8 * MIB);
    assert_eq!(second["new_bytes"], 0);
    assert_eq!(second["written_bytes"], 0);
    assert_eq!(second["archives"][0]["new_chunks"], 0);
    assert_eq!(second["archives"][0]["chunks"], 5);
    assert_eq!(store.all_chunk_dir_files(), files_before);

    assert!(store.restore_bytes(&snap("100", T2), "drive-scsi0.img") == data);
}

#[test]
fn changed_chunk_adds_exactly_one_chunk_file() {
    let store = Store::new();
    let data = standard_image();
    store.backup_image(&data, "100", T1);
    let before = store.chunk_digests();
    assert_eq!(before.len(), 4);

    let mut changed = data.clone();
    changed[2 * CHUNK + 12345] ^= 0x5a; // inside the pattern chunk
    let new_digest = sha256_hex(&changed[2 * CHUNK..3 * CHUNK]);
    assert!(!before.contains(&new_digest));

    let second = store.backup_image(&changed, "100", T2);
    let size = data.len() as u64;
    assert_eq!(second["archives"][0]["new_chunks"], 1);
    assert_eq!(second["new_bytes"], 4 * MIB);
    assert_eq!(second["reused_bytes"], size - 8 * MIB - 4 * MIB);
    assert_eq!(second["zero_bytes"], 8 * MIB);

    let after = store.chunk_digests();
    assert_eq!(after.len(), 5);
    let added: Vec<&String> = after.difference(&before).collect();
    assert_eq!(added, vec![&new_digest]);

    // Each snapshot restores its own version.
    assert!(store.restore_bytes(&snap("100", T1), "drive-scsi0.img") == data);
    assert!(store.restore_bytes(&snap("100", T2), "drive-scsi0.img") == changed);
}

#[test]
fn zero_chunk_is_stored_once() {
    let store = Store::new();
    let a = make_image(&[Part::Zero, Part::Random(11), Part::Zero, Part::Zero], 777);
    let b = make_image(&[Part::Zero, Part::Pattern(5), Part::Zero], 0);
    let pa = store.write_file("a.img", &a);
    let pb = store.write_file("b.img", &b);
    let report = store.backup(
        &[img_spec("drive-scsi0", &pa), img_spec("drive-scsi1", &pb)],
        "100",
        T1,
    );
    assert_eq!(report["zero_bytes"], 5 * 4 * MIB);
    assert_eq!(report["archives"][0]["chunks"], 5);
    assert_eq!(report["archives"][1]["chunks"], 3);

    // Chunk files are exactly the unique digests of both images, named by SHA-256.
    let expected: BTreeSet<String> = image_digests(&a)
        .into_iter()
        .chain(image_digests(&b))
        .collect();
    assert_eq!(expected.len(), 4); // zero, random, tail, pattern
    assert!(expected.contains(ZERO_DIGEST));
    assert_eq!(store.chunk_digests(), expected);

    // One file for the zero chunk, in its prefix directory, and nothing else there.
    let zero_files: Vec<String> = store
        .all_chunk_dir_files()
        .into_iter()
        .filter(|f| f.contains(ZERO_DIGEST))
        .collect();
    assert_eq!(zero_files, vec![format!("bb9f/{ZERO_DIGEST}")]);
    assert!(store.chunk_path(ZERO_DIGEST).is_file());
    // Every entry under .chunks is a finished chunk file: no temporary files left over.
    assert_eq!(store.all_chunk_dir_files().len(), expected.len());

    assert!(store.restore_bytes(&snap("100", T1), "drive-scsi0.img") == a);
    assert!(store.restore_bytes(&snap("100", T1), "drive-scsi1.img") == b);
}

#[test]
fn conf_blob_restores_identical() {
    let store = Store::new();
    let img = make_image(&[Part::Random(21)], 100);
    let conf = b"boot: order=scsi0\ncores: 2\nmemory: 2048\nname: test-vm\nscsi0: local:vm-100-disk-0,size=4M\n";
    let pi = store.write_file("disk.img", &img);
    let pc = store.write_file("qemu-server.conf", conf);
    let report = store.backup(
        &[img_spec("drive-scsi0", &pi), conf_spec("qemu-server", &pc)],
        "100",
        T1,
    );
    assert_eq!(report["blobs"][0]["archive"], "qemu-server.conf");
    assert_eq!(report["blobs"][0]["size"], conf.len());
    assert!(store
        .snapshot_dir(&snap("100", T1))
        .join("qemu-server.conf.blob")
        .is_file());

    let target = store.file("restored.conf");
    store
        .run([
            "restore".as_ref(),
            snap("100", T1).as_ref(),
            "qemu-server.conf".as_ref(),
            target.as_os_str(),
        ])
        .ok();
    assert_eq!(fs::read(&target).unwrap(), conf);

    let run = store.run(["restore", "vm/100", "qemu-server.conf", "-"]);
    run.ok();
    assert_eq!(run.stdout, conf);

    // The image beside it is still fine.
    assert!(store.restore_bytes(&snap("100", T1), "drive-scsi0.img") == img);
}

#[test]
fn listings_show_what_was_backed_up() {
    let store = Store::new();
    let img1 = make_image(&[Part::Random(31), Part::Zero], 10);
    let img2 = make_image(&[Part::Pattern(32)], 0);
    store.backup_image(&img1, "100", T1);
    store.backup_image(&img1, "100", T2);
    let p2 = store.write_file("disk2.img", &img2);
    let pc = store.write_file("vm.conf", b"memory: 512\n");
    store.backup(
        &[
            img_spec("drive-virtio0", &p2),
            conf_spec("qemu-server", &pc),
        ],
        "200",
        T3,
    );

    // groups
    let run = store.run(["--output-format", "json", "groups"]);
    run.ok();
    let groups = run.json();
    let groups = groups.as_array().unwrap();
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[0]["backup-type"], "vm");
    assert_eq!(groups[0]["backup-id"], "100");
    assert_eq!(groups[0]["backup-count"], 2);
    assert_eq!(groups[0]["last-backup"], T2);
    assert_eq!(groups[0]["last-snapshot"], snap("100", T2));
    assert_eq!(
        groups[0]["files"],
        serde_json::json!(["drive-scsi0.img.fidx"])
    );
    assert_eq!(groups[1]["backup-id"], "200");
    assert_eq!(groups[1]["backup-count"], 1);
    assert_eq!(groups[1]["last-backup"], T3);
    assert_eq!(
        groups[1]["files"],
        serde_json::json!(["drive-virtio0.img.fidx", "qemu-server.conf.blob"])
    );

    // snapshots, all and of one group
    assert_eq!(
        store.snapshot_names(None),
        vec![snap("100", T1), snap("100", T2), snap("200", T3)]
    );
    assert_eq!(
        store.snapshot_names(Some("vm/100")),
        vec![snap("100", T1), snap("100", T2)]
    );
    let run = store.run(["--output-format", "json", "snapshots", "vm/200"]);
    run.ok();
    let rows = run.json();
    let row = &rows.as_array().unwrap()[0];
    assert_eq!(row["backup-type"], "vm");
    assert_eq!(row["backup-id"], "200");
    assert_eq!(row["backup-time"], T3);
    assert_eq!(row["protected"], false);
    assert_eq!(
        row["files"],
        serde_json::json!(["drive-virtio0.img.fidx", "qemu-server.conf.blob"])
    );

    // files
    let run = store.run(["--output-format", "json", "files", &snap("100", T1)]);
    run.ok();
    let files = run.json();
    let files = files.as_array().unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0]["filename"], "drive-scsi0.img.fidx");
    assert_eq!(files[0]["size"], img1.len() as u64);
    assert_eq!(files[0]["crypt-mode"], "none");
    assert!(is_digest(files[0]["csum"].as_str().unwrap()));

    let run = store.run(["--output-format", "json", "files", "vm/200"]);
    run.ok();
    let files = run.json();
    let names: Vec<&str> = files
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["filename"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec!["drive-virtio0.img.fidx", "qemu-server.conf.blob"]
    );
    assert_eq!(files[0]["size"], img2.len() as u64);

    // Text output names the same things.
    let run = store.run(["snapshots"]);
    run.ok();
    let text = run.stdout_text();
    for s in [snap("100", T1), snap("100", T2), snap("200", T3)] {
        assert!(text.contains(&s), "snapshots text lacks {s}: {text}");
    }
}

#[test]
fn forget_removes_a_snapshot() {
    let store = Store::new();
    let data = make_image(&[Part::Random(41), Part::Zero], 99);
    store.backup_image(&data, "100", T1);
    store.backup_image(&data, "100", T2);
    assert!(store.snapshot_dir(&snap("100", T1)).is_dir());

    let run = store.run(["--output-format", "json", "forget", &snap("100", T1)]);
    run.ok();
    assert_eq!(run.json()["removed"], snap("100", T1));
    assert!(!store.snapshot_dir(&snap("100", T1)).exists());
    assert_eq!(store.snapshot_names(None), vec![snap("100", T2)]);

    // Gone for restore and forget; the other snapshot still restores (its chunks are shared).
    let target = store.file("gone.img");
    store
        .run([
            "restore".as_ref(),
            snap("100", T1).as_ref(),
            "drive-scsi0.img".as_ref(),
            target.as_os_str(),
        ])
        .expect_code(6);
    assert!(!target.exists());
    store.run(["forget", &snap("100", T1)]).expect_code(6);
    assert!(store.restore_bytes(&snap("100", T2), "drive-scsi0.img") == data);

    // A group name alone is refused: forget must not pick the newest silently.
    store.run(["forget", "vm/100"]).expect_code(2);
    assert_eq!(store.snapshot_names(None), vec![snap("100", T2)]);
}

#[test]
fn restore_refuses_existing_target_without_overwrite() {
    let store = Store::new();
    let data = make_image(&[Part::Random(51)], 2000);
    store.backup_image(&data, "100", T1);
    let target = store.write_file("existing.img", b"precious contents");

    let run = store.run([
        "restore".as_ref(),
        "vm/100".as_ref(),
        "drive-scsi0.img".as_ref(),
        target.as_os_str(),
    ]);
    run.expect_code(5);
    let line = run.single_error_line();
    assert!(line.contains("--overwrite"), "{line}");
    assert_eq!(fs::read(&target).unwrap(), b"precious contents");

    let run = store.run([
        "restore".as_ref(),
        "vm/100".as_ref(),
        "drive-scsi0.img".as_ref(),
        target.as_os_str(),
        "--overwrite".as_ref(),
    ]);
    run.ok();
    assert!(fs::read(&target).unwrap() == data);

    // A directory is never a target, with or without --overwrite.
    let dir = store.file("a-directory");
    fs::create_dir(&dir).unwrap();
    store
        .run([
            "restore".as_ref(),
            "vm/100".as_ref(),
            "drive-scsi0.img".as_ref(),
            dir.as_os_str(),
            "--overwrite".as_ref(),
        ])
        .expect_code(5);
    assert!(dir.is_dir());
    // No temporary files were left beside the target.
    let mut names = dir_names(&store.work);
    names.retain(|n| n.starts_with('.'));
    assert!(names.is_empty(), "left-over files: {names:?}");
}

#[test]
fn repository_from_environment() {
    let store = Store::new();
    let data = make_image(&[Part::Pattern(61)], 10);
    let path = store.write_file("env.img", &data);
    let mut cmd = stowage();
    cmd.env("STOWAGE_REPOSITORY", &store.path);
    let run = run_cmd(
        cmd,
        backup_args(&[img_spec("drive-scsi0", &path)], "300", T1),
        None,
    );
    run.ok();
    assert_eq!(run.json()["snapshot"], snap("300", T1));
    assert_eq!(store.snapshot_names(Some("vm/300")), vec![snap("300", T1)]);
}

#[test]
fn healthy_store_verifies() {
    let store = Store::new();
    let data = standard_image();
    store.backup_image(&data, "100", T1);
    store.backup_image(&data, "200", T2);
    let run = store.run(["--output-format", "json", "verify", "--all"]);
    run.ok();
    let report = run.json();
    assert_eq!(report["ok"], true);
    assert_eq!(report["chunks_checked"], 4);
    // Unique chunks: random, zero and pattern (4 MiB each) and the 1000-byte tail.
    assert_eq!(report["bytes_checked"], 12 * MIB + 1000);
    assert_eq!(report["bad_chunks"], serde_json::json!([]));
    let snaps: Vec<&str> = report["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["snapshot"].as_str().unwrap())
        .collect();
    assert_eq!(snaps, vec![snap("100", T1), snap("200", T2)]);
    store.run(["verify", "vm/100"]).ok();
    store.run(["verify", &snap("200", T2)]).ok();
}
