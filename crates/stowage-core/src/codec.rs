//! The chunk codec: how a chunk's data is named (its digest) and turned into what a store holds,
//! and back. Every pipeline gets its codec from one place (a backup from its
//! [`BackupSession`](crate::BackupSession), a read from its [`ChunkSource`](crate::ChunkSource)),
//! so an encrypting codec is another implementation, not a flag.

use stowage_format::{sha256, sha256_pair, BlobDecoder, BlobEncoder, BlobError, CryptMode};
use stowage_types::Digest;

use crate::chunk::{decode_checked, zero_digest, ChunkCheckError};

/// Names, encodes and decodes chunks. Encoders and decoders hold per-thread state (compression
/// contexts): each worker takes its own.
pub trait ChunkCodec: Send + Sync {
    /// What the manifest records for files whose chunks this codec encodes.
    fn crypt_mode(&self) -> CryptMode;

    /// The digest that names a chunk of `data`.
    fn digest(&self, data: &[u8]) -> Digest;

    /// The digests of two chunks, computed together where that is faster.
    fn digest_pair(&self, a: &[u8], b: &[u8]) -> (Digest, Digest) {
        (self.digest(a), self.digest(b))
    }

    /// The digest of `len` zero bytes (such chunks are never read or written).
    fn zero_digest(&self, len: usize) -> Digest;

    fn encoder(&self) -> Result<Box<dyn ChunkEncoder>, BlobError>;

    fn decoder(&self) -> Result<Box<dyn ChunkDecoder>, BlobError>;
}

/// Encodes chunks for a store, one thread's worth.
pub trait ChunkEncoder: Send {
    /// Encodes `data` into `out` (cleared first).
    fn encode(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), BlobError>;
}

/// Decodes stored chunks, one thread's worth.
pub trait ChunkDecoder: Send {
    /// Decodes `encoded` into `out` and checks its length; the digest is the caller's to check
    /// (it may hash two chunks at once, see [`verify_chunk`]).
    fn decode(
        &mut self,
        encoded: &[u8],
        expected_len: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), ChunkCheckError>;
}

/// PBS's unencrypted chunks: DataBlobs (zstd level 1, or stored as is when that is smaller)
/// named by the SHA-256 of their data.
#[derive(Debug, Default, Clone, Copy)]
pub struct PlainCodec;

/// The one plain codec.
pub static PLAIN: PlainCodec = PlainCodec;

impl ChunkCodec for PlainCodec {
    fn crypt_mode(&self) -> CryptMode {
        CryptMode::None
    }

    fn digest(&self, data: &[u8]) -> Digest {
        sha256(data)
    }

    fn digest_pair(&self, a: &[u8], b: &[u8]) -> (Digest, Digest) {
        sha256_pair(a, b)
    }

    fn zero_digest(&self, len: usize) -> Digest {
        zero_digest(len)
    }

    fn encoder(&self) -> Result<Box<dyn ChunkEncoder>, BlobError> {
        Ok(Box::new(PlainEncoder(BlobEncoder::new()?)))
    }

    fn decoder(&self) -> Result<Box<dyn ChunkDecoder>, BlobError> {
        Ok(Box::new(PlainDecoder(BlobDecoder::new()?)))
    }
}

struct PlainEncoder(BlobEncoder);

impl ChunkEncoder for PlainEncoder {
    fn encode(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), BlobError> {
        self.0.encode_into(data, out).map(|_| ())
    }
}

struct PlainDecoder(BlobDecoder);

impl ChunkDecoder for PlainDecoder {
    fn decode(
        &mut self,
        encoded: &[u8],
        expected_len: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), ChunkCheckError> {
        decode_checked(&mut self.0, encoded, expected_len, out)
    }
}

/// Decodes an encoded chunk into `out` and checks it against its digest and expected length.
pub fn verify_chunk(
    codec: &dyn ChunkCodec,
    decoder: &mut dyn ChunkDecoder,
    digest: &Digest,
    encoded: &[u8],
    expected_len: usize,
    out: &mut Vec<u8>,
) -> Result<(), ChunkCheckError> {
    decoder.decode(encoded, expected_len, out)?;
    let actual = codec.digest(out);
    if actual != *digest {
        return Err(ChunkCheckError::Digest(actual));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plain_codec_round_trips_and_verifies() {
        let data = b"some chunk data".repeat(100);
        let codec: &dyn ChunkCodec = &PLAIN;
        let mut encoded = Vec::new();
        codec
            .encoder()
            .unwrap()
            .encode(&data, &mut encoded)
            .unwrap();
        let mut decoder = codec.decoder().unwrap();
        let mut out = Vec::new();
        let digest = codec.digest(&data);
        verify_chunk(
            codec,
            &mut *decoder,
            &digest,
            &encoded,
            data.len(),
            &mut out,
        )
        .unwrap();
        assert_eq!(out, data);
        let wrong = Digest([9; 32]);
        assert!(matches!(
            verify_chunk(codec, &mut *decoder, &wrong, &encoded, data.len(), &mut out),
            Err(ChunkCheckError::Digest(_))
        ));
        assert!(matches!(
            verify_chunk(
                codec,
                &mut *decoder,
                &digest,
                &encoded,
                data.len() + 1,
                &mut out
            ),
            Err(ChunkCheckError::Length { .. })
        ));
        let (a, b) = codec.digest_pair(&data, b"other");
        assert_eq!((a, b), (sha256(&data), sha256(b"other")));
        assert_eq!(codec.zero_digest(4096), sha256(&[0; 4096]));
        assert_eq!(codec.crypt_mode(), CryptMode::None);
    }
}
