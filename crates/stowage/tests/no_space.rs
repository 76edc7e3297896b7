//! A full disk gets exit code 12, a clear message, and leaves earlier backups intact.

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn stowage(repo: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stowage"))
        .arg("--repository")
        .arg(repo)
        .args(args)
        .output()
        .expect("run stowage")
}

fn random_bytes(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 24) as u8
        })
        .collect()
}

fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .unwrap()
}

fn create_store(repo: &Path) {
    let out = stowage(repo, &["datastore", "create", repo.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Backs up `len` random bytes as image `disk.img` of group vm/1 at `time`.
fn backup(repo: &Path, dir: &Path, len: usize, seed: u64, time: &str) -> Output {
    let img = dir.join(format!("disk-{seed}.raw"));
    std::fs::write(&img, random_bytes(len, seed)).unwrap();
    let spec = format!("disk.img:{}", img.display());
    let args = [
        "backup",
        "-q",
        &spec,
        "--backup-type",
        "vm",
        "--backup-id",
        "1",
        "--backup-time",
        time,
    ];
    stowage(repo, &args)
}

#[test]
fn restore_to_a_full_device_exits_12() {
    if !Path::new("/dev/full").exists() {
        eprintln!("skipped: /dev/full is absent");
        return;
    }
    let dir = scratch();
    let repo = dir.path().join("store");
    create_store(&repo);
    let out = backup(&repo, dir.path(), 1 << 20, 7, "1000");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = stowage(&repo, &["restore", "-q", "vm/1", "disk.img", "/dev/full"]);
    assert_eq!(
        out.status.code(),
        Some(12),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/dev/full") && err.to_lowercase().contains("space"),
        "{err}"
    );
}

/// Needs root to mount a small tmpfs; skipped otherwise.
#[test]
fn backup_into_a_full_datastore_exits_12_and_keeps_earlier_snapshots() {
    let dir = scratch();
    let Some(small) = common::SmallTmpfs::mount(dir.path(), "small", "24m") else {
        return;
    };
    let mnt = &small.path;
    let repo = mnt.join("store");
    create_store(&repo);
    let out = backup(&repo, dir.path(), 2 << 20, 1, "1000");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = backup(&repo, dir.path(), 48 << 20, 2, "2000");
    assert_eq!(
        out.status.code(),
        Some(12),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        err.starts_with("error:") && err.to_lowercase().contains("space"),
        "{err}"
    );

    let out = stowage(&repo, &["--output-format", "json", "snapshots"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["snapshot"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["vm/1/1970-01-01T00:16:40Z"]);
    let out = stowage(&repo, &["verify", "--all"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
