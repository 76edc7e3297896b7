#![no_main]
//! Fixed-index decoding: a decoded index must re-encode to the same body.
use libfuzzer_sys::fuzz_target;
use stowage_format::FixedIndex;

fuzz_target!(|data: &[u8]| {
    if let Ok(index) = FixedIndex::decode(data) {
        if let Ok(bytes) = index.encode() {
            assert_eq!(&bytes[4096..], &data[4096..]);
        }
    }
});
