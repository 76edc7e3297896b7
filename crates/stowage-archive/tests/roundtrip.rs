//! Property tests: random trees (files with random contents, symlinks, devices, fifos,
//! sockets, hardlinks, nested directories, non-UTF-8 names, xattrs, ACLs, fcaps, quota ids)
//! round-trip through encoder and decoder, unified (v1) and split (v2).

mod common;

use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn unified_round_trip(root in common::tree()) {
        let (archive, payload, want) = common::encode(&root, None);
        prop_assert!(payload.is_empty());
        let got = common::decode(&archive, &payload).unwrap();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn split_round_trip(
        root in common::tree(),
        prelude in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..30)),
    ) {
        let (archive, payload, want) = common::encode(&root, Some(prelude.clone()));
        stowage_archive::check_payload_stream(&payload).unwrap();
        let mut decoder = stowage_archive::Decoder::new(&archive[..]);
        decoder.next_event().unwrap();
        prop_assert!(decoder.is_split());
        prop_assert_eq!(decoder.prelude(), prelude.as_deref());
        let got = common::decode(&archive, &payload).unwrap();
        prop_assert_eq!(got, want);
    }
}
