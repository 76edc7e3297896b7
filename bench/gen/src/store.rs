//! A synthetic datastore for the maintenance benchmarks: CHUNKS small chunk files and SNAPSHOTS
//! finished snapshots (20 per group), each with one fixed index. Consecutive snapshots of a group
//! share most chunks, as daily backups of one VM do; a few chunks per group are referenced by no
//! snapshot (garbage). Every chunk's atime is set two days back, so a collection with the default
//! cutoff marks the referenced chunks and removes the rest.

use std::fs;
use std::io;
use std::path::Path;

use nix::sys::stat::{utimensat, UtimensatFlags};
use nix::sys::time::TimeSpec;
use stowage_datastore::Datastore;
use stowage_format::blob::encode_uncompressed;
use stowage_format::manifest::MANIFEST_BLOB_NAME;
use stowage_format::{sha256, CryptMode, FileEntry, FixedIndex, Manifest};
use stowage_types::{BackupGroup, BackupTime, BackupType, Digest, SnapshotRef};

const SNAPSHOTS_PER_GROUP: u64 = 20;
const CHUNK_SIZE: u64 = 4 << 20;

fn chunk_data(id: u64) -> Vec<u8> {
    let mut data = b"stowage-gc-bench".to_vec();
    data.extend_from_slice(&id.to_le_bytes());
    data
}

fn write_chunks(
    store: &Datastore,
    ids: std::ops::Range<u64>,
    old: &TimeSpec,
) -> io::Result<Vec<Digest>> {
    let mut digests = Vec::with_capacity(ids.clone().count());
    for id in ids {
        let data = chunk_data(id);
        let digest = sha256(&data);
        let path = store.chunk_store().chunk_path(&digest);
        fs::write(&path, encode_uncompressed(&data))?;
        utimensat(
            nix::fcntl::AT_FDCWD,
            &path,
            old,
            old,
            UtimensatFlags::NoFollowSymlink,
        )?;
        digests.push(digest);
    }
    Ok(digests)
}

fn write_snapshot(store: &Datastore, snapshot: &SnapshotRef, digests: &[Digest]) -> io::Result<()> {
    let dir = store.snapshot_dir(snapshot);
    fs::create_dir_all(&dir)?;
    let index = FixedIndex {
        uuid: [7; 16],
        ctime: snapshot.time.epoch(),
        size: digests.len() as u64 * CHUNK_SIZE,
        chunk_size: CHUNK_SIZE,
        digests: digests.to_vec(),
    };
    let bytes = index.encode().map_err(io::Error::other)?;
    fs::write(dir.join("drive-scsi0.img.fidx"), bytes)?;
    let mut manifest = Manifest::new(snapshot);
    manifest.files.push(FileEntry {
        crypt_mode: CryptMode::None,
        csum: index.csum(),
        filename: "drive-scsi0.img.fidx".into(),
        size: index.size,
    });
    fs::write(
        dir.join(MANIFEST_BLOB_NAME),
        encode_uncompressed(&manifest.to_json()),
    )
}

pub fn generate(dir: &str, chunks: u64, snapshots: u64) -> io::Result<()> {
    let store = Datastore::create(Path::new(dir)).map_err(io::Error::other)?;
    let groups = snapshots.div_ceil(SNAPSHOTS_PER_GROUP).max(1);
    let per_group = chunks / groups;
    let old = TimeSpec::new(BackupTime::now().epoch() - 2 * 86400, 0);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()) as u64;
    let digests: Vec<Digest> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (store, old) = (&store, &old);
                let range = chunks * t / threads..chunks * (t + 1) / threads;
                s.spawn(move || write_chunks(store, range, old))
            })
            .collect();
        let mut all = Vec::with_capacity(chunks as usize);
        for h in handles {
            all.extend(
                h.join()
                    .map_err(|_| io::Error::other("writer panicked"))??,
            );
        }
        Ok::<_, io::Error>(all)
    })?;
    let window = per_group / 2;
    let step = per_group / (2 * SNAPSHOTS_PER_GROUP);
    let mut made = 0;
    'outer: for g in 0..groups {
        let group =
            BackupGroup::new(BackupType::Vm, &(100 + g).to_string()).map_err(io::Error::other)?;
        for s in 0..SNAPSHOTS_PER_GROUP {
            if made == snapshots {
                break 'outer;
            }
            let time = BackupTime::from_epoch(1_700_000_000 + s as i64 * 86400)
                .map_err(io::Error::other)?;
            let start = (g * per_group + s * step) as usize;
            write_snapshot(
                &store,
                &SnapshotRef::new(group.clone(), time),
                &digests[start..start + window as usize],
            )?;
            made += 1;
        }
    }
    eprintln!(
        "datastore {dir}: {chunks} chunks, {made} snapshots in {groups} groups, {window} chunks per snapshot"
    );
    Ok(())
}
