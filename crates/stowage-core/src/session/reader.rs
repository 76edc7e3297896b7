//! Reading one finished snapshot (PBS's reader protocol).

use stowage_format::blob::{decode_blob, MAX_BLOB_SIZE};
use stowage_format::{sha256, DynamicIndex, FileEntry, FixedIndex, Manifest};
use stowage_types::{ArchiveName, Digest, SnapshotRef};

use super::SessionError;
use crate::ChunkSource;

/// A finished snapshot opened for reading. Implementations supply the raw files and the
/// chunks; the provided methods decode them and check each against the manifest, so every
/// implementation checks the same things.
pub trait SnapshotReader: Sync {
    fn snapshot(&self) -> &SnapshotRef;

    fn manifest(&self) -> &Manifest;

    /// The raw bytes of one file of the snapshot, as the manifest names it.
    fn download(&self, file_name: &str) -> Result<Vec<u8>, SessionError>;

    /// Where the snapshot's chunks are read from.
    fn chunks(&self) -> &dyn ChunkSource;

    /// The manifest's entry for `archive`.
    fn entry(&self, archive: &ArchiveName) -> Result<&FileEntry, SessionError> {
        let snapshot = self.snapshot();
        self.manifest()
            .file(&archive.stored_name())
            .ok_or_else(|| SessionError::NotFound {
                what: format!("archive {} in snapshot {snapshot}", archive.user_name()),
                hint: format!(" (list them with 'stowage files {snapshot}')"),
            })
    }

    /// A fixed index, checked against the manifest's checksum and size.
    fn fixed_index(&self, archive: &ArchiveName) -> Result<FixedIndex, SessionError> {
        let (entry, raw) = self.listed_file(archive)?;
        let index = FixedIndex::decode(&raw).map_err(|e| damaged(self, &entry, e))?;
        check_listed(self, &entry, index.csum(), index.size)?;
        Ok(index)
    }

    /// A dynamic index, checked against the manifest's checksum and size.
    fn dynamic_index(&self, archive: &ArchiveName) -> Result<DynamicIndex, SessionError> {
        let (entry, raw) = self.listed_file(archive)?;
        let index = DynamicIndex::decode(&raw).map_err(|e| damaged(self, &entry, e))?;
        check_listed(self, &entry, index.csum(), index.size())?;
        Ok(index)
    }

    /// A blob's decoded contents, its encoded bytes checked against the manifest.
    fn blob(&self, archive: &ArchiveName) -> Result<Vec<u8>, SessionError> {
        let (entry, raw) = self.listed_file(archive)?;
        check_listed(self, &entry, sha256(&raw), raw.len() as u64)?;
        decode_blob(&raw, MAX_BLOB_SIZE).map_err(|e| damaged(self, &entry, e))
    }

    #[doc(hidden)]
    fn listed_file(&self, archive: &ArchiveName) -> Result<(FileEntry, Vec<u8>), SessionError> {
        let entry = self.entry(archive)?.clone();
        let raw = self.download(&entry.filename)?;
        Ok((entry, raw))
    }
}

fn what<R: SnapshotReader + ?Sized>(reader: &R, entry: &FileEntry) -> String {
    format!("{} of snapshot {}", entry.filename, reader.snapshot())
}

fn damaged<R: SnapshotReader + ?Sized>(
    reader: &R,
    entry: &FileEntry,
    error: impl std::fmt::Display,
) -> SessionError {
    SessionError::Damaged {
        what: what(reader, entry),
        detail: error.to_string(),
    }
}

fn check_listed<R: SnapshotReader + ?Sized>(
    reader: &R,
    entry: &FileEntry,
    csum: Digest,
    size: u64,
) -> Result<(), SessionError> {
    if csum == entry.csum && size == entry.size {
        return Ok(());
    }
    Err(SessionError::Damaged {
        what: what(reader, entry),
        detail: format!(
            "checksum {csum} and size {size} against the manifest's {} and {}",
            entry.csum, entry.size
        ),
    })
}
