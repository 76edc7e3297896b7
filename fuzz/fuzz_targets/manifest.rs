#![no_main]
//! Manifest parsing: never a panic; every accepted file name stays inside the snapshot.
use libfuzzer_sys::fuzz_target;
use stowage_format::Manifest;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Manifest::from_json(data) {
        for f in &m.files {
            assert!(!f.filename.contains('/') && !f.filename.starts_with('.'));
        }
    }
});
