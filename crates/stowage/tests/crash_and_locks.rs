//! A backup killed half way leaves the datastore consistent; concurrent backups of one group
//! are refused while other groups proceed.

mod common;

use std::fs;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::Duration;

use common::*;

#[test]
fn killed_backup_leaves_store_consistent() {
    let store = Store::new();
    let first = standard_image();
    store.backup_image(&first, "100", T1);
    let chunks_before = store.chunk_count();
    assert_eq!(chunks_before, 4);

    // A second backup from a pipe we control: three new random chunks, then silence.
    let mut child = store
        .cmd()
        .args(backup_args(&["drive-scsi0.img:-".to_string()], "100", T2))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn backup");
    let mut stdin = child.stdin.take().unwrap();
    for seed in [101, 102, 103] {
        stdin.write_all(&random_bytes(seed, CHUNK)).unwrap();
    }
    stdin.flush().unwrap();
    let wrote = wait_for(Duration::from_secs(30), || {
        store.chunk_count() > chunks_before
    });
    assert!(wrote, "the running backup stored no chunk within 30 s");
    assert!(
        child.try_wait().unwrap().is_none(),
        "the backup ended before it was killed"
    );
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(9), "{status:?}");
    drop(stdin);

    // Only the earlier snapshot is listed; the killed one has no manifest.
    assert_eq!(store.snapshot_names(None), vec![snap("100", T1)]);
    let killed = store.snapshot_dir(&snap("100", T2));
    assert!(!killed.join("index.json.blob").exists());
    let run = store.run(["--output-format", "json", "groups"]);
    run.ok();
    let groups = run.json();
    assert_eq!(groups[0]["backup-count"], 1);
    assert_eq!(groups[0]["last-snapshot"], snap("100", T1));
    // The killed backup's chunks are complete files under their digest (orphans, harmless).
    let orphans = store.chunk_count() - chunks_before;
    assert!((1..=3).contains(&orphans), "{orphans} new chunk files");
    for digest in store.chunk_digests() {
        let encoded = fs::read(store.chunk_path(&digest)).unwrap();
        assert!(encoded.len() > 12, "chunk {digest} is truncated");
    }

    let run = store.run(["--output-format", "json", "verify", "--all"]);
    run.ok();
    let report = run.json();
    assert_eq!(report["ok"], true);
    assert_eq!(report["snapshots"].as_array().unwrap().len(), 1);
    assert_eq!(report["chunks_checked"], 4);

    assert!(store.restore_bytes(&snap("100", T1), "drive-scsi0.img") == first);
    assert!(store.restore_bytes("vm/100", "drive-scsi0.img") == first);

    // The kernel released the locks: the next backup of the group runs, incremental against
    // the last finished snapshot.
    let mut changed = first.clone();
    changed[..CHUNK].copy_from_slice(&random_bytes(101, CHUNK));
    let path = store.write_file("after-crash.img", &changed);
    let run = store.run(backup_args(&[img_spec("drive-scsi0", &path)], "100", T3));
    run.ok();
    assert!(
        run.stderr
            .contains(&format!("Incremental against {}", snap("100", T1))),
        "{}",
        run.stderr
    );
    assert_eq!(
        store.snapshot_names(None),
        vec![snap("100", T1), snap("100", T3)]
    );
    assert!(store.restore_bytes(&snap("100", T3), "drive-scsi0.img") == changed);
    store.run(["verify", "--all"]).ok();
}

#[test]
fn second_backup_of_a_group_is_locked_out() {
    let store = Store::new();
    let small = make_image(&[Part::Pattern(4)], 300);
    store.backup_image(&small, "100", T1);
    let other = store.write_file("other.img", &make_image(&[Part::Random(6)], 10));

    // Backup A of vm/100 waits on a pipe that stays open.
    let mut a = store
        .cmd()
        .args(backup_args(&["drive-scsi0.img:-".to_string()], "100", T2))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn backup A");
    let mut a_stdin = a.stdin.take().unwrap();
    let started = wait_for(Duration::from_secs(30), || {
        store.snapshot_dir(&snap("100", T2)).is_dir()
    });
    assert!(started, "backup A did not start its snapshot within 30 s");

    // Backup B of the same group is refused.
    let run = store.run(backup_args(&[img_spec("drive-scsi0", &other)], "100", T3));
    run.expect_code(3);
    let line = run.single_error_line();
    assert!(line.contains("locked"), "{line}");
    assert!(line.contains("vm/100"), "{line}");
    assert!(!store.snapshot_dir(&snap("100", T3)).exists());

    // So is forgetting a snapshot of that group.
    let run = store.run(["forget", &snap("100", T1)]);
    run.expect_code(3);
    assert!(run.single_error_line().contains("locked"));
    assert!(store.snapshot_dir(&snap("100", T1)).is_dir());

    // Another group backs up meanwhile.
    store.backup(&[img_spec("drive-scsi0", &other)], "200", T3);
    assert_eq!(
        store.snapshot_names(None),
        vec![snap("100", T1), snap("200", T3)]
    );

    // Feed and close A's pipe: it finishes.
    let data = make_image(&[Part::Random(7), Part::Zero], 4242);
    a_stdin.write_all(&data).unwrap();
    drop(a_stdin);
    let out = wait_child(a, Duration::from_secs(120), "backup A");
    let run = Run::from_output(vec!["backup A".into()], out);
    run.ok();
    let report = run.json();
    assert_eq!(report["snapshot"], snap("100", T2));
    assert_eq!(report["size"], data.len() as u64);

    assert_eq!(
        store.snapshot_names(None),
        vec![snap("100", T1), snap("100", T2), snap("200", T3)]
    );
    assert!(store.restore_bytes(&snap("100", T2), "drive-scsi0.img") == data);
    assert!(store.restore_bytes(&snap("100", T1), "drive-scsi0.img") == small);

    // With A done, the group is free again.
    store.backup(&[img_spec("drive-scsi0", &other)], "100", T4);
    store.run(["forget", &snap("100", T1)]).ok();
    store.run(["verify", "--all"]).ok();
}
