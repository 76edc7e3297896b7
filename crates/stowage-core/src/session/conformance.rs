//! One suite of checks that every [`Repository`] must pass: the one in memory, the local
//! datastore, and a remote server behind the client. Each check is a function over a
//! repository; [`conformance_tests!`](crate::conformance_tests) turns them into tests.
//!
//! Each check uses groups of its own, so all may run against one repository.

use std::collections::HashSet;

use stowage_format::blob::{decode_blob, MAX_BLOB_SIZE};
use stowage_format::manifest::MANIFEST_BLOB_NAME;
use stowage_format::{sha256, Manifest};
use stowage_types::{ArchiveName, BackupGroup, BackupTime, BackupType, Digest, SnapshotRef};

use crate::{ChunkCodec, PLAIN};

use super::{
    BackupTarget, IndexChunk, IndexKind, IndexTally, IndexWriter, Repository, SessionError,
};

const CHUNK: u64 = 4096;

fn group(id: &str) -> BackupGroup {
    BackupGroup::new(BackupType::Vm, id).expect("a valid group")
}

fn time(n: i64) -> Option<BackupTime> {
    Some(BackupTime::from_epoch(1_700_000_000 + n).expect("a valid time"))
}

fn name(text: &str) -> ArchiveName {
    ArchiveName::parse(text).expect("a valid archive name")
}

/// `len` bytes that differ for each `seed`.
fn data(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Uploads `chunk` through `writer` as the pipelines do.
fn upload(writer: &dyn IndexWriter, chunk: &[u8]) -> IndexChunk {
    let digest = PLAIN.digest(chunk);
    let mut encoded = Vec::new();
    PLAIN
        .encoder()
        .unwrap()
        .encode(chunk, &mut encoded)
        .unwrap();
    if !writer.touch_chunk(&digest).unwrap() {
        writer.insert_chunk(&digest, &encoded).unwrap();
    }
    IndexChunk {
        digest,
        len: chunk.len() as u32,
    }
}

/// Writes an index of `chunks` (uploaded first) and closes it.
fn write_index(
    target: &dyn BackupTarget,
    archive: &str,
    kind: IndexKind,
    chunks: &[Vec<u8>],
) -> Vec<Digest> {
    let writer = target.create_index(&name(archive), kind).unwrap();
    let mut tally = IndexTally::new(kind);
    let mut digests = Vec::new();
    for chunk in chunks {
        let entry = upload(&*writer, chunk);
        writer.append(&[entry]).unwrap();
        tally.add(&entry);
        digests.push(entry.digest);
    }
    writer.close(tally.close()).unwrap();
    digests
}

fn image_kind(chunks: &[Vec<u8>]) -> IndexKind {
    IndexKind::Fixed {
        size: Some(chunks.iter().map(|c| c.len() as u64).sum()),
        chunk_size: CHUNK,
    }
}

fn image(seed: u8) -> Vec<Vec<u8>> {
    vec![
        data(seed, CHUNK as usize),
        data(seed + 1, CHUNK as usize),
        data(seed + 2, 100),
    ]
}

fn read_chunk(source: &dyn crate::ChunkSource, digest: &Digest, len: usize) -> Vec<u8> {
    let mut encoded = Vec::new();
    source.read_chunk(digest, &mut encoded).unwrap();
    let mut plain = Vec::new();
    let mut decoder = source.codec().decoder().unwrap();
    crate::verify_chunk(
        source.codec(),
        &mut *decoder,
        digest,
        &encoded,
        len,
        &mut plain,
    )
    .unwrap();
    plain
}

fn assert_refused<T>(result: Result<T, SessionError>, what: &str) {
    match result {
        Ok(_) => panic!("{what}: accepted"),
        Err(e) => assert!(
            !e.to_string().is_empty(),
            "{what}: an error without a message"
        ),
    }
}

/// An image, an archive with a repeated chunk and a blob go in; the reader gives back the
/// same bytes, and the manifest lists each file with its checksum and size.
pub fn round_trip(repo: &dyn Repository) {
    let g = group("conformance-round-trip");
    let target = repo.begin_backup(&g, time(1)).unwrap();
    let snapshot = SnapshotRef::new(g.clone(), time(1).unwrap());
    assert_eq!(target.snapshot(), &snapshot);
    assert_eq!(target.base(), None);
    assert!(target.known_chunks().unwrap().is_empty());
    let img = image(1);
    let img_digests = write_index(&*target, "drive-scsi0.img", image_kind(&img), &img);
    let pxar = vec![data(7, 1000), data(8, 3000), data(7, 1000), vec![0xaa]];
    let pxar_digests = write_index(&*target, "root.pxar", IndexKind::Dynamic, &pxar);
    target
        .add_blob(&name("qemu-server.conf"), b"memory: 512\n")
        .unwrap();
    let mut unprotected = serde_json::Map::new();
    unprotected.insert("note".into(), "kept".into());
    assert_eq!(target.finish(unprotected).unwrap(), snapshot);

    assert_eq!(repo.finished_snapshots(&g).unwrap(), vec![snapshot.clone()]);
    let reader = repo.open_snapshot(&snapshot).unwrap();
    let manifest = reader.manifest();
    let mut files: Vec<&str> = manifest.files.iter().map(|f| f.filename.as_str()).collect();
    files.sort_unstable();
    assert_eq!(
        files,
        [
            "drive-scsi0.img.fidx",
            "qemu-server.conf.blob",
            "root.pxar.didx"
        ]
    );
    assert_eq!(manifest.unprotected.get("note"), Some(&"kept".into()));
    let raw = reader.download(MANIFEST_BLOB_NAME).unwrap();
    let stored = Manifest::from_json(&decode_blob(&raw, MAX_BLOB_SIZE).unwrap()).unwrap();
    assert_eq!(stored.files, manifest.files);

    let fixed = reader.fixed_index(&name("drive-scsi0.img")).unwrap();
    assert_eq!(fixed.digests, img_digests);
    assert_eq!((fixed.size, fixed.chunk_size), (2 * CHUNK + 100, CHUNK));
    for (i, chunk) in img.iter().enumerate() {
        assert_eq!(
            &read_chunk(reader.chunks(), &fixed.digests[i], chunk.len()),
            chunk
        );
    }
    let dynamic = reader.dynamic_index(&name("root.pxar")).unwrap();
    let ends: Vec<u64> = dynamic.entries.iter().map(|e| e.0).collect();
    assert_eq!(ends, [1000, 4000, 5000, 5001]);
    assert_eq!(
        dynamic.entries.iter().map(|e| e.1).collect::<Vec<_>>(),
        pxar_digests
    );
    assert_eq!(pxar_digests[0], pxar_digests[2]);
    assert_eq!(
        reader.blob(&name("qemu-server.conf")).unwrap(),
        b"memory: 512\n"
    );
}

/// The second backup of a group is incremental against the first: it knows the first one's
/// chunks and may append them without uploading.
pub fn incremental_knows_the_base(repo: &dyn Repository) {
    let g = group("conformance-incremental");
    let first_chunks = image(10);
    let target = repo.begin_backup(&g, time(1)).unwrap();
    let first = write_index(
        &*target,
        "disk.img",
        image_kind(&first_chunks),
        &first_chunks,
    );
    let base = target.finish(Default::default()).unwrap();

    let target = repo.begin_backup(&g, time(2)).unwrap();
    assert_eq!(target.base(), Some(&base));
    let known = target.known_chunks().unwrap();
    assert_eq!(known, first.iter().copied().collect::<HashSet<_>>());
    let kind = image_kind(&first_chunks);
    let writer = target.create_index(&name("disk.img"), kind).unwrap();
    let mut tally = IndexTally::new(kind);
    let changed = upload(&*writer, &data(99, CHUNK as usize));
    let entries = [
        changed,
        IndexChunk {
            digest: first[1],
            len: CHUNK as u32,
        },
        IndexChunk {
            digest: first[2],
            len: 100,
        },
    ];
    writer.append(&entries).unwrap();
    entries.iter().for_each(|e| tally.add(e));
    writer.close(tally.close()).unwrap();
    let second = target.finish(Default::default()).unwrap();

    let reader = repo.open_snapshot(&second).unwrap();
    let index = reader.fixed_index(&name("disk.img")).unwrap();
    assert_eq!(index.digests, [changed.digest, first[1], first[2]]);
    assert_eq!(read_chunk(reader.chunks(), &first[2], 100), first_chunks[2]);
    assert_refused(
        repo.begin_backup(&g, time(2)),
        "a snapshot not newer than the group's newest",
    );
}

/// A digest neither uploaded nor known cannot be appended, and the index then never closes.
pub fn unknown_chunks_are_refused(repo: &dyn Repository) {
    let g = group("conformance-unknown");
    let target = repo.begin_backup(&g, time(1)).unwrap();
    let writer = target
        .create_index(&name("root.pxar"), IndexKind::Dynamic)
        .unwrap();
    let stranger = IndexChunk {
        digest: sha256(b"never uploaded"),
        len: 14,
    };
    assert_refused(
        writer.append(&[stranger]),
        "appending a chunk never uploaded",
    );
    drop(writer);
    target.add_blob(&name("other.conf"), b"x").unwrap();
    assert_refused(
        target.finish(Default::default()),
        "finishing with an unclosed index",
    );
    assert!(repo.finished_snapshots(&g).unwrap().is_empty());
}

/// A close whose count, size or checksum differs from the appends is refused, and so is
/// `finish` afterwards.
pub fn close_must_agree(repo: &dyn Repository) {
    let g = group("conformance-close");
    let target = repo.begin_backup(&g, time(1)).unwrap();
    let writer = target
        .create_index(&name("root.pxar"), IndexKind::Dynamic)
        .unwrap();
    let entry = upload(&*writer, &data(3, 500));
    writer.append(&[entry]).unwrap();
    let mut tally = IndexTally::new(IndexKind::Dynamic);
    tally.add(&entry);
    let mut wrong = tally.close();
    wrong.size += 1;
    assert_refused(writer.close(wrong), "a close with the wrong size");
    assert_refused(
        target.finish(Default::default()),
        "finishing after a failed close",
    );
    assert!(repo.finished_snapshots(&g).unwrap().is_empty());
}

/// A fixed index takes chunks of its chunk size (only the last one shorter) up to its size,
/// and closes only when complete.
pub fn fixed_index_shape(repo: &dyn Repository) {
    let g = group("conformance-fixed");
    let target = repo.begin_backup(&g, time(1)).unwrap();
    let kind = IndexKind::Fixed {
        size: Some(3 * CHUNK),
        chunk_size: CHUNK,
    };
    let writer = target.create_index(&name("disk.img"), kind).unwrap();
    let long = upload(&*writer, &data(1, CHUNK as usize + 1));
    assert_refused(writer.append(&[long]), "a chunk longer than the chunk size");
    let full = upload(&*writer, &data(2, CHUNK as usize));
    writer.append(&[full]).unwrap();
    let mut tally = IndexTally::new(kind);
    tally.add(&full);
    assert_refused(
        writer.close(tally.close()),
        "closing an image with chunks missing",
    );
    assert_refused(
        target.create_index(
            &name("bad.img"),
            IndexKind::Fixed {
                size: Some(0),
                chunk_size: CHUNK,
            },
        ),
        "an empty image",
    );
}

/// A backup dropped before `finish` leaves nothing visible and does not block the group.
pub fn unfinished_backups_vanish(repo: &dyn Repository) {
    let g = group("conformance-unfinished");
    let target = repo.begin_backup(&g, time(1)).unwrap();
    let chunks = image(20);
    write_index(&*target, "disk.img", image_kind(&chunks), &chunks);
    target.add_blob(&name("vm.conf"), b"cores: 2\n").unwrap();
    drop(target);
    assert!(repo.finished_snapshots(&g).unwrap().is_empty());
    let snapshot = SnapshotRef::new(g.clone(), time(1).unwrap());
    assert_refused(
        repo.open_snapshot(&snapshot),
        "opening an unfinished snapshot",
    );
    let target = repo.begin_backup(&g, time(1)).unwrap();
    assert_eq!(target.base(), None);
    target.add_blob(&name("vm.conf"), b"cores: 4\n").unwrap();
    assert_eq!(target.finish(Default::default()).unwrap(), snapshot);
}

/// One backup of a group at a time; other groups run beside it.
pub fn one_backup_per_group(repo: &dyn Repository) {
    let g = group("conformance-exclusive");
    let target = repo.begin_backup(&g, time(1)).unwrap();
    assert_refused(
        repo.begin_backup(&g, time(2)),
        "a second backup of a running group",
    );
    let other = repo
        .begin_backup(&group("conformance-exclusive-other"), time(1))
        .unwrap();
    drop(other);
    drop(target);
    repo.begin_backup(&g, time(2)).unwrap();
}

/// A snapshot holds one file of each name; an empty snapshot is refused.
pub fn names_are_unique_and_snapshots_not_empty(repo: &dyn Repository) {
    let g = group("conformance-names");
    let target = repo.begin_backup(&g, time(1)).unwrap();
    assert_refused(target.finish(Default::default()), "an empty snapshot");
    assert!(repo.finished_snapshots(&g).unwrap().is_empty());
    let target = repo.begin_backup(&g, time(2)).unwrap();
    let writer = target
        .create_index(&name("root.pxar"), IndexKind::Dynamic)
        .unwrap();
    assert_refused(
        target.create_index(&name("root.pxar"), IndexKind::Dynamic),
        "a second writer of an open index",
    );
    let entry = upload(&*writer, b"entry");
    writer.append(&[entry]).unwrap();
    let mut tally = IndexTally::new(IndexKind::Dynamic);
    tally.add(&entry);
    writer.close(tally.close()).unwrap();
    assert_refused(
        target.create_index(&name("root.pxar"), IndexKind::Dynamic),
        "a second index of a closed name",
    );
    target.add_blob(&name("a.conf"), b"1").unwrap();
    assert_refused(
        target.add_blob(&name("a.conf"), b"2"),
        "a second blob of one name",
    );
    target.finish(Default::default()).unwrap();
}

/// A reader names what is missing.
pub fn readers_name_missing_archives(repo: &dyn Repository) {
    let g = group("conformance-missing");
    let target = repo.begin_backup(&g, time(1)).unwrap();
    target.add_blob(&name("a.conf"), b"1").unwrap();
    let snapshot = target.finish(Default::default()).unwrap();
    let reader = repo.open_snapshot(&snapshot).unwrap();
    let err = reader
        .fixed_index(&name("disk.img"))
        .expect_err("no such archive");
    assert!(matches!(err, SessionError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("disk.img"), "{err}");
    assert_refused(
        repo.open_snapshot(&SnapshotRef::new(g, time(9).unwrap())),
        "a snapshot that was never made",
    );
}

/// Every check of the suite as a `#[test]` function. `$make` makes a fixture (a repository,
/// or what owns one: a temporary directory, a server) for each test; `$run(&fixture, check)`
/// calls `check` with the fixture's repository.
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr, $run:expr) => {
        $crate::conformance_tests!(@each $make, $run;
            round_trip, incremental_knows_the_base, unknown_chunks_are_refused,
            close_must_agree, fixed_index_shape, unfinished_backups_vanish,
            one_backup_per_group, names_are_unique_and_snapshots_not_empty,
            readers_name_missing_archives);
    };
    (@each $make:expr, $run:expr; $($check:ident),*) => {
        $(
            #[test]
            fn $check() {
                let fixture = ($make)();
                ($run)(&fixture, $crate::session::conformance::$check);
            }
        )*
    };
}
