#![no_main]
//! DataBlob decoding of untrusted bytes: never a panic, never more output than allowed.
use libfuzzer_sys::fuzz_target;
use stowage_format::blob::decode_blob;
use stowage_format::BlobDecoder;

fuzz_target!(|data: &[u8]| {
    if let Ok(out) = decode_blob(data, 1 << 20) {
        assert!(out.len() <= 1 << 20);
    }
    let mut out = Vec::new();
    if BlobDecoder::new().unwrap().decode_into(data, &mut out, 4096).is_ok() {
        assert!(out.len() <= 4096);
    }
});
