//! Garbage collection and prune killed at arbitrary points leave a store in which every
//! remaining snapshot verifies, and a later uninterrupted run finishes the job.

mod common;

use std::process::Stdio;
use std::thread;
use std::time::Duration;

use common::*;

fn image(seeds: &[u64]) -> Vec<u8> {
    seeds
        .iter()
        .flat_map(|&s| random_bytes(s, CHUNK / 4))
        .collect()
}

/// Starts `args`, kills it after `delay_ms` (if it is still running), and waits for it.
fn kill_after(store: &Store, args: &[&str], delay_ms: u64) {
    let mut child = store
        .cmd()
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    thread::sleep(Duration::from_millis(delay_ms));
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn killed_gc_and_prune_never_damage_the_store() {
    let store = Store::new();
    // Eight snapshots in each of two groups; each image is one 3 MiB chunk of its own.
    for id in ["1", "2"] {
        for round in 0..8u64 {
            let seed = id.parse::<u64>().unwrap() * 100 + round;
            store.backup_image(&image(&[7, seed, seed + 50]), id, T1 + round as i64 * 3600);
        }
    }
    let mut rng = XorShift::new(42);
    for step in 0..12 {
        let delay = rng.next_u64() % 60;
        if step % 2 == 0 {
            kill_after(&store, &["gc", "--cutoff", "0"], delay);
        } else {
            let group = if step % 4 == 1 { "vm/1" } else { "vm/2" };
            kill_after(&store, &["prune", group, "--keep-last", "3"], delay);
            // Forget one more so the collections have garbage to chew on.
            let names = store.snapshot_names(Some(group));
            if names.len() > 4 {
                store.run(["forget", &names[0]]).ok();
            }
        }
        store.run(["verify", "--all"]).ok();
    }
    // Uninterrupted runs finish the job: three snapshots per group, no garbage.
    for group in ["vm/1", "vm/2"] {
        store.run(["prune", group, "--keep-last", "3"]).ok();
        assert_eq!(store.snapshot_names(Some(group)).len(), 3);
    }
    store.run(["gc", "--cutoff", "0"]).ok();
    store.run(["verify", "--all"]).ok();
    let leftovers: Vec<String> = store
        .all_chunk_dir_files()
        .into_iter()
        .filter(|n| !is_digest(n.rsplit('/').next().unwrap_or(n)))
        .collect();
    assert!(leftovers.is_empty(), "left in .chunks: {leftovers:?}");
    // One per remaining snapshot.
    assert_eq!(store.chunk_count(), 6);
    for group in ["vm/1", "vm/2"] {
        for name in store.snapshot_names(Some(group)) {
            let dir = store.snapshot_dir(&name);
            assert!(dir.join("index.json.blob").is_file());
        }
        // No unfinished leftovers either.
        let dirs = dir_names(&store.path.join(group));
        assert_eq!(
            dirs.iter().filter(|d| d.as_str() != "owner").count(),
            3,
            "{dirs:?}"
        );
    }
}
