//! Dynamic index (`.didx`): a 4096-byte header and 40-byte entries (end offset, digest).

use stowage_types::Digest;

use crate::{read_u64, sha256, IndexError, INDEX_HEADER_SIZE, MAX_DYNAMIC_CHUNK};

/// SHA-256("Proxmox Backup dynamic sized chunk index v1.0")[..8]
pub const MAGIC: [u8; 8] = [28, 145, 78, 165, 25, 186, 179, 205];
const ENTRY_LEN: usize = 40;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamicIndex {
    pub uuid: [u8; 16],
    pub ctime: i64,
    /// (exclusive end offset in the archive stream, chunk digest), ends strictly increasing.
    pub entries: Vec<(u64, Digest)>,
}

impl DynamicIndex {
    /// Archive length: the last end offset.
    pub fn size(&self) -> u64 {
        self.entries.last().map(|e| e.0).unwrap_or(0)
    }

    /// `index_csum`: SHA-256 over the entry table.
    pub fn csum(&self) -> Digest {
        sha256(&self.body_bytes())
    }

    fn body_bytes(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(self.entries.len() * ENTRY_LEN);
        for (end, digest) in &self.entries {
            body.extend_from_slice(&end.to_le_bytes());
            body.extend_from_slice(&digest.0);
        }
        body
    }

    pub fn encode(&self) -> Result<Vec<u8>, IndexError> {
        check_increasing(self.entries.iter().map(|e| e.0))?;
        let body = self.body_bytes();
        let mut out = vec![0u8; INDEX_HEADER_SIZE];
        out[..8].copy_from_slice(&MAGIC);
        out[8..24].copy_from_slice(&self.uuid);
        out[24..32].copy_from_slice(&self.ctime.to_le_bytes());
        out[32..64].copy_from_slice(&sha256(&body).0);
        out.extend_from_slice(&body);
        Ok(out)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, IndexError> {
        if bytes.len() < INDEX_HEADER_SIZE {
            return Err(IndexError::TooShort { len: bytes.len() });
        }
        if bytes[..8] != MAGIC {
            return Err(IndexError::BadMagic {
                expected: "dynamic",
            });
        }
        let body = &bytes[INDEX_HEADER_SIZE..];
        if !body.len().is_multiple_of(ENTRY_LEN) {
            return Err(IndexError::Ragged(body.len() as u64));
        }
        let entries: Vec<(u64, Digest)> = body
            .chunks_exact(ENTRY_LEN)
            .filter_map(|e| Some((read_u64(e, 0), Digest::from_slice(&e[8..])?)))
            .collect();
        check_increasing(entries.iter().map(|e| e.0))?;
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(&bytes[8..24]);
        Ok(DynamicIndex {
            uuid,
            ctime: read_u64(bytes, 24) as i64,
            entries,
        })
    }
}

/// End offsets must grow, each chunk by at most [`MAX_DYNAMIC_CHUNK`] bytes.
fn check_increasing(ends: impl Iterator<Item = u64>) -> Result<(), IndexError> {
    let mut prev = 0u64;
    for (entry, end) in ends.enumerate() {
        if end <= prev {
            return Err(IndexError::NotIncreasing { entry, end });
        }
        if end - prev > MAX_DYNAMIC_CHUNK {
            return Err(IndexError::ChunkTooLarge {
                entry,
                len: end - prev,
            });
        }
        prev = end;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn magic_is_sha256_prefix() {
        assert_eq!(
            &sha256(b"Proxmox Backup dynamic sized chunk index v1.0").0[..8],
            &MAGIC
        );
    }

    /// The payload index written by PBS itself (shared test data): 100 entries, and the
    /// header checksum equals the SHA-256 of the entry table.
    #[test]
    fn decodes_pbs_written_index() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/testdata/pbs/backup-client-pxar-data.ppxar.didx"
        );
        let Ok(bytes) = std::fs::read(path) else {
            eprintln!("skipped: {path} is absent");
            return;
        };
        let idx = DynamicIndex::decode(&bytes).unwrap();
        assert_eq!(idx.entries.len(), 100);
        assert_eq!(&bytes[32..64], &idx.csum().0);
        let mut reencoded = idx.encode().unwrap();
        reencoded[32..64].copy_from_slice(&bytes[32..64]);
        assert_eq!(reencoded, bytes);
    }

    #[test]
    fn bad_indexes_are_refused() {
        let idx = DynamicIndex {
            uuid: [0; 16],
            ctime: 0,
            entries: vec![(10, Digest([1; 32])), (20, Digest([2; 32]))],
        };
        let bytes = idx.encode().unwrap();
        assert!(matches!(
            DynamicIndex::decode(&bytes[..bytes.len() - 3]),
            Err(IndexError::Ragged(_))
        ));
        let mut bad = bytes.clone();
        bad[4096 + 40..4096 + 48].copy_from_slice(&5u64.to_le_bytes());
        assert!(matches!(
            DynamicIndex::decode(&bad),
            Err(IndexError::NotIncreasing { entry: 1, .. })
        ));
        assert!(DynamicIndex::decode(&bytes[..10]).is_err());
    }

    /// A chunk longer than any chunker makes is refused, so no reader allocates for it.
    #[test]
    fn oversized_chunks_are_refused() {
        let at_limit = DynamicIndex {
            uuid: [0; 16],
            ctime: 0,
            entries: vec![
                (10, Digest([1; 32])),
                (10 + MAX_DYNAMIC_CHUNK, Digest([2; 32])),
            ],
        };
        let bytes = at_limit.encode().unwrap();
        assert_eq!(DynamicIndex::decode(&bytes).unwrap(), at_limit);
        for huge in [MAX_DYNAMIC_CHUNK + 11, 1 << 60, u64::MAX] {
            let mut bad = bytes.clone();
            bad[4096 + 40..4096 + 48].copy_from_slice(&huge.to_le_bytes());
            assert_eq!(
                DynamicIndex::decode(&bad),
                Err(IndexError::ChunkTooLarge {
                    entry: 1,
                    len: huge - 10
                })
            );
        }
        let first = DynamicIndex {
            uuid: [0; 16],
            ctime: 0,
            entries: vec![(1 << 60, Digest([1; 32]))],
        };
        assert!(matches!(
            first.encode(),
            Err(IndexError::ChunkTooLarge { entry: 0, .. })
        ));
    }

    proptest! {
        #[test]
        fn round_trip(steps in proptest::collection::vec(1u64..=MAX_DYNAMIC_CHUNK, 0..50)) {
            let mut end = 0;
            let entries = steps.iter().enumerate().map(|(i, s)| { end += s; (end, Digest([i as u8; 32])) }).collect();
            let idx = DynamicIndex { uuid: [3; 16], ctime: 42, entries };
            let decoded = DynamicIndex::decode(&idx.encode().unwrap()).unwrap();
            prop_assert_eq!(decoded.size(), end);
            prop_assert_eq!(decoded, idx);
        }

        #[test]
        fn decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 4090..4300)) {
            let mut bytes = bytes;
            if bytes.len() >= 8 { bytes[..8].copy_from_slice(&MAGIC); }
            let _ = DynamicIndex::decode(&bytes);
        }
    }
}
