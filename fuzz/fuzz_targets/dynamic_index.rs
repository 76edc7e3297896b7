#![no_main]
//! Dynamic-index decoding: a decoded index must re-encode to the same body.
use libfuzzer_sys::fuzz_target;
use stowage_format::DynamicIndex;

fuzz_target!(|data: &[u8]| {
    if let Ok(index) = DynamicIndex::decode(data) {
        let bytes = index.encode().expect("a decoded index encodes");
        assert_eq!(&bytes[4096..], &data[4096..]);
    }
});
