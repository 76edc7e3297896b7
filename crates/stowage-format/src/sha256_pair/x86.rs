//! The x86-64 SHA extensions kernel: two messages' rounds interleaved.

use core::arch::x86_64::*;

/// SHA-256's round constants (FIPS 180-4, 4.2.2).
const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// Whether this CPU has the instructions the kernel uses (the answer is cached by std).
pub(super) fn available() -> bool {
    is_x86_feature_detected!("sha")
        && is_x86_feature_detected!("sse4.1")
        && is_x86_feature_detected!("ssse3")
}

/// Compresses the blocks of `a` into `sa` and those of `b` into `sb`. `a` and `b` have the same
/// length, a multiple of 64.
pub(super) fn compress_pair(sa: &mut [u32; 8], sb: &mut [u32; 8], a: &[u8], b: &[u8]) {
    assert!(a.len() == b.len() && a.len().is_multiple_of(64));
    assert!(available());
    // SAFETY: the CPU has the features `compress` is compiled for (checked just above), and
    // `compress` reads only within `a` and `b`, whose equal lengths are whole blocks.
    unsafe { compress(sa, sb, a, b) }
}

/// The state as the SHA instructions keep it: words A, B, E, F in one register and C, D, G, H
/// in the other.
#[derive(Clone, Copy)]
struct Lanes {
    abef: __m128i,
    cdgh: __m128i,
}

#[inline(always)]
unsafe fn to_lanes(state: &[u32; 8]) -> Lanes {
    let dcba = _mm_shuffle_epi32(_mm_loadu_si128(state.as_ptr().cast()), 0xB1);
    let efgh = _mm_shuffle_epi32(_mm_loadu_si128(state.as_ptr().add(4).cast()), 0x1B);
    Lanes {
        abef: _mm_alignr_epi8(dcba, efgh, 8),
        cdgh: _mm_blend_epi16(efgh, dcba, 0xF0),
    }
}

#[inline(always)]
unsafe fn from_lanes(lanes: Lanes, state: &mut [u32; 8]) {
    let feba = _mm_shuffle_epi32(lanes.abef, 0x1B);
    let dchg = _mm_shuffle_epi32(lanes.cdgh, 0xB1);
    _mm_storeu_si128(state.as_mut_ptr().cast(), _mm_blend_epi16(feba, dchg, 0xF0));
    _mm_storeu_si128(
        state.as_mut_ptr().add(4).cast(),
        _mm_alignr_epi8(dchg, feba, 8),
    );
}

#[inline(always)]
unsafe fn add(x: Lanes, y: Lanes) -> Lanes {
    Lanes {
        abef: _mm_add_epi32(x.abef, y.abef),
        cdgh: _mm_add_epi32(x.cdgh, y.cdgh),
    }
}

// The macro's constant conditions leave the last schedule updates unread.
#[allow(unused_assignments)]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
unsafe fn compress(sa: &mut [u32; 8], sb: &mut [u32; 8], a: &[u8], b: &[u8]) {
    // Byte order: message words are big-endian.
    let swap = _mm_set_epi64x(0x0c0d0e0f08090a0b, 0x0405060700010203);
    let (mut x, mut y) = (to_lanes(sa), to_lanes(sb));
    for block in 0..a.len() / 64 {
        let (pa, pb) = (a.as_ptr().add(block * 64), b.as_ptr().add(block * 64));
        let (start_x, start_y) = (x, y);
        // The message schedule, four words per register, a ring of four registers per message.
        let mut wa = [_mm_setzero_si128(); 4];
        let mut wb = [_mm_setzero_si128(); 4];
        // Four rounds of both messages. Written out sixteen times (a macro, so that the
        // register ring indices are constants and the loop is fully unrolled: a rolled loop
        // keeps the ring in memory and loses most of the gain).
        macro_rules! four_rounds {
            ($i:literal) => {{
                const I: usize = $i;
                if I < 4 {
                    wa[I % 4] = _mm_shuffle_epi8(_mm_loadu_si128(pa.add(16 * I).cast()), swap);
                    wb[I % 4] = _mm_shuffle_epi8(_mm_loadu_si128(pb.add(16 * I).cast()), swap);
                }
                let k = _mm_loadu_si128(K.as_ptr().add(4 * I).cast());
                let ka = _mm_add_epi32(wa[I % 4], k);
                let kb = _mm_add_epi32(wb[I % 4], k);
                x.cdgh = _mm_sha256rnds2_epu32(x.cdgh, x.abef, ka);
                y.cdgh = _mm_sha256rnds2_epu32(y.cdgh, y.abef, kb);
                if I >= 3 && I < 15 {
                    // Finish the schedule words of the next group.
                    let (cur, prev, next) = (I % 4, (I + 3) % 4, (I + 1) % 4);
                    let ta = _mm_alignr_epi8(wa[cur], wa[prev], 4);
                    let tb = _mm_alignr_epi8(wb[cur], wb[prev], 4);
                    wa[next] = _mm_sha256msg2_epu32(_mm_add_epi32(wa[next], ta), wa[cur]);
                    wb[next] = _mm_sha256msg2_epu32(_mm_add_epi32(wb[next], tb), wb[cur]);
                }
                x.abef = _mm_sha256rnds2_epu32(x.abef, x.cdgh, _mm_shuffle_epi32(ka, 0x0E));
                y.abef = _mm_sha256rnds2_epu32(y.abef, y.cdgh, _mm_shuffle_epi32(kb, 0x0E));
                if I >= 1 && I < 13 {
                    // Start the schedule words three groups ahead.
                    let (cur, prev) = (I % 4, (I + 3) % 4);
                    wa[prev] = _mm_sha256msg1_epu32(wa[prev], wa[cur]);
                    wb[prev] = _mm_sha256msg1_epu32(wb[prev], wb[cur]);
                }
            }};
        }
        four_rounds!(0);
        four_rounds!(1);
        four_rounds!(2);
        four_rounds!(3);
        four_rounds!(4);
        four_rounds!(5);
        four_rounds!(6);
        four_rounds!(7);
        four_rounds!(8);
        four_rounds!(9);
        four_rounds!(10);
        four_rounds!(11);
        four_rounds!(12);
        four_rounds!(13);
        four_rounds!(14);
        four_rounds!(15);
        x = add(x, start_x);
        y = add(y, start_y);
    }
    from_lanes(x, sa);
    from_lanes(y, sb);
}
