//! Verify as PBS does it: corrupt chunks are renamed to `<hex>.<N>.bad`, each snapshot's result
//! is stored in its manifest (`unprotected.verify_state`), the next backup heals the datastore,
//! `--ignore-verified`/`--outdated-after` skip what was verified recently; snapshot notes live in
//! the same manifest.

mod common;

use std::fs;

use common::*;
use serde_json::{json, Value};
use stowage_datastore::{upid_start_time, Datastore, Upid};
use stowage_format::blob::{decode_blob, MAX_BLOB_SIZE};
use stowage_format::Manifest;
use stowage_types::SnapshotRef;

const T5: i64 = 1_700_000_400;

fn image() -> Vec<u8> {
    make_image(
        &[
            Part::Random(11),
            Part::Random(12),
            Part::Pattern(13),
            Part::Zero,
        ],
        1000,
    )
}

/// The manifest of `snapshot`, decoded straight from its file.
fn manifest(store: &Store, snapshot: &str) -> Manifest {
    let raw = fs::read(store.snapshot_dir(snapshot).join("index.json.blob")).unwrap();
    Manifest::from_json(&decode_blob(&raw, MAX_BLOB_SIZE).unwrap()).unwrap()
}

/// `snapshots --output-format json`, by snapshot name.
fn listed(store: &Store) -> Vec<(String, Value)> {
    let run = store.run(["--output-format", "json", "snapshots"]);
    run.ok();
    run.json()
        .as_array()
        .unwrap()
        .iter()
        .map(|row| (row["snapshot"].as_str().unwrap().to_string(), row.clone()))
        .collect()
}

fn row(store: &Store, snapshot: &str) -> Value {
    listed(store)
        .into_iter()
        .find(|(name, _)| name == snapshot)
        .unwrap_or_else(|| panic!("{snapshot} is not listed"))
        .1
}

fn verify_json(store: &Store, args: &[&str], code: i32) -> Value {
    let mut all = vec!["--output-format", "json", "verify"];
    all.extend(args);
    let run = store.run(all);
    run.expect_code(code);
    run.json()
}

fn names(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| {
            s.as_str()
                .or_else(|| s["snapshot"].as_str())
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn bad_chunk_is_renamed_recorded_and_healed() {
    let store = Store::new();
    let data = image();
    let (a1, a2, b) = (snap("100", T1), snap("100", T2), snap("200", T3));
    store.backup_image(&data, "100", T1);
    store.backup_image(&data, "100", T2);
    store.backup_image(&data, "200", T3);
    let digest = sha256_hex(&data[CHUNK..2 * CHUNK]);
    let chunk = store.chunk_path(&digest);
    let files_before = manifest(&store, &a1).files;

    // Corrupt one byte of a chunk both vm/100 snapshots need.
    let mut bytes = fs::read(&chunk).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    fs::write(&chunk, bytes).unwrap();

    let report = verify_json(&store, &["vm/100"], 8);
    assert_eq!(report["ok"], false);
    // Checked and reported once, though two snapshots need it.
    assert_eq!(report["chunks_checked"], 5, "{report}");
    let bad = report["bad_chunks"].as_array().unwrap();
    assert_eq!(bad.len(), 1, "{report}");
    assert_eq!(bad[0]["digest"], digest.as_str());
    assert_eq!(bad[0]["snapshots"], json!([a1, a2]));
    let renamed = chunk.with_file_name(format!("{digest}.0.bad"));
    assert_eq!(bad[0]["renamed_to"], renamed.to_str().unwrap());
    assert!(renamed.is_file());
    assert!(!chunk.exists());
    let bad_files: Vec<String> = store
        .all_chunk_dir_files()
        .into_iter()
        .filter(|f| f.ends_with(".bad"))
        .collect();
    assert_eq!(bad_files, [format!("{}/{digest}.0.bad", &digest[..4])]);

    // Both manifests say failed, with this run's UPID; nothing else in them changed.
    for s in [&a1, &a2] {
        let m = manifest(&store, s);
        assert_eq!(m.files, files_before);
        let state = &m.unprotected["verify_state"];
        assert_eq!(state["state"], "failed", "{s}");
        let upid = state["upid"].as_str().unwrap();
        assert!(
            upid.starts_with("UPID:") && upid.contains(":verify:"),
            "{upid}"
        );
        let parsed: Upid = upid.parse().unwrap();
        assert_eq!(parsed.worker_id, *s);
        assert!(upid_start_time(upid).unwrap() > T5);
        assert!(m.unprotected.contains_key("chunk_upload_stats"));
        assert!(store
            .snapshot_dir(s)
            .join(stowage_datastore::MANIFEST_LOCK_NAME)
            .is_file());
        assert_eq!(row(&store, s)["verification"]["state"], "failed");
        assert_eq!(row(&store, s)["verification"]["upid"], upid);
    }
    assert!(row(&store, &b).get("verification").is_none());
    assert_eq!(
        store.snapshot_names(None),
        vec![a1.clone(), a2.clone(), b.clone()]
    );
    let text = store.run(["snapshots"]);
    assert!(
        text.stdout_text().contains("(verify failed)"),
        "{}",
        text.stdout_text()
    );

    // The next backup of vm/100 is not incremental against the failed snapshot; it writes the
    // chunk again.
    let run = store.run(backup_args(
        &[img_spec(
            "drive-scsi0",
            &store.write_file("again.img", &data),
        )],
        "100",
        T4,
    ));
    run.ok();
    assert!(
        run.stderr.contains("No previous snapshot"),
        "{}",
        run.stderr
    );
    assert_eq!(
        run.json()["new_bytes"],
        CHUNK as u64,
        "{}",
        run.stdout_text()
    );
    assert!(chunk.is_file());

    // vm/200's snapshot was never verified, so it is a base; a chunk it needs that is gone
    // (renamed by a verify) is not taken as known but written again.
    fs::remove_file(&chunk).unwrap();
    let run = store.run(backup_args(
        &[img_spec("drive-scsi0", &store.write_file("b.img", &data))],
        "200",
        T5,
    ));
    run.ok();
    assert!(
        run.stderr.contains(&format!("Incremental against {b}")),
        "{}",
        run.stderr
    );
    assert_eq!(
        run.json()["new_bytes"],
        CHUNK as u64,
        "{}",
        run.stdout_text()
    );
    assert!(chunk.is_file());

    // Everything passes now, the new snapshots too.
    let report = verify_json(&store, &["--all"], 0);
    assert_eq!(report["ok"], true);
    assert_eq!(report["snapshots"].as_array().unwrap().len(), 5);
    assert!(report["skipped"].as_array().unwrap().is_empty());
    for s in [&a1, &snap("100", T4), &snap("200", T5)] {
        assert_eq!(
            manifest(&store, s).unprotected["verify_state"]["state"],
            "ok"
        );
    }
    // The old bad copy stays for inspection.
    assert!(renamed.is_file());
}

#[test]
fn ignore_verified_and_outdated_after() {
    let store = Store::new();
    let data = image();
    let (a, b) = (snap("100", T1), snap("200", T2));
    store.backup_image(&data, "100", T1);
    store.backup_image(&data, "200", T2);

    // Not verified yet: --ignore-verified verifies both.
    let report = verify_json(&store, &["--all", "--ignore-verified"], 0);
    assert_eq!(names(&report["snapshots"]), [a.clone(), b.clone()]);
    assert!(report["skipped"].as_array().unwrap().is_empty());
    // Now both are skipped, in text output as well.
    let report = verify_json(&store, &["--all", "--ignore-verified"], 0);
    assert!(report["snapshots"].as_array().unwrap().is_empty());
    assert_eq!(report["skipped"], json!([a, b]));
    assert_eq!(report["chunks_checked"], 0);
    let run = store.run(["verify", "--all", "--ignore-verified"]);
    run.ok();
    let text = run.stdout_text();
    assert!(text.contains(&format!("{a}: skipped")), "{text}");
    assert!(text.contains(&format!("{b}: skipped")), "{text}");
    // A failed state counts as verified too.
    let ds = Datastore::open(&store.path).unwrap();
    let a_ref: SnapshotRef = a.parse().unwrap();
    ds.update_manifest(&a_ref, |m| {
        m.unprotected.get_mut("verify_state").unwrap()["state"] = json!("failed");
    })
    .unwrap();
    let report = verify_json(&store, &["vm/100", "--ignore-verified"], 0);
    assert_eq!(report["skipped"], json!([a]));

    // A verification two years old is outdated after 0 days, not after 100000.
    let old = Upid::verify(&a, T1).to_string();
    ds.update_manifest(&a_ref, |m| {
        m.unprotected
            .insert("verify_state".into(), json!({"upid": old, "state": "ok"}));
    })
    .unwrap();
    let report = verify_json(&store, &["--all", "--outdated-after", "100000"], 0);
    assert_eq!(report["skipped"], json!([a, b]));
    let report = verify_json(
        &store,
        &["--all", "--ignore-verified", "--outdated-after", "0"],
        0,
    );
    assert_eq!(names(&report["snapshots"]), [a.as_str()]);
    assert_eq!(report["skipped"], json!([b]));
    let upid = manifest(&store, &a).unprotected["verify_state"]["upid"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(upid, old);
    assert!(upid_start_time(&upid).unwrap() > T5);
    // Without --ignore-verified everything is verified again.
    let report = verify_json(&store, &["--all"], 0);
    assert_eq!(report["snapshots"].as_array().unwrap().len(), 2);
}

#[test]
fn notes_round_trip_and_survive_verify() {
    let store = Store::new();
    store.backup_image(&image(), "100", T1);
    let s = snap("100", T1);
    let files_before = manifest(&store, &s).files;

    let run = store.run(["notes", &s]);
    run.ok();
    assert!(run.stdout.is_empty());
    assert!(row(&store, &s).get("notes").is_none());

    let text = "before the upgrade\nsecond line";
    store.run(["notes", &s, "--set", text]).ok();
    let run = store.run(["notes", &s]);
    run.ok();
    assert_eq!(run.stdout_text(), format!("{text}\n"));
    // TYPE/ID names the newest snapshot.
    assert_eq!(
        store.run(["notes", "vm/100"]).ok().stdout_text(),
        format!("{text}\n")
    );
    let run = store.run(["--output-format", "json", "notes", &s]);
    run.ok();
    assert_eq!(run.json(), json!({"snapshot": s, "notes": text}));
    assert_eq!(row(&store, &s)["notes"], text);

    // verify keeps the notes and adds its state; the files list stays.
    store.run(["verify", &s]).ok();
    let m = manifest(&store, &s);
    assert_eq!(m.unprotected["notes"], text);
    assert_eq!(m.unprotected["verify_state"]["state"], "ok");
    assert_eq!(m.files, files_before);
    assert_eq!(
        store.run(["notes", &s]).ok().stdout_text(),
        format!("{text}\n")
    );
    // And the image still restores.
    assert!(store.restore_bytes(&s, "drive-scsi0.img") == image());

    // An empty text removes them; the verify state stays.
    store.run(["notes", &s, "--set", ""]).ok();
    let run = store.run(["notes", &s]);
    run.ok();
    assert!(run.stdout.is_empty(), "{}", run.stdout_text());
    let m = manifest(&store, &s);
    assert!(!m.unprotected.contains_key("notes"));
    assert_eq!(m.unprotected["verify_state"]["state"], "ok");
    assert!(row(&store, &s).get("notes").is_none());

    // Unknown snapshots are not found, and nothing is created for them.
    let missing = snap("100", T2);
    let run = store.run(["notes", &missing, "--set", "x"]);
    run.expect_code(6);
    run.single_error_line();
    assert!(!store.snapshot_dir(&missing).exists());
}
