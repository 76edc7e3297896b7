use stowage_format::{sha256_of_zeros, BlobDecoder, BlobError};
use stowage_types::Digest;

/// Why a stored chunk is not what its index says.
#[derive(Debug, thiserror::Error)]
pub enum ChunkCheckError {
    #[error("{0}")]
    Blob(#[from] BlobError),
    #[error("digest mismatch: the data hashes to {0}")]
    Digest(Digest),
    #[error("length mismatch: {actual} bytes, the index says {expected}")]
    Length { expected: usize, actual: usize },
}

impl ChunkCheckError {
    /// The chunk is encrypted and its CRC is right: without the key, that is all anyone can check
    /// (PBS's verify counts such a chunk as good).
    pub fn is_encrypted_intact(&self) -> bool {
        matches!(self, ChunkCheckError::Blob(BlobError::Encrypted))
    }
}

/// Decodes an encoded chunk into `out` and checks its length; the digest is left to the
/// caller (who may hash two chunks at once).
pub(crate) fn decode_checked(
    decoder: &mut BlobDecoder,
    encoded: &[u8],
    expected_len: usize,
    out: &mut Vec<u8>,
) -> Result<(), ChunkCheckError> {
    decoder.decode_into(encoded, out, expected_len)?;
    if out.len() != expected_len {
        return Err(ChunkCheckError::Length {
            expected: expected_len,
            actual: out.len(),
        });
    }
    Ok(())
}

/// The digest of `len` zero bytes. The lengths every backup and restore asks for (a fixed
/// index's 4 MiB chunk, a dynamic index's 16 MiB maximum) are constants; others are hashed from
/// a small zero buffer, without allocating `len` bytes.
pub fn zero_digest(len: usize) -> Digest {
    match len {
        0x40_0000 => Digest(ZERO_4M),
        0x100_0000 => Digest(ZERO_16M),
        _ => sha256_of_zeros(len),
    }
}

/// SHA-256 of 4 MiB of zeros.
const ZERO_4M: [u8; 32] = [
    0xbb, 0x9f, 0x8d, 0xf6, 0x14, 0x74, 0xd2, 0x5e, 0x71, 0xfa, 0x00, 0x72, 0x23, 0x18, 0xcd, 0x38,
    0x73, 0x96, 0xca, 0x17, 0x36, 0x60, 0x5e, 0x12, 0x48, 0x82, 0x1c, 0xc0, 0xde, 0x3d, 0x3a, 0xf8,
];
/// SHA-256 of 16 MiB of zeros.
const ZERO_16M: [u8; 32] = [
    0x08, 0x0a, 0xcf, 0x35, 0xa5, 0x07, 0xac, 0x98, 0x49, 0xcf, 0xcb, 0xa4, 0x7d, 0xc2, 0xad, 0x83,
    0xe0, 0x1b, 0x75, 0x66, 0x3a, 0x51, 0x62, 0x79, 0xc8, 0xb9, 0xd2, 0x43, 0xb7, 0x19, 0x64, 0x3e,
];

#[cfg(test)]
mod tests {
    use super::*;
    use stowage_format::sha256;

    #[test]
    fn zero_digests_match_hashing_the_zeros() {
        for len in [0, 1, 4096, 65_536, 65_537, 4 << 20, 16 << 20] {
            assert_eq!(
                zero_digest(len),
                sha256(&vec![0u8; len]),
                "{len} zero bytes"
            );
        }
    }

    #[test]
    fn known_zero_chunk_digest() {
        assert_eq!(
            zero_digest(4 << 20).to_hex(),
            "bb9f8df61474d25e71fa00722318cd387396ca1736605e1248821cc0de3d3af8"
        );
    }
}
