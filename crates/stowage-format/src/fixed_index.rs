//! Fixed index (`.fidx`): a 4096-byte header and one 32-byte digest per fixed-size chunk.

use stowage_types::Digest;

use crate::{read_u64, sha256, IndexError, INDEX_HEADER_SIZE};

/// SHA-256("Proxmox Backup fixed sized chunk index v1.0")[..8]
pub const MAGIC: [u8; 8] = [47, 127, 65, 237, 145, 253, 15, 205];
/// The chunk size of every image backup.
pub const DEFAULT_CHUNK_SIZE: u64 = 4 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixedIndex {
    pub uuid: [u8; 16],
    pub ctime: i64,
    /// Image size in bytes.
    pub size: u64,
    pub chunk_size: u64,
    pub digests: Vec<Digest>,
}

impl FixedIndex {
    /// Number of chunks an image of `size` bytes needs.
    pub fn chunk_count(size: u64, chunk_size: u64) -> u64 {
        size.div_ceil(chunk_size)
    }

    /// Byte offset and length of chunk `i`.
    pub fn chunk_range(&self, i: usize) -> (u64, usize) {
        let start = i as u64 * self.chunk_size;
        let end = (start + self.chunk_size).min(self.size);
        (start, end.saturating_sub(start) as usize)
    }

    /// `index_csum`: SHA-256 over the digest table.
    pub fn csum(&self) -> Digest {
        sha256(self.body_bytes().as_slice())
    }

    fn body_bytes(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(self.digests.len() * 32);
        for d in &self.digests {
            body.extend_from_slice(&d.0);
        }
        body
    }

    pub fn encode(&self) -> Result<Vec<u8>, IndexError> {
        if !valid_chunk_size(self.chunk_size) {
            return Err(IndexError::ChunkSize(self.chunk_size));
        }
        let expected = Self::chunk_count(self.size, self.chunk_size);
        if expected != self.digests.len() as u64 {
            return Err(IndexError::BodyLength {
                expected: expected * 32,
                actual: self.digests.len() as u64 * 32,
            });
        }
        if self.digests.is_empty() {
            return Err(IndexError::Empty);
        }
        let body = self.body_bytes();
        let mut out = vec![0u8; INDEX_HEADER_SIZE];
        out[..8].copy_from_slice(&MAGIC);
        out[8..24].copy_from_slice(&self.uuid);
        out[24..32].copy_from_slice(&self.ctime.to_le_bytes());
        out[32..64].copy_from_slice(&sha256(&body).0);
        out[64..72].copy_from_slice(&self.size.to_le_bytes());
        out[72..80].copy_from_slice(&self.chunk_size.to_le_bytes());
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Decodes and checks the structure. The header checksum is not trusted: callers compare
    /// [`FixedIndex::csum`] with the manifest.
    pub fn decode(bytes: &[u8]) -> Result<Self, IndexError> {
        if bytes.len() < INDEX_HEADER_SIZE {
            return Err(IndexError::TooShort { len: bytes.len() });
        }
        if bytes[..8] != MAGIC {
            return Err(IndexError::BadMagic { expected: "fixed" });
        }
        let size = read_u64(bytes, 64);
        let chunk_size = read_u64(bytes, 72);
        if !valid_chunk_size(chunk_size) {
            return Err(IndexError::ChunkSize(chunk_size));
        }
        let body = &bytes[INDEX_HEADER_SIZE..];
        let expected = Self::chunk_count(size, chunk_size).saturating_mul(32);
        if body.len() as u64 != expected {
            return Err(IndexError::BodyLength {
                expected,
                actual: body.len() as u64,
            });
        }
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(&bytes[8..24]);
        let ctime = read_u64(bytes, 24) as i64;
        let digests = body
            .chunks_exact(32)
            .filter_map(Digest::from_slice)
            .collect();
        Ok(FixedIndex {
            uuid,
            ctime,
            size,
            chunk_size,
            digests,
        })
    }
}

fn valid_chunk_size(cs: u64) -> bool {
    cs.is_power_of_two() && (4096..=64 * 1024 * 1024).contains(&cs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample(size: u64) -> FixedIndex {
        let n = FixedIndex::chunk_count(size, DEFAULT_CHUNK_SIZE);
        FixedIndex {
            uuid: [0x11; 16],
            ctime: 1_593_179_765,
            size,
            chunk_size: DEFAULT_CHUNK_SIZE,
            digests: (0..n).map(|i| Digest([i as u8; 32])).collect(),
        }
    }

    /// Built from the layout in spec section 3, field by field.
    #[test]
    fn golden_layout() {
        let idx = sample(DEFAULT_CHUNK_SIZE + 1);
        let bytes = idx.encode().unwrap();
        assert_eq!(bytes.len(), 4096 + 64);
        assert_eq!(hex::encode(&bytes[..8]), "2f7f41ed91fd0fcd");
        assert_eq!(&bytes[8..24], &[0x11; 16]);
        assert_eq!(&bytes[24..32], &1_593_179_765i64.to_le_bytes());
        let mut body = vec![0u8; 32];
        body.extend_from_slice(&[1u8; 32]);
        assert_eq!(&bytes[32..64], &sha256(&body).0);
        assert_eq!(&bytes[64..72], &(DEFAULT_CHUNK_SIZE + 1).to_le_bytes());
        assert_eq!(&bytes[72..80], &DEFAULT_CHUNK_SIZE.to_le_bytes());
        assert!(bytes[80..4096].iter().all(|b| *b == 0));
        assert_eq!(&bytes[4096..], &body[..]);
        assert_eq!(idx.chunk_range(1), (DEFAULT_CHUNK_SIZE, 1));
    }

    #[test]
    fn magic_is_sha256_prefix() {
        assert_eq!(
            &sha256(b"Proxmox Backup fixed sized chunk index v1.0").0[..8],
            &MAGIC
        );
    }

    #[test]
    fn truncated_and_bad_indexes_are_refused() {
        let bytes = sample(3 * DEFAULT_CHUNK_SIZE).encode().unwrap();
        assert!(matches!(
            FixedIndex::decode(&bytes[..bytes.len() - 1]),
            Err(IndexError::BodyLength { .. })
        ));
        assert!(matches!(
            FixedIndex::decode(&bytes[..100]),
            Err(IndexError::TooShort { .. })
        ));
        let mut bad = bytes.clone();
        bad[0] ^= 1;
        assert!(matches!(
            FixedIndex::decode(&bad),
            Err(IndexError::BadMagic { .. })
        ));
        let mut bad = bytes;
        bad[72] = 3;
        assert!(matches!(
            FixedIndex::decode(&bad),
            Err(IndexError::ChunkSize(_))
        ));
        let mut huge = vec![0u8; 4096];
        huge[..8].copy_from_slice(&MAGIC);
        huge[64..72].copy_from_slice(&u64::MAX.to_le_bytes());
        huge[72..80].copy_from_slice(&4096u64.to_le_bytes());
        assert!(FixedIndex::decode(&huge).is_err());
    }

    proptest! {
        #[test]
        fn round_trip(size in 1u64..40 * DEFAULT_CHUNK_SIZE) {
            let idx = sample(size);
            let decoded = FixedIndex::decode(&idx.encode().unwrap()).unwrap();
            prop_assert_eq!(decoded.csum(), idx.csum());
            prop_assert_eq!(decoded, idx);
        }

        #[test]
        fn decoder_never_panics(mut bytes in proptest::collection::vec(any::<u8>(), 4090..4200), magic: bool) {
            if magic && bytes.len() >= 8 { bytes[..8].copy_from_slice(&MAGIC); }
            let _ = FixedIndex::decode(&bytes);
        }
    }
}
