//! The decoder never panics and always terminates on damaged input: mutated, truncated or
//! extended archives either decode or fail with an error.

mod common;

use proptest::collection::vec;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Damage {
    Flip(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
    Remove(usize, usize),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        4 => (any::<usize>(), 1u8..=255).prop_map(|(at, x)| Damage::Flip(at, x)),
        1 => any::<usize>().prop_map(Damage::Truncate),
        1 => (any::<usize>(), vec(any::<u8>(), 1..24)).prop_map(|(at, b)| Damage::Insert(at, b)),
        1 => (any::<usize>(), 1usize..24).prop_map(|(at, n)| Damage::Remove(at, n)),
    ]
}

fn apply(bytes: &mut Vec<u8>, damage: &Damage) {
    if bytes.is_empty() {
        return;
    }
    let at = |i: &usize| i % bytes.len();
    match damage {
        Damage::Flip(i, x) => {
            let i = at(i);
            bytes[i] ^= x;
        }
        Damage::Truncate(i) => bytes.truncate(at(i)),
        Damage::Insert(i, b) => {
            let i = at(i);
            bytes.splice(i..i, b.iter().copied());
        }
        Damage::Remove(i, n) => {
            let i = at(i);
            let end = (i + n).min(bytes.len());
            bytes.drain(i..end);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn damaged_archives_never_panic(
        root in common::tree(),
        split in any::<bool>(),
        damages in vec(damage(), 1..4),
    ) {
        let (mut archive, mut payload, _) = common::encode(&root, split.then_some(None));
        for d in &damages {
            apply(&mut archive, d);
            apply(&mut payload, d);
        }
        let _ = common::decode(&archive, &payload);
    }

    #[test]
    fn random_bytes_never_panic(bytes in vec(any::<u8>(), 0..512)) {
        let _ = common::decode(&bytes, &[]);
    }

    /// A valid header followed by arbitrary items.
    #[test]
    fn random_items_after_a_valid_root_never_panic(
        tail in vec((any::<u8>(), 0u64..64, vec(any::<u8>(), 0..64)), 0..8),
    ) {
        use stowage_archive::format as f;
        let types = [f::ENTRY, f::FILENAME, f::GOODBYE, f::PAYLOAD, f::XATTR, f::HARDLINK,
            f::SYMLINK, f::DEVICE, f::PAYLOAD_REF, f::FORMAT_VERSION, f::ACL_USER, f::PRELUDE];
        let root = stowage_archive::Stat::new(f::FileType::Directory, 0o755);
        let mut bytes = f::Header::with_content(f::ENTRY, 40).to_bytes().to_vec();
        bytes.extend_from_slice(&root.to_bytes());
        for (t, size, content) in tail {
            let htype = types[t as usize % types.len()];
            let header = f::Header { htype, full_size: size.wrapping_add(content.len() as u64) };
            bytes.extend_from_slice(&header.to_bytes());
            bytes.extend_from_slice(&content);
        }
        let _ = common::decode(&bytes, &[]);
    }
}
