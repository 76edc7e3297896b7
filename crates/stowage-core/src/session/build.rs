//! What every implementation of an index writer checks: chunks appended in order, each
//! uploaded or known, lengths that fit the index's kind, and a close that agrees with it all.

use std::collections::HashSet;
use std::sync::Mutex;

use sha2::{Digest as _, Sha256};
use stowage_format::{DynamicIndex, FixedIndex, MAX_DYNAMIC_CHUNK};
use stowage_types::{ArchiveName, BackupTime, Digest, SnapshotRef};

use super::{unknown_chunk, IndexChunk, IndexClose, IndexKind, SessionError};

/// The digests a backup session may append: uploaded in it, or known from its base.
#[derive(Default)]
pub struct ChunkRegistry(Mutex<HashSet<Digest>>);

impl ChunkRegistry {
    fn set(&self) -> std::sync::MutexGuard<'_, HashSet<Digest>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn register(&self, digest: Digest) {
        self.set().insert(digest);
    }

    pub fn register_all(&self, digests: impl IntoIterator<Item = Digest>) {
        self.set().extend(digests);
    }

    pub fn contains(&self, digest: &Digest) -> bool {
        self.set().contains(digest)
    }
}

/// Count, size and checksum of an index as its chunks are appended, computed as PBS computes
/// `index_csum`: SHA-256 over the digests (fixed) or over (end offset, digest) pairs (dynamic).
pub struct IndexTally {
    fixed: bool,
    hasher: Sha256,
    count: u64,
    size: u64,
}

impl IndexTally {
    pub fn new(kind: IndexKind) -> Self {
        IndexTally {
            fixed: matches!(kind, IndexKind::Fixed { .. }),
            hasher: Sha256::new(),
            count: 0,
            size: 0,
        }
    }

    pub fn add(&mut self, chunk: &IndexChunk) {
        self.count += 1;
        self.size += u64::from(chunk.len);
        if !self.fixed {
            self.hasher.update(self.size.to_le_bytes());
        }
        self.hasher.update(chunk.digest.0);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn close(self) -> IndexClose {
        IndexClose {
            count: self.count,
            size: self.size,
            csum: Digest(self.hasher.finalize().into()),
        }
    }
}

/// The files of a snapshot being written, by name as stored: every implementation refuses a
/// second file of one name, and a `finish` with an index left unclosed or nothing stored.
#[derive(Default)]
pub struct FileBook {
    /// Index writers open now.
    open: HashSet<String>,
    /// Files written (indexes closed, blobs stored).
    written: HashSet<String>,
    /// Index writers dropped without a successful close.
    abandoned: Vec<String>,
}

impl FileBook {
    /// Claims `stored` for a new index writer (`open`) or a file written at once.
    pub fn claim(
        &mut self,
        snapshot: &SnapshotRef,
        stored: &str,
        open: bool,
    ) -> Result<(), SessionError> {
        if self.open.contains(stored) || self.written.contains(stored) {
            return Err(SessionError::refused(
                format!("snapshot {snapshot}"),
                format!("it already holds an archive named {stored}"),
            ));
        }
        let set = if open {
            &mut self.open
        } else {
            &mut self.written
        };
        set.insert(stored.to_string());
        Ok(())
    }

    /// An index writer is done: closed (`ok`), or failed or dropped.
    pub fn index_done(&mut self, stored: String, ok: bool) {
        self.open.remove(&stored);
        match ok {
            true => drop(self.written.insert(stored)),
            false => self.abandoned.push(stored),
        }
    }

    /// Whether the snapshot may be finished.
    pub fn ready(&self, snapshot: &SnapshotRef) -> Result<(), SessionError> {
        let what = || format!("snapshot {snapshot}");
        if let Some(name) = self.abandoned.first() {
            return Err(SessionError::refused(
                what(),
                format!("index {name} was never closed"),
            ));
        }
        if self.written.is_empty() {
            return Err(SessionError::refused(what(), "nothing was stored in it"));
        }
        Ok(())
    }
}

/// A finished index, ready to be stored.
pub enum BuiltIndex {
    Fixed(FixedIndex),
    Dynamic(DynamicIndex),
}

/// An index being built from appends, with every check of PBS's backup protocol.
pub struct IndexBuilder {
    name: ArchiveName,
    kind: IndexKind,
    /// Exclusive end offset and digest of each chunk.
    entries: Vec<(u64, Digest)>,
    short_chunk: bool,
    tally: IndexTally,
}

impl IndexBuilder {
    pub fn new(name: &ArchiveName, kind: IndexKind) -> Result<Self, SessionError> {
        if let IndexKind::Fixed { size, chunk_size } = kind {
            if size == Some(0)
                || !chunk_size.is_power_of_two()
                || !(4096..=MAX_DYNAMIC_CHUNK).contains(&chunk_size)
            {
                return Err(SessionError::refused(
                    format!("index {name}"),
                    format!("an image of {size:?} bytes in chunks of {chunk_size} bytes"),
                ));
            }
        }
        Ok(IndexBuilder {
            name: name.clone(),
            kind,
            entries: Vec::new(),
            short_chunk: false,
            tally: IndexTally::new(kind),
        })
    }

    pub fn name(&self) -> &ArchiveName {
        &self.name
    }

    fn end(&self) -> u64 {
        self.entries.last().map_or(0, |e| e.0)
    }

    fn refuse(&self, detail: String) -> SessionError {
        SessionError::refused(format!("index {}", self.name), detail)
    }

    /// Appends chunks in stream order; each must be in `registry`.
    pub fn append(
        &mut self,
        chunks: &[IndexChunk],
        registry: &ChunkRegistry,
    ) -> Result<(), SessionError> {
        for chunk in chunks {
            if !registry.contains(&chunk.digest) {
                return Err(unknown_chunk(&self.name, &chunk.digest));
            }
            self.check_length(chunk.len)?;
            let end = self.end() + u64::from(chunk.len);
            self.entries.push((end, chunk.digest));
            self.tally.add(chunk);
        }
        Ok(())
    }

    fn check_length(&mut self, len: u32) -> Result<(), SessionError> {
        let len = u64::from(len);
        match self.kind {
            IndexKind::Fixed { size, chunk_size } => {
                if self.short_chunk {
                    return Err(self.refuse("a chunk follows the short last chunk".into()));
                }
                let end = self.end() + len;
                if len == 0 || len > chunk_size || size.is_some_and(|size| end > size) {
                    return Err(self.refuse(format!(
                        "a chunk of {len} bytes at offset {} of an image of {} bytes in chunks of {chunk_size}",
                        self.end(),
                        size.map_or("unknown".into(), |s| s.to_string()),
                    )));
                }
                self.short_chunk = len < chunk_size;
            }
            IndexKind::Dynamic => {
                if len == 0 || len > MAX_DYNAMIC_CHUNK {
                    return Err(self.refuse(format!("a chunk of {len} bytes")));
                }
            }
        }
        Ok(())
    }

    /// Checks `expected` against what was appended and returns the index.
    pub fn close(self, expected: IndexClose) -> Result<BuiltIndex, SessionError> {
        let name = self.name.clone();
        let actual = self.tally.close();
        if actual != expected {
            return Err(SessionError::refused(
                format!("index {name}"),
                format!(
                    "closed with {} chunks, {} bytes, checksum {}, but {} chunks, {} bytes, checksum {} were appended",
                    expected.count, expected.size, expected.csum, actual.count, actual.size, actual.csum
                ),
            ));
        }
        let uuid = *uuid::Uuid::new_v4().as_bytes();
        let ctime = BackupTime::now().epoch();
        Ok(match self.kind {
            IndexKind::Fixed { size, chunk_size } => {
                let size = size.unwrap_or(actual.size);
                let want = FixedIndex::chunk_count(size, chunk_size);
                if actual.count != want || actual.size != size || size == 0 {
                    return Err(SessionError::refused(
                        format!("index {name}"),
                        format!(
                            "an image of {size} bytes needs {want} chunks; {} chunks of {} bytes were appended",
                            actual.count, actual.size
                        ),
                    ));
                }
                BuiltIndex::Fixed(FixedIndex {
                    uuid,
                    ctime,
                    size,
                    chunk_size,
                    digests: self.entries.into_iter().map(|(_, d)| d).collect(),
                })
            }
            IndexKind::Dynamic => BuiltIndex::Dynamic(DynamicIndex {
                uuid,
                ctime,
                entries: self.entries,
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(byte: u8, len: u32) -> IndexChunk {
        IndexChunk {
            digest: Digest([byte; 32]),
            len,
        }
    }

    #[test]
    fn tally_matches_the_formats_checksums() {
        let chunks = [chunk(1, 10), chunk(2, 20), chunk(3, 5)];
        let mut fixed = IndexTally::new(IndexKind::Fixed {
            size: Some(35),
            chunk_size: 20,
        });
        let mut dynamic = IndexTally::new(IndexKind::Dynamic);
        for c in &chunks {
            fixed.add(c);
            dynamic.add(c);
        }
        let f = FixedIndex {
            uuid: [0; 16],
            ctime: 0,
            size: 35,
            chunk_size: 20,
            digests: chunks.iter().map(|c| c.digest).collect(),
        };
        let d = DynamicIndex {
            uuid: [0; 16],
            ctime: 0,
            entries: vec![
                (10, chunks[0].digest),
                (30, chunks[1].digest),
                (35, chunks[2].digest),
            ],
        };
        let (fc, dc) = (fixed.close(), dynamic.close());
        assert_eq!((fc.count, fc.size, fc.csum), (3, 35, f.csum()));
        assert_eq!((dc.count, dc.size, dc.csum), (3, 35, d.csum()));
    }

    #[test]
    fn fixed_builder_refuses_what_pbs_refuses() {
        let name = ArchiveName::parse("disk.img").unwrap();
        let registry = ChunkRegistry::default();
        registry.register_all([1, 2, 3].map(|b| Digest([b; 32])));
        let kind = IndexKind::Fixed {
            size: Some(10240),
            chunk_size: 4096,
        };
        let mut b = IndexBuilder::new(&name, kind).unwrap();
        assert!(
            b.append(&[chunk(9, 4096)], &registry).is_err(),
            "unknown digest"
        );
        assert!(b.append(&[chunk(1, 4097)], &registry).is_err(), "too long");
        b.append(&[chunk(1, 4096), chunk(2, 1000)], &registry)
            .unwrap();
        assert!(
            b.append(&[chunk(3, 4096)], &registry).is_err(),
            "after short"
        );
        let mut t = IndexTally::new(kind);
        t.add(&chunk(1, 4096));
        t.add(&chunk(2, 1000));
        let Err(err) = b.close(t.close()) else {
            panic!("5096 of 10240 bytes closed")
        };
        assert!(err.to_string().contains("needs 3 chunks"), "{err}");
        for (size, chunk_size) in [
            (Some(0), 4096),
            (Some(10), 20),
            (None, 2048),
            (None, 32 << 20),
        ] {
            assert!(IndexBuilder::new(&name, IndexKind::Fixed { size, chunk_size }).is_err());
        }
    }

    #[test]
    fn close_must_agree_with_the_appends() {
        let name = ArchiveName::parse("root.pxar").unwrap();
        let registry = ChunkRegistry::default();
        registry.register_all([1, 2].map(|b| Digest([b; 32])));
        let appended = [chunk(1, 7), chunk(2, 9)];
        let mut right = IndexTally::new(IndexKind::Dynamic);
        appended.iter().for_each(|c| right.add(c));
        let right = right.close();
        for wrong in [
            IndexClose { count: 1, ..right },
            IndexClose { size: 15, ..right },
            IndexClose {
                csum: Digest([0; 32]),
                ..right
            },
        ] {
            let mut b = IndexBuilder::new(&name, IndexKind::Dynamic).unwrap();
            b.append(&appended, &registry).unwrap();
            assert!(b.close(wrong).is_err());
        }
        let mut b = IndexBuilder::new(&name, IndexKind::Dynamic).unwrap();
        b.append(&appended, &registry).unwrap();
        match b.close(right).unwrap() {
            BuiltIndex::Dynamic(d) => assert_eq!(
                d.entries,
                vec![(7, appended[0].digest), (16, appended[1].digest)]
            ),
            BuiltIndex::Fixed(_) => panic!("a dynamic index"),
        }
    }
}
