//! Changing a finished snapshot's manifest afterwards (verify state, notes): a read-modify-write
//! of the whole `index.json.blob` under the manifest lock, as PBS does it (spec 5.3). Only the
//! `unprotected` object may change; the files list, and so every checksum, stays as it was.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use stowage_format::blob::encode_uncompressed;
use stowage_format::manifest::MANIFEST_BLOB_NAME;
use stowage_format::{BlobEncoder, Manifest};
use stowage_types::SnapshotRef;

use crate::{fsutil, Datastore, DatastoreError};

/// The manifest lock of a snapshot, `<snapshot dir>/.index.json.lck` (PBS 3.x's path; hidden,
/// so listings skip it).
pub const MANIFEST_LOCK_NAME: &str = ".index.json.lck";

/// How long to wait for another process that is updating the same manifest (PBS waits 5 s).
const LOCK_TIMEOUT: Duration = Duration::from_secs(5);

impl Datastore {
    /// Reads the manifest of `snapshot`, lets `f` change it, and writes it back atomically
    /// (compressed blob, temporary file, fsync, rename, fsync of the directory), all under an
    /// exclusive lock on the snapshot's manifest lock file. Only changes to `unprotected` are
    /// kept: the files list, the snapshot's name and the signature are written as they were
    /// read. Nothing is written when `unprotected` did not change.
    pub fn update_manifest<R>(
        &self,
        snapshot: &SnapshotRef,
        f: impl FnOnce(&mut Manifest) -> R,
    ) -> Result<R, DatastoreError> {
        let dir = self.snapshot_dir(snapshot);
        let path = dir.join(MANIFEST_BLOB_NAME);
        // No lock file is made in a directory that is not a finished snapshot.
        if !path.is_file() {
            return Err(DatastoreError::SnapshotNotFound(snapshot.to_string()));
        }
        let _lock = lock_manifest(&dir.join(MANIFEST_LOCK_NAME), snapshot)?;
        let mut manifest = self.load_manifest(snapshot)?;
        let mut changed = manifest.clone();
        let result = f(&mut changed);
        debug_assert!(
            changed.files == manifest.files
                && changed.signature == manifest.signature
                && changed.snapshot().ok() == manifest.snapshot().ok(),
            "update_manifest may change only the unprotected part"
        );
        if changed.unprotected == manifest.unprotected {
            return Ok(result);
        }
        manifest.unprotected = changed.unprotected;
        let json = manifest.to_json();
        let encoded = BlobEncoder::new()
            .and_then(|mut e| e.encode(&json))
            .unwrap_or_else(|_| encode_uncompressed(&json));
        fsutil::atomic_write(&path, &encoded).map_err(DatastoreError::write(&path))?;
        Ok(result)
    }
}

/// Takes the exclusive `flock` on the manifest lock file, waiting up to [`LOCK_TIMEOUT`].
pub(crate) fn lock_manifest(
    path: &Path,
    snapshot: &SnapshotRef,
) -> Result<Flock<File>, DatastoreError> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .open(path)
        .map_err(DatastoreError::write(path))?;
    let deadline = Instant::now() + LOCK_TIMEOUT;
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Ok(lock),
            Err((f, nix::errno::Errno::EWOULDBLOCK)) if Instant::now() < deadline => {
                file = f;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err((_, e)) => {
                return Err(DatastoreError::Locked {
                    what: format!("manifest of snapshot {snapshot}"),
                    why: format!("another process is updating it ({e}); try again"),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use serde_json::json;
    use stowage_format::FixedIndex;
    use stowage_types::{ArchiveName, BackupGroup, BackupTime, Digest};

    use super::*;

    use crate::test_store as store;

    #[test]
    fn only_unprotected_changes() {
        let (_dir, ds) = store();
        let group: BackupGroup = "vm/100".parse().unwrap();
        let mut writer = ds
            .begin_backup(
                &group,
                Some(BackupTime::from_epoch(1_700_000_000).unwrap()),
                "root@pam",
            )
            .unwrap();
        let index = FixedIndex {
            uuid: [1; 16],
            ctime: 1_700_000_000,
            size: 4096,
            chunk_size: 4 << 20,
            digests: vec![Digest([7; 32])],
        };
        writer
            .add_fixed_index(&ArchiveName::parse("drive-scsi0.img").unwrap(), &index)
            .unwrap();
        writer
            .add_blob(
                &ArchiveName::parse("qemu-server.conf").unwrap(),
                b"memory: 512\n",
            )
            .unwrap();
        let mut stats = serde_json::Map::new();
        stats.insert("chunk_upload_stats".into(), json!({"count": 1}));
        let snap = writer.finish(stats).unwrap();
        let before = ds.load_manifest(&snap).unwrap();

        let n = ds
            .update_manifest(&snap, |m| {
                m.unprotected.insert("notes".into(), json!("hello"));
                m.files.len()
            })
            .unwrap();
        assert_eq!(n, 2);
        let after = ds.load_manifest(&snap).unwrap();
        assert_eq!(after.files, before.files);
        assert_eq!(after.unprotected["notes"], "hello");
        assert_eq!(after.unprotected["chunk_upload_stats"], json!({"count": 1}));
        // The indexes still match their csum in the manifest.
        ds.read_fixed_index(
            &snap,
            &after,
            &ArchiveName::parse("drive-scsi0.img").unwrap(),
        )
        .unwrap();
        ds.read_blob_file(
            &snap,
            &after,
            &ArchiveName::parse("qemu-server.conf").unwrap(),
        )
        .unwrap();
        let dir = ds.snapshot_dir(&snap);
        assert!(dir.join(MANIFEST_LOCK_NAME).is_file());
        // The lock file is not a snapshot, and no temporary file is left.
        assert_eq!(ds.snapshots(&group).unwrap().len(), 1);
        let mut names: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                MANIFEST_LOCK_NAME,
                "drive-scsi0.img.fidx",
                "index.json.blob",
                "qemu-server.conf.blob"
            ]
        );

        ds.update_manifest(&snap, |m| m.unprotected.remove("notes"))
            .unwrap();
        let again = ds.load_manifest(&snap).unwrap();
        assert_eq!(again.unprotected, before.unprotected);

        let missing = SnapshotRef::new(group, BackupTime::from_epoch(1_600_000_000).unwrap());
        assert!(matches!(
            ds.update_manifest(&missing, |_| ()),
            Err(DatastoreError::SnapshotNotFound(_))
        ));
        assert!(!ds.snapshot_dir(&missing).exists());
    }
}
