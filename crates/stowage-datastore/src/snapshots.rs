//! Reading the snapshot tree: groups, snapshots, manifests, indexes and blobs, and forgetting.

use std::fs;
use std::io;
use std::path::Path;

use stowage_format::blob::{decode_blob, MAX_BLOB_SIZE};
use stowage_format::manifest::MANIFEST_BLOB_NAME;
use stowage_format::{sha256, DynamicIndex, FileEntry, FixedIndex, IndexError, Manifest};
use stowage_types::{ArchiveName, BackupGroup, BackupTime, BackupType, Digest, SnapshotRef};

use crate::lock::GroupLock;
use crate::manifest_update::{lock_manifest, MANIFEST_LOCK_NAME};
use crate::{Datastore, DatastoreError};

/// The empty file that marks a snapshot protected from prune and forget.
pub(crate) const PROTECTED_MARKER: &str = ".protected";

/// One snapshot directory as found on disk.
#[derive(Debug, Clone)]
pub struct SnapshotInfo {
    pub snapshot: SnapshotRef,
    /// The manifest is in place: the backup completed.
    pub finished: bool,
    pub protected: bool,
}

/// Names of the entries of a directory that are valid UTF-8 and not hidden; none if it is missing.
pub(crate) fn visible_names(dir: &Path) -> Result<Vec<String>, DatastoreError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(DatastoreError::read(dir)(e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(DatastoreError::read(dir))?;
        if let Some(name) = entry.file_name().to_str() {
            if !name.starts_with('.') && entry.path().is_dir() {
                names.push(name.to_string());
            }
        }
    }
    Ok(names)
}

impl Datastore {
    /// Every group with at least one snapshot directory, in PBS's order (type, then id).
    pub fn groups(&self) -> Result<Vec<BackupGroup>, DatastoreError> {
        let mut groups = Vec::new();
        for ty in BackupType::ALL {
            for id in visible_names(&self.ns_dir().join(ty.as_str()))? {
                if let Ok(group) = BackupGroup::new(ty, &id) {
                    groups.push(group);
                }
            }
        }
        groups.sort();
        Ok(groups)
    }

    /// All snapshot directories of a group, oldest first, finished or not.
    pub fn snapshots(&self, group: &BackupGroup) -> Result<Vec<SnapshotInfo>, DatastoreError> {
        let dir = self.group_dir(group);
        let mut out = Vec::new();
        for name in visible_names(&dir)? {
            let Ok(time) = name.parse::<BackupTime>() else {
                continue;
            };
            let path = dir.join(&name);
            out.push(SnapshotInfo {
                snapshot: SnapshotRef::new(group.clone(), time),
                finished: path.join(MANIFEST_BLOB_NAME).is_file(),
                protected: path.join(PROTECTED_MARKER).exists(),
            });
        }
        out.sort_by_key(|s| s.snapshot.time);
        Ok(out)
    }

    /// Finished snapshots of a group, oldest first.
    pub fn finished_snapshots(
        &self,
        group: &BackupGroup,
    ) -> Result<Vec<SnapshotRef>, DatastoreError> {
        Ok(self
            .snapshots(group)?
            .into_iter()
            .filter(|s| s.finished)
            .map(|s| s.snapshot)
            .collect())
    }

    /// Resolves `type/id/time`, or `type/id` for the group's newest finished snapshot.
    pub fn resolve_snapshot(&self, spec: &str) -> Result<SnapshotRef, DatastoreError> {
        if let Ok(snapshot) = spec.parse::<SnapshotRef>() {
            if !self
                .snapshot_dir(&snapshot)
                .join(MANIFEST_BLOB_NAME)
                .is_file()
            {
                return Err(DatastoreError::SnapshotNotFound(snapshot.to_string()));
            }
            return Ok(snapshot);
        }
        let group: BackupGroup = spec
            .parse()
            .map_err(|_| stowage_types::NameError::Snapshot(spec.to_string()))?;
        self.finished_snapshots(&group)?
            .pop()
            .ok_or_else(|| DatastoreError::GroupNotFound(group.to_string()))
    }

    pub fn load_manifest(&self, snapshot: &SnapshotRef) -> Result<Manifest, DatastoreError> {
        self.load_manifest_raw(snapshot)
            .map(|(manifest, _)| manifest)
    }

    /// The manifest, and the bytes of its blob as they are on disk (for copying).
    pub(crate) fn load_manifest_raw(
        &self,
        snapshot: &SnapshotRef,
    ) -> Result<(Manifest, Vec<u8>), DatastoreError> {
        let path = self.snapshot_dir(snapshot).join(MANIFEST_BLOB_NAME);
        let raw = match fs::read(&path) {
            Ok(raw) => raw,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(DatastoreError::SnapshotNotFound(snapshot.to_string()))
            }
            Err(e) => return Err(DatastoreError::read(&path)(e)),
        };
        let what = || format!("manifest {}", path.display());
        let json = decode_blob(&raw, MAX_BLOB_SIZE).map_err(|source| DatastoreError::Blob {
            what: what(),
            source,
        })?;
        let manifest = Manifest::from_json(&json).map_err(|source| DatastoreError::Manifest {
            what: what(),
            source,
        })?;
        let named = manifest
            .snapshot()
            .map_err(|source| DatastoreError::Manifest {
                what: what(),
                source,
            })?;
        if named != *snapshot {
            return Err(DatastoreError::Mismatch {
                what: what(),
                detail: format!("it describes {named}, not {snapshot}"),
            });
        }
        Ok((manifest, raw))
    }

    fn manifest_entry<'m>(
        snapshot: &SnapshotRef,
        manifest: &'m Manifest,
        archive: &ArchiveName,
    ) -> Result<&'m FileEntry, DatastoreError> {
        manifest
            .file(&archive.stored_name())
            .ok_or_else(|| DatastoreError::ArchiveNotFound {
                snapshot: snapshot.to_string(),
                archive: archive.user_name().to_string(),
            })
    }

    /// Reads a fixed index and checks its checksum and size against the manifest.
    pub fn read_fixed_index(
        &self,
        snapshot: &SnapshotRef,
        manifest: &Manifest,
        archive: &ArchiveName,
    ) -> Result<FixedIndex, DatastoreError> {
        self.read_index(snapshot, manifest, archive, FixedIndex::decode, |i| {
            (i.csum(), i.size)
        })
    }

    /// Reads a dynamic index and checks its checksum and size against the manifest.
    pub fn read_dynamic_index(
        &self,
        snapshot: &SnapshotRef,
        manifest: &Manifest,
        archive: &ArchiveName,
    ) -> Result<DynamicIndex, DatastoreError> {
        self.read_index(snapshot, manifest, archive, DynamicIndex::decode, |i| {
            (i.csum(), i.size())
        })
    }

    fn read_index<I>(
        &self,
        snapshot: &SnapshotRef,
        manifest: &Manifest,
        archive: &ArchiveName,
        decode: fn(&[u8]) -> Result<I, IndexError>,
        csum_and_size: fn(&I) -> (Digest, u64),
    ) -> Result<I, DatastoreError> {
        self.read_index_raw(snapshot, manifest, archive, decode, csum_and_size)
            .map(|(index, _)| index)
    }

    /// An index checked against the manifest, and its bytes as they are on disk (for copying).
    pub(crate) fn read_index_raw<I>(
        &self,
        snapshot: &SnapshotRef,
        manifest: &Manifest,
        archive: &ArchiveName,
        decode: fn(&[u8]) -> Result<I, IndexError>,
        csum_and_size: fn(&I) -> (Digest, u64),
    ) -> Result<(I, Vec<u8>), DatastoreError> {
        let entry = Self::manifest_entry(snapshot, manifest, archive)?;
        let path = self.snapshot_dir(snapshot).join(&entry.filename);
        let what = || format!("index {}", path.display());
        let raw = read_listed(&path, what)?;
        let index = decode(&raw).map_err(|source| DatastoreError::Index {
            what: what(),
            source,
        })?;
        let (csum, size) = csum_and_size(&index);
        if csum != entry.csum || size != entry.size {
            return Err(DatastoreError::Mismatch {
                what: what(),
                detail: format!(
                    "checksum {csum} and size {size} against {} and {}",
                    entry.csum, entry.size
                ),
            });
        }
        Ok((index, raw))
    }

    /// Reads a `.blob` file, checks size and checksum against the manifest, and decodes it.
    pub fn read_blob_file(
        &self,
        snapshot: &SnapshotRef,
        manifest: &Manifest,
        archive: &ArchiveName,
    ) -> Result<Vec<u8>, DatastoreError> {
        self.read_blob_raw(snapshot, manifest, archive)
            .map(|(data, _)| data)
    }

    /// A blob checked against the manifest and decoded, and its bytes as they are on disk.
    pub(crate) fn read_blob_raw(
        &self,
        snapshot: &SnapshotRef,
        manifest: &Manifest,
        archive: &ArchiveName,
    ) -> Result<(Vec<u8>, Vec<u8>), DatastoreError> {
        let entry = Self::manifest_entry(snapshot, manifest, archive)?;
        let path = self.snapshot_dir(snapshot).join(&entry.filename);
        let what = || format!("blob {}", path.display());
        let raw = read_listed(&path, what)?;
        let csum = sha256(&raw);
        if csum != entry.csum || raw.len() as u64 != entry.size {
            return Err(DatastoreError::Mismatch {
                what: what(),
                detail: format!(
                    "checksum {csum} and size {} against {} and {}",
                    raw.len(),
                    entry.csum,
                    entry.size
                ),
            });
        }
        let data = decode_blob(&raw, MAX_BLOB_SIZE).map_err(|source| DatastoreError::Blob {
            what: what(),
            source,
        })?;
        Ok((data, raw))
    }

    /// Removes a snapshot, finished or not. Refused for protected snapshots and while a backup
    /// of the group runs.
    pub fn forget(&self, snapshot: &SnapshotRef) -> Result<(), DatastoreError> {
        let dir = self.snapshot_dir(snapshot);
        if !dir.is_dir() {
            return Err(DatastoreError::SnapshotNotFound(snapshot.to_string()));
        }
        let _lock = GroupLock::acquire(
            &self.group_dir(&snapshot.group),
            &snapshot.group.to_string(),
        )?;
        self.forget_locked(snapshot)
    }

    /// Removes a snapshot, finished or not; the caller holds the group's lock. Refused for
    /// protected snapshots.
    pub(crate) fn forget_locked(&self, snapshot: &SnapshotRef) -> Result<(), DatastoreError> {
        let dir = self.snapshot_dir(snapshot);
        if !dir.is_dir() {
            return Err(DatastoreError::SnapshotNotFound(snapshot.to_string()));
        }
        if dir.join(PROTECTED_MARKER).exists() {
            return Err(DatastoreError::Protected(snapshot.to_string()));
        }
        // Remove the manifest first: from then on the snapshot is unfinished, never half-listed.
        // Under the manifest lock, so a verify or notes update cannot write it back meanwhile.
        let manifest = dir.join(MANIFEST_BLOB_NAME);
        let _manifest_lock = if manifest.is_file() {
            Some(lock_manifest(&dir.join(MANIFEST_LOCK_NAME), snapshot)?)
        } else {
            None
        };
        match fs::remove_file(&manifest) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(DatastoreError::write(&manifest)(e)),
        }
        fs::remove_dir_all(&dir).map_err(DatastoreError::write(&dir))
    }
}

/// Reads a file the manifest lists: a missing one means a damaged snapshot, not a datastore
/// that cannot be read.
fn read_listed(path: &Path, what: impl FnOnce() -> String) -> Result<Vec<u8>, DatastoreError> {
    match fs::read(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            Err(DatastoreError::MissingFile { what: what() })
        }
        read => read.map_err(DatastoreError::read(path)),
    }
}
