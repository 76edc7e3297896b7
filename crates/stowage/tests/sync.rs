//! `stowage sync`: copies the snapshots the target lacks, only missing chunks, verified;
//! resumes after an interruption; a corrupt source chunk fails only its snapshot.

mod common;

use std::fs;
use std::process::Stdio;
use std::time::Duration;

use common::*;

fn image(seeds: &[u64]) -> Vec<u8> {
    seeds.iter().flat_map(|&s| random_bytes(s, CHUNK)).collect()
}

fn sync(src: &Store, dst: &Store, extra: &[&str]) -> Run {
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "--output-format".as_ref(),
        "json".as_ref(),
        "sync".as_ref(),
        "--from".as_ref(),
        src.path.as_os_str(),
    ];
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    dst.run(&args)
}

#[test]
fn copies_missing_snapshots_and_only_missing_chunks() {
    let src = Store::new();
    let dst = Store::new();
    src.backup_image(&image(&[1, 2, 3]), "1", T1);
    src.backup_image(&image(&[1, 2, 4]), "1", T2);
    src.backup_image(&image(&[5]), "2", T1);
    src.run(["notes", &snap("1", T2), "--set", "before the upgrade"])
        .ok();

    let run = sync(&src, &dst, &[]);
    run.ok();
    let report = run.json();
    assert_eq!(report["copied"], 3);
    assert_eq!(report["chunks-copied"], 5);
    assert_eq!(dst.chunk_digests(), src.chunk_digests());
    assert_eq!(
        fs::read(dst.path.join("vm/1/owner")).unwrap(),
        fs::read(src.path.join("vm/1/owner")).unwrap()
    );
    let notes = dst.run(["notes", &snap("1", T2)]);
    notes.ok();
    assert!(notes.stdout_text().contains("before the upgrade"));

    src.backup_image(&image(&[1, 2, 6]), "1", T3);
    let run = sync(&src, &dst, &["--group", "vm/1"]);
    run.ok();
    let report = run.json();
    assert_eq!(report["copied"], 1);
    assert_eq!(report["present"], 2);
    assert_eq!(report["chunks-copied"], 1, "only the new chunk travels");
    dst.run(["verify", "--all"]).ok();
    assert_eq!(
        dst.restore_bytes(&snap("1", T3), "drive-scsi0.img"),
        image(&[1, 2, 6])
    );
    // Nothing left to do.
    let run = sync(&src, &dst, &[]);
    run.ok();
    assert_eq!(run.json()["copied"], 0);
}

#[test]
fn interrupted_sync_resumes() {
    let src = Store::new();
    let dst = Store::new();
    src.backup_image(&image(&[10, 11]), "1", T1);
    src.backup_image(&image(&[10, 11, 12, 13, 14, 15, 16, 17]), "1", T2);
    sync(&src, &dst, &[]).ok();
    src.backup_image(&image(&[20, 21, 22, 23, 24, 25, 26, 27]), "1", T3);

    // What a killed sync leaves: some chunks, and a snapshot directory with no manifest.
    let left = dst.snapshot_dir(&snap("1", T3));
    fs::create_dir_all(&left).unwrap();
    fs::write(left.join("drive-scsi0.img.fidx"), b"half an index").unwrap();
    let first = image_digests(&image(&[20]))[0].clone();
    fs::copy(src.chunk_path(&first), dst.chunk_path(&first)).unwrap();
    assert_eq!(
        dst.snapshot_names(Some("vm/1")).len(),
        2,
        "unfinished is not listed"
    );

    // A real kill, wherever it lands.
    let mut child = dst
        .cmd()
        .args(["sync", "--from"])
        .arg(&src.path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(Duration::from_secs(20), || dst.chunk_count() > 11);
    let _ = child.kill();
    let _ = child.wait();

    let run = sync(&src, &dst, &[]);
    run.ok();
    assert_eq!(dst.snapshot_names(Some("vm/1")).len(), 3);
    dst.run(["verify", "--all"]).ok();
    assert_eq!(
        dst.restore_bytes(&snap("1", T3), "drive-scsi0.img"),
        image(&[20, 21, 22, 23, 24, 25, 26, 27])
    );
}

#[test]
fn corrupt_source_chunk_fails_only_its_snapshot() {
    let src = Store::new();
    let dst = Store::new();
    src.backup_image(&image(&[30, 31]), "1", T1);
    src.backup_image(&image(&[32]), "2", T1);
    let bad = image_digests(&image(&[31]))[0].clone();
    let path = src.chunk_path(&bad);
    let mut raw = fs::read(&path).unwrap();
    let mid = raw.len() / 2;
    raw[mid] ^= 0x55;
    fs::write(&path, raw).unwrap();

    let run = sync(&src, &dst, &[]);
    run.expect_code(8);
    let report = run.json();
    assert_eq!(report["copied"], 1);
    assert_eq!(report["failed"], 1);
    assert!(report["snapshots"][0]["error"]
        .as_str()
        .unwrap()
        .contains(&bad));
    assert!(
        !dst.snapshot_dir(&snap("1", T1)).exists(),
        "no half snapshot"
    );
    assert!(
        !dst.chunk_path(&bad).exists(),
        "a corrupt chunk is never copied"
    );
    dst.run(["verify", "--all"]).ok();
}

#[test]
fn namespaces_are_synced_and_created() {
    let src = Store::new();
    let dst = Store::new();
    src.run(["namespace", "create", "site"]).ok();
    src.run(["namespace", "create", "site/rack1"]).ok();
    let path = src.write_file("a.img", &image(&[40]));
    let mut args = backup_args(&[img_spec("drive-scsi0", &path)], "7", T1);
    args.extend(["--ns".into(), "site/rack1".into()]);
    src.run(&args).ok();
    src.backup_image(&image(&[41]), "8", T1);

    let run = sync(&src, &dst, &["--ns", "site"]);
    run.ok();
    assert_eq!(run.json()["copied"], 1, "only the namespace subtree");
    assert!(dst.path.join("ns/site/ns/rack1/vm/7").is_dir());
    assert!(!dst.path.join("vm/8").exists());
    dst.run(["--ns", "site/rack1", "verify", "vm/7"]).ok();
}
