use stowage_format::{sha256, BlobDecoder, BlobError};
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

/// Decodes an encoded chunk into `out` and checks it against its digest and expected length.
pub fn decode_and_verify(
    decoder: &mut BlobDecoder,
    digest: &Digest,
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
    let actual = sha256(out);
    if actual != *digest {
        return Err(ChunkCheckError::Digest(actual));
    }
    Ok(())
}

/// The digest of `len` zero bytes.
pub fn zero_digest(len: usize) -> Digest {
    sha256(&vec![0u8; len])
}

#[cfg(test)]
mod tests {
    use super::*;
    use stowage_format::BlobEncoder;

    #[test]
    fn known_zero_chunk_digest() {
        assert_eq!(
            zero_digest(4 << 20).to_hex(),
            "bb9f8df61474d25e71fa00722318cd387396ca1736605e1248821cc0de3d3af8"
        );
    }

    #[test]
    fn verification_catches_wrong_digest_and_length() {
        let data = b"some chunk data".repeat(100);
        let blob = BlobEncoder::new().unwrap().encode(&data).unwrap();
        let mut dec = BlobDecoder::new().unwrap();
        let mut out = Vec::new();
        decode_and_verify(&mut dec, &sha256(&data), &blob, data.len(), &mut out).unwrap();
        assert_eq!(out, data);
        let wrong = Digest([9; 32]);
        assert!(matches!(
            decode_and_verify(&mut dec, &wrong, &blob, data.len(), &mut out),
            Err(ChunkCheckError::Digest(_))
        ));
        assert!(matches!(
            decode_and_verify(&mut dec, &sha256(&data), &blob, data.len() + 1, &mut out),
            Err(ChunkCheckError::Length { .. })
        ));
    }
}
