//! The catalog's variable-length integers (spec 7.7).
//!
//! Unsigned: 7 bits per byte, least significant group first, the high bit set on every byte but
//! the last. Signed: a non-negative value is written as unsigned; a negative value `-m` writes `m`
//! in 7-bit groups that *all* carry the high bit, then a `0x00` byte. So `-1` is `81 00` while
//! `1` is `01`.
//!
//! The decoders accept what PBS's decoders accept (including non-canonical padding such as
//! `80 00` for 0) except values that do not fit the target type, which PBS would silently wrap.

/// Most bytes an unsigned varint may take: 64 bits in ten 7-bit groups.
pub const MAX_VARINT_LEN: usize = 10;
/// Most bytes a signed varint may take: ten groups and the `0x00` sign byte.
pub const MAX_SIGNED_VARINT_LEN: usize = 11;

/// Why a varint does not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VarintError {
    #[error("the input ends inside the varint")]
    Truncated,
    #[error("no end byte within {0} bytes")]
    TooLong(usize),
    #[error("the value does not fit in 64 bits")]
    Overflow,
}

/// Appends `v` as an unsigned varint.
pub fn encode_varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push(0x80 | (v & 0x7f) as u8);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends `v` as a signed varint.
pub fn encode_signed_varint(v: i64, out: &mut Vec<u8>) {
    if v >= 0 {
        return encode_varint(v.unsigned_abs(), out);
    }
    let mut m = v.unsigned_abs();
    loop {
        out.push(0x80 | (m & 0x7f) as u8);
        m >>= 7;
        if m == 0 {
            break;
        }
    }
    out.push(0);
}

/// Decodes an unsigned varint at the start of `bytes`: the value and the bytes it took.
pub fn decode_varint(bytes: &[u8]) -> Result<(u64, usize), VarintError> {
    let mut v = 0u64;
    for (i, &b) in bytes.iter().take(MAX_VARINT_LEN).enumerate() {
        let group = u64::from(b & 0x7f);
        // The tenth group holds bit 63 only.
        if i == MAX_VARINT_LEN - 1 && group > 1 {
            return Err(VarintError::Overflow);
        }
        v |= group << (7 * i);
        if b & 0x80 == 0 {
            return Ok((v, i + 1));
        }
    }
    if bytes.len() < MAX_VARINT_LEN {
        Err(VarintError::Truncated)
    } else {
        Err(VarintError::TooLong(MAX_VARINT_LEN))
    }
}

/// Decodes a signed varint at the start of `bytes`: the value and the bytes it took.
pub fn decode_signed_varint(bytes: &[u8]) -> Result<(i64, usize), VarintError> {
    let mut m = 0u64;
    for (i, &b) in bytes.iter().take(MAX_SIGNED_VARINT_LEN).enumerate() {
        if b == 0 {
            // The sign byte ends `-m`; alone (or after zero groups) it is 0.
            if m > 1 << 63 {
                return Err(VarintError::Overflow);
            }
            // -(m - 1) - 1 == -m without overflowing at i64::MIN.
            let v = -((m.saturating_sub(1)) as i64) - i64::from(m > 0);
            return Ok((v, i + 1));
        }
        if i == MAX_SIGNED_VARINT_LEN - 1 {
            // Only the sign byte may follow ten groups.
            return Err(VarintError::TooLong(MAX_SIGNED_VARINT_LEN));
        }
        let group = u64::from(b & 0x7f);
        if i == MAX_VARINT_LEN - 1 && group > 1 {
            return Err(VarintError::Overflow);
        }
        m |= group << (7 * i);
        if b & 0x80 == 0 {
            return i64::try_from(m)
                .map(|v| (v, i + 1))
                .map_err(|_| VarintError::Overflow);
        }
    }
    if bytes.len() < MAX_SIGNED_VARINT_LEN {
        Err(VarintError::Truncated)
    } else {
        Err(VarintError::TooLong(MAX_SIGNED_VARINT_LEN))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn enc(v: u64) -> String {
        let mut out = Vec::new();
        encode_varint(v, &mut out);
        hex::encode(out)
    }

    fn enc_signed(v: i64) -> String {
        let mut out = Vec::new();
        encode_signed_varint(v, &mut out);
        hex::encode(out)
    }

    #[test]
    fn unsigned_bytes() {
        assert_eq!(enc(0), "00");
        assert_eq!(enc(127), "7f");
        assert_eq!(enc(128), "8001");
        assert_eq!(enc(300), "ac02");
        assert_eq!(enc(u64::MAX), "ffffffffffffffffff01");
    }

    #[test]
    fn signed_bytes() {
        assert_eq!(enc_signed(0), "00");
        assert_eq!(enc_signed(1), "01");
        assert_eq!(enc_signed(300), "ac02");
        assert_eq!(enc_signed(1_700_000_000), "80e2cfaa06");
        assert_eq!(enc_signed(i64::MAX), "ffffffffffffffff7f");
        // Negative: every group has the high bit, then 0x00.
        assert_eq!(enc_signed(-1), "8100");
        assert_eq!(enc_signed(-127), "ff00");
        assert_eq!(enc_signed(-128), "808100");
        assert_eq!(enc_signed(-300), "ac8200");
        assert_eq!(enc_signed(i64::MIN), "8080808080808080808100");
    }

    #[test]
    fn decodes_concrete_values() {
        let d = |h: &str| decode_varint(&hex::decode(h).unwrap());
        assert_eq!(d("00"), Ok((0, 1)));
        assert_eq!(d("ac02ff"), Ok((300, 2)));
        assert_eq!(d("ffffffffffffffffff01"), Ok((u64::MAX, 10)));
        assert_eq!(
            d("8000"),
            Ok((0, 2)),
            "non-canonical padding is accepted, as PBS does"
        );
        let s = |h: &str| decode_signed_varint(&hex::decode(h).unwrap());
        assert_eq!(s("8100"), Ok((-1, 2)));
        assert_eq!(s("808100"), Ok((-128, 3)));
        assert_eq!(s("8080808080808080808100"), Ok((i64::MIN, 11)));
        assert_eq!(s("8000"), Ok((0, 2)), "negative zero is zero");
        assert_eq!(s("ffffffffffffffff7f"), Ok((i64::MAX, 9)));
        // PBS's signed decoder also reads unsigned varints up to i64::MAX.
        assert_eq!(s("ac02"), Ok((300, 2)));
    }

    #[test]
    fn rejects_bad_varints() {
        let d = |h: &str| decode_varint(&hex::decode(h).unwrap());
        assert_eq!(d(""), Err(VarintError::Truncated));
        assert_eq!(d("80"), Err(VarintError::Truncated));
        assert_eq!(d("ffffffffffffffffff02"), Err(VarintError::Overflow));
        assert_eq!(d("ffffffffffffffffff81"), Err(VarintError::TooLong(10)));
        let s = |h: &str| decode_signed_varint(&hex::decode(h).unwrap());
        assert_eq!(s("81"), Err(VarintError::Truncated));
        assert_eq!(s("ffffffffffffffff7f01"), Ok((i64::MAX, 9)));
        // 2^63 positive, 2^63 + 1 negative, and bits past 64.
        assert_eq!(s("8080808080808080808001"), Err(VarintError::TooLong(11)));
        assert_eq!(s("80808080808080808001"), Err(VarintError::Overflow));
        assert_eq!(s("8180808080808080808100"), Err(VarintError::Overflow));
        assert_eq!(s("8080808080808080808200"), Err(VarintError::Overflow));
        assert_eq!(s("8080808080808080808080"), Err(VarintError::TooLong(11)));
    }

    proptest! {
        #[test]
        fn unsigned_round_trip(v in any::<u64>(), tail in proptest::collection::vec(any::<u8>(), 0..4)) {
            let mut out = Vec::new();
            encode_varint(v, &mut out);
            let len = out.len();
            prop_assert!(len <= MAX_VARINT_LEN);
            out.extend_from_slice(&tail);
            prop_assert_eq!(decode_varint(&out), Ok((v, len)));
        }

        #[test]
        fn signed_round_trip(v in any::<i64>(), tail in proptest::collection::vec(any::<u8>(), 0..4)) {
            let mut out = Vec::new();
            encode_signed_varint(v, &mut out);
            let len = out.len();
            prop_assert!(len <= MAX_SIGNED_VARINT_LEN);
            out.extend_from_slice(&tail);
            prop_assert_eq!(decode_signed_varint(&out), Ok((v, len)));
        }

        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..14)) {
            let _ = decode_varint(&bytes);
            let _ = decode_signed_varint(&bytes);
        }
    }
}
