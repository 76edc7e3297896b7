//! DataBlob: the container of every chunk and `.blob` file.
//!
//! `magic (8) | crc32 of payload (4, LE) | payload`, where the payload is raw data or one zstd
//! frame. Encrypted magics are recognised but not yet supported.

use std::io::Read;

use stowage_types::ErrorClass;

pub const MAGIC_UNCOMPRESSED: [u8; 8] = [66, 171, 56, 7, 190, 131, 112, 161];
pub const MAGIC_COMPRESSED: [u8; 8] = [49, 185, 88, 66, 111, 182, 163, 127];
pub const MAGIC_ENCRYPTED: [u8; 8] = [123, 103, 133, 190, 34, 45, 76, 240];
pub const MAGIC_ENCRYPTED_COMPRESSED: [u8; 8] = [230, 89, 27, 191, 11, 191, 216, 11];

/// Length of the header of an unencrypted blob.
pub const HEADER_LEN: usize = 12;
/// Largest payload a blob may carry (`MAX_BLOB_SIZE`).
pub const MAX_BLOB_SIZE: usize = 128 * 1024 * 1024;
/// zstd level used for chunks and blobs.
pub const ZSTD_LEVEL: i32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobKind {
    Uncompressed,
    Compressed,
    Encrypted,
    EncryptedCompressed,
}

impl BlobKind {
    pub fn from_magic(magic: &[u8]) -> Option<BlobKind> {
        match <[u8; 8]>::try_from(magic).ok()? {
            MAGIC_UNCOMPRESSED => Some(BlobKind::Uncompressed),
            MAGIC_COMPRESSED => Some(BlobKind::Compressed),
            MAGIC_ENCRYPTED => Some(BlobKind::Encrypted),
            MAGIC_ENCRYPTED_COMPRESSED => Some(BlobKind::EncryptedCompressed),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob is too short ({0} bytes)")]
    TooShort(usize),
    #[error("bad blob magic (not a data blob)")]
    BadMagic,
    #[error("blob CRC mismatch (stored {stored:08x}, computed {computed:08x})")]
    Crc { stored: u32, computed: u32 },
    #[error("blob is encrypted; this stowage cannot decrypt yet")]
    Encrypted,
    #[error("blob payload does not decompress: {0}")]
    Decompress(String),
    #[error("blob data is larger than the allowed {0} bytes")]
    TooLarge(usize),
    #[error("zstd compression failed: {0}")]
    Compress(String),
}

impl BlobError {
    pub fn class(&self) -> ErrorClass {
        match self {
            BlobError::Compress(_) => ErrorClass::Compression,
            BlobError::Encrypted => ErrorClass::Usage,
            _ => ErrorClass::Verification,
        }
    }
}

/// Encodes blobs; holds a zstd context so a worker thread can reuse it for every chunk.
pub struct BlobEncoder {
    compressor: zstd::bulk::Compressor<'static>,
    scratch: Vec<u8>,
}

impl BlobEncoder {
    pub fn new() -> Result<Self, BlobError> {
        let compressor = zstd::bulk::Compressor::new(ZSTD_LEVEL)
            .map_err(|e| BlobError::Compress(e.to_string()))?;
        Ok(BlobEncoder {
            compressor,
            scratch: Vec::new(),
        })
    }

    /// Encodes `data` into `out` (cleared first): zstd when the frame is no larger than the data,
    /// raw otherwise. Returns whether the payload is compressed.
    pub fn encode_into(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<bool, BlobError> {
        if data.len() > MAX_BLOB_SIZE {
            return Err(BlobError::TooLarge(MAX_BLOB_SIZE));
        }
        self.scratch.clear();
        self.scratch.reserve(data.len());
        let compressed = match self.compressor.compress_to_buffer(data, &mut self.scratch) {
            Ok(n) => n <= data.len(),
            // The only expected failure is "destination too small": the data does not compress.
            Err(_) => false,
        };
        let payload: &[u8] = if compressed { &self.scratch } else { data };
        let magic = if compressed {
            MAGIC_COMPRESSED
        } else {
            MAGIC_UNCOMPRESSED
        };
        write_blob(magic, payload, out);
        Ok(compressed)
    }

    /// Encodes into a new vector.
    pub fn encode(&mut self, data: &[u8]) -> Result<Vec<u8>, BlobError> {
        let mut out = Vec::with_capacity(HEADER_LEN + data.len());
        self.encode_into(data, &mut out)?;
        Ok(out)
    }
}

/// Encodes an uncompressed blob.
pub fn encode_uncompressed(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + data.len());
    write_blob(MAGIC_UNCOMPRESSED, data, &mut out);
    out
}

fn write_blob(magic: [u8; 8], payload: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.reserve(HEADER_LEN + payload.len());
    out.extend_from_slice(&magic);
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Length of the header of an encrypted blob: magic, CRC, IV (16) and tag (16).
pub const ENCRYPTED_HEADER_LEN: usize = 44;

/// Splits a blob into kind and payload after checking magic and CRC.
pub fn open_blob(encoded: &[u8]) -> Result<(BlobKind, &[u8]), BlobError> {
    if encoded.len() < HEADER_LEN {
        return Err(BlobError::TooShort(encoded.len()));
    }
    let kind = BlobKind::from_magic(&encoded[..8]).ok_or(BlobError::BadMagic)?;
    let encrypted = matches!(kind, BlobKind::Encrypted | BlobKind::EncryptedCompressed);
    let header_len = if encrypted {
        ENCRYPTED_HEADER_LEN
    } else {
        HEADER_LEN
    };
    if encoded.len() < header_len {
        return Err(BlobError::TooShort(encoded.len()));
    }
    // The CRC covers what follows the whole header (for encrypted blobs: the ciphertext only).
    let payload = &encoded[header_len..];
    let stored = u32::from_le_bytes([encoded[8], encoded[9], encoded[10], encoded[11]]);
    let computed = crc32fast::hash(payload);
    if stored != computed {
        return Err(BlobError::Crc { stored, computed });
    }
    if encrypted {
        return Err(BlobError::Encrypted);
    }
    Ok((kind, payload))
}

/// Decodes blobs; holds a zstd context for reuse on a worker thread.
pub struct BlobDecoder {
    decompressor: zstd::bulk::Decompressor<'static>,
}

impl BlobDecoder {
    pub fn new() -> Result<Self, BlobError> {
        let decompressor =
            zstd::bulk::Decompressor::new().map_err(|e| BlobError::Decompress(e.to_string()))?;
        Ok(BlobDecoder { decompressor })
    }

    /// Decodes `encoded` into `out` (cleared first); the data may be at most `max_len` bytes.
    pub fn decode_into(
        &mut self,
        encoded: &[u8],
        out: &mut Vec<u8>,
        max_len: usize,
    ) -> Result<(), BlobError> {
        let (kind, payload) = open_blob(encoded)?;
        out.clear();
        match kind {
            BlobKind::Uncompressed => {
                if payload.len() > max_len {
                    return Err(BlobError::TooLarge(max_len));
                }
                out.extend_from_slice(payload);
            }
            _ => {
                // The output cannot be larger than a blob may be, whatever the caller expects.
                out.reserve(max_len.min(MAX_BLOB_SIZE));
                self.decompressor
                    .decompress_to_buffer(payload, out)
                    .map_err(|e| BlobError::Decompress(e.to_string()))?;
                if out.len() > max_len {
                    return Err(BlobError::TooLarge(max_len));
                }
            }
        }
        Ok(())
    }
}

/// Decodes a blob of unknown size (a manifest, a config file) of at most `max_len` bytes.
pub fn decode_blob(encoded: &[u8], max_len: usize) -> Result<Vec<u8>, BlobError> {
    let (kind, payload) = open_blob(encoded)?;
    if kind == BlobKind::Uncompressed {
        if payload.len() > max_len {
            return Err(BlobError::TooLarge(max_len));
        }
        return Ok(payload.to_vec());
    }
    let decoder = zstd::stream::read::Decoder::new(payload)
        .map_err(|e| BlobError::Decompress(e.to_string()))?;
    let mut out = Vec::new();
    decoder
        .take(max_len as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| BlobError::Decompress(e.to_string()))?;
    if out.len() > max_len {
        return Err(BlobError::TooLarge(max_len));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn magics_are_sha256_prefixes_of_their_names() {
        let cases = [
            (MAGIC_UNCOMPRESSED, "Proxmox Backup uncompressed blob v1.0"),
            (MAGIC_COMPRESSED, "Proxmox Backup zstd compressed blob v1.0"),
            (MAGIC_ENCRYPTED, "Proxmox Backup encrypted blob v1.0"),
            (
                MAGIC_ENCRYPTED_COMPRESSED,
                "Proxmox Backup zstd compressed encrypted blob v1.0",
            ),
        ];
        for (magic, text) in cases {
            assert_eq!(&crate::sha256(text.as_bytes()).0[..8], &magic);
        }
    }

    /// Spec 2.4: the uncompressed blob of "hello".
    #[test]
    fn golden_hello_blob() {
        let blob = encode_uncompressed(b"hello");
        assert_eq!(hex::encode(&blob), "42ab3807be8370a186a6103668656c6c6f");
        // Too small to gain from zstd: the encoder keeps it raw, byte for byte the same.
        assert_eq!(BlobEncoder::new().unwrap().encode(b"hello").unwrap(), blob);
        assert_eq!(decode_blob(&blob, 5).unwrap(), b"hello");
        assert!(matches!(decode_blob(&blob, 4), Err(BlobError::TooLarge(4))));
    }

    /// Spec 2.4: an encrypted blob is recognised by magic and CRC, and refused.
    #[test]
    fn golden_encrypted_blob_is_recognised() {
        let blob = hex::decode(
            "7b6785be222d4cf0784eea93000102030405060708090a0b0c0d0e0f\
             0c84c431837297c0b19e77e5608162ea0f09cc1a56",
        )
        .unwrap();
        assert!(matches!(open_blob(&blob), Err(BlobError::Encrypted)));
    }

    #[test]
    fn compressible_data_is_compressed() {
        let data = vec![7u8; 1 << 20];
        let blob = BlobEncoder::new().unwrap().encode(&data).unwrap();
        assert_eq!(&blob[..8], &MAGIC_COMPRESSED);
        assert!(blob.len() < 1000);
        let mut out = Vec::new();
        let mut dec = BlobDecoder::new().unwrap();
        dec.decode_into(&blob, &mut out, data.len()).unwrap();
        assert_eq!(out, data);
        assert!(dec.decode_into(&blob, &mut out, data.len() - 1).is_err());
    }

    #[test]
    fn damage_is_detected() {
        let blob = BlobEncoder::new().unwrap().encode(&[1u8; 4096]).unwrap();
        let mut flipped = blob.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(matches!(
            decode_blob(&flipped, 1 << 20),
            Err(BlobError::Crc { .. })
        ));
        let mut magic = blob.clone();
        magic[0] ^= 1;
        assert!(matches!(
            decode_blob(&magic, 1 << 20),
            Err(BlobError::BadMagic)
        ));
        assert!(matches!(
            decode_blob(&blob[..11], 1 << 20),
            Err(BlobError::TooShort(11))
        ));
        // A valid CRC over garbage that is not a zstd frame.
        let mut garbage = MAGIC_COMPRESSED.to_vec();
        garbage.extend_from_slice(&crc32fast::hash(b"junk").to_le_bytes());
        garbage.extend_from_slice(b"junk");
        assert!(matches!(
            decode_blob(&garbage, 1 << 20),
            Err(BlobError::Decompress(_))
        ));
    }

    proptest! {
        #[test]
        fn round_trip(data in proptest::collection::vec(any::<u8>(), 0..20_000), repeat in 1usize..4) {
            let data: Vec<u8> = data.iter().copied().cycle().take(data.len() * repeat).collect();
            let mut enc = BlobEncoder::new().unwrap();
            let blob = enc.encode(&data).unwrap();
            prop_assert!(blob.len() <= HEADER_LEN + data.len());
            prop_assert_eq!(decode_blob(&blob, data.len()).unwrap(), data.clone());
            let mut out = Vec::new();
            BlobDecoder::new().unwrap().decode_into(&blob, &mut out, data.len()).unwrap();
            prop_assert_eq!(out, data);
        }

        #[test]
        fn decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_blob(&bytes, 1 << 16);
            let _ = BlobDecoder::new().unwrap().decode_into(&bytes, &mut Vec::new(), 1 << 16);
        }
    }
}
