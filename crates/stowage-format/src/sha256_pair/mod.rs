//! SHA-256 of two independent messages at once.
//!
//! One SHA-256 stream is a chain of dependent rounds: on x86-64 with the SHA extensions each
//! round instruction waits for the one before it, and the SHA unit idles between them. Hashing
//! two messages with their rounds interleaved fills those gaps, so a pair of chunks is hashed in
//! about 70% of the time of hashing them one after the other (measured 3.05 GB/s against
//! 2.10 GB/s on the benchmark machine). Without the SHA extensions, or on other architectures,
//! the pair is hashed one message at a time with the `sha2` crate.
//!
//! The interleaved part covers the whole 64-byte blocks both messages have; the longer message's
//! remaining blocks and both final padded blocks go through `sha2`'s block function, so the
//! padding rules live in one place: [`finish`].

#[cfg(target_arch = "x86_64")]
mod x86;

use stowage_types::Digest;

/// SHA-256's initial hash value (FIPS 180-4, 5.3.3).
const H0: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// SHA-256 of `a` and of `b`: the same digests as [`crate::sha256`] of each, computed together.
pub fn sha256_pair(a: &[u8], b: &[u8]) -> (Digest, Digest) {
    #[cfg(target_arch = "x86_64")]
    if x86::available() {
        let common = a.len().min(b.len()) / 64;
        let (mut sa, mut sb) = (H0, H0);
        x86::compress_pair(&mut sa, &mut sb, &a[..common * 64], &b[..common * 64]);
        return (finish(sa, a, common), finish(sb, b, common));
    }
    (crate::sha256(a), crate::sha256(b))
}

/// Completes a digest whose first `done` 64-byte blocks of `message` are in `state`: the
/// remaining whole blocks, then the padding (a one bit, zeros, the bit length as a big-endian
/// u64) in one or two final blocks.
fn finish(mut state: [u32; 8], message: &[u8], done: usize) -> Digest {
    let (blocks, tail) = message[done * 64..].as_chunks::<64>();
    sha2::block_api::compress256(&mut state, blocks);
    let mut last = [[0u8; 64]; 2];
    let flat = last.as_flattened_mut();
    flat[..tail.len()].copy_from_slice(tail);
    flat[tail.len()] = 0x80;
    let used = if tail.len() < 56 { 1 } else { 2 };
    let bits = (message.len() as u64).wrapping_mul(8);
    flat[used * 64 - 8..used * 64].copy_from_slice(&bits.to_be_bytes());
    sha2::block_api::compress256(&mut state, &last[..used]);
    let mut out = [0u8; 32];
    for (bytes, word) in out.chunks_exact_mut(4).zip(state) {
        bytes.copy_from_slice(&word.to_be_bytes());
    }
    Digest(out)
}

#[cfg(test)]
mod tests;
