//! Fast hashes: an image backup records each chunk's BLAKE3 in the client's cache, and the next
//! backup of the image recognises unchanged chunks by it. The cache only ever saves time: the
//! snapshots are the same with it, without it, and with a damaged one.

mod common;

use std::fs;
use std::path::Path;

use common::*;

const MIB: usize = 1 << 20;

fn image() -> Vec<u8> {
    let mut rng = XorShift::new(11);
    let mut data = vec![0u8; 12 * MIB];
    rng.fill(&mut data[..8 * MIB]);
    data
}

/// Backs up `data` as vm/`id` at `epoch` with the cache in `cache`; returns stderr.
fn backup(store: &Store, cache: &Path, data: &[u8], id: &str, epoch: i64) -> String {
    let path = store.write_file(&format!("img-{id}-{epoch}"), data);
    let mut cmd = store.cmd();
    cmd.env("STOWAGE_CACHE_DIR", cache).arg("-v");
    let run = run_cmd(
        cmd,
        backup_args(&[img_spec("drive-scsi0", &path)], id, epoch),
        None,
    );
    run.ok();
    run.stderr
}

fn fast_hashes_used(stderr: &str) -> usize {
    let line = stderr
        .lines()
        .find(|l| l.contains("fast hashes (BLAKE3) from the previous backup"))
        .expect("the verbose line");
    line.split_whitespace().next().unwrap().parse().unwrap()
}

fn cache_files(cache: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![cache.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            match entry.file_type().unwrap().is_dir() {
                true => dirs.push(entry.path()),
                false => found.push(entry.path()),
            }
        }
    }
    found
}

#[test]
fn an_unchanged_chunk_is_recognised_and_the_snapshot_is_the_same() {
    let (store, plain) = (Store::new(), Store::new());
    let cache = store.file("cache");
    let mut data = image();
    assert_eq!(fast_hashes_used(&backup(&store, &cache, &data, "1", T1)), 0);
    plain.backup_image(&data, "1", T1);
    let files = cache_files(&cache);
    assert_eq!(files.len(), 1, "one cache file: {files:?}");
    assert!(files[0].ends_with(format!("vm/1/drive-scsi0.img.fidx/{T1}.b3")));

    data[5 * MIB] ^= 0xff;
    let used = fast_hashes_used(&backup(&store, &cache, &data, "1", T2));
    assert_eq!(
        used, 2,
        "the two distinct random chunks of the previous backup"
    );
    plain.backup_image(&data, "1", T2);
    let index = |s: &Store| {
        fs::read(
            s.path
                .join(format!("vm/1/{}/drive-scsi0.img.fidx", time_name(T2))),
        )
    };
    let (ours, theirs) = (index(&store).unwrap(), index(&plain).unwrap());
    assert_eq!(ours[4096..], theirs[4096..], "the same chunk digests");
    assert_eq!(store.restore_bytes(&snap("1", T2), "drive-scsi0.img"), data);
    store.run(["verify", "--all"]).ok();
}

#[test]
fn a_damaged_cache_is_ignored() {
    let store = Store::new();
    let cache = store.file("cache");
    let mut data = image();
    backup(&store, &cache, &data, "2", T1);
    let file = cache_files(&cache).pop().unwrap();
    let mut bytes = fs::read(&file).unwrap();
    bytes[40] ^= 1;
    fs::write(&file, bytes).unwrap();
    data[MIB] ^= 1;
    assert_eq!(fast_hashes_used(&backup(&store, &cache, &data, "2", T2)), 0);
    assert_eq!(store.restore_bytes(&snap("2", T2), "drive-scsi0.img"), data);
    store.run(["verify", "--all"]).ok();
}
