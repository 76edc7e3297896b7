//! Prune, protect and unprotect through the binary: PBS's selection, dry runs, removal of
//! exactly the selected snapshot directories, protected snapshots, and no keep option.

mod common;

use std::ffi::OsStr;
use std::fs;

use common::*;

/// 2024-01-01T00:00:00Z.
const DAY1: i64 = 1_704_067_200;
const HOUR: i64 = 3600;
const DAY: i64 = 24 * HOUR;

/// Runs the binary on `store` with TZ=UTC, so periods are UTC days.
fn run_utc<I, S>(store: &Store, args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = store.cmd();
    cmd.env("TZ", "UTC");
    run_cmd(cmd, args, None)
}

/// Backs up a tiny config file into `vm/<id>` at each time, oldest first.
fn backup_at(store: &Store, id: &str, times: &[i64]) {
    for &t in times {
        let conf = store.write_file(&format!("conf-{id}-{t}"), format!("time {t}\n").as_bytes());
        store.backup(&[conf_spec("qemu-server", &conf)], id, t);
    }
}

#[test]
fn prune_keeps_last_and_daily_like_pbs() {
    let store = Store::new();
    let d1a = DAY1 + 10 * HOUR;
    let d1b = DAY1 + 18 * HOUR;
    let d2a = DAY1 + DAY + 9 * HOUR;
    let d2b = DAY1 + DAY + 20 * HOUR;
    let d3 = DAY1 + 2 * DAY + 12 * HOUR;
    backup_at(&store, "100", &[d1a, d1b, d2a, d2b, d3]);
    // Another group is not touched.
    backup_at(&store, "200", &[d1a, d1b]);
    let args = ["prune", "vm/100", "--keep-last", "1", "--keep-daily", "2"];

    // Dry run: keep-last takes the newest; daily skips its day and keeps the newest snapshot
    // of the two days before.
    let mut dry = args.to_vec();
    dry.push("--dry-run");
    let run = run_utc(&store, &dry);
    run.ok();
    let expected = format!(
        "{} keep (last)\n{} keep (daily)\n{} remove\n{} keep (daily)\n{} remove\n\
         3 kept, would remove 2\n",
        snap("100", d3),
        snap("100", d2b),
        snap("100", d2a),
        snap("100", d1b),
        snap("100", d1a)
    );
    assert_eq!(run.stdout_text(), expected);
    assert_eq!(store.snapshot_names(Some("vm/100")).len(), 5);

    let mut json_dry = vec!["--output-format", "json"];
    json_dry.extend(&dry);
    let run = run_utc(&store, &json_dry);
    run.ok();
    let rows = run.json();
    let rows = rows.as_array().unwrap();
    let got: Vec<(i64, &str, bool, bool, Option<&str>)> = rows
        .iter()
        .map(|r| {
            assert_eq!(r["backup-type"], "vm");
            assert_eq!(r["backup-id"], "100");
            (
                r["backup-time"].as_i64().unwrap(),
                r["mark"].as_str().unwrap(),
                r["keep"].as_bool().unwrap(),
                r["protected"].as_bool().unwrap(),
                r["rule"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (d3, "keep", true, false, Some("last")),
            (d2b, "keep", true, false, Some("daily")),
            (d2a, "remove", false, false, None),
            (d1b, "keep", true, false, Some("daily")),
            (d1a, "remove", false, false, None),
        ]
    );
    assert_eq!(store.snapshot_names(Some("vm/100")).len(), 5);

    // The real run removes exactly the two directories.
    let run = run_utc(&store, args);
    run.ok();
    assert!(run.stdout_text().ends_with("3 kept, 2 removed\n"));
    assert_eq!(
        store.snapshot_names(None),
        vec![
            snap("100", d1b),
            snap("100", d2b),
            snap("100", d3),
            snap("200", d1a),
            snap("200", d1b)
        ]
    );
    assert!(!store.snapshot_dir(&snap("100", d1a)).exists());
    assert!(!store.snapshot_dir(&snap("100", d2a)).exists());
    store.run(["verify", "--all"]).ok();

    // Pruning again with the same options removes nothing more.
    let run = run_utc(&store, args);
    run.ok();
    assert!(run.stdout_text().ends_with("3 kept, 0 removed\n"));
    assert_eq!(store.snapshot_names(Some("vm/100")).len(), 3);
}

#[test]
fn protected_snapshots_survive_prune_and_forget() {
    let store = Store::new();
    backup_at(&store, "100", &[T1, T2, T3]);
    let oldest = snap("100", T1);

    let run = store.run(["--output-format", "json", "protect", &oldest]);
    run.ok();
    assert_eq!(run.json()["snapshot"], oldest.as_str());
    assert_eq!(run.json()["protected"], true);
    assert!(store.snapshot_dir(&oldest).join(".protected").is_file());

    // `snapshots` shows the protection.
    let run = store.run(["--output-format", "json", "snapshots", "vm/100"]);
    run.ok();
    let flags: Vec<bool> = run
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["protected"].as_bool().unwrap())
        .collect();
    assert_eq!(flags, vec![true, false, false]);
    let run = store.run(["snapshots", "vm/100"]);
    run.ok();
    let text = run.stdout_text();
    let line = text.lines().find(|l| l.contains(&oldest)).unwrap();
    assert!(line.contains("(protected)"), "{text}");

    // Prune keeps it without counting it: keep-last 1 still keeps T3.
    let run = run_utc(&store, ["prune", "vm/100", "--keep-last", "1"]);
    run.ok();
    assert_eq!(
        run.stdout_text(),
        format!(
            "{} keep (last)\n{} remove\n{oldest} protected\n2 kept, 1 removed\n",
            snap("100", T3),
            snap("100", T2)
        )
    );
    assert_eq!(
        store.snapshot_names(None),
        vec![oldest.clone(), snap("100", T3)]
    );

    // Forget refuses it (usage error), until it is unprotected.
    let run = store.run(["forget", &oldest]);
    run.expect_code(2);
    let line = run.single_error_line();
    assert!(line.contains("protected"), "{line}");
    assert!(line.contains(&oldest), "{line}");
    assert!(store.snapshot_dir(&oldest).is_dir());

    let run = store.run(["unprotect", &oldest]);
    run.ok();
    assert_eq!(
        run.stdout_text(),
        format!("unprotected snapshot {oldest}\n")
    );
    assert!(!store.snapshot_dir(&oldest).join(".protected").exists());
    store.run(["forget", &oldest]).ok();
    assert_eq!(store.snapshot_names(None), vec![snap("100", T3)]);

    // A group name protects its newest snapshot; unknown snapshots are not found.
    let run = store.run(["protect", "vm/100"]);
    run.ok();
    assert_eq!(
        run.stdout_text(),
        format!("protected snapshot {}\n", snap("100", T3))
    );
    store.run(["protect", &snap("100", T2)]).expect_code(6);
    store.run(["unprotect", &snap("100", T2)]).expect_code(6);
    store.run(["protect", "vm/999"]).expect_code(6);
}

#[test]
fn no_keep_option_keeps_everything() {
    let store = Store::new();
    backup_at(&store, "100", &[T1, T2]);
    let run = run_utc(&store, ["prune", "vm/100"]);
    run.ok();
    assert_eq!(
        run.stdout_text(),
        format!(
            "No prune selection - keeping all snapshots.\n{} keep\n{} keep\n2 kept, 0 removed\n",
            snap("100", T2),
            snap("100", T1)
        )
    );
    assert_eq!(
        store.snapshot_names(None),
        vec![snap("100", T1), snap("100", T2)]
    );

    // JSON stays one document; the notice goes to stderr.
    let run = run_utc(&store, ["--output-format", "json", "prune", "vm/100"]);
    run.ok();
    let rows = run.json();
    assert_eq!(rows.as_array().unwrap().len(), 2);
    assert!(rows
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["keep"] == true && r["mark"] == "keep"));
    assert!(run.stderr.contains("No prune selection"));

    // Counts must be at least 1; unknown groups are not found.
    run_utc(&store, ["prune", "vm/100", "--keep-last", "0"]).expect_code(2);
    run_utc(&store, ["prune", "vm/999", "--keep-last", "1"]).expect_code(6);
    assert_eq!(store.snapshot_names(None).len(), 2);
}

#[test]
fn prune_handles_unfinished_snapshots() {
    let store = Store::new();
    backup_at(&store, "100", &[T2, T3]);
    // Leftovers of crashed backups: one older than the finished snapshots, one newer.
    let old = snap("100", T1);
    let new = snap("100", T4);
    for name in [&old, &new] {
        let dir = store.snapshot_dir(name);
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("drive-scsi0.img.tmp_fidx"), b"partial").unwrap();
    }
    let run = run_utc(&store, ["prune", "vm/100", "--keep-last", "5"]);
    run.ok();
    assert_eq!(
        run.stdout_text(),
        format!(
            "{new} keep-partial\n{} keep (last)\n{} keep (last)\n{old} remove\n\
             3 kept, 1 removed\n",
            snap("100", T3),
            snap("100", T2)
        )
    );
    assert!(!store.snapshot_dir(&old).exists());
    assert!(store.snapshot_dir(&new).is_dir());
    assert_eq!(
        store.snapshot_names(None),
        vec![snap("100", T2), snap("100", T3)]
    );
}
