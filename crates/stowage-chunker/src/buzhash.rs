//! The content-defined chunker of PBS (spec 6.1): a buzhash over a 64-byte window, cutting where
//! the hash meets a threshold, between `avg / 4` and `avg * 4` bytes.
//!
//! The cut decision depends only on the bytes since the previous cut, never on how the input is
//! split into reads, so boundaries match PBS's own and unchanged data deduplicates even when it
//! shifts.

/// casync's table (spec appendix A).
const TABLE: [u32; 256] = [
    0x458be752, 0xc10748cc, 0xfbbcdbb8, 0x6ded5b68, 0xb10a82b5, 0x20d75648, 0xdfc5665f, 0xa8428801,
    0x7ebf5191, 0x841135c7, 0x65cc53b3, 0x280a597c, 0x16f60255, 0xc78cbc3e, 0x294415f5, 0xb938d494,
    0xec85c4e6, 0xb7d33edc, 0xe549b544, 0xfdeda5aa, 0x882bf287, 0x3116737c, 0x05569956, 0xe8cc1f68,
    0x0806ac5e, 0x22a14443, 0x15297e10, 0x50d090e7, 0x4ba60f6f, 0xefd9f1a7, 0x5c5c885c, 0x82482f93,
    0x9bfd7c64, 0x0b3e7276, 0xf2688e77, 0x8fad8abc, 0xb0509568, 0xf1ada29f, 0xa53efdfe, 0xcb2b1d00,
    0xf2a9e986, 0x6463432b, 0x95094051, 0x5a223ad2, 0x9be8401b, 0x61e579cb, 0x1a556a14, 0x5840fdc2,
    0x9261ddf6, 0xcde002bb, 0x52432bb0, 0xbf17373e, 0x7b7c222f, 0x2955ed16, 0x9f10ca59, 0xe840c4c9,
    0xccabd806, 0x14543f34, 0x1462417a, 0x0d4a1f9c, 0x087ed925, 0xd7f8f24c, 0x7338c425, 0xcf86c8f5,
    0xb19165cd, 0x9891c393, 0x325384ac, 0x0308459d, 0x86141d7e, 0xc922116a, 0xe2ffa6b6, 0x53f52aed,
    0x2cd86197, 0xf5b9f498, 0xbf319c8f, 0xe0411fae, 0x977eb18c, 0xd8770976, 0x9833466a, 0xc674df7f,
    0x8c297d45, 0x8ca48d26, 0xc49ed8e2, 0x7344f874, 0x556f79c7, 0x6b25eaed, 0xa03e2b42, 0xf68f66a4,
    0x8e8b09a2, 0xf2e0e62a, 0x0d3a9806, 0x9729e493, 0x8c72b0fc, 0x160b94f6, 0x450e4d3d, 0x7a320e85,
    0xbef8f0e1, 0x21d73653, 0x4e3d977a, 0x1e7b3929, 0x1cc6c719, 0xbe478d53, 0x8d752809, 0xe6d8c2c6,
    0x275f0892, 0xc8acc273, 0x4cc21580, 0xecc4a617, 0xf5f7be70, 0xe795248a, 0x375a2fe9, 0x425570b6,
    0x8898dcf8, 0xdc2d97c4, 0x0106114b, 0x364dc22f, 0x1e0cad1f, 0xbe63803c, 0x5f69fac2, 0x4d5afa6f,
    0x1bc0dfb5, 0xfb273589, 0x0ea47f7b, 0x3c1c2b50, 0x21b2a932, 0x6b1223fd, 0x2fe706a8, 0xf9bd6ce2,
    0xa268e64e, 0xe987f486, 0x3eacf563, 0x1ca2018c, 0x65e18228, 0x2207360a, 0x57cf1715, 0x34c37d2b,
    0x1f8f3cde, 0x93b657cf, 0x31a019fd, 0xe69eb729, 0x8bca7b9b, 0x4c9d5bed, 0x277ebeaf, 0xe0d8f8ae,
    0xd150821c, 0x31381871, 0xafc3f1b0, 0x927db328, 0xe95effac, 0x305a47bd, 0x426ba35b, 0x1233af3f,
    0x686a5b83, 0x50e072e5, 0xd9d3bb2a, 0x8befc475, 0x487f0de6, 0xc88dff89, 0xbd664d5e, 0x971b5d18,
    0x63b14847, 0xd7d3c1ce, 0x7f583cf3, 0x72cbcb09, 0xc0d0a81c, 0x7fa3429b, 0xe9158a1b, 0x225ea19a,
    0xd8ca9ea3, 0xc763b282, 0xbb0c6341, 0x020b8293, 0xd4cd299d, 0x58cfa7f8, 0x91b4ee53, 0x37e4d140,
    0x95ec764c, 0x30f76b06, 0x5ee68d24, 0x679c8661, 0xa41979c2, 0xf2b61284, 0x4fac1475, 0x0adb49f9,
    0x19727a23, 0x15a7e374, 0xc43a18d5, 0x3fb1aa73, 0x342fc615, 0x924c0793, 0xbee2d7f0, 0x8a279de9,
    0x4aa2d70c, 0xe24dd37f, 0xbe862c0b, 0x177c22c2, 0x5388e5ee, 0xcd8a7510, 0xf901b4fd, 0xdbc13dbc,
    0x6c0bae5b, 0x64efe8c7, 0x48b02079, 0x80331a49, 0xca3d8ae6, 0xf3546190, 0xfed7108b, 0xc49b941b,
    0x32baf4a9, 0xeb833a4a, 0x88a3f1a5, 0x3a91ce0a, 0x3cc27da1, 0x7112e684, 0x4a3096b1, 0x3794574c,
    0xa3c8b6f3, 0x1d213941, 0x6e0a2e00, 0x233479f1, 0x0f4cd82f, 0x6093edd2, 0x5d7d209e, 0x464fe319,
    0xd4dcac9e, 0x0db845cb, 0xfb5e4bc3, 0xe0256ce1, 0x09fb4ed1, 0x0914be1e, 0xa5bdb2c3, 0xc6eb57bb,
    0x30320350, 0x3f397e91, 0xa67791bc, 0x86bc0e2c, 0xefa0a7e2, 0xe9ff7543, 0xe733612c, 0xd185897b,
    0x329e5388, 0x91dd236b, 0x2ecb0d93, 0xf4d82a3d, 0x35b5c03f, 0xe4e606f0, 0x05b21843, 0x37b45964,
    0x5eff22f4, 0x6027f4cc, 0x77178b3c, 0xae507131, 0x7bf7cabc, 0xf9c18d66, 0x593ade65, 0xd95ddf11,
];

const WINDOW: usize = 64;

/// Average chunk size of file-tree archives.
pub const DEFAULT_AVG: usize = 4 << 20;
/// Average chunk size of catalogs.
pub const CATALOG_AVG: usize = 512 << 10;

/// Streaming buzhash chunker. Feed it data with [`Buzhash::scan`]; it reports where the current
/// chunk ends.
#[derive(Clone)]
pub struct Buzhash {
    min: usize,
    max: usize,
    mask: u32,
    threshold: u32,
    /// Bytes of the current chunk seen so far.
    n: usize,
    h: u32,
    window: [u8; WINDOW],
}

impl Buzhash {
    /// A chunker for average size `avg`, a power of two of at least 4 KiB; `None` otherwise.
    pub fn new(avg: usize) -> Option<Self> {
        if !avg.is_power_of_two() || !(4096..=(1 << 30)).contains(&avg) {
            return None;
        }
        let mask = (2 * avg - 1) as u32;
        Some(Buzhash {
            min: avg / 4,
            max: avg * 4,
            mask,
            threshold: mask - 2,
            n: 0,
            h: 0,
            window: [0; WINDOW],
        })
    }

    pub fn min_size(&self) -> usize {
        self.min
    }

    pub fn max_size(&self) -> usize {
        self.max
    }

    /// Bytes of the current, unfinished chunk.
    pub fn pending(&self) -> usize {
        self.n
    }

    /// Forgets the current chunk: the next byte starts a new one.
    pub fn reset(&mut self) {
        self.n = 0;
        self.h = 0;
    }

    /// Consumes `data` until the current chunk ends. Returns `Some(k)` when the chunk ends after
    /// the first `k` bytes of `data` (the state is then reset for the next chunk), `None` when
    /// all of `data` belongs to the current chunk.
    pub fn scan(&mut self, data: &[u8]) -> Option<usize> {
        let skip = self.min - WINDOW;
        let mut i = 0;
        if self.n < skip {
            let step = (skip - self.n).min(data.len());
            self.n += step;
            i = step;
        }
        // The WINDOW bytes before `min` only fill the window: no cut can come before `min`.
        let warming = self.n < self.min;
        while i < data.len() && self.n < self.min {
            let b = data[i];
            self.h = self.h.rotate_left(1) ^ TABLE[b as usize];
            self.window[self.n % WINDOW] = b;
            self.n += 1;
            i += 1;
        }
        if self.n < self.min {
            return None;
        }
        if warming && self.is_cut() {
            self.reset();
            return Some(i);
        }
        self.roll(data, i)
    }

    fn is_cut(&self) -> bool {
        self.n >= self.max || (self.h & self.mask) >= self.threshold
    }

    /// The steady state from `data[start..]`: the byte leaving the window comes straight from
    /// `data` once 64 bytes of this call are behind, from the ring before that.
    fn roll(&mut self, data: &[u8], start: usize) -> Option<usize> {
        let limit = data.len().min(start + (self.max - self.n));
        let (mask, threshold) = (self.mask, self.threshold);
        let mut h = self.h;
        let mut i = start;
        let head = limit.min(WINDOW);
        while i < head {
            let b = data[i];
            let out = self.window[(self.n + i - start) % WINDOW];
            h = h.rotate_left(1) ^ TABLE[out as usize] ^ TABLE[b as usize];
            i += 1;
            if (h & mask) >= threshold {
                self.reset();
                return Some(i);
            }
        }
        while i < limit {
            let b = data[i];
            let out = data[i - WINDOW];
            h = h.rotate_left(1) ^ TABLE[out as usize] ^ TABLE[b as usize];
            i += 1;
            if (h & mask) >= threshold {
                self.reset();
                return Some(i);
            }
        }
        let n_end = self.n + (i - start);
        if n_end >= self.max {
            self.reset();
            return Some(i);
        }
        // No cut in this piece: keep the last WINDOW bytes for the next call.
        let from = i.saturating_sub(WINDOW).max(start);
        for (j, &b) in data.iter().enumerate().take(i).skip(from) {
            self.window[(n_end - (i - j)) % WINDOW] = b;
        }
        self.n = n_end;
        self.h = h;
        None
    }

    pub fn chunk_lengths(avg: usize, data: &[u8]) -> Vec<usize> {
        let Some(mut c) = Buzhash::new(avg) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut rest = data;
        while let Some(k) = c.scan(rest) {
            out.push(k);
            rest = &rest[k..];
        }
        if !rest.is_empty() {
            out.push(rest.len());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The u32-LE counter sequence 0, 1, 2, ... of the spec's test data.
    fn counter(bytes: usize) -> Vec<u8> {
        (0..bytes as u32 / 4)
            .flat_map(|i| i.to_le_bytes())
            .collect()
    }

    /// A naive byte-by-byte transcription of spec 6.1, to check the optimised scan against.
    fn spec_lengths(avg: usize, data: &[u8]) -> Vec<usize> {
        let (min, max, mask) = (avg / 4, avg * 4, (2 * avg - 1) as u32);
        let (mut h, mut n, mut win, mut out, mut start) = (0u32, 0usize, [0u8; 64], Vec::new(), 0);
        for (pos, &b) in data.iter().enumerate() {
            if n < 64 {
                win[n] = b;
                h = h.rotate_left(1) ^ TABLE[b as usize];
                n += 1;
                continue;
            }
            let i = n % 64;
            h = h.rotate_left(1) ^ TABLE[win[i] as usize] ^ TABLE[b as usize];
            n += 1;
            win[i] = b;
            if n >= max || (n >= min && (h & mask) >= mask - 2) {
                out.push(pos + 1 - start);
                start = pos + 1;
                h = 0;
                n = 0;
            }
        }
        if start < data.len() {
            out.push(data.len() - start);
        }
        out
    }

    #[test]
    fn table_matches_the_spec_checksum() {
        use sha2::Digest as _;
        let bytes: Vec<u8> = TABLE.iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(
            hex::encode(sha2::Sha256::digest(&bytes)),
            "5b52080d38287da9d2e278466e3e0db7ec98e5e8b226f50612a56fa012b1f660"
        );
    }

    /// Spec 6.1 cross-checked data: counter sequence, 1 MiB, average 64 KiB.
    #[test]
    fn spec_vectors() {
        let data = counter(1 << 20);
        assert_eq!(
            Buzhash::chunk_lengths(64 << 10, &data),
            [143_377, 262_144, 262_144, 262_144, 118_767]
        );
        assert_eq!(
            Buzhash::chunk_lengths(64 << 10, &data[32_768..])[0],
            110_609
        );
        assert_eq!(
            Buzhash::chunk_lengths(64 << 10, &data[405_521..]),
            [262_144, 262_144, 118_767]
        );
    }

    #[test]
    fn rejects_bad_averages() {
        assert!(Buzhash::new(3000).is_none());
        assert!(Buzhash::new(2048).is_none());
        assert!(Buzhash::new(4096).is_some());
    }

    proptest! {
        /// The optimised scan cuts exactly where the spec's byte-by-byte rule cuts.
        #[test]
        fn matches_the_spec_rule(seed: u64, len in 0usize..200_000) {
            let mut x = seed | 1;
            let data: Vec<u8> = (0..len).map(|_| { x ^= x << 13; x ^= x >> 7; x ^= x << 17; (x >> 32) as u8 }).collect();
            prop_assert_eq!(Buzhash::chunk_lengths(4096, &data), spec_lengths(4096, &data));
        }

        /// Boundaries do not depend on how the stream is split into reads.
        #[test]
        fn independent_of_read_sizes(seed: u64, pieces in proptest::collection::vec(1usize..9000, 1..40)) {
            let mut x = seed | 1;
            let len: usize = pieces.iter().sum();
            let data: Vec<u8> = (0..len).map(|_| { x ^= x << 13; x ^= x >> 7; x ^= x << 17; (x >> 40) as u8 }).collect();
            let mut c = Buzhash::new(4096).unwrap();
            let (mut lengths, mut current, mut pos) = (Vec::new(), 0usize, 0usize);
            for p in pieces {
                let mut piece = &data[pos..pos + p];
                pos += p;
                while let Some(k) = c.scan(piece) {
                    lengths.push(current + k);
                    current = 0;
                    piece = &piece[k..];
                }
                current += piece.len();
            }
            if current > 0 { lengths.push(current); }
            prop_assert_eq!(lengths, Buzhash::chunk_lengths(4096, &data));
        }
    }
}
