/// True when every byte of `data` is zero. Works in 64-byte strides so it runs at memory speed.
pub fn is_zero(data: &[u8]) -> bool {
    let body_len = data.len() / 64 * 64;
    let (body, tail) = data.split_at(body_len);
    tail.iter().all(|b| *b == 0)
        && body.chunks_exact(64).all(|block| {
            // OR-fold eight u64 words; the compiler vectorises this.
            let mut acc = 0u64;
            for w in block.chunks_exact(8) {
                acc |= u64::from_ne_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
            }
            acc == 0
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn detects_zero_and_non_zero() {
        assert!(is_zero(&[]));
        assert!(is_zero(&[0u8; 4 << 20]));
        let mut v = vec![0u8; 4 << 20];
        *v.last_mut().unwrap() = 1;
        assert!(!is_zero(&v));
        v[4 << 19] = 1;
        assert!(!is_zero(&v[..(4 << 19) + 1]));
    }

    proptest! {
        #[test]
        fn matches_naive(len in 0usize..300, pos in 0usize..300, val in 1u8..) {
            let mut v = vec![0u8; len];
            if pos < len { v[pos] = val; }
            prop_assert_eq!(is_zero(&v), v.iter().all(|b| *b == 0));
        }
    }
}
