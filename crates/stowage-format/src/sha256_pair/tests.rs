use super::*;
use crate::sha256;
use proptest::prelude::*;

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u8)
                .wrapping_mul(seed)
                .wrapping_add((i >> 8) as u8 ^ seed)
        })
        .collect()
}

#[test]
fn pairs_of_every_padding_case_match_sha256() {
    // Lengths around the block size and the point where the length no longer fits in the
    // final block (56), equal and unequal pairs, empty messages.
    let lens = [
        0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 128, 1000, 4096, 65_537,
    ];
    for &la in &lens {
        for &lb in &lens {
            let (a, b) = (pattern(la, 7), pattern(lb, 13));
            let (da, db) = sha256_pair(&a, &b);
            assert_eq!(da, sha256(&a), "first of ({la}, {lb})");
            assert_eq!(db, sha256(&b), "second of ({la}, {lb})");
        }
    }
}

#[test]
fn known_vectors() {
    // FIPS 180-4 examples: "abc" and the empty message.
    let (abc, empty) = sha256_pair(b"abc", b"");
    assert_eq!(
        abc.to_string(),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(
        empty.to_string(),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}

#[test]
fn a_whole_chunk_pair_matches_sha256() {
    let (a, b) = (pattern(4 << 20, 3), pattern(4 << 20, 5));
    assert_eq!(sha256_pair(&a, &b), (sha256(&a), sha256(&b)));
    assert_eq!(sha256_pair(&a, &a), (sha256(&a), sha256(&a)));
}

proptest! {
    #[test]
    fn any_pair_matches_sha256(
        a in proptest::collection::vec(any::<u8>(), 0..2000),
        b in proptest::collection::vec(any::<u8>(), 0..2000),
    ) {
        let (da, db) = sha256_pair(&a, &b);
        prop_assert_eq!(da, sha256(&a));
        prop_assert_eq!(db, sha256(&b));
    }
}
